// N sleeves on an in-memory UDP network, wired as the Datapath wires them
// (sessions per pair, hellos, announced links) but with a hand-driven clock.

import { Sleeve } from '../../../datapath/sleeve/sleeve.js';
import type { SleeveSession } from '../../../datapath/sleeve/session.js';
import { macKeyOf } from '../../../datapath/sleeve/macs.js';
import type { AeadBackend } from '../../../datapath/io/aead.js';
import { MAX_HEADER } from '../../../datapath/sleeve/wire.js';
import { MemNet, MemSocket, MemTap } from './fakes.js';

export interface Node {
  i: number;
  name: string;
  ip: string;
  podMac: string;
  podIp: string;
  tap: MemTap;
  sock: MemSocket;
  sleeve: Sleeve;
  links: string[];
  sessions: Map<number, SleeveSession>;
}

export interface ClusterOptions {
  sealed?: boolean;
  aead?: AeadBackend;
  mtu?: number;
  /** Pairs (1-based) without a mesh connection at all. */
  unconnected?: [number, number][];
}

export const nameOf = (i: number): string => `aa:00:00:00:00:${i.toString(16).padStart(2, '0')}`;
export const ipOf = (i: number): string => `198.18.0.${10 + i}`;
export const podMacOf = (i: number): string => `02:00:00:00:${i.toString(16).padStart(2, '0')}:01`;
export const podIpOf = (i: number): string => `198.19.${i}.1`;

export class Cluster {
  readonly net = new MemNet();
  readonly nodes: Node[] = [];
  t = 10_000;
  readonly logs: string[] = [];

  constructor(
    n: number,
    private readonly o: ClusterOptions = {},
  ) {
    for (let i = 1; i <= n; i++) {
      const tap = new MemTap('meshnet-sleeve', MAX_HEADER);
      const sock = this.net.socket(ipOf(i), 6783);
      const node: Node = { i, name: nameOf(i), ip: ipOf(i), podMac: podMacOf(i), podIp: podIpOf(i), tap, sock, links: [], sessions: new Map(), sleeve: undefined as unknown as Sleeve };
      const log = (level: string) => (f: Record<string, unknown>, msg: string) => this.logs.push(`${level} h${i}: ${msg}`);
      node.sleeve = new Sleeve({
        self: node.name,
        tap,
        socket: sock,
        mtu: o.mtu ?? 1450,
        aead: o.aead ?? 'native',
        log: { info: log('info'), warn: log('warn'), debug: () => undefined },
        now: () => this.t,
        onLinksChanged: (l) => {
          node.links = l;
          this.publishGraph();
        },
        onReachabilityChanged: () => undefined,
      });
      this.nodes.push(node);
    }
    for (const a of this.nodes) {
      a.sleeve.setLocalMacs([macKeyOf(a.podMac)]);
      a.sleeve.setRemoteMacs(new Map(this.nodes.filter((b) => b !== a).map((b) => [b.name, [macKeyOf(b.podMac)]])));
    }
    for (const a of this.nodes) {
      for (const b of this.nodes) {
        if (b.i <= a.i || o.unconnected?.some(([x, y]) => (x === a.i && y === b.i) || (x === b.i && y === a.i))) continue;
        this.connect(a, b);
      }
    }
  }

  key(from: number, to: number): Uint8Array {
    return Buffer.alloc(32, from * 16 + to);
  }

  /** A mesh connection between a and b: sessions on both sides and hellos. */
  connect(a: Node, b: Node): void {
    const keys = (x: Node, y: Node) => (this.o.sealed ? { send: this.key(x.i, y.i), recv: this.key(y.i, x.i) } : null);
    const sa = a.sleeve.openSession(b.name, `${a.i}${b.i}`, b.ip, keys(a, b));
    const sb = b.sleeve.openSession(a.name, `${a.i}${b.i}`, a.ip, keys(b, a));
    a.sessions.set(b.i, sa);
    b.sessions.set(a.i, sb);
    a.sleeve.sessionHello(sa, sb.index, 6783);
    b.sleeve.sessionHello(sb, sa.index, 6783);
  }

  node(i: number): Node {
    return this.nodes[i - 1]!;
  }

  /** The links gossip, delivered at once to everyone. */
  publishGraph(): void {
    const g = new Map(this.nodes.map((n) => [n.name, new Set(n.links)]));
    for (const n of this.nodes) n.sleeve.setGraph(g);
  }

  /** Advance the clock by `ms` in ticks of 100 ms, letting datagrams flow. */
  async run(ms: number): Promise<void> {
    for (let el = 0; el < ms; el += 100) {
      this.t += 100;
      for (const n of this.nodes) n.sleeve.tick();
      await this.net.settle();
    }
  }
}
