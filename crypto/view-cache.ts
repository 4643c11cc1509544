// Reusable subarray views for the hot path. sodium-native takes whole typed
// arrays, so sealing a range of a caller's buffer needs a view of exactly that
// range; creating one per datagram is a small heap object per call and, at
// ~1M datagrams/s, a young-generation GC every few milliseconds. The sleeve
// seals and opens the same ranges of the same buffers over and over (a few
// distinct lengths: full-size segments, ACKs), so a small direct-mapped cache
// of views, keyed by (buffer, offset, length), makes the steady state
// allocation-free. It holds at most SLOTS buffer references.

const SLOTS = 32; // power of two

export class ViewCache {
  private readonly bufs: (Uint8Array | null)[] = new Array<Uint8Array | null>(SLOTS).fill(null);
  private readonly offsets = new Float64Array(SLOTS);
  private readonly views: (Uint8Array | null)[] = new Array<Uint8Array | null>(SLOTS).fill(null);

  /** buf[offset, offset + length) as a view, the same object as last time when possible. */
  view(buf: Uint8Array, offset: number, length: number): Uint8Array {
    const slot = (length ^ (offset << 4)) & (SLOTS - 1);
    const cached = this.views[slot];
    if (cached !== null && cached !== undefined && this.bufs[slot] === buf && this.offsets[slot] === offset && cached.length === length) {
      return cached;
    }
    const fresh = buf.subarray(offset, offset + length);
    this.bufs[slot] = buf;
    this.offsets[slot] = offset;
    this.views[slot] = fresh;
    return fresh;
  }
}
