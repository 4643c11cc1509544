// Property test over the simulated cluster: random allocations, releases,
// partitions, heals, crashes and restarts, kills, rmpeer and reset, with
// message delay, reordering and duplication. The invariants, checked after
// EVERY command, are in sim.scenario.ts (Real.check). A failure shrinks to a
// short command list, printed readably; add it to sim.regressions.test.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { commands, operationsRun, runScenario, scenario } from './sim.scenario.js';

const MIN_OPERATIONS = Number(process.env.IPAM_SIM_OPERATIONS ?? 10_000);

describe('ipam simulated cluster (property)', () => {
  it(`keeps every invariant over at least ${MIN_OPERATIONS} random operations`, async () => {
    const started = Date.now();
    const before = operationsRun();
    let runs = 0;
    while (operationsRun() - before < MIN_OPERATIONS) {
      runs += 40;
      await fc.assert(
        fc.asyncProperty(
          scenario.chain((s) => fc.tuple(fc.constant(s), commands(s.nodes))),
          ([s, cmds]) => runScenario(s, cmds),
        ),
        { numRuns: 40 },
      );
    }
    const ops = operationsRun() - before;
    expect(ops).toBeGreaterThanOrEqual(MIN_OPERATIONS);
    console.log(`ipam sim: ${ops} operations in ${runs} runs, ${Date.now() - started} ms`);
  }, 600_000);
});
