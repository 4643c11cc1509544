// Length-prefixed frames on a byte stream: a 4-byte big-endian length, then
// the payload. The length is checked against the limit before any buffer is
// allocated for the payload, so a hostile peer cannot make us allocate.

export const FRAME_HEADER_BYTES = 4;
/** Largest frame after the handshake. Gossip of a 1000-peer topology fits well within it. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export class FrameTooLarge extends Error {
  constructor(readonly length: number, readonly limit: number) {
    super(`frame of ${length} bytes exceeds the limit of ${limit}`);
    this.name = 'FrameTooLarge';
  }
}

export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Incremental decoder: push stream chunks, get whole frames. `limit` can be
 * lowered (e.g. during the handshake) and raised later.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(public limit = MAX_FRAME_BYTES) {}

  /** Returns the complete frames in `chunk` (and earlier partial data). Throws FrameTooLarge. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: Buffer[] = [];
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) break;
      const length = this.peekLength();
      if (length > this.limit) throw new FrameTooLarge(length, this.limit);
      if (this.buffered < FRAME_HEADER_BYTES + length) break;
      this.consume(FRAME_HEADER_BYTES);
      frames.push(this.consume(length));
    }
    return frames;
  }

  /** Bytes held that do not yet form a frame (used to hand over leftovers). */
  get pendingBytes(): number {
    return this.buffered;
  }

  private peekLength(): number {
    const first = this.chunks[0]!;
    if (first.length >= FRAME_HEADER_BYTES) return first.readUInt32BE(0);
    const head = Buffer.concat(this.chunks, Math.min(this.buffered, 16));
    return head.readUInt32BE(0);
  }

  private consume(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      // Fast path: the whole piece is inside the first chunk.
      const piece = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return piece;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, take);
      filled += take;
      if (take === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(take);
    }
    this.buffered -= n;
    return out;
  }
}
