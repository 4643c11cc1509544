// The in-memory twin of the TCP transport, so many routers can run in one
// process (unit tests, the large-mesh simulation in bench/). Delivery is
// asynchronous and ordered per stream, like TCP. A MemoryNetwork can cut the
// path between two addresses (streams on it are reset, dials refused) and
// counts every byte it carries.

import type { ByteStream, Transport } from './transport.js';

export class MemoryNetwork {
  readonly listeners = new Map<string, (s: ByteStream) => void>();
  private readonly cut = new Set<string>();
  private readonly live = new Set<MemoryStream>();
  bytesCarried = 0;
  private nextPort = 40000;

  /** `latencyMs`: one-way delay of every chunk (0: the next turn of the event loop). */
  constructor(readonly latencyMs = 0) {}

  /** Run `fn` after the network's one-way delay. */
  later(fn: () => void): void {
    if (this.latencyMs > 0) setTimeout(fn, this.latencyMs);
    else setImmediate(fn);
  }

  transport(ip: string, port: number): MemoryTransport {
    return new MemoryTransport(this, ip, port);
  }

  /** Cut (or restore) the path between two IPs, both directions. */
  setCut(a: string, b: string, cut: boolean): void {
    const key = pairKey(a, b);
    if (cut) {
      this.cut.add(key);
      for (const s of [...this.live]) if (pairKey(s.localIp, s.remoteIp) === key) s.destroy(new Error('connection reset (path cut)'));
    } else this.cut.delete(key);
  }

  isCut(a: string, b: string): boolean {
    return this.cut.has(pairKey(a, b));
  }

  /** Reset every stream of one IP (a crashed host). */
  crash(ip: string): void {
    for (const s of [...this.live]) if (s.localIp === ip || s.remoteIp === ip) s.destroy(new Error('connection reset'));
  }

  ephemeralPort(): number {
    return this.nextPort++;
  }

  track(s: MemoryStream): void {
    this.live.add(s);
  }

  untrack(s: MemoryStream): void {
    this.live.delete(s);
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export class MemoryStream implements ByteStream {
  peer: MemoryStream | undefined;
  private dataCb: ((chunk: Buffer) => void) | undefined;
  private readonly early: Buffer[] = [];
  private closeCbs: ((err?: Error) => void)[] = [];
  private closed = false;
  private inflight = 0;

  constructor(
    private readonly net: MemoryNetwork,
    readonly localIp: string,
    readonly remoteIp: string,
    readonly remotePort: number,
  ) {
    net.track(this);
  }

  get writableLength(): number {
    return this.inflight;
  }

  write(data: Uint8Array): void {
    const peer = this.peer;
    if (this.closed || !peer) return;
    const chunk = Buffer.from(data);
    this.inflight += chunk.length;
    this.net.bytesCarried += chunk.length;
    this.net.later(() => {
      this.inflight -= chunk.length;
      if (!peer.closed) peer.deliver(chunk);
    });
  }

  private deliver(chunk: Buffer): void {
    if (this.dataCb) this.dataCb(chunk);
    else this.early.push(chunk);
  }

  onData(cb: (chunk: Buffer) => void): void {
    this.dataCb = cb;
    for (const c of this.early.splice(0)) cb(c);
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) queueMicrotask(() => cb());
    else this.closeCbs.push(cb);
  }

  destroy(err?: Error): void {
    this.finish(err);
    const peer = this.peer;
    if (peer) this.net.later(() => peer.finish(new Error('connection reset by peer')));
  }

  private finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.net.untrack(this);
    const cbs = this.closeCbs;
    this.closeCbs = [];
    for (const cb of cbs) cb(err);
  }
}

export class MemoryTransport implements Transport {
  constructor(
    private readonly net: MemoryNetwork,
    readonly ip: string,
    readonly port: number,
  ) {}

  async listen(onStream: (s: ByteStream) => void): Promise<void> {
    const key = `${this.ip}:${this.port}`;
    if (this.net.listeners.has(key)) throw new Error(`port ${key} is already in use`);
    this.net.listeners.set(key, onStream);
  }

  async dial(ip: string, port: number): Promise<ByteStream> {
    await new Promise<void>((r) => this.net.later(r));
    const accept = this.net.listeners.get(`${ip}:${port}`);
    if (!accept || this.net.isCut(this.ip, ip)) throw new Error(`connect ECONNREFUSED ${ip}:${port}`);
    const local = new MemoryStream(this.net, this.ip, ip, port);
    const remote = new MemoryStream(this.net, ip, this.ip, this.net.ephemeralPort());
    local.peer = remote;
    remote.peer = local;
    accept(remote);
    return local;
  }

  async close(): Promise<void> {
    this.net.listeners.delete(`${this.ip}:${this.port}`);
  }
}
