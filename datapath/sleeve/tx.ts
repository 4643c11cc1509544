// Outgoing datagrams assembled into one preallocated buffer and sent with
// one sendBatch: header written into the slot, body sealed into it (one
// AEAD call per run of datagrams for the same session, header length and
// source buffer: the addon seals a whole run per call) or copied when the
// session is plain. Nothing is allocated per datagram.

import type { DatagramBatch, DatagramSocket } from '../io/types.js';
import type { SleeveSession } from './session.js';
import { SEAL_OVERHEAD, writeHeader } from './wire.js';

export class TxQueue {
  readonly batch: DatagramBatch;
  private readonly slot: number;
  private readonly cap: number;
  private readonly srcOffs: Uint32Array;
  private readonly srcLens: Uint32Array;
  private readonly dstOffs: Uint32Array;
  private readonly hdrLens: Uint8Array;
  private readonly status: Int32Array;
  private readonly sessions: (SleeveSession | null)[];
  private readonly srcBufs: (Uint8Array | null)[];
  /** Datagrams dropped because sealing failed (a bounds bug; counted, never thrown). */
  sealFailures = 0;

  /**
   * copyBodies: copy each body into its slot when queued (and seal it in
   * place), so callers may reuse their buffer at once (control datagrams,
   * relays, broadcasts). Without it the body is sealed straight from the
   * caller's buffer at flush (the frame path: no copy).
   */
  constructor(
    private readonly socket: () => DatagramSocket | undefined,
    maxBody: number,
    capacity: number,
    private readonly copyBodies = false,
  ) {
    // Room for the largest header, the seal and the body, rounded to a cache line.
    this.slot = Math.ceil((maxBody + 32 + SEAL_OVERHEAD) / 64) * 64;
    this.cap = capacity;
    this.batch = { buf: Buffer.alloc(this.slot * capacity), offs: new Uint32Array(capacity), lens: new Uint32Array(capacity), addrs: new Uint32Array(2 * capacity), count: 0 };
    this.srcOffs = new Uint32Array(capacity);
    this.srcLens = new Uint32Array(capacity);
    this.dstOffs = new Uint32Array(capacity);
    this.hdrLens = new Uint8Array(capacity);
    this.status = new Int32Array(capacity);
    this.sessions = new Array<SleeveSession | null>(capacity).fill(null);
    this.srcBufs = new Array<Uint8Array | null>(capacity).fill(null);
  }

  get count(): number {
    return this.batch.count;
  }

  /**
   * Queue a datagram to `s` (which must be ready) with `body` = src[off, off+len).
   * `src` must stay unchanged until flush(). Returns false when the body is too large.
   */
  queue(s: SleeveSession, type: number, flags: number, ttl: number, src: number, dst: number, origin: number, body: Uint8Array, off: number, len: number): boolean {
    if (len + SEAL_OVERHEAD + 32 > this.slot) return false;
    if (this.batch.count === this.cap) this.flush();
    const i = this.batch.count++;
    const base = i * this.slot;
    const b = this.batch;
    const hdr = writeHeader(b.buf, base, type, flags, ttl, s.remoteIndex, src, dst, origin);
    b.offs[i] = base;
    b.addrs[2 * i] = s.ipU32;
    b.addrs[2 * i + 1] = s.port;
    if (s.sealer) {
      this.sessions[i] = s;
      if (this.copyBodies) {
        // In place: plaintext where the ciphertext goes (after the 8-byte counter).
        b.buf.set(body.subarray(off, off + len), base + hdr + 8);
        this.srcBufs[i] = b.buf;
        this.srcOffs[i] = base + hdr + 8;
      } else {
        this.srcBufs[i] = body;
        this.srcOffs[i] = off;
      }
      this.srcLens[i] = len;
      this.dstOffs[i] = base + hdr;
      this.hdrLens[i] = hdr;
      b.lens[i] = 0; // set when sealed
    } else {
      this.sessions[i] = null;
      this.srcBufs[i] = null;
      b.buf.set(body.subarray(off, off + len), base + hdr);
      b.lens[i] = hdr + len;
    }
    return true;
  }

  /** Seal what is pending and send everything queued; returns the datagrams the kernel took. */
  flush(): number {
    const b = this.batch;
    const n = b.count;
    if (n === 0) return 0;
    // Seal runs of consecutive datagrams that share session, header length and source buffer.
    let i = 0;
    while (i < n) {
      const s = this.sessions[i];
      if (!s) {
        i++;
        continue;
      }
      const src = this.srcBufs[i]!;
      const hdr = this.hdrLens[i]!;
      let j = i + 1;
      while (j < n && this.sessions[j] === s && this.srcBufs[j] === src && this.hdrLens[j] === hdr) j++;
      // A run from the start (the usual case: one peer) needs no subarray views (no allocation).
      const at0 = i === 0;
      s.sealer!.seal(
        src,
        at0 ? this.srcOffs : this.srcOffs.subarray(i, j),
        at0 ? this.srcLens : this.srcLens.subarray(i, j),
        j - i,
        b.buf,
        at0 ? this.dstOffs : this.dstOffs.subarray(i, j),
        at0 ? this.status : this.status.subarray(i, j),
        hdr,
      );
      for (let k = i; k < j; k++) {
        const r = this.status[k]!;
        b.lens[k] = r > 0 ? hdr + r : 0;
        if (r <= 0) this.sealFailures++;
        this.sessions[k] = null;
        this.srcBufs[k] = null;
      }
      i = j;
    }
    // Drop failed seals (length 0) by compacting.
    let m = 0;
    for (let k = 0; k < n; k++) {
      if (b.lens[k] === 0) continue;
      if (m !== k) {
        b.offs[m] = b.offs[k]!;
        b.lens[m] = b.lens[k]!;
        b.addrs[2 * m] = b.addrs[2 * k]!;
        b.addrs[2 * m + 1] = b.addrs[2 * k + 1]!;
      }
      m++;
    }
    b.count = m;
    const sock = this.socket();
    const sent = sock && m ? sock.sendBatch(b) : 0;
    b.count = 0;
    return sent;
  }
}
