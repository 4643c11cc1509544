// Mesh benchmark with real daemons (a script, not a test): N daemons in
// network namespaces, h1 first and the others at once, each told only of
// h1; time to a full mesh on every peer, also counted from the last launch;
// then ten idle seconds: RSS per daemon and gossip sent. The large-mesh
// simulation is bench/mesh-sim.ts.
//
// Usage: node dist/bench/mesh.js [--real 10,20,30]

import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { launch, status, daemonPid, gossipBytesSent } from '../test/harness/meshnet.js';
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

async function main(): Promise<void> {
  const real = arg('--real', '10,20,30').split(',').filter(Boolean).map(Number);
  const rows = [];
  for (const n of real) rows.push(await realDaemons(n));
  console.log('\nReal daemons in network namespaces (h1 first, then the others in parallel, each told only of h1)\n');
  console.log(table(['peers', 'all launched (s)', 'full mesh on every peer (s)', 'full mesh after the last launch (s)', 'idle RSS per daemon (MiB)', 'largest (MiB)', 'idle gossip B/s per daemon'], rows));
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
