// The topology table: one versioned entry per known peer, each listing that
// peer's connections. Pure logic, no I/O: methods take received messages and
// return what to send, so the same code runs over TCP and in simulations.
//
// Only a peer changes its own entry. Entries are ordered by (incarnation,
// version, uid): the incarnation is a per-host start counter persisted in the
// state dir, so a restarted peer supersedes its old entry everywhere even
// though its version starts again at 1.
//
// Changes travel as deltas (the records that changed since the previous
// version), not whole tables; a peer that misses a delta pulls the full entry
// from the neighbour that sent it. Digests (id, uid, incarnation, version per
// peer) exchanged on every new connection and periodically repair anything
// lost. The cost of a join is thus O(N) bytes per existing peer, where
// whole-table gossip was O(N²) (weaveworks/mesh#108).

import type { PeerId } from './peer-name.js';
import { hashFields, SetHash } from '../crypto/fingerprint.js';
import {
  applyDelta,
  composeDeltas,
  diffRecords,
  findRecord,
  packRecords,
  recordCount,
  recordEstablished,
  recordPeer,
  type ConnSummary,
  type DigestItem,
  type EntryDelta,
  type EntryFull,
  type EntryUpdate,
  type TopologyMessage,
} from './topology-codec.js';

export interface Entry {
  id: PeerId;
  uid: bigint;
  incarnation: number;
  version: number;
  nickname: string;
  /** Packed connection records, sorted by peer (topology-codec.ts). */
  conns: Uint8Array;
  /** The last deltas that led to this version (contiguous), to answer with a delta instead of the whole entry. */
  history?: EntryDelta[];
}

/** Deltas kept per entry: enough to bridge the gaps of a busy minute without whole entries. */
const HISTORY = 64;
/** A peer that missed a delta waits this long before pulling: the gap is often filled by a message in flight. */
export const PULL_DELAY_MS = 300;
/** Pull rounds for one entry before leaving it to anti-entropy (a peer that is gone never answers). */
const MAX_PULL_TRIES = 4;

export interface Outgoing {
  to: PeerId;
  msg: TopologyMessage;
}

export interface HandleResult {
  /** Messages to send (replies, pulls). */
  out: Outgoing[];
  /** Updates that were new here, to relay onwards. */
  relay: EntryUpdate[];
  /** True when anything in the table changed. */
  changed: boolean;
  /** Set when we learnt of a newer incarnation of ourselves and moved past it. */
  selfBumped?: number;
  /** Deltas we could not apply yet: call duePulls() after PULL_DELAY_MS. */
  pullLater?: boolean;
}

/** Total order of entry versions: incarnation, then version, then uid. */
export function compareVersions(a: Pick<Entry, 'incarnation' | 'version' | 'uid'>, b: Pick<Entry, 'incarnation' | 'version' | 'uid'>): number {
  if (a.incarnation !== b.incarnation) return a.incarnation - b.incarnation;
  if (a.version !== b.version) return a.version - b.version;
  return a.uid === b.uid ? 0 : a.uid < b.uid ? -1 : 1;
}

export class Topology {
  readonly entries = new Map<PeerId, Entry>();
  private readonly self: Entry;
  private localConns = new Map<PeerId, ConnSummary>();
  private dirty = false;
  /** Entries we are behind on: id → (neighbour that has a newer version, that version). */
  private readonly behind = new Map<PeerId, { from: PeerId; incarnation: number; version: number; uid: bigint; tries: number }>();
  /** Bumped on every table change; caches (routes) key on it. */
  generation = 0;

  constructor(self: { id: PeerId; uid: bigint; incarnation: number; nickname: string }) {
    this.self = { ...self, version: 1, conns: new Uint8Array(0) };
    this.entries.set(self.id, this.self);
  }

  get selfId(): PeerId {
    return this.self.id;
  }

  get selfEntry(): Readonly<Entry> {
    return this.self;
  }

  // ---- local changes ----------------------------------------------------------

  /** Record our connection to `c.peer` (added or changed). Published by publishLocal(). */
  setLocalConnection(c: ConnSummary): void {
    const old = this.localConns.get(c.peer);
    if (old && old.address === c.address && old.outbound === c.outbound && old.established === c.established) return;
    this.localConns.set(c.peer, c);
    this.dirty = true;
  }

  removeLocalConnection(peer: PeerId): void {
    if (this.localConns.delete(peer)) this.dirty = true;
  }

  get hasUnpublished(): boolean {
    return this.dirty;
  }

  /** Bump our version if anything changed and return the delta to send to every neighbour. */
  publishLocal(): EntryUpdate | undefined {
    if (!this.dirty) return undefined;
    this.dirty = false;
    const next = packRecords(this.localConns.values());
    const { upserts, removals } = diffRecords(this.self.conns, next);
    const baseVersion = this.self.version;
    this.self.version++;
    this.self.conns = next;
    this.touch();
    const delta: EntryDelta = {
      kind: 'delta',
      id: this.self.id,
      uid: this.self.uid,
      incarnation: this.self.incarnation,
      baseVersion,
      version: this.self.version,
      upserts,
      removals,
    };
    remember(this.self, delta);
    return delta;
  }

  // ---- receiving --------------------------------------------------------------

  digest(): DigestItem[] {
    return [...this.entries.values()].map((e) => ({ id: e.id, uid: e.uid, incarnation: e.incarnation, version: e.version }));
  }

  /** Fingerprint of the digest (every entry's id, uid, incarnation, version), for anti-entropy. */
  fingerprint(): { count: number; hash: [number, number] } {
    const h = new SetHash();
    for (const e of this.entries.values()) h.add(hashFields(e.id, e.uid, e.incarnation, e.version));
    return { count: h.count, hash: h.value() };
  }

  full(id: PeerId): EntryFull | undefined {
    const e = this.entries.get(id);
    return e && { kind: 'full', id: e.id, uid: e.uid, incarnation: e.incarnation, version: e.version, nickname: e.nickname, conns: e.conns };
  }

  /**
   * What to send a neighbour that holds `have` of this entry: a delta from
   * its version when our history reaches back that far, else the whole entry.
   */
  updateFor(id: PeerId, have?: DigestItem): EntryUpdate | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    if (have && have.version > 0 && have.uid === e.uid && have.incarnation === e.incarnation && have.version < e.version && e.history?.length) {
      const start = e.history.findIndex((d) => d.baseVersion === have.version);
      if (start >= 0) {
        const chain = e.history.slice(start);
        const { upserts, removals } = composeDeltas(chain);
        return { kind: 'delta', id, uid: e.uid, incarnation: e.incarnation, baseVersion: have.version, version: e.version, upserts, removals };
      }
    }
    return this.full(id);
  }

  /** What we hold of `id`, as a pull request item. */
  private have(id: PeerId): DigestItem {
    const e = this.entries.get(id);
    return e ? { id, uid: e.uid, incarnation: e.incarnation, version: e.version } : { id, uid: 0n, incarnation: 0, version: 0 };
  }

  handle(from: PeerId, msg: TopologyMessage): HandleResult {
    const res: HandleResult = { out: [], relay: [], changed: false };
    if (msg.type === 'digest') {
      // Send what they lack or have older; pull what we lack or have older.
      const theirs = new Map(msg.items.map((d) => [d.id, d]));
      const give: EntryUpdate[] = [];
      for (const e of this.entries.values()) {
        const t = theirs.get(e.id);
        if (!t || compareVersions(e, t) > 0) give.push(this.updateFor(e.id, t)!);
      }
      const want: DigestItem[] = [];
      for (const t of msg.items) {
        const e = this.entries.get(t.id);
        if (t.id === this.self.id) {
          if (compareVersions(t, this.self) > 0) want.push(this.have(t.id)); // a stale self we must move past
        } else if (!e || compareVersions(t, e) > 0) want.push(this.have(t.id));
      }
      if (give.length) res.out.push({ to: from, msg: { type: 'update', entries: give } });
      if (want.length) res.out.push({ to: from, msg: { type: 'pull', have: want } });
      return res;
    }
    if (msg.type === 'summary') return res; // handled by the mesh (it spans the channels)
    if (msg.type === 'pull') {
      const entries = msg.have.map((h) => this.updateFor(h.id, h)).filter((e): e is EntryUpdate => e !== undefined);
      if (entries.length) res.out.push({ to: from, msg: { type: 'update', entries } });
      return res;
    }
    for (const u of msg.entries) {
      if (u.id === this.self.id) {
        this.handleSelf(u, res);
        continue;
      }
      const cur = this.entries.get(u.id);
      if (u.kind === 'full') {
        if (cur && compareVersions(u, cur) <= 0) continue;
        this.entries.set(u.id, { id: u.id, uid: u.uid, incarnation: u.incarnation, version: u.version, nickname: u.nickname, conns: u.conns });
        this.caughtUp(u.id);
        this.pullUnknownPeers(u.conns, from, res);
        // Whole entries answer someone's pull or digest: catching up is not
        // news. Only deltas (fresh changes) are relayed; a peer still behind
        // pulls for itself. Relaying whole entries made them cascade through
        // a forming mesh.
        res.changed = true;
        continue;
      }
      // A delta applies only on top of exactly its base version.
      const target = { incarnation: u.incarnation, version: u.version, uid: u.uid };
      if (cur && compareVersions(target, cur) <= 0) continue;
      if (cur && cur.uid === u.uid && cur.incarnation === u.incarnation && cur.version === u.baseVersion) {
        cur.conns = applyDelta(cur.conns, u.upserts, u.removals);
        cur.version = u.version;
        remember(cur, u);
        this.caughtUp(u.id);
        this.pullUnknownPeers(u.upserts, from, res);
        res.relay.push(u);
        res.changed = true;
      } else {
        // Behind: the missing delta may still be on its way; pull later if not.
        const b = this.behind.get(u.id);
        if (!b || compareVersions(target, b) > 0) this.behind.set(u.id, { from, ...target, tries: 0 });
        res.pullLater = true;
      }
    }
    if (res.changed) this.touch();
    return res;
  }

  /**
   * A connection to a peer we hold no entry for: pull that entry from the
   * neighbour that told us (after the usual delay: it may be on its way).
   * Without this, a peer whose only news of a newcomer was lost (a pull
   * answer on a connection that closed) waited for anti-entropy.
   */
  private pullUnknownPeers(records: Uint8Array, from: PeerId, res: HandleResult): void {
    for (let i = 0; i < recordCount(records); i++) {
      const p = recordPeer(records, i);
      if (p === this.self.id || this.entries.has(p)) continue;
      const b = this.behind.get(p);
      // Already asked someone: the latest neighbour to mention it is the likelier to have it now.
      if (b) b.from = from;
      else this.behind.set(p, { from, uid: 0n, incarnation: 0, version: 0, tries: 0 });
      res.pullLater = true;
    }
  }

  /**
   * Pull requests for the entries we are still behind on, grouped by the
   * neighbour that has them. An entry stays on the list for a few rounds
   * until it arrives: the neighbour asked may have been behind itself (it
   * relayed news of a newcomer before its own pull was answered), and an
   * unanswered pull would otherwise leave the gap to anti-entropy.
   */
  duePulls(): Outgoing[] {
    const byFrom = new Map<PeerId, DigestItem[]>();
    for (const [id, b] of this.behind) {
      const cur = this.entries.get(id);
      if ((cur && compareVersions(cur, b) >= 0) || b.tries >= MAX_PULL_TRIES) {
        this.behind.delete(id);
        continue;
      }
      b.tries++;
      const list = byFrom.get(b.from) ?? [];
      list.push(this.have(id));
      byFrom.set(b.from, list);
    }
    return [...byFrom].map(([to, have]) => ({ to, msg: { type: 'pull', have } }));
  }

  /** True while some pull may still need repeating (call duePulls() again after PULL_DELAY_MS). */
  get pullsPending(): boolean {
    return this.behind.size > 0;
  }

  private caughtUp(id: PeerId): void {
    const b = this.behind.get(id);
    const cur = this.entries.get(id);
    if (b && cur && compareVersions(cur, b) >= 0) this.behind.delete(id);
  }

  /** Someone holds an entry for our name: if it is not older than us, move past it. */
  private handleSelf(u: EntryUpdate, res: HandleResult): void {
    if (u.uid === this.self.uid && u.incarnation === this.self.incarnation) return;
    const theirs = { incarnation: u.incarnation, version: u.version, uid: u.uid };
    if (compareVersions(theirs, this.self) < 0) return;
    this.self.incarnation = u.incarnation + 1;
    this.self.version = 1;
    this.self.history = [];
    this.touch();
    res.changed = true;
    res.selfBumped = this.self.incarnation;
    res.relay.push(this.full(this.self.id)!);
  }

  // ---- queries ----------------------------------------------------------------

  /** True when `a` lists an established connection to `b`. */
  listsEstablished(a: PeerId, b: PeerId): boolean {
    const e = this.entries.get(a);
    if (!e) return false;
    const i = findRecord(e.conns, b);
    return i >= 0 && recordEstablished(e.conns, i);
  }

  /**
   * Where to relay an update about `origin` that arrived from `from`: our
   * neighbours that neither sent it nor (by origin's own entry, as just
   * updated) got it from origin directly. In a full mesh this is nobody, so an update costs one
   * message per peer; in a partial mesh it floods only where needed.
   */
  relayTargets(origin: PeerId, from: PeerId, neighbours: Iterable<PeerId>): PeerId[] {
    const out: PeerId[] = [];
    for (const n of neighbours) {
      if (n === from || n === origin || n === this.self.id) continue;
      // Origin sends each of its updates to every peer it is connected to, and
      // an update lists only connections that existed when it was sent: a
      // neighbour origin lists got it first-hand. (Asking for both sides'
      // word made every peer relay a newcomer's updates during a join.)
      if (this.listsEstablished(origin, n)) continue;
      out.push(n);
    }
    return out;
  }

  /** Peers we cannot reach over any listed connection (garbage to collect). */
  unreachable(): PeerId[] {
    const seen = new Set<PeerId>([this.self.id]);
    const queue: PeerId[] = [this.self.id];
    while (queue.length) {
      const e = this.entries.get(queue.pop()!);
      if (!e) continue;
      for (let i = 0; i < recordCount(e.conns); i++) {
        const p = recordPeer(e.conns, i);
        if (!seen.has(p)) {
          seen.add(p);
          queue.push(p);
        }
      }
    }
    return [...this.entries.keys()].filter((id) => !seen.has(id));
  }

  remove(id: PeerId): boolean {
    if (id === this.self.id || !this.entries.delete(id)) return false;
    this.touch();
    return true;
  }

  private touch(): void {
    this.generation++;
  }
}

/** Keep the last HISTORY deltas of an entry (a contiguous chain ending at its version). */
function remember(e: Entry, d: EntryDelta): void {
  const h = e.history ?? [];
  if (h.length && h[h.length - 1]!.version !== d.baseVersion) h.length = 0;
  h.push(d);
  if (h.length > HISTORY) h.shift();
  e.history = h;
}
