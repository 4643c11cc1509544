// meshnet's cryptography: pure functions and small state machines over
// libsodium, no I/O. Call initCrypto() once at start, before anything else.
// Design, parameters and measurements: docs/crypto.md.

export {
  KEY_BYTES,
  PUBLIC_KEY_BYTES,
  SECRET_KEY_BYTES,
  MAC_BYTES,
  NONCE_BYTES,
  DATAGRAM_OVERHEAD,
  DATAGRAM_COUNTER_MAX,
  REPLAY_WINDOW_BITS,
  PASSWORD_ID_BYTES,
  PWHASH_OPSLIMIT,
  PWHASH_MEMLIMIT,
} from './constants.js';
export { initCrypto, cryptoBackendName, cryptoFallbackReason, type BackendPreference } from './backend.js';
export { HandshakeError } from './errors.js';
export { stretchPassword, passwordId } from './password.js';
export {
  generateKeyPair,
  deriveSessionKeys,
  type KeyPair,
  type SessionKeys,
  type DeriveSessionKeysArgs,
} from './handshake.js';
export { FrameSealer, FrameOpener } from './stream.js';
export { DatagramSealer, DatagramOpener, type OpenFailure } from './datagram.js';
export { ReplayWindow } from './replay-window.js';
