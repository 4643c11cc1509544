import fc from 'fast-check';
import { encode as pack } from '@msgpack/msgpack';
import { beforeEach, describe, expect, it } from 'vitest';
import { decodeEntries, encodeEntries, EndpointsDecodeError, EndpointsGossiper, type EndpointsEntry } from '../../../datapath/fastdp/endpoints.js';
import { parseRange } from '../../../datapath/fastdp/cidr.js';

const SELF = 'aa:00:00:00:00:01';
const P2 = 'aa:00:00:00:00:02';
const P3 = 'aa:00:00:00:00:03';
const range = parseRange('198.19.0.0/16');

const entry = (over: Partial<EndpointsEntry> = {}): EndpointsEntry => ({
  peer: P2,
  version: 5,
  vtep: '198.18.0.12',
  vni: 42,
  heartbeatMac: '0a:00:00:00:00:02',
  pods: [{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }],
  ...over,
});

const raw = (peers: unknown[]): Uint8Array => pack({ v: 1, peers });

describe('endpoints codec', () => {
  it('round-trips valid entries', () => {
    const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => {
      b[0] = (b[0]! & 0xfe) | 0x02;
      return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
    });
    const ipArb = fc.tuple(fc.nat(255), fc.nat(255)).map(([a, b]) => `198.19.${a}.${b}`);
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            peer: macArb.map((m) => m.replace(/^../, 'aa')),
            version: fc.nat(),
            vtep: ipArb.map((x) => x.replace('198.19', '198.18')),
            vni: fc.integer({ min: 0, max: 0xffffff }),
            heartbeatMac: macArb,
            pods: fc.array(fc.record({ mac: macArb, ip: ipArb }), { maxLength: 5 }),
          }),
          { maxLength: 5 },
        ),
        (entries) => {
          const d = decodeEntries(encodeEntries(entries), range);
          expect(d.drops).toEqual([]);
          expect(d.entries).toEqual(entries);
        },
      ),
    );
  });

  it('drops bad pods but keeps the rest of the entry', () => {
    const d = decodeEntries(
      raw([
        {
          n: P2,
          ver: 1,
          vtep: '198.18.0.12',
          vni: 42,
          pods: [
            ['02:00:00:00:02:01', '198.19.2.1'],
            ['zz:00:00:00:02:02', '198.19.2.2'],
            ['03:00:00:00:02:03', '198.19.2.3'],
            ['02:00:00:00:02:04', '198.18.0.4'],
            ['02:00:00:00:02:05', 'not-an-ip'],
            'nonsense',
          ],
        },
      ]),
      range,
    );
    expect(d.entries).toEqual([{ peer: P2, version: 1, vtep: '198.18.0.12', vni: 42, pods: [{ mac: '02:00:00:00:02:01', ip: '198.19.2.1' }] }]);
    expect(d.drops.map((x) => x.reason)).toEqual(['bad-mac', 'bad-mac', 'ip-out-of-range', 'bad-ip', 'bad-mac']);
  });

  it('drops whole entries with a bad VTEP, VNI, name or version', () => {
    const good = { n: P2, ver: 1, vtep: '198.18.0.12', vni: 42, pods: [] };
    const d = decodeEntries(
      raw([
        { ...good, vtep: 'example.com' },
        { ...good, vni: 1 << 24 },
        { ...good, n: 'peer-two' },
        { ...good, ver: -1 },
        { ...good, ver: 1.5 },
        { ...good, pods: 'x' },
        42,
        good,
      ]),
      range,
    );
    expect(d.entries).toHaveLength(1);
    expect(d.drops.map((x) => x.reason)).toEqual(['bad-vtep', 'bad-vni', 'bad-entry', 'bad-entry', 'bad-entry', 'bad-entry', 'bad-entry']);
  });

  it('refuses undecodable or misshapen messages with EndpointsDecodeError, never anything else', () => {
    expect(() => decodeEntries(new Uint8Array([0xc1]), range)).toThrow(EndpointsDecodeError);
    expect(() => decodeEntries(pack({ v: 2, peers: [] }), range)).toThrow(/unsupported version/);
    expect(() => decodeEntries(pack({ v: 1, peers: {} }), range)).toThrow(/not a list/);
    expect(() => decodeEntries(pack('hello'), range)).toThrow(/not a map/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeEntries(bytes, range);
        } catch (err) {
          expect(err).toBeInstanceOf(EndpointsDecodeError);
        }
      }),
    );
    fc.assert(
      fc.property(fc.anything(), (v) => {
        try {
          decodeEntries(pack({ v: 1, peers: [v] }), range);
        } catch (err) {
          expect(err).toBeInstanceOf(EndpointsDecodeError);
        }
      }),
    );
  });
});

describe('EndpointsGossiper', () => {
  let known: Set<string>;
  let logs: { msg: string; fields: Record<string, unknown> }[];
  let changes: number;
  let clock: number;
  let g: EndpointsGossiper;
  beforeEach(() => {
    known = new Set([SELF, P2]);
    logs = [];
    changes = 0;
    clock = 1000;
    g = new EndpointsGossiper({
      self: SELF,
      range: '198.19.0.0/16',
      isKnownPeer: (p) => known.has(p),
      log: (msg, fields) => logs.push({ msg, fields }),
      onChange: () => changes++,
      now: () => clock,
    });
  });

  it('merges by per-peer version and returns only what was new', () => {
    expect(decodeEntries(g.onGossip(P2, encodeEntries([entry({ version: 5 })]))!, range).entries).toHaveLength(1);
    expect(g.onGossip(P2, encodeEntries([entry({ version: 5 })]))).toBeUndefined();
    expect(g.onGossip(P2, encodeEntries([entry({ version: 4, pods: [] })]))).toBeUndefined();
    expect(g.remoteEntries()[0]!.pods).toHaveLength(1);
    clock = 2000;
    expect(g.onBroadcast(P2, encodeEntries([entry({ version: 6, pods: [] })]))).toBeDefined();
    expect(g.remoteEntries()[0]).toMatchObject({ version: 6, pods: [], updatedAt: 2000 });
    expect(changes).toBe(2);
  });

  it('gossips its own entry and everything it knows', () => {
    g.setLocal({ vtep: '198.18.0.11', vni: 42, pods: [{ mac: '02:00:00:00:01:01', ip: '198.19.1.1' }] });
    g.onGossip(P2, encodeEntries([entry()]));
    const all = decodeEntries(g.gossip()!, range).entries;
    expect(all.map((e) => e.peer).sort()).toEqual([SELF, P2]);
  });

  it('never takes others’ word for its own entry, and outranks a stale one', () => {
    const first = decodeEntries(g.setLocal({ vtep: '198.18.0.11', vni: 42, pods: [] }), range).entries[0]!;
    expect(first.version).toBe(1000);
    const answer = g.onGossip(P2, encodeEntries([{ ...first, version: 5000, vtep: '198.18.0.66' }]));
    const bumped = decodeEntries(answer!, range).entries[0]!;
    expect(bumped).toMatchObject({ peer: SELF, version: 5001, vtep: '198.18.0.11' });
    expect(g.remoteEntries()).toEqual([]);
  });

  it('an echo of its own current entry is not news (else three peers relay it forever)', () => {
    const mine = g.setLocal({ vtep: '198.18.0.11', vni: 42, pods: [] });
    expect(g.onGossip(P2, mine)).toBeUndefined();
    expect(decodeEntries(g.gossip()!, range).entries.find((e) => e.peer === SELF)!.version).toBe(1000);
  });

  it('ignores, counts and logs once each malformed pod; programs nothing from it', () => {
    const bad = raw([{ n: P2, ver: 1, vtep: '198.18.0.12', vni: 42, pods: [['02:00:00:00:02:01', '198.18.9.9']] }]);
    g.onGossip(P2, bad);
    g.onGossip(P2, raw([{ n: P2, ver: 2, vtep: '198.18.0.12', vni: 42, pods: [['02:00:00:00:02:01', '198.18.9.9']] }]));
    expect(g.dropped['ip-out-of-range']).toBe(2);
    expect(logs.filter((l) => l.fields.reason === 'ip-out-of-range')).toHaveLength(1);
    expect(g.remoteEntries()[0]!.pods).toEqual([]);
  });

  it('parks entries of unknown peers and adopts them when the topology learns the peer', () => {
    expect(g.onGossip(P2, encodeEntries([entry({ peer: P3, vtep: '198.18.0.13' })]))).toBeUndefined();
    expect(g.dropped['unknown-peer']).toBe(1);
    expect(g.remoteEntries()).toEqual([]);
    expect(g.onTopologyChanged()).toBeUndefined();
    known.add(P3);
    const adopted = g.onTopologyChanged();
    expect(decodeEntries(adopted!, range).entries.map((e) => e.peer)).toEqual([P3]);
    expect(g.remoteEntries().map((e) => e.peer)).toEqual([P3]);
  });

  it('forgets departed peers, and drops entries whose peer left the topology', () => {
    g.onGossip(P2, encodeEntries([entry()]));
    expect(g.forgetPeer(P2)).toBe(true);
    expect(g.remoteEntries()).toEqual([]);
    g.onGossip(P2, encodeEntries([entry({ version: 9 })]));
    known.delete(P2);
    g.onTopologyChanged();
    expect(g.remoteEntries()).toEqual([]);
  });

  it('refuses an unusable message: counted, logged once, nothing merged or relayed', () => {
    expect(g.onGossip(P2, new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(g.onBroadcast(P2, new Uint8Array([1, 2, 3]))).toBeUndefined();
    expect(g.dropped['malformed-message']).toBe(2);
    expect(logs.filter((l) => l.fields.reason === 'malformed-message')).toHaveLength(1);
    expect(g.remoteEntries()).toEqual([]);
  });
});
