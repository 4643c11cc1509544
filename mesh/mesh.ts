// The mesh router: accepts and dials connections, keeps one connection per
// peer, runs the topology and the gossip channels over them, and hands every
// established connection to the datapath overlay. This is the composition of
// the mesh's parts; each part (handshake, connection, topology, routes,
// connection maker, gossip) lives in its own module.

import { EventEmitter } from 'node:events';
import { Connection, type ConnectionTiming } from './connection.js';
import { ConnectionMaker, DEFAULT_BACKOFF, type BackoffPolicy, type TargetStatus } from './connection-maker.js';
import { GossipRouter } from './gossip.js';
import { HandshakeFailure, runHandshake, type FailureKind, type Secret } from './handshake.js';
import { LogOnce, silentLogger, type Logger } from './log.js';
import { formatPeerName, parsePeerName, randomUid, type PeerId } from './peer-name.js';
import { Routes } from './routes.js';
import { TokenBucket } from './token-bucket.js';
import { SourceLimiter, type SourceLimits } from './source-limiter.js';
import { splitAddress, unpackRecords, type TopologyMessage } from './topology-codec.js';
import { Topology } from './topology.js';
import { TopologySync } from './topology-sync.js';
import type { ByteStream, Transport } from './transport.js';
import type { Identity } from './wire/identity.js';
import { PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION, Tag, type Message } from './wire/protocol.js';
import type { Features, GossipChannel, Gossiper, MeshEvents, MeshHandle, Overlay, OverlayConnection, PeerInfo, PeerName } from './types.js';

export interface MeshTiming extends ConnectionTiming {
  handshakeTimeoutMs: number;
  /** Batch local topology changes for this long before publishing. */
  publishDelayMs: number;
  /** Publish at most once per this interval (a burst of new connections is one update). */
  publishIntervalMs: number;
  /** Collect unreachable peers this long after the topology changed. */
  gcDelayMs: number;
  /** Period of anti-entropy (topology digest, full channel state) with a random neighbour. */
  antiEntropyMs: number;
  dialTimeoutMs: number;
}

export const DEFAULT_TIMING: MeshTiming = {
  heartbeatMs: 5_000,
  deadlineMs: 20_000,
  maxBacklogBytes: 8 * 1024 * 1024,
  handshakeTimeoutMs: 10_000,
  publishDelayMs: 200,
  publishIntervalMs: 1_000,
  gcDelayMs: 1_000,
  antiEntropyMs: 30_000,
  dialTimeoutMs: 10_000,
};

export interface MeshConfig {
  name: PeerName;
  nickname: string;
  /** Persisted start counter of this host (see topology.ts). */
  incarnation: number;
  transport: Transport;
  /** Port we accept on, announced so others can dial us. */
  listenPort: number;
  /** Default port for targets given without one. */
  defaultPort?: number;
  secrets?: readonly Secret[];
  connLimit?: number;
  overlay?: Overlay;
  /** Features announced in the handshake, besides the overlay's. */
  features?: Features;
  /** Refuse a peer whose features are incompatible: return the reason. */
  checkFeatures?: (remote: Features) => string | undefined;
  /** Inbound handshakes: burst and refill interval. */
  acceptRate?: { burst: number; intervalMs: number };
  /** Inbound handshakes per source address (mesh/source-limiter.ts). */
  sourceLimits?: SourceLimits;
  timing?: Partial<MeshTiming>;
  backoff?: Partial<BackoffPolicy>;
  logger?: Logger;
  /** Learnt a newer incarnation of our own name (persist it). */
  onIncarnation?: (incarnation: number) => void;
}

export interface ConnectionStatus {
  peer: PeerName | null;
  nickname: string | null;
  address: string;
  state: 'established' | 'connecting' | 'retrying' | 'failed';
  datapath: 'fastdp' | 'sleeve' | null;
  encrypted: boolean;
  outbound: boolean;
  info: string;
  /** When an established connection came up (ISO time): a reconnect shows as a later one. */
  since?: string;
}

export interface MeshStats {
  handshakeFailures: Map<FailureKind | 'rate-limited' | 'source-rate-limited' | 'source-pending', number>;
  gossipBytesSent: Map<string, number>;
  gossipBytesReceived: Map<string, number>;
  droppedMessages: Map<string, number>;
  /** Topology messages and entries sent, by kind (digest, pull, full, delta). */
  topologySent: Map<string, number>;
  connectionsClosed: number;
}

interface InboundFailure {
  address: string;
  reason: string;
  kind: string;
  at: number;
}

const TOPOLOGY_CHANNEL = 'topology';
const RECENT_FAILURE_MS = 120_000;

/** Identity feature set by a dial that discovery chose (not a `connect` or command-line target). */
export const DISCOVERY_FEATURE = 'discovered';
/**
 * Identity feature of a dial made while the dialer has no established
 * connection: a newcomer (or an isolated peer). Only such a dial may take
 * the place of another connection at a full acceptor: a member re-dialling
 * its targets must not, or two peers told of the same full one would
 * evict each other for ever.
 */
export const JOINING_FEATURE = 'joining';

export class Mesh extends EventEmitter implements MeshHandle {
  readonly localName: PeerName;
  readonly localNickname: string;
  readonly localUid: string;
  readonly selfId: PeerId;
  readonly topology: Topology;
  readonly routes: Routes;
  readonly stats: MeshStats = {
    handshakeFailures: new Map(),
    gossipBytesSent: new Map(),
    gossipBytesReceived: new Map(),
    droppedMessages: new Map(),
    topologySent: new Map(),
    connectionsClosed: 0,
  };
  private readonly connections = new Map<PeerId, Connection>();
  private readonly overlayConns = new Map<Connection, OverlayConnection>();
  private readonly handshaking = new Set<ByteStream>();
  /** Outbound dials not yet at the handshake stage. */
  private dialing = 0;
  /** Connections discovery made (our dial to a discovered target, or a peer's dial marked as such): the ones `makeRoom` may close. */
  private readonly discoveredConns = new WeakSet<Connection>();
  private readonly maker: ConnectionMaker;
  private readonly gossip: GossipRouter;
  private readonly timing: MeshTiming;
  private readonly log: Logger;
  private readonly logOnce = new LogOnce();
  private readonly acceptBucket: TokenBucket;
  private readonly sourceLimiter: SourceLimiter;
  private readonly inboundFailures = new Map<string, InboundFailure>();
  /** UIDs of peers we have been connected to, to recognise restarts. */
  private readonly knownUids = new Map<PeerId, string>();
  private secrets: readonly Secret[];
  private incarnation: number;
  private readonly sync: TopologySync;
  private discoveryTimer: NodeJS.Timeout | undefined;
  private antiEntropyTimer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(private readonly config: MeshConfig) {
    super();
    this.localName = config.name;
    this.selfId = parsePeerName(config.name);
    this.localNickname = config.nickname;
    this.localUid = randomUid();
    this.incarnation = config.incarnation;
    this.secrets = config.secrets ?? [];
    this.timing = { ...DEFAULT_TIMING, ...config.timing };
    this.log = config.logger ?? silentLogger;
    const rate = config.acceptRate ?? { burst: 20, intervalMs: 50 };
    this.acceptBucket = new TokenBucket(rate.burst, rate.intervalMs);
    this.sourceLimiter = new SourceLimiter(config.sourceLimits);
    this.topology = new Topology({ id: this.selfId, uid: BigInt(this.localUid), incarnation: this.incarnation, nickname: config.nickname });
    this.routes = new Routes(this.topology);
    this.gossip = new GossipRouter({
      selfId: this.selfId,
      neighbours: () => [...this.connections.keys()],
      send: (to, msg, droppable) => this.sendTo(to, msg, droppable),
      routes: this.routes,
      stats: this.stats,
      log: this.log,
      logOnce: this.logOnce,
    });
    this.sync = new TopologySync({
      topology: this.topology,
      timing: this.timing,
      log: this.log,
      sent: this.stats.topologySent,
      neighbours: () => [...this.connections.keys()],
      isConnected: (peer) => this.connections.has(peer),
      send: (to, m) => this.sendTopology(to, m),
      onChanged: () => this.topologyChanged(),
      onPeerGone: (peer) => this.emit('peer-removed', formatPeerName(peer)),
      onIncarnation: (inc) => {
        this.incarnation = inc;
        this.config.onIncarnation?.(inc);
      },
    });
    this.maker = new ConnectionMaker(
      {
        dial: (address, signal, direct) => this.dial(address, signal, direct),
        isConnected: (peer) => this.connections.has(peer),
        isolated: () => this.connections.size === 0,
        // Discovery leaves a quarter of the limit free, on both ends (see
        // validate): a peer joining a large mesh finds someone who will accept it.
        canDial: (direct) => this.connections.size + this.dialing + this.handshaking.size < (direct ? this.connLimit : Math.ceil(this.connLimit * 0.75)),
      },
      { ...DEFAULT_BACKOFF, ...config.backoff },
    );
  }

  get connLimit(): number {
    const l = this.config.connLimit ?? 200;
    return l <= 0 ? Infinity : l;
  }

  get encrypted(): boolean {
    return this.secrets.length > 0;
  }

  // ---- lifecycle ----------------------------------------------------------------

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.config.transport.listen((s) => this.accept(s));
    this.antiEntropyTimer = setInterval(() => this.antiEntropy(), this.timing.antiEntropyMs);
    this.antiEntropyTimer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.maker.stop();
    this.sync.stop();
    clearTimeout(this.discoveryTimer);
    clearInterval(this.antiEntropyTimer);
    for (const s of this.handshaking) s.destroy();
    for (const c of [...this.connections.values()]) c.close('peer is shutting down');
    await this.config.transport.close();
  }

  /**
   * Plug in the datapath. The overlay usually needs the mesh (gossip
   * channels, routes), so it is created after the mesh and set before start().
   */
  setOverlay(overlay: Overlay): void {
    if (this.started) throw new Error('setOverlay must be called before start()');
    this.config.overlay = overlay;
  }

  /** Replace the accepted passwords (rotation); existing connections keep their keys. */
  setSecrets(secrets: readonly Secret[]): void {
    if (secrets.length > 0 !== this.secrets.length > 0) throw new Error('cannot switch encryption on or off while running');
    this.secrets = secrets;
  }

  // ---- targets ----------------------------------------------------------------

  /** Add targets ("host[:port]"); with replace, they become the only direct targets. */
  connect(addresses: string[], replace = false, source = 'connect'): void {
    const norm = addresses.map((a) => this.normalizeAddress(a));
    if (replace) this.maker.replaceDirect(norm, source);
    else for (const a of norm) this.maker.addDirect(a, source);
  }

  forget(addresses: string[]): string[] {
    return addresses.map((a) => this.normalizeAddress(a)).filter((a) => this.maker.forget(a));
  }

  targets(): TargetStatus[] {
    return this.maker.status();
  }

  directTargets(): string[] {
    return this.maker.directAddresses();
  }

  normalizeAddress(address: string): string {
    const port = this.config.defaultPort ?? this.config.listenPort;
    try {
      const { ip, port: p } = splitAddress(address);
      return ip.includes(':') ? `[${ip}]:${p}` : `${ip}:${p}`;
    } catch {
      return address.includes(':') && !address.startsWith('[') ? `[${address}]:${port}` : `${address}:${port}`;
    }
  }

  // ---- MeshHandle ---------------------------------------------------------------

  registerChannel(name: string, gossiper: Gossiper): GossipChannel {
    if (name === TOPOLOGY_CHANNEL) throw new Error(`channel name ${name} is reserved`);
    return this.gossip.register(name, gossiper);
  }

  peers(): PeerInfo[] {
    return [...this.topology.entries.values()].map((e) => ({
      name: formatPeerName(e.id),
      nickname: e.nickname,
      uid: e.uid.toString(),
      version: e.version,
      connections: unpackRecords(e.conns).map((c) => ({
        peer: formatPeerName(c.peer),
        address: c.address,
        outbound: c.outbound,
        established: c.established,
      })),
    }));
  }

  isReachable(peer: PeerName): boolean {
    const id = parsePeerName(peer);
    return id === this.selfId || this.routes.nextHop(id) !== undefined;
  }

  nextHop(peer: PeerName): PeerName | undefined {
    const hop = this.routes.nextHop(parsePeerName(peer));
    return hop === undefined ? undefined : formatPeerName(hop);
  }

  broadcastChildren(origin: PeerName): PeerName[] {
    return this.routes.broadcastChildren(parsePeerName(origin)).map(formatPeerName);
  }

  override on<E extends keyof MeshEvents>(event: E, listener: (...args: MeshEvents[E]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }

  override off<E extends keyof MeshEvents>(event: E, listener: (...args: MeshEvents[E]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }

  // ---- status -------------------------------------------------------------------

  connectionStatus(): ConnectionStatus[] {
    const out: ConnectionStatus[] = [];
    for (const c of this.connections.values()) {
      const ov = this.overlayConns.get(c);
      out.push({
        peer: formatPeerName(c.peer),
        nickname: c.remote.nickname,
        address: c.outbound ? c.dialAddress : c.remoteAddress,
        state: 'established',
        datapath: ov?.datapath ?? null,
        encrypted: c.encrypted,
        outbound: c.outbound,
        info: ov?.info ?? '',
        since: new Date(c.since).toISOString(),
      });
    }
    for (const t of this.maker.status()) {
      if (t.state === 'connected' || (t.peer !== undefined && this.connections.has(t.peer))) continue;
      const known = t.peer !== undefined ? this.topology.entries.get(t.peer) : undefined;
      out.push({
        peer: t.peer !== undefined ? formatPeerName(t.peer) : null,
        nickname: known?.nickname ?? null,
        address: t.address,
        state: t.state === 'waiting' ? 'connecting' : t.state,
        datapath: null,
        encrypted: this.encrypted,
        outbound: true,
        info: [t.lastError, t.nextTryAt ? `next try in ${Math.max(0, Math.round((t.nextTryAt - Date.now()) / 1000))} s` : '']
          .filter(Boolean)
          .join('; '),
      });
    }
    const now = Date.now();
    for (const [key, f] of this.inboundFailures) {
      if (now - f.at > RECENT_FAILURE_MS) {
        this.inboundFailures.delete(key);
        continue;
      }
      out.push({ peer: null, nickname: null, address: f.address, state: 'failed', datapath: null, encrypted: this.encrypted, outbound: false, info: f.reason });
    }
    return out;
  }

  /** Live connections, for the datapath and metrics. */
  liveConnections(): Connection[] {
    return [...this.connections.values()];
  }

  // ---- connections ----------------------------------------------------------------

  private accept(stream: ByteStream): void {
    if (this.stopped) return stream.destroy();
    // The address's own limit first: a refused flooder does not spend the shared tokens.
    const ip = stream.remoteIp;
    const admission = this.sourceLimiter.admit(ip);
    if (admission !== 'ok') {
      this.count(this.stats.handshakeFailures, admission === 'rate' ? 'source-rate-limited' : 'source-pending');
      if (this.logOnce.shouldLog(`source-limit ${ip}`, '')) this.log.warn({ remote: ip, limit: admission }, `inbound connections from ${ip} over its limit; dropping them`);
      return stream.destroy();
    }
    if (!this.acceptBucket.take()) {
      this.sourceLimiter.done(ip);
      this.count(this.stats.handshakeFailures, 'rate-limited');
      if (this.logOnce.shouldLog('rate-limit', '')) this.log.warn({ remote: ip }, 'inbound connection rate limit reached; dropping connections');
      return stream.destroy();
    }
    void this.handshake(stream, false, `${ip}:${stream.remotePort}`)
      .catch(() => undefined)
      .finally(() => this.sourceLimiter.done(ip));
  }

  private async dial(address: string, signal?: AbortSignal, direct = true): Promise<PeerId> {
    const { ip, port } = splitAddress(address);
    // Counted until the handshake takes over (then `handshaking` counts it), so
    // the limit sees dials that have not reached the peer yet.
    this.dialing++;
    let stream: ByteStream;
    try {
      stream = await this.config.transport.dial(ip, port, this.timing.dialTimeoutMs);
    } finally {
      this.dialing--;
    }
    if (signal?.aborted) {
      stream.destroy();
      throw new HandshakeFailure('closed', 'target forgotten');
    }
    return this.handshake(stream, true, address, signal, direct);
  }

  private async handshake(stream: ByteStream, outbound: boolean, address: string, signal?: AbortSignal, direct = true): Promise<PeerId> {
    this.handshaking.add(stream);
    try {
      const identity: Omit<Identity, 'connId'> = {
        name: this.selfId,
        nickname: this.localNickname,
        uid: this.localUid,
        incarnation: this.incarnation,
        listenPort: this.config.listenPort,
        // A dial found by discovery says so: the acceptor keeps its reserve for joiners.
        features: { ...this.config.features, ...this.config.overlay?.features(), ...(outbound && !direct ? { [DISCOVERY_FEATURE]: '1' } : {}), ...(outbound && this.connections.size === 0 ? { [JOINING_FEATURE]: '1' } : {}) },
      };
      const hs = await runHandshake(stream, {
        outbound,
        identity,
        secrets: this.secrets,
        versionRange: { min: PROTOCOL_MIN_VERSION, max: PROTOCOL_MAX_VERSION },
        timeoutMs: this.timing.handshakeTimeoutMs,
        validate: (remote, connUid) => this.validate(remote, connUid, !outbound && remote.features[JOINING_FEATURE] === '1'),
      });
      this.handshaking.delete(stream);
      // Record where the peer can be dialled as an IP (targets may be host names).
      const ip = stream.remoteIp.includes(':') ? `[${stream.remoteIp}]` : stream.remoteIp;
      const dialAddress = `${ip}:${outbound ? splitAddress(address).port : hs.remote.listenPort}`;
      const conn = new Connection(stream, hs, outbound, dialAddress, this.timing, {
        onMessage: (c, m) => this.onMessage(c, m),
        onClosed: (c, reason) => this.onClosed(c, reason),
      });
      if (outbound ? !direct : hs.remote.features[DISCOVERY_FEATURE] === '1') this.discoveredConns.add(conn);
      if (signal?.aborted) {
        conn.close('target forgotten');
        throw new HandshakeFailure('closed', 'target forgotten');
      }
      this.register(conn);
      return conn.peer;
    } catch (err) {
      this.handshaking.delete(stream);
      stream.destroy();
      const failure = err instanceof HandshakeFailure ? err : new HandshakeFailure('protocol', String(err));
      if (failure.kind !== 'duplicate') this.count(this.stats.handshakeFailures, failure.kind);
      const key = `${outbound ? 'out' : 'in'} ${address.replace(/:\d+$/, '')}`;
      if (failure.kind !== 'duplicate' && this.logOnce.shouldLog(key, failure.message)) {
        this.log.warn({ address, outbound, kind: failure.kind }, `connection ${outbound ? 'to' : 'from'} ${address} refused: ${failure.message}`);
      }
      if (!outbound && failure.kind !== 'duplicate' && failure.kind !== 'closed') {
        const ipKey = stream.remoteIp;
        this.inboundFailures.delete(ipKey);
        this.inboundFailures.set(ipKey, { address, reason: failure.message, kind: failure.kind, at: Date.now() });
        if (this.inboundFailures.size > 64) this.inboundFailures.delete(this.inboundFailures.keys().next().value!);
      }
      throw failure;
    }
  }

  private validate(remote: Identity, connUid: string, joining: boolean): { kind: FailureKind; reason: string } | undefined {
    if (remote.name === this.selfId) {
      if (remote.uid === this.localUid) return { kind: 'self', reason: 'cannot connect to ourself' };
      return { kind: 'collision', reason: `peer name collision: ${this.localName} is used by both ${remote.nickname} and ${this.localNickname}` };
    }
    const existing = this.connections.get(remote.name);
    if (existing && !existing.isClosed && existing.remote.uid === remote.uid && BigInt(existing.connUid) <= BigInt(connUid)) {
      return { kind: 'duplicate', reason: `already connected to ${formatPeerName(remote.name)}` };
    }
    if (!existing && this.connections.size >= this.connLimit && !(joining && this.makeRoom())) {
      return { kind: 'limit', reason: `connection limit reached (${this.connLimit})` };
    }
    // A connection made by the other side's discovery may not take the last
    // quarter of the limit: that is kept for peers told to join through us,
    // else a mesh that filled up by discovery would refuse every newcomer.
    // (Handshakes in flight count: ours to discovered peers are racing this one; this one is among them.)
    if (!existing && remote.features[DISCOVERY_FEATURE] === '1' && this.connections.size + this.handshaking.size - 1 >= Math.ceil(this.connLimit * 0.75)) {
      return { kind: 'limit', reason: `connection limit for discovered peers reached (${Math.ceil(this.connLimit * 0.75)} of ${this.connLimit}; the rest is kept for joining peers)` };
    }
    const bad = this.config.checkFeatures?.(remote.features);
    if (bad) return { kind: 'features', reason: bad };
    return undefined;
  }

  /**
   * At the limit, a newcomer dialling us (JOINING_FEATURE) gets the place of
   * one of our connections: otherwise a full peer is a dead end for every
   * newcomer that names it (often every host names the same few). The one closed
   * goes to a peer that keeps another established connection
   * (it stays reachable), preferring connections discovery made, then the
   * peer with the most connections. Its discovery will not take the place
   * back while we are above three quarters of the limit. False when no
   * connection can go.
   */
  private makeRoom(): boolean {
    let best: { c: Connection; score: number } | undefined;
    for (const c of this.connections.values()) {
      if (c.isClosed) continue;
      const entry = this.topology.entries.get(c.peer);
      const others = entry ? unpackRecords(entry.conns).filter((r) => r.established && r.peer !== this.selfId).length : 0;
      if (others < 1) continue;
      const score = (this.discoveredConns.has(c) ? 1_000_000 : 0) + others;
      if (!best || score > best.score) best = { c, score };
    }
    if (!best) return false;
    best.c.close(`connection limit (${this.connLimit}): making room for a peer joining through us`);
    return true;
  }

  private register(conn: Connection): void {
    const existing = this.connections.get(conn.peer);
    if (existing && !existing.isClosed) {
      if (existing.remote.uid === conn.remote.uid && BigInt(existing.connUid) <= BigInt(conn.connUid)) {
        // Both ends keep the connection with the lower UID: they agree without talking.
        conn.close('duplicate connection', 'duplicate');
        throw new HandshakeFailure('duplicate', `already connected to ${formatPeerName(conn.peer)}`, conn.peer);
      }
      const why = existing.remote.uid === conn.remote.uid ? 'replaced by a simultaneous connection' : 'peer restarted';
      this.connections.delete(conn.peer);
      existing.close(why, 'duplicate');
    }
    const previousUid = this.knownUids.get(conn.peer);
    const restarted = previousUid !== undefined && previousUid !== conn.remote.uid;
    // Sync state over this connection only when it can bring news: a peer we
    // did not know, a restarted one, or our first connection. Connections
    // that discovery makes inside one mesh would otherwise each move whole
    // tables (O(N) connections × O(N²) bytes); deltas and the periodic
    // anti-entropy keep those in step.
    const bringsNews = restarted || !this.topology.entries.has(conn.peer) || this.connections.size === 0;
    this.knownUids.set(conn.peer, conn.remote.uid);
    this.connections.set(conn.peer, conn);
    const peerName = formatPeerName(conn.peer);
    this.log.info(
      { peer: peerName, nickname: conn.remote.nickname, address: conn.remoteAddress, outbound: conn.outbound, encrypted: conn.encrypted, restarted },
      `connection to ${conn.remote.nickname} (${peerName}) established${restarted ? '; the peer restarted' : ''}`,
    );
    this.topology.setLocalConnection({ peer: conn.peer, address: conn.dialAddress, outbound: conn.outbound, established: true });
    this.sync.localChanged();
    this.maker.onConnected(conn.peer);
    if (bringsNews) {
      // The neighbour gets our digest (it pulls what it lacks) and every channel's full state.
      this.sync.sendDigest(conn.peer);
      this.gossip.sendAllState(conn.peer);
    }
    if (this.config.overlay) {
      const ov = this.config.overlay.connect({
        peer: peerName,
        connUid: conn.connUid,
        remoteIp: conn.remoteIp,
        localIp: conn.localIp,
        remoteFeatures: conn.remote.features,
        outbound: conn.outbound,
        keys: conn.keys ? { send: conn.keys.udpSend, recv: conn.keys.udpRecv } : null,
        sendControl: (msg) => void conn.send({ tag: Tag.OVERLAY, payload: msg }),
      });
      this.overlayConns.set(conn, ov);
    }
    this.emit('connection-established', peerName, { restarted, features: conn.remote.features });
  }

  private onClosed(conn: Connection, reason: string): void {
    this.stats.connectionsClosed++;
    const ov = this.overlayConns.get(conn);
    if (ov) {
      this.overlayConns.delete(conn);
      ov.close();
    }
    if (this.connections.get(conn.peer) !== conn) return;
    this.connections.delete(conn.peer);
    const peerName = formatPeerName(conn.peer);
    if (!this.stopped) this.log.info({ peer: peerName, nickname: conn.remote.nickname, reason }, `connection to ${conn.remote.nickname} (${peerName}) lost: ${reason}`);
    this.topology.removeLocalConnection(conn.peer);
    this.sync.localChanged();
    this.maker.onDisconnected(conn.peer, Date.now() - conn.since);
    this.emit('connection-lost', peerName);
  }

  private onMessage(conn: Connection, msg: Message): void {
    switch (msg.tag) {
      case Tag.GOSSIP:
        if (msg.channel === TOPOLOGY_CHANNEL) return this.onTopology(conn, msg.payload);
        return this.gossip.onGossip(conn.peer, msg.channel, msg.payload);
      case Tag.BROADCAST:
        return this.gossip.onBroadcast(conn.peer, msg.channel, msg.origin, msg.payload);
      case Tag.UNICAST:
        return this.gossip.onUnicast(msg.channel, msg.src, msg.dst, msg.payload);
      case Tag.OVERLAY:
        this.overlayConns.get(conn)?.onControl(msg.payload);
        return;
      default:
        this.count(this.stats.droppedMessages, 'unexpected');
    }
  }

  private sendTo(to: PeerId, msg: Message, droppable: boolean): boolean {
    const c = this.connections.get(to);
    if (!c) return false;
    if (!c.send(msg, droppable)) {
      this.count(this.stats.droppedMessages, 'backlog');
      return false;
    }
    return true;
  }

  // ---- topology ----------------------------------------------------------------

  private sendTopology(to: PeerId, m: TopologyMessage): void {
    this.gossip.sendRaw(to, TOPOLOGY_CHANNEL, m);
  }

  private onTopology(conn: Connection, payload: Uint8Array): void {
    const m = this.gossip.decodeTopology(conn.peer, payload);
    if (m?.type === 'summary') this.onSummary(conn.peer, m);
    else if (m) this.sync.onMessage(conn.peer, m);
  }

  private topologyChanged(): void {
    this.emit('topology-changed');
    if (this.discoveryTimer || this.stopped) return;
    this.discoveryTimer = setTimeout(() => {
      this.discoveryTimer = undefined;
      if (this.stopped) return;
      // Candidates for the discovery slots left (a few spare for refusals):
      // none when they are full, all of them when there is no limit.
      const room = Math.ceil(this.connLimit * 0.75) - (this.connections.size + this.dialing + this.handshaking.size);
      this.maker.setDiscovered(room <= 0 ? new Map() : this.sync.discover(room * 2 + 4));
    }, 100);
    this.discoveryTimer.unref?.();
  }

  /**
   * Periodic repair with a random neighbour: fingerprints first, whole
   * digests and channel states only where they differ (onSummary). A quiet
   * mesh thus exchanges a few dozen bytes per period, not its whole tables.
   */
  private antiEntropy(): void {
    const ns = [...this.connections.keys()];
    if (ns.length === 0) return;
    const n = ns[Math.floor(Math.random() * ns.length)]!;
    this.sync.send(n, { type: 'summary', reply: false, topology: this.topology.fingerprint(), channels: this.gossip.fingerprints() });
    this.gossip.sendStateWithoutFingerprint(n);
  }

  private onSummary(from: PeerId, m: Extract<TopologyMessage, { type: 'summary' }>): void {
    const differ = this.gossip.differing(m.channels);
    this.gossip.sendStateOf(from, differ);
    if (m.reply) return;
    const mine = this.topology.fingerprint();
    if (mine.count !== m.topology.count || mine.hash[0] !== m.topology.hash[0] || mine.hash[1] !== m.topology.hash[1]) this.sync.sendDigest(from);
    // Ask for their state of the channels that differ (ours is on its way).
    if (differ.length) {
      const ours = new Set(differ);
      this.sync.send(from, { type: 'summary', reply: true, topology: mine, channels: this.gossip.fingerprints().filter((c) => ours.has(c.name)) });
    }
  }

  private count<K>(m: Map<K, number>, k: K): void {
    m.set(k, (m.get(k) ?? 0) + 1);
  }
}
