// The fast datapath at kernel level: 3 hosts in namespaces, devices ensured
// and entries programmed through datapath/fastdp (running in each host's
// namespace, as the daemon will), "pods" as namespaces on the bridge.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor } from '../harness/netns.js';
import { startAgent, startTap, type Agent, type TapIo } from './fastdp-kernel-runner.js';
import { addressMoves, addressView, computeDesired, gratuitousArp, type ModelInput, type PodEndpoint, type RemotePeer } from '../../datapath/fastdp/index.js';
import type { DevicesReport, EntryOp, ReconcileReport } from '../../datapath/fastdp/index.js';
import type { FdbEntry, Link, Neighbour } from '../../datapath/netlink/index.js';

const VNI = 4242;
const MTU = 1450;

interface Pod extends PodEndpoint {
  host: number;
  ns: string;
  veth: string;
}

describe('fastdp in the kernel (3 hosts)', () => {
  let net: TestNet;
  const agents: Agent[] = [];
  const taps: TapIo[] = [];
  const pods: Pod[] = [];
  const peerName = (i: number): string => `aa:00:00:00:00:0${i}`;
  const vtep = (i: number): string => net.host(i).address;
  let present = new Set([1, 2, 3]);
  const updatedAt = new Map<number, number>([
    [1, 1],
    [2, 1],
    [3, 1],
  ]);
  const agent = (i: number): Agent => agents[i - 1]!;

  const input = (i: number): ModelInput => ({
    vni: VNI,
    localPods: pods.filter((p) => p.host === i).map(({ mac, ip }) => ({ mac, ip })),
    peers: [...present]
      .filter((j) => j !== i)
      .map(
        (j): RemotePeer => ({
          name: peerName(j),
          vtep: vtep(j),
          vni: VNI,
          datapath: 'fastdp',
          pods: pods.filter((p) => p.host === j).map(({ mac, ip }) => ({ mac, ip })),
          updatedAt: updatedAt.get(j)!,
        }),
      ),
  });
  const reconcile = (i: number): Promise<ReconcileReport> => agent(i).call<ReconcileReport>('fastdp', 'reconcile', input(i));
  const plan = (i: number): Promise<EntryOp[]> => agent(i).call<EntryOp[]>('fastdp', 'plan', input(i));
  const ensure = (i: number): Promise<DevicesReport> => agent(i).call<DevicesReport>('fastdp', 'ensure', { localIp: vtep(i), vni: VNI });

  async function addPod(host: number, n: number, ip: string, mac: string): Promise<Pod> {
    const ns = net.host(host).podNs(`p${n}`);
    await net.addNamespace(ns);
    const veth = `mnh${host}p${n}`;
    const path = `/var/run/netns/${ns}`;
    await agent(host).call('nl', 'createVeth', veth, { name: 'eth0', netns: { path }, mtu: MTU, mac }, { mtu: MTU, master: 'meshnet', up: true });
    await agent(host).call('netns', 'configure', path, { dev: 'eth0', addresses: [`${ip}/16`] });
    const pod = { host, ns, veth, ip, mac };
    pods.push(pod);
    return pod;
  }

  const ping = async (from: Pod, ip: string, wait = '1'): Promise<boolean> => (await net.host(from.host).exec('ip', ['netns', 'exec', from.ns, 'ping', '-c', '1', '-W', wait, ip])).code === 0;

  /** Packets on the underlay switch matching a tcpdump filter while `during` runs. */
  async function countOnUnderlay(filter: string, during: () => Promise<void>): Promise<number> {
    const td = spawn('ip', ['netns', 'exec', net.switchNs, 'tcpdump', '-i', 'br0', '-n', '-l', '-q', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
    net.track(td);
    let lines = 0;
    let err = '';
    td.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').filter(Boolean).length));
    td.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await waitFor(() => err.includes('listening on'), 5000, 'tcpdump to start');
    await during();
    await new Promise((r) => setTimeout(r, 300));
    td.kill('SIGINT');
    await new Promise((r) => td.once('exit', r));
    return lines;
  }

  beforeAll(async () => {
    net = await TestNet.create(3);
    for (const h of net.hosts) agents.push(await startAgent(net, h.ns));
    for (const i of [1, 2, 3]) {
      const r = await ensure(i);
      expect(r.changes.length).toBeGreaterThan(0);
      expect(r.mtu).toBe(MTU);
    }
    for (const i of [1, 2, 3]) {
      await addPod(i, 1, `198.19.${i}.1`, `02:00:00:00:0${i}:01`);
      await addPod(i, 2, `198.19.${i}.2`, `02:00:00:00:0${i}:02`);
    }
  }, 120_000);

  afterAll(async () => {
    for (const t of taps) t.close();
    for (const a of agents) a?.close();
    await net?.destroy();
  });

  it('leaves correct devices alone, repairs a corrupted one and recreates a wrong vxlan', async () => {
    for (const i of [1, 2, 3]) expect((await ensure(i)).changes).toEqual([]);
    const vx = await agent(1).call<Link>('nl', 'getLink', 'meshnet-vxlan');
    expect(vx.vxlan).toMatchObject({ vni: VNI, port: 6784, local: vtep(1), learning: false, df: 'set' });
    expect(vx.bridgePort).toMatchObject({ learning: false, unicastFlood: false, neighSuppress: true });

    await net.host(1).run('ip', ['link', 'set', 'meshnet-vxlan', 'mtu', '1400']);
    await net.host(1).run('bridge', ['link', 'set', 'dev', 'meshnet-vxlan', 'learning', 'on', 'flood', 'on']);
    const repaired = await ensure(1);
    expect(repaired.changes).toEqual(['set meshnet-vxlan: mtu 1400 -> 1450', 'set meshnet-vxlan: learning off, unicastFlood off']);
    expect(repaired.vxlanRecreated).toBe(false);
    expect((await ensure(1)).changes).toEqual([]);

    await net.host(3).run('ip', ['link', 'del', 'meshnet-vxlan']);
    await net.host(3).run('ip', ['link', 'add', 'meshnet-vxlan', 'type', 'vxlan', 'id', '7', 'dstport', '6784', 'local', vtep(3)]);
    const recreated = await ensure(3);
    expect(recreated.changes[0]).toBe('delete meshnet-vxlan (vni 7, want 4242)');
    expect(recreated.vxlanRecreated).toBe(true);
    expect((await ensure(3)).changes).toEqual([]);
  });

  it('programs every host, and a second reconcile applies nothing', async () => {
    for (const i of [1, 2, 3]) {
      const r = await reconcile(i);
      expect(r.failed).toEqual([]);
      // 4 remote pods × (neighbour, vxlan entry, pin) + 2 flood entries.
      expect(r.applied).toHaveLength(4 * 3 + 2);
    }
    for (const i of [1, 2, 3]) {
      expect((await reconcile(i)).applied).toEqual([]);
      expect(await plan(i)).toEqual([]);
    }
    // What the kernel holds, seen with iproute2.
    const fdb = await net.host(1).run('bridge', ['fdb', 'show', 'dev', 'meshnet-vxlan']);
    expect(fdb).toMatch(/00:00:00:00:00:00 dst 198.18.0.12 self permanent/);
    expect(fdb).toMatch(/02:00:00:00:02:01 dst 198.18.0.12 self permanent/);
    expect(fdb).toMatch(/02:00:00:00:03:02 sticky master meshnet static/);
    expect(await net.host(1).run('ip', ['neigh', 'show', 'dev', 'meshnet'])).toMatch(/198.19.3.2 lladdr 02:00:00:00:03:02 PERMANENT/);
  });

  it('every pod reaches every other pod (ICMP, and TCP across hosts)', async () => {
    const failures: string[] = [];
    await Promise.all(
      pods.map(async (a) => {
        for (const b of pods) if (a !== b && !(await ping(a, b.ip))) failures.push(`${a.ip} -> ${b.ip}`);
      }),
    );
    expect(failures).toEqual([]);
    const [server, client] = [pods.find((p) => p.host === 3)!, pods.find((p) => p.host === 1)!];
    const srv = spawn('ip', ['netns', 'exec', server.ns, 'iperf3', '-s', '-1', '-B', server.ip], { stdio: 'ignore' });
    net.track(srv);
    await waitFor(async () => (await net.host(3).exec('ip', ['netns', 'exec', server.ns, 'ss', '-ltn'])).stdout.includes(':5201'), 5000, 'iperf3 server');
    const r = await net.host(1).exec('ip', ['netns', 'exec', client.ns, 'iperf3', '-c', server.ip, '-t', '1', '-J'], { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).end.sum_received.bytes).toBeGreaterThan(1 << 20);
  });

  it('no ARP request crosses the underlay while pods talk (the bridge answers from the neighbour table)', async () => {
    const arpInVxlan = 'udp port 6784 and udp[28:2] = 0x0806';
    let vxlanPackets = 0;
    const arps = await countOnUnderlay(arpInVxlan, async () => {
      vxlanPackets = await countOnUnderlay('udp port 6784', async () => {
        for (const p of pods) await net.host(p.host).run('ip', ['netns', 'exec', p.ns, 'ip', 'neigh', 'flush', 'all']);
        await Promise.all(pods.map(async (a) => Promise.all(pods.filter((b) => b.host !== a.host).map((b) => ping(a, b.ip)))));
      });
    });
    expect(vxlanPackets).toBeGreaterThan(0);
    expect(arps).toBe(0);
    // The pods did resolve each other by ARP (answered locally by their bridge).
    const neigh = await net.host(1).run('ip', ['netns', 'exec', pods[0]!.ns, 'ip', 'neigh', 'show']);
    expect(neigh).toMatch(/198.19.3.1 dev eth0 lladdr 02:00:00:00:03:01/);
    // Control: ARP for an address nobody advertises does flood over the vxlan, and the filter sees it.
    const unknown = await countOnUnderlay(arpInVxlan, async () => void (await ping(pods[0]!, '198.19.200.200')));
    expect(unknown).toBeGreaterThan(0);
  });

  it('a pod address moved from h1 to h2 is reachable again within 2 s of reprogramming', async () => {
    for (const i of [1, 2, 3]) {
      taps.push(await startTap(net, net.host(i).ns, 'meshnet-sleeve'));
      expect(await agent(i).call('fastdp', 'attachSleeve')).toBe(true);
    }
    const moving = pods.find((p) => p.ip === '198.19.1.1')!;
    const watchers = [pods.find((p) => p.ip === '198.19.3.1')!, pods.find((p) => p.ip === '198.19.2.2')!];
    for (const w of watchers) expect(await ping(w, moving.ip)).toBe(true); // their ARP caches hold the old MAC
    const views = new Map([1, 2, 3].map((i) => [i, addressView(computeDesired(input(i)).desired, input(i).localPods)]));

    await agent(1).call('nl', 'deleteLink', moving.veth);
    pods.splice(pods.indexOf(moving), 1);
    await addPod(2, 11, '198.19.1.1', '02:00:00:00:02:11');
    const t0 = Date.now();
    updatedAt.set(1, 2);
    updatedAt.set(2, 2);
    await Promise.all(
      [1, 2, 3].map(async (i) => {
        const r = await reconcile(i);
        expect(r.failed).toEqual([]);
        // Announce moved addresses to local pods through the TAP.
        const next = addressView(computeDesired(input(i)).desired, input(i).localPods);
        for (const m of addressMoves(views.get(i)!, next)) taps[i - 1]!.write(gratuitousArp(m.mac, m.ip));
      }),
    );
    await Promise.all(watchers.map((w) => waitFor(() => ping(w, '198.19.1.1', '0.2'), 2000, `${w.ip} reaching the moved pod`, 20)));
    const elapsed = Date.now() - t0;
    console.log(`moved address reachable again ${elapsed} ms after reprogramming started`);
    expect(elapsed).toBeLessThan(2000);
    for (const i of [1, 2, 3]) expect(await plan(i)).toEqual([]);
  });

  it('kill -9 of a host agent does not interrupt traffic; its successor changes nothing', async () => {
    const [a, b] = [pods.find((p) => p.host === 1)!, pods.find((p) => p.host === 2)!];
    const pinger = net.host(1).exec('ip', ['netns', 'exec', a.ns, 'ping', '-i', '0.02', '-c', '150', '-W', '1', b.ip], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    agent(2).close();
    agents[1] = await startAgent(net, net.host(2).ns);
    expect((await ensure(2)).changes).toEqual([]);
    expect(await agent(2).call('fastdp', 'attachSleeve')).toBe(true);
    const r = await reconcile(2);
    expect(r.applied).toEqual([]);
    const out = (await pinger).stdout;
    expect(out).toMatch(/150 packets transmitted, 150 received, 0% packet loss/);
  });

  it('a peer that leaves: its FDB, neighbour and pin entries disappear from the others', async () => {
    const gone = pods.filter((p) => p.host === 3);
    present = new Set([1, 2]);
    for (const i of [1, 2]) {
      const r = await reconcile(i);
      expect(r.failed).toEqual([]);
      const ops = r.applied.map((o) => o.op);
      expect(ops.filter((o) => o.endsWith('-set') || o === 'flood-add')).toEqual([]);
      const fdb = await agent(i).call<FdbEntry[]>('nl', 'listFdb');
      expect(fdb.filter((e) => e.dst === vtep(3))).toEqual([]);
      expect(fdb.filter((e) => gone.some((p) => p.mac === e.mac))).toEqual([]);
      const neigh = await agent(i).call<Neighbour[]>('nl', 'listNeighbours', 'meshnet');
      expect(neigh.filter((n) => gone.some((p) => p.ip === n.ip))).toEqual([]);
      expect(await plan(i)).toEqual([]);
    }
    expect(await ping(pods.find((p) => p.host === 1)!, gone[0]!.ip, '0.5')).toBe(false);
  });

  it('reset removes bridge, vxlan and the sleeve TAP', async () => {
    const removed = await agent(3).call<string[]>('fastdp', 'reset');
    expect(removed).toEqual(['meshnet-vxlan', 'meshnet-sleeve', 'meshnet']);
    const links = await agent(3).call<Link[]>('nl', 'listLinks');
    expect(links.filter((l) => l.name.startsWith('meshnet'))).toEqual([]);
  });
});
