// The sleeve: Ethernet frames between the TAP `meshnet-sleeve` (a port of
// the bridge) and UDP 6783, sealed per hop when the mesh is encrypted.
//
// Outbound (TAP -> UDP), per batch of frames read from the TAP:
//   destination MAC -> owning peer (gossip, else learned) -> next hop
//   (routes over working UDP links) -> path MTU check (too big: ICMP
//   "fragmentation needed" back to the sender, never IP fragmentation) ->
//   header + seal (one AEAD call per run of frames to one hop) -> one
//   sendBatch (UDP GSO sends the runs as super-datagrams).
//   Broadcast/multicast frames follow our broadcast tree over those links.
// Inbound (UDP -> TAP), per batch of datagrams:
//   header shape -> session by index (unknown: dropped) -> length ->
//   replay window (before any crypto) -> AEAD open in place -> window
//   accept -> deliver to the TAP (one write per batch), relay to the next
//   hop, or handle a control datagram (heartbeat, PMTU probe, probe ack).
// Every malformed or unwanted datagram is dropped and counted by reason;
// nothing on this path throws on input or allocates before authentication.
//
// The stages are synchronous and bounded: a batch in, at most one sendBatch
// and one TAP write out; when the kernel's queues are full the rest is
// dropped (counted by the I/O layer), never buffered.

import { buildFragNeeded, ipv4PacketLength } from '../io/icmp.js';
import type { AeadBackend } from '../io/aead.js';
import type { Batch, DatagramBatch, DatagramSocket, FrameDevice, SendError } from '../io/types.js';
import type { DataKeys, PeerName } from '../../mesh/types.js';
import { isGroupMac, LocalMacs, RemoteMacs } from './macs.js';
import { newPeerRec, type PeerRec } from './peers.js';
import { DEFAULT_PMTU_TIMINGS, MIN_FRAME_BUDGET, PathMtu, type PmtuTimings } from './pmtu.js';
import { SleeveRoutes, type Graph } from './routes.js';
import { DEFAULT_LINK_TIMINGS, SleeveSession, type LinkTimings } from './session.js';
import { TxQueue } from './tx.js';
import {
  BASE_HEADER,
  DEFAULT_TTL,
  emptyHeader,
  ETH_HEADER,
  FLAG_ROUTED,
  HEARTBEAT_BODY,
  MAX_HEADER,
  PROBE_ACK_BODY,
  PROBE_MIN_BODY,
  datagramOverhead,
  peerKey,
  peerNameOf,
  read48,
  readHeader,
  readU16,
  readU32,
  ROUTED_EXTRA,
  SEAL_OVERHEAD,
  TYPE_BCAST,
  TYPE_FRAME,
  TYPE_HEARTBEAT,
  TYPE_PROBE,
  TYPE_PROBE_ACK,
  writeHeader,
  writeHeartbeatBody,
  writeProbeBody,
  writeU32,
  type Header,
} from './wire.js';

/** Reasons a received datagram is dropped (metrics label values). */
export const RX_DROP_REASONS = ['unknown-peer', 'bad-length', 'bad-header', 'auth', 'replay', 'too-old', 'no-owner', 'no-route', 'ttl', 'loop'] as const;
export type RxDropReason = (typeof RX_DROP_REASONS)[number];
/** Reasons a frame read from the TAP is not sent. */
export const TX_DROP_REASONS = ['bad-length', 'no-owner', 'no-route', 'too-big'] as const;
export type TxDropReason = (typeof TX_DROP_REASONS)[number];

export interface SleeveCounters {
  txFrames: number;
  txBytes: number;
  rxFrames: number;
  rxBytes: number;
  relayed: number;
  broadcastsSent: number;
  broadcastsReceived: number;
  fragNeededSent: number;
  heartbeatsSent: number;
  heartbeatsReceived: number;
  probesSent: number;
  probeAcksReceived: number;
  sendErrors: number;
}

export interface SleeveLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  debug(fields: Record<string, unknown>, msg: string): void;
}

export interface SleeveOptions {
  self: PeerName;
  tap: FrameDevice;
  socket: DatagramSocket;
  /** The overlay MTU (bridge MTU): frames are at most mtu + 14 bytes. */
  mtu: number;
  aead: AeadBackend;
  log: SleeveLog;
  /** A peer's name for logs (its nickname). */
  nickname?(peer: PeerName): string;
  /** Our direct UDP links that work changed (announce them: links.ts). */
  onLinksChanged(links: PeerName[]): void;
  /** Which peers the sleeve reaches (or over which hop, or at which MTU) changed. */
  onReachabilityChanged(): void;
  now?(): number;
  linkTimings?: LinkTimings;
  pmtuTimings?: PmtuTimings;
}

export interface SleevePeerStatus {
  peer: PeerName;
  /** Direct UDP link state, when we have a mesh connection to the peer. */
  link: 'up' | 'down' | 'waiting' | null;
  /** The neighbour frames take ("direct" when it is the peer itself), null when unreachable. */
  via: PeerName | null;
  /** Largest IP packet that reaches the peer through the sleeve now. */
  mtu: number | null;
  mtuVerified: boolean;
  encrypted: boolean;
}

/** How many frames one TAP read may deliver (the native backend's batch). */
const MAX_BATCH = 256;

export class Sleeve {
  readonly selfKey: number;
  readonly counters: SleeveCounters = {
    txFrames: 0,
    txBytes: 0,
    rxFrames: 0,
    rxBytes: 0,
    relayed: 0,
    broadcastsSent: 0,
    broadcastsReceived: 0,
    fragNeededSent: 0,
    heartbeatsSent: 0,
    heartbeatsReceived: 0,
    probesSent: 0,
    probeAcksReceived: 0,
    sendErrors: 0,
  };
  readonly rxDrops = Object.fromEntries(RX_DROP_REASONS.map((r) => [r, 0])) as Record<RxDropReason, number>;
  readonly txDrops = Object.fromEntries(TX_DROP_REASONS.map((r) => [r, 0])) as Record<TxDropReason, number>;

  private readonly peers = new Map<number, PeerRec>();
  private readonly sessions = new Map<number, SleeveSession>();
  private readonly remote = new RemoteMacs();
  private readonly local = new LocalMacs();
  private routes: SleeveRoutes;
  private graph: Map<number, Set<number>> = new Map();
  private links = new Set<number>();
  private readonly now: () => number;
  private readonly lt: LinkTimings;
  private readonly pt: PmtuTimings;
  private readonly main: TxQueue;
  private readonly aux: TxQueue;
  private readonly plainOut: DatagramBatch;
  private readonly rxFrames: Batch;
  private readonly icmp: Batch;
  private readonly icmpBufs: Buffer[] = [];
  private readonly scratch = Buffer.alloc(65536);
  private readonly h = emptyHeader();
  private rxCap = 0;
  private rxStatus = new Int32Array(0);
  private rxType = new Uint8Array(0);
  private rxHdr = new Uint8Array(0);
  private rxSess: (SleeveSession | undefined)[] = [];
  private runSrc = new Uint32Array(0);
  private runLen = new Uint32Array(0);
  private runDst = new Uint32Array(0);
  private bcast: number[] = [];
  private closed = false;
  private lastSweep = 0;

  constructor(private readonly o: SleeveOptions) {
    this.selfKey = peerKey(o.self);
    this.now = o.now ?? Date.now;
    this.lt = o.linkTimings ?? DEFAULT_LINK_TIMINGS;
    this.pt = o.pmtuTimings ?? DEFAULT_PMTU_TIMINGS;
    this.routes = new SleeveRoutes(new Map(), this.selfKey);
    const maxFrame = o.mtu + ETH_HEADER;
    this.main = new TxQueue(() => (this.closed ? undefined : o.socket), Math.max(maxFrame, 1600), MAX_BATCH);
    this.aux = new TxQueue(() => (this.closed ? undefined : o.socket), Math.max(maxFrame, 1600), 64, true);
    this.plainOut = { buf: Buffer.alloc(0), offs: new Uint32Array(MAX_BATCH), lens: new Uint32Array(MAX_BATCH), addrs: new Uint32Array(2 * MAX_BATCH), count: 0 };
    this.rxFrames = { buf: Buffer.alloc(0), offs: new Uint32Array(0), lens: new Uint32Array(0), count: 0 };
    this.icmp = { buf: Buffer.alloc(0), offs: new Uint32Array(MAX_BATCH), lens: new Uint32Array(MAX_BATCH), count: 0 };
    if (o.tap.headroom < MAX_HEADER) throw new Error(`sleeve: the TAP needs ${MAX_HEADER} bytes of headroom, has ${o.tap.headroom}`);
    o.tap.onFrames((b) => this.fromTap(b));
    o.socket.onDatagrams((d) => this.fromUdp(d));
    o.socket.onSendError((e) => this.onSendError(e));
  }

  // ---- sessions (one per mesh connection) -----------------------------------

  /** A mesh connection to `peer` is up: a new session (its index goes to the peer in our hello). */
  openSession(peer: PeerName, connUid: string, remoteIp: string, keys: DataKeys | null): SleeveSession {
    const rec = this.peer(peerKey(peer));
    let index: number;
    do index = (Math.random() * 0xfffffffe + 1) >>> 0;
    while (index === 0 || this.sessions.has(index));
    const s = new SleeveSession(rec, connUid, index, remoteIp, keys, this.o.aead);
    this.sessions.set(index, s);
    const old = rec.session;
    rec.session = s;
    if (old) this.closeSession(old);
    return s;
  }

  /** The peer's hello: how to address it. Starts heartbeats at once. */
  sessionHello(s: SleeveSession, index: number, port: number): void {
    if (s.closed) return;
    s.remoteIndex = index;
    s.port = port;
    this.queryPathMtu(s);
    this.sendHeartbeat(s, this.now());
    this.aux.flush();
  }

  closeSession(s: SleeveSession): void {
    if (s.closed) return;
    s.closed = true;
    this.sessions.delete(s.index);
    if (s.peer.session === s) {
      s.peer.session = undefined;
      s.peer.fastdpToUs = false;
    }
    this.updateLinks(this.now());
  }

  /** What the peer said about its datapath to us (broadcast delivery rule). */
  setPeerFastdp(peer: PeerName, fastdp: boolean): void {
    this.peer(peerKey(peer)).fastdpToUs = fastdp;
  }

  /** A peer left the topology. */
  forgetPeer(peer: PeerName): void {
    const key = peerKey(peer);
    const rec = this.peers.get(key);
    if (rec?.session) this.closeSession(rec.session);
    this.peers.delete(key);
    this.remote.forgetPeer(key);
  }

  // ---- routing and MAC knowledge ---------------------------------------------

  /** Announced UDP links of every peer (links.ts graph()); routes are recomputed. */
  setGraph(graph: ReadonlyMap<PeerName, ReadonlySet<PeerName>>): void {
    const g = new Map<number, Set<number>>();
    for (const [p, ls] of graph) g.set(peerKey(p), new Set([...ls].map(peerKey)));
    this.graph = g;
    this.recomputeRoutes();
  }

  /** MACs of remote pods and bridges, by peer (from the endpoints gossip). */
  setRemoteMacs(byPeer: ReadonlyMap<PeerName, readonly number[]>): void {
    const m = new Map<number, number>();
    for (const [peer, macs] of byPeer) {
      const k = peerKey(peer);
      for (const mac of macs) m.set(mac, k);
    }
    this.remote.setGossiped(m);
  }

  /** MACs we deliver to: our pods and our bridge. */
  setLocalMacs(macs: Iterable<number>): void {
    this.local.setKnown(macs);
  }

  /** Check the path MTU to `peer` now (the fast datapath to it just failed: maybe the path shrank). */
  recheckPmtu(peer: PeerName): void {
    this.peers.get(peerKey(peer))?.pmtu?.recheck(this.now());
  }

  /** The sleeve reaches `peer` now (directly or relayed). */
  reachable(peer: PeerName): boolean {
    const rec = this.peers.get(peerKey(peer));
    return !!rec?.hop?.session?.ready;
  }

  peerStatus(peer: PeerName): SleevePeerStatus {
    const rec = this.peers.get(peerKey(peer));
    const now = this.now();
    const s = rec?.session;
    const via = rec?.hop?.session?.ready ? rec.hop : undefined;
    return {
      peer,
      link: s ? (!s.ready ? 'waiting' : s.healthy(now, this.lt) ? 'up' : 'down') : null,
      via: via ? (via === rec ? 'direct' : via.name) : null,
      mtu: via && rec?.pmtu ? rec.pmtu.budget - ETH_HEADER : null,
      mtuVerified: !!rec?.pmtu?.verified,
      encrypted: !!(s ?? via?.session)?.sealed,
    };
  }

  /** Every remote peer the sleeve knows of. */
  knownPeers(): PeerName[] {
    return [...this.peers.values()].map((p) => p.name);
  }

  /** Write frames of our own making (gratuitous ARP) to the TAP. */
  inject(frames: Buffer[]): void {
    if (!frames.length || this.closed) return;
    const buf = Buffer.concat(frames);
    const offs = new Uint32Array(frames.length);
    const lens = new Uint32Array(frames.length);
    let at = 0;
    frames.forEach((f, i) => {
      offs[i] = at;
      lens[i] = f.length;
      at += f.length;
    });
    this.o.tap.write({ buf, offs, lens, count: frames.length });
  }

  /** Heartbeats, link health, path MTU probes, expiry. Call every ~100 ms. */
  tick(): void {
    if (this.closed) return;
    const now = this.now();
    for (const s of this.sessions.values()) {
      if (s.ready && now - s.lastHbSent >= this.lt.heartbeatMs) this.sendHeartbeat(s, now);
    }
    this.updateLinks(now);
    this.aux.flush();
    for (const rec of this.peers.values()) {
      if (!rec.pmtu || !rec.hop?.session?.ready) continue;
      // One send per probe: queued together, equal or shrinking sizes to one peer would leave as
      // one UDP GSO super-datagram, which a virtual link may carry whole past its MTU.
      for (const p of rec.pmtu.due(now)) {
        this.sendProbe(rec, p.id, p.size);
        this.aux.flush();
      }
      if (rec.pmtu.verified && rec.loggedBudget !== rec.pmtu.budget) {
        rec.loggedBudget = rec.pmtu.budget;
        this.o.log.info({ peer: rec.name, mtu: rec.pmtu.budget - ETH_HEADER, via: rec.hop === rec ? 'direct' : rec.hop.name }, `sleeve: path MTU to ${this.nick(rec.name)} verified at ${rec.pmtu.budget - ETH_HEADER}${rec.hop === rec ? '' : ` (via ${this.nick(rec.hop.name)})`}`);
        this.o.onReachabilityChanged();
      }
    }
    this.aux.flush();
    if (now - this.lastSweep > 30_000) {
      this.lastSweep = now;
      this.remote.sweep(now);
      this.local.sweep(now);
    }
  }

  close(): void {
    this.closed = true;
    for (const s of [...this.sessions.values()]) this.closeSession(s);
  }

  // ---- outbound: TAP -> UDP -------------------------------------------------

  private fromTap(b: Batch): void {
    if (this.closed) return;
    const now = this.now();
    const buf = b.buf;
    const main = this.main;
    const plain = this.plainOut;
    plain.buf = buf;
    plain.count = 0;
    this.icmp.count = 0;
    this.icmpBufs.length = 0;
    this.bcast.length = 0;
    let bytes = 0;
    for (let i = 0; i < b.count; i++) {
      const off = b.offs[i]!;
      const len = b.lens[i]!;
      if (len < ETH_HEADER) {
        this.txDrops['bad-length']++;
        continue;
      }
      this.local.saw(read48(buf, off + 6), now);
      if (isGroupMac(buf, off)) {
        this.bcast.push(i);
        continue;
      }
      const owner = this.remote.lookup(read48(buf, off), now);
      const rec = owner === undefined ? undefined : this.peers.get(owner);
      if (!rec) {
        this.txDrops['no-owner']++;
        continue;
      }
      const hop = rec.hop;
      const s = hop?.session;
      if (!s?.ready) {
        this.txDrops['no-route']++;
        continue;
      }
      const budget = rec.pmtu ? rec.pmtu.budget : this.o.mtu + ETH_HEADER;
      if (len > budget) {
        this.tooBig(buf, off, len, budget);
        continue;
      }
      const routed = hop !== rec;
      bytes += len;
      if (s.sealer) {
        main.queue(s, TYPE_FRAME, routed ? FLAG_ROUTED : 0, DEFAULT_TTL, this.selfKey, rec.key, 0, buf, off, len);
      } else {
        // In the clear: the header goes into the headroom, the datagram is sent from the TAP's buffer.
        const hdr = BASE_HEADER + (routed ? ROUTED_EXTRA : 0);
        writeHeader(buf, off - hdr, TYPE_FRAME, routed ? FLAG_ROUTED : 0, DEFAULT_TTL, s.remoteIndex, this.selfKey, rec.key);
        const n = plain.count++;
        plain.offs[n] = off - hdr;
        plain.lens[n] = len + hdr;
        plain.addrs[2 * n] = s.ipU32;
        plain.addrs[2 * n + 1] = s.port;
      }
    }
    const queued = main.count + plain.count;
    this.counters.txFrames += queued;
    this.counters.txBytes += bytes;
    if (main.count) main.flush();
    if (plain.count) this.o.socket.sendBatch(plain);
    for (const i of this.bcast) this.broadcastFromTap(buf, b.offs[i]!, b.lens[i]!);
    if (this.aux.count) this.aux.flush();
    if (this.icmp.count) {
      this.icmp.buf = this.icmpBufs.length === 1 ? this.icmpBufs[0]! : Buffer.concat(this.icmpBufs);
      let at = 0;
      for (let k = 0; k < this.icmp.count; k++) {
        this.icmp.offs[k] = at;
        at += this.icmp.lens[k]!;
      }
      this.o.tap.write(this.icmp);
    }
  }

  private tooBig(buf: Buffer, off: number, len: number, budget: number): void {
    this.txDrops['too-big']++;
    const mtu = budget - ETH_HEADER;
    if (ipv4PacketLength(buf, off, len) <= mtu) return;
    const reply = mtu >= 68 ? buildFragNeeded(buf, off, len, mtu) : null;
    if (!reply || this.icmp.count >= this.icmp.lens.length) return;
    this.icmp.lens[this.icmp.count++] = reply.length;
    this.icmpBufs.push(reply);
    this.counters.fragNeededSent++;
  }

  private broadcastFromTap(buf: Buffer, off: number, len: number): void {
    let sent = false;
    for (const c of this.routes.children(this.selfKey)) {
      const s = this.peers.get(c)?.session;
      if (!s?.ready) continue;
      if (this.aux.queue(s, TYPE_BCAST, 0, DEFAULT_TTL, 0, 0, this.selfKey, buf, off, len)) sent = true;
    }
    if (sent) {
      this.counters.broadcastsSent++;
      this.counters.txBytes += len;
    }
  }

  // ---- inbound: UDP -> TAP --------------------------------------------------

  private ensureRx(n: number): void {
    if (n <= this.rxCap) return;
    this.rxCap = n;
    this.rxStatus = new Int32Array(n);
    this.rxType = new Uint8Array(n);
    this.rxHdr = new Uint8Array(n);
    this.rxSess = new Array<SleeveSession | undefined>(n);
    this.runSrc = new Uint32Array(n);
    this.runLen = new Uint32Array(n);
    this.runDst = new Uint32Array(n);
    this.rxFrames.offs = new Uint32Array(n);
    this.rxFrames.lens = new Uint32Array(n);
  }

  private fromUdp(d: DatagramBatch): void {
    if (this.closed) return;
    const now = this.now();
    const n = d.count;
    this.ensureRx(n);
    const buf = d.buf;
    const h = this.h;
    const status = this.rxStatus;
    // Pass 1: shape, session, length and replay checks, before any crypto.
    for (let i = 0; i < n; i++) {
      this.rxSess[i] = undefined;
      const off = d.offs[i]!;
      const len = d.lens[i]!;
      const problem = readHeader(buf, off, len, h);
      if (problem) {
        this.rxDrops[problem]++;
        continue;
      }
      const s = this.sessions.get(h.index);
      if (!s || (!s.sealed && d.addrs[2 * i] !== s.ipU32)) {
        this.rxDrops['unknown-peer']++;
        continue;
      }
      const bodyLen = len - h.length - (s.sealed ? SEAL_OVERHEAD : 0);
      if (bodyLen < 0) {
        this.rxDrops['bad-length']++;
        continue;
      }
      if (s.window) {
        const at = off + h.length;
        const lo = (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
        const hi = (buf[at + 4]! | (buf[at + 5]! << 8) | (buf[at + 6]! << 16) | (buf[at + 7]! << 24)) >>> 0;
        if (hi > 0x1fffff) {
          this.rxDrops.auth++; // beyond 2^53: no sealer of ours goes there
          continue;
        }
        const v = s.window.verdict(hi * 0x100000000 + lo);
        if (v !== 0) {
          this.rxDrops[v === 1 ? 'replay' : 'too-old']++;
          continue;
        }
      }
      this.rxSess[i] = s;
      this.rxType[i] = h.type | (h.flags & FLAG_ROUTED ? 0x80 : 0);
      this.rxHdr[i] = h.length;
      status[i] = bodyLen;
    }
    // Pass 2: open sealed datagrams in place, one AEAD call per run of one session and header length.
    let i = 0;
    while (i < n) {
      const s = this.rxSess[i];
      if (!s?.opener) {
        i++;
        continue;
      }
      const hdr = this.rxHdr[i]!;
      let j = i;
      let k = 0;
      while (j < n && (this.rxSess[j] === s || this.rxSess[j] === undefined) && (this.rxSess[j] === undefined || this.rxHdr[j] === hdr)) {
        if (this.rxSess[j] === s) {
          const at = d.offs[j]! + hdr;
          this.runSrc[k] = at;
          this.runLen[k] = d.lens[j]! - hdr;
          this.runDst[k] = at + 8;
          k++;
        }
        j++;
      }
      this.openRun(s, buf, k, hdr);
      // Scatter results back to the datagrams of this run.
      let r = 0;
      for (let q = i; q < j; q++) {
        if (this.rxSess[q] !== s) continue;
        const res = this.runResult[r]!;
        const c = this.runCtr[2 * r]! + this.runCtr[2 * r + 1]! * 0x100000000;
        r++;
        if (res < 0) {
          this.rxDrops.auth++;
          this.rxSess[q] = undefined;
          continue;
        }
        // A duplicate inside this batch passed pass 1: check again, then accept.
        if (s.window!.verdict(c) !== 0) {
          this.rxDrops.replay++;
          this.rxSess[q] = undefined;
          continue;
        }
        s.window!.acceptSafe(c);
        status[q] = res;
      }
      i = j;
    }
    // Pass 3: dispatch.
    const out = this.rxFrames;
    out.buf = buf;
    out.count = 0;
    let bytes = 0;
    for (let q = 0; q < n; q++) {
      const s = this.rxSess[q];
      if (!s) continue;
      const t = this.rxType[q]!;
      const type = t & 0x0f;
      const routed = (t & 0x80) !== 0;
      const off = d.offs[q]!;
      const body = off + this.rxHdr[q]! + (s.sealed ? 8 : 0);
      const bodyLen = status[q]!;
      s.lastRx = now;
      let src = s.peer.key;
      if (routed) {
        readHeader(buf, off, d.lens[q]!, h);
        src = h.src;
        if (h.dst !== this.selfKey) {
          this.relay(s, h, buf, body, bodyLen);
          continue;
        }
        if (src === this.selfKey) {
          this.rxDrops.loop++;
          continue;
        }
      }
      switch (type) {
        case TYPE_FRAME:
          if (this.deliverable(buf, body, bodyLen, src, now)) {
            out.offs[out.count] = body;
            out.lens[out.count++] = bodyLen;
            bytes += bodyLen;
          }
          break;
        case TYPE_BCAST: {
          readHeader(buf, off, d.lens[q]!, h);
          this.onBroadcast(s, h, buf, body, bodyLen, now, out);
          break;
        }
        case TYPE_HEARTBEAT:
          if (routed || bodyLen < HEARTBEAT_BODY) {
            this.rxDrops[routed ? 'bad-header' : 'bad-length']++;
            break;
          }
          s.peerHearsUs = (buf[body + 4]! & 1) === 1;
          this.counters.heartbeatsReceived++;
          // We just started hearing the peer: tell it now, not in half a second.
          if (!s.lastSentHear && s.ready) this.sendHeartbeat(s, now);
          break;
        case TYPE_PROBE:
          this.onProbe(s, src, routed, buf, body, bodyLen);
          break;
        case TYPE_PROBE_ACK:
          if (bodyLen < PROBE_ACK_BODY) {
            this.rxDrops['bad-length']++;
            break;
          }
          this.counters.probeAcksReceived++;
          this.peers.get(src)?.pmtu?.acked(readU32(buf, body), readU16(buf, body + 4));
          break;
      }
    }
    this.counters.rxFrames += out.count;
    this.counters.rxBytes += bytes;
    if (out.count) this.o.tap.write(out);
    if (this.aux.count) this.aux.flush();
  }

  private runResult = new Int32Array(0);
  private runCtr = new Uint32Array(0);

  private openRun(s: SleeveSession, buf: Buffer, k: number, hdr: number): void {
    if (this.runResult.length < k) {
      this.runResult = new Int32Array(Math.max(k, this.rxCap));
      this.runCtr = new Uint32Array(2 * Math.max(k, this.rxCap));
    }
    s.opener!.open(buf, this.runSrc, this.runLen, k, buf, this.runDst, this.runResult, this.runCtr, hdr);
  }

  /** A frame for us: is there anyone here to take it? Learns its source MAC. */
  private deliverable(buf: Buffer, off: number, len: number, src: number, now: number): boolean {
    if (len < ETH_HEADER) {
      this.rxDrops['bad-length']++;
      return false;
    }
    if (!isGroupMac(buf, off) && !this.local.has(read48(buf, off), now)) {
      this.rxDrops['no-owner']++;
      return false;
    }
    if (!isGroupMac(buf, off + 6) && this.peers.has(src)) this.remote.learn(read48(buf, off + 6), src, now);
    return true;
  }

  private onBroadcast(s: SleeveSession, h: Header, buf: Buffer, body: number, len: number, now: number, out: Batch): void {
    const origin = h.origin;
    if (origin === this.selfKey) {
      this.rxDrops.loop++;
      return;
    }
    this.counters.broadcastsReceived++;
    const rec = this.peers.get(origin);
    // A peer whose broadcasts reach us through the vxlan already delivered this one there.
    if (!rec?.fastdpToUs && this.deliverable(buf, body, len, origin, now)) {
      out.offs[out.count] = body;
      out.lens[out.count++] = len;
    }
    if (h.ttl <= 1) return;
    for (const c of this.routes.children(origin)) {
      const cs = this.peers.get(c)?.session;
      if (!cs?.ready || cs === s) continue;
      this.aux.queue(cs, TYPE_BCAST, 0, h.ttl - 1, 0, 0, origin, buf, body, len);
    }
  }

  private relay(from: SleeveSession, h: Header, buf: Buffer, body: number, len: number): void {
    if (h.ttl <= 1) {
      this.rxDrops.ttl++;
      return;
    }
    const rec = this.peers.get(h.dst);
    const s = rec?.hop?.session;
    if (!s?.ready || s === from) {
      this.rxDrops['no-route']++;
      return;
    }
    // Routed datagrams stay routed to the end: the destination needs the source peer.
    if (this.aux.queue(s, h.type, FLAG_ROUTED, h.ttl - 1, h.src, h.dst, 0, buf, body, len)) this.counters.relayed++;
  }

  private onProbe(s: SleeveSession, src: number, routed: boolean, buf: Buffer, body: number, len: number): void {
    if (len < PROBE_MIN_BODY || readU16(buf, body + 4) !== len) {
      this.rxDrops['bad-length']++;
      return;
    }
    // Answer along our route to the prober (directly when it probed directly).
    const back = routed ? this.peers.get(src)?.hop?.session : s;
    if (!back?.ready) {
      this.rxDrops['no-route']++;
      return;
    }
    const ack = this.scratch;
    writeU32(ack, 0, readU32(buf, body));
    ack[4] = buf[body + 4]!;
    ack[5] = buf[body + 5]!;
    const viaRelay = back.peer.key !== src;
    this.aux.queue(back, TYPE_PROBE_ACK, viaRelay ? FLAG_ROUTED : 0, DEFAULT_TTL, this.selfKey, src, 0, ack, 0, PROBE_ACK_BODY);
  }

  // ---- control datagrams we originate ---------------------------------------

  private sendHeartbeat(s: SleeveSession, now: number): void {
    s.lastHbSent = now;
    s.hbSeq = (s.hbSeq + 1) >>> 0;
    const body = this.scratch;
    s.lastSentHear = s.hearing(now, this.lt);
    writeHeartbeatBody(body, 0, s.hbSeq, s.lastSentHear);
    if (this.aux.queue(s, TYPE_HEARTBEAT, 0, 1, 0, 0, 0, body, 0, HEARTBEAT_BODY)) this.counters.heartbeatsSent++;
  }

  private sendProbe(rec: PeerRec, id: number, size: number): void {
    const s = rec.hop?.session;
    if (!s?.ready || size > this.scratch.length) return;
    const body = this.scratch;
    writeProbeBody(body, 0, id, size, size);
    const routed = rec.hop !== rec;
    if (this.aux.queue(s, TYPE_PROBE, routed ? FLAG_ROUTED : 0, DEFAULT_TTL, this.selfKey, rec.key, 0, body, 0, size)) this.counters.probesSent++;
  }

  // ---- links, routes, path MTU ----------------------------------------------

  private updateLinks(now: number): void {
    const up = new Set<number>();
    for (const s of this.sessions.values()) if (s.healthy(now, this.lt)) up.add(s.peer.key);
    if (up.size === this.links.size && [...up].every((k) => this.links.has(k))) return;
    const gone = [...this.links].filter((k) => !up.has(k));
    const came = [...up].filter((k) => !this.links.has(k));
    this.links = up;
    for (const k of came) this.o.log.info({ peer: peerNameOf(k) }, `sleeve: UDP to ${this.nick(peerNameOf(k))} works both ways`);
    for (const k of gone) this.o.log.warn({ peer: peerNameOf(k) }, `sleeve: UDP to ${this.nick(peerNameOf(k))} stopped working (no heartbeat for ${this.lt.linkTimeoutMs} ms or not answered); routing around it`);
    this.o.onLinksChanged([...up].map(peerNameOf));
    this.recomputeRoutes();
  }

  private recomputeRoutes(): void {
    // Our own links are known first-hand (both directions measured): count
    // them even before the peer's announcement arrives.
    const g = new Map<number, Set<number>>();
    for (const [k, v] of this.graph) g.set(k, new Set(v));
    g.set(this.selfKey, new Set(this.links));
    for (const k of this.links) {
      const ls = g.get(k) ?? new Set<number>();
      ls.add(this.selfKey);
      g.set(k, ls);
    }
    this.routes = new SleeveRoutes(g as Graph, this.selfKey);
    let changed = false;
    const now = this.now();
    for (const k of new Set([...this.routes.hops.keys(), ...this.peers.keys()])) {
      if (k === this.selfKey) continue;
      const hopKey = this.routes.nextHop(k);
      const rec = this.peer(k);
      const hop = hopKey === undefined ? undefined : this.peers.get(hopKey);
      const usable = hop?.session ? hop : undefined;
      if (usable === rec.hop) continue;
      changed = true;
      rec.hop = usable;
      if (!usable) {
        rec.pmtu = undefined;
        continue;
      }
      const cand = this.candidateBudget(rec);
      if (rec.pmtu) rec.pmtu.reset(cand, now);
      else rec.pmtu = new PathMtu(cand, MIN_FRAME_BUDGET, this.pt);
      rec.loggedBudget = 0;
    }
    if (changed) this.o.onReachabilityChanged();
  }

  /** The largest frame that can go to `rec` over its hop as far as the local kernel knows. */
  private candidateBudget(rec: PeerRec): number {
    const s = rec.hop?.session;
    const max = this.o.mtu + ETH_HEADER;
    if (!s) return max;
    const path = s.pathMtu || 1500;
    return Math.max(MIN_FRAME_BUDGET, Math.min(max, path - datagramOverhead(rec.hop !== rec, s.sealed)));
  }

  private queryPathMtu(s: SleeveSession): void {
    if (s.pathMtuPending) return;
    s.pathMtuPending = true;
    this.o.socket
      .pathMtu(s.ip)
      .then((mtu) => {
        s.pathMtuPending = false;
        if (s.closed || mtu === s.pathMtu) return;
        s.pathMtu = mtu;
        this.resetPmtuVia(s);
      })
      .catch((err: unknown) => {
        s.pathMtuPending = false;
        this.o.log.debug({ peer: s.peer.name, err: String(err) }, 'sleeve: path MTU query failed');
      });
  }

  private resetPmtuVia(s: SleeveSession): void {
    const now = this.now();
    for (const rec of this.peers.values()) {
      if (rec.hop?.session !== s || !rec.pmtu) continue;
      rec.pmtu.reset(this.candidateBudget(rec), now);
      rec.loggedBudget = 0;
    }
  }

  private onSendError(e: SendError): void {
    this.counters.sendErrors++;
    if (e.code !== 'EMSGSIZE') return;
    // The kernel learned a smaller path MTU (ICMP from a router): ask it, search again.
    for (const s of this.sessions.values()) if (s.ip === e.ip) this.queryPathMtu(s);
  }

  private nick(peer: PeerName): string {
    return this.o.nickname?.(peer) ?? peer;
  }

  private peer(key: number): PeerRec {
    let rec = this.peers.get(key);
    if (!rec) {
      rec = newPeerRec(key, peerNameOf(key));
      this.peers.set(key, rec);
    }
    return rec;
  }
}
