// The identity each side sends as its first message after the keys are
// agreed (sealed when encrypted): who it is and what it supports.

import { decode, encode } from '@msgpack/msgpack';
import type { Features } from '../types.js';
import { parsePeerName, formatPeerName, type PeerId } from '../peer-name.js';
import { ProtocolError } from './protocol.js';

export interface Identity {
  name: PeerId;
  nickname: string;
  /** Random per process start. */
  uid: string;
  /** Persisted start counter: orders incarnations of the same name. */
  incarnation: number;
  /** Random per connection; XORed with the peer's to give the connection UID. */
  connId: string;
  /** Port this peer accepts mesh connections on (for discovery by others). */
  listenPort: number;
  features: Features;
}

const LIMITS = { nickname: 64, features: 64, featureKey: 64, featureValue: 4096 };
const U64_RE = /^[1-9][0-9]{0,19}$/;

export function encodeIdentity(id: Identity): Buffer {
  const fields = {
    n: formatPeerName(id.name),
    k: id.nickname,
    u: id.uid,
    i: id.incarnation,
    c: id.connId,
    p: id.listenPort,
    f: id.features,
  };
  return Buffer.from(encode(fields));
}

export function decodeIdentity(buf: Uint8Array): Identity {
  let raw: unknown;
  try {
    raw = decode(buf);
  } catch {
    throw new ProtocolError('malformed identity');
  }
  if (typeof raw !== 'object' || raw === null) throw new ProtocolError('malformed identity');
  const r = raw as Record<string, unknown>;
  const str = (k: string, max: number): string => {
    const v = r[k];
    if (typeof v !== 'string' || v.length > max) throw new ProtocolError(`malformed identity field ${k}`);
    return v;
  };
  let name: PeerId;
  try {
    name = parsePeerName(str('n', 17));
  } catch {
    throw new ProtocolError('malformed identity field n (peer name)');
  }
  const uid = str('u', 20);
  const connId = str('c', 20);
  if (!U64_RE.test(uid) || !U64_RE.test(connId) || BigInt(uid) >= 2n ** 64n || BigInt(connId) >= 2n ** 64n) {
    throw new ProtocolError('malformed identity uid');
  }
  const incarnation = r['i'];
  const listenPort = r['p'];
  if (typeof incarnation !== 'number' || !Number.isSafeInteger(incarnation) || incarnation < 0) throw new ProtocolError('malformed identity field i');
  if (typeof listenPort !== 'number' || !Number.isInteger(listenPort) || listenPort < 1 || listenPort > 65535) throw new ProtocolError('malformed identity field p');
  const f = r['f'];
  if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new ProtocolError('malformed identity features');
  const entries = Object.entries(f as Record<string, unknown>);
  if (entries.length > LIMITS.features) throw new ProtocolError('too many features');
  const features: Features = {};
  for (const [k, v] of entries) {
    if (k.length > LIMITS.featureKey || typeof v !== 'string' || v.length > LIMITS.featureValue) throw new ProtocolError(`malformed feature ${k.slice(0, 64)}`);
    features[k] = v;
  }
  return { name, nickname: str('k', LIMITS.nickname), uid, incarnation, connId, listenPort, features };
}

/** Both ends compute the same connection UID. */
export function connectionUid(a: string, b: string): string {
  return (BigInt(a) ^ BigInt(b)).toString();
}
