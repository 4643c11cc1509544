import { beforeEach, describe, expect, it } from 'vitest';
import { CniCommands } from '../../../router/cni/commands.js';
import { CniCode } from '../../../router/cni/errors.js';
import { hostVethName } from '../../../router/cni/names.js';
import type { CniRequest } from '../../../router/cni/protocol.js';
import { SUPPORTED_VERSIONS } from '../../../router/cni/version.js';
import { MemAllocator, MemHostNetwork } from './fakes.js';

const NS = '/run/netns/pod1';

function conf(extra: Record<string, unknown> = {}, version = '1.0.0'): string {
  return JSON.stringify({ cniVersion: version, name: 'meshnet', type: 'meshnet', runDir: '/run/meshnet', bridge: 'meshnet', mtu: 0, hairpinMode: true, ...extra });
}

function env(command: string, id = 'c1', extra: Record<string, string> = {}): Record<string, string> {
  return { CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: NS, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...extra };
}

interface Out {
  exitCode: number;
  stdout: string;
  json: Record<string, unknown>;
}

describe('CNI commands', () => {
  let alloc: MemAllocator;
  let net: MemHostNetwork;
  let parked: CniRequest[];
  let cmds: CniCommands;

  async function run(e: Record<string, string>, config = conf()): Promise<Out> {
    const out = await cmds.execute({ env: e, config });
    return { ...out, json: out.stdout ? (JSON.parse(out.stdout) as Record<string, unknown>) : {} };
  }

  beforeEach(() => {
    alloc = new MemAllocator();
    net = new MemHostNetwork();
    net.namespaces.add(NS);
    for (let i = 0; i < 100; i++) net.namespaces.add(`/run/netns/p${i}`);
    parked = [];
    cmds = new CniCommands({ allocator: alloc, hostNetwork: net, defaultMtu: () => 1376, parkDel: async (r) => void parked.push(r) });
  });

  describe('VERSION', () => {
    it('lists the supported versions and echoes the one asked for', async () => {
      const r = await run({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
      expect(r.exitCode).toBe(0);
      expect(r.json).toEqual({ cniVersion: '0.4.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    });
    it('answers even without a usable config', async () => {
      for (const stdin of ['', '{', '{"cniVersion":"9.9.9"}']) {
        const r = await run({ CNI_COMMAND: 'VERSION' }, stdin);
        expect(r.exitCode).toBe(0);
        expect(r.json.cniVersion).toBe('1.1.0');
      }
    });
  });

  describe('ADD', () => {
    it('allocates, wires and returns the 1.0.0 result', async () => {
      const r = await run(env('ADD'));
      expect(r.exitCode).toBe(0);
      const host = hostVethName('c1', 'eth0');
      expect(r.json).toEqual({
        cniVersion: '1.0.0',
        interfaces: [
          { name: 'meshnet', mac: '0a:58:c6:13:09:01' },
          { name: host, mac: '0e:58:c6:13:09:02' },
          { name: 'eth0', mac: '0a:58:c6:13:09:02', sandbox: NS },
        ],
        ips: [{ address: '198.19.9.2/24', gateway: '198.19.9.1', interface: 2 }],
        routes: [{ dst: '0.0.0.0/0', gw: '198.19.9.1' }],
        dns: {},
      });
      expect(alloc.held.get('c1/eth0')).toBe('198.19.9.2');
      const link = net.links.get(host)!.link;
      expect(link).toMatchObject({ netns: NS, ifname: 'eth0', bridge: 'meshnet', mtu: 1376, hairpin: true, gateway: '198.19.9.1' });
      expect(net.bridges.get('meshnet')).toMatchObject({ gateway: '198.19.9.1', prefixLength: 24, mtu: 1376, mac: '0a:58:c6:13:09:01' });
    });

    it.each(SUPPORTED_VERSIONS)('shapes the result for %s', async (v) => {
      const r = await run(env('ADD'), conf({}, v));
      expect(r.exitCode).toBe(0);
      expect(r.json.cniVersion).toBe(v);
      const ip = (r.json.ips as Record<string, unknown>[])[0]!;
      expect('version' in ip).toBe(v.startsWith('0.'));
      const podIf = (r.json.interfaces as Record<string, unknown>[])[2]!;
      expect(podIf.mtu).toBe(v === '1.1.0' ? 1376 : undefined);
    });

    it('uses the config MTU and hairpin setting', async () => {
      await run(env('ADD'), conf({ mtu: 1400, hairpinMode: false }));
      expect(net.links.get(hostVethName('c1', 'eth0'))!.link).toMatchObject({ mtu: 1400, hairpin: false });
    });

    it('is idempotent: a repeated ADD returns the same result and wires nothing new', async () => {
      const a = await run(env('ADD'));
      const attaches = net.calls.filter((c) => c.startsWith('attach')).length;
      const b = await run(env('ADD'));
      expect(b).toEqual(a);
      expect(net.calls.filter((c) => c.startsWith('attach')).length).toBe(attaches);
    });

    it('re-wires an attachment that holds an address but lost its link', async () => {
      await run(env('ADD'));
      net.links.clear();
      const r = await run(env('ADD'));
      expect(r.exitCode).toBe(0);
      expect(net.links.has(hostVethName('c1', 'eth0'))).toBe(true);
      expect(alloc.held.get('c1/eth0')).toBe('198.19.9.2');
    });

    it('gives 100 concurrent ADDs 100 distinct addresses', async () => {
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) => run({ ...env('ADD', `pod${i}`), CNI_NETNS: `/run/netns/p${i}` })));
      expect(results.every((r) => r.exitCode === 0)).toBe(true);
      const addrs = results.map((r) => (r.json.ips as { address: string }[])[0]!.address);
      expect(new Set(addrs).size).toBe(100);
      expect(net.links.size).toBe(100);
      expect(net.calls.filter((c) => c.startsWith('ensureBridge')).length).toBe(1);
    });

    it('rejects a netns that does not exist with code 3 and leaves nothing', async () => {
      const r = await run({ ...env('ADD'), CNI_NETNS: '/run/netns/gone' });
      expect(r.json).toMatchObject({ code: CniCode.UNKNOWN_CONTAINER, msg: 'CNI_NETNS=/run/netns/gone does not exist' });
      expect(alloc.held.size).toBe(0);
      expect(net.links.size).toBe(0);
    });

    it('rejects a path that is not a network namespace with code 4', async () => {
      net.notNetns.add('/tmp/file');
      const r = await run({ ...env('ADD'), CNI_NETNS: '/tmp/file' });
      expect(r.json).toMatchObject({ code: CniCode.INVALID_ENV });
      expect(r.json.msg).toContain('/tmp/file');
    });

    it('answers 11 while IPAM is not ready', async () => {
      alloc.isReady = false;
      const r = await run(env('ADD'));
      expect(r.exitCode).toBe(1);
      expect(r.json.code).toBe(CniCode.TRY_AGAIN_LATER);
    });

    it('answers 100 when the range is full, and leaves nothing', async () => {
      alloc = new MemAllocator(0);
      cmds = new CniCommands({ allocator: alloc, hostNetwork: net, defaultMtu: () => 1376 });
      const r = await run(env('ADD'));
      expect(r.json.code).toBe(CniCode.ADDRESS_UNAVAILABLE);
      expect(net.links.size).toBe(0);
    });

    it('rolls back the veth and the address when the pod side fails twice', async () => {
      net.failAttach = { step: 'pod interface', times: 2 };
      const r = await run(env('ADD'));
      expect(r.exitCode).toBe(1);
      expect(r.json.code).toBe(CniCode.SETUP_FAILED);
      expect(r.json.msg).toContain('pod interface');
      expect(r.json.msg).toContain('eth0');
      expect(net.links.size).toBe(0);
      expect(alloc.held.size).toBe(0);
    });

    it('retries once after a failed attach, and then succeeds', async () => {
      net.failAttach = { step: 'host veth', times: 1 };
      const r = await run(env('ADD'));
      expect(r.exitCode).toBe(0);
      expect(net.links.size).toBe(1);
    });

    it('recreates a bridge that vanished since the last ADD', async () => {
      await run(env('ADD', 'a'));
      net.bridges.clear();
      const r = await run(env('ADD', 'b'));
      expect(r.exitCode).toBe(0);
      expect(net.bridges.has('meshnet')).toBe(true);
    });

    it('fails when CNI_IFNAME already exists in the pod, leaving nothing', async () => {
      net.podNames.add(`${NS}/eth0`);
      const r = await run(env('ADD'));
      expect(r.json.code).toBe(CniCode.SETUP_FAILED);
      expect(r.json.msg).toContain('File exists');
      expect(net.links.size).toBe(0);
      expect(alloc.held.size).toBe(0);
    });

    it('claims an address asked for in CNI_ARGS or runtimeConfig.ips', async () => {
      const a = await run({ ...env('ADD', 'a'), CNI_ARGS: 'IgnoreUnknown=1;IP=198.19.9.77' });
      expect((a.json.ips as { address: string }[])[0]!.address).toBe('198.19.9.77/24');
      const b = await run(env('ADD', 'b'), conf({ runtimeConfig: { ips: ['198.19.9.78/24'] } }));
      expect((b.json.ips as { address: string }[])[0]!.address).toBe('198.19.9.78/24');
      const c = await run(env('ADD', 'c'), conf({ runtimeConfig: { ips: ['198.19.9.78/24'] } }));
      expect(c.json.code).toBe(CniCode.ADDRESS_UNAVAILABLE);
      expect(alloc.held.has('c/eth0')).toBe(false);
    });

    it('reports an allocator bug as code 999 with one line, no stack', async () => {
      alloc.allocate = () => Promise.reject(new Error('boom\n    at somewhere (file.js:1:1)'));
      const r = await run(env('ADD'));
      expect(r.json).toEqual({ cniVersion: '1.0.0', code: CniCode.INTERNAL, msg: 'address allocation failed: boom' });
    });

    it('appends its attachment to a prevResult', async () => {
      const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: NS }], ips: [{ address: '127.0.0.1/8', interface: 0 }] };
      const r = await run(env('ADD'), conf({ prevResult: prev }));
      expect((r.json.interfaces as { name: string }[]).map((i) => i.name)).toEqual(['lo', 'meshnet', hostVethName('c1', 'eth0'), 'eth0']);
      expect((r.json.ips as { interface: number }[])[1]!.interface).toBe(3);
    });
  });

  describe('DEL', () => {
    it('removes the veth and releases the address; a second DEL succeeds too', async () => {
      await run(env('ADD'));
      expect(await run(env('DEL'))).toMatchObject({ exitCode: 0, stdout: '' });
      expect(net.links.size).toBe(0);
      expect(alloc.held.size).toBe(0);
      expect(await run(env('DEL'))).toMatchObject({ exitCode: 0, stdout: '' });
    });

    it('succeeds for an unknown container, an empty CNI_NETNS and a netns that is gone', async () => {
      expect((await run(env('DEL', 'never-added'))).exitCode).toBe(0);
      await run(env('ADD'));
      expect((await run({ ...env('DEL'), CNI_NETNS: '' })).exitCode).toBe(0);
      expect(alloc.held.size).toBe(0);
      await run(env('ADD', 'c2'));
      net.namespaces.delete(NS);
      expect((await run(env('DEL', 'c2'))).exitCode).toBe(0);
      expect(alloc.held.size).toBe(0);
    });

    it('keeps the address when the veth cannot be removed (a retry finishes)', async () => {
      await run(env('ADD'));
      net.failDetach = true;
      const r = await run(env('DEL'));
      expect(r.json.code).toBe(CniCode.SETUP_FAILED);
      expect(alloc.held.size).toBe(1);
      net.failDetach = false;
      expect((await run(env('DEL'))).exitCode).toBe(0);
      expect(alloc.held.size).toBe(0);
    });

    it('parks the DEL and succeeds when the release fails', async () => {
      await run(env('ADD'));
      alloc.failRelease = true;
      const r = await run(env('DEL'));
      expect(r.exitCode).toBe(0);
      expect(parked).toHaveLength(1);
      expect(parked[0]!.env.CNI_CONTAINERID).toBe('c1');
    });

    it('still validates its input', async () => {
      expect((await run({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1' })).json.code).toBe(CniCode.INVALID_ENV);
      expect((await run(env('DEL'), '{')).json.code).toBe(CniCode.DECODE_FAILURE);
    });
  });

  describe('CHECK', () => {
    it('passes after ADD, with and without prevResult', async () => {
      const add = await run(env('ADD'));
      expect(await run(env('CHECK'))).toMatchObject({ exitCode: 0, stdout: '' });
      expect((await run(env('CHECK'), conf({ prevResult: add.json }))).exitCode).toBe(0);
    });

    it('fails with 102 naming what is wrong', async () => {
      await run(env('ADD'));
      net.links.get(hostVethName('c1', 'eth0'))!.gateways.length = 0;
      const r = await run(env('CHECK'));
      expect(r.json.code).toBe(CniCode.CHECK_FAILED);
      expect(r.json.msg).toContain('no default route via 198.19.9.1');
      net.links.clear();
      expect((await run(env('CHECK'))).json.msg).toContain('does not exist');
    });

    it('fails when prevResult disagrees with what meshnet holds', async () => {
      await run(env('ADD'));
      const prev = { interfaces: [{ name: 'eth0', sandbox: NS }], ips: [{ address: '198.19.9.99/24', interface: 0 }] };
      const r = await run(env('CHECK'), conf({ prevResult: prev }));
      expect(r.json.code).toBe(CniCode.CHECK_FAILED);
      expect(r.json.msg).toContain('198.19.9.2/24');
    });

    it('answers 3 for a container meshnet does not know and 1 before spec 0.4.0', async () => {
      expect((await run(env('CHECK', 'stranger'))).json.code).toBe(CniCode.UNKNOWN_CONTAINER);
      const r = await run(env('CHECK'), conf({}, '0.3.1'));
      expect(r.json).toMatchObject({ cniVersion: '0.3.1', code: CniCode.INCOMPATIBLE_VERSION });
    });
  });

  describe('STATUS', () => {
    it('succeeds when IPAM is ready and answers 50 when not', async () => {
      expect(await run({ CNI_COMMAND: 'STATUS' }, conf({}, '1.1.0'))).toMatchObject({ exitCode: 0, stdout: '' });
      alloc.isReady = false;
      expect((await run({ CNI_COMMAND: 'STATUS' }, conf({}, '1.1.0'))).json.code).toBe(CniCode.NOT_AVAILABLE);
    });
    it('needs spec 1.1.0', async () => {
      expect((await run({ CNI_COMMAND: 'STATUS' }, conf({}, '1.0.0'))).json.code).toBe(CniCode.INCOMPATIBLE_VERSION);
    });
  });

  describe('GC', () => {
    it('releases attachments the runtime no longer has and removes orphan veths', async () => {
      await run(env('ADD', 'keep'));
      await run(env('ADD', 'stale'));
      // A veth whose allocation record was lost.
      await run(env('ADD', 'orphan'));
      alloc.held.delete('orphan/eth0');
      const valid = [{ containerID: 'keep', ifname: 'eth0' }];
      const r = await run({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin' }, conf({ 'cni.dev/valid-attachments': valid }, '1.1.0'));
      expect(r).toMatchObject({ exitCode: 0, stdout: '' });
      expect([...alloc.held.keys()]).toEqual(['keep/eth0']);
      expect([...net.links.keys()]).toEqual([hostVethName('keep', 'eth0')]);
    });

    it('needs spec 1.1.0 and the attachment list', async () => {
      expect((await run({ CNI_COMMAND: 'GC' }, conf({ 'cni.dev/valid-attachments': [] }, '1.0.0'))).json.code).toBe(CniCode.INCOMPATIBLE_VERSION);
      const r = await run({ CNI_COMMAND: 'GC' }, conf({}, '1.1.0'));
      expect(r.json.code).toBe(CniCode.INVALID_CONFIG);
      expect(r.json.msg).toContain('cni.dev/valid-attachments');
    });
  });

  describe('bad input', () => {
    it.each([
      ['malformed JSON', env('ADD'), '{"cniVersion":', CniCode.DECODE_FAILURE, 'not valid JSON'],
      ['a missing field', env('ADD'), JSON.stringify({ cniVersion: '1.0.0', type: 'meshnet' }), CniCode.INVALID_CONFIG, '"name"'],
      ['a wrong-typed field', env('ADD'), conf({ mtu: 'big' }), CniCode.INVALID_CONFIG, '"mtu"="big"'],
      ['an unsupported cniVersion', env('ADD'), conf({ cniVersion: '0.2.0' }), CniCode.INCOMPATIBLE_VERSION, '"0.2.0"'],
      ['an unknown command', env('FROB'), conf(), CniCode.INVALID_ENV, 'CNI_COMMAND="FROB"'],
      ['no command', { CNI_CONTAINERID: 'c1' }, conf(), CniCode.INVALID_ENV, 'CNI_COMMAND is missing'],
      ['a netns that does not exist', { ...env('ADD'), CNI_NETNS: '/run/netns/nope' }, conf(), CniCode.UNKNOWN_CONTAINER, '/run/netns/nope'],
      ['an invalid bridge name', env('ADD'), conf({ bridge: 'br:0' }), CniCode.INVALID_CONFIG, '"bridge"="br:0"'],
      ['an ipam section', env('ADD'), conf({ ipam: { type: 'host-local' } }), CniCode.UNSUPPORTED_FIELD, 'ipam'],
    ])('%s gets a CNI error naming the field or value', async (_what, e, config, code, named) => {
      const r = await run(e, config);
      expect(r.exitCode).toBe(1);
      expect(r.json.code).toBe(code);
      expect(r.json.msg).toContain(named);
      expect(Object.keys(r.json).sort()).toEqual(expect.arrayContaining(['cniVersion', 'code', 'msg']));
      expect(String(r.json.msg)).not.toContain('\n');
      expect(alloc.held.size).toBe(0);
      expect(net.links.size).toBe(0);
    });

    it('answers errors in the config version when it speaks it', async () => {
      const r = await run(env('FROB'), conf({}, '0.3.1'));
      expect(r.json.cniVersion).toBe('0.3.1');
    });
  });
});
