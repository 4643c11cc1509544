// Runs a TypeScript module inside a test host's network namespace and calls
// its exported `targets` over JSON lines on stdin/stdout. Node cannot
// setns(2), so code that must use a namespace's network (a fake API server
// and the client under test) runs in its own process there: `ip netns exec
// NS node --import <ts loader> agent-main.ts <module>`. The loader
// transpiles .ts with the project's own typescript; no build step.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { TestNet } from '../../harness/netns.js';

const ROOT = resolve(import.meta.dirname, '../../..');

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

function installLoader(dir: string): string {
  const register = join(dir, 'ops-ts-register.mjs');
  if (existsSync(register)) return register;
  const hooks = join(dir, 'ops-ts-hooks.mjs');
  writeFileSync(hooks, HOOKS);
  writeFileSync(register, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
  return register;
}

export class NsAgent {
  private seq = 0;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private stderr = '';

  constructor(
    readonly ns: string,
    private readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let msg: { id: number; result?: unknown; error?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.error !== undefined) p.reject(new Error(msg.error));
      else p.resolve(msg.result);
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    child.stdin!.on('error', () => undefined);
    child.on('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`agent in ${ns} exited ${code}: ${this.stderr.slice(-2000)}`));
      this.pending.clear();
    });
  }

  call<T = unknown>(target: string, method: string, ...args: unknown[]): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, target, method, args })}\n`);
    });
  }

  close(): void {
    this.child.stdin?.end();
    this.child.kill('SIGKILL');
  }
}

/** Start `module` (a path under test/) as an agent in namespace `ns`. */
export async function startNsAgent(net: TestNet, ns: string, module: string): Promise<NsAgent> {
  const register = installLoader(net.dir);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', register, join(ROOT, 'test/unit/ops/agent-main.ts'), resolve(ROOT, module)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: ROOT,
  });
  net.track(child);
  const agent = new NsAgent(ns, child);
  await agent.call('agent', 'ping');
  return agent;
}
