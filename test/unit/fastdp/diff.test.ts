import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyToActual, diffEntries, emptyActual, type ActualState, type EntryOp } from '../../../datapath/fastdp/diff.js';
import { emptyDesired, type DesiredState, type PortRole } from '../../../datapath/fastdp/model.js';

const mac = fc.integer({ min: 1, max: 12 }).map((i) => `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`);
const ip = fc.integer({ min: 1, max: 12 }).map((i) => `198.19.0.${i}`);
const vtep = fc.integer({ min: 1, max: 4 }).map((i) => `198.18.0.${10 + i}`);
const role = fc.constantFrom<PortRole>('vxlan', 'sleeve');

const desiredArb: fc.Arbitrary<DesiredState> = fc.record({
  neighbours: fc.array(fc.tuple(ip, mac), { maxLength: 10 }).map((e) => new Map(e)),
  vxlanFdb: fc.array(fc.tuple(mac, vtep), { maxLength: 10 }).map((e) => new Map(e)),
  floodDsts: fc.array(vtep, { maxLength: 4 }).map((e) => new Set(e)),
  pins: fc.array(fc.tuple(mac, role), { maxLength: 10 }).map((e) => new Map(e)),
});

const actualArb: fc.Arbitrary<ActualState> = fc.record({
  neighbours: fc
    .array(fc.tuple(ip, fc.record({ mac: fc.option(mac, { nil: undefined }), permanent: fc.boolean(), ours: fc.boolean() })), { maxLength: 10 })
    .map((e) => new Map(e)),
  vxlanFdb: fc.array(fc.tuple(mac, fc.uniqueArray(vtep, { minLength: 1, maxLength: 3 })), { maxLength: 10 }).map((e) => new Map(e)),
  floodDsts: fc.array(vtep, { maxLength: 4 }).map((e) => new Set(e)),
  pins: fc.array(fc.tuple(mac, fc.record({ role, sticky: fc.boolean() })), { maxLength: 10 }).map((e) => new Map(e)),
});

/** What of `actual` meshnet owns, in desired-state form. */
function owned(a: ActualState): DesiredState {
  const d = emptyDesired();
  for (const [ip, n] of a.neighbours) if (n.ours && n.permanent && n.mac) d.neighbours.set(ip, n.mac);
  for (const [m, dsts] of a.vxlanFdb) {
    expect(dsts).toHaveLength(1);
    d.vxlanFdb.set(m, dsts[0]!);
  }
  for (const dst of a.floodDsts) d.floodDsts.add(dst);
  for (const [m, p] of a.pins) {
    expect(p.sticky).toBe(true);
    d.pins.set(m, p.role);
  }
  return d;
}

const PHASES = ['neigh-set', 'fdb-set', 'flood-add', 'pin-set', 'pin-del', 'flood-del', 'fdb-del', 'neigh-del'];

describe('diffEntries', () => {
  it('converges: applying the diff yields exactly the desired state', () => {
    fc.assert(
      fc.property(desiredArb, actualArb, (desired, actual) => {
        const after = applyToActual(actual, diffEntries(desired, actual));
        expect(owned(after)).toEqual(desired);
      }),
    );
  });

  it('is idempotent: a second diff is empty', () => {
    fc.assert(
      fc.property(desiredArb, actualArb, (desired, actual) => {
        const after = applyToActual(actual, diffEntries(desired, actual));
        expect(diffEntries(desired, after)).toEqual([]);
      }),
    );
  });

  it('orders ops by phase and steers a MAC into the vxlan only after its vxlan entry', () => {
    fc.assert(
      fc.property(desiredArb, actualArb, (desired, actual) => {
        const ops = diffEntries(desired, actual);
        const phases = ops.map((o) => PHASES.indexOf(o.op));
        expect([...phases].sort((a, b) => a - b)).toEqual(phases);
        for (const [i, o] of ops.entries()) {
          if (o.op !== 'pin-set' || o.role !== 'vxlan') continue;
          const set = ops.findIndex((x) => x.op === 'fdb-set' && x.mac === o.mac);
          if (set >= 0) expect(set).toBeLessThan(i);
        }
      }),
    );
  });

  it('is minimal for single changes', () => {
    const desired = emptyDesired();
    desired.neighbours.set('198.19.0.5', '02:00:00:00:00:05');
    desired.vxlanFdb.set('02:00:00:00:00:05', '198.18.0.12');
    desired.pins.set('02:00:00:00:00:05', 'vxlan');
    desired.floodDsts.add('198.18.0.12');
    const actual = applyToActual(emptyActual(), diffEntries(desired, emptyActual()));
    expect(diffEntries(desired, actual)).toEqual([]);

    // The pod's host moved: one in-place replace.
    desired.vxlanFdb.set('02:00:00:00:00:05', '198.18.0.13');
    expect(diffEntries(desired, actual)).toEqual([{ op: 'fdb-set', mac: '02:00:00:00:00:05', dst: '198.18.0.13' }]);

    // The peer switched to the sleeve: one pin moves, its flood entry goes.
    desired.vxlanFdb.set('02:00:00:00:00:05', '198.18.0.12');
    desired.pins.set('02:00:00:00:00:05', 'sleeve');
    desired.floodDsts.clear();
    expect(diffEntries(desired, actual)).toEqual<EntryOp[]>([
      { op: 'pin-set', mac: '02:00:00:00:00:05', role: 'sleeve' },
      { op: 'flood-del', dst: '198.18.0.12' },
    ]);
  });

  it('takes over learned or foreign entries for addresses it wants, leaves others alone', () => {
    const desired = emptyDesired();
    desired.neighbours.set('198.19.0.5', '02:00:00:00:00:05');
    const actual = emptyActual();
    actual.neighbours.set('198.19.0.5', { mac: '02:00:00:00:00:05', permanent: false, ours: false });
    actual.neighbours.set('198.19.0.6', { mac: '02:00:00:00:00:06', permanent: true, ours: false });
    actual.neighbours.set('198.19.0.7', { mac: '02:00:00:00:00:07', permanent: true, ours: true });
    expect(diffEntries(desired, actual)).toEqual([
      { op: 'neigh-set', ip: '198.19.0.5', mac: '02:00:00:00:00:05' },
      { op: 'neigh-del', ip: '198.19.0.7' },
    ]);
  });

  it('removes a departed peer: pins, flood, vxlan entries, then neighbours', () => {
    const actual = emptyActual();
    actual.neighbours.set('198.19.0.5', { mac: '02:00:00:00:00:05', permanent: true, ours: true });
    actual.vxlanFdb.set('02:00:00:00:00:05', ['198.18.0.12']);
    actual.floodDsts.add('198.18.0.12');
    actual.pins.set('02:00:00:00:00:05', { role: 'vxlan', sticky: true });
    expect(diffEntries(emptyDesired(), actual).map((o) => o.op)).toEqual(['pin-del', 'flood-del', 'fdb-del', 'neigh-del']);
  });
});
