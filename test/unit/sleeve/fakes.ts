// In-memory twins of the sleeve's I/O edges (a TAP and a UDP network) for
// unit tests of the sleeve's logic. Datagrams are delivered on the next
// turn of the event loop; links can be blocked per pair and given a path
// MTU (larger datagrams vanish silently, as on a switch port, unless the
// sender's own limit applies: then EMSGSIZE, as with DF set).

import type { Batch, DatagramBatch, DatagramSocket, DeviceStats, FrameDevice, SendError, SocketStats } from '../../../datapath/io/types.js';
import { ipToU32, u32ToIp } from '../../../datapath/io/ipv4.js';

export class MemTap implements FrameDevice {
  readonly backend = 'node' as const;
  readonly offload = false;
  readonly written: Buffer[] = [];
  private cb: ((b: Batch) => void) | undefined;

  constructor(
    readonly name: string,
    readonly headroom: number,
  ) {}

  onFrames(cb: (batch: Batch) => void): void {
    this.cb = cb;
  }

  /** Frames "read from the device": laid out with headroom, like a backend does. */
  inject(frames: Buffer[]): void {
    const slot = 2048 + this.headroom;
    const size = frames.reduce((a, f) => a + this.headroom + f.length + 64, 0);
    const buf = Buffer.alloc(Math.max(size, slot));
    const offs = new Uint32Array(frames.length);
    const lens = new Uint32Array(frames.length);
    let at = 0;
    frames.forEach((f, i) => {
      at += this.headroom;
      f.copy(buf, at);
      offs[i] = at;
      lens[i] = f.length;
      at += f.length + 64;
    });
    this.cb?.({ buf, offs, lens, count: frames.length });
  }

  write(batch: Batch): number {
    for (let i = 0; i < batch.count; i++) this.written.push(Buffer.from(batch.buf.subarray(batch.offs[i]!, batch.offs[i]! + batch.lens[i]!)));
    return batch.count;
  }

  take(): Buffer[] {
    return this.written.splice(0);
  }

  onError(): void {}

  stats(): DeviceStats {
    return { rxFrames: 0, rxPackets: 0, rxGso: 0, txFrames: this.written.length, txPackets: 0, txGso: 0, txErrors: 0, rxErrors: 0, drops: {} };
  }

  close(): void {}
}

interface Delivery {
  to: MemSocket;
  data: Buffer;
  fromIp: number;
  fromPort: number;
}

export class MemNet {
  readonly sockets = new Map<string, MemSocket>();
  private readonly blocked = new Set<string>();
  /** Largest datagram (UDP payload + 28) a pair carries; silently dropped above. */
  private readonly limits = new Map<string, number>();
  /** Every datagram that went over the "wire": [from, to, bytes]. */
  readonly captured: { from: string; to: string; data: Buffer }[] = [];
  capture = false;
  private queue: Delivery[] = [];
  private scheduled = false;

  socket(ip: string, port: number, localMtu = 1500): MemSocket {
    const s = new MemSocket(this, ip, port, localMtu);
    this.sockets.set(`${ip}:${port}`, s);
    return s;
  }

  block(a: string, b: string, on = true): void {
    for (const k of [`${a}>${b}`, `${b}>${a}`]) {
      if (on) this.blocked.add(k);
      else this.blocked.delete(k);
    }
  }

  limit(a: string, b: string, mtu: number | undefined): void {
    for (const k of [`${a}>${b}`, `${b}>${a}`]) {
      if (mtu === undefined) this.limits.delete(k);
      else this.limits.set(k, mtu);
    }
  }

  /** Send raw bytes as if from ip:port (an attacker or a replay). */
  inject(fromIp: string, fromPort: number, to: string, data: Buffer): void {
    const s = this.sockets.get(to);
    if (s) this.enqueue({ to: s, data: Buffer.from(data), fromIp: ipToU32(fromIp), fromPort });
  }

  /** @internal */
  transmit(from: MemSocket, ip: string, port: number, data: Buffer): void {
    const to = this.sockets.get(`${ip}:${port}`);
    if (!to || this.blocked.has(`${from.address}>${ip}`)) return;
    const lim = this.limits.get(`${from.address}>${ip}`);
    if (lim !== undefined && data.length + 28 > lim) return;
    if (this.capture) this.captured.push({ from: from.address, to: ip, data: Buffer.from(data) });
    this.enqueue({ to, data: Buffer.from(data), fromIp: ipToU32(from.address), fromPort: from.port });
  }

  private enqueue(d: Delivery): void {
    this.queue.push(d);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const q = this.queue.splice(0);
      // One receive batch per socket per turn, like recvmmsg.
      const bySock = new Map<MemSocket, Delivery[]>();
      for (const x of q) bySock.set(x.to, [...(bySock.get(x.to) ?? []), x]);
      for (const [s, ds] of bySock) s.deliver(ds);
    });
  }

  /** Let queued datagrams (and what they trigger) settle. */
  async settle(rounds = 10): Promise<void> {
    for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
  }
}

export class MemSocket implements DatagramSocket {
  readonly backend = 'node' as const;
  private cb: ((b: DatagramBatch) => void) | undefined;
  private errCb: ((e: SendError) => void) | undefined;
  sent = 0;

  constructor(
    private readonly net: MemNet,
    readonly address: string,
    readonly port: number,
    /** The sender's own link MTU: bigger datagrams fail with EMSGSIZE. */
    public localMtu: number,
  ) {}

  onDatagrams(cb: (batch: DatagramBatch) => void): void {
    this.cb = cb;
  }

  /** @internal */
  deliver(ds: { data: Buffer; fromIp: number; fromPort: number }[]): void {
    const buf = Buffer.alloc(ds.reduce((a, d) => a + d.data.length + 16, 0));
    const n = ds.length;
    const b: DatagramBatch = { buf, offs: new Uint32Array(n), lens: new Uint32Array(n), addrs: new Uint32Array(2 * n), count: n };
    let at = 0;
    ds.forEach((d, i) => {
      d.data.copy(buf, at);
      b.offs[i] = at;
      b.lens[i] = d.data.length;
      b.addrs[2 * i] = d.fromIp;
      b.addrs[2 * i + 1] = d.fromPort;
      at += d.data.length + 16;
    });
    this.cb?.(b);
  }

  sendBatch(batch: DatagramBatch): number {
    let sent = 0;
    for (let i = 0; i < batch.count; i++) {
      const ip = u32ToIp(batch.addrs[2 * i]!);
      const port = batch.addrs[2 * i + 1]!;
      const len = batch.lens[i]!;
      if (len + 28 > this.localMtu) {
        this.errCb?.({ code: 'EMSGSIZE', ip, port, length: len });
        continue;
      }
      this.net.transmit(this, ip, port, Buffer.from(batch.buf.subarray(batch.offs[i]!, batch.offs[i]! + len)));
      sent++;
    }
    this.sent += sent;
    return sent;
  }

  onSendError(cb: (err: SendError) => void): void {
    this.errCb = cb;
  }

  onError(): void {}

  async pathMtu(): Promise<number> {
    return this.localMtu;
  }

  stats(): SocketStats {
    return { rxDatagrams: 0, rxPackets: 0, txPackets: 0, rxTruncated: 0, rxErrors: 0, txDatagrams: this.sent, txMsgSize: 0, txErrors: 0 };
  }

  close(): void {}
}

/** An Ethernet frame dst <- src with an IPv4 payload of `ipLen` bytes (DF set), protocol UDP. */
export function ipv4Frame(dst: string, src: string, ipSrc: string, ipDst: string, ipLen: number, marker = 0): Buffer {
  const f = Buffer.alloc(14 + ipLen);
  Buffer.from(dst.split(':').map((x) => parseInt(x, 16))).copy(f, 0);
  Buffer.from(src.split(':').map((x) => parseInt(x, 16))).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(ipLen, 16);
  f.writeUInt16BE(0x4000, 20); // DF
  f[22] = 64;
  f[23] = 17;
  Buffer.from(ipSrc.split('.').map(Number)).copy(f, 26);
  Buffer.from(ipDst.split('.').map(Number)).copy(f, 30);
  if (ipLen >= 29) f[14 + 28] = marker;
  return f;
}
