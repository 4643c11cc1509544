// The process side of ns-agent.ts: imports the module named on the command
// line and answers {id, target, method, args} lines with {id, result} or
// {id, error}, calling module.targets[target][method](...args).

import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

type Targets = Record<string, Record<string, (...args: never[]) => unknown>>;

const mod = (await import(pathToFileURL(process.argv[2]!).href)) as { targets: Targets };
const targets: Targets = { agent: { ping: () => 'pong' }, ...mod.targets };

createInterface({ input: process.stdin }).on('line', (line) => {
  let req: { id: number; target: string; method: string; args: unknown[] };
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  const answer = (m: object): void => void process.stdout.write(`${JSON.stringify({ id: req.id, ...m })}\n`);
  Promise.resolve()
    .then(() => {
      const fn = targets[req.target]?.[req.method];
      if (!fn) throw new Error(`no ${req.target}.${req.method}`);
      return (fn as (...a: unknown[]) => unknown)(...req.args);
    })
    .then(
      (result) => answer({ result: result === undefined ? null : result }),
      (err: unknown) => answer({ error: err instanceof Error ? err.message : String(err) }),
    );
});
process.stdin.on('end', () => process.exit(0));
