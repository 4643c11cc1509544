// Topology gossip over the mesh's connections: publishing our own entry's
// changes (batched), handling what neighbours send (replies, pulls, relays),
// collecting peers nobody can reach, and finding peers to dial. The table
// logic is in topology.ts (pure); this module adds timers and sending.

import type { LogOnce, Logger } from './log.js';
import { formatPeerName, type PeerId } from './peer-name.js';
import { recordCount, recordPeer, unpackRecord, type TopologyMessage } from './topology-codec.js';
import { PULL_DELAY_MS, type Topology } from './topology.js';

export interface TopologySyncDeps {
  topology: Topology;
  timing: { publishDelayMs: number; publishIntervalMs: number; gcDelayMs: number };
  log: Logger;
  /** Counts of topology messages and entries sent, by kind. */
  sent: Map<string, number>;
  neighbours(): PeerId[];
  isConnected(peer: PeerId): boolean;
  send(to: PeerId, m: TopologyMessage): void;
  /** The table changed (after it was applied). */
  onChanged(): void;
  onPeerGone(peer: PeerId, nickname: string | undefined): void;
  /** We moved past a newer incarnation of our own name (persist it). */
  onIncarnation(incarnation: number): void;
  logOnce?: LogOnce;
}

export class TopologySync {
  private publishTimer: NodeJS.Timeout | undefined;
  private pullTimer: NodeJS.Timeout | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private lastPublish = 0;
  private stopped = false;

  constructor(private readonly d: TopologySyncDeps) {}

  stop(): void {
    this.stopped = true;
    for (const t of [this.publishTimer, this.gcTimer, this.pullTimer]) clearTimeout(t);
  }

  send(to: PeerId, m: TopologyMessage): void {
    const count = (k: string, n = 1): void => void this.d.sent.set(k, (this.d.sent.get(k) ?? 0) + n);
    if (m.type === 'update') {
      for (const e of m.entries) {
        count(e.kind);
        count(`${e.kind}-record-bytes`, e.kind === 'full' ? e.conns.length : e.upserts.length);
      }
    } else count(m.type);
    this.d.send(to, m);
  }

  /** Our digest to one neighbour: it pulls what it lacks and sends what we lack. */
  sendDigest(to: PeerId): void {
    this.send(to, { type: 'digest', items: this.d.topology.digest() });
  }

  onMessage(from: PeerId, m: TopologyMessage): void {
    const topo = this.d.topology;
    const res = topo.handle(from, m);
    for (const o of res.out) this.send(o.to, o.msg);
    if (res.selfBumped !== undefined) {
      this.d.onIncarnation(res.selfBumped);
      this.d.log.warn({ incarnation: res.selfBumped }, 'another incarnation of this peer name was seen; moved past it');
    }
    const neighbours = this.d.neighbours();
    for (const u of res.relay) {
      for (const to of topo.relayTargets(u.id, from, neighbours)) this.send(to, { type: 'update', entries: [u] });
    }
    if (res.pullLater) this.schedulePulls();
    if (res.changed) this.changed();
  }

  /** Our own connections changed: publish a delta, at most once per interval. */
  localChanged(): void {
    if (this.publishTimer || this.stopped) return;
    const { publishDelayMs, publishIntervalMs } = this.d.timing;
    const wait = Math.max(publishDelayMs, this.lastPublish + publishIntervalMs - Date.now());
    this.publishTimer = setTimeout(() => {
      this.publishTimer = undefined;
      this.lastPublish = Date.now();
      const delta = this.d.topology.publishLocal();
      if (!delta) return;
      for (const n of this.d.neighbours()) this.send(n, { type: 'update', entries: [delta] });
      this.changed();
    }, wait);
    this.publishTimer.unref?.();
  }

  /**
   * Peers someone lists a connection to that we are not connected to, and
   * where to dial them: all of them, or `max` picked at random. In a large
   * mesh with a connection limit a peer needs only a few candidates, and
   * handing the dialler a thousand targets (each with its own timer) after
   * every topology change cost more than the gossip itself.
   */
  discover(max = Infinity): Map<PeerId, string[]> {
    const self = this.d.topology.selfId;
    // First pass: who, and one place each is listed (reading only peer ids:
    // in a converged mesh almost every record names a known neighbour).
    const where = new Map<PeerId, { conns: Uint8Array; i: number }[]>();
    for (const e of this.d.topology.entries.values()) {
      if (e.id === self) continue;
      const n = recordCount(e.conns);
      for (let i = 0; i < n; i++) {
        const peer = recordPeer(e.conns, i);
        if (peer === self || this.d.isConnected(peer)) continue;
        const list = where.get(peer);
        if (list) list.push({ conns: e.conns, i });
        else where.set(peer, [{ conns: e.conns, i }]);
      }
    }
    let peers = [...where.keys()];
    if (peers.length > max) {
      // Partial Fisher-Yates: the first `max` of a random permutation.
      for (let k = 0; k < max; k++) {
        const j = k + Math.floor(Math.random() * (peers.length - k));
        [peers[k], peers[j]] = [peers[j]!, peers[k]!];
      }
      peers = peers.slice(0, max);
    }
    const found = new Map<PeerId, string[]>();
    for (const peer of peers) {
      const addresses: string[] = [];
      for (const { conns, i } of where.get(peer)!) {
        const a = unpackRecord(conns, i).address;
        if (!addresses.includes(a)) addresses.push(a);
      }
      found.set(peer, addresses);
    }
    return found;
  }

  private schedulePulls(): void {
    if (this.pullTimer || this.stopped) return;
    this.pullTimer = setTimeout(() => {
      this.pullTimer = undefined;
      for (const o of this.d.topology.duePulls()) this.send(o.to, o.msg);
      if (this.d.topology.pullsPending) this.schedulePulls();
    }, PULL_DELAY_MS);
    this.pullTimer.unref?.();
  }

  private changed(): void {
    this.d.onChanged();
    if (this.gcTimer || this.stopped) return;
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      this.collectGarbage();
    }, this.d.timing.gcDelayMs);
    this.gcTimer.unref?.();
  }

  /** Forget peers no listed connection reaches. */
  private collectGarbage(): void {
    const topo = this.d.topology;
    for (const id of topo.unreachable()) {
      if (this.d.isConnected(id)) continue;
      const nickname = topo.entries.get(id)?.nickname;
      if (topo.remove(id)) {
        this.d.log.info({ peer: formatPeerName(id), nickname }, `peer ${nickname ?? ''} (${formatPeerName(id)}) is gone`);
        this.d.onPeerGone(id, nickname);
      }
    }
  }
}
