// The addon's TAP write path with offload: consecutive segments of one TCP
// flow become one TSO super-packet; everything else passes through in
// order. Checked by segmenting the output again (the read path) and
// comparing with what went in.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { coalesce, segment } from './addon.js';
import { ACK, FIN, GSO_NONE, GSO_TCPV4, NEEDS_CSUM, PSH, SYN, l4ChecksumOk, pattern, tcpFrame, udpFrame, viewTcp, type TcpSpec } from './packets.js';

function flow(n: number, mss: number, base: Partial<TcpSpec> = {}, lastLen = mss): Buffer[] {
  const out: Buffer[] = [];
  let seq = base.seq ?? 1000;
  for (let i = 0; i < n; i++) {
    const len = i === n - 1 ? lastLen : mss;
    out.push(tcpFrame({ ...base, seq, id: (base.id ?? 1) + i, payload: pattern(len, i) }));
    seq += len;
  }
  return out;
}

const vnet = (b: Buffer): { flags: number; gsoType: number; gsoSize: number; csumStart: number; csumOffset: number; hdrLen: number } => ({
  flags: b[0]!,
  gsoType: b[1]!,
  hdrLen: b.readUInt16LE(2),
  gsoSize: b.readUInt16LE(4),
  csumStart: b.readUInt16LE(6),
  csumOffset: b.readUInt16LE(8),
});

describe('receive-side coalescing', () => {
  it('merges a run of segments into one super-packet that segments back to the same frames', () => {
    const frames = flow(10, 1380, {}, 500);
    const out = coalesce(frames);
    expect(out).toHaveLength(1);
    expect(vnet(out[0]!)).toEqual({ flags: NEEDS_CSUM, gsoType: GSO_TCPV4, gsoSize: 1380, csumStart: 34, csumOffset: 16, hdrLen: 54 });
    const back = segment(out[0]!).frames;
    expect(back).toEqual(frames);
  });

  it('carries PSH on the merged packet and ends the run there', () => {
    const frames = flow(4, 1000);
    frames[1] = tcpFrame({ seq: 2000, id: 2, payload: pattern(1000, 1), flags: ACK | PSH });
    const out = coalesce(frames);
    expect(out).toHaveLength(2);
    expect(segment(out[0]!).frames.map((f) => viewTcp(f).seq)).toEqual([1000, 2000]);
    expect(viewTcp(segment(out[0]!).frames[1]!).flags & PSH).toBe(PSH);
    expect(viewTcp(segment(out[0]!).frames[0]!).flags & PSH).toBe(0);
  });

  it('does not merge across a sequence gap, a different ack, or a SYN/FIN', () => {
    const gap = flow(2, 1000);
    gap.push(tcpFrame({ seq: 9999, id: 3, payload: pattern(1000) }));
    expect(coalesce(gap)).toHaveLength(2);
    const acks = flow(2, 1000);
    acks.push(tcpFrame({ seq: 3000, id: 3, ack: 7777, payload: pattern(1000) }));
    expect(coalesce(acks)).toHaveLength(2);
    for (const flag of [SYN, FIN]) {
      const f = flow(2, 1000);
      f.push(tcpFrame({ seq: 3000, id: 3, flags: ACK | flag, payload: pattern(1000) }));
      const out = coalesce(f);
      expect(out).toHaveLength(2);
      expect(vnet(out[1]!).gsoType).toBe(GSO_NONE);
      expect(out[1]!.subarray(10)).toEqual(f[2]);
    }
  });

  it('does not merge a bigger segment after a smaller one', () => {
    const frames = [tcpFrame({ seq: 1000, id: 1, payload: pattern(500) }), tcpFrame({ seq: 1500, id: 2, payload: pattern(1000) })];
    expect(coalesce(frames)).toHaveLength(2);
  });

  it('keeps flows apart and passes other frames through', () => {
    const a = flow(3, 1000, { sport: 1 });
    const b = flow(3, 1000, { sport: 2 });
    const udp = udpFrame(pattern(50), 0x1234);
    const pureAck = tcpFrame({ sport: 3, payload: Buffer.alloc(0) });
    const mixed = [a[0]!, b[0]!, udp, a[1]!, b[1]!, pureAck, a[2]!, b[2]!];
    const out = coalesce(mixed);
    const plain = out.filter((o) => vnet(o).gsoType === GSO_NONE).map((o) => o.subarray(10));
    expect(plain).toEqual([udp, pureAck]);
    const merged = out.filter((o) => vnet(o).gsoType === GSO_TCPV4).map((o) => segment(o).frames);
    expect(merged).toEqual([a, b]);
  });

  it('keeps a flow in order when a frame of it cannot be merged', () => {
    const frames = flow(3, 1000);
    const fin = tcpFrame({ seq: 4000, id: 4, flags: ACK | FIN, payload: pattern(10) });
    const out = coalesce([...frames, fin]);
    expect(out).toHaveLength(2);
    expect(segment(out[0]!).frames).toEqual(frames);
    expect(out[1]!.subarray(10)).toEqual(fin);
  });

  it('stops at 64 segments and at 64 KiB', () => {
    expect(coalesce(flow(70, 100)).length).toBe(2);
    const big = coalesce(flow(60, 1448));
    expect(big.length).toBe(2);
    for (const o of big) expect(o.length - 10 - 14).toBeLessThanOrEqual(65535);
  });

  it('without DF, merges only when IP IDs run on', () => {
    const frames = flow(3, 1000, { df: false });
    expect(coalesce(frames)).toHaveLength(1);
    frames[2] = tcpFrame({ seq: 3000, id: 50, df: false, payload: pattern(1000, 2) });
    expect(coalesce(frames)).toHaveLength(2);
  });

  it('never crashes on random frames, and every TCP payload byte comes out once, in order', () => {
    const spec = fc.record({
      sport: fc.integer({ min: 1, max: 3 }),
      len: fc.integer({ min: 0, max: 1500 }),
      flags: fc.constantFrom(ACK, ACK, ACK, ACK | PSH, ACK | FIN, SYN),
      jump: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 80 }), fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 5 }), (specs, junk) => {
        const seqs = new Map<number, number>();
        const ids = new Map<number, number>();
        const frames = specs.map((s) => {
          const seq = seqs.get(s.sport) ?? 1;
          const id = ids.get(s.sport) ?? 1;
          seqs.set(s.sport, seq + s.len + (s.jump ? 7 : 0));
          ids.set(s.sport, id + 1);
          return tcpFrame({ sport: s.sport, seq, id, flags: s.flags, payload: pattern(s.len, seq) });
        });
        const all = [...frames, ...junk.filter((j) => j.length >= 14).map((j) => Buffer.from(j))];
        const out = coalesce(all);
        // Per flow, the payloads after re-segmenting equal those that went in.
        const want = new Map<number, Buffer[]>();
        for (const f of frames) want.set(f.readUInt16BE(34), [...(want.get(f.readUInt16BE(34)) ?? []), viewTcp(f).payload]);
        const got = new Map<number, Buffer[]>();
        for (const o of out) {
          const frs = vnet(o).gsoType === GSO_TCPV4 ? segment(o).frames : [o.subarray(10)];
          for (const f of frs) {
            if (f.length < 54 || f[23] !== 6 || !frames.some((x) => x.readUInt16BE(34) === f.readUInt16BE(34))) continue;
            if (vnet(o).gsoType === GSO_TCPV4) expect(l4ChecksumOk(Buffer.from(f))).toBe(true);
            got.set(f.readUInt16BE(34), [...(got.get(f.readUInt16BE(34)) ?? []), viewTcp(Buffer.from(f)).payload]);
          }
        }
        for (const [port, parts] of want) expect(Buffer.concat(got.get(port) ?? [])).toEqual(Buffer.concat(parts));
      }),
      { numRuns: 300 },
    );
  });
});
