// IPAM as a gossip channel: the composition of the ring CRDT (state.ts),
// the local allocator (allocations.ts), Paxos (paxos.ts) and persistence
// (store.ts). Deterministic and I/O-free except through the injected store,
// channel and timers. The design and its safety arguments are in docs/ipam.md.
import { EventEmitter } from 'node:events';
import type { GossipChannel, Gossiper, PeerName } from '../../mesh/types.js';
import { GossipRejected } from '../../mesh/types.js';
import { type Cidr, addressInCidr, cidrContains, formatAddress, formatCidr, parseAddress, parseCidr } from './addr.js';
import { type Allocation, AllocationTable, freeSpace, pickAddress, pickDonation } from './allocations.js';
import { type IpamMessage, type PaxosMessage, DecodeError, decodeMessage, encodeMessage, genesisToPlain, isPeerName, paxosValueKey, recordToPlain, removalToPlain, resolutionToPlain } from './codec.js';
import { hashFields, SetHash } from '../../crypto/fingerprint.js';
import { findConflicts, conflictSignature } from './conflicts.js';
import { CLAIM_INSTANCE, ClaimProposer, seedGenesis } from './consensus.js';
import { IpamError } from './errors.js';
import { HOST_CONTAINER_ID, containerIdError, interfaceNameError } from './ids.js';
import { parseRange, quorumOf } from './init.js';
import { adoptions, claimGrants, removalOfMe, revocations, ringChoice, settlement } from './owner.js';
import { type AcceptorState, FRESH_ACCEPTOR, handleAccept, handlePrepare } from './paxos.js';
import { type IpamSnapshot, snapshotFromPlain, snapshotToPlain } from './persist.js';
import { Persister } from './persister.js';
import { type Range, contains, intersect, normalize, overlaps, size, subtract, union } from './ranges.js';
import { removalSize, strandedTo } from './removal.js';
import { RemovalProposer, parseRemovalInstance, removalInstance } from './rmpeer.js';
import {
  type StateItems,
  allItems,
  digest,
  duplicateAddresses,
  emptyItems,
  isVoid,
  itemCount,
  lastRemoval,
  mergeItems,
  othersInUse,
  removalsOf,
  ringRecords,
  ringView,
  winningRing,
} from './state.js';
import { type IpamConflict, type IpamStatus, describeAddressRange, mostSerious } from './status.js';
import type { IpamStore } from './store.js';
import { type GossipState, type InitMode, type PeerRecord, type Removal, type Resolution, type RingId, emptyState, removalKey } from './types.js';
import { refuseRecord } from './validate.js';

/** The narrow view of the mesh IPAM needs (MeshHandle satisfies it). peers() includes self. */
export interface IpamMeshView {
  readonly localName: PeerName;
  readonly localNickname: string;
  readonly localUid: string;
  peers(): readonly { name: PeerName; nickname: string }[];
  isReachable(name: PeerName): boolean;
}

/** Injected time, so tests and the simulator run on a virtual clock. */
export interface IpamTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: IpamTimers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const h = setTimeout(fn, ms);
    h.unref?.();
    return h;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export type IpamLogLevel = 'debug' | 'info' | 'warn' | 'error';
export type IpamLog = (level: IpamLogLevel, msg: string, fields?: Record<string, unknown>) => void;

export interface IpamTimeouts {
  /** Longest an allocate/claim waits for a ring or for space. */
  allocateMs: number;
  /** How long to wait for one donor's answer before asking the next. */
  donationAskMs: number;
  /** How long a peer that denied (or did not answer) is not asked again. */
  denyBackoffMs: number;
  /** Paxos: resend / start a higher ballot after this long without progress. */
  paxosRetryMs: number;
  /** consensus: peers other than the lowest-named wait this long (plus jitter) before proposing. */
  proposeDelayMs: number;
  rmpeerMs: number;
  handoverMs: number;
  /** Periodic re-evaluation (reachability, retries). */
  tickMs: number;
  persistRetryMs: number;
}

export const DEFAULT_TIMEOUTS: IpamTimeouts = {
  allocateMs: 30_000,
  donationAskMs: 2_000,
  denyBackoffMs: 5_000,
  paxosRetryMs: 1_000,
  proposeDelayMs: 2_000,
  rmpeerMs: 15_000,
  handoverMs: 5_000,
  tickMs: 1_000,
  persistRetryMs: 1_000,
};

export interface IpamOptions {
  /** `--ipalloc-range` (CIDR text or parsed). */
  range: string | Cidr;
  init: InitMode;
  mesh: IpamMeshView;
  /** The registered channel, or a function registering `this` and returning it. */
  channel: GossipChannel | ((gossiper: Gossiper) => GossipChannel);
  store: IpamStore;
  timers?: IpamTimers;
  /** Uniform [0,1); injected for deterministic tests. */
  random?: () => number;
  log?: IpamLog;
  timeouts?: Partial<IpamTimeouts>;
}

/** An address handed to a container. */
export interface AllocationResult {
  containerId: string;
  iface: string;
  /** "10.32.0.5" */
  address: string;
  prefixLength: number;
  /** "10.32.0.5/12": the address with the prefix length of the block it came from. */
  cidr: string;
  /** The block allocated in, "10.32.0.0/12". */
  subnet: string;
}

export interface AllocationChange {
  added: AllocationResult[];
  removed: AllocationResult[];
  /** Taken away by `resolve` (the container must get another address). */
  revoked: AllocationResult[];
}

export interface IpamEvents {
  ready: [];
  'allocations-changed': [change: AllocationChange];
  conflict: [conflicts: IpamConflict[]];
}

export interface RmpeerResult {
  removed: { peer: PeerName; nickname: string; addresses: number; heirs: { peer: PeerName; addresses: number }[] }[];
  alreadyRemoved: PeerName[];
  message: string;
}

export interface HandoverResult {
  acknowledged: boolean;
  heir: PeerName | null;
  addresses: number;
  message: string;
}

export interface ResolveResult {
  decided: { address: string; keeper: PeerName; losers: PeerName[] }[];
  undecided: { address: string; peers: PeerName[] }[];
  message: string;
}

function toResult(a: Allocation): AllocationResult {
  const address = formatAddress(a.address);
  return {
    containerId: a.containerId,
    iface: a.iface,
    address,
    prefixLength: a.subnet.prefixLength,
    cidr: `${address}/${a.subnet.prefixLength}`,
    subnet: formatCidr(a.subnet),
  };
}

function recordContent(r: PeerRecord): string {
  return JSON.stringify(recordToPlain({ ...r, version: 0 }));
}

export class Ipam implements Gossiper {
  readonly range: Cidr;
  private readonly init: InitMode;
  private readonly mesh: IpamMeshView;
  private readonly channel: GossipChannel;
  private readonly store: IpamStore;
  private readonly timers: IpamTimers;
  private readonly random: () => number;
  private readonly log: IpamLog;
  private readonly t: IpamTimeouts;
  private readonly events = new EventEmitter();
  private readonly me: PeerName;

  private phase: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  private state: GossipState = emptyState();
  private readonly allocs = new AllocationTable();
  private acceptors = new Map<string, AcceptorState>();
  private round = 0;
  private yielded = new Set<string>();

  // Persistence: nothing that lets others rely on a change leaves before it is saved.
  private readonly persister: Persister;
  private persistError: string | null = null;
  private persistedMine: PeerRecord | null = null;
  private publishedVersion = -1;
  private readonly allocGen = new WeakMap<Allocation, number>();

  private waiters = new Set<() => void>();
  private readonly handles = new Set<unknown>();

  // Donation (requester side).
  private donation: { peer: PeerName; reqId: number; subnet: Range; timer: unknown } | null = null;
  private reqSeq = 0;
  private readonly denied = new Map<PeerName, { until: number; reason: string }>();
  private donationProblem: string | null = null;
  private pendingAllocations = 0;

  // Paxos proposers.
  private readonly claimer: ClaimProposer;
  private readonly removals: RemovalProposer;
  /** When this peer accepted each removal value not yet published (to finish it if its proposer died). */
  private readonly acceptedAt = new Map<string, number>();

  // What status reports.
  private readonly rangeMismatch = new Map<PeerName, string>();
  private notes: { removed?: IpamConflict; lostState?: IpamConflict } = {};
  private seedProblem: string | null = null;
  private counters = { rejectedUpdates: 0, malformedMessages: 0 };
  private lastRejection: string | null = null;
  private readonly loggedAt = new Map<string, number>();
  private wasReady = false;
  private conflictSignature = '';

  constructor(opts: IpamOptions) {
    this.range = typeof opts.range === 'string' ? parseRange(opts.range) : opts.range;
    if (this.range.prefixLength > 30) throw new Error(`IPAM range ${formatCidr(this.range)} is too small (use /30 or larger)`);
    const init = opts.init;
    if (init.kind === 'consensus' && !(Number.isInteger(init.n) && init.n >= 1)) {
      throw new Error(`IPAM consensus=N needs a whole number N >= 1, got ${String(init.n)}`);
    }
    if (init.kind === 'seed' && init.peers.length === 0) throw new Error('IPAM seed mode needs at least one seed peer');
    this.init = init;
    this.mesh = opts.mesh;
    this.me = opts.mesh.localName;
    if (!isPeerName(this.me)) throw new Error(`IPAM: peer name "${this.me}" is not valid`);
    this.store = opts.store;
    this.timers = opts.timers ?? systemTimers;
    this.random = opts.random ?? Math.random;
    this.log = opts.log ?? (() => undefined);
    this.t = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
    this.channel = typeof opts.channel === 'function' ? opts.channel(this) : opts.channel;
    this.persister = new Persister({
      canSave: () => this.phase === 'running' || this.phase === 'stopped',
      canSend: () => this.phase === 'running',
      snapshot: () => ({ plain: snapshotToPlain(this.snapshot()), token: this.mine() }),
      save: (plain) => this.store.save(plain),
      onSaved: (token) => {
        const wasFailing = this.persistError !== null;
        this.persistedMine = token as PeerRecord;
        this.persistError = null;
        if (wasFailing) this.log('info', 'IPAM state is being saved again');
        this.publishMine();
        this.notify();
      },
      onError: (message) => {
        this.persistError = message;
        this.logOnce('error', `IPAM cannot save its state: ${message}`, {});
        this.notify();
      },
      later: (ms, fn) => void this.timer(ms, fn),
      retryMs: this.t.persistRetryMs,
    });
    const proposerBase = {
      me: this.me,
      nextRound: (atLeast: number) => {
        this.round = Math.max(this.round, atLeast) + 1;
        this.markDirty();
        return this.round;
      },
      afterSave: (fn: () => void) => this.afterPersist(fn),
      sendPaxos: (to: PeerName, m: PaxosMessage) => this.sendPaxos(to, m),
      timer: (ms: number, fn: () => void) => this.timer(ms, fn),
      cancel: (h: unknown) => this.cancel(h),
      random: () => this.random(),
      now: () => this.now(),
      retryMs: this.t.paxosRetryMs,
    };
    this.claimer = new ClaimProposer({
      ...proposerBase,
      quorum: init.kind === 'consensus' ? quorumOf(init.n) : Infinity,
      hasRing: () => init.kind !== 'consensus' || this.mine().ring !== null,
      consensusPeers: () => this.consensusPeers(),
      randomHex: () => this.randomHex(),
      chosen: (g) => {
        this.log('info', 'IPAM ring agreed by consensus', { ring: g.id, claimants: g.claimants });
        this.originate({ ...emptyItems(), geneses: [g] });
        this.reconcile();
      },
      proposeDelayMs: this.t.proposeDelayMs,
    });
    this.removals = new RemovalProposer({
      ...proposerBase,
      range: this.range,
      state: () => this.state,
      ring: () => this.mine().ring,
      isReachable: (p) => this.mesh.isReachable(p),
      describe: (p) => this.describePeer(p),
      copyOf: (p) => this.copyOf(p),
      ringMembers: () => this.ringPeerNames(),
      chosen: (removal) => {
        this.originate({ ...emptyItems(), removals: [removal] });
        this.log('warn', 'IPAM peer removed', { peer: removal.target, addresses: removalSize(removal), heirs: removal.heirs.map((h) => h.to) });
        this.reconcile();
      },
      timeoutMs: this.t.rmpeerMs,
    });
  }

  // ================================================================ lifecycle

  /** Load state (refusing a corrupt file or one for another range/peer), then join the mesh's IPAM. */
  async start(): Promise<void> {
    if (this.phase !== 'new') throw new Error('IPAM already started');
    this.phase = 'starting';
    let plain;
    try {
      plain = await this.store.load();
    } catch (e) {
      this.phase = 'stopped';
      throw e instanceof IpamError ? e : new IpamError('store', `${this.store.location}: ${(e as Error).message}`);
    }
    if (plain) {
      let snap: IpamSnapshot;
      try {
        snap = snapshotFromPlain(plain);
      } catch (e) {
        this.phase = 'stopped';
        throw new IpamError('store', `${this.store.location}: invalid state: ${(e as Error).message}`);
      }
      const fail = (msg: string) => {
        this.phase = 'stopped';
        return new IpamError('store', `${this.store.location}: ${msg}`);
      };
      if (snap.peer !== this.me) {
        throw fail(`the state belongs to peer ${snap.peer} but this peer is ${this.me}; start with --name ${snap.peer}, or move the file aside to start afresh`);
      }
      if (snap.range.start !== this.range.start || snap.range.end !== this.range.end) {
        throw fail(
          `the state was written for --ipalloc-range ${formatCidr(snap.range)} but this peer was started with ${formatCidr(this.range)}; use the same range, or run 'meshnet reset' to give up this peer's space and allocations`,
        );
      }
      this.state = snap.state;
      for (const a of snap.allocations) this.allocs.add(a);
      this.allocs.addOrphans(snap.orphans);
      this.allocs.cursor = snap.cursor;
      this.acceptors = new Map(snap.acceptors);
      this.round = snap.round;
      this.yielded = new Set(snap.yielded);
    }
    const old = this.state.records.get(this.me);
    const base: PeerRecord = old ?? {
      peer: this.me,
      nickname: this.mesh.localNickname,
      version: 0,
      ring: null,
      mode: this.init.kind,
      quorum: 0,
      ranges: [],
      inUse: [],
      free: 0,
      transferSeq: 0,
      outgoing: [],
      adopted: new Map(),
      retired: false,
      rehomedFrom: null,
    };
    // A new start always bumps the version so every peer takes our record again.
    this.state.records.set(this.me, {
      ...base,
      nickname: this.mesh.localNickname.slice(0, 255),
      mode: this.init.kind,
      quorum: this.init.kind === 'consensus' ? this.init.n : 0,
      retired: false,
      version: base.version + 1,
    });
    this.phase = 'running';
    this.markDirty();
    this.reconcile();
    this.timer(this.t.tickMs, () => this.tick());
    try {
      await this.whenPersisted(this.persister.current, this.timers.now() + 60_000);
    } catch (e) {
      // A failed start stops what it started.
      await this.stop();
      throw e;
    }
    this.log('info', 'IPAM started', {
      range: formatCidr(this.range),
      mode: this.init.kind,
      ring: this.mine().ring,
      owned: size(this.mine().ranges),
      allocations: this.allocs.size,
    });
  }

  /** Stop timers and answer no more; waits for the last save. Allocations stay in the state file. */
  async stop(): Promise<void> {
    if (this.phase === 'stopped' || this.phase === 'new') {
      this.phase = 'stopped';
      return;
    }
    this.phase = 'stopped';
    for (const h of this.handles) this.timers.clearTimeout(h);
    this.handles.clear();
    this.removals.stopAll(new IpamError('stopped', 'IPAM stopped'));
    this.claimer.stop();
    this.notify();
    await this.persister.idle();
  }

  on<E extends keyof IpamEvents>(event: E, listener: (...args: IpamEvents[E]) => void): this {
    this.events.on(event, listener as (...a: unknown[]) => void);
    return this;
  }

  off<E extends keyof IpamEvents>(event: E, listener: (...args: IpamEvents[E]) => void): this {
    this.events.off(event, listener as (...a: unknown[]) => void);
    return this;
  }

  /** Call on every mesh topology/connection event: reachability decides donors, quorums and heirs. */
  topologyChanged(): void {
    if (this.phase !== 'running') return;
    this.safely(() => this.reconcile());
  }

  get ready(): boolean {
    const m = this.state.records.get(this.me);
    return this.phase === 'running' && !!m && m.ring !== null && !m.retired;
  }

  // ================================================================ allocation API

  /**
   * An address for (containerId, iface): the same one again if it already
   * has one (idempotent). Waits, bounded, for the ring and for space;
   * resolves only once the allocation is durable.
   */
  async allocate(containerId: string, iface = 'eth0', opts: { subnet?: string } = {}): Promise<AllocationResult> {
    this.checkIds(containerId, iface);
    const subnet = this.parseSubnet(opts.subnet);
    this.requireRunning();
    const deadline = this.timers.now() + this.t.allocateMs;
    this.pendingAllocations++;
    try {
      const a = await this.waitUntil(
        () => this.tryAllocate(containerId, iface, subnet),
        deadline,
        () => this.allocationTimeout(subnet),
      );
      await this.whenPersisted(this.allocGen.get(a) ?? 0, deadline);
      return toResult(a);
    } finally {
      this.pendingAllocations--;
    }
  }

  /** Release the container's addresses (one interface, or all). Unknown IDs are a successful no-op. */
  async release(containerId: string, iface?: string): Promise<{ released: AllocationResult[] }> {
    const idErr = containerIdError(containerId) ?? (iface === undefined ? undefined : interfaceNameError(iface));
    if (idErr) throw new IpamError('invalid', idErr);
    this.requireRunning();
    const list = iface === undefined ? this.allocs.ofContainer(containerId) : [this.allocs.get(containerId, iface)].filter((a) => a !== undefined);
    if (list.length === 0) return { released: [] };
    for (const a of list) this.allocs.remove(a);
    this.reconcile();
    await this.whenPersisted(this.persister.current, this.timers.now() + this.t.allocateMs);
    const released = list.map(toResult);
    this.emitAllocations({ added: [], removed: released, revoked: [] });
    return { released };
  }

  /**
   * Re-register `address` for a container that already uses it (after a
   * restart). Succeeds at once for space this peer owns or addresses it
   * remembers without a container; otherwise asks the owner to hand the
   * address over, and fails if the owner has allocated it or is unreachable.
   */
  async claim(containerId: string, iface: string, address: string, opts: { subnet?: string } = {}): Promise<AllocationResult> {
    this.checkIds(containerId, iface);
    const subnet = this.parseSubnet(opts.subnet);
    let addr: number;
    try {
      addr = parseAddress(address, 'claimed address');
    } catch (e) {
      throw new IpamError('invalid', (e as Error).message);
    }
    if (!addressInCidr(this.range, addr)) {
      throw new IpamError('invalid', `address ${address} is outside the allocation range ${formatCidr(this.range)}`);
    }
    if (!addressInCidr(subnet, addr)) throw new IpamError('invalid', `address ${address} is outside the subnet ${formatCidr(subnet)}`);
    this.requireRunning();
    const deadline = this.timers.now() + this.t.allocateMs;
    let pending: Allocation | undefined;
    try {
      const a = await this.waitUntil(
        () => {
          const r = this.tryClaim(containerId, iface, addr, subnet, pending);
          if (r && r.done) return r.allocation;
          pending = r?.allocation;
          return undefined;
        },
        deadline,
        () => {
          const owner = ownerName(this.state, this.range, this.mine().ring, addr);
          if (!this.ready) return new IpamError('not-ready', `IPAM is not ready: ${this.statusText()}`);
          return new IpamError(
            'unreachable',
            `cannot claim ${address}: its owner ${owner ?? '(none)'} did not hand it over within ${this.t.allocateMs} ms${owner && !this.mesh.isReachable(owner) ? ' (unreachable)' : ''}`,
          );
        },
      );
      await this.whenPersisted(this.allocGen.get(a) ?? this.persister.current, deadline);
      this.emitAllocations({ added: [toResult(a)], removed: [], revoked: [] });
      return toResult(a);
    } catch (e) {
      if (pending && this.allocs.get(containerId, iface) === pending && !contains(this.mine().ranges, addr)) {
        this.allocs.remove(pending);
        this.reconcile();
      }
      throw e;
    }
  }

  /** The container's allocations (all interfaces, or one). */
  lookup(containerId: string, iface?: string): AllocationResult[] {
    const list = iface === undefined ? this.allocs.ofContainer(containerId) : [this.allocs.get(containerId, iface)].filter((a) => a !== undefined);
    return list.map(toResult);
  }

  allocations(): AllocationResult[] {
    return this.allocs.all().map(toResult);
  }

  /** CNI GC: release every allocation whose container is not in `keep`, and forget addresses with no known container. */
  async gc(keep: Iterable<string>): Promise<{ released: AllocationResult[] }> {
    this.requireRunning();
    const keepSet = new Set(keep);
    keepSet.add(HOST_CONTAINER_ID);
    const drop = this.allocs.all().filter((a) => !keepSet.has(a.containerId));
    for (const a of drop) this.allocs.remove(a);
    this.allocs.removeOrphans(this.allocs.orphans);
    this.reconcile();
    await this.whenPersisted(this.persister.current, this.timers.now() + this.t.allocateMs);
    const released = drop.map(toResult);
    if (released.length) this.emitAllocations({ added: [], removed: released, revoked: [] });
    return { released };
  }

  private checkIds(containerId: string, iface: string): void {
    const err = containerIdError(containerId) ?? interfaceNameError(iface);
    if (err) throw new IpamError('invalid', err);
  }

  private parseSubnet(text: string | undefined): Cidr {
    if (text === undefined) return this.range;
    let c: Cidr;
    try {
      c = parseCidr(text, 'subnet');
    } catch (e) {
      throw new IpamError('invalid', (e as Error).message);
    }
    if (!cidrContains(this.range, c)) {
      throw new IpamError('invalid', `subnet ${text} is outside the allocation range ${formatCidr(this.range)}`);
    }
    if (c.prefixLength > 30) throw new IpamError('invalid', `subnet ${text} is too small to allocate from (use /30 or larger)`);
    return c;
  }

  private requireRunning(): void {
    if (this.phase !== 'running') throw new IpamError('stopped', this.phase === 'stopped' ? 'IPAM is stopped' : 'IPAM is not started');
    if (this.mine().retired) throw new IpamError('stopped', 'this peer handed its address space over (reset); it allocates nothing more');
  }

  private tryAllocate(containerId: string, iface: string, subnet: Cidr): Allocation | undefined {
    const existing = this.allocs.get(containerId, iface);
    if (existing) {
      if (!addressInCidr(subnet, existing.address)) {
        throw new IpamError(
          'conflict',
          `container ${containerId} (${iface}) already has ${formatAddress(existing.address)}, outside the requested subnet ${formatCidr(subnet)}`,
        );
      }
      return existing;
    }
    if (!this.ready) return undefined;
    const free = this.freeRanges();
    const addr = pickAddress(free, subnet, this.allocs.cursor);
    if (addr === undefined) {
      this.ensureDonation(subnet);
      return undefined;
    }
    const a: Allocation = {
      containerId,
      iface,
      address: addr,
      subnet,
      createdVersion: this.mine().version + 1,
      at: this.now(),
    };
    this.allocs.add(a);
    this.allocs.cursor = addr + 1;
    this.reconcile();
    this.allocGen.set(a, this.persister.current);
    this.afterPersist(() => this.emitAllocations({ added: [toResult(a)], removed: [], revoked: [] }));
    return a;
  }

  private tryClaim(
    containerId: string,
    iface: string,
    addr: number,
    subnet: Cidr,
    pending: Allocation | undefined,
  ): { done: boolean; allocation: Allocation } | undefined {
    const existing = this.allocs.get(containerId, iface);
    if (existing && existing !== pending) {
      if (existing.address === addr) return { done: true, allocation: existing };
      throw new IpamError('conflict', `container ${containerId} (${iface}) already has ${formatAddress(existing.address)}`);
    }
    const holder = this.allocs.atAddress(addr);
    if (holder && holder !== pending) {
      throw new IpamError('conflict', `address ${formatAddress(addr)} is already allocated to container ${holder.containerId} (${holder.iface})`);
    }
    if (!this.ready) return undefined;
    const mine = this.mine();
    const users = [...this.state.records.values()].filter(
      (r) => r.peer !== this.me && !r.retired && !isVoid(this.state, r) && contains(r.inUse, addr),
    );
    if (users.length > 0 && (pending === undefined || contains(mine.ranges, addr) || users.some((u) => contains(u.ranges, addr)))) {
      throw new IpamError('conflict', `address ${formatAddress(addr)} is in use on peer ${users.map((u) => `${u.peer} (${u.nickname})`).join(', ')}`);
    }
    if (pending && contains(mine.ranges, addr)) return { done: true, allocation: pending };
    if (pending) return { done: false, allocation: pending };
    const a: Allocation = { containerId, iface, address: addr, subnet, createdVersion: mine.version + 1, at: this.now() };
    this.allocs.add(a);
    this.reconcile();
    this.allocGen.set(a, this.persister.current);
    // Space we own (or an address we remembered without its container): done.
    // Otherwise the allocation is a claim the owner sees in our record.
    return { done: contains(this.mine().ranges, addr), allocation: a };
  }

  private allocationTimeout(subnet: Cidr): IpamError {
    if (this.phase !== 'running') return new IpamError('stopped', 'IPAM is stopped');
    if (!this.ready) return new IpamError('not-ready', `IPAM is not ready after ${this.t.allocateMs} ms: ${this.statusText()}`);
    return new IpamError(
      'no-space',
      `no free address in ${formatCidr(subnet)} after ${this.t.allocateMs} ms: ${this.donationProblem ?? 'no peer donated space'}`,
    );
  }

  /** Owned, not in use here or anywhere else we know of, and not a network/broadcast address. */
  private freeRanges(): Range[] {
    return freeSpace(this.mine().ranges, this.allocs.inUse(), othersInUse(this.state, this.me), this.range);
  }

  // ================================================================ donation

  /** Ask the reachable ring peer with the most free space for some; one request at a time. */
  private ensureDonation(subnet: Range): void {
    if (this.donation) return;
    const mine = this.mine();
    if (!mine.ring) return;
    const now = this.timers.now();
    const tried: string[] = [];
    for (const [p, d] of this.denied) {
      if (d.until <= now) this.denied.delete(p);
      else tried.push(`${p}: ${d.reason}`);
    }
    const candidates = [...ringRecords(this.state, this.range, mine.ring).values()]
      .filter((r) => r.peer !== this.me && !r.retired && !this.denied.has(r.peer) && this.mesh.isReachable(r.peer))
      .filter((r) => r.free > 0 && overlaps(r.ranges, [subnet]))
      .sort((a, b) => b.free - a.free || (a.peer < b.peer ? -1 : 1));
    const best = candidates[0];
    if (!best) {
      this.donationProblem =
        (tried.length ? `asked ${tried.join('; ')}; ` : '') +
        'no other reachable peer has free space (peers owning space may be unreachable: if they are dead, remove them with rmpeer)';
      return;
    }
    const reqId = ++this.reqSeq;
    const timer = this.timer(this.t.donationAskMs, () => {
      if (this.donation?.reqId !== reqId) return;
      this.denied.set(best.peer, { until: this.timers.now() + this.t.denyBackoffMs, reason: `no answer within ${this.t.donationAskMs} ms` });
      this.donation = null;
      this.notify();
    });
    this.donation = { peer: best.peer, reqId, subnet, timer };
    this.donationProblem = `waiting for space from ${best.peer} (${best.nickname})`;
    const sent = this.send(best.peer, { type: 'space-request', ring: mine.ring, reqId, subnet });
    if (!sent) {
      this.cancel(timer);
      this.donation = null;
      this.denied.set(best.peer, { until: now + this.t.denyBackoffMs, reason: 'unreachable' });
    }
  }

  private onSpaceRequest(from: PeerName, ring: RingId, reqId: number, subnet: Range): void {
    const mine = this.mine();
    const deny = (reason: string) => this.send(from, { type: 'space-denied', reqId, reason });
    if (!this.ready || mine.ring !== ring) return void deny(mine.ring ? `this peer is in ring ${mine.ring}, not ${ring}` : 'this peer has no ring yet');
    if (mine.outgoing.some((t) => t.to === from)) {
      // A grant is already on its way; send it again rather than give more.
      this.afterPersist(() => this.pushMineTo(from));
      return;
    }
    const chunk = pickDonation(this.freeRanges(), subnet);
    if (!chunk) return void deny('no free space');
    this.issueTransfer(from, [chunk]);
    this.log('info', 'IPAM donated space', { to: from, range: describeAddressRange(chunk.start, chunk.end), size: chunk.end - chunk.start });
    this.reconcile();
  }

  private onSpaceDenied(from: PeerName, reqId: number, reason: string): void {
    if (this.donation?.reqId !== reqId || this.donation.peer !== from) return;
    this.cancel(this.donation.timer);
    this.donation = null;
    this.denied.set(from, { until: this.timers.now() + this.t.denyBackoffMs, reason: `denied (${reason})` });
    this.notify();
  }

  /** Move `ranges` from our ranges into a transfer to `to` (adopted when `to` sees our record). */
  private issueTransfer(to: PeerName, ranges: Range[]): void {
    const mine = this.mine();
    const seq = mine.transferSeq + 1;
    this.setMine({
      ranges: subtract(mine.ranges, ranges),
      transferSeq: seq,
      outgoing: [...mine.outgoing, { seq, to, ranges: normalize(ranges) }],
    });
    this.afterPersist(() => this.pushMineTo(to));
  }

  // ================================================================ rmpeer / handover / resolve

  /**
   * Give dead peers' space to live ring peers. Every other ring peer must be
   * reachable and agree (Paxos with all of them as the quorum), so two
   * concurrent rmpeers, on one side or both sides of a partition, can never
   * give the same space to two heirs. Peers that are dead together must be
   * removed in one call.
   */
  async rmpeer(targets: string | readonly string[]): Promise<RmpeerResult> {
    this.requireRunning();
    const mine = this.mine();
    if (!mine.ring) throw new IpamError('not-ready', `cannot remove peers before the ring exists: ${this.statusText()}`);
    const list = (typeof targets === 'string' ? [targets] : [...targets]).map((t) => this.resolvePeer(t));
    if (list.length === 0) throw new IpamError('invalid', 'no peer to remove');
    const together = new Set(list);
    for (const p of list) {
      if (p === this.me) throw new IpamError('invalid', 'a peer cannot remove itself; use reset (handover) instead');
      if (this.mesh.isReachable(p)) {
        throw new IpamError('conflict', `peer ${this.describePeer(p)} is reachable: rmpeer is only for dead peers (stop or reset it instead)`);
      }
    }
    const { required, unreachable } = this.removalQuorum(together);
    if (unreachable.length > 0) {
      throw new IpamError(
        'unreachable',
        `cannot remove ${list.map((p) => this.describePeer(p)).join(', ')}: every other ring peer must agree, and ${unreachable
          .map((p) => this.describePeer(p))
          .join(', ')} ${unreachable.length === 1 ? 'is' : 'are'} unreachable (if dead, remove them in the same command)`,
      );
    }
    const result: RmpeerResult = { removed: [], alreadyRemoved: [], message: '' };
    const report = (target: PeerName, removal: Removal) => {
      const prior = result.removed.find((r) => r.peer === target);
      const heirs = removal.heirs.map((h) => ({ peer: h.to, addresses: size(h.ranges) }));
      if (prior) {
        prior.addresses += removalSize(removal);
        prior.heirs.push(...heirs);
      } else {
        result.removed.push({ peer: target, nickname: this.nicknameOf(target), addresses: removalSize(removal), heirs });
      }
    };
    for (const target of list) {
      const last = lastRemoval(this.state, target);
      const rec = this.state.records.get(target);
      if (last && last.ring === mine.ring && (!rec || rec.version <= last.frozen.version)) continue; // swept below
      if (!rec && !this.isVirtualClaimant(target)) throw new IpamError('invalid', `peer ${target} has no IPAM state in this ring`);
      // A dead peer of another ring (a split brain it never came back to
      // re-home from) holds nothing in ours: removing it only releases the
      // addresses it reported in use.
      const foreign = rec && rec.ring !== mine.ring ? { ...rec, ranges: [], outgoing: [] } : undefined;
      report(target, await this.removals.remove(target, last ? last.frozen.version : -1, together, required, foreign));
    }
    // Space handed to a removed (or retired) peer after its removal was
    // agreed, that it never adopted: a further removal of it ("sweep") gives
    // that on too. Two passes cover a chain of removals made in one command.
    for (let pass = 0; pass < 2; pass++) {
      for (const target of list) {
        const last = lastRemoval(this.state, target);
        const ring = this.mine().ring!;
        if (!last || last.ring !== ring) continue;
        const rec = this.state.records.get(target);
        if (rec && rec.version > last.frozen.version) continue;
        const stranded = strandedTo(this.state, this.range, ring, last.frozen);
        if (stranded.length === 0) continue;
        const seqs = removalsOf(this.state, target).flatMap((r) => r.heirs.map((h) => h.seq));
        const frozen: PeerRecord = {
          ...last.frozen,
          version: last.frozen.version + 1,
          ranges: [],
          inUse: [],
          outgoing: [],
          transferSeq: Math.max(last.frozen.transferSeq, ...seqs),
        };
        report(target, await this.removals.remove(target, last.frozen.version, together, required, frozen));
      }
    }
    for (const target of list) if (!result.removed.some((r) => r.peer === target)) result.alreadyRemoved.push(target);
    result.message = [
      ...result.removed.map(
        (r) => `${r.addresses} addresses taken over from ${r.peer} (${r.nickname})${r.heirs.length ? ` by ${r.heirs.map((h) => `${h.peer} (${h.addresses})`).join(', ')}` : ''}`,
      ),
      ...result.alreadyRemoved.map((p) => `${p} was already removed`),
    ].join('; ');
    return result;
  }

  /**
   * For `meshnet reset`: give all our space to a reachable ring peer and stop
   * allocating. Allocations are dropped (reset removes the containers'
   * network). Reports whether the heir acknowledged within the timeout.
   */
  async handover(): Promise<HandoverResult> {
    if (this.phase !== 'running') throw new IpamError('stopped', 'IPAM is not running');
    const mine = this.mine();
    const owned = size(mine.ranges);
    const dropped = this.allocs.all().map(toResult);
    if (!mine.ring || (owned === 0 && mine.outgoing.length === 0)) {
      this.allocs.clear();
      this.setMine({ retired: true });
      this.reconcile();
      await this.whenPersisted(this.persister.current, this.timers.now() + this.t.handoverMs).catch(() => undefined);
      if (dropped.length) this.emitAllocations({ added: [], removed: dropped, revoked: [] });
      return { acknowledged: true, heir: null, addresses: 0, message: 'this peer owned no address space; nothing to hand over' };
    }
    const heirs = [...ringRecords(this.state, this.range, mine.ring).values()]
      .filter((r) => r.peer !== this.me && !r.retired && this.mesh.isReachable(r.peer) && this.state.records.has(r.peer))
      .sort((a, b) => b.free - a.free || (a.peer < b.peer ? -1 : 1));
    const heir = heirs[0];
    if (!heir) {
      return {
        acknowledged: false,
        heir: null,
        addresses: owned,
        message: `no reachable ring peer to hand ${owned} addresses to; after this peer's state is deleted, run 'meshnet rmpeer ${this.me}' on another peer to reclaim them`,
      };
    }
    this.allocs.clear();
    if (owned > 0) this.issueTransfer(heir.peer, [...mine.ranges]);
    const seq = this.mine().transferSeq;
    this.setMine({ retired: true });
    this.reconcile();
    if (dropped.length) this.emitAllocations({ added: [], removed: dropped, revoked: [] });
    const deadline = this.timers.now() + this.t.handoverMs;
    try {
      await this.waitUntil(
        () => {
          const rec = this.state.records.get(heir.peer);
          return rec && (rec.adopted.get(this.me) ?? 0) >= seq ? true : undefined;
        },
        deadline,
        () => new IpamError('timeout', 'handover not acknowledged'),
        true,
      );
      return { acknowledged: true, heir: heir.peer, addresses: owned, message: `${owned} addresses handed over to ${this.describePeer(heir.peer)}` };
    } catch {
      return {
        acknowledged: false,
        heir: heir.peer,
        addresses: owned,
        message: `${owned} addresses handed to ${this.describePeer(heir.peer)}, not acknowledged within ${this.t.handoverMs} ms; the mesh delivers the hand-over once the heir hears this peer's record (if it never does, run 'meshnet rmpeer ${this.me}' on another peer)`,
      };
    }
  }

  /**
   * Settle addresses in use on two peers at once (left by a split brain, or
   * by removing a peer that was alive): `keep` names the peer (name or
   * nickname) or ring (id or unique id prefix) whose allocations stay; every
   * other holder gives the address up (its container must get a new one).
   */
  async resolve(keep: string): Promise<ResolveResult> {
    this.requireRunning();
    const dups = duplicateAddresses(this.state);
    if (dups.length === 0) return { decided: [], undecided: [], message: 'no address is in use on two peers; nothing to resolve' };
    const ringIds = [...this.state.geneses.keys()].filter((id) => id === keep || id.startsWith(keep));
    let keepPeer: PeerName | null = null;
    let keepRing: RingId | null = null;
    try {
      keepPeer = this.resolvePeer(keep);
    } catch {
      if (ringIds.length === 1) keepRing = ringIds[0]!;
      else if (ringIds.length > 1) throw new IpamError('invalid', `"${keep}" matches several rings: ${ringIds.join(', ')}`);
      else throw new IpamError('invalid', `"${keep}" is neither a known peer (name or nickname) nor a ring id`);
    }
    const inRing = (p: PeerName) => {
      const r = this.state.records.get(p);
      return !!r && (r.rehomedFrom === keepRing || (r.ring === keepRing && r.rehomedFrom === null));
    };
    const byLoser = new Map<PeerName, Range[]>();
    const decided: ResolveResult['decided'] = [];
    const undecided: ResolveResult['undecided'] = [];
    for (const d of dups) {
      const keepers = d.peers.filter((p) => (keepPeer ? p === keepPeer : inRing(p)));
      const text = describeAddressRange(d.start, d.end);
      if (keepers.length !== 1) {
        undecided.push({ address: text, peers: d.peers });
        continue;
      }
      const losers = d.peers.filter((p) => p !== keepers[0]);
      decided.push({ address: text, keeper: keepers[0]!, losers });
      for (const l of losers) byLoser.set(l, [...(byLoser.get(l) ?? []), { start: d.start, end: d.end }]);
    }
    if (byLoser.size > 0) {
      const res: Resolution = {
        id: `res-${this.now().toString(36)}-${this.randomHex()}`,
        keeper: keepPeer ?? keepRing!,
        decisions: [...byLoser.entries()].map(([loser, addresses]) => ({
          loser,
          version: this.state.records.get(loser)?.version ?? 0,
          addresses: normalize(addresses),
        })),
        by: this.me,
        at: this.now(),
      };
      this.originate({ ...emptyItems(), resolutions: [res] });
      this.log('warn', 'IPAM conflict resolved by operator', { keep, decided: decided.length });
      this.reconcile();
    }
    return {
      decided,
      undecided,
      message: `${decided.length} conflicting address range(s) decided in favour of ${keep}${undecided.length ? `; ${undecided.length} not involving ${keep} left undecided` : ''}`,
    };
  }

  /**
   * Who must agree to removing `together`: every ring peer, and every other
   * reachable peer too, whose view may be newer than ours (it may hold space
   * the target handed it). Ring peers we cannot reach block the removal.
   */
  private removalQuorum(together: ReadonlySet<PeerName>): { required: PeerName[]; unreachable: PeerName[] } {
    const ringPeers = this.ringPeerNames().filter((p) => !together.has(p));
    const others = this.mesh
      .peers()
      .map((p) => p.name)
      // Peers with another range cannot hold space in ours (and cannot decode our messages).
      .filter((p) => !together.has(p) && !this.rangeMismatch.has(p) && (p === this.me || this.mesh.isReachable(p)));
    return {
      required: [...new Set([...ringPeers, ...others])].sort(),
      unreachable: ringPeers.filter((p) => p !== this.me && !this.mesh.isReachable(p)),
    };
  }

  /**
   * A removal this peer accepted but nobody published (its proposer died
   * between agreement and gossip): finish it, as any Paxos proposer may, by
   * proposing the accepted value again once every ring peer can answer.
   */
  private finishDanglingRemovals(): void {
    const mine = this.mine();
    if (!mine.ring || mine.retired) return;
    const now = this.now();
    for (const [inst, st] of this.acceptors) {
      if (st.accepted?.value.kind !== 'removal') continue;
      const rm = st.accepted.value.removal;
      if (rm.ring !== mine.ring || this.state.removals.has(removalKey(rm.target, rm.after))) {
        this.acceptedAt.delete(inst);
        continue;
      }
      const since = this.acceptedAt.get(inst);
      if (since === undefined) {
        this.acceptedAt.set(inst, now);
        continue;
      }
      if (now - since < 2 * this.t.rmpeerMs || this.removals.running(inst) || this.mesh.isReachable(rm.target)) continue;
      const together = new Set([rm.target]);
      const { required, unreachable } = this.removalQuorum(together);
      if (unreachable.length > 0) continue;
      this.acceptedAt.set(inst, now);
      this.log('info', 'IPAM finishing an agreed removal nobody published', { peer: rm.target });
      this.removals.remove(rm.target, rm.after, together, required).catch((e: unknown) => {
        this.log('info', 'IPAM could not finish a removal yet', { peer: rm.target, error: (e as Error).message });
      });
    }
  }

  private resolvePeer(nameOrNickname: string): PeerName {
    const known = new Map<PeerName, string>();
    for (const r of this.state.records.values()) known.set(r.peer, r.nickname);
    for (const g of this.state.geneses.values()) for (const c of g.claimants) if (!known.has(c)) known.set(c, '');
    for (const p of this.mesh.peers()) known.set(p.name, p.nickname || known.get(p.name) || '');
    if (known.has(nameOrNickname)) return nameOrNickname;
    const byNick = [...known.entries()].filter(([, n]) => n === nameOrNickname).map(([p]) => p);
    if (byNick.length === 1) return byNick[0]!;
    if (byNick.length > 1) throw new IpamError('invalid', `nickname "${nameOrNickname}" is ambiguous: ${byNick.join(', ')}; use the peer name`);
    throw new IpamError('invalid', `unknown peer "${nameOrNickname}"`);
  }

  // ================================================================ consensus (initial claim)

  private consensusPeers(): PeerName[] {
    const out = [this.me];
    for (const r of this.state.records.values()) {
      if (r.peer === this.me || r.mode !== 'consensus' || r.ring !== null || r.retired) continue;
      if (this.mesh.isReachable(r.peer)) out.push(r.peer);
    }
    return out.sort();
  }

  private randomHex(): string {
    const word = () => Math.floor(this.random() * 2 ** 32).toString(16).padStart(8, '0');
    return `${word()}${word()}`;
  }

  /** seed=...: every peer given the same list computes the same genesis, no agreement needed. */
  private maybeSeed(): void {
    if (this.init.kind !== 'seed') return;
    const known = new Map<PeerName, string>();
    for (const p of this.mesh.peers()) known.set(p.name, p.nickname);
    for (const r of this.state.records.values()) if (!known.has(r.peer)) known.set(r.peer, r.nickname);
    known.set(this.me, this.mesh.localNickname);
    const r = seedGenesis(this.range, this.init.peers, known);
    if ('problem' in r) {
      this.seedProblem = r.problem;
      return;
    }
    this.seedProblem = null;
    if (!this.state.geneses.has(r.genesis.id)) {
      this.log('info', 'IPAM ring seeded', { ring: r.genesis.id, claimants: r.genesis.claimants });
      this.originate({ ...emptyItems(), geneses: [r.genesis] });
    }
  }

  // ================================================================ Paxos acceptor

  private acceptorRefusal(inst: string): string | null {
    const mine = this.mine();
    if (inst === CLAIM_INSTANCE) {
      if (mine.ring) return `this peer already belongs to ring ${mine.ring}`;
      if (this.init.kind !== 'consensus') return `this peer is in ${this.init.kind} mode and does not vote`;
      return null;
    }
    const target = parseRemovalInstance(inst)?.target;
    if (target === undefined) return 'unknown Paxos instance';
    // A peer outside the ring still votes (it simply knows nothing of the target).
    if (target === this.me) return 'this peer is alive and will not agree to its own removal';
    if (this.mesh.isReachable(target)) return `${target} is reachable from ${this.me}`;
    return null;
  }

  private onAcceptorMessage(from: PeerName, m: Extract<PaxosMessage, { type: 'prepare' | 'accept' }>): void {
    const refusal = this.acceptorRefusal(m.inst);
    if (!refusal && m.type === 'accept') {
      const expected = m.inst === CLAIM_INSTANCE ? 'genesis' : 'removal';
      if (m.value.kind !== expected || (m.value.kind === 'removal' && removalInstance(m.value.removal.ring, m.value.removal.target, m.value.removal.after) !== m.inst)) {
        this.sendPaxos(from, { type: 'nack', inst: m.inst, ballot: m.ballot, promised: null, reason: 'value does not match the instance' });
        return;
      }
    }
    const prior = this.acceptors.get(m.inst)?.accepted;
    const sameAsAccepted = m.type === 'accept' && prior !== undefined && prior !== null && paxosValueKey(prior.value) === paxosValueKey(m.value);
    if (!refusal && m.type === 'accept' && m.value.kind === 'removal' && !sameAsAccepted) {
      // Never agree to give away space this peer owns or is handing over
      // (unless it is the value we already accepted: it may have been
      // chosen, and another proposer is only finishing the job).
      const mine = this.mine();
      const given = normalize(m.value.removal.heirs.flatMap((h) => h.ranges));
      const clash = intersect(given, union(mine.ranges, mine.outgoing.flatMap((t) => t.ranges)));
      if (clash.length > 0) {
        const reason = `the removal gives away ${describeAddressRange(clash[0]!.start, clash[0]!.end)}, which ${this.me} owns`;
        this.sendPaxos(from, { type: 'nack', inst: m.inst, ballot: m.ballot, promised: null, reason });
        return;
      }
    }
    if (refusal) {
      this.sendPaxos(from, { type: 'nack', inst: m.inst, ballot: m.ballot, promised: null, reason: refusal });
      if (m.inst === CLAIM_INSTANCE && this.mine().ring) this.afterPersist(() => this.pushStateTo(from));
      return;
    }
    const st = this.acceptors.get(m.inst) ?? FRESH_ACCEPTOR;
    const r = m.type === 'prepare' ? handlePrepare(st, m.ballot) : handleAccept(st, m.ballot, m.value);
    if (!r.ok) {
      this.sendPaxos(from, { type: 'nack', inst: m.inst, ballot: m.ballot, promised: st.promised, reason: 'outbid' });
      return;
    }
    this.acceptors.set(m.inst, r.next);
    if (m.type === 'accept' && m.value.kind === 'removal') this.acceptedAt.set(m.inst, this.now());
    this.markDirty();
    const { inst, ballot } = m;
    this.afterPersist(() => {
      if (m.type === 'prepare') {
        const isRm = inst !== CLAIM_INSTANCE;
        const target = isRm ? (this.copyOf(parseRemovalInstance(inst)?.target ?? '') ?? null) : null;
        this.sendPaxos(from, { type: 'promise', inst, ballot, accepted: r.next.accepted, target, ringPeers: isRm ? this.ringPeerNames() : [] });
      } else {
        this.sendPaxos(from, { type: 'accepted', inst, ballot });
      }
    });
  }

  private onPaxos(from: PeerName, m: PaxosMessage): void {
    if (m.type === 'prepare' || m.type === 'accept') return this.onAcceptorMessage(from, m);
    if (m.inst === CLAIM_INSTANCE) this.claimer.onReply(from, m);
    else this.removals.onReply(from, m);
  }

  private sendPaxos(to: PeerName, m: PaxosMessage): void {
    if (to === this.me) {
      // Our own acceptor: same code path, asynchronously like a message.
      this.timer(0, () => this.onPaxos(this.me, m));
      return;
    }
    this.send(to, m);
  }

  /** Our copy of `peer`'s record as the ring sees it (a claimant's virtual share if it never wrote one). */
  private copyOf(peer: PeerName): PeerRecord | undefined {
    const ring = this.mine().ring;
    if (!ring) return undefined;
    const rec = this.state.records.get(peer);
    if (rec && rec.ring === ring && !isVoid(this.state, rec)) return rec;
    return ringRecords(this.state, this.range, ring).get(peer) ?? (rec && !isVoid(this.state, rec) ? rec : undefined);
  }

  private isVirtualClaimant(peer: PeerName): boolean {
    const ring = this.mine().ring;
    return !!ring && ringRecords(this.state, this.range, ring).has(peer);
  }

  /** Peers in our ring that may hold space: live records (not retired) and claimants' virtual shares. */
  private ringPeerNames(): PeerName[] {
    const ring = this.mine().ring;
    if (!ring) return [];
    return [...ringRecords(this.state, this.range, ring).values()].filter((r) => !r.retired).map((r) => r.peer).sort();
  }

  // ================================================================ Gossiper

  gossip(): Uint8Array | undefined {
    if (this.phase !== 'running') return undefined;
    try {
      const items = allItems(this.state);
      items.records = items.records.filter((r) => r.peer !== this.me);
      if (this.persistedMine) items.records.push(this.persistedMine);
      return this.encodeState(items);
    } catch (e) {
      this.log('error', 'IPAM could not encode its state', { error: (e as Error).message });
      return undefined;
    }
  }

  /**
   * Fingerprint of what gossip() sends (every item in its canonical plain
   * form), so that anti-entropy moves the ring only between peers whose
   * states differ (mesh/mesh.ts onSummary).
   */
  stateHash(): number {
    if (this.phase !== 'running') return 0;
    const items = allItems(this.state);
    const h = new SetHash();
    const add = (kind: string, plain: unknown): void => void h.add(hashFields(kind, JSON.stringify(plain)));
    for (const r of items.records) if (r.peer !== this.me) add('r', recordToPlain(r));
    if (this.persistedMine) add('r', recordToPlain(this.persistedMine));
    for (const g of items.geneses) add('g', genesisToPlain(g));
    for (const r of items.removals) add('m', removalToPlain(r));
    for (const r of items.resolutions) add('s', resolutionToPlain(r));
    return h.value()[0];
  }

  onGossip(from: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.guard(from, () => {
      const m = decodeMessage(update, this.range);
      if (m.type !== 'state') throw new GossipRejected(`IPAM ${m.type} message from ${from} arrived as gossip; only state is gossiped`);
      return this.onState(from, m);
    });
  }

  onBroadcast(origin: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.guard(origin, () => {
      const m = decodeMessage(update, this.range);
      if (m.type !== 'state') throw new GossipRejected(`IPAM ${m.type} message from ${origin} arrived as broadcast`);
      this.onState(origin, m);
      return update;
    });
  }

  onUnicast(from: PeerName, msg: Uint8Array): void {
    this.guard(from, () => {
      const m = decodeMessage(msg, this.range);
      this.onMessage(from, m);
      return undefined;
    });
  }

  private onMessage(from: PeerName, m: IpamMessage): void {
    switch (m.type) {
      case 'state':
        this.onState(from, m);
        return;
      case 'space-request':
        this.onSpaceRequest(from, m.ring, m.reqId, m.subnet);
        return;
      case 'space-denied':
        this.onSpaceDenied(from, m.reqId, m.reason);
        return;
      default:
        this.onPaxos(from, m);
    }
  }

  /** Hooks never throw anything but GossipRejected: malformed input is counted, bugs are logged. */
  private guard<T>(from: PeerName, fn: () => T): T | undefined {
    if (this.phase !== 'running') return undefined;
    try {
      return fn();
    } catch (e) {
      if (e instanceof GossipRejected) {
        this.counters.rejectedUpdates++;
        this.lastRejection = e.message;
        this.logOnce('warn', e.message, { from });
        throw e;
      }
      if (e instanceof DecodeError) {
        this.counters.malformedMessages++;
        const msg = `malformed IPAM message from ${from}: ${e.message}`;
        this.lastRejection = msg;
        this.logOnce('warn', msg, { from });
        throw new GossipRejected(msg);
      }
      this.log('error', 'IPAM failed to process a message', { from, error: (e as Error)?.stack ?? String(e) });
      throw new GossipRejected(`IPAM could not process a message from ${from}: ${(e as Error)?.message ?? String(e)}`);
    }
  }

  private onState(from: PeerName, m: Extract<IpamMessage, { type: 'state' }>): Uint8Array | undefined {
    if (m.range.start !== this.range.start || m.range.end !== this.range.end) {
      const msg = `IPAM range mismatch: peer ${from} uses ${formatCidr(m.range)} but this peer uses ${formatCidr(this.range)}; every peer must be launched with the same --ipalloc-range; its updates are refused`;
      if (!this.rangeMismatch.has(from)) {
        this.rangeMismatch.set(from, formatCidr(m.range));
        this.afterChange();
      }
      throw new GossipRejected(msg);
    }
    if (this.rangeMismatch.delete(from)) this.afterChange();
    const rejections: string[] = [];
    // Rings, removals and resolutions first: a removal of this peer must be
    // applied before the heirs' records (which now own our old space) are
    // checked. Removals are not checked here: every live ring peer agreed to
    // each one (see onAcceptorMessage), and a removal never changes the
    // space of anyone but the removed peer.
    const d1 = mergeItems(this.state, { records: [], geneses: [...m.geneses], removals: [...m.removals], resolutions: [...m.resolutions] });
    if (itemCount(d1) > 0) {
      // The state file keeps our view of the mesh too, so a restart does not
      // begin from a stale picture of who is in the ring.
      this.markDirty();
      this.reconcile();
    }
    const accepted: PeerRecord[] = [];
    const batch = new Map(m.records.map((r) => [r.peer, r]));
    for (const rec of m.records) {
      if (rec.peer === this.me) {
        this.onOwnRecord(rec);
        continue;
      }
      const why = refuseRecord(this.state, this.me, rec, batch);
      if (why) rejections.push(why);
      else accepted.push(rec);
    }
    const d2 = mergeItems(this.state, { ...emptyItems(), records: accepted });
    if (d2.records.length > 0) {
      this.markDirty();
      this.reconcile();
    }
    const delta: StateItems = { ...d1, records: d2.records };
    const bytes = itemCount(delta) > 0 ? this.encodeState(delta) : undefined;
    if (rejections.length > 0) {
      // Pass on what we did accept before refusing the rest.
      if (bytes) this.channel.gossip(bytes);
      throw new GossipRejected(`IPAM refused part of an update from ${from}: ${rejections.join('; ')}`);
    }
    return bytes;
  }

  /**
   * A copy of our own record newer than ours: we lost state (the state file
   * was deleted or restored from an old backup). Take our space back and keep
   * its in-use addresses as allocations without a known container (claim or
   * gc settles them), rather than hand them out again (Weave #2719).
   */
  private onOwnRecord(rec: PeerRecord): void {
    const cur = this.mine();
    if (rec.version <= cur.version) return;
    const orphans = subtract(rec.inUse, this.allocs.inUse());
    this.allocs.addOrphans(orphans);
    const adopted = new Map(cur.adopted);
    for (const [d, s] of rec.adopted) adopted.set(d, Math.max(s, adopted.get(d) ?? 0));
    const seqs = new Set(cur.outgoing.map((t) => t.seq));
    this.state.records.set(this.me, {
      ...cur,
      version: rec.version,
      ring: cur.ring ?? rec.ring,
      ranges: union(cur.ranges, rec.ranges),
      outgoing: [...cur.outgoing, ...rec.outgoing.filter((t) => !seqs.has(t.seq))],
      transferSeq: Math.max(cur.transferSeq, rec.transferSeq),
      adopted,
      rehomedFrom: cur.rehomedFrom ?? rec.rehomedFrom,
    });
    this.setMine({}, rec.version + 1);
    this.notes.lostState = {
      kind: 'lost-state',
      message: `the mesh remembered this peer's record at version ${rec.version}, newer than its state file: state was lost or restored from an old copy. Recovered ${size(rec.ranges)} owned addresses and ${size(orphans)} in-use addresses with unknown containers (re-register them with claim, or drop them with gc)`,
      details: { version: rec.version, owned: size(rec.ranges), orphans: size(orphans) },
    };
    this.log('warn', 'IPAM recovered lost state from the mesh', { version: rec.version, owned: size(rec.ranges), orphans: size(orphans) });
    this.reconcile();
  }

  // ================================================================ reconcile

  private mine(): PeerRecord {
    return this.state.records.get(this.me)!;
  }

  /** Replace fields of our record; bumps the version when anything changed. */
  private setMine(patch: Partial<PeerRecord>, minVersion = 0): boolean {
    const cur = this.mine();
    const next: PeerRecord = { ...cur, ...patch, peer: this.me, version: cur.version };
    if (minVersion <= cur.version && recordContent(cur) === recordContent(next)) return false;
    this.state.records.set(this.me, { ...next, version: Math.max(cur.version + 1, minVersion) });
    this.markDirty();
    return true;
  }

  /**
   * Bring this peer's own record in line with the merged state: give way to
   * a removal of us, join or re-home to the winning ring, adopt transfers,
   * settle our outgoing ones, grant claims on our space, apply operator
   * resolutions, and publish what we use. Idempotent.
   */
  private reconcile(): void {
    if (this.phase !== 'running') return;
    const c = { state: this.state, range: this.range, me: this.me };
    for (let i = 0; i < 10; i++) {
      const gen = this.persister.current;
      const removed = removalOfMe(c, this.mine(), this.yielded);
      if (removed) this.yieldTo(removed);
      if (this.mine().ring === null && !winningRing(this.state)) this.maybeSeed();
      const joined = ringChoice(c, this.mine());
      if (joined) this.joinRing(joined);
      if (this.mine().ring) {
        const got = adoptions(c, this.mine());
        if (got) this.adopt(got);
        const settled = settlement(c, this.mine());
        if (settled) {
          this.setMine(settled.patch);
          for (const t of settled.reclaimed) this.log('info', 'IPAM took back space its recipient will never adopt', { to: t.to, size: size(t.ranges) });
        }
        for (const g of claimGrants(c, this.mine(), this.allocs.inUse())) {
          this.issueTransfer(g.to, g.ranges);
          this.log('info', 'IPAM granted claimed addresses', { to: g.to, size: size(g.ranges) });
        }
        this.applyResolutions();
      }
      this.setMine({ inUse: this.allocs.inUse(), free: size(this.freeRanges()) });
      if (this.persister.current === gen) break;
    }
    this.afterChange();
  }

  private yieldTo(r: NonNullable<ReturnType<typeof removalOfMe>>): void {
    this.yielded.add(r.key);
    this.markDirty();
    this.setMine(r.patch, r.minVersion);
    const rm = r.removal;
    const msg = `this peer was removed by 'rmpeer' on ${rm.proposer} (at ${new Date(rm.at).toISOString()}) while it could not be reached; its space went to ${
      rm.heirs.map((h) => h.to).join(', ') || 'nobody'
    }. Its ${this.allocs.size} allocations are kept as claims on the new owners; any the new owners allocated meanwhile are listed as duplicates`;
    this.notes.removed = { kind: 'removed', message: msg, details: { by: rm.proposer, at: rm.at, heirs: rm.heirs.map((h) => h.to) } };
    this.log('error', 'IPAM: this peer was removed by rmpeer', { by: rm.proposer, at: rm.at });
  }

  private joinRing(j: NonNullable<ReturnType<typeof ringChoice>>): void {
    this.setMine(j.patch);
    if (j.rehomedFrom === null) {
      this.log('info', 'IPAM joined ring', { ring: j.joined, owned: j.share });
      return;
    }
    // A donation asked for in the losing ring will never come.
    if (this.donation) {
      this.cancel(this.donation.timer);
      this.donation = null;
    }
    this.log('warn', 'IPAM split brain: re-homing into the older ring', { from: j.rehomedFrom, to: j.joined, inUse: size(this.allocs.inUse()) });
  }

  private adopt(got: NonNullable<ReturnType<typeof adoptions>>): void {
    this.setMine(got.patch);
    for (const g of got.got) {
      this.log('info', 'IPAM adopted space', { from: g.donor, size: g.size });
      if (this.donation?.peer === g.donor) {
        this.cancel(this.donation.timer);
        this.donation = null;
      }
      this.denied.delete(g.donor);
    }
  }

  private applyResolutions(): void {
    const { revoke, orphans } = revocations({ state: this.state, range: this.range, me: this.me }, this.allocs.all());
    if (intersect(this.allocs.orphans, orphans).length) {
      this.allocs.removeOrphans(orphans);
      this.markDirty();
    }
    if (revoke.length === 0) return;
    for (const a of revoke) this.allocs.remove(a);
    this.markDirty();
    const revoked = revoke.map(toResult);
    this.log('warn', 'IPAM allocations revoked by an operator resolution', { addresses: revoked.map((r) => r.address) });
    this.afterPersist(() => this.emitAllocations({ added: [], removed: [], revoked }));
  }

  private afterChange(): void {
    if (this.phase !== 'running') return;
    const ready = this.ready;
    if (ready && !this.wasReady) {
      this.wasReady = true;
      this.log('info', 'IPAM ready', { ring: this.mine().ring, owned: size(this.mine().ranges) });
      this.events.emit('ready');
    } else if (!ready) {
      this.wasReady = false;
    }
    this.claimer.consider();
    this.removals.settleFinished(this.state);
    const sig = conflictSignature({ state: this.state, rangeMismatch: this.rangeMismatch, notes: this.noteList(), persistError: this.persistError });
    if (sig !== this.conflictSignature) {
      this.conflictSignature = sig;
      if (sig) {
        const cs = this.conflicts();
        for (const c of cs) this.logOnce('warn', `IPAM conflict (${c.kind}): ${c.message}`, {});
        this.events.emit('conflict', cs);
      }
    }
    this.notify();
  }

  private tick(): void {
    this.timer(this.t.tickMs, () => this.tick());
    this.reconcile();
    this.finishDanglingRemovals();
  }

  // ================================================================ persistence and sending

  private markDirty(): number {
    return this.persister.markDirty();
  }

  private afterPersist(fn: () => void): void {
    this.persister.afterSave(() => this.safely(fn));
  }

  /** Gossip our record once the version of it that is saved is newer than what we last sent. */
  private publishMine(): void {
    const mine = this.persistedMine;
    if (this.phase !== 'running' || !mine || mine.version <= this.publishedVersion) return;
    this.publishedVersion = mine.version;
    this.safely(() => this.channel.gossip(this.encodeState({ ...emptyItems(), records: [mine] })));
  }

  private snapshot(): IpamSnapshot {
    return {
      peer: this.me,
      range: this.range,
      state: this.state,
      allocations: this.allocs.all(),
      orphans: this.allocs.orphans,
      acceptors: this.acceptors,
      round: this.round,
      yielded: [...this.yielded],
      cursor: this.allocs.cursor,
    };
  }

  private async whenPersisted(gen: number, deadline: number): Promise<void> {
    await this.waitUntil(
      () => (this.persister.isSaved(gen) ? true : undefined),
      deadline,
      () => new IpamError('store', `state not saved in time${this.persistError ? `: ${this.persistError}` : ''}`),
      true,
    );
  }

  /** Items we originate (genesis, removal, resolution): merge, and gossip once durable. */
  private originate(items: StateItems): void {
    const delta = mergeItems(this.state, items);
    if (itemCount(delta) === 0) return;
    this.markDirty();
    this.afterPersist(() => this.channel.gossip(this.encodeState(delta)));
  }

  private encodeState(items: StateItems): Uint8Array {
    return encodeMessage({ type: 'state', range: this.range, ...items });
  }

  private pushMineTo(to: PeerName): void {
    if (!this.persistedMine) return;
    this.send(to, { type: 'state', range: this.range, ...emptyItems(), records: [this.persistedMine] });
  }

  private pushStateTo(to: PeerName): void {
    const full = this.gossip();
    if (full) this.channel.unicast(to, full);
  }

  private send(to: PeerName, m: IpamMessage): boolean {
    if (this.phase !== 'running') return false;
    try {
      return this.channel.unicast(to, encodeMessage(m));
    } catch (e) {
      this.log('error', 'IPAM could not send', { to, error: (e as Error).message });
      return false;
    }
  }

  // ================================================================ timers and waiting

  private timer(ms: number, fn: () => void): unknown {
    const h = this.timers.setTimeout(() => {
      this.handles.delete(h);
      if (this.phase === 'running') this.safely(fn);
    }, Math.max(0, Math.ceil(ms)));
    this.handles.add(h);
    return h;
  }

  private cancel(h: unknown): void {
    if (h === null || h === undefined) return;
    this.timers.clearTimeout(h);
    this.handles.delete(h);
  }

  /** Whole milliseconds: times go on the wire as integers. */
  private now(): number {
    return Math.floor(this.timers.now());
  }

  private safely(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.log('error', 'IPAM internal error', { error: (e as Error)?.stack ?? String(e) });
    }
  }

  private notify(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  /** Retry `attempt` on every state change until it returns a value, or fail at `deadline`. */
  private async waitUntil<T>(attempt: () => T | undefined, deadline: number, onTimeout: () => Error, evenIfRetired = false): Promise<T> {
    for (;;) {
      if (this.phase !== 'running') throw new IpamError('stopped', 'IPAM is stopped');
      if (!evenIfRetired && this.mine().retired) throw new IpamError('stopped', 'this peer handed its address space over (reset)');
      const v = attempt();
      if (v !== undefined) return v;
      const remaining = deadline - this.timers.now();
      if (remaining <= 0) throw onTimeout();
      await new Promise<void>((resolve) => {
        let h: unknown = null;
        const wake = () => {
          this.waiters.delete(wake);
          if (h !== null) {
            this.timers.clearTimeout(h);
            this.handles.delete(h);
          }
          resolve();
        };
        this.waiters.add(wake);
        h = this.timers.setTimeout(wake, remaining);
        this.handles.add(h);
      });
    }
  }

  private emitAllocations(change: AllocationChange): void {
    if (change.added.length + change.removed.length + change.revoked.length === 0) return;
    this.events.emit('allocations-changed', change);
  }

  private logOnce(level: 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    const now = this.timers.now();
    const last = this.loggedAt.get(msg);
    if (last !== undefined && now - last < 60_000) return;
    if (this.loggedAt.size > 1000) this.loggedAt.clear();
    this.loggedAt.set(msg, now);
    this.log(level, msg, fields);
  }

  // ================================================================ status

  private nicknameOf(p: PeerName): string {
    if (p === this.me) return this.mesh.localNickname;
    const r = this.state.records.get(p);
    if (r?.nickname) return r.nickname;
    return this.mesh.peers().find((x) => x.name === p)?.nickname ?? '';
  }

  private describePeer(p: PeerName): string {
    const n = this.nicknameOf(p);
    return n ? `${p} (${n})` : p;
  }

  /** One line: what IPAM is doing or waiting for. */
  statusText(): string {
    if (this.phase === 'new' || this.phase === 'starting') return 'starting';
    if (this.phase === 'stopped') return 'stopped';
    const mine = this.mine();
    if (mine.retired) return 'retired: this peer handed its space over (reset)';
    if (!mine.ring) {
      if (this.init.kind === 'consensus') {
        return `awaiting consensus (quorum ${quorumOf(this.init.n)}, known ${this.consensusPeers().length})${this.claimer.proposing ? ', proposing' : ''}`;
      }
      if (this.init.kind === 'seed') return this.seedProblem ?? 'awaiting seed ring';
      return 'observer: waiting for a ring from another peer';
    }
    const conflict = mostSerious(this.conflicts());
    const free = size(this.freeRanges());
    const base = free > 0 ? 'ready' : `ready, no free space here${this.donation ? `: ${this.donationProblem}` : ''}`;
    return conflict ? `${base}; CONFLICT (${conflict.kind}): ${conflict.message}` : base;
  }

  private noteList(): IpamConflict[] {
    return [this.notes.removed, this.notes.lostState].filter((n): n is IpamConflict => n !== undefined);
  }

  /** Everything wrong that status reports, most serious first. */
  conflicts(): IpamConflict[] {
    return findConflicts({
      state: this.state,
      range: this.range,
      ring: this.state.records.get(this.me)?.ring ?? null,
      rangeMismatch: this.rangeMismatch,
      notes: this.noteList(),
      persistError: this.persistError,
      storeLocation: this.store.location,
      nickname: (p) => this.nicknameOf(p),
    });
  }

  /** The model behind `meshnet status ipam` and the `ipam` object of `status --json`. */
  status(): IpamStatus {
    const running = this.phase === 'running' || this.phase === 'stopped';
    const mine = this.state.records.get(this.me);
    const total = this.range.end - this.range.start;
    const ring = mine?.ring ? (this.state.geneses.get(mine.ring) ?? null) : null;
    const view = mine?.ring ? ringView(this.state, this.range, mine.ring) : { segments: [], overlaps: [] };
    const owned = new Map<PeerName, number>();
    for (const s of view.segments) owned.set(s.owner, (owned.get(s.owner) ?? 0) + s.end - s.start);
    const recs = mine?.ring ? ringRecords(this.state, this.range, mine.ring) : new Map<PeerName, PeerRecord>();
    const names = new Set<PeerName>([...recs.keys(), ...owned.keys()]);
    if (mine) names.add(this.me);
    const conflicts = running && mine ? this.conflicts() : [];
    const freeHere = running && mine ? size(this.freeRanges()) : 0;
    return {
      range: formatCidr(this.range),
      ready: this.ready,
      status: this.statusText(),
      mode: this.init.kind === 'consensus' ? `consensus=${this.init.n}` : this.init.kind === 'seed' ? `seed=${this.init.peers.join(',')}` : 'observer',
      owned: mine ? size(mine.ranges) : 0,
      allocated: this.allocs.size,
      free: freeHere,
      ring: ring ? { id: ring.id, createdAt: ring.createdAt, claimants: [...ring.claimants], mode: ring.mode } : null,
      ranges: view.segments.map((s) => ({
        start: formatAddress(s.start),
        size: s.end - s.start,
        owner: s.owner,
        nickname: this.nicknameOf(s.owner),
        ...(s.pending ? { pending: true } : {}),
      })),
      peers: [...names].sort().map((p) => {
        const r = recs.get(p);
        return {
          name: p,
          nickname: this.nicknameOf(p),
          owned: owned.get(p) ?? 0,
          share: (owned.get(p) ?? 0) / total,
          free: p === this.me ? freeHere : (r?.free ?? 0),
          allocated: p === this.me ? this.allocs.size : r ? size(r.inUse) : 0,
          reachable: p === this.me || this.mesh.isReachable(p),
          retired: r?.retired ?? false,
          self: p === this.me,
        };
      }),
      conflict: mostSerious(conflicts),
      conflicts,
      consensus:
        this.init.kind === 'consensus' && mine && !mine.ring ? { quorum: quorumOf(this.init.n), known: this.consensusPeers().length } : null,
      pending: { allocations: this.pendingAllocations, donationFrom: this.donation?.peer ?? null },
      counters: { ...this.counters },
      lastRejection: this.lastRejection,
    };
  }

  // ================================================================ for tests and diagnostics

  /** This peer's own ranges (what it may allocate from). */
  ownedRanges(): Range[] {
    return [...(this.state.records.get(this.me)?.ranges ?? [])];
  }

  /** Canonical digest of the replicated state (equal on converged peers). */
  stateDigest(): string {
    const items = allItems(this.state);
    items.records = items.records.filter((r) => r.peer !== this.me);
    if (this.persistedMine) items.records.push(this.persistedMine);
    const s = emptyState();
    mergeItems(s, items);
    return digest(s);
  }

  /** The replicated state (read-only use). */
  replicatedState(): GossipState {
    return this.state;
  }
}


function ownerName(state: GossipState, range: Cidr, ring: RingId | null, addr: number): PeerName | undefined {
  if (!ring) return undefined;
  const view = ringView(state, range, ring);
  for (const s of view.segments) if (addr >= s.start && addr < s.end) return s.owner;
  return undefined;
}
