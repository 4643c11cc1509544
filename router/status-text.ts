// `meshnet status` as text for people, in the format of docs/status-format.md:
// a summary block like Weave's, then the peers, connections, IPAM and
// targets views. A pure function of the status JSON (the contract); this is
// presentation only.

import type { ConnectionStatus } from '../mesh/mesh.js';
import type { PeerStatus, StatusJson } from './status.js';

export type StatusView = 'summary' | 'peers' | 'connections' | 'targets' | 'ipam';

export function formatStatus(view: StatusView, s: StatusJson, now: Date = new Date()): string {
  switch (view) {
    case 'peers':
      return formatPeers(s);
    case 'connections':
      return formatConnections(s);
    case 'targets':
      return formatTargets(s);
    case 'ipam':
      return formatIpam(s);
    default:
      return formatSummary(s, now);
  }
}

function who(name: string, nickname: string | null | undefined): string {
  return nickname ? `${name}(${nickname})` : name;
}

/** Columns separated by one space, padded to the widest entry; a row's last column is never padded. */
function columns(rows: string[][]): string {
  const width: number[] = [];
  for (const r of rows) r.forEach((c, i) => i < r.length - 1 && (width[i] = Math.max(width[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(width[i]!) : c)).join(' ').trimEnd() + '\n').join('');
}

function label(rows: [string, string][]): string {
  return rows.map(([k, v]) => `${k.padStart(15)}: ${v}\n`).join('');
}

const STATES: ConnectionStatus['state'][] = ['established', 'connecting', 'retrying', 'failed'];

export function ago(iso: string, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - new Date(iso).getTime()) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

/** Unordered peer pairs either side reports; established when every reporting side says so. */
function links(peers: PeerStatus[]): { established: number; pending: number } {
  const pairs = new Map<string, boolean>();
  for (const p of peers) {
    for (const l of p.links ?? []) {
      const key = p.name < l.peer ? `${p.name}|${l.peer}` : `${l.peer}|${p.name}`;
      pairs.set(key, (pairs.get(key) ?? true) && l.established);
    }
  }
  let established = 0;
  for (const ok of pairs.values()) if (ok) established++;
  return { established, pending: pairs.size - established };
}

function rangeSize(cidr: string): number {
  const bits = Number(cidr.split('/')[1] ?? 32);
  return 2 ** (32 - bits);
}

export function formatSummary(s: StatusJson, now: Date): string {
  const conns = s.connections;
  const byState = STATES.map((st) => [st, conns.filter((c) => c.state === st).length] as const).filter(([, n]) => n > 0);
  const established = conns.filter((c) => c.state === 'established');
  const dps = new Map<string, number>();
  for (const c of established) dps.set(c.datapath ?? 'waiting', (dps.get(c.datapath ?? 'waiting') ?? 0) + 1);
  const l = links(s.peers);
  const router: [string, string][] = [
    ['Version', s.version],
    ['Service', 'router'],
    ['Name', who(s.name, s.nickname)],
    ['Encryption', s.encryption ? 'enabled' : 'disabled'],
  ];
  const k8s = s.discovery?.kubernetes;
  if (k8s) {
    router.push(['PeerDiscovery', k8s.error ? `kubernetes: ${k8s.error}` : `kubernetes (${k8s.nodes} nodes${k8s.lastSync ? `, synced ${ago(k8s.lastSync, now)}` : ''})`]);
  }
  router.push(
    ['Targets', String(s.targets.length)],
    ['Connections', byState.length ? `${conns.length} (${byState.map(([st, n]) => `${n} ${st}`).join(', ')})` : '0'],
    ['Peers', `${s.peers.length} (with ${l.pending ? `${l.established} established, ${l.pending} pending` : `${l.established} established`} links)`],
    ['TrustedSubnets', s.trustedSubnets.length ? s.trustedSubnets.join(',') : 'none'],
    ['Datapaths', established.length ? [...dps].map(([d, n]) => `${n} ${d}`).join(', ') : 'none'],
  );
  const ipam = s.ipam;
  const total = rangeSize(ipam.range);
  const ipamRows: [string, string][] = [
    ['Service', 'ipam'],
    ['Status', ipam.status ?? (ipam.ready ? 'ready' : 'waiting for the ring')],
    ['Range', ipam.range],
    ['Owned here', ipam.owned > 0 ? `${ipam.owned} IPs (${((100 * ipam.owned) / total).toFixed(1)}% of total), ${ipam.allocated} allocated` : 'none (asks peers for space)'],
  ];
  return `${label(router)}\n${label(ipamRows)}`;
}

export function formatConnections(s: StatusJson): string {
  const order = (c: ConnectionStatus): number => STATES.indexOf(c.state);
  const sorted = [...s.connections].sort((a, b) => order(a) - order(b) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  if (sorted.length === 0) return 'no connections\n';
  return columns(
    sorted.map((c) => {
      const head = [c.outbound ? '->' : '<-', c.address, c.state];
      const known = c.state === 'established' || (c.state === 'connecting' && c.peer);
      if (!known) return [...head, c.info];
      return [...head, c.encrypted ? 'encrypted' : 'unencrypted', c.datapath ?? '-', who(c.peer ?? '', c.nickname), c.info];
    }),
  );
}

export function formatPeers(s: StatusJson): string {
  const nick = new Map(s.peers.map((p) => [p.name, p.nickname]));
  // Pad link columns across the whole view, then put each peer's heading above its links.
  const rows = s.peers.flatMap((p) =>
    (p.links ?? []).map((l) => ['  ', l.outbound ? '->' : '<-', l.address, who(l.peer, nick.get(l.peer)), l.established ? 'established' : 'pending']),
  );
  const padded = columns(rows).split('\n');
  let next = 0;
  let out = '';
  for (const p of s.peers) {
    out += `${who(p.name, p.nickname)}${p.reachable === false ? ' - unreachable' : ''}\n`;
    for (let k = 0; k < (p.links ?? []).length; k++) out += `${padded[next++]}\n`;
  }
  return out;
}

export function formatIpam(s: StatusJson): string {
  const ipam = s.ipam;
  const total = rangeSize(ipam.range);
  const peers = new Map(s.peers.map((p) => [p.name, p]));
  const owned = new Map<string, number>();
  for (const r of ipam.ranges) owned.set(r.owner, (owned.get(r.owner) ?? 0) + r.size);
  const owners = [...owned].sort(([a, x], [b, y]) => (a === s.name ? -1 : b === s.name ? 1 : y - x || (a < b ? -1 : 1)));
  let out = ipam.ready ? '' : `Status: ${ipam.status ?? 'waiting for the ring'}\n`;
  out += columns(
    owners.map(([owner, size]) => {
      const p = peers.get(owner);
      const name = p ? who(owner, p.nickname) : owner;
      const alloc = owner === s.name ? ` (${ipam.allocated} allocated)` : '';
      const unreachable = p && p.reachable === false ? ' - unreachable!' : '';
      return [name, `${size} IPs (${((100 * size) / total).toFixed(1)}% of total)${alloc}${unreachable}`];
    }),
  );
  for (const problem of ipam.problems ?? []) out += `! ${problem}\n`;
  return out;
}

export function formatTargets(s: StatusJson): string {
  if (s.targets.length === 0) return 'no targets\n';
  return s.targets.map((t) => `${t.address} (${t.source})\n`).join('');
}
