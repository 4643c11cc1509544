// Fuzzing every decoder with fast-check: random bytes and mutations of valid
// encodings (test/fuzz/targets.ts). A case is accepted, rejected (null or the
// decoder's own error class), or escaped: any other exception, a bug.
//
//   npx tsc -p tsconfig.json && node dist/bench/fuzz.js [--cases 1000000] [--only NAME] [--seed N]
//
// The unit test (test/unit/fuzz/decoders.test.ts) runs the same targets with
// a few hundred cases each; this is the long run. Exit code 1 on any escape.

import fc from 'fast-check';
import { arg, table } from './table.js';
import { fuzzTargets, type Outcome } from '../test/fuzz/targets.js';

const cases = Number(arg('--cases', '1000000'));
const only = arg('--only', '');
const seed = Number(arg('--seed', String(Date.now() % 2 ** 31)));

const targets = (await fuzzTargets()).filter((t) => only === '' || t.name === only || t.name.startsWith(`${only}.`));
if (targets.length === 0) {
  console.error(`no target matches --only ${only}`);
  process.exit(2);
}
console.log(`fuzz: ${targets.length} targets, ${cases} cases each, seed ${seed}, node ${process.version}`);

const rows: (string | number)[][] = [];
let escapes = 0;
for (const t of targets) {
  const counts: Record<Outcome, number> = { accepted: 0, rejected: 0, escaped: 0 };
  let firstError: unknown;
  const start = process.hrtime.bigint();
  const out = fc.check(
    fc.property(t.arbitrary, (input) => {
      const r = t.run(input);
      counts[r.outcome]++;
      if (r.outcome === 'escaped') {
        firstError ??= r.error;
        return false;
      }
      return true;
    }),
    // Keep going after an escape? No: shrink it to a small counterexample instead, and report.
    { numRuns: cases, seed },
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const ran = counts.accepted + counts.rejected + counts.escaped;
  rows.push([t.name, ran, counts.accepted, counts.rejected, counts.escaped, Math.round(ran / seconds), seconds.toFixed(1)]);
  // Progress on stderr: a long run shows each target as it finishes.
  console.error(`${t.name}: ${ran} cases, ${counts.escaped} escaped, ${seconds.toFixed(1)} s`);
  if (out.failed) {
    escapes++;
    const ex = out.counterexample?.[0];
    const shown = ex instanceof Uint8Array ? `bytes ${Buffer.from(ex).toString('hex')}` : JSON.stringify(ex, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
    console.log(`ESCAPE in ${t.name} after ${out.numRuns} runs (seed ${out.seed}, path ${out.counterexamplePath}): ${String(firstError)}`);
    console.log(`  shrunk counterexample: ${shown}`);
    // The shrunk input's own exception (the property itself only returned false).
    console.log(`  its error: ${String(ex === undefined ? firstError : t.run(ex).error)}`);
  }
}
// Counts include the shrinking runs after an escape; cases/s is for the whole target.
console.log(table(['target', 'cases', 'accepted', 'rejected', 'escaped', 'cases/s', 'seconds'], rows));
process.exit(escapes > 0 ? 1 : 0);
