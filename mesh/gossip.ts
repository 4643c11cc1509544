// Named gossip channels. The router moves opaque bytes and calls the
// channel's Gossiper; it never knows what a channel carries. Three ways to
// send: gossip (to some neighbours, relayed while new), broadcast (down the
// origin's spanning tree) and unicast (hop by hop). Broadcasts and unicasts
// on channels we do not know are still relayed, so peers with different
// channel sets coexist.

import type { MeshStats } from './mesh.js';
import type { LogOnce, Logger } from './log.js';
import { formatPeerName, parsePeerName, type PeerId } from './peer-name.js';
import type { Routes } from './routes.js';
import { decodeTopologyMessage, encodeTopologyMessage, type ChannelSummary, type TopologyMessage } from './topology-codec.js';
import { GossipRejected, type GossipChannel, type Gossiper } from './types.js';
import { Tag, type Message } from './wire/protocol.js';

export interface GossipRouterDeps {
  selfId: PeerId;
  neighbours(): PeerId[];
  send(to: PeerId, msg: Message, droppable: boolean): boolean;
  routes: Routes;
  stats: MeshStats;
  log: Logger;
  logOnce: LogOnce;
}

/** How many neighbours a gossip goes to: all in a small mesh, O(log N) in a large one. */
export function fanout(neighbours: number): number {
  return Math.min(neighbours, Math.max(4, 2 * Math.ceil(Math.log2(neighbours + 1))));
}

export class GossipRouter {
  private readonly channels = new Map<string, Gossiper>();

  constructor(private readonly d: GossipRouterDeps) {}

  register(name: string, gossiper: Gossiper): GossipChannel {
    if (this.channels.has(name)) throw new Error(`gossip channel ${name} is already registered`);
    if (Buffer.byteLength(name) === 0 || Buffer.byteLength(name) > 64) throw new Error(`bad channel name "${name}"`);
    this.channels.set(name, gossiper);
    return {
      name,
      gossip: (update) => this.spread(name, update, undefined),
      broadcast: (update) => {
        for (const to of this.d.routes.broadcastChildren(this.d.selfId)) this.sendMsg(to, { tag: Tag.BROADCAST, channel: name, origin: this.d.selfId, payload: update }, false);
      },
      unicast: (to, msg) => this.route({ tag: Tag.UNICAST, channel: name, src: this.d.selfId, dst: parsePeerName(to), payload: msg }),
    };
  }

  /** Send every channel's full state to one neighbour (new connection, anti-entropy). */
  sendAllState(to: PeerId): void {
    for (const [name, g] of this.channels) {
      const state = this.safe(name, () => g.gossip());
      if (state && state.length) this.sendMsg(to, { tag: Tag.GOSSIP, channel: name, payload: state }, true);
    }
  }

  /** Fingerprints of the channels that offer one (anti-entropy in brief). */
  fingerprints(): ChannelSummary[] {
    const out: ChannelSummary[] = [];
    for (const [name, g] of this.channels) {
      if (!g.stateHash) continue;
      const hash = this.safe(name, () => g.stateHash!());
      if (hash !== undefined) out.push({ name, hash: hash >>> 0 });
    }
    return out;
  }

  /** Full state of the channels without a fingerprint (they have no cheaper repair). */
  sendStateWithoutFingerprint(to: PeerId): void {
    this.sendStateOf(to, [...this.channels].filter(([, g]) => !g.stateHash).map(([n]) => n));
  }

  /** Compare a neighbour's fingerprints with ours: the channels (known here) whose state differs. */
  differing(theirs: readonly ChannelSummary[]): string[] {
    const ours = new Map(this.fingerprints().map((c) => [c.name, c.hash]));
    return theirs.filter((c) => ours.has(c.name) && ours.get(c.name) !== c.hash).map((c) => c.name);
  }

  sendStateOf(to: PeerId, names: readonly string[]): void {
    for (const name of names) {
      const g = this.channels.get(name);
      const state = g && this.safe(name, () => g.gossip());
      if (state && state.length) this.sendMsg(to, { tag: Tag.GOSSIP, channel: name, payload: state }, true);
    }
  }

  sendRaw(to: PeerId, channel: string, m: TopologyMessage): void {
    this.sendMsg(to, { tag: Tag.GOSSIP, channel, payload: encodeTopologyMessage(m) }, m.type !== 'update');
  }

  decodeTopology(from: PeerId, payload: Uint8Array): TopologyMessage | undefined {
    this.countBytes(this.d.stats.gossipBytesReceived, 'topology', payload.length);
    try {
      return decodeTopologyMessage(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
    } catch (err) {
      this.reject('topology', from, err);
      return undefined;
    }
  }

  onGossip(from: PeerId, channel: string, payload: Uint8Array): void {
    this.countBytes(this.d.stats.gossipBytesReceived, channel, payload.length);
    const g = this.channels.get(channel);
    if (!g) return void this.count('unknown-channel');
    const delta = this.safe(channel, () => g.onGossip(formatPeerName(from), payload), from);
    if (delta && delta.length) this.spread(channel, delta, from);
  }

  onBroadcast(from: PeerId, channel: string, origin: PeerId, payload: Uint8Array): void {
    this.countBytes(this.d.stats.gossipBytesReceived, channel, payload.length);
    if (origin === this.d.selfId) return;
    const g = this.channels.get(channel);
    // Unknown channels are relayed as they are.
    const relay = g ? this.safe(channel, () => g.onBroadcast(formatPeerName(origin), payload), from) : payload;
    if (!relay || !relay.length) return;
    for (const to of this.d.routes.broadcastChildren(origin)) {
      if (to !== from) this.sendMsg(to, { tag: Tag.BROADCAST, channel, origin, payload: relay }, false);
    }
  }

  onUnicast(channel: string, src: PeerId, dst: PeerId, payload: Uint8Array): void {
    if (dst !== this.d.selfId) {
      if (!this.route({ tag: Tag.UNICAST, channel, src, dst, payload })) this.count('no-route');
      return;
    }
    this.countBytes(this.d.stats.gossipBytesReceived, channel, payload.length);
    const g = this.channels.get(channel);
    if (!g) return void this.count('unknown-channel');
    this.safe(channel, () => g.onUnicast(formatPeerName(src), payload), src);
  }

  private route(m: Extract<Message, { tag: typeof Tag.UNICAST }>): boolean {
    const hop = this.d.routes.nextHop(m.dst);
    return hop !== undefined && this.sendMsg(hop, m, false);
  }

  private spread(channel: string, payload: Uint8Array, except: PeerId | undefined): void {
    const ns = this.d.neighbours().filter((n) => n !== except);
    for (const to of sample(ns, fanout(ns.length))) this.sendMsg(to, { tag: Tag.GOSSIP, channel, payload }, true);
  }

  private sendMsg(to: PeerId, m: Message, droppable: boolean): boolean {
    const ok = this.d.send(to, m, droppable);
    if (ok && 'payload' in m && 'channel' in m) this.countBytes(this.d.stats.gossipBytesSent, m.channel, m.payload.length);
    return ok;
  }

  /** Run a Gossiper hook; a throw is counted and logged, never propagated. */
  private safe<T>(channel: string, fn: () => T, from?: PeerId): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.reject(channel, from, err);
      return undefined;
    }
  }

  private reject(channel: string, from: PeerId | undefined, err: unknown): void {
    const rejected = err instanceof GossipRejected;
    this.count(rejected ? `rejected:${channel}` : `error:${channel}`);
    const msg = err instanceof Error ? err.message : String(err);
    const who = from === undefined ? 'local' : formatPeerName(from);
    if (this.d.logOnce.shouldLog(`gossip ${channel} ${who}`, msg)) {
      this.d.log.warn({ channel, peer: who }, `${rejected ? 'rejected' : 'could not process'} ${channel} gossip from ${who}: ${msg}`);
    }
  }

  private count(reason: string): void {
    const m = this.d.stats.droppedMessages;
    m.set(reason, (m.get(reason) ?? 0) + 1);
  }

  private countBytes(m: Map<string, number>, channel: string, n: number): void {
    m.set(channel, (m.get(channel) ?? 0) + n);
  }
}

function sample<T>(items: T[], n: number): T[] {
  if (n >= items.length) return items;
  const copy = items.slice();
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(Math.random() * (copy.length - i));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}
