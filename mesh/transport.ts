// The byte-stream edge of the mesh: TCP in production, an in-memory twin
// (transport-memory.ts) in unit tests and simulations. The mesh sees only
// these two interfaces.

import * as net from 'node:net';

export interface ByteStream {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly localIp: string;
  /** Bytes queued but not yet written (for backpressure decisions). */
  readonly writableLength: number;
  write(data: Uint8Array): void;
  onData(cb: (chunk: Buffer) => void): void;
  /** Called once when the stream ends for any reason. */
  onClose(cb: (err?: Error) => void): void;
  destroy(err?: Error): void;
}

export interface Transport {
  /** Start accepting streams. */
  listen(onStream: (s: ByteStream) => void): Promise<void>;
  dial(ip: string, port: number, timeoutMs: number): Promise<ByteStream>;
  close(): Promise<void>;
}

class TcpStream implements ByteStream {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly localIp: string;
  private closed = false;
  private closeCbs: ((err?: Error) => void)[] = [];
  private error: Error | undefined;

  constructor(private readonly sock: net.Socket) {
    this.remoteIp = stripV4Mapped(sock.remoteAddress ?? '');
    this.remotePort = sock.remotePort ?? 0;
    this.localIp = stripV4Mapped(sock.localAddress ?? '');
    sock.setNoDelay(true);
    sock.on('error', (err) => {
      this.error ??= err;
    });
    sock.on('close', () => {
      if (this.closed) return;
      this.closed = true;
      for (const cb of this.closeCbs) cb(this.error);
    });
  }

  get writableLength(): number {
    return this.sock.writableLength;
  }

  write(data: Uint8Array): void {
    if (!this.sock.destroyed) this.sock.write(data);
  }

  onData(cb: (chunk: Buffer) => void): void {
    this.sock.on('data', cb);
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) queueMicrotask(() => cb(this.error));
    else this.closeCbs.push(cb);
  }

  destroy(err?: Error): void {
    if (err) this.error ??= err;
    // A reset rather than a FIN: a peer we drop should notice at once.
    this.sock.resetAndDestroy();
  }
}

function stripV4Mapped(ip: string): string {
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

export class TcpTransport implements Transport {
  private server: net.Server | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  listen(onStream: (s: ByteStream) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((sock) => onStream(new TcpStream(sock)));
      server.once('error', (err: NodeJS.ErrnoException) => {
        const where = `${this.host || '*'}:${this.port}`;
        reject(new Error(err.code === 'EADDRINUSE' ? `port ${where} is already in use` : `cannot listen on ${where}: ${err.message}`));
      });
      server.listen({ host: this.host || undefined, port: this.port }, () => {
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        this.server = server;
        resolve();
      });
    });
  }

  dial(ip: string, port: number, timeoutMs: number): Promise<ByteStream> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: ip, port, localAddress: this.host && this.host !== '0.0.0.0' && this.host !== '::' ? this.host : undefined });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`connect to ${ip}:${port} timed out`));
      }, timeoutMs);
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new TcpStream(sock));
      });
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }
}
