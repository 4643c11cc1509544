// Test hosts in network namespaces: N "hosts" joined by an underlay switch
// (a bridge in a namespace of its own), each with its own address from
// 198.18.0.0/15. Everything a run creates carries a per-run prefix and is
// removed by `destroy()`, on process exit, and by the next run if this one
// was killed (stale prefixes whose owner process is gone are reaped).
//
// Network safety: nothing here configures the root namespace; all traffic
// stays between namespaces this module created.

import { execFile, execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Where runs keep their per-host directories and owner markers. */
export const HARNESS_ROOT = '/tmp/meshnet-test';
const PREFIX_RE = /^mn[0-9a-f]{4}-/;

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface HostSpec {
  /** Underlay address, e.g. "198.18.0.11". Defaults to 198.18.<subnet>.<10+i>. */
  address?: string;
  /** Underlay prefix length (default 24). */
  prefixLength?: number;
  /** Underlay MTU of the host's link (default 1500). */
  mtu?: number;
}

export class TestHost {
  readonly dir: string;
  readonly runDir: string;
  readonly stateDir: string;

  constructor(
    readonly net: TestNet,
    /** "h1", "h2", … */
    readonly id: string,
    /** The namespace name. */
    readonly ns: string,
    readonly address: string,
  ) {
    this.dir = join(net.dir, id);
    this.runDir = join(this.dir, 'run');
    this.stateDir = join(this.dir, 'state');
    mkdirSync(this.runDir, { recursive: true });
    mkdirSync(this.stateDir, { recursive: true });
  }

  /** Run a command in this host's namespace; never throws for a non-zero exit. */
  async exec(cmd: string, args: string[] = [], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
    return runIn(this.ns, cmd, args, opts);
  }

  /** Run a command in this host's namespace and throw with its stderr if it fails. */
  async run(cmd: string, args: string[] = [], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.exec(cmd, args, opts);
    if (r.code !== 0) throw new Error(`[${this.id}] ${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout;
  }

  /** Start a long-running process in this namespace; it is killed by destroy(). */
  spawn(cmd: string, args: string[] = [], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns, cmd, ...args], { stdio: 'pipe', ...opts });
    this.net.track(child);
    return child;
  }

  /** A second namespace hanging off this host (a "pod" for tests that don't need CNI). */
  podNs(name: string): string {
    return `${this.ns}-${name}`;
  }
}

export class TestNet {
  readonly prefix: string;
  readonly dir: string;
  readonly switchNs: string;
  readonly hosts: TestHost[] = [];
  private readonly namespaces = new Set<string>();
  private readonly children = new Set<ChildProcess>();
  private destroyed = false;
  private readonly onExit = (): void => this.destroySync();

  private constructor() {
    this.prefix = `mn${randomBytes(2).toString('hex')}`;
    this.dir = join(HARNESS_ROOT, this.prefix);
    this.switchNs = `${this.prefix}-sw`;
    mkdirSync(this.dir, { recursive: true });
    writeFileSync(join(this.dir, 'owner.pid'), String(process.pid));
    process.once('exit', this.onExit);
  }

  /** Create `n` hosts (or the given specs) on one underlay switch. */
  static async create(hosts: number | HostSpec[], opts: { subnet?: number } = {}): Promise<TestNet> {
    reapStale();
    const net = new TestNet();
    try {
      await net.addNamespace(net.switchNs);
      await net.ip(net.switchNs, ['link', 'add', 'br0', 'type', 'bridge']);
      await net.ip(net.switchNs, ['link', 'set', 'br0', 'up']);
      const specs: HostSpec[] = typeof hosts === 'number' ? Array.from({ length: hosts }, () => ({})) : hosts;
      for (const spec of specs) await net.addHost(spec, opts.subnet ?? 0);
      return net;
    } catch (err) {
      await net.destroy();
      throw err;
    }
  }

  /** Add one more host to the underlay. */
  async addHost(spec: HostSpec = {}, subnet = 0): Promise<TestHost> {
    const index = this.hosts.length + 1;
    const id = `h${index}`;
    const ns = `${this.prefix}-${id}`;
    const address = spec.address ?? `198.18.${subnet}.${10 + index}`;
    assertTestAddress(address);
    const plen = spec.prefixLength ?? 24;
    await this.addNamespace(ns);
    // The switch side is named after the host; the host side is eth0.
    await this.ip(this.switchNs, ['link', 'add', id, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    if (spec.mtu) {
      await this.ip(this.switchNs, ['link', 'set', id, 'mtu', String(spec.mtu)]);
      await this.ip(ns, ['link', 'set', 'eth0', 'mtu', String(spec.mtu)]);
    }
    await this.ip(this.switchNs, ['link', 'set', id, 'master', 'br0', 'up']);
    await this.ip(ns, ['addr', 'add', `${address}/${plen}`, 'dev', 'eth0']);
    await this.ip(ns, ['link', 'set', 'eth0', 'up']);
    const host = new TestHost(this, id, ns, address);
    this.hosts.push(host);
    return host;
  }

  host(id: string | number): TestHost {
    const want = typeof id === 'number' ? `h${id}` : id;
    const h = this.hosts.find((x) => x.id === want);
    if (!h) throw new Error(`no host ${want}`);
    return h;
  }

  /** Create an extra namespace owned by this run (e.g. a pod); removed by destroy(). */
  async addNamespace(ns: string): Promise<void> {
    if (!ns.startsWith(this.prefix)) throw new Error(`namespace ${ns} lacks the run prefix ${this.prefix}`);
    await execFileAsync('ip', ['netns', 'add', ns]);
    this.namespaces.add(ns);
    await this.ip(ns, ['link', 'set', 'lo', 'up']);
  }

  /** Delete a namespace this run created (a pod torn down), killing what still runs in it. */
  async removeNamespace(ns: string): Promise<void> {
    if (!this.namespaces.has(ns)) throw new Error(`namespace ${ns} was not created by this run`);
    const { stdout } = await execFileAsync('ip', ['netns', 'pids', ns]);
    for (const pid of stdout.split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await execFileAsync('ip', ['netns', 'del', ns]);
    this.namespaces.delete(ns);
  }

  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  async ip(ns: string, args: string[]): Promise<void> {
    const r = await runIn(ns, 'ip', args);
    if (r.code !== 0) throw new Error(`ip ${args.join(' ')} in ${ns}: ${r.stderr.trim()}`);
  }

  /** Kill every process in our namespaces, delete them and our files. Idempotent. */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  private destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    process.removeListener('exit', this.onExit);
    for (const c of this.children) c.kill('SIGKILL');
    cleanupPrefix(this.prefix, [...this.namespaces]);
  }
}

/** Run a command inside a namespace. */
export async function runIn(ns: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      resolve({ stdout, stderr: stderr + String(err), code: 127 });
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? (signal ? 128 : 1) });
    });
    // The command may exit without reading its input.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** Poll `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(check: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Tests may only use 198.18.0.0/15. */
export function assertTestAddress(addr: string): void {
  const [a, b] = addr.split('.').map(Number);
  if (a !== 198 || (b !== 18 && b !== 19)) throw new Error(`test address ${addr} is outside 198.18.0.0/15`);
}

function listNamespaces(): string[] {
  try {
    return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

function cleanupPrefix(prefix: string, extra: string[] = []): void {
  const all = new Set([...extra, ...listNamespaces().filter((n) => n === prefix || n.startsWith(`${prefix}-`))]);
  for (const ns of all) {
    try {
      const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    } catch {
      /* namespace already gone */
    }
  }
  for (const ns of all) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  }
  rmSync(join(HARNESS_ROOT, prefix), { recursive: true, force: true });
}

/** Remove what earlier runs left behind when their owner process died. */
export function reapStale(): void {
  const prefixes = new Set(listNamespaces().filter((n) => PREFIX_RE.test(n)).map((n) => n.slice(0, 6)));
  if (existsSync(HARNESS_ROOT)) for (const d of readdirSync(HARNESS_ROOT)) if (/^mn[0-9a-f]{4}$/.test(d)) prefixes.add(d);
  for (const prefix of prefixes) {
    let owner = 0;
    try {
      owner = Number(readFileSync(join(HARNESS_ROOT, prefix, 'owner.pid'), 'utf8'));
    } catch {
      /* no marker: treat as stale */
    }
    if (owner && owner !== process.pid && isAlive(owner)) continue;
    if (owner === process.pid) continue;
    cleanupPrefix(prefix);
  }
}

/** Whether a process with this pid exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
