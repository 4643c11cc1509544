import fc from 'fast-check';
import { expect, it } from 'vitest';
import {
  HandshakeError,
  deriveSessionKeys,
  generateKeyPair,
  type KeyPair,
  type SessionKeys,
} from '../../../crypto/index.js';
import { bytes, eachBackend, fromHex, hex } from './backends.js';

// X25519 points of small order (and non-canonical encodings of them): the
// shared secret with any of them is all zero, so an attacker who sends one
// would know the "secret". libsodium's own blacklist names the same points.
const LOW_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000', // 0
  '0100000000000000000000000000000000000000000000000000000000000000', // 1
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', // order 8
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157', // order 8
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p - 1
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p (= 0)
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // p + 1 (= 1)
  '0000000000000000000000000000000000000000000000000000000000000080', // 0 with the top bit set
];

function pair(secret: Uint8Array, transcript = bytes(100)): { i: SessionKeys; r: SessionKeys; ki: KeyPair; kr: KeyPair } {
  const ki = generateKeyPair();
  const kr = generateKeyPair();
  const i = deriveSessionKeys({ local: ki, remotePublic: kr.publicKey, secret, initiator: true, transcript });
  const r = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret, initiator: false, transcript });
  return { i, r, ki, kr };
}

function allKeys(k: SessionKeys): string[] {
  return [k.tcpSend, k.tcpRecv, k.udpSend, k.udpRecv].map(hex);
}

eachBackend('deriveSessionKeys', () => {
  const secret = bytes(32, 7);

  it('gives both sides matching keys, one per direction and transport', () => {
    const { i, r } = pair(secret);
    expect(hex(i.tcpSend)).toBe(hex(r.tcpRecv));
    expect(hex(i.tcpRecv)).toBe(hex(r.tcpSend));
    expect(hex(i.udpSend)).toBe(hex(r.udpRecv));
    expect(hex(i.udpRecv)).toBe(hex(r.udpSend));
    const distinct = new Set(allKeys(i));
    expect(distinct.size).toBe(4);
    for (const k of allKeys(i)) expect(k).toHaveLength(64);
  });

  it('gives unrelated keys for a different password', () => {
    const ki = generateKeyPair();
    const kr = generateKeyPair();
    const transcript = bytes(50);
    const i = deriveSessionKeys({ local: ki, remotePublic: kr.publicKey, secret, initiator: true, transcript });
    const r = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret: bytes(32, 8), initiator: false, transcript });
    const both = new Set([...allKeys(i), ...allKeys(r)]);
    expect(both.size).toBe(8);
  });

  it('binds the transcript: one differing byte gives unrelated keys', () => {
    const ki = generateKeyPair();
    const kr = generateKeyPair();
    const t1 = bytes(80);
    const t2 = t1.slice();
    t2[40]! ^= 1;
    const i = deriveSessionKeys({ local: ki, remotePublic: kr.publicKey, secret, initiator: true, transcript: t1 });
    const r = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret, initiator: false, transcript: t2 });
    expect(new Set([...allKeys(i), ...allKeys(r)]).size).toBe(8);
    // ...and a truncated transcript too (the transcript is the last, unframed field).
    const r2 = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret, initiator: false, transcript: t1.subarray(0, 79) });
    expect(new Set([...allKeys(i), ...allKeys(r2)]).size).toBe(8);
  });

  it('gives fresh keys per connection (fresh key pairs)', () => {
    const a = pair(secret);
    const b = pair(secret);
    expect(new Set([...allKeys(a.i), ...allKeys(b.i)]).size).toBe(8);
  });

  it('gives unrelated keys when both ends think they initiated (no shared send key)', () => {
    const ki = generateKeyPair();
    const kr = generateKeyPair();
    const transcript = bytes(10);
    const a = deriveSessionKeys({ local: ki, remotePublic: kr.publicKey, secret, initiator: true, transcript });
    const b = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret, initiator: true, transcript });
    expect(new Set([...allKeys(a), ...allKeys(b)]).size).toBe(8);
  });

  it.each(LOW_ORDER_POINTS)('rejects the low-order point %s', (point) => {
    const local = generateKeyPair();
    expect(() =>
      deriveSessionKeys({ local, remotePublic: fromHex(point), secret, initiator: true, transcript: bytes(4) }),
    ).toThrow(expect.objectContaining({ name: 'HandshakeError', message: expect.stringMatching(/low-order/) }));
  });

  it('rejects a remote key of the wrong length and a reflected key', () => {
    const local = generateKeyPair();
    for (const n of [0, 31, 33, 64]) {
      expect(() =>
        deriveSessionKeys({ local, remotePublic: new Uint8Array(n).fill(9), secret, initiator: true, transcript: bytes(4) }),
      ).toThrow(/remote public key: must be 32 bytes/);
    }
    expect(() =>
      deriveSessionKeys({ local, remotePublic: local.publicKey.slice(), secret, initiator: true, transcript: bytes(4) }),
    ).toThrow(HandshakeError);
  });

  it('rejects our own malformed arguments with a RangeError naming the field', () => {
    const local = generateKeyPair();
    const remotePublic = generateKeyPair().publicKey;
    expect(() => deriveSessionKeys({ local, remotePublic, secret: bytes(16), initiator: true, transcript: bytes(4) })).toThrow(
      /^secret: /,
    );
    expect(() =>
      deriveSessionKeys({ local: { publicKey: local.publicKey, secretKey: bytes(5) }, remotePublic, secret, initiator: true, transcript: bytes(4) }),
    ).toThrow(/local.secretKey/);
  });

  it('throws only HandshakeError for any bytes a peer may send as its key', () => {
    const local = generateKeyPair();
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (remotePublic) => {
        try {
          const k = deriveSessionKeys({ local, remotePublic, secret, initiator: false, transcript: bytes(8) });
          expect(k.tcpSend).toHaveLength(32);
        } catch (err) {
          expect(err).toBeInstanceOf(HandshakeError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('generates distinct 32-byte key pairs', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    expect(a.publicKey).toHaveLength(32);
    expect(a.secretKey).toHaveLength(32);
    expect(hex(a.publicKey)).not.toBe(hex(b.publicKey));
    expect(hex(a.secretKey)).not.toBe(hex(b.secretKey));
  });

  // Freezes the wire protocol: any change to labels, field order or KDF breaks
  // interop with deployed peers and must come with a protocol version bump.
  it('matches the protocol vector', () => {
    const ki = { secretKey: seq(0x01), publicKey: fromHex('07a37cbc142093c8b755dc1b10e86cb426374ad16aa853ed0bdfc0b2b86d1c7c') };
    const kr = { secretKey: seq(0xa0), publicKey: fromHex('605a725d2a4adfeeb1a29e17edd621c1b7593ee8cdbc44ac6c4ab6e2f805d23c') };
    const transcript = new TextEncoder().encode('hello-i|hello-r');
    const i = deriveSessionKeys({ local: ki, remotePublic: kr.publicKey, secret: seq(0x40), initiator: true, transcript });
    const r = deriveSessionKeys({ local: kr, remotePublic: ki.publicKey, secret: seq(0x40), initiator: false, transcript });
    expect(allKeys(r)).toEqual([r.tcpSend, i.tcpSend, r.udpSend, i.udpSend].map(hex));
    expect(allKeys(i)).toEqual([
      'ff8b2fa32ed5d1c64c1509adf4b4951c92a257300a214a28828d27ea9b36cbe9', // tcp i->r
      '04f067b447e469f82666d7c40667314c3cbdaa219b7aca47a8e7c73b27dc62d9', // tcp r->i
      'ad55b3d0fad16a175d41e8d7fc681b4c31b47301acee6fe5da569edb38fc5050', // udp i->r
      'ad41a9af91fb0853af898deff7363ac94557028e1fe7cf331a7ce58757b61fe5', // udp r->i
    ]);
  });
});

function seq(start: number): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = (start + i) & 0xff;
  return out;
}
