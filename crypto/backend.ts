// The primitives meshnet needs from libsodium, behind one narrow interface,
// and the choice of implementation (made once at start by initCrypto).
// Sealers and openers capture the backend when they are built, so switching
// backends later (tests, benchmarks) never changes an object in use.

import { loadNativeBackend } from './backend-native.js';
import { loadPortableBackend } from './backend-portable.js';

export type BackendPreference = 'native' | 'portable';

/** All functions take views; none keeps a reference to its arguments. */
export interface CryptoBackend {
  readonly name: string;
  randomBytes(out: Uint8Array): void;
  /** Fresh X25519 key pair (secret key clamped by libsodium). */
  x25519Keypair(publicKey: Uint8Array, secretKey: Uint8Array): void;
  /** X25519(secret, public) into out. False when libsodium refuses (all-zero result). */
  x25519(out: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): boolean;
  /** Keyed BLAKE2b (crypto_generichash). out: 16..64 bytes, key: 16..64 bytes. */
  blake2b(out: Uint8Array, input: Uint8Array, key: Uint8Array): void;
  /** argon2id v1.3 (crypto_pwhash), off the main thread where the backend can. */
  argon2id(out: Uint8Array, password: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number): Promise<void>;
  /**
   * crypto_secretbox_easy: sealed (= MAC | ciphertext) must be plain.length + 16 bytes.
   * sealed may overlap plain exactly in place (sealed.byteOffset + 16 === plain.byteOffset).
   */
  secretboxSeal(sealed: Uint8Array, plain: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
  /** crypto_secretbox_open_easy; plain must be sealed.length - 16 bytes. False on auth failure. */
  secretboxOpen(plain: Uint8Array, sealed: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean;
  memzero(buf: Uint8Array): void;
}

let current: CryptoBackend | null = null;
let fallbackReason: string | null = null;
/** One load per backend, shared by concurrent callers; a failed load may be retried. */
const loading: Partial<Record<BackendPreference, Promise<CryptoBackend>>> = {};

function load(which: BackendPreference): Promise<CryptoBackend> {
  let p = loading[which];
  if (!p) {
    p = which === 'native' ? Promise.resolve().then(loadNativeBackend) : loadPortableBackend();
    p.catch(() => delete loading[which]);
    loading[which] = p;
  }
  return p;
}

/**
 * Chooses the backend. Without an argument: sodium-native, or the portable
 * WASM build when the native module cannot load (cryptoFallbackReason() says
 * why); a second call without an argument changes nothing. With an argument,
 * that backend is forced ('native' throws if sodium-native cannot load) —
 * meant for tests and benchmarks that compare backends.
 */
export async function initCrypto(prefer?: BackendPreference): Promise<void> {
  if (prefer === undefined) {
    if (current) return;
    try {
      current = await load('native');
      fallbackReason = null;
    } catch (err) {
      current = await load('portable');
      fallbackReason = `sodium-native cannot load: ${oneLine(err)}`;
    }
    return;
  }
  if (prefer !== 'native' && prefer !== 'portable') {
    throw new TypeError(`initCrypto: prefer must be 'native' or 'portable', got ${String(prefer)}`);
  }
  try {
    current = await load(prefer);
  } catch (err) {
    throw new Error(`initCrypto: backend '${prefer}' cannot load: ${oneLine(err)}`, { cause: err });
  }
  fallbackReason = null;
}

/** 'sodium-native' or 'libsodium-wrappers-sumo'. */
export function cryptoBackendName(): string {
  return backend().name;
}

/** Why the portable backend was chosen automatically, or null. For the start-up log. */
export function cryptoFallbackReason(): string | null {
  return fallbackReason;
}

/** The backend in use; throws if initCrypto() has not run. */
export function backend(): CryptoBackend {
  if (!current) throw new Error('crypto: initCrypto() has not been called');
  return current;
}

function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? msg;
}
