// Throughput, latency and CPU of the sleeve's I/O layer against nebula and
// wireguard-go, between the same two test hosts, in one run:
//   npm run build && node dist/bench/sleeve-io.js [--time 5] [--only native,node,nebula,wireguard,raw]
// meshnet rows run bench/sleeve-io-forwarder.ts (TAP -> [secretbox] -> UDP
// -> [open] -> TAP) between pods on each host's bridge; nebula and
// wireguard-go run host to host (no bridge hop, which favours them); "raw"
// is the underlay itself. CPU s/GB counts the tunnel processes of both
// hosts (user+system time from /proc/<pid>/stat), not softirq time spent
// outside them, nor iperf3.

import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIn, TestNet, waitFor } from '../test/harness/netns.js';
import { addPods, pingRtt, startForwarders, type ForwarderOptions } from './sleeve-io-topology.js';

const MTU = 1420;
const args = process.argv.slice(2);
const argOf = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(argOf('--time') ?? 5);
const ONLY = (argOf('--only') ?? 'native,node,nebula,wireguard,raw').split(',');
const TICKS = 100; // USER_HZ on Linux

interface Row {
  name: string;
  gbps1: number;
  gbps4: number;
  rttMs: number;
  cpuPerGb: number;
  note: string;
}

interface Target {
  clientNs: string;
  serverNs: string;
  ip: string;
  pids: () => number[];
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

async function measure(net: TestNet, name: string, t: Target, note: string): Promise<Row> {
  const server = spawn('ip', ['netns', 'exec', t.serverNs, 'iperf3', '-s'], { stdio: 'ignore' });
  net.track(server);
  try {
    await waitFor(async () => (await runIn(t.serverNs, 'ss', ['-ltn', 'sport = :5201'])).stdout.includes('5201'), 5000, 'iperf3 server');
    const rttMs = await pingRtt(t.clientNs, t.ip);
    const one = await iperf(t, 1);
    const four = await iperf(t, 4);
    const gb = (one.bytes + four.bytes) / 1e9;
    const cpuPerGb = t.pids().length && gb > 0 ? (one.cpu + four.cpu) / gb : NaN;
    const row = { name, gbps1: one.gbps, gbps4: four.gbps, rttMs, cpuPerGb, note };
    console.error(`  ${fmtRow(row)}`);
    return row;
  } finally {
    server.kill('SIGKILL');
  }
}

async function meshnetRows(net: TestNet, backend: 'native' | 'node', rows: Row[]): Promise<void> {
  const pods = await addPodsOnce(net);
  const variants: [string, ForwarderOptions][] =
    backend === 'native'
      ? [
          ['meshnet native+TSO plain', { backend, offload: true, encrypted: false, mtu: MTU }],
          ['meshnet native+TSO encrypted', { backend, offload: true, encrypted: true, mtu: MTU }],
          ['meshnet native encrypted', { backend, offload: false, encrypted: true, mtu: MTU }],
        ]
      : [
          ['meshnet node plain', { backend, offload: false, encrypted: false, mtu: MTU }],
          ['meshnet node encrypted', { backend, offload: false, encrypted: true, mtu: MTU }],
        ];
  for (const [name, opts] of variants) {
    const fwds = await startForwarders(net, pods, opts);
    try {
      await waitFor(async () => (await runIn(pods[0]!.ns, 'ping', ['-c', '1', '-W', '1', pods[1]!.ip])).code === 0, 10_000, `${name}: pod ping`);
      rows.push(await measure(net, name, { clientNs: pods[0]!.ns, serverNs: pods[1]!.ns, ip: pods[1]!.ip, pids: () => fwds.map((f) => f.pid) }, 'pod to pod via bridge+TAP'));
    } finally {
      for (const f of fwds) {
        const s = await f.stop();
        if (process.env.BENCH_VERBOSE) console.error(`    ${JSON.stringify(s)}`);
      }
    }
  }
}

let podsCache: Awaited<ReturnType<typeof addPods>> | undefined;
async function addPodsOnce(net: TestNet): Promise<Awaited<ReturnType<typeof addPods>>> {
  podsCache ??= await addPods(net, MTU);
  return podsCache;
}

async function nebulaRow(net: TestNet, dir: string): Promise<Row> {
  const [h1, h2] = net.hosts as [(typeof net.hosts)[0], (typeof net.hosts)[0]];
  const run = async (cmd: string, a: string[]): Promise<void> => {
    const r = await runIn(h1.ns, cmd, a);
    if (r.code !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  };
  await run('nebula-cert', ['ca', '-name', 'meshnet-bench', '-out-crt', join(dir, 'ca.crt'), '-out-key', join(dir, 'ca.key')]);
  const pids: number[] = [];
  const hosts = [h1, h2];
  for (const [i, h] of hosts.entries()) {
    const n = i + 1;
    const other = hosts[1 - i]!;
    await run('nebula-cert', ['sign', '-name', h.id, '-ip', `198.19.1.${n}/24`, '-ca-crt', join(dir, 'ca.crt'), '-ca-key', join(dir, 'ca.key'), '-out-crt', join(dir, `${h.id}.crt`), '-out-key', join(dir, `${h.id}.key`)]);
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
  try {
    await waitFor(async () => (await runIn(h1.ns, 'ping', ['-c', '1', '-W', '1', '198.19.1.2'])).code === 0, 15_000, 'nebula ping');
    return await measure(net, 'nebula 1.6.1', { clientNs: h1.ns, serverNs: h2.ns, ip: '198.19.1.2', pids: () => pids }, 'host to host');
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGKILL');
  }
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

async function wireguardRow(net: TestNet): Promise<Row> {
  const hosts = net.hosts.slice(0, 2);
  const keys = hosts.map(() => x25519());
  const names = hosts.map((h) => `${net.prefix}wg${h.id}`);
  const pids: number[] = [];
  for (const [i, h] of hosts.entries()) {
    const child = spawn('ip', ['netns', 'exec', h.ns, 'wireguard-go', '-f', names[i]!], { stdio: 'ignore', env: { ...process.env, LOG_LEVEL: 'error' } });
    net.track(child);
    pids.push(child.pid!);
  }
  try {
    for (const [i, h] of hosts.entries()) {
      const sock = `/var/run/wireguard/${names[i]}.sock`;
      await waitFor(async () => (await runIn(h.ns, 'test', ['-S', sock])).code === 0, 10_000, `wireguard-go ${names[i]} socket`);
      const o = 1 - i;
      await uapiSet(sock, `private_key=${keys[i]!.priv}\nlisten_port=51820\nreplace_peers=true\npublic_key=${keys[o]!.pub}\nendpoint=${hosts[o]!.address}:51820\nallowed_ip=198.19.2.${o + 1}/32\n`);
      await net.ip(h.ns, ['addr', 'add', `198.19.2.${i + 1}/24`, 'dev', names[i]!]);
      await net.ip(h.ns, ['link', 'set', names[i]!, 'mtu', String(MTU), 'up']);
    }
    await waitFor(async () => (await runIn(hosts[0]!.ns, 'ping', ['-c', '1', '-W', '1', '198.19.2.2'])).code === 0, 15_000, 'wireguard ping');
    return await measure(net, 'wireguard-go 0.0.20220316', { clientNs: hosts[0]!.ns, serverNs: hosts[1]!.ns, ip: '198.19.2.2', pids: () => pids }, 'host to host');
  } finally {
    for (const pid of pids) process.kill(pid, 'SIGKILL');
  }
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function fmtRow(r: Row): string {
  return `| ${r.name.padEnd(30)} | ${fmt(r.gbps1).padStart(6)} | ${fmt(r.gbps4).padStart(6)} | ${fmt(r.rttMs, 3).padStart(7)} | ${fmt(r.cpuPerGb).padStart(8)} | ${r.note} |`;
}

async function main(): Promise<void> {
  const net = await TestNet.create(2);
  const dir = mkdtempSync(join(tmpdir(), 'meshnet-bench-'));
  const rows: Row[] = [];
  try {
    console.error(`sleeve-io bench: ${SECONDS}s per iperf3 run, MTU ${MTU}, hosts ${net.hosts.map((h) => h.address).join(' ')}`);
    if (ONLY.includes('raw')) rows.push(await measure(net, 'raw underlay (reference)', { clientNs: net.hosts[0]!.ns, serverNs: net.hosts[1]!.ns, ip: net.hosts[1]!.address, pids: () => [] }, 'veth+bridge, no tunnel'));
    if (ONLY.includes('nebula')) rows.push(await nebulaRow(net, dir));
    if (ONLY.includes('wireguard')) rows.push(await wireguardRow(net));
    if (ONLY.includes('native')) await meshnetRows(net, 'native', rows);
    if (ONLY.includes('node')) await meshnetRows(net, 'node', rows);
  } finally {
    await net.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`| ${'datapath'.padEnd(30)} | TCP×1 Gb/s | TCP×4 Gb/s | RTT ms | CPU s/GB | path |`);
  console.log(`|${'-'.repeat(32)}|-------:|-------:|--------:|---------:|------|`);
  for (const r of rows) console.log(fmtRow(r));
}

await main();
