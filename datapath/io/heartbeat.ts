// Full-size heartbeat frames for fastdp. The daemon writes one to the TAP
// (onto the bridge) addressed to the peer's sleeve-TAP MAC; the bridge
// sends it through the vxlan device like any pod frame, so it crosses the
// kernel datapath exactly as pod traffic does, and the peer's daemon reads
// it from its own TAP and acknowledges it over the mesh connection. Sized
// to the bridge MTU, it proves the path carries full-size frames (the vxlan
// device must set DF on its outer packets, or the kernel would fragment
// them and hide a too-small path). Pure functions, no I/O.

export const HEARTBEAT_ETHERTYPE = 0x88b5; // IEEE 802 local experimental
const MAGIC = 0x4d4e4842; // "MNHB"
const VERSION = 1;
const ETH = 14;
/** Ethernet header + magic, version, seq, connection uid. */
export const HEARTBEAT_MIN_FRAME = ETH + 4 + 1 + 4 + 8;
export const HEARTBEAT_MAX_FRAME = 65535 + ETH;

export interface Heartbeat {
  /** The mesh connection's uid (decimal u64, as in OverlayConnectionParams.connUid). */
  connUid: string;
  seq: number;
  /** Frame length on the wire. */
  size: number;
}

function macBytes(mac: string, field: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) throw new Error(`${field}: not a MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** A heartbeat frame of exactly `size` bytes (Ethernet header included). */
export function buildHeartbeat(opts: { src: string; dst: string; connUid: string; seq: number; size: number }): Buffer {
  const { size, seq } = opts;
  if (!Number.isInteger(size) || size < HEARTBEAT_MIN_FRAME || size > HEARTBEAT_MAX_FRAME) throw new RangeError(`size: must be ${HEARTBEAT_MIN_FRAME}-${HEARTBEAT_MAX_FRAME}, got ${size}`);
  if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) throw new RangeError(`seq: must be a u32, got ${seq}`);
  if (!/^\d{1,20}$/.test(opts.connUid) || BigInt(opts.connUid) > 0xffffffffffffffffn) throw new RangeError(`connUid: must be a decimal u64, got ${JSON.stringify(opts.connUid)}`);
  const f = Buffer.alloc(size);
  macBytes(opts.dst, 'dst').copy(f, 0);
  macBytes(opts.src, 'src').copy(f, 6);
  f.writeUInt16BE(HEARTBEAT_ETHERTYPE, 12);
  f.writeUInt32BE(MAGIC, ETH);
  f[ETH + 4] = VERSION;
  f.writeUInt32BE(seq, ETH + 5);
  f.writeBigUInt64BE(BigInt(opts.connUid), ETH + 9);
  return f;
}

/** The heartbeat in buf[off, off+len), or null when it is not one (then it is an ordinary frame). */
export function parseHeartbeat(buf: Uint8Array, off: number, len: number): Heartbeat | null {
  if (len < HEARTBEAT_MIN_FRAME || off < 0 || off + len > buf.length) return null;
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, len);
  if (b.readUInt16BE(12) !== HEARTBEAT_ETHERTYPE || b.readUInt32BE(ETH) !== MAGIC || b[ETH + 4] !== VERSION) return null;
  return { connUid: b.readBigUInt64BE(ETH + 9).toString(), seq: b.readUInt32BE(ETH + 5), size: len };
}
