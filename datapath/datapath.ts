// The datapath as the router sees it: one object that implements the mesh's
// Overlay contract and owns both datapaths.
//
//   fastdp  kernel bridge + vxlan, programmed from the endpoints gossip
//           (fastdp/), health by full-size heartbeats through the heartbeat TAP
//   sleeve  TAP + UDP 6783 in this process (sleeve/), sealed per hop when the
//           mesh is encrypted, relayed around blocked UDP, path MTU per peer
//   switch  per peer: fastdp when allowed and working, else the sleeve
//           (switch.ts); only the peer's pins move between the vxlan and
//           the TAP port, so a switch costs one FDB write per MAC
//
// Lifecycle: create (registers the gossip channels: before mesh.start) ->
// start (ensure devices: reconcile, never tear down; open TAPs and the UDP
// socket) -> connect() per mesh connection -> stop (kernel state stays:
// pods keep talking over fastdp while the daemon is away) | reset (remove
// bridge, vxlan and TAPs).

import { selectIoBackend, ioBackend, type IoBackendName } from './io/index.js';
import type { AeadBackend } from './io/aead.js';
import type { FrameDevice, DatagramSocket, DeviceStats, SocketStats } from './io/types.js';
import { Netlink } from './netlink/netlink.js';
import { isErrno } from './netlink/errors.js';
import {
  DEFAULTS,
  ENDPOINTS_CHANNEL,
  Fastdp,
  FastdpController,
  HeartbeatTracker,
  decodeHeartbeat,
  encodeHeartbeat,
  encodeHeartbeatAck,
  fastdpConfig,
  gratuitousArp,
  heartbeatFrameLength,
  heartbeatMac,
  underlayOf,
  type DropReason,
  type HealthTimings,
  type PodEndpoint,
} from './fastdp/index.js';
import { parseRange, type Cidr } from './fastdp/cidr.js';
import { decodeControl, encodeDatapath, encodeSleeveHello } from './control.js';
import { resolveLocalIp } from './local-ip.js';
import { chooseDatapath, fastdpAllowed, overlayFeatures, PeerSwitch, type DatapathChoice, type FastdpPolicy } from './switch.js';
import { LINKS_CHANNEL, LinksGossiper } from './sleeve/links.js';
import { macKeyOf } from './sleeve/macs.js';
import { DEFAULT_LINK_TIMINGS, type LinkTimings, type SleeveSession } from './sleeve/session.js';
import { Sleeve, type RxDropReason, type SleeveCounters, type SleevePeerStatus, type TxDropReason } from './sleeve/sleeve.js';
import { DEFAULT_PMTU_TIMINGS, type PmtuTimings } from './sleeve/pmtu.js';
import { MAX_HEADER, SEAL_OVERHEAD, UDP_IPV4_OVERHEAD, BASE_HEADER } from './sleeve/wire.js';
import type { Features, GossipChannel, MeshHandle, Overlay, OverlayConnection, OverlayConnectionParams, PeerName } from '../mesh/types.js';

/** Batching of the adoption of parked endpoint entries after topology changes. */
const ADOPT_BATCH_MS = 100;

export interface DatapathLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
  debug(fields: Record<string, unknown>, msg: string): void;
}

export interface DatapathOptions {
  /** --host: the address to listen on; "0.0.0.0" means find the underlay address. */
  host: string;
  /** Launch peers (host[:port]): the address towards the first one is our underlay address when --host is 0.0.0.0. */
  peers?: readonly string[];
  /** UDP port of the sleeve (the mesh's port, 6783). */
  sleevePort?: number;
  /** UDP port of the vxlan (6784). */
  vxlanPort?: number;
  vni?: number;
  /** --mtu: the overlay MTU. Default: underlay − 50 (vxlan), and − 24 more with a password (sealed sleeve). */
  mtu?: number;
  noFastdp: boolean;
  trustedSubnets: readonly string[];
  /** A password is set: sleeve datagrams are sealed, fastdp only to trusted subnets. */
  encrypted: boolean;
  runDir: string;
  /** --ipalloc-range: pod addresses outside it are not accepted from gossip. */
  range: string;
  /** Force an I/O backend (default: MESHNET_IO, else the addon when it loads). */
  io?: IoBackendName;
  timings?: Partial<DatapathTimings>;
}

export interface DatapathTimings {
  tickMs: number;
  /**
   * How long a peer's entries and datapath outlive its mesh connection and
   * its presence in the topology: a daemon killed with -9 and restarted
   * within this time interrupts nothing (its kernel keeps forwarding). A peer
   * that leaves with `meshnet reset` is dropped at once.
   */
  removalGraceMs: number;
  fastdp: HealthTimings;
  link: LinkTimings;
  pmtu: PmtuTimings;
}

/**
 * Fastdp heartbeat timings: probe every 500 ms until acked, then every
 * second; not working after 3 s without an ack. With the 100 ms tick a
 * blocked vxlan moves the peer to the sleeve within ~3.2 s (the issue asks
 * for 5 s; Weave took 60 s), and a recovered one moves back within 0.5 s.
 */
export const DEFAULT_TIMINGS: DatapathTimings = {
  tickMs: 100,
  removalGraceMs: 30_000,
  fastdp: { fastIntervalMs: 500, slowIntervalMs: 1000, timeoutMs: 3000 },
  link: DEFAULT_LINK_TIMINGS,
  pmtu: DEFAULT_PMTU_TIMINGS,
};

/** The devices the datapath owns (what `meshnet reset` removes). */
export const DATAPATH_DEVICES = [DEFAULTS.vxlan, DEFAULTS.sleeve, DEFAULTS.heartbeat, DEFAULTS.bridge] as const;

export interface DatapathPeerStatus {
  peer: PeerName;
  nickname: string | null;
  /** What carries frames to this peer now. */
  datapath: DatapathChoice;
  /** Direct mesh connection to the peer. */
  connected: boolean;
  fastdp: { allowed: boolean; working: boolean; reason: string | null };
  sleeve: SleevePeerStatus;
  switches: number;
}

export interface DatapathStatus {
  bridge: string;
  mtu: number;
  localIp: string;
  encrypted: boolean;
  fastdp: boolean;
  io: IoBackendName;
  aead: AeadBackend | null;
  switches: number;
  peers: DatapathPeerStatus[];
  sleeve: {
    counters: SleeveCounters;
    drops: Record<RxDropReason, number>;
    txDrops: Record<TxDropReason, number>;
    tap: DeviceStats | null;
    socket: SocketStats | null;
  };
  endpoints: { dropped: Record<DropReason, number> };
  controlDrops: number;
  /**
   * As each peer announces it (ours included): the peers its sleeve reaches
   * directly over UDP, and those it sends to over fastdp now.
   */
  announced: Record<PeerName, { sleeve: readonly PeerName[]; fastdp: readonly PeerName[] }>;
}

/** One mesh connection as the datapath tracks it. */
class PeerLink implements OverlayConnection {
  readonly sw = new PeerSwitch();
  readonly tracker: HeartbeatTracker | undefined;
  readonly policy: { allowed: boolean; reason: string };
  closed = false;
  infoText = '';
  readonly since = Date.now();

  constructor(
    readonly dp: Datapath,
    readonly params: OverlayConnectionParams,
    readonly session: SleeveSession,
    policy: { allowed: boolean; reason: string },
    hbLength: number,
    timings: HealthTimings,
  ) {
    this.policy = policy;
    this.tracker = policy.allowed ? new HeartbeatTracker(params.connUid, hbLength, timings) : undefined;
  }

  get datapath(): 'fastdp' | 'sleeve' | null {
    return this.sw.current;
  }

  get info(): string {
    return this.infoText;
  }

  onControl(msg: Uint8Array): void {
    this.dp.onControl(this, msg);
  }

  close(): void {
    this.dp.onClose(this);
  }
}

export class Datapath implements Overlay {
  private readonly policy: FastdpPolicy;
  private readonly timings: DatapathTimings;
  private readonly controller: FastdpController;
  private readonly endpointsChannel: GossipChannel;
  private readonly links: LinksGossiper;
  private readonly linksChannel: GossipChannel;
  private readonly peerLinks = new Map<PeerName, PeerLink>();
  private readonly byConnUid = new Map<string, PeerLink>();
  private readonly range: Cidr;
  private readonly selfHbMac: string;
  private sleeve: Sleeve | undefined;
  private tap: FrameDevice | undefined;
  private hbTap: FrameDevice | undefined;
  private socket: DatagramSocket | undefined;
  private ioName: IoBackendName = 'native';
  private aead: AeadBackend | null = null;
  private mtuValue = 0;
  private timer: NodeJS.Timeout | undefined;
  private localPods: PodEndpoint[] = [];
  /** Local pod IP -> the MAC the bridge learned on its port. */
  private observed = new Map<string, string>();
  private lastObserve = 0;
  private podsChangedAt = 0;
  private observing = false;
  private bridgeMac: string | undefined;
  private bridgeIps: string[] = [];
  private started = false;
  private stopped = false;
  private startedAt = 0;
  private heardEndpoints = false;
  private leaving = false;
  private releasing = false;
  private switchesTotal = 0;
  private controlDrops = 0;
  /** Datapath per peer without a connection (relayed over the sleeve or none). */
  private readonly remoteChoice = new Map<PeerName, DatapathChoice>();
  /** The datapath a closed connection had, kept for the grace period. */
  private readonly kept = new Map<PeerName, { choice: DatapathChoice; until: number }>();
  /** Peers gone from the topology whose entries go after the grace period. */
  private readonly removals = new Map<PeerName, NodeJS.Timeout>();
  /** Pending adoption of parked endpoint entries (batched: see topology-changed below). */
  private adoptTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly opts: DatapathOptions,
    readonly localIp: string,
    private readonly mesh: MeshHandle,
    private readonly log: DatapathLog,
    private readonly nl: Netlink,
    private readonly fastdp: Fastdp,
  ) {
    this.timings = { ...DEFAULT_TIMINGS, ...opts.timings };
    this.policy = { noFastdp: opts.noFastdp, vni: fastdp.config.vni, trustedSubnets: opts.trustedSubnets };
    this.range = parseRange(opts.range);
    this.selfHbMac = heartbeatMac(mesh.localName);
    this.controller = new FastdpController({
      fastdp,
      self: mesh.localName,
      range: opts.range,
      vtep: localIp,
      vni: fastdp.config.vni,
      heartbeatMac: this.selfHbMac,
      isKnownPeer: (p) => mesh.peers().some((x) => x.name === p),
      // An entry from a peer gossip has not introduced yet is a normal race at
      // join (it is parked and applied once the peer is known): not a warning.
      log: (msg, fields) => (fields.reason === 'unknown-peer' ? log.debug(fields, `${msg} (parked until the peer is known)`) : log.warn(fields, msg)),
      onReconciled: (r) => {
        if (r.failed.length) log.warn({ failed: r.failed.slice(0, 5).map((f) => `${f.op.op}: ${f.error}`), count: r.failed.length }, 'fastdp: some kernel entries could not be programmed; retrying later');
        for (const c of r.conflicts) log.warn({ ...c }, `fastdp: conflicting claim for ${c.kind} ${c.key}: kept ${c.kept}, dropped ${c.dropped}`);
        if (r.moves.length) this.sleeve?.inject(r.moves.map((m) => gratuitousArp(m.mac, m.ip)));
        this.refreshRemoteMacs();
      },
      onError: (err) => log.error({ err: String(err) }, 'fastdp: reconcile failed'),
      held: true,
    });
    const g = this.controller.gossiper;
    // Note when the mesh's endpoints state first arrives (a new neighbour sends all it knows).
    this.endpointsChannel = mesh.registerChannel(ENDPOINTS_CHANNEL, {
      gossip: () => g.gossip(),
      onGossip: (from, u) => {
        this.heardEndpoints = true;
        return g.onGossip(from, u);
      },
      onBroadcast: (origin, u) => g.onBroadcast(origin, u),
      onUnicast: () => undefined,
    });
    this.links = new LinksGossiper({ self: mesh.localName, onChange: () => this.sleeve?.setGraph(this.links.graph()) });
    this.linksChannel = mesh.registerChannel(LINKS_CHANNEL, this.links);
    // Adopt parked entries of peers the topology now knows. Batched over
    // 100 ms: the check walks every entry, and a forming mesh of N peers
    // changes the topology O(N) times a second at each of them.
    mesh.on('topology-changed', () => {
      if (this.adoptTimer || this.stopped) return;
      this.adoptTimer = setTimeout(() => {
        this.adoptTimer = undefined;
        if (this.stopped) return;
        const u = this.controller.gossiper.onTopologyChanged();
        if (u) this.endpointsChannel.gossip(u);
      }, ADOPT_BATCH_MS);
    });
    mesh.on('peer-removed', (p) => {
      this.links.forgetPeer(p);
      this.sleeve?.forgetPeer(p);
      // Its kernel may well be forwarding still (a crashed daemon): keep its entries a while.
      if (this.removals.has(p)) return;
      const t = setTimeout(() => {
        this.removals.delete(p);
        if (this.stopped || mesh.peers().some((x) => x.name === p)) return;
        this.log.info({ peer: p }, `datapath: ${p} gone for ${this.timings.removalGraceMs / 1000} s; removing its entries`);
        this.controller.peerRemoved(p);
        this.remoteChoice.delete(p);
        this.kept.delete(p);
      }, this.timings.removalGraceMs);
      t.unref();
      this.removals.set(p, t);
    });
  }

  /**
   * Builds the datapath and registers its gossip channels on `mesh` (call
   * before mesh.start(), then mesh.setOverlay(datapath)). Nothing is changed
   * in the kernel until start().
   */
  static async create(opts: DatapathOptions, mesh: MeshHandle, log: DatapathLog): Promise<Datapath> {
    const nl = Netlink.open();
    try {
      const localIp = await resolveLocalIp(opts.host, opts.peers ?? [], nl, [...DATAPATH_DEVICES]);
      const vni = opts.vni ?? DEFAULTS.vni;
      let mtu = opts.mtu;
      if (mtu === undefined && opts.encrypted) {
        // With a password the sleeve carries the traffic: leave room for its seal too.
        const u = await underlayOf(nl, localIp);
        mtu = u.mtu - (UDP_IPV4_OVERHEAD + BASE_HEADER + SEAL_OVERHEAD + 14);
      }
      const cfg = fastdpConfig({ localIp, vni, port: opts.vxlanPort ?? DEFAULTS.port, ...(mtu !== undefined ? { mtu } : {}) });
      return new Datapath(opts, localIp, mesh, log, nl, new Fastdp(nl, cfg));
    } catch (err) {
      nl.close();
      throw err;
    }
  }

  /** The overlay MTU (pods' MTU); known after start(). */
  get mtu(): number {
    return this.mtuValue;
  }

  features(): Features {
    return overlayFeatures(this.policy);
  }

  // ---- lifecycle --------------------------------------------------------------

  async start(): Promise<void> {
    const dev = await this.fastdp.ensureDevices();
    this.mtuValue = dev.mtu;
    for (const c of dev.changes) this.log.info({ change: c }, `datapath: ${c}`);
    this.bridgeMac = dev.bridge.mac;
    const choice = this.opts.io ? { backend: ioBackend(this.opts.io), reason: 'configured' } : selectIoBackend();
    this.ioName = choice.backend.name;
    // The addon's batched ChaCha20-Poly1305 where the addon runs; the same AEAD through sodium-native otherwise.
    this.aead = this.opts.encrypted ? (this.ioName === 'native' ? 'native' : 'sodium') : null;
    if (this.ioName !== 'native') this.log.warn({ reason: choice.reason }, `datapath: sleeve I/O on the pure-Node backend (${choice.reason}); expect a slow sleeve`);
    try {
      this.tap = await choice.backend.openTap({ name: DEFAULTS.sleeve, offload: true, headroom: MAX_HEADER, persist: true });
      this.hbTap = await choice.backend.openTap({ name: DEFAULTS.heartbeat, offload: false, persist: true });
      this.socket = await choice.backend.openUdp({ address: this.opts.host && this.opts.host !== '0.0.0.0' ? this.opts.host : '0.0.0.0', port: this.opts.sleevePort ?? 6783 });
    } catch (err) {
      this.closeIo();
      throw new Error(`datapath: cannot open the sleeve's devices: ${(err as Error).message}`, { cause: err });
    }
    await this.fastdp.attachSleeve();
    await this.fastdp.attachHeartbeat();
    this.sleeve = new Sleeve({
      self: this.mesh.localName,
      tap: this.tap,
      socket: this.socket,
      mtu: this.mtuValue,
      aead: this.aead ?? 'sodium',
      log: this.log,
      nickname: (p) => this.nickname(p),
      linkTimings: this.timings.link,
      pmtuTimings: this.timings.pmtu,
      onLinksChanged: (l) => {
        const u = this.links.setLocal(l);
        if (u) this.linksChannel.gossip(u);
      },
      onReachabilityChanged: () => this.decideAll(),
    });
    this.sleeve.setGraph(this.links.graph());
    this.hbTap.onFrames((b) => {
      for (let i = 0; i < b.count; i++) this.onHeartbeatFrame(b.buf.subarray(b.offs[i]!, b.offs[i]! + b.lens[i]!));
    });
    for (const d of [this.tap, this.hbTap]) d.onError((err) => this.log.error({ device: d.name, err: err.message }, `datapath: ${d.name} failed; restart meshnet to recreate it`));
    this.socket.onError((err) => this.log.warn({ err: err.message }, 'sleeve: UDP receive error'));
    await this.refreshBridge();
    this.publishLocal();
    this.log.info(
      { mtu: this.mtuValue, localIp: this.localIp, io: this.ioName, aead: this.aead, vni: this.fastdp.config.vni, fastdp: !this.opts.noFastdp },
      `datapath ready: bridge ${DEFAULTS.bridge} mtu ${this.mtuValue}, underlay ${this.localIp}, sleeve I/O ${this.ioName}${this.aead ? `, ${this.aead === 'native' ? 'ChaCha20-Poly1305 (addon)' : 'ChaCha20-Poly1305 (sodium-native)'}` : ''}`,
    );
    this.started = true;
    this.startedAt = Date.now();
    this.timer = setInterval(() => this.tick(), this.timings.tickMs);
    this.timer.unref();
  }

  /**
   * We leave the mesh for good (`meshnet reset`): tell the peers to drop our
   * pods now instead of keeping them for the grace period.
   */
  async leave(): Promise<void> {
    // From now on nothing we announce may supersede the departure.
    this.leaving = true;
    const u = this.controller.leave();
    // Broadcast too: it is never dropped under backlog (gossip may be, e.g. behind an IPAM handover).
    this.endpointsChannel.broadcast(u);
    this.endpointsChannel.gossip(u);
    this.log.info({}, 'datapath: leaving the mesh; peers drop our pods now');
    await new Promise((r) => setTimeout(r, 300));
  }

  /** Stop: close our handles. Devices and kernel entries stay (fastdp keeps forwarding). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.removals.values()) clearTimeout(t);
    clearTimeout(this.adoptTimer);
    this.controller.close();
    this.sleeve?.close();
    this.closeIo();
    this.nl.close();
  }

  /** `meshnet reset`: stop and remove bridge, vxlan and TAPs. */
  async reset(): Promise<string[]> {
    if (this.timer) clearInterval(this.timer);
    this.controller.close();
    this.sleeve?.close();
    this.closeIo();
    const removed = this.stopped ? await resetDatapathDevices() : await this.fastdp.reset();
    await this.stop();
    return removed;
  }

  private closeIo(): void {
    this.tap?.close();
    this.hbTap?.close();
    this.socket?.close();
  }

  // ---- what the daemon tells us ------------------------------------------------

  /**
   * Our pods (from IPAM/CNI): on every ADD/DEL and at start. `port`, the host
   * end of the pod's veth, lets us confirm the pod's real MAC from the
   * bridge's learned entries.
   */
  setLocalPods(pods: readonly PodEndpoint[]): void {
    this.localPods = [...pods];
    this.lastObserve = 0;
    this.podsChangedAt = Date.now();
    this.publishLocal();
  }

  /**
   * The MAC the bridge learned on each local pod's port. Exactly one MAC
   * other than the one we were told means a chained plugin changed it; only
   * the one we were told means it is right; none or several: not sure (yet).
   */
  private async observeMacs(): Promise<void> {
    if (this.observing) return;
    this.observing = true;
    try {
      const withPort = this.localPods.filter((p) => p.port);
      // What we saw stays while the pod exists: an idle pod's learned entry ages out of the bridge.
      const next = new Map([...this.observed].filter(([ip]) => this.localPods.some((p) => p.ip === ip)));
      if (withPort.length) {
        const links = new Map((await this.nl.listLinks()).map((l) => [l.name, l]));
        const learned = new Map<number, string[]>();
        for (const e of await this.nl.listFdb()) {
          if (!e.isMaster || e.state !== 'dynamic') continue;
          learned.set(e.ifindex, [...(learned.get(e.ifindex) ?? []), e.mac]);
        }
        for (const p of withPort) {
          const l = links.get(p.port!);
          if (!l) continue;
          const macs = (learned.get(l.index) ?? []).filter((m) => m !== l.mac);
          const others = macs.filter((m) => m !== p.mac);
          const mac = others.length === 1 ? others[0] : macs.length === 1 && macs[0] === p.mac ? p.mac : undefined;
          if (mac) next.set(p.ip, mac);
        }
      }
      const same = next.size === this.observed.size && [...next].every(([ip, mac]) => this.observed.get(ip) === mac);
      if (!same) {
        this.observed = next;
        this.publishLocal();
      }
    } catch (err) {
      this.log.debug({ err: String(err) }, 'datapath: reading learned MACs failed');
    } finally {
      this.observing = false;
    }
  }

  /** `meshnet expose`: give the bridge an address on the overlay (idempotent) and announce it. */
  async setBridgeAddress(cidr: string): Promise<void> {
    try {
      await this.nl.addAddress(DEFAULTS.bridge, cidr);
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    await this.refreshBridge();
    this.publishLocal();
  }

  /**
   * Announce `ip` as reachable at the bridge (the host's address on the
   * overlay, the pods' gateway) without touching the kernel: the CNI plugin
   * puts it on the bridge with the first pod.
   */
  announceBridgeAddress(ip: string): void {
    if (!this.range.contains(ip) || this.bridgeIps.includes(ip)) return;
    this.bridgeIps = [...this.bridgeIps, ip];
    this.publishLocal();
  }

  /** Re-read the bridge's addresses (the CNI may have added the gateway) and announce them. */
  async refreshBridge(): Promise<void> {
    const br = await this.nl.getLink(DEFAULTS.bridge);
    if (!br) return;
    this.bridgeMac = br.mac;
    this.bridgeIps = (await this.nl.listAddresses(br.index, 4)).map((a) => a.address).filter((ip) => this.range.contains(ip));
  }

  private publishLocal(): void {
    if (this.leaving) return;
    const bridge: PodEndpoint[] = this.bridgeMac ? this.bridgeIps.map((ip) => ({ mac: this.bridgeMac!, ip })) : [];
    // A pod's real MAC, once the bridge has seen it (a chained plugin such as `tuning` may have changed the one we were told).
    const pods = this.localPods.map((p) => ({ mac: this.observed.get(p.ip) ?? p.mac, ip: p.ip }));
    const eps: PodEndpoint[] = [...pods, ...bridge.filter((b) => !pods.some((p) => p.ip === b.ip))];
    // Only MACs we are sure of are answered locally: a wrong permanent entry would cut the host off from its pod.
    const certain = [...pods.filter((p) => this.observed.has(p.ip)), ...bridge];
    this.endpointsChannel.gossip(this.controller.setLocalPods(eps, certain));
    const macs = new Set<number>();
    for (const p of eps) macs.add(macKeyOf(p.mac));
    if (this.bridgeMac) macs.add(macKeyOf(this.bridgeMac));
    this.sleeve?.setLocalMacs(macs);
  }

  private refreshRemoteMacs(): void {
    const byPeer = new Map<PeerName, number[]>();
    for (const e of this.controller.gossiper.remoteEntries()) byPeer.set(e.peer, e.pods.map((p) => macKeyOf(p.mac)));
    this.sleeve?.setRemoteMacs(byPeer);
    this.decideAll();
  }

  // ---- Overlay: connections -----------------------------------------------------

  connect(params: OverlayConnectionParams): OverlayConnection {
    if (!this.sleeve) throw new Error('datapath: connect before start');
    const session = this.sleeve.openSession(params.peer, params.connUid, params.remoteIp, params.keys);
    const policy = fastdpAllowed(this.policy, params.remoteFeatures, params.keys !== null, params.remoteIp);
    const link = new PeerLink(this, params, session, policy, heartbeatFrameLength(this.mtuValue), this.timings.fastdp);
    const old = this.peerLinks.get(params.peer);
    if (old) old.closed = true;
    this.peerLinks.set(params.peer, link);
    this.byConnUid.set(params.connUid, link);
    params.sendControl(encodeSleeveHello(session.index, this.socket!.port));
    if (!policy.allowed) this.log.info({ peer: params.peer, reason: policy.reason }, `datapath: fastdp to ${params.peer} not used: ${policy.reason}`);
    this.decide(link, Date.now());
    return link;
  }

  /** @internal PeerLink.onControl */
  onControl(link: PeerLink, msg: Uint8Array): void {
    const m = decodeControl(msg);
    if (!m) {
      this.controlDrops++;
      return;
    }
    switch (m.type) {
      case 'sleeve-hello':
        this.sleeve?.sessionHello(link.session, m.index, m.port);
        return;
      case 'heartbeat-ack':
        if (link.tracker?.acked(Date.now(), m) && link.sw.current !== 'fastdp') this.decide(link, Date.now());
        return;
      case 'datapath':
        this.sleeve?.setPeerFastdp(link.params.peer, m.fastdp);
        return;
    }
  }

  /** @internal PeerLink.close */
  onClose(link: PeerLink): void {
    link.closed = true;
    this.byConnUid.delete(link.params.connUid);
    this.sleeve?.closeSession(link.session);
    if (this.peerLinks.get(link.params.peer) === link) {
      this.peerLinks.delete(link.params.peer);
      this.kept.set(link.params.peer, { choice: link.sw.current, until: Date.now() + this.timings.removalGraceMs });
      this.remoteChoice.set(link.params.peer, link.sw.current);
      this.decideAll();
      this.announceFastdp();
    }
  }

  /** Tell the mesh which peers we send to over fastdp (shown by other hosts' topology pages). */
  private announceFastdp(): void {
    const u = this.links.setFastdp([...this.peerLinks.values()].filter((l) => !l.closed && l.sw.current === 'fastdp').map((l) => l.params.peer));
    if (u) this.linksChannel.gossip(u);
  }

  private onHeartbeatFrame(frame: Buffer): void {
    const hb = decodeHeartbeat(frame);
    if (!hb || hb.dst !== this.selfHbMac) return;
    const link = this.byConnUid.get(hb.connUid);
    // Only a frame that arrived whole proves the path carries full-size frames.
    if (!link || link.closed || frame.length < hb.length) return;
    link.params.sendControl(encodeHeartbeatAck(hb.connUid, hb.length));
  }

  // ---- the switch ---------------------------------------------------------------

  /**
   * Kernel entries are first written once we know what they should be: the
   * mesh's endpoints arrived (nothing parked for an unknown peer) and every
   * peer in them has a datapath (its connection chose one or had 3 s to, or
   * the sleeve relays to it). A lone host waits 3 s, a host whose peers do
   * not all answer at most 10 s. Until then a restarted daemon leaves the
   * previous kernel state alone: traffic keeps flowing.
   */
  private maybeRelease(now: number): void {
    if (!this.controller.held || this.releasing) return;
    const age = now - this.startedAt;
    const links = [...this.peerLinks.values()];
    // Every peer with pods in the mesh's state has a datapath: its connection chose one (or had 3 s), or the sleeve relays to it.
    const decided = this.controller.gossiper.remoteEntries().every((e) => {
      const l = this.peerLinks.get(e.peer);
      return l ? l.sw.current !== null || now - l.since > 3000 : !!this.sleeve?.reachable(e.peer);
    });
    const ready = this.heardEndpoints && this.controller.gossiper.parkedCount === 0 && decided;
    if (!(ready || (links.length === 0 && age > 3000) || age > 10_000)) return;
    this.releasing = true;
    this.controller
      .release()
      .then((r) =>
        this.log.info(
          { applied: r.applied.length, failed: r.failed.length, addedWhileHeld: this.controller.addedWhileHeld, waitedMs: age },
          `datapath: kernel entries reconciled with the mesh's state after ${age} ms: ${r.applied.length} changed${r.failed.length ? `, ${r.failed.length} failed` : ''} (${this.controller.addedWhileHeld} missing ones added before)`,
        ),
      )
      .catch((err: unknown) => this.log.error({ err: String(err) }, 'fastdp: reconcile failed'));
  }

  private tick(): void {
    if (this.stopped || !this.sleeve) return;
    this.sleeve.tick();
    const now = Date.now();
    this.maybeRelease(now);
    // Confirm local pods' MACs: every second for half a minute after pods changed (a chained
    // plugin such as `tuning` may change a MAC just after we saw it), then every 10 s while
    // some are unconfirmed (a silent pod may stay so), every 30 s once all are.
    const unconfirmed = this.localPods.some((p) => p.port && !this.observed.has(p.ip));
    const every = now - this.podsChangedAt < 30_000 ? 1000 : unconfirmed ? 10_000 : 30_000;
    if (now - this.lastObserve > every) {
      this.lastObserve = now;
      void this.observeMacs();
    }
    for (const link of this.peerLinks.values()) {
      const t = link.tracker;
      if (t && t.due(now)) {
        t.sent(now);
        this.sendFastdpHeartbeat(link);
      }
      this.decide(link, now);
    }
    this.decideRemote();
  }

  private sendFastdpHeartbeat(link: PeerLink): void {
    if (!this.hbTap) return;
    const frame = encodeHeartbeat({ dst: heartbeatMac(link.params.peer), src: this.selfHbMac, connUid: link.params.connUid, length: heartbeatFrameLength(this.mtuValue) });
    this.hbTap.write({ buf: frame, offs: Uint32Array.of(0), lens: Uint32Array.of(frame.length), count: 1 });
  }

  private decideAll(): void {
    const now = Date.now();
    for (const link of this.peerLinks.values()) this.decide(link, now);
    this.decideRemote();
  }

  private decide(link: PeerLink, now: number): void {
    if (link.closed || !this.sleeve) return;
    const peer = link.params.peer;
    const working = !!link.tracker?.working(now);
    const reaches = this.sleeve.reachable(peer);
    let next = chooseDatapath(link.policy.allowed, working, reaches);
    // A new connection gives fastdp two heartbeats to prove itself before
    // settling for the sleeve, so a healthy peer starts on fastdp directly.
    if (next === 'sleeve' && link.policy.allowed && link.sw.current === null && now - link.since < 2 * this.timings.fastdp.fastIntervalMs) next = null;
    const changed = link.sw.set(next, now);
    const st = this.sleeve.peerStatus(peer);
    link.infoText = this.describe(link, st, working);
    if (!changed) return;
    if (changed.from !== null && next !== null) this.switchesTotal++;
    const why = next === 'sleeve' && link.policy.allowed ? (changed.from === 'fastdp' ? 'fastdp heartbeats stopped (UDP 6784 blocked or path MTU too small?)' : 'fastdp not confirmed yet') : next === 'sleeve' ? link.policy.reason : next === 'fastdp' ? 'full-size heartbeat acknowledged' : 'no datapath reaches the peer';
    const msg = `datapath to ${this.nickname(peer)} (${peer}): ${changed.from ?? 'none'} -> ${next ?? 'none'} (${why})`;
    if (changed.from === 'fastdp' || next === null) this.log.warn({ peer, from: changed.from, to: next, reason: why }, msg);
    else this.log.info({ peer, from: changed.from, to: next, reason: why }, msg);
    this.controller.setPeerDatapath(peer, next ?? 'none');
    link.params.sendControl(encodeDatapath(next === 'fastdp'));
    this.announceFastdp();
    // Full-size frames may have stopped fitting the path: the sleeve checks its size now.
    if (changed.from === 'fastdp') this.sleeve.recheckPmtu(peer);
  }

  private describe(link: PeerLink, st: SleevePeerStatus, working: boolean): string {
    const parts: string[] = [];
    if (link.sw.current === 'fastdp') parts.push(`mtu=${this.mtuValue}`);
    else if (st.via) {
      parts.push(`mtu=${st.mtu ?? this.mtuValue}${st.mtuVerified ? '' : '?'}`);
      if (st.via !== 'direct') parts.push(`via ${this.nickname(st.via)}`);
      parts.push(st.encrypted ? 'encrypted' : 'unencrypted');
    }
    if (!link.policy.allowed) parts.push(`fastdp: ${link.policy.reason}`);
    else if (!working) parts.push('fastdp: no heartbeat ack');
    return parts.join(' ');
  }

  /**
   * Peers we have no connection to: reached through a relay over the sleeve;
   * or, for a while after their connection closed, the datapath they had
   * (their kernel may still forward); or not at all.
   */
  private decideRemote(): void {
    if (!this.sleeve) return;
    const now = Date.now();
    for (const e of this.controller.gossiper.remoteEntries()) {
      if (this.peerLinks.has(e.peer)) {
        this.remoteChoice.delete(e.peer);
        this.kept.delete(e.peer);
        continue;
      }
      const k = this.kept.get(e.peer);
      const next: DatapathChoice = this.sleeve.reachable(e.peer) ? 'sleeve' : k && now < k.until ? k.choice : null;
      if (this.remoteChoice.get(e.peer) === next && this.remoteChoice.has(e.peer)) continue;
      this.remoteChoice.set(e.peer, next);
      this.controller.setPeerDatapath(e.peer, next ?? 'none');
    }
  }

  private nickname(peer: PeerName): string {
    return this.mesh.peers().find((p) => p.name === peer)?.nickname ?? peer;
  }

  // ---- status -------------------------------------------------------------------

  status(): DatapathStatus {
    const now = Date.now();
    const names = new Set<PeerName>([...this.peerLinks.keys(), ...this.controller.gossiper.remoteEntries().map((e) => e.peer)]);
    const peers: DatapathPeerStatus[] = [...names].sort().map((peer) => {
      const link = this.peerLinks.get(peer);
      const sleeve = this.sleeve?.peerStatus(peer) ?? { peer, link: null, via: null, mtu: null, mtuVerified: false, encrypted: false };
      return {
        peer,
        nickname: this.mesh.peers().find((p) => p.name === peer)?.nickname ?? null,
        datapath: link ? link.sw.current : (this.remoteChoice.get(peer) ?? null),
        connected: !!link,
        fastdp: { allowed: !!link?.policy.allowed, working: !!link?.tracker?.working(now), reason: link ? link.policy.reason || null : 'no direct connection' },
        sleeve,
        switches: link?.sw.switches ?? 0,
      };
    });
    return {
      bridge: DEFAULTS.bridge,
      mtu: this.mtuValue,
      localIp: this.localIp,
      encrypted: this.opts.encrypted,
      fastdp: !this.opts.noFastdp,
      io: this.ioName,
      aead: this.aead,
      switches: this.switchesTotal,
      peers,
      sleeve: {
        counters: { ...(this.sleeve?.counters ?? emptyCounters()) },
        drops: { ...(this.sleeve?.rxDrops ?? ({} as Record<RxDropReason, number>)) },
        txDrops: { ...(this.sleeve?.txDrops ?? ({} as Record<TxDropReason, number>)) },
        tap: this.started ? (this.tap?.stats() ?? null) : null,
        socket: this.started ? (this.socket?.stats() ?? null) : null,
      },
      endpoints: { dropped: { ...this.controller.gossiper.dropped } },
      controlDrops: this.controlDrops,
      announced: Object.fromEntries(this.links.announced()),
    };
  }
}

function emptyCounters(): SleeveCounters {
  return { txFrames: 0, txBytes: 0, rxFrames: 0, rxBytes: 0, relayed: 0, broadcastsSent: 0, broadcastsReceived: 0, fragNeededSent: 0, heartbeatsSent: 0, heartbeatsReceived: 0, probesSent: 0, probeAcksReceived: 0, sendErrors: 0 };
}

/** Remove the datapath's devices in this network namespace (`meshnet reset` with or without a daemon). */
export async function resetDatapathDevices(): Promise<string[]> {
  const nl = Netlink.open();
  try {
    return await new Fastdp(nl, fastdpConfig({ localIp: '0.0.0.0' })).reset();
  } finally {
    nl.close();
  }
}
