import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Topology, compareVersions } from '../../../mesh/topology.js';
import { applyDelta, diffRecords, packRecords, unpackRecords, type ConnSummary, type TopologyMessage } from '../../../mesh/topology-codec.js';
import { decodeTopologyMessage, encodeTopologyMessage } from '../../../mesh/topology-codec.js';

const conn = (peer: number, established = true): ConnSummary => ({ peer, address: `198.18.0.${peer}:6783`, outbound: peer % 2 === 0, established });

function topo(id: number, incarnation = 1): Topology {
  return new Topology({ id, uid: BigInt(1000 + id + incarnation * 7), incarnation, nickname: `p${id}` });
}

/** Deliver a message through the wire codec, as the mesh does. */
function wire(m: TopologyMessage): TopologyMessage {
  return decodeTopologyMessage(encodeTopologyMessage(m));
}

describe('packed connection records', () => {
  it('diff then apply gives the new list', () => {
    const arb = fc.uniqueArray(fc.record({ peer: fc.integer({ min: 1, max: 40 }), established: fc.boolean() }), { selector: (c) => c.peer, maxLength: 20 });
    fc.assert(
      fc.property(arb, arb, (a, b) => {
        const pa = packRecords(a.map((c) => conn(c.peer, c.established)));
        const pb = packRecords(b.map((c) => conn(c.peer, c.established)));
        const { upserts, removals } = diffRecords(pa, pb);
        expect([...applyDelta(pa, upserts, removals)]).toEqual([...pb]);
      }),
    );
  });

  it('keeps IPv6 and IPv4 addresses', () => {
    const list = [conn(1), { peer: 2, address: '[fd00::1]:6783', outbound: true, established: false }];
    expect(unpackRecords(packRecords(list))).toEqual([conn(1), { peer: 2, address: '[fd00:0:0:0:0:0:0:1]:6783', outbound: true, established: false }]);
  });
});

describe('topology', () => {
  it('applies a delta on top of its base; when the base is missing it pulls later and gets a delta back', () => {
    const a = topo(1);
    const b = topo(2);
    b.handle(1, wire({ type: 'update', entries: [a.full(1)!] }));
    a.setLocalConnection(conn(2));
    const d1 = a.publishLocal()!;
    b.handle(1, wire({ type: 'update', entries: [d1] }));
    expect(b.entries.get(1)!.version).toBe(2);
    a.setLocalConnection(conn(3));
    a.publishLocal();
    a.setLocalConnection(conn(4, false));
    const d3 = a.publishLocal()!;
    // b missed the second delta: it cannot apply the third, and pulls once the wait is over.
    const r = b.handle(1, wire({ type: 'update', entries: [d3] }));
    expect(r.changed).toBe(false);
    expect(r.pullLater).toBe(true);
    const pulls = b.duePulls();
    expect(pulls).toEqual([{ to: 1, msg: { type: 'pull', have: [{ id: 1, uid: a.selfEntry.uid, incarnation: 1, version: 2 }] } }]);
    const answer = a.handle(2, wire(pulls[0]!.msg)).out[0]!.msg;
    // a's history bridges the gap, so the answer is one composed delta, not the whole entry.
    expect(answer.type === 'update' && answer.entries[0]!.kind).toBe('delta');
    b.handle(1, wire(answer));
    expect(b.entries.get(1)!.version).toBe(a.selfEntry.version);
    expect(Buffer.from(b.entries.get(1)!.conns).equals(Buffer.from(a.selfEntry.conns))).toBe(true);
    // An old delta afterwards changes nothing; what is left to pull is the
    // entries of the peers a now lists and b has never heard of (3 and 4).
    expect(b.handle(1, wire({ type: 'update', entries: [d1] })).changed).toBe(false);
    expect(b.duePulls()).toEqual([{ to: 1, msg: { type: 'pull', have: [3, 4].map((id) => ({ id, uid: 0n, incarnation: 0, version: 0 })) } }]);
    // a has neither: b asks again a few rounds (a may have been behind itself), then leaves it to anti-entropy.
    for (let round = 2; round <= 4; round++) expect(b.duePulls()).toHaveLength(1);
    expect(b.duePulls()).toEqual([]);
    expect(b.pullsPending).toBe(false);
  });

  it('repeats a pull its neighbour could not answer yet, and stops once the entry arrived', () => {
    const a = topo(1);
    const b = topo(2);
    const c = topo(3);
    c.setLocalConnection(conn(1));
    c.publishLocal();
    a.setLocalConnection(conn(3));
    a.setLocalConnection(conn(2));
    const da = a.publishLocal()!;
    // b hears of c only through a's connections; a answers the first pull before it has c.
    b.handle(1, wire({ type: 'update', entries: [a.full(1)!] }));
    b.handle(1, wire({ type: 'update', entries: [da] }));
    const first = b.duePulls();
    expect(first.map((o) => o.msg.type === 'pull' && o.msg.have.map((h) => h.id))).toEqual([[3]]);
    expect(a.handle(2, wire(first[0]!.msg)).out).toEqual([]);
    a.handle(3, wire({ type: 'update', entries: [c.full(3)!] }));
    const again = b.duePulls();
    expect(again).toHaveLength(1);
    b.handle(1, wire(a.handle(2, wire(again[0]!.msg)).out[0]!.msg));
    expect(b.entries.get(3)?.version).toBe(c.selfEntry.version);
    expect(b.duePulls()).toEqual([]);
    expect(b.pullsPending).toBe(false);
  });

  it('pulls the entry of a peer it hears of only in another entry\'s connections', () => {
    const c = topo(3);
    const b = topo(2);
    c.setLocalConnection(conn(5));
    c.publishLocal();
    const r = b.handle(1, wire({ type: 'update', entries: [c.full(3)!] }));
    expect(r.pullLater).toBe(true);
    expect(b.duePulls()).toEqual([{ to: 1, msg: { type: 'pull', have: [{ id: 5, uid: 0n, incarnation: 0, version: 0 }] } }]);
  });

  it('answers with the whole entry when its history does not reach back far enough', () => {
    const a = topo(1);
    for (let i = 0; i < 100; i++) {
      a.setLocalConnection(conn(10 + i));
      a.publishLocal();
    }
    const u = a.updateFor(1, { id: 1, uid: a.selfEntry.uid, incarnation: 1, version: 2 })!;
    expect(u.kind).toBe('full');
    const v = a.updateFor(1, { id: 1, uid: a.selfEntry.uid, incarnation: 1, version: a.selfEntry.version - 3 })!;
    expect(v.kind).toBe('delta');
  });

  it('a restarted peer (higher incarnation) supersedes its old entry even with a lower version', () => {
    const old = topo(1, 1);
    for (let i = 0; i < 5; i++) {
      old.setLocalConnection(conn(10 + i));
      old.publishLocal();
    }
    const b = topo(2);
    b.handle(1, wire({ type: 'update', entries: [old.full(1)!] }));
    const fresh = topo(1, 2);
    b.handle(1, wire({ type: 'update', entries: [fresh.full(1)!] }));
    expect(b.entries.get(1)!.incarnation).toBe(2);
    expect(b.entries.get(1)!.conns.length).toBe(0);
  });

  it('moves past a newer entry of its own name (state dir wiped)', () => {
    const stale = topo(1, 5);
    const me = topo(1, 1);
    const r = me.handle(2, wire({ type: 'update', entries: [stale.full(1)!] }));
    expect(r.selfBumped).toBe(6);
    expect(compareVersions(me.selfEntry, stale.selfEntry)).toBeGreaterThan(0);
  });

  it('converges whatever the delivery order, loss and duplication, once digests are exchanged', () => {
    // Random local changes on 4 peers; messages delivered in random order, some lost, some twice.
    const op = fc.record({ peer: fc.integer({ min: 0, max: 3 }), other: fc.integer({ min: 0, max: 3 }), add: fc.boolean(), est: fc.boolean() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 200 }), (ops, shuffle) => {
        const ts = [0, 1, 2, 3].map((i) => topo(i + 1));
        const inflight: { to: number; from: number; msg: TopologyMessage }[] = [];
        const deliver = (): void => {
          let k = 0;
          while (inflight.length) {
            const pick = (shuffle[k++] ?? 0) % inflight.length;
            const [m] = inflight.splice(pick, 1);
            const lose = (shuffle[k] ?? 1) % 7 === 0;
            const dup = (shuffle[k] ?? 1) % 11 === 0;
            if (lose) continue;
            for (let c = 0; c < (dup ? 2 : 1); c++) {
              const res = ts[m!.to]!.handle(m!.from + 1, wire(m!.msg));
              for (const o of res.out) inflight.push({ to: o.to - 1, from: m!.to, msg: o.msg });
              if (res.pullLater && (shuffle[k] ?? 0) % 2 === 0) for (const o of ts[m!.to]!.duePulls()) inflight.push({ to: o.to - 1, from: m!.to, msg: o.msg });
              for (const u of res.relay) for (let n = 0; n < 4; n++) if (n !== m!.to) inflight.push({ to: n, from: m!.to, msg: { type: 'update', entries: [u] } });
            }
          }
        };
        for (const o of ops) {
          if (o.peer === o.other) continue;
          const t = ts[o.peer]!;
          if (o.add) t.setLocalConnection(conn(o.other + 1, o.est));
          else t.removeLocalConnection(o.other + 1);
          const d = t.publishLocal();
          if (d) for (let n = 0; n < 4; n++) if (n !== o.peer) inflight.push({ to: n, from: o.peer, msg: { type: 'update', entries: [d] } });
          if (shuffle.length % 3 === 0) deliver();
        }
        deliver();
        // Anti-entropy: every pair exchanges digests (without loss).
        for (let round = 0; round < 2; round++) {
          for (let a = 0; a < 4; a++)
            for (let b = 0; b < 4; b++) {
              if (a === b) continue;
              const q = [{ to: b, from: a, msg: { type: 'digest', items: ts[a]!.digest() } as TopologyMessage }];
              while (q.length) {
                const m = q.shift()!;
                const res = ts[m.to]!.handle(m.from + 1, wire(m.msg));
                for (const o of res.out) q.push({ to: o.to - 1, from: m.to, msg: o.msg });
              }
            }
        }
        const view = (t: Topology): string =>
          [...t.entries.values()]
            .sort((x, y) => x.id - y.id)
            .map((e) => `${e.id}:${e.incarnation}:${e.version}:${Buffer.from(e.conns).toString('hex')}`)
            .join('|');
        for (const t of ts) expect(view(t)).toBe(view(ts[0]!));
      }),
      { numRuns: 300 },
    );
  });

  it('finds unreachable peers for garbage collection', () => {
    const a = topo(1);
    a.setLocalConnection(conn(2));
    a.publishLocal();
    const b = topo(2);
    b.setLocalConnection(conn(1));
    b.publishLocal();
    const c = topo(3);
    a.handle(2, wire({ type: 'update', entries: [b.full(2)!, c.full(3)!] }));
    expect(a.unreachable()).toEqual([3]);
  });
});

describe('anti-entropy summaries', () => {
  it('round-trip through the codec and refuse bad flags and too many channels', () => {
    const m: TopologyMessage = { type: 'summary', reply: true, topology: { count: 7, hash: [1, 0xffffffff] }, channels: [{ name: 'ipam', hash: 42 }, { name: 'fastdp-endpoints', hash: 0 }] };
    expect(wire(m)).toEqual(m);
    const bad = encodeTopologyMessage(m);
    bad[5] = 2; // flags
    expect(() => decodeTopologyMessage(bad)).toThrow(/flags/);
    const many = encodeTopologyMessage({ ...m, channels: Array.from({ length: 65 }, (_, i) => ({ name: `c${i}`, hash: i })) });
    expect(() => decodeTopologyMessage(many)).toThrow(/channels/);
  });

  it('fingerprints of two tables agree exactly when their digests do', () => {
    const a = topo(1);
    const b = topo(2);
    a.setLocalConnection(conn(2));
    b.setLocalConnection(conn(1));
    const da = a.publishLocal()!;
    const db = b.publishLocal()!;
    expect(a.fingerprint()).not.toEqual(b.fingerprint());
    a.handle(2, wire({ type: 'update', entries: [b.full(2)!] }));
    b.handle(1, wire({ type: 'update', entries: [a.full(1)!] }));
    expect(a.fingerprint()).toEqual(b.fingerprint());
    expect(da.version).toBe(2);
    expect(db.version).toBe(2);
    a.setLocalConnection(conn(3));
    a.publishLocal();
    expect(a.fingerprint()).not.toEqual(b.fingerprint());
  });
});
