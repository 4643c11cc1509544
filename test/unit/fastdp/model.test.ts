import { describe, expect, it } from 'vitest';
import { addressMoves, addressView, computeDesired, emptyDesired, type RemotePeer } from '../../../datapath/fastdp/model.js';

const peer = (over: Partial<RemotePeer> & { name: string }): RemotePeer => ({
  vtep: '198.18.0.12',
  vni: 42,
  datapath: 'fastdp',
  pods: [],
  updatedAt: 1,
  ...over,
});

describe('computeDesired', () => {
  it('programs neighbour, vxlan entry and pin per remote pod, and a flood entry per fastdp peer', () => {
    const { desired, conflicts } = computeDesired({
      vni: 42,
      heartbeatMac: '0a:00:00:00:00:01',
      localPods: [{ mac: '02:00:00:00:01:01', ip: '198.19.1.1' }],
      peers: [
        peer({ name: 'aa:00:00:00:00:02', vtep: '198.18.0.12', heartbeatMac: '0a:00:00:00:00:02', pods: [{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }] }),
        peer({ name: 'aa:00:00:00:00:03', vtep: '198.18.0.13', datapath: 'sleeve', heartbeatMac: '0a:00:00:00:00:03', pods: [{ mac: '02:00:00:00:03:01', ip: '198.19.3.1' }] }),
        peer({ name: 'aa:00:00:00:00:04', vtep: '198.18.0.14', datapath: 'none', pods: [{ mac: '02:00:00:00:04:01', ip: '198.19.4.1' }] }),
      ],
    });
    expect(conflicts).toEqual([]);
    expect(desired.neighbours).toEqual(
      new Map([
        ['198.19.2.1', '02:00:00:00:02:01'],
        ['198.19.3.1', '02:00:00:00:03:01'],
        ['198.19.4.1', '02:00:00:00:04:01'],
      ]),
    );
    expect(desired.vxlanFdb).toEqual(
      new Map([
        ['02:00:00:00:02:01', '198.18.0.12'],
        ['02:00:00:00:03:01', '198.18.0.13'],
        ['02:00:00:00:04:01', '198.18.0.14'],
        ['0a:00:00:00:00:02', '198.18.0.12'],
        ['0a:00:00:00:00:03', '198.18.0.13'],
      ]),
    );
    expect(desired.floodDsts).toEqual(new Set(['198.18.0.12']));
    expect(desired.pins).toEqual(
      new Map([
        ['02:00:00:00:02:01', 'vxlan'],
        ['02:00:00:00:03:01', 'sleeve'],
        // Heartbeats always take the vxlan, whatever carries the peer's pods.
        ['0a:00:00:00:00:02', 'vxlan'],
        ['0a:00:00:00:00:03', 'vxlan'],
        // Our own heartbeat MAC leads to our TAP.
        ['0a:00:00:00:00:01', 'heartbeat'],
      ]),
    );
  });

  it('switching a peer between fastdp and sleeve changes only its pins and flood entry', () => {
    const peers = [peer({ name: 'aa:00:00:00:00:02', heartbeatMac: '0a:00:00:00:00:02', pods: [{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }] })];
    const fast = computeDesired({ vni: 42, localPods: [], peers }).desired;
    const slow = computeDesired({ vni: 42, localPods: [], peers: [{ ...peers[0]!, datapath: 'sleeve' }] }).desired;
    expect(slow.neighbours).toEqual(fast.neighbours);
    expect(slow.vxlanFdb).toEqual(fast.vxlanFdb);
    expect(slow.pins.get('02:00:00:00:02:01')).toBe('sleeve');
    expect(slow.pins.get('0a:00:00:00:00:02')).toBe('vxlan');
    expect(slow.floodDsts.size).toBe(0);
  });

  it('keeps local pods and resolves duplicate claims in favour of the newest peer', () => {
    const { desired, conflicts } = computeDesired({
      vni: 42,
      localPods: [{ mac: '02:00:00:00:01:01', ip: '198.19.1.1' }],
      peers: [
        peer({ name: 'aa:00:00:00:00:02', updatedAt: 10, pods: [{ mac: '02:00:00:00:02:01', ip: '198.19.9.9' }, { mac: '02:00:00:00:02:02', ip: '198.19.1.1' }] }),
        peer({ name: 'aa:00:00:00:00:03', vtep: '198.18.0.13', updatedAt: 20, pods: [{ mac: '02:00:00:00:03:01', ip: '198.19.9.9' }] }),
      ],
    });
    expect(desired.neighbours.get('198.19.9.9')).toBe('02:00:00:00:03:01');
    expect(desired.neighbours.has('198.19.1.1')).toBe(false);
    expect(conflicts).toEqual([
      { kind: 'ip', key: '198.19.1.1', dropped: 'aa:00:00:00:00:02', kept: 'local' },
      { kind: 'ip', key: '198.19.9.9', dropped: 'aa:00:00:00:00:02', kept: 'aa:00:00:00:00:03' },
    ]);
    // The older peer's pod MAC itself is still where it was (it may carry other traffic until its peer updates).
    expect(desired.vxlanFdb.get('02:00:00:00:02:01')).toBe('198.18.0.12');
  });

  it('decides the same whatever order the peers come in', () => {
    const a = peer({ name: 'aa:00:00:00:00:02', updatedAt: 5, pods: [{ mac: '02:00:00:00:00:aa', ip: '198.19.0.1' }] });
    const b = peer({ name: 'aa:00:00:00:00:03', vtep: '198.18.0.13', updatedAt: 5, pods: [{ mac: '02:00:00:00:00:aa', ip: '198.19.0.2' }] });
    const x = computeDesired({ vni: 42, localPods: [], peers: [a, b] }).desired;
    const y = computeDesired({ vni: 42, localPods: [], peers: [b, a] }).desired;
    expect(x).toEqual(y);
    expect(x.vxlanFdb.get('02:00:00:00:00:aa')).toBe('198.18.0.12');
    expect([...x.neighbours.keys()]).toEqual(['198.19.0.1']);
  });

  it('does not program peers with another VNI', () => {
    const { desired, conflicts } = computeDesired({ vni: 42, localPods: [], peers: [peer({ name: 'aa:00:00:00:00:02', vni: 7, pods: [{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }] })] });
    expect(desired.vxlanFdb.size + desired.neighbours.size + desired.pins.size + desired.floodDsts.size).toBe(0);
    expect(conflicts).toEqual([{ kind: 'vni', key: '7', dropped: 'aa:00:00:00:00:02', kept: 'local' }]);
  });
});

describe('addressMoves', () => {
  it('lists addresses whose MAC changed, local pods included', () => {
    const before = emptyDesired();
    before.neighbours.set('198.19.1.1', '02:00:00:00:01:01');
    before.neighbours.set('198.19.1.2', '02:00:00:00:01:02');
    const after = emptyDesired();
    after.neighbours.set('198.19.1.2', '02:00:00:00:01:02');
    after.neighbours.set('198.19.3.3', '02:00:00:00:03:03');
    // 198.19.1.1 is now a local pod with a new MAC; 198.19.3.3 is new (no move).
    const moves = addressMoves(addressView(before, []), addressView(after, [{ ip: '198.19.1.1', mac: '02:00:00:00:02:11' }]));
    expect(moves).toEqual([{ ip: '198.19.1.1', mac: '02:00:00:00:02:11' }]);
  });
});
