// Sizes, labels and parameters of meshnet's cryptography. Everything here is
// part of the wire protocol: both ends must agree on every value, so a change
// is a protocol version change, never a tuning knob.

/** Symmetric keys (secretbox keys, the stretched password, the PRK). */
export const KEY_BYTES = 32;
/** X25519 public keys. */
export const PUBLIC_KEY_BYTES = 32;
/** X25519 secret keys. */
export const SECRET_KEY_BYTES = 32;
/** Poly1305 tag that secretbox puts in front of the ciphertext. */
export const MAC_BYTES = 16;
/** XSalsa20 nonce. */
export const NONCE_BYTES = 24;

// ---------------------------------------------------------------------------
// Nonce rules (read before touching any sealer).
//
// Every key is used in ONE direction on ONE transport of ONE connection
// (deriveSessionKeys makes four: tcp i->r, tcp r->i, udp i->r, udp r->i, from a
// fresh X25519 exchange per connection). So a nonce only has to be unique per
// key, and a counter that starts at 0 and only goes up is enough:
//
//   nonce[0..7]  = counter, unsigned 64-bit little-endian
//   nonce[8..23] = 0
//
// No direction or channel bits are needed (Weave needed them because it used
// one key for everything). A counter value is never used twice under a key:
// sealers refuse to go past their limit instead of wrapping.
// ---------------------------------------------------------------------------

/** Where the counter sits in the nonce. */
export const NONCE_COUNTER_OFFSET = 0;
/** Size of the counter, in the nonce and on the wire of a datagram. */
export const COUNTER_BYTES = 8;

/**
 * Datagram counters are kept as JS numbers so the hot path needs no BigInt:
 * 2^53 - 1 datagrams is 28 years at 10 million datagrams a second, far beyond
 * any connection's life. The DatagramSealer refuses to go past it; the
 * DatagramOpener rejects a larger counter as unauthentic before any crypto
 * (no sealer of ours can have produced it).
 */
export const DATAGRAM_COUNTER_MAX = Number.MAX_SAFE_INTEGER; // 2^53 - 1

/** Stream frames carry no nonce: the counter is implicit and the stream is ordered. */
export const STREAM_COUNTER_MAX = 0xffff_ffff_ffff_ffffn; // 2^64 - 1

/** Wire layout of a sealed datagram: counter (clear) | MAC | ciphertext. */
export const DATAGRAM_COUNTER_OFFSET = 0;
export const DATAGRAM_OVERHEAD = COUNTER_BYTES + MAC_BYTES; // 24

/**
 * Replay window for datagrams, in counter values. 8192 (as WireGuard) covers
 * about 90 ms of reordering at 1 Gb/s of 1400-byte datagrams (~90k/s), far
 * more than a LAN or the batching in the sleeve reorders, and costs 1 KiB per
 * peer. A larger window only widens what a replaying attacker may try (each
 * counter still opens at most once).
 */
export const REPLAY_WINDOW_BITS = 8192;

// ---------------------------------------------------------------------------
// Password stretching: argon2id (libsodium crypto_pwhash, v1.3).
//
// The stretched password is computed once per daemon start (and once per
// extra password during a rotation), never per connection, so it may be slow.
// t = 3 passes over m = 64 MiB is RFC 9106's recommended setting for
// memory-constrained use: it keeps the daemon's peak memory small enough for a
// modest container limit while costing an attacker 64 MiB and ~3 passes of
// memory traffic per guess. libsodium's argon2id always uses one lane (p = 1).
// ---------------------------------------------------------------------------
export const PWHASH_OPSLIMIT = 3;
export const PWHASH_MEMLIMIT = 64 * 1024 * 1024;
/** crypto_pwhash_ALG_ARGON2ID13 */
export const PWHASH_ALG_ARGON2ID13 = 2;
export const PWHASH_SALT_BYTES = 16;
/**
 * Fixed salt: every peer must derive the same key from the same password
 * without first agreeing on anything, so the salt cannot be random. It only
 * separates meshnet's use of argon2id from every other use of the same
 * password. Consequence (see docs/crypto.md): one precomputed dictionary
 * works against every meshnet mesh, so the password must be high-entropy.
 */
export const PWHASH_SALT = asciiBytes('meshnet/pw/v1\0\0\0'); // exactly 16 bytes

/** Length of passwordId(): enough that two different passwords never collide in practice. */
export const PASSWORD_ID_BYTES = 8;

// ---------------------------------------------------------------------------
// Labels for keyed BLAKE2b. Each derived value has its own label, so no two
// derivations can ever produce the same output from the same key.
// ---------------------------------------------------------------------------
export const LABEL_PASSWORD_ID = asciiBytes('meshnet/v1 password id');
export const LABEL_PRK = asciiBytes('meshnet/v1 handshake prk');
export const LABEL_TCP_I2R = asciiBytes('meshnet/v1 tcp initiator->responder');
export const LABEL_TCP_R2I = asciiBytes('meshnet/v1 tcp responder->initiator');
export const LABEL_UDP_I2R = asciiBytes('meshnet/v1 udp initiator->responder');
export const LABEL_UDP_R2I = asciiBytes('meshnet/v1 udp responder->initiator');

function asciiBytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
