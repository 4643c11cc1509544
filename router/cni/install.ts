// `meshnet install-cni`: put the `meshnet` plugin into the CNI bin dir and the
// conflist (DESIGN §4) into the conf dir. Runtimes call plugins with almost no
// environment (podman's cleanup passes no PATH), so what is installed depends
// on nothing found through PATH:
//   1. the C shim (cni/shim.c): the prebuilt build/cni/meshnet when it is
//      current, else compiled here with cc/gcc;
//   2. when no compiler works: a /bin/sh wrapper that execs the absolute node
//      path with the absolute path of dist/cni/plugin.js (same protocol,
//      ~70 ms slower per call).
// Every file is written atomically (temp file, fsync, rename).

import { execFile } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DEFAULT_BRIDGE } from './config.js';
import { DEFAULT_RUN_DIR } from './protocol.js';
import { SUPPORTED_VERSIONS } from './version.js';

const execFileAsync = promisify(execFile);

export const DEFAULT_BIN_DIR = '/opt/cni/bin';
export const DEFAULT_CONF_DIR = '/etc/cni/net.d';
export const CONFLIST_NAME = '10-meshnet.conflist';
export const PLUGIN_NAME = 'meshnet';

export interface InstallCniOptions {
  binDir?: string;
  confDir?: string;
  /** The daemon's run dir; recorded in the conflist so the plugin finds the socket. */
  runDir?: string;
  /** Written into the conflist (0: the overlay's MTU). */
  mtu?: number;
  /** The network's name in the conflist (default "meshnet"). */
  networkName?: string;
  /** Install the Node fallback even when the shim could be built (tests, benchmarks). */
  kind?: 'auto' | 'node';
  /** Where meshnet is installed (default: found from this file). */
  packageRoot?: string;
  /** Absolute path of node for the fallback (default: the running node). */
  nodePath?: string;
  /** C compilers to try, by absolute path (default: cc, gcc in the usual bin dirs). */
  compilers?: string[];
}

export interface InstallCniResult {
  plugin: string;
  kind: 'shim' | 'node';
  conflist: string;
  /** How the shim was obtained, or why the fallback was used. */
  note: string;
}

/** The conflist of DESIGN §4, with the run dir it should use. */
export function meshnetConflist(opts: { runDir?: string; mtu?: number; networkName?: string } = {}): Record<string, unknown> {
  return {
    cniVersion: '1.0.0',
    name: opts.networkName ?? 'meshnet',
    plugins: [
      { type: PLUGIN_NAME, runDir: resolve(opts.runDir ?? DEFAULT_RUN_DIR), bridge: DEFAULT_BRIDGE, mtu: opts.mtu ?? 0, hairpinMode: true },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

export async function installCni(opts: InstallCniOptions = {}): Promise<InstallCniResult> {
  const binDir = resolve(opts.binDir ?? DEFAULT_BIN_DIR);
  const confDir = resolve(opts.confDir ?? DEFAULT_CONF_DIR);
  const root = opts.packageRoot ?? packageRoot();
  await fsp.mkdir(binDir, { recursive: true, mode: 0o755 });
  await fsp.mkdir(confDir, { recursive: true, mode: 0o755 });
  const plugin = join(binDir, PLUGIN_NAME);

  let kind: 'shim' | 'node' = 'node';
  let note = 'Node fallback requested';
  if (opts.kind !== 'node') {
    const shim = await obtainShim(root, binDir, opts.compilers);
    if (shim.path) {
      await installExecutable(shim.path, plugin);
      kind = 'shim';
      note = shim.note;
    } else {
      note = `Node fallback: ${shim.note}`;
    }
  }
  if (kind === 'node') {
    const script = join(root, 'dist', 'cni', 'plugin.js');
    if (!existsSync(script)) throw new Error(`cannot install the CNI plugin: ${script} is missing (run "npm run build")`);
    const node = resolve(opts.nodePath ?? process.execPath);
    const wrapper = `#!/bin/sh\n# meshnet CNI plugin, Node fallback (${note}).\nexec ${shQuote(node)} ${shQuote(script)} "$@"\n`;
    await writeFileAtomic(plugin, wrapper, 0o755);
  }

  const conflist = join(confDir, CONFLIST_NAME);
  await writeFileAtomic(conflist, `${JSON.stringify(meshnetConflist(opts), null, 2)}\n`, 0o644);
  return { plugin, kind, conflist, note };
}

/** A working shim binary: the prebuilt one when current, else compiled into a temp file in binDir. */
async function obtainShim(root: string, binDir: string, compilers?: string[]): Promise<{ path?: string; note: string }> {
  const source = join(root, 'cni', 'shim.c');
  const prebuilt = join(root, 'build', 'cni', 'meshnet');
  if (existsSync(prebuilt) && (!existsSync(source) || statSync(prebuilt).mtimeMs >= statSync(source).mtimeMs) && (await speaksCni(prebuilt))) {
    return { path: prebuilt, note: `copied ${prebuilt}` };
  }
  if (!existsSync(source)) return { note: `no prebuilt shim and no ${source}` };
  const tried: string[] = [];
  for (const cc of compilers ?? findCompilers()) {
    const out = join(binDir, `.meshnet-build-${process.pid}`);
    const flags = ['-O2', '-s', '-o', out, source];
    try {
      // Static first (no loader, fastest start), dynamic when there is no static libc.
      await execFileAsync(cc, ['-static', ...flags]).catch(() => execFileAsync(cc, flags));
      if (await speaksCni(out)) return { path: out, note: `compiled with ${cc}` };
      tried.push(`${cc}: built binary does not answer VERSION`);
    } catch (err) {
      tried.push(`${cc}: ${String((err as Error).message).split('\n')[0]}`);
    }
    await fsp.rm(out, { force: true });
  }
  return { note: tried.length ? `no working C compiler (${tried.join('; ')})` : 'no C compiler found' };
}

/** Does the binary run here and answer VERSION with our versions? */
async function speaksCni(path: string): Promise<boolean> {
  try {
    const run = execFileAsync(path, [], { env: { CNI_COMMAND: 'VERSION' }, timeout: 5000 });
    run.child.stdin?.end('{"cniVersion":"1.0.0"}');
    const { stdout } = await run;
    const v = JSON.parse(stdout) as { supportedVersions?: unknown };
    return JSON.stringify(v.supportedVersions) === JSON.stringify(SUPPORTED_VERSIONS);
  } catch {
    return false;
  }
}

async function installExecutable(from: string, to: string): Promise<void> {
  const data = await fsp.readFile(from);
  await writeFileAtomic(to, data, 0o755);
  if (dirname(from) === dirname(to) && from !== to) await fsp.rm(from, { force: true });
}

/** temp file in the same dir, fsync, chmod, rename, fsync the dir. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${PLUGIN_NAME}-${process.pid}-${Date.now()}.tmp`);
  const fh = await fsp.open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await fsp.rename(tmp, path);
  const dh = await fsp.open(dirname(path), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

function findCompilers(): string[] {
  const out: string[] = [];
  for (const name of ['cc', 'gcc', 'clang'])
    for (const dir of ['/usr/local/bin', '/usr/bin', '/bin']) if (existsSync(join(dir, name))) out.push(join(dir, name));
  return out;
}

/** The directory with meshnet's package.json (works from router/cni/ and dist/router/cni/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'meshnet') return dir;
      } catch {
        /* not ours */
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the meshnet package root');
    dir = up;
  }
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
