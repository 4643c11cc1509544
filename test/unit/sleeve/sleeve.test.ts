// The sleeve's forwarding logic over in-memory TAPs and UDP: delivery,
// sealing, drops by reason, relaying around blocked UDP, broadcast trees,
// path MTU discovery and ICMP "fragmentation needed".
import { describe, expect, it } from 'vitest';
import { Cluster, podIpOf, podMacOf } from './cluster.js';
import { ipv4Frame } from './fakes.js';
import { readHeader, emptyHeader, TYPE_FRAME } from '../../../datapath/sleeve/wire.js';
import { loadNativeIo } from '../../../datapath/native/index.js';

const BROADCAST = 'ff:ff:ff:ff:ff:ff';
const aeads = loadNativeIo() ? (['native', 'sodium'] as const) : (['sodium'] as const);

function frameTo(c: Cluster, from: number, to: number, ipLen = 100, marker = 0): Buffer {
  return ipv4Frame(podMacOf(to), podMacOf(from), podIpOf(from), podIpOf(to), ipLen, marker);
}

describe('sleeve, plain', () => {
  it('carries frames between two hosts unchanged, after the UDP link comes up', async () => {
    const c = new Cluster(2);
    await c.run(300);
    expect(c.node(1).sleeve.peerStatus(c.node(2).name)).toMatchObject({ link: 'up', via: 'direct', encrypted: false });
    const f = frameTo(c, 1, 2, 1000, 7);
    c.node(1).tap.inject([f, f]);
    await c.net.settle();
    expect(c.node(2).tap.take()).toEqual([f, f]);
    expect(c.node(1).sleeve.counters.txFrames).toBe(2);
    expect(c.node(2).sleeve.counters.rxFrames).toBe(2);
    // The datagram is the 8-byte header and the frame itself: VXLAN's overhead.
    c.net.capture = true;
    c.node(1).tap.inject([f]);
    await c.net.settle();
    const data = c.net.captured.find((x) => x.data.length > 100)!.data;
    expect(data.length).toBe(8 + f.length);
    const h = emptyHeader();
    expect(readHeader(data, 0, data.length, h)).toBeNull();
    expect(h.type).toBe(TYPE_FRAME);
  });

  it('drops and counts frames for MACs nobody owns, both ways', async () => {
    const c = new Cluster(2);
    await c.run(300);
    c.node(1).tap.inject([ipv4Frame('02:99:99:99:99:99', podMacOf(1), podIpOf(1), '198.19.9.9', 100)]);
    expect(c.node(1).sleeve.txDrops['no-owner']).toBe(1);
    // h2 thinks h1 owns a MAC that h1 does not have: h1 refuses to put it on its bridge.
    c.node(2).sleeve.setRemoteMacs(new Map([[c.node(1).name, [0x02_99_99_99_99_99]]]));
    c.node(2).tap.inject([ipv4Frame('02:99:99:99:99:99', podMacOf(2), podIpOf(2), '198.19.9.9', 100)]);
    await c.net.settle();
    expect(c.node(1).tap.take()).toEqual([]);
    expect(c.node(1).sleeve.rxDrops['no-owner']).toBe(1);
  });

  it('drops datagrams from unknown peers, with a bad header or a bad length', async () => {
    const c = new Cluster(2);
    await c.run(300);
    const rx = c.node(2).sleeve;
    const idx = c.node(2).sessions.get(1)!.index;
    const hdr = (type: number, index: number) => Buffer.from([0x10 | type, 0, 16, 0, index >>> 24, (index >>> 16) & 255, (index >>> 8) & 255, index & 255]);
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, Buffer.concat([hdr(1, idx ^ 0x5555), frameTo(c, 1, 2)]));
    c.net.inject('198.18.0.99', 6783, `${c.node(2).ip}:6783`, Buffer.concat([hdr(1, idx), frameTo(c, 1, 2)])); // plain: wrong source address
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, Buffer.from([0x10 | 1, 0, 16]));
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, Buffer.concat([hdr(9, idx), frameTo(c, 1, 2)]));
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, Buffer.concat([hdr(1, idx), Buffer.alloc(5)]));
    await c.net.settle();
    expect(rx.rxDrops).toMatchObject({ 'unknown-peer': 2, 'bad-length': 2, 'bad-header': 1 });
    expect(c.node(2).tap.take()).toEqual([]);
  });
});

describe.each(aeads)('sleeve, sealed (%s AEAD)', (aead) => {
  it('seals every datagram: the payload never appears on the wire, and frames arrive intact', async () => {
    const c = new Cluster(2, { sealed: true, aead });
    c.net.capture = true;
    await c.run(300);
    const f = frameTo(c, 1, 2, 600, 0x5a);
    f.fill(0x5a, 14 + 28); // a marker pattern
    c.node(1).tap.inject([f]);
    await c.net.settle();
    expect(c.node(2).tap.take()).toEqual([f]);
    const onWire = c.net.captured.filter((x) => x.data[0] === (0x10 | TYPE_FRAME));
    expect(onWire.length).toBe(1);
    expect(onWire[0]!.data.length).toBe(8 + 8 + f.length + 16); // header, counter, frame, tag
    expect(onWire[0]!.data.includes(Buffer.alloc(32, 0x5a))).toBe(false);
    expect(c.node(1).sleeve.peerStatus(c.node(2).name).encrypted).toBe(true);
  });

  it('drops a replayed datagram and a forged one, counted, before delivery', async () => {
    const c = new Cluster(2, { sealed: true, aead });
    await c.run(300);
    c.net.capture = true;
    const f = frameTo(c, 1, 2, 300);
    c.node(1).tap.inject([f]);
    await c.net.settle();
    expect(c.node(2).tap.take()).toEqual([f]);
    const dgram = c.net.captured.find((x) => x.data.length > 300)!.data;
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, dgram);
    const forged = Buffer.from(dgram);
    forged[forged.length - 1]! ^= 1;
    forged[8] = (forged[8]! + 100) & 255; // a fresh counter, so it reaches the AEAD
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, forged);
    // Same bytes from another address: sealed sessions do not care where it comes from; the window does.
    c.net.inject('198.18.0.99', 6783, `${c.node(2).ip}:6783`, dgram);
    await c.net.settle();
    expect(c.node(2).tap.take()).toEqual([]);
    expect(c.node(2).sleeve.rxDrops).toMatchObject({ replay: 2, auth: 1 });
  });

  it('refuses a datagram sealed with another key', async () => {
    const c = new Cluster(2, { sealed: true, aead });
    await c.run(300);
    c.net.capture = true;
    c.node(1).tap.inject([frameTo(c, 1, 2, 300)]);
    await c.net.settle();
    const dgram = Buffer.from(c.net.captured.find((x) => x.data.length > 300)!.data);
    dgram[8] = 200; // counter not yet seen
    dgram.fill(0xaa, 16, 40);
    c.net.inject(c.node(1).ip, 6783, `${c.node(2).ip}:6783`, dgram);
    await c.net.settle();
    expect(c.node(2).sleeve.rxDrops.auth).toBe(1);
  });
});

describe('sleeve routing', () => {
  it('relays through a peer that reaches both when UDP between two hosts is blocked', async () => {
    const c = new Cluster(3, { sealed: true });
    await c.run(300);
    expect(c.node(1).sleeve.peerStatus(c.node(3).name).via).toBe('direct');
    c.net.block(c.node(1).ip, c.node(3).ip);
    await c.run(3500);
    expect(c.node(1).sleeve.peerStatus(c.node(3).name)).toMatchObject({ link: 'down', via: c.node(2).name });
    const f = frameTo(c, 1, 3, 800);
    const back = frameTo(c, 3, 1, 800);
    c.node(1).tap.inject([f]);
    c.node(3).tap.inject([back]);
    await c.net.settle();
    expect(c.node(3).tap.take()).toEqual([f]);
    expect(c.node(1).tap.take()).toEqual([back]);
    // Relayed: the two frames, and path MTU probes and acks between h1 and h3.
    expect(c.node(2).sleeve.counters.relayed).toBeGreaterThanOrEqual(2);
    expect(c.node(2).tap.take()).toEqual([]);
    // Unblocked: back to the direct path.
    c.net.block(c.node(1).ip, c.node(3).ip, false);
    await c.run(1500);
    expect(c.node(1).sleeve.peerStatus(c.node(3).name).via).toBe('direct');
  });

  it('reaches a peer it has no mesh connection to through one that has', async () => {
    const c = new Cluster(3, { unconnected: [[1, 3]] });
    await c.run(500);
    expect(c.node(1).sleeve.reachable(c.node(3).name)).toBe(true);
    const f = frameTo(c, 1, 3, 200);
    c.node(1).tap.inject([f]);
    await c.net.settle();
    expect(c.node(3).tap.take()).toEqual([f]);
  });

  it('delivers a broadcast once to every host along the tree, and not where the origin uses fastdp', async () => {
    const c = new Cluster(4, { unconnected: [[1, 3], [1, 4]] });
    await c.run(500);
    const b = ipv4Frame(BROADCAST, podMacOf(1), podIpOf(1), '198.19.255.255', 60);
    c.node(1).tap.inject([b]);
    await c.net.settle();
    for (const i of [2, 3, 4]) expect(c.node(i).tap.take()).toEqual([b]);
    // h2 hears from h1 that its broadcasts reach h2 over the vxlan: h2 does not deliver them again, but still relays.
    c.node(2).sleeve.setPeerFastdp(c.node(1).name, true);
    c.node(1).tap.inject([b]);
    await c.net.settle();
    expect(c.node(2).tap.take()).toEqual([]);
    for (const i of [3, 4]) expect(c.node(i).tap.take()).toEqual([b]);
    expect(c.node(1).sleeve.rxDrops.loop).toBe(0);
  });
});

describe('sleeve path MTU', () => {
  it('finds a smaller path MTU by probing and answers bigger DF frames with ICMP fragmentation needed', async () => {
    const c = new Cluster(2, { sealed: true });
    c.net.limit(c.node(1).ip, c.node(2).ip, 1300);
    await c.run(2000);
    const st = c.node(1).sleeve.peerStatus(c.node(2).name);
    expect(st.mtuVerified).toBe(true);
    // 1300 - 28 (IP+UDP) - 8 (header) - 24 (seal) - 14 (Ethernet) = 1226; the search ends within 16 bytes.
    expect(st.mtu).toBeLessThanOrEqual(1226);
    expect(st.mtu).toBeGreaterThanOrEqual(1226 - 16);
    const ok = frameTo(c, 1, 2, st.mtu!);
    const big = frameTo(c, 1, 2, st.mtu! + 1);
    c.node(1).tap.inject([ok, big]);
    await c.net.settle();
    expect(c.node(2).tap.take()).toEqual([ok]);
    const icmp = c.node(1).tap.take();
    expect(icmp.length).toBe(1);
    expect(icmp[0]!.readUInt16BE(12)).toBe(0x0800);
    expect(icmp[0]![14 + 20]).toBe(3); // destination unreachable
    expect(icmp[0]![14 + 21]).toBe(4); // fragmentation needed
    expect(icmp[0]!.readUInt16BE(14 + 26)).toBe(st.mtu);
    expect(c.node(1).sleeve.counters.fragNeededSent).toBe(1);
    expect(c.logs.some((l) => /path MTU to .* verified/.test(l))).toBe(true);
  });

  it('uses the full overlay MTU when the path carries it', async () => {
    const c = new Cluster(2);
    await c.run(1500);
    expect(c.node(1).sleeve.peerStatus(c.node(2).name)).toMatchObject({ mtu: 1450, mtuVerified: true });
  });

  it('searches again when the kernel refuses a datagram as too big (EMSGSIZE)', async () => {
    const c = new Cluster(2);
    await c.run(1500);
    c.node(1).sock.localMtu = 1400;
    c.node(1).tap.inject([frameTo(c, 1, 2, 1450)]);
    await c.run(2000);
    expect(c.node(1).sleeve.peerStatus(c.node(2).name).mtu).toBe(1400 - 28 - 8 - 14);
  });
});
