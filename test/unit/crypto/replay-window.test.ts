// ReplayWindow against a plain Set-based model, driven by fast-check.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DATAGRAM_COUNTER_MAX, ReplayWindow } from '../../../crypto/index.js';

/** The specification, written as simply as possible. */
class ModelWindow {
  private readonly seen = new Set<bigint>();
  private top = -1n;
  constructor(private readonly bits: bigint) {}
  check(c: bigint): boolean {
    if (c > this.top) return true;
    if (this.top - c >= this.bits) return false;
    return !this.seen.has(c);
  }
  accept(c: bigint): void {
    if (c <= this.top && this.top - c >= this.bits) return;
    this.seen.add(c);
    if (c > this.top) this.top = c;
  }
}

type Op = { kind: 'check' | 'accept' | 'receive'; delta: number };

describe('ReplayWindow', () => {
  it('behaves like the Set model for any sequence of operations', () => {
    const op = fc.record({
      kind: fc.constantFrom<Op['kind']>('check', 'accept', 'receive'),
      // Mostly near the top of the window, sometimes far ahead or far behind.
      delta: fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min: -200, max: 40 }) },
        { weight: 1, arbitrary: fc.integer({ min: -5000, max: 5000 }) },
      ),
    });
    fc.assert(
      fc.property(fc.constantFrom(32, 64, 96, 128, 8192), fc.nat(1_000_000), fc.array(op, { maxLength: 400 }), (bits, base, ops) => {
        const real = new ReplayWindow(bits);
        const model = new ModelWindow(BigInt(bits));
        let top = base;
        for (const { kind, delta } of ops) {
          const c = Math.max(0, top + delta);
          const cb = BigInt(c);
          if (kind === 'check') {
            expect(real.check(cb)).toBe(model.check(cb));
          } else if (kind === 'accept') {
            real.accept(cb);
            model.accept(cb);
          } else {
            // What the opener does: check, then accept what passed.
            const ok = real.check(cb);
            expect(ok).toBe(model.check(cb));
            if (ok) {
              real.accept(cb);
              model.accept(cb);
            }
          }
          if (c > top) top = c;
        }
        // Final sweep over everything around the top.
        for (let c = Math.max(0, top - bits - 40); c <= top + 5; c++) {
          expect(real.check(BigInt(c))).toBe(model.check(BigInt(c)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('treats counter 0 as new at first and a replay after accepting it', () => {
    const w = new ReplayWindow(32);
    expect(w.check(0n)).toBe(true);
    w.accept(0n);
    expect(w.check(0n)).toBe(false);
    expect(w.check(1n)).toBe(true);
  });

  it('forgets nothing inside the window after a jump of exactly the window size', () => {
    const w = new ReplayWindow(64);
    for (let c = 0n; c < 64n; c++) w.accept(c);
    w.accept(127n);
    expect(w.check(63n)).toBe(false); // too old now (127 - 63 = 64)
    expect(w.check(64n)).toBe(true); // never seen, still inside
    w.accept(64n);
    expect(w.check(64n)).toBe(false);
  });

  it('refuses counters outside 0..2^53-1', () => {
    const w = new ReplayWindow();
    expect(w.check(-1n)).toBe(false);
    expect(w.check(BigInt(DATAGRAM_COUNTER_MAX) + 1n)).toBe(false);
    expect(() => w.accept(-1n)).toThrow(RangeError);
    expect(() => w.accept(1n << 64n)).toThrow(RangeError);
    w.accept(BigInt(DATAGRAM_COUNTER_MAX));
    expect(w.check(BigInt(DATAGRAM_COUNTER_MAX))).toBe(false);
    expect(w.check(BigInt(DATAGRAM_COUNTER_MAX) - 1n)).toBe(true);
  });

  it('validates its size', () => {
    expect(() => new ReplayWindow(0)).toThrow(/^windowBits: /);
    expect(() => new ReplayWindow(100)).toThrow(/^windowBits: /);
    expect(new ReplayWindow().bits).toBe(8192);
  });
});
