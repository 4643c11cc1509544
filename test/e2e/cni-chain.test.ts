// meshnet first in a chain with the reference tuning, bandwidth and portmap
// plugins (/usr/lib/cni), executed the way the CNI spec tells a runtime to.
// h1 is the pod host, h2 an outside client on the underlay.

import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installCni } from '../../router/cni/install.js';
import { hostVethName } from '../../router/cni/names.js';
import { CniTestDaemon, ensureBuilt } from '../harness/cni-daemon.js';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { ConflistRunner, httpBody, httpGetCommand, type AttachmentSpec } from '../harness/runtimes.js';

describe('meshnet chained with tuning, bandwidth and portmap', () => {
  let net: TestNet;
  let h1: TestHost;
  let h2: TestHost;
  let daemon: CniTestDaemon;
  let runner: ConflistRunner;
  let pod: string;
  let att: AttachmentSpec;
  let result: Record<string, unknown>;

  beforeAll(async () => {
    ensureBuilt();
    net = await TestNet.create(2);
    h1 = net.host(1);
    h2 = net.host(2);
    // The pods' gateway forwards for portmap's DNAT (the daemon will own this setting).
    await h1.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    const binDir = join(h1.dir, 'bin');
    await installCni({ binDir, confDir: join(h1.dir, 'net.d'), runDir: h1.runDir });
    daemon = await CniTestDaemon.start(h1, { subnet: '198.19.4.0/24' });
    runner = new ConflistRunner(
      h1,
      {
        cniVersion: '1.0.0',
        name: 'meshnet-chain',
        plugins: [
          { type: 'meshnet', runDir: h1.runDir, bridge: 'meshnet', mtu: 0, hairpinMode: true },
          { type: 'tuning', capabilities: { mac: true }, sysctl: { 'net.core.somaxconn': '512' } },
          { type: 'bandwidth', capabilities: { bandwidth: true } },
          { type: 'portmap', capabilities: { portMappings: true }, snat: true },
        ],
      },
      [binDir, '/usr/lib/cni'],
    );
    pod = `${net.prefix}-pod`;
    await net.addNamespace(pod);
    att = {
      containerId: 'chained',
      netns: `/run/netns/${pod}`,
      ifname: 'eth0',
      capabilityArgs: {
        mac: '0a:58:c6:13:04:99',
        bandwidth: { ingressRate: 8_000_000, ingressBurst: 800_000, egressRate: 8_000_000, egressBurst: 800_000 },
        portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }],
      },
    };
  });

  afterAll(async () => {
    await daemon?.kill();
    await net?.destroy();
  });

  it('ADD runs the whole chain and each plugin sees meshnet’s result', async () => {
    result = await runner.add(att);
    const ifs = result.interfaces as { name: string; mac?: string; sandbox?: string }[];
    // meshnet's three, then bandwidth's ifb device for egress shaping.
    expect(ifs.map((i) => i.name).slice(0, 3)).toEqual(['meshnet', hostVethName('chained', 'eth0'), 'eth0']);
    expect(ifs[3]?.name).toMatch(/^bwp/);
    // tuning changed the pod's MAC and reported it.
    expect(ifs[2]!.mac).toBe('0a:58:c6:13:04:99');
    const link = JSON.parse(await h1.run('ip', ['netns', 'exec', pod, 'ip', '-j', 'link', 'show', 'eth0'])) as { address: string }[];
    expect(link[0]!.address).toBe('0a:58:c6:13:04:99');
    expect((await h1.run('ip', ['netns', 'exec', pod, 'cat', '/proc/sys/net/core/somaxconn'])).trim()).toBe('512');
    // bandwidth shaped the host end (ingress) and an ifb device (egress).
    const qdisc = await h1.run('tc', ['qdisc', 'show', 'dev', hostVethName('chained', 'eth0')]);
    expect(qdisc).toContain('tbf');
    expect(await h1.run('ip', ['-br', 'link'])).toMatch(/^bwp/m);
  });

  it('a mapped host port reaches the pod, from another host and from the pod itself (hairpin)', async () => {
    const www = join(h1.dir, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, 'index.html'), 'hello-from-pod\n');
    const httpd = spawn('ip', ['netns', 'exec', pod, 'busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' });
    net.track(httpd);
    const get = async (h: TestHost, ns: string | undefined, ip: string, port: number): Promise<string> => {
      const [cmd, args] = httpGetCommand(ip, port);
      const r = ns ? await h.exec('ip', ['netns', 'exec', ns, cmd, ...args]) : await h.exec(cmd, args);
      return httpBody(r.stdout);
    };
    await waitFor(async () => (await get(h1, pod, '127.0.0.1', 80)) !== '', 10_000, 'httpd in the pod');
    // (busybox nc gives up after 3 s: a loaded machine gets a second try.)
    const answers = (h: TestHost, ns: string | undefined): Promise<boolean> =>
      waitFor(async () => (await get(h, ns, h1.address, 8080)) === 'hello-from-pod\n', 15_000, `port 8080 from ${ns ?? h.id}`).then(() => true);
    expect(await answers(h2, undefined)).toBe(true);
    // Hairpin: the pod reaches itself through the host's mapped port.
    expect(await answers(h1, pod)).toBe(true);
    httpd.kill('SIGKILL');
  });

  it('CHECK passes with the final result (MAC changed by tuning)', async () => {
    // portmap 1.1.1 (Debian 12) fails CHECK for any IPv4-only pod by looking for an
    // ip6tables chain it never created (containernetworking/plugins#819), whoever
    // created the interface; so it is left out here.
    await expect(runner.check(att, result, ['meshnet', 'tuning', 'bandwidth'])).resolves.toBeUndefined();
  });

  it('DEL in reverse order removes every trace', async () => {
    await runner.del(att, result);
    expect(await h1.run('iptables', ['-t', 'nat', '-S'])).not.toContain('8080');
    const links = await h1.run('ip', ['-br', 'link']);
    expect(links).not.toContain(hostVethName('chained', 'eth0'));
    expect(links).not.toMatch(/^bwp/m);
    expect(await daemon.allocations()).toEqual({});
    // And again: every plugin's DEL is idempotent.
    await expect(runner.del(att, result)).resolves.toBeUndefined();
  });
});
