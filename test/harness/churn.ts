// Churn on a real mesh, shared by the soak bench (bench/soak.ts) and its
// short CI version (test/e2e/soak.test.ts): N daemons in namespaces with a
// password and IPAM over 198.19.0.0/16, then random actions from a seeded
// PRNG, a few in flight at once: pods added and deleted through the real
// CNI plugin, daemons stopped (or killed with -9) and launched again on the
// same state dir, two hosts cut from each other with nftables for a few
// seconds. `verify()` waits for the mesh to settle and checks what churn
// must never break (docs/soak.md).
//
// The seed fixes the sequence of choices, not the timing: a replay with the
// same seed makes the same choices, but how they interleave with the
// daemons' own timers still varies with the load of the machine.

import { readFileSync } from 'node:fs';
import { callApi } from '../../router/api-client.js';
import { HOST_CONTAINER_ID } from '../../router/ipam/ids.js';
import type { StatusJson } from '../../router/status.js';
import { crashDaemon, daemonPid, launch, meshnet, status } from './meshnet.js';
import { isAlive, TestNet, waitFor, type TestHost } from './netns.js';
import { nftDrop, pingAll, Pods, runPing, type Pod } from './pods.js';
import { prng } from './prng.js';

export const RANGE_SIZE = 65536;
const PASSWORD = 'churn soak secret';

export type ActionKind = 'add' | 'del' | 'del, daemon down' | 'stop+launch' | 'kill+launch' | 'partition';
export const ACTION_KINDS: ActionKind[] = ['add', 'del', 'del, daemon down', 'stop+launch', 'kill+launch', 'partition'];

export interface ChurnOptions {
  hosts: number;
  seed: number;
  /** Most live pods on one host. */
  podsPerHost: number;
  /** Most actions in flight at once. */
  inFlight: number;
  /** RSS is sampled this often once `rssWarmupMs` have passed since the mesh formed. */
  rssEveryMs: number;
  rssWarmupMs: number;
  log: (line: string) => void;
}

export const DEFAULT_CHURN: Omit<ChurnOptions, 'seed'> = {
  hosts: 5,
  podsPerHost: 6,
  inFlight: 3,
  rssEveryMs: 15_000,
  rssWarmupMs: 60_000,
  log: () => undefined,
};

export interface CheckResult {
  name: 'no duplicate address' | 'allocations accounted for' | 'connections established' | 'pods reach pods';
  ok: boolean;
  /** What is wrong (empty when ok). */
  problems: string[];
}

export interface RssSeries {
  host: string;
  pid: number;
  /** Minutes since the mesh formed, KiB. Only this process's samples (a restart starts a new series). */
  samples: { min: number; kib: number }[];
}

interface Allocation {
  containerId: string;
  iface: string;
  address: string;
}

const ipNum = (a: string): number => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Churn {
  readonly counts = new Map<ActionKind, { done: number; failed: number }>(ACTION_KINDS.map((k) => [k, { done: 0, failed: 0 }]));
  /** One line per action that failed. */
  readonly failures: string[] = [];
  /** Live pods by container id. */
  readonly live = new Map<string, Pod>();
  private readonly rng: () => number;
  /** Hosts with a CNI call or a restart under way: one thing at a time per host. */
  private readonly busy = new Set<TestHost>();
  /**
   * Hosts whose daemon is stopped or still starting. A runtime may tear a
   * pod down then: the plugin parks the DEL and the daemon finishes it when
   * it is back. One such DEL at a time per host (`delDown`).
   */
  private readonly down = new Set<TestHost>();
  private readonly delDown = new Set<TestHost>();
  /** Hosts in a partition now (each in one at a time, so one nft table per host is enough). */
  private readonly cut = new Set<TestHost>();
  private readonly rss = new Map<string, RssSeries>();
  private rssTimer: NodeJS.Timeout | undefined;
  private podSeq = 0;
  private readonly t0 = Date.now();

  private constructor(
    readonly net: TestNet,
    readonly pods: Pods,
    readonly opts: ChurnOptions,
  ) {
    this.rng = prng(opts.seed);
  }

  /** Create the hosts, launch and mesh the daemons, wait for one agreed ring. */
  static async start(options: Partial<ChurnOptions> & { seed: number }): Promise<Churn> {
    const opts: ChurnOptions = { ...DEFAULT_CHURN, ...options };
    const net = await TestNet.create(opts.hosts);
    try {
      await Promise.all(net.hosts.map((h) => launchOn(net, h)));
      const churn = new Churn(net, await Pods.create(net), opts);
      await waitFor(
        async () => {
          const problems = await churn.meshProblems();
          if (problems.length) throw new Error(problems.join('; '));
          return true;
        },
        120_000,
        'a full mesh with one agreed ring',
        500,
      );
      churn.rssTimer = setTimeout(() => churn.sampleRss(), opts.rssWarmupMs);
      return churn;
    } catch (err) {
      await net.destroy();
      throw err;
    }
  }

  get hosts(): TestHost[] {
    return this.net.hosts;
  }

  /** Random actions for `ms`, at most `inFlight` at once; returns once the last one finished. */
  async churn(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    const running = new Set<Promise<void>>();
    while (Date.now() < deadline) {
      if (running.size < this.opts.inFlight) {
        const p = this.step().finally(() => running.delete(p));
        running.add(p);
      }
      await sleep(200 + this.rng() * 1300);
    }
    await Promise.all(running);
  }

  /**
   * After `churn()` (which heals its partitions): give every host at least
   * one pod (so that reachability covers every host), wait until the mesh
   * has settled, then run the checks.
   */
  async verify(settleMs = 90_000): Promise<CheckResult[]> {
    for (const h of this.hosts) if (this.podsOn(h).length === 0) await this.addPod(h, `p${++this.podSeq}`);
    const deadline = Date.now() + settleMs;
    let results = await this.structuralChecks();
    while (results.some((r) => !r.ok) && Date.now() < deadline) {
      await sleep(1000);
      results = await this.structuralChecks();
    }
    results.push(await this.reachability());
    return results;
  }

  /** The RSS series of each host's current daemon. */
  rssSeries(): RssSeries[] {
    return this.hosts.map((h) => this.rss.get(h.id) ?? { host: h.id, pid: 0, samples: [] });
  }

  async destroy(): Promise<void> {
    clearTimeout(this.rssTimer);
    await this.net.destroy();
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rng() * xs.length)]!;
  }

  /** Choose one action among those possible now (weights: add 35, del 30, del on a host whose daemon is down 30, restart 6 + 6, partition 12) and run it. */
  private async step(): Promise<void> {
    const free = this.hosts.filter((h) => !this.busy.has(h));
    const canAdd = free.filter((h) => this.podsOn(h).length < this.opts.podsPerHost);
    const canDel = free.filter((h) => this.podsOn(h).length > 0);
    const canDelDown = [...this.down].filter((h) => !this.delDown.has(h) && this.podsOn(h).length > 0);
    // The first host is never restarted, so that one daemon's RSS covers the whole run.
    const canRestart = free.filter((h) => h !== this.hosts[0]);
    const uncut = this.hosts.filter((h) => !this.cut.has(h));
    const choices: [ActionKind, number][] = [];
    if (canAdd.length) choices.push(['add', 35]);
    if (canDel.length) choices.push(['del', 30]);
    if (canDelDown.length) choices.push(['del, daemon down', 30]);
    if (canRestart.length) choices.push(['stop+launch', 6], ['kill+launch', 6]);
    if (uncut.length >= 2 && this.cut.size < 4) choices.push(['partition', 12]);
    if (choices.length === 0) return;
    let r = this.rng() * choices.reduce((n, [, w]) => n + w, 0);
    const kind = choices.find(([, w]) => (r -= w) < 0)?.[0] ?? choices[0]![0];
    // Choices are drawn before anything awaits, so a seed replays the same sequence of decisions.
    let run: () => Promise<string>;
    switch (kind) {
      case 'add': {
        const h = this.pick(canAdd);
        const id = `p${++this.podSeq}`;
        this.busy.add(h);
        run = () => this.addPod(h, id).finally(() => this.busy.delete(h));
        break;
      }
      case 'del': {
        const h = this.pick(canDel);
        const pod = this.pick(this.podsOn(h));
        this.busy.add(h);
        run = () => this.delPod(pod).finally(() => this.busy.delete(h));
        break;
      }
      case 'del, daemon down': {
        const h = this.pick(canDelDown);
        const pod = this.pick(this.podsOn(h));
        this.delDown.add(h);
        run = () => this.delPod(pod).finally(() => this.delDown.delete(h));
        break;
      }
      case 'stop+launch':
      case 'kill+launch': {
        const h = this.pick(canRestart);
        const downMs = 500 + this.rng() * 2500;
        this.busy.add(h);
        run = () => this.restart(h, kind === 'kill+launch', downMs).finally(() => this.busy.delete(h));
        break;
      }
      case 'partition': {
        const a = this.pick(uncut);
        const b = this.pick(uncut.filter((h) => h !== a));
        const holdMs = 3000 + this.rng() * 7000;
        this.cut.add(a);
        this.cut.add(b);
        run = () => this.partition(a, b, holdMs).finally(() => [a, b].forEach((h) => this.cut.delete(h)));
        break;
      }
    }
    const count = this.counts.get(kind)!;
    try {
      const what = await run();
      count.done++;
      this.opts.log(`${this.elapsed()} ${kind} ${what}`);
    } catch (err) {
      count.failed++;
      const line = `${this.elapsed()} ${kind} FAILED: ${(err as Error).message.split('\n')[0]}`;
      this.failures.push(line);
      this.opts.log(line);
    }
  }

  private podsOn(h: TestHost): Pod[] {
    return [...this.live.values()].filter((p) => p.host === h);
  }

  private async addPod(h: TestHost, id: string): Promise<string> {
    try {
      const pod = await this.pods.add(h, id);
      this.live.set(id, pod);
      return `${id} on ${h.id}: ${pod.ip}`;
    } catch (err) {
      // What a runtime does after a failed ADD: DEL, then drop the sandbox.
      const ns = `${h.ns}-${id}`;
      await this.pods.del({ host: h, id, ns, ip: '', mac: '' }).catch(() => undefined);
      await this.net.removeNamespace(ns).catch(() => undefined);
      throw err;
    }
  }

  private async delPod(pod: Pod): Promise<string> {
    await this.pods.del(pod);
    this.live.delete(pod.id);
    await this.net.removeNamespace(pod.ns);
    return `${pod.id} on ${pod.host.id}: ${pod.ip}`;
  }

  private async restart(h: TestHost, kill: boolean, downMs: number): Promise<string> {
    const pid = daemonPid(h);
    if (kill) crashDaemon(h);
    else {
      const r = await meshnet(h, ['stop']);
      if (r.code !== 0) throw new Error(`stop on ${h.id}: ${r.stderr.trim()}`);
    }
    await waitFor(() => !isAlive(pid), 30_000, `${h.id}: daemon ${pid} gone`);
    this.down.add(h);
    const t = Date.now();
    try {
      await sleep(downMs);
      await launchOn(this.net, h);
      // The host is usable for pods again once IPAM has its ring back.
      await waitFor(async () => (await status(h)).ipam.ready, 60_000, `${h.id}: IPAM ready after the restart`, 250);
    } finally {
      this.down.delete(h);
    }
    return `${h.id} (${(downMs / 1000).toFixed(1)} s before the launch, IPAM ready ${((Date.now() - t) / 1000).toFixed(1)} s after it stopped)`;
  }

  /** Drop everything between `a` and `b` (rules on `a`, both directions) for `holdMs`, then heal. */
  private async partition(a: TestHost, b: TestHost, holdMs: number): Promise<string> {
    const heal = await nftDrop(a, [`in ip saddr ${b.address} drop`, `out ip daddr ${b.address} drop`]);
    try {
      await sleep(holdMs);
    } finally {
      await heal();
    }
    return `${a.id} x ${b.id} for ${(holdMs / 1000).toFixed(1)} s`;
  }

  private elapsed(): string {
    const s = Math.round((Date.now() - this.t0) / 1000);
    return `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
  }

  private sampleRss(): void {
    const min = (Date.now() - this.t0) / 60_000;
    for (const h of this.hosts) {
      try {
        const pid = daemonPid(h);
        const kib = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
        const cur = this.rss.get(h.id);
        if (cur?.pid === pid) cur.samples.push({ min, kib });
        else this.rss.set(h.id, { host: h.id, pid, samples: [{ min, kib }] });
      } catch {
        /* between a stop and a launch: no daemon to sample */
      }
    }
    this.rssTimer = setTimeout(() => this.sampleRss(), this.opts.rssEveryMs);
  }

  /** Every daemon connected to every other exactly once, nothing half-open, one agreed and ready ring. */
  private async meshProblems(): Promise<string[]> {
    const views = await Promise.all(this.hosts.map(status));
    return [...connectionProblems(this.hosts, views), ...ringProblems(views)];
  }

  /** Checks (a) to (c) on the current state. */
  private async structuralChecks(): Promise<CheckResult[]> {
    let views: StatusJson[];
    let allocs: Allocation[][];
    try {
      views = await Promise.all(this.hosts.map(status));
      allocs = await Promise.all(this.hosts.map((h) => callApi<Allocation[]>(h.runDir, 'GET', '/ipam/allocations')));
    } catch (err) {
      const problems = [`cannot read every daemon: ${(err as Error).message}`];
      return [
        { name: 'no duplicate address', ok: false, problems },
        { name: 'allocations accounted for', ok: false, problems },
        { name: 'connections established', ok: false, problems },
      ];
    }
    const pods = [...this.live.values()];
    const dup: string[] = [];
    const seen = new Map<string, string>();
    for (const p of pods) {
      const other = seen.get(p.ip);
      if (other) dup.push(`${p.ip}: ${other} and ${p.id} on ${p.host.id}`);
      seen.set(p.ip, `${p.id} on ${p.host.id}`);
    }
    // The daemons' allocations too (pods and hosts' own addresses), across the mesh.
    const byAddr = new Map<string, string>();
    allocs.forEach((list, i) => {
      for (const a of list) {
        const who = `${a.containerId} on ${this.hosts[i]!.id}`;
        const other = byAddr.get(a.address);
        if (other) dup.push(`${a.address} allocated to ${other} and ${who}`);
        byAddr.set(a.address, who);
      }
    });

    const acct: string[] = [...ringProblems(views)];
    this.hosts.forEach((h, i) => {
      const held = new Map(allocs[i]!.filter((a) => a.containerId !== HOST_CONTAINER_ID).map((a) => [`${a.containerId}/${a.iface}`, a.address]));
      const want = new Map(this.podsOn(h).map((p) => [`${p.id}/eth0`, p.ip]));
      for (const [k, addr] of held) if (!want.has(k)) acct.push(`${h.id}: leaked allocation ${k} ${addr} (no live pod)`);
      for (const [k, addr] of want) {
        if (!held.has(k)) acct.push(`${h.id}: live pod ${k} ${addr} has no allocation`);
        else if (held.get(k) !== addr) acct.push(`${h.id}: pod ${k} has ${addr} but IPAM says ${held.get(k)}`);
      }
      // Each allocation is inside space its daemon owns in the agreed ring.
      const own = views[i]!.ipam.ranges.filter((r) => r.owner === views[i]!.name).map((r) => [ipNum(r.start), ipNum(r.start) + r.size] as const);
      for (const a of allocs[i]!) if (!own.some(([s, e]) => ipNum(a.address) >= s && ipNum(a.address) < e)) acct.push(`${h.id}: ${a.containerId} ${a.address} outside its own ranges`);
      const n = views[i]!.ipam.allocated;
      if (n !== allocs[i]!.length) acct.push(`${h.id}: status says ${n} allocated, the allocation list has ${allocs[i]!.length}`);
    });

    const conn = connectionProblems(this.hosts, views);
    return [
      { name: 'no duplicate address', ok: dup.length === 0, problems: dup },
      { name: 'allocations accounted for', ok: acct.length === 0, problems: acct },
      { name: 'connections established', ok: conn.length === 0, problems: conn },
    ];
  }

  /** Check (d): every live pod pings every other; a pair that misses the first ping gets five more seconds. */
  private async reachability(): Promise<CheckResult> {
    const pods = [...this.live.values()];
    const problems: string[] = [];
    for (const from of pods) {
      const targets = pods.filter((p) => p !== from).map((p) => p.ip);
      const ok = new Set(await pingAll(from, targets));
      for (const ip of targets.filter((t) => !ok.has(t))) {
        if (!(await runPing(from, ip, 5)).ok) problems.push(`${from.id} (${from.host.id}) -> ${ip}: no reply`);
      }
    }
    return { name: 'pods reach pods', ok: problems.length === 0, problems };
  }

  /** Allocations per host (pods only) and the totals the bench reports. */
  async allocationCounts(): Promise<{ host: string; pods: number; allocations: number; owned: number }[]> {
    return Promise.all(
      this.hosts.map(async (h) => {
        const s = await status(h);
        const list = await callApi<Allocation[]>(h.runDir, 'GET', '/ipam/allocations');
        return { host: h.id, pods: this.podsOn(h).length, allocations: list.filter((a) => a.containerId !== HOST_CONTAINER_ID).length, owned: s.ipam.owned };
      }),
    );
  }

  /** Each host's connections by state. */
  async connectionStates(): Promise<{ host: string; states: Record<string, number> }[]> {
    return Promise.all(
      this.hosts.map(async (h) => {
        const states: Record<string, number> = {};
        for (const c of (await status(h)).connections) states[c.state] = (states[c.state] ?? 0) + 1;
        return { host: h.id, states };
      }),
    );
  }
}

/** Launch (or relaunch, on the same state dir) with the password, every other host as a peer, and consensus over all hosts. */
async function launchOn(net: TestNet, h: TestHost): Promise<void> {
  const peers = net.hosts.filter((o) => o !== h).map((o) => o.address);
  await launch(h, { peers, password: PASSWORD, args: ['--ipalloc-init', `consensus=${net.hosts.length}`] });
}

/** Every host has exactly one established connection to each other host and no connection in another state. */
export function connectionProblems(hosts: TestHost[], views: StatusJson[]): string[] {
  const out: string[] = [];
  views.forEach((s, i) => {
    const h = hosts[i]!;
    for (const c of s.connections) if (c.state !== 'established') out.push(`${h.id}: connection to ${c.nickname ?? c.address} is ${c.state} (${c.info})`);
    const est = s.connections.filter((c) => c.state === 'established').map((c) => c.nickname ?? '?');
    for (const o of hosts) {
      if (o === h) continue;
      const n = est.filter((x) => x === o.id).length;
      if (n !== 1) out.push(`${h.id}: ${n} established connections to ${o.id}`);
    }
  });
  return out;
}

/** All daemons ready with the same ring, which covers the range once: no gap, no overlap. */
export function ringProblems(views: StatusJson[]): string[] {
  const out: string[] = [];
  for (const s of views) if (!s.ipam.ready) out.push(`${s.nickname}: IPAM not ready (${s.ipam.status})`);
  const first = JSON.stringify(views[0]!.ipam.ranges);
  for (const s of views.slice(1)) if (JSON.stringify(s.ipam.ranges) !== first) out.push(`${s.nickname}: ring differs from ${views[0]!.nickname}'s`);
  const rs = views[0]!.ipam.ranges.map((r) => ({ start: ipNum(r.start), end: ipNum(r.start) + r.size, owner: r.owner })).sort((a, b) => a.start - b.start);
  const total = rs.reduce((n, r) => n + (r.end - r.start), 0);
  if (total !== RANGE_SIZE) out.push(`ring covers ${total} addresses, not ${RANGE_SIZE}`);
  for (let i = 1; i < rs.length; i++) {
    if (rs[i]!.start < rs[i - 1]!.end) out.push(`ranges of ${rs[i - 1]!.owner} and ${rs[i]!.owner} overlap`);
    else if (rs[i]!.start > rs[i - 1]!.end) out.push(`a gap before ${rs[i]!.owner}'s range`);
  }
  const owners = new Set(views.map((s) => s.name));
  for (const r of rs) if (!owners.has(r.owner)) out.push(`a range owned by ${r.owner}, not a live daemon`);
  return out;
}

/** Least-squares slope of a series, in its y unit per x unit (NaN with fewer than two points). */
export function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  if (sxx === 0) return NaN;
  return points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
}
