// Which passwords each peer accepts, by id (crypto.passwordId: public, it
// crosses the wire in every encrypted hello anyway), replicated over the
// `passwords` gossip channel so a rotation step can be checked against the
// whole mesh before it is taken. Pure: state, merge, codec and the checks.
//
// Each peer owns its entry; entries are ordered by `version`, a timestamp
// that only grows (max(previous + 1, now)), so an entry from a restarted
// peer supersedes its old one without any persisted counter.

import type { PeerName } from '../../mesh/types.js';

export const PASSWORDS_CHANNEL = 'passwords';
/** The handshake's hello carries at most this many ids (mesh/wire/protocol.ts MAX_PASSWORD_IDS). */
export const MAX_ACCEPTED = 8;
const ID_RE = /^[0-9a-f]{16}$/;
const NAME_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const MAX_ENTRIES = 10_000;

export interface PasswordEntry {
  peer: PeerName;
  version: number;
  /** Accepted password ids, preferred first. */
  ids: string[];
}

export class BookDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BookDecodeError';
  }
}

export function encodeEntries(entries: readonly PasswordEntry[]): Uint8Array {
  return Buffer.from(JSON.stringify({ v: 1, entries }), 'utf8');
}

/** Decode and check every field; throws BookDecodeError naming the first bad one. */
export function decodeEntries(bytes: Uint8Array): PasswordEntry[] {
  if (bytes.length > 4 * 1024 * 1024) throw new BookDecodeError('passwords: message larger than 4 MiB');
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw new BookDecodeError('passwords: message is not JSON');
  }
  const o = value as { v?: unknown; entries?: unknown };
  if (typeof o !== 'object' || o === null || o.v !== 1) throw new BookDecodeError('passwords: unknown message version');
  if (!Array.isArray(o.entries) || o.entries.length > MAX_ENTRIES) throw new BookDecodeError('passwords: "entries" must be an array of at most 10000');
  return o.entries.map((e: unknown, i) => {
    const x = e as Partial<PasswordEntry> | null;
    if (typeof x !== 'object' || x === null) throw new BookDecodeError(`passwords: entries[${i}] is not an object`);
    if (typeof x.peer !== 'string' || !NAME_RE.test(x.peer)) throw new BookDecodeError(`passwords: entries[${i}].peer is not a peer name`);
    if (typeof x.version !== 'number' || !Number.isSafeInteger(x.version) || x.version < 0) throw new BookDecodeError(`passwords: entries[${i}].version is not a whole number`);
    if (!Array.isArray(x.ids) || x.ids.length > MAX_ACCEPTED || x.ids.some((id) => typeof id !== 'string' || !ID_RE.test(id))) {
      throw new BookDecodeError(`passwords: entries[${i}].ids must be at most ${MAX_ACCEPTED} ids of 16 hex digits`);
    }
    return { peer: x.peer, version: x.version, ids: [...x.ids] };
  });
}

/** Every peer's entry; merge keeps the highest version per peer. */
export class PasswordBook {
  private readonly entries = new Map<PeerName, PasswordEntry>();

  constructor(private readonly me: PeerName) {}

  /** Replace our own entry; returns it (to be gossiped). */
  setOwn(ids: readonly string[], now: number): PasswordEntry {
    const prev = this.entries.get(this.me);
    const e: PasswordEntry = { peer: this.me, version: Math.max(now, (prev?.version ?? 0) + 1), ids: [...ids] };
    this.entries.set(this.me, e);
    return e;
  }

  /** Merge entries; returns those that were new to us. Our own entry is never taken from others. */
  merge(incoming: readonly PasswordEntry[]): PasswordEntry[] {
    const news: PasswordEntry[] = [];
    for (const e of incoming) {
      if (e.peer === this.me) continue;
      const cur = this.entries.get(e.peer);
      if (cur && cur.version >= e.version) continue;
      this.entries.set(e.peer, e);
      news.push(e);
    }
    return news;
  }

  get(peer: PeerName): PasswordEntry | undefined {
    return this.entries.get(peer);
  }

  all(): PasswordEntry[] {
    return [...this.entries.values()];
  }
}

export interface PeerRef {
  name: PeerName;
  nickname: string;
}

function who(p: PeerRef): string {
  return p.nickname ? `${p.name}(${p.nickname})` : p.name;
}

/**
 * Why making `id` the preferred password here is refused, or undefined:
 * every other peer must already accept it, else the roll is out of order
 * (add it everywhere first).
 */
export function promoteRefusal(id: string, peers: readonly PeerRef[], book: PasswordBook): string | undefined {
  const missing: string[] = [];
  const unknown: string[] = [];
  for (const p of peers) {
    const e = book.get(p.name);
    if (!e) unknown.push(who(p));
    else if (!e.ids.includes(id)) missing.push(who(p));
  }
  if (missing.length) return `refused: ${missing.join(', ')} ${missing.length > 1 ? 'do' : 'does'} not accept password ${id} yet; run 'meshnet password add' there first`;
  if (unknown.length) return unknownRefusal(unknown);
  return undefined;
}

/**
 * Why no longer accepting `id` here is refused, or undefined: every other
 * peer must hold at least one password we keep, or it could not connect
 * to us again.
 */
export function removeRefusal(id: string, ours: readonly string[], peers: readonly PeerRef[], book: PasswordBook): string | undefined {
  if (!ours.includes(id)) return `refused: password ${id} is not accepted here (accepted: ${ours.join(', ')})`;
  const keep = ours.filter((x) => x !== id);
  if (keep.length === 0) return `refused: ${id} is the only password accepted here; add the new one first (meshnet password add)`;
  const stranded: string[] = [];
  const unknown: string[] = [];
  for (const p of peers) {
    const e = book.get(p.name);
    if (!e) unknown.push(who(p));
    else if (!e.ids.some((x) => keep.includes(x))) stranded.push(who(p));
  }
  if (stranded.length) {
    return `refused: ${stranded.join(', ')} ${stranded.length > 1 ? 'hold' : 'holds'} neither of the passwords this host would keep (${keep.join(', ')}); run 'meshnet password add' there first`;
  }
  if (unknown.length) return unknownRefusal(unknown);
  return undefined;
}

function unknownRefusal(unknown: string[]): string {
  return `refused: ${unknown.join(', ')} ${unknown.length > 1 ? 'have' : 'has'} not reported which passwords ${unknown.length > 1 ? 'they accept' : 'it accepts'} (wait a few seconds, or it runs an older meshnet; --force skips this check)`;
}

/** Where the roll stands, for `meshnet password` (one line). */
export function rollSummary(ours: readonly string[], peers: readonly PeerRef[], book: PasswordBook): string {
  const entries = peers.map((p) => book.get(p.name));
  if (entries.some((e) => !e)) return 'waiting for every peer to report its passwords';
  const all = [ours, ...entries.map((e) => e!.ids)];
  const common = ours.filter((id) => all.every((l) => l.includes(id)));
  const preferred = new Set(all.map((l) => l[0]));
  if (ours.length === 1 && all.every((l) => l.length === 1 && l[0] === ours[0])) return `steady: every peer accepts only ${ours[0]}`;
  if (common.length === 0) return 'split: no password is accepted by every peer';
  if (preferred.size === 1) return `every peer prefers ${[...preferred][0]}; extra passwords are still accepted: remove them when done`;
  return `rolling: every peer accepts ${common.join(', ')}; preferences differ`;
}
