// The "sleeve-links" gossip channel: each peer announces the peers its
// sleeve reaches directly over UDP (heartbeats answered both ways). The
// sleeve routes over links both ends announce (routes.ts), so frames go
// around a pair of peers whose UDP is blocked even while their TCP
// connection is up. Each peer also announces which peers it currently
// sends to over fastdp, so any host can show the datapath of links it is
// not part of (the topology page); nothing routes on that part.
//
// Wire (MessagePack): { v: 1, peers: [ { n: "<peer>", ver: <u53>, l: ["<peer>", …], f?: ["<peer>", …] } ] }
// (`f` is optional: an entry without it announces no fastdp peers.)
// Merge by per-peer version; only the owner changes its entry; our own
// version starts at the wall clock so a restarted peer outranks its previous
// life. Everything is validated at decode time; a bad message or entry is
// dropped and counted, never thrown (datapath/ imports only types from mesh/).

import { decode, encode } from '@msgpack/msgpack';
import type { Gossiper, PeerName } from '../../mesh/types.js';
import { hashFields, SetHash } from '../../crypto/fingerprint.js';

export const LINKS_CHANNEL = 'sleeve-links';
const WIRE_VERSION = 1;
export const LINKS_LIMITS = { messageBytes: 4 << 20, peersPerMessage: 4096, linksPerPeer: 4096 } as const;
const NAME_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export interface LinksEntry {
  peer: PeerName;
  version: number;
  links: PeerName[];
  /** Peers this one sends to over fastdp now. */
  fastdp: PeerName[];
}

export type LinksDropReason = 'malformed-message' | 'bad-entry';

function encodeEntries(entries: readonly LinksEntry[]): Uint8Array {
  return encode({ v: WIRE_VERSION, peers: entries.map((e) => ({ n: e.peer, ver: e.version, l: e.links, ...(e.fastdp.length ? { f: e.fastdp } : {}) })) });
}

/** Valid entries of a message, and how many were dropped; null when the message is unusable. */
export function decodeLinks(buf: Uint8Array): { entries: LinksEntry[]; dropped: number } | null {
  if (buf.byteLength > LINKS_LIMITS.messageBytes) return null;
  let m: unknown;
  try {
    m = decode(buf, { maxStrLength: 64, maxArrayLength: Math.max(LINKS_LIMITS.peersPerMessage, LINKS_LIMITS.linksPerPeer), maxMapLength: 8, maxBinLength: 0, maxExtLength: 0 });
  } catch {
    return null;
  }
  if (typeof m !== 'object' || m === null || (m as { v?: unknown }).v !== WIRE_VERSION || !Array.isArray((m as { peers?: unknown }).peers)) return null;
  const entries: LinksEntry[] = [];
  let dropped = 0;
  for (const raw of (m as { peers: unknown[] }).peers) {
    const e = raw as { n?: unknown; ver?: unknown; l?: unknown; f?: unknown } | null;
    const isNames = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string' && NAME_RE.test(x));
    if (
      typeof e !== 'object' ||
      e === null ||
      typeof e.n !== 'string' ||
      !NAME_RE.test(e.n) ||
      typeof e.ver !== 'number' ||
      !Number.isSafeInteger(e.ver) ||
      e.ver < 0 ||
      !isNames(e.l) ||
      (e.f !== undefined && !isNames(e.f))
    ) {
      dropped++;
      continue;
    }
    entries.push({ peer: e.n, version: e.ver, links: [...new Set(e.l)], fastdp: e.f === undefined ? [] : [...new Set(e.f)] });
  }
  return { entries, dropped };
}

export interface LinksOptions {
  self: PeerName;
  /** Remote entries changed: recompute routes. */
  onChange(): void;
  now?(): number;
}

export class LinksGossiper implements Gossiper {
  private readonly entries = new Map<PeerName, LinksEntry>();
  private local: LinksEntry;
  readonly dropped: Record<LinksDropReason, number> = { 'malformed-message': 0, 'bad-entry': 0 };

  constructor(private readonly o: LinksOptions) {
    this.local = { peer: o.self, version: (o.now ?? Date.now)(), links: [], fastdp: [] };
  }

  /** Set our own links; returns the update to gossip, or undefined when nothing changed. */
  setLocal(links: Iterable<PeerName>): Uint8Array | undefined {
    return this.update('links', links);
  }

  /** Set the peers we send to over fastdp; returns the update to gossip, or undefined when nothing changed. */
  setFastdp(peers: Iterable<PeerName>): Uint8Array | undefined {
    return this.update('fastdp', peers);
  }

  private update(field: 'links' | 'fastdp', names: Iterable<PeerName>): Uint8Array | undefined {
    const sorted = [...new Set(names)].sort();
    const cur = this.local[field];
    if (sorted.length === cur.length && sorted.every((l, i) => l === cur[i])) return undefined;
    this.local = { ...this.local, version: Math.max(this.local.version + 1, (this.o.now ?? Date.now)()), [field]: sorted };
    return encodeEntries([this.local]);
  }

  /** What every peer (ours included) announces: direct sleeve links and fastdp peers. */
  announced(): Map<PeerName, { sleeve: readonly PeerName[]; fastdp: readonly PeerName[] }> {
    const m = new Map<PeerName, { sleeve: readonly PeerName[]; fastdp: readonly PeerName[] }>();
    for (const e of [...this.entries.values(), this.local]) m.set(e.peer, { sleeve: e.links, fastdp: e.fastdp });
    return m;
  }

  /** Every peer's announced links, ours included. */
  graph(): Map<PeerName, ReadonlySet<PeerName>> {
    const g = new Map<PeerName, ReadonlySet<PeerName>>();
    for (const e of this.entries.values()) g.set(e.peer, new Set(e.links));
    g.set(this.local.peer, new Set(this.local.links));
    return g;
  }

  forgetPeer(peer: PeerName): void {
    if (this.entries.delete(peer)) this.o.onChange();
  }

  gossip(): Uint8Array | undefined {
    return encodeEntries([...this.entries.values(), this.local]);
  }

  /** Fingerprint of what gossip() sends: each peer's (name, version). */
  stateHash(): number {
    const h = new SetHash();
    for (const e of [...this.entries.values(), this.local]) h.add(hashFields(e.peer, e.version));
    return h.value()[0];
  }

  onGossip(_from: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.merge(update);
  }

  onBroadcast(_origin: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.merge(update);
  }

  onUnicast(): void {
    // Gossip only.
  }

  private merge(update: Uint8Array): Uint8Array | undefined {
    const d = decodeLinks(update);
    if (!d) {
      this.dropped['malformed-message']++;
      return undefined;
    }
    this.dropped['bad-entry'] += d.dropped;
    const news: LinksEntry[] = [];
    for (const e of d.entries) {
      if (e.peer === this.o.self) {
        // Someone holds a stale entry of ours at least as new: outrank it.
        if (e.version > this.local.version) {
          this.local = { ...this.local, version: e.version + 1 };
          news.push(this.local);
        }
        continue;
      }
      const cur = this.entries.get(e.peer);
      if (cur && cur.version >= e.version) continue;
      this.entries.set(e.peer, e);
      news.push(e);
    }
    if (news.some((e) => e.peer !== this.o.self)) this.o.onChange();
    return news.length ? encodeEntries(news) : undefined;
  }
}
