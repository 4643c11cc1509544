import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Topology } from '../../../mesh/topology.js';
import { Routes } from '../../../mesh/routes.js';
import { packRecords } from '../../../mesh/topology-codec.js';

/** Every peer's view of one graph (edges are established both ways). */
function views(n: number, edges: [number, number][]): { topos: Topology[]; routes: Routes[] } {
  const adj = new Map<number, Set<number>>();
  for (let i = 1; i <= n; i++) adj.set(i, new Set());
  for (const [a, b] of edges) {
    if (a === b) continue;
    adj.get(a)!.add(b);
    adj.get(b)!.add(a);
  }
  const topos: Topology[] = [];
  for (let self = 1; self <= n; self++) {
    const t = new Topology({ id: self, uid: 1n, incarnation: 1, nickname: `p${self}` });
    for (let i = 1; i <= n; i++) {
      const conns = packRecords([...adj.get(i)!].map((p) => ({ peer: p, address: '198.18.0.1:1', outbound: true, established: true })));
      t.entries.set(i, { id: i, uid: 1n, incarnation: 1, version: 1, nickname: `p${i}`, conns });
    }
    t.generation++;
    topos.push(t);
  }
  return { topos, routes: topos.map((t) => new Routes(t)) };
}

describe('routes', () => {
  it('reaches a peer through another when the direct link is missing', () => {
    // 1 - 2 - 3, no 1 - 3
    const { routes } = views(3, [[1, 2], [2, 3]]);
    expect(routes[0]!.nextHop(3)).toBe(2);
    expect(routes[0]!.nextHop(2)).toBe(2);
    expect(routes[2]!.nextHop(1)).toBe(2);
  });

  it('ignores connections that only one side lists as established', () => {
    const { topos, routes } = views(2, [[1, 2]]);
    const t = topos[0]!;
    t.entries.get(2)!.conns = packRecords([{ peer: 1, address: '198.18.0.1:1', outbound: true, established: false }]);
    t.generation++;
    expect(routes[0]!.nextHop(2)).toBeUndefined();
  });

  it('a broadcast from any origin reaches every connected peer exactly once', () => {
    const graph = fc
      .integer({ min: 2, max: 9 })
      .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.tuple(fc.integer({ min: 1, max: n }), fc.integer({ min: 1, max: n })), { maxLength: 30 })));
    fc.assert(
      fc.property(graph, ([n, extra]) => {
        // A spanning chain makes the graph connected; extra edges make it a partial mesh.
        const edges: [number, number][] = [...extra];
        for (let i = 1; i < n; i++) edges.push([i, i + 1]);
        const { routes } = views(n, edges);
        for (let origin = 1; origin <= n; origin++) {
          const received = new Map<number, number>();
          const queue = [origin];
          while (queue.length) {
            const at = queue.shift()!;
            for (const child of routes[at - 1]!.broadcastChildren(origin)) {
              received.set(child, (received.get(child) ?? 0) + 1);
              queue.push(child);
            }
          }
          for (let p = 1; p <= n; p++) expect(received.get(p) ?? 0).toBe(p === origin ? 0 : 1);
        }
      }),
      { numRuns: 200 },
    );
  });
});
