// What a removal (rmpeer) gives away and to whom. Pure: the proposer computes
// it once, Paxos makes every peer agree on that one value.
import type { PeerName } from '../../mesh/types.js';
import type { Cidr } from './addr.js';
import { type Range, intersect, normalize, subtract } from './ranges.js';
import { lastRemoval, ownerIn, ringRecords, ringView } from './state.js';
import type { GossipState, PeerRecord, Removal, RingId, Transfer } from './types.js';

/**
 * Everything `frozen`'s peer holds at removal time:
 *  - its ranges;
 *  - transfers it issued that their recipient will never adopt (recipient
 *    removed, retired, gone to another ring, or removed in the same command);
 *  - transfers issued to it by donors already removed, unless the donor's
 *    removal already gave them to heirs.
 * A transfer between two dead peers thus belongs to exactly one removal.
 */
export function removalHoldings(
  state: GossipState,
  range: Cidr,
  ring: RingId,
  frozen: PeerRecord,
  together: ReadonlySet<PeerName>,
): Range[] {
  const target = frozen.peer;
  const live = ringRecords(state, range, ring);
  const out: Range[] = [...frozen.ranges];
  for (const t of frozen.outgoing) {
    const rec = live.get(t.to);
    const recipientRemoval = lastRemoval(state, t.to);
    const adopted = Math.max(recipientRemoval?.frozen.adopted.get(target) ?? 0, rec?.adopted.get(target) ?? 0);
    if (adopted >= t.seq) continue;
    const willAdopt = rec !== undefined && !rec.retired && !together.has(t.to);
    if (!willAdopt) out.push(...t.ranges);
  }
  for (const rm of state.removals.values()) {
    if (rm.ring !== ring || rm.target === target) continue;
    const heirRanges = normalize(rm.heirs.flatMap((h) => h.ranges));
    for (const t of rm.frozen.outgoing) {
      if (t.to !== target || (frozen.adopted.get(rm.target) ?? 0) >= t.seq) continue;
      out.push(...subtract(normalize(t.ranges), heirRanges));
    }
  }
  return normalize(out);
}

/**
 * Give each held range to the live peer owning the space just below it (so
 * neighbouring ranges merge), falling back to `preferred`, then to the first
 * live peer by name.
 */
export function assignHeirs(
  state: GossipState,
  range: Cidr,
  ring: RingId,
  holdings: readonly Range[],
  live: readonly PeerName[],
  preferred: PeerName | undefined,
  firstSeq: number,
): Transfer[] {
  if (holdings.length === 0) return [];
  if (live.length === 0) throw new Error('no live peer to inherit the space');
  const view = ringView(state, range, ring);
  const liveSet = new Set(live);
  const fallback = preferred && liveSet.has(preferred) ? preferred : [...live].sort()[0]!;
  const byHeir = new Map<PeerName, Range[]>();
  for (const r of holdings) {
    const below = r.start === range.start ? range.end - 1 : r.start - 1;
    const owner = ownerIn(view, below)?.owner;
    const heir = owner && liveSet.has(owner) ? owner : fallback;
    byHeir.set(heir, [...(byHeir.get(heir) ?? []), r]);
  }
  let seq = firstSeq;
  return [...byHeir.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([to, rs]) => ({ seq: seq++, to, ranges: normalize(rs) }));
}

export function computeRemoval(args: {
  state: GossipState;
  range: Cidr;
  ring: RingId;
  frozen: PeerRecord;
  after: number;
  live: readonly PeerName[];
  together: ReadonlySet<PeerName>;
  proposer: PeerName;
  at: number;
}): Removal {
  const holdings = removalHoldings(args.state, args.range, args.ring, args.frozen, args.together);
  const heirs = assignHeirs(args.state, args.range, args.ring, holdings, args.live, args.proposer, args.frozen.transferSeq + 1);
  return {
    target: args.frozen.peer,
    ring: args.ring,
    after: args.after,
    frozen: args.frozen,
    heirs,
    proposer: args.proposer,
    at: args.at,
  };
}

/** Addresses a removal hands out (for reporting). */
export function removalSize(r: Removal): number {
  return r.heirs.reduce((n, h) => n + h.ranges.reduce((m, x) => m + x.end - x.start, 0), 0);
}

export function rangesOverlap(a: readonly Range[], b: readonly Range[]): boolean {
  return intersect(normalize(a), normalize(b)).length > 0;
}
