// Counter nonces (see the rules in constants.ts): nonce[0..7] = counter as
// little-endian u64, nonce[8..23] = 0. One Nonce object per sealer or opener,
// rewritten in place, so the hot path allocates nothing.

import { NONCE_BYTES, NONCE_COUNTER_OFFSET } from './constants.js';

const TWO_32 = 0x1_0000_0000;

/** Writes counter (a safe integer >= 0) as a little-endian u64 at buf[at..at+7]. */
export function writeCounterLE(buf: Uint8Array, at: number, counter: number): void {
  writeU32LE(buf, at, counter >>> 0);
  writeU32LE(buf, at + 4, Math.floor(counter / TWO_32));
}

export function writeU32LE(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v & 0xff;
  buf[at + 1] = (v >>> 8) & 0xff;
  buf[at + 2] = (v >>> 16) & 0xff;
  buf[at + 3] = (v >>> 24) & 0xff;
}

export function readU32LE(buf: Uint8Array, at: number): number {
  return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
}

/**
 * A 64-bit counter kept as two u32 halves (no BigInt per message), with its
 * nonce buffer. It never wraps: once 2^64 - 1 has been used it is exhausted.
 */
export class Counter64 {
  readonly nonce = new Uint8Array(NONCE_BYTES);
  private lo: number;
  private hi: number;
  private spent = false;

  constructor(start: bigint) {
    if (typeof start !== 'bigint' || start < 0n || start > 0xffff_ffff_ffff_ffffn) {
      throw new RangeError('counter: must be a bigint in 0..2^64-1');
    }
    this.lo = Number(start & 0xffff_ffffn);
    this.hi = Number(start >> 32n);
    this.writeNonce();
  }

  /** True once every counter value has been used. */
  get exhausted(): boolean {
    return this.spent;
  }

  get value(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }

  /** Moves to the next value and rewrites the nonce; marks exhausted instead of wrapping. */
  advance(): void {
    if (this.lo === 0xffff_ffff) {
      if (this.hi === 0xffff_ffff) {
        this.spent = true;
        return;
      }
      this.lo = 0;
      this.hi++;
    } else {
      this.lo++;
    }
    this.writeNonce();
  }

  private writeNonce(): void {
    writeU32LE(this.nonce, NONCE_COUNTER_OFFSET, this.lo);
    writeU32LE(this.nonce, NONCE_COUNTER_OFFSET + 4, this.hi);
  }
}
