// Routes over a partial mesh, computed from the topology table.
//
// Data and routed gossip use only connections that are established and
// symmetric (both ends list each other as established). Searches are
// breadth-first with neighbours in peer-id order, so every peer computes the
// same trees from the same table: a broadcast from `origin` follows origin's
// shortest-path tree and reaches each peer once. Results are cached until the
// table changes.

import type { PeerId } from './peer-name.js';
import { recordCount, recordEstablished, recordPeer } from './topology-codec.js';
import type { Topology } from './topology.js';

export class Routes {
  private generation = -1;
  private unicast = new Map<PeerId, PeerId>();
  private readonly broadcast = new Map<PeerId, PeerId[]>();

  constructor(private readonly topo: Topology) {}

  /** Neighbours of `a` over established, symmetric connections, in id order. */
  neighbours(a: PeerId): PeerId[] {
    const e = this.topo.entries.get(a);
    if (!e) return [];
    const out: PeerId[] = [];
    for (let i = 0; i < recordCount(e.conns); i++) {
      if (!recordEstablished(e.conns, i)) continue;
      const b = recordPeer(e.conns, i);
      if (this.topo.listsEstablished(b, a)) out.push(b);
    }
    return out;
  }

  /** Next hop from us towards `dest`, or undefined if unreachable. */
  nextHop(dest: PeerId): PeerId | undefined {
    this.refresh();
    return this.unicast.get(dest);
  }

  /** The whole unicast table: destination → next hop. */
  table(): ReadonlyMap<PeerId, PeerId> {
    this.refresh();
    return this.unicast;
  }

  /** Our children in `origin`'s broadcast tree: the neighbours we forward its broadcasts to. */
  broadcastChildren(origin: PeerId): PeerId[] {
    this.refresh();
    let kids = this.broadcast.get(origin);
    if (!kids) {
      kids = this.computeChildren(origin);
      this.broadcast.set(origin, kids);
    }
    return kids;
  }

  private refresh(): void {
    if (this.generation === this.topo.generation) return;
    this.generation = this.topo.generation;
    this.broadcast.clear();
    this.unicast = this.computeUnicast();
  }

  private computeUnicast(): Map<PeerId, PeerId> {
    const self = this.topo.selfId;
    const hop = new Map<PeerId, PeerId>();
    const seen = new Set<PeerId>([self]);
    let frontier: PeerId[] = [];
    for (const n of this.neighbours(self)) {
      seen.add(n);
      hop.set(n, n);
      frontier.push(n);
    }
    while (frontier.length) {
      const next: PeerId[] = [];
      for (const p of frontier) {
        for (const n of this.neighbours(p)) {
          if (seen.has(n)) continue;
          seen.add(n);
          hop.set(n, hop.get(p)!);
          next.push(n);
        }
      }
      frontier = next;
    }
    return hop;
  }

  private computeChildren(origin: PeerId): PeerId[] {
    const self = this.topo.selfId;
    const parent = new Map<PeerId, PeerId>();
    const seen = new Set<PeerId>([origin]);
    let frontier = [origin];
    while (frontier.length) {
      const next: PeerId[] = [];
      for (const p of frontier) {
        for (const n of this.neighbours(p)) {
          if (seen.has(n)) continue;
          seen.add(n);
          parent.set(n, p);
          next.push(n);
        }
      }
      frontier = next;
    }
    if (!seen.has(self)) return [];
    return this.neighbours(self).filter((n) => parent.get(n) === self);
  }
}
