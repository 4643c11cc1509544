// IPAM benchmark (a script, not a test), real daemons in namespaces:
//  - allocation latency through the control API, p50/p99, when the peer owns
//    free space, and when space must first be donated by another peer
//    (an observer's first allocation);
//  - time from launching N daemons (consensus=N) to a ready ring on all.
//
// Usage: node dist/bench/ipam.js [--allocs 1000] [--donations 12] [--ring 3,10,20]

import { performance } from 'node:perf_hooks';
import { callApi } from '../router/api-client.js';
import { launch, status } from '../test/harness/meshnet.js';
import { TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { arg, percentile, table } from './table.js';

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const alloc = (h: TestHost, id: string): Promise<unknown> => callApi(h.runDir, 'POST', '/ipam/allocate', { containerId: id, iface: 'eth0' }, 60_000);

async function latencies(allocs: number, donations: number): Promise<(string | number)[][]> {
  const net = await TestNet.create(3 + donations);
  try {
    const [h1, h2, h3, ...observers] = net.hosts as TestHost[];
    await launch(h1!, { args: ['--ipalloc-init', 'consensus=3'] });
    await Promise.all([h2, h3].map((h) => launch(h!, { peers: [h1!.address], args: ['--ipalloc-init', 'consensus=3'] })));
    await waitFor(async () => (await status(h1!)).ipam.ready && (await status(h3!)).ipam.ready, 60_000, 'ring');
    const free: number[] = [];
    for (let i = 0; i < allocs; i++) free.push(await timed(() => alloc(h1!, `lat${i}`)));
    await Promise.all(observers.map((h) => launch(h, { peers: [h1!.address], args: ['--ipalloc-init', 'observer'] })));
    await waitFor(async () => (await Promise.all(observers.map(status))).every((s) => s.peers.length === net.hosts.length), 60_000, 'observers joined');
    const donated: number[] = [];
    for (const [i, h] of observers.entries()) donated.push(await timed(() => alloc(h, `don${i}`)));
    const row = (what: string, xs: number[]): (string | number)[] => [what, xs.length, percentile(xs, 50).toFixed(2), percentile(xs, 99).toFixed(2)];
    return [row('peer owns free space', free), row('space donated first (observer)', donated)];
  } finally {
    await net.destroy();
  }
}

async function ringReady(n: number): Promise<(string | number)[]> {
  const net = await TestNet.create(n);
  try {
    const t0 = performance.now();
    const [first, ...rest] = net.hosts;
    const args = ['--ipalloc-init', `consensus=${n}`];
    await Promise.all([launch(first!, { args }), ...rest.map((h) => launch(h, { peers: [first!.address], args }))]);
    const launched = performance.now() - t0;
    for (const h of net.hosts) await waitFor(async () => (await status(h)).ipam.ready, 120_000, `${h.id} ready`, 25);
    return [n, (launched / 1000).toFixed(2), ((performance.now() - t0) / 1000).toFixed(2)];
  } finally {
    await net.destroy();
  }
}

async function main(): Promise<void> {
  const lat = await latencies(Number(arg('--allocs', '1000')), Number(arg('--donations', '12')));
  console.log('\nAllocation latency through the control API (ms)\n');
  console.log(table(['case', 'samples', 'p50', 'p99'], lat));
  const rows = [];
  for (const n of arg('--ring', '3,10,20').split(',').map(Number)) rows.push(await ringReady(n));
  console.log('\nLaunch to a ready ring on every peer (consensus=N)\n');
  console.log(table(['peers', 'all launched (s)', 'ring ready on all (s)'], rows));
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
