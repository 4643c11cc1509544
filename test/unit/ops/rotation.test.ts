// Password rotation's pure parts: the replicated book of accepted ids
// (merge, codec), and the checks that refuse a step that would leave a peer
// unable to connect.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BookDecodeError, decodeEntries, encodeEntries, PasswordBook, promoteRefusal, removeRefusal, rollSummary, type PasswordEntry } from '../../../router/rotation/book.js';

const A = '8a:00:00:00:00:01';
const B = '8a:00:00:00:00:02';
const C = '8a:00:00:00:00:03';
const OLD = '1111111111111111';
const NEW = '2222222222222222';
const OTHER = '3333333333333333';
const peers = [
  { name: B, nickname: 'h2' },
  { name: C, nickname: 'h3' },
];

function book(entries: Record<string, string[]>): PasswordBook {
  const b = new PasswordBook(A);
  b.merge(Object.entries(entries).map(([peer, ids]) => ({ peer, version: 1, ids })));
  return b;
}

describe('the password book', () => {
  it('keeps the highest version per peer and returns only what was new', () => {
    const b = new PasswordBook(A);
    expect(b.merge([{ peer: B, version: 2, ids: [OLD] }])).toHaveLength(1);
    expect(b.merge([{ peer: B, version: 1, ids: [NEW] }])).toEqual([]);
    expect(b.merge([{ peer: B, version: 2, ids: [NEW] }])).toEqual([]);
    expect(b.get(B)!.ids).toEqual([OLD]);
    expect(b.merge([{ peer: A, version: 99, ids: [OTHER] }])).toEqual([]);
  });

  it('our own version always grows, also when the clock does not', () => {
    const b = new PasswordBook(A);
    const v1 = b.setOwn([OLD], 1000).version;
    const v2 = b.setOwn([OLD, NEW], 1000).version;
    const v3 = b.setOwn([NEW], 500).version;
    expect(v2).toBeGreaterThan(v1);
    expect(v3).toBeGreaterThan(v2);
  });

  it('merge is order-independent (any delivery order gives the same book)', () => {
    const entry = fc.record({ peer: fc.constantFrom(B, C), version: fc.integer({ min: 0, max: 20 }), ids: fc.constantFrom([OLD], [NEW], [OLD, NEW]) });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), fc.array(entry, { maxLength: 12 }), (xs, ys) => {
        // Distinct (peer, version) pairs carry one content, as their owner wrote it.
        const seen = new Map<string, PasswordEntry>();
        const norm = (e: PasswordEntry): PasswordEntry => seen.get(`${e.peer}/${e.version}`) ?? (seen.set(`${e.peer}/${e.version}`, e), e);
        const all = [...xs, ...ys].map((e) => norm({ ...e, ids: [...e.ids] }));
        const b1 = new PasswordBook(A);
        b1.merge(all);
        const b2 = new PasswordBook(A);
        for (const e of [...all].reverse()) b2.merge([e]);
        expect(b1.all().sort((p, q) => p.peer.localeCompare(q.peer))).toEqual(b2.all().sort((p, q) => p.peer.localeCompare(q.peer)));
      }),
    );
  });

  it('round-trips through the codec and refuses malformed messages naming the field', () => {
    const entries = [{ peer: B, version: 5, ids: [OLD, NEW] }];
    expect(decodeEntries(encodeEntries(entries))).toEqual(entries);
    const bad = (o: unknown): Uint8Array => Buffer.from(JSON.stringify(o));
    expect(() => decodeEntries(Buffer.from('nope'))).toThrow(BookDecodeError);
    expect(() => decodeEntries(bad({ v: 2, entries: [] }))).toThrow(/unknown message version/);
    expect(() => decodeEntries(bad({ v: 1, entries: [{ peer: 'x', version: 1, ids: [] }] }))).toThrow(/entries\[0\]\.peer/);
    expect(() => decodeEntries(bad({ v: 1, entries: [{ peer: B, version: -1, ids: [] }] }))).toThrow(/entries\[0\]\.version/);
    expect(() => decodeEntries(bad({ v: 1, entries: [{ peer: B, version: 1, ids: ['zz'] }] }))).toThrow(/entries\[0\]\.ids/);
    expect(() => decodeEntries(bad({ v: 1, entries: [{ peer: B, version: 1, ids: Array(9).fill(OLD) }] }))).toThrow(/at most 8/);
  });

  it('decoding arbitrary bytes only ever fails with BookDecodeError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array(), fc.json().map((j) => Buffer.from(j))), (bytes) => {
        try {
          decodeEntries(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(BookDecodeError);
        }
      }),
    );
  });
});

describe('refusals', () => {
  it('promote: refused while a peer does not accept the password, or has not reported', () => {
    expect(promoteRefusal(NEW, peers, book({ [B]: [OLD, NEW], [C]: [OLD, NEW] }))).toBeUndefined();
    expect(promoteRefusal(NEW, peers, book({ [B]: [OLD, NEW], [C]: [OLD] }))).toBe(
      `refused: ${C}(h3) does not accept password ${NEW} yet; run 'meshnet password add' there first`,
    );
    expect(promoteRefusal(NEW, peers, book({ [B]: [OLD, NEW] }))).toMatch(/^refused: 8a:00:00:00:00:03\(h3\) has not reported which passwords it accepts/);
  });

  it('remove: refused when a peer would hold neither remaining password, or it is the last one', () => {
    expect(removeRefusal(OLD, [NEW, OLD], peers, book({ [B]: [NEW], [C]: [NEW, OLD] }))).toBeUndefined();
    expect(removeRefusal(OLD, [NEW, OLD], peers, book({ [B]: [OLD], [C]: [OTHER] }))).toBe(
      `refused: ${B}(h2), ${C}(h3) hold neither of the passwords this host would keep (${NEW}); run 'meshnet password add' there first`,
    );
    expect(removeRefusal(OLD, [OLD], peers, book({ [B]: [OLD], [C]: [OLD] }))).toMatch(/the only password accepted here/);
    expect(removeRefusal(OTHER, [NEW, OLD], peers, book({}))).toMatch(/is not accepted here/);
  });

  it('summarises where the roll stands', () => {
    expect(rollSummary([OLD], peers, book({ [B]: [OLD], [C]: [OLD] }))).toBe(`steady: every peer accepts only ${OLD}`);
    expect(rollSummary([OLD, NEW], peers, book({ [B]: [OLD, NEW], [C]: [NEW, OLD] }))).toMatch(/^rolling: every peer accepts/);
    expect(rollSummary([NEW, OLD], peers, book({ [B]: [NEW], [C]: [NEW, OLD] }))).toMatch(/^every peer prefers 2222/);
    expect(rollSummary([NEW], peers, book({ [B]: [OLD], [C]: [NEW] }))).toBe('split: no password is accepted by every peer');
    expect(rollSummary([NEW], peers, book({ [B]: [NEW] }))).toBe('waiting for every peer to report its passwords');
  });
});
