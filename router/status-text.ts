// `meshnet status` as text for people: a summary block like Weave's, then
// the peers, connections, targets and IPAM views. Every view has a --json
// twin; the JSON is the contract, this is presentation.

import type { StatusJson } from './status.js';

export type StatusView = 'summary' | 'peers' | 'connections' | 'targets' | 'ipam';

export function renderStatus(s: StatusJson, view: StatusView): string {
  switch (view) {
    case 'peers':
      return renderPeers(s);
    case 'connections':
      return renderConnections(s);
    case 'targets':
      return renderTargets(s);
    case 'ipam':
      return renderIpam(s);
    default:
      return renderSummary(s);
  }
}

function count<T>(items: T[], key: (t: T) => string): string {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return [...m].map(([k, v]) => `${v} ${k}`).join(', ');
}

export function renderSummary(s: StatusJson): string {
  const conns = s.connections;
  const datapaths = conns.filter((c) => c.state === 'established');
  const rows: [string, string][] = [
    ['Version', s.version],
    ['Protocol', s.protocol],
    ['Name', `${s.name}(${s.nickname})`],
    ['Encryption', s.encryption ? 'enabled' : 'disabled'],
    ['PeerDiscovery', 'enabled'],
    ['Targets', String(s.targets.filter((t) => t.direct).length)],
    ['Connections', `${conns.length}${conns.length ? ` (${count(conns, (c) => c.state)})` : ''}`],
    ['Peers', `${s.peers.length}`],
    ['Datapaths', datapaths.length ? count(datapaths, (c) => c.datapath ?? 'pending') : 'none'],
  ];
  const ipam = s.ipam;
  const lines = block('Service: router', rows);
  const ipamRows: [string, string][] = [
    ['Status', String(ipam['status'] ?? (ipam.ready ? 'ready' : 'not ready'))],
    ['Range', ipam.range],
    ['Owned', `${ipam.owned} addresses (${ipam.allocated} allocated)`],
  ];
  return `${lines}\n${block('Service: ipam', ipamRows)}`;
}

function block(title: string, rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`${' '.repeat(w + 2 - 'Service'.length)}${title}`, ...rows.map(([k, v]) => `${k.padStart(w + 2)}: ${v}`)].join('\n') + '\n';
}

function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

export function renderPeers(s: StatusJson): string {
  return table([
    ['NAME', 'NICKNAME', 'CONNECTIONS', 'ROUTE'],
    ...s.peers.map((p) => [p.name, p.nickname, String(p.connections), p.route]),
  ]);
}

export function renderConnections(s: StatusJson): string {
  if (s.connections.length === 0) return 'no connections\n';
  return table(
    s.connections.map((c) => [
      c.outbound ? '->' : '<-',
      c.address,
      c.state,
      c.encrypted ? 'encrypted' : 'unencrypted',
      c.datapath ?? (c.state === 'established' ? 'pending' : '-'),
      c.peer ? `${c.peer}(${c.nickname ?? '?'})` : '',
      c.info,
    ]),
  );
}

export function renderTargets(s: StatusJson): string {
  if (s.targets.length === 0) return 'no targets\n';
  return table([
    ['ADDRESS', 'KIND', 'STATE', 'PEER', 'LAST ERROR'],
    ...s.targets.map((t) => [t.address, t.direct ? 'direct' : 'discovered', t.state, t.peer ?? '-', t.lastError ?? '']),
  ]);
}

export function renderIpam(s: StatusJson): string {
  const ipam = s.ipam;
  const head = `range ${ipam.range}: ${ipam.ready ? 'ready' : String(ipam['status'] ?? 'not ready')}\n`;
  if (ipam.ranges.length === 0) return head;
  return (
    head +
    table([['START', 'SIZE', 'OWNER'], ...ipam.ranges.map((r) => [r.start, String(r.size), r.owner])])
  );
}
