// Large-mesh simulation (a script, not a test): N real routers (mesh/ code
// unchanged, product default timings) in one process over the in-memory
// transport, each also running the fast datapath's endpoint gossip
// (datapath/fastdp/endpoints.ts: its VTEP and two pods), on a simulated
// clock (test/harness/sim-clock.ts) with a one-way network delay of 1 ms.
//
// For each N it forms the mesh (peers start in waves, each told of three
// running peers, as a rollout would), then measures in simulated time:
//   - formation: until every peer holds the same topology and endpoints;
//   - steady state: bytes each peer sends per second with nothing happening
//     (topology + channel gossip, and heartbeats separately);
//   - one join: time until every peer has the newcomer in its topology and
//     its endpoints (and the newcomer everyone's), and the bytes that cost;
//   - one departure (a peer crashes, its streams reset): time until every
//     peer dropped it from topology and endpoints;
//   - routes: every ordered pair has a route (multi-hop with a connection
//     limit), the longest path, and real unicasts over 200 random pairs;
//   - memory: heap per peer, and one peer's topology table.
//
// Usage: node --expose-gc --max-old-space-size=12000 dist/bench/mesh-sim.js [--sizes 100,300,1000] [--conn-limit 32] [--full 100]

import { performance } from 'node:perf_hooks';
import { MemoryCluster, type SimPeer } from '../test/harness/memory-mesh.js';
import { SimClock } from '../test/harness/sim-clock.js';
import { encodeTopologyMessage } from '../mesh/topology-codec.js';
import { parsePeerName } from '../mesh/peer-name.js';
import { DEFAULT_TIMING, type Mesh } from '../mesh/mesh.js';
import { DEFAULT_BACKOFF } from '../mesh/connection-maker.js';
import type { GossipChannel } from '../mesh/types.js';
import { EndpointsGossiper } from '../datapath/fastdp/endpoints.js';
import { arg, table } from './table.js';

const ENDPOINTS_CHANNEL = 'sim-endpoints';
const PROBE_CHANNEL = 'sim-probe';
const RANGE = '198.19.0.0/16';
const LATENCY_MS = 1;
const WAVE = 50;
const WAVE_GAP_MS = 5_000;
const QUIET_MS = Number(arg('--quiet', '120')) * 1000;

interface PeerExtras {
  endpoints: EndpointsGossiper;
  probe: GossipChannel;
  probes: Set<string>;
}

const extras = new Map<Mesh, PeerExtras>();

function mac(i: number, k: number): string {
  const b = [0x02, 0x5e, k, (i >> 16) & 255, (i >> 8) & 255, i & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

const ids = new Map<string, number>();
/** parsePeerName, memoised: the endpoint channel asks for every entry on every topology change. */
function peerId(name: string): number {
  let id = ids.get(name);
  if (id === undefined) ids.set(name, (id = parsePeerName(name)));
  return id;
}

/** Register the datapath-state channel and a probe channel on a router before it starts. */
function attach(mesh: Mesh, index: number): void {
  const known = (p: string): boolean => mesh.topology.entries.has(peerId(p));
  const endpoints = new EndpointsGossiper({ self: mesh.localName, range: RANGE, isKnownPeer: known });
  const probes = new Set<string>();
  const ch = mesh.registerChannel(ENDPOINTS_CHANNEL, endpoints);
  // As the datapath does (datapath/datapath.ts): adoption batched over 100 ms.
  let adopt: NodeJS.Timeout | undefined;
  mesh.on('topology-changed', () => {
    adopt ??= setTimeout(() => {
      adopt = undefined;
      const u = endpoints.onTopologyChanged();
      if (u) ch.gossip(u);
    }, 100);
  });
  mesh.on('peer-removed', (p) => void endpoints.forgetPeer(p));
  const probe = mesh.registerChannel(PROBE_CHANNEL, {
    gossip: () => undefined,
    onGossip: () => undefined,
    onBroadcast: () => undefined,
    onUnicast: (from, msg) => void probes.add(`${from}>${Buffer.from(msg).toString()}`),
  });
  extras.set(mesh, { endpoints, probe, probes });
  // Announce our endpoints once the first connection is up (as the datapath does when ready).
  mesh.once('connection-established', () => {
    const pods = [1, 2].map((k) => ({ mac: mac(index, k), ip: `198.19.${(index * 2 + k) >> 8}.${(index * 2 + k) & 255}` }));
    ch.gossip(endpoints.setLocal({ vtep: MemoryCluster.ip(index), vni: 42, pods }));
  });
}

/** A cheap signature of what a peer knows (cached per topology generation). */
const sigCache = new WeakMap<Mesh, { gen: number; sig: string }>();
function signature(mesh: Mesh): string {
  const t = mesh.topology;
  const c = sigCache.get(mesh);
  if (c && c.gen === t.generation) return c.sig;
  let h = 0;
  for (const e of t.entries.values()) h = (h + Math.imul((e.id % 0x7fffffff) ^ (e.incarnation * 0x9e3779b1), 0x85ebca6b) + Math.imul(e.version, 0xc2b2ae35) + Number(e.uid & 0xffffn)) | 0;
  const sig = `${t.entries.size}:${h}`;
  sigCache.set(mesh, { gen: t.generation, sig });
  return sig;
}

/** Gossip bytes by channel, topology messages by kind, connections closed: summed over live peers. */
function statsOf(c: MemoryCluster): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string, v: number): void => void out.set(k, (out.get(k) ?? 0) + v);
  for (const p of c.live()) {
    for (const [k, v] of p.mesh.stats.gossipBytesSent) add(`bytes:${k}`, v);
    for (const [k, v] of p.mesh.stats.topologySent) add(`topology:${k}`, v);
    add('closed', p.mesh.stats.connectionsClosed);
  }
  return out;
}
function diffStats(now: Map<string, number>, then: Map<string, number>): Record<string, number> {
  return Object.fromEntries([...now].map(([k, v]) => [k, v - (then.get(k) ?? 0)]).filter(([, v]) => v !== 0));
}

/** Every live peer holds `n` topology entries, all alike, and n-1 remote endpoint entries. */
function converged(c: MemoryCluster, n: number): boolean {
  const live = c.live();
  if (live.length !== n) return false;
  const ref = signature(live[0]!.mesh);
  return live.every((p) => !p.mesh.topology.hasUnpublished && signature(p.mesh) === ref && p.mesh.topology.entries.size === n && extras.get(p.mesh)!.endpoints.remoteEntries().length === n - 1);
}

/** Bytes sent by every live peer: gossip (topology and channels) and everything on the wire. */
function gossipBytes(c: MemoryCluster): number {
  let s = 0;
  for (const p of c.live()) for (const v of p.mesh.stats.gossipBytesSent.values()) s += v;
  return s;
}
function topologyBytes(c: MemoryCluster): number {
  return c.live().reduce((s, p) => s + (p.mesh.stats.gossipBytesSent.get('topology') ?? 0), 0);
}

function knowsEverywhere(c: MemoryCluster, who: SimPeer, present: boolean): boolean {
  const id = parsePeerName(who.mesh.localName);
  return c.live().every((p) => p === who || (p.mesh.topology.entries.has(id) === present && extras.get(p.mesh)!.endpoints.remoteEntries().some((e) => e.peer === who.mesh.localName) === present));
}

/** Routes between every ordered pair; the longest path in hops. */
function routes(c: MemoryCluster): { missing: number; longest: number } {
  const live = c.live();
  let missing = 0;
  let longest = 0;
  const byName = new Map(live.map((p) => [p.mesh.localName, p.mesh] as const));
  for (const a of live) {
    for (const b of live) {
      if (a === b) continue;
      let at = a.mesh;
      let hops = 0;
      while (at !== b.mesh && hops <= live.length) {
        const next = at.nextHop(b.mesh.localName);
        if (!next) break;
        at = byName.get(next)!;
        hops++;
      }
      if (at !== b.mesh) missing++;
      else longest = Math.max(longest, hops);
    }
  }
  return { missing, longest };
}

async function simulate(n: number, connLimit: number): Promise<(string | number)[]> {
  extras.clear();
  const clock = new SimClock().install();
  const wall0 = performance.now();
  const cluster = new MemoryCluster({ connLimit, timing: DEFAULT_TIMING, backoff: DEFAULT_BACKOFF, acceptRate: undefined }, 6783, { latencyMs: LATENCY_MS, beforeStart: attach });
  try {
    const t0 = clock.now;
    await cluster.add(0);
    for (let start = 1; start < n; start += WAVE) {
      const end = Math.min(n, start + WAVE);
      for (let i = start; i < end; i++) {
        const p = await cluster.add(i);
        p.mesh.connect([0, 1, 2].map(() => cluster.address(Math.floor(Math.random() * start))));
      }
      await clock.advance(WAVE_GAP_MS);
      process.stderr.write(`  ${n}: ${end} started, ${((clock.now - t0) / 1000).toFixed(0)} s simulated, ${((performance.now() - wall0) / 1000).toFixed(0)} s wall, ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB RSS\n`);
    }
    await clock.until(() => converged(cluster, n), 30 * 60_000, `${n} peers converge`, 100);
    const formed = clock.now - t0;
    const phase = (what: string): void => void process.stderr.write(`  ${n}: ${what} at ${((clock.now - t0) / 1000).toFixed(1)} s simulated, ${((performance.now() - wall0) / 1000).toFixed(0)} s wall\n`);
    phase('formed');
    // Settle (discovery may still be filling slots), then a quiet window.
    await clock.advance(60_000);
    const q0 = { gossip: gossipBytes(cluster), wire: cluster.net.bytesCarried, at: clock.now, stats: statsOf(cluster) };
    await clock.advance(QUIET_MS);
    process.stderr.write(`  ${n}: in the quiet window: ${JSON.stringify(diffStats(statsOf(cluster), q0.stats))}\n`);
    const quietGossip = (gossipBytes(cluster) - q0.gossip) / n / ((clock.now - q0.at) / 1000);
    const quietWire = (cluster.net.bytesCarried - q0.wire) / n / ((clock.now - q0.at) / 1000);

    phase('quiet window measured');
    // One join, through peer 0.
    const before = { topo: topologyBytes(cluster), gossip: gossipBytes(cluster), wire: cluster.net.bytesCarried };
    const joiner = await cluster.add(n);
    let firstConnMs = NaN;
    const tj = clock.now;
    joiner.mesh.once('connection-established', () => void (firstConnMs = clock.now - tj));
    joiner.mesh.connect([cluster.address(0)]);
    const diag = (): string => {
      const id = parsePeerName(joiner.mesh.localName);
      const live = cluster.live();
      const noTopo = live.filter((p) => p !== joiner && !p.mesh.topology.entries.has(id)).length;
      const noEp = live.filter((p) => p !== joiner && !extras.get(p.mesh)!.endpoints.remoteEntries().some((e) => e.peer === joiner.mesh.localName)).length;
      return `without joiner in topology: ${noTopo}, in endpoints: ${noEp}; joiner knows ${joiner.mesh.topology.entries.size} peers, ${extras.get(joiner.mesh)!.endpoints.remoteEntries().length} endpoints, ${joiner.mesh.liveConnections().length} conns`;
    };
    let topoKnown = NaN;
    const watch = setInterval(() => {
      const id = parsePeerName(joiner.mesh.localName);
      if (Number.isNaN(topoKnown) && cluster.live().every((p) => p.mesh.topology.entries.has(id))) topoKnown = clock.now - tj;
      if (clock.now - tj === 5_000) process.stderr.write(`  at +5 s: ${diag()}\n`);
    }, 10);
    const joinKnown = await clock.until(() => knowsEverywhere(cluster, joiner, true) && joiner.mesh.topology.entries.size === n + 1 && extras.get(joiner.mesh)!.endpoints.remoteEntries().length === n, 120_000, 'join', 10).catch((e: Error) => {
      throw new Error(`${e.message}: ${diag()}`);
    });
    clearInterval(watch);
    process.stderr.write(`  ${n}: the joiner was in every topology after ${topoKnown} ms\n`);
    const joinConverged = joinKnown + (await clock.until(() => converged(cluster, n + 1), 120_000, 'join converges', 10));
    await clock.advance(10_000);
    const joinTopo = (topologyBytes(cluster) - before.topo) / (n + 1);
    const joinGossip = (gossipBytes(cluster) - before.gossip) / (n + 1);

    phase(`joined (first connection after ${firstConnMs} ms)`);
    // One departure: a peer other than 0 and the joiner crashes.
    const leaver = cluster.peers[1 + Math.floor(Math.random() * (n - 1))]!;
    await cluster.crash(leaver.index);
    delete cluster.peers[leaver.index];
    const left = await clock.until(() => knowsEverywhere(cluster, leaver, false) && converged(cluster, n), 120_000, 'departure', 10);

    phase('departed');
    // Routes and real unicasts.
    await clock.advance(10_000);
    const r = routes(cluster);
    const live = cluster.live();
    const pairs: [SimPeer, SimPeer][] = [];
    while (pairs.length < 200) {
      const a = live[Math.floor(Math.random() * live.length)]!;
      const b = live[Math.floor(Math.random() * live.length)]!;
      if (a !== b) pairs.push([a, b]);
    }
    pairs.forEach(([a, b], k) => extras.get(a.mesh)!.probe.unicast(b.mesh.localName, Buffer.from(String(k))));
    await clock.advance(2_000);
    const delivered = pairs.filter(([a, b], k) => extras.get(b.mesh)!.probes.has(`${a.mesh.localName}>${k}`)).length;

    global.gc?.();
    const heapPerPeer = process.memoryUsage().heapUsed / live.length;
    const table0 = [...cluster.peers[0]!.mesh.topology.entries.values()].reduce((s, e) => s + e.conns.length + 40, 0);
    const conns = live.reduce((s, p) => s + p.mesh.liveConnections().length, 0) / live.length;
    const fullTable = encodeTopologyMessage({ type: 'update', entries: [...cluster.peers[0]!.mesh.topology.entries.keys()].map((id) => cluster.peers[0]!.mesh.topology.full(id)!) }).length;
    return [
      n,
      connLimit === 0 ? 'full' : `limit ${connLimit}`,
      conns.toFixed(1),
      (formed / 1000).toFixed(1),
      (joinKnown / 1000).toFixed(2),
      (joinConverged / 1000).toFixed(2),
      (left / 1000).toFixed(2),
      (joinTopo / 1024).toFixed(1),
      (joinGossip / 1024).toFixed(1),
      (fullTable / 1024).toFixed(0),
      quietGossip.toFixed(1),
      quietWire.toFixed(0),
      `${r.missing === 0 ? 'all' : `${r.missing} missing`}, ≤${r.longest} hops`,
      `${delivered}/${pairs.length}`,
      (table0 / 1024).toFixed(0),
      (heapPerPeer / 2 ** 20).toFixed(2),
      ((performance.now() - wall0) / 1000).toFixed(0),
    ];
  } finally {
    await cluster.stopAll();
    clock.uninstall();
  }
}

async function main(): Promise<void> {
  const sizes = arg('--sizes', '100,300,1000').split(',').filter(Boolean).map(Number);
  const limit = Number(arg('--conn-limit', '32'));
  const full = arg('--full', '100').split(',').filter(Boolean).map(Number);
  const runs: [number, number][] = [...full.map((n) => [n, 0] as [number, number]), ...sizes.map((n) => [n, limit] as [number, number])];
  const rows = [];
  for (const [n, l] of runs) {
    rows.push(await simulate(n, l));
    console.error(`simulated ${n}: ${rows[rows.length - 1]!.join(' | ')}`);
  }
  console.log(`\nSimulation: real mesh + endpoint gossip, product timings, simulated clock, ${LATENCY_MS} ms one-way delay\n`);
  console.log(
    table(
      [
        'peers',
        'mesh',
        'conns/peer',
        'formed (s)',
        'join known everywhere (s)',
        'join converged (s)',
        'departure converged (s)',
        'join: topology KiB/peer',
        'join: all gossip KiB/peer',
        'whole-table msg (KiB)',
        'idle gossip B/s/peer',
        'idle wire B/s/peer',
        'routes',
        'unicasts',
        'topology table (KiB)',
        'heap/peer (MiB)',
        'wall (s)',
      ],
      rows,
    ),
  );
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
