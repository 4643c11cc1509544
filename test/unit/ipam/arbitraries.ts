// fast-check arbitraries for IPAM state: small peer and address spaces so
// random updates collide often.
import fc from 'fast-check';
import { parseCidr } from '../../../router/ipam/addr.js';
import { fromAddresses } from '../../../router/ipam/ranges.js';
import type { Genesis, PeerRecord, Removal, Resolution, Transfer } from '../../../router/ipam/types.js';

export const RANGE = parseCidr('10.0.0.0/26');
export const peerName = fc.constantFrom('aa', 'bb', 'cc', 'dd');
export const ringId = fc.constantFrom('r1', 'r2', 'seed-x');

export const rangeSet = fc.uniqueArray(fc.integer({ min: RANGE.start, max: RANGE.end - 1 }), { maxLength: 12 }).map(fromAddresses);
const nonEmptyRangeSet = fc.uniqueArray(fc.integer({ min: RANGE.start, max: RANGE.end - 1 }), { minLength: 1, maxLength: 6 }).map(fromAddresses);

export const transfer: fc.Arbitrary<Transfer> = fc.record({ seq: fc.integer({ min: 1, max: 5 }), to: peerName, ranges: nonEmptyRangeSet });

export const record: fc.Arbitrary<PeerRecord> = fc
  .record({
    peer: peerName,
    nickname: fc.constantFrom('h1', 'h2', ''),
    version: fc.integer({ min: 0, max: 6 }),
    ring: fc.option(ringId, { nil: null }),
    mode: fc.constantFrom('consensus' as const, 'seed' as const, 'observer' as const),
    quorum: fc.integer({ min: 0, max: 5 }),
    ranges: rangeSet,
    inUse: rangeSet,
    free: fc.integer({ min: 0, max: 64 }),
    outgoing: fc.array(transfer, { maxLength: 2 }),
    adopted: fc.array(fc.tuple(peerName, fc.integer({ min: 0, max: 9 })), { maxLength: 3 }).map((xs) => new Map(xs)),
    retired: fc.boolean(),
    rehomedFrom: fc.option(ringId, { nil: null }),
  })
  .map((r) => ({ ...r, transferSeq: Math.max(5, ...r.outgoing.map((t) => t.seq)) }));

export const genesis: fc.Arbitrary<Genesis> = fc.record({
  id: ringId,
  createdAt: fc.integer({ min: 0, max: 3 }),
  claimants: fc.uniqueArray(peerName, { minLength: 1, maxLength: 3 }).map((c) => c.sort()),
  mode: fc.constantFrom('consensus' as const, 'seed' as const),
});

export const removal: fc.Arbitrary<Removal> = fc
  .record({ frozen: record, ring: ringId, after: fc.integer({ min: -1, max: 2 }), heirs: fc.array(fc.record({ to: peerName, ranges: nonEmptyRangeSet }), { maxLength: 2 }), proposer: peerName, at: fc.nat(10) })
  .map((r) => ({
    ...r,
    target: r.frozen.peer,
    heirs: r.heirs.map((h, i) => ({ ...h, seq: r.frozen.transferSeq + 1 + i })),
  }));

export const resolution: fc.Arbitrary<Resolution> = fc.record({
  id: fc.constantFrom('res1', 'res2'),
  keeper: peerName,
  decisions: fc.array(fc.record({ loser: peerName, version: fc.nat(6), addresses: nonEmptyRangeSet }), { maxLength: 2 }),
  by: peerName,
  at: fc.nat(10),
});

export const items = fc.record({
  records: fc.array(record, { maxLength: 4 }),
  geneses: fc.array(genesis, { maxLength: 2 }),
  removals: fc.array(removal, { maxLength: 2 }),
  resolutions: fc.array(resolution, { maxLength: 1 }),
});
