// The per-peer switch policy and the overlay control codec.
import { describe, expect, it } from 'vitest';
import { chooseDatapath, fastdpAllowed, inSubnets, overlayFeatures, PeerSwitch } from '../../../datapath/switch.js';
import { decodeControl, encodeDatapath, encodeSleeveHello } from '../../../datapath/control.js';
import { encodeHeartbeatAck } from '../../../datapath/fastdp/heartbeat.js';
import { computeDesired } from '../../../datapath/fastdp/model.js';

const policy = { noFastdp: false, vni: 42, trustedSubnets: ['198.18.0.0/24'] };
const offer = overlayFeatures(policy);

describe('fastdp policy', () => {
  it('allows fastdp only when both offer it with one VNI, and unencrypted or trusted', () => {
    expect(offer).toEqual({ overlays: 'fastdp,sleeve', vni: '42' });
    expect(fastdpAllowed(policy, offer, false, '198.18.5.1')).toEqual({ allowed: true, reason: '' });
    expect(fastdpAllowed(policy, offer, true, '198.18.0.7').allowed).toBe(true);
    expect(fastdpAllowed(policy, offer, true, '198.18.5.1')).toEqual({ allowed: false, reason: 'password set and the peer is not in --trusted-subnets' });
    expect(fastdpAllowed(policy, { overlays: 'sleeve', vni: '42' }, false, '198.18.0.7').reason).toBe('the peer does not offer it');
    expect(fastdpAllowed(policy, { overlays: 'fastdp,sleeve', vni: '7' }, false, '198.18.0.7').reason).toBe('the peer uses VNI 7, we use 42');
    expect(fastdpAllowed({ ...policy, noFastdp: true }, offer, false, '198.18.0.7').reason).toBe('disabled here (--no-fastdp)');
    expect(overlayFeatures({ ...policy, noFastdp: true }).overlays).toBe('sleeve');
    expect(inSubnets('198.18.0.1', ['bad', '198.18.0.0/16'])).toBe(true);
  });

  it('prefers a working fastdp, then a reachable sleeve; counts only fastdp<->sleeve switches', () => {
    expect(chooseDatapath(true, true, true)).toBe('fastdp');
    expect(chooseDatapath(false, true, true)).toBe('sleeve');
    expect(chooseDatapath(true, false, false)).toBeNull();
    const sw = new PeerSwitch();
    expect(sw.set('fastdp', 1)).toEqual({ from: null });
    expect(sw.set('fastdp', 2)).toBeUndefined();
    sw.set('sleeve', 3);
    sw.set('fastdp', 4);
    sw.set(null, 5);
    expect(sw.switches).toBe(2);
  });
});

describe('overlay control messages', () => {
  it('round-trip, and malformed ones decode to undefined', () => {
    expect(decodeControl(encodeSleeveHello(7, 6783))).toEqual({ type: 'sleeve-hello', index: 7, port: 6783 });
    expect(decodeControl(encodeDatapath(true))).toEqual({ type: 'datapath', fastdp: true });
    expect(decodeControl(encodeHeartbeatAck('123', 1464))).toEqual({ type: 'heartbeat-ack', connUid: '123', length: 1464 });
    for (const bad of [[], [0x10, 0, 0, 0, 0, 0, 0], [0x11, 2], [0x11], [0x99, 1], [0x01, 1, 2]]) expect(decodeControl(Uint8Array.from(bad))).toBeUndefined();
    expect(() => encodeSleeveHello(0, 1)).toThrow(/index/);
  });
});

describe('local addresses answered locally', () => {
  it('get a neighbour entry but no FDB entry or pin (the bridge learns them on their ports)', () => {
    const pod = { mac: '0a:58:c6:13:00:05', ip: '198.19.0.5' };
    const { desired } = computeDesired({ vni: 42, localPods: [pod], localNeighbours: [pod], peers: [] });
    expect([...desired.neighbours]).toEqual([[pod.ip, pod.mac]]);
    expect(desired.vxlanFdb.size + desired.pins.size).toBe(0);
  });
});
