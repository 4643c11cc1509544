// A stand-in for the meshnet daemon's CNI side, for e2e tests and the
// benchmark until the real daemon mounts router/cni: the real CNI handler
// (CniCommands + CniService + IpHostNetwork) behind a unix-socket HTTP server
// at <runDir>/meshnet.sock, with a tiny real allocator over one /24 of
// 198.19.0.0/16 persisted in <stateDir> (so a restart keeps allocations).
//
//   node dist/test/harness/cni-daemon.js --run-dir D --state-dir S --subnet 198.19.7.0/24 [--mtu 1500] [--not-ready]
//
// Prints "ready" once the socket answers. GET /debug/allocations lists what
// the allocator holds (tests check that nothing leaks).

import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Attachment } from '../../router/cni/config.js';
import { AllocatorError, CNI_HTTP_PATH, createCniService, serveCniHttp, socketPath, type CniAllocator, type PodAddress } from '../../router/cni/index.js';
import { assertTestAddress, type TestHost } from './netns.js';

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..').replace(/\/dist$/, '');
export const DAEMON_JS = join(REPO_ROOT, 'dist/test/harness/cni-daemon.js');
export const SHIM_BINARY = join(REPO_ROOT, 'build/cni/meshnet');

/** A /24 allocator: .1 is the gateway, .2-.254 go to attachments. Persisted on every change. */
export class FileAllocator implements CniAllocator {
  private readonly held = new Map<string, string>();
  private readonly base: string;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    subnet: string,
    private readonly file: string,
    private readonly isReady = true,
  ) {
    const m = /^(\d+\.\d+\.\d+)\.0\/24$/.exec(subnet);
    if (!m) throw new Error(`--subnet must be a /24 like 198.19.7.0/24, got ${subnet}`);
    this.base = m[1]!;
    assertTestAddress(`${this.base}.1`);
    if (existsSync(file)) {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
      for (const [k, v] of Object.entries(saved)) this.held.set(k, v);
    }
  }

  get gateway(): string {
    return `${this.base}.1`;
  }

  ready(): boolean {
    return this.isReady;
  }

  async allocate(containerId: string, ifname: string): Promise<PodAddress> {
    this.mustBeReady();
    const key = `${containerId}/${ifname}`;
    let ip = this.held.get(key);
    if (!ip) {
      const used = new Set(this.held.values());
      for (let i = 2; i <= 254 && !ip; i++) if (!used.has(`${this.base}.${i}`)) ip = `${this.base}.${i}`;
      if (!ip) throw new AllocatorError('exhausted', `no free address in ${this.base}.0/24`);
      this.held.set(key, ip);
      await this.persist();
    }
    return this.addr(ip);
  }

  async claim(containerId: string, ifname: string, address: string): Promise<PodAddress> {
    this.mustBeReady();
    const key = `${containerId}/${ifname}`;
    const mine = this.held.get(key);
    if (mine === address) return this.addr(address);
    if (mine) throw new AllocatorError('unavailable', `${containerId}/${ifname} already holds ${mine}`);
    const last = Number(address.split('.')[3]);
    if (!address.startsWith(`${this.base}.`) || !(last >= 2 && last <= 254)) throw new AllocatorError('unavailable', `${address} is outside ${this.base}.0/24`);
    for (const [k, v] of this.held) if (v === address) throw new AllocatorError('unavailable', `${address} is held by ${k}`);
    this.held.set(key, address);
    await this.persist();
    return this.addr(address);
  }

  lookup(containerId: string, ifname: string): PodAddress | undefined {
    const ip = this.held.get(`${containerId}/${ifname}`);
    return ip ? this.addr(ip) : undefined;
  }

  async release(containerId: string, ifname: string): Promise<void> {
    if (this.held.delete(`${containerId}/${ifname}`)) await this.persist();
  }

  allocations(): Attachment[] {
    return [...this.held.keys()].map((k) => {
      const i = k.lastIndexOf('/');
      return { containerId: k.slice(0, i), ifname: k.slice(i + 1) };
    });
  }

  snapshot(): Record<string, string> {
    return Object.fromEntries(this.held);
  }

  private mustBeReady(): void {
    if (!this.isReady) throw new AllocatorError('not-ready', 'started with --not-ready');
  }

  private addr(ip: string): PodAddress {
    return { address: ip, prefixLength: 24, gateway: this.gateway };
  }

  /** Writes are chained so the file always ends with the latest state. */
  private persist(): Promise<void> {
    this.writing = this.writing.then(() => {
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify(this.snapshot()));
      const fd = openSync(tmp, 'r');
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, this.file);
    });
    return this.writing;
  }
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string, dflt?: string): string => {
    const i = argv.indexOf(name);
    const v = i >= 0 ? argv[i + 1] : dflt;
    if (v === undefined) throw new Error(`missing ${name}`);
    return v;
  };
  const runDir = arg('--run-dir');
  const stateDir = arg('--state-dir');
  const mtu = Number(arg('--mtu', '1500'));
  mkdirSync(runDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  const allocator = new FileAllocator(arg('--subnet'), join(stateDir, 'cni-allocations.json'), !argv.includes('--not-ready'));
  const log = (level: string, msg: string, fields?: Record<string, unknown>): void => {
    process.stderr.write(`${JSON.stringify({ level, msg, ...fields })}\n`);
  };
  const service = createCniService({ allocator, runDir, defaultMtu: () => mtu, log });
  const sock = socketPath(runDir);
  rmSync(sock, { force: true });
  const server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === CNI_HTTP_PATH) {
      void serveCniHttp(service, req, res);
      return;
    }
    if (req.method === 'GET' && req.url === '/debug/allocations') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(allocator.snapshot()));
      return;
    }
    res.writeHead(404).end();
  });
  server.listen(sock);
  await new Promise<void>((r) => server.once('listening', () => r()));
  await service.drainPending();
  process.stdout.write('ready\n');
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

/** A running stand-in daemon inside a test host. */
export class CniTestDaemon {
  private constructor(
    readonly host: TestHost,
    readonly child: ChildProcess,
    readonly subnet: string,
    readonly stderr: string[],
  ) {}

  static async start(host: TestHost, opts: { subnet: string; mtu?: number; notReady?: boolean }): Promise<CniTestDaemon> {
    const args = [DAEMON_JS, '--run-dir', host.runDir, '--state-dir', host.stateDir, '--subnet', opts.subnet, '--mtu', String(opts.mtu ?? 1500)];
    if (opts.notReady) args.push('--not-ready');
    const child = host.spawn(process.execPath, args);
    const stderr: string[] = [];
    child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
    await new Promise<void>((resolveReady, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`cni test daemon did not start: ${stderr.join('')}`)), 20_000);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('ready\n')) {
          clearTimeout(timer);
          resolveReady();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`cni test daemon exited ${code}: ${stderr.join('')}`));
      });
    });
    return new CniTestDaemon(host, child, opts.subnet, stderr);
  }

  /** SIGKILL: the socket file stays behind, like a crashed daemon's. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await exited;
  }

  /** What the allocator holds, read through the daemon's socket. */
  allocations(): Promise<Record<string, string>> {
    return new Promise((resolveAlloc, reject) => {
      const req = request({ socketPath: socketPath(this.host.runDir), path: '/debug/allocations' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolveAlloc(JSON.parse(body) as Record<string, string>));
      });
      req.on('error', reject);
      req.end();
    });
  }
}

/** Build what the e2e tests execute (dist/ JS) when it is missing or older than its sources. */
export function ensureBuilt(): void {
  const newest = (dirs: string[]): number => {
    let t = 0;
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) t = Math.max(t, st.mtimeMs);
      }
    };
    for (const d of dirs) if (existsSync(d)) walk(d);
    return t;
  };
  const mtime = (p: string): number => (existsSync(p) ? statSync(p).mtimeMs : 0);
  const sources = newest([join(REPO_ROOT, 'router/cni'), join(REPO_ROOT, 'cni'), join(REPO_ROOT, 'test/harness')]);
  if (mtime(DAEMON_JS) < sources || mtime(join(REPO_ROOT, 'dist/cni/plugin.js')) < sources) {
    try {
      execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.json')], { stdio: 'pipe' });
    } catch (err) {
      // tsc emits despite type errors elsewhere in the tree; only a missing output is fatal.
      if (mtime(DAEMON_JS) < sources) throw err;
    }
  }
  // The shim needs no step here: installCni() compiles cni/shim.c when build/cni/meshnet is missing or older.
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`cni-daemon: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
