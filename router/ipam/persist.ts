// What IPAM keeps in its state file, and its conversion to and from plain
// JSON. The replicated part reuses the wire codec's positional encoding and
// its decoders, so a state file gets exactly the checks gossip gets.
import type { PeerName } from '../../mesh/types.js';
import { type Cidr, formatCidr, parseCidr } from './addr.js';
import type { Allocation } from './allocations.js';
import {
  type Ballot,
  type PaxosValue,
  DecodeError,
  decodeBallot,
  decodeGenesis,
  decodeValue,
  decodeRecord,
  decodeRemoval,
  decodeResolution,
  genesisToPlain,
  recordToPlain,
  removalToPlain,
  resolutionToPlain,
} from './codec.js';
import type { AcceptorState } from './paxos.js';
import { type Range, flatten, unflatten, isNormalized } from './ranges.js';
import type { GossipState } from './types.js';
import { emptyState, removalKey } from './types.js';
import { containerIdError, interfaceNameError } from './ids.js';

export const STATE_FORMAT = 1;

/** Everything a restart needs. */
export interface IpamSnapshot {
  readonly peer: PeerName;
  readonly range: Cidr;
  readonly state: GossipState;
  readonly allocations: readonly Allocation[];
  readonly orphans: readonly Range[];
  readonly acceptors: ReadonlyMap<string, AcceptorState>;
  /** Highest Paxos round this peer has used as a proposer (never reuse a ballot). */
  readonly round: number;
  /** Removals of this peer it has already given way to. */
  readonly yielded: readonly string[];
  readonly cursor: number;
}

/** The JSON-ready form (what the store writes). */
export type PlainSnapshot = Record<string, unknown>;

function ballotPlain(b: Ballot | null): unknown {
  return b ? [b.round, b.proposer] : null;
}

function valuePlain(v: PaxosValue): unknown {
  return v.kind === 'genesis' ? ['G', genesisToPlain(v.genesis)] : ['R', removalToPlain(v.removal)];
}

export function snapshotToPlain(s: IpamSnapshot): PlainSnapshot {
  return {
    format: STATE_FORMAT,
    peer: s.peer,
    range: formatCidr(s.range),
    records: [...s.state.records.values()].map(recordToPlain),
    geneses: [...s.state.geneses.values()].map(genesisToPlain),
    removals: [...s.state.removals.values()].map(removalToPlain),
    resolutions: [...s.state.resolutions.values()].map(resolutionToPlain),
    allocations: s.allocations.map((a) => [a.containerId, a.iface, a.address, formatCidr(a.subnet), a.createdVersion, a.at]),
    orphans: flatten(s.orphans),
    acceptors: [...s.acceptors.entries()].map(([inst, st]) => [
      inst,
      ballotPlain(st.promised),
      st.accepted ? [ballotPlain(st.accepted.ballot), valuePlain(st.accepted.value)] : null,
    ]),
    round: s.round,
    yielded: [...s.yielded],
    cursor: s.cursor,
  };
}

/** Rebuild a snapshot, checking every field; errors name the field (the caller adds the file). */
export function snapshotFromPlain(p: unknown): IpamSnapshot {
  if (typeof p !== 'object' || p === null || Array.isArray(p)) throw new DecodeError('state: not an object');
  const o = p as Record<string, unknown>;
  if (o.format !== STATE_FORMAT) throw new DecodeError(`state.format: unsupported format ${String(o.format)} (expected ${STATE_FORMAT})`);
  if (typeof o.peer !== 'string') throw new DecodeError('state.peer: not a string');
  if (typeof o.range !== 'string') throw new DecodeError('state.range: not a string');
  let range: Cidr;
  try {
    range = parseCidr(o.range, 'state.range');
  } catch (e) {
    throw new DecodeError((e as Error).message);
  }
  const list = (k: string): unknown[] => {
    const v = o[k];
    if (!Array.isArray(v)) throw new DecodeError(`state.${k}: not an array`);
    return v;
  };
  const state = emptyState();
  list('records').forEach((r, i) => {
    const rec = decodeRecord(r, `state.records[${i}]`, range);
    state.records.set(rec.peer, rec);
  });
  list('geneses').forEach((g, i) => {
    const gen = decodeGenesis(g, `state.geneses[${i}]`);
    state.geneses.set(gen.id, gen);
  });
  list('removals').forEach((r, i) => {
    const rm = decodeRemoval(r, `state.removals[${i}]`, range);
    state.removals.set(removalKey(rm.target, rm.after), rm);
  });
  list('resolutions').forEach((r, i) => {
    const res = decodeResolution(r, `state.resolutions[${i}]`, range);
    state.resolutions.set(res.id, res);
  });
  const allocations: Allocation[] = list('allocations').map((a, i) => {
    const path = `state.allocations[${i}]`;
    if (!Array.isArray(a) || a.length !== 6) throw new DecodeError(`${path}: expected 6 fields`);
    const [containerId, iface, address, subnetText, createdVersion, at] = a as unknown[];
    const idErr = containerIdError(containerId) ?? interfaceNameError(iface);
    if (idErr) throw new DecodeError(`${path}: ${idErr}`);
    if (typeof address !== 'number' || !Number.isInteger(address) || address < range.start || address >= range.end) {
      throw new DecodeError(`${path}.address: not inside ${o.range}`);
    }
    let subnet: Cidr;
    try {
      subnet = parseCidr(String(subnetText), `${path}.subnet`);
    } catch (e) {
      throw new DecodeError((e as Error).message);
    }
    for (const [k, v] of [['createdVersion', createdVersion], ['at', at]] as const) {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new DecodeError(`${path}.${k}: not a non-negative integer`);
    }
    return {
      containerId: containerId as string,
      iface: iface as string,
      address,
      subnet,
      createdVersion: createdVersion as number,
      at: at as number,
    };
  });
  const orphanFlat = list('orphans');
  if (orphanFlat.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < range.start || x > range.end) || orphanFlat.length % 2) {
    throw new DecodeError('state.orphans: not a list of range bounds inside the range');
  }
  const orphans = unflatten(orphanFlat as number[]);
  if (!isNormalized(orphans)) throw new DecodeError('state.orphans: not normalized');
  const acceptors = new Map<string, AcceptorState>();
  list('acceptors').forEach((a, i) => {
    const path = `state.acceptors[${i}]`;
    if (!Array.isArray(a) || a.length !== 3 || typeof a[0] !== 'string') throw new DecodeError(`${path}: malformed`);
    const promised = a[1] === null ? null : decodeBallot(a[1], `${path}.promised`);
    let accepted: AcceptorState['accepted'] = null;
    if (a[2] !== null) {
      if (!Array.isArray(a[2]) || a[2].length !== 2) throw new DecodeError(`${path}.accepted: malformed`);
      accepted = { ballot: decodeBallot(a[2][0], `${path}.accepted.ballot`), value: decodeValue(a[2][1], `${path}.accepted.value`, range) };
    }
    acceptors.set(a[0], { promised, accepted });
  });
  const round = o.round;
  const cursor = o.cursor;
  if (typeof round !== 'number' || !Number.isInteger(round) || round < 0) throw new DecodeError('state.round: not a non-negative integer');
  if (typeof cursor !== 'number' || !Number.isInteger(cursor) || cursor < 0) throw new DecodeError('state.cursor: not a non-negative integer');
  const yielded = list('yielded');
  if (yielded.some((y) => typeof y !== 'string')) throw new DecodeError('state.yielded: not a list of strings');
  return { peer: o.peer, range, state, allocations, orphans, acceptors, round, yielded: yielded as string[], cursor };
}
