// Shared by the datapath benchmarks (bench/datapath.ts, bench/sleeve-io.ts,
// bench/fastdp.ts): iperf3 and CPU accounting for a "target", the reference
// tunnels (nebula, wireguard-go, a hand-configured kernel VXLAN + bridge)
// between the first two hosts of a TestNet.

import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { runIn, waitFor, type TestHost, type TestNet } from '../test/harness/netns.js';

/** USER_HZ on Linux: /proc/<pid>/stat counts CPU time in these. */
const TICKS = 100;

/** Something to send iperf3 traffic through: client and server namespaces, the server's address, and the processes doing the tunnelling. */
export interface Target {
  name: string;
  note: string;
  clientNs: string;
  serverNs: string;
  ip: string;
  /** Tunnel processes whose CPU time is charged to this target (empty: kernel only). */
  pids: () => number[];
}

/** user+system seconds of the processes (gone ones count zero). */
export function cpuSeconds(pids: number[]): number {
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

export async function iperf(t: Target, streams: number, seconds: number): Promise<{ gbps: number; bytes: number; cpu: number }> {
  const before = cpuSeconds(t.pids());
  const r = await runIn(t.clientNs, 'iperf3', ['-c', t.ip, '-t', String(seconds), '-P', String(streams), '-J'], { timeoutMs: (seconds + 30) * 1000 });
  const cpu = cpuSeconds(t.pids()) - before;
  try {
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
    return { gbps: j.end.sum_received.bits_per_second / 1e9, bytes: j.end.sum_received.bytes, cpu };
  } catch {
    console.error(`iperf3 to ${t.ip} failed: ${r.stderr || r.stdout.slice(0, 300)}`);
    return { gbps: NaN, bytes: 0, cpu };
  }
}

export interface Throughput {
  gbps1: number;
  gbps4: number;
  /** CPU seconds of the target's processes per GB received (NaN without processes). */
  cpuPerGb: number;
}

/** iperf3 with 1 and then 4 streams through `t`, and the CPU its processes spent per GB. */
export async function throughput(net: TestNet, t: Target, seconds: number): Promise<Throughput> {
  const stop = await iperfServer(net, t);
  try {
    const one = await iperf(t, 1, seconds);
    const four = await iperf(t, 4, seconds);
    const gb = (one.bytes + four.bytes) / 1e9;
    return { gbps1: one.gbps, gbps4: four.gbps, cpuPerGb: t.pids().length && gb > 0 ? (one.cpu + four.cpu) / gb : NaN };
  } finally {
    stop();
  }
}

/** An iperf3 server in the target's server namespace, listening; call the result to stop it. */
export async function iperfServer(net: TestNet, t: Target): Promise<() => void> {
  const server = spawn('ip', ['netns', 'exec', t.serverNs, 'iperf3', '-s'], { stdio: 'ignore' });
  net.track(server);
  try {
    await waitFor(async () => (await runIn(t.serverNs, 'ss', ['-ltn', 'sport = :5201'])).stdout.includes('5201'), 5000, 'iperf3 server');
  } catch (err) {
    server.kill('SIGKILL');
    throw err;
  }
  return () => server.kill('SIGKILL');
}

/** RTTs in ms of `count` pings from ns to ip, 5 ms apart (empty when none came back). */
export async function pingSamples(ns: string, ip: string, count: number): Promise<number[]> {
  const r = await runIn(ns, 'ping', ['-c', String(count), '-i', '0.005', '-W', '2', ip], { timeoutMs: 30_000 });
  const samples = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (!samples.length) console.error(`ping ${ip} from ${ns}: no replies (exit ${r.code}): ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')}`);
  return samples;
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
}

export function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

export interface Running {
  target: Target;
  stop: () => void;
}

/** nebula between the first two hosts (198.19.1.1 <-> .2, UDP 4242), certificates by nebula-cert. */
export async function startNebula(net: TestNet, dir: string, mtu: number): Promise<Running> {
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
      `  mtu: ${mtu}`,
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

/** wireguard-go between the first two hosts (198.19.2.1 <-> .2, UDP 51820). */
export async function startWireguard(net: TestNet, mtu: number): Promise<Running> {
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
    await net.ip(h.ns, ['link', 'set', names[i]!, 'mtu', String(mtu), 'up']);
  }
  await waitFor(async () => (await runIn(hosts[0]!.ns, 'ping', ['-c', '1', '-W', '1', '198.19.2.2'])).code === 0, 15_000, 'wireguard ping');
  const target: Target = { name: 'wireguard-go 0.0.20220316', note: 'host to host', clientNs: hosts[0]!.ns, serverNs: hosts[1]!.ns, ip: '198.19.2.2', pids: () => pids };
  return { target, stop: () => pids.forEach((p) => process.kill(p, 'SIGKILL')) };
}

export interface HandMadePod {
  ns: string;
  mac: string;
  ip: string;
}

/**
 * The textbook kernel VXLAN + bridge between the first two hosts, configured
 * by hand with iproute2 (bridge `hbr`, vxlan `hvx` VNI 100 on UDP 4789,
 * static FDB entries, a permanent neighbour in each pod): the reference the
 * fast datapath is held to. Pods 198.18.128.1 and .2 in `<host>-hp`.
 */
export async function handMadeVxlan(net: TestNet, mtu: number): Promise<[HandMadePod, HandMadePod]> {
  const [h1, h2] = [net.hosts[0]!, net.hosts[1]!];
  const pods: [HandMadePod, HandMadePod] = [
    { ns: h1.podNs('hp'), mac: '02:00:00:00:11:01', ip: '198.18.128.1' },
    { ns: h2.podNs('hp'), mac: '02:00:00:00:12:01', ip: '198.18.128.2' },
  ];
  for (const [i, h, other] of [
    [0, h1, h2],
    [1, h2, h1],
  ] as const) {
    const me = pods[i];
    const peer = pods[1 - i]!;
    await net.addNamespace(me.ns);
    const batch = [
      'link add hbr type bridge',
      `link add hvx mtu ${mtu} type vxlan id 100 dstport 4789 local ${h.address} nolearning`,
      'link set hvx master hbr up',
      'link set hbr up',
      `link add hveth mtu ${mtu} type veth peer name eth0 mtu ${mtu} address ${me.mac} netns ${me.ns}`,
      'link set hveth master hbr up',
    ];
    await h.run('ip', ['-batch', '-'], { input: batch.join('\n') + '\n' });
    await h.run('bridge', ['-batch', '-'], { input: [`fdb append 00:00:00:00:00:00 dev hvx dst ${other.address} self permanent`, `fdb add ${peer.mac} dev hvx dst ${other.address} self permanent`].join('\n') + '\n' });
    await h.run('ip', ['-n', me.ns, '-batch', '-'], { input: ['link set lo up', 'link set eth0 up', `addr add ${me.ip}/24 dev eth0`, `neigh add ${peer.ip} lladdr ${peer.mac} dev eth0 nud permanent`].join('\n') + '\n' });
  }
  return pods;
}
