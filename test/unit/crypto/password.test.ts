import { beforeAll, expect, it } from 'vitest';
import { PWHASH_MEMLIMIT, PWHASH_OPSLIMIT, passwordId, stretchPassword } from '../../../crypto/index.js';
import { eachBackend, hex } from './backends.js';

const enc = new TextEncoder();

eachBackend('stretchPassword / passwordId', () => {
  let s1: Uint8Array;
  let s1again: Uint8Array;
  let s2: Uint8Array;
  beforeAll(async () => {
    [s1, s1again, s2] = await Promise.all([
      stretchPassword(enc.encode('correct horse battery staple')),
      stretchPassword(enc.encode('correct horse battery staple')),
      stretchPassword(enc.encode('correct horse battery stapler')),
    ]);
  });

  it('uses the documented argon2id parameters', () => {
    expect(PWHASH_OPSLIMIT).toBe(3);
    expect(PWHASH_MEMLIMIT).toBe(64 * 1024 * 1024);
  });

  it('is deterministic, 32 bytes, and differs per password', () => {
    expect(s1).toHaveLength(32);
    expect(hex(s1)).toBe(hex(s1again));
    expect(hex(s1)).not.toBe(hex(s2));
  });

  // argon2id(t=3, m=64 MiB, p=1) of the password with salt "meshnet/pw/v1\0\0\0",
  // frozen: changing it breaks every deployed mesh.
  it('matches the protocol vector', () => {
    expect(hex(s1)).toBe(KNOWN_STRETCHED);
  });

  it('passwordId is 8 bytes, stable and distinct, and not a prefix of the key', () => {
    const id1 = passwordId(s1);
    expect(id1).toHaveLength(8);
    expect(hex(passwordId(s1again))).toBe(hex(id1));
    expect(hex(passwordId(s2))).not.toBe(hex(id1));
    expect(hex(s1).startsWith(hex(id1))).toBe(false);
    expect(hex(id1)).toBe(KNOWN_ID);
  });

  it('refuses an empty password and malformed stretched keys', async () => {
    await expect(stretchPassword(new Uint8Array(0))).rejects.toThrow(/^password: must not be empty/);
    expect(() => passwordId(new Uint8Array(31))).toThrow(/^stretched: /);
  });
});

const KNOWN_STRETCHED = '78e78b3afd03b5aab5664cd5f91fc57e6c2613cb09f25a36584d71946356283a';
const KNOWN_ID = '2462e3238e12b981';
