// Runs datapath code inside a test host's network namespace. Node cannot
// setns(2), and a netlink socket belongs to the namespace of the process
// that opened it, so each host gets an agent process (`ip netns exec NS
// node …`) that executes calls sent over stdin as JSON lines — the same way
// the daemon will run: one process per host namespace.
//
// The agent is TypeScript; Node 20 cannot run it directly, so the agent is
// started with a tiny module-loader hook that transpiles .ts with the
// project's own `typescript` (no build step needed for the tests).

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { TestNet } from '../harness/netns.js';

const ROOT = resolve(import.meta.dirname, '../..');

const HOOKS = `
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
const ts = createRequire(${JSON.stringify(pathToFileURL(join(ROOT, 'package.json')).href)})('typescript');
export async function resolve(spec, ctx, next) {
  if (ctx.parentURL && ctx.parentURL.endsWith('.ts') && /^\\.\\.?\\//.test(spec) && spec.endsWith('.js')) {
    const url = new URL(spec.slice(0, -3) + '.ts', ctx.parentURL);
    if (existsSync(fileURLToPath(url))) return { url: url.href, shortCircuit: true };
  }
  return next(spec, ctx);
}
export async function load(url, ctx, next) {
  if (url.startsWith('file:') && url.endsWith('.ts')) {
    const file = fileURLToPath(url);
    const out = ts.transpileModule(await readFile(file, 'utf8'), {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true },
    });
    return { format: 'module', source: out.outputText, shortCircuit: true };
  }
  return next(url, ctx);
}
`;

/** Write the loader files for this run; returns the --import argument. */
function installLoader(dir: string): string {
  const hooks = join(dir, 'ts-hooks.mjs');
  const register = join(dir, 'ts-register.mjs');
  writeFileSync(hooks, HOOKS);
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  return register;
}

export class AgentError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** A datapath agent in one namespace. */
export class Agent {
  private seq = 0;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private stderr = '';

  constructor(
    readonly ns: string,
    private readonly child: ChildProcess,
  ) {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let msg: { id: number; result?: unknown; error?: { message: string; code?: string } };
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error) p.reject(new AgentError(msg.error.message, msg.error.code));
      else p.resolve(msg.result);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`agent in ${ns} exited ${code}: ${this.stderr.slice(-2000)}`));
      this.pending.clear();
    });
  }

  /** Call `method` on the agent's `target` object with JSON-serialisable args. */
  call<T = unknown>(target: string, method: string, ...args: unknown[]): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin!.write(JSON.stringify({ id, target, method, args }) + '\n');
    });
  }

  close(): void {
    this.child.stdin?.end();
    this.child.kill('SIGKILL');
  }
}

/** Start an agent in namespace `ns` (created by `net`). */
export async function startAgent(net: TestNet, ns: string): Promise<Agent> {
  const register = installLoader(net.dir);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', register, join(ROOT, 'test/e2e/fastdp-kernel-agent.ts')], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  net.track(child);
  const agent = new Agent(ns, child);
  await agent.call('agent', 'ping');
  return agent;
}
