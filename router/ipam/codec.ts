// Wire codec for the IPAM gossip channel (MessagePack via @msgpack/msgpack). Messages
// are positional arrays; every limit is checked while decoding, before
// anything is merged, so a malformed message costs a bounded amount of work
// and ends as one DecodeError naming the field. Decoders never throw
// anything else.
import { decode, encode } from '@msgpack/msgpack';
import type { PeerName } from '../../mesh/types.js';
import { type Cidr, parseCidr, formatCidr } from './addr.js';
import { type Range, flatten, isNormalized, unflatten } from './ranges.js';
import type { Genesis, ModeKind, PeerRecord, Removal, Resolution, RingId, Transfer } from './types.js';

export const WIRE_VERSION = 1;
export const LIMITS = {
  messageBytes: 8 * 1024 * 1024,
  records: 4096,
  geneses: 64,
  removals: 4096,
  resolutions: 1024,
  /** Ranges in one set (ranges, inUse, a transfer). */
  rangesPerSet: 65536,
  transfersPerRecord: 4096,
  adoptedPerRecord: 4096,
  claimants: 4096,
  decisions: 4096,
  nameLength: 64,
  nicknameLength: 255,
  ringIdLength: 128,
  reasonLength: 1024,
  ringPeers: 4096,
} as const;

export class DecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DecodeError';
  }
}

export interface Ballot {
  readonly round: number;
  readonly proposer: PeerName;
}

export type PaxosValue =
  | { readonly kind: 'genesis'; readonly genesis: Genesis }
  | { readonly kind: 'removal'; readonly removal: Removal };

export interface StateMessage {
  readonly type: 'state';
  readonly range: Cidr;
  readonly records: readonly PeerRecord[];
  readonly geneses: readonly Genesis[];
  readonly removals: readonly Removal[];
  readonly resolutions: readonly Resolution[];
}

export type PaxosMessage =
  | { readonly type: 'prepare'; readonly inst: string; readonly ballot: Ballot }
  | {
      readonly type: 'promise';
      readonly inst: string;
      readonly ballot: Ballot;
      readonly accepted: { readonly ballot: Ballot; readonly value: PaxosValue } | null;
      /** rmpeer: the acceptor's copy of the target's record and the ring peers it knows. */
      readonly target: PeerRecord | null;
      readonly ringPeers: readonly PeerName[];
    }
  | { readonly type: 'nack'; readonly inst: string; readonly ballot: Ballot; readonly promised: Ballot | null; readonly reason: string }
  | { readonly type: 'accept'; readonly inst: string; readonly ballot: Ballot; readonly value: PaxosValue }
  | { readonly type: 'accepted'; readonly inst: string; readonly ballot: Ballot };

export type IpamMessage =
  | StateMessage
  | { readonly type: 'space-request'; readonly ring: RingId; readonly reqId: number; readonly subnet: Range }
  | { readonly type: 'space-denied'; readonly reqId: number; readonly reason: string }
  | PaxosMessage;


// ---------------------------------------------------------------- encode

const MODE_CODES: Record<ModeKind, number> = { consensus: 0, seed: 1, observer: 2 };
const MODES: ModeKind[] = ['consensus', 'seed', 'observer'];

export function transferToPlain(t: Transfer): unknown[] {
  return [t.seq, t.to, flatten(t.ranges)];
}

export function recordToPlain(r: PeerRecord): unknown[] {
  const adopted = [...r.adopted.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return [
    r.peer,
    r.nickname,
    r.version,
    r.ring,
    MODE_CODES[r.mode],
    r.quorum,
    flatten(r.ranges),
    flatten(r.inUse),
    r.free,
    r.transferSeq,
    r.outgoing.map(transferToPlain),
    adopted,
    r.retired ? 1 : 0,
    r.rehomedFrom,
  ];
}

export function genesisToPlain(g: Genesis): unknown[] {
  return [g.id, g.createdAt, [...g.claimants], g.mode === 'seed' ? 1 : 0];
}

export function removalToPlain(r: Removal): unknown[] {
  return [r.target, r.ring, r.after, recordToPlain(r.frozen), r.heirs.map(transferToPlain), r.proposer, r.at];
}

export function resolutionToPlain(r: Resolution): unknown[] {
  return [r.id, r.keeper, r.decisions.map((d) => [d.loser, d.version, flatten(d.addresses)]), r.by, r.at];
}

function ballotToPlain(b: Ballot): unknown[] {
  return [b.round, b.proposer];
}

/** Canonical text of a Paxos value, to compare two values. */
export function paxosValueKey(v: PaxosValue): string {
  return JSON.stringify(valueToPlain(v));
}

function valueToPlain(v: PaxosValue): unknown[] {
  return v.kind === 'genesis' ? ['G', genesisToPlain(v.genesis)] : ['R', removalToPlain(v.removal)];
}

export function messageToPlain(m: IpamMessage): unknown[] {
  switch (m.type) {
    case 'state':
      return [
        WIRE_VERSION,
        'S',
        formatCidr(m.range),
        m.records.map(recordToPlain),
        m.geneses.map(genesisToPlain),
        m.removals.map(removalToPlain),
        m.resolutions.map(resolutionToPlain),
      ];
    case 'space-request':
      return [WIRE_VERSION, 'Q', m.ring, m.reqId, m.subnet.start, m.subnet.end];
    case 'space-denied':
      return [WIRE_VERSION, 'N', m.reqId, m.reason.slice(0, LIMITS.reasonLength)];
    case 'prepare':
      return [WIRE_VERSION, 'P', 'prep', m.inst, ballotToPlain(m.ballot)];
    case 'promise':
      return [
        WIRE_VERSION,
        'P',
        'prom',
        m.inst,
        ballotToPlain(m.ballot),
        m.accepted ? [ballotToPlain(m.accepted.ballot), valueToPlain(m.accepted.value)] : null,
        m.target ? recordToPlain(m.target) : null,
        [...m.ringPeers],
      ];
    case 'nack':
      return [WIRE_VERSION, 'P', 'nack', m.inst, ballotToPlain(m.ballot), m.promised ? ballotToPlain(m.promised) : null, m.reason.slice(0, LIMITS.reasonLength)];
    case 'accept':
      return [WIRE_VERSION, 'P', 'acc', m.inst, ballotToPlain(m.ballot), valueToPlain(m.value)];
    case 'accepted':
      return [WIRE_VERSION, 'P', 'accd', m.inst, ballotToPlain(m.ballot)];
  }
}

export function encodeMessage(m: IpamMessage): Uint8Array {
  return Buffer.from(encode(messageToPlain(m)));
}

// ---------------------------------------------------------------- decode

function fail(path: string, what: string): never {
  throw new DecodeError(`${path}: ${what}`);
}

function arr(v: unknown, path: string, max: number, exactLength?: number): unknown[] {
  if (!Array.isArray(v)) fail(path, 'not an array');
  if (v.length > max) fail(path, `${v.length} items exceed the limit of ${max}`);
  if (exactLength !== undefined && v.length !== exactLength) fail(path, `expected ${exactLength} fields, got ${v.length}`);
  return v;
}

function int(v: unknown, path: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(path, `not an integer in ${min}..${max}`);
  return v;
}

function str(v: unknown, path: string, maxLength: number, pattern?: RegExp): string {
  if (typeof v !== 'string') fail(path, 'not a string');
  if (v.length > maxLength) fail(path, `longer than ${maxLength} characters`);
  if (pattern && !pattern.test(v)) fail(path, `"${v.slice(0, 80)}" has an invalid format`);
  return v;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9:._-]*$/;
const RING_ID = /^[A-Za-z0-9][A-Za-z0-9:._-]*$/;
// eslint-disable-next-line no-control-regex
const PRINTABLE = /^[^\u0000-\u001f\u007f]*$/;

export function isPeerName(v: string): boolean {
  return v.length <= LIMITS.nameLength && NAME.test(v);
}

function name(v: unknown, path: string): PeerName {
  return str(v, path, LIMITS.nameLength, NAME);
}

function ringId(v: unknown, path: string): RingId {
  return str(v, path, LIMITS.ringIdLength, RING_ID);
}

function nullable<T>(v: unknown, f: (v: unknown) => T): T | null {
  return v === null || v === undefined ? null : f(v);
}

/** A normalized range set inside the range `within`. */
function rangeSet(v: unknown, path: string, within: Cidr): Range[] {
  const flat = arr(v, path, LIMITS.rangesPerSet * 2);
  if (flat.length % 2 !== 0) fail(path, 'odd number of range bounds');
  for (let i = 0; i < flat.length; i++) int(flat[i], `${path}[${i}]`, within.start, within.end);
  const set = unflatten(flat as number[]);
  if (!isNormalized(set)) fail(path, 'ranges are not sorted, disjoint and non-empty');
  return set;
}

function transfer(v: unknown, path: string, within: Cidr): Transfer {
  const a = arr(v, path, 3, 3);
  const ranges = rangeSet(a[2], `${path}.ranges`, within);
  if (ranges.length === 0) fail(`${path}.ranges`, 'empty transfer');
  return { seq: int(a[0], `${path}.seq`, 1), to: name(a[1], `${path}.to`), ranges };
}

export function decodeRecord(v: unknown, path: string, within: Cidr): PeerRecord {
  const a = arr(v, path, 14, 14);
  const outgoingRaw = arr(a[10], `${path}.outgoing`, LIMITS.transfersPerRecord);
  const adoptedRaw = arr(a[11], `${path}.adopted`, LIMITS.adoptedPerRecord);
  const adopted = new Map<PeerName, number>();
  adoptedRaw.forEach((e, i) => {
    const pair = arr(e, `${path}.adopted[${i}]`, 2, 2);
    const donor = name(pair[0], `${path}.adopted[${i}].donor`);
    if (adopted.has(donor)) fail(`${path}.adopted[${i}]`, `duplicate donor ${donor}`);
    adopted.set(donor, int(pair[1], `${path}.adopted[${i}].seq`));
  });
  const transferSeq = int(a[9], `${path}.transferSeq`);
  const outgoing = outgoingRaw.map((t, i) => transfer(t, `${path}.outgoing[${i}]`, within));
  for (const t of outgoing) if (t.seq > transferSeq) fail(`${path}.outgoing`, `transfer seq ${t.seq} exceeds transferSeq ${transferSeq}`);
  const mode = int(a[4], `${path}.mode`, 0, 2);
  const retired = int(a[12], `${path}.retired`, 0, 1);
  return {
    peer: name(a[0], `${path}.peer`),
    nickname: str(a[1], `${path}.nickname`, LIMITS.nicknameLength, PRINTABLE),
    version: int(a[2], `${path}.version`),
    ring: nullable(a[3], (x) => ringId(x, `${path}.ring`)),
    mode: MODES[mode]!,
    quorum: int(a[5], `${path}.quorum`, 0, 1_000_000),
    ranges: rangeSet(a[6], `${path}.ranges`, within),
    inUse: rangeSet(a[7], `${path}.inUse`, within),
    free: int(a[8], `${path}.free`, 0, within.end - within.start),
    transferSeq,
    outgoing,
    adopted,
    retired: retired === 1,
    rehomedFrom: nullable(a[13], (x) => ringId(x, `${path}.rehomedFrom`)),
  };
}

export function decodeGenesis(v: unknown, path: string): Genesis {
  const a = arr(v, path, 4, 4);
  const claimants = arr(a[2], `${path}.claimants`, LIMITS.claimants).map((c, i) => name(c, `${path}.claimants[${i}]`));
  if (claimants.length === 0) fail(`${path}.claimants`, 'no claimants');
  for (let i = 1; i < claimants.length; i++) {
    if (!(claimants[i - 1]! < claimants[i]!)) fail(`${path}.claimants`, 'not sorted and unique');
  }
  return {
    id: ringId(a[0], `${path}.id`),
    createdAt: int(a[1], `${path}.createdAt`),
    claimants,
    mode: int(a[3], `${path}.mode`, 0, 1) === 1 ? 'seed' : 'consensus',
  };
}

export function decodeRemoval(v: unknown, path: string, within: Cidr): Removal {
  const a = arr(v, path, 7, 7);
  const frozen = decodeRecord(a[3], `${path}.frozen`, within);
  const target = name(a[0], `${path}.target`);
  if (frozen.peer !== target) fail(`${path}.frozen`, `record of ${frozen.peer}, not of the target ${target}`);
  const heirs = arr(a[4], `${path}.heirs`, LIMITS.transfersPerRecord).map((t, i) => transfer(t, `${path}.heirs[${i}]`, within));
  for (const h of heirs) if (h.seq <= frozen.transferSeq) fail(`${path}.heirs`, `heir seq ${h.seq} does not follow the frozen record`);
  return {
    target,
    ring: ringId(a[1], `${path}.ring`),
    after: int(a[2], `${path}.after`, -1),
    frozen,
    heirs,
    proposer: name(a[5], `${path}.proposer`),
    at: int(a[6], `${path}.at`),
  };
}

export function decodeResolution(v: unknown, path: string, within: Cidr): Resolution {
  const a = arr(v, path, 5, 5);
  const decisions = arr(a[2], `${path}.decisions`, LIMITS.decisions).map((d, i) => {
    const p = `${path}.decisions[${i}]`;
    const x = arr(d, p, 3, 3);
    return { loser: name(x[0], `${p}.loser`), version: int(x[1], `${p}.version`), addresses: rangeSet(x[2], `${p}.addresses`, within) };
  });
  return {
    id: str(a[0], `${path}.id`, LIMITS.ringIdLength, RING_ID),
    keeper: name(a[1], `${path}.keeper`),
    decisions,
    by: name(a[3], `${path}.by`),
    at: int(a[4], `${path}.at`),
  };
}

export function decodeBallot(v: unknown, path: string): Ballot {
  const a = arr(v, path, 2, 2);
  return { round: int(a[0], `${path}.round`), proposer: name(a[1], `${path}.proposer`) };
}

export function decodeValue(v: unknown, path: string, within: Cidr): PaxosValue {
  const a = arr(v, path, 2, 2);
  if (a[0] === 'G') return { kind: 'genesis', genesis: decodeGenesis(a[1], `${path}.genesis`) };
  if (a[0] === 'R') return { kind: 'removal', removal: decodeRemoval(a[1], `${path}.removal`, within) };
  return fail(`${path}.kind`, 'unknown value kind');
}

/** Decode the plain (already unpacked) form. `range` bounds non-state messages. */
export function decodePlain(top: unknown, range: Cidr): IpamMessage {
  const a = arr(top, 'message', 8);
  if (a.length < 2) fail('message', 'too short');
  if (a[0] !== WIRE_VERSION) fail('message.version', `unsupported IPAM wire version ${String(a[0]).slice(0, 20)}`);
  switch (a[1]) {
    case 'S': {
      arr(a, 'message', 7, 7);
      let msgRange: Cidr;
      try {
        msgRange = parseCidr(str(a[2], 'message.range', 18), 'message.range');
      } catch (e) {
        if (e instanceof DecodeError) throw e;
        return fail('message.range', (e as Error).message);
      }
      return {
        type: 'state',
        range: msgRange,
        records: arr(a[3], 'message.records', LIMITS.records).map((r, i) => decodeRecord(r, `records[${i}]`, msgRange)),
        geneses: arr(a[4], 'message.geneses', LIMITS.geneses).map((g, i) => decodeGenesis(g, `geneses[${i}]`)),
        removals: arr(a[5], 'message.removals', LIMITS.removals).map((r, i) => decodeRemoval(r, `removals[${i}]`, msgRange)),
        resolutions: arr(a[6], 'message.resolutions', LIMITS.resolutions).map((r, i) => decodeResolution(r, `resolutions[${i}]`, msgRange)),
      };
    }
    case 'Q': {
      arr(a, 'message', 6, 6);
      const start = int(a[4], 'request.subnet.start', range.start, range.end);
      const end = int(a[5], 'request.subnet.end', range.start, range.end);
      if (end <= start) fail('request.subnet', 'empty subnet');
      return { type: 'space-request', ring: ringId(a[2], 'request.ring'), reqId: int(a[3], 'request.id'), subnet: { start, end } };
    }
    case 'N':
      arr(a, 'message', 4, 4);
      return { type: 'space-denied', reqId: int(a[2], 'denied.id'), reason: str(a[3], 'denied.reason', LIMITS.reasonLength) };
    case 'P': {
      const inst = str(a[3], 'paxos.instance', LIMITS.ringIdLength + LIMITS.nameLength + 40, /^[A-Za-z0-9:._/@-]+$/);
      switch (a[2]) {
        case 'prep':
          arr(a, 'message', 5, 5);
          return { type: 'prepare', inst, ballot: decodeBallot(a[4], 'paxos.ballot') };
        case 'prom': {
          arr(a, 'message', 8, 8);
          const acc = nullable(a[5], (x) => {
            const p = arr(x, 'paxos.accepted', 2, 2);
            return { ballot: decodeBallot(p[0], 'paxos.accepted.ballot'), value: decodeValue(p[1], 'paxos.accepted.value', range) };
          });
          return {
            type: 'promise',
            inst,
            ballot: decodeBallot(a[4], 'paxos.ballot'),
            accepted: acc,
            target: nullable(a[6], (x) => decodeRecord(x, 'paxos.target', range)),
            ringPeers: arr(a[7], 'paxos.ringPeers', LIMITS.ringPeers).map((n, i) => name(n, `paxos.ringPeers[${i}]`)),
          };
        }
        case 'nack':
          arr(a, 'message', 7, 7);
          return {
            type: 'nack',
            inst,
            ballot: decodeBallot(a[4], 'paxos.ballot'),
            promised: nullable(a[5], (x) => decodeBallot(x, 'paxos.promised')),
            reason: str(a[6], 'paxos.reason', LIMITS.reasonLength),
          };
        case 'acc':
          arr(a, 'message', 6, 6);
          return { type: 'accept', inst, ballot: decodeBallot(a[4], 'paxos.ballot'), value: decodeValue(a[5], 'paxos.value', range) };
        case 'accd':
          arr(a, 'message', 5, 5);
          return { type: 'accepted', inst, ballot: decodeBallot(a[4], 'paxos.ballot') };
        default:
          return fail('paxos.op', 'unknown Paxos message');
      }
    }
    default:
      return fail('message.type', `unknown IPAM message type ${JSON.stringify(a[1])?.slice(0, 20)}`);
  }
}

/** Decode bytes from the wire. Throws only DecodeError. */
export function decodeMessage(bytes: Uint8Array, range: Cidr): IpamMessage {
  if (!(bytes instanceof Uint8Array)) throw new DecodeError('message: not bytes');
  if (bytes.length > LIMITS.messageBytes) throw new DecodeError(`message: ${bytes.length} bytes exceed the limit of ${LIMITS.messageBytes}`);
  let plain: unknown;
  try {
    plain = decode(bytes);
  } catch (e) {
    throw new DecodeError(`message: not valid msgpack (${(e as Error).message?.slice(0, 120)})`);
  }
  try {
    return decodePlain(plain, range);
  } catch (e) {
    if (e instanceof DecodeError) throw e;
    throw new DecodeError(`message: ${(e as Error)?.message?.slice(0, 200)}`);
  }
}
