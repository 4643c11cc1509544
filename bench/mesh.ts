// Mesh benchmark (a script, not a test). Prints two tables:
//
//  1. real daemons in network namespaces: time from launching N daemons
//     (each told only of the first) to a full mesh on every peer, and RSS;
//  2. an in-process simulation with the real mesh code over the in-memory
//     transport: time for N peers to converge after one more joins, topology
//     gossip bytes per peer for that join, and heap per peer. For contrast it
//     prints what one whole-table topology message weighs at that size (the
//     O(N²) design that reached 1–2 GB at 300 nodes, weaveworks/mesh#108).
//
// Usage: node dist/bench/mesh.js [--real 10,20] [--sim 100,300,1000] [--sim-conn-limit 1000:16]

import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { launch, status, daemonPid, gossipBytesSent } from '../test/harness/meshnet.js';
import { MemoryCluster } from '../test/harness/memory-mesh.js';
import { encodeTopologyMessage } from '../mesh/topology-codec.js';
import type { MeshTiming } from '../mesh/mesh.js';
import { arg, table } from './table.js';


async function realDaemons(n: number): Promise<(string | number)[]> {
  const net = await TestNet.create(n);
  try {
    const t0 = performance.now();
    const [first, ...rest] = net.hosts;
    // A rollout: h1 first, then the others in parallel, each told only of h1.
    await launch(first!);
    await Promise.all(rest.map((h) => launch(h, { peers: [first!.address] })));
    const launched = performance.now();
    for (const h of net.hosts) {
      await waitFor(async () => (await status(h)).connections.filter((c) => c.state === 'established').length === n - 1, 120_000, `${h.id} meshed`, 50);
    }
    const meshed = performance.now();
    // Idle: ten quiet seconds, then RSS and the gossip sent meanwhile.
    const gossip0 = await gossipSent(net.hosts);
    await new Promise((r) => setTimeout(r, 10_000));
    const quietBytes = (await gossipSent(net.hosts)) - gossip0;
    const rss = net.hosts.map((h) => {
      const s = readFileSync(`/proc/${daemonPid(h)}/status`, 'utf8');
      return Number(/VmRSS:\s+(\d+)/.exec(s)![1]) / 1024;
    });
    return [
      n,
      ((launched - t0) / 1000).toFixed(2),
      ((meshed - t0) / 1000).toFixed(2),
      ((meshed - launched) / 1000).toFixed(2),
      (rss.reduce((a, b) => a + b, 0) / n).toFixed(0),
      Math.max(...rss).toFixed(0),
      (quietBytes / n / 10).toFixed(0),
    ];
  } finally {
    await net.destroy();
  }
}

/** Gossip bytes sent by every daemon so far. */
async function gossipSent(hosts: readonly TestHost[]): Promise<number> {
  return (await Promise.all(hosts.map(gossipBytesSent))).reduce((a, b) => a + b, 0);
}

const SIM_TIMING: Partial<MeshTiming> = {
  heartbeatMs: 10_000,
  deadlineMs: 60_000,
  handshakeTimeoutMs: 60_000,
  publishDelayMs: 200,
  gcDelayMs: 1_000,
  // Periodic repair (digests with a random neighbour) is not part of a join's cost,
  // and at 300 peers its steady trickle would never let the mesh look quiet.
  antiEntropyMs: 600_000,
  dialTimeoutMs: 30_000,
};

function topologyBytes(c: MemoryCluster): number {
  return c.live().reduce((s, p) => s + (p.mesh.stats.gossipBytesSent.get('topology') ?? 0), 0);
}

/** Waits until converged and quiet; returns when the last topology byte moved. */
/** Every peer holds the same version of every entry, for exactly `n` peers. */
function converged(c: MemoryCluster, n: number): boolean {
  const ref = c.peers[0]!.mesh.topology;
  if (ref.entries.size !== n) return false;
  const key = [...ref.entries.values()].map((e) => `${e.id}:${e.incarnation}:${e.version}`).sort().join(',');
  return c.live().every((p) => {
    const t = p.mesh.topology;
    return t.entries.size === n && !t.hasUnpublished && [...t.entries.values()].map((e) => `${e.id}:${e.incarnation}:${e.version}`).sort().join(',') === key;
  });
}

async function settle(c: MemoryCluster, n: number, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  // Converged and quiet: no topology bytes for a while.
  let last = -1;
  let quietSince = 0;
  for (;;) {
    const now = performance.now();
    if (now - t0 > timeoutMs) throw new Error(`no convergence for ${n} peers in ${timeoutMs} ms`);
    const b = topologyBytes(c);
    if (b !== last) {
      last = b;
      quietSince = now;
    }
    if (converged(c, n) && now - quietSince > 500) return quietSince;
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function simulate(n: number, connLimit: number): Promise<(string | number)[]> {
  const cluster = new MemoryCluster({ timing: SIM_TIMING, connLimit, backoff: { initialMs: 2_000, maxMs: 60_000, resetAfterMs: 60_000 } });
  try {
    // Grow the mesh in batches, as a real rollout would, letting each batch
    // converge: everyone starting at the same instant is a different test.
    await cluster.add(0);
    // Joiners of the first batch all know only peer 0: a batch larger than
    // the connection limit would leave some refused by everyone they know.
    const batch = connLimit > 0 ? Math.max(1, Math.min(25, Math.floor(connLimit / 2))) : 25;
    for (let start = 1; start < n; start += batch) {
      const end = Math.min(n, start + batch);
      for (let i = start; i < end; i++) {
        const p = await cluster.add(i);
        // A joiner is told of three existing peers (one may be full).
        p.mesh.connect([0, 1, 2].map(() => cluster.address(Math.floor(Math.random() * start))));
      }
      await settle(cluster, end, 900_000);
      console.error(`  ${n}: ${end} peers converged (${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB RSS)`);
    }
    const bytesBefore = topologyBytes(cluster);
    const t0 = performance.now();
    const joiner = await cluster.add(n);
    joiner.mesh.connect([cluster.address(0)]);
    const joinMs = (await settle(cluster, n + 1, 600_000)) - t0;
    const perPeer = (topologyBytes(cluster) - bytesBefore) / (n + 1);
    global.gc?.();
    const heapPerPeer = process.memoryUsage().heapUsed / (n + 1);
    const conns = cluster.peers[1]!.mesh.liveConnections().length;
    const fullTable = encodeTopologyMessage({ type: 'update', entries: [...cluster.peers[0]!.mesh.topology.entries.keys()].map((id) => cluster.peers[0]!.mesh.topology.full(id)!) }).length;
    return [
      n,
      connLimit === 0 ? 'full' : `limit ${connLimit}`,
      conns,
      (joinMs / 1000).toFixed(2),
      (perPeer / 1024).toFixed(1),
      (fullTable / 1024).toFixed(0),
      (heapPerPeer / 1024 / 1024).toFixed(2),
    ];
  } finally {
    await cluster.stopAll();
  }
}

async function main(): Promise<void> {
  const real = arg('--real', '10,20,30').split(',').filter(Boolean).map(Number);
  const sims = arg('--sim', '100,300,1000').split(',').filter(Boolean).map(Number);
  const limits = new Map(
    arg('--sim-conn-limit', '1000:16')
      .split(',')
      .filter(Boolean)
      .map((s) => s.split(':').map(Number) as [number, number]),
  );
  if (real.length) {
    const rows = [];
    for (const n of real) rows.push(await realDaemons(n));
    console.log('\nReal daemons in network namespaces (each launched knowing only h1)\n');
    console.log(table(['peers', 'all launched (s)', 'full mesh on every peer (s)', 'full mesh after the last launch (s)', 'idle RSS per daemon (MiB)', 'largest (MiB)', 'idle gossip B/s per daemon'], rows));
  }
  if (sims.length) {
    const rows = [];
    const head = ['peers', 'mesh', 'conns per peer', 'join converged (s)', 'topology gossip per peer for the join (KiB)', 'one whole-table message (KiB)', 'heap per peer (MiB)'];
    for (const n of sims) {
      rows.push(await simulate(n, limits.get(n) ?? 0));
      console.error(`simulated ${n}: ${rows[rows.length - 1]!.join(' | ')}`);
    }
    console.log('\nIn-process simulation, real mesh code over the in-memory transport: one more peer joins\n');
    console.log(table(head, rows));
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
