import { beforeAll, expect, it } from 'vitest';
import {
  FrameOpener,
  FrameSealer,
  MAC_BYTES,
  deriveSessionKeys,
  generateKeyPair,
  type SessionKeys,
} from '../../../crypto/index.js';
import { bytes, eachBackend, hex } from './backends.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

eachBackend('FrameSealer / FrameOpener', () => {
  let key: Uint8Array;
  beforeAll(() => {
    key = bytes(32, 3);
  });

  it('round-trips frames in order, including an empty one', () => {
    const s = new FrameSealer(key);
    const o = new FrameOpener(key);
    for (const msg of ['hello', '', 'x'.repeat(70_000), 'last']) {
      const sealed = s.seal(enc.encode(msg));
      expect(sealed).toHaveLength(enc.encode(msg).length + MAC_BYTES);
      const opened = o.open(sealed);
      expect(opened).not.toBeNull();
      expect(dec.decode(opened!)).toBe(msg);
    }
  });

  it('seals the same plaintext differently each time (counter nonce)', () => {
    const s = new FrameSealer(key);
    const a = s.seal(enc.encode('same'));
    const b = s.seal(enc.encode('same'));
    expect(hex(a)).not.toBe(hex(b));
  });

  it('refuses a reordered frame without advancing, then opens both in order', () => {
    const s = new FrameSealer(key);
    const o = new FrameOpener(key);
    const f0 = s.seal(enc.encode('zero'));
    const f1 = s.seal(enc.encode('one'));
    expect(o.open(f1)).toBeNull();
    expect(dec.decode(o.open(f0)!)).toBe('zero');
    expect(dec.decode(o.open(f1)!)).toBe('one');
  });

  it('refuses a replayed frame', () => {
    const s = new FrameSealer(key);
    const o = new FrameOpener(key);
    const f0 = s.seal(enc.encode('zero'));
    expect(o.open(f0)).not.toBeNull();
    expect(o.open(f0)).toBeNull();
  });

  it('refuses any single flipped bit without advancing the counter', () => {
    const s = new FrameSealer(key);
    const o = new FrameOpener(key);
    const f0 = s.seal(enc.encode('tamper me'));
    for (let i = 0; i < f0.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = f0.slice();
        bad[i]! ^= bit;
        expect(o.open(bad)).toBeNull();
      }
    }
    expect(dec.decode(o.open(f0)!)).toBe('tamper me');
  });

  it('refuses frames shorter than the MAC, appended or cut bytes, and the wrong key', () => {
    const s = new FrameSealer(key);
    const o = new FrameOpener(key);
    for (let n = 0; n < MAC_BYTES; n++) expect(o.open(new Uint8Array(n))).toBeNull();
    const f0 = s.seal(enc.encode('abc'));
    expect(o.open(f0.subarray(0, f0.length - 1))).toBeNull();
    const longer = new Uint8Array(f0.length + 1);
    longer.set(f0);
    expect(o.open(longer)).toBeNull();
    expect(new FrameOpener(bytes(32, 4)).open(f0)).toBeNull();
    expect(o.open(f0)).not.toBeNull();
  });

  it('keeps a copy of the key (the caller may wipe its own)', () => {
    const k = key.slice();
    const s = new FrameSealer(k);
    k.fill(0);
    expect(new FrameOpener(key).open(s.seal(enc.encode('x')))).not.toBeNull();
  });

  it('stops at the end of the 64-bit counter instead of wrapping', () => {
    const last = 0xffff_ffff_ffff_ffffn;
    const s = new FrameSealer(key, last - 1n);
    const o = new FrameOpener(key, last - 1n);
    expect(o.open(s.seal(enc.encode('a')))).not.toBeNull();
    expect(o.open(s.seal(enc.encode('b')))).not.toBeNull(); // counter 2^64-1: the last one
    expect(() => s.seal(enc.encode('c'))).toThrow(/exhausted/);
    // An opener at its end refuses everything, including a frame sealed at counter 0.
    expect(o.open(new FrameSealer(key).seal(enc.encode('d')))).toBeNull();
  });

  it('crosses the 32-bit boundary of the counter', () => {
    const s = new FrameSealer(key, 0xffff_fffen);
    const o = new FrameOpener(key, 0xffff_fffen);
    for (let i = 0; i < 4; i++) expect(o.open(s.seal(bytes(10, i)))).not.toBeNull();
    // A fresh opener 2^32 frames behind cannot open frame 2^32 + 1.
    expect(new FrameOpener(key, 1n).open(new FrameSealer(key, 0x1_0000_0001n).seal(bytes(3)))).toBeNull();
  });

  it('works with session keys: each side opens what the other seals, never its own', () => {
    const ki = generateKeyPair();
    const kr = generateKeyPair();
    const secret = bytes(32, 9);
    const transcript = bytes(20);
    const i: SessionKeys = deriveSessionKeys({ local: ki, remotePublic: kr.publicKey, secret, initiator: true, transcript });
    const r: SessionKeys = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret, initiator: false, transcript });
    const toR = new FrameSealer(i.tcpSend).seal(enc.encode('to responder'));
    expect(dec.decode(new FrameOpener(r.tcpRecv).open(toR)!)).toBe('to responder');
    expect(new FrameOpener(i.tcpRecv).open(toR)).toBeNull(); // reflected back to the initiator
    expect(new FrameOpener(r.udpRecv).open(toR)).toBeNull(); // other transport
  });

  it('rejects keys of the wrong size with a RangeError', () => {
    expect(() => new FrameSealer(new Uint8Array(16))).toThrow(/^key: /);
    expect(() => new FrameOpener(new Uint8Array(33))).toThrow(/^key: /);
  });
});
