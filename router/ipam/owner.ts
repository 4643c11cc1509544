// What a peer does with its own record when the merged state changes. Pure:
// each step reads the state and our record and says what to change; Ipam
// applies the changes, persists, and only then tells anyone (owner-only
// writes: nothing here ever touches another peer's record).
import type { PeerName } from '../../mesh/types.js';
import type { Cidr } from './addr.js';
import type { Allocation } from './allocations.js';
import { type Range, contains, intersect, normalize, size, subtract, union } from './ranges.js';
import { genesisShares, isVoid, lastRemoval, offersTo, removalsOf, ringRecords, winningRing } from './state.js';
import type { GossipState, PeerRecord, Removal, RingId, Transfer } from './types.js';
import { removalKey } from './types.js';

export interface Ctx {
  readonly state: GossipState;
  readonly range: Cidr;
  readonly me: PeerName;
}

export type Patch = Partial<PeerRecord>;

/**
 * A removal of this peer (rmpeer while we were unreachable) that we have not
 * given way to: drop our space (the heirs have it) and continue with a
 * version above the frozen one. Our allocations stay, as claims on the heirs.
 */
export function removalOfMe(
  c: Ctx,
  mine: PeerRecord,
  yielded: ReadonlySet<string>,
): { key: string; removal: Removal; patch: Patch; minVersion: number } | null {
  for (const rm of removalsOf(c.state, c.me)) {
    const key = removalKey(rm.target, rm.after);
    if (yielded.has(key)) continue;
    if (mine.ring !== null && rm.ring !== mine.ring) continue;
    return {
      key,
      removal: rm,
      patch: { ranges: [], outgoing: [], transferSeq: Math.max(mine.transferSeq, rm.frozen.transferSeq + rm.heirs.length) },
      minVersion: Math.max(mine.version, rm.frozen.version) + 1,
    };
  }
  return null;
}

/**
 * Join the winning ring (taking our genesis share if we are a claimant), or
 * re-home into it after a split brain: keep every address in use (they
 * become claims on the winning ring's owners) and give up the rest of our space.
 */
export function ringChoice(c: Ctx, mine: PeerRecord): { patch: Patch; joined: RingId; rehomedFrom: RingId | null; share: number } | null {
  const win = winningRing(c.state);
  if (!win || mine.ring === win.id) return null;
  const removedInWin = removalsOf(c.state, c.me).some((r) => r.ring === win.id);
  const share = !removedInWin && !mine.retired && win.claimants.includes(c.me) ? (genesisShares(c.range, win.claimants).get(c.me) ?? []) : [];
  if (mine.ring === null) return { patch: { ring: win.id, ranges: union(mine.ranges, share) }, joined: win.id, rehomedFrom: null, share: size(share) };
  return {
    patch: { ring: win.id, rehomedFrom: mine.ring, ranges: share, outgoing: [] },
    joined: win.id,
    rehomedFrom: mine.ring,
    share: size(share),
  };
}

/** Adopt every transfer offered to us (by live donors' records, removed donors' frozen records, removal heirs). */
export function adoptions(c: Ctx, mine: PeerRecord): { patch: Patch; got: { donor: PeerName; size: number }[] } | null {
  if (mine.retired || !mine.ring) return null;
  const adopted = new Map(mine.adopted);
  const byDonor = new Map<PeerName, Range[]>();
  const maxSeq = new Map<PeerName, number>();
  for (const o of offersTo(c.state, c.range, mine.ring, c.me)) {
    if (o.transfer.seq <= (adopted.get(o.donor) ?? 0)) continue;
    byDonor.set(o.donor, [...(byDonor.get(o.donor) ?? []), ...o.transfer.ranges]);
    maxSeq.set(o.donor, Math.max(maxSeq.get(o.donor) ?? 0, o.transfer.seq));
  }
  if (byDonor.size === 0) return null;
  let ranges: Range[] = [...mine.ranges];
  const got: { donor: PeerName; size: number }[] = [];
  for (const [donor, rs] of byDonor) {
    const set = normalize(rs);
    ranges = union(ranges, set);
    adopted.set(donor, maxSeq.get(donor)!);
    got.push({ donor, size: size(set) });
  }
  return { patch: { ranges, adopted }, got };
}

/**
 * Drop outgoing transfers their recipient acknowledged; take back those its
 * recipient will never adopt (removed, retired, or gone to another ring).
 */
export function settlement(c: Ctx, mine: PeerRecord): { patch: Patch; reclaimed: Transfer[] } | null {
  if (mine.outgoing.length === 0) return null;
  const keep: Transfer[] = [];
  const reclaimed: Transfer[] = [];
  let ranges: Range[] = [...mine.ranges];
  for (const t of mine.outgoing) {
    const rec = c.state.records.get(t.to);
    const rm = lastRemoval(c.state, t.to);
    const live = rec && !isVoid(c.state, rec) ? rec : undefined;
    const adopted = Math.max(
      live && live.ring === mine.ring ? (live.adopted.get(c.me) ?? 0) : 0,
      rm && rm.ring === mine.ring ? (rm.frozen.adopted.get(c.me) ?? 0) : 0,
    );
    if (adopted >= t.seq) continue; // acknowledged
    const gone =
      (rm !== undefined && rm.ring === mine.ring && !live) || (live !== undefined && (live.retired || (live.ring !== null && live.ring !== mine.ring)));
    if (gone && !mine.retired) {
      ranges = union(ranges, t.ranges);
      reclaimed.push(t);
      continue;
    }
    keep.push(t);
  }
  if (keep.length === mine.outgoing.length) return null;
  return { patch: { outgoing: keep, ranges }, reclaimed };
}

/**
 * Addresses other peers of our ring have in use inside our space (after a
 * split brain, a removal while they were away, or a claim): hand them over,
 * except those also in use here (real duplicates: reported, never granted).
 */
export function claimGrants(c: Ctx, mine: PeerRecord, inUseHere: readonly Range[]): { to: PeerName; ranges: Range[] }[] {
  if (mine.retired || mine.ranges.length === 0 || !mine.ring) return [];
  const out: { to: PeerName; ranges: Range[] }[] = [];
  let available = mine.ranges;
  for (const rec of ringRecords(c.state, c.range, mine.ring).values()) {
    if (rec.peer === c.me || rec.retired) continue;
    const claimed = intersect(subtract(rec.inUse, rec.ranges), available);
    const grant = subtract(claimed, inUseHere);
    if (grant.length === 0) continue;
    out.push({ to: rec.peer, ranges: grant });
    available = subtract(available, grant);
  }
  return out;
}

/** Allocations an operator's `resolve` took from us (made at or before the version it saw). */
export function revocations(c: Ctx, allocations: readonly Allocation[]): { revoke: Allocation[]; orphans: Range[] } {
  const revoke: Allocation[] = [];
  const orphans: Range[] = [];
  for (const res of c.state.resolutions.values()) {
    for (const d of res.decisions) {
      if (d.loser !== c.me) continue;
      for (const a of allocations) if (contains(d.addresses, a.address) && a.createdVersion <= d.version && !revoke.includes(a)) revoke.push(a);
      orphans.push(...d.addresses);
    }
  }
  return { revoke, orphans: normalize(orphans) };
}
