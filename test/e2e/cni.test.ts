// The installed plugin (C shim, and the Node fallback) against the real CNI
// handler in a stand-in daemon, wiring real pods (network namespaces) inside
// a test host. Everything runs in namespaces of this run (198.19.0.0/16).

import { join } from 'node:path';
import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installCni, type InstallCniResult } from '../../router/cni/install.js';
import { hostVethName } from '../../router/cni/names.js';
import { pendingDir } from '../../router/cni/protocol.js';
import { CniTestDaemon, ensureBuilt } from '../harness/cni-daemon.js';
import { TestNet, type ExecResult, type TestHost } from '../harness/netns.js';

interface Invocation extends ExecResult {
  json: Record<string, unknown>;
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const SUITES = [
  { kind: 'shim' as const, subnet: '198.19.1', concurrent: 100 },
  // 100 concurrent Node processes would only measure this 2-core machine; the fallback gets a smaller storm.
  { kind: 'node' as const, subnet: '198.19.2', concurrent: 12 },
];

describe.each(SUITES)('CNI plugin ($kind) in namespaces', ({ kind, subnet, concurrent }) => {
  let net: TestNet;
  let host: TestHost;
  let daemon: CniTestDaemon;
  let installed: InstallCniResult;
  let podCount = 0;

  const conf = (extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', runDir: host.runDir, bridge: 'meshnet', mtu: 0, hairpinMode: true, ...extra });

  async function newPod(): Promise<{ ns: string; path: string }> {
    const ns = `${net.prefix}-p${++podCount}`;
    await net.addNamespace(ns);
    return { ns, path: `/run/netns/${ns}` };
  }

  /** Run the installed plugin in the host namespace with only CNI_* in its environment (no PATH). */
  async function cni(command: string, id: string, netns: string, config = conf(), ifname = 'eth0'): Promise<Invocation> {
    const env = { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: ifname, CNI_PATH: join(host.dir, 'bin') };
    const r = await host.exec(installed.plugin, [], { env, input: config, timeoutMs: 60_000 });
    let json: Record<string, unknown> = {};
    if (r.stdout.trim()) json = JSON.parse(r.stdout) as Record<string, unknown>;
    return { ...r, json };
  }

  async function hostLinks(): Promise<string[]> {
    const out = JSON.parse(await host.run('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
    return out.map((l) => l.ifname).filter((n) => /^mn[0-9a-f]{12}$/.test(n));
  }

  beforeAll(async () => {
    ensureBuilt();
    net = await TestNet.create(1);
    host = net.host(1);
    installed = await installCni({ binDir: join(host.dir, 'bin'), confDir: join(host.dir, 'net.d'), runDir: host.runDir, kind: kind === 'node' ? 'node' : 'auto' });
    daemon = await CniTestDaemon.start(host, { subnet: `${subnet}.0/24` });
  });

  afterAll(async () => {
    await daemon?.kill();
    await net?.destroy();
  });

  it('installs the plugin and the conflist with absolute paths', () => {
    expect(installed.kind).toBe(kind);
    const conflist = JSON.parse(readFileSync(installed.conflist, 'utf8')) as { plugins: { type: string; runDir?: string }[] };
    expect(conflist.plugins.map((p) => p.type)).toEqual(['meshnet', 'portmap']);
    expect(conflist.plugins[0]!.runDir).toBe(host.runDir);
    const text = readFileSync(installed.plugin);
    if (kind === 'node') {
      expect(text.toString()).toMatch(/^#!\/bin\/sh\n/);
      expect(text.toString()).toMatch(/^exec '\/[^']+\/node' '\/[^']+\/dist\/cni\/plugin\.js' "\$@"$/m);
    } else {
      expect(text.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    }
  });

  it('answers VERSION without the daemon', async () => {
    const r = await cni('VERSION', '', '', '{"cniVersion":"1.0.0"}');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('ADD wires a pod that reaches the gateway; CHECK passes; DEL removes it, twice', async () => {
    const pod = await newPod();
    const add = await cni('ADD', 'single', pod.path);
    expect(add.code, add.stdout).toBe(0);
    const ip = (add.json.ips as { address: string }[])[0]!.address;
    expect(ip).toMatch(new RegExp(`^${subnet.replace(/\./g, '\\.')}\\.\\d+/24$`));
    const addrs = await net.host(1).exec('ip', ['netns', 'exec', pod.ns, 'ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    expect(addrs.stdout).toContain(ip.split('/')[0]);
    const ping = await host.exec('ip', ['netns', 'exec', pod.ns, 'ping', '-c', '1', '-W', '2', `${subnet}.1`]);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    expect((await cni('CHECK', 'single', pod.path)).code).toBe(0);

    expect(await hostLinks()).toContain(hostVethName('single', 'eth0'));
    const del = await cni('DEL', 'single', pod.path);
    expect(del.code, del.stdout).toBe(0);
    expect(await hostLinks()).not.toContain(hostVethName('single', 'eth0'));
    expect(await daemon.allocations()).not.toHaveProperty('single/eth0');
    const again = await cni('DEL', 'single', pod.path);
    expect(again.code, again.stdout).toBe(0);
    // containerd's foreground `ctr run --rm` passes an empty CNI_NETNS, after the netns is gone.
    expect((await cni('DEL', 'single', '')).code).toBe(0);
  });

  it(`gives ${concurrent} concurrent ADDs distinct addresses and every pod reaches its neighbour`, async () => {
    const pods = await mapLimit(Array.from({ length: concurrent }, (_, i) => i), 8, async () => newPod());
    const adds = await Promise.all(pods.map((p, i) => cni('ADD', `storm${i}`, p.path)));
    for (const a of adds) expect(a.code, a.stdout).toBe(0);
    const ips = adds.map((a) => (a.json.ips as { address: string }[])[0]!.address.split('/')[0]!);
    expect(new Set(ips).size).toBe(concurrent);
    const pings = await mapLimit(
      pods.map((p, i) => ({ ns: p.ns, to: ips[(i + 1) % concurrent]! })),
      10,
      ({ ns, to }) => host.exec('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '3', to]),
    );
    const failed = pings.map((r, i) => (r.code === 0 ? undefined : `${ips[i]} -> ${ips[(i + 1) % concurrent]}`)).filter(Boolean);
    expect(failed).toEqual([]);
    const dels = await Promise.all(pods.map((p, i) => cni('DEL', `storm${i}`, p.path)));
    for (const d of dels) expect(d.code, d.stdout).toBe(0);
    const left = Object.keys(await daemon.allocations()).filter((k) => k.startsWith('storm'));
    expect(left).toEqual([]);
    expect(await hostLinks()).toEqual([]);
  });

  it('leaves nothing behind when ADD fails midway', async () => {
    // The pod already has an eth0: the veth cannot be created (host side).
    const a = await newPod();
    await host.run('ip', ['netns', 'exec', a.ns, 'ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'other0']);
    const r1 = await cni('ADD', 'clash', a.path);
    expect(r1.code).toBe(1);
    expect(r1.json.code).toBe(101);
    expect(String(r1.json.msg)).toContain('File exists');
    // The pod already has a default route: the veth is in, then the pod side fails (route add).
    const b = await newPod();
    await host.run('ip', ['netns', 'exec', b.ns, 'ip', 'link', 'add', 'x0', 'type', 'veth', 'peer', 'name', 'x1']);
    await host.run('ip', ['netns', 'exec', b.ns, 'ip', 'addr', 'add', '198.19.250.1/24', 'dev', 'x0']);
    await host.run('ip', ['netns', 'exec', b.ns, 'ip', 'link', 'set', 'x0', 'up']);
    await host.run('ip', ['netns', 'exec', b.ns, 'ip', 'route', 'add', 'default', 'via', '198.19.250.2', 'dev', 'x0', 'onlink']);
    const r2 = await cni('ADD', 'routeclash', b.path);
    expect(r2.code).toBe(1);
    expect(r2.json.code).toBe(101);
    expect(String(r2.json.msg)).toContain('pod interface');
    const podLinks = await host.run('ip', ['netns', 'exec', b.ns, 'ip', '-br', 'link']);
    expect(podLinks).not.toMatch(/^eth0/m);
    expect(await hostLinks()).toEqual([]);
    const held = await daemon.allocations();
    expect(held).not.toHaveProperty('clash/eth0');
    expect(held).not.toHaveProperty('routeclash/eth0');
  });

  it('answers bad input with the right code naming the field or value', async () => {
    const pod = await newPod();
    const cases: [string, () => Promise<Invocation>, number, string][] = [
      ['malformed JSON', () => cni('ADD', 'bad1', pod.path, '{"cniVersion":'), 6, 'JSON'],
      ['missing field', () => cni('ADD', 'bad2', pod.path, JSON.stringify({ cniVersion: '1.0.0', type: 'meshnet', runDir: host.runDir })), 7, '"name"'],
      ['wrong-typed field', () => cni('ADD', 'bad3', pod.path, conf({ hairpinMode: 'on' })), 7, 'hairpinMode'],
      ['unsupported cniVersion', () => cni('ADD', 'bad4', pod.path, conf({ cniVersion: '0.2.0' })), 1, '0.2.0'],
      ['unknown command', () => cni('ATTACH', 'bad5', pod.path), 4, 'ATTACH'],
      ['nonexistent netns', () => cni('ADD', 'bad6', '/run/netns/meshnet-no-such-ns'), 3, '/run/netns/meshnet-no-such-ns'],
      ['invalid bridge name', () => cni('ADD', 'bad7', pod.path, conf({ bridge: 'much-too-long-bridge' })), 7, 'much-too-long-bridge'],
    ];
    for (const [what, run, code, named] of cases) {
      const r = await run();
      expect(r.code, what).not.toBe(0);
      expect(r.json.code, `${what}: ${r.stdout}`).toBe(code);
      expect(String(r.json.msg), what).toContain(named);
    }
    expect(Object.keys(await daemon.allocations()).filter((k) => k.startsWith('bad'))).toEqual([]);
    expect(await hostLinks()).toEqual([]);
  });

  it('keeps allocations across a daemon restart, so DEL after a restart releases', async () => {
    const pod = await newPod();
    const add = await cni('ADD', 'survivor', pod.path);
    expect(add.code, add.stdout).toBe(0);
    await daemon.kill();
    daemon = await CniTestDaemon.start(host, { subnet: `${subnet}.0/24` });
    expect(await daemon.allocations()).toHaveProperty('survivor/eth0');
    expect((await cni('DEL', 'survivor', pod.path)).code).toBe(0);
    expect(await daemon.allocations()).not.toHaveProperty('survivor/eth0');
    expect(await hostLinks()).toEqual([]);
  });

  it('with the daemon down: ADD fails with 11 and leaves nothing; DEL is parked and finished on restart', async () => {
    const kept = await newPod();
    expect((await cni('ADD', 'parked', kept.path)).code).toBe(0);
    await daemon.kill();

    const pod = await newPod();
    const add = await cni('ADD', 'downadd', pod.path);
    expect(add.code).toBe(1);
    expect(add.json.code).toBe(11);
    expect(String(add.json.msg)).toContain('meshnet daemon not reachable');
    expect(await hostLinks()).toEqual([hostVethName('parked', 'eth0')]);
    const status = await cni('STATUS', '', '', conf({ cniVersion: '1.1.0' }));
    expect(status.json.code).toBe(50);

    // The runtime tears the pod down while the daemon is away.
    const del = await cni('DEL', 'parked', kept.path);
    expect(del.code, del.stdout).toBe(0);
    expect(readdirSync(pendingDir(host.runDir)).filter((f) => f.startsWith('del-'))).toHaveLength(1);

    daemon = await CniTestDaemon.start(host, { subnet: `${subnet}.0/24` });
    const held = await daemon.allocations();
    expect(held).not.toHaveProperty('parked/eth0');
    expect(held).not.toHaveProperty('downadd/eth0');
    expect(await hostLinks()).toEqual([]);
    expect(existsSync(pendingDir(host.runDir)) ? readdirSync(pendingDir(host.runDir)) : []).toEqual([]);
  });
});
