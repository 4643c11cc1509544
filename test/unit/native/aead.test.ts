// Batched ChaCha20-Poly1305: the addon and sodium-native produce the same
// datagrams and open each other's; forged, truncated or out-of-bounds items
// fail alone without harming the rest of the batch.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AEAD_OVERHEAD, AeadOpener, AeadSealer, type AeadBackend } from '../../../datapath/io/aead.js';
import { addon } from './addon.js';
import { pattern } from './packets.js';

const key = Buffer.alloc(32, 9);
const HDR = 4; // a caller header authenticated as AAD

interface Sealed {
  buf: Buffer;
  offs: Uint32Array;
  lens: Uint32Array;
}

function sealAll(backend: AeadBackend, items: Buffer[], sealer = new AeadSealer(key, 7, backend)): Sealed {
  const src = Buffer.concat(items);
  const so = new Uint32Array(items.length);
  const sl = new Uint32Array(items.length);
  const doffs = new Uint32Array(items.length);
  let o = 0;
  let d = 0;
  items.forEach((it, i) => {
    so[i] = o;
    sl[i] = it.length;
    o += it.length;
    doffs[i] = d + HDR;
    d += HDR + AEAD_OVERHEAD + it.length;
  });
  const dst = Buffer.alloc(d);
  for (let i = 0; i < items.length; i++) dst.fill(0xa0 + i, doffs[i]! - HDR, doffs[i]!);
  const status = new Int32Array(items.length);
  expect(sealer.seal(src, so, sl, items.length, dst, doffs, status, HDR)).toBe(items.length);
  items.forEach((it, i) => expect(status[i]).toBe(AEAD_OVERHEAD + it.length));
  return { buf: dst, offs: doffs, lens: new Uint32Array(items.map((it) => AEAD_OVERHEAD + it.length)) };
}

function openAll(backend: AeadBackend, s: Sealed, count = s.offs.length): { status: Int32Array; counters: Uint32Array; out: Buffer[] } {
  const dst = Buffer.alloc(s.buf.length);
  const status = new Int32Array(count);
  const counters = new Uint32Array(2 * count);
  new AeadOpener(key, 7, backend).open(s.buf, s.offs, s.lens, count, dst, s.offs, status, counters, HDR);
  return { status, counters, out: [...status].map((n, i) => dst.subarray(s.offs[i]!, s.offs[i]! + Math.max(0, n))) };
}

describe('batched ChaCha20-Poly1305', () => {
  it('uses the addon when it is built', () => {
    addon();
    expect(new AeadSealer(key, 1).backend).toBe('native');
  });

  it.each([
    ['native', 'sodium'],
    ['sodium', 'native'],
    ['native', 'native'],
    ['sodium', 'sodium'],
  ] as const)('%s seals what %s opens, with running counters', (a, b) => {
    const items = [pattern(1400, 1), pattern(0, 2), pattern(77, 3)];
    const sealed = sealAll(a, items);
    const { status, counters, out } = openAll(b, sealed);
    expect([...status]).toEqual(items.map((i) => i.length));
    expect(out).toEqual(items);
    expect([...counters]).toEqual([0, 0, 1, 0, 2, 0]);
  });

  it('seals identically on both backends', () => {
    const items = [pattern(500, 4), pattern(9, 5)];
    expect(sealAll('native', items).buf).toEqual(sealAll('sodium', items).buf);
  });

  it('carries the counter across batches and past 2^32', () => {
    const sealer = new AeadSealer(key, 7, 'native');
    const bump = new AeadSealer(key, 7, 'sodium');
    // Move both counters to just under 2^32 by sealing into a scratch area.
    for (const s of [sealer, bump]) (s as unknown as { lo: number }).lo = 0xffffffff;
    const a = sealAll('native', [pattern(10), pattern(10)], sealer);
    const b = sealAll('sodium', [pattern(10), pattern(10)], bump);
    expect(a.buf).toEqual(b.buf);
    expect([...openAll('native', a).counters]).toEqual([0xffffffff, 0, 0, 1]);
    expect(sealer.counter).toBe(2 ** 32 + 1);
  });

  it.each(['native', 'sodium'] as const)('%s: a forged, truncated or re-headed item fails alone', (backend) => {
    const items = [pattern(300, 1), pattern(300, 2), pattern(300, 3), pattern(300, 4)];
    const sealed = sealAll('native', items);
    sealed.buf[sealed.offs[0]! + 20]! ^= 1; // ciphertext bit flip
    sealed.lens[1] = 20; // shorter than counter + tag
    sealed.buf[sealed.offs[2]! - 1]! ^= 1; // the AAD header
    const { status, out } = openAll(backend, sealed);
    expect([...status]).toEqual([-1, -1, -1, 300]);
    expect(out[3]).toEqual(items[3]);
  });

  it('rejects a wrong key or direction', () => {
    const sealed = sealAll('native', [pattern(100)]);
    const status = new Int32Array(1);
    const dst = Buffer.alloc(200);
    expect(new AeadOpener(key, 8).open(sealed.buf, sealed.offs, sealed.lens, 1, dst, Uint32Array.of(0), status, new Uint32Array(2), HDR)).toBe(0);
    expect(new AeadOpener(Buffer.alloc(32, 1), 7).open(sealed.buf, sealed.offs, sealed.lens, 1, dst, Uint32Array.of(0), status, new Uint32Array(2), HDR)).toBe(0);
  });

  it('names the field on bad parameters', () => {
    expect(() => new AeadSealer(Buffer.alloc(31), 1)).toThrow(/^key:/);
    expect(() => new AeadOpener(key, -1)).toThrow(/^prefix:/);
  });

  it('never crashes or writes out of bounds on random offsets and lengths', () => {
    const io = addon();
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 3000 }), fc.nat({ max: 3000 }), fc.nat({ max: 3000 })), { minLength: 1, maxLength: 8 }),
        fc.nat({ max: 300 }),
        (items, aad) => {
          const src = Buffer.alloc(2048, 1);
          const dst = Buffer.alloc(2048, 2);
          const guard = Buffer.concat([Buffer.alloc(2048, 2)]);
          const so = Uint32Array.from(items.map((x) => x[0]));
          const sl = Uint32Array.from(items.map((x) => x[1]));
          const d = Uint32Array.from(items.map((x) => x[2]));
          const st = new Int32Array(items.length);
          const a = Math.min(aad, 256);
          const n = io.aeadSeal(key, 1, 0, 0, src, so, sl, dst, d, items.length, a, st);
          expect(n).toBe([...st].filter((x) => x >= 0).length);
          const ctr = new Uint32Array(2 * items.length);
          const m = io.aeadOpen(key, 1, dst, d, sl, guard, so, items.length, a, st, ctr);
          expect(m).toBeGreaterThanOrEqual(0);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
