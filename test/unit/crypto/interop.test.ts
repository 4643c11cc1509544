// The two backends are the same protocol: what one seals the other opens,
// and both derive the same keys from the same inputs.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  DatagramOpener,
  DatagramSealer,
  FrameOpener,
  FrameSealer,
  cryptoBackendName,
  deriveSessionKeys,
  generateKeyPair,
  initCrypto,
  passwordId,
  stretchPassword,
  type KeyPair,
} from '../../../crypto/index.js';
import { BACKENDS, bytes, hex } from './backends.js';

describe('cross-backend interop', () => {
  const key = bytes(32, 21);
  const pw = new TextEncoder().encode('rotate me, please');
  const stretched: Record<string, Uint8Array> = {};
  const frames: Record<string, Uint8Array[]> = {};
  const datagrams: Record<string, Uint8Array[]> = {};
  const pairs: Record<string, KeyPair> = {};

  beforeAll(async () => {
    for (const b of BACKENDS) {
      await initCrypto(b);
      stretched[b] = await stretchPassword(pw);
      const fs = new FrameSealer(key);
      frames[b] = [fs.seal(bytes(10, 1)), fs.seal(bytes(2000, 2))];
      const ds = new DatagramSealer(key);
      datagrams[b] = [ds.seal(bytes(1400, 3)), ds.seal(bytes(64, 4))];
      pairs[b] = generateKeyPair();
    }
  });

  it('loaded both backends', async () => {
    await initCrypto('native');
    expect(cryptoBackendName()).toBe('sodium-native');
    await initCrypto('portable');
    expect(cryptoBackendName()).toBe('libsodium-wrappers-sumo');
  });

  it('stretches a password to the same key and id', () => {
    expect(hex(stretched.native!)).toBe(hex(stretched.portable!));
    expect(hex(passwordId(stretched.native!))).toBe(hex(passwordId(stretched.portable!)));
  });

  it('seals identically', () => {
    expect(frames.native!.map(hex)).toEqual(frames.portable!.map(hex));
    expect(datagrams.native!.map(hex)).toEqual(datagrams.portable!.map(hex));
  });

  for (const [sealedBy, openedBy] of [
    ['native', 'portable'],
    ['portable', 'native'],
  ] as const) {
    it(`opens with ${openedBy} what ${sealedBy} sealed`, async () => {
      await initCrypto(openedBy);
      const fo = new FrameOpener(key);
      expect(hex(fo.open(frames[sealedBy]![0]!)!)).toBe(hex(bytes(10, 1)));
      expect(hex(fo.open(frames[sealedBy]![1]!)!)).toBe(hex(bytes(2000, 2)));
      const dO = new DatagramOpener(key);
      const out = new Uint8Array(1500);
      expect(dO.openInto(out, 0, datagrams[sealedBy]![1]!, 0, datagrams[sealedBy]![1]!.length)).toBe(64);
      expect(dO.openInto(out, 0, datagrams[sealedBy]![0]!, 0, datagrams[sealedBy]![0]!.length)).toBe(1400);
      expect(hex(out.subarray(0, 1400))).toBe(hex(bytes(1400, 3)));
    });
  }

  it('agrees on session keys when each side runs a different backend', async () => {
    const transcript = bytes(99);
    await initCrypto('native');
    const i = deriveSessionKeys({ local: pairs.native!, remotePublic: pairs.portable!.publicKey, secret: stretched.native!, initiator: true, transcript });
    await initCrypto('portable');
    const r = deriveSessionKeys({ local: pairs.portable!, remotePublic: pairs.native!.publicKey, secret: stretched.portable!, initiator: false, transcript });
    expect(hex(i.tcpSend)).toBe(hex(r.tcpRecv));
    expect(hex(i.udpRecv)).toBe(hex(r.udpSend));
  });

  it('keeps a sealer on the backend it was built with after a switch', async () => {
    await initCrypto('native');
    const s = new FrameSealer(key);
    await initCrypto('portable');
    const o = new FrameOpener(key);
    expect(o.open(s.seal(bytes(5)))).not.toBeNull();
    expect(cryptoBackendName()).toBe('libsodium-wrappers-sumo');
  });
});
