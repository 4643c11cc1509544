// The command model for the cluster property test (sim.property.test.ts)
// and its regression cases (sim.regressions.test.ts): random allocations, releases,
// partitions, heals, crashes and restarts, kills, rmpeer and reset, with
// message delay, reordering and duplication. After EVERY command:
//   - no address is owned by two peers (up, or down and able to restart);
//   - no address is allocated to two live containers;
//   - no acknowledged allocation is lost (a restarted peer still has it);
//   - every allocation lies in space its peer owns;
//   - no hook threw anything but GossipRejected, and no update was refused.
// A failure shrinks to a short, readable command list (see toString()).
import fc from 'fast-check';
import { SimNet } from './sim.js';
import { formatAddress } from '../../../router/ipam/addr.js';
import { intersect } from '../../../router/ipam/ranges.js';
import type { InitMode } from '../../../router/ipam/types.js';

interface Model {
  state: Map<string, 'up' | 'down' | 'gone'>;
  removed: Set<string>;
}

class Real {
  readonly expected = new Map<string, Map<string, number>>();
  private counter = 0;
  constructor(readonly sim: SimNet) {
    for (const n of sim.nodes.keys()) this.expected.set(n, new Map());
  }
  nextId(): string {
    return `c${++this.counter}`;
  }

  /** The invariants, checked after every command. */
  check(label: string): void {
    const sim = this.sim;
    const fail = (msg: string) => {
      throw new Error(`after ${label}: ${msg}\n--- ownership ---\n${sim.describeOwnership()}\n--- recent log ---\n${sim.logs.slice(-30).join('\n')}`);
    };
    if (sim.errors.length) fail(`unexpected exception: ${sim.errors[0]}`);
    if (sim.rejections.length) fail(`update refused: ${sim.rejections[0]}`);
    const live = [...sim.nodes.values()].filter((n) => n.state !== 'gone');
    for (let i = 0; i < live.length; i++) {
      for (let j = i + 1; j < live.length; j++) {
        const both = intersect(sim.owned(live[i]!.name), sim.owned(live[j]!.name));
        if (both.length) fail(`${live[i]!.name} and ${live[j]!.name} both own ${formatAddress(both[0]!.start)} (+${both[0]!.end - both[0]!.start})`);
      }
    }
    const holder = new Map<number, string>();
    for (const n of live) {
      const owned = sim.owned(n.name);
      const allocs = sim.allocations(n.name);
      for (const a of allocs) {
        const other = holder.get(a.address);
        if (other) fail(`${formatAddress(a.address)} allocated to ${other} and to ${n.name}/${a.containerId}`);
        holder.set(a.address, `${n.name}/${a.containerId}`);
        if (!intersect(owned, [{ start: a.address, end: a.address + 1 }]).length) {
          fail(`${n.name} has ${a.containerId} at ${formatAddress(a.address)}, outside the space it owns`);
        }
      }
      const byId = new Map(allocs.map((a) => [a.containerId, a.address]));
      for (const [cid, addr] of this.expected.get(n.name)!) {
        if (byId.get(cid) !== addr) fail(`acknowledged allocation ${cid}=${formatAddress(addr)} on ${n.name} (${n.state}) is lost`);
      }
    }
  }
}

export type Cmd = fc.AsyncCommand<Model, Real>;
let operations = 0;

/** Commands run so far in this process (the property test counts them). */
export function operationsRun(): number {
  return operations;
}

abstract class Base implements Cmd {
  abstract check(m: Readonly<Model>): boolean;
  abstract apply(m: Model, r: Real): Promise<void>;
  abstract toString(): string;
  async run(m: Model, r: Real): Promise<void> {
    operations++;
    await this.apply(m, r);
    r.check(this.toString());
  }
}

export class Alloc extends Base {
  constructor(readonly node: string) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.node) === 'up';
  }
  async apply(_m: Model, r: Real) {
    const id = r.nextId();
    const res = await r.sim.run(r.sim.node(this.node).ipam!.allocate(id, 'eth0'));
    if (res.ok) r.expected.get(this.node)!.set(id, parseAddr(res.value.address));
  }
  toString() {
    return `alloc(${this.node})`;
  }
}

export class AllocAgain extends Base {
  constructor(
    readonly node: string,
    readonly pick: number,
  ) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.node) === 'up';
  }
  async apply(_m: Model, r: Real) {
    const mine = [...r.expected.get(this.node)!];
    if (mine.length === 0) return;
    const [id, addr] = mine[this.pick % mine.length]!;
    const res = await r.sim.run(r.sim.node(this.node).ipam!.allocate(id, 'eth0'));
    if (!res.ok) throw new Error(`idempotent allocate of ${id} on ${this.node} failed: ${res.error.message}`);
    if (parseAddr(res.value.address) !== addr) throw new Error(`allocate(${id}) again on ${this.node} gave ${res.value.address}, not ${formatAddress(addr)}`);
  }
  toString() {
    return `allocAgain(${this.node},#${this.pick})`;
  }
}

export class Release extends Base {
  constructor(
    readonly node: string,
    readonly pick: number,
  ) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.node) === 'up';
  }
  async apply(_m: Model, r: Real) {
    const mine = [...r.expected.get(this.node)!.keys()];
    const id = mine.length ? mine[this.pick % mine.length]! : 'never-allocated';
    const res = await r.sim.run(r.sim.node(this.node).ipam!.release(id));
    if (!res.ok) throw new Error(`release(${id}) on ${this.node} failed: ${res.error.message}`);
    r.expected.get(this.node)!.delete(id);
  }
  toString() {
    return `release(${this.node},#${this.pick})`;
  }
}

export class Crash extends Base {
  constructor(readonly node: string) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.node) === 'up';
  }
  async apply(m: Model, r: Real) {
    r.sim.crash(this.node);
    m.state.set(this.node, 'down');
  }
  toString() {
    return `crash(${this.node})`;
  }
}

export class Restart extends Base {
  constructor(readonly node: string) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.node) === 'down';
  }
  async apply(m: Model, r: Real) {
    await r.sim.start(this.node);
    m.state.set(this.node, 'up');
  }
  toString() {
    return `restart(${this.node})`;
  }
}

export class Kill extends Base {
  constructor(readonly node: string) {
    super();
  }
  check(m: Readonly<Model>) {
    const s = m.state.get(this.node);
    return s !== 'gone' && [...m.state.values()].filter((x) => x !== 'gone').length > 2;
  }
  async apply(m: Model, r: Real) {
    r.sim.kill(this.node);
    m.state.set(this.node, 'gone');
    r.expected.get(this.node)!.clear(); // its containers died with it
  }
  toString() {
    return `kill(${this.node})`;
  }
}

export class Reset extends Base {
  constructor(readonly node: string) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.node) === 'up' && [...m.state.values()].filter((x) => x !== 'gone').length > 2;
  }
  async apply(m: Model, r: Real) {
    const res = await r.sim.run(r.sim.node(this.node).ipam!.handover());
    if (!res.ok) throw new Error(`handover on ${this.node} threw: ${res.error.message}`);
    await r.sim.stop(this.node);
    r.sim.kill(this.node);
    m.state.set(this.node, 'gone');
    if (res.value.acknowledged) m.removed.add(this.node); // nothing left to remove
    r.expected.get(this.node)!.clear();
  }
  toString() {
    return `reset(${this.node})`;
  }
}

export class Rmpeer extends Base {
  constructor(
    readonly by: string,
    readonly target: string,
  ) {
    super();
  }
  check(m: Readonly<Model>) {
    return m.state.get(this.by) === 'up' && m.state.get(this.target) === 'gone';
  }
  async apply(m: Model, r: Real) {
    const dead = [...m.state].filter(([n, s]) => s === 'gone' && !m.removed.has(n) && n !== this.target).map(([n]) => n);
    const res = await r.sim.run(r.sim.node(this.by).ipam!.rmpeer([this.target, ...dead]));
    if (res.ok) for (const n of [this.target, ...dead]) m.removed.add(n);
  }
  toString() {
    return `rmpeer(${this.by}->${this.target})`;
  }
}

export class Partition extends Base {
  constructor(readonly mask: number) {
    super();
  }
  check() {
    return true;
  }
  async apply(m: Model, r: Real) {
    const names = [...m.state.keys()];
    const a = names.filter((_, i) => this.mask & (1 << i));
    const b = names.filter((_, i) => !(this.mask & (1 << i)));
    r.sim.partition([a, b]);
    await r.sim.clock.advance(500);
  }
  toString() {
    return `partition(${this.mask.toString(2).padStart(5, '0').split('').reverse().join('')})`;
  }
}

export class Heal extends Base {
  check() {
    return true;
  }
  async apply(_m: Model, r: Real) {
    r.sim.heal();
    await r.sim.clock.advance(500);
  }
  toString() {
    return 'heal';
  }
}

export class Wait extends Base {
  constructor(readonly ms: number) {
    super();
  }
  check() {
    return true;
  }
  async apply(_m: Model, r: Real) {
    await r.sim.clock.advance(this.ms);
  }
  toString() {
    return `wait(${this.ms})`;
  }
}

function parseAddr(s: string): number {
  return s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function commands(nodeCount: number) {
  const node = fc.integer({ min: 1, max: nodeCount }).map((i) => `n${i}`);
  return fc.commands(
    [
      node.map((n) => new Alloc(n)),
      node.map((n) => new Alloc(n)),
      node.map((n) => new Alloc(n)),
      fc.tuple(node, fc.nat(50)).map(([n, p]) => new AllocAgain(n, p)),
      fc.tuple(node, fc.nat(50)).map(([n, p]) => new Release(n, p)),
      fc.tuple(node, fc.nat(50)).map(([n, p]) => new Release(n, p)),
      node.map((n) => new Crash(n)),
      node.map((n) => new Restart(n)),
      node.map((n) => new Restart(n)),
      node.map((n) => new Kill(n)),
      node.map((n) => new Reset(n)),
      fc.tuple(node, node).map(([a, b]) => new Rmpeer(a, b)),
      fc.integer({ min: 1, max: 2 ** nodeCount - 2 }).map((m) => new Partition(m)),
      fc.constant(new Heal()),
      fc.constant(new Heal()),
      fc.integer({ min: 100, max: 20_000 }).map((ms) => new Wait(ms)),
    ],
    { maxCommands: 60, size: 'max' },
  );
}

export interface Scenario {
  seed: number;
  nodes: number;
  mode: 'consensus' | 'seed';
  observer: boolean;
}

export const scenario: fc.Arbitrary<Scenario> = fc.record({
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  nodes: fc.integer({ min: 3, max: 5 }),
  mode: fc.constantFrom('consensus' as const, 'seed' as const),
  observer: fc.boolean(),
});


/** One run: start the cluster, run the commands (checking after each), heal, settle, check convergence and that no space is lost. */
export async function runScenario(s: Scenario, cmds: Iterable<Cmd>): Promise<void> {
  const init = (_name: string, i: number): InitMode => {
    if (s.observer && i === s.nodes) return { kind: 'observer' };
    if (s.mode === 'seed') return { kind: 'seed', peers: ['n1', 'h2'] };
    return { kind: 'consensus', n: s.observer ? s.nodes - 1 : s.nodes };
  };
  const sim = new SimNet({
    seed: s.seed,
    range: '10.32.0.0/26',
    nodes: s.nodes,
    init,
    timeouts: { allocateMs: 8_000, rmpeerMs: 8_000, handoverMs: 3_000 },
  });
  for (const n of sim.nodes.keys()) await sim.start(n);
  await sim.clock.advance(5_000);
  const model: Model = { state: new Map([...sim.nodes.keys()].map((n) => [n, 'up'])), removed: new Set() };
  const real = new Real(sim);
  real.check('start');
  await fc.asyncModelRun(() => ({ model, real }), cmds);
  // Heal everything and let it settle: every live peer converges.
  sim.heal();
  for (const [n, st] of model.state) if (st === 'down') await sim.start(n);
  await sim.clock.advance(30_000);
  real.check('final heal');
  const digests = new Set(sim.up().map((n) => n.ipam!.stateDigest()));
  if (digests.size > 1) throw new Error('peers did not converge after healing');
  // Remove every peer that is gone (a reset peer whose retirement
  // nobody heard still counts as a ring peer): then no space is lost.
  const dead = [...model.state].filter(([, st]) => st === 'gone').map(([n]) => n);
  const someone = sim.up()[0]!;
  if (dead.length > 0) {
    const r = await sim.run(someone.ipam!.rmpeer(dead));
    if (!r.ok) throw new Error(`final rmpeer ${dead.join(',')} failed: ${r.error.message}\n--- ownership ---\n${sim.describeOwnership()}\n--- recent log ---\n${sim.logs.slice(-80).join('\n')}`);
    await sim.clock.advance(10_000);
  }
  if (someone.ipam!.ready) {
    const owned = sim.up().reduce((n, x) => n + sim.owned(x.name).reduce((m, r) => m + r.end - r.start, 0), 0);
    if (owned !== 64) throw new Error(`space lost: live peers own ${owned} of 64 addresses\n${sim.describeOwnership()}\n--- recent log ---\n${sim.logs.slice(-60).join('\n')}`);
  }
  real.check('final rmpeer');
  for (const n of sim.up()) await n.ipam!.stop();
}
