// Per-connection key agreement: a fresh X25519 exchange, bound to the shared
// password and to the handshake transcript, expanded into four one-way keys.
//
//   dh   = X25519(local secret, remote public)            (all zero -> refuse)
//   prk  = BLAKE2b-256(key = stretched password,
//                      LABEL_PRK | dh | initiator public | responder public | transcript)
//   key  = BLAKE2b-256(key = prk, label)   for each of the four labels
//
// Everything before the transcript has a fixed length, so the encoding is
// unambiguous. Ordering the public keys by role (not by side) means that two
// ends which disagree about who initiated derive unrelated keys, instead of
// both sealing with the same key and counter.

import { backend } from './backend.js';
import {
  KEY_BYTES,
  LABEL_PRK,
  LABEL_TCP_I2R,
  LABEL_TCP_R2I,
  LABEL_UDP_I2R,
  LABEL_UDP_R2I,
  PUBLIC_KEY_BYTES,
  SECRET_KEY_BYTES,
} from './constants.js';
import { HandshakeError } from './errors.js';
import { checkKey } from './password.js';

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** One key per direction and transport; use each with exactly one sealer or opener. */
export interface SessionKeys {
  tcpSend: Uint8Array;
  tcpRecv: Uint8Array;
  udpSend: Uint8Array;
  udpRecv: Uint8Array;
}

export interface DeriveSessionKeysArgs {
  /** Our key pair for this connection (from generateKeyPair, never reused). */
  local: KeyPair;
  /** The peer's public key as received in its hello. */
  remotePublic: Uint8Array;
  /** The stretched password (stretchPassword). */
  secret: Uint8Array;
  /** True on the side that dialled the connection. */
  initiator: boolean;
  /** Both hellos, as bytes built identically on both sides. */
  transcript: Uint8Array;
}

/** A fresh X25519 key pair: one per connection, so recorded traffic stays safe when a later one leaks. */
export function generateKeyPair(): KeyPair {
  const publicKey = new Uint8Array(PUBLIC_KEY_BYTES);
  const secretKey = new Uint8Array(SECRET_KEY_BYTES);
  backend().x25519Keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

/**
 * Derives this connection's four keys. Throws HandshakeError when the peer's
 * key is unusable (wrong length, our own key reflected, or a low-order point);
 * RangeError for our own malformed arguments.
 */
export function deriveSessionKeys(a: DeriveSessionKeysArgs): SessionKeys {
  const { local, remotePublic, secret, initiator, transcript } = a;
  if (!(local?.publicKey instanceof Uint8Array) || local.publicKey.length !== PUBLIC_KEY_BYTES) {
    throw new RangeError(`local.publicKey: must be a ${PUBLIC_KEY_BYTES}-byte Uint8Array`);
  }
  if (!(local.secretKey instanceof Uint8Array) || local.secretKey.length !== SECRET_KEY_BYTES) {
    throw new RangeError(`local.secretKey: must be a ${SECRET_KEY_BYTES}-byte Uint8Array`);
  }
  checkKey(secret, 'secret');
  if (!(transcript instanceof Uint8Array)) throw new RangeError('transcript: must be a Uint8Array');
  if (typeof initiator !== 'boolean') throw new RangeError('initiator: must be a boolean');
  if (!(remotePublic instanceof Uint8Array) || remotePublic.length !== PUBLIC_KEY_BYTES) {
    const got = remotePublic instanceof Uint8Array ? `${remotePublic.length} bytes` : typeof remotePublic;
    throw new HandshakeError(`remote public key: must be ${PUBLIC_KEY_BYTES} bytes, got ${got}`);
  }
  if (bytesEqual(remotePublic, local.publicKey)) {
    throw new HandshakeError('remote public key: equals ours (reflected handshake)');
  }

  const b = backend();
  const dh = new Uint8Array(KEY_BYTES);
  if (!b.x25519(dh, local.secretKey, remotePublic) || isAllZero(dh)) {
    b.memzero(dh);
    throw new HandshakeError('remote public key: low-order point, key exchange gives no shared secret');
  }

  const initiatorPublic = initiator ? local.publicKey : remotePublic;
  const responderPublic = initiator ? remotePublic : local.publicKey;
  const input = new Uint8Array(LABEL_PRK.length + KEY_BYTES + 2 * PUBLIC_KEY_BYTES + transcript.length);
  let at = 0;
  for (const part of [LABEL_PRK, dh, initiatorPublic, responderPublic, transcript]) {
    input.set(part, at);
    at += part.length;
  }
  const prk = new Uint8Array(KEY_BYTES);
  b.blake2b(prk, input, secret);
  b.memzero(dh);
  b.memzero(input);

  const expand = (label: Uint8Array): Uint8Array => {
    const key = new Uint8Array(KEY_BYTES);
    b.blake2b(key, label, prk);
    return key;
  };
  const tcpI2R = expand(LABEL_TCP_I2R);
  const tcpR2I = expand(LABEL_TCP_R2I);
  const udpI2R = expand(LABEL_UDP_I2R);
  const udpR2I = expand(LABEL_UDP_R2I);
  b.memzero(prk);

  return initiator
    ? { tcpSend: tcpI2R, tcpRecv: tcpR2I, udpSend: udpI2R, udpRecv: udpR2I }
    : { tcpSend: tcpR2I, tcpRecv: tcpI2R, udpSend: udpR2I, udpRecv: udpI2R };
}

function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i]!;
  return acc === 0;
}

function bytesEqual(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}
