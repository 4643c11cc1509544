// The wire codec: round trips, and every malformed input ends as one
// DecodeError naming the field (never another exception).
import fc from 'fast-check';
import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { DecodeError, LIMITS, decodeMessage, encodeMessage, type IpamMessage } from '../../../router/ipam/codec.js';
import { digest, mergeItems } from '../../../router/ipam/state.js';
import { emptyState } from '../../../router/ipam/types.js';
import { items, RANGE } from './arbitraries.js';

const packr = { pack: (v: unknown): Uint8Array => encode(v) };

describe('IPAM wire codec', () => {
  it('round-trips state messages', () => {
    fc.assert(
      fc.property(items, (it) => {
        const m: IpamMessage = { type: 'state', range: RANGE, ...it };
        const back = decodeMessage(encodeMessage(m), RANGE);
        if (back.type !== 'state') return false;
        const a = emptyState();
        mergeItems(a, it);
        const b = emptyState();
        mergeItems(b, back);
        return digest(a) === digest(b) && back.range.start === RANGE.start;
      }),
    );
  });

  it('round-trips requests, denials and Paxos messages', () => {
    const msgs: IpamMessage[] = [
      { type: 'space-request', ring: 'r1', reqId: 7, subnet: { start: RANGE.start, end: RANGE.end } },
      { type: 'space-denied', reqId: 7, reason: 'no free space' },
      { type: 'prepare', inst: 'claim', ballot: { round: 3, proposer: 'aa' } },
      { type: 'promise', inst: 'rm/r1/bb/-1', ballot: { round: 3, proposer: 'aa' }, accepted: null, target: null, ringPeers: ['aa', 'cc'] },
      { type: 'nack', inst: 'claim', ballot: { round: 3, proposer: 'aa' }, promised: { round: 4, proposer: 'bb' }, reason: 'outbid' },
      { type: 'accept', inst: 'claim', ballot: { round: 3, proposer: 'aa' }, value: { kind: 'genesis', genesis: { id: 'r1', createdAt: 5, claimants: ['aa', 'bb'], mode: 'consensus' } } },
      { type: 'accepted', inst: 'claim', ballot: { round: 3, proposer: 'aa' } },
    ];
    for (const m of msgs) expect(decodeMessage(encodeMessage(m), RANGE)).toEqual(m);
  });

  it('turns any byte string into a message or a DecodeError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeMessage(bytes, RANGE);
        } catch (e) {
          return e instanceof DecodeError;
        }
        return true;
      }),
      { numRuns: 2000 },
    );
  });

  it('turns any msgpack value into a message or a DecodeError', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        try {
          decodeMessage(packr.pack([1, 'S', '10.0.0.0/26', v, [], [], []]), RANGE);
          decodeMessage(packr.pack(v), RANGE);
        } catch (e) {
          return e instanceof DecodeError;
        }
        return true;
      }),
    );
  });

  it('names the field that is wrong', () => {
    const good = encodeMessage({ type: 'state', range: RANGE, records: [], geneses: [], removals: [], resolutions: [] });
    expect(() => decodeMessage(good.subarray(0, good.length - 1), RANGE)).toThrow(DecodeError);
    const rec = ['aa', 'h', 1, null, 0, 0, [RANGE.start, RANGE.end + 5], [], 0, 0, [], [], 0, null];
    expect(() => decodeMessage(packr.pack([1, 'S', '10.0.0.0/26', [rec], [], [], []]), RANGE)).toThrow(/records\[0\]\.ranges\[1\]: not an integer in/);
    const unsorted = ['aa', 'h', 1, null, 0, 0, [RANGE.start + 5, RANGE.start + 6, RANGE.start, RANGE.start + 1], [], 0, 0, [], [], 0, null];
    expect(() => decodeMessage(packr.pack([1, 'S', '10.0.0.0/26', [unsorted], [], [], []]), RANGE)).toThrow(/records\[0\]\.ranges: ranges are not sorted/);
    expect(() => decodeMessage(packr.pack([2, 'S']), RANGE)).toThrow(/unsupported IPAM wire version 2/);
    expect(() => decodeMessage(packr.pack([1, 'X']), RANGE)).toThrow(/unknown IPAM message type/);
    const badName = ['a b', 'h', 1, null, 0, 0, [], [], 0, 0, [], [], 0, null];
    expect(() => decodeMessage(packr.pack([1, 'S', '10.0.0.0/26', [badName], [], [], []]), RANGE)).toThrow(/records\[0\]\.peer: "a b" has an invalid format/);
  });

  it('checks limits before doing the work', () => {
    expect(() => decodeMessage(new Uint8Array(LIMITS.messageBytes + 1), RANGE)).toThrow(/exceed the limit/);
    const many = Array.from({ length: LIMITS.records + 1 }, () => 0);
    expect(() => decodeMessage(packr.pack([1, 'S', '10.0.0.0/26', many, [], [], []]), RANGE)).toThrow(/message\.records: 4097 items exceed the limit of 4096/);
  });
});
