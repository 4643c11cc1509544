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
    child.stdin!.on('error', () => undefined);
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

// A stand-in for the daemon's TAP I/O (the native TAP module belongs to the
// sleeve): a python process that creates and holds the TAP, writes the hex
// frames it reads on stdin, and prints received frames of the heartbeat
// EtherType as hex lines.
const TAPIO = String.raw`
import fcntl, os, select, struct, sys
name = sys.argv[1].encode()
fd = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(fd, 0x400454ca, struct.pack('16sH22x', name, 0x0002 | 0x1000))  # TUNSETIFF, IFF_TAP|IFF_NO_PI
print('ready', flush=True)
buf = b''
while True:
    r, _, _ = select.select([fd, sys.stdin.fileno()], [], [])
    if fd in r:
        f = os.read(fd, 65536)
        if len(f) >= 14 and f[12:14] == b'\x88\xb5':
            print(f.hex(), flush=True)
    if sys.stdin.fileno() in r:
        chunk = os.read(sys.stdin.fileno(), 1 << 20)
        if not chunk:
            break
        buf += chunk
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            if line.strip():
                os.write(fd, bytes.fromhex(line.decode().strip()))
`;

export class TapIo {
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];

  constructor(private readonly child: ChildProcess) {
    child.stdin!.on('error', () => undefined);
    createInterface({ input: child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  async ready(): Promise<void> {
    await this.next(5000);
  }

  write(frame: Uint8Array): void {
    this.child.stdin!.write(Buffer.from(frame).toString('hex') + '\n');
  }

  /** Received heartbeat-EtherType frames since the last call. */
  drain(): Buffer[] {
    return this.lines.splice(0).map((l) => Buffer.from(l, 'hex'));
  }

  /** The next line, or undefined after `timeoutMs`. */
  async next(timeoutMs: number): Promise<string | undefined> {
    if (this.lines.length) return this.lines.shift();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
    return this.lines.shift();
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

/** Create TAP `name` in namespace `ns`, held open by a helper process. */
export async function startTap(net: TestNet, ns: string, name: string): Promise<TapIo> {
  const script = join(net.dir, 'tapio.py');
  writeFileSync(script, TAPIO);
  const child = spawn('ip', ['netns', 'exec', ns, 'python3', '-u', script, name], { stdio: ['pipe', 'pipe', 'pipe'] });
  net.track(child);
  const tap = new TapIo(child);
  await tap.ready();
  return tap;
}
