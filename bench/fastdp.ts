// Fast datapath throughput and latency (a script, not a test): pod-to-pod
// iperf3 over meshnet's devices (ensured and programmed by datapath/fastdp),
// side by side in the same run with a hand-configured kernel VXLAN + bridge
// between the same host namespaces, and with the raw underlay (host to host).
// TCP with 1 and 4 streams, and RTT by ping. meshnet and hand-made run as
// back-to-back pairs in alternating order; the ratio is the median of the
// per-pair ratios (this machine is shared and noisy).
//
// Usage: npm run build && node dist/bench/fastdp.js [--time 3] [--rounds 8]

import { fileURLToPath } from 'node:url';
import { TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { computeDesired, Fastdp, fastdpConfig, type ModelInput } from '../datapath/fastdp/index.js';
import { Netlink } from '../datapath/netlink/index.js';
import { handMadeVxlan } from './tunnels.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1] ?? def) : def;
}

const VNI = 4244;
const MTU = 1450;

/** Inside a host namespace: ensure devices, wire pod `podNs`, program `input`. */
async function program(): Promise<void> {
  const spec = JSON.parse(process.argv[process.argv.indexOf('--program') + 1]!) as { localIp: string; podNs: string; pod: { mac: string; ip: string }; input: ModelInput };
  const nl = Netlink.open();
  const fdp = new Fastdp(nl, fastdpConfig({ localIp: spec.localIp, vni: VNI }));
  await fdp.ensureDevices();
  const path = `/var/run/netns/${spec.podNs}`;
  await nl.createVeth('mnbench0', { name: 'eth0', netns: { path }, mtu: MTU, mac: spec.pod.mac }, { mtu: MTU, master: 'meshnet', up: true });
  await nl.inNetns(path).configureInterface({ dev: 'eth0', addresses: [`${spec.pod.ip}/16`] });
  const r = await fdp.reconcile(computeDesired(spec.input).desired);
  if (r.failed.length) throw new Error(`reconcile failed: ${JSON.stringify(r.failed)}`);
  fdp.close();
}

async function run(h: TestHost, cmd: string, args: string[], ns?: string, timeoutMs = 60_000): Promise<string> {
  return ns ? h.run('ip', ['netns', 'exec', ns, cmd, ...args], { timeoutMs }) : h.run(cmd, args, { timeoutMs });
}

interface Path {
  name: string;
  client: { host: TestHost; ns?: string };
  server: { host: TestHost; ns?: string; ip: string };
}

async function iperf(p: Path, streams: number, seconds: number): Promise<number> {
  const out = await run(p.client.host, 'iperf3', ['-c', p.server.ip, '-t', String(seconds), '-P', String(streams), '-J'], p.client.ns, (seconds + 20) * 1000);
  return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
}

async function rtt(p: Path): Promise<number> {
  const out = await run(p.client.host, 'ping', ['-c', '50', '-i', '0.01', '-q', p.server.ip], p.client.ns);
  const m = /= [\d.]+\/([\d.]+)\//.exec(out);
  if (!m) throw new Error(`no rtt in ${out}`);
  return Number(m[1]);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const seconds = arg('--time', 3);
  const rounds = arg('--rounds', 8);
  const net = await TestNet.create(2);
  try {
    const [h1, h2] = [net.host(1), net.host(2)];
    const ns = (h: TestHost, n: string): string => h.podNs(n);
    for (const h of [h1, h2]) await net.addNamespace(ns(h, 'mp'));
    const pods = { 1: { mac: '02:00:00:00:01:01', ip: '198.19.1.1' }, 2: { mac: '02:00:00:00:02:01', ip: '198.19.2.1' } };

    // meshnet: devices and entries through datapath/fastdp, run inside each host namespace.
    const script = fileURLToPath(import.meta.url);
    for (const [i, h] of [
      [1, h1],
      [2, h2],
    ] as const) {
      const j = (3 - i) as 1 | 2;
      const other = j === 1 ? h1 : h2;
      const input: ModelInput = {
        vni: VNI,
        localPods: [pods[i]],
        peers: [{ name: `aa:00:00:00:00:0${j}`, vtep: other.address, vni: VNI, datapath: 'fastdp', pods: [pods[j]], updatedAt: 1 }],
      };
      await h.run(process.execPath, [...process.execArgv, script, '--program', JSON.stringify({ localIp: h.address, podNs: ns(h, 'mp'), pod: pods[i], input })]);
    }

    // Hand-made: the textbook kernel VXLAN + bridge with static entries, by iproute2.
    const hand = await handMadeVxlan(net, MTU);

    const paths: Path[] = [
      { name: 'meshnet fastdp (pod to pod)', client: { host: h1, ns: ns(h1, 'mp') }, server: { host: h2, ns: ns(h2, 'mp'), ip: pods[2].ip } },
      { name: 'hand-made VXLAN + bridge (pod to pod)', client: { host: h1, ns: hand[0].ns }, server: { host: h2, ns: hand[1].ns, ip: hand[1].ip } },
      { name: 'raw underlay (host to host)', client: { host: h1 }, server: { host: h2, ip: h2.address } },
    ];
    for (const p of paths) {
      const args = ['-s', '-B', p.server.ip];
      p.server.host.spawn(p.server.ns ? 'ip' : 'iperf3', p.server.ns ? ['netns', 'exec', p.server.ns, 'iperf3', ...args] : args);
      await waitFor(async () => (await run(p.server.host, 'ss', ['-ltn'], p.server.ns)).includes(`${p.server.ip}:5201`), 5000, `iperf3 on ${p.server.ip}`);
      await rtt(p); // warm up ARP / caches
    }

    // Paired measurements: meshnet and hand-made back to back, in alternating
    // order, so both see the same machine load; the ratio is taken per pair.
    type Series = { one: number[]; four: number[]; rtt: number[] };
    const results = new Map<string, Series>(paths.map((p) => [p.name, { one: [], four: [], rtt: [] }]));
    const ratios: Series = { one: [], four: [], rtt: [] };
    const [mesh, handMade, raw] = paths as [Path, Path, Path];
    for (let r = 0; r < rounds; r++) {
      const pair = r % 2 === 0 ? [mesh, handMade] : [handMade, mesh];
      for (const [key, measure] of [
        ['one', (p: Path) => iperf(p, 1, seconds)],
        ['four', (p: Path) => iperf(p, 4, seconds)],
        ['rtt', rtt],
      ] as const) {
        const got = new Map<Path, number>();
        for (const p of pair) got.set(p, await measure(p));
        for (const [p, v] of got) results.get(p.name)![key].push(v);
        ratios[key].push(got.get(mesh)! / got.get(handMade)!);
      }
      const res = results.get(raw.name)!;
      res.one.push(await iperf(raw, 1, seconds));
      res.four.push(await iperf(raw, 4, seconds));
      res.rtt.push(await rtt(raw));
    }

    const head = ['path', 'TCP 1 stream Gb/s', 'TCP 4 streams Gb/s', 'RTT ms'];
    const body = paths.map((p) => {
      const r = results.get(p.name)!;
      return [p.name, median(r.one).toFixed(2), median(r.four).toFixed(2), median(r.rtt).toFixed(3)];
    });
    body.push(['meshnet / hand-made (median of paired ratios)', `${median(ratios.one).toFixed(3)}×`, `${median(ratios.four).toFixed(3)}×`, `${median(ratios.rtt).toFixed(3)}×`]);
    const w = head.map((_, i) => Math.max(...[head, ...body].map((x) => x[i]!.length)));
    const line = (x: string[]): string => `| ${x.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
    console.log(`fastdp benchmark: ${rounds} rounds × ${seconds} s per iperf3 run, medians (MTU ${MTU} on both overlays)\n`);
    console.log([line(head), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...body.map(line)].join('\n'));
    console.log('\ntargets: meshnet / hand-made throughput >= 0.95×, RTT <= 1.1×');
    const fmt = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' ');
    console.log(`paired ratios per round: 1 stream [${fmt(ratios.one)}], 4 streams [${fmt(ratios.four)}], RTT [${fmt(ratios.rtt)}]`);
  } finally {
    await net.destroy();
  }
}

if (process.argv.includes('--program')) await program();
else await main();
