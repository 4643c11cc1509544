// Pure parts of the sleeve: wire header, routes and broadcast trees, path
// MTU search, links gossip, MAC tables.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bfsParents, broadcastChildren, nextHops } from '../../../datapath/sleeve/routes.js';
import { PathMtu, MIN_FRAME_BUDGET } from '../../../datapath/sleeve/pmtu.js';
import { LinksGossiper, decodeLinks } from '../../../datapath/sleeve/links.js';
import { LocalMacs, RemoteMacs, macKeyOf, macStringOf } from '../../../datapath/sleeve/macs.js';
import { emptyHeader, FLAG_ROUTED, headerLength, peerKey, peerNameOf, readHeader, TYPE_BCAST, TYPE_FRAME, TYPE_PROBE, writeHeader } from '../../../datapath/sleeve/wire.js';
import { encode } from '@msgpack/msgpack';

describe('wire header', () => {
  it('round-trips every header kind and rejects malformed ones', () => {
    fc.assert(
      fc.property(fc.constantFrom(TYPE_FRAME, TYPE_BCAST, TYPE_PROBE), fc.boolean(), fc.integer({ min: 1, max: 255 }), fc.integer({ min: 1, max: 0xffffffff }), fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.integer({ min: 0, max: 2 ** 48 - 1 }), (type, routedWish, ttl, index, a, b) => {
        const routed = routedWish && type !== TYPE_BCAST;
        const buf = Buffer.alloc(64);
        const len = writeHeader(buf, 3, type, routed ? FLAG_ROUTED : 0, ttl, index, a, b, a);
        expect(len).toBe(headerLength(type, routed ? FLAG_ROUTED : 0));
        const h = emptyHeader();
        expect(readHeader(buf, 3, len, h)).toBeNull();
        expect(h).toMatchObject({ type, ttl, index, length: len });
        if (routed) expect([h.src, h.dst]).toEqual([a, b]);
        if (type === TYPE_BCAST) expect(h.origin).toBe(a);
        expect(readHeader(buf, 3, len - 1, h)).toBe('bad-length');
      }),
    );
    const h = emptyHeader();
    expect(readHeader(Buffer.from([0x21, 0, 1, 0, 0, 0, 0, 1]), 0, 8, h)).toBe('bad-header'); // version 2
    expect(readHeader(Buffer.from([0x10, 0, 1, 0, 0, 0, 0, 1]), 0, 8, h)).toBe('bad-header'); // type 0
    expect(readHeader(Buffer.from([0x11, 2, 1, 0, 0, 0, 0, 1]), 0, 8, h)).toBe('bad-header'); // unknown flag
    expect(readHeader(Buffer.from([0x12, 1, 1, 0, 0, 0, 0, 1, ...Array(20).fill(0)]), 0, 28, h)).toBe('bad-header'); // routed broadcast
  });

  it('maps peer names to 48-bit keys and back', () => {
    expect(peerKey('8a:3f:00:12:ab:cd')).toBe(0x8a3f0012abcd);
    expect(peerNameOf(0x8a3f0012abcd)).toBe('8a:3f:00:12:ab:cd');
    expect(() => peerKey('8A:3F:00:12:AB')).toThrow(/peer name/);
    expect(macStringOf(macKeyOf('0a:58:c6:13:00:05'))).toBe('0a:58:c6:13:00:05');
  });
});

const graphArb = fc
  .integer({ min: 2, max: 9 })
  .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: n - 1 }), fc.boolean()), { maxLength: 30 })))
  .map(([n, edges]) => {
    const g = new Map<number, Set<number>>();
    for (let i = 0; i < n; i++) g.set(i, new Set());
    for (const [a, b, oneWay] of edges) {
      if (a === b) continue;
      g.get(a)!.add(b);
      if (!oneWay) g.get(b)!.add(a);
    }
    return { n, g };
  });

describe('routes over announced links', () => {
  it('uses a link only when both ends announce it', () => {
    const g = new Map([
      [1, new Set([2, 3])],
      [2, new Set([1])],
      [3, new Set<number>()],
    ]);
    expect([...nextHops(g, 1)]).toEqual([[2, 2]]);
  });

  it('every peer computes a tree that delivers each broadcast exactly once to each reachable peer', () => {
    fc.assert(
      fc.property(graphArb, ({ n, g }) => {
        for (let origin = 0; origin < n; origin++) {
          const reach = bfsParents(g, origin);
          const got = new Map<number, number>();
          const queue = [origin];
          while (queue.length) {
            const at = queue.shift()!;
            for (const c of broadcastChildren(g, origin, at)) {
              got.set(c, (got.get(c) ?? 0) + 1);
              queue.push(c);
            }
          }
          expect([...got.keys()].sort()).toEqual([...reach.keys()].filter((k) => k !== origin).sort());
          for (const v of got.values()) expect(v).toBe(1);
        }
      }),
    );
  });

  it('next hops lead to the destination along symmetric links', () => {
    fc.assert(
      fc.property(graphArb, ({ n, g }) => {
        for (let s = 0; s < n; s++) {
          for (const [dst, hop] of nextHops(g, s)) {
            expect(g.get(s)!.has(hop) && g.get(hop)!.has(s)).toBe(true);
            // Following next hops from each hop reaches dst.
            let at = hop;
            for (let steps = 0; at !== dst; steps++) {
              expect(steps).toBeLessThan(n);
              at = nextHops(g, at).get(dst)!;
            }
          }
        }
      }),
    );
  });
});

describe('path MTU search', () => {
  /** Drive a search against a path that carries frames up to `truth`. */
  function search(candidate: number, truth: number, loss = 0): { p: PathMtu; ms: number } {
    const p = new PathMtu(candidate);
    let t = 0;
    let rnd = 1;
    for (; t < 10_000 && !(p.verified && !p.probing); t += 50) {
      for (const probe of p.due(t)) {
        rnd = (rnd * 48271) % 0x7fffffff;
        if (probe.size <= truth && rnd / 0x7fffffff >= loss) p.acked(probe.id, probe.size);
      }
    }
    return { p, ms: t };
  }

  it('finds the largest size the path carries, within 16 bytes and never above it, in under two seconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 700, max: 9014 }), fc.integer({ min: MIN_FRAME_BUDGET, max: 9014 }), (candidate, truthRaw) => {
        const truth = Math.min(truthRaw, candidate);
        const { p, ms } = search(candidate, truth);
        expect(p.verified).toBe(true);
        expect(p.budget).toBeLessThanOrEqual(truth);
        expect(p.budget).toBeGreaterThanOrEqual(Math.max(MIN_FRAME_BUDGET, truth - 16));
        expect(ms).toBeLessThan(2000);
      }),
    );
  });

  it('keeps the candidate while nothing answers, and retries with backoff', () => {
    const p = new PathMtu(1464);
    expect(p.due(0).length).toBe(8);
    expect(p.due(200).length).toBe(8); // resent once
    expect(p.due(400)).toEqual([]); // round over, nothing acked
    expect(p.budget).toBe(1464);
    expect(p.verified).toBe(false);
    expect(p.due(1000)).toEqual([]);
    expect(p.due(1400).length).toBe(8); // retried after 1 s
  });

  it('checks a verified size now and then, and searches again when the path shrank silently', () => {
    let truth = 1464;
    const p = new PathMtu(1464);
    let t = 0;
    const run = (until: number): void => {
      for (; t < until; t += 50) for (const probe of p.due(t)) if (probe.size <= truth) p.acked(probe.id, probe.size);
    };
    run(1000);
    expect([p.verified, p.budget]).toEqual([true, 1464]);
    run(20_000);
    expect(p.budget).toBe(1464); // checks passed
    truth = 1314;
    p.recheck(t);
    run(t + 3000);
    expect(p.verified).toBe(true);
    expect(p.budget).toBeLessThanOrEqual(1314);
    expect(p.budget).toBeGreaterThanOrEqual(1314 - 16);
  });

  it('survives lost probes (each is sent twice)', () => {
    const { p } = search(1464, 1300, 0.3);
    expect(p.budget).toBeLessThanOrEqual(1300);
    expect(p.budget).toBeGreaterThan(1000);
  });
});

describe('links gossip', () => {
  const A = 'aa:00:00:00:00:01';
  const B = 'aa:00:00:00:00:02';

  it('merges by version, relays only news, and outranks a stale entry of its own', () => {
    let changes = 0;
    let t = 1000;
    const a = new LinksGossiper({ self: A, onChange: () => changes++, now: () => t });
    const b = new LinksGossiper({ self: B, onChange: () => undefined, now: () => t });
    const u = b.setLocal([A])!;
    expect(b.setLocal([A])).toBeUndefined();
    expect(a.onGossip(B, u)).toBeDefined();
    expect(a.onGossip(B, u)).toBeUndefined();
    expect(changes).toBe(1);
    expect(a.graph().get(B)).toEqual(new Set([A]));
    // Our own entry comes back with a higher version (we restarted): bump past it.
    t = 500;
    const stale = encode({ v: 1, peers: [{ n: A, ver: 99_999, l: [B] }] });
    const relay = a.onGossip(B, stale);
    expect(decodeLinks(relay!)!.entries[0]).toMatchObject({ peer: A, version: 100_000, links: [] });
  });

  it('an echo of its own current entry is not news (else three peers relay it forever)', () => {
    const a = new LinksGossiper({ self: A, onChange: () => undefined, now: () => 7 });
    const mine = a.setLocal([B])!;
    const version = decodeLinks(mine)!.entries[0]!.version;
    expect(a.onGossip(B, mine)).toBeUndefined();
    expect(decodeLinks(a.gossip()!)!.entries[0]!.version).toBe(version);
  });

  it('announces the peers it sends to over fastdp; an entry without them announces none', () => {
    const a = new LinksGossiper({ self: A, onChange: () => undefined });
    const b = new LinksGossiper({ self: B, onChange: () => undefined });
    expect(b.setFastdp([A])).toBeDefined();
    expect(b.setFastdp([A])).toBeUndefined();
    a.onGossip(B, b.setLocal([A])!);
    expect(a.announced().get(B)).toEqual({ sleeve: [A], fastdp: [A] });
    expect(a.announced().get(A)).toEqual({ sleeve: [], fastdp: [] });
    // An older peer's entry (no `f`) is valid; a bad `f` drops the entry.
    a.onGossip(B, encode({ v: 1, peers: [{ n: B, ver: Number.MAX_SAFE_INTEGER - 1, l: [] }] }));
    expect(a.announced().get(B)).toEqual({ sleeve: [], fastdp: [] });
    a.onGossip(B, encode({ v: 1, peers: [{ n: B, ver: Number.MAX_SAFE_INTEGER, l: [], f: ['x'] }] }));
    expect(a.dropped['bad-entry']).toBe(1);
  });

  it('drops malformed messages and entries, counted', () => {
    const a = new LinksGossiper({ self: A, onChange: () => undefined });
    expect(a.onGossip(B, Buffer.from('nonsense'))).toBeUndefined();
    expect(a.onGossip(B, encode({ v: 1, peers: [{ n: 'bad', ver: 1, l: [] }, { n: B, ver: -1, l: [] }, { n: B, ver: 2, l: ['x'] }] }))).toBeUndefined();
    expect(a.dropped).toEqual({ 'malformed-message': 1, 'bad-entry': 3 });
  });
});

describe('MAC tables', () => {
  it('prefers gossip over learning and expires learned entries', () => {
    const r = new RemoteMacs(1000);
    r.learn(1, 7, 0);
    expect(r.lookup(1, 500)).toBe(7);
    r.setGossiped(new Map([[1, 8]]));
    expect(r.lookup(1, 500)).toBe(8);
    r.setGossiped(new Map());
    expect(r.lookup(1, 1001)).toBeUndefined();
    r.learn(2, 7, 0);
    r.forgetPeer(7);
    expect(r.lookup(2, 1)).toBeUndefined();
  });

  it('knows local MACs from configuration and from frames seen on the TAP', () => {
    const l = new LocalMacs(1000);
    l.setKnown([5]);
    l.saw(6, 0);
    expect([l.has(5, 10), l.has(6, 10), l.has(7, 10), l.has(6, 2000)]).toEqual([true, true, false, false]);
  });
});
