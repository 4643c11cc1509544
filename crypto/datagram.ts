// Sealing for sleeve datagrams (UDP: lost, duplicated and reordered freely).
//
// Wire form:  counter (8, u64 little-endian, clear) | MAC (16) | ciphertext
//
// The counter is the nonce (constants.ts), so altering it makes the datagram
// fail to authenticate. The opener checks, in this order and before any
// crypto: length, counter range, replay window; then authenticates and only
// then records the counter. Neither side allocates per datagram in the steady
// state: callers pass their own buffers, the nonce buffer is reused, and the
// views sodium needs come from a ViewCache.

import { backend, type CryptoBackend } from './backend.js';
import {
  COUNTER_BYTES,
  DATAGRAM_COUNTER_MAX,
  DATAGRAM_COUNTER_OFFSET,
  DATAGRAM_OVERHEAD,
  NONCE_BYTES,
  NONCE_COUNTER_OFFSET,
  REPLAY_WINDOW_BITS,
} from './constants.js';
import { readU32LE, writeCounterLE } from './nonce.js';
import { checkKey } from './password.js';
import { ReplayWindow, VERDICT_NEW, VERDICT_REPLAY } from './replay-window.js';
import { ViewCache } from './view-cache.js';

/** Highest valid value of a counter's upper 32 bits (counters stay below 2^53). */
const COUNTER_HI_MAX = Math.floor(DATAGRAM_COUNTER_MAX / 0x1_0000_0000);

export type OpenFailure = 'truncated' | 'auth' | 'replay' | 'too-old';

export class DatagramSealer {
  private readonly b: CryptoBackend = backend();
  private readonly key: Uint8Array;
  private readonly nonce = new Uint8Array(NONCE_BYTES);
  private readonly sealedViews = new ViewCache();
  private readonly plainViews = new ViewCache();
  private counter: number;

  /** startCounter is for tests; a connection always starts at 0 with a fresh key. */
  constructor(key: Uint8Array, startCounter = 0) {
    checkKey(key, 'key');
    if (!Number.isSafeInteger(startCounter) || startCounter < 0) {
      throw new RangeError('startCounter: must be a safe integer >= 0');
    }
    this.key = key.slice();
    this.counter = startCounter;
  }

  /**
   * Seals plain[plainOffset, +plainLength) into out at outOffset and returns
   * the bytes written (plainLength + DATAGRAM_OVERHEAD). The two ranges may
   * share a buffer, in particular in place: read a frame to
   * buf[DATAGRAM_OVERHEAD..] and seal it to buf[0..]. Throws RangeError for
   * ranges out of bounds and once the counter is spent (2^53 datagrams).
   */
  sealInto(out: Uint8Array, outOffset: number, plain: Uint8Array, plainOffset: number, plainLength: number): number {
    checkRange(plain, plainOffset, plainLength, 'plain');
    const total = plainLength + DATAGRAM_OVERHEAD;
    checkRange(out, outOffset, total, 'out');
    if (this.counter > DATAGRAM_COUNTER_MAX) {
      throw new RangeError('DatagramSealer: nonce counter exhausted, reconnect to re-key');
    }
    writeCounterLE(this.nonce, NONCE_COUNTER_OFFSET, this.counter);
    this.b.secretboxSeal(
      this.sealedViews.view(out, outOffset + COUNTER_BYTES, total - COUNTER_BYTES),
      this.plainViews.view(plain, plainOffset, plainLength),
      this.nonce,
      this.key,
    );
    // Written after sealing, so a plaintext that overlapped these bytes was read first.
    for (let i = 0; i < COUNTER_BYTES; i++) out[outOffset + DATAGRAM_COUNTER_OFFSET + i] = this.nonce[NONCE_COUNTER_OFFSET + i]!;
    this.counter++;
    return total;
  }

  /** Convenience (allocates): the sealed datagram for plain. */
  seal(plain: Uint8Array): Uint8Array {
    const out = new Uint8Array(plain.length + DATAGRAM_OVERHEAD);
    this.sealInto(out, 0, plain, 0, plain.length);
    return out;
  }
}

export class DatagramOpener {
  /** Datagrams dropped, by reason. */
  readonly stats: Record<OpenFailure, number> = { truncated: 0, auth: 0, replay: 0, 'too-old': 0 };
  private readonly b: CryptoBackend = backend();
  private readonly key: Uint8Array;
  private readonly nonce = new Uint8Array(NONCE_BYTES);
  private readonly window: ReplayWindow;
  private readonly plainViews = new ViewCache();
  private readonly sealedViews = new ViewCache();

  constructor(key: Uint8Array, windowBits: number = REPLAY_WINDOW_BITS) {
    checkKey(key, 'key');
    this.key = key.slice();
    this.window = new ReplayWindow(windowBits);
  }

  /**
   * Opens datagram[offset, +length) into out at outOffset. Returns the
   * plaintext length, or why it was dropped (also counted in stats):
   *   'truncated' shorter than DATAGRAM_OVERHEAD, or its plaintext does not fit in out
   *   'auth'      not sealed with our peer's key (forged, altered, wrong key)
   *   'replay'    this counter was already accepted
   *   'too-old'   the counter is below the replay window
   * Never throws for any datagram content; throws RangeError only when
   * offset/length or outOffset lie outside the given buffers (a caller bug).
   * out may overlap the datagram (in place: outOffset = offset + DATAGRAM_OVERHEAD).
   */
  openInto(out: Uint8Array, outOffset: number, datagram: Uint8Array, offset: number, length: number): number | OpenFailure {
    checkRange(datagram, offset, length, 'datagram');
    checkRange(out, outOffset, 0, 'out');
    if (length < DATAGRAM_OVERHEAD) return this.fail('truncated');
    const plainLength = length - DATAGRAM_OVERHEAD;
    if (outOffset + plainLength > out.length) return this.fail('truncated');

    const at = offset + DATAGRAM_COUNTER_OFFSET;
    const lo = readU32LE(datagram, at);
    const hi = readU32LE(datagram, at + 4);
    if (hi > COUNTER_HI_MAX) return this.fail('auth'); // no sealer of ours goes there
    const counter = hi * 0x1_0000_0000 + lo;

    const verdict = this.window.verdict(counter);
    if (verdict !== VERDICT_NEW) return this.fail(verdict === VERDICT_REPLAY ? 'replay' : 'too-old');

    writeCounterLE(this.nonce, NONCE_COUNTER_OFFSET, counter);
    const ok = this.b.secretboxOpen(
      this.plainViews.view(out, outOffset, plainLength),
      this.sealedViews.view(datagram, offset + COUNTER_BYTES, length - COUNTER_BYTES),
      this.nonce,
      this.key,
    );
    if (!ok) return this.fail('auth');
    this.window.acceptSafe(counter);
    return plainLength;
  }

  private fail(reason: OpenFailure): OpenFailure {
    this.stats[reason]++;
    return reason;
  }
}

function checkRange(buf: Uint8Array, offset: number, length: number, what: string): void {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${what}: must be a Uint8Array`);
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > buf.length) {
    throw new RangeError(`${what}: range ${offset}+${length} outside a buffer of ${buf.length} bytes`);
  }
}
