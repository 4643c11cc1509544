// CNI ADD/DEL latency: meshnet (C shim -> CNI handler in a daemon process),
// meshnet's Node fallback plugin, and the reference bridge + host-local
// plugins, measured in the same run on the same pods.
//
//   npx tsc -p tsconfig.json && make -C cni && node dist/bench/cni.js [--iterations 100]
//
// Everything runs in namespaces of a TestNet (198.19.0.0/16). The timing
// loop itself runs inside the test host's namespace, so each figure is one
// plugin process from spawn to exit, start-up included, as a runtime sees it.

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installCni } from '../router/cni/install.js';
import { CniTestDaemon, ensureBuilt } from '../test/harness/cni-daemon.js';
import { TestNet } from '../test/harness/netns.js';

interface Variant {
  name: string;
  plugin: string;
  /** The config on stdin (a single plugin's request configuration). */
  config: string;
}

interface Plan {
  variants: Variant[];
  pods: string[];
  warmup: number;
}

interface Timing {
  name: string;
  add: number[];
  del: number[];
}

function run(cmd: string, env: NodeJS.ProcessEnv, input: string): Promise<{ ms: number; code: number; stdout: string }> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, [], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    child.on('close', (code) => resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, code: code ?? -1, stdout }));
  });
}

/** The timing loop, inside the host's namespace. */
async function inner(planFile: string): Promise<void> {
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as Plan;
  const out: Timing[] = [];
  const cni = async (v: Variant, command: string, i: number): Promise<number> => {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: `bench${i}`, CNI_NETNS: plan.pods[i]!, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni' };
    const r = await run(v.plugin, env, v.config);
    if (r.code !== 0) throw new Error(`${v.name} ${command} bench${i} exited ${r.code}: ${r.stdout}`);
    return r.ms;
  };
  for (const v of plan.variants) {
    for (let i = 0; i < plan.warmup; i++) {
      await cni(v, 'ADD', i);
      await cni(v, 'DEL', i);
    }
    out.push({ name: v.name, add: [], del: [] });
  }
  // Round robin over the plugins, so drifting load on a shared machine hits them alike.
  for (let i = 0; i < plan.pods.length; i++) {
    for (const [k, v] of plan.variants.entries()) {
      out[k]!.add.push(await cni(v, 'ADD', i));
      out[k]!.del.push(await cni(v, 'DEL', i));
    }
  }
  // Start-up alone, for scale: what any Node plugin pays before its first line runs.
  const bare: Timing = { name: 'node -e "" (start-up only)', add: [], del: [] };
  for (let i = 0; i < 30; i++) bare.add.push((await run(process.execPath, {}, '')).ms);
  out.push(bare);
  process.stdout.write(JSON.stringify(out));
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

async function outer(iterations: number): Promise<void> {
  ensureBuilt();
  const net = await TestNet.create(1);
  const host = net.host(1);
  let daemon: CniTestDaemon | undefined;
  try {
    const shim = await installCni({ binDir: join(host.dir, 'bin'), confDir: join(host.dir, 'net.d'), runDir: host.runDir });
    const node = await installCni({ binDir: join(host.dir, 'bin-node'), confDir: join(host.dir, 'net.d-node'), runDir: host.runDir, kind: 'node' });
    if (shim.kind !== 'shim') throw new Error(`the shim could not be installed: ${shim.note}`);
    daemon = await CniTestDaemon.start(host, { subnet: '198.19.6.0/24' });
    const pods: string[] = [];
    for (let i = 0; i < iterations; i++) {
      const ns = `${net.prefix}-b${i}`;
      await net.addNamespace(ns);
      pods.push(`/run/netns/${ns}`);
    }
    const meshnetConf = JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', runDir: host.runDir, bridge: 'meshnet', mtu: 0, hairpinMode: true });
    const bridgeConf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'refnet',
      type: 'bridge',
      bridge: 'refbr0',
      isGateway: true,
      hairpinMode: true,
      ipam: { type: 'host-local', subnet: '198.19.7.0/24', dataDir: join(host.dir, 'host-local') },
    });
    const plan: Plan = {
      warmup: 3,
      pods,
      variants: [
        { name: 'meshnet (C shim -> daemon)', plugin: shim.plugin, config: meshnetConf },
        { name: 'reference bridge + host-local', plugin: '/usr/lib/cni/bridge', config: bridgeConf },
        { name: 'meshnet (Node fallback -> daemon)', plugin: node.plugin, config: meshnetConf },
      ],
    };
    const planFile = join(host.dir, 'bench-plan.json');
    writeFileSync(planFile, JSON.stringify(plan));
    const load = loadavg()[0]!.toFixed(2);
    const results = JSON.parse(await host.run(process.execPath, [fileURLToPath(import.meta.url), '--inner', planFile], { timeoutMs: 600_000 })) as Timing[];

    const rows = results.map((t) => {
      const f = (xs: number[], p: number): string => (xs.length ? pct(xs, p).toFixed(1) : '-');
      return [t.name, f(t.add, 50), f(t.add, 99), f(t.del, 50), f(t.del, 99)];
    });
    const head = ['plugin', 'ADD p50 ms', 'ADD p99 ms', 'DEL p50 ms', 'DEL p99 ms'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
    console.log(`CNI latency: ${iterations} rounds of ADD then DEL per plugin, plugins interleaved, one plugin process per call (load average ${load} at start)`);
    console.log(line(head));
    console.log(widths.map((w) => '-'.repeat(w)).join('  '));
    for (const r of rows) console.log(line(r));
  } finally {
    await daemon?.kill();
    await net.destroy();
  }
}

const argv = process.argv.slice(2);
if (argv[0] === '--inner') {
  inner(argv[1]!).catch((err: unknown) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
} else {
  const i = argv.indexOf('--iterations');
  outer(i >= 0 ? Number(argv[i + 1]) : 100).catch((err: unknown) => {
    console.error(`bench/cni: ${(err as Error).message}`);
    process.exit(1);
  });
}
