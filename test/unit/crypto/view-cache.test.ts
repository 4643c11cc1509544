import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ViewCache } from '../../../crypto/view-cache.js';

describe('ViewCache', () => {
  it('always returns a view of exactly the asked range', () => {
    const bufs = [new Uint8Array(100), new Uint8Array(100), new Uint8Array(3000)];
    fc.assert(
      fc.property(
        fc.array(fc.record({ b: fc.nat(2), offset: fc.nat(3000), length: fc.nat(3000) }), { maxLength: 200 }),
        (reqs) => {
          const cache = new ViewCache();
          for (const { b, offset, length } of reqs) {
            const buf = bufs[b]!;
            const o = offset % (buf.length + 1);
            const n = length % (buf.length - o + 1);
            const v = cache.view(buf, o, n);
            expect(v.buffer).toBe(buf.buffer);
            expect(v.byteOffset).toBe(buf.byteOffset + o);
            expect(v.length).toBe(n);
          }
        },
      ),
    );
  });

  it('returns the same view object for a repeated range, and a new one for another buffer', () => {
    const cache = new ViewCache();
    const a = new Uint8Array(2000);
    const v1 = cache.view(a, 24, 1400);
    expect(cache.view(a, 24, 1400)).toBe(v1);
    cache.view(a, 24, 60); // an ACK-sized range in between does not evict it
    expect(cache.view(a, 24, 1400)).toBe(v1);
    const b = new Uint8Array(2000);
    const v2 = cache.view(b, 24, 1400);
    expect(v2).not.toBe(v1);
    expect(v2.buffer).toBe(b.buffer);
  });
});
