// The short churn soak (the 10-minute one is bench/soak.ts; docs/soak.md):
// five real daemons, about a minute of pods added and deleted through the
// CNI plugin, daemons stopped or killed and launched again, partitions; then
// with the mesh settled: no duplicate address, every allocation accounted
// for, every pair connected and nothing stuck, every pod reaches every pod.
// RSS is reported, not asserted: a minute cannot tell a leak from warm-up.
// Replay a run with SOAK_SEED=<the printed seed>.
import { randomInt } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Churn, type ActionKind } from '../harness/churn.js';

const SEED = Number(process.env.SOAK_SEED ?? randomInt(2 ** 31));
const CHURN_MS = 55_000;

describe('churn soak, one minute', () => {
  let churn: Churn;

  beforeAll(async () => {
    console.log(`soak seed ${SEED} (replay with SOAK_SEED=${SEED})`);
    churn = await Churn.start({ seed: SEED, hosts: 5, podsPerHost: 4, rssWarmupMs: 15_000 });
  });

  afterAll(async () => {
    await churn?.destroy();
  });

  it('after churn, addresses are unique and accounted for, the mesh is whole and every pod reaches every pod', { timeout: 180_000 }, async () => {
    await churn.churn(CHURN_MS);
    const results = await churn.verify(45_000);
    const counts = Object.fromEntries(churn.counts);
    const rss = churn.rssSeries().map((s) => `${s.host} ${s.samples.map((p) => (p.kib / 1024).toFixed(0)).join('/')} MiB`);
    console.log(`soak seed ${SEED}: actions ${JSON.stringify(counts)}; live pods ${churn.live.size}; RSS ${rss.join(', ')}`);

    // Every kind of churn happened, and none of it failed.
    expect(churn.failures).toEqual([]);
    const done = (k: ActionKind): number => churn.counts.get(k)!.done;
    expect(done('add')).toBeGreaterThan(0);
    expect(done('del')).toBeGreaterThan(0);
    expect(done('stop+launch') + done('kill+launch')).toBeGreaterThan(0);
    expect(done('partition')).toBeGreaterThan(0);
    for (const r of results) expect(r.problems, `${r.name} (seed ${SEED})`).toEqual([]);
    expect(results.map((r) => r.name)).toEqual(['no duplicate address', 'allocations accounted for', 'connections established', 'pods reach pods']);
  });
});
