// Legitimate throughput under a flood: h1 and h2 an encrypted mesh (the
// sealed sleeve) with a pod each, h3 a non-member running bench/flood-agent
// at h1. Per scenario (no flood, UDP junk at the sleeve port, junk
// connections at the control port, both), iperf3 TCP pod h1 -> pod h2 while
// the flood runs. A script, not a test:
//
//   npm run build && node dist/bench/flood.js [--time 8]
//
// - Mbit/s: iperf3 received rate, one stream, one run per scenario; "% of
//   none" against the no-flood run of the same invocation.
// - kept: the h1–h2 connection's start time (status `since`) on both sides
//   is the same after the scenario as before it (no reconnect).
// - attacker: datagrams/s (udp) and connection attempts/s (tcp) the agent
//   managed, which depends on how much CPU the agent itself got.
// - CPU: the flooded daemon's (h1's) user+system time over the iperf3 run.
// - counters: h1's sleeve receive drops and refused/failed handshakes over the scenario.
// The machine is shared: single runs, noisy numbers; read the ratios loosely.
import { loadavg } from 'node:os';
import { daemonPid } from '../test/harness/meshnet.js';
import { connectionSince, flood, floodCounters, floodNet, totalFailures, type FloodResult } from '../test/harness/flood.js';
import { arg, table } from './table.js';
import { fmt, iperf, iperfServer, type Target } from './tunnels.js';

const SECONDS = Number(arg('--time', '8'));
const PASSWORD = 'flood bench secret 0123456789';

type Mode = 'udp' | 'tcp';
const SCENARIOS: { name: string; modes: Mode[] }[] = [
  { name: 'none', modes: [] },
  { name: 'udp flood', modes: ['udp'] },
  { name: 'tcp flood', modes: ['tcp'] },
  { name: 'udp + tcp flood', modes: ['udp', 'tcp'] },
];

async function main(): Promise<void> {
  const fn = await floodNet(PASSWORD);
  const rows: (string | number)[][] = [];
  try {
    const { net, h1, h2, attacker, pods } = fn;
    console.error(`flood bench: ${SECONDS}s iperf3 per scenario, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    const t: Target = { name: 'meshnet sleeve, encrypted', note: 'pod to pod', clientNs: pods[0].ns, serverNs: pods[1].ns, ip: pods[1].ip, pids: () => [daemonPid(h1)] };
    const stopServer = await iperfServer(net, t);
    try {
      let base = NaN;
      for (const sc of SCENARIOS) {
        const since = [await connectionSince(h1, 'h2'), await connectionSince(h2, 'h1')];
        const before = await floodCounters(h1);
        // The flood starts a second ahead of iperf3 and ends a second after it.
        const floods = sc.modes.map((m) => flood(attacker, h1, m, SECONDS + 2));
        await new Promise((r) => setTimeout(r, 1000));
        const r = await iperf(t, 1, SECONDS);
        const sent: FloodResult[] = await Promise.all(floods);
        const after = await floodCounters(h1);
        const kept = [await connectionSince(h1, 'h2'), await connectionSince(h2, 'h1')];
        const mbps = r.gbps * 1000;
        if (sc.name === 'none') base = mbps;
        const rate = (m: Mode): string => fmt(sent.find((s) => s.mode === m)?.rate ?? NaN, 0);
        const refused = Object.entries(after.handshakeFailures)
          .map(([k, v]) => [k, v - (before.handshakeFailures[k] ?? 0)] as const)
          .filter(([, v]) => v > 0)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ');
        rows.push([
          sc.name,
          fmt(mbps, 0),
          fmt((100 * mbps) / base, 0),
          since[0] && since.every((s, i) => s === kept[i]) ? 'yes' : 'no',
          `${rate('udp')} / ${rate('tcp')}`,
          fmt((100 * r.cpu) / SECONDS, 0),
          `${after.sleeveDrops - before.sleeveDrops} / ${totalFailures(after) - totalFailures(before)}${refused ? ` (${refused})` : ''}`,
        ]);
        console.error(`  ${sc.name}: ${fmt(mbps, 0)} Mbit/s`);
      }
    } finally {
      stopServer();
    }
  } finally {
    await fn.net.destroy();
  }
  console.log(`\nflood benchmark: iperf3 TCP ×1 pod h1 -> pod h2 for ${SECONDS} s per scenario, encrypted sleeve, flood from non-member h3 at h1 (one run each; shared machine, noisy)\n`);
  console.log(table(['scenario', 'legit Mbit/s', '% of none', 'connection kept', 'attacker datagrams/s / connections/s', 'h1 daemon CPU %', 'h1 sleeve drops / handshakes refused (by reason)'], rows));
}

await main();
