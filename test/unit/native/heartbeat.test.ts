import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildHeartbeat, HEARTBEAT_ETHERTYPE, HEARTBEAT_MIN_FRAME, parseHeartbeat } from '../../../datapath/io/heartbeat.js';
import { pattern, tcpFrame } from './packets.js';

describe('fastdp heartbeat frames', () => {
  it('builds a frame of the exact size that parses back', () => {
    const f = buildHeartbeat({ src: '02:00:00:00:00:01', dst: '0a:bb:cc:dd:ee:ff', connUid: '18446744073709551615', seq: 7, size: 1434 });
    expect(f.length).toBe(1434);
    expect([...f.subarray(0, 6)]).toEqual([0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
    expect(f.readUInt16BE(12)).toBe(HEARTBEAT_ETHERTYPE);
    expect(parseHeartbeat(f, 0, f.length)).toEqual({ connUid: '18446744073709551615', seq: 7, size: 1434 });
  });

  it('round-trips any valid heartbeat, also inside a larger buffer', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }), fc.nat({ max: 0xffffffff }), fc.integer({ min: HEARTBEAT_MIN_FRAME, max: 9000 }), fc.nat({ max: 50 }), (uid, seq, size, pad) => {
        const f = buildHeartbeat({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', connUid: uid.toString(), seq, size });
        const buf = Buffer.concat([Buffer.alloc(pad), f]);
        expect(parseHeartbeat(buf, pad, f.length)).toEqual({ connUid: uid.toString(), seq, size });
      }),
    );
  });

  it('does not mistake other frames for heartbeats', () => {
    const t = tcpFrame({ payload: pattern(100) });
    expect(parseHeartbeat(t, 0, t.length)).toBeNull();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (b) => {
        const r = parseHeartbeat(b, 0, b.length);
        if (r) expect(Buffer.from(b).readUInt16BE(12)).toBe(HEARTBEAT_ETHERTYPE);
      }),
    );
  });

  it('names the field it rejects', () => {
    const ok = { src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', connUid: '1', seq: 1, size: 100 };
    expect(() => buildHeartbeat({ ...ok, size: 10 })).toThrow(/^size:/);
    expect(() => buildHeartbeat({ ...ok, seq: -1 })).toThrow(/^seq:/);
    expect(() => buildHeartbeat({ ...ok, connUid: '18446744073709551616' })).toThrow(/^connUid:/);
    expect(() => buildHeartbeat({ ...ok, src: '02:00:00:00:00' })).toThrow(/^src:/);
  });
});
