import { beforeEach, describe, expect, it } from 'vitest';
import { ensureDevices, planDevices, resetDevices, ensureSleevePort, ensureHeartbeatPort, type DeviceSpec } from '../../../datapath/fastdp/devices.js';
import { fastdpConfig, overlayMtu } from '../../../datapath/fastdp/config.js';
import type { Link } from '../../../datapath/netlink/types.js';
import { FakeKernel } from './fake-kernel.js';

const cfg = fastdpConfig({ localIp: '198.18.0.11', vni: 42 });

describe('overlayMtu', () => {
  it('derives 1450 from a 1500 IPv4 underlay, 1430 from IPv6, and honours --mtu', () => {
    expect(overlayMtu(1500, 4)).toBe(1450);
    expect(overlayMtu(1500, 6)).toBe(1430);
    expect(overlayMtu(9000, 4)).toBe(8950);
    expect(overlayMtu(1500, 4, 1376)).toBe(1376);
    expect(() => overlayMtu(1500, 4, 100)).toThrow(/mtu 100/);
  });
});

describe('planDevices', () => {
  const spec: DeviceSpec = { bridge: 'meshnet', vxlan: 'meshnet-vxlan', vni: 42, port: 6784, localIp: '198.18.0.11', mtu: 1450 };
  const bridge: Link = { index: 5, name: 'meshnet', kind: 'bridge', mtu: 1450, mac: '02:00:00:00:00:05', up: true, lowerUp: true, master: undefined, link: undefined, linkNetnsId: undefined };
  const vxlan: Link = {
    index: 6,
    name: 'meshnet-vxlan',
    kind: 'vxlan',
    mtu: 1450,
    mac: '02:00:00:00:00:06',
    up: true,
    lowerUp: true,
    master: 5,
    link: undefined,
    linkNetnsId: undefined,
    vxlan: { vni: 42, port: 6784, local: '198.18.0.11', dev: undefined, learning: false, proxy: false, l2miss: false, l3miss: false, ttl: 0, ageing: 300, df: 'set' },
    bridgePort: { state: 3, hairpin: false, learning: false, unicastFlood: false, multicastFlood: true, broadcastFlood: true, neighSuppress: true, proxyArp: false, isolated: true },
  };

  it('leaves correct devices alone', () => {
    expect(planDevices(spec, { bridge, vxlan })).toEqual([]);
  });

  it('creates what is missing', () => {
    expect(planDevices(spec, {}).map((a) => a.op)).toEqual(['create-bridge', 'create-vxlan', 'set-port']);
  });

  it('fixes mutable settings in place', () => {
    const actions = planDevices(spec, { bridge: { ...bridge, mtu: 1500, up: false }, vxlan: { ...vxlan, mtu: 1500 } });
    expect(actions).toEqual([
      { op: 'set-link', name: 'meshnet', change: { mtu: 1450, up: true }, reason: 'mtu 1500 -> 1450, up' },
      { op: 'set-link', name: 'meshnet-vxlan', change: { mtu: 1450 }, reason: 'mtu 1500 -> 1450' },
    ]);
  });

  it('recreates a vxlan whose identity is wrong', () => {
    for (const bad of [{ vni: 7 }, { port: 4789 }, { local: '198.18.0.99' }, { learning: true }, { df: 'unset' as const }]) {
      const actions = planDevices(spec, { bridge, vxlan: { ...vxlan, vxlan: { ...vxlan.vxlan!, ...bad } } });
      expect(actions.map((a) => a.op)).toEqual(['delete', 'create-vxlan', 'set-port']);
    }
  });

  it('accepts a kernel that does not report df', () => {
    expect(planDevices(spec, { bridge, vxlan: { ...vxlan, vxlan: { ...vxlan.vxlan!, df: undefined } } })).toEqual([]);
  });

  it('re-enslaves a released vxlan and resets its port flags', () => {
    const actions = planDevices(spec, { bridge, vxlan: { ...vxlan, master: undefined, bridgePort: undefined } });
    expect(actions).toEqual([
      { op: 'set-link', name: 'meshnet-vxlan', change: { master: 'meshnet' }, reason: 'master -> meshnet' },
      { op: 'set-port', name: 'meshnet-vxlan', flags: { learning: false, unicastFlood: false, neighSuppress: true, isolated: true }, reason: 'new port' },
    ]);
  });

  it('fixes only the port flags that are wrong', () => {
    const actions = planDevices(spec, { bridge, vxlan: { ...vxlan, bridgePort: { ...vxlan.bridgePort!, unicastFlood: true } } });
    expect(actions).toEqual([{ op: 'set-port', name: 'meshnet-vxlan', flags: { unicastFlood: false }, reason: 'unicastFlood off' }]);
  });

  it('replaces a non-bridge that squats the bridge name', () => {
    const actions = planDevices(spec, { bridge: { ...bridge, kind: 'veth' }, vxlan });
    expect(actions.map((a) => a.op)).toEqual(['delete', 'create-bridge', 'set-link', 'set-port']);
  });
});

describe('ensureDevices (in-memory kernel)', () => {
  let k: FakeKernel;
  beforeEach(() => {
    k = new FakeKernel();
    k.addUnderlay('eth0', '198.18.0.11', 1500);
  });

  it('creates the devices, then changes nothing on a second run', async () => {
    const first = await ensureDevices(k, cfg);
    expect(first.changes.length).toBeGreaterThan(0);
    expect(first.vxlanRecreated).toBe(true);
    expect(first.mtu).toBe(1450);
    expect(first.vxlan.vxlan).toMatchObject({ vni: 42, port: 6784, local: '198.18.0.11', learning: false, df: 'set' });
    expect(first.vxlan.master).toBe(first.bridge.index);
    const calls = k.calls.length;
    const second = await ensureDevices(k, cfg);
    expect(second.changes).toEqual([]);
    expect(second.vxlanRecreated).toBe(false);
    expect(k.calls.length).toBe(calls);
  });

  it('repairs a corrupted setting with one change', async () => {
    await ensureDevices(k, cfg);
    const vx = [...k.links.values()].find((l) => l.name === 'meshnet-vxlan')!;
    vx.mtu = 1400;
    vx.bridgePort!.learning = true;
    const r = await ensureDevices(k, cfg);
    expect(r.changes).toEqual(['set meshnet-vxlan: mtu 1400 -> 1450', 'set meshnet-vxlan: learning off']);
    expect(r.vxlanRecreated).toBe(false);
    expect((await ensureDevices(k, cfg)).changes).toEqual([]);
  });

  it('honours --mtu and follows the underlay MTU', async () => {
    k = new FakeKernel();
    k.addUnderlay('eth0', '198.18.0.11', 9000);
    expect((await ensureDevices(k, cfg)).mtu).toBe(8950);
    expect((await ensureDevices(k, { ...cfg, mtu: 1376 })).changes).toEqual(['set meshnet: mtu 8950 -> 1376', 'set meshnet-vxlan: mtu 8950 -> 1376']);
  });

  it('refuses a local address that no interface holds', async () => {
    await expect(ensureDevices(k, { ...cfg, localIp: '198.18.0.99' })).rejects.toThrow(/198.18.0.99 is not configured/);
  });

  it('attaches an existing sleeve TAP with its port flags', async () => {
    const r = await ensureDevices(k, cfg);
    expect(await ensureSleevePort(k, cfg, r.mtu)).toBe(false);
    k.addLink({ name: 'meshnet-sleeve', kind: 'tun' });
    expect(await ensureSleevePort(k, cfg, r.mtu)).toBe(true);
    const tap = await k.getLink('meshnet-sleeve');
    expect(tap).toMatchObject({ master: r.bridge.index, mtu: 1450, up: true });
    // Isolated from the vxlan (no frame passes between the two datapaths); unknown unicast reaches the daemon.
    expect(tap?.bridgePort).toMatchObject({ learning: false, unicastFlood: true, neighSuppress: true, isolated: true });
    const calls = k.calls.length;
    await ensureSleevePort(k, cfg, r.mtu);
    expect(k.calls.length).toBe(calls);
  });

  it('attaches the heartbeat TAP: not isolated, nothing flooded to it', async () => {
    const r = await ensureDevices(k, cfg);
    expect(await ensureHeartbeatPort(k, cfg, r.mtu)).toBe(false);
    k.addLink({ name: 'meshnet-hb', kind: 'tun' });
    expect(await ensureHeartbeatPort(k, cfg, r.mtu)).toBe(true);
    expect((await k.getLink('meshnet-hb'))?.bridgePort).toMatchObject({ learning: false, unicastFlood: false, multicastFlood: false, broadcastFlood: false, isolated: false });
    const calls = k.calls.length;
    await ensureHeartbeatPort(k, cfg, r.mtu);
    expect(k.calls.length).toBe(calls);
  });

  it('reset removes vxlan, TAPs and bridge; a second reset is a no-op', async () => {
    await ensureDevices(k, cfg);
    k.addLink({ name: 'meshnet-sleeve', kind: 'tun' });
    k.addLink({ name: 'meshnet-hb', kind: 'tun' });
    expect(await resetDevices(k, cfg)).toEqual(['meshnet-vxlan', 'meshnet-sleeve', 'meshnet-hb', 'meshnet']);
    expect(await resetDevices(k, cfg)).toEqual([]);
    expect([...k.links.values()].map((l) => l.name).sort()).toEqual(['eth0', 'lo']);
  });
});
