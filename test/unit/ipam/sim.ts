// A simulated cluster for IPAM: the real Ipam class on every node, over an
// in-memory gossip network with a virtual clock, partitions, message delay,
// reordering and duplication, crashes, restarts from the store, rmpeer and
// reset. Deterministic for a given seed.
import type { GossipChannel, Gossiper, PeerName } from '../../../mesh/types.js';
import { GossipRejected } from '../../../mesh/types.js';
import { Ipam, type IpamTimeouts, type IpamTimers } from '../../../router/ipam/ipam.js';
import type { PlainSnapshot } from '../../../router/ipam/persist.js';
import { snapshotFromPlain } from '../../../router/ipam/persist.js';
import { type IpamStore, sealState, unsealState } from '../../../router/ipam/store.js';
import type { InitMode } from '../../../router/ipam/types.js';
import type { Range } from '../../../router/ipam/ranges.js';
import { formatAddress, parseAddress } from '../../../router/ipam/addr.js';
import { prng } from '../../harness/prng.js';

interface Event {
  at: number;
  seq: number;
  fn: () => void;
}

/** A virtual clock with a timer queue. `step()` runs the next timer and lets promises settle. */
export class VirtualClock {
  now = 1_700_000_000_000;
  private seq = 0;
  private readonly queue: Event[] = [];
  private readonly cancelled = new Set<number>();

  setTimeout(fn: () => void, ms: number): number {
    const ev = { at: this.now + Math.max(0, Math.ceil(ms)), seq: ++this.seq, fn };
    // Binary insertion keeps the queue ordered by (at, seq).
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const q = this.queue[mid]!;
      if (q.at < ev.at || (q.at === ev.at && q.seq < ev.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, ev);
    return ev.seq;
  }

  clearTimeout(id: unknown): void {
    if (typeof id === 'number') this.cancelled.add(id);
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Run the next due timer (advancing time), then drain promise callbacks. False when nothing is queued. */
  async step(limit = Infinity): Promise<boolean> {
    for (;;) {
      const ev = this.queue[0];
      if (!ev || ev.at > limit) return false;
      this.queue.shift();
      if (this.cancelled.delete(ev.seq)) continue;
      this.now = ev.at;
      ev.fn();
      await settle();
      return true;
    }
  }

  /** Run every timer due up to now + ms. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    while (await this.step(until)) {
      /* keep going */
    }
    this.now = Math.max(this.now, until);
  }
}

/** Let every queued promise callback run (store saves, awaits). */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** The state file, in memory, sealed and checked exactly like the file store does. */
export class MemoryStore implements IpamStore {
  data: Buffer | undefined;
  /** When set, saves fail (a dead process or a full disk). */
  dead = false;
  saves = 0;
  constructor(readonly location: string) {}
  async load(): Promise<PlainSnapshot | undefined> {
    return this.data ? unsealState(this.data, this.location) : undefined;
  }
  async save(state: PlainSnapshot): Promise<void> {
    if (this.dead) throw new Error('process is dead');
    this.data = sealState(state);
    this.saves++;
  }
  /** What a restart would load (for invariant checks on stopped nodes). */
  peek(): ReturnType<typeof snapshotFromPlain> | undefined {
    return this.data ? snapshotFromPlain(unsealState(this.data, this.location)) : undefined;
  }
}

export interface SimOptions {
  seed: number;
  range: string;
  /** Node count, named n1..nN with nicknames h1..hN. */
  nodes: number;
  init: (name: PeerName, index: number) => InitMode;
  minDelayMs?: number;
  maxDelayMs?: number;
  duplicateProbability?: number;
  gossipIntervalMs?: number;
  timeouts?: Partial<IpamTimeouts>;
  /** A different --ipalloc-range for some nodes (range mismatch tests). */
  rangeFor?: (name: PeerName) => string | undefined;
}

export type NodeState = 'up' | 'down' | 'gone';

export class SimNode {
  ipam: Ipam | null = null;
  state: NodeState = 'down';
  incarnation = 0;
  readonly store: MemoryStore;
  constructor(
    readonly name: PeerName,
    readonly nickname: string,
    readonly init: InitMode,
  ) {
    this.store = new MemoryStore(`mem:${name}/ipam.state`);
  }
}

export class SimNet {
  readonly clock = new VirtualClock();
  readonly rng: () => number;
  readonly nodes = new Map<PeerName, SimNode>();
  private readonly group = new Map<PeerName, number>();
  readonly rejections: string[] = [];
  readonly errors: string[] = [];
  readonly logs: string[] = [];
  delivered = 0;
  private readonly opts: Required<Omit<SimOptions, 'timeouts' | 'rangeFor'>> & Pick<SimOptions, 'timeouts' | 'rangeFor'>;

  constructor(opts: SimOptions) {
    this.opts = {
      minDelayMs: 1,
      maxDelayMs: 40,
      duplicateProbability: 0.05,
      gossipIntervalMs: 2_000,
      ...opts,
    };
    this.rng = prng(opts.seed);
    for (let i = 1; i <= opts.nodes; i++) {
      const name = `n${i}`;
      this.nodes.set(name, new SimNode(name, `h${i}`, opts.init(name, i)));
      this.group.set(name, 0);
    }
    this.scheduleAntiEntropy();
  }

  node(name: PeerName): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  up(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.state === 'up');
  }

  reachable(a: PeerName, b: PeerName): boolean {
    if (a === b) return this.node(a).state === 'up';
    return this.node(a).state === 'up' && this.node(b).state === 'up' && this.group.get(a) === this.group.get(b);
  }

  private neighbours(of: PeerName): PeerName[] {
    return [...this.nodes.keys()].filter((n) => n !== of && this.reachable(of, n));
  }

  private log(msg: string): void {
    this.logs.push(`[${this.clock.now}] ${msg}`);
    if (this.logs.length > 400) this.logs.splice(0, 100);
  }

  /** Queue a message; it arrives only if the two nodes can still reach each other then. */
  private send(from: PeerName, to: PeerName, kind: 'gossip' | 'unicast', bytes: Uint8Array): void {
    const copies = this.rng() < this.opts.duplicateProbability ? 2 : 1;
    const fromInc = this.node(from).incarnation;
    const toInc = this.node(to).incarnation;
    for (let i = 0; i < copies; i++) {
      const delay = this.opts.minDelayMs + Math.floor(this.rng() * (this.opts.maxDelayMs - this.opts.minDelayMs + 1));
      this.clock.setTimeout(() => this.deliver(from, fromInc, to, toInc, kind, bytes), delay);
    }
  }

  private deliver(from: PeerName, fromInc: number, to: PeerName, toInc: number, kind: 'gossip' | 'unicast', bytes: Uint8Array): void {
    const target = this.node(to);
    // A connection does not survive a partition or a restart of either end.
    if (!this.reachable(from, to) || target.incarnation !== toInc || this.node(from).incarnation !== fromInc || !target.ipam) return;
    this.delivered++;
    try {
      if (kind === 'gossip') {
        const delta = target.ipam.onGossip(from, bytes);
        if (delta) for (const n of this.neighbours(to)) if (n !== from) this.send(to, n, 'gossip', delta);
      } else {
        target.ipam.onUnicast(from, bytes);
      }
    } catch (e) {
      if (e instanceof GossipRejected) {
        this.rejections.push(`${to} refused from ${from}: ${e.message}`);
        this.log(`REJECTED at ${to} from ${from}: ${e.message}`);
      } else {
        this.errors.push(`${to} threw ${(e as Error)?.stack ?? String(e)}`);
      }
    }
  }

  private scheduleAntiEntropy(): void {
    this.clock.setTimeout(() => {
      for (const n of this.up()) this.fullGossip(n.name);
      this.scheduleAntiEntropy();
    }, this.opts.gossipIntervalMs);
  }

  private fullGossip(from: PeerName, only?: PeerName[]): void {
    const ipam = this.node(from).ipam;
    if (!ipam) return;
    const g = ipam.gossip();
    if (!g) return;
    for (const n of only ?? this.neighbours(from)) this.send(from, n, 'gossip', g);
  }

  private channelFor(node: SimNode, incarnation: number): GossipChannel {
    return {
      name: 'ipam',
      gossip: (update) => {
        if (node.incarnation !== incarnation || node.state !== 'up') return;
        for (const n of this.neighbours(node.name)) this.send(node.name, n, 'gossip', update);
      },
      broadcast: (update) => {
        if (node.incarnation !== incarnation || node.state !== 'up') return;
        for (const n of this.neighbours(node.name)) this.send(node.name, n, 'gossip', update);
      },
      unicast: (to, msg) => {
        if (node.incarnation !== incarnation || node.state !== 'up' || !this.reachable(node.name, to)) return false;
        this.send(node.name, to, 'unicast', msg);
        return true;
      },
    };
  }

  private timersFor(node: SimNode, incarnation: number): IpamTimers {
    return {
      now: () => this.clock.now,
      setTimeout: (fn, ms) =>
        this.clock.setTimeout(() => {
          if (node.incarnation === incarnation) fn();
        }, ms),
      clearTimeout: (h) => this.clock.clearTimeout(h),
    };
  }

  /** Start (or restart) a node from its store. */
  async start(name: PeerName): Promise<void> {
    const node = this.node(name);
    if (node.state === 'up') throw new Error(`${name} is already up`);
    if (node.state === 'gone') throw new Error(`${name} is gone`);
    node.incarnation++;
    const inc = node.incarnation;
    node.store.dead = false;
    const mesh = {
      localName: node.name,
      localNickname: node.nickname,
      localUid: String(inc),
      peers: () => [...this.nodes.values()].map((n) => ({ name: n.name, nickname: n.nickname })),
      isReachable: (p: PeerName) => this.reachable(node.name, p),
    };
    const ipam = new Ipam({
      range: this.opts.rangeFor?.(name) ?? this.opts.range,
      init: node.init,
      mesh,
      channel: (g: Gossiper) => {
        void g;
        return this.channelFor(node, inc);
      },
      store: node.store,
      timers: this.timersFor(node, inc),
      random: this.rng,
      log: (level, msg, fields) => {
        if (level === 'error' && /internal error|failed to process/.test(msg)) this.errors.push(`${name}: ${msg} ${JSON.stringify(fields)}`);
        this.log(`${name} ${level}: ${msg}${fields ? ' ' + JSON.stringify(fields) : ''}`);
      },
      timeouts: this.opts.timeouts,
    });
    node.state = 'up';
    node.ipam = ipam;
    await ipam.start();
    this.connected(name);
  }

  /** A newly reachable pair swap full state (as the mesh does on connect) and every node re-evaluates. */
  private connected(name: PeerName): void {
    for (const n of this.neighbours(name)) {
      this.fullGossip(name, [n]);
      this.fullGossip(n, [name]);
    }
    for (const n of this.up()) n.ipam?.topologyChanged();
  }

  /** kill -9: in-flight writes are lost, nothing is sent any more. */
  crash(name: PeerName): void {
    const node = this.node(name);
    if (node.state !== 'up') return;
    node.state = 'down';
    node.store.dead = true;
    node.incarnation++;
    node.ipam = null;
    for (const n of this.up()) n.ipam?.topologyChanged();
  }

  async stop(name: PeerName): Promise<void> {
    const node = this.node(name);
    if (node.state !== 'up' || !node.ipam) return;
    await node.ipam.stop();
    node.state = 'down';
    node.incarnation++;
    node.ipam = null;
    for (const n of this.up()) n.ipam?.topologyChanged();
  }

  /** The host is gone for good (its containers with it). */
  kill(name: PeerName): void {
    this.crash(name);
    this.node(name).state = 'gone';
  }

  /** Split the nodes into groups (unlisted nodes join group 0). */
  partition(groups: PeerName[][]): void {
    for (const n of this.nodes.keys()) this.group.set(n, 0);
    groups.forEach((g, i) => g.forEach((n) => this.group.set(n, i + 1)));
    for (const n of this.up()) this.connected(n.name);
  }

  heal(): void {
    this.partition([]);
  }

  /** Run the clock until `p` settles (or `maxMs` of virtual time pass). */
  async run<T>(p: Promise<T>, maxMs = 120_000): Promise<{ ok: true; value: T } | { ok: false; error: Error }> {
    let result: { ok: true; value: T } | { ok: false; error: Error } | undefined;
    p.then(
      (value) => (result = { ok: true, value }),
      (error: Error) => (result = { ok: false, error }),
    );
    await settle();
    const until = this.clock.now + maxMs;
    while (!result && this.clock.now <= until) {
      if (!(await this.clock.step(until))) break;
    }
    if (!result) return { ok: false, error: new Error(`did not settle within ${maxMs} virtual ms`) };
    return result;
  }

  // ---------------------------------------------------------------- what each node believes

  /** The ranges a node would allocate from (a stopped node: what its store restores). */
  owned(name: PeerName): Range[] {
    const node = this.node(name);
    if (node.ipam) return node.ipam.ownedRanges();
    const snap = node.store.peek();
    return [...(snap?.state.records.get(name)?.ranges ?? [])];
  }

  allocations(name: PeerName): { containerId: string; address: number }[] {
    const node = this.node(name);
    if (node.ipam) return node.ipam.allocations().map((a) => ({ containerId: a.containerId, address: parseAddress(a.address) }));
    const snap = node.store.peek();
    return (snap?.allocations ?? []).map((a) => ({ containerId: a.containerId, address: a.address }));
  }

  describeOwnership(): string {
    return [...this.nodes.values()]
      .map((n) => `${n.name}[${n.state}] ${this.owned(n.name).map((r) => `${formatAddress(r.start)}+${r.end - r.start}`).join(' ')}`)
      .join('\n');
  }
}
