// The addon's TAP read path: TSO super-packets become MSS-sized TCP/IPv4
// segments with correct checksums, IP IDs, sequence numbers and flags;
// partial checksums are completed; malformed frames are dropped with a
// reason and never crash.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { segment, reasonCode } from './addon.js';
import { ACK, CWR, FIN, GSO_NONE, GSO_TCPV4, NEEDS_CSUM, PSH, ipChecksumOk, l4ChecksumOk, pattern, superPacket, tcpFrame, udpFrame, viewTcp, withVnet } from './packets.js';

describe('TSO segmentation', () => {
  it('cuts a super-packet into gso_size segments with valid headers', () => {
    const payload = pattern(10_000);
    const input = superPacket({ payload, seq: 0xfffff000, id: 65530, flags: ACK | PSH | FIN | CWR }, 1380);
    const { result, frames } = segment(input);
    expect(result).toBe(Math.ceil(10_000 / 1380));
    const views = frames.map(viewTcp);
    views.forEach((v, i) => {
      const last = i === views.length - 1;
      expect(ipChecksumOk(frames[i]!)).toBe(true);
      expect(l4ChecksumOk(frames[i]!)).toBe(true);
      expect(v.payload.length).toBe(last ? 10_000 - 1380 * i : 1380);
      expect(v.totLen).toBe(20 + 20 + v.payload.length);
      expect(frames[i]!.length).toBe(14 + v.totLen);
      expect(v.id).toBe((65530 + i) & 0xffff); // wraps
      expect(v.seq).toBe((0xfffff000 + 1380 * i) >>> 0); // wraps
      expect(Boolean(v.flags & PSH)).toBe(last);
      expect(Boolean(v.flags & FIN)).toBe(last);
      expect(Boolean(v.flags & CWR)).toBe(i === 0);
      expect(v.flags & ACK).toBe(ACK);
      expect(frames[i]!.subarray(0, 14)).toEqual(input.subarray(10, 24)); // Ethernet header copied
    });
    expect(Buffer.concat(views.map((v) => v.payload))).toEqual(payload);
  });

  it('keeps TCP options in every segment', () => {
    const options = [1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]; // NOP NOP timestamps
    const { frames } = segment(superPacket({ payload: pattern(3000), options }, 1000));
    expect(frames).toHaveLength(3);
    for (const f of frames) {
      expect([...f.subarray(54, 66)]).toEqual(options);
      expect(l4ChecksumOk(f)).toBe(true);
    }
  });

  it('leaves room before each frame when asked (headroom)', () => {
    const out = segment(superPacket({ payload: pattern(2000) }, 1000), 8);
    expect(out.result).toBe(2);
    expect(out.frames.every((f) => l4ChecksumOk(f))).toBe(true);
  });

  it('passes a plain frame through unchanged', () => {
    const f = tcpFrame({ payload: pattern(100) });
    const { result, frames } = segment(withVnet(f, {}));
    expect(result).toBe(1);
    expect(frames[0]).toEqual(f);
  });

  it('completes a partial TCP checksum (NEEDS_CSUM without GSO)', () => {
    const f = tcpFrame({ payload: pattern(333) });
    const good = f.readUInt16BE(50);
    // What the kernel hands over: the pseudo-header sum only.
    const partial = Buffer.from(f);
    partial.writeUInt16BE(0, 50);
    const seg = f.readUInt16BE(16) - 20;
    let sum = 0;
    for (let i = 26; i < 34; i += 2) sum += partial.readUInt16BE(i);
    sum += 6 + seg;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    partial.writeUInt16BE(sum, 50);
    const { result, frames } = segment(withVnet(partial, { flags: NEEDS_CSUM, csumStart: 34, csumOffset: 16 }));
    expect(result).toBe(1);
    expect(frames[0]!.readUInt16BE(50)).toBe(good);
  });

  it('completes a UDP checksum and never leaves it zero', () => {
    const f = udpFrame(pattern(77), 0);
    const { frames } = segment(withVnet(f, { flags: NEEDS_CSUM, csumStart: 34, csumOffset: 6 }));
    expect(frames[0]!.readUInt16BE(40)).not.toBe(0);
  });

  it('segments a super-packet carried in an 802.1Q-tagged frame', () => {
    const inner = superPacket({ payload: pattern(3000) }, 1400).subarray(10);
    const tagged = Buffer.concat([inner.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x05]), inner.subarray(12)]);
    const { result, frames } = segment(withVnet(tagged, { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, gsoSize: 1400, csumStart: 38, csumOffset: 16 }));
    expect(result).toBe(3);
    for (const f of frames) expect([...f.subarray(12, 16)]).toEqual([0x81, 0, 0, 5]);
  });

  it('reports tooBig when the caller buffer cannot hold one frame', () => {
    expect(segment(withVnet(tcpFrame({ payload: pattern(1000) }), {}), 0, 500).result).toBe(reasonCode('tooBig'));
  });

  it.each([
    ['shorter than Ethernet', () => Buffer.alloc(15), 'short'],
    ['UDP GSO (never enabled)', () => withVnet(udpFrame(pattern(3000)), { gsoType: 3, gsoSize: 1000 }), 'gsoUnsupported'],
    ['TCPv6 GSO (never enabled)', () => withVnet(tcpFrame({ payload: pattern(3000) }), { gsoType: 4, gsoSize: 1000 }), 'gsoUnsupported'],
    ['GSO on a UDP packet', () => withVnet(udpFrame(pattern(3000)), { gsoType: GSO_TCPV4, gsoSize: 1000 }), 'gsoNotTcp'],
    ['GSO on ARP', () => withVnet(Buffer.concat([Buffer.alloc(12), Buffer.from([8, 6]), Buffer.alloc(28)]), { gsoType: GSO_TCPV4, gsoSize: 1000 }), 'gsoNotIpv4'],
    ['gso_size below 64', () => superPacket({ payload: pattern(3000) }, 10), 'gsoBadSize'],
    ['csum offset past the end', () => withVnet(tcpFrame({ payload: pattern(10) }), { flags: NEEDS_CSUM, csumStart: 34, csumOffset: 500 }), 'csumOffsets'],
  ])('drops %s', (_name, make, reason) => {
    expect(segment(make()).result).toBe(reasonCode(reason));
  });

  it('drops a super-packet whose IP header is cut or wrong', () => {
    const good = superPacket({ payload: pattern(3000) }, 1000);
    const badVersion = Buffer.from(good);
    badVersion[10 + 14] = 0x65;
    expect(segment(badVersion).result).toBe(reasonCode('gsoBadIp'));
    const fragment = Buffer.from(good);
    fragment[10 + 14 + 6] = 0x20; // MF
    expect(segment(fragment).result).toBe(reasonCode('gsoBadIp'));
    const badTcp = Buffer.from(good);
    badTcp[10 + 34 + 12] = 0x30; // data offset 12 bytes
    expect(segment(badTcp).result).toBe(reasonCode('gsoBadTcp'));
    expect(segment(good.subarray(0, 10 + 14 + 30)).result).toBe(reasonCode('short'));
  });

  it('never crashes on random bytes: a frame count or a drop reason', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 64 }), (bytes, headroom) => {
        const r = segment(Buffer.from(bytes), headroom, 64 * 1024, 64).result;
        expect(Number.isInteger(r)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('never crashes on mutated super-packets, and whatever it emits has valid checksums', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9000 }),
        fc.integer({ min: 1, max: 3000 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
        fc.integer({ min: 0, max: 400 }),
        (size, gso, mutations, cut) => {
          const input = superPacket({ payload: pattern(size) }, gso);
          // Mutate anywhere but the payload's own bytes' meaning: headers and vnet fields.
          for (const [pos, val] of mutations) input[pos % Math.min(input.length, 10 + 54)] = val;
          const cutInput = input.subarray(0, Math.max(0, input.length - cut));
          const { result, frames } = segment(cutInput, 0, 1024 * 1024, 1024);
          expect(Number.isInteger(result)).toBe(true);
          if (result > 0 && cutInput[1] === GSO_TCPV4) {
            for (const f of frames) {
              expect(f.length).toBeGreaterThanOrEqual(54);
              if ((f[14]! & 0x0f) === 5) expect(ipChecksumOk(f)).toBe(true);
            }
          }
          if (cutInput[1] === GSO_NONE && result > 0) expect(frames).toHaveLength(1);
        },
      ),
      { numRuns: 1500 },
    );
  });
});
