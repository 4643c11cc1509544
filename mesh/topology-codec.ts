// Wire and storage form of topology entries. A peer's connection list is
// kept packed — fixed-size records sorted by peer id — both on the wire and
// in memory: a 1000-peer mesh holds up to a million connection records per
// peer, and one compact buffer per entry (instead of an object per record)
// is what keeps memory flat as the mesh grows (weaveworks/mesh#108).
//
//   record  = peer id (6) | flags (1: bit0 outbound, bit1 established) | IPv6 or v4-mapped (16) | port (2)
//   entry   = FULL  | id (6) | uid (8) | incarnation (4) | version (4) | nick len (1) | nick | n (4) | n records
//           | DELTA | id (6) | uid (8) | incarnation (4) | base version (4) | version (4)
//                   | n upserts (4) | records | n removals (4) | removed ids (6 each)
//   message = UPDATE (1) | n (4) | entries
//           | DIGEST (2) | n (4) | n × (id (6) | uid (8) | incarnation (4) | version (4))
//           | PULL   (3) | n (4) | n × (id (6) | uid (8) | incarnation (4) | version (4))   (what the asker holds)

import { isIP } from 'node:net';
import { readPeerId, writePeerId, type PeerId } from './peer-name.js';
import { ProtocolError } from './wire/protocol.js';

export const RECORD_BYTES = 25;
const FLAG_OUTBOUND = 1;
const FLAG_ESTABLISHED = 2;
export const MAX_PEERS_PER_MESSAGE = 1 << 16;
export const MAX_CONNS_PER_ENTRY = 1 << 16;
const MAX_NICKNAME = 64;

export interface ConnSummary {
  peer: PeerId;
  /** "ip:port" where `peer` can be dialled (from this peer's point of view). */
  address: string;
  outbound: boolean;
  established: boolean;
}

export interface EntryFull {
  kind: 'full';
  id: PeerId;
  uid: bigint;
  incarnation: number;
  version: number;
  nickname: string;
  conns: Uint8Array;
}

export interface EntryDelta {
  kind: 'delta';
  id: PeerId;
  uid: bigint;
  incarnation: number;
  baseVersion: number;
  version: number;
  upserts: Uint8Array;
  removals: PeerId[];
}

export type EntryUpdate = EntryFull | EntryDelta;

export interface DigestItem {
  id: PeerId;
  uid: bigint;
  incarnation: number;
  version: number;
}

export type TopologyMessage =
  | { type: 'update'; entries: EntryUpdate[] }
  | { type: 'digest'; items: DigestItem[] }
  /** Ask for entries; `have` says what the asker holds (version 0 for nothing) so the answer can be a delta. */
  | { type: 'pull'; have: DigestItem[] }
  /**
   * Anti-entropy in brief: fingerprints of the topology table and of each
   * channel's state. The receiver answers only where its own differ (a
   * digest for the table, full state for a channel); `reply` marks such an
   * answer, which asks the first sender for its state of the listed channels.
   */
  | { type: 'summary'; reply: boolean; topology: { count: number; hash: [number, number] }; channels: ChannelSummary[] };

export interface ChannelSummary {
  name: string;
  hash: number;
}

const MSG_UPDATE = 1;
const MSG_DIGEST = 2;
const MSG_PULL = 3;
const MSG_SUMMARY = 4;
/** Channel names are short (mesh/gossip.ts); more channels than this is a malformed summary. */
const MAX_SUMMARY_CHANNELS = 64;
const KIND_FULL = 1;
const KIND_DELTA = 2;

// ---- records ----------------------------------------------------------------

export function recordCount(packed: Uint8Array): number {
  return packed.length / RECORD_BYTES;
}

export function recordPeer(packed: Uint8Array, i: number): PeerId {
  return readPeerId(packed, i * RECORD_BYTES);
}

export function recordEstablished(packed: Uint8Array, i: number): boolean {
  return (packed[i * RECORD_BYTES + 6]! & FLAG_ESTABLISHED) !== 0;
}

export function unpackRecord(packed: Uint8Array, i: number): ConnSummary {
  const o = i * RECORD_BYTES;
  const flags = packed[o + 6]!;
  const ip = formatIp(packed.subarray(o + 7, o + 23));
  const port = (packed[o + 23]! << 8) | packed[o + 24]!;
  return {
    peer: readPeerId(packed, o),
    address: ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`,
    outbound: (flags & FLAG_OUTBOUND) !== 0,
    established: (flags & FLAG_ESTABLISHED) !== 0,
  };
}

export function unpackRecords(packed: Uint8Array): ConnSummary[] {
  const out: ConnSummary[] = [];
  for (let i = 0; i < recordCount(packed); i++) out.push(unpackRecord(packed, i));
  return out;
}

/** Pack connection summaries, sorted by peer id (one record per peer). */
export function packRecords(conns: Iterable<ConnSummary>): Uint8Array {
  const list = [...conns].sort((a, b) => a.peer - b.peer);
  const out = new Uint8Array(list.length * RECORD_BYTES);
  list.forEach((c, i) => {
    const o = i * RECORD_BYTES;
    writePeerId(out, o, c.peer);
    out[o + 6] = (c.outbound ? FLAG_OUTBOUND : 0) | (c.established ? FLAG_ESTABLISHED : 0);
    const { ip, port } = splitAddress(c.address);
    out.set(parseIp(ip), o + 7);
    out[o + 23] = port >> 8;
    out[o + 24] = port & 0xff;
  });
  return out;
}

/** Binary search for `peer`'s record; -1 if absent. */
export function findRecord(packed: Uint8Array, peer: PeerId): number {
  let lo = 0;
  let hi = recordCount(packed) - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const p = recordPeer(packed, mid);
    if (p === peer) return mid;
    if (p < peer) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

function recordBytes(packed: Uint8Array, i: number): Uint8Array {
  return packed.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

/** The records of `next` that differ from `prev`, and the peers `prev` has and `next` lacks. */
export function diffRecords(prev: Uint8Array, next: Uint8Array): { upserts: Uint8Array; removals: PeerId[] } {
  const ups: Uint8Array[] = [];
  const removals: PeerId[] = [];
  let i = 0;
  let j = 0;
  const np = recordCount(prev);
  const nn = recordCount(next);
  while (i < np || j < nn) {
    const a = i < np ? recordPeer(prev, i) : Infinity;
    const b = j < nn ? recordPeer(next, j) : Infinity;
    if (a === b) {
      if (!sameBytes(recordBytes(prev, i), recordBytes(next, j))) ups.push(recordBytes(next, j));
      i++;
      j++;
    } else if (a < b) {
      removals.push(a);
      i++;
    } else {
      ups.push(recordBytes(next, j));
      j++;
    }
  }
  return { upserts: concat(ups), removals };
}

/** Apply a delta to packed records (both sorted); the result is sorted. */
export function applyDelta(base: Uint8Array, upserts: Uint8Array, removals: readonly PeerId[]): Uint8Array {
  const removed = new Set(removals);
  const parts: Uint8Array[] = [];
  let i = 0;
  let j = 0;
  const nb = recordCount(base);
  const nu = recordCount(upserts);
  while (i < nb || j < nu) {
    const a = i < nb ? recordPeer(base, i) : Infinity;
    const b = j < nu ? recordPeer(upserts, j) : Infinity;
    if (b <= a) {
      if (!removed.has(b)) parts.push(recordBytes(upserts, j));
      j++;
      if (a === b) i++;
    } else {
      if (!removed.has(a)) parts.push(recordBytes(base, i));
      i++;
    }
  }
  return concat(parts);
}

/** One delta equivalent to applying `chain` in order (each starting where the previous ended). */
export function composeDeltas(chain: readonly { upserts: Uint8Array; removals: readonly PeerId[] }[]): { upserts: Uint8Array; removals: PeerId[] } {
  const last = new Map<PeerId, Uint8Array | null>();
  for (const d of chain) {
    for (let i = 0; i < recordCount(d.upserts); i++) last.set(recordPeer(d.upserts, i), recordBytes(d.upserts, i));
    for (const r of d.removals) last.set(r, null);
  }
  const ids = [...last.keys()].sort((a, b) => a - b);
  return {
    upserts: concat(ids.map((id) => last.get(id)).filter((r): r is Uint8Array => r !== null && r !== undefined)),
    removals: ids.filter((id) => last.get(id) === null),
  };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

// ---- addresses --------------------------------------------------------------

export function splitAddress(address: string): { ip: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new Error(`invalid address "${address}"`);
  return { ip: m[1]!, port: Number(m[2]) };
}

function parseIp(ip: string): Uint8Array {
  const out = new Uint8Array(16);
  if (isIP(ip) === 4) {
    out[10] = 0xff;
    out[11] = 0xff;
    ip.split('.').forEach((b, i) => (out[12 + i] = Number(b)));
    return out;
  }
  if (isIP(ip) !== 6) return out; // unknown: all zero, never dialled
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

function formatIp(b: Uint8Array): string {
  const v4mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (v4mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':');
}

// ---- messages ---------------------------------------------------------------

class Writer {
  private parts: Buffer[] = [];
  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u32(v: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint): this {
    const b = Buffer.allocUnsafe(8);
    b.writeBigUInt64BE(v);
    this.parts.push(b);
    return this;
  }
  id(v: PeerId): this {
    const b = Buffer.allocUnsafe(6);
    writePeerId(b, 0, v);
    this.parts.push(b);
    return this;
  }
  bytes(v: Uint8Array): this {
    this.parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    return this;
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Bounds-checked reader: every read checks the remaining length first. */
class Reader {
  private o = 0;
  constructor(private readonly b: Buffer) {}
  need(n: number): void {
    if (this.o + n > this.b.length) throw new ProtocolError('truncated topology message');
  }
  u8(): number {
    this.need(1);
    return this.b[this.o++]!;
  }
  u32(): number {
    this.need(4);
    const v = this.b.readUInt32BE(this.o);
    this.o += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.b.readBigUInt64BE(this.o);
    this.o += 8;
    return v;
  }
  id(): PeerId {
    this.need(6);
    const v = readPeerId(this.b, this.o);
    this.o += 6;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return v;
  }
  end(): void {
    if (this.o !== this.b.length) throw new ProtocolError('trailing bytes in topology message');
  }
}

export function encodeTopologyMessage(m: TopologyMessage): Buffer {
  const w = new Writer();
  if (m.type === 'update') {
    w.u8(MSG_UPDATE).u32(m.entries.length);
    for (const e of m.entries) {
      if (e.kind === 'full') {
        const nick = Buffer.from(e.nickname.slice(0, MAX_NICKNAME), 'utf8').subarray(0, 255);
        w.u8(KIND_FULL).id(e.id).u64(e.uid).u32(e.incarnation).u32(e.version).u8(nick.length).bytes(nick);
        w.u32(recordCount(e.conns)).bytes(e.conns);
      } else {
        w.u8(KIND_DELTA).id(e.id).u64(e.uid).u32(e.incarnation).u32(e.baseVersion).u32(e.version);
        w.u32(recordCount(e.upserts)).bytes(e.upserts).u32(e.removals.length);
        for (const r of e.removals) w.id(r);
      }
    }
  } else if (m.type === 'digest') {
    w.u8(MSG_DIGEST).u32(m.items.length);
    for (const d of m.items) w.id(d.id).u64(d.uid).u32(d.incarnation).u32(d.version);
  } else if (m.type === 'summary') {
    w.u8(MSG_SUMMARY).u32(m.channels.length).u8(m.reply ? 1 : 0).u32(m.topology.count).u32(m.topology.hash[0]).u32(m.topology.hash[1]);
    for (const c of m.channels) {
      const name = Buffer.from(c.name, 'utf8').subarray(0, 255);
      w.u8(name.length).bytes(name).u32(c.hash);
    }
  } else {
    w.u8(MSG_PULL).u32(m.have.length);
    for (const d of m.have) w.id(d.id).u64(d.uid).u32(d.incarnation).u32(d.version);
  }
  return w.done();
}

/** Decode with every count checked against limits and the remaining length before use. */
export function decodeTopologyMessage(buf: Buffer): TopologyMessage {
  const r = new Reader(buf);
  const type = r.u8();
  const n = r.u32();
  if (n > MAX_PEERS_PER_MESSAGE) throw new ProtocolError(`topology message lists ${n} peers (limit ${MAX_PEERS_PER_MESSAGE})`);
  if (type === MSG_DIGEST || type === MSG_PULL) {
    r.need(n * 22);
    const items: DigestItem[] = [];
    for (let i = 0; i < n; i++) items.push({ id: r.id(), uid: r.u64(), incarnation: r.u32(), version: r.u32() });
    r.end();
    return type === MSG_DIGEST ? { type: 'digest', items } : { type: 'pull', have: items };
  }
  if (type === MSG_SUMMARY) {
    if (n > MAX_SUMMARY_CHANNELS) throw new ProtocolError(`summary lists ${n} channels (limit ${MAX_SUMMARY_CHANNELS})`);
    const flags = r.u8();
    if (flags > 1) throw new ProtocolError(`summary flags ${flags}`);
    const topology = { count: r.u32(), hash: [r.u32(), r.u32()] as [number, number] };
    const channels: ChannelSummary[] = [];
    for (let i = 0; i < n; i++) channels.push({ name: r.bytes(r.u8()).toString('utf8'), hash: r.u32() });
    r.end();
    return { type: 'summary', reply: flags === 1, topology, channels };
  }
  if (type !== MSG_UPDATE) throw new ProtocolError(`unknown topology message type ${type}`);
  const entries: EntryUpdate[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    if (kind === KIND_FULL) {
      const id = r.id();
      const uid = r.u64();
      const incarnation = r.u32();
      const version = r.u32();
      const nickname = r.bytes(r.u8()).toString('utf8');
      const count = r.u32();
      if (count > MAX_CONNS_PER_ENTRY) throw new ProtocolError(`entry lists ${count} connections`);
      const conns = new Uint8Array(r.bytes(count * RECORD_BYTES));
      checkSorted(conns);
      entries.push({ kind: 'full', id, uid, incarnation, version, nickname, conns });
    } else if (kind === KIND_DELTA) {
      const id = r.id();
      const uid = r.u64();
      const incarnation = r.u32();
      const baseVersion = r.u32();
      const version = r.u32();
      const count = r.u32();
      if (count > MAX_CONNS_PER_ENTRY) throw new ProtocolError(`delta lists ${count} connections`);
      const upserts = new Uint8Array(r.bytes(count * RECORD_BYTES));
      checkSorted(upserts);
      const nr = r.u32();
      if (nr > MAX_CONNS_PER_ENTRY) throw new ProtocolError(`delta removes ${nr} connections`);
      r.need(nr * 6);
      const removals: PeerId[] = [];
      for (let k = 0; k < nr; k++) removals.push(r.id());
      if (version <= baseVersion) throw new ProtocolError('delta does not advance the version');
      entries.push({ kind: 'delta', id, uid, incarnation, baseVersion, version, upserts, removals });
    } else throw new ProtocolError(`unknown topology entry kind ${kind}`);
  }
  r.end();
  return { type: 'update', entries };
}

function checkSorted(records: Uint8Array): void {
  for (let i = 1; i < recordCount(records); i++) {
    if (recordPeer(records, i) <= recordPeer(records, i - 1)) throw new ProtocolError('connection records not sorted');
  }
}
