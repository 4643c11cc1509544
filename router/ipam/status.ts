// The IPAM status model (`meshnet status ipam`, the `ipam` object of
// `status --json`) and its plain-text rendering.
import { formatAddress } from './addr.js';

export interface IpamRangeStatus {
  start: string;
  size: number;
  owner: string;
  nickname: string;
  /** Handed to `owner`, not adopted yet. */
  pending?: boolean;
}

export interface IpamPeerStatus {
  name: string;
  nickname: string;
  /** Addresses owned (including space still in transit to it). */
  owned: number;
  /** owned / size of the whole range. */
  share: number;
  free: number;
  allocated: number;
  reachable: boolean;
  /** This peer left with `meshnet reset`. */
  retired: boolean;
  self: boolean;
}

export type IpamConflictKind = 'duplicate' | 'split-brain' | 'range-mismatch' | 'removed' | 'overlap' | 'lost-state' | 'store';

export interface IpamConflict {
  kind: IpamConflictKind;
  message: string;
  /** Kind-specific facts (rings, peers, addresses...), all JSON. */
  details: Record<string, unknown>;
}

export interface IpamStatus {
  range: string;
  ready: boolean;
  /** One line saying what IPAM is doing or waiting for. */
  status: string;
  mode: string;
  owned: number;
  allocated: number;
  free: number;
  ring: { id: string; createdAt: number; claimants: string[]; mode: string } | null;
  ranges: IpamRangeStatus[];
  peers: IpamPeerStatus[];
  /** The most serious conflict, or null. */
  conflict: IpamConflict | null;
  conflicts: IpamConflict[];
  consensus: { quorum: number; known: number } | null;
  pending: { allocations: number; donationFrom: string | null };
  counters: { rejectedUpdates: number; malformedMessages: number };
  lastRejection: string | null;
}

/** Most serious first. */
export const SEVERITY: IpamConflictKind[] = ['duplicate', 'store', 'split-brain', 'range-mismatch', 'removed', 'lost-state', 'overlap'];

export function mostSerious(conflicts: readonly IpamConflict[]): IpamConflict | null {
  let best: IpamConflict | null = null;
  for (const c of conflicts) if (!best || SEVERITY.indexOf(c.kind) < SEVERITY.indexOf(best.kind)) best = c;
  return best;
}

function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** `meshnet status ipam`: a summary line, the per-peer table, the ranges and any conflicts. */
export function renderIpamStatus(s: IpamStatus): string {
  const lines: string[] = [];
  lines.push(`Range:     ${s.range}`);
  lines.push(`Status:    ${s.status}`);
  lines.push(`Mode:      ${s.mode}${s.ring ? `   Ring: ${s.ring.id}` : ''}`);
  lines.push(`This peer: owns ${s.owned}, ${s.allocated} allocated, ${s.free} free`);
  if (s.peers.length > 0) {
    lines.push('');
    const rows = [['PEER', 'NICKNAME', 'OWNED', 'SHARE', 'FREE', 'ALLOCATED', 'REACHABLE']];
    for (const p of s.peers) {
      rows.push([
        p.name + (p.self ? ' (self)' : ''),
        p.nickname,
        String(p.owned),
        pct(p.share),
        String(p.free),
        String(p.allocated),
        p.retired ? 'retired' : p.reachable ? 'yes' : 'NO',
      ]);
    }
    lines.push(pad(rows));
  }
  if (s.ranges.length > 0) {
    lines.push('');
    const rows = [['START', 'SIZE', 'OWNER']];
    for (const r of s.ranges) rows.push([r.start, String(r.size), `${r.owner} (${r.nickname})${r.pending ? ' pending' : ''}`]);
    lines.push(pad(rows));
  }
  for (const c of s.conflicts) {
    lines.push('');
    lines.push(`CONFLICT (${c.kind}): ${c.message}`);
  }
  if (s.counters.rejectedUpdates > 0 || s.counters.malformedMessages > 0) {
    lines.push('');
    lines.push(`Refused updates: ${s.counters.rejectedUpdates}, malformed messages: ${s.counters.malformedMessages}`);
    if (s.lastRejection) lines.push(`Last refused: ${s.lastRejection}`);
  }
  return lines.join('\n');
}

export function describeAddressRange(start: number, end: number): string {
  return end - start === 1 ? formatAddress(start) : `${formatAddress(start)}-${formatAddress(end - 1)}`;
}
