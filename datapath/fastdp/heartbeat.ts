// Fast datapath health: a full-size heartbeat frame with DF set crosses the
// vxlan and is acknowledged over the mesh; only then does fastdp count as
// working to that peer (Weave's rule). Pure: frame and ack codecs, the MAC a
// daemon receives heartbeats on, a per-connection health tracker, and the
// gratuitous ARP the daemon injects when a remote address moves.
//
// Path of a heartbeat from A to B (docs/fastdp.md, "Heartbeat"):
//   A's daemon writes the frame into its TAP (meshnet-sleeve), addressed to
//   B's heartbeat MAC; A's bridge has that MAC pinned to the vxlan port and
//   the vxlan has it -> B's VTEP, so the frame always takes the vxlan (df
//   set: too big for the path means dropped, never fragmented). B's bridge
//   has its own heartbeat MAC pinned to its TAP, so B's daemon reads it,
//   checks UID and length, and acks over the mesh connection.

/** IEEE 802 "local experimental" EtherType 1: never a real protocol on a LAN. */
export const HEARTBEAT_ETHERTYPE = 0x88b5;
const MAGIC = Buffer.from('MNHB');
const VERSION = 1;
/** Ethernet header + magic + version + kind + connUid + length. */
export const HEARTBEAT_MIN_LENGTH = 14 + 4 + 1 + 1 + 8 + 2;
const ETH_HEADER = 14;

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

function macString(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/**
 * The MAC a daemon receives heartbeats on: its peer name (6 bytes, like a
 * MAC) made unicast and locally administered. Stable across restarts.
 */
export function heartbeatMac(peerName: string): string {
  const b = macBytes(peerName);
  if (b.length !== 6 || b.some((x) => Number.isNaN(x))) throw new TypeError(`invalid peer name ${JSON.stringify(peerName)}`);
  b[0] = (b[0]! | 0x02) & 0xfe;
  return macString(b);
}

/** A full-size frame for an overlay MTU (the L3 MTU of bridge and vxlan). */
export function heartbeatFrameLength(overlayMtu: number): number {
  return overlayMtu + ETH_HEADER;
}

export interface Heartbeat {
  dst: string;
  src: string;
  /** The mesh connection's UID (decimal u64), so a stale connection's heartbeat is not acked for a new one. */
  connUid: string;
  /** Total frame length, padding included; the receiver checks it arrived whole. */
  length: number;
}

export function encodeHeartbeat(h: Heartbeat): Buffer {
  if (!Number.isInteger(h.length) || h.length < HEARTBEAT_MIN_LENGTH || h.length > 65535) {
    throw new RangeError(`heartbeat length ${h.length} outside ${HEARTBEAT_MIN_LENGTH}..65535`);
  }
  const f = Buffer.alloc(h.length);
  macBytes(h.dst).copy(f, 0);
  macBytes(h.src).copy(f, 6);
  f.writeUInt16BE(HEARTBEAT_ETHERTYPE, 12);
  MAGIC.copy(f, 14);
  f.writeUInt8(VERSION, 18);
  f.writeUInt8(0, 19);
  f.writeBigUInt64BE(BigInt(h.connUid), 20);
  f.writeUInt16BE(h.length, 28);
  return f;
}

/** A heartbeat, or undefined for any other frame (including a truncated heartbeat). */
export function decodeHeartbeat(frame: Uint8Array): Heartbeat | undefined {
  const f = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (f.length < HEARTBEAT_MIN_LENGTH) return undefined;
  if (f.readUInt16BE(12) !== HEARTBEAT_ETHERTYPE || !f.subarray(14, 18).equals(MAGIC) || f.readUInt8(18) !== VERSION) return undefined;
  const length = f.readUInt16BE(28);
  // Ethernet minimum-size padding may lengthen a frame, never shorten it.
  if (f.length < length) return undefined;
  return { dst: macString(f.subarray(0, 6)), src: macString(f.subarray(6, 12)), connUid: f.readBigUInt64BE(20).toString(), length };
}

// The ack travels over the mesh connection (OverlayConnection.sendControl).
const ACK_TYPE = 0x01;

export function encodeHeartbeatAck(connUid: string, length: number): Uint8Array {
  const b = Buffer.alloc(11);
  b.writeUInt8(ACK_TYPE, 0);
  b.writeBigUInt64BE(BigInt(connUid), 1);
  b.writeUInt16BE(length, 9);
  return b;
}

export function decodeHeartbeatAck(msg: Uint8Array): { connUid: string; length: number } | undefined {
  if (msg.byteLength !== 11) return undefined;
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  if (b.readUInt8(0) !== ACK_TYPE) return undefined;
  return { connUid: b.readBigUInt64BE(1).toString(), length: b.readUInt16BE(9) };
}

export interface HealthTimings {
  /** Until the first ack (Weave: 500 ms). */
  fastIntervalMs: number;
  /** Once acked (Weave: 10 s). */
  slowIntervalMs: number;
  /** No ack for this long: fastdp is not working (Weave: 60 s). */
  timeoutMs: number;
}

export const DEFAULT_TIMINGS: HealthTimings = { fastIntervalMs: 500, slowIntervalMs: 10_000, timeoutMs: 60_000 };

/**
 * Per-connection heartbeat bookkeeping. `working` is true only while a
 * full-size heartbeat was acked within the timeout; when acks stop it turns
 * false (the overlay switch moves the peer to the sleeve) and the tracker
 * goes back to fast probing, so recovery is noticed within a fast interval.
 */
export class HeartbeatTracker {
  private lastSent = -Infinity;
  private lastAck = -Infinity;

  constructor(
    readonly connUid: string,
    /** The frame length an ack must confirm. */
    readonly length: number,
    private readonly t: HealthTimings = DEFAULT_TIMINGS,
  ) {}

  working(now: number): boolean {
    return now - this.lastAck <= this.t.timeoutMs;
  }

  /** Whether a heartbeat is due now. */
  due(now: number): boolean {
    const interval = this.working(now) ? this.t.slowIntervalMs : this.t.fastIntervalMs;
    return now - this.lastSent >= interval;
  }

  sent(now: number): void {
    this.lastSent = now;
  }

  /** An ack arrived over the mesh; true when it confirms our full-size heartbeat. */
  acked(now: number, ack: { connUid: string; length: number }): boolean {
    if (ack.connUid !== this.connUid || ack.length !== this.length) return false;
    this.lastAck = now;
    return true;
  }
}

/**
 * A gratuitous ARP request (sender = target = ip) from `mac`, broadcast. The
 * daemon writes it into its TAP when a remote address moves to a new MAC:
 * local pods update their ARP caches at once instead of timing out.
 */
export function gratuitousArp(mac: string, ip: string): Buffer {
  const f = Buffer.alloc(42);
  Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).copy(f, 0);
  macBytes(mac).copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // hardware: Ethernet
  f.writeUInt16BE(0x0800, 16); // protocol: IPv4
  f.writeUInt8(6, 18);
  f.writeUInt8(4, 19);
  f.writeUInt16BE(1, 20); // request
  macBytes(mac).copy(f, 22);
  const ipb = Buffer.from(ip.split('.').map(Number));
  ipb.copy(f, 28);
  ipb.copy(f, 38);
  return f;
}
