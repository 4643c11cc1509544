// Netlink vs iproute2 for what the fast datapath and the CNI side do (a
// script, not a test). Prints ms/op and ops/s for FDB adds, neighbour adds,
// veth creation, dumps, and wiring a pod's veth inside its namespace, each
// via the netlink wrapper (sequential and pipelined), one spawned
// `ip`/`bridge` per op, and one `ip -batch`/`bridge -batch` for all ops.
//
// Everything runs inside a test namespace (TestNet): the script re-executes
// itself there, since a netlink socket works in its creator's namespace.
//
// Usage: npm run build && node dist/bench/netlink.js [--n 1000] [--spawn-n 100] [--pods 40]

import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { TestNet } from '../test/harness/netns.js';
import { Netlink, IpBatchNetns, bridgeLine, ipLine } from '../datapath/netlink/index.js';
import { table } from './table.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1] ?? def) : def;
}
function sarg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

interface Row {
  op: string;
  method: string;
  n: number;
  ms: number;
}

function rowsTable(rows: Row[]): string {
  const head = ['operation', 'method', 'ops', 'total ms', 'ms/op', 'ops/s'];
  return table(
    head,
    rows.map((r) => [r.op, r.method, String(r.n), r.ms.toFixed(1), (r.ms / r.n).toFixed(3), Math.round((r.n * 1000) / r.ms).toString()]),
  );
}

function exec(cmd: string, args: string[], input = ''): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')}: ${err.trim()}`))));
    c.stdin.on('error', () => undefined);
    c.stdin.end(input);
  });
}

async function time(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function median(runs: number, fn: () => Promise<void>): Promise<number> {
  const t: number[] = [];
  for (let i = 0; i < runs; i++) t.push(await time(fn));
  return t.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

const mac = (prefix: number, i: number): string => `02:${prefix.toString(16).padStart(2, '0')}:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`;
const ip = (prefix: number, i: number): string => `198.19.${prefix * 16 + ((i >> 8) & 0x0f)}.${i & 0xff}`;

async function pipelined(n: number, depth: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: depth }, async () => {
      while (next < n) await op(next++);
    }),
  );
}

/** The measurements, inside the bench namespace. */
async function inside(): Promise<void> {
  const n = arg('--n', 1000);
  const spawnN = arg('--spawn-n', 100);
  const podNs = (sarg('--pods-ns') ?? '').split(',').filter(Boolean);
  const nl = Netlink.open();
  const here = new IpBatchNetns();
  const rows: Row[] = [];
  await nl.createBridge('bbr', { up: true });
  const vx = (await nl.createVxlan('bvx', { vni: 9, port: 6784, local: '198.18.0.11', learning: false, df: 'set' }, { master: 'bbr', up: true })).index;
  const br = (await nl.link('bbr')).index;
  const dst = '198.18.0.12';

  // FDB adds (vxlan remotes), a fresh MAC range per method.
  rows.push({ op: 'fdb add', method: 'netlink, device by name, sequential', n, ms: await time(async () => { for (let i = 0; i < n; i++) await nl.addFdb({ dev: 'bvx', mac: mac(1, i), target: 'self', dst }, 'replace'); }) });
  rows.push({ op: 'fdb add', method: 'netlink, by ifindex, sequential', n, ms: await time(async () => { for (let i = 0; i < n; i++) await nl.addFdb({ dev: vx, mac: mac(5, i), target: 'self', dst }, 'replace'); }) });
  rows.push({ op: 'fdb add', method: 'netlink, by ifindex, 32 in flight', n, ms: await time(() => pipelined(n, 32, (i) => nl.addFdb({ dev: vx, mac: mac(2, i), target: 'self', dst }, 'replace'))) });
  rows.push({ op: 'fdb add', method: 'spawn `bridge` per op', n: spawnN, ms: await time(async () => { for (let i = 0; i < spawnN; i++) await exec('bridge', bridgeLine.fdb('replace', { dev: 'bvx', mac: mac(3, i), target: 'self', dst }).split(' ')); }) });
  rows.push({ op: 'fdb add', method: '`bridge -batch` (one spawn)', n, ms: await time(() => here.bridge(Array.from({ length: n }, (_, i) => bridgeLine.fdb('replace', { dev: 'bvx', mac: mac(4, i), target: 'self', dst })))) });
  rows.push({ op: 'fdb dump (median of 5)', method: 'netlink', n: 1, ms: await median(5, async () => void (await nl.listFdb())) });
  rows.push({ op: 'fdb dump (median of 5)', method: 'spawn `bridge -j fdb show`', n: 1, ms: await median(5, () => exec('bridge', ['-j', 'fdb', 'show'])) });
  const entries = (await nl.listFdb('bvx')).length;

  // Permanent neighbours on the bridge.
  const neigh = (p: number, i: number, dev: string | number = 'bbr') => ({ dev, ip: ip(p, i), mac: mac(p, i), protocol: 109 });
  rows.push({ op: 'neigh add', method: 'netlink, device by name, sequential', n, ms: await time(async () => { for (let i = 0; i < n; i++) await nl.setNeighbour(neigh(1, i)); }) });
  rows.push({ op: 'neigh add', method: 'netlink, by ifindex, sequential', n, ms: await time(async () => { for (let i = 0; i < n; i++) await nl.setNeighbour(neigh(5, i, br)); }) });
  rows.push({ op: 'neigh add', method: 'netlink, by ifindex, 32 in flight', n, ms: await time(() => pipelined(n, 32, (i) => nl.setNeighbour(neigh(2, i, br)))) });
  rows.push({ op: 'neigh add', method: 'spawn `ip` per op', n: spawnN, ms: await time(async () => { for (let i = 0; i < spawnN; i++) await exec('ip', ipLine.neighSet(neigh(3, i)).split(' ')); }) });
  rows.push({ op: 'neigh add', method: '`ip -batch` (one spawn)', n, ms: await time(() => here.ip(Array.from({ length: n }, (_, i) => ipLine.neighSet(neigh(4, i))))) });

  // veth pairs (create only; deleted afterwards, untimed).
  const links = Math.min(spawnN, 100);
  rows.push({ op: 'link create (veth)', method: 'netlink', n: links, ms: await time(async () => { for (let i = 0; i < links; i++) await nl.createVeth(`va${i}`, { name: `vb${i}` }); }) });
  rows.push({ op: 'link create (veth)', method: 'spawn `ip` per op', n: links, ms: await time(async () => { for (let i = 0; i < links; i++) await exec('ip', ipLine.vethCreate(`vc${i}`, `vd${i}`).split(' ')); }) });
  rows.push({ op: 'link create (veth)', method: '`ip -batch` (one spawn)', n: links, ms: await time(() => here.ip(Array.from({ length: links }, (_, i) => ipLine.vethCreate(`ve${i}`, `vf${i}`)))) });
  await here.ip([...Array.from({ length: links }, (_, i) => `link del va${i}`), ...Array.from({ length: links }, (_, i) => `link del vc${i}`), ...Array.from({ length: links }, (_, i) => `link del ve${i}`)]);

  // A pod's veth wired into its namespace: create, MTU, master, up; inside: address, default route, up.
  if (podNs.length >= 3) {
    const per = Math.floor(podNs.length / 3);
    const groups = [podNs.slice(0, per), podNs.slice(per, 2 * per), podNs.slice(2 * per, 3 * per)];
    const cfg = (i: number) => ({ dev: 'eth0', addresses: [`198.19.200.${i + 1}/16`], routes: [{ dst: '0.0.0.0/0', gateway: '198.19.0.1' }] });
    rows.push({
      op: 'pod veth wiring',
      method: 'netlink (peer born in pod ns) + 1 nsenter `ip -batch`',
      n: per,
      ms: await time(async () => {
        for (const [i, ns] of groups[0]!.entries()) {
          await nl.createVeth(`pa${i}`, { name: 'eth0', netns: { path: `/var/run/netns/${ns}` }, mtu: 1450 }, { mtu: 1450, master: 'bbr', up: true });
          await nl.inNetns(`/var/run/netns/${ns}`).configureInterface(cfg(i));
        }
      }),
    });
    rows.push({
      op: 'pod veth wiring',
      method: '`ip -batch` in host + 1 nsenter `ip -batch`',
      n: per,
      ms: await time(async () => {
        for (const [i, ns] of groups[1]!.entries()) {
          await here.ip([`link add name pb${i} mtu 1450 type veth peer name eth0 mtu 1450 netns ${ns}`, `link set dev pb${i} master bbr up`]);
          await new IpBatchNetns(`/var/run/netns/${ns}`).configureInterface(cfg(i));
        }
      }),
    });
    rows.push({
      op: 'pod veth wiring',
      method: 'spawn `ip` per command (6 spawns)',
      n: per,
      ms: await time(async () => {
        for (const [i, ns] of groups[2]!.entries()) {
          await exec('ip', ['link', 'add', 'name', `pc${i}`, 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', ns]);
          await exec('ip', ['link', 'set', 'dev', `pc${i}`, 'master', 'bbr', 'up']);
          await exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
          await exec('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
          await exec('ip', ['-n', ns, 'addr', 'add', `198.19.200.${i + 1}/16`, 'dev', 'eth0']);
          await exec('ip', ['-n', ns, 'route', 'add', 'default', 'via', '198.19.0.1']);
        }
      }),
    });
  }
  nl.close();
  process.stdout.write(JSON.stringify({ rows, entries }) + '\n');
}

async function outside(): Promise<void> {
  const pods = arg('--pods', 45);
  const net = await TestNet.create(1);
  try {
    const h = net.host(1);
    const podNs: string[] = [];
    for (let i = 0; i < pods; i++) {
      const ns = h.podNs(`p${i}`);
      await net.addNamespace(ns);
      podNs.push(ns);
    }
    const script = fileURLToPath(import.meta.url);
    const child = h.spawn(process.execPath, [...process.execArgv, script, '--inside', ...process.argv.slice(2), '--pods-ns', podNs.join(',')]);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? 1)));
    if (code !== 0) throw new Error(`bench failed (${code}): ${err.trim()}`);
    const { rows, entries } = JSON.parse(out.trim().split('\n').pop()!) as { rows: Row[]; entries: number };
    console.log(`netlink vs iproute2 (kernel ${(await import('node:os')).release()}, ${entries} vxlan FDB entries at dump time)\n`);
    console.log(rowsTable(rows));
  } finally {
    await net.destroy();
  }
}

if (process.argv.includes('--inside')) await inside();
else await outside();
