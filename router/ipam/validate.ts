// What an incoming record may not do: claim space this peer owns or is
// handing over. A refused record is not merged (GossipRejected, counted and
// logged; the connection survives). Other peers' overlaps are not ours to
// refuse: they are reported as conflicts instead.
import type { PeerName } from '../../mesh/types.js';
import { intersect } from './ranges.js';
import { compareRecords, isVoid } from './state.js';
import { describeAddressRange } from './status.js';
import type { GossipState, PeerRecord } from './types.js';

/**
 * Why `rec` must be refused, or null. `batch` is the rest of the same
 * update: gossip reorders, so a recipient's acknowledgement or evidence
 * that `rec` is stale may arrive alongside it.
 */
export function refuseRecord(state: GossipState, me: PeerName, rec: PeerRecord, batch: ReadonlyMap<PeerName, PeerRecord>): string | null {
  const old = state.records.get(rec.peer);
  if (old && compareRecords(rec, old) <= 0) return null; // not news
  if (isVoid(state, rec)) return null; // superseded by a removal; harmless
  const mine = state.records.get(me);
  if (!mine || !mine.ring || rec.ring !== mine.ring) return null; // another ring: a split brain, not a forgery
  // Someone adopted a transfer from this peer that the record does not know
  // it issued: the record is stale and its claims are history.
  for (const other of [...state.records.values(), ...batch.values()]) {
    if ((other.adopted.get(rec.peer) ?? 0) > rec.transferSeq) return null;
  }
  const copies = (p: PeerName) => [state.records.get(p), batch.get(p)].filter((r): r is PeerRecord => r !== undefined);
  const who = `peer ${rec.peer} (${rec.nickname})`;
  const clash = intersect(rec.ranges, mine.ranges);
  if (clash.length > 0) return `${who} claims ${clash.map((r) => describeAddressRange(r.start, r.end)).join(', ')}, which this peer owns`;
  for (const t of mine.outgoing) {
    const c = intersect(rec.ranges, t.ranges);
    if (c.length === 0) continue;
    // Once the recipient adopted it, the space is the recipient's to pass on.
    if (copies(t.to).some((r) => (r.adopted.get(me) ?? 0) >= t.seq)) continue;
    // A claimant that got space from the recipient holds what the recipient passed on.
    if (t.to !== rec.peer && (rec.adopted.get(t.to) ?? 0) > 0) continue;
    if (t.to !== rec.peer) return `${who} claims ${describeAddressRange(c[0]!.start, c[0]!.end)}, which this peer is handing to ${t.to}`;
    if ((rec.adopted.get(me) ?? 0) < t.seq) return `${who} holds space this peer is handing to it without acknowledging the transfer`;
  }
  if ((rec.adopted.get(me) ?? 0) > mine.transferSeq) {
    return `${who} says it adopted transfer #${rec.adopted.get(me)} from this peer, which has issued only ${mine.transferSeq}`;
  }
  return null;
}
