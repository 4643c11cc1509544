// A peer that leaves (`meshnet reset`) is dropped by the others at once.
import { describe, expect, it } from 'vitest';
import { EndpointsGossiper } from '../../../datapath/fastdp/endpoints.js';

describe('endpoints: leaving', () => {
  it('an entry marked as left is not programmed, and outranks what came before', () => {
    const a = new EndpointsGossiper({ self: 'aa:00:00:00:00:01', range: '198.19.0.0/16', isKnownPeer: () => true });
    const b = new EndpointsGossiper({ self: 'aa:00:00:00:00:02', range: '198.19.0.0/16', isKnownPeer: () => true });
    const local = { vtep: '198.18.0.12', vni: 1, heartbeatMac: '0a:00:00:00:00:02', pods: [{ mac: '02:00:00:00:00:05', ip: '198.19.0.5' }] };
    a.onGossip('aa:00:00:00:00:02', b.setLocal(local));
    expect(a.remoteEntries().map((e) => e.peer)).toEqual(['aa:00:00:00:00:02']);
    const relay = a.onGossip('aa:00:00:00:00:02', b.setLocal({ ...local, left: true }));
    expect(relay).toBeDefined();
    expect(a.remoteEntries()).toEqual([]);
    // A third peer relaying the older entry does not bring it back.
    const c = new EndpointsGossiper({ self: 'aa:00:00:00:00:03', range: '198.19.0.0/16', isKnownPeer: () => true });
    c.onGossip('aa:00:00:00:00:02', b.gossip()!);
    expect(c.remoteEntries()).toEqual([]);
  });
});
