// The churn soak (a script, not a CI test; docs/soak.md): N real daemons
// under random churn (pods added and deleted through the CNI plugin,
// daemons stopped or killed and launched again, partitions) for --minutes,
// with a checkpoint every --checkpoint minutes where churn pauses, the mesh
// settles and every check runs. At the end: actions per kind, the checks at
// each checkpoint, pods and allocations, RSS of each daemon (first, last,
// least-squares slope) and the connections' states. Exits 1 if a check failed.
//
// Usage: node dist/bench/soak.js [--minutes 10] [--hosts 5] [--seed S] [--checkpoint 2.5] [--quiet]

import { randomInt } from 'node:crypto';
import { ACTION_KINDS, Churn, slope, type CheckResult } from '../test/harness/churn.js';
import { arg, table } from './table.js';

const MINUTES = Number(arg('--minutes', '10'));
const HOSTS = Number(arg('--hosts', '5'));
const SEED = Number(arg('--seed', String(randomInt(2 ** 31))));
const CHECKPOINT = Number(arg('--checkpoint', '2.5'));
const QUIET = process.argv.includes('--quiet');
/** RSS is "flat" when the fitted slope would add less than this share of the mean RSS in an hour. */
const FLAT_PER_HOUR = 0.1;

async function main(): Promise<void> {
  console.log(`soak: ${HOSTS} hosts, ${MINUTES} min of churn, checkpoint every ${CHECKPOINT} min, seed ${SEED} (replay with --seed ${SEED})`);
  const churn = await Churn.start({ hosts: HOSTS, seed: SEED, log: QUIET ? () => undefined : (l) => process.stderr.write(`${l}\n`) });
  const stop = (): void => {
    void churn.destroy().then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const checkpoints: { at: number; results: CheckResult[]; settleS: number }[] = [];
  try {
    for (let done = 0; done < MINUTES - 1e-9; ) {
      const seg = Math.min(CHECKPOINT, MINUTES - done);
      await churn.churn(seg * 60_000);
      done += seg;
      const t = Date.now();
      const results = await churn.verify();
      checkpoints.push({ at: done, results, settleS: (Date.now() - t) / 1000 });
      for (const r of results) if (!r.ok) console.log(`checkpoint ${done} min: ${r.name} FAILED\n  ${r.problems.slice(0, 20).join('\n  ')}`);
      process.stderr.write(`checkpoint ${done} min: ${results.map((r) => `${r.name} ${r.ok ? 'ok' : 'FAILED'}`).join(', ')}\n`);
    }

    console.log(`\nActions (seed ${SEED})\n`);
    console.log(table(['action', 'done', 'failed'], ACTION_KINDS.map((k) => [k, churn.counts.get(k)!.done, churn.counts.get(k)!.failed])));
    for (const f of churn.failures.slice(0, 20)) console.log(`  ${f}`);

    console.log('\nChecks at each checkpoint (churn paused, mesh settled)\n');
    const names = checkpoints[0]?.results.map((r) => r.name) ?? [];
    console.log(
      table(
        ['after (min)', ...names, 'checks took (s)'],
        checkpoints.map((c) => [c.at.toFixed(1), ...c.results.map((r) => (r.ok ? 'pass' : `FAIL (${r.problems.length})`)), c.settleS.toFixed(0)]),
      ),
    );

    const counts = await churn.allocationCounts();
    console.log('\nPods and allocations at the end\n');
    console.log(table(['host', 'live pods', 'pod allocations', 'addresses owned'], counts.map((c) => [c.host, c.pods, c.allocations, c.owned])));

    console.log(`\nRSS of each daemon since its last start (samples every 15 s after 60 s; flat: slope adds < ${FLAT_PER_HOUR * 100} % of the mean per hour)\n`);
    const rssRows = churn.rssSeries().map((s) => {
      const n = s.samples.length;
      if (n < 4) return [s.host, n, '-', '-', '-', `too few samples (daemon started after ${s.samples[0]?.min.toFixed(1) ?? '?'} min)`];
      const k = slope(s.samples.map((p) => ({ x: p.min, y: p.kib })));
      const mean = s.samples.reduce((a, p) => a + p.kib, 0) / n;
      // A falling series (memory returned after a busy phase) is not a leak.
      const flat = k * 60 < FLAT_PER_HOUR * mean;
      const span = `${s.samples[0]!.min.toFixed(1)}-${s.samples[n - 1]!.min.toFixed(1)} min`;
      return [s.host, n, (s.samples[0]!.kib / 1024).toFixed(1), (s.samples[n - 1]!.kib / 1024).toFixed(1), k.toFixed(0), `${flat ? 'flat' : 'GROWING'} (${span})`];
    });
    console.log(table(['host', 'samples', 'first (MiB)', 'last (MiB)', 'slope (KiB/min)', 'verdict'], rssRows));

    console.log('\nConnections at the end\n');
    const conns = await churn.connectionStates();
    console.log(table(['host', 'states'], conns.map((c) => [c.host, Object.entries(c.states).map(([k, v]) => `${v} ${k}`).join(', ')])));
    const failed = checkpoints.some((c) => c.results.some((r) => !r.ok));
    console.log(`\n${failed ? 'FAILED' : 'all checks passed'} (seed ${SEED})`);
    process.exitCode = failed ? 1 : 0;
  } finally {
    await churn.destroy();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
