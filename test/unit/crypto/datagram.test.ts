import { beforeEach, expect, it } from 'vitest';
import {
  DATAGRAM_COUNTER_MAX,
  DATAGRAM_OVERHEAD,
  DatagramOpener,
  DatagramSealer,
  type OpenFailure,
} from '../../../crypto/index.js';
import { bytes, eachBackend, hex } from './backends.js';

const WINDOW = 64;

eachBackend('DatagramSealer / DatagramOpener', () => {
  const key = bytes(32, 5);
  let sealer: DatagramSealer;
  let opener: DatagramOpener;
  let out: Uint8Array;
  beforeEach(() => {
    sealer = new DatagramSealer(key);
    opener = new DatagramOpener(key, WINDOW);
    out = new Uint8Array(2048);
  });

  /** Seals n datagrams with counters 0..n-1 and returns them. */
  function sealMany(n: number): Uint8Array[] {
    return Array.from({ length: n }, (_, i) => sealer.seal(bytes(100 + i, i)));
  }
  function open(d: Uint8Array): number | OpenFailure {
    return opener.openInto(out, 0, d, 0, d.length);
  }

  it('has 24 bytes of overhead: counter in clear, little-endian, then MAC and ciphertext', () => {
    expect(DATAGRAM_OVERHEAD).toBe(24);
    const s = new DatagramSealer(key, 0x0102_0304_0506);
    const d = s.seal(bytes(10));
    expect(d).toHaveLength(34);
    expect(hex(d.subarray(0, 8))).toBe('0605040302010000');
  });

  it('round-trips in order and reports the plaintext length', () => {
    const ds = sealMany(10);
    ds.forEach((d, i) => {
      expect(open(d)).toBe(100 + i);
      expect(hex(out.subarray(0, 100 + i))).toBe(hex(bytes(100 + i, i)));
    });
    expect(opener.stats).toEqual({ truncated: 0, auth: 0, replay: 0, 'too-old': 0 });
  });

  it('accepts out-of-order datagrams within the window, each once', () => {
    const ds = sealMany(40);
    const order = [5, 0, 39, 3, 20, 1, 2, 4, 38, 6];
    for (const i of order) expect(open(ds[i]!)).toBe(100 + i);
    for (const i of order) expect(open(ds[i]!)).toBe('replay');
    expect(opener.stats.replay).toBe(order.length);
  });

  it('drops a duplicate of the newest datagram', () => {
    const [d0] = sealMany(1);
    expect(open(d0!)).toBe(100);
    expect(open(d0!)).toBe('replay');
  });

  it('drops datagrams that fell behind the window as too old', () => {
    const ds = sealMany(WINDOW + 10);
    expect(open(ds[WINDOW + 9]!)).toBe(100 + WINDOW + 9); // top = WINDOW + 9
    expect(open(ds[9]!)).toBe('too-old'); // top - 9 = WINDOW
    expect(open(ds[10]!)).toBe(110); // top - 10 = WINDOW - 1: the oldest still inside
    expect(opener.stats['too-old']).toBe(1);
  });

  it('does not let a forged high counter move the window', () => {
    const ds = sealMany(3);
    const forged = new Uint8Array(200);
    forged.set([0x40, 0x42, 0x0f, 0, 0, 0, 0, 0]); // counter 1_000_000, garbage MAC
    expect(open(forged)).toBe('auth');
    // A forged copy of a genuine datagram's counter does not burn it either.
    const forgedSame = ds[1]!.slice();
    forgedSame[30]! ^= 0xff;
    expect(open(forgedSame)).toBe('auth');
    expect(open(ds[0]!)).toBe(100);
    expect(open(ds[1]!)).toBe(101);
    expect(open(ds[2]!)).toBe(102);
    expect(opener.stats.auth).toBe(2);
  });

  it('drops a counter no sealer can produce (>= 2^53) as unauthentic', () => {
    const d = sealMany(1)[0]!;
    d[7] = 0x01; // counter >= 2^56
    expect(open(d)).toBe('auth');
  });

  it('drops short datagrams and ones whose plaintext does not fit, as truncated', () => {
    for (let n = 0; n < DATAGRAM_OVERHEAD; n++) expect(open(new Uint8Array(n))).toBe('truncated');
    const d = sealer.seal(bytes(100));
    expect(opener.openInto(new Uint8Array(99), 0, d, 0, d.length)).toBe('truncated');
    expect(opener.openInto(new Uint8Array(120), 21, d, 0, d.length)).toBe('truncated');
    expect(opener.stats.truncated).toBe(DATAGRAM_OVERHEAD + 2);
    expect(open(d)).toBe(100); // and it still opens into a buffer that fits
  });

  it('drops a datagram sealed with another key or cut short', () => {
    const other = new DatagramSealer(bytes(32, 6)).seal(bytes(50));
    expect(open(other)).toBe('auth');
    const d = sealer.seal(bytes(50));
    expect(opener.openInto(out, 0, d, 0, d.length - 1)).toBe('auth');
    expect(open(d)).toBe(50);
  });

  it('opens zero-length payloads', () => {
    const d = sealer.seal(new Uint8Array(0));
    expect(d).toHaveLength(DATAGRAM_OVERHEAD);
    expect(opener.openInto(new Uint8Array(0), 0, d, 0, d.length)).toBe(0);
  });

  it('seals and opens at offsets inside larger buffers', () => {
    const plain = bytes(300, 2);
    const buf = new Uint8Array(1000);
    const n = sealer.sealInto(buf, 17, plain, 0, plain.length);
    expect(n).toBe(324);
    const dst = new Uint8Array(500);
    expect(opener.openInto(dst, 33, buf, 17, n)).toBe(300);
    expect(hex(dst.subarray(33, 333))).toBe(hex(plain));
  });

  it('seals and opens in place in one buffer (frame after the header)', () => {
    const plain = bytes(1400, 8);
    const buf = new Uint8Array(2000);
    buf.set(plain, DATAGRAM_OVERHEAD);
    const n = sealer.sealInto(buf, 0, buf, DATAGRAM_OVERHEAD, plain.length);
    expect(n).toBe(1424);
    const copy = buf.slice(0, n);
    expect(opener.openInto(buf, DATAGRAM_OVERHEAD, buf, 0, n)).toBe(1400);
    expect(hex(buf.subarray(DATAGRAM_OVERHEAD, DATAGRAM_OVERHEAD + 1400))).toBe(hex(plain));
    // Identical to sealing from a separate buffer.
    const again = new DatagramSealer(key).seal(plain);
    expect(hex(again)).toBe(hex(copy));
  });

  it('seals correctly when the plaintext overlaps the counter bytes', () => {
    const plain = bytes(64, 4);
    const buf = new Uint8Array(200);
    buf.set(plain, 0);
    const n = sealer.sealInto(buf, 0, buf, 0, plain.length);
    expect(open(buf.slice(0, n))).toBe(64);
    expect(hex(out.subarray(0, 64))).toBe(hex(plain));
  });

  it('throws RangeError for caller ranges outside the buffers', () => {
    const d = sealer.seal(bytes(40));
    expect(() => opener.openInto(out, 0, d, 10, d.length)).toThrow(RangeError);
    expect(() => opener.openInto(out, -1, d, 0, d.length)).toThrow(RangeError);
    expect(() => opener.openInto(out, out.length + 1, d, 0, d.length)).toThrow(RangeError);
    expect(() => sealer.sealInto(new Uint8Array(63), 0, bytes(40), 0, 40)).toThrow(/^out: range/);
    expect(() => sealer.sealInto(out, 0, bytes(40), 1, 40)).toThrow(/^plain: range/);
    expect(() => sealer.sealInto(out, 0.5, bytes(40), 0, 40)).toThrow(RangeError);
  });

  it('stops before its counter leaves the safe range, and the opener handles the top counters', () => {
    const s = new DatagramSealer(key, DATAGRAM_COUNTER_MAX - 1);
    const a = s.seal(bytes(10));
    const b = s.seal(bytes(10));
    expect(() => s.seal(bytes(10))).toThrow(/exhausted/);
    expect(open(b)).toBe(10);
    expect(open(a)).toBe(10);
    expect(open(b)).toBe('replay');
    expect(open(sealMany(1)[0]!)).toBe('too-old');
  });

  it('defaults to an 8192-counter window', () => {
    const o = new DatagramOpener(key);
    const s = new DatagramSealer(key);
    const first = s.seal(bytes(1));
    const far = new DatagramSealer(key, 8192).seal(bytes(1));
    const near = new DatagramSealer(key, 8191).seal(bytes(1));
    expect(o.openInto(out, 0, far, 0, far.length)).toBe(1);
    expect(o.openInto(out, 0, first, 0, first.length)).toBe('too-old');
    expect(o.openInto(out, 0, near, 0, near.length)).toBe(1);
  });
});
