// What an idle mesh costs (a script, not a test): N real daemons in
// namespaces, fully meshed, nothing happening. For each N: CPU per daemon
// (user+system ticks from /proc over the window), gossip bytes each daemon
// sends per second (all channels, from its metrics), RSS per daemon.
// A quiet mesh should cost next to nothing; a relay loop in a gossip
// channel once made five idle daemons use 40 % of a core each.
//
// Usage: node dist/bench/idle.js [--peers 3,5,10] [--window 10] [--password]

import { readFileSync } from 'node:fs';
import { TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { daemonPid, gossipBytesSent, launch, status } from '../test/harness/meshnet.js';
import { arg, table } from './table.js';

const WINDOW_S = Number(arg('--window', '10'));
const PASSWORD = process.argv.includes('--password') ? 'bench idle secret' : undefined;

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function idle(n: number): Promise<(string | number)[]> {
  const net = await TestNet.create(n);
  try {
    const [first, ...rest] = net.hosts as [TestHost, ...TestHost[]];
    await launch(first, { password: PASSWORD });
    await Promise.all(rest.map((h) => launch(h, { peers: [first.address], password: PASSWORD })));
    for (const h of net.hosts) {
      await waitFor(async () => (await status(h)).connections.filter((c) => c.state === 'established' && c.datapath !== null).length === n - 1, 120_000, `${h.id} meshed`, 250);
    }
    // Let start-up work (path MTU probes, first reconciles) finish.
    await new Promise((r) => setTimeout(r, 5_000));
    const pids = net.hosts.map(daemonPid);
    const ticks0 = pids.map(cpuTicks);
    const bytes0 = await Promise.all(net.hosts.map(gossipBytesSent));
    await new Promise((r) => setTimeout(r, WINDOW_S * 1000));
    const ticks1 = pids.map(cpuTicks);
    const bytes1 = await Promise.all(net.hosts.map(gossipBytesSent));
    const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
    const cpuPct = ((sum(ticks1) - sum(ticks0)) / 100 / n / WINDOW_S) * 100;
    const bytesPerS = (sum(bytes1) - sum(bytes0)) / n / WINDOW_S;
    return [n, PASSWORD ? 'sleeve, encrypted' : 'fastdp', cpuPct.toFixed(2), bytesPerS.toFixed(0), (sum(pids.map(rssMiB)) / n).toFixed(0)];
  } finally {
    await net.destroy();
  }
}

async function main(): Promise<void> {
  const sizes = arg('--peers', '3,5,10').split(',').filter(Boolean).map(Number);
  const rows = [];
  for (const n of sizes) rows.push(await idle(n));
  console.log(`\nIdle mesh, ${WINDOW_S} s window after a full mesh (every connection with a datapath) and 5 s of rest\n`);
  console.log(table(['peers', 'datapath', 'CPU per daemon (% of a core)', 'gossip sent per daemon (B/s)', 'RSS per daemon (MiB)'], rows));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
