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

import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, TestNet, waitFor, type TestHost } from '../test/harness/netns.js';
import { addPods, median, pingSamples, quantile, startForwarders, type ForwarderOptions, type Pod } from './sleeve-io-topology.js';

const MTU = 1420;
const args = process.argv.slice(2);
const argOf = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(argOf('--time') ?? 5);
const ONLY = (argOf('--only') ?? 'native,node,nebula,wireguard,raw').split(',');
const TICKS = 100; // USER_HZ on Linux
const RTT_ROUNDS = 4;
const RTT_PINGS = 50;

interface Target {
  name: string;
  note: string;
  clientNs: string;
  serverNs: string;
  ip: string;
  pids: () => number[];
}

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

function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
    } catch {
      /* gone */
    }
  }
  return ticks / TICKS;
}

async function iperf(t: Target, streams: number): Promise<{ gbps: number; bytes: number; cpu: number }> {
  const before = cpuSeconds(t.pids());
  const r = await runIn(t.clientNs, 'iperf3', ['-c', t.ip, '-t', String(SECONDS), '-P', String(streams), '-J'], { timeoutMs: (SECONDS + 30) * 1000 });
  const cpu = cpuSeconds(t.pids()) - before;
  try {
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    return { gbps: j.end.sum_received.bits_per_second / 1e9, bytes: j.end.sum_received.bytes, cpu };
  } catch {
    console.error(`iperf3 to ${t.ip} failed: ${r.stderr || r.stdout.slice(0, 300)}`);
    return { gbps: NaN, bytes: 0, cpu };
  }
}

async function throughput(net: TestNet, t: Target): Promise<Row> {
  const server = spawn('ip', ['netns', 'exec', t.serverNs, 'iperf3', '-s'], { stdio: 'ignore' });
  net.track(server);
  try {
    await waitFor(async () => (await runIn(t.serverNs, 'ss', ['-ltn', 'sport = :5201'])).stdout.includes('5201'), 5000, 'iperf3 server');
    const one = await iperf(t, 1);
    const four = await iperf(t, 4);
    const gb = (one.bytes + four.bytes) / 1e9;
    const cpuPerGb = t.pids().length && gb > 0 ? (one.cpu + four.cpu) / gb : NaN;
    const row: Row = { name: t.name, gbps1: one.gbps, gbps4: four.gbps, cpuPerGb, rtt: [], nebulaRtt: [], podRtt: [], note: t.note };
    console.error(`  ${t.name}: ${fmt(one.gbps)} / ${fmt(four.gbps)} Gb/s, ${fmt(cpuPerGb)} CPU s/GB`);
    return row;
  } finally {
    server.kill('SIGKILL');
  }
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

async function startNebula(net: TestNet, dir: string): Promise<{ target: Target; stop: () => void }> {
  const hosts = net.hosts.slice(0, 2);
  const cert = async (a: string[]): Promise<void> => {
    const r = await runIn(hosts[0]!.ns, 'nebula-cert', a);
    if (r.code !== 0) throw new Error(`nebula-cert: ${r.stderr}`);
  };
  await cert(['ca', '-name', 'meshnet-bench', '-out-crt', join(dir, 'ca.crt'), '-out-key', join(dir, 'ca.key')]);
  const pids: number[] = [];
  for (const [i, h] of hosts.entries()) {
    const other = hosts[1 - i]!;
    await cert(['sign', '-name', h.id, '-ip', `198.19.1.${i + 1}/24`, '-ca-crt', join(dir, 'ca.crt'), '-ca-key', join(dir, 'ca.key'), '-out-crt', join(dir, `${h.id}.crt`), '-out-key', join(dir, `${h.id}.key`)]);
    const config = [
      'pki:',
      `  ca: ${join(dir, 'ca.crt')}`,
      `  cert: ${join(dir, `${h.id}.crt`)}`,
      `  key: ${join(dir, `${h.id}.key`)}`,
      'static_host_map:',
      `  "198.19.1.${2 - i}": ["${other.address}:4242"]`,
      'lighthouse:',
      '  am_lighthouse: false',
      'listen:',
      `  host: ${h.address}`,
      '  port: 4242',
      'punchy:',
      '  punch: false',
      'tun:',
      '  dev: nebula1',
      `  mtu: ${MTU}`,
      'logging:',
      '  level: error',
      'firewall:',
      '  outbound:',
      '    - port: any',
      '      proto: any',
      '      host: any',
      '  inbound:',
      '    - port: any',
      '      proto: any',
      '      host: any',
    ].join('\n');
    writeFileSync(join(dir, `${h.id}.yml`), config);
    const child = spawn('ip', ['netns', 'exec', h.ns, 'nebula', '-config', join(dir, `${h.id}.yml`)], { stdio: 'ignore' });
    net.track(child);
    pids.push(child.pid!);
  }
  await waitFor(async () => (await runIn(hosts[0]!.ns, 'ping', ['-c', '1', '-W', '1', '198.19.1.2'])).code === 0, 15_000, 'nebula ping');
  const target: Target = { name: 'nebula 1.6.1', note: 'host to host', clientNs: hosts[0]!.ns, serverNs: hosts[1]!.ns, ip: '198.19.1.2', pids: () => pids };
  return { target, stop: () => pids.forEach((p) => process.kill(p, 'SIGKILL')) };
}

function x25519(): { priv: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d!;
  const x = publicKey.export({ format: 'jwk' }).x!;
  return { priv: Buffer.from(d, 'base64url').toString('hex'), pub: Buffer.from(x, 'base64url').toString('hex') };
}

/** Configures a wireguard-go interface through its UAPI socket (the `wg` tool may be absent). */
async function uapiSet(sockPath: string, body: string): Promise<void> {
  const reply = await new Promise<string>((ok, fail) => {
    const c = createConnection(sockPath);
    let data = '';
    c.on('data', (d) => {
      data += d.toString();
      if (data.endsWith('\n\n')) c.end();
    });
    c.on('end', () => ok(data));
    c.on('error', fail);
    c.write(`set=1\n${body}\n`);
  });
  if (!reply.includes('errno=0')) throw new Error(`wireguard UAPI: ${reply.trim()}`);
}

async function startWireguard(net: TestNet): Promise<{ target: Target; stop: () => void }> {
  const hosts: TestHost[] = net.hosts.slice(0, 2);
  const keys = hosts.map(() => x25519());
  const names = hosts.map((h) => `${net.prefix}wg${h.id}`);
  const pids: number[] = [];
  for (const [i, h] of hosts.entries()) {
    const child = spawn('ip', ['netns', 'exec', h.ns, 'wireguard-go', '-f', names[i]!], { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'error' } });
    net.track(child);
    pids.push(child.pid!);
  }
  for (const [i, h] of hosts.entries()) {
    const sock = `/var/run/wireguard/${names[i]}.sock`;
    await waitFor(async () => (await runIn(h.ns, 'test', ['-S', sock])).code === 0, 10_000, `wireguard-go ${names[i]} socket`);
    const o = 1 - i;
    await uapiSet(sock, `private_key=${keys[i]!.priv}\nlisten_port=51820\nreplace_peers=true\npublic_key=${keys[o]!.pub}\nendpoint=${hosts[o]!.address}:51820\nallowed_ip=198.19.2.${o + 1}/32\n`);
    await net.ip(h.ns, ['addr', 'add', `198.19.2.${i + 1}/24`, 'dev', names[i]!]);
    await net.ip(h.ns, ['link', 'set', names[i]!, 'mtu', String(MTU), 'up']);
  }
  await waitFor(async () => (await runIn(hosts[0]!.ns, 'ping', ['-c', '1', '-W', '1', '198.19.2.2'])).code === 0, 15_000, 'wireguard ping');
  const target: Target = { name: 'wireguard-go 0.0.20220316', note: 'host to host', clientNs: hosts[0]!.ns, serverNs: hosts[1]!.ns, ip: '198.19.2.2', pids: () => pids };
  return { target, stop: () => pids.forEach((p) => process.kill(p, 'SIGKILL')) };
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

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
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
      ['nebula', () => startNebula(net, dir)],
      ['wireguard', () => startWireguard(net)],
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
