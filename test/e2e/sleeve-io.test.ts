// The sleeve's I/O layer on real devices, over both backends: TAPs opened in
// host namespaces, frames moved between pods by the minimal forwarder in
// bench/ (sealed with secretbox), a TCP transfer checked byte for byte
// (exercising TSO segmentation and receive coalescing on the native
// backend), and DF/EMSGSIZE/path MTU on the UDP socket.
// Needs `npm run build` (the forwarder runs from dist/ inside namespaces).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPods, forwarderScript, startForwarders, type Pod } from '../../bench/sleeve-io-topology.js';
import { runIn, TestNet, waitFor } from '../harness/netns.js';

const MTU = 1420;
const distIo = resolve(import.meta.dirname, '../../dist/datapath/io/index.js');

const RECEIVER = `
import socket, hashlib
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7000))
s.listen(1)
c, _ = s.accept()
h = hashlib.sha256()
n = 0
while True:
    d = c.recv(65536)
    if not d:
        break
    h.update(d)
    n += len(d)
print(n, h.hexdigest())
`;
const SENDER = `
import socket, hashlib, os, sys
d = os.urandom(6 << 20)
s = socket.create_connection((sys.argv[1], 7000), timeout=20)
s.sendall(d)
s.close()
print(len(d), hashlib.sha256(d).hexdigest())
`;

async function transfer(net: TestNet, from: Pod, to: Pod): Promise<{ sent: string; received: string }> {
  const server = spawn('ip', ['netns', 'exec', to.ns, 'python3', '-c', RECEIVER], { stdio: ['ignore', 'pipe', 'pipe'] });
  net.track(server);
  let received = '';
  server.stdout!.on('data', (d: Buffer) => (received += d.toString()));
  const done = new Promise<void>((ok) => server.once('exit', () => ok()));
  await waitFor(async () => (await runIn(to.ns, 'ss', ['-ltn', 'sport = :7000'])).stdout.includes('7000'), 10_000, 'receiver listening');
  const r = await runIn(from.ns, 'python3', ['-c', SENDER, to.ip], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`sender: ${r.stderr}`);
  await Promise.race([done, new Promise((_, fail) => setTimeout(() => fail(new Error('receiver did not finish')), 30_000))]);
  return { sent: r.stdout.trim(), received: received.trim() };
}

describe.each(['native', 'node'] as const)('sleeve I/O, %s backend', (backend) => {
  let net: TestNet;
  let pods: Pod[];

  beforeAll(async () => {
    if (!existsSync(forwarderScript())) throw new Error(`${forwarderScript()} missing: run \`npm run build\` first`);
    net = await TestNet.create(2);
    pods = await addPods(net, MTU);
  });
  afterAll(async () => {
    await net?.destroy();
  });

  it('carries sealed frames between pods (ping) and drops nothing', async () => {
    const fwds = await startForwarders(net, pods, { backend, offload: backend === 'native', encrypted: true, mtu: MTU });
    const r = await runIn(pods[0]!.ns, 'ping', ['-c', '3', '-i', '0.2', '-W', '2', pods[1]!.ip]);
    const stats = await Promise.all(fwds.map((f) => f.stop()));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    for (const s of stats as { framesOut: number; framesIn: number; badDatagrams: number; device: { drops: Record<string, number> } }[]) {
      expect(s.framesOut).toBeGreaterThanOrEqual(3);
      expect(s.framesIn).toBeGreaterThanOrEqual(3);
      expect(s.badDatagrams).toBe(0);
      expect(Object.values(s.device.drops).every((v) => v === 0)).toBe(true);
    }
  });

  it('carries a TCP transfer intact', async () => {
    const fwds = await startForwarders(net, pods, { backend, offload: backend === 'native', encrypted: true, mtu: MTU });
    try {
      const { sent, received } = await transfer(net, pods[0]!, pods[1]!);
      expect(received).toBe(sent);
      expect(sent).toMatch(/^6291456 [0-9a-f]{64}$/);
    } finally {
      const stats = (await Promise.all(fwds.map((f) => f.stop()))) as { device: { rxGso: number; txGso: number } }[];
      if (backend === 'native') {
        // The sender's TAP handed over super-packets; the receiver wrote coalesced ones.
        expect(stats[0]!.device.rxGso).toBeGreaterThan(0);
        expect(stats[1]!.device.txGso).toBeGreaterThan(0);
      }
    }
  });

  it('answers a too-big DF packet with an ICMP the pod\'s kernel accepts (its path MTU drops)', async () => {
    const [pod] = pods as [Pod, Pod];
    const code = `
      const { ioBackend, buildFragNeeded, ipv4PacketLength } = await import(${JSON.stringify(distIo)});
      const { execFileSync } = await import('node:child_process');
      const tap = await ioBackend(process.argv[1]).openTap({ name: 'meshnet-sleeve', offload: process.argv[1] === 'native' });
      execFileSync('ip', ['link', 'set', 'meshnet-sleeve', 'mtu', '1420', 'master', 'meshnet', 'up']);
      tap.onFrames((b) => {
        for (let i = 0; i < b.count; i++) {
          // Only the probe to 198.19.0.99: late segments of the stream tests above may still arrive.
          const o = b.offs[i];
          if (b.buf[o + 30] !== 198 || b.buf[o + 31] !== 19 || b.buf[o + 32] !== 0 || b.buf[o + 33] !== 99) continue;
          if (ipv4PacketLength(b.buf, o, b.lens[i]) <= 1200) continue;
          const icmp = buildFragNeeded(b.buf, b.offs[i], b.lens[i], 1200);
          if (!icmp) continue;
          tap.write({ buf: icmp, offs: Uint32Array.of(0), lens: Uint32Array.of(icmp.length), count: 1 });
          console.log('answered');
          setTimeout(() => { tap.close(); process.exit(0); }, 200);
        }
      });
      console.log('ready');
    `;
    const child = spawn('ip', ['netns', 'exec', pod.host.ns, process.execPath, '--input-type=module', '-e', code, backend], { stdio: ['ignore', 'pipe', 'pipe'] });
    net.track(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('ready'), 10_000, 'TAP reader ready');
    // A peer that exists only as a MAC, so the pod sends without ARP.
    await net.ip(pod.ns, ['neigh', 'replace', '198.19.0.99', 'lladdr', '02:00:00:00:00:99', 'dev', 'eth0']);
    const send = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set
s.connect(("198.19.0.99", 9))
s.send(bytes(1300))
# The kernel applies a frag-needed ICMP to the route only while the socket that
# sent the packet exists: stay until the path MTU drops (or give up after 8 s).
import time
deadline = time.time() + 8
while time.time() < deadline and s.getsockopt(socket.IPPROTO_IP, 14) > 1200:  # IP_MTU
    time.sleep(0.05)
print(s.getsockopt(socket.IPPROTO_IP, 14))
`;
    const r = await runIn(pod.ns, 'python3', ['-c', send]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('1200');
    expect(out).toContain('answered');
    const mtu = await waitFor(async () => /mtu 1200/.exec((await runIn(pod.ns, 'ip', ['route', 'get', '198.19.0.99'])).stdout), 5000, 'the pod to learn mtu 1200');
    expect(mtu[0]).toBe('mtu 1200');
    await new Promise((ok) => (child.exitCode === null ? child.once('exit', ok) : ok(null)));
  });

  it('reports a device deleted under it through onError, without crashing', async () => {
    const code = `
      const { ioBackend } = await import(${JSON.stringify(distIo)});
      const { execFileSync } = await import('node:child_process');
      const tap = await ioBackend(process.argv[1]).openTap({ name: 'mnerr0', offload: process.argv[1] === 'native' });
      tap.onFrames(() => {});
      const failed = new Promise((ok) => tap.onError((e) => ok(e.message)));
      execFileSync('ip', ['link', 'set', 'mnerr0', 'up']);
      execFileSync('ip', ['link', 'del', 'mnerr0']);
      let timer;
      const msg = await Promise.race([failed, new Promise((ok) => (timer = setTimeout(() => ok('no error'), 5000)))]);
      clearTimeout(timer);
      console.log(JSON.stringify({ msg, rxErrors: tap.stats().rxErrors }));
      tap.close();
    `;
    const r = await net.host(1).exec(process.execPath, ['--input-type=module', '-e', code, backend], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { msg: string; rxErrors: number };
    expect(out.msg).toMatch(/^tap mnerr0: read failed: /);
    expect(out.rxErrors).toBe(1);
  });

  it('learns a smaller path MTU from a router\'s ICMP: pathMtu drops and the next big datagram gets EMSGSIZE', async () => {
    // a --(1500)-- r --(1300)-- b, routed: only r knows the small link.
    const rt = await TestNet.create(0);
    try {
      const [a, r, b] = ['a', 'r', 'b'].map((x) => `${rt.prefix}-${x}`) as [string, string, string];
      for (const ns of [a, r, b]) await rt.addNamespace(ns);
      await rt.ip(a, ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'ra', 'netns', r]);
      await rt.ip(b, ['link', 'add', 'eth0', 'mtu', '1300', 'type', 'veth', 'peer', 'name', 'rb', 'netns', r]);
      await rt.ip(r, ['link', 'set', 'rb', 'mtu', '1300']);
      await rt.ip(a, ['addr', 'add', '198.18.1.1/24', 'dev', 'eth0']);
      await rt.ip(b, ['addr', 'add', '198.18.2.1/24', 'dev', 'eth0']);
      await rt.ip(r, ['addr', 'add', '198.18.1.254/24', 'dev', 'ra']);
      await rt.ip(r, ['addr', 'add', '198.18.2.254/24', 'dev', 'rb']);
      for (const [ns, dev] of [[a, 'eth0'], [b, 'eth0'], [r, 'ra'], [r, 'rb']] as const) await rt.ip(ns, ['link', 'set', dev, 'up']);
      await rt.ip(a, ['route', 'add', 'default', 'via', '198.18.1.254']);
      await rt.ip(b, ['route', 'add', 'default', 'via', '198.18.2.254']);
      await runIn(r, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      const code = `
        const { ioBackend, ipToU32 } = await import(${JSON.stringify(distIo)});
        const s = await ioBackend(process.argv[1]).openUdp({ address: '198.18.1.1', port: 0 });
        const errs = [];
        s.onSendError((e) => errs.push(e.code));
        const before = await s.pathMtu('198.18.2.1');
        const buf = Buffer.alloc(1400);
        const batch = { buf, offs: Uint32Array.of(0), lens: Uint32Array.of(1400), addrs: Uint32Array.of(ipToU32('198.18.2.1'), 9), count: 1 };
        const firstSent = s.sendBatch(batch); // leaves with DF; r answers "fragmentation needed"
        await new Promise((r) => setTimeout(r, 300));
        const after = await s.pathMtu('198.18.2.1');
        s.sendBatch(batch);
        await new Promise((r) => setTimeout(r, 300));
        console.log(JSON.stringify({ before, firstSent, after, errs }));
        s.close();
      `;
      const res = await runIn(a, process.execPath, ['--input-type=module', '-e', code, backend], { timeoutMs: 20_000 });
      expect(res.code, res.stderr).toBe(0);
      expect(JSON.parse(res.stdout)).toEqual({ before: 1500, firstSent: 1, after: 1300, errs: ['EMSGSIZE'] });
    } finally {
      await rt.destroy();
    }
  });

  it('sets DF: a datagram over the path MTU is refused with EMSGSIZE, and pathMtu reports the link MTU', async () => {
    const small = await TestNet.create([{ mtu: 1400 }, {}]);
    try {
      const [h1, h2] = small.hosts as [(typeof small.hosts)[0], (typeof small.hosts)[0]];
      const code = `
        const { ioBackend, ipToU32 } = await import(${JSON.stringify(distIo)});
        const s = await ioBackend(process.argv[1]).openUdp({ address: ${JSON.stringify(h1.address)}, port: 0 });
        const errs = [];
        s.onSendError((e) => errs.push(e.code + ':' + e.length));
        const buf = Buffer.alloc(1500);
        const batch = (len) => ({ buf, offs: Uint32Array.of(0), lens: Uint32Array.of(len), addrs: Uint32Array.of(ipToU32(${JSON.stringify(h2.address)}), 9), count: 1 });
        const okSent = s.sendBatch(batch(1372));
        s.sendBatch(batch(1373));
        await new Promise((r) => setTimeout(r, 300));
        console.log(JSON.stringify({ okSent, errs, mtu: await s.pathMtu(${JSON.stringify(h2.address)}), stats: s.stats() }));
        s.close();
      `;
      const r = await h1.exec(process.execPath, ['--input-type=module', '-e', code, backend], { timeoutMs: 20_000 });
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout) as { okSent: number; errs: string[]; mtu: number; stats: { txMsgSize: number } };
      expect(out.okSent).toBe(1); // 1372 + 28 = 1400 fits
      expect(out.errs).toEqual(['EMSGSIZE:1373']);
      expect(out.stats.txMsgSize).toBe(1);
      expect(out.mtu).toBe(1400);
    } finally {
      await small.destroy();
    }
  });
});
