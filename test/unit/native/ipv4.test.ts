import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { internetChecksum, ipToU32, u32ToIp } from '../../../datapath/io/ipv4.js';

describe('ipv4 helpers', () => {
  it('round-trips addresses', () => {
    fc.assert(
      fc.property(fc.nat({ max: 0xffffffff }), (v) => {
        expect(ipToU32(u32ToIp(v))).toBe(v);
      }),
    );
    expect(ipToU32('198.18.0.1')).toBe(0xc6120001);
  });

  it.each(['', '1.2.3', '1.2.3.4.5', '256.1.1.1', 'a.b.c.d', '1.2.3.-4', ' 1.2.3.4'])('rejects %j', (s) => {
    expect(() => ipToU32(s)).toThrow(/^ip: /);
  });

  it('computes the RFC 1071 example checksum', () => {
    // RFC 1071 §3: words 0001 f203 f4f5 f6f7 sum to ddf2 (before inversion).
    const b = Buffer.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
    expect(internetChecksum(b, 0, b.length)).toBe(~0xddf2 & 0xffff);
    // An odd trailing byte is padded with zero.
    expect(internetChecksum(Buffer.from([0x01]), 0, 1)).toBe(~0x0100 & 0xffff);
  });
});
