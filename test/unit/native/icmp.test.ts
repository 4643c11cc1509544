// ICMP "fragmentation needed" frames for the sleeve's path MTU handling.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildFragNeeded, ipv4PacketLength } from '../../../datapath/io/icmp.js';
import { internetChecksum } from '../../../datapath/io/ipv4.js';
import { pattern, tcpFrame, udpFrame } from './packets.js';

describe('buildFragNeeded', () => {
  const big = tcpFrame({ payload: pattern(1400), srcMac: [2, 0, 0, 0, 0, 1], dstMac: [2, 0, 0, 0, 0, 2] });

  it('answers the sender of a too-big DF packet with type 3 code 4 and the MTU', () => {
    const out = buildFragNeeded(big, 0, big.length, 1372)!;
    expect(out).not.toBeNull();
    expect([...out.subarray(0, 6)]).toEqual([2, 0, 0, 0, 0, 1]); // back to the sender's MAC
    expect([...out.subarray(6, 12)]).toEqual([2, 0, 0, 0, 0, 2]);
    expect(out.readUInt16BE(12)).toBe(0x0800);
    expect(out[14]).toBe(0x45);
    expect(out[23]).toBe(1);
    expect([...out.subarray(26, 30)]).toEqual([198, 19, 0, 2]); // from the original destination
    expect([...out.subarray(30, 34)]).toEqual([198, 19, 0, 1]); // to the original source
    expect(out.readUInt16BE(16)).toBe(out.length - 14);
    expect(internetChecksum(out, 14, 20)).toBe(0);
    expect(out[34]).toBe(3);
    expect(out[35]).toBe(4);
    expect(out.readUInt16BE(34 + 6)).toBe(1372);
    expect(internetChecksum(out, 34, out.length - 34)).toBe(0);
    // Quotes the original IP header and the first 8 bytes (the TCP ports and sequence).
    expect(out.subarray(42)).toEqual(big.subarray(14, 14 + 28));
  });

  it('works on a frame inside a larger buffer', () => {
    const buf = Buffer.concat([Buffer.alloc(7, 0xee), big, Buffer.alloc(5, 0xee)]);
    expect(buildFragNeeded(buf, 7, big.length, 1300)).toEqual(buildFragNeeded(big, 0, big.length, 1300));
  });

  it('stays silent when no answer is due', () => {
    const noDf = tcpFrame({ payload: pattern(1400), df: false });
    expect(buildFragNeeded(noDf, 0, noDf.length, 1300)).toBeNull();
    const arp = Buffer.concat([Buffer.alloc(12, 1), Buffer.from([8, 6]), Buffer.alloc(28)]);
    expect(buildFragNeeded(arp, 0, arp.length, 1300)).toBeNull();
    const bcast = Buffer.from(big);
    bcast.fill(0xff, 0, 6);
    expect(buildFragNeeded(bcast, 0, bcast.length, 1300)).toBeNull();
    const mcastDst = Buffer.from(big);
    mcastDst[30] = 239;
    expect(buildFragNeeded(mcastDst, 0, mcastDst.length, 1300)).toBeNull();
    const icmpErr = Buffer.from(udpFrame(pattern(1400)));
    icmpErr[23] = 1;
    icmpErr[20] = 0x40; // DF
    icmpErr[34] = 3; // an ICMP error itself
    expect(buildFragNeeded(icmpErr, 0, icmpErr.length, 1300)).toBeNull();
    expect(buildFragNeeded(big, 0, 30, 1300)).toBeNull();
  });

  it('rejects a bad MTU or range with an error naming the field', () => {
    expect(() => buildFragNeeded(big, 0, big.length, 67)).toThrow(/^mtu:/);
    expect(() => buildFragNeeded(big, 0, big.length, 70000)).toThrow(/^mtu:/);
    expect(() => buildFragNeeded(big, 10, big.length, 1300)).toThrow(/^len:/);
  });

  it('never throws on random frames; any answer is well-formed', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 68, max: 65535 }), (bytes, mtu) => {
        const b = Buffer.from(bytes);
        if (b.length > 14) {
          b[12] = 8;
          b[13] = 0;
        }
        const out = buildFragNeeded(b, 0, b.length, mtu);
        if (out) {
          expect(internetChecksum(out, 14, 20)).toBe(0);
          expect(internetChecksum(out, 34, out.length - 34)).toBe(0);
          expect(out.readUInt16BE(40)).toBe(mtu);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

describe('ipv4PacketLength', () => {
  it('reads the IPv4 total length, -1 for anything else', () => {
    const f = tcpFrame({ payload: pattern(100) });
    expect(ipv4PacketLength(f, 0, f.length)).toBe(140);
    expect(ipv4PacketLength(f, 0, 20)).toBe(-1);
    const arp = Buffer.concat([Buffer.alloc(12), Buffer.from([8, 6]), Buffer.alloc(28)]);
    expect(ipv4PacketLength(arp, 0, arp.length)).toBe(-1);
  });
});
