// The ring CRDT's merge: commutative, associative, idempotent, over random
// records, rings, removals and resolutions (including conflicting copies).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digest, mergeItems, ringView, winningRing, genesisShares, type StateItems } from '../../../router/ipam/state.js';
import { emptyState, type GossipState } from '../../../router/ipam/types.js';
import { items, RANGE } from './arbitraries.js';
import { size } from '../../../router/ipam/ranges.js';
import { parseCidr } from '../../../router/ipam/addr.js';

function build(...parts: StateItems[]): GossipState {
  const s = emptyState();
  for (const p of parts) mergeItems(s, p);
  return s;
}

describe('ring CRDT merge', () => {
  it('is commutative', () => {
    fc.assert(fc.property(items, items, (a, b) => digest(build(a, b)) === digest(build(b, a))));
  });

  it('is associative (merging merged states)', () => {
    fc.assert(
      fc.property(items, items, items, (a, b, c) => {
        const left = build(a, b);
        const leftAll = { records: [...left.records.values()], geneses: [...left.geneses.values()], removals: [...left.removals.values()], resolutions: [...left.resolutions.values()] };
        const right = build(b, c);
        const rightAll = { records: [...right.records.values()], geneses: [...right.geneses.values()], removals: [...right.removals.values()], resolutions: [...right.resolutions.values()] };
        return digest(build(leftAll, c)) === digest(build(a, rightAll));
      }),
    );
  });

  it('is idempotent, and the delta is empty when nothing is new', () => {
    fc.assert(
      fc.property(items, (a) => {
        const s = build(a);
        const d = digest(s);
        const delta = mergeItems(s, a);
        return digest(s) === d && delta.records.length + delta.geneses.length + delta.removals.length + delta.resolutions.length === 0;
      }),
    );
  });

  it('is insensitive to the order of items inside one update', () => {
    fc.assert(
      fc.property(items, fc.integer(), (a, seed) => {
        const shuffle = <T>(xs: T[]) => [...xs].sort((x, y) => ((JSON.stringify(x).length * 31 + seed) % 7) - ((JSON.stringify(y).length * 31 + seed) % 7));
        const b = { records: shuffle(a.records), geneses: shuffle(a.geneses), removals: shuffle(a.removals), resolutions: shuffle(a.resolutions) };
        return digest(build(a)) === digest(build(b));
      }),
    );
  });
});

describe('rings', () => {
  it('the older claim wins a split brain, then the smaller id', () => {
    const s = build({ records: [], removals: [], resolutions: [], geneses: [
      { id: 'zz', createdAt: 5, claimants: ['a'], mode: 'consensus' },
      { id: 'yy', createdAt: 9, claimants: ['b'], mode: 'consensus' },
      { id: 'aa', createdAt: 5, claimants: ['c'], mode: 'consensus' },
    ] });
    expect(winningRing(s)!.id).toBe('aa');
  });

  it('splits the range evenly and completely among claimants', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), fc.integer({ min: 16, max: 30 }), (k, prefix) => {
        const range = parseCidr(`10.0.0.0/${prefix}`);
        const names = Array.from({ length: k }, (_, i) => `p${String(i).padStart(2, '0')}`);
        const shares = [...genesisShares(range, names).values()].flat();
        const total = shares.reduce((n, r) => n + r.end - r.start, 0);
        const sizes = [...genesisShares(range, names).values()].map(size);
        return total === range.end - range.start && Math.max(...sizes) - Math.min(...sizes) <= 1;
      }),
    );
  });

  it('shows claimants that have not written a record by their share', () => {
    const s = build({ records: [], removals: [], resolutions: [], geneses: [{ id: 'r1', createdAt: 1, claimants: ['aa', 'bb'], mode: 'consensus' }] });
    const view = ringView(s, RANGE, 'r1');
    expect(view.segments.map((x) => [x.owner, x.end - x.start])).toEqual([
      ['aa', 32],
      ['bb', 32],
    ]);
    expect(view.overlaps).toEqual([]);
  });
});
