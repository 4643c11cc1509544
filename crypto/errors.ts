/**
 * A handshake that must not go on: bad peer key material or a key exchange
 * that yields no secret. The mesh refuses the connection with this message.
 */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
}
