// Throughput, latency and CPU of the sleeve's I/O layer against nebula and
// wireguard-go, between the same two test hosts, in one run:
//   npm run build && node dist/bench/sleeve-io.js [--time 5] [--only native,node,nebula,wireguard,raw]
// meshnet rows run bench/sleeve-io-forwarder.ts (TAP -> [seal] -> UDP ->
// [open] -> TAP) between pods on each host's bridge; nebula and
// wireguard-go run host to host (no bridge or veth hop, which favours
// them); "raw" is the underlay itself.
// - Gb/s: iperf3 -t <time>, 1 and 4 streams, received rate.
// - RTT: ping between the host namespaces for every tunnel (meshnet: to
//   the other host's address on its bridge, through the sleeve), so the
//   paths match; pod-to-pod RTT is shown apart. This machine is shared and
//   scheduling noise moves RTTs by more than the datapaths differ: nebula
//   and wireguard-go stay up the whole run and are pinged at the same time
//   as each meshnet variant (4 rounds of 50); the ratio column compares a
//   variant's median with nebula's samples taken alongside it.
// - CPU s/GB: user+system time of the tunnel processes of both hosts
//   (/proc/<pid>/stat) per GB received, during the iperf3 runs. Softirq
//   work charged to other processes and iperf3 itself are not counted.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { addPods, startForwarders, type ForwarderOptions, type Pod } from './sleeve-io-topology.js';
import { fmt, median, pingSamples, quantile, startNebula, startWireguard, throughput as measure, type Target } from './tunnels.js';

const MTU = 1420;
const args = process.argv.slice(2);
const argOf = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(argOf('--time') ?? 5);
const ONLY = (argOf('--only') ?? 'native,node,nebula,wireguard,raw').split(',');
const RTT_ROUNDS = 4;
const RTT_PINGS = 50;

interface Row {
  name: string;
  gbps1: number;
  gbps4: number;
  cpuPerGb: number;
  rtt: number[];
  /** nebula's samples from the same interleaved rounds, for a like-for-like RTT ratio. */
  nebulaRtt: number[];
  /** meshnet only: pod-to-pod RTT samples (through the pods' veths as well). */
  podRtt: number[];
  note: string;
}

async function throughput(net: TestNet, t: Target): Promise<Row> {
  const m = await measure(net, t, SECONDS);
  console.error(`  ${t.name}: ${fmt(m.gbps1)} / ${fmt(m.gbps4)} Gb/s, ${fmt(m.cpuPerGb)} CPU s/GB`);
  return { name: t.name, ...m, rtt: [], nebulaRtt: [], podRtt: [], note: t.note };
}

/**
 * Pings all targets at the same time, RTT_ROUNDS times, adding the samples
 * to their rows: concurrent samples see the same load on the shared
 * machine, so the ratio to nebula's compares like with like.
 */
async function interleavedRtt(pairs: [Target, Row][]): Promise<void> {
  const nebula = pairs.find(([t]) => t.name.startsWith('nebula'));
  for (let round = 0; round < RTT_ROUNDS; round++) {
    const results = await Promise.all(pairs.map(([t]) => pingSamples(t.clientNs, t.ip, RTT_PINGS)));
    pairs.forEach(([t, row], i) => {
      row.rtt.push(...results[i]!);
      if (t === nebula?.[0]) for (const [, r] of pairs) if (r !== row) r.nebulaRtt.push(...results[i]!);
    });
  }
}

function variants(): [string, ForwarderOptions][] {
  const out: [string, ForwarderOptions][] = [];
  if (ONLY.includes('native')) {
    out.push(
      ['meshnet native+TSO plain', { backend: 'native', offload: true, encrypted: false, mtu: MTU }],
      ['meshnet native+TSO secretbox(JS)', { backend: 'native', offload: true, encrypted: true, mtu: MTU }],
      ['meshnet native+TSO chacha20(C)', { backend: 'native', offload: true, encrypted: true, cipher: 'chacha20', mtu: MTU }],
      ['meshnet native secretbox, no TSO', { backend: 'native', offload: false, encrypted: true, mtu: MTU }],
    );
  }
  if (ONLY.includes('node')) {
    out.push(
      ['meshnet node plain', { backend: 'node', offload: false, encrypted: false, mtu: MTU }],
      ['meshnet node secretbox(JS)', { backend: 'node', offload: false, encrypted: true, mtu: MTU }],
    );
  }
  return out;
}

function printTable(rows: Row[]): void {
  const w = Math.max(...rows.map((r) => r.name.length), 8);
  console.log(`| ${'datapath'.padEnd(w)} | TCP×1 Gb/s | TCP×4 Gb/s | host RTT ms p10 / median | RTT / nebula's alongside | pod RTT ms median | CPU s/GB | iperf3 path |`);
  console.log(`|${'-'.repeat(w + 2)}|-----------:|-----------:|-------------------------:|-------------------------:|------------------:|---------:|------|`);
  for (const r of rows) {
    const ratio = r.nebulaRtt.length ? median(r.rtt) / median(r.nebulaRtt) : NaN;
    console.log(`| ${r.name.padEnd(w)} | ${fmt(r.gbps1).padStart(10)} | ${fmt(r.gbps4).padStart(10)} | ${`${fmt(quantile(r.rtt, 0.1), 3)} / ${fmt(median(r.rtt), 3)}`.padStart(24)} | ${fmt(ratio).padStart(24)} | ${fmt(median(r.podRtt), 3).padStart(17)} | ${fmt(r.cpuPerGb).padStart(8)} | ${r.note} |`);
  }
}

async function main(): Promise<void> {
  const net = await TestNet.create(2);
  const dir = mkdtempSync(join(tmpdir(), 'meshnet-bench-'));
  const rows: Row[] = [];
  const stops: (() => void)[] = [];
  try {
    const [h1, h2] = net.hosts as [TestHost, TestHost];
    console.error(`sleeve-io bench: ${SECONDS}s per iperf3 run, MTU ${MTU}, hosts ${h1.address} ${h2.address}`);
    const refs: [Target, Row][] = [];
    if (ONLY.includes('raw')) {
      const t: Target = { name: 'raw underlay (reference)', note: 'veth+bridge, no tunnel', clientNs: h1.ns, serverNs: h2.ns, ip: h2.address, pids: () => [] };
      const row = await throughput(net, t);
      row.rtt = await pingSamples(t.clientNs, t.ip, RTT_ROUNDS * RTT_PINGS);
      rows.push(row);
    }
    for (const [want, start] of [
      ['nebula', () => startNebula(net, dir, MTU)],
      ['wireguard', () => startWireguard(net, MTU)],
    ] as const) {
      if (!ONLY.includes(want)) continue;
      const { target, stop } = await start();
      stops.push(stop);
      const row = await throughput(net, target);
      rows.push(row);
      refs.push([target, row]);
    }
    const needPods = variants();
    const pods: Pod[] = needPods.length ? await addPods(net, MTU) : [];
    for (const [name, opts] of needPods) {
      const fwds = await startForwarders(net, pods, opts);
      try {
        await waitFor(async () => (await runIn(pods[0]!.ns, 'ping', ['-c', '1', '-W', '1', pods[1]!.ip])).code === 0, 10_000, `${name}: pod ping`);
        const t: Target = { name, note: 'pod to pod via bridge+TAP', clientNs: pods[0]!.ns, serverNs: pods[1]!.ns, ip: pods[1]!.ip, pids: () => fwds.map((f) => f.pid) };
        const row = await throughput(net, t);
        rows.push(row);
        // Latency like for like with nebula's host-to-host path: host to host
        // over the sleeve (host stack -> bridge -> TAP); pods add a veth each way.
        const hostToHost: Target = { ...t, clientNs: pods[0]!.host.ns, ip: pods[1]!.hostIp };
        await interleavedRtt([[hostToHost, row], ...refs]);
        row.podRtt = await pingSamples(t.clientNs, t.ip, RTT_PINGS * 2);
      } finally {
        for (const f of fwds) {
          const s = await f.stop();
          if (process.env.BENCH_VERBOSE) console.error(`    ${JSON.stringify(s)}`);
        }
      }
    }
    if (!needPods.length) await interleavedRtt(refs);
  } finally {
    for (const stop of stops) stop();
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  printTable(rows);
}

await main();
