// The password: stretched once with argon2id, then used only as a BLAKE2b key.

import { backend } from './backend.js';
import {
  KEY_BYTES,
  LABEL_PASSWORD_ID,
  PASSWORD_ID_BYTES,
  PWHASH_MEMLIMIT,
  PWHASH_OPSLIMIT,
  PWHASH_SALT,
} from './constants.js';

/** libsodium's argon2id accepts passwords up to 4 GiB; ours come from a flag or a file. */
const MAX_PASSWORD_BYTES = 64 * 1024;

/**
 * argon2id(password) with meshnet's fixed salt and parameters (constants.ts):
 * 32 bytes that stand in for the password everywhere else. Takes ~0.1 s and
 * 64 MiB; with sodium-native it runs on the libuv threadpool.
 */
export async function stretchPassword(password: Uint8Array): Promise<Uint8Array> {
  if (!(password instanceof Uint8Array)) throw new TypeError('password: must be a Uint8Array');
  if (password.length === 0) throw new RangeError('password: must not be empty');
  if (password.length > MAX_PASSWORD_BYTES) {
    throw new RangeError(`password: longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  const out = new Uint8Array(KEY_BYTES);
  await backend().argon2id(out, password, PWHASH_SALT, PWHASH_OPSLIMIT, PWHASH_MEMLIMIT);
  return out;
}

/**
 * 8 bytes naming WHICH password a peer holds, safe to announce in the clear
 * (during a rotation peers list the ids they accept). It is a keyed BLAKE2b of
 * the stretched password, so testing a guess against it costs a full
 * argon2id, no less than testing it against a handshake.
 */
export function passwordId(stretched: Uint8Array): Uint8Array {
  checkKey(stretched, 'stretched');
  // BLAKE2b's shortest output is 16 bytes; a prefix of a PRF output is a PRF.
  const full = new Uint8Array(16);
  backend().blake2b(full, LABEL_PASSWORD_ID, stretched);
  return full.slice(0, PASSWORD_ID_BYTES);
}

export function checkKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_BYTES) {
    throw new RangeError(`${what}: must be a ${KEY_BYTES}-byte Uint8Array`);
  }
}
