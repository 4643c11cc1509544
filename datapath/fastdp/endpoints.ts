// The "datapath endpoints" gossip channel: each peer advertises its VTEP
// (underlay address of its vxlan), VNI, heartbeat MAC and its pods' MAC/IP.
// Entries merge by per-peer version; only the owner changes its entry.
//
// Everything is validated at decode time, before anything is merged:
// - an undecodable message or one of the wrong shape is refused: counted,
//   logged once, nothing merged or relayed (the hook returns undefined
//   rather than throwing the mesh's GossipRejected: datapath/ may import only
//   types from mesh/, docs/architecture.md);
// - an entry with a bad peer name, version, VTEP or VNI is dropped whole;
// - a pod with a malformed MAC or an IP outside the overlay range is
//   dropped, the rest of its peer's entry is kept;
// - an entry for a peer the topology does not know is parked: not
//   programmed, not relayed, adopted if the peer shows up (onTopologyChanged),
//   else replaced or forgotten.
// Each kind of problem is counted and logged once per (reason, peer, value).

import { isIP } from 'node:net';
import { decode, encode } from '@msgpack/msgpack';
import type { Gossiper, PeerName } from '../../mesh/types.js';
import { hashFields, SetHash } from '../../crypto/fingerprint.js';
import { parseRange, type Cidr } from './cidr.js';
import type { PodEndpoint } from './model.js';

/** A message that cannot be used at all (decodeEntries). */
export class EndpointsDecodeError extends Error {
  override readonly name = 'EndpointsDecodeError';
}

export const ENDPOINTS_CHANNEL = 'datapath-endpoints';
const WIRE_VERSION = 1;

/** Decode-time limits. */
export const LIMITS = {
  messageBytes: 16 << 20,
  peersPerMessage: 4096,
  podsPerPeer: 65536,
  parkedPeers: 1024,
  loggedKeys: 1000,
} as const;

export interface EndpointsEntry {
  peer: PeerName;
  version: number;
  vtep: string;
  vni: number;
  heartbeatMac?: string;
  pods: PodEndpoint[];
  /** The peer left the mesh (`meshnet reset`): program nothing for it; the entry only keeps its version. */
  left?: boolean;
}

export interface StoredEntry extends EndpointsEntry {
  /** Local time (opts.now) when this version was merged. */
  updatedAt: number;
}

export type DropReason =
  | 'malformed-message'
  | 'bad-entry'
  | 'bad-vtep'
  | 'bad-vni'
  | 'bad-heartbeat-mac'
  | 'too-many-pods'
  | 'bad-mac'
  | 'bad-ip'
  | 'ip-out-of-range'
  | 'unknown-peer';

export interface EndpointsOptions {
  self: PeerName;
  /** The overlay range (--ipalloc-range); pod IPs outside it are dropped. */
  range: string;
  /** Whether the topology knows `peer` now. */
  isKnownPeer(peer: PeerName): boolean;
  /** Called once per distinct problem. */
  log?(msg: string, fields: Record<string, unknown>): void;
  /** Remote entries changed: recompute the desired state. */
  onChange?(): void;
  now?(): number;
}

const NAME_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A unicast, non-zero MAC in canonical form. */
function isUnicastMac(m: unknown): m is string {
  return typeof m === 'string' && MAC_RE.test(m) && (parseInt(m.slice(0, 2), 16) & 1) === 0 && m !== '00:00:00:00:00:00';
}

/** A short printable form of an untrusted value, for logs. */
function show(v: unknown, max: number): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v) ?? typeof v;
  } catch {
    s = typeof v;
  }
  return s.slice(0, max);
}

// Wire shape: { v: 1, peers: [{ n, ver, vtep, vni, hb?, pods: [[mac, ip], …] }] }
interface WireEntry {
  n: unknown;
  ver: unknown;
  vtep: unknown;
  vni: unknown;
  hb?: unknown;
  pods: unknown;
  gone?: unknown;
}

export function encodeEntries(entries: readonly EndpointsEntry[]): Uint8Array {
  const peers = entries.map((e) => ({
    n: e.peer,
    ver: e.version,
    vtep: e.vtep,
    vni: e.vni,
    ...(e.heartbeatMac ? { hb: e.heartbeatMac } : {}),
    pods: e.pods.map((p) => [p.mac, p.ip]),
    ...(e.left ? { gone: true } : {}),
  }));
  return encode({ v: WIRE_VERSION, peers });
}

export interface DecodeResult {
  entries: EndpointsEntry[];
  drops: { reason: DropReason; peer?: string; value?: string }[];
}

/** Decode and validate; throws EndpointsDecodeError when the message as a whole is unusable. */
export function decodeEntries(buf: Uint8Array, range: Cidr): DecodeResult {
  if (buf.byteLength > LIMITS.messageBytes) throw new EndpointsDecodeError(`endpoints: message of ${buf.byteLength} bytes exceeds ${LIMITS.messageBytes}`);
  let msg: unknown;
  try {
    // The decoder enforces size limits while parsing, before allocating.
    msg = decode(buf, { maxArrayLength: LIMITS.podsPerPeer, maxMapLength: 16, maxStrLength: 256, maxBinLength: 0, maxExtLength: 0 });
  } catch (err) {
    throw new EndpointsDecodeError(`endpoints: undecodable message: ${(err as Error).message}`);
  }
  if (typeof msg !== 'object' || msg === null) throw new EndpointsDecodeError('endpoints: message is not a map');
  const m = msg as { v?: unknown; peers?: unknown };
  if (m.v !== WIRE_VERSION) throw new EndpointsDecodeError(`endpoints: unsupported version ${JSON.stringify(m.v)}`);
  if (!Array.isArray(m.peers)) throw new EndpointsDecodeError('endpoints: peers is not a list');
  if (m.peers.length > LIMITS.peersPerMessage) throw new EndpointsDecodeError(`endpoints: ${m.peers.length} peers exceeds ${LIMITS.peersPerMessage}`);

  const out: DecodeResult = { entries: [], drops: [] };
  for (const raw of m.peers as unknown[]) {
    if (typeof raw !== 'object' || raw === null) {
      out.drops.push({ reason: 'bad-entry' });
      continue;
    }
    const w = raw as WireEntry;
    const peer = typeof w.n === 'string' && NAME_RE.test(w.n) ? w.n : undefined;
    if (!peer || !Number.isSafeInteger(w.ver) || (w.ver as number) < 0 || !Array.isArray(w.pods)) {
      out.drops.push({ reason: 'bad-entry', peer: typeof w.n === 'string' ? w.n.slice(0, 64) : undefined });
      continue;
    }
    if (typeof w.vtep !== 'string' || !isIP(w.vtep)) {
      out.drops.push({ reason: 'bad-vtep', peer, value: show(w.vtep, 64) });
      continue;
    }
    if (!Number.isInteger(w.vni) || (w.vni as number) < 0 || (w.vni as number) > 0xffffff) {
      out.drops.push({ reason: 'bad-vni', peer, value: show(w.vni, 32) });
      continue;
    }
    if ((w.pods as unknown[]).length > LIMITS.podsPerPeer) {
      out.drops.push({ reason: 'too-many-pods', peer, value: String((w.pods as unknown[]).length) });
      continue;
    }
    let heartbeatMac: string | undefined;
    if (w.hb !== undefined && w.hb !== null) {
      if (isUnicastMac(w.hb)) heartbeatMac = w.hb;
      else out.drops.push({ reason: 'bad-heartbeat-mac', peer, value: show(w.hb, 64) });
    }
    const pods: PodEndpoint[] = [];
    for (const p of w.pods as unknown[]) {
      const [mac, ip] = Array.isArray(p) ? (p as unknown[]) : [];
      if (!isUnicastMac(mac)) {
        out.drops.push({ reason: 'bad-mac', peer, value: show(mac, 64) });
        continue;
      }
      if (typeof ip !== 'string' || !isIP(ip)) {
        out.drops.push({ reason: 'bad-ip', peer, value: show(ip, 64) });
        continue;
      }
      if (!range.contains(ip)) {
        out.drops.push({ reason: 'ip-out-of-range', peer, value: ip });
        continue;
      }
      pods.push({ mac, ip });
    }
    out.entries.push({ peer, version: w.ver as number, vtep: w.vtep, vni: w.vni as number, ...(heartbeatMac ? { heartbeatMac } : {}), pods, ...(w.gone === true ? { left: true } : {}) });
  }
  return out;
}

export interface LocalEndpoints {
  vtep: string;
  vni: number;
  heartbeatMac?: string;
  pods: PodEndpoint[];
  /** We are leaving the mesh: peers drop our entries at once. */
  left?: boolean;
}

export class EndpointsGossiper implements Gossiper {
  private readonly range: Cidr;
  private readonly entries = new Map<PeerName, StoredEntry>();
  private readonly parked = new Map<PeerName, EndpointsEntry>();
  private local: EndpointsEntry | undefined;
  private readonly logged = new Set<string>();
  private readonly now: () => number;
  readonly dropped: Record<DropReason, number> = {
    'malformed-message': 0,
    'bad-entry': 0,
    'bad-vtep': 0,
    'bad-vni': 0,
    'bad-heartbeat-mac': 0,
    'too-many-pods': 0,
    'bad-mac': 0,
    'bad-ip': 0,
    'ip-out-of-range': 0,
    'unknown-peer': 0,
  };

  constructor(private readonly opts: EndpointsOptions) {
    this.range = parseRange(opts.range);
    this.now = opts.now ?? Date.now;
  }

  /**
   * Set our own entry. Returns the update to send (GossipChannel.gossip).
   * Versions start at the wall clock (ms) so a restarted peer outranks its
   * previous life; seeing our own entry with a higher version bumps past it.
   */
  setLocal(l: LocalEndpoints): Uint8Array {
    const version = Math.max(this.local ? this.local.version + 1 : 0, this.now());
    this.local = { peer: this.opts.self, version, vtep: l.vtep, vni: l.vni, ...(l.heartbeatMac ? { heartbeatMac: l.heartbeatMac } : {}), pods: l.left ? [] : [...l.pods], ...(l.left ? { left: true } : {}) };
    return encodeEntries([this.local]);
  }

  /** Entries waiting for their peer to appear in the topology. */
  get parkedCount(): number {
    return this.parked.size;
  }

  /** Remote peers' validated entries (peers that left excluded). */
  remoteEntries(): StoredEntry[] {
    return [...this.entries.values()].filter((e) => !e.left);
  }

  /** Forget a peer that left the topology. True when it had an entry. */
  forgetPeer(peer: PeerName): boolean {
    this.parked.delete(peer);
    const had = this.entries.delete(peer);
    if (had) this.opts.onChange?.();
    return had;
  }

  /** Adopt parked entries whose peer the topology now knows; returns them as an update to relay. */
  onTopologyChanged(): Uint8Array | undefined {
    const adopted: EndpointsEntry[] = [];
    for (const [peer, e] of this.parked) {
      if (!this.opts.isKnownPeer(peer)) continue;
      this.parked.delete(peer);
      if (this.mergeOne(e)) adopted.push(e);
    }
    for (const peer of [...this.entries.keys()]) if (!this.opts.isKnownPeer(peer)) this.entries.delete(peer);
    if (adopted.length) this.opts.onChange?.();
    return adopted.length ? encodeEntries(adopted) : undefined;
  }

  gossip(): Uint8Array | undefined {
    const all = [...this.entries.values()].map(({ updatedAt: _u, ...e }) => e);
    if (this.local) all.push(this.local);
    return all.length ? encodeEntries(all) : undefined;
  }

  /** Fingerprint of what gossip() sends: each peer's (name, version). */
  stateHash(): number {
    const h = new SetHash();
    for (const e of this.entries.values()) h.add(hashFields(e.peer, e.version));
    if (this.local) h.add(hashFields(this.local.peer, this.local.version));
    return h.value()[0];
  }

  onGossip(_from: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.merge(update);
  }

  onBroadcast(_origin: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.merge(update);
  }

  onUnicast(): void {
    // The channel uses gossip only.
  }

  private note(reason: DropReason, peer?: string, value?: string): void {
    this.dropped[reason]++;
    const key = `${reason}|${peer ?? ''}|${value ?? ''}`;
    if (this.logged.has(key) || this.logged.size >= LIMITS.loggedKeys) return;
    this.logged.add(key);
    this.opts.log?.(`datapath endpoints: ignored ${reason}`, { reason, peer, value });
  }

  /** Merge one validated entry; true when it was news. */
  private mergeOne(e: EndpointsEntry): boolean {
    const cur = this.entries.get(e.peer);
    if (cur && cur.version >= e.version) return false;
    this.entries.set(e.peer, { ...e, updatedAt: this.now() });
    return true;
  }

  private merge(update: Uint8Array): Uint8Array | undefined {
    let decoded: DecodeResult;
    try {
      decoded = decodeEntries(update, this.range);
    } catch (err) {
      if (!(err instanceof EndpointsDecodeError)) throw err;
      this.note('malformed-message', undefined, err.message.slice(0, 120));
      return undefined;
    }
    for (const d of decoded.drops) this.note(d.reason, d.peer, d.value);
    const news: EndpointsEntry[] = [];
    let changed = false;
    for (const e of decoded.entries) {
      if (e.peer === this.opts.self) {
        // Someone holds a stale entry of ours with a version at least ours: outrank it.
        if (this.local && e.version > this.local.version) {
          this.local = { ...this.local, version: e.version + 1 };
          news.push(this.local);
        }
        continue;
      }
      if (!this.opts.isKnownPeer(e.peer)) {
        this.note('unknown-peer', e.peer);
        const p = this.parked.get(e.peer);
        if ((!p || p.version < e.version) && (p || this.parked.size < LIMITS.parkedPeers)) this.parked.set(e.peer, e);
        continue;
      }
      if (this.mergeOne(e)) {
        news.push(e);
        changed = true;
      }
    }
    if (changed) this.opts.onChange?.();
    return news.length ? encodeEntries(news) : undefined;
  }
}
