// Issue 6 end to end: the sleeve and the per-peer switch with real daemons
// and CNI pods. One mixed mesh (h3 with --no-fastdp, on the pure-Node I/O
// backend) carries the switch, relay and path MTU scenarios; a password
// mesh (one host on the pure-Node backend, so the addon's AEAD and
// sodium-native's interoperate) carries the encryption ones.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor, runIn, type TestHost } from '../harness/netns.js';
import { launch, logOf, meshnet, metricsText, status } from '../harness/meshnet.js';
import { datapaths, nftDrop, pingAll, podsOnEveryHost, tcpdumpDuring, tcpSendAll, waitDatapaths, type Pod } from '../harness/pods.js';

async function readyMesh(net: TestNet, extra: (h: TestHost) => { args?: string[]; env?: NodeJS.ProcessEnv; password?: string }): Promise<void> {
  const n = net.hosts.length;
  await Promise.all(
    net.hosts.map((h, i) => {
      const x = extra(h);
      return launch(h, { peers: i === 0 ? [] : [net.hosts[0]!.address], args: ['--ipalloc-init', `consensus=${n}`, ...(x.args ?? [])], ...(x.env ? { env: x.env } : {}), ...(x.password ? { password: x.password } : {}) });
    }),
  );
  for (const h of net.hosts) await waitFor(async () => (await status(h)).ipam.ready, 30_000, `${h.id} IPAM ready`);
}

/** iperf3 from pod a to pod b for `seconds`, started in the background. */
function iperf(net: TestNet, a: Pod, b: Pod, seconds: number, extra: string[] = []): Promise<{ code: number; intervals: number[]; received: number }> {
  const server = spawn('ip', ['netns', 'exec', b.ns, 'iperf3', '-s', '-1'], { stdio: 'ignore' });
  net.track(server);
  return (async () => {
    await waitFor(async () => (await runIn(b.ns, 'ss', ['-ltn'])).stdout.includes(':5201'), 5000, 'iperf3 server');
    const r = await runIn(a.ns, 'iperf3', ['-c', b.ip, '-t', String(seconds), '-i', '1', '-J', ...extra], { timeoutMs: (seconds + 40) * 1000 });
    try {
      const j = JSON.parse(r.stdout) as { intervals: { sum: { bytes: number } }[]; end: { sum_received: { bytes: number } } };
      return { code: r.code, intervals: j.intervals.map((x) => x.sum.bytes), received: j.end.sum_received.bytes };
    } catch {
      return { code: r.code || 1, intervals: [], received: 0 };
    }
  })();
}

describe('mixed mesh: h1, h2 normal, h3 --no-fastdp on the pure-Node sleeve', () => {
  let net: TestNet;
  let all: Pod[] = [];
  let stopSinks: () => void = () => undefined;
  let h1: TestHost, h2: TestHost, h3: TestHost;

  beforeAll(async () => {
    net = await TestNet.create(3);
    [h1, h2, h3] = net.hosts as [TestHost, TestHost, TestHost];
    await readyMesh(net, (h) => (h.id === 'h3' ? { args: ['--no-fastdp'], env: { MESHNET_IO: 'node' } } : {}));
    ({ all, stopSinks } = await podsOnEveryHost(net, ['p']));
  }, 120_000);

  afterAll(async () => {
    stopSinks();
    await net?.destroy();
  });

  it('h1–h2 use fastdp, h3 the sleeve to both, and every pod reaches every pod', async () => {
    await waitDatapaths(h1, { h2: 'fastdp', h3: 'sleeve' });
    await waitDatapaths(h2, { h1: 'fastdp', h3: 'sleeve' });
    await waitDatapaths(h3, { h1: 'sleeve', h2: 'sleeve' });
    for (const p of all) {
      const others = all.filter((o) => o !== p).map((o) => o.ip);
      expect(await pingAll(p, others)).toEqual(others);
      expect(await tcpSendAll(p, others, 300_000)).toEqual(others);
    }
    const s3 = await status(h3);
    expect(s3.datapath).toMatchObject({ io: 'node', fastdp: false });
    expect(s3.connections.find((c) => c.nickname === 'h1')!.info).toMatch(/^mtu=1450 unencrypted fastdp: disabled here/);
    expect((await status(h1)).connections.find((c) => c.nickname === 'h3')!.info).toMatch(/fastdp: the peer does not offer it/);
  });

  it('blocking UDP 6784 between h1 and h2 moves them to the sleeve within 5 s, the transfer completes, and unblocking moves them back', async () => {
    const [a, b] = [all[0]!, all[1]!];
    const transfer = iperf(net, a, b, 10);
    await new Promise((r) => setTimeout(r, 1500));
    const unblock = await nftDrop(h1, [`in ip saddr ${h2.address} udp dport 6784 drop`, `out ip daddr ${h2.address} udp dport 6784 drop`]);
    const t0 = Date.now();
    try {
      await waitDatapaths(h1, { h2: 'sleeve' }, 8000);
      const moved = Date.now() - t0;
      await waitDatapaths(h2, { h1: 'sleeve' }, 8000);
      console.log(`h1 moved h2 to the sleeve ${moved} ms after UDP 6784 was blocked`);
      expect(moved).toBeLessThan(5000);
      const r = await transfer;
      console.log(`transfer across the switch: ${r.intervals.map((x) => (x / 1e6).toFixed(0)).join(' ')} MB per second`);
      expect(r.code).toBe(0);
      expect(r.received).toBeGreaterThan(0);
      expect(r.intervals.slice(-3).every((x) => x > 0)).toBe(true);
      expect(logOf(h1)).toMatch(/datapath to h2 .*: fastdp -> sleeve \(fastdp heartbeats stopped/);
    } finally {
      await unblock();
    }
    const t1 = Date.now();
    await waitDatapaths(h1, { h2: 'fastdp' }, 8000);
    await waitDatapaths(h2, { h1: 'fastdp' }, 8000);
    console.log(`back on fastdp ${Date.now() - t1} ms after unblocking`);
    expect(await tcpSendAll(a, [b.ip], 1_000_000)).toEqual([b.ip]);
    const s = await status(h1);
    expect(s.datapath!.switches).toBeGreaterThanOrEqual(2);
    const metrics = { stdout: await metricsText(h1) };
    expect(metrics.stdout).toMatch(/meshnet_datapath_switches_total [2-9]/);
    expect(metrics.stdout).toMatch(/meshnet_connections\{state="established",encryption="plain",datapath="fastdp"\} 1/);
  });

  it('with all UDP between h1 and h3 blocked, their pods still talk, relayed through h2', async () => {
    const [a, , c] = all as [Pod, Pod, Pod];
    const unblock = await nftDrop(h1, [`in ip saddr ${h3.address} meta l4proto udp drop`, `out ip daddr ${h3.address} meta l4proto udp drop`]);
    try {
      // Each side finds out on its own (its heartbeats to the other stop): wait for both.
      const relays = async (from: typeof h1, to: string): Promise<boolean> => {
        const s = await status(from);
        return !!s.connections.find((x) => x.nickname === to)?.info.includes('via h2');
      };
      await waitFor(() => relays(h1, 'h3'), 15_000, 'h1 relays to h3 through h2');
      await waitFor(() => relays(h3, 'h1'), 15_000, 'h3 relays to h1 through h2');
      const relayedBefore = (await status(h2)).datapath!.sleeve.counters.relayed;
      expect(await pingAll(a, [c.ip])).toEqual([c.ip]);
      expect(await pingAll(c, [a.ip])).toEqual([a.ip]);
      expect(await tcpSendAll(a, [c.ip], 2_000_000)).toEqual([c.ip]);
      expect((await status(h2)).datapath!.sleeve.counters.relayed).toBeGreaterThan(relayedBefore + 100);
      expect((await status(h3)).connections.find((x) => x.nickname === 'h1')!.info).toContain('via h2');
    } finally {
      await unblock();
    }
    await waitFor(async () => !(await status(h1)).connections.find((x) => x.nickname === 'h3')!.info.includes('via'), 15_000, 'h1 reaches h3 directly again');
  });

  it('a lower underlay MTU on one link: a large TCP transfer across it completes (path MTU discovery, ICMP to the pod)', async () => {
    const [a, b, c] = all as [Pod, Pod, Pod];
    // The switch port of h2 carries at most 1300 bytes: full-size frames vanish without an ICMP.
    await net.ip(net.switchNs, ['link', 'set', 'h2', 'mtu', '1300']);
    try {
      // fastdp's full-size heartbeat no longer gets through: h1 and h2 fall back to the sleeve, which finds the path MTU.
      await waitDatapaths(h1, { h2: 'sleeve' }, 10_000);
      await waitFor(async () => (await status(h1)).datapath!.peers.find((p) => p.nickname === 'h2')?.sleeve.mtuVerified && (await status(h1)).datapath!.peers.find((p) => p.nickname === 'h2')!.sleeve.mtu! <= 1300 - 28 - 8 - 14, 10_000, 'h1 learns the path MTU to h2');
      const st = (await status(h1)).datapath!.peers.find((p) => p.nickname === 'h2')!;
      console.log(`path MTU h1 -> h2 over the sleeve: ${st.sleeve.mtu}`);
      expect(st.sleeve.mtu).toBeGreaterThan(1200);
      expect(await tcpSendAll(a, [b.ip], 5_000_000, 'x', 30_000)).toEqual([b.ip]);
      expect(await tcpSendAll(b, [a.ip], 5_000_000, 'x', 30_000)).toEqual([a.ip]);
      // The pod was told: its kernel caches the lower path MTU for that destination.
      const route = await runIn(a.ns, 'ip', ['route', 'get', b.ip]);
      expect(route.stdout).toMatch(/mtu \d+/);
      expect((await status(h1)).datapath!.sleeve.counters.fragNeededSent).toBeGreaterThan(0);
      // h3 (pure-Node sleeve) across the same link: the same discovery.
      expect(await tcpSendAll(c, [b.ip], 2_000_000, 'x', 30_000)).toEqual([b.ip]);
    } finally {
      await net.ip(net.switchNs, ['link', 'set', 'h2', 'mtu', '1500']);
    }
  });
});

describe('password mesh (h2 on the pure-Node backend)', () => {
  let net: TestNet;
  let all: Pod[] = [];
  let stopSinks: () => void = () => undefined;
  const PASSWORD = 'datapath e2e secret';

  beforeAll(async () => {
    net = await TestNet.create(2);
    await readyMesh(net, (h) => ({ password: PASSWORD, ...(h.id === 'h2' ? { env: { MESHNET_IO: 'node' } } : {}) }));
    ({ all, stopSinks } = await podsOnEveryHost(net, ['p']));
  }, 120_000);

  afterAll(async () => {
    stopSinks();
    await net?.destroy();
  });

  it('every connection is encrypted and on the sleeve; a marker never appears on the underlay; a replayed datagram is dropped and counted', async () => {
    const [h1, h2] = net.hosts as [TestHost, TestHost];
    await waitDatapaths(h1, { h2: 'sleeve' });
    await waitDatapaths(h2, { h1: 'sleeve' });
    for (const h of net.hosts) {
      const s = await status(h);
      expect(s.connections.filter((c) => c.state === 'established').every((c) => c.encrypted && / encrypted/.test(c.info))).toBe(true);
      expect(s.datapath).toMatchObject({ encrypted: true });
    }
    expect((await status(h1)).datapath!.aead).toBe('native');
    expect((await status(h2)).datapath!.aead).toBe('sodium');

    const marker = 'MESHNET-MARKER-0123456789';
    const bytes = await pcapDuring(net, 'marker.pcap', async () => {
      expect(await tcpSendAll(all[0]!, [all[1]!.ip], 300_000, marker)).toEqual([all[1]!.ip]);
      expect(await tcpSendAll(all[1]!, [all[0]!.ip], 300_000, marker)).toEqual([all[0]!.ip]);
    });
    expect(bytes.length).toBeGreaterThan(300_000);
    expect(bytes.includes(Buffer.from(marker))).toBe(false);
    expect(bytes.includes(Buffer.from(marker.slice(0, 8)))).toBe(false);

    // Replay a captured sleeve datagram h1 -> h2 (a lone ping's: bulk data may cross the capture
    // point as UDP GSO/GRO super-datagrams) from another socket: dropped as a replay, counted.
    const pings = await pcapDuring(net, 'ping.pcap', async () => void (await runIn(all[0]!.ns, 'ping', ['-c', '3', '-i', '0.2', all[1]!.ip])));
    const dgram = sleeveDatagrams(pings, h1.address, h2.address).find((d) => d[0] === 0x11 && d.length < 300)!;
    expect(dgram).toBeDefined();
    const before = (await status(h2)).datapath!.sleeve.drops.replay;
    const send = `const s=require('dgram').createSocket('udp4');s.send(Buffer.from('${dgram.toString('hex')}','hex'),6783,'${h2.address}',()=>s.close());`;
    await h1.run(process.execPath, ['-e', send]);
    await waitFor(async () => (await status(h2)).datapath!.sleeve.drops.replay > before, 5000, 'the replay to be counted');
    const metrics = { stdout: await metricsText(h2) };
    expect(metrics.stdout).toMatch(/meshnet_sleeve_dropped_total\{direction="rx",reason="replay"\} [1-9]/);
    expect(await datapaths(h2)).toEqual({ h1: 'sleeve' });
  });

  it('with the peers in --trusted-subnets, the encrypted mesh uses fastdp between them', async () => {
    const [h1, h2] = net.hosts as [TestHost, TestHost];
    for (const h of [h2, h1]) expect((await meshnet(h, ['stop'])).code).toBe(0);
    await readyMesh(net, (h) => ({ password: PASSWORD, args: ['--trusted-subnets', '198.18.0.0/24'], ...(h.id === 'h2' ? { env: { MESHNET_IO: 'node' } } : {}) }));
    await waitDatapaths(h1, { h2: 'fastdp' });
    await waitDatapaths(h2, { h1: 'fastdp' });
    expect((await status(h1)).connections.find((c) => c.nickname === 'h2')).toMatchObject({ encrypted: true, datapath: 'fastdp' });
    expect(await tcpSendAll(all[0]!, [all[1]!.ip], 1_000_000)).toEqual([all[1]!.ip]);
  });
});

/** The underlay as a pcap file (UDP only) while `during` runs. */
async function pcapDuring(net: TestNet, name: string, during: () => Promise<void>): Promise<Buffer> {
  const path = join(net.dir, name);
  await tcpdumpDuring(net, ['-s', '0', '-w', path, 'udp'], during);
  return readFileSync(path);
}

/** UDP payloads to port 6783 from `src` to `dst` in a pcap file (Ethernet link type). */
function sleeveDatagrams(pcap: Buffer, src: string, dst: string): Buffer[] {
  const ip = (s: string): Buffer => Buffer.from(s.split('.').map(Number));
  const out: Buffer[] = [];
  for (let at = 24; at + 16 <= pcap.length; ) {
    const incl = pcap.readUInt32LE(at + 8);
    const f = pcap.subarray(at + 16, at + 16 + incl);
    at += 16 + incl;
    if (f.length < 42 || f.readUInt16BE(12) !== 0x0800 || f[23] !== 17) continue;
    const ihl = (f[14]! & 15) * 4;
    if (!f.subarray(26, 30).equals(ip(src)) || !f.subarray(30, 34).equals(ip(dst))) continue;
    const u = 14 + ihl;
    if (f.readUInt16BE(u + 2) !== 6783) continue;
    out.push(Buffer.from(f.subarray(u + 8, 14 + f.readUInt16BE(16))));
  }
  return out;
}
