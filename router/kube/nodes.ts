// What meshnet reads from Kubernetes Node objects (docs/deploy.md 3.1, 3.2),
// as pure functions: the fields it needs, the peer target of a node, which
// node is the IPAM seed, and the decoding of list pages and watch events.
// Nothing here does I/O; malformed input is reported, never thrown past.

import { isIP } from 'node:net';

/** The port peers listen on (DESIGN §5). */
export const MESH_PORT = 6783;

export interface KubeNode {
  name: string;
  /** metadata.creationTimestamp as given (RFC 3339), '' when absent. */
  createdAt: string;
  /** The node's InternalIP (IPv4 preferred), or null when it has none. */
  internalIp: string | null;
}

export interface NodeListPage {
  nodes: KubeNode[];
  /** metadata.continue: '' on the last page. */
  continueToken: string;
  resourceVersion: string;
  /** Items that were not Node objects with a name (counted, dropped). */
  malformed: number;
}

export type WatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; node: KubeNode; resourceVersion: string }
  | { type: 'BOOKMARK'; resourceVersion: string }
  | { type: 'ERROR'; code: number; message: string };

export class KubeDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KubeDecodeError';
  }
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * The first InternalIP of `status.addresses`, IPv4 preferred when the node
 * has both families; null when there is none.
 */
export function internalIpOf(addresses: unknown): string | null {
  if (!Array.isArray(addresses)) return null;
  const ips = addresses
    .map(obj)
    .filter((a) => a !== undefined && a['type'] === 'InternalIP')
    .map((a) => str(a!['address']) ?? '')
    .filter((ip) => isIP(ip) !== 0);
  return ips.find((ip) => isIP(ip) === 4) ?? ips[0] ?? null;
}

/** A Node object → the fields meshnet uses; undefined when it has no name. */
export function parseNode(value: unknown): KubeNode | undefined {
  const o = obj(value);
  const meta = obj(o?.['metadata']);
  const name = str(meta?.['name']);
  if (!name) return undefined;
  return {
    name,
    createdAt: str(meta?.['creationTimestamp']) ?? '',
    internalIp: internalIpOf(obj(o?.['status'])?.['addresses']),
  };
}

/** A `GET /api/v1/nodes` answer (a NodeList). Throws KubeDecodeError when it is not one. */
export function parseNodeList(value: unknown): NodeListPage {
  const o = obj(value);
  if (!o || !Array.isArray(o['items'])) throw new KubeDecodeError('the answer is not a NodeList (no "items" array)');
  const meta = obj(o['metadata']);
  const nodes: KubeNode[] = [];
  let malformed = 0;
  for (const item of o['items'] as unknown[]) {
    const n = parseNode(item);
    if (n) nodes.push(n);
    else malformed++;
  }
  return { nodes, continueToken: str(meta?.['continue']) ?? '', resourceVersion: str(meta?.['resourceVersion']) ?? '', malformed };
}

/** One line of a watch stream. Throws KubeDecodeError for lines that are not an event. */
export function parseWatchLine(line: string): WatchEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new KubeDecodeError(`watch: a line is not JSON: ${line.slice(0, 80)}`);
  }
  const o = obj(value);
  const type = str(o?.['type']);
  const object = obj(o?.['object']);
  if (!type || !object) throw new KubeDecodeError('watch: an event without "type" or "object"');
  const rv = str(obj(object['metadata'])?.['resourceVersion']) ?? '';
  if (type === 'BOOKMARK') return { type, resourceVersion: rv };
  if (type === 'ERROR') {
    const code = typeof object['code'] === 'number' ? object['code'] : 0;
    return { type, code, message: str(object['message']) ?? str(object['reason']) ?? 'unknown error' };
  }
  if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') throw new KubeDecodeError(`watch: unknown event type "${type.slice(0, 20)}"`);
  const node = parseNode(object);
  if (!node) throw new KubeDecodeError(`watch: ${type} event for an object without a name`);
  return { type, node, resourceVersion: rv };
}

/** "ip:6783", "[v6]:6783". */
export function targetOf(ip: string, port = MESH_PORT): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * The IPAM seed of seed-from-kubernetes: the node with the earliest
 * creationTimestamp, ties (and missing timestamps, sorted last) broken by
 * the smaller name. Every router reads the same list, so all agree, and a
 * node that joins later is newer: it never changes the choice.
 */
export function oldestNode(nodes: Iterable<KubeNode>): KubeNode | undefined {
  let best: KubeNode | undefined;
  for (const n of nodes) {
    if (!best || compareAge(n, best) < 0) best = n;
  }
  return best;
}

function compareAge(a: KubeNode, b: KubeNode): number {
  const ta = a.createdAt ? Date.parse(a.createdAt) : NaN;
  const tb = b.createdAt ? Date.parse(b.createdAt) : NaN;
  const va = Number.isNaN(ta) ? Infinity : ta;
  const vb = Number.isNaN(tb) ? Infinity : tb;
  if (va !== vb) return va < vb ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export interface DesiredTargets {
  /** Target address → node name. */
  targets: Map<string, string>;
  /** Nodes without an InternalIP (warned about once each). */
  withoutAddress: string[];
}

/**
 * The peers to connect to: every node's InternalIP target except this
 * node (by NODE_NAME) and any address of a local interface (which covers a
 * missing NODE_NAME).
 */
export function desiredTargets(nodes: Iterable<KubeNode>, self: { nodeName?: string | undefined; localAddresses: ReadonlySet<string> }, port = MESH_PORT): DesiredTargets {
  const targets = new Map<string, string>();
  const withoutAddress: string[] = [];
  for (const n of nodes) {
    if (self.nodeName && n.name === self.nodeName) continue;
    if (!n.internalIp) {
      withoutAddress.push(n.name);
      continue;
    }
    if (self.localAddresses.has(n.internalIp)) continue;
    targets.set(targetOf(n.internalIp, port), n.name);
  }
  return { targets, withoutAddress: withoutAddress.sort() };
}

/** What changed between two target sets. */
export function diffTargets(before: ReadonlyMap<string, string>, after: ReadonlyMap<string, string>): { added: string[]; removed: string[] } {
  return {
    added: [...after.keys()].filter((a) => !before.has(a)).sort(),
    removed: [...before.keys()].filter((a) => !after.has(a)).sort(),
  };
}
