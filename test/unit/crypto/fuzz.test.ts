// Random and mutated bytes into every open function: never a throw, never data.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { DATAGRAM_OVERHEAD, DatagramOpener, DatagramSealer, FrameOpener, FrameSealer } from '../../../crypto/index.js';
import { bytes, eachBackend } from './backends.js';
import { mutation } from '../../fuzz/mutate.js';

const FAILURES = ['truncated', 'auth', 'replay', 'too-old'];

eachBackend('fuzz', () => {
  const key = bytes(32, 11);

  it('FrameOpener.open returns null for random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (junk) => {
        const o = new FrameOpener(key);
        expect(o.open(junk)).toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it('FrameOpener.open returns null for mutated frames, and the real one still opens', () => {
    const valid = new FrameSealer(key).seal(bytes(60));
    fc.assert(
      fc.property(mutation(valid), (bad) => {
        const o = new FrameOpener(key);
        expect(o.open(bad)).toBeNull();
        expect(o.open(valid)).not.toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it('DatagramOpener.openInto reports a failure for random bytes and counts it', () => {
    const out = new Uint8Array(400);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(16), (junk, pad) => {
        const o = new DatagramOpener(key);
        const buf = new Uint8Array(junk.length + pad);
        buf.set(junk, pad);
        const r = o.openInto(out, 0, buf, pad, junk.length);
        expect(FAILURES).toContain(r);
        expect(Object.values(o.stats).reduce((a, b) => a + b, 0)).toBe(1);
      }),
      { numRuns: 500 },
    );
  });

  it('DatagramOpener.openInto refuses mutated datagrams and still opens the real one after', () => {
    const valid = new DatagramSealer(key, 77).seal(bytes(80));
    const out = new Uint8Array(200);
    fc.assert(
      fc.property(mutation(valid), (bad) => {
        const o = new DatagramOpener(key);
        const r = o.openInto(out, 0, bad, 0, bad.length);
        expect(FAILURES).toContain(r);
        expect(o.openInto(out, 0, valid, 0, valid.length)).toBe(80);
      }),
      { numRuns: 500 },
    );
  });

  it('DatagramOpener never returns data from a stream of junk mixed with replays', () => {
    const s = new DatagramSealer(key);
    const real = Array.from({ length: 20 }, (_, i) => s.seal(bytes(30, i)));
    const out = new Uint8Array(100);
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 80 }), fc.constantFrom(...real)), { maxLength: 60 }),
        (stream) => {
          const o = new DatagramOpener(key, 32);
          const opened = new Set<Uint8Array>();
          for (const d of stream) {
            const r = o.openInto(out, 0, d, 0, d.length);
            if (typeof r === 'number') {
              expect(real).toContain(d); // only genuine datagrams open...
              expect(opened.has(d)).toBe(false); // ...and each at most once
              opened.add(d);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the overhead constant honest', () => {
    expect(new DatagramSealer(key).seal(new Uint8Array(5))).toHaveLength(5 + DATAGRAM_OVERHEAD);
  });
});
