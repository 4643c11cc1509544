// Sealing for the TCP control channel. TCP delivers in order, so the nonce is
// an implicit counter that both ends keep: nothing about it goes on the wire,
// and a reordered, replayed, dropped or altered frame simply fails to open.
// Wire form of one frame: MAC (16) | ciphertext. The mesh's length prefix
// frames it; a frame that fails to open must end the connection.

import { backend, type CryptoBackend } from './backend.js';
import { MAC_BYTES } from './constants.js';
import { Counter64 } from './nonce.js';
import { checkKey } from './password.js';

export class FrameSealer {
  private readonly b: CryptoBackend = backend();
  private readonly key: Uint8Array;
  private readonly counter: Counter64;

  /** startCounter is for tests; a connection always starts at 0 with a fresh key. */
  constructor(key: Uint8Array, startCounter = 0n) {
    checkKey(key, 'key');
    this.key = key.slice();
    this.counter = new Counter64(startCounter);
  }

  /** Returns MAC | ciphertext (plain.length + 16 bytes). Throws once the counter is spent. */
  seal(plain: Uint8Array): Uint8Array {
    if (!(plain instanceof Uint8Array)) throw new TypeError('plain: must be a Uint8Array');
    if (this.counter.exhausted) throw new RangeError('FrameSealer: nonce counter exhausted, reconnect to re-key');
    const sealed = new Uint8Array(plain.length + MAC_BYTES);
    this.b.secretboxSeal(sealed, plain, this.counter.nonce, this.key);
    this.counter.advance();
    return sealed;
  }
}

export class FrameOpener {
  private readonly b: CryptoBackend = backend();
  private readonly key: Uint8Array;
  private readonly counter: Counter64;

  constructor(key: Uint8Array, startCounter = 0n) {
    checkKey(key, 'key');
    this.key = key.slice();
    this.counter = new Counter64(startCounter);
  }

  /**
   * The plaintext, or null when the frame is not the next one the peer sealed
   * (too short, altered, replayed, reordered, wrong key). The counter moves
   * only on success, so a failed frame leaves the opener as it was.
   */
  open(sealed: Uint8Array): Uint8Array | null {
    if (!(sealed instanceof Uint8Array) || sealed.length < MAC_BYTES) return null;
    if (this.counter.exhausted) return null;
    const plain = new Uint8Array(sealed.length - MAC_BYTES);
    if (!this.b.secretboxOpen(plain, sealed, this.counter.nonce, this.key)) return null;
    this.counter.advance();
    return plain;
  }
}
