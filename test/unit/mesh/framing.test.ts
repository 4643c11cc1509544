import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeFrame, FrameDecoder, FrameTooLarge } from '../../../mesh/wire/framing.js';

describe('framing', () => {
  it('reassembles frames split at any byte', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }), fc.array(fc.nat(50), { maxLength: 20 }), (payloads, cuts) => {
        const stream = Buffer.concat(payloads.map((p) => encodeFrame(p)));
        const d = new FrameDecoder();
        const got: Buffer[] = [];
        let pos = 0;
        for (const c of cuts) {
          const end = Math.min(stream.length, pos + c);
          got.push(...d.push(stream.subarray(pos, end)));
          pos = end;
        }
        got.push(...d.push(stream.subarray(pos)));
        expect(got.map((b) => [...b])).toEqual(payloads.map((p) => [...p]));
        expect(d.pendingBytes).toBe(0);
      }),
    );
  });

  it('refuses an oversized frame from its header alone, before the payload arrives', () => {
    const d = new FrameDecoder(1024);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(0xffffffff);
    expect(() => d.push(header)).toThrow(FrameTooLarge);
  });

  it('accepts a frame exactly at the limit', () => {
    const d = new FrameDecoder(16);
    expect(d.push(encodeFrame(Buffer.alloc(16, 7)))).toHaveLength(1);
    expect(() => d.push(encodeFrame(Buffer.alloc(17)))).toThrow(FrameTooLarge);
  });
});
