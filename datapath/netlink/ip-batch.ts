// The iproute2 fallback. Node cannot setns(2), so a netlink socket of ours
// always lives in the daemon's namespace; work *inside* another namespace
// (a pod's addresses and routes) runs as one `ip -batch -` (or
// `bridge -batch -`) spawned in that namespace: one process per pod, however
// many commands (bench/netlink.ts measures the cost). The command lines are
// built by pure functions so they are unit-tested without spawning anything.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ipFamily, normalizeMac, parseCidr } from './attrs.js';
import { NetlinkError, fromIprouteStderr } from './errors.js';
import type { Address, FdbSpec, Link, NeighbourSpec, RouteSpec, WriteMode } from './types.js';

/** Absolute paths: the CNI side may run with no PATH at all. */
function tool(name: 'ip' | 'bridge' | 'nsenter'): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    const p = `${dir}/${name}`;
    if (existsSync(p)) return p;
  }
  return name;
}

const SAFE_TOKEN = /^[A-Za-z0-9_.:/@%+-]+$/;

/** Reject anything that could split or extend a batch line. */
function tok(v: string | number): string {
  const s = String(v);
  if (!SAFE_TOKEN.test(s)) throw new TypeError(`unsafe token for ip batch: ${JSON.stringify(s)}`);
  return s;
}

/** Lines for `ip -batch` / `bridge -batch`. */
export const ipLine = {
  linkUp: (dev: string): string => `link set dev ${tok(dev)} up`,
  linkDown: (dev: string): string => `link set dev ${tok(dev)} down`,
  linkMtu: (dev: string, mtu: number): string => `link set dev ${tok(dev)} mtu ${tok(mtu)}`,
  linkRename: (dev: string, name: string): string => `link set dev ${tok(dev)} name ${tok(name)}`,
  linkMaster: (dev: string, master: string | null): string => (master === null ? `link set dev ${tok(dev)} nomaster` : `link set dev ${tok(dev)} master ${tok(master)}`),
  linkDelete: (dev: string): string => `link del dev ${tok(dev)}`,
  bridgeCreate: (name: string): string => `link add name ${tok(name)} type bridge`,
  vethCreate: (name: string, peer: string): string => `link add name ${tok(name)} type veth peer name ${tok(peer)}`,
  addrAdd: (dev: string, cidr: string): string => {
    parseCidr(cidr);
    return `addr add ${tok(cidr)} dev ${tok(dev)}`;
  },
  addrDel: (dev: string, cidr: string): string => {
    parseCidr(cidr);
    return `addr del ${tok(cidr)} dev ${tok(dev)}`;
  },
  route: (verb: 'add' | 'replace' | 'del', r: RouteSpec): string => {
    parseCidr(r.dst);
    const parts = ['route', verb, tok(r.dst)];
    if (r.gateway) parts.push('via', tok(r.gateway));
    if (r.dev !== undefined) parts.push('dev', tok(r.dev));
    if (r.src) parts.push('src', tok(r.src));
    if (r.metric !== undefined) parts.push('metric', tok(r.metric));
    if (r.table !== undefined) parts.push('table', tok(r.table));
    if (r.scope) parts.push('scope', r.scope);
    if (r.onlink) parts.push('onlink');
    return parts.join(' ');
  },
  neighSet: (n: NeighbourSpec, mode: Exclude<WriteMode, 'append'> = 'replace'): string => {
    ipFamily(n.ip);
    const parts = ['neigh', mode, tok(n.ip), 'lladdr', normalizeMac(n.mac), 'dev', tok(n.dev), 'nud', 'permanent'];
    if (n.protocol !== undefined) parts.push('protocol', tok(n.protocol));
    return parts.join(' ');
  },
  neighDel: (dev: string, ip: string): string => {
    ipFamily(ip);
    return `neigh del ${tok(ip)} dev ${tok(dev)}`;
  },
};

/** Lines for `bridge -batch`. */
export const bridgeLine = {
  fdb: (verb: WriteMode | 'del', f: FdbSpec): string => {
    const parts = ['fdb', verb, normalizeMac(f.mac), 'dev', tok(f.dev)];
    if (f.dst) parts.push('dst', tok(f.dst));
    if (f.vni !== undefined) parts.push('vni', tok(f.vni));
    parts.push(f.target);
    if (verb !== 'del') parts.push(f.target === 'self' ? 'permanent' : 'static');
    if (verb !== 'del' && f.sticky) parts.push('sticky');
    return parts.join(' ');
  },
  portFlags: (dev: string, flags: Record<string, boolean | undefined>): string => {
    const names: Record<string, string> = {
      hairpin: 'hairpin',
      learning: 'learning',
      unicastFlood: 'flood',
      multicastFlood: 'mcast_flood',
      broadcastFlood: 'bcast_flood',
      neighSuppress: 'neigh_suppress',
      proxyArp: 'proxy_arp',
      isolated: 'isolated',
    };
    const parts = ['link', 'set', 'dev', tok(dev)];
    for (const [k, v] of Object.entries(flags)) if (v !== undefined && names[k]) parts.push(names[k]!, v ? 'on' : 'off');
    return parts.join(' ');
  },
};

export interface SpawnResult {
  stdout: string;
  stderr: string;
  code: number;
}

function run(cmd: string, args: string[], input: string): Promise<SpawnResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: {} });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ stdout, stderr: stderr + String(err), code: 127 }));
    child.on('close', (code) => resolve({ stdout, stderr, code: code ?? 1 }));
    // A child that dies before reading its input makes the write fail with
    // EPIPE; its exit status and stderr tell the story.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Where an iproute2 command runs: this namespace, or inside another one via nsenter. */
export class IpBatchNetns {
  /** @param nsPath a namespace file (/var/run/netns/x, /proc/PID/ns/net); undefined = our own. */
  constructor(readonly nsPath?: string) {}

  private argv(toolName: 'ip' | 'bridge', args: string[]): [string, string[]] {
    if (!this.nsPath) return [tool(toolName), args];
    return [tool('nsenter'), [`--net=${this.nsPath}`, '--', tool(toolName), ...args]];
  }

  /** Run `ip -batch -` with these lines: all succeed or the first failure throws. */
  async ip(lines: string[], operation = 'ip batch'): Promise<void> {
    if (lines.length === 0) return;
    const [cmd, args] = this.argv('ip', ['-batch', '-']);
    const r = await run(cmd, args, lines.join('\n') + '\n');
    if (r.code !== 0) throw fromIprouteStderr(`${operation}${failedLine(r.stderr, lines)}`, r.stderr);
  }

  /** Run `bridge -batch -` with these lines. */
  async bridge(lines: string[], operation = 'bridge batch'): Promise<void> {
    if (lines.length === 0) return;
    const [cmd, args] = this.argv('bridge', ['-batch', '-']);
    const r = await run(cmd, args, lines.join('\n') + '\n');
    if (r.code !== 0) throw fromIprouteStderr(`${operation}${failedLine(r.stderr, lines)}`, r.stderr);
  }

  /** One `ip -j` query. */
  private async query(args: string[], operation: string): Promise<unknown> {
    const [cmd, argv] = this.argv('ip', ['-j', ...args]);
    const r = await run(cmd, argv, '');
    if (r.code !== 0) throw fromIprouteStderr(operation, r.stderr);
    try {
      return JSON.parse(r.stdout || '[]');
    } catch {
      throw new NetlinkError(operation, 0, 'UNKNOWN', 'unparseable ip -j output');
    }
  }

  async getLink(name: string): Promise<Link | undefined> {
    try {
      const [j] = (await this.query(['-d', 'link', 'show', 'dev', tok(name)], `get link ${name}`)) as IpJsonLink[];
      return j ? linkFromJson(j) : undefined;
    } catch (err) {
      if (err instanceof NetlinkError && err.code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async listAddresses(name: string): Promise<Address[]> {
    const list = (await this.query(['addr', 'show', 'dev', tok(name)], `list addresses of ${name}`)) as IpJsonAddrs[];
    const out: Address[] = [];
    for (const l of list) {
      for (const a of l.addr_info ?? []) {
        if (a.family !== 'inet' && a.family !== 'inet6') continue;
        out.push({ ifindex: l.ifindex, family: a.family === 'inet' ? 4 : 6, address: a.local, prefixLength: a.prefixlen, label: a.label });
      }
    }
    return out;
  }

  /**
   * Bring up the pod side of a veth in one spawn: lo up, the interface up with
   * its MTU, addresses, then routes (routes last: their next hop must be on
   * a configured subnet).
   */
  async configureInterface(c: { dev: string; addresses: string[]; routes?: RouteSpec[]; mtu?: number; rename?: string }): Promise<void> {
    const dev = c.rename ?? c.dev;
    const lines = ['link set dev lo up'];
    if (c.rename) lines.push(ipLine.linkRename(c.dev, c.rename));
    if (c.mtu !== undefined) lines.push(ipLine.linkMtu(dev, c.mtu));
    lines.push(ipLine.linkUp(dev));
    for (const a of c.addresses) lines.push(ipLine.addrAdd(dev, a));
    for (const r of c.routes ?? []) lines.push(ipLine.route('replace', { ...r, dev: r.dev ?? dev }));
    await this.ip(lines, `configure ${dev}`);
  }
}

function failedLine(stderr: string, lines: string[]): string {
  const m = /Command failed -:(\d+)/.exec(stderr);
  const line = m ? lines[Number(m[1]) - 1] : undefined;
  return line ? ` (${line})` : '';
}

interface IpJsonLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  link_index?: number;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
}

interface IpJsonAddrs {
  ifindex: number;
  addr_info?: { family: string; local: string; prefixlen: number; label?: string }[];
}

export function linkFromJson(j: IpJsonLink): Link {
  const flags = j.flags ?? [];
  return {
    index: j.ifindex,
    name: j.ifname,
    kind: j.linkinfo?.info_kind,
    mtu: j.mtu,
    mac: j.address && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(j.address) ? j.address : undefined,
    up: flags.includes('UP'),
    lowerUp: flags.includes('LOWER_UP'),
    master: undefined,
    link: j.link_index,
    linkNetnsId: j.link_netnsid,
  };
}
