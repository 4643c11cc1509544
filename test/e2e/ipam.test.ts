// IPAM with real daemons: parallel allocations across a mesh, restarts,
// partitions, two meshes that claimed separately, rmpeer, reset, bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiRequestFailed, callApi } from '../../router/api-client.js';
import type { StatusJson } from '../../router/status.js';
import { crashDaemon, launch, meshnet, status } from '../harness/meshnet.js';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';

interface Allocation {
  containerId: string;
  iface: string;
  address: string;
}

const RANGE = '198.19.0.0/16';

function allocate(h: TestHost, containerId: string): Promise<Allocation> {
  return callApi<Allocation>(h.runDir, 'POST', '/ipam/allocate', { containerId, iface: 'eth0' }, 60_000);
}

function allocations(h: TestHost): Promise<Allocation[]> {
  return callApi<Allocation[]>(h.runDir, 'GET', '/ipam/allocations');
}

function inRange(ip: string, cidr = RANGE): boolean {
  const [base, bits] = cidr.split('/') as [string, string];
  const n = (a: string): number => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(bits));
  return n(ip) >= n(base) && n(ip) < n(base) + size;
}

/** Every range of every peer's view of the ring, checked for overlap. */
function overlaps(s: StatusJson): string[] {
  const n = (a: string): number => a.split('.').reduce((v, o) => v * 256 + Number(o), 0);
  const rs = s.ipam.ranges.map((r) => ({ start: n(r.start), end: n(r.start) + r.size, owner: r.owner })).sort((a, b) => a.start - b.start);
  const bad: string[] = [];
  for (let i = 1; i < rs.length; i++) if (rs[i]!.start < rs[i - 1]!.end) bad.push(`${rs[i - 1]!.owner} and ${rs[i]!.owner} overlap`);
  return bad;
}

async function ringsAgree(hosts: TestHost[]): Promise<boolean> {
  const views = await Promise.all(hosts.map(async (h) => JSON.stringify((await status(h)).ipam.ranges)));
  return views.every((v) => v === views[0]) && (await status(hosts[0]!)).ipam.ready;
}

async function nftDrop(h: TestHost, others: TestHost[]): Promise<void> {
  const rules = others.flatMap((o) => [`add rule inet mnpart in ip saddr ${o.address} drop`, `add rule inet mnpart out ip daddr ${o.address} drop`]);
  await h.run('nft', [`add table inet mnpart; add chain inet mnpart in { type filter hook input priority 0; }; add chain inet mnpart out { type filter hook output priority 0; }; ${rules.join('; ')}`]);
}

describe('IPAM across five real daemons', () => {
  let net: TestNet;
  let hosts: TestHost[];

  beforeAll(async () => {
    net = await TestNet.create(5);
    hosts = net.hosts;
    // consensus=5: nobody claims until all five agree on the peer set.
    await Promise.all(hosts.map((h) => launch(h, { peers: h === hosts[0] ? [] : [hosts[0]!.address], args: ['--ipalloc-init', 'consensus=5'] })));
    await waitFor(() => ringsAgree(hosts), 60_000, 'one agreed ring');
  });

  afterAll(async () => {
    await net?.destroy();
  });

  it('500 allocations issued in parallel across all hosts are distinct and inside the range', async () => {
    const results = await Promise.all(Array.from({ length: 500 }, (_, i) => allocate(hosts[i % 5]!, `par${i}`)));
    const addrs = results.map((r) => r.address);
    expect(new Set(addrs).size).toBe(500);
    expect(addrs.every((a) => inRange(a))).toBe(true);
    // Asking again for the same container gives the same address.
    expect((await allocate(hosts[3]!, 'par3')).address).toBe(results[3]!.address);
    for (const h of hosts) expect(overlaps(await status(h))).toEqual([]);
  });

  it('a daemon killed with -9 keeps its allocations when it restarts', async () => {
    const h2 = hosts[1]!;
    const before = (await allocations(h2)).map((a) => `${a.containerId}=${a.address}`).sort();
    expect(before.length).toBeGreaterThan(50);
    crashDaemon(h2);
    await launch(h2, { peers: [hosts[0]!.address], args: ['--ipalloc-init', 'consensus=5'] });
    await waitFor(async () => (await status(h2)).ipam.ready, 30_000, 'h2 ready again');
    const after = (await allocations(h2)).map((a) => `${a.containerId}=${a.address}`).sort();
    expect(after).toEqual(before);
  });

  it('a partition: both sides allocate, and after the heal everything is distinct and the ring converges', async () => {
    const [a, b] = [hosts.slice(0, 2), hosts.slice(2)];
    for (const h of a) await nftDrop(h, b);
    try {
      // Each side allocates from what it owns (and borrows only inside its side).
      const sideA = await Promise.all(Array.from({ length: 40 }, (_, i) => allocate(a[i % 2]!, `partA${i}`)));
      const sideB = await Promise.all(Array.from({ length: 60 }, (_, i) => allocate(b[i % 3]!, `partB${i}`)));
      expect(new Set([...sideA, ...sideB].map((r) => r.address)).size).toBe(100);
    } finally {
      for (const h of a) await h.run('nft', ['delete table inet mnpart']);
    }
    await waitFor(() => ringsAgree(hosts), 90_000, 'ring converged after the heal');
    const all = (await Promise.all(hosts.map(allocations))).flat();
    expect(new Set(all.map((x) => x.address)).size).toBe(all.length);
    for (const h of hosts) expect(overlaps(await status(h))).toEqual([]);
  });

  it('rmpeer on two hosts at once gives a dead peer\'s space to exactly one owner', async () => {
    const dead = hosts[4]!;
    const deadName = (await status(dead)).name;
    crashDaemon(dead);
    await waitFor(async () => !(await status(hosts[0]!)).peers.some((p) => p.nickname === dead.id), 30_000, 'h5 gone');
    const results = await Promise.allSettled([meshnet(hosts[0]!, ['rmpeer', dead.id]), meshnet(hosts[1]!, ['rmpeer', dead.id])]);
    const outs = results.map((r) => (r.status === 'fulfilled' ? r.value : { code: 1, stdout: '', stderr: String(r.reason) }));
    expect(outs.some((o) => o.code === 0)).toBe(true);
    for (const o of outs) expect(o.stderr.split('\n').filter(Boolean).length).toBeLessThanOrEqual(1);
    const live = hosts.slice(0, 4);
    await waitFor(async () => (await ringsAgree(live)) && !(await status(live[0]!)).ipam.ranges.some((r) => r.owner === deadName), 60_000, 'h5 removed from the ring');
    for (const h of live) expect(overlaps(await status(h))).toEqual([]);
    // Its space is usable: allocations keep working.
    expect(inRange((await allocate(hosts[2]!, 'after-rmpeer')).address)).toBe(true);
  });

  it('reset hands this peer\'s space to a live peer before its state is deleted', async () => {
    const h4 = hosts[3]!;
    const name = (await status(h4)).name;
    const owned = (await status(h4)).ipam.owned;
    expect(owned).toBeGreaterThan(0);
    const r = await meshnet(h4, ['reset', '--state-dir', h4.stateDir]);
    expect(r.code).toBe(0);
    const live = hosts.slice(0, 3);
    await waitFor(async () => (await ringsAgree(live)) && !(await status(live[0]!)).ipam.ranges.some((x) => x.owner === name), 30_000, 'h4 space handed over');
    const total = (await status(live[0]!)).ipam.ranges.reduce((n, x) => n + x.size, 0);
    expect(total).toBe(65536);
    const left = await h4.exec('ip', ['link', 'show', 'meshnet']);
    expect(left.code).not.toBe(0);
  });

  it('answers bad input with a clear error and treats an unknown release as success', async () => {
    const h1 = hosts[0]!;
    await expect(callApi(h1.runDir, 'POST', '/ipam/allocate', { containerId: 'bad id!', iface: 'eth0' })).rejects.toThrow(/container/i);
    await expect(callApi(h1.runDir, 'POST', '/ipam/claim', { containerId: 'c1', iface: 'eth0', address: '192.0.2.1' })).rejects.toThrow(ApiRequestFailed);
    await expect(callApi(h1.runDir, 'POST', '/ipam/release', { containerId: 'never-allocated' })).resolves.toBeDefined();
    expect((await status(h1)).ipam.ready).toBe(true);
  });
});

describe('two meshes that claimed address space separately', () => {
  let net: TestNet;
  beforeAll(async () => {
    net = await TestNet.create(4);
  });
  afterAll(async () => {
    await net?.destroy();
  });

  it('never merge into overlapping ownership and keep every allocation', async () => {
    const [h1, h2, h3, h4] = net.hosts as [TestHost, TestHost, TestHost, TestHost];
    // Mesh A: h1+h2; mesh B: h3+h4, each claims the whole range on its own.
    await launch(h1, { args: ['--ipalloc-init', 'consensus=1'] });
    await launch(h2, { peers: [h1.address] });
    await launch(h3, { args: ['--ipalloc-init', 'consensus=1'] });
    await launch(h4, { peers: [h3.address] });
    await waitFor(async () => (await ringsAgree([h1, h2])) && (await ringsAgree([h3, h4])), 30_000, 'two rings');
    const a = await Promise.all(Array.from({ length: 20 }, (_, i) => allocate(i % 2 ? h2 : h1, `meshA${i}`)));
    const b = await Promise.all(Array.from({ length: 20 }, (_, i) => allocate(i % 2 ? h4 : h3, `meshB${i}`)));
    const before = new Map([...a, ...b].map((x) => [x.containerId, x.address]));

    expect((await meshnet(h2, ['connect', h3.address])).code).toBe(0);
    await waitFor(async () => (await status(h1)).peers.length === 4, 30_000, 'one mesh of four');
    await waitFor(async () => {
      const views = await Promise.all(net.hosts.map(status));
      return views.every((s) => overlaps(s).length === 0 && s.ipam.ranges.length > 0) && (await ringsAgree(net.hosts));
    }, 60_000, 'one ring without overlap');
    // Every allocation made before the meeting is still held, at the same address.
    const after = new Map((await Promise.all(net.hosts.map(allocations))).flat().map((x) => [x.containerId, x.address]));
    for (const [id, addr] of before) expect(after.get(id)).toBe(addr);
    // What happened is said in status.
    const st = (await status(h3)).ipam as Record<string, unknown>;
    expect(JSON.stringify(st)).toMatch(/split|ring/i);
  });
});
