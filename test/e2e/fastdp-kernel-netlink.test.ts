// datapath/netlink against the real kernel, inside a test namespace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor } from '../harness/netns.js';
import { startAgent, type Agent, AgentError } from './fastdp-kernel-runner.js';
import type { FdbEntry, Link, Neighbour, Address, Route, NetlinkEvent } from '../../datapath/netlink/index.js';

describe('netlink wrapper (kernel)', () => {
  let net: TestNet;
  let h: Agent;
  let podNs: string;
  const nl = <T>(method: string, ...args: unknown[]): Promise<T> => h.call<T>('nl', method, ...args);
  const errCode = async (p: Promise<unknown>): Promise<string | undefined> => {
    try {
      await p;
      return undefined;
    } catch (err) {
      return err instanceof AgentError ? (err.code ?? err.message) : String(err);
    }
  };

  beforeAll(async () => {
    net = await TestNet.create(1);
    podNs = net.host(1).podNs('pod1');
    await net.addNamespace(podNs);
    h = await startAgent(net, net.host(1).ns);
  });
  afterAll(async () => {
    h?.close();
    await net?.destroy();
  });

  it('creates a bridge and reads it back', async () => {
    const br = await nl<Link>('createBridge', 'br-t', { mtu: 1400, up: true, mac: '02:11:22:33:44:55' });
    expect(br).toMatchObject({ name: 'br-t', kind: 'bridge', mtu: 1400, up: true, mac: '02:11:22:33:44:55' });
    const all = await nl<Link[]>('listLinks');
    expect(all.map((l) => l.name)).toEqual(expect.arrayContaining(['lo', 'eth0', 'br-t']));
    const byIndex = await nl<Link>('getLink', br.index);
    expect(byIndex.name).toBe('br-t');
    expect(await nl('getLink', 'nope0')).toBeNull();
  });

  it('creates a vxlan with every attribute meshnet sets and decodes them', async () => {
    const vx = await nl<Link>('createVxlan', 'vx-t', { vni: 4242, port: 6784, local: net.host(1).address, learning: false, df: 'set', dev: 'eth0' }, { mtu: 1450 });
    expect(vx.kind).toBe('vxlan');
    expect(vx.mtu).toBe(1450);
    expect(vx.vxlan).toMatchObject({ vni: 4242, port: 6784, local: net.host(1).address, learning: false, df: 'set', l2miss: false, l3miss: false });
    expect(vx.vxlan?.dev).toBe((await nl<Link>('getLink', 'eth0')).index);
    const shown = await net.host(1).run('ip', ['-d', 'link', 'show', 'vx-t']);
    expect(shown).toMatch(/vxlan id 4242 .*dstport 6784 nolearning/);
    expect(shown).toMatch(/df set/);
  });

  it('enslaves, sets up/mtu/name and bridge-port flags', async () => {
    await nl('setLink', 'vx-t', { master: 'br-t', up: true });
    await nl('setBridgePort', 'vx-t', { learning: false, unicastFlood: false, neighSuppress: true, hairpin: true });
    let vx = await nl<Link>('getLink', 'vx-t');
    const br = await nl<Link>('getLink', 'br-t');
    expect(vx.master).toBe(br.index);
    expect(vx.up).toBe(true);
    expect(vx.bridgePort).toMatchObject({ learning: false, unicastFlood: false, neighSuppress: true, hairpin: true, broadcastFlood: true, multicastFlood: true });
    const shown = await net.host(1).run('bridge', ['-d', 'link', 'show', 'dev', 'vx-t']);
    expect(shown).toMatch(/learning off/);
    expect(shown).toMatch(/neigh_suppress on/);
    await nl('setBridgePort', 'vx-t', { hairpin: false });
    vx = await nl<Link>('getLink', 'vx-t');
    expect(vx.bridgePort?.hairpin).toBe(false);
    expect(vx.bridgePort?.neighSuppress).toBe(true);
    await nl('setLink', 'br-t', { mtu: 1300, name: 'br-u' });
    expect(await nl<Link>('getLink', 'br-u')).toMatchObject({ mtu: 1300 });
    await nl('setLink', 'br-u', { name: 'br-t', mtu: 1400 });
  });

  it('reports kernel errors with their errno', async () => {
    expect(await errCode(nl('createBridge', 'br-t'))).toBe('EEXIST');
    expect(await errCode(nl('deleteLink', 'nope0'))).toBe('ENOENT');
    expect(await errCode(nl('deleteLink', 99999))).toBe('ENODEV');
    expect(await errCode(nl('createVxlan', 'vx-bad', { vni: 1 << 25, port: 6784 }))).toMatch(/VNI 33554432 outside/);
  });

  it('appends, replaces, lists and deletes vxlan and bridge FDB entries', async () => {
    const zero = '00:00:00:00:00:00';
    await nl('addFdb', { dev: 'vx-t', mac: zero, target: 'self', dst: '198.18.0.21' }, 'append');
    await nl('addFdb', { dev: 'vx-t', mac: zero, target: 'self', dst: '198.18.0.22' }, 'append');
    await nl('addFdb', { dev: 'vx-t', mac: '02:00:00:00:00:05', target: 'self', dst: '198.18.0.21' }, 'add');
    expect(await errCode(nl('addFdb', { dev: 'vx-t', mac: '02:00:00:00:00:05', target: 'self', dst: '198.18.0.21' }, 'add'))).toBe('EEXIST');
    await nl('addFdb', { dev: 'vx-t', mac: '02:00:00:00:00:05', target: 'self', dst: '198.18.0.22' }, 'replace');
    await nl('addFdb', { dev: 'vx-t', mac: '02:00:00:00:00:05', target: 'master', sticky: true }, 'replace');
    const vxIndex = (await nl<Link>('getLink', 'vx-t')).index;
    const brIndex = (await nl<Link>('getLink', 'br-t')).index;
    let fdb = await nl<FdbEntry[]>('listFdb', 'vx-t');
    const self = fdb.filter((e) => e.self);
    expect(self.filter((e) => e.mac === zero).map((e) => e.dst).sort()).toEqual(['198.18.0.21', '198.18.0.22']);
    expect(self.filter((e) => e.mac === '02:00:00:00:00:05').map((e) => e.dst)).toEqual(['198.18.0.22']);
    const pin = fdb.find((e) => e.mac === '02:00:00:00:00:05' && !e.self);
    expect(pin).toMatchObject({ ifindex: vxIndex, master: brIndex, isMaster: true, state: 'static', sticky: true });
    expect(self.every((e) => e.state === 'permanent')).toBe(true);
    // iproute2 agrees.
    const shown = await net.host(1).run('bridge', ['fdb', 'show', 'dev', 'vx-t']);
    expect(shown).toMatch(/02:00:00:00:00:05 sticky master br-t static/);
    expect(shown).toMatch(/02:00:00:00:00:05 dst 198.18.0.22 self permanent/);
    await nl('deleteFdb', { dev: 'vx-t', mac: zero, target: 'self', dst: '198.18.0.21' });
    await nl('deleteFdb', { dev: 'vx-t', mac: '02:00:00:00:00:05', target: 'master' });
    fdb = await nl<FdbEntry[]>('listFdb', 'vx-t');
    expect(fdb.filter((e) => e.mac === zero).map((e) => e.dst)).toEqual(['198.18.0.22']);
    expect(fdb.some((e) => e.mac === '02:00:00:00:00:05' && !e.self)).toBe(false);
    expect(await errCode(nl('deleteFdb', { dev: 'vx-t', mac: '02:00:00:00:00:99', target: 'self' }))).toBe('ENOENT');
  });

  it('sets, replaces and deletes permanent neighbours tagged with our protocol', async () => {
    await nl('setNeighbour', { dev: 'br-t', ip: '198.19.0.5', mac: '02:00:00:00:00:05', protocol: 0x6d });
    await nl('setNeighbour', { dev: 'br-t', ip: '198.19.0.5', mac: '02:00:00:00:00:06', protocol: 0x6d });
    expect(await errCode(nl('setNeighbour', { dev: 'br-t', ip: '198.19.0.5', mac: '02:00:00:00:00:07' }, 'add'))).toBe('EEXIST');
    const ns = await nl<Neighbour[]>('listNeighbours', 'br-t');
    // The bridge also has kernel-made multicast entries (state noarp); ours are permanent.
    expect(ns.filter((n) => n.state === 'permanent')).toEqual([expect.objectContaining({ ip: '198.19.0.5', mac: '02:00:00:00:00:06', state: 'permanent', protocol: 0x6d })]);
    expect(await net.host(1).run('ip', ['neigh', 'show', 'dev', 'br-t'])).toMatch(/198.19.0.5 lladdr 02:00:00:00:00:06 PERMANENT/);
    await nl('deleteNeighbour', 'br-t', '198.19.0.5');
    expect((await nl<Neighbour[]>('listNeighbours', 'br-t')).filter((n) => n.state === 'permanent')).toEqual([]);
    expect(await errCode(nl('deleteNeighbour', 'br-t', '198.19.0.5'))).toBe('ENOENT');
  });

  it('adds and lists addresses and routes', async () => {
    await nl('addAddress', 'br-t', '198.19.255.1/24');
    expect(await errCode(nl('addAddress', 'br-t', '198.19.255.1/24'))).toBe('EEXIST');
    const addrs = await nl<Address[]>('listAddresses', 'br-t', 4);
    expect(addrs).toEqual([expect.objectContaining({ address: '198.19.255.1', prefixLength: 24, family: 4 })]);
    await nl('addRoute', { dst: '198.19.128.0/24', gateway: '198.19.255.2', dev: 'br-t' });
    const routes = await nl<Route[]>('listRoutes', 4);
    expect(routes).toEqual(expect.arrayContaining([expect.objectContaining({ dst: '198.19.128.0/24', gateway: '198.19.255.2' })]));
    await nl('deleteRoute', { dst: '198.19.128.0/24', gateway: '198.19.255.2', dev: 'br-t' });
    expect((await nl<Route[]>('listRoutes', 4)).some((r) => r.dst === '198.19.128.0/24')).toBe(false);
    await nl('deleteAddress', 'br-t', '198.19.255.1/24');
    expect(await nl<Address[]>('listAddresses', 'br-t', 4)).toEqual([]);
  });

  it('creates a veth whose peer is born in a pod namespace and configures it there', async () => {
    const path = `/var/run/netns/${podNs}`;
    const host = await nl<Link>('createVeth', 'mnv1', { name: 'eth0', netns: { path }, mtu: 1450 }, { mtu: 1450, master: 'br-t', up: true });
    expect(host).toMatchObject({ kind: 'veth', master: (await nl<Link>('getLink', 'br-t')).index, mtu: 1450 });
    await h.call('netns', 'configure', path, { dev: 'eth0', addresses: ['198.19.255.7/24'], routes: [{ dst: '0.0.0.0/0', gateway: '198.19.255.1' }] });
    const shown = await net.host(1).run('ip', ['netns', 'exec', podNs, 'ip', '-4', 'addr', 'show', 'dev', 'eth0']);
    expect(shown).toMatch(/inet 198.19.255.7\/24/);
    expect(shown).toMatch(/mtu 1450/);
    const route = await net.host(1).run('ip', ['netns', 'exec', podNs, 'ip', 'route', 'show', 'default']);
    expect(route).toMatch(/default via 198.19.255.1 dev eth0/);
    const inside = await h.call<Link>('netns', 'getLink', path, 'eth0');
    expect(inside).toMatchObject({ name: 'eth0', mtu: 1450, up: true });
    // A failing batch names its line and keeps the errno.
    const code = await errCode(h.call('netns', 'configure', path, { dev: 'eth0', addresses: ['198.19.255.7/24'] }));
    expect(code).toBe('EEXIST');
    await nl('deleteLink', 'mnv1');
  });

  it('moves a link into another namespace by path', async () => {
    await nl('createVeth', 'mnv2', { name: 'mnv2p' });
    await nl('setLink', 'mnv2p', { netns: { path: `/var/run/netns/${podNs}` } });
    expect(await nl('getLink', 'mnv2p')).toBeNull();
    expect(await net.host(1).run('ip', ['netns', 'exec', podNs, 'ip', 'link', 'show', 'mnv2p'])).toMatch(/mnv2p/);
    await nl('deleteLink', 'mnv2');
  });

  it('reports link and FDB events', async () => {
    await h.call('agent', 'watch');
    await nl('createBridge', 'br-ev');
    await nl('addFdb', { dev: 'vx-t', mac: '02:00:00:00:00:42', target: 'self', dst: '198.18.0.23' }, 'add');
    const seen: NetlinkEvent[] = [];
    await waitFor(
      async () => {
        seen.push(...(await h.call<NetlinkEvent[]>('agent', 'events')));
        return seen.some((e) => e.type === 'link' && e.link.name === 'br-ev') && seen.some((e) => e.type === 'fdb' && e.entry.mac === '02:00:00:00:00:42');
      },
      5000,
      'netlink events',
    );
    await nl('deleteLink', 'br-ev');
  });
});
