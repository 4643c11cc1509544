// Pull-style reads over a push-style ByteStream, for the handshake, which
// reads a fixed header and then a few frames before the connection switches
// to push-style frame handling. Leftover bytes are handed over, not lost.

import type { ByteStream } from './transport.js';
import { FrameDecoder } from './wire/framing.js';

export class StreamClosed extends Error {
  constructor(cause?: Error) {
    super(cause ? `connection closed: ${cause.message}` : 'connection closed by peer');
    this.name = 'StreamClosed';
  }
}

export class StreamReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: (() => void) | undefined;
  private closedWith: StreamClosed | undefined;
  private readonly decoder = new FrameDecoder();
  private frames: Buffer[] = [];
  private sink: { onChunk(c: Buffer): void; onClose(err?: Error): void } | undefined;

  constructor(stream: ByteStream) {
    // The reader owns the stream's events for the stream's whole life; after
    // the handshake it forwards them to the connection (see handOver).
    stream.onData((chunk) => {
      if (this.sink) return this.sink.onChunk(chunk);
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.wake();
    });
    stream.onClose((err) => {
      if (this.sink) return this.sink.onClose(err);
      this.closedWith = new StreamClosed(err);
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private async waitMore(): Promise<void> {
    if (this.closedWith) throw this.closedWith;
    await new Promise<void>((r) => (this.waiter = r));
  }

  async readExact(n: number): Promise<Buffer> {
    while (this.buffered < n) await this.waitMore();
    const all = Buffer.concat(this.chunks);
    this.chunks = all.length > n ? [all.subarray(n)] : [];
    this.buffered -= n;
    return all.subarray(0, n);
  }

  /** The next length-prefixed frame, refusing any larger than `limit`. */
  async readFrame(limit: number): Promise<Buffer> {
    this.decoder.limit = limit;
    for (;;) {
      if (this.frames.length > 0) return this.frames.shift()!;
      if (this.buffered > 0) {
        const chunk = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
        this.chunks = [];
        this.buffered = 0;
        this.frames.push(...this.decoder.push(chunk));
        continue;
      }
      await this.waitMore();
    }
  }

  /**
   * Switch to push mode: from now on chunks and the close go to `sink`.
   * Returns what was read past the last consumed frame: whole frames, the
   * decoder holding any partial frame, and undecoded raw bytes — in that order.
   */
  handOver(sink: { onChunk(c: Buffer): void; onClose(err?: Error): void }): { frames: Buffer[]; decoder: FrameDecoder; raw: Buffer[]; closed: boolean } {
    const out = { frames: this.frames, decoder: this.decoder, raw: this.chunks, closed: this.closedWith !== undefined };
    this.frames = [];
    this.chunks = [];
    this.buffered = 0;
    this.sink = sink;
    return out;
  }
}
