// One shared suite, run against every backend: each describe block forces its
// backend before its tests (blocks run one after another, and sealers capture
// the backend they were built with).

import { beforeAll, describe } from 'vitest';
import { initCrypto, type BackendPreference } from '../../../crypto/index.js';

export const BACKENDS: readonly BackendPreference[] = ['native', 'portable'];

export function eachBackend(title: string, body: (backend: BackendPreference) => void): void {
  for (const backend of BACKENDS) {
    describe(`${title} [${backend}]`, () => {
      beforeAll(async () => {
        await initCrypto(backend);
      });
      body(backend);
    });
  }
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 17) & 0xff;
  return out;
}
