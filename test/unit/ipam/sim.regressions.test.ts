// Counterexamples the cluster property test found, kept as regression
// cases (each was a real bug or a false alarm in the checks at the time).
import { describe, it } from 'vitest';
import { Alloc, Heal, Kill, Partition, Release, Reset, Restart, Rmpeer, Wait, Crash, runScenario, type Cmd } from './sim.scenario.js';

const cases: { name: string; s: Parameters<typeof runScenario>[0]; cmds: Cmd[] }[] = [
  {
    name: 'a reset peer\'s heir is removed later; removing the reset peer must not give the space again',
    s: { seed: 186267, nodes: 4, mode: 'seed', observer: true },
    cmds: [new Reset('n2'), new Kill('n1'), new Wait(100)],
  },
  {
    name: 'removal after a removal with no heirs, by another proposer',
    s: { seed: 717150, nodes: 4, mode: 'seed', observer: false },
    cmds: [new Kill('n4'), new Rmpeer('n2', 'n4'), new Kill('n2'), new Rmpeer('n1', 'n4')],
  },
  {
    name: 'a donor restarts before seeing the recipient pass the space on',
    s: { seed: 1, nodes: 4, mode: 'consensus', observer: true },
    cmds: [new Alloc('n1'), new Crash('n2'), new Kill('n3'), new Alloc('n4'), new Heal()],
  },
  {
    name: 'a restarted peer must not remove a dead peer on a stale view of the ring',
    s: { seed: 18, nodes: 3, mode: 'seed', observer: true },
    cmds: [new Alloc('n3'), new Crash('n2'), new Restart('n2'), new Kill('n1'), new Rmpeer('n2', 'n1')],
  },
  {
    name: 'stale removal value re-proposed after its heir was reset',
    s: { seed: 516986, nodes: 5, mode: 'consensus', observer: false },
    cmds: [new Reset('n5'), new Kill('n2'), new Rmpeer('n1', 'n5'), new Reset('n3'), new Wait(100)],
  },
  {
    name: 'heir of a removal resets before the removal reaches it',
    s: { seed: 616687, nodes: 5, mode: 'consensus', observer: true },
    cmds: [new Kill('n1'), new Rmpeer('n2', 'n1'), new Reset('n4'), new Heal()],
  },
  {
    name: 'removal chosen, proposer reset before publishing; re-proposed later',
    s: { seed: 850377, nodes: 4, mode: 'consensus', observer: false },
    cmds: [new Kill('n2'), new Rmpeer('n1', 'n2'), new Reset('n1')],
  },
  {
    name: 'partition then heal around a kill',
    s: { seed: 999981, nodes: 4, mode: 'seed', observer: true },
    cmds: [new Kill('n2'), new Alloc('n4'), new Crash('n1'), new Alloc('n3'), new Wait(100), new Crash('n3'), new Partition(1)],
  },
  {
    name: 'space a removal gave to an heir, passed on by donation, is not held back when the recipient is removed',
    s: { seed: 999989, nodes: 5, mode: 'seed', observer: false },
    cmds: [new Alloc('n3'), new Wait(100), new Kill('n3'), new Rmpeer('n1', 'n3'), new Heal(), new Alloc('n4'), new Heal(), new Kill('n4'), new Release('n1', 0)],
  },
  {
    name: 'reset, removal of the reset peer, donation, partition, kill',
    s: { seed: 383711, nodes: 5, mode: 'consensus', observer: true },
    cmds: [new Kill('n2'), new Reset('n1'), new Rmpeer('n3', 'n1'), new Alloc('n4'), new Partition(1), new Kill('n4')],
  },
  {
    name: 'a reset peer\'s stale outgoing transfer (adopted, then passed on) is not counted as held when removing others',
    s: { seed: 16, nodes: 5, mode: 'seed', observer: false },
    cmds: [new Alloc('n4'), new Reset('n1'), new Reset('n2'), new Heal(), new Kill('n4'), new Rmpeer('n3', 'n2')],
  },
];

describe('ipam simulated cluster: regressions', () => {
  for (const c of cases) it(c.name, () => runScenario(c.s, c.cmds));
});
