import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { fastdpConfig } from '../../../datapath/fastdp/config.js';
import { Fastdp } from '../../../datapath/fastdp/fastdp.js';
import { computeDesired, emptyDesired, type DesiredState, type RemotePeer } from '../../../datapath/fastdp/model.js';
import { MESHNET_NEIGH_PROTOCOL } from '../../../datapath/fastdp/reconcile.js';
import { FakeKernel } from './fake-kernel.js';

const cfg = fastdpConfig({ localIp: '198.18.0.11', vni: 42 });

function peers(n: number, podsEach: number, datapath: RemotePeer['datapath'] = 'fastdp'): RemotePeer[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `aa:00:00:00:00:${(i + 2).toString(16).padStart(2, '0')}`,
    vtep: `198.18.0.${12 + i}`,
    vni: 42,
    datapath,
    heartbeatMac: `0a:00:00:00:00:${(i + 2).toString(16).padStart(2, '0')}`,
    pods: Array.from({ length: podsEach }, (_, j) => ({ mac: `02:00:00:00:${(i + 2).toString(16).padStart(2, '0')}:${(j + 1).toString(16).padStart(2, '0')}`, ip: `198.19.${i + 2}.${j + 1}` })),
    updatedAt: 1,
  }));
}

function desiredFor(ps: RemotePeer[]): DesiredState {
  return computeDesired({ vni: 42, localPods: [], peers: ps }).desired;
}

describe('reconcile (in-memory kernel)', () => {
  let k: FakeKernel;
  let fdp: Fastdp;
  beforeEach(async () => {
    k = new FakeKernel();
    k.addUnderlay('eth0', '198.18.0.11');
    fdp = new Fastdp(k, cfg);
    await fdp.ensureDevices();
    k.calls = [];
  });

  it('programs everything once and touches nothing on a second reconcile', async () => {
    const desired = desiredFor(peers(2, 3));
    const first = await fdp.reconcile(desired);
    expect(first.failed).toEqual([]);
    // 6 pods: neighbour + vxlan entry + pin each; 2 heartbeat MACs: vxlan entry + pin; 2 flood entries.
    expect(first.applied).toHaveLength(6 * 3 + 2 * 2 + 2);
    expect(k.calls).toHaveLength(first.applied.length);
    k.calls = [];
    const second = await fdp.reconcile(desired);
    expect(second.applied).toEqual([]);
    expect(k.calls).toEqual([]);
    // Our neighbours carry our protocol tag.
    expect([...k.neighbours.values()].every((n) => n.protocol === MESHNET_NEIGH_PROTOCOL)).toBe(true);
  });

  it('reconciles any desired state from any earlier one, then rests', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ n: fc.integer({ min: 0, max: 3 }), pods: fc.integer({ min: 0, max: 3 }), dp: fc.constantFrom<RemotePeer['datapath']>('fastdp', 'none') }), { minLength: 1, maxLength: 4 }),
        async (steps) => {
          for (const s of steps) {
            const desired = desiredFor(peers(s.n, s.pods, s.dp));
            const r = await fdp.reconcile(desired);
            expect(r.failed).toEqual([]);
            expect(await fdp.plan(desired)).toEqual([]);
          }
        },
      ),
      { numRuns: 30 },
    );
  });

  it('removes a departed peer completely', async () => {
    await fdp.reconcile(desiredFor(peers(2, 2)));
    await fdp.reconcile(desiredFor(peers(1, 2)));
    const vtepGone = '198.18.0.13';
    const entries = await k.listFdb();
    expect(entries.some((e) => e.dst === vtepGone)).toBe(false);
    expect([...k.neighbours.values()].some((n) => n.ip.startsWith('198.19.3.'))).toBe(false);
    expect([...k.bridgeFdb.keys()].some((m) => m.startsWith('02:00:00:00:03:'))).toBe(false);
  });

  it('a failed vxlan entry withdraws its neighbour and pin; the next reconcile completes', async () => {
    const desired = desiredFor(peers(1, 2));
    k.failures.push({ method: 'addFdb', match: (a) => (a as { mac: string; target: string }).mac === '02:00:00:00:02:01' && (a as { target: string }).target === 'self', errno: 105 });
    const r = await fdp.reconcile(desired);
    expect(r.failed.map((f) => f.op)).toEqual([{ op: 'fdb-set', mac: '02:00:00:00:02:01', dst: '198.18.0.12' }]);
    expect(r.failed[0]!.error).toMatch(/ENOBUFS/);
    expect(r.skipped).toEqual([{ op: 'pin-set', mac: '02:00:00:00:02:01', role: 'vxlan' }]);
    expect(r.compensated).toEqual([{ op: 'neigh-del', ip: '198.19.2.1' }]);
    // The other pod is fully programmed.
    expect(k.bridgeFdb.has('02:00:00:00:02:02')).toBe(true);
    expect(k.neighbours.has(`${(await k.getLink('meshnet'))!.index}|198.19.2.1`)).toBe(false);
    const again = await fdp.reconcile(desired);
    expect(again.failed).toEqual([]);
    expect(again.applied.map((o) => o.op)).toEqual(['neigh-set', 'fdb-set', 'pin-set']);
    expect(await fdp.plan(desired)).toEqual([]);
  });

  it('without a sleeve TAP, sleeve pins are counted as unplaced and reconcile stays idempotent', async () => {
    const desired = desiredFor(peers(1, 2, 'sleeve'));
    const r = await fdp.reconcile(desired);
    expect(r.unplaced).toBe(2);
    expect((await fdp.reconcile(desired)).applied).toEqual([]);
    // Once the TAP exists, the pins land on it.
    k.addLink({ name: 'meshnet-sleeve', kind: 'tun' });
    expect(await fdp.attachSleeve()).toBe(true);
    const r2 = await fdp.reconcile(desired);
    expect(r2.unplaced).toBe(0);
    expect(r2.applied.map((o) => o.op)).toEqual(['pin-set', 'pin-set']);
    const tap = (await k.getLink('meshnet-sleeve'))!;
    expect(k.bridgeFdb.get('02:00:00:00:02:01')).toEqual({ port: tap.index, sticky: true });
  });

  it('switching a peer to the sleeve and back only moves its pins', async () => {
    k.addLink({ name: 'meshnet-sleeve', kind: 'tun' });
    await fdp.attachSleeve();
    const ps = peers(1, 2);
    await fdp.reconcile(desiredFor(ps));
    const toSleeve = await fdp.reconcile(desiredFor([{ ...ps[0]!, datapath: 'sleeve' }]));
    expect(toSleeve.applied.map((o) => o.op).sort()).toEqual(['flood-del', 'pin-set', 'pin-set']);
    const back = await fdp.reconcile(desiredFor(ps));
    expect(back.applied.map((o) => o.op).sort()).toEqual(['flood-add', 'pin-set', 'pin-set']);
  });

  it('coalesces reconciles issued while one runs', async () => {
    const a = fdp.reconcile(desiredFor(peers(1, 1)));
    const b = fdp.reconcile(desiredFor(peers(2, 1)));
    const c = fdp.reconcile(desiredFor(peers(3, 1)));
    const [, rb, rc] = await Promise.all([a, b, c]);
    expect(rb).toBe(rc);
    expect(await fdp.plan(desiredFor(peers(3, 1)))).toEqual([]);
    expect(await fdp.plan(emptyDesired())).not.toEqual([]);
  });
});
