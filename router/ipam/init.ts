// `--ipalloc-init` and `--ipalloc-range` as the CLI and daemon give them.
import { type Cidr, parseCidr } from './addr.js';
import type { InitMode } from './types.js';

export const DEFAULT_RANGE = '10.32.0.0/12';

/**
 * Parse `consensus[=N] | seed=PEER,... | observer`. Without `=N`, N is the
 * number of peers named at launch plus one (this peer), as for Weave.
 */
export function parseInitMode(text: string | undefined, peersNamedAtLaunch: number): InitMode {
  const t = (text ?? 'consensus').trim();
  if (t === 'observer') return { kind: 'observer' };
  if (t === 'consensus') return { kind: 'consensus', n: peersNamedAtLaunch + 1 };
  if (t.startsWith('consensus=')) {
    const v = t.slice('consensus='.length);
    if (!/^[1-9]\d{0,5}$/.test(v)) throw new Error(`invalid --ipalloc-init "${t}": N in consensus=N must be a whole number from 1`);
    return { kind: 'consensus', n: Number(v) };
  }
  if (t.startsWith('seed=')) {
    const peers = t
      .slice('seed='.length)
      .split(',')
      .map((p) => p.trim());
    if (peers.length === 0 || peers.some((p) => p.length === 0)) {
      throw new Error(`invalid --ipalloc-init "${t}": seed= needs a comma-separated list of peer names or nicknames`);
    }
    if (new Set(peers).size !== peers.length) throw new Error(`invalid --ipalloc-init "${t}": a seed peer is listed twice`);
    return { kind: 'seed', peers };
  }
  throw new Error(`invalid --ipalloc-init "${t}": expected consensus[=N], seed=PEER,... or observer`);
}

/** Parse and check `--ipalloc-range`: a block of at least 4 addresses. */
export function parseRange(text: string | undefined): Cidr {
  const c = parseCidr(text ?? DEFAULT_RANGE, '--ipalloc-range');
  if (c.prefixLength > 30) throw new Error(`invalid --ipalloc-range "${text}": a /${c.prefixLength} has no room for containers (use /30 or larger)`);
  return c;
}

/** Consensus quorum for N initial peers: a strict majority. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}
