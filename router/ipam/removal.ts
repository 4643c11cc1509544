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
 *  - transfers issued to it that it never adopted and whose donor will never
 *    take back (donor removed or retired).
 * A transfer between two dead peers belongs to whichever removal comes
 * first; the later one sees the earlier one's heirs already cover it.
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
  const givenBy = (p: PeerName) => normalize([...state.removals.values()].filter((r) => r.ring === ring && r.target === p).flatMap((r) => r.heirs.flatMap((h) => h.ranges)));
  const out: Range[] = [...frozen.ranges];
  for (const t of frozen.outgoing) {
    const rec = live.get(t.to);
    const recipientRemoval = lastRemoval(state, t.to);
    const adopted = Math.max(recipientRemoval?.frozen.adopted.get(target) ?? 0, rec?.adopted.get(target) ?? 0);
    if (adopted >= t.seq) continue;
    const willAdopt = rec !== undefined && !rec.retired && !together.has(t.to);
    if (!willAdopt) out.push(...subtract(normalize(t.ranges), givenBy(t.to)));
  }
  out.push(...strandedTo(state, range, ring, frozen));
  return subtract(normalize(out), claimedByOthers(state, range, ring, frozen, together));
}

/**
 * Space other live ring peers own or are being handed. A removal never gives
 * that away: if the frozen record still lists it, the record is stale (the
 * target handed the space on in a version only a now-dead peer saw). A
 * copy the target's own record proves stale (it adopted from that peer
 * after the copy) is not counted, so space is not stranded either.
 */
export function claimedByOthers(state: GossipState, range: Cidr, ring: RingId, frozen: PeerRecord, together: ReadonlySet<PeerName>): Range[] {
  const out: Range[] = [];
  const live = ringRecords(state, range, ring);
  // Has `to` adopted transfer `seq` from `donor`? (Its live record, or its frozen one if removed.)
  const adopted = (to: PeerName, donor: PeerName, seq: number) =>
    Math.max(live.get(to)?.adopted.get(donor) ?? 0, lastRemoval(state, to)?.frozen.adopted.get(donor) ?? 0) >= seq;
  for (const rec of live.values()) {
    if (rec.peer === frozen.peer || together.has(rec.peer)) continue;
    if ((frozen.adopted.get(rec.peer) ?? 0) > rec.transferSeq) continue; // stale copy
    out.push(...rec.ranges);
    // Transfers on their way; once adopted, the recipient's record says what it holds.
    for (const t of rec.outgoing) if (t.to !== frozen.peer && !adopted(t.to, rec.peer, t.seq)) out.push(...t.ranges);
  }
  // Heir transfers still on their way, likewise.
  for (const rm of state.removals.values()) {
    if (rm.ring !== ring || rm.target === frozen.peer) continue;
    for (const h of rm.heirs) {
      if (h.to === frozen.peer || adopted(h.to, rm.target, h.seq)) continue;
      out.push(...h.ranges);
    }
  }
  return normalize(out);
}

/**
 * Space handed to `frozen`'s peer that it never adopted and that nobody
 * else will take back: transfers from donors that are removed or retired,
 * and heir transfers of removals (a removal agreed while its heir was still
 * alive can be published after the heir died or left). Minus what some
 * removal already gave away.
 */
export function strandedTo(state: GossipState, range: Cidr, ring: RingId, frozen: PeerRecord): Range[] {
  const target = frozen.peer;
  const live = ringRecords(state, range, ring);
  const givenBy = (p: PeerName) => normalize([...state.removals.values()].filter((r) => r.ring === ring && r.target === p).flatMap((r) => r.heirs.flatMap((h) => h.ranges)));
  const out: Range[] = [];
  const notAdopted = (donor: PeerName, t: Transfer) => t.to === target && (frozen.adopted.get(donor) ?? 0) < t.seq;
  for (const rm of state.removals.values()) {
    if (rm.ring !== ring || rm.target === target) continue;
    for (const t of rm.frozen.outgoing) if (notAdopted(rm.target, t)) out.push(...subtract(normalize(t.ranges), givenBy(rm.target)));
    for (const t of rm.heirs) if (notAdopted(rm.target, t)) out.push(...t.ranges);
  }
  for (const rec of live.values()) {
    if (!rec.retired || rec.peer === target) continue;
    for (const t of rec.outgoing) if (notAdopted(rec.peer, t)) out.push(...subtract(normalize(t.ranges), givenBy(rec.peer)));
  }
  return subtract(normalize(out), givenBy(target));
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
