import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { addresses, contains, fromAddresses, intersect, isNormalized, normalize, size, subtract, union } from '../../../router/ipam/ranges.js';
import { freeSpace, pickAddress, pickDonation } from '../../../router/ipam/allocations.js';
import { parseCidr } from '../../../router/ipam/addr.js';

const smallSet = fc.uniqueArray(fc.integer({ min: 0, max: 63 }), { maxLength: 40 });

describe('range sets (against a naive set model)', () => {
  it('normalize, union, subtract, intersect, contains agree with sets of addresses', () => {
    fc.assert(
      fc.property(smallSet, smallSet, fc.integer({ min: 0, max: 63 }), (a, b, probe) => {
        const A = fromAddresses(a);
        const B = fromAddresses(b);
        expect(isNormalized(A)).toBe(true);
        const setA = new Set(a);
        const setB = new Set(b);
        const u = union(A, B);
        const s = subtract(A, B);
        const i = intersect(A, B);
        for (const r of [u, s, i]) expect(isNormalized(r)).toBe(true);
        expect(new Set(addresses(u))).toEqual(new Set([...setA, ...setB]));
        expect(new Set(addresses(s))).toEqual(new Set([...setA].filter((x) => !setB.has(x))));
        expect(new Set(addresses(i))).toEqual(new Set([...setA].filter((x) => setB.has(x))));
        expect(contains(A, probe)).toBe(setA.has(probe));
        expect(size(A)).toBe(setA.size);
      }),
    );
  });

  it('normalize merges adjacent and overlapping ranges', () => {
    expect(normalize([{ start: 5, end: 7 }, { start: 1, end: 3 }, { start: 3, end: 5 }, { start: 9, end: 9 }])).toEqual([{ start: 1, end: 7 }]);
  });
});

describe('choosing addresses and donations', () => {
  const range = parseCidr('10.0.0.0/28');
  it('never hands out the network or broadcast address', () => {
    const free = freeSpace([{ start: range.start, end: range.end }], [], [], range);
    expect(size(free)).toBe(14);
    expect(pickAddress(free, range, 0)).toBe(range.start + 1);
  });

  it('moves on from the last address instead of reusing a released one at once', () => {
    const free = freeSpace([{ start: range.start, end: range.end }], fromAddresses([range.start + 2]), [], range);
    expect(pickAddress(free, range, range.start + 3)).toBe(range.start + 3);
    expect(pickAddress(free, range, range.end)).toBe(range.start + 1); // wraps
  });

  it('respects a subnet and others\' in-use addresses', () => {
    const sub = parseCidr('10.0.0.8/30');
    const free = freeSpace([{ start: range.start, end: range.end }], [], fromAddresses([range.start + 9]), range);
    expect(pickAddress(free, sub, 0)).toBe(range.start + 10); // .8 network, .9 used elsewhere
  });

  it('donates at most half of the free space, from the top of the largest run', () => {
    const free = [{ start: 0, end: 10 }, { start: 20, end: 24 }];
    expect(pickDonation(free, { start: 0, end: 100 })).toEqual({ start: 3, end: 10 });
    expect(pickDonation([{ start: 5, end: 6 }], { start: 0, end: 100 })).toEqual({ start: 5, end: 6 });
    expect(pickDonation(free, { start: 30, end: 40 })).toBeUndefined();
  });
});
