import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeHeartbeat,
  decodeHeartbeatAck,
  encodeHeartbeat,
  encodeHeartbeatAck,
  gratuitousArp,
  heartbeatFrameLength,
  heartbeatMac,
  HeartbeatTracker,
  HEARTBEAT_ETHERTYPE,
} from '../../../datapath/fastdp/heartbeat.js';

describe('heartbeat frames', () => {
  it('round-trips and pads to the full frame length', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.integer({ min: 30, max: 9014 }), (uid, length) => {
        const f = encodeHeartbeat({ dst: '0a:00:00:00:00:02', src: '0a:00:00:00:00:01', connUid: uid.toString(), length });
        expect(f.length).toBe(length);
        expect(decodeHeartbeat(f)).toEqual({ dst: '0a:00:00:00:00:02', src: '0a:00:00:00:00:01', connUid: uid.toString(), length });
      }),
    );
  });

  it('is an Ethernet frame of our own EtherType, full size for the overlay MTU', () => {
    const f = encodeHeartbeat({ dst: '0a:00:00:00:00:02', src: '0a:00:00:00:00:01', connUid: '7', length: heartbeatFrameLength(1450) });
    expect(f.length).toBe(1464);
    expect(f.readUInt16BE(12)).toBe(HEARTBEAT_ETHERTYPE);
  });

  it('rejects a truncated heartbeat and other frames', () => {
    const f = encodeHeartbeat({ dst: '0a:00:00:00:00:02', src: '0a:00:00:00:00:01', connUid: '7', length: 1464 });
    expect(decodeHeartbeat(f.subarray(0, 1400))).toBeUndefined();
    expect(decodeHeartbeat(gratuitousArp('02:00:00:00:00:01', '198.19.0.1'))).toBeUndefined();
    expect(decodeHeartbeat(new Uint8Array(10))).toBeUndefined();
    fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => void decodeHeartbeat(b)));
  });

  it('acks carry UID and length', () => {
    expect(decodeHeartbeatAck(encodeHeartbeatAck('18446744073709551615', 1464))).toEqual({ connUid: '18446744073709551615', length: 1464 });
    expect(decodeHeartbeatAck(new Uint8Array(3))).toBeUndefined();
  });

  it('derives a unicast, locally administered heartbeat MAC from the peer name', () => {
    expect(heartbeatMac('8b:3f:00:12:ab:cd')).toBe('8a:3f:00:12:ab:cd');
    expect(heartbeatMac('00:00:00:00:00:01')).toBe('02:00:00:00:00:01');
    expect(() => heartbeatMac('nope')).toThrow(/invalid peer name/);
  });

  it('builds a gratuitous ARP request', () => {
    const f = gratuitousArp('02:aa:bb:cc:dd:ee', '198.19.0.9');
    expect(f.toString('hex')).toBe(
      'ffffffffffff' + '02aabbccddee' + '0806' + '0001' + '0800' + '06' + '04' + '0001' + '02aabbccddee' + 'c6130009' + '000000000000' + 'c6130009',
    );
  });
});

describe('HeartbeatTracker', () => {
  const t = { fastIntervalMs: 500, slowIntervalMs: 10_000, timeoutMs: 60_000 };

  it('probes fast until acked, then slowly; works only with a matching ack', () => {
    const h = new HeartbeatTracker('42', 1464, t);
    expect(h.working(0)).toBe(false);
    expect(h.due(0)).toBe(true);
    h.sent(0);
    expect(h.due(499)).toBe(false);
    expect(h.due(500)).toBe(true);
    h.sent(500);
    expect(h.acked(600, { connUid: '41', length: 1464 })).toBe(false);
    expect(h.acked(600, { connUid: '42', length: 100 })).toBe(false);
    expect(h.working(600)).toBe(false);
    expect(h.acked(600, { connUid: '42', length: 1464 })).toBe(true);
    expect(h.working(600)).toBe(true);
    expect(h.due(1000)).toBe(false);
    expect(h.due(10_500)).toBe(true);
  });

  it('stops working after the timeout and probes fast again', () => {
    const h = new HeartbeatTracker('42', 1464, t);
    h.acked(0, { connUid: '42', length: 1464 });
    h.sent(0);
    expect(h.working(60_000)).toBe(true);
    expect(h.working(60_001)).toBe(false);
    h.sent(60_001);
    expect(h.due(60_501)).toBe(true);
    h.acked(60_600, { connUid: '42', length: 1464 });
    expect(h.working(60_600)).toBe(true);
  });
});
