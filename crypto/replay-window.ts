// Sliding anti-replay window over datagram counters (the bitmap scheme of
// RFC 6479, as in WireGuard and IPsec). It remembers which of the last `bits`
// counter values below the highest accepted one have been seen.
//
// Rules, in the order the opener applies them:
//   counter > highest accepted          -> new (would move the window forward)
//   highest - counter >= bits           -> too old
//   bit for counter set                 -> replay
//   otherwise                           -> new
// accept() is called only after the datagram authenticated, so a forged
// datagram with a huge counter can never move the window and lock the real
// sender out.
//
// The bitmap is a ring of bits/32 + 1 32-bit words: one word more than the
// window needs, so the word holding the highest counter never shares storage
// with the oldest word still in the window.

import { DATAGRAM_COUNTER_MAX, REPLAY_WINDOW_BITS } from './constants.js';

export const VERDICT_NEW = 0;
export const VERDICT_REPLAY = 1;
export const VERDICT_TOO_OLD = 2;
export type ReplayVerdict = typeof VERDICT_NEW | typeof VERDICT_REPLAY | typeof VERDICT_TOO_OLD;

const MIN_BITS = 32;
const MAX_BITS = 1 << 24;

export class ReplayWindow {
  readonly bits: number;
  private readonly ring: Uint32Array;
  /** Highest accepted counter, -1 before the first. */
  private top = -1;

  constructor(bits: number = REPLAY_WINDOW_BITS) {
    if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS || bits % 32 !== 0) {
      throw new RangeError(`windowBits: must be a multiple of 32 in ${MIN_BITS}..${MAX_BITS}, got ${bits}`);
    }
    this.bits = bits;
    this.ring = new Uint32Array(bits / 32 + 1);
  }

  /** True if counter is new: never accepted and not below the window. */
  check(counter: bigint): boolean {
    const c = toSafeCounter(counter);
    return c !== null && this.verdict(c) === VERDICT_NEW;
  }

  /** Records counter as seen (call after it authenticated). A counter below the window is ignored. */
  accept(counter: bigint): void {
    const c = toSafeCounter(counter);
    if (c === null) throw new RangeError(`counter: must be in 0..${DATAGRAM_COUNTER_MAX}`);
    this.acceptSafe(c);
  }

  /** check() for a counter already known to be a safe integer >= 0 (hot path, no BigInt). */
  verdict(c: number): ReplayVerdict {
    if (c > this.top) return VERDICT_NEW;
    if (this.top - c >= this.bits) return VERDICT_TOO_OLD;
    const word = this.ring[Math.floor(c / 32) % this.ring.length]!;
    return (word >>> (c & 31)) & 1 ? VERDICT_REPLAY : VERDICT_NEW;
  }

  /** accept() for a safe integer >= 0 (hot path). */
  acceptSafe(c: number): void {
    const n = this.ring.length;
    if (c > this.top) {
      // Clear the words that enter the window; at most the whole ring.
      const oldWord = this.top < 0 ? -1 : Math.floor(this.top / 32);
      const newWord = Math.floor(c / 32);
      const entering = Math.min(newWord - oldWord, n);
      for (let i = 1; i <= entering; i++) this.ring[(oldWord + i) % n] = 0;
      this.top = c;
    } else if (this.top - c >= this.bits) {
      return;
    }
    const idx = Math.floor(c / 32) % n;
    this.ring[idx] = this.ring[idx]! | (1 << (c & 31));
  }
}

function toSafeCounter(counter: bigint): number | null {
  if (typeof counter !== 'bigint' || counter < 0n || counter > BigInt(DATAGRAM_COUNTER_MAX)) return null;
  return Number(counter);
}
