// Real container runtimes (podman 4.3 with the CNI backend, containerd 1.6
// with `ctr run --cni`) and a small spec-following conflist runner, each set
// up inside a test host's network namespace with configuration, storage and
// state of its own under the host's directory. What it took to make each one
// work here is written up in docs/cni.md ("Real runtimes").
//
// The runtimes run with `nsenter --net=` (not `ip netns exec`): they need the
// host's real /sys/fs/cgroup, which `ip netns exec` hides by remounting /sys,
// and podman's /run/netns/netns-* mounts must stay visible to the daemon.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, type ExecResult, type TestHost } from './netns.js';

const STD_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Run a command in `host`'s network namespace but the root mount namespace. */
export function nsExec(host: TestHost, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn('nsenter', [`--net=/run/netns/${host.ns}`, cmd, ...args], { env: opts.env ?? { PATH: STD_PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: stderr + String(err), code: 127 });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code: code ?? (signal ? 128 : 1) });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

async function must(r: Promise<ExecResult>, what: string): Promise<string> {
  const x = await r;
  if (x.code !== 0) throw new Error(`${what} exited ${x.code}: ${(x.stderr || x.stdout).trim().slice(0, 2000)}`);
  return x.stdout;
}

/** The body of `GET /` from ip:port, fetched with busybox nc (busybox-static's wget crashes here); '' on failure. */
export function httpGetCommand(ip: string, port: number): [string, string[]] {
  return ['/bin/sh', ['-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 ${ip} ${port}`]];
}

export function httpBody(response: string): string {
  const i = response.indexOf('\r\n\r\n');
  return i < 0 ? '' : response.slice(i + 4);
}

// ---------------------------------------------------------------- images

const APPLETS = ['sh', 'ip', 'ping', 'httpd', 'nc', 'wget', 'sleep', 'cat', 'echo', 'ls', 'true', 'hostname', 'ifconfig', 'route'];

/** A busybox-static root filesystem with an httpd document at /www/index.html ("hello-from-pod"). */
export function buildBusyboxRootfs(dir: string): string {
  const root = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'www', 'root']) mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  execFileSync('chmod', ['755', join(root, 'bin/busybox')]);
  for (const a of APPLETS) if (!existsSync(join(root, 'bin', a))) symlinkSync('busybox', join(root, 'bin', a));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
  writeFileSync(join(root, 'www/index.html'), 'hello-from-pod\n');
  return root;
}

export function tarRootfs(root: string, tarPath: string): string {
  execFileSync('tar', ['-C', root, '-cf', tarPath, '.']);
  return tarPath;
}

// ---------------------------------------------------------------- conflist runner

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

export interface AttachmentSpec {
  containerId: string;
  netns: string;
  ifname: string;
  /** Capability arguments (portMappings, bandwidth, mac…), given to plugins that declare them. */
  capabilityArgs?: Record<string, unknown>;
  cniArgs?: string;
}

export class CniPluginFailure extends Error {
  constructor(
    readonly plugin: string,
    readonly command: string,
    readonly result: ExecResult,
  ) {
    super(`${plugin} ${command} exited ${result.code}: ${(result.stdout || result.stderr).trim()}`);
  }
}

/**
 * Executes a network configuration list the way the CNI spec's section 3
 * says a runtime must: ADD in order with each result as the next prevResult,
 * CHECK and DEL with the final ADD result (DEL in reverse order).
 */
export class ConflistRunner {
  constructor(
    private readonly host: TestHost,
    private readonly conflist: Conflist,
    private readonly binDirs: string[],
  ) {}

  async add(a: AttachmentSpec): Promise<Record<string, unknown>> {
    let prev: Record<string, unknown> | undefined;
    for (const plugin of this.conflist.plugins) {
      const out = await this.exec('ADD', plugin, a, prev);
      prev = JSON.parse(out.stdout) as Record<string, unknown>;
    }
    return prev ?? {};
  }

  /** CHECK every plugin, or those whose type is in `only`. */
  async check(a: AttachmentSpec, result: Record<string, unknown>, only?: string[]): Promise<void> {
    for (const plugin of this.conflist.plugins) if (!only || only.includes(String(plugin.type))) await this.exec('CHECK', plugin, a, result);
  }

  async del(a: AttachmentSpec, result?: Record<string, unknown>): Promise<void> {
    for (const plugin of [...this.conflist.plugins].reverse()) await this.exec('DEL', plugin, a, result);
  }

  private async exec(command: string, plugin: Record<string, unknown>, a: AttachmentSpec, prev?: Record<string, unknown>): Promise<ExecResult> {
    const type = String(plugin.type);
    const { capabilities, ...rest } = plugin as { capabilities?: Record<string, boolean> };
    const config: Record<string, unknown> = { ...rest, cniVersion: this.conflist.cniVersion, name: this.conflist.name };
    const runtimeConfig: Record<string, unknown> = {};
    for (const [cap, on] of Object.entries(capabilities ?? {})) if (on && a.capabilityArgs?.[cap] !== undefined) runtimeConfig[cap] = a.capabilityArgs[cap];
    if (Object.keys(runtimeConfig).length > 0) config.runtimeConfig = runtimeConfig;
    if (prev) config.prevResult = prev;
    const bin = this.binDirs.map((d) => join(d, type)).find((p) => existsSync(p));
    if (!bin) throw new Error(`plugin ${type} not found in ${this.binDirs.join(':')}`);
    const env = {
      CNI_COMMAND: command,
      CNI_CONTAINERID: a.containerId,
      CNI_NETNS: a.netns,
      CNI_IFNAME: a.ifname,
      CNI_ARGS: a.cniArgs ?? '',
      CNI_PATH: this.binDirs.join(':'),
      // The reference plugins exec iptables/tc through PATH.
      PATH: STD_PATH,
    };
    const r = await this.host.exec(bin, [], { env, input: JSON.stringify(config), timeoutMs: 60_000 });
    if (r.code !== 0) throw new CniPluginFailure(type, command, r);
    return r;
  }
}

// ---------------------------------------------------------------- podman

export interface PodmanOptions {
  /** Directory with the runtime's conflists (network_config_dir). */
  cniConfDir: string;
  /** Where podman looks for plugins (cni_plugin_dirs), in order. */
  cniBinDirs: string[];
  /** The image to import from a rootfs tarball, e.g. "localhost/mnbusybox:latest". */
  image: string;
  rootfsTar: string;
}

/**
 * podman 4.3 with the CNI network backend, rootful, with storage, run root,
 * tmp dir, events log and HOME under `<host.dir>/podman`. runc (crun fails on
 * this VM's cgroup layout), cgroupfs, and ulimits below the sandbox's hard limits.
 */
export class PodmanRuntime {
  readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly host: TestHost,
    readonly opts: PodmanOptions,
  ) {
    this.dir = join(host.dir, 'podman');
    this.env = {
      PATH: STD_PATH,
      HOME: this.dir,
      CONTAINERS_CONF: join(this.dir, 'containers.conf'),
      CONTAINERS_STORAGE_CONF: join(this.dir, 'storage.conf'),
      CONTAINERS_REGISTRIES_CONF: join(this.dir, 'registries.conf'),
    };
  }

  static async create(host: TestHost, opts: PodmanOptions): Promise<PodmanRuntime> {
    const p = new PodmanRuntime(host, opts);
    mkdirSync(join(p.dir, 'tmp'), { recursive: true });
    const list = (xs: string[]): string => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
    writeFileSync(
      join(p.dir, 'containers.conf'),
      [
        '[containers]',
        // podman's defaults (nofile 1048576) exceed the sandbox's hard limits and runc refuses to start.
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ${list(opts.cniBinDirs)}`,
        `network_config_dir = ${JSON.stringify(opts.cniConfDir)}`,
        '[engine]',
        'runtime = "runc"',
        'cgroup_manager = "cgroupfs"',
        'events_logger = "file"',
        `events_logfile_path = ${JSON.stringify(join(p.dir, 'events.log'))}`,
        `tmp_dir = ${JSON.stringify(join(p.dir, 'tmp'))}`,
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(p.dir, 'storage.conf'),
      ['[storage]', 'driver = "vfs"', `graphroot = ${JSON.stringify(join(p.dir, 'graph'))}`, `runroot = ${JSON.stringify(join(p.dir, 'runroot'))}`, ''].join('\n'),
    );
    writeFileSync(join(p.dir, 'registries.conf'), 'unqualified-search-registries = []\n');
    await must(p.podman(['import', opts.rootfsTar, opts.image]), 'podman import');
    return p;
  }

  podman(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
    return nsExec(this.host, 'podman', args, { env: this.env, timeoutMs });
  }

  /**
   * Remove every container (podman's cleanup removes its netns, runc state and
   * CNI result cache) and this runtime's storage. Not `podman system reset`:
   * that also deletes the conflists in network_config_dir.
   */
  async destroy(): Promise<void> {
    await this.podman(['rm', '-af', '-t', '0']);
    await this.podman(['rmi', '-af']);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- containerd

export interface ContainerdOptions {
  /** Becomes /etc/cni/net.d for ctr (ctr 1.6 has no flag for it). */
  cniConfDir: string;
  /** Becomes /opt/cni/bin for ctr. */
  cniBinDir: string;
  /** The root filesystem for `ctr run --rootfs`. */
  rootfs: string;
}

/**
 * containerd 1.6 with its root, state and sockets under `<host.dir>/containerd`,
 * the CRI plugin disabled, and `ctr` run in a private mount namespace where our
 * conf and bin dirs (and a private CNI result cache) sit at the fixed paths
 * ctr's go-cni reads: /etc/cni/net.d, /opt/cni/bin, /var/lib/cni.
 */
export class ContainerdRuntime {
  readonly dir: string;
  readonly namespace: string;
  private readonly address: string;

  private constructor(
    readonly host: TestHost,
    readonly opts: ContainerdOptions,
    private readonly daemon: ChildProcess,
    readonly log: string[],
  ) {
    this.dir = join(host.dir, 'containerd');
    this.address = join(this.dir, 'containerd.sock');
    this.namespace = host.net.prefix;
  }

  static async start(host: TestHost, opts: ContainerdOptions): Promise<ContainerdRuntime> {
    // ctr reads /etc/cni/net.d; we bind our dir over it, which needs the mount point (the CNI packages create it).
    if (!existsSync('/etc/cni/net.d')) throw new Error('/etc/cni/net.d is missing: install containernetworking-plugins');
    const dir = join(host.dir, 'containerd');
    mkdirSync(join(dir, 'cni-cache'), { recursive: true });
    const config = join(dir, 'config.toml');
    writeFileSync(
      config,
      [
        'version = 2',
        `root = ${JSON.stringify(join(dir, 'root'))}`,
        `state = ${JSON.stringify(join(dir, 'state'))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        '[grpc]',
        `  address = ${JSON.stringify(join(dir, 'containerd.sock'))}`,
        '[ttrpc]',
        `  address = ${JSON.stringify(join(dir, 'containerd.sock.ttrpc'))}`,
        '[debug]',
        '  address = ""',
        '[metrics]',
        '  address = ""',
        '',
      ].join('\n'),
    );
    const child = spawn('nsenter', [`--net=/run/netns/${host.ns}`, 'containerd', '--config', config], { env: { PATH: STD_PATH }, stdio: ['ignore', 'pipe', 'pipe'] });
    host.net.track(child);
    const log: string[] = [];
    child.stdout!.setEncoding('utf8').on('data', (d: string) => log.push(d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => log.push(d));
    const rt = new ContainerdRuntime(host, opts, child, log);
    await waitFor(() => log.join('').includes('containerd successfully booted'), 20_000, 'containerd to boot');
    return rt;
  }

  /** `ctr` against this containerd, in a private mount namespace with the CNI paths bound to ours. */
  ctr(args: string[], timeoutMs = 60_000): Promise<ExecResult> {
    const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    const cache = join(this.dir, 'cni-cache');
    const script = [
      'set -e',
      'mount -t tmpfs meshnet-test /opt && mkdir -p /opt/cni/bin',
      `mount --bind ${q(this.opts.cniBinDir)} /opt/cni/bin`,
      `mount --bind ${q(this.opts.cniConfDir)} /etc/cni/net.d`,
      // The result cache: bind ours over /var/lib/cni, or hide /var/lib behind a tmpfs when it has no cni dir.
      `if [ -d /var/lib/cni ]; then mount --bind ${q(cache)} /var/lib/cni; else mount -t tmpfs meshnet-test /var/lib && mkdir -p /var/lib/cni; fi`,
      `exec ctr --address ${q(this.address)} --namespace ${q(this.namespace)} "$@"`,
    ].join('\n');
    return nsExec(this.host, 'unshare', ['--mount', '/bin/sh', '-c', script, 'ctr', ...args], { timeoutMs });
  }

  /** Kill and delete every task and container of our namespace, then stop containerd. */
  async destroy(): Promise<void> {
    const list = await this.ctr(['containers', 'list', '--quiet']);
    for (const id of list.stdout.split('\n').filter(Boolean)) {
      await this.ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
      // Deleting a task fails until it has exited; "not found" means there was none.
      await waitFor(async () => {
        const r = await this.ctr(['tasks', 'delete', id]);
        return r.code === 0 || /not found/.test(r.stderr);
      }, 10_000, `task ${id} to go`).catch(() => undefined);
      await this.ctr(['containers', 'delete', id]);
    }
    if (this.daemon.exitCode === null && this.daemon.signalCode === null) {
      const exited = new Promise((r) => this.daemon.once('exit', r));
      this.daemon.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (this.daemon.exitCode === null && this.daemon.signalCode === null) this.daemon.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
    // The runc shim keeps per-namespace state under /run/containerd/runc/<namespace>; empty by now.
    try {
      rmdirSync(join('/run/containerd/runc', this.namespace));
    } catch {
      /* not there, or not empty: leave it */
    }
  }
}
