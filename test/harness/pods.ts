// Pods for the datapath e2e tests and the demo: network namespaces wired by the real CNI
// plugin (the installed C shim) against each host's real daemon, plus the
// small tools the tests use (TCP transfers between pods, underlay captures,
// status polling).

import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { installCni } from '../../router/cni/install.js';
import { ensureBuilt } from './cni-daemon.js';
import { runIn, waitFor, type TestHost, type TestNet } from './netns.js';
import { status } from './meshnet.js';

export interface Pod {
  host: TestHost;
  id: string;
  ns: string;
  ip: string;
  mac: string;
}

export class Pods {
  private constructor(
    private readonly net: TestNet,
    private readonly plugin: string,
  ) {}

  static async create(net: TestNet): Promise<Pods> {
    ensureBuilt();
    const r = await installCni({ binDir: join(net.dir, 'cni-bin'), confDir: join(net.dir, 'cni-conf'), runDir: '/nonexistent', kind: 'auto' });
    return new Pods(net, r.plugin);
  }

  private conf(host: TestHost): string {
    return JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', runDir: host.runDir, bridge: 'meshnet', mtu: 0, hairpinMode: true });
  }

  private async cni(host: TestHost, command: string, id: string, ns: string, args?: string): Promise<Record<string, unknown>> {
    const env: NodeJS.ProcessEnv = { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/run/netns/${ns}`, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
    if (args) env.CNI_ARGS = args;
    const r = await host.exec(this.plugin, [], { env, input: this.conf(host), timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`CNI ${command} ${id} on ${host.id} failed (${r.code}): ${r.stdout.trim()} ${r.stderr.trim()}`);
    return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, unknown>) : {};
  }

  /** A pod on `host` (an address from IPAM, or `ip` when given). */
  async add(host: TestHost, name: string, ip?: string): Promise<Pod> {
    const ns = `${host.ns}-${name}`;
    await this.net.addNamespace(ns);
    const res = await this.cni(host, 'ADD', name, ns, ip ? `IP=${ip}` : undefined);
    const addr = ((res.ips as { address: string }[])[0]!.address ?? '').split('/')[0]!;
    const iface = (res.interfaces as { name: string; mac: string; sandbox?: string }[]).find((i) => i.sandbox)!;
    return { host, id: name, ns, ip: addr, mac: iface.mac };
  }

  async del(pod: Pod): Promise<void> {
    await this.cni(pod.host, 'DEL', pod.id, pod.ns);
  }
}

/** `names.length` pods on every host of `net` (named host id + name), TCP sinks started in each. */
export async function podsOnEveryHost(net: TestNet, names: string[]): Promise<{ pods: Pods; all: Pod[]; stopSinks: () => void }> {
  const pods = await Pods.create(net);
  const all: Pod[] = [];
  for (const h of net.hosts) for (const n of names) all.push(await pods.add(h, `${h.id}${n}`));
  return { pods, all, stopSinks: await startSinks(net, all) };
}

/** Node script run inside a pod: a TCP sink on port 7000 that answers each connection with the byte count it read. */
const SINK = `require('net').createServer((c)=>{let n=0;c.on('data',(d)=>n+=d.length);c.on('end',()=>c.end(String(n)));c.on('error',()=>{})}).listen(7000,()=>console.log('listening'))`;

/** Start TCP sinks in the pods; returns a stop function. */
export async function startSinks(net: TestNet, pods: Pod[]): Promise<() => void> {
  const children: ChildProcess[] = [];
  for (const p of pods) {
    const c = spawn('ip', ['netns', 'exec', p.ns, process.execPath, '-e', SINK], { stdio: ['ignore', 'pipe', 'ignore'] });
    net.track(c);
    children.push(c);
    await new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`sink in ${p.ns} did not start`)), 10_000);
      c.stdout!.once('data', () => {
        clearTimeout(t);
        ok();
      });
    });
  }
  return () => children.forEach((c) => c.kill('SIGKILL'));
}

/**
 * From `from`, send `bytes` to each target's sink and read back the count;
 * returns the targets that got everything. One Node process per source pod.
 */
export async function tcpSendAll(from: Pod, targets: string[], bytes: number, marker = 'x', timeoutMs = 20_000): Promise<string[]> {
  const script = `
    const net = require('net'); const targets = ${JSON.stringify(targets)}; const payload = Buffer.alloc(${bytes}, ${JSON.stringify(marker)});
    const one = (ip) => new Promise((ok) => { const s = net.connect(7000, ip); let r = ''; const t = setTimeout(() => { s.destroy(); ok(false); }, ${timeoutMs});
      s.on('data', (d) => r += d); s.on('end', () => { clearTimeout(t); ok(r === String(payload.length)); }); s.on('error', () => { clearTimeout(t); ok(false); }); s.end(payload); });
    (async () => { const out = []; for (const ip of targets) if (await one(ip)) out.push(ip); console.log(JSON.stringify(out)); })();`;
  const r = await runIn(from.ns, process.execPath, ['-e', script], { timeoutMs: timeoutMs * targets.length + 10_000 });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '[]') as string[];
  } catch {
    throw new Error(`tcp from ${from.ip}: ${r.stderr || r.stdout}`);
  }
}

/** Which of `targets` answer one ping from `from` (pings in parallel). */
export async function pingAll(from: Pod, targets: string[], wait = '2'): Promise<string[]> {
  const ok = await Promise.all(targets.map(async (ip) => (await runIn(from.ns, 'ping', ['-c', '1', '-W', wait, ip])).code === 0));
  return targets.filter((_, i) => ok[i]);
}

/**
 * tcpdump on the underlay switch (`args` after the interface) while
 * `during` runs; what it printed on stdout.
 */
export async function tcpdumpDuring(net: TestNet, args: string[], during: () => Promise<void>): Promise<string> {
  const td = spawn('ip', ['netns', 'exec', net.switchNs, 'tcpdump', '-i', 'br0', '--immediate-mode', '-U', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  net.track(td);
  let out = '';
  let err = '';
  td.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  td.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => err.includes('listening on'), 5000, 'tcpdump to start');
  try {
    await during();
    await new Promise((r) => setTimeout(r, 300));
  } finally {
    td.kill('SIGINT');
    await new Promise((r) => td.once('exit', r));
  }
  return out;
}

/** Runs tcpdump on the underlay switch while `during` runs; returns the packets matching `filter` (one line each). */
export async function capture(net: TestNet, filter: string, during: () => Promise<void>, opts: { hex?: boolean } = {}): Promise<string[]> {
  const out = await tcpdumpDuring(net, ['-n', '-l', ...(opts.hex ? ['-X'] : ['-q']), filter], during);
  if (opts.hex) return out.split(/\n(?=\d\d:\d\d)/).filter((x) => x.trim() !== '');
  return out.split('\n').filter(Boolean);
}

/** The datapath of each established connection of `host`, by peer nickname. */
export async function datapaths(host: TestHost): Promise<Record<string, string | null>> {
  const s = await status(host);
  return Object.fromEntries(s.connections.filter((c) => c.state === 'established').map((c) => [c.nickname ?? '?', c.datapath]));
}

/** Wait until `host` reports `want` (nickname -> datapath) for the given peers. */
export async function waitDatapaths(host: TestHost, want: Record<string, string>, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    async () => {
      const got = await datapaths(host);
      return Object.entries(want).every(([n, d]) => got[n] === d);
    },
    timeoutMs,
    `${host.id}: datapaths ${JSON.stringify(want)} (have ${JSON.stringify(await datapaths(host).catch(() => ({})))})`,
    200,
  );
}

/** `nft` rules in a host, removed by the returned function. */
export async function nftDrop(host: TestHost, rules: string[]): Promise<() => Promise<void>> {
  const table = 'mndatapath';
  await host.run('nft', [`add table inet ${table}; add chain inet ${table} in { type filter hook input priority 0; }; add chain inet ${table} out { type filter hook output priority 0; }`]);
  for (const r of rules) await host.run('nft', [`add rule inet ${table} ${r}`]);
  return async () => {
    await host.exec('nft', ['delete', 'table', 'inet', table]);
  };
}

/** Pings `ip` from `from` until one reply (at most `tries` probes, one a second); the reply's round-trip time. */
export async function runPing(from: Pod, ip: string, tries: number): Promise<{ ok: boolean; rtt: string }> {
  const r = await runIn(from.ns, 'ping', ['-c', '1', '-w', String(tries), '-i', '1', ip]);
  const rtt = /time=([\d.]+ ms)/.exec(r.stdout)?.[1] ?? '';
  return { ok: r.code === 0, rtt };
}
