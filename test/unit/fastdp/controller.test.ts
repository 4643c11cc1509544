// Gossip -> kernel through the controller: two "hosts" with in-memory
// kernels exchange endpoint updates as the mesh would relay them.
import { describe, expect, it } from 'vitest';
import { fastdpConfig } from '../../../datapath/fastdp/config.js';
import { FastdpController } from '../../../datapath/fastdp/controller.js';
import { Fastdp } from '../../../datapath/fastdp/fastdp.js';
import { heartbeatMac } from '../../../datapath/fastdp/heartbeat.js';
import { FakeKernel } from './fake-kernel.js';

async function host(name: string, ip: string, held = false): Promise<{ k: FakeKernel; c: FastdpController; reports: unknown[] }> {
  const k = new FakeKernel();
  k.addUnderlay('eth0', ip);
  k.addLink({ name: 'meshnet-sleeve', kind: 'tun' });
  k.addLink({ name: 'meshnet-hb', kind: 'tun' });
  const fastdp = new Fastdp(k, fastdpConfig({ localIp: ip, vni: 42 }));
  await fastdp.ensureDevices();
  const reports: unknown[] = [];
  const c = new FastdpController({
    fastdp,
    self: name,
    range: '198.19.0.0/16',
    isKnownPeer: () => true,
    vtep: ip,
    vni: 42,
    heartbeatMac: heartbeatMac(name),
    debounceMs: 1,
    held,
    onReconciled: (r) => reports.push(r),
  });
  return { k, c, reports };
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('FastdpController', () => {
  it('programs a peer’s pods from its gossip, follows datapath switches and departures', async () => {
    const a = await host('aa:00:00:00:00:01', '198.18.0.11');
    const b = await host('aa:00:00:00:00:02', '198.18.0.12');
    const update = b.c.setLocalPods([{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }]);
    expect(a.c.gossiper.onGossip('aa:00:00:00:00:02', update)).toBeDefined();
    await settle();
    // Until the switch says fastdp works, no pin and no flood entry; the heartbeat MAC is pinned to the vxlan.
    expect(a.k.vxlanRemotes.get((await a.k.getLink('meshnet-vxlan'))!.index)!.get('02:00:00:00:02:01')).toEqual(['198.18.0.12']);
    expect(a.k.bridgeFdb.has('02:00:00:00:02:01')).toBe(false);
    expect(a.k.bridgeFdb.get(heartbeatMac('aa:00:00:00:00:02'))?.port).toBe((await a.k.getLink('meshnet-vxlan'))!.index);
    expect(a.k.bridgeFdb.get(heartbeatMac('aa:00:00:00:00:01'))?.port).toBe((await a.k.getLink('meshnet-hb'))!.index);

    a.c.setPeerDatapath('aa:00:00:00:00:02', 'fastdp');
    await settle();
    expect(a.k.bridgeFdb.get('02:00:00:00:02:01')?.port).toBe((await a.k.getLink('meshnet-vxlan'))!.index);
    a.c.setPeerDatapath('aa:00:00:00:00:02', 'sleeve');
    await settle();
    expect(a.k.bridgeFdb.get('02:00:00:00:02:01')?.port).toBe((await a.k.getLink('meshnet-sleeve'))!.index);

    // The pod moves to a new MAC: reported as a move for a gratuitous ARP.
    a.c.gossiper.onGossip('aa:00:00:00:00:02', b.c.setLocalPods([{ mac: '02:00:00:00:02:99', ip: '198.19.2.1' }]));
    await settle();
    expect((a.reports.at(-1) as { moves: unknown[] }).moves).toEqual([{ ip: '198.19.2.1', mac: '02:00:00:00:02:99' }]);

    a.c.peerRemoved('aa:00:00:00:00:02');
    await settle();
    expect(a.k.bridgeFdb.size).toBe(1); // only our own heartbeat pin
    expect(a.k.neighbours.size).toBe(0);
    const r = await a.c.reconcileNow();
    expect(r.applied).toEqual([]);
    a.c.close();
    b.c.close();
  });

  it('held (after a restart): only adds what is missing, removes and moves nothing until released', async () => {
    const first = await host('aa:00:00:00:00:01', '198.18.0.11');
    const b = await host('aa:00:00:00:00:02', '198.18.0.12');
    first.c.gossiper.onGossip('aa:00:00:00:00:02', b.c.setLocalPods([{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }]));
    first.c.setPeerDatapath('aa:00:00:00:00:02', 'fastdp');
    await settle();
    const vx = (await first.k.getLink('meshnet-vxlan'))!.index;
    expect(first.k.bridgeFdb.get('02:00:00:00:02:01')?.port).toBe(vx);
    // The daemon restarts on the same kernel: held, knowing nothing of b yet.
    const fastdp = new Fastdp(first.k, fastdpConfig({ localIp: '198.18.0.11', vni: 42 }));
    expect((await fastdp.ensureDevices()).changes).toEqual([]);
    const again = new FastdpController({
      fastdp,
      self: 'aa:00:00:00:00:01',
      range: '198.19.0.0/16',
      isKnownPeer: () => true,
      vtep: '198.18.0.11',
      vni: 42,
      heartbeatMac: heartbeatMac('aa:00:00:00:00:01'),
      debounceMs: 1,
      held: true,
    });
    const pod = { mac: '02:00:00:00:01:07', ip: '198.19.1.7' };
    again.setLocalPods([pod], [pod]);
    await settle();
    expect(first.k.bridgeFdb.get('02:00:00:00:02:01')?.port).toBe(vx); // b's pin survives
    expect(again.addedWhileHeld).toBe(1); // the new local pod's neighbour entry
    // It learns b is on the sleeve now: still no move while held.
    again.gossiper.onGossip('aa:00:00:00:00:02', b.c.setLocalPods([{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }]));
    again.setPeerDatapath('aa:00:00:00:00:02', 'sleeve');
    await settle();
    expect(first.k.bridgeFdb.get('02:00:00:00:02:01')?.port).toBe(vx);
    const r = await again.release();
    expect(r.applied.map((o) => o.op)).toEqual(['pin-set', 'flood-del']);
    expect(first.k.bridgeFdb.get('02:00:00:00:02:01')?.port).toBe((await first.k.getLink('meshnet-sleeve'))!.index);
  });
});
