// The installed meshnet plugin under real runtimes: podman 4.3 with the CNI
// backend and containerd 1.6 `ctr run --cni`, each with configuration and
// state of its own, running in the test host's network namespace (h1). h2 is
// an outside host on the underlay. The CNI side of the daemon is the stand-in
// from test/harness/cni-daemon.ts until the real daemon mounts router/cni.

import { copyFileSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installCni } from '../../router/cni/install.js';
import { hostVethName } from '../../router/cni/names.js';
import { CniTestDaemon, ensureBuilt } from '../harness/cni-daemon.js';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { buildBusyboxRootfs, ContainerdRuntime, httpBody, httpGetCommand, PodmanRuntime, tarRootfs } from '../harness/runtimes.js';

const SUBNET = '198.19.3';
const IMAGE = 'localhost/mnbusybox:latest';

describe('meshnet under real runtimes', () => {
  let net: TestNet;
  let h1: TestHost;
  let h2: TestHost;
  let daemon: CniTestDaemon;
  let binDir: string;
  let confDir: string;
  let rootfs: string;
  let plugin: string;

  async function meshnetLinks(): Promise<string[]> {
    const links = JSON.parse(await h1.run('ip', ['-j', 'link', 'show'])) as { ifname: string }[];
    return links.map((l) => l.ifname).filter((n) => /^mn[0-9a-f]{12}$/.test(n));
  }

  async function httpFrom(h: TestHost, ip: string, port: number): Promise<string> {
    const [cmd, args] = httpGetCommand(ip, port);
    return httpBody((await h.exec(cmd, args)).stdout);
  }

  beforeAll(async () => {
    ensureBuilt();
    net = await TestNet.create(2);
    h1 = net.host(1);
    h2 = net.host(2);
    // The pods' gateway forwards for portmap's DNAT (the daemon will own this setting).
    await h1.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    binDir = join(h1.dir, 'bin');
    confDir = join(h1.dir, 'net.d');
    const installed = await installCni({ binDir, confDir, runDir: h1.runDir });
    plugin = installed.plugin;
    // A second network: meshnet chained with tuning and bandwidth (static limits) before portmap.
    writeFileSync(
      join(confDir, '20-meshnet-chain.conflist'),
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'meshnet-chain',
        plugins: [
          { type: 'meshnet', runDir: h1.runDir, bridge: 'meshnet', mtu: 0, hairpinMode: true },
          { type: 'tuning', sysctl: { 'net.core.somaxconn': '512' } },
          { type: 'bandwidth', ingressRate: 8_000_000, ingressBurst: 800_000, egressRate: 8_000_000, egressBurst: 800_000 },
          { type: 'portmap', capabilities: { portMappings: true }, snat: true },
        ],
      }),
    );
    rootfs = buildBusyboxRootfs(h1.dir);
    daemon = await CniTestDaemon.start(h1, { subnet: `${SUBNET}.0/24` });
  });

  afterAll(async () => {
    await daemon?.kill();
    await net?.destroy();
  });

  describe('podman 4.3, CNI backend', () => {
    let podman: PodmanRuntime;
    const pm = async (args: string[]): Promise<string> => {
      const r = await podman.podman(args);
      if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout.trim();
    };

    beforeAll(async () => {
      podman = await PodmanRuntime.create(h1, { cniConfDir: confDir, cniBinDirs: [binDir, '/usr/lib/cni'], image: IMAGE, rootfsTar: tarRootfs(rootfs, join(h1.dir, 'rootfs.tar')) });
    });
    afterAll(async () => {
      await podman?.destroy();
    });

    it('uses the CNI backend and sees the meshnet networks', async () => {
      expect(await pm(['info', '--format', '{{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}'])).toBe('cni runc');
      // podman also lists its built-in default network.
      expect((await pm(['network', 'ls', '--format', '{{.Name}}'])).split('\n')).toEqual(expect.arrayContaining(['meshnet', 'meshnet-chain']));
    });

    it('run --rm: the container gets a meshnet address, released when it exits', async () => {
      const out = await pm(['run', '--rm', '--network', 'meshnet', IMAGE, '/bin/ip', '-4', 'addr', 'show', 'eth0']);
      expect(out).toMatch(new RegExp(`inet ${SUBNET.replace(/\./g, '\\.')}\\.\\d+/24`));
      // podman's cleanup runs DEL after the container exits.
      await waitFor(async () => Object.keys(await daemon.allocations()).length === 0, 10_000, 'the address to be released');
      expect(await meshnetLinks()).toEqual([]);
    });

    it('a published port reaches the container from another host, and containers reach each other', async () => {
      await pm(['run', '-d', '--name', 'web', '--network', 'meshnet', '-p', '8080:80', IMAGE, '/bin/httpd', '-f', '-p', '80', '-h', '/www']);
      await pm(['run', '-d', '--name', 'client', '--network', 'meshnet', IMAGE, '/bin/sleep', '600']);
      const webIp = await pm(['inspect', 'web', '--format', '{{.NetworkSettings.Networks.meshnet.IPAddress}}']);
      expect(webIp).toMatch(new RegExp(`^${SUBNET.replace(/\./g, '\\.')}\\.\\d+$`));
      expect(Object.keys(await daemon.allocations())).toHaveLength(2);
      await waitFor(async () => (await httpFrom(h2, h1.address, 8080)) === 'hello-from-pod\n', 15_000, 'the published port from h2');
      const [cmd, args] = httpGetCommand(webIp, 80);
      expect(httpBody(await pm(['exec', 'client', cmd, ...args]))).toBe('hello-from-pod');
      expect(await pm(['exec', 'client', '/bin/ping', '-c', '1', '-W', '2', webIp])).toContain('1 packets received');
    });

    it('stop and rm release the addresses and remove the port mapping (podman exits 0 either way: check our side)', async () => {
      await pm(['stop', '-t', '0', 'web', 'client']);
      await pm(['rm', 'web', 'client']);
      await waitFor(async () => Object.keys(await daemon.allocations()).length === 0, 10_000, 'the addresses to be released');
      expect(await meshnetLinks()).toEqual([]);
      expect(await h1.run('iptables', ['-t', 'nat', '-S'])).not.toContain('8080');
    });

    it('chains tuning and bandwidth after meshnet', async () => {
      const id = await pm(['run', '-d', '--name', 'tuned', '--network', 'meshnet-chain', IMAGE, '/bin/sleep', '600']);
      expect(await pm(['exec', 'tuned', '/bin/cat', '/proc/sys/net/core/somaxconn'])).toBe('512');
      const qdisc = await h1.run('tc', ['qdisc', 'show', 'dev', hostVethName(id, 'eth0')]);
      expect(qdisc).toContain('tbf');
      await pm(['rm', '-f', '-t', '0', 'tuned']);
      await waitFor(async () => Object.keys(await daemon.allocations()).length === 0, 10_000, 'the address to be released');
      expect(await h1.run('ip', ['-br', 'link'])).not.toMatch(/^bwp/m);
    });
  });

  describe('containerd 1.6, ctr run --cni', () => {
    let ctrd: ContainerdRuntime;
    let ctrConfDir: string;
    const ctr = async (args: string[]): Promise<string> => {
      const r = await ctrd.ctr(args);
      if (r.code !== 0) throw new Error(`ctr ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
      return r.stdout.trim();
    };

    beforeAll(async () => {
      // go-cni (ctr) loads the first conflist of the dir and looks for plugins in /opt/cni/bin only.
      ctrConfDir = join(h1.dir, 'ctr-net.d');
      mkdirSync(ctrConfDir, { recursive: true });
      copyFileSync(join(confDir, '10-meshnet.conflist'), join(ctrConfDir, '10-meshnet.conflist'));
      const ctrBin = join(h1.dir, 'ctr-bin');
      mkdirSync(ctrBin, { recursive: true });
      copyFileSync(plugin, join(ctrBin, 'meshnet'));
      for (const p of readdirSync('/usr/lib/cni')) symlinkSync(join('/usr/lib/cni', p), join(ctrBin, p));
      ctrd = await ContainerdRuntime.start(h1, { cniConfDir: ctrConfDir, cniBinDir: ctrBin, rootfs });
    });
    afterAll(async () => {
      await ctrd?.destroy();
    });

    it('run --rm --cni: ADD with /proc/<pid>/ns/net, then DEL with an empty CNI_NETNS releases the address', async () => {
      const out = await ctr(['run', '--rm', '--cni', '--rootfs', rootfs, 'once', '/bin/ip', '-4', 'addr', 'show', 'eth0']);
      expect(out).toMatch(new RegExp(`inet ${SUBNET.replace(/\./g, '\\.')}\\.\\d+/24`));
      expect(await daemon.allocations()).toEqual({});
      expect(await meshnetLinks()).toEqual([]);
    });

    it('run -d --cni: the task is reachable; ctr never sends DEL, so the address stays until one is sent', async () => {
      await ctr(['run', '-d', '--cni', '--rootfs', rootfs, 'bg', '/bin/sleep', '600']);
      const key = `${ctrd.namespace}-bg/eth0`;
      const held = await daemon.allocations();
      expect(Object.keys(held)).toEqual([key]);
      const ping = await h1.exec('ping', ['-c', '1', '-W', '2', held[key]!]);
      expect(ping.code, ping.stdout).toBe(0);
      await ctr(['tasks', 'kill', '--signal', 'SIGKILL', 'bg']);
      await waitFor(async () => (await ctrd.ctr(['tasks', 'delete', 'bg'])).code === 0, 10_000, 'the task to stop');
      await ctr(['containers', 'delete', 'bg']);
      // Observed: nothing calls DEL for a detached ctr task; the address is still held.
      expect(Object.keys(await daemon.allocations())).toEqual([key]);
      // What a runtime's cleanup would do (CNI_NETNS is gone with the task).
      const del = await h1.exec(plugin, [], {
        env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: `${ctrd.namespace}-bg`, CNI_NETNS: '', CNI_IFNAME: 'eth0' },
        input: JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', runDir: h1.runDir }),
      });
      expect(del.code, del.stdout).toBe(0);
      expect(await daemon.allocations()).toEqual({});
      expect(await meshnetLinks()).toEqual([]);
    });
  });
});
