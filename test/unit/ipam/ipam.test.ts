// The Ipam class on small simulated clusters: bad input gets a clear error
// or a defined no-op, hooks only ever throw GossipRejected, a forged update
// is refused while the channel keeps working, and the status model.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GossipRejected } from '../../../mesh/types.js';
import { SimNet } from './sim.js';
import { encodeMessage } from '../../../router/ipam/codec.js';
import { parseCidr } from '../../../router/ipam/addr.js';
import { IpamError } from '../../../router/ipam/errors.js';
import { renderIpamStatus } from '../../../router/ipam/status.js';
import type { AllocationChange } from '../../../router/ipam/ipam.js';

async function pair() {
  const sim = new SimNet({ seed: 7, range: '10.32.0.0/24', nodes: 2, init: () => ({ kind: 'seed', peers: ['n1', 'n2'] }) });
  await sim.start('n1');
  await sim.start('n2');
  await sim.clock.advance(2_000);
  return { sim, n1: sim.node('n1').ipam!, n2: sim.node('n2').ipam! };
}

async function expectIpamError(p: Promise<unknown>, code: string, message: RegExp) {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(IpamError);
  expect((e as IpamError).code).toBe(code);
  expect((e as Error).message).toMatch(message);
}

describe('ipam bad input', () => {
  it('refuses malformed container IDs and interface names', async () => {
    const { n1 } = await pair();
    await expectIpamError(n1.allocate('', 'eth0'), 'invalid', /container ID is empty/);
    await expectIpamError(n1.allocate('-bad', 'eth0'), 'invalid', /container ID "-bad" must start with a letter or digit/);
    await expectIpamError(n1.allocate('ok', 'eth 0'), 'invalid', /interface name "eth 0" contains/);
    await expectIpamError(n1.release('a/b'), 'invalid', /container ID "a\/b"/);
  });

  it('refuses addresses and subnets outside the range', async () => {
    const { n1 } = await pair();
    await expectIpamError(n1.allocate('c1', 'eth0', { subnet: '10.40.0.0/24' }), 'invalid', /subnet 10\.40\.0\.0\/24 is outside the allocation range 10\.32\.0\.0\/24/);
    await expectIpamError(n1.allocate('c1', 'eth0', { subnet: '10.32.0.0/33' }), 'invalid', /prefix length "33"/);
    await expectIpamError(n1.claim('c1', 'eth0', '10.33.0.1'), 'invalid', /address 10\.33\.0\.1 is outside the allocation range 10\.32\.0\.0\/24/);
    await expectIpamError(n1.claim('c1', 'eth0', 'not-an-ip'), 'invalid', /invalid claimed address "not-an-ip"/);
  });

  it('releasing an unknown ID is a successful no-op', async () => {
    const { n1 } = await pair();
    expect(await n1.release('never-allocated')).toEqual({ released: [] });
  });

  it('allocates inside a requested subnet with its prefix length', async () => {
    const { sim, n1 } = await pair();
    const r = await sim.run(n1.allocate('c1', 'eth0', { subnet: '10.32.0.64/26' }));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.value.prefixLength).toBe(26);
      expect(r.value.subnet).toBe('10.32.0.64/26');
      expect(r.value.address).toBe('10.32.0.65');
      expect(r.value.cidr).toBe('10.32.0.65/26');
    }
    // The same ID asked for elsewhere is a conflict, not a second address.
    await expectIpamError(n1.allocate('c1', 'eth0', { subnet: '10.32.0.0/26' }), 'conflict', /already has 10\.32\.0\.65, outside the requested subnet/);
  });

  it('claim refuses an address another container holds', async () => {
    const { sim, n1 } = await pair();
    const a = await sim.run(n1.allocate('c1', 'eth0'));
    if (!a.ok) throw a.error;
    await expectIpamError(n1.claim('c2', 'eth0', a.value.address), 'conflict', /already allocated to container c1/);
    const same = await sim.run(n1.claim('c1', 'eth0', a.value.address));
    expect(same.ok && same.value.address).toBe(a.value.address);
  });

  it('claim asks the owner for an address in its space', async () => {
    const { sim, n1, n2 } = await pair();
    const r = await sim.run(n1.claim('moved', 'eth0', '10.32.0.200'));
    expect(r.ok).toBe(true);
    expect(n2.ownedRanges().some((x) => x.start <= parseCidr('10.32.0.200/32').start && x.end > parseCidr('10.32.0.200/32').start)).toBe(false);
    const used = await sim.run(n2.allocate('x', 'eth0'));
    expect(used.ok && used.value.address).not.toBe('10.32.0.200');
  });

  it('gc keeps listed containers and releases the rest', async () => {
    const { sim, n1 } = await pair();
    for (const id of ['a', 'b', 'c']) await sim.run(n1.allocate(id, 'eth0'));
    const r = await sim.run(n1.gc(['b']));
    expect(r.ok && r.value.released.map((x) => x.containerId).sort()).toEqual(['a', 'c']);
    expect(n1.allocations().map((a) => a.containerId)).toEqual(['b']);
  });
});

describe('ipam gossip hooks', () => {
  it('refuses an update claiming space this peer owns, counts it, and keeps the channel working', async () => {
    const { sim, n1, n2 } = await pair();
    const mine = n1.ownedRanges();
    const forged = {
      peer: 'n2',
      nickname: 'h2',
      version: 999,
      ring: n1.status().ring!.id,
      mode: 'seed' as const,
      quorum: 0,
      ranges: mine,
      inUse: [],
      free: 0,
      transferSeq: 0,
      outgoing: [],
      adopted: new Map(),
      retired: false,
      rehomedFrom: null,
    };
    const bytes = encodeMessage({ type: 'state', range: parseCidr('10.32.0.0/24'), records: [forged], geneses: [], removals: [], resolutions: [] });
    expect(() => n1.onGossip('n2', bytes)).toThrow(GossipRejected);
    expect(() => n1.onGossip('n2', bytes)).toThrow(/peer n2 \(h2\) claims 10\.32\.0\.0-10\.32\.0\.127, which this peer owns/);
    const st = n1.status();
    expect(st.counters.rejectedUpdates).toBe(2);
    expect(st.lastRejection).toMatch(/which this peer owns/);
    expect(n1.ownedRanges()).toEqual(mine);
    // Later legitimate updates from the same peer still merge.
    const r = await sim.run(n2.allocate('after', 'eth0'));
    expect(r.ok).toBe(true);
    await sim.clock.advance(3_000);
    expect(n1.status().peers.find((p) => p.name === 'n2')!.allocated).toBe(1);
  });

  it('hooks turn any input into a merge or a GossipRejected, counted as malformed', async () => {
    const { n1 } = await pair();
    let rejected = 0;
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.constantFrom('gossip', 'broadcast', 'unicast'), (bytes, hook) => {
        try {
          if (hook === 'gossip') n1.onGossip('n2', bytes);
          else if (hook === 'broadcast') n1.onBroadcast('n2', bytes);
          else n1.onUnicast('n2', bytes);
        } catch (e) {
          if (!(e instanceof GossipRejected)) return false;
          rejected++;
        }
        return true;
      }),
      { numRuns: 500 },
    );
    expect(rejected).toBeGreaterThan(400);
    expect(n1.status().counters.malformedMessages).toBe(rejected);
  });

  it('never hands out an address another peer reports in use, even from another ring', async () => {
    const { sim, n1 } = await pair();
    const range = parseCidr('10.32.0.0/24');
    const foreign = {
      peer: 'zz',
      nickname: 'elsewhere',
      version: 1,
      ring: 'some-other-ring',
      mode: 'consensus' as const,
      quorum: 0,
      ranges: [],
      inUse: [{ start: range.start + 1, end: range.start + 3 }],
      free: 0,
      transferSeq: 0,
      outgoing: [],
      adopted: new Map(),
      retired: false,
      rehomedFrom: null,
    };
    n1.onGossip('n2', encodeMessage({ type: 'state', range, records: [foreign], geneses: [], removals: [], resolutions: [] }));
    const r = await sim.run(n1.allocate('c1', 'eth0'));
    expect(r.ok && r.value.address).toBe('10.32.0.3');
  });

  it('a unicast-only message arriving as gossip is refused', async () => {
    const { n1 } = await pair();
    const req = encodeMessage({ type: 'space-request', ring: 'r', reqId: 1, subnet: { start: parseCidr('10.32.0.0/24').start, end: parseCidr('10.32.0.0/24').end } });
    expect(() => n1.onGossip('n2', req)).toThrow(/space-request message from n2 arrived as gossip/);
  });
});

describe('ipam persistence failures', () => {
  it('an allocation that cannot be saved is not acknowledged; status says why; saving resumes', async () => {
    const sim = new SimNet({ seed: 5, range: '10.32.0.0/24', nodes: 1, init: () => ({ kind: 'consensus', n: 1 }), timeouts: { allocateMs: 3_000 } });
    await sim.start('n1');
    await sim.clock.advance(1_000);
    const ipam = sim.node('n1').ipam!;
    sim.node('n1').store.dead = true; // disk full, read-only...
    const r = await sim.run(ipam.allocate('c1', 'eth0'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect((r.error as IpamError).code).toBe('store');
      expect(r.error.message).toMatch(/state not saved in time: process is dead/);
    }
    expect(ipam.status().conflict?.kind).toBe('store');
    sim.node('n1').store.dead = false;
    await sim.clock.advance(3_000);
    expect(ipam.status().conflict).toBeNull();
    // The retry gets the same address, now durable.
    const again = await sim.run(ipam.allocate('c1', 'eth0'));
    expect(again.ok).toBe(true);
    expect(sim.node('n1').store.peek()!.allocations.map((a) => a.containerId)).toEqual(['c1']);
  });
});

describe('ipam status and events', () => {
  it('reports the DESIGN §3 fields and more, and renders a table', async () => {
    const { sim, n1 } = await pair();
    await sim.run(n1.allocate('c1', 'eth0'));
    const s = n1.status();
    expect(s).toMatchObject({ range: '10.32.0.0/24', ready: true, owned: 128, allocated: 1, free: 126, conflict: null });
    expect(s.ranges).toEqual([
      { start: '10.32.0.0', size: 128, owner: 'n1', nickname: 'h1' },
      { start: '10.32.0.128', size: 128, owner: 'n2', nickname: 'h2' },
    ]);
    expect(s.peers.map((p) => [p.name, p.share, p.reachable])).toEqual([
      ['n1', 0.5, true],
      ['n2', 0.5, true],
    ]);
    expect(s.status).toBe('ready');
    const text = renderIpamStatus(s);
    expect(text).toContain('PEER');
    expect(text).toMatch(/n1 \(self\)\s+h1\s+128\s+50\.0%\s+126\s+1\s+yes/);
    expect(text).toMatch(/10\.32\.0\.128\s+128\s+n2 \(h2\)/);
    sim.partition([['n1'], ['n2']]);
    expect(renderIpamStatus(n1.status())).toMatch(/n2\s+h2\s+128\s+50\.0%\s+\d+\s+0\s+NO/);
  });

  it('emits ready and allocations-changed', async () => {
    const sim = new SimNet({ seed: 3, range: '10.32.0.0/24', nodes: 1, init: () => ({ kind: 'consensus', n: 1 }) });
    const changes: AllocationChange[] = [];
    let ready = 0;
    const started = sim.start('n1');
    const ipam = sim.node('n1').ipam!;
    ipam.on('ready', () => ready++);
    ipam.on('allocations-changed', (c) => changes.push(c));
    await started;
    await sim.clock.advance(1_000);
    expect(ready).toBe(1);
    await sim.run(ipam.allocate('c1', 'eth0'));
    await sim.run(ipam.release('c1'));
    expect(changes.map((c) => [c.added.length, c.removed.length])).toEqual([
      [1, 0],
      [0, 1],
    ]);
  });
});

describe('ipam state fingerprint (anti-entropy)', () => {
  it('is equal on converged peers, changes with an allocation, and is equal again once it spread', async () => {
    const { sim, n1, n2 } = await pair();
    await n1.allocate('c0');
    await sim.clock.advance(2_000);
    expect(n1.stateHash()).toBe(n2.stateHash());
    const before = n1.stateHash();
    await n1.allocate('c1');
    await n2.allocate('c2');
    expect(n1.stateHash()).not.toBe(before);
    await sim.clock.advance(2_000);
    expect(n1.stateHash()).toBe(n2.stateHash());
    expect(n1.stateHash()).not.toBe(before);
  });
});
