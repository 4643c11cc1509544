// Everything wrong that status reports, derived from the replicated state
// plus the few facts only this peer knows (refused peers, its own notes).
import type { PeerName } from '../../mesh/types.js';
import { type Cidr, formatAddress, formatCidr } from './addr.js';
import { size, subtract } from './ranges.js';
import { duplicateAddresses, isVoid, ringView, winningRing } from './state.js';
import { type IpamConflict, SEVERITY, describeAddressRange } from './status.js';
import type { GossipState, RingId } from './types.js';

export interface ConflictInput {
  readonly state: GossipState;
  readonly range: Cidr;
  /** Our ring (overlaps are reported for it). */
  readonly ring: RingId | null;
  /** Peers whose updates we refuse because their range differs: peer -> their range. */
  readonly rangeMismatch: ReadonlyMap<PeerName, string>;
  /** Conflicts only this peer can know (it was removed, it lost its state). */
  readonly notes: readonly IpamConflict[];
  readonly persistError: string | null;
  readonly storeLocation: string;
  readonly nickname: (p: PeerName) => string;
}

/** A cheap fingerprint: when it changes, the conflicts are logged and emitted again. */
export function conflictSignature(i: Omit<ConflictInput, 'nickname' | 'storeLocation' | 'ring' | 'range'>): string {
  const parts: string[] = [...i.rangeMismatch.keys()].map((p) => `range:${p}`);
  for (const n of i.notes) parts.push(n.kind);
  if (i.persistError) parts.push('store');
  const rings = new Set<string>();
  for (const r of i.state.records.values()) if (r.ring && !r.retired && !isVoid(i.state, r)) rings.add(r.ring);
  if (rings.size > 1) parts.push(`split:${[...rings].sort().join(',')}`);
  return parts.join('|');
}

export function findConflicts(i: ConflictInput): IpamConflict[] {
  const out: IpamConflict[] = [];
  const who = (p: PeerName) => (i.nickname(p) ? `${p} (${i.nickname(p)})` : p);
  const dups = duplicateAddresses(i.state);
  if (dups.length > 0) {
    const n = dups.reduce((s, d) => s + d.end - d.start, 0);
    out.push({
      kind: 'duplicate',
      message: `${n} address(es) are in use on two peers at once: ${dups
        .slice(0, 5)
        .map((d) => `${describeAddressRange(d.start, d.end)} on ${d.peers.map(who).join(' and ')}`)
        .join('; ')}${dups.length > 5 ? '; ...' : ''}. Decide with 'meshnet ipam resolve --keep PEER|RING' (the other side's containers need new addresses)`,
      details: { addresses: dups.map((d) => ({ start: formatAddress(d.start), size: d.end - d.start, peers: d.peers })) },
    });
  }
  if (i.persistError) out.push({ kind: 'store', message: `cannot save IPAM state: ${i.persistError}`, details: { location: i.storeLocation } });

  // Split brain: live records in more than one ring, or re-homed peers still
  // waiting for the addresses they use to be granted.
  const byRing = new Map<RingId, PeerName[]>();
  for (const r of i.state.records.values()) {
    if (!r.ring || r.retired || isVoid(i.state, r)) continue;
    byRing.set(r.ring, [...(byRing.get(r.ring) ?? []), r.peer]);
  }
  const win = winningRing(i.state);
  const rehoming = [...i.state.records.values()].filter(
    (r) => win && r.ring === win.id && r.rehomedFrom !== null && !r.retired && !isVoid(i.state, r) && subtract(r.inUse, r.ranges).length > 0,
  );
  if (win && (byRing.size > 1 || rehoming.length > 0)) {
    const rings = [...i.state.geneses.values()]
      .filter((g) => byRing.has(g.id) || g.id === win.id)
      .map((g) => ({ id: g.id, createdAt: g.createdAt, claimants: g.claimants, peers: byRing.get(g.id) ?? [] }));
    const losers = rings.filter((r) => r.id !== win.id);
    const pending = rehoming.reduce((s, r) => s + size(subtract(r.inUse, r.ranges)), 0);
    out.push({
      kind: 'split-brain',
      message: `two separately claimed IPAM rings met: ring ${win.id} (claimed ${win.createdAt ? new Date(win.createdAt).toISOString() : 'by seed list'}) is older and keeps ownership; ${
        losers.length ? `peers of ring ${losers.map((l) => `${l.id} (${l.peers.join(', ') || 'none left'})`).join(', ')} are re-homing` : 're-homing is finishing'
      }: they give up their free space and keep their in-use addresses as claims on the owners in ring ${win.id} (${pending} address(es) still to be granted)${
        dups.length ? '; some addresses are in use on both sides, see the duplicate conflict' : ''
      }`,
      details: { winner: win.id, rings, pendingClaims: pending },
    });
  }
  for (const [p, theirs] of i.rangeMismatch) {
    out.push({
      kind: 'range-mismatch',
      message: `peer ${who(p)} uses --ipalloc-range ${theirs} but this peer uses ${formatCidr(i.range)}; its IPAM updates are refused (restart one of them with the same range)`,
      details: { peer: p, theirs, ours: formatCidr(i.range) },
    });
  }
  out.push(...i.notes);
  if (i.ring) {
    const view = ringView(i.state, i.range, i.ring);
    if (view.overlaps.length > 0) {
      out.push({
        kind: 'overlap',
        message: `peers claim the same space: ${view.overlaps
          .slice(0, 5)
          .map((o) => `${describeAddressRange(o.start, o.end)} by ${o.owners.join(' and ')}`)
          .join('; ')} (transient while gossip catches up; if it persists, a peer was removed while alive)`,
        details: { overlaps: view.overlaps.map((o) => ({ start: formatAddress(o.start), size: o.end - o.start, owners: o.owners })) },
      });
    }
  }
  return out.sort((a, b) => SEVERITY.indexOf(a.kind) - SEVERITY.indexOf(b.kind));
}
