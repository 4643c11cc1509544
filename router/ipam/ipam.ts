// IPAM as a gossip channel: the composition of the ring CRDT (state.ts),
// the local allocator (allocations.ts), Paxos (paxos.ts) and persistence
// (store.ts). Deterministic and I/O-free except through the injected store,
// channel and timers. The design and its safety arguments are in docs/ipam.md.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { GossipChannel, Gossiper, PeerName } from '../../mesh/types.js';
import { GossipRejected } from '../../mesh/types.js';
import { type Cidr, addressInCidr, cidrContains, formatAddress, formatCidr, parseAddress, parseCidr } from './addr.js';
import { type Allocation, AllocationTable, freeSpace, pickAddress, pickDonation } from './allocations.js';
import { type Ballot, type IpamMessage, type PaxosMessage, type PaxosValue, DecodeError, decodeMessage, encodeMessage, isPeerName } from './codec.js';
import { IpamError } from './errors.js';
import { HOST_CONTAINER_ID, containerIdError, interfaceNameError } from './ids.js';
import { parseRange, quorumOf } from './init.js';
import { type AcceptorState, FRESH_ACCEPTOR, ProposerRound, handleAccept, handlePrepare } from './paxos.js';
import { type IpamSnapshot, snapshotFromPlain, snapshotToPlain } from './persist.js';
import { type Range, contains, intersect, normalize, overlaps, size, subtract, union } from './ranges.js';
import { computeRemoval, removalSize } from './removal.js';
import {
  type StateItems,
  allItems,
  compareRecords,
  digest,
  duplicateAddresses,
  emptyItems,
  genesisShares,
  isVoid,
  itemCount,
  lastRemoval,
  mergeItems,
  offersTo,
  othersInUse,
  removalsOf,
  ringRecords,
  ringView,
  winningRing,
} from './state.js';
import { type IpamConflict, type IpamStatus, describeAddressRange, mostSerious } from './status.js';
import type { IpamStore } from './store.js';
import { type Genesis, type GossipState, type InitMode, type PeerRecord, type Removal, type Resolution, type RingId, emptyState, removalKey } from './types.js';
import { recordToPlain } from './codec.js';

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

const CLAIM_INST = 'claim';

interface RemovalRun {
  readonly inst: string;
  readonly target: PeerName;
  readonly after: number;
  readonly together: ReadonlySet<PeerName>;
  readonly required: Set<PeerName>;
  round: ProposerRound<RemovalExtra>;
  retry: unknown;
  deadline: unknown;
  settle: (r: Removal | Error) => void;
}

interface RemovalExtra {
  target: PeerRecord | null;
  ringPeers: readonly PeerName[];
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

  // Persistence: state changes bump stateGen; anything that lets others rely
  // on a change waits until a save covering it has finished (afterPersist).
  private stateGen = 0;
  private persistedGen = 0;
  private saving = false;
  private persistError: string | null = null;
  private outbox: { gen: number; fn: () => void }[] = [];
  private persistedMine: PeerRecord | null = null;
  private publishedVersion = -1;
  private readonly allocGen = new WeakMap<Allocation, number>();
  private idleWaiters: (() => void)[] = [];

  private waiters = new Set<() => void>();
  private readonly handles = new Set<unknown>();

  // Donation (requester side).
  private donation: { peer: PeerName; reqId: number; subnet: Range; timer: unknown } | null = null;
  private reqSeq = 0;
  private readonly denied = new Map<PeerName, { until: number; reason: string }>();
  private donationProblem: string | null = null;
  private pendingAllocations = 0;

  // Paxos proposers.
  private claimRun: { round: ProposerRound<null>; acceptors: PeerName[]; timer: unknown } | null = null;
  private claimTimer: unknown = null;
  private readonly runs = new Map<string, RemovalRun>();

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
    await this.whenPersisted(this.stateGen, this.timers.now() + 60_000);
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
    for (const run of [...this.runs.values()]) run.settle(new IpamError('stopped', 'IPAM stopped'));
    this.notify();
    await this.idle();
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
    await this.whenPersisted(this.stateGen, this.timers.now() + this.t.allocateMs);
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
      await this.whenPersisted(this.allocGen.get(a) ?? this.stateGen, deadline);
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
    await this.whenPersisted(this.stateGen, this.timers.now() + this.t.allocateMs);
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
      at: this.timers.now(),
    };
    this.allocs.add(a);
    this.allocs.cursor = addr + 1;
    this.reconcile();
    this.allocGen.set(a, this.stateGen);
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
    const a: Allocation = { containerId, iface, address: addr, subnet, createdVersion: mine.version + 1, at: this.timers.now() };
    this.allocs.add(a);
    this.reconcile();
    this.allocGen.set(a, this.stateGen);
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
    // Every ring peer must answer; so must every other reachable peer, whose
    // view may be newer than ours (it may hold space the target handed it).
    const ringPeers = this.ringPeerNames().filter((p) => !together.has(p));
    const others = this.mesh.peers().map((p) => p.name).filter((p) => !together.has(p) && (p === this.me || this.mesh.isReachable(p)));
    const required = [...new Set([...ringPeers, ...others])].sort();
    const unreachable = ringPeers.filter((p) => p !== this.me && !this.mesh.isReachable(p));
    if (unreachable.length > 0) {
      throw new IpamError(
        'unreachable',
        `cannot remove ${list.map((p) => this.describePeer(p)).join(', ')}: every other ring peer must agree, and ${unreachable
          .map((p) => this.describePeer(p))
          .join(', ')} ${unreachable.length === 1 ? 'is' : 'are'} unreachable (if dead, remove them in the same command)`,
      );
    }
    const result: RmpeerResult = { removed: [], alreadyRemoved: [], message: '' };
    for (const target of list) {
      const last = lastRemoval(this.state, target);
      const rec = this.state.records.get(target);
      if (last && last.ring === mine.ring && (!rec || rec.version <= last.frozen.version)) {
        result.alreadyRemoved.push(target);
        continue;
      }
      if (!rec && !this.isVirtualClaimant(target)) throw new IpamError('invalid', `peer ${target} has no IPAM state in this ring`);
      const removal = await this.runRemoval(target, last ? last.frozen.version : -1, together, required);
      const nickname = this.nicknameOf(target);
      result.removed.push({
        peer: target,
        nickname,
        addresses: removalSize(removal),
        heirs: removal.heirs.map((h) => ({ peer: h.to, addresses: size(h.ranges) })),
      });
    }
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
      await this.whenPersisted(this.stateGen, this.timers.now() + this.t.handoverMs).catch(() => undefined);
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
        id: `res-${this.timers.now().toString(36)}-${this.randomHex()}`,
        keeper: keepPeer ?? keepRing!,
        decisions: [...byLoser.entries()].map(([loser, addresses]) => ({
          loser,
          version: this.state.records.get(loser)?.version ?? 0,
          addresses: normalize(addresses),
        })),
        by: this.me,
        at: this.timers.now(),
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

  private runRemoval(target: PeerName, after: number, together: ReadonlySet<PeerName>, required: readonly PeerName[]): Promise<Removal> {
    const inst = `rm/${this.mine().ring}/${target}/${after}`;
    const existing = this.runs.get(inst);
    if (existing) throw new IpamError('conflict', `a removal of ${target} is already running here`);
    return new Promise<Removal>((resolve, reject) => {
      const run: RemovalRun = {
        inst,
        target,
        after,
        together,
        required: new Set(required),
        round: new ProposerRound(inst, { round: 0, proposer: this.me }),
        retry: null,
        deadline: null,
        settle: (r) => {
          this.runs.delete(inst);
          this.cancel(run.retry);
          this.cancel(run.deadline);
          if (r instanceof Error) reject(r);
          else resolve(r);
        },
      };
      this.runs.set(inst, run);
      run.deadline = this.timer(this.t.rmpeerMs, () => {
        const missing = [...run.required].filter((p) =>
          run.round.phase === 'prepare' ? !run.round.promises.has(p) : !run.round.acceptances.has(p),
        );
        const reasons = [...run.round.nackReasons.entries()].map(([p, r]) => `${p}: ${r}`);
        run.settle(
          new IpamError(
            'timeout',
            `removal of ${this.describePeer(target)} not agreed within ${this.t.rmpeerMs} ms${missing.length ? `; no answer from ${missing.join(', ')}` : ''}${reasons.length ? `; refused by ${reasons.join('; ')}` : ''}`,
          ),
        );
      });
      this.startRemovalRound(run);
    });
  }

  private startRemovalRound(run: RemovalRun): void {
    this.cancel(run.retry);
    this.round = Math.max(this.round, run.round.outbid?.round ?? 0) + 1;
    run.round = new ProposerRound(run.inst, { round: this.round, proposer: this.me });
    this.markDirty();
    const ballot = run.round.ballot;
    this.afterPersist(() => {
      for (const p of run.required) this.sendPaxos(p, { type: 'prepare', inst: run.inst, ballot });
    });
    run.retry = this.timer(this.t.paxosRetryMs * (2 + this.random()), () => {
      if (this.runs.get(run.inst) === run) this.startRemovalRound(run);
    });
  }

  private onRemovalReply(run: RemovalRun, from: PeerName, m: PaxosMessage): void {
    const r = run.round;
    if (m.type === 'nack') {
      r.onNack(from, m.ballot, m.promised, m.reason);
      if (m.reason !== 'outbid' && m.promised === null && compareBallot(m.ballot, r.ballot)) {
        run.settle(new IpamError('conflict', `removal of ${this.describePeer(run.target)} refused by ${this.describePeer(from)}: ${m.reason}`));
      }
      return;
    }
    if (m.type === 'promise') {
      r.onPromise(from, m.ballot, { accepted: m.accepted, extra: { target: m.target, ringPeers: m.ringPeers } });
      // Peers our acceptors know in the ring must answer too.
      for (const p of m.ringPeers) {
        if (run.required.has(p) || run.together.has(p)) continue;
        const rec = this.state.records.get(p);
        if (rec && (rec.retired || isVoid(this.state, rec))) continue;
        if (p !== this.me && !this.mesh.isReachable(p)) {
          run.settle(new IpamError('unreachable', `cannot remove ${this.describePeer(run.target)}: ring peer ${this.describePeer(p)} (known to ${from}) is unreachable`));
          return;
        }
        run.required.add(p);
        this.sendPaxos(p, { type: 'prepare', inst: run.inst, ballot: r.ballot });
      }
      if (r.phase === 'prepare' && [...run.required].every((p) => r.promises.has(p))) {
        let value = r.highestAccepted();
        if (!value) {
          // Freeze the newest copy of the target's record any live ring peer has.
          let frozen = this.ownCopyOf(run.target);
          for (const info of r.promises.values()) {
            const t = info.extra.target;
            if (t && (!frozen || compareRecords(t, frozen) > 0)) frozen = t;
          }
          if (!frozen) {
            run.settle(new IpamError('invalid', `no peer knows the state of ${run.target}`));
            return;
          }
          value = {
            kind: 'removal',
            removal: computeRemoval({
              state: this.state,
              range: this.range,
              ring: this.mine().ring!,
              frozen: { ...frozen, ring: this.mine().ring },
              after: run.after,
              live: [...run.required].sort(),
              together: run.together,
              proposer: this.me,
              at: this.timers.now(),
            }),
          };
        }
        r.startAccept(value);
        for (const p of run.required) this.sendPaxos(p, { type: 'accept', inst: run.inst, ballot: r.ballot, value });
      }
      return;
    }
    if (m.type === 'accepted') {
      r.onAccepted(from, m.ballot);
      if (r.phase === 'accept' && [...run.required].every((p) => r.acceptances.has(p)) && r.value?.kind === 'removal') {
        r.phase = 'chosen';
        const removal = r.value.removal;
        this.originate({ ...emptyItems(), removals: [removal] });
        this.log('warn', 'IPAM peer removed', { peer: run.target, addresses: removalSize(removal), heirs: removal.heirs.map((h) => h.to) });
        this.reconcile();
        run.settle(removal);
      }
    }
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

  private considerClaim(): void {
    if (this.init.kind !== 'consensus' || this.mine().ring !== null) {
      if (this.claimRun) this.cancel(this.claimRun.timer);
      this.claimRun = null;
      this.cancel(this.claimTimer);
      this.claimTimer = null;
      return;
    }
    if (this.claimRun || this.claimTimer) return;
    const known = this.consensusPeers();
    if (known.length < quorumOf(this.init.n)) return;
    const delay = known[0] === this.me ? 0 : this.t.proposeDelayMs * (1 + this.random());
    this.claimTimer = this.timer(delay, () => {
      this.claimTimer = null;
      this.startClaimRound();
    });
  }

  private startClaimRound(): void {
    if (this.init.kind !== 'consensus' || this.mine().ring !== null) return;
    const known = this.consensusPeers();
    if (this.claimRun) this.cancel(this.claimRun.timer);
    if (known.length < quorumOf(this.init.n)) {
      this.claimRun = null;
      return;
    }
    this.round = Math.max(this.round, this.claimRun?.round.outbid?.round ?? 0) + 1;
    const round = new ProposerRound<null>(CLAIM_INST, { round: this.round, proposer: this.me });
    const timer = this.timer(this.t.paxosRetryMs * (3 + 2 * this.random()), () => {
      if (this.claimRun?.round === round) this.startClaimRound();
    });
    this.claimRun = { round, acceptors: known, timer };
    this.markDirty();
    this.afterPersist(() => {
      for (const p of known) this.sendPaxos(p, { type: 'prepare', inst: CLAIM_INST, ballot: round.ballot });
    });
  }

  private onClaimReply(from: PeerName, m: PaxosMessage): void {
    const c = this.claimRun;
    if (!c || this.init.kind !== 'consensus') return;
    const r = c.round;
    const q = quorumOf(this.init.n);
    if (m.type === 'nack') {
      r.onNack(from, m.ballot, m.promised, m.reason);
      return;
    }
    if (m.type === 'promise') {
      r.onPromise(from, m.ballot, { accepted: m.accepted, extra: null });
      if (r.phase === 'prepare' && r.promises.size >= q) {
        const value: PaxosValue = r.highestAccepted() ?? { kind: 'genesis', genesis: this.newGenesis(c.acceptors) };
        r.startAccept(value);
        for (const p of r.promises.keys()) this.sendPaxos(p, { type: 'accept', inst: CLAIM_INST, ballot: r.ballot, value });
      }
      return;
    }
    if (m.type === 'accepted') {
      r.onAccepted(from, m.ballot);
      if (r.phase === 'accept' && r.acceptances.size >= q && r.value?.kind === 'genesis') {
        r.phase = 'chosen';
        const g = r.value.genesis;
        this.log('info', 'IPAM ring agreed by consensus', { ring: g.id, claimants: g.claimants });
        this.originate({ ...emptyItems(), geneses: [g] });
        this.reconcile();
      }
    }
  }

  private newGenesis(known: readonly PeerName[]): Genesis {
    const now = this.timers.now();
    const claimants = [...new Set([...known, this.me])].sort();
    return { id: `${now.toString(36)}-${this.randomHex()}`, createdAt: now, claimants, mode: 'consensus' };
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
    const names: PeerName[] = [];
    const unresolved: string[] = [];
    for (const s of this.init.peers) {
      if (known.has(s) || (isPeerName(s) && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(s))) {
        names.push(s);
        continue;
      }
      const byNick = [...known.entries()].filter(([, n]) => n === s).map(([p]) => p);
      if (byNick.length === 1) names.push(byNick[0]!);
      else if (byNick.length > 1) unresolved.push(`${s} (ambiguous: ${byNick.join(', ')})`);
      else unresolved.push(s);
    }
    if (unresolved.length > 0) {
      this.seedProblem = `awaiting seed peers: resolving nickname(s) ${unresolved.join(', ')}`;
      return;
    }
    this.seedProblem = null;
    const claimants = [...new Set(names)].sort();
    const id = `seed-${createHash('sha256').update(`${formatCidr(this.range)}|${claimants.join(',')}`).digest('hex').slice(0, 16)}`;
    if (!this.state.geneses.has(id)) {
      this.log('info', 'IPAM ring seeded', { ring: id, claimants });
      this.originate({ ...emptyItems(), geneses: [{ id, createdAt: 0, claimants, mode: 'seed' }] });
    }
  }

  // ================================================================ Paxos acceptor

  private acceptorRefusal(inst: string): string | null {
    const mine = this.mine();
    if (inst === CLAIM_INST) {
      if (mine.ring) return `this peer already belongs to ring ${mine.ring}`;
      if (this.init.kind !== 'consensus') return `this peer is in ${this.init.kind} mode and does not vote`;
      return null;
    }
    const parts = inst.split('/');
    if (parts.length !== 4 || parts[0] !== 'rm') return 'unknown Paxos instance';
    const [, , target] = parts as [string, string, string, string];
    // A peer outside the ring still votes (it simply knows nothing of the target).
    if (target === this.me) return 'this peer is alive and will not agree to its own removal';
    if (this.mesh.isReachable(target)) return `${target} is reachable from ${this.me}`;
    return null;
  }

  private onAcceptorMessage(from: PeerName, m: Extract<PaxosMessage, { type: 'prepare' | 'accept' }>): void {
    const refusal = this.acceptorRefusal(m.inst);
    if (!refusal && m.type === 'accept') {
      const expected = m.inst === CLAIM_INST ? 'genesis' : 'removal';
      if (m.value.kind !== expected || (m.value.kind === 'removal' && `rm/${m.value.removal.ring}/${m.value.removal.target}/${m.value.removal.after}` !== m.inst)) {
        this.sendPaxos(from, { type: 'nack', inst: m.inst, ballot: m.ballot, promised: null, reason: 'value does not match the instance' });
        return;
      }
    }
    if (!refusal && m.type === 'accept' && m.value.kind === 'removal') {
      // Never agree to give away space this peer owns or is handing over.
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
      if (m.inst === CLAIM_INST && this.mine().ring) this.afterPersist(() => this.pushStateTo(from));
      return;
    }
    const st = this.acceptors.get(m.inst) ?? FRESH_ACCEPTOR;
    const r = m.type === 'prepare' ? handlePrepare(st, m.ballot) : handleAccept(st, m.ballot, m.value);
    if (!r.ok) {
      this.sendPaxos(from, { type: 'nack', inst: m.inst, ballot: m.ballot, promised: st.promised, reason: 'outbid' });
      return;
    }
    this.acceptors.set(m.inst, r.next);
    this.markDirty();
    const { inst, ballot } = m;
    this.afterPersist(() => {
      if (m.type === 'prepare') {
        const isRm = inst !== CLAIM_INST;
        const target = isRm ? (this.ownCopyOf(inst.split('/')[2]!) ?? null) : null;
        this.sendPaxos(from, { type: 'promise', inst, ballot, accepted: r.next.accepted, target, ringPeers: isRm ? this.ringPeerNames() : [] });
      } else {
        this.sendPaxos(from, { type: 'accepted', inst, ballot });
      }
    });
  }

  private onPaxos(from: PeerName, m: PaxosMessage): void {
    if (m.type === 'prepare' || m.type === 'accept') return this.onAcceptorMessage(from, m);
    if (m.inst === CLAIM_INST) return this.onClaimReply(from, m);
    const run = this.runs.get(m.inst);
    if (run) this.onRemovalReply(run, from, m);
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
  private ownCopyOf(peer: PeerName): PeerRecord | undefined {
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
      const why = this.checkRecord(rec, batch);
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
   * Why an incoming record must not be merged, or null. Only space this peer
   * owns (or is handing over) is protected here. `batch` is the rest of the
   * same update: gossip reorders, so a recipient's acknowledgement or a
   * newer transfer may arrive alongside (or before) a stale record.
   */
  private checkRecord(rec: PeerRecord, batch: ReadonlyMap<PeerName, PeerRecord>): string | null {
    const old = this.state.records.get(rec.peer);
    if (old && compareRecords(rec, old) <= 0) return null; // not news
    if (isVoid(this.state, rec)) return null; // superseded by a removal; harmless
    const mine = this.mine();
    if (!mine.ring || rec.ring !== mine.ring) return null; // another ring: handled as a split brain
    const copies = (p: PeerName) => [this.state.records.get(p), batch.get(p)].filter((r): r is PeerRecord => r !== undefined);
    // Someone adopted a transfer from this peer that the record does not
    // know it issued: the record is stale, and its claims are history.
    for (const other of [...this.state.records.values(), ...batch.values()]) {
      if ((other.adopted.get(rec.peer) ?? 0) > rec.transferSeq) return null;
    }
    const who = `peer ${rec.peer} (${rec.nickname})`;
    const clash = intersect(rec.ranges, mine.ranges);
    if (clash.length > 0) return `${who} claims ${clash.map((r) => describeAddressRange(r.start, r.end)).join(', ')}, which this peer owns`;
    for (const t of mine.outgoing) {
      const c = intersect(rec.ranges, t.ranges);
      if (c.length === 0) continue;
      // Once the recipient adopted it, the space is the recipient's to pass on.
      if (copies(t.to).some((r) => (r.adopted.get(this.me) ?? 0) >= t.seq)) continue;
      // A claimant that got space from the recipient holds what the recipient passed on.
      if (t.to !== rec.peer && (rec.adopted.get(t.to) ?? 0) > 0) continue;
      if (t.to !== rec.peer) return `${who} claims ${describeAddressRange(c[0]!.start, c[0]!.end)}, which this peer is handing to ${t.to}`;
      if ((rec.adopted.get(this.me) ?? 0) < t.seq) return `${who} holds space this peer is handing to it without acknowledging the transfer`;
    }
    if ((rec.adopted.get(this.me) ?? 0) > mine.transferSeq) {
      return `${who} says it adopted transfer #${rec.adopted.get(this.me)} from this peer, which has issued only ${mine.transferSeq}`;
    }
    return null;
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
    for (let i = 0; i < 10; i++) {
      const gen = this.stateGen;
      this.applyRemovalOfMe();
      this.chooseRing();
      if (this.mine().ring) {
        this.adoptOffers();
        this.settleOutgoing();
        this.grantClaims();
        this.applyResolutions();
      }
      this.refreshUsage();
      if (this.stateGen === gen) break;
    }
    this.afterChange();
  }

  private applyRemovalOfMe(): void {
    for (const rm of removalsOf(this.state, this.me)) {
      const key = removalKey(rm.target, rm.after);
      if (this.yielded.has(key)) continue;
      const mine = this.mine();
      if (mine.ring !== null && rm.ring !== mine.ring) continue;
      this.yielded.add(key);
      this.markDirty();
      this.setMine(
        {
          ranges: [],
          outgoing: [],
          transferSeq: Math.max(mine.transferSeq, rm.frozen.transferSeq + rm.heirs.length),
        },
        Math.max(mine.version, rm.frozen.version) + 1,
      );
      const msg = `this peer was removed by 'rmpeer' on ${rm.proposer} (at ${new Date(rm.at).toISOString()}) while it could not be reached; its space went to ${rm.heirs.map((h) => h.to).join(', ') || 'nobody'}. Its ${this.allocs.size} allocations are kept as claims on the new owners; any the new owners allocated meanwhile are listed as duplicates`;
      this.notes.removed = { kind: 'removed', message: msg, details: { by: rm.proposer, at: rm.at, heirs: rm.heirs.map((h) => h.to) } };
      this.log('error', 'IPAM: this peer was removed by rmpeer', { by: rm.proposer, at: rm.at });
    }
  }

  private chooseRing(): void {
    let mine = this.mine();
    let win = winningRing(this.state);
    if (!win && mine.ring === null) {
      this.maybeSeed();
      win = winningRing(this.state);
    }
    if (!win || mine.ring === win.id) return;
    mine = this.mine();
    const removedInWin = removalsOf(this.state, this.me).some((r) => r.ring === win.id);
    const share = !removedInWin && !mine.retired && win.claimants.includes(this.me) ? (genesisShares(this.range, win.claimants).get(this.me) ?? []) : [];
    if (mine.ring === null) {
      this.setMine({ ring: win.id, ranges: union(mine.ranges, share) });
      this.log('info', 'IPAM joined ring', { ring: win.id, owned: size(share) });
      return;
    }
    // Split brain: our ring lost. Keep every address in use (they become
    // claims on the winning ring's owners), give up the rest of our space.
    const from = mine.ring;
    this.setMine({ ring: win.id, rehomedFrom: from, ranges: share, outgoing: [] });
    if (this.donation) {
      this.cancel(this.donation.timer);
      this.donation = null;
    }
    this.log('warn', 'IPAM split brain: re-homing into the older ring', {
      from,
      to: win.id,
      inUse: size(this.allocs.inUse()),
    });
  }

  private adoptOffers(): void {
    const mine = this.mine();
    if (mine.retired || !mine.ring) return;
    const adopted = new Map(mine.adopted);
    let ranges: Range[] = [...mine.ranges];
    let changed = false;
    const byDonor = new Map<PeerName, Range[][]>();
    const maxSeq = new Map<PeerName, number>();
    for (const o of offersTo(this.state, this.range, mine.ring, this.me)) {
      if (o.transfer.seq <= (adopted.get(o.donor) ?? 0)) continue;
      byDonor.set(o.donor, [...(byDonor.get(o.donor) ?? []), [...o.transfer.ranges]]);
      maxSeq.set(o.donor, Math.max(maxSeq.get(o.donor) ?? 0, o.transfer.seq));
    }
    for (const [donor, sets] of byDonor) {
      const got = normalize(sets.flat());
      ranges = union(ranges, got);
      adopted.set(donor, maxSeq.get(donor)!);
      changed = true;
      this.log('info', 'IPAM adopted space', { from: donor, size: size(got) });
      if (this.donation?.peer === donor) {
        this.cancel(this.donation.timer);
        this.donation = null;
      }
      this.denied.delete(donor);
    }
    if (changed) this.setMine({ ranges, adopted });
  }

  private settleOutgoing(): void {
    const mine = this.mine();
    if (mine.outgoing.length === 0) return;
    const keep = [];
    let ranges: Range[] = [...mine.ranges];
    for (const t of mine.outgoing) {
      const rec = this.state.records.get(t.to);
      const rm = lastRemoval(this.state, t.to);
      const liveRec = rec && !isVoid(this.state, rec) ? rec : undefined;
      const adopted = Math.max(
        liveRec && liveRec.ring === mine.ring ? (liveRec.adopted.get(this.me) ?? 0) : 0,
        rm && rm.ring === mine.ring ? (rm.frozen.adopted.get(this.me) ?? 0) : 0,
      );
      if (adopted >= t.seq) continue; // acknowledged
      const gone =
        (rm !== undefined && rm.ring === mine.ring && !liveRec) ||
        (liveRec !== undefined && (liveRec.retired || (liveRec.ring !== null && liveRec.ring !== mine.ring)));
      if (gone && !mine.retired) {
        ranges = union(ranges, t.ranges);
        this.log('info', 'IPAM took back space its recipient will never adopt', { to: t.to, size: size(t.ranges) });
        continue;
      }
      keep.push(t);
    }
    if (keep.length !== mine.outgoing.length) this.setMine({ outgoing: keep, ranges });
  }

  private grantClaims(): void {
    const mine = this.mine();
    if (mine.retired || mine.ranges.length === 0 || !mine.ring) return;
    const here = this.allocs.inUse();
    for (const rec of ringRecords(this.state, this.range, mine.ring).values()) {
      if (rec.peer === this.me || rec.retired) continue;
      const claimed = intersect(subtract(rec.inUse, rec.ranges), this.mine().ranges);
      if (claimed.length === 0) continue;
      // Addresses also in use here are duplicates: reported, never granted.
      const grant = subtract(claimed, here);
      if (grant.length === 0) continue;
      this.issueTransfer(rec.peer, grant);
      this.log('info', 'IPAM granted claimed addresses', { to: rec.peer, size: size(grant) });
    }
  }

  private applyResolutions(): void {
    const revoked: AllocationResult[] = [];
    for (const res of this.state.resolutions.values()) {
      for (const d of res.decisions) {
        if (d.loser !== this.me) continue;
        for (const a of this.allocs.all()) {
          if (contains(d.addresses, a.address) && a.createdVersion <= d.version) {
            this.allocs.remove(a);
            revoked.push(toResult(a));
          }
        }
        if (intersect(this.allocs.orphans, d.addresses).length) this.allocs.removeOrphans(d.addresses);
      }
    }
    if (revoked.length) {
      this.markDirty();
      this.log('warn', 'IPAM allocations revoked by an operator resolution', { addresses: revoked.map((r) => r.address) });
      this.afterPersist(() => this.emitAllocations({ added: [], removed: [], revoked }));
    }
  }

  private refreshUsage(): void {
    const inUse = this.allocs.inUse();
    const free = size(this.freeRanges());
    this.setMine({ inUse, free });
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
    this.considerClaim();
    for (const run of [...this.runs.values()]) {
      const done = this.state.removals.get(removalKey(run.target, run.after));
      if (done && run.round.phase !== 'chosen') run.settle(done);
    }
    const sig = this.conflictKinds();
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
  }

  // ================================================================ persistence and sending

  private markDirty(): number {
    this.stateGen++;
    queueMicrotask(() => this.kickPersist());
    return this.stateGen;
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

  private kickPersist(): void {
    if (this.saving || this.phase === 'new' || this.phase === 'starting') return;
    if (this.persistedGen >= this.stateGen) {
      this.flushOutbox();
      return;
    }
    this.saving = true;
    const gen = this.stateGen;
    const mine = this.mine();
    let plain;
    try {
      plain = snapshotToPlain(this.snapshot());
    } catch (e) {
      this.saving = false;
      this.persistError = `cannot encode state: ${(e as Error).message}`;
      this.log('error', 'IPAM could not encode its state', { error: this.persistError });
      return;
    }
    this.store.save(plain).then(
      () => {
        this.saving = false;
        this.persistedGen = Math.max(this.persistedGen, gen);
        this.persistedMine = mine;
        if (this.persistError) this.log('info', 'IPAM state is being saved again');
        this.persistError = null;
        this.flushOutbox();
        this.kickPersist();
        this.notify();
      },
      (e: unknown) => {
        this.saving = false;
        this.persistError = (e as Error)?.message ?? String(e);
        this.logOnce('error', `IPAM cannot save its state: ${this.persistError}`, {});
        if (this.phase === 'running') this.timer(this.t.persistRetryMs, () => this.kickPersist());
        this.flushIdle();
        this.notify();
      },
    );
  }

  /** Run `fn` once the current state is durable (nothing is sent that a crash could take back). */
  private afterPersist(fn: () => void): void {
    if (this.persistedGen >= this.stateGen) fn();
    else this.outbox.push({ gen: this.stateGen, fn });
  }

  private flushOutbox(): void {
    if (this.phase === 'running') {
      const ready = this.outbox.filter((o) => o.gen <= this.persistedGen);
      this.outbox = this.outbox.filter((o) => o.gen > this.persistedGen);
      for (const o of ready) this.safely(o.fn);
      const mine = this.persistedMine;
      if (mine && mine.version > this.publishedVersion) {
        this.publishedVersion = mine.version;
        this.safely(() => this.channel.gossip(this.encodeState({ ...emptyItems(), records: [mine] })));
      }
    }
    this.flushIdle();
  }

  private flushIdle(): void {
    if (this.saving || (this.persistedGen < this.stateGen && !this.persistError)) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }

  private idle(): Promise<void> {
    if (!this.saving && (this.persistedGen >= this.stateGen || this.persistError)) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      queueMicrotask(() => this.kickPersist());
    });
  }

  private async whenPersisted(gen: number, deadline: number): Promise<void> {
    await this.waitUntil(
      () => (this.persistedGen >= gen ? true : undefined),
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
    }, ms);
    this.handles.add(h);
    return h;
  }

  private cancel(h: unknown): void {
    if (h === null || h === undefined) return;
    this.timers.clearTimeout(h);
    this.handles.delete(h);
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
        return `awaiting consensus (quorum ${quorumOf(this.init.n)}, known ${this.consensusPeers().length})${this.claimRun ? ', proposing' : ''}`;
      }
      if (this.init.kind === 'seed') return this.seedProblem ?? 'awaiting seed ring';
      return 'observer: waiting for a ring from another peer';
    }
    const conflict = mostSerious(this.conflicts());
    const free = size(this.freeRanges());
    const base = free > 0 ? 'ready' : `ready, no free space here${this.donation ? `: ${this.donationProblem}` : ''}`;
    return conflict ? `${base}; CONFLICT (${conflict.kind}): ${conflict.message}` : base;
  }

  private conflictKinds(): string {
    const parts: string[] = [...this.rangeMismatch.keys()].map((p) => `rm:${p}`);
    if (this.notes.removed) parts.push('removed');
    if (this.notes.lostState) parts.push('lost');
    if (this.persistError) parts.push('store');
    const rings = new Set<string>();
    for (const r of this.state.records.values()) if (r.ring && !r.retired && !isVoid(this.state, r)) rings.add(r.ring);
    if (rings.size > 1) parts.push(`split:${[...rings].sort().join(',')}`);
    return parts.join('|');
  }

  /** Everything wrong that status reports, most serious first. */
  conflicts(): IpamConflict[] {
    const out: IpamConflict[] = [];
    const nick = (p: PeerName) => this.nicknameOf(p);
    const dups = duplicateAddresses(this.state);
    if (dups.length > 0) {
      const n = dups.reduce((s, d) => s + d.end - d.start, 0);
      out.push({
        kind: 'duplicate',
        message: `${n} address(es) are in use on two peers at once: ${dups
          .slice(0, 5)
          .map((d) => `${describeAddressRange(d.start, d.end)} on ${d.peers.map((p) => `${p} (${nick(p)})`).join(' and ')}`)
          .join('; ')}${dups.length > 5 ? '; ...' : ''}. Decide with 'meshnet ipam resolve --keep PEER|RING' (the other side's containers need new addresses)`,
        details: { addresses: dups.map((d) => ({ start: formatAddress(d.start), size: d.end - d.start, peers: d.peers })) },
      });
    }
    if (this.persistError) out.push({ kind: 'store', message: `cannot save IPAM state: ${this.persistError}`, details: { location: this.store.location } });
    // Split brain: live records in more than one ring.
    const byRing = new Map<RingId, PeerName[]>();
    for (const r of this.state.records.values()) {
      if (!r.ring || r.retired || isVoid(this.state, r)) continue;
      byRing.set(r.ring, [...(byRing.get(r.ring) ?? []), r.peer]);
    }
    const win = winningRing(this.state);
    const rehoming = [...this.state.records.values()].filter(
      (r) => win && r.ring === win.id && !r.retired && !isVoid(this.state, r) && subtract(r.inUse, r.ranges).length > 0,
    );
    if (win && (byRing.size > 1 || (this.state.geneses.size > 1 && rehoming.length > 0))) {
      const rings = [...this.state.geneses.values()]
        .filter((g) => byRing.has(g.id) || g.id === win.id)
        .map((g) => ({ id: g.id, createdAt: g.createdAt, claimants: g.claimants, peers: byRing.get(g.id) ?? [] }));
      const losers = rings.filter((r) => r.id !== win.id);
      const pending = rehoming.reduce((s, r) => s + size(subtract(r.inUse, r.ranges)), 0);
      out.push({
        kind: 'split-brain',
        message: `two separately claimed IPAM rings met: ring ${win.id} (claimed ${win.createdAt ? new Date(win.createdAt).toISOString() : 'by seed list'}) is older and keeps ownership; ${
          losers.length ? `peers of ring ${losers.map((l) => `${l.id} (${l.peers.join(', ') || 'none left'})`).join(', ')} are re-homing` : 're-homing is finishing'
        }: they give up their free space and keep their in-use addresses as claims on the owners in ring ${win.id} (${pending} address(es) still to be granted)${dups.length ? '; some addresses are in use on both sides, see the duplicate conflict' : ''}`,
        details: { winner: win.id, rings, pendingClaims: pending },
      });
    }
    for (const [p, theirs] of this.rangeMismatch) {
      out.push({
        kind: 'range-mismatch',
        message: `peer ${p} (${nick(p)}) uses --ipalloc-range ${theirs} but this peer uses ${formatCidr(this.range)}; its IPAM updates are refused (restart one of them with the same range)`,
        details: { peer: p, theirs, ours: formatCidr(this.range) },
      });
    }
    if (this.notes.removed) out.push(this.notes.removed);
    if (this.notes.lostState) out.push(this.notes.lostState);
    const ring = this.mine()?.ring;
    if (ring) {
      const view = ringView(this.state, this.range, ring);
      if (view.overlaps.length > 0) {
        out.push({
          kind: 'overlap',
          message: `peers claim the same space: ${view.overlaps
            .slice(0, 5)
            .map((o) => `${describeAddressRange(o.start, o.end)} by ${o.owners.join(' and ')}`)
            .join('; ')} (transient while gossip catches up; if it persists, a peer was removed while alive)`,
          details: { overlaps: view.overlaps.map((o) => ({ start: formatAddress(o.start), size: o.end - o.start, owners: o.owners })) },
        });
      }
    }
    const order = ['duplicate', 'store', 'split-brain', 'range-mismatch', 'removed', 'lost-state', 'overlap'];
    return out.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
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

function compareBallot(a: Ballot, b: Ballot): boolean {
  return a.round === b.round && a.proposer === b.proposer;
}

function ownerName(state: GossipState, range: Cidr, ring: RingId | null, addr: number): PeerName | undefined {
  if (!ring) return undefined;
  const view = ringView(state, range, ring);
  for (const s of view.segments) if (addr >= s.start && addr < s.end) return s.owner;
  return undefined;
}
