// Scenario tests on the simulated cluster: init modes, donation, restarts,
// rmpeer, reset, split brain, range mismatch. The property test
// (sim.property.test.ts) then mixes these at random.
import { describe, expect, it } from 'vitest';
import { SimNet } from './sim.js';
import type { InitMode } from '../../../router/ipam/types.js';
import { intersect, size } from '../../../router/ipam/ranges.js';
import { IpamError } from '../../../router/ipam/errors.js';

function net(nodes: number, init: (name: string, i: number) => InitMode, range = '10.32.0.0/24', seed = 1, extra = {}) {
  return new SimNet({ seed, range, nodes, init, ...extra });
}

async function startAll(sim: SimNet) {
  for (const n of sim.nodes.keys()) await sim.start(n);
}

async function alloc(sim: SimNet, node: string, id: string) {
  const r = await sim.run(sim.node(node).ipam!.allocate(id, 'eth0'));
  if (!r.ok) throw r.error;
  return r.value;
}

/** No address owned by two live (up or restartable) nodes. */
function expectDisjointOwnership(sim: SimNet) {
  const nodes = [...sim.nodes.values()].filter((n) => n.state !== 'gone');
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      const both = intersect(sim.owned(nodes[i]!.name), sim.owned(nodes[j]!.name));
      expect(both, `${nodes[i]!.name} and ${nodes[j]!.name} both own space\n${sim.describeOwnership()}`).toEqual([]);
    }
  }
}

function expectDistinctAllocations(sim: SimNet) {
  const seen = new Map<number, string>();
  for (const n of sim.nodes.values()) {
    if (n.state === 'gone') continue;
    for (const a of sim.allocations(n.name)) {
      expect(seen.get(a.address), `address ${a.address} on ${n.name} and ${seen.get(a.address)}`).toBeUndefined();
      seen.set(a.address, n.name);
    }
  }
}

/** Every allocation of an up node lies in space that node owns. */
function expectAllocationsOwned(sim: SimNet) {
  for (const n of sim.up()) {
    const owned = sim.owned(n.name);
    for (const a of sim.allocations(n.name)) {
      expect(intersect(owned, [{ start: a.address, end: a.address + 1 }]).length, `${n.name} allocated ${a.address} outside its space`).toBe(1);
    }
  }
}

function totalOwned(sim: SimNet) {
  return [...sim.nodes.values()].filter((n) => n.state === 'up').reduce((s, n) => s + size(sim.owned(n.name)), 0);
}

describe('ipam cluster: init modes', () => {
  it('consensus: three peers agree on one ring and allocate distinct addresses', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    const addrs = new Set<string>();
    for (const n of ['n1', 'n2', 'n3']) {
      expect(sim.node(n).ipam!.ready).toBe(true);
      addrs.add((await alloc(sim, n, `c-${n}`)).address);
    }
    expect(addrs.size).toBe(3);
    expect(totalOwned(sim)).toBe(256);
    expectDisjointOwnership(sim);
    expect(sim.errors).toEqual([]);
    expect(sim.rejections).toEqual([]);
  });

  it('consensus: a lone peer of three waits, says why, and times out allocations clearly', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }), '10.32.0.0/24', 1, { timeouts: { allocateMs: 5_000 } });
    await sim.start('n1');
    await sim.clock.advance(3_000);
    const ipam = sim.node('n1').ipam!;
    expect(ipam.ready).toBe(false);
    expect(ipam.status().status).toBe('awaiting consensus (quorum 2, known 1)');
    const r = await sim.run(ipam.allocate('c1', 'eth0'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect((r.error as IpamError).code).toBe('not-ready');
      expect(r.error.message).toMatch(/awaiting consensus \(quorum 2, known 1\)/);
    }
    // A second peer makes a quorum: the ring forms and both share it.
    await sim.start('n2');
    await sim.clock.advance(10_000);
    expect(ipam.ready).toBe(true);
    expect(sim.node('n1').ipam!.status().ring!.claimants).toEqual(['n1', 'n2']);
    // The third joins the existing ring instead of claiming one.
    await sim.start('n3');
    await sim.clock.advance(10_000);
    expect(sim.node('n3').ipam!.status().ring!.id).toBe(ipam.status().ring!.id);
    expect(size(sim.owned('n3'))).toBe(0);
    await alloc(sim, 'n3', 'c3');
    expect(size(sim.owned('n3'))).toBeGreaterThan(0);
    expectDisjointOwnership(sim);
  });

  it('consensus: a partition at launch lets only the majority side claim', async () => {
    const sim = net(5, () => ({ kind: 'consensus', n: 5 }));
    sim.partition([['n1', 'n2'], ['n3', 'n4', 'n5']]);
    await startAll(sim);
    await sim.clock.advance(20_000);
    expect(sim.node('n1').ipam!.ready).toBe(false);
    expect(sim.node('n3').ipam!.ready).toBe(true);
    expect(sim.node('n3').ipam!.status().ring!.claimants).toEqual(['n3', 'n4', 'n5']);
    sim.heal();
    await sim.clock.advance(10_000);
    expect(sim.node('n1').ipam!.ready).toBe(true);
    expect(sim.node('n1').ipam!.status().ring!.id).toBe(sim.node('n3').ipam!.status().ring!.id);
    expectDisjointOwnership(sim);
    expect(sim.rejections).toEqual([]);
  });

  it('seed: peers named by name or nickname split the ring at once; others borrow', async () => {
    const sim = net(3, () => ({ kind: 'seed', peers: ['h1', 'n2'] }));
    await startAll(sim);
    await sim.clock.advance(1_000);
    for (const n of ['n1', 'n2', 'n3']) expect(sim.node(n).ipam!.ready).toBe(true);
    expect(size(sim.owned('n1'))).toBe(128);
    expect(size(sim.owned('n2'))).toBe(128);
    expect(size(sim.owned('n3'))).toBe(0);
    await alloc(sim, 'n3', 'c3');
    expect(size(sim.owned('n3'))).toBeGreaterThan(0);
    expectDisjointOwnership(sim);
  });

  it('seed: an unresolved nickname is reported, not guessed', async () => {
    const sim = net(2, () => ({ kind: 'seed', peers: ['h1', 'nosuchhost'] }));
    await startAll(sim);
    await sim.clock.advance(1_000);
    expect(sim.node('n1').ipam!.ready).toBe(false);
    expect(sim.node('n1').ipam!.status().status).toBe('awaiting seed peers: resolving nickname(s) nosuchhost');
  });

  it('observer: never claims, allocates with donated space', async () => {
    const sim = net(3, (n) => (n === 'n3' ? { kind: 'observer' } : { kind: 'consensus', n: 2 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    expect(sim.node('n3').ipam!.status().ring!.claimants).toEqual(['n1', 'n2']);
    expect(size(sim.owned('n3'))).toBe(0);
    const a = await alloc(sim, 'n3', 'obs1');
    expect(a.prefixLength).toBe(24);
    expectDisjointOwnership(sim);
  });

  it('observer alone says what it waits for', async () => {
    const sim = net(1, () => ({ kind: 'observer' }));
    await startAll(sim);
    await sim.clock.advance(2_000);
    expect(sim.node('n1').ipam!.status().status).toBe('observer: waiting for a ring from another peer');
  });
});

describe('ipam cluster: donation', () => {
  it('a peer out of space borrows from the peer with the most free space, until the range is full', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }), '10.32.0.0/28');
    await startAll(sim);
    await sim.clock.advance(10_000);
    // 16 addresses, 14 allocatable (network and broadcast excluded).
    const got = new Set<string>();
    for (let i = 0; i < 14; i++) got.add((await alloc(sim, 'n1', `c${i}`)).address);
    expect(got.size).toBe(14);
    expect(got.has('10.32.0.0')).toBe(false);
    expect(got.has('10.32.0.15')).toBe(false);
    const r = await sim.run(sim.node('n1').ipam!.allocate('c-too-many', 'eth0'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect((r.error as IpamError).code).toBe('no-space');
      expect(r.error.message).toMatch(/no free address in 10\.32\.0\.0\/28/);
    }
    expectDisjointOwnership(sim);
    expectDistinctAllocations(sim);
    expectAllocationsOwned(sim);
  });

  it('donation skips unreachable peers and reports clearly when nobody can give', async () => {
    const sim = net(2, () => ({ kind: 'seed', peers: ['n1', 'n2'] }), '10.32.0.0/28', 1, { timeouts: { allocateMs: 5_000 } });
    await startAll(sim);
    await sim.clock.advance(1_000);
    for (let i = 0; i < 7; i++) await alloc(sim, 'n1', `c${i}`); // n1 owns 8 addresses, one is the network address
    sim.partition([['n1'], ['n2']]);
    const r = await sim.run(sim.node('n1').ipam!.allocate('cx', 'eth0'));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/no other reachable peer has free space/);
    sim.heal();
    await sim.clock.advance(3_000);
    await alloc(sim, 'n1', 'cx');
    expectDisjointOwnership(sim);
  });

  it('allocation is idempotent per container and interface, release is idempotent', async () => {
    const sim = net(1, () => ({ kind: 'consensus', n: 1 }));
    await startAll(sim);
    await sim.clock.advance(1_000);
    const ipam = sim.node('n1').ipam!;
    const a = await alloc(sim, 'n1', 'c1');
    const b = await alloc(sim, 'n1', 'c1');
    expect(b).toEqual(a);
    const eth1 = await sim.run(ipam.allocate('c1', 'eth1'));
    expect(eth1.ok && eth1.value.address).not.toBe(a.address);
    expect(ipam.lookup('c1').length).toBe(2);
    const rel = await sim.run(ipam.release('c1'));
    expect(rel.ok && rel.value.released.length).toBe(2);
    const again = await sim.run(ipam.release('c1'));
    expect(again.ok && again.value.released).toEqual([]);
    const unknown = await sim.run(ipam.release('never-seen'));
    expect(unknown.ok).toBe(true);
  });
});

describe('ipam cluster: restarts and persistence', () => {
  it('a crashed peer restarts with its ranges and allocations', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    const a = await alloc(sim, 'n2', 'keep-me');
    const before = sim.owned('n2');
    sim.crash('n2');
    await sim.clock.advance(5_000);
    await sim.start('n2');
    await sim.clock.advance(5_000);
    expect(sim.node('n2').ipam!.lookup('keep-me')[0]!.address).toBe(a.address);
    expect(sim.owned('n2')).toEqual(before);
    // Idempotent after restart too.
    expect((await alloc(sim, 'n2', 'keep-me')).address).toBe(a.address);
    expectDisjointOwnership(sim);
    expect(sim.rejections).toEqual([]);
  });

  it('a peer whose state file was lost recovers its space and in-use addresses from the mesh', async () => {
    const sim = net(2, () => ({ kind: 'consensus', n: 2 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    const a = await alloc(sim, 'n1', 'pod-a');
    await sim.clock.advance(5_000);
    sim.crash('n1');
    sim.node('n1').store.data = undefined; // the state dir was wiped
    await sim.start('n1');
    await sim.clock.advance(5_000);
    const ipam = sim.node('n1').ipam!;
    expect(size(sim.owned('n1'))).toBe(128);
    expect(ipam.status().conflicts.map((c) => c.kind)).toContain('lost-state');
    // The address is not handed out again; the pod can re-register it.
    for (let i = 0; i < 5; i++) expect((await alloc(sim, 'n1', `new${i}`)).address).not.toBe(a.address);
    const c = await sim.run(ipam.claim('pod-a', 'eth0', a.address));
    expect(c.ok).toBe(true);
    expectDisjointOwnership(sim);
  });
});

describe('ipam cluster: rmpeer and reset', () => {
  it('rmpeer gives a dead peer\'s space to live peers', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    sim.kill('n3');
    await sim.clock.advance(2_000);
    const r = await sim.run(sim.node('n1').ipam!.rmpeer('h3'));
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.value.removed[0]!.addresses).toBeGreaterThan(80);
    await sim.clock.advance(5_000);
    expect(totalOwned(sim)).toBe(256);
    expectDisjointOwnership(sim);
    const again = await sim.run(sim.node('n2').ipam!.rmpeer('n3'));
    expect(again.ok && again.value.alreadyRemoved).toEqual(['n3']);
  });

  it('rmpeer run on two peers at once never makes two owners', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const sim = net(4, () => ({ kind: 'consensus', n: 4 }), '10.32.0.0/24', seed);
      await startAll(sim);
      await sim.clock.advance(10_000);
      sim.kill('n4');
      await sim.clock.advance(2_000);
      const p1 = sim.node('n1').ipam!.rmpeer('n4');
      const p2 = sim.node('n2').ipam!.rmpeer('n4');
      const [r1, r2] = await Promise.all([sim.run(p1), sim.run(p2)]);
      expect(r1.ok || r2.ok, `seed ${seed}: ${!r1.ok && r1.error.message} / ${!r2.ok && r2.error.message}`).toBe(true);
      await sim.clock.advance(10_000);
      expectDisjointOwnership(sim);
      expect(totalOwned(sim)).toBe(256);
      expect(sim.node('n3').ipam!.status().conflicts).toEqual([]);
    }
  });

  it('a removal agreed but never published (its proposer crashed) is finished by the peers', async () => {
    const sim = net(4, () => ({ kind: 'consensus', n: 4 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    sim.kill('n4');
    const before = sim.node('n1').store.data;
    const r = await sim.run(sim.node('n1').ipam!.rmpeer('n4'));
    expect(r.ok).toBe(true);
    // n1 crashes before its gossip of the removal leaves, and its last
    // writes are lost too: only the other acceptors know the agreed value.
    sim.crash('n1');
    sim.node('n1').store.data = before;
    await sim.clock.advance(5_000);
    expect(sim.node('n2').ipam!.status().ranges.some((x) => x.owner === 'n4')).toBe(true);
    await sim.start('n1');
    await sim.clock.advance(60_000);
    expect(sim.node('n2').ipam!.status().ranges.some((x) => x.owner === 'n4')).toBe(false);
    expect(totalOwned(sim)).toBe(256);
    expectDisjointOwnership(sim);
  });

  it('rmpeer on both sides of a partition is refused on both', async () => {
    const sim = net(5, () => ({ kind: 'consensus', n: 5 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    sim.kill('n5');
    sim.partition([['n1', 'n2'], ['n3', 'n4']]);
    const r1 = await sim.run(sim.node('n1').ipam!.rmpeer('n5'));
    const r3 = await sim.run(sim.node('n3').ipam!.rmpeer('n5'));
    expect(r1.ok).toBe(false);
    expect(r3.ok).toBe(false);
    if (!r1.ok) expect(r1.error.message).toMatch(/every other ring peer must agree, and n3 \(h3\), n4 \(h4\) are unreachable/);
    sim.heal();
    await sim.clock.advance(5_000);
    const r = await sim.run(sim.node('n3').ipam!.rmpeer('n5'));
    expect(r.ok).toBe(true);
    await sim.clock.advance(5_000);
    expectDisjointOwnership(sim);
    expect(totalOwned(sim)).toBe(256);
  });

  it('rmpeer refuses a reachable peer and itself', async () => {
    const sim = net(2, () => ({ kind: 'consensus', n: 2 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    const r = await sim.run(sim.node('n1').ipam!.rmpeer('n2'));
    expect(!r.ok && r.error.message).toMatch(/n2 \(h2\) is reachable: rmpeer is only for dead peers/);
    const s = await sim.run(sim.node('n1').ipam!.rmpeer('n1'));
    expect(!s.ok && s.error.message).toMatch(/cannot remove itself/);
    const u = await sim.run(sim.node('n1').ipam!.rmpeer('who'));
    expect(!u.ok && u.error.message).toMatch(/unknown peer "who"/);
  });

  it('two dead peers are removed together', async () => {
    const sim = net(4, () => ({ kind: 'consensus', n: 4 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    sim.kill('n3');
    sim.kill('n4');
    const one = await sim.run(sim.node('n1').ipam!.rmpeer('n3'));
    expect(!one.ok && one.error.message).toMatch(/n4 \(h4\) is unreachable/);
    const both = await sim.run(sim.node('n1').ipam!.rmpeer(['n3', 'n4']));
    expect(both.ok).toBe(true);
    await sim.clock.advance(5_000);
    expect(totalOwned(sim)).toBe(256);
    expectDisjointOwnership(sim);
  });

  it('reset hands all space to a live peer and reports the acknowledgement', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    await alloc(sim, 'n2', 'x');
    const h = await sim.run(sim.node('n2').ipam!.handover());
    expect(h.ok && h.value.acknowledged).toBe(true);
    await sim.stop('n2');
    sim.kill('n2');
    await sim.clock.advance(5_000);
    expect(totalOwned(sim)).toBe(256);
    expectDisjointOwnership(sim);
    // Nothing stranded: the rest can still rmpeer (n2 retired, not needed).
    expect(sim.node('n1').ipam!.status().conflicts).toEqual([]);
  });

  it('space handed over to a peer that dies before adopting it is recovered by rmpeer', async () => {
    const sim = net(3, () => ({ kind: 'consensus', n: 3 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    sim.partition([['n1', 'n2', 'n3']]);
    const handover = sim.node('n2').ipam!.handover();
    // The heir (the peer with the most free space, n1 or n3) dies before the hand-over reaches it.
    await new Promise((r) => setImmediate(r));
    const heirName = ['n1', 'n3'].find((n) => sim.node('n2').ipam!.status().ranges.some((r) => r.owner === n && r.pending))!;
    sim.kill(heirName);
    const h = await sim.run(handover);
    expect(h.ok && h.value.acknowledged).toBe(false);
    await sim.stop('n2');
    sim.kill('n2');
    const other = heirName === 'n1' ? 'n3' : 'n1';
    const r = await sim.run(sim.node(other).ipam!.rmpeer([heirName]));
    expect(r.ok, !r.ok ? r.error.message : '').toBe(true);
    await sim.clock.advance(5_000);
    expect(totalOwned(sim)).toBe(256);
    // Removing the retired peer later gives nothing twice.
    const again = await sim.run(sim.node(other).ipam!.rmpeer(['n2']));
    expect(again.ok).toBe(true);
    await sim.clock.advance(5_000);
    expect(totalOwned(sim)).toBe(256);
  });

  it('reset with nobody reachable says the space is stranded and how to reclaim it', async () => {
    const sim = net(2, () => ({ kind: 'consensus', n: 2 }));
    await startAll(sim);
    await sim.clock.advance(10_000);
    sim.partition([['n1'], ['n2']]);
    const h = await sim.run(sim.node('n2').ipam!.handover());
    expect(h.ok && h.value.acknowledged).toBe(false);
    expect(h.ok && h.value.message).toMatch(/run 'meshnet rmpeer n2' on another peer/);
  });
});

describe('ipam cluster: split brain and range mismatch', () => {
  it('two separately claimed rings meet: no overlapping ownership, all allocations kept', async () => {
    const sim = net(4, () => ({ kind: 'consensus', n: 2 }));
    sim.partition([['n1', 'n2'], ['n3', 'n4']]);
    await sim.start('n1');
    await sim.start('n2');
    await sim.clock.advance(10_000); // ring A is older
    await sim.start('n3');
    await sim.start('n4');
    await sim.clock.advance(10_000);
    const ringA = sim.node('n1').ipam!.status().ring!.id;
    const ringB = sim.node('n3').ipam!.status().ring!.id;
    expect(ringA).not.toBe(ringB);
    const kept = new Map<string, string>();
    for (const n of ['n1', 'n2', 'n3', 'n4']) {
      for (let i = 0; i < 3; i++) kept.set(`${n}-c${i}`, (await alloc(sim, n, `${n}-c${i}`)).address);
    }
    sim.heal();
    await sim.clock.advance(1_000);
    const st = sim.node('n1').ipam!.status();
    expect(st.conflicts.map((c) => c.kind)).toContain('split-brain');
    await sim.clock.advance(20_000);
    for (const n of ['n1', 'n2', 'n3', 'n4']) {
      expect(sim.node(n).ipam!.status().ring!.id).toBe(ringA);
      for (let i = 0; i < 3; i++) expect(sim.node(n).ipam!.lookup(`${n}-c${i}`)[0]!.address).toBe(kept.get(`${n}-c${i}`));
    }
    expectDisjointOwnership(sim);
    // Both consensus rings split the range the same way (n1|n2 and n3|n4), so
    // n1's and n3's first addresses coincide: a real duplicate, reported.
    const dup = sim.node('n2').ipam!.status().conflicts.find((c) => c.kind === 'duplicate');
    expect(dup?.message).toMatch(/in use on two peers/);
    const res = await sim.run(sim.node('n1').ipam!.resolve(ringA));
    expect(res.ok).toBe(true);
    await sim.clock.advance(10_000);
    expectDistinctAllocations(sim);
    expectDisjointOwnership(sim);
    expect(sim.node('n4').ipam!.status().conflicts).toEqual([]);
    expectAllocationsOwned(sim);
    // The loser's new allocations work.
    await alloc(sim, 'n3', 'after');
    expectDistinctAllocations(sim);
    expectAllocationsOwned(sim);
  });

  it('a dead peer of the losing ring is reported until rmpeer releases its addresses', async () => {
    const sim = net(4, () => ({ kind: 'consensus', n: 2 }));
    sim.partition([['n1', 'n2'], ['n3', 'n4']]);
    await sim.start('n1');
    await sim.start('n2');
    await sim.clock.advance(10_000);
    await sim.start('n3');
    await sim.start('n4');
    await sim.clock.advance(10_000);
    await alloc(sim, 'n4', 'on-dead-host');
    await sim.clock.advance(3_000);
    sim.kill('n4');
    sim.heal();
    await sim.clock.advance(20_000);
    const st = sim.node('n1').ipam!.status();
    expect(st.conflicts.find((c) => c.kind === 'split-brain')?.message).toMatch(/\(n4\)/);
    const r = await sim.run(sim.node('n1').ipam!.rmpeer('n4'));
    expect(r.ok, !r.ok ? r.error.message : '').toBe(true);
    await sim.clock.advance(5_000);
    expect(sim.node('n1').ipam!.status().conflicts).toEqual([]);
    expect(totalOwned(sim)).toBe(256);
    expectDisjointOwnership(sim);
  });

  it('a peer with a different range is refused with a clear message and the connection survives', async () => {
    const sim = net(2, () => ({ kind: 'consensus', n: 1 }), '10.32.0.0/24', 1, { rangeFor: (n: string) => (n === 'n2' ? '10.40.0.0/16' : undefined) });
    await startAll(sim);
    await sim.clock.advance(5_000);
    expect(sim.rejections.some((r) => /range mismatch: peer n2 uses 10\.40\.0\.0\/16 but this peer uses 10\.32\.0\.0\/24/.test(r))).toBe(true);
    const st = sim.node('n1').ipam!.status();
    expect(st.conflict?.kind).toBe('range-mismatch');
    expect(st.conflict?.message).toMatch(/every|same range/);
    // Both keep working on their own.
    await alloc(sim, 'n1', 'a');
    await alloc(sim, 'n2', 'b');
    expect(sim.errors).toEqual([]);
  });
});
