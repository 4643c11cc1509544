// --ipalloc-init seed-from-kubernetes (docs/deploy.md 3.2), as far as IPAM's
// existing modes allow: the oldest Node is the only router that may create
// the ring (IPAM `seed=<its own peer name>`); every other router is an
// IPAM `observer` that waits for the ring and then asks for space. Pure
// decisions here; the daemon applies them when it builds IPAM.
//
// Not covered, because IPAM's init mode is fixed when IPAM is built (see
// docs/operations.md, "seed-from-kubernetes: what IPAM lacks"): the seed's
// wait for a majority of the listed nodes before it creates the ring.

import type { KubeNode } from './nodes.js';

export type SeedRole =
  | { role: 'seed'; node: string }
  | { role: 'follower'; node: string; seed: string }
  | { role: 'unknown'; node: string; reason: string };

/** Which part this router plays, from the node list read at start. */
export function decideSeedRole(nodeName: string, synced: boolean, oldest: KubeNode | undefined, listError?: string): SeedRole {
  if (!synced) return { role: 'unknown', node: nodeName, reason: `the node list could not be read at start${listError ? ` (${listError})` : ''}` };
  if (!oldest) return { role: 'unknown', node: nodeName, reason: 'the node list was empty at start' };
  if (oldest.name === nodeName) return { role: 'seed', node: nodeName };
  return { role: 'follower', node: nodeName, seed: oldest.name };
}

/** The `--ipalloc-init` IPAM gets for this role. */
export function ipamInitFor(role: SeedRole, selfPeerName: string): string {
  return role.role === 'seed' ? `seed=${selfPeerName}` : 'observer';
}

/** The IPAM status word while waiting, in the words of docs/status-format.md §4. */
export function seedStatusText(role: SeedRole, ipam: { ready: boolean; status: string }): string {
  if (ipam.ready) return ipam.status;
  if (role.role === 'follower') return `awaiting ring from seed ${role.seed} (oldest node)`;
  if (role.role === 'unknown') return `awaiting ring from the seed (oldest node): ${role.reason}`;
  return ipam.status;
}

/**
 * A router that started as a follower (or without the node list) but whose
 * node is now the oldest, with no ring anywhere after `graceMs`, would wait
 * forever: nobody else may create the ring. It reports itself unhealthy so
 * the kubelet restarts it, and the new process takes the seed role.
 */
export class SeedWatch {
  private since: number | undefined;

  constructor(
    private readonly role: SeedRole,
    private readonly graceMs = 60_000,
  ) {}

  /** A /healthz problem line, or undefined. */
  check(currentOldest: string | undefined, hasRing: boolean, now: number): string | undefined {
    const stuck = this.role.role !== 'seed' && currentOldest === this.role.node && !hasRing;
    if (!stuck) {
      this.since = undefined;
      return undefined;
    }
    this.since ??= now;
    if (now - this.since < this.graceMs) return undefined;
    const was = this.role.role === 'unknown' ? 'without the node list' : `as a follower of ${this.role.seed}`;
    return `ipam: this node is now the oldest node but started ${was} and no peer has a ring; restart it to take the seed role`;
  }
}
