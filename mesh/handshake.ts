// The connection handshake, run by both sides at once over a fresh stream:
//
//  1. header: magic + version range each way; negotiate the highest common version.
//  2. hello: plaintext or "encrypted" with a fresh X25519 public key and the
//     ids of the passwords this side accepts. A side with a password and one
//     without refuse each other with a reason; so do sides with no password
//     in common. The password itself never crosses the wire.
//  3. keys: X25519 + the chosen (argon2id-stretched) password + the transcript
//     of steps 1–2 give per-direction keys for this connection (crypto/).
//  4. identity: name, nickname, UID, features — sealed when encrypted, so a
//     wrong key shows up as a frame that fails to open.
//  5. the caller validates the identity (self, name collision, limits,
//     features); a refusal is sent to the peer with its reason.
//  6. each side confirms (ACCEPT) or has refused, so both see the same outcome.
//
// Every failure is a HandshakeFailure with a kind (for metrics and retry
// decisions) and a one-line reason that status shows on both sides.

import {
  deriveSessionKeys,
  FrameOpener,
  FrameSealer,
  generateKeyPair,
  HandshakeError,
  type SessionKeys,
} from '../crypto/index.js';
import { randomUid, type PeerId } from './peer-name.js';
import type { ByteStream } from './transport.js';
import { StreamClosed, StreamReader } from './stream-reader.js';
import { encodeFrame, type FrameDecoder } from './wire/framing.js';
import { connectionUid, decodeIdentity, encodeIdentity, type Identity } from './wire/identity.js';
import {
  decodeHeader,
  decodeHello,
  decodeMessage,
  encodeHeader,
  encodeHello,
  encodeMessage,
  HANDSHAKE_FRAME_LIMIT,
  HEADER_BYTES,
  negotiateVersion,
  ProtocolError,
  Tag,
  type Hello,
} from './wire/protocol.js';

/** Why a handshake failed; decides whether and how soon to retry. */
export type FailureKind =
  | 'protocol' // garbage, wrong magic, malformed frames
  | 'version' // no common protocol version
  | 'encryption-mismatch' // one side has a password, the other not
  | 'password' // no password in common
  | 'auth' // a sealed frame failed to open
  | 'self' // we dialled ourselves
  | 'collision' // another peer uses our name
  | 'limit' // connection limit reached
  | 'duplicate' // already connected to this peer
  | 'features' // incompatible features (e.g. IPAM range)
  | 'refused' // the peer refused for another reason
  | 'timeout'
  | 'closed';

export class HandshakeFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    message: string,
    /** The peer on the other end, when the identities were exchanged before the failure. */
    readonly peer?: PeerId,
  ) {
    super(message);
    this.name = 'HandshakeFailure';
  }
}

/** Kinds after which retrying the same target is pointless. */
export const PERMANENT_FAILURES: ReadonlySet<FailureKind> = new Set(['self', 'collision']);

export interface Secret {
  /** 8-byte public id of the password (crypto.passwordId). */
  id: Uint8Array;
  /** The stretched password. */
  key: Uint8Array;
}

export interface HandshakeParams {
  outbound: boolean;
  /** Our identity; connId is filled in here. */
  identity: Omit<Identity, 'connId'>;
  /** Passwords we accept, preferred first; empty = no encryption. */
  secrets: readonly Secret[];
  versionRange: { min: number; max: number };
  timeoutMs: number;
  /** Return a refusal for the remote identity (given the connection's UID), or undefined to accept. */
  validate(remote: Identity, connUid: string): { kind: FailureKind; reason: string } | undefined;
}

export interface HandshakeResult {
  remote: Identity;
  version: number;
  connUid: string;
  encrypted: boolean;
  /** Index into params.secrets of the password in use. */
  secretIndex: number;
  /** Id (crypto.passwordId) of the password in use; undefined when unencrypted. */
  secretId: Uint8Array | undefined;
  keys: SessionKeys | undefined;
  sealer: FrameSealer | undefined;
  opener: FrameOpener | undefined;
  reader: StreamReader;
}

export async function runHandshake(stream: ByteStream, params: HandshakeParams): Promise<HandshakeResult> {
  const reader = new StreamReader(stream);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new HandshakeFailure('timeout', `handshake timed out after ${params.timeoutMs} ms`)), params.timeoutMs);
  });
  try {
    return await Promise.race([handshake(stream, reader, params), timeout]);
  } catch (err) {
    throw classify(err);
  } finally {
    clearTimeout(timer);
  }
}

function classify(err: unknown): HandshakeFailure {
  if (err instanceof HandshakeFailure) return err;
  if (err instanceof ProtocolError) return new HandshakeFailure('protocol', err.message);
  if (err instanceof StreamClosed) return new HandshakeFailure('closed', err.message);
  if (err instanceof HandshakeError) return new HandshakeFailure('auth', err.message);
  return new HandshakeFailure('protocol', err instanceof Error ? err.message : String(err));
}

/** A refusal carries its kind so the other side classifies it the same way. */
export function encodeRefusal(kind: FailureKind, reason: string): string {
  return `${kind}\n${reason}`;
}

export function decodeRefusal(text: string): { kind: FailureKind; reason: string } {
  const nl = text.indexOf('\n');
  const kind = nl > 0 ? text.slice(0, nl) : '';
  const reason = nl > 0 ? text.slice(nl + 1) : text;
  const known: FailureKind[] = ['protocol', 'version', 'encryption-mismatch', 'password', 'auth', 'self', 'collision', 'limit', 'duplicate', 'features', 'refused'];
  return { kind: (known as string[]).includes(kind) ? (kind as FailureKind) : 'refused', reason };
}

async function handshake(stream: ByteStream, reader: StreamReader, p: HandshakeParams): Promise<HandshakeResult> {
  // 1. header
  const ourHeader = encodeHeader(p.versionRange.min, p.versionRange.max);
  stream.write(ourHeader);
  const theirHeader = await reader.readExact(HEADER_BYTES);
  const version = negotiateVersion(p.versionRange, decodeHeader(theirHeader));

  // 2. hello
  const encrypted = p.secrets.length > 0;
  const keyPair = encrypted ? generateKeyPair() : undefined;
  const ourHello: Hello = keyPair
    ? { type: 'hello', encrypted: true, publicKey: keyPair.publicKey, passwordIds: p.secrets.map((s) => s.id) }
    : { type: 'hello', encrypted: false };
  const ourHelloBytes = encodeHello(ourHello);
  stream.write(encodeFrame(ourHelloBytes));
  const theirHelloBytes = await reader.readFrame(HANDSHAKE_FRAME_LIMIT);
  const theirHello = decodeHello(theirHelloBytes);
  if (theirHello.type === 'refuse') {
    const r = decodeRefusal(theirHello.reason);
    throw new HandshakeFailure(r.kind, `refused by peer: ${r.reason}`);
  }
  const refuseHello = (kind: FailureKind, reason: string): never => {
    stream.write(encodeFrame(encodeHello({ type: 'refuse', reason: encodeRefusal(kind, reason) })));
    throw new HandshakeFailure(kind, reason);
  };
  if (encrypted !== theirHello.encrypted) {
    refuseHello(
      'encryption-mismatch',
      encrypted ? 'peer has no password but this mesh requires encryption' : 'peer requires encryption but no password is set here',
    );
  }

  // 3. keys
  let keys: SessionKeys | undefined;
  let sealer: FrameSealer | undefined;
  let opener: FrameOpener | undefined;
  let secretIndex = -1;
  if (keyPair && theirHello.type === 'hello' && theirHello.encrypted) {
    secretIndex = choosePassword(p.outbound, p.secrets, theirHello.passwordIds);
    if (secretIndex < 0) refuseHello('password', 'wrong password: the peer holds none of the passwords accepted here');
    // Initiator first; hellos are length-prefixed so no two different pairs
    // of hellos give the same transcript.
    const [iHeader, rHeader, iHello, rHello] = p.outbound
      ? [ourHeader, theirHeader, ourHelloBytes, theirHelloBytes]
      : [theirHeader, ourHeader, theirHelloBytes, ourHelloBytes];
    const transcript = Buffer.concat([iHeader, rHeader, encodeFrame(iHello), encodeFrame(rHello)]);
    keys = deriveSessionKeys({
      local: keyPair,
      remotePublic: theirHello.publicKey,
      secret: p.secrets[secretIndex]!.key,
      initiator: p.outbound,
      transcript,
    });
    sealer = new FrameSealer(keys.tcpSend);
    opener = new FrameOpener(keys.tcpRecv);
  }
  const seal = (plain: Uint8Array): Uint8Array => (sealer ? sealer.seal(plain) : plain);
  const open = (frame: Uint8Array): Buffer => {
    if (!opener) return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    const plain = opener.open(frame);
    if (!plain) throw new HandshakeFailure('auth', 'authentication failed: a sealed handshake frame did not open (wrong password or tampering)');
    return Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  };

  // 4. identity
  const identity: Identity = { ...p.identity, connId: randomUid() };
  stream.write(encodeFrame(seal(encodeMessage({ tag: Tag.IDENTITY, body: encodeIdentity(identity) }))));
  const msg = decodeMessage(open(await reader.readFrame(HANDSHAKE_FRAME_LIMIT)));
  if (msg.tag === Tag.CLOSE) {
    const r = decodeRefusal(msg.reason);
    throw new HandshakeFailure(r.kind, `refused by peer: ${r.reason}`);
  }
  if (msg.tag !== Tag.IDENTITY) throw new ProtocolError('expected identity');
  const remote = decodeIdentity(msg.body);

  // 5. validation
  const connUid = connectionUid(identity.connId, remote.connId);
  const refusal = p.validate(remote, connUid);
  if (refusal) {
    stream.write(encodeFrame(seal(encodeMessage({ tag: Tag.CLOSE, reason: encodeRefusal(refusal.kind, refusal.reason) }))));
    throw new HandshakeFailure(refusal.kind, refusal.reason, remote.name);
  }
  // 6. both sides confirm, so a refusal by either is seen by both as a failed handshake.
  stream.write(encodeFrame(seal(encodeMessage({ tag: Tag.ACCEPT }))));
  const confirm = decodeMessage(open(await reader.readFrame(HANDSHAKE_FRAME_LIMIT)));
  if (confirm.tag === Tag.CLOSE) {
    const r = decodeRefusal(confirm.reason);
    throw new HandshakeFailure(r.kind, `refused by peer: ${r.reason}`, remote.name);
  }
  if (confirm.tag !== Tag.ACCEPT) throw new ProtocolError('expected handshake confirmation');
  return {
    remote,
    version,
    connUid,
    encrypted,
    secretIndex,
    secretId: secretIndex >= 0 ? p.secrets[secretIndex]!.id : undefined,
    keys,
    sealer,
    opener,
    reader,
  };
}

/**
 * Both sides must pick the same password without further messages: the
 * initiator's most preferred password that the responder also holds.
 */
export function choosePassword(outbound: boolean, ours: readonly Secret[], theirIds: readonly Uint8Array[]): number {
  const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;
  const initiatorIds = outbound ? ours.map((s) => s.id) : theirIds;
  const responderIds = outbound ? theirIds : ours.map((s) => s.id);
  for (const id of initiatorIds) {
    if (responderIds.some((r) => eq(r, id))) return ours.findIndex((s) => eq(s.id, id));
  }
  return -1;
}

export type { FrameDecoder };
