// sodium-native (libsodium compiled into a Node addon): the hot-path backend.
// Its functions take typed-array views directly, so views into a caller's
// buffer are passed without copying.

import { createRequire } from 'node:module';
import type { CryptoBackend } from './backend.js';

/** The part of sodium-native's API we use (it ships no type declarations). */
interface SodiumNative {
  randombytes_buf(out: Uint8Array): void;
  crypto_box_keypair(pk: Uint8Array, sk: Uint8Array): void;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  crypto_pwhash_async(
    out: Uint8Array,
    passwd: Uint8Array,
    salt: Uint8Array,
    opslimit: number,
    memlimit: number,
    alg: number,
  ): Promise<void>;
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  sodium_memzero(buf: Uint8Array): void;
}

export function loadNativeBackend(): CryptoBackend {
  const require = createRequire(import.meta.url);
  const sn = require('sodium-native') as SodiumNative;
  return {
    name: 'sodium-native',
    randomBytes: (out) => sn.randombytes_buf(out),
    x25519Keypair: (pk, sk) => sn.crypto_box_keypair(pk, sk),
    x25519(out, sk, pk) {
      try {
        sn.crypto_scalarmult(out, sk, pk); // libsodium returns -1 (throws here) for an all-zero result
        return true;
      } catch {
        return false;
      }
    },
    blake2b: (out, input, key) => sn.crypto_generichash(out, input, key),
    // Runs on libuv's threadpool: the event loop stays free for ~100 ms.
    argon2id: (out, pw, salt, ops, mem) => sn.crypto_pwhash_async(out, pw, salt, ops, mem, 2),
    secretboxSeal: (c, m, n, k) => sn.crypto_secretbox_easy(c, m, n, k),
    secretboxOpen: (m, c, n, k) => sn.crypto_secretbox_open_easy(m, c, n, k),
    memzero: (buf) => sn.sodium_memzero(buf),
  };
}
