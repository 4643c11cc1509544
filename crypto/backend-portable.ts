// libsodium-wrappers-sumo: the same libsodium (1.0.22) compiled to WebAssembly,
// for machines where the sodium-native addon cannot load. The "sumo" build is
// needed because only it contains crypto_pwhash (argon2id).
//
// The wrapper's own secretbox functions allocate and copy on every call, so
// the sealing path calls the raw WASM exports on a scratch area in the WASM
// heap that is allocated once and only grows: copy in, seal in place, copy
// out. Copies are unavoidable (WASM memory is separate), allocations are not.

import type { CryptoBackend } from './backend.js';
import { ViewCache } from './view-cache.js';

/** Raw Emscripten exports of libsodium used here (64-bit lengths are split lo, hi). */
interface RawLibsodium {
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(ptr: number): void;
  _crypto_secretbox_easy(c: number, m: number, mlenLo: number, mlenHi: number, n: number, k: number): number;
  _crypto_secretbox_open_easy(m: number, c: number, clenLo: number, clenHi: number, n: number, k: number): number;
}

// Scratch layout: key | nonce | (pad) | MAC | message. The message sits right
// after the MAC slot so seal and open both work in place, as libsodium allows.
const SCRATCH_KEY = 0;
const SCRATCH_NONCE = 32;
const SCRATCH_SEALED = 64;
const SCRATCH_PLAIN = SCRATCH_SEALED + 16;
const SCRATCH_INITIAL_CAPACITY = 64 * 1024;

export async function loadPortableBackend(): Promise<CryptoBackend> {
  const sodium = (await import('libsodium-wrappers-sumo')).default;
  await sodium.ready;
  const raw = (sodium as unknown as { libsodium: RawLibsodium }).libsodium;
  if (!raw || typeof raw._crypto_secretbox_easy !== 'function') {
    throw new Error('libsodium-wrappers-sumo: raw libsodium exports are missing');
  }

  let ptr = 0;
  let capacity = 0; // message bytes that fit
  const heapViews = new ViewCache(); // result ranges of the scratch area, reused
  /** Makes room for a message of n bytes; returns the current heap view. */
  function scratch(n: number): Uint8Array {
    if (n > capacity) {
      if (ptr) raw._free(ptr);
      capacity = Math.max(SCRATCH_INITIAL_CAPACITY, 2 ** Math.ceil(Math.log2(n)));
      ptr = raw._malloc(SCRATCH_PLAIN + capacity);
      if (!ptr) {
        capacity = 0;
        throw new RangeError(`libsodium-wrappers-sumo: cannot allocate ${n} bytes in the WASM heap`);
      }
    }
    return raw.HEAPU8; // re-read: growing WASM memory replaces the view
  }

  return {
    name: 'libsodium-wrappers-sumo',
    randomBytes(out) {
      globalThis.crypto.getRandomValues(out);
    },
    x25519Keypair(pk, sk) {
      const kp = sodium.crypto_box_keypair();
      pk.set(kp.publicKey);
      sk.set(kp.privateKey);
      kp.privateKey.fill(0);
    },
    x25519(out, sk, pk) {
      try {
        out.set(sodium.crypto_scalarmult(sk, pk)); // the wrapper throws for an all-zero result
        return true;
      } catch {
        return false;
      }
    },
    blake2b(out, input, key) {
      out.set(sodium.crypto_generichash(out.length, input, key));
    },
    // The WASM build has no threads: this blocks the event loop for the
    // duration of one argon2id (measured in docs/crypto.md); it runs once at
    // start, before any connection exists.
    async argon2id(out, pw, salt, ops, mem) {
      out.set(sodium.crypto_pwhash(out.length, pw, salt, ops, mem, sodium.crypto_pwhash_ALG_ARGON2ID13));
    },
    secretboxSeal(sealed, plain, nonce, key) {
      const n = plain.length;
      const heap = scratch(n);
      heap.set(key, ptr + SCRATCH_KEY);
      heap.set(nonce, ptr + SCRATCH_NONCE);
      heap.set(plain, ptr + SCRATCH_PLAIN);
      const rc = raw._crypto_secretbox_easy(ptr + SCRATCH_SEALED, ptr + SCRATCH_PLAIN, n, 0, ptr + SCRATCH_NONCE, ptr + SCRATCH_KEY);
      heap.fill(0, ptr + SCRATCH_KEY, ptr + SCRATCH_KEY + 32);
      if (rc !== 0) throw new Error(`crypto_secretbox_easy failed (${rc})`);
      sealed.set(heapViews.view(heap, ptr + SCRATCH_SEALED, n + 16));
    },
    secretboxOpen(plain, sealed, nonce, key) {
      const n = sealed.length;
      const heap = scratch(n);
      heap.set(key, ptr + SCRATCH_KEY);
      heap.set(nonce, ptr + SCRATCH_NONCE);
      heap.set(sealed, ptr + SCRATCH_SEALED);
      const rc = raw._crypto_secretbox_open_easy(ptr + SCRATCH_PLAIN, ptr + SCRATCH_SEALED, n, 0, ptr + SCRATCH_NONCE, ptr + SCRATCH_KEY);
      heap.fill(0, ptr + SCRATCH_KEY, ptr + SCRATCH_KEY + 32);
      if (rc !== 0) return false;
      plain.set(heapViews.view(heap, ptr + SCRATCH_PLAIN, n - 16));
      return true;
    },
    memzero(buf) {
      buf.fill(0);
    },
  };
}
