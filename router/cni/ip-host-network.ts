// CniHostNetwork on iproute2: `ip -batch -` in the daemon's namespace for the
// host side and one `nsenter --net=<netns> ip -batch -` for the pod side, so an
// ADD costs two short helper processes. The host half can move to in-process
// netlink (datapath/netlink) later, leaving the one spawn Node cannot avoid:
// a Node thread cannot enter another network namespace.

import { spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import {
  HostNetworkError,
  type BridgeSpec,
  type CniHostNetwork,
  type NetnsState,
  type PodLink,
  type PodLinkState,
} from './types.js';

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface IpHostNetworkOptions {
  /** Absolute path of `ip`; found in the usual sbin/bin directories when omitted. */
  ip?: string;
  /** Absolute path of `nsenter`. */
  nsenter?: string;
  /** Helper processes running at once (ADD storms must not fork-bomb a small host). */
  maxConcurrent?: number;
  /** A helper that takes longer is killed and its step fails. */
  timeoutMs?: number;
}

const NOT_FOUND_RE = /Cannot find device|does not exist/;

export class IpHostNetwork implements CniHostNetwork {
  private readonly ip: string;
  private readonly nsenter: string;
  private readonly timeoutMs: number;
  private readonly maxConcurrent: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private selfNetnsDev: number | undefined;

  constructor(opts: IpHostNetworkOptions = {}) {
    this.ip = opts.ip ?? findTool('ip');
    this.nsenter = opts.nsenter ?? findTool('nsenter');
    this.maxConcurrent = opts.maxConcurrent ?? 8;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  async netnsState(path: string): Promise<NetnsState> {
    let dev: number;
    try {
      dev = (await fsp.stat(path)).dev;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
      throw err;
    }
    // Every namespace file (bind mount or /proc/<pid>/ns/net) lives on the one nsfs.
    this.selfNetnsDev ??= (await fsp.stat('/proc/self/ns/net')).dev;
    return dev === this.selfNetnsDev ? 'present' : 'not-netns';
  }

  async ensureBridge(spec: BridgeSpec): Promise<{ mac: string }> {
    let link = await this.showAddr(spec.name);
    if (!link) {
      const r = await this.batch(
        [
          `link add ${spec.name} mtu ${spec.mtu} address ${spec.mac} type bridge`,
          `addr add ${spec.gateway}/${spec.prefixLength} dev ${spec.name}`,
          `link set dev ${spec.name} up`,
        ],
      );
      // Someone else (the datapath) may have created it at the same moment.
      if (r.code !== 0 && !/File exists/.test(r.stderr)) throw new HostNetworkError('bridge', ipError(r));
      link = await this.showAddr(spec.name);
      if (!link) throw new HostNetworkError('bridge', `bridge ${spec.name} vanished after creation`);
    }
    const lines: string[] = [];
    const has = (link.addr_info ?? []).some((a) => a.family === 'inet' && a.local === spec.gateway && a.prefixlen === spec.prefixLength);
    if (!has) lines.push(`addr add ${spec.gateway}/${spec.prefixLength} dev ${spec.name}`);
    if (!(link.flags ?? []).includes('UP')) lines.push(`link set dev ${spec.name} up`);
    if (lines.length > 0) {
      const r = await this.batch(lines);
      if (r.code !== 0 && !/File exists/.test(r.stderr)) throw new HostNetworkError('bridge', ipError(r));
    }
    if (!link.address) throw new HostNetworkError('bridge', `bridge ${spec.name} has no hardware address`);
    return { mac: link.address };
  }

  async attach(l: PodLink): Promise<void> {
    const host = [
      `link add ${l.hostIfname} mtu ${l.mtu} address ${l.hostMac} master ${l.bridge} type veth peer name ${l.ifname} mtu ${l.mtu} address ${l.podMac} netns ${l.netns}`,
      ...(l.hairpin ? [`link set dev ${l.hostIfname} type bridge_slave hairpin on`] : []),
      `link set dev ${l.hostIfname} up`,
    ];
    const pod = [
      `addr add ${l.address}/${l.prefixLength} dev ${l.ifname}`,
      `link set dev ${l.ifname} up`,
      `route add default via ${l.gateway} dev ${l.ifname}`,
    ];
    await this.acquire();
    try {
      // Both helpers start at once (a spawn from Node costs a few ms); the pod's
      // `ip -batch` waits on its stdin until the host side has created the veth.
      const podSide = startProcess(this.nsenter, [`--net=${l.netns}`, this.ip, '-batch', '-'], this.timeoutMs);
      const hostSide = startProcess(this.ip, ['-batch', '-'], this.timeoutMs);
      hostSide.feed(`${host.join('\n')}\n`);
      const r1 = await hostSide.done;
      if (r1.code !== 0) {
        podSide.feed('');
        await podSide.done;
        throw new HostNetworkError('host veth', ipError(r1));
      }
      podSide.feed(`${pod.join('\n')}\n`);
      const r2 = await podSide.done;
      if (r2.code !== 0) throw new HostNetworkError('pod interface', ipError(r2));
    } finally {
      this.release();
    }
  }

  async detach(hostIfname: string): Promise<boolean> {
    const r = await this.run(this.ip, ['link', 'del', 'dev', hostIfname]);
    if (r.code === 0) return true;
    if (NOT_FOUND_RE.test(r.stderr)) return false;
    throw new HostNetworkError('delete veth', ipError(r));
  }

  async inspect(l: Pick<PodLink, 'netns' | 'ifname' | 'hostIfname'>): Promise<PodLinkState> {
    const [hostR, podR] = await Promise.all([
      this.run(this.ip, ['-j', 'link', 'show', 'dev', l.hostIfname]),
      this.run(this.nsenter, [`--net=${l.netns}`, this.ip, '-j', '-batch', '-'], `route show default\naddr show dev ${l.ifname}\n`),
    ]);
    const state: PodLinkState = { host: { exists: false }, pod: { exists: false, addresses: [], defaultGateways: [] } };
    const hostLink = parseJsonLines<IpLink>(hostR.stdout)[0]?.[0];
    if (hostR.code === 0 && hostLink) {
      state.host = { exists: true, up: (hostLink.flags ?? []).includes('UP') };
      if (hostLink.master) state.host.master = hostLink.master;
    }
    // Line 1: routes (never fails while the netns exists); line 2: the interface (fails when missing).
    const [routes, links] = parseJsonLines<IpRoute & IpLink>(podR.stdout);
    state.pod.defaultGateways = (routes ?? []).flatMap((r) => (r.dst === 'default' && r.gateway ? [r.gateway] : []));
    const podLink = links?.[0];
    if (podLink) {
      state.pod.exists = true;
      state.pod.up = (podLink.flags ?? []).includes('UP');
      if (podLink.address) state.pod.mac = podLink.address;
      if (podLink.mtu !== undefined) state.pod.mtu = podLink.mtu;
      state.pod.addresses = (podLink.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    }
    return state;
  }

  async bridgePorts(bridge: string): Promise<string[]> {
    const r = await this.run(this.ip, ['-j', 'link', 'show', 'master', bridge]);
    if (r.code !== 0) {
      if (NOT_FOUND_RE.test(r.stderr)) return [];
      throw new HostNetworkError('list ports', ipError(r));
    }
    return (parseJsonLines<IpLink>(r.stdout)[0] ?? []).map((l) => l.ifname ?? '').filter(Boolean);
  }

  private async showAddr(name: string): Promise<IpLink | undefined> {
    const r = await this.run(this.ip, ['-j', 'addr', 'show', 'dev', name]);
    if (r.code !== 0) {
      if (NOT_FOUND_RE.test(r.stderr)) return undefined;
      throw new HostNetworkError('bridge', ipError(r));
    }
    return parseJsonLines<IpLink>(r.stdout)[0]?.[0];
  }

  /** `ip -batch -` with `lines` in the daemon's namespace. */
  private batch(lines: string[]): Promise<RunResult> {
    return this.run(this.ip, ['-batch', '-'], `${lines.join('\n')}\n`);
  }

  private async run(cmd: string, args: string[], input = ''): Promise<RunResult> {
    await this.acquire();
    try {
      return await runProcess(cmd, args, input, this.timeoutMs);
    } finally {
      this.release();
    }
  }

  private acquire(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

interface IpLink {
  ifname?: string;
  address?: string;
  mtu?: number;
  master?: string;
  flags?: string[];
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

interface IpRoute {
  dst?: string;
  gateway?: string;
}

interface StartedProcess {
  /** Write stdin and close it. */
  feed(input: string): void;
  done: Promise<RunResult>;
}

function startProcess(cmd: string, args: string[], timeoutMs: number): StartedProcess {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // A helper that exits early (nsenter into a vanished netns) closes its stdin: not our error.
  child.stdin.on('error', () => undefined);
  const done = new Promise<RunResult>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + String(err) });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128, stdout, stderr: signal ? `${stderr}killed by ${signal} after ${timeoutMs} ms` : stderr });
    });
  });
  return { feed: (input) => child.stdin.end(input), done };
}

function runProcess(cmd: string, args: string[], input: string, timeoutMs: number): Promise<RunResult> {
  const p = startProcess(cmd, args, timeoutMs);
  p.feed(input);
  return p.done;
}

/** ip's complaint as one line ("RTNETLINK answers: File exists (line 1)"). */
function ipError(r: RunResult): string {
  const lines = r.stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const failed = lines.map((l) => /^Command failed -:(\d+)/.exec(l)).find(Boolean);
  const reason = lines.filter((l) => !/^Command failed/.test(l)).join('; ') || `exit ${r.code}`;
  return failed ? `${reason} (batch line ${failed[1]})` : reason;
}

function parseJsonLines<T>(stdout: string): T[][] {
  const out: T[][] = [];
  for (const line of stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('[')) continue;
    try {
      out.push(JSON.parse(t) as T[]);
    } catch {
      /* not ip's JSON: ignore */
    }
  }
  return out;
}

function findTool(name: string): string {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return name;
}
