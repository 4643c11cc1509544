// The mesh wire protocol: the fixed header each side writes first, the
// handshake frames, and the tagged messages of an established connection.
//
//   header   = MAGIC (5 bytes "mshnt") | min version (1) | max version (1)
//   frames   = u32 big-endian length | payload           (see framing.ts)
//   hello    = HELLO | flags | [public key (32) | n (1) | n × password id (8)]
//            | REFUSE | utf-8 reason
//   messages = tag (1) | body, sealed as a whole when the connection is encrypted
//
// Every decode checks lengths before reading; malformed input throws
// ProtocolError, which closes that connection (never the daemon).

import { PUBLIC_KEY_BYTES } from '../../crypto/index.js';
import { readPeerId, writePeerId, type PeerId } from '../peer-name.js';

export const MAGIC = Buffer.from('mshnt', 'ascii');
export const HEADER_BYTES = MAGIC.length + 2;
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 1;

/** Limit on handshake frames: nothing legitimate comes near it. */
export const HANDSHAKE_FRAME_LIMIT = 64 * 1024;
export const PASSWORD_ID_BYTES = 8;
export const MAX_PASSWORD_IDS = 8;

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

// ---- header ----------------------------------------------------------------

export function encodeHeader(min = PROTOCOL_MIN_VERSION, max = PROTOCOL_MAX_VERSION): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([min, max])]);
}

export function decodeHeader(buf: Uint8Array): { min: number; max: number } {
  if (buf.length !== HEADER_BYTES || !MAGIC.equals(buf.subarray(0, MAGIC.length))) {
    throw new ProtocolError('not a meshnet peer (bad protocol magic)');
  }
  const min = buf[MAGIC.length]!;
  const max = buf[MAGIC.length + 1]!;
  if (min === 0 || min > max) throw new ProtocolError(`invalid protocol version range [${min},${max}]`);
  return { min, max };
}

/** The highest version both sides speak, or a ProtocolError naming both ranges. */
export function negotiateVersion(local: { min: number; max: number }, remote: { min: number; max: number }): number {
  const version = Math.min(local.max, remote.max);
  if (version < Math.max(local.min, remote.min)) {
    throw new ProtocolError(`remote protocol version range [${remote.min},${remote.max}] is incompatible with ours [${local.min},${local.max}]`);
  }
  return version;
}

// ---- hello -----------------------------------------------------------------

export const HelloType = { HELLO: 1, REFUSE: 2 } as const;
const HELLO_FLAG_ENCRYPTED = 0x01;

export type Hello =
  | { type: 'hello'; encrypted: false }
  | { type: 'hello'; encrypted: true; publicKey: Uint8Array; passwordIds: Uint8Array[] }
  | { type: 'refuse'; reason: string };

export function encodeHello(h: Hello): Buffer {
  if (h.type === 'refuse') return Buffer.concat([Buffer.from([HelloType.REFUSE]), Buffer.from(h.reason.slice(0, 512), 'utf8')]);
  if (!h.encrypted) return Buffer.from([HelloType.HELLO, 0]);
  if (h.passwordIds.length === 0 || h.passwordIds.length > MAX_PASSWORD_IDS) throw new ProtocolError('bad number of password ids');
  return Buffer.concat([
    Buffer.from([HelloType.HELLO, HELLO_FLAG_ENCRYPTED]),
    h.publicKey,
    Buffer.from([h.passwordIds.length]),
    ...h.passwordIds,
  ]);
}

export function decodeHello(buf: Uint8Array): Hello {
  if (buf.length < 1) throw new ProtocolError('empty hello');
  if (buf[0] === HelloType.REFUSE) return { type: 'refuse', reason: Buffer.from(buf.subarray(1, 513)).toString('utf8') };
  if (buf[0] !== HelloType.HELLO || buf.length < 2) throw new ProtocolError('malformed hello');
  const flags = buf[1]!;
  if ((flags & HELLO_FLAG_ENCRYPTED) === 0) {
    if (buf.length !== 2) throw new ProtocolError('malformed hello');
    return { type: 'hello', encrypted: false };
  }
  const fixed = 2 + PUBLIC_KEY_BYTES + 1;
  if (buf.length < fixed) throw new ProtocolError('truncated hello');
  const n = buf[fixed - 1]!;
  if (n === 0 || n > MAX_PASSWORD_IDS || buf.length !== fixed + n * PASSWORD_ID_BYTES) throw new ProtocolError('malformed hello password ids');
  const publicKey = Buffer.from(buf.subarray(2, 2 + PUBLIC_KEY_BYTES));
  const passwordIds: Uint8Array[] = [];
  for (let i = 0; i < n; i++) passwordIds.push(Buffer.from(buf.subarray(fixed + i * PASSWORD_ID_BYTES, fixed + (i + 1) * PASSWORD_ID_BYTES)));
  return { type: 'hello', encrypted: true, publicKey, passwordIds };
}

// ---- messages --------------------------------------------------------------

export const Tag = {
  IDENTITY: 1,
  CLOSE: 2,
  HEARTBEAT: 3,
  GOSSIP: 4,
  BROADCAST: 5,
  UNICAST: 6,
  OVERLAY: 7,
  /** The handshake's last message: "I accept this connection too". */
  ACCEPT: 8,
} as const;
export type TagValue = (typeof Tag)[keyof typeof Tag];

export const MAX_CHANNEL_NAME = 64;

export type Message =
  | { tag: typeof Tag.IDENTITY; body: Uint8Array }
  | { tag: typeof Tag.CLOSE; reason: string }
  | { tag: typeof Tag.HEARTBEAT }
  | { tag: typeof Tag.GOSSIP; channel: string; payload: Uint8Array }
  | { tag: typeof Tag.BROADCAST; channel: string; origin: PeerId; payload: Uint8Array }
  | { tag: typeof Tag.UNICAST; channel: string; src: PeerId; dst: PeerId; payload: Uint8Array }
  | { tag: typeof Tag.OVERLAY; payload: Uint8Array }
  | { tag: typeof Tag.ACCEPT };

export function encodeMessage(m: Message): Buffer {
  switch (m.tag) {
    case Tag.IDENTITY:
      return Buffer.concat([Buffer.from([m.tag]), m.body]);
    case Tag.CLOSE:
      return Buffer.concat([Buffer.from([m.tag]), Buffer.from(m.reason.slice(0, 512), 'utf8')]);
    case Tag.HEARTBEAT:
    case Tag.ACCEPT:
      return Buffer.from([m.tag]);
    case Tag.OVERLAY:
      return Buffer.concat([Buffer.from([m.tag]), m.payload]);
    case Tag.GOSSIP:
    case Tag.BROADCAST:
    case Tag.UNICAST: {
      const name = Buffer.from(m.channel, 'utf8');
      if (name.length === 0 || name.length > MAX_CHANNEL_NAME) throw new ProtocolError(`bad channel name "${m.channel}"`);
      const ids = m.tag === Tag.GOSSIP ? 0 : m.tag === Tag.BROADCAST ? 6 : 12;
      const out = Buffer.allocUnsafe(2 + name.length + ids + m.payload.length);
      out[0] = m.tag;
      out[1] = name.length;
      name.copy(out, 2);
      let o = 2 + name.length;
      if (m.tag === Tag.BROADCAST) {
        writePeerId(out, o, m.origin);
        o += 6;
      } else if (m.tag === Tag.UNICAST) {
        writePeerId(out, o, m.src);
        writePeerId(out, o + 6, m.dst);
        o += 12;
      }
      out.set(m.payload, o);
      return out;
    }
  }
}

export function decodeMessage(buf: Buffer): Message {
  if (buf.length < 1) throw new ProtocolError('empty message');
  const tag = buf[0]!;
  switch (tag) {
    case Tag.IDENTITY:
      return { tag, body: buf.subarray(1) };
    case Tag.CLOSE:
      return { tag, reason: buf.subarray(1, 513).toString('utf8') };
    case Tag.HEARTBEAT:
    case Tag.ACCEPT:
      if (buf.length !== 1) throw new ProtocolError('malformed message');
      return { tag };
    case Tag.OVERLAY:
      return { tag, payload: buf.subarray(1) };
    case Tag.GOSSIP:
    case Tag.BROADCAST:
    case Tag.UNICAST: {
      if (buf.length < 2) throw new ProtocolError('truncated gossip');
      const n = buf[1]!;
      const ids = tag === Tag.GOSSIP ? 0 : tag === Tag.BROADCAST ? 6 : 12;
      if (n === 0 || n > MAX_CHANNEL_NAME || buf.length < 2 + n + ids) throw new ProtocolError('truncated gossip');
      const channel = buf.subarray(2, 2 + n).toString('utf8');
      const o = 2 + n;
      if (tag === Tag.GOSSIP) return { tag, channel, payload: buf.subarray(o) };
      if (tag === Tag.BROADCAST) return { tag, channel, origin: readPeerId(buf, o), payload: buf.subarray(o + 6) };
      return { tag, channel, src: readPeerId(buf, o), dst: readPeerId(buf, o + 6), payload: buf.subarray(o + 12) };
    }
    default:
      throw new ProtocolError(`unknown message tag ${tag}`);
  }
}
