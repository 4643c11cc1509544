// Sleeve routes: next hops and broadcast trees over the links whose UDP
// actually works. Pure.
//
// Why not the mesh's routes: the mesh routes over TCP connections, which
// stay up when UDP between two peers is blocked; frames must then go
// through a peer that reaches both over UDP. Each peer announces the peers
// its sleeve heartbeats reach both ways (links.ts); a link counts only when
// both ends announce it. Breadth-first searches with neighbours in key order
// make every peer compute the same trees from the same announcements, so a
// broadcast reaches each peer once.

export type Graph = ReadonlyMap<number, ReadonlySet<number>>;

/** Neighbours of `n` over symmetric links, sorted. */
function neighbours(g: Graph, n: number): number[] {
  const out: number[] = [];
  for (const m of g.get(n) ?? []) if (m !== n && g.get(m)?.has(n)) out.push(m);
  return out.sort((a, b) => a - b);
}

/** BFS parents from `root`: node -> parent (root maps to itself). */
export function bfsParents(g: Graph, root: number): Map<number, number> {
  const parent = new Map<number, number>([[root, root]]);
  const queue = [root];
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    for (const m of neighbours(g, n)) {
      if (parent.has(m)) continue;
      parent.set(m, n);
      queue.push(m);
    }
  }
  return parent;
}

/** For every peer reachable from `self`: the neighbour to send to (itself when direct). */
export function nextHops(g: Graph, self: number): Map<number, number> {
  const parent = bfsParents(g, self);
  const hops = new Map<number, number>();
  for (const n of parent.keys()) {
    if (n === self) continue;
    let hop = n;
    while (parent.get(hop) !== self) hop = parent.get(hop)!;
    hops.set(n, hop);
  }
  return hops;
}

/** Our children in `origin`'s broadcast tree: the neighbours we pass its broadcasts to. */
export function broadcastChildren(g: Graph, origin: number, self: number): number[] {
  const parent = bfsParents(g, origin);
  if (!parent.has(self)) return [];
  const out: number[] = [];
  for (const [n, p] of parent) if (p === self && n !== self) out.push(n);
  return out.sort((a, b) => a - b);
}

/**
 * Caches trees per origin for one graph; build a new one when the graph
 * changes. Broadcasts are looked up per frame, so the BFS runs once per
 * (graph, origin), not per frame.
 */
export class SleeveRoutes {
  readonly hops: Map<number, number>;
  private readonly trees = new Map<number, number[]>();

  constructor(
    private readonly graph: Graph,
    private readonly self: number,
  ) {
    this.hops = nextHops(graph, self);
  }

  nextHop(dst: number): number | undefined {
    return this.hops.get(dst);
  }

  children(origin: number): number[] {
    let c = this.trees.get(origin);
    if (!c) {
      c = broadcastChildren(this.graph, origin, this.self);
      this.trees.set(origin, c);
    }
    return c;
  }
}
