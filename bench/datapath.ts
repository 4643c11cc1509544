// The datapath table: real meshnet daemons (fastdp, sleeve in the clear,
// sealed sleeve) between CNI pods, side by side in one run with the raw
// underlay, a hand-configured kernel VXLAN + bridge, nebula and wireguard-go
// between the same two test hosts. A script, not a test:
//
//   npm run build && node dist/bench/datapath.js [--time 4] [--rounds 3] [--mtu 1420] [--node]
//
// - Gb/s: iperf3 -t <time>, 1 and 4 streams, received rate; medians of
//   --rounds. Each meshnet variant runs back to back with its reference
//   (fastdp with the hand-made VXLAN, the sleeves with nebula), in
//   alternating order, and the ratio column is the median of those paired
//   ratios: this machine is shared and noisy, pairs see the same load.
// - RTT: pod to pod for meshnet and the hand-made VXLAN, host to host for
//   the tunnels that have no pods (raw, nebula, wireguard-go) and for
//   meshnet too (each host's overlay address from `meshnet expose`, which
//   takes the same bridge/TAP path), pinged at the same time as the
//   reference so the ratio compares like with like ("together"), and
//   alternately alone (each tunnel wakes from idle for every packet, as
//   with sparse real traffic), after a warm-up flood ping (V8 optimises the
//   sleeve's forwarding functions). The RTT column is the "together" samples.
// - CPU s/GB: user+system time of the tunnel processes on both hosts (for
//   meshnet: the two daemons) per GB received; kernel work done in softirq
//   (all of fastdp and VXLAN) is charged to nobody here.
// --node adds the sealed sleeve on the pure-Node I/O backend.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { daemonPid, launch, meshnet, status } from '../test/harness/meshnet.js';
import { Pods, waitDatapaths, type Pod } from '../test/harness/pods.js';
import { arg, table } from './table.js';
import { fmt, handMadeVxlan, median, pingSamples, quantile, startNebula, startWireguard, throughput, type Running, type Target, type Throughput } from './tunnels.js';

const SECONDS = Number(arg('--time', '4'));
const ROUNDS = Number(arg('--rounds', '3'));
const MTU = Number(arg('--mtu', '1420'));
const WITH_NODE = process.argv.includes('--node');
const PASSWORD = 'bench secret 0123456789abcdef';
const RTT_ROUNDS = Number(arg('--rtt-rounds', '6'));
const RTT_PINGS = Number(arg('--rtt-pings', '50'));

interface Row {
  name: string;
  path: string;
  one: number[];
  four: number[];
  cpu: number[];
  rtt: number[];
  /** Paired ratios to the reference (throughput 1, 4 streams; RTT). */
  ratio?: { ref: string; one: number[]; four: number[]; rtt: number[]; rttAlone: number[] };
}

function row(name: string, path: string): Row {
  return { name, path, one: [], four: [], cpu: [], rtt: [] };
}

function add(r: Row, t: Throughput): void {
  r.one.push(t.gbps1);
  r.four.push(t.gbps4);
  if (Number.isFinite(t.cpuPerGb)) r.cpu.push(t.cpuPerGb);
}

interface Variant {
  name: string;
  args: string[];
  password?: string;
  env?: NodeJS.ProcessEnv;
  datapath: 'fastdp' | 'sleeve';
  /** The reference measured in pairs with it. */
  ref: 'hand' | 'nebula';
}

async function main(): Promise<void> {
  const net = await TestNet.create(2);
  const dir = mkdtempSync(join(tmpdir(), 'meshnet-bench-'));
  const stops: Running[] = [];
  const rows: Row[] = [];
  try {
    const [h1, h2] = net.hosts as [TestHost, TestHost];
    console.error(`datapath bench: ${SECONDS}s per iperf3 run, ${ROUNDS} rounds, MTU ${MTU}, hosts ${h1.address} ${h2.address}, load ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);

    // References that need nothing of meshnet.
    const raw: Target = { name: 'raw underlay', note: 'host to host', clientNs: h1.ns, serverNs: h2.ns, ip: h2.address, pids: () => [] };
    const hand = await handMadeVxlan(net, MTU);
    const handT: Target = { name: 'hand-made VXLAN + bridge', note: 'pod to pod', clientNs: hand[0].ns, serverNs: hand[1].ns, ip: hand[1].ip, pids: () => [] };
    const nebula = await startNebula(net, dir, MTU);
    stops.push(nebula);
    const wg = await startWireguard(net, MTU);
    stops.push(wg);
    const rawRow = row(raw.name, raw.note);
    const handRow = row(handT.name, handT.note);
    const nebRow = row(nebula.target.name, nebula.target.note);
    const wgRow = row(wg.target.name, wg.target.note);
    for (let r = 0; r < ROUNDS; r++) {
      add(rawRow, await throughput(net, raw, SECONDS));
      add(wgRow, await throughput(net, wg.target, SECONDS));
    }
    rawRow.rtt = await pingSamples(raw.clientNs, raw.ip, RTT_ROUNDS * RTT_PINGS);
    wgRow.rtt = await pingSamples(wg.target.clientNs, wg.target.ip, RTT_ROUNDS * RTT_PINGS);
    console.error(`  references: raw ${fmt(median(rawRow.one))} Gb/s, wireguard-go ${fmt(median(wgRow.one))} Gb/s`);

    // meshnet: two daemons, pods through the CNI plugin (kept across restarts: kernel state stays).
    const variants: Variant[] = [
      { name: 'meshnet fastdp', args: [], datapath: 'fastdp', ref: 'hand' },
      { name: 'meshnet sleeve, plain', args: ['--no-fastdp'], datapath: 'sleeve', ref: 'nebula' },
      { name: 'meshnet sleeve, encrypted', args: [], password: PASSWORD, datapath: 'sleeve', ref: 'nebula' },
    ];
    if (WITH_NODE) variants.push({ name: 'meshnet sleeve, encrypted, pure-Node I/O', args: [], password: PASSWORD, env: { MESHNET_IO: 'node' }, datapath: 'sleeve', ref: 'nebula' });
    let pods: Pod[] = [];
    const meshRows: Row[] = [];
    for (const v of variants) {
      for (const h of [h1, h2]) {
        await launch(h, { peers: h === h1 ? [] : [h1.address], password: v.password, env: v.env, args: ['--ipalloc-init', 'consensus=2', '--mtu', String(MTU), ...v.args] });
      }
      await waitFor(async () => (await status(h1)).ipam.ready && (await status(h2)).ipam.ready, 30_000, 'IPAM ready');
      if (!pods.length) {
        const p = await Pods.create(net);
        pods = [await p.add(h1, 'bench1'), await p.add(h2, 'bench2')];
      }
      await waitDatapaths(h1, { h2: v.datapath }, 30_000);
      await waitDatapaths(h2, { h1: v.datapath }, 30_000);
      const exposed: string[] = [];
      for (const h of [h1, h2]) exposed.push((await meshnet(h, ['expose'])).stdout.trim().split('/')[0]!);
      const pids = (): number[] => [daemonPid(h1), daemonPid(h2)];
      const t: Target = { name: v.name, note: 'pod to pod', clientNs: pods[0]!.ns, serverNs: pods[1]!.ns, ip: pods[1]!.ip, pids };
      const ref = v.ref === 'hand' ? handT : nebula.target;
      const refRow = v.ref === 'hand' ? handRow : nebRow;
      const mine = row(v.name, 'pod to pod');
      mine.ratio = { ref: ref.name, one: [], four: [], rtt: [], rttAlone: [] };
      for (let r = 0; r < ROUNDS; r++) {
        const order = r % 2 === 0 ? [t, ref] : [ref, t];
        const got = new Map<Target, Throughput>();
        for (const x of order) got.set(x, await throughput(net, x, SECONDS));
        add(mine, got.get(t)!);
        add(refRow, got.get(ref)!);
        mine.ratio.one.push(got.get(t)!.gbps1 / got.get(ref)!.gbps1);
        mine.ratio.four.push(got.get(t)!.gbps4 / got.get(ref)!.gbps4);
        console.error(`  ${v.name}: ${fmt(got.get(t)!.gbps1)} / ${fmt(got.get(t)!.gbps4)} Gb/s, ${fmt(got.get(t)!.cpuPerGb)} CPU s/GB; ${ref.name}: ${fmt(got.get(ref)!.gbps1)} / ${fmt(got.get(ref)!.gbps4)}`);
      }
      // RTT sampled at the same time as the reference's: meshnet pod to pod against the
      // hand-made VXLAN's pods; meshnet host to host (exposed addresses) against nebula's.
      const mineRtt: Target = v.ref === 'hand' ? t : { ...t, clientNs: h1.ns, ip: exposed[1]! };
      // Warm: a fresh daemon forwards its first few thousand packets before V8 has optimised the
      // forwarding functions (cold, the sleeve's RTT is ~0.1 ms higher); nebula's Go is compiled ahead.
      for (const x of [mineRtt, ref]) await runIn(x.clientNs, 'ping', ['-c', '5000', '-i', '0', '-q', x.ip], { timeoutMs: 60_000 });
      for (let r = 0; r < RTT_ROUNDS; r++) {
        // Together (same load, CPUs awake), then each alone (one wakes from idle for every packet, like real traffic).
        const [a, b] = await Promise.all([pingSamples(mineRtt.clientNs, mineRtt.ip, RTT_PINGS), pingSamples(ref.clientNs, ref.ip, RTT_PINGS)]);
        mine.rtt.push(...a);
        refRow.rtt.push(...b);
        mine.ratio.rtt.push(median(a) / median(b));
        const alone = [await pingSamples(mineRtt.clientNs, mineRtt.ip, RTT_PINGS), await pingSamples(ref.clientNs, ref.ip, RTT_PINGS)];
        mine.ratio.rttAlone.push(median(alone[0]!) / median(alone[1]!));
      }
      if (v.ref !== 'hand') mine.path = `pod to pod; RTT host to host (${fmt(median(await pingSamples(t.clientNs, t.ip, RTT_PINGS)), 3)} ms pod to pod)`;
      meshRows.push(mine);
      for (const h of [h1, h2]) await meshnet(h, ['stop']);
      await new Promise((r) => setTimeout(r, 500));
    }
    rows.push(rawRow, handRow, nebRow, wgRow, ...meshRows);
  } finally {
    for (const s of stops) s.stop();
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const head = ['datapath', 'TCP×1 Gb/s', 'TCP×4 Gb/s', 'RTT ms (p10 / median)', 'CPU s/GB', 'vs reference, same run: ×1 / ×4 / RTT together / RTT alone', 'measured'];
  const body = rows.map((r) => [
    r.name,
    fmt(median(r.one)),
    fmt(median(r.four)),
    `${fmt(quantile(r.rtt, 0.1), 3)} / ${fmt(median(r.rtt), 3)}`,
    r.cpu.length ? fmt(median(r.cpu)) : '-',
    r.ratio ? `${fmt(median(r.ratio.one))}× / ${fmt(median(r.ratio.four))}× / ${fmt(median(r.ratio.rtt))}× / ${fmt(median(r.ratio.rttAlone))}× ${r.ratio.ref}` : '-',
    r.path,
  ]);
  console.log(`\ndatapath benchmark: ${ROUNDS} rounds × ${SECONDS} s per iperf3 run, medians, MTU ${MTU} on every tunnel\n`);
  console.log(table(head, body));
}

await main();
