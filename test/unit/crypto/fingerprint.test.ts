import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { hashFields, SetHash } from '../../../crypto/fingerprint.js';

const item = fc.record({ peer: fc.string({ maxLength: 17 }), version: fc.nat() });
const fp = (items: { peer: string; version: number }[]): [number, number] => {
  const h = new SetHash();
  for (const i of items) h.add(hashFields(i.peer, i.version));
  return h.value();
};

describe('state fingerprints', () => {
  it('do not depend on order', () => {
    fc.assert(
      fc.property(fc.array(item, { maxLength: 40 }), fc.nat(), (items, seed) => {
        const shuffled = [...items].sort((a, b) => hashFields(a.peer, a.version, seed) - hashFields(b.peer, b.version, seed));
        expect(fp(shuffled)).toEqual(fp(items));
      }),
    );
  });

  it('change when any one version changes, an item is added or one is dropped', () => {
    fc.assert(
      fc.property(fc.uniqueArray(item, { minLength: 1, maxLength: 40, selector: (i) => i.peer }), fc.nat(), (items, k) => {
        const at = k % items.length;
        const bumped = items.map((x, i) => (i === at ? { ...x, version: x.version + 1 } : x));
        expect(fp(bumped)).not.toEqual(fp(items));
        expect(fp(items.slice(1))).not.toEqual(fp(items));
        expect(fp([...items, { peer: 'new-peer-x', version: 1 }])).not.toEqual(fp(items));
      }),
    );
  });

  it('tell apart the fields of one item (a, b) from (b, a) and 2^32 + v from v', () => {
    expect(hashFields('a', 'b')).not.toBe(hashFields('b', 'a'));
    expect(hashFields(2 ** 32 + 5)).not.toBe(hashFields(5));
    expect(hashFields(1n << 40n)).not.toBe(hashFields(0n));
  });
});
