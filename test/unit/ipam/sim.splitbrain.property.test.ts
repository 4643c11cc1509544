// Property test for split brains: two groups claim rings separately (the
// kubeadm pattern: each launched with a quorum it can reach alone, or with
// its own seed list), allocate, and are then connected. After EVERY step
// once connected:
//   - peers in the same ring never own the same address;
//   - no acknowledged allocation is lost;
//   - no new duplicate: an address in use on two peers was already in use on
//     both sides when the meshes met;
//   - allocations made after the meeting lie in space their peer owns.
// Finally, healed and settled: one ring, converged state, and every address
// that was not a duplicate is owned by the peer using it.
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { SimNet } from './sim.js';
import { formatAddress } from '../../../router/ipam/addr.js';
import { contains, intersect } from '../../../router/ipam/ranges.js';
import type { InitMode } from '../../../router/ipam/types.js';

interface World {
  sim: SimNet;
  groups: string[][];
  expected: Map<string, Map<string, number>>;
  connected: boolean;
  /** Addresses in use on both sides when the groups met. */
  dupAtMeeting: Set<number>;
  /** Container IDs allocated before the meeting. */
  before: Set<string>;
  counter: number;
}

abstract class Op {
  abstract run(w: World): Promise<void>;
  abstract toString(): string;
}

class Alloc extends Op {
  constructor(readonly node: number) {
    super();
  }
  async run(w: World) {
    const name = pick(w, this.node);
    const n = w.sim.node(name);
    if (n.state !== 'up') return;
    const id = `c${++w.counter}`;
    const r = await w.sim.run(n.ipam!.allocate(id, 'eth0'));
    if (r.ok) {
      w.expected.get(name)!.set(id, addr(r.value.address));
      if (!w.connected) w.before.add(id);
    }
  }
  toString() {
    return `alloc(#${this.node})`;
  }
}

class Release extends Op {
  constructor(
    readonly node: number,
    readonly which: number,
  ) {
    super();
  }
  async run(w: World) {
    const name = pick(w, this.node);
    const n = w.sim.node(name);
    const mine = [...w.expected.get(name)!.keys()];
    if (n.state !== 'up' || mine.length === 0) return;
    const id = mine[this.which % mine.length]!;
    const r = await w.sim.run(n.ipam!.release(id));
    if (!r.ok) throw r.error;
    w.expected.get(name)!.delete(id);
  }
  toString() {
    return `release(#${this.node},${this.which})`;
  }
}

class Bounce extends Op {
  constructor(readonly node: number) {
    super();
  }
  async run(w: World) {
    const name = pick(w, this.node);
    if (w.sim.node(name).state !== 'up') return;
    w.sim.crash(name);
    await w.sim.clock.advance(1_000);
    await w.sim.start(name);
  }
  toString() {
    return `crashAndRestart(#${this.node})`;
  }
}

class Wait extends Op {
  constructor(readonly ms: number) {
    super();
  }
  async run(w: World) {
    await w.sim.clock.advance(this.ms);
  }
  toString() {
    return `wait(${this.ms})`;
  }
}

class Cut extends Op {
  constructor(readonly mask: number) {
    super();
  }
  async run(w: World) {
    if (!w.connected) return;
    const names = [...w.sim.nodes.keys()];
    w.sim.partition([names.filter((_, i) => this.mask & (1 << i)), names.filter((_, i) => !(this.mask & (1 << i)))]);
    await w.sim.clock.advance(300);
  }
  toString() {
    return `partition(${this.mask})`;
  }
}

class Heal extends Op {
  async run(w: World) {
    if (!w.connected) return;
    w.sim.heal();
    await w.sim.clock.advance(300);
  }
  toString() {
    return 'heal';
  }
}

function pick(w: World, i: number): string {
  const names = [...w.sim.nodes.keys()];
  return names[i % names.length]!;
}

function addr(s: string): number {
  return s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

function ringOf(w: World, name: string): string | null {
  const n = w.sim.node(name);
  if (n.ipam) return n.ipam.status().ring?.id ?? null;
  return n.store.peek()?.state.records.get(name)?.ring ?? null;
}

function check(w: World, label: string): void {
  const sim = w.sim;
  const fail = (msg: string) => {
    throw new Error(`after ${label}: ${msg}\n--- ownership ---\n${sim.describeOwnership()}\n--- recent log ---\n${sim.logs.slice(-25).join('\n')}`);
  };
  if (sim.errors.length) fail(`unexpected exception: ${sim.errors[0]}`);
  const names = [...sim.nodes.keys()];
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const [a, b] = [names[i]!, names[j]!];
      if (ringOf(w, a) === null || ringOf(w, a) !== ringOf(w, b)) continue;
      const both = intersect(sim.owned(a), sim.owned(b));
      if (both.length) fail(`${a} and ${b} (same ring) both own ${formatAddress(both[0]!.start)}`);
    }
  }
  const holders = new Map<number, string[]>();
  for (const name of names) {
    const allocs = sim.allocations(name);
    const byId = new Map(allocs.map((a) => [a.containerId, a.address]));
    for (const [id, address] of w.expected.get(name)!) {
      if (byId.get(id) !== address) fail(`acknowledged allocation ${id}=${formatAddress(address)} on ${name} is lost`);
    }
    const owned = sim.owned(name);
    for (const a of allocs) {
      holders.set(a.address, [...(holders.get(a.address) ?? []), `${name}/${a.containerId}`]);
      if (w.connected && !w.before.has(a.containerId) && !contains(owned, a.address)) {
        fail(`${name} allocated ${a.containerId}=${formatAddress(a.address)} after the meeting outside its own space`);
      }
    }
  }
  for (const [address, who] of holders) {
    if (who.length < 2) continue;
    if (!w.connected) {
      // Before the meeting the two groups are separate networks: a duplicate
      // is only wrong inside one group.
      const groupsOf = new Set(who.map((h) => w.groups.findIndex((g) => g.includes(h.split('/')[0]!))));
      if (groupsOf.size === who.length) continue;
    } else if (w.dupAtMeeting.has(address)) continue;
    fail(`${formatAddress(address)} allocated to ${who.join(' and ')}`);
  }
}

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.nat(20).map((n) => new Alloc(n)) },
  { weight: 2, arbitrary: fc.tuple(fc.nat(20), fc.nat(20)).map(([n, k]) => new Release(n, k)) },
  { weight: 1, arbitrary: fc.nat(20).map((n) => new Bounce(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 100, max: 10_000 }).map((ms) => new Wait(ms)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 62 }).map((m) => new Cut(m)) },
  { weight: 1, arbitrary: fc.constant(new Heal()) },
);

const scenario = fc.record({
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  a: fc.integer({ min: 1, max: 3 }),
  b: fc.integer({ min: 1, max: 3 }),
  mode: fc.constantFrom('consensus', 'seed'),
  laterB: fc.integer({ min: 0, max: 5_000 }),
  before: fc.array(op, { maxLength: 15 }),
  after: fc.array(op, { maxLength: 25 }),
});

describe('ipam split brain (property)', () => {
  it('never merges two rings into overlapping ownership and loses no allocation', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const count = s.a + s.b;
        const names = Array.from({ length: count }, (_, i) => `n${i + 1}`);
        const groups = [names.slice(0, s.a), names.slice(s.a)];
        const init = (name: string): InitMode => {
          const g = groups[0]!.includes(name) ? groups[0]! : groups[1]!;
          return s.mode === 'seed' ? { kind: 'seed', peers: [g[0]!] } : { kind: 'consensus', n: g.length };
        };
        const sim = new SimNet({ seed: s.seed, range: '10.32.0.0/26', nodes: count, init, timeouts: { allocateMs: 6_000 } });
        sim.partition(groups);
        const w: World = { sim, groups, expected: new Map(names.map((n) => [n, new Map()])), connected: false, dupAtMeeting: new Set(), before: new Set(), counter: 0 };
        for (const n of groups[0]!) await sim.start(n);
        await sim.clock.advance(s.laterB);
        for (const n of groups[1]!) await sim.start(n);
        await sim.clock.advance(5_000);
        for (const o of s.before) {
          await o.run(w);
          check(w, o.toString());
        }
        for (const n of names) if (sim.node(n).state === 'down') await sim.start(n);
        await sim.clock.advance(3_000);
        const side = (g: string[]) => new Set(g.flatMap((n) => sim.allocations(n).map((a) => a.address)));
        const [sa, sb] = [side(groups[0]!), side(groups[1]!)];
        w.dupAtMeeting = new Set([...sa].filter((x) => sb.has(x)));
        w.connected = true;
        sim.heal();
        await sim.clock.advance(200);
        check(w, 'meeting');
        for (const o of s.after) {
          await o.run(w);
          check(w, o.toString());
        }
        sim.heal();
        for (const n of names) if (sim.node(n).state === 'down') await sim.start(n);
        await sim.clock.advance(40_000);
        check(w, 'final heal');
        const rings = new Set(names.map((n) => ringOf(w, n)));
        if (rings.size !== 1) throw new Error(`peers still in ${rings.size} rings after healing`);
        const digests = new Set(sim.up().map((n) => n.ipam!.stateDigest()));
        if (digests.size !== 1) throw new Error('peers did not converge');
        for (const n of names) {
          const owned = sim.owned(n);
          for (const a of sim.allocations(n)) {
            if (!w.dupAtMeeting.has(a.address) && !contains(owned, a.address)) {
              throw new Error(`${n} still does not own ${formatAddress(a.address)} (${a.containerId}) after settling`);
            }
          }
        }
        for (const n of sim.up()) await n.ipam!.stop();
      }),
      { numRuns: Number(process.env.IPAM_SPLIT_RUNS ?? 60) },
    );
  }, 300_000);
});
