// The real meshnet daemon as the CNI tests and benchmark see it: launched in
// a test host with its own run and state dirs and an IPAM range of one /24,
// killed with -9 to play a crash, and asked what its IPAM holds.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callApi } from '../../router/api-client.js';
import { crashDaemon, launch } from './meshnet.js';
import { assertTestAddress, type TestHost } from './netns.js';

export const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '../../..').replace(/\/dist$/, '');
export const SHIM_BINARY = join(REPO_ROOT, 'build/cni/meshnet');

export class CniTestDaemon {
  private constructor(
    readonly host: TestHost,
    readonly subnet: string,
  ) {}

  /**
   * Launch meshnet in `host` with `subnet` as its whole IPAM range (it claims
   * it alone: consensus of one). `notReady` launches an observer, which never
   * owns space by itself, so IPAM is not ready.
   */
  static async start(host: TestHost, opts: { subnet: string; mtu?: number; notReady?: boolean }): Promise<CniTestDaemon> {
    assertTestAddress(opts.subnet.split('/')[0]!);
    const args = ['--ipalloc-range', opts.subnet, '--ipalloc-init', opts.notReady ? 'observer' : 'consensus=1'];
    if (opts.mtu) args.push('--mtu', String(opts.mtu));
    await launch(host, { args });
    return new CniTestDaemon(host, opts.subnet);
  }

  /** kill -9: the socket file stays behind, like a crashed daemon's. */
  async kill(): Promise<void> {
    try {
      crashDaemon(this.host);
    } catch {
      return; // not running
    }
    await new Promise((r) => setTimeout(r, 200));
  }

  /** What IPAM holds for containers: "containerId/ifname" → address. */
  async allocations(): Promise<Record<string, string>> {
    const list = await callApi<{ containerId: string; iface: string; address: string }[]>(this.host.runDir, 'GET', '/ipam/allocations');
    const out: Record<string, string> = {};
    for (const a of list) if (a.containerId !== 'meshnet.host') out[`${a.containerId}/${a.iface}`] = a.address;
    return out;
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
  const main = join(REPO_ROOT, 'dist/cli/main.js');
  const sources = newest(['router', 'cni', 'mesh', 'crypto', 'datapath', 'cli', 'test/harness'].map((d) => join(REPO_ROOT, d)));
  if (mtime(main) < sources || mtime(join(REPO_ROOT, 'dist/cni/plugin.js')) < sources) {
    try {
      execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', join(REPO_ROOT, 'tsconfig.json')], { stdio: 'pipe' });
    } catch (err) {
      // tsc emits despite type errors elsewhere in the tree; only a missing output is fatal.
      if (mtime(main) < sources) throw err;
    }
  }
  // The shim needs no step here: installCni() compiles cni/shim.c when build/cni/meshnet is missing or older.
}
