// The ring CRDT: merging gossiped state, and the views derived from it.
//
// Every key of GossipState is merged on its own, so the merge is a join in a
// semilattice (commutative, associative, idempotent):
//   records      owner-written, the highest version wins; equal versions with
//                different content (only possible after a bug or forgery) are
//                ordered by their canonical encoding so every peer picks the same.
//   geneses, removals, resolutions
//                write-once per key; differing copies (again: bugs only) are
//                ordered by canonical encoding.
// What a peer refuses to merge (updates touching its own space) is decided
// before merging, in validate.ts; this module never changes ownership itself.
import type { PeerName } from '../../mesh/types.js';
import type { Cidr } from './addr.js';
import { genesisToPlain, recordToPlain, removalToPlain, resolutionToPlain } from './codec.js';
import { type Range, type RangeSet, normalize, size } from './ranges.js';
import type { Genesis, GossipState, PeerRecord, Removal, Resolution, RingId, Transfer } from './types.js';
import { removalKey } from './types.js';

/** The part of a state message that is merged. */
export interface StateItems {
  records: PeerRecord[];
  geneses: Genesis[];
  removals: Removal[];
  resolutions: Resolution[];
}

/** What mergeItems reads (a decoded message fits as is). */
export interface StateItemsIn {
  readonly records: readonly PeerRecord[];
  readonly geneses: readonly Genesis[];
  readonly removals: readonly Removal[];
  readonly resolutions: readonly Resolution[];
}

export function emptyItems(): StateItems {
  return { records: [], geneses: [], removals: [], resolutions: [] };
}

export function itemCount(i: StateItemsIn): number {
  return i.records.length + i.geneses.length + i.removals.length + i.resolutions.length;
}

function canonical(plain: unknown): string {
  return JSON.stringify(plain);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Total order on copies of one peer's record: version, then canonical content. */
export function compareRecords(a: PeerRecord, b: PeerRecord): number {
  if (a.version !== b.version) return a.version - b.version;
  return compareStrings(canonical(recordToPlain(a)), canonical(recordToPlain(b)));
}

/** Write-once values: the smaller canonical encoding wins a (buggy) disagreement. */
function preferOnce<T>(existing: T | undefined, incoming: T, toPlain: (v: T) => unknown): boolean {
  if (existing === undefined) return true;
  return compareStrings(canonical(toPlain(incoming)), canonical(toPlain(existing))) < 0;
}

/** Merge `items` into `state`; returns the items that changed it (the delta to pass on). */
export function mergeItems(state: GossipState, items: StateItemsIn): StateItems {
  const delta = emptyItems();
  for (const g of items.geneses) {
    if (preferOnce(state.geneses.get(g.id), g, genesisToPlain)) {
      state.geneses.set(g.id, g);
      delta.geneses.push(g);
    }
  }
  for (const r of items.removals) {
    const key = removalKey(r.target, r.after);
    if (preferOnce(state.removals.get(key), r, removalToPlain)) {
      state.removals.set(key, r);
      delta.removals.push(r);
    }
  }
  for (const r of items.resolutions) {
    if (preferOnce(state.resolutions.get(r.id), r, resolutionToPlain)) {
      state.resolutions.set(r.id, r);
      delta.resolutions.push(r);
    }
  }
  for (const r of items.records) {
    const old = state.records.get(r.peer);
    if (!old || compareRecords(r, old) > 0) {
      state.records.set(r.peer, r);
      delta.records.push(r);
    }
  }
  return delta;
}

export function allItems(state: GossipState): StateItems {
  return {
    records: [...state.records.values()],
    geneses: [...state.geneses.values()],
    removals: [...state.removals.values()],
    resolutions: [...state.resolutions.values()],
  };
}

export function cloneState(state: GossipState): GossipState {
  return {
    records: new Map(state.records),
    geneses: new Map(state.geneses),
    removals: new Map(state.removals),
    resolutions: new Map(state.resolutions),
  };
}

/** A canonical digest of the whole state: equal digests mean converged peers. */
export function digest(state: GossipState): string {
  const sorted = <T>(m: Map<string, T>, f: (v: T) => unknown) =>
    [...m.entries()].sort((a, b) => compareStrings(a[0], b[0])).map(([, v]) => f(v));
  return canonical([
    sorted(state.records, recordToPlain),
    sorted(state.geneses, genesisToPlain),
    sorted(state.removals, removalToPlain),
    sorted(state.resolutions, resolutionToPlain),
  ]);
}

// ---------------------------------------------------------------- rings

/** Ring order for split brains: the older claim wins, then the smaller id. */
export function compareRings(a: Genesis, b: Genesis): number {
  return a.createdAt - b.createdAt || compareStrings(a.id, b.id);
}

export function winningRing(state: GossipState): Genesis | undefined {
  let best: Genesis | undefined;
  for (const g of state.geneses.values()) if (!best || compareRings(g, best) < 0) best = g;
  return best;
}

/** The range split evenly and contiguously among the sorted claimants. */
export function genesisShares(range: Cidr, claimants: readonly PeerName[]): Map<PeerName, Range[]> {
  const total = range.end - range.start;
  const k = claimants.length;
  const out = new Map<PeerName, Range[]>();
  claimants.forEach((c, i) => {
    const start = range.start + Math.floor((i * total) / k);
    const end = range.start + Math.floor(((i + 1) * total) / k);
    out.set(c, end > start ? [{ start, end }] : []);
  });
  return out;
}

// ---------------------------------------------------------------- removals

/** Removals of `peer`, oldest first. */
export function removalsOf(state: GossipState, peer: PeerName): Removal[] {
  return [...state.removals.values()].filter((r) => r.target === peer).sort((a, b) => a.frozen.version - b.frozen.version);
}

export function lastRemoval(state: GossipState, peer: PeerName): Removal | undefined {
  const all = removalsOf(state, peer);
  return all[all.length - 1];
}

/** A record is void when a removal froze its peer at this version or later. */
export function isVoid(state: GossipState, rec: PeerRecord): boolean {
  const last = lastRemoval(state, rec.peer);
  return last !== undefined && rec.version <= last.frozen.version;
}

// ---------------------------------------------------------------- ring members

/** A claimant's share before it writes its own record (or if it never does). */
export function virtualRecord(range: Cidr, g: Genesis, peer: PeerName, version: number): PeerRecord {
  const share = genesisShares(range, g.claimants).get(peer) ?? [];
  return {
    peer,
    nickname: '',
    version,
    ring: g.id,
    mode: g.mode,
    quorum: 0,
    ranges: share,
    inUse: [],
    free: size(share),
    transferSeq: 0,
    outgoing: [],
    adopted: new Map(),
    retired: false,
    rehomedFrom: null,
  };
}

/** True when claimant `peer` has not yet written a record into ring `g` (its share is still virtual). */
function holdsVirtualShare(state: GossipState, g: Genesis, peer: PeerName): boolean {
  if (!g.claimants.includes(peer)) return false;
  if ([...state.removals.values()].some((r) => r.target === peer && r.ring === g.id)) return false;
  const rec = state.records.get(peer);
  return !rec || rec.ring === null;
}

/**
 * The live (not void) record of every peer in ring `ringId`, with claimants
 * that have not written their own record yet represented by their share.
 */
export function ringRecords(state: GossipState, range: Cidr, ringId: RingId): Map<PeerName, PeerRecord> {
  const out = new Map<PeerName, PeerRecord>();
  for (const rec of state.records.values()) {
    if (rec.ring === ringId && !isVoid(state, rec)) out.set(rec.peer, rec);
  }
  const g = state.geneses.get(ringId);
  if (g) {
    for (const c of g.claimants) {
      if (!out.has(c) && holdsVirtualShare(state, g, c)) out.set(c, virtualRecord(range, g, c, state.records.get(c)?.version ?? 0));
    }
  }
  return out;
}

/** Transfers addressed to `me` from `donor` that `me` may adopt (seq above what it adopted). */
export interface Offer {
  readonly donor: PeerName;
  readonly transfer: Transfer;
}

/**
 * Everything offered to `me` in ring `ringId`: transfers in live donors'
 * records, in removed donors' frozen records, and heir transfers of removals.
 */
export function offersTo(state: GossipState, range: Cidr, ringId: RingId, me: PeerName): Offer[] {
  const out: Offer[] = [];
  for (const rec of ringRecords(state, range, ringId).values()) {
    if (rec.peer === me) continue;
    for (const t of rec.outgoing) if (t.to === me) out.push({ donor: rec.peer, transfer: t });
  }
  for (const r of state.removals.values()) {
    if (r.ring !== ringId || r.target === me) continue;
    for (const t of [...r.frozen.outgoing, ...r.heirs]) if (t.to === me) out.push({ donor: r.target, transfer: t });
  }
  return out;
}

// ---------------------------------------------------------------- views

export interface OwnedSegment {
  readonly start: number;
  readonly end: number;
  readonly owner: PeerName;
  /** Space handed to `owner` that it has not adopted yet. */
  readonly pending: boolean;
}

export interface RingView {
  readonly segments: OwnedSegment[];
  /** Addresses two peers both claim in this ring (after discounting stale copies). */
  readonly overlaps: { start: number; end: number; owners: PeerName[] }[];
}

/**
 * Who owns what in ring `ringId`, as this peer's copy of the state says.
 * Space in transit is shown as owned by its recipient (pending). A copy that
 * a recipient's `adopted` proves stale loses an overlap silently (gossip
 * reordering); anything else is reported as an overlap.
 */
export function ringView(state: GossipState, range: Cidr, ringId: RingId): RingView {
  const recs = ringRecords(state, range, ringId);
  interface Claim {
    start: number;
    end: number;
    owner: PeerName;
    pending: boolean;
    source: PeerRecord | undefined;
  }
  const claims: Claim[] = [];
  const adoptedBy = (peer: PeerName, donor: PeerName) => recs.get(peer)?.adopted.get(donor) ?? 0;
  for (const rec of recs.values()) {
    for (const r of rec.ranges) claims.push({ ...r, owner: rec.peer, pending: false, source: rec });
    for (const t of rec.outgoing) {
      if (adoptedBy(t.to, rec.peer) >= t.seq) continue;
      for (const r of t.ranges) claims.push({ ...r, owner: t.to, pending: true, source: undefined });
    }
  }
  for (const rm of state.removals.values()) {
    if (rm.ring !== ringId) continue;
    for (const t of [...rm.heirs, ...rm.frozen.outgoing]) {
      if (adoptedBy(t.to, rm.target) >= t.seq || !recs.has(t.to)) continue;
      for (const r of t.ranges) claims.push({ ...r, owner: t.to, pending: true, source: undefined });
    }
  }
  // A record is stale against another claimant if that claimant adopted a
  // transfer from it newer than anything the record has issued.
  const staleAgainst = (a: Claim, b: Claim) =>
    a.source !== undefined && adoptedBy(b.owner, a.owner) > a.source.transferSeq;
  const bounds = [...new Set(claims.flatMap((c) => [c.start, c.end]))].sort((x, y) => x - y);
  const segments: OwnedSegment[] = [];
  const overlaps: RingView['overlaps'] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    let here = claims.filter((c) => c.start <= start && c.end >= end);
    if (here.length === 0) continue;
    if (here.length > 1) here = here.filter((c) => !here.some((o) => o !== c && staleAgainst(c, o)));
    const owners = [...new Set(here.map((c) => c.owner))].sort();
    if (owners.length > 1) {
      const last = overlaps[overlaps.length - 1];
      if (last && last.end === start && last.owners.join() === owners.join()) last.end = end;
      else overlaps.push({ start, end, owners });
    }
    const pick = here.find((c) => !c.pending) ?? here[0]!;
    const last = segments[segments.length - 1];
    if (last && last.end === start && last.owner === pick.owner && last.pending === pick.pending) {
      segments[segments.length - 1] = { ...last, end };
    } else {
      segments.push({ start, end, owner: pick.owner, pending: pick.pending });
    }
  }
  return { segments, overlaps };
}

/** The owner of `addr` in a view, or undefined. */
export function ownerIn(view: RingView, addr: number): OwnedSegment | undefined {
  let lo = 0;
  let hi = view.segments.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const s = view.segments[mid]!;
    if (addr < s.start) hi = mid - 1;
    else if (addr >= s.end) lo = mid + 1;
    else return s;
  }
  return undefined;
}

/** Addresses two or more peers (of any ring) report in use: real duplicates. */
export function duplicateAddresses(state: GossipState): { start: number; end: number; peers: PeerName[] }[] {
  const spans: { start: number; end: number; peer: PeerName }[] = [];
  for (const rec of state.records.values()) {
    if (isVoid(state, rec) || rec.retired) continue;
    for (const r of rec.inUse) spans.push({ ...r, peer: rec.peer });
  }
  const bounds = [...new Set(spans.flatMap((s) => [s.start, s.end]))].sort((a, b) => a - b);
  const out: { start: number; end: number; peers: PeerName[] }[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i]!;
    const end = bounds[i + 1]!;
    const peers = [...new Set(spans.filter((s) => s.start <= start && s.end >= end).map((s) => s.peer))].sort();
    if (peers.length < 2) continue;
    const last = out[out.length - 1];
    if (last && last.end === start && last.peers.join() === peers.join()) last.end = end;
    else out.push({ start, end, peers });
  }
  return out;
}

/** Addresses other peers (any ring, not void, not retired) report in use: never allocate these. */
export function othersInUse(state: GossipState, me: PeerName): Range[] {
  const all: Range[] = [];
  for (const rec of state.records.values()) {
    if (rec.peer === me || isVoid(state, rec) || rec.retired) continue;
    all.push(...rec.inUse);
  }
  return normalize(all);
}

export function totalSize(set: RangeSet): number {
  return size(set);
}
