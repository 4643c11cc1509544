// The sleeve's UDP encapsulation (port 6783). Pure: constants, header
// encode/decode, no I/O. Every field is checked at decode time, before any
// crypto or allocation.
//
//   0      1      2      3      4              8
//   +------+------+------+------+--------------+
//   | v|t  | flags| ttl  | 0    | rx index     |   base header (8 bytes)
//   +------+------+------+------+--------------+
//   [ src peer (6) | dst peer (6) ]                 when flags & ROUTED (12 bytes)
//   [ origin peer (6) | 0 0 ]                       when type = BCAST (8 bytes)
//   then, sealed:  counter (8, LE) | ciphertext | tag (16)   (datapath/io/aead.ts)
//        plain:    payload
//
// - v|t: version (high nibble, 1) and type (low nibble).
// - rx index: chosen by the receiver of this hop for the connection and
//   announced over the mesh connection (control HELLO): it names the keys,
//   the replay window and the peer in one lookup, like WireGuard's receiver
//   index. A datagram with an unknown index is dropped unread.
// - The header is authenticated as AAD of the AEAD (with the counter), so
//   nobody on the path can redirect, re-type or re-address a sealed datagram.
// - Sealing is per hop: a relay opens with its inbound hop's keys and seals
//   again with the next hop's; the inner frame is never parsed by a relay.
//   ROUTED datagrams carry the original source and final destination peer,
//   so relays forward them by peer name, without any MAC knowledge.
// - ttl bounds relaying while routes converge.
//
// Overheads (IPv4 underlay: 20 IP + 8 UDP): direct frame 8 (+24 sealed), the
// same as VXLAN's 8 when plain; relayed +12; broadcast +8.

export const WIRE_VERSION = 1;

export const TYPE_FRAME = 1;
export const TYPE_BCAST = 2;
export const TYPE_HEARTBEAT = 3;
export const TYPE_PROBE = 4;
export const TYPE_PROBE_ACK = 5;
export const MAX_TYPE = 5;

export const FLAG_ROUTED = 0x01;

export const BASE_HEADER = 8;
export const ROUTED_EXTRA = 12;
export const BCAST_EXTRA = 8;
/** The largest header (a routed datagram). */
export const MAX_HEADER = BASE_HEADER + ROUTED_EXTRA;
/** counter + Poly1305 tag (datapath/io/aead.ts AEAD_OVERHEAD). */
export const SEAL_OVERHEAD = 24;
/** IPv4 + UDP headers around every datagram. */
export const UDP_IPV4_OVERHEAD = 28;
export const ETH_HEADER = 14;
/** Hops a datagram may take (the mesh is small-world; routes converge quickly). */
export const DEFAULT_TTL = 16;

export interface Header {
  type: number;
  flags: number;
  ttl: number;
  index: number;
  /** ROUTED: source and destination peer, 48-bit keys (see peerKey). */
  src: number;
  dst: number;
  /** BCAST: the peer whose frame this is. */
  origin: number;
  /** Bytes of header (where the body starts). */
  length: number;
}

export function headerLength(type: number, flags: number): number {
  return BASE_HEADER + (flags & FLAG_ROUTED ? ROUTED_EXTRA : 0) + (type === TYPE_BCAST ? BCAST_EXTRA : 0);
}

/** A peer name "aa:bb:cc:dd:ee:ff" as a 48-bit number (exact in a double). Throws naming the value when malformed. */
export function peerKey(name: string): number {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(name)) throw new TypeError(`peer name: not six hex bytes: ${JSON.stringify(name)}`);
  return parseInt(name.replace(/:/g, ''), 16);
}

export function peerNameOf(key: number): string {
  const hex = key.toString(16).padStart(12, '0');
  return hex.replace(/(..)(?!$)/g, '$1:');
}

/** 6 bytes at buf[off..] as a 48-bit number (also used for MAC addresses). */
export function read48(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 8) | buf[off + 1]!) * 0x100000000 + (((buf[off + 2]! << 24) | (buf[off + 3]! << 16) | (buf[off + 4]! << 8) | buf[off + 5]!) >>> 0);
}

export function write48(buf: Uint8Array, off: number, v: number): void {
  const hi = Math.floor(v / 0x100000000);
  const lo = v >>> 0;
  buf[off] = (hi >>> 8) & 0xff;
  buf[off + 1] = hi & 0xff;
  buf[off + 2] = lo >>> 24;
  buf[off + 3] = (lo >>> 16) & 0xff;
  buf[off + 4] = (lo >>> 8) & 0xff;
  buf[off + 5] = lo & 0xff;
}

/**
 * Writes a header at buf[off..] and returns its length. `src`/`dst` are used
 * when flags has ROUTED, `origin` for BCAST.
 */
export function writeHeader(buf: Uint8Array, off: number, type: number, flags: number, ttl: number, index: number, src = 0, dst = 0, origin = 0): number {
  buf[off] = (WIRE_VERSION << 4) | type;
  buf[off + 1] = flags;
  buf[off + 2] = ttl;
  buf[off + 3] = 0;
  buf[off + 4] = index >>> 24;
  buf[off + 5] = (index >>> 16) & 0xff;
  buf[off + 6] = (index >>> 8) & 0xff;
  buf[off + 7] = index & 0xff;
  let at = off + BASE_HEADER;
  if (flags & FLAG_ROUTED) {
    write48(buf, at, src);
    write48(buf, at + 6, dst);
    at += ROUTED_EXTRA;
  }
  if (type === TYPE_BCAST) {
    write48(buf, at, origin);
    buf[at + 6] = 0;
    buf[at + 7] = 0;
    at += BCAST_EXTRA;
  }
  return at - off;
}

export type HeaderProblem = 'bad-length' | 'bad-header';

/**
 * Decodes the header of the datagram buf[off, off+len) into `h` (reused by
 * the caller: no allocation). Returns null when it is usable, else why not.
 * Only the shape is checked here; the index is the caller's to look up.
 */
export function readHeader(buf: Uint8Array, off: number, len: number, h: Header): HeaderProblem | null {
  if (len < BASE_HEADER) return 'bad-length';
  const vt = buf[off]!;
  const type = vt & 0x0f;
  const flags = buf[off + 1]!;
  if (vt >> 4 !== WIRE_VERSION || type === 0 || type > MAX_TYPE || (flags & ~FLAG_ROUTED) !== 0 || buf[off + 3] !== 0) return 'bad-header';
  // Broadcasts are never routed point to point; they follow the tree.
  if (type === TYPE_BCAST && flags & FLAG_ROUTED) return 'bad-header';
  const length = headerLength(type, flags);
  if (len < length) return 'bad-length';
  h.type = type;
  h.flags = flags;
  h.ttl = buf[off + 2]!;
  h.index = ((buf[off + 4]! << 24) | (buf[off + 5]! << 16) | (buf[off + 6]! << 8) | buf[off + 7]!) >>> 0;
  h.length = length;
  h.src = h.dst = h.origin = 0;
  let at = off + BASE_HEADER;
  if (flags & FLAG_ROUTED) {
    h.src = read48(buf, at);
    h.dst = read48(buf, at + 6);
    at += ROUTED_EXTRA;
  }
  if (type === TYPE_BCAST) {
    if (buf[at + 6] !== 0 || buf[at + 7] !== 0) return 'bad-header';
    h.origin = read48(buf, at);
  }
  return null;
}

export function emptyHeader(): Header {
  return { type: 0, flags: 0, ttl: 0, index: 0, src: 0, dst: 0, origin: 0, length: 0 };
}

// ---- control payloads carried in sleeve datagrams --------------------------

/** HEARTBEAT body: seq (u32) | flags (u8: bit 0 = "I hear you"). */
export const HEARTBEAT_BODY = 5;
/** PROBE body: id (u32) | size (u16) | zero padding up to the probed size. */
export const PROBE_MIN_BODY = 6;
/** PROBE_ACK body: id (u32) | size (u16). */
export const PROBE_ACK_BODY = 6;

export function writeHeartbeatBody(buf: Uint8Array, off: number, seq: number, hearYou: boolean): number {
  writeU32(buf, off, seq);
  buf[off + 4] = hearYou ? 1 : 0;
  return HEARTBEAT_BODY;
}

export function writeProbeBody(buf: Uint8Array, off: number, id: number, size: number, bodyLength: number): number {
  writeU32(buf, off, id);
  buf[off + 4] = size >>> 8;
  buf[off + 5] = size & 0xff;
  buf.fill(0, off + PROBE_MIN_BODY, off + bodyLength);
  return bodyLength;
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

export function readU16(buf: Uint8Array, off: number): number {
  return (buf[off]! << 8) | buf[off + 1]!;
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 0xff;
  buf[off + 2] = (v >>> 8) & 0xff;
  buf[off + 3] = v & 0xff;
}

/** Bytes a datagram adds around an Ethernet frame of the given kind (IPv4 underlay). */
export function datagramOverhead(routed: boolean, sealed: boolean): number {
  return UDP_IPV4_OVERHEAD + BASE_HEADER + (routed ? ROUTED_EXTRA : 0) + (sealed ? SEAL_OVERHEAD : 0);
}
