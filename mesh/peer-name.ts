// Peer names and UIDs.
//
// A peer name is 48 bits written like a MAC address ("8a:3f:00:12:ab:cd").
// Inside the mesh it is handled as a number (48 bits fit exactly in a double),
// which makes topology maps and route searches cheap; the string form is used
// at every boundary (status, logs, the contract in types.ts).

import { randomBytes, createHash } from 'node:crypto';
import type { PeerName } from './types.js';

export type PeerId = number;

const NAME_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function isPeerName(s: string): boolean {
  return NAME_RE.test(s);
}

export function parsePeerName(s: string): PeerId {
  const lower = s.toLowerCase();
  if (!NAME_RE.test(lower)) throw new Error(`invalid peer name "${s}": expected six hex bytes like 8a:3f:00:12:ab:cd`);
  return parseInt(lower.replaceAll(':', ''), 16);
}

export function formatPeerName(id: PeerId): PeerName {
  const hex = id.toString(16).padStart(12, '0');
  return hex.match(/../g)!.join(':');
}

/** Write a peer id as 6 big-endian bytes. */
export function writePeerId(buf: Uint8Array, offset: number, id: PeerId): void {
  let v = id;
  for (let i = 5; i >= 0; i--) {
    buf[offset + i] = v % 256;
    v = Math.floor(v / 256);
  }
}

export function readPeerId(buf: Uint8Array, offset: number): PeerId {
  let v = 0;
  for (let i = 0; i < 6; i++) v = v * 256 + buf[offset + i]!;
  return v;
}

/**
 * A name for a host that has none yet: a hash of the machine identity and the
 * state directory (so several daemons on one machine, each with its own state
 * dir, get different names), with the locally-administered bit set and the
 * multicast bit clear, as for a MAC address.
 */
export function derivePeerName(machineId: string, stateDir: string): PeerName {
  const h = createHash('sha256').update('meshnet peer name\0').update(machineId).update('\0').update(stateDir).digest();
  h[0] = (h[0]! & 0xfe) | 0x02;
  return formatPeerName(readPeerId(h, 0));
}

/** A fresh random non-zero 64-bit value, as a decimal string. */
export function randomUid(): string {
  for (;;) {
    const v = randomBytes(8).readBigUInt64BE();
    if (v !== 0n) return v.toString();
  }
}
