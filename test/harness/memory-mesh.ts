// Many real Mesh routers in one process over the in-memory transport, for
// unit tests and the large-mesh simulation. Each peer gets an address
// 198.18.x.y and a name derived from its index.

import { Mesh, type MeshConfig, type MeshTiming } from '../../mesh/mesh.js';
import { formatPeerName } from '../../mesh/peer-name.js';
import { MemoryNetwork } from '../../mesh/transport-memory.js';
import type { Secret } from '../../mesh/handshake.js';

export const FAST_TIMING: Partial<MeshTiming> = {
  heartbeatMs: 200,
  deadlineMs: 1_000,
  handshakeTimeoutMs: 2_000,
  publishDelayMs: 20,
  publishIntervalMs: 100,
  gcDelayMs: 50,
  antiEntropyMs: 1_000,
  dialTimeoutMs: 1_000,
};

export interface SimPeer {
  index: number;
  ip: string;
  mesh: Mesh;
  incarnation: number;
}

export class MemoryCluster {
  readonly net: MemoryNetwork;
  readonly peers: SimPeer[] = [];

  constructor(
    private readonly defaults: Partial<MeshConfig> & { secrets?: Secret[] } = {},
    readonly port = 6783,
    opts: { latencyMs?: number; beforeStart?: (mesh: Mesh, index: number) => void } = {},
  ) {
    this.net = new MemoryNetwork(opts.latencyMs ?? 0);
    this.beforeStart = opts.beforeStart;
  }

  /** Called with each new router before it starts (to register channels). */
  private readonly beforeStart: ((mesh: Mesh, index: number) => void) | undefined;

  static ip(index: number): string {
    return `198.18.${Math.floor(index / 250)}.${(index % 250) + 1}`;
  }

  static peerName(index: number): string {
    return formatPeerName(0x020000000000 + index + 1);
  }

  /** Create and start peer `index` (its name is stable across restarts). */
  async add(index: number, overrides: Partial<MeshConfig> = {}, incarnation = 1): Promise<SimPeer> {
    const ip = MemoryCluster.ip(index);
    const mesh = new Mesh({
      name: MemoryCluster.peerName(index),
      nickname: `p${index}`,
      incarnation,
      transport: this.net.transport(ip, this.port),
      listenPort: this.port,
      timing: FAST_TIMING,
      backoff: { initialMs: 100, maxMs: 1_000, resetAfterMs: 5_000 },
      acceptRate: { burst: 1_000, intervalMs: 1 },
      sourceLimits: { burst: 1_000, intervalMs: 1, maxPending: 1_000, maxSources: 1_024 },
      ...this.defaults,
      ...overrides,
    });
    this.beforeStart?.(mesh, index);
    await mesh.start();
    const peer = { index, ip, mesh, incarnation };
    this.peers[index] = peer;
    return peer;
  }

  /** Kill a peer the hard way: its streams are reset, it says nothing. */
  async crash(index: number): Promise<void> {
    const p = this.peers[index];
    if (!p) return;
    this.net.crash(p.ip);
    await p.mesh.stop();
  }

  async restart(index: number, overrides: Partial<MeshConfig> = {}): Promise<SimPeer> {
    const old = this.peers[index]!;
    await this.crash(index);
    return this.add(index, overrides, old.incarnation + 1);
  }

  address(index: number): string {
    return `${MemoryCluster.ip(index)}:${this.port}`;
  }

  live(): SimPeer[] {
    return this.peers.filter((p): p is SimPeer => p !== undefined);
  }

  /** True when every live peer knows exactly the live peers and is connected to all of them. */
  fullyMeshed(): boolean {
    const live = this.live();
    const names = new Set(live.map((p) => p.mesh.localName));
    return live.every((p) => {
      const known = p.mesh.peers().map((x) => x.name);
      const conns = p.mesh.connectionStatus().filter((c) => c.state === 'established');
      return known.length === names.size && known.every((n) => names.has(n)) && conns.length === names.size - 1;
    });
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.live().map((p) => p.mesh.stop()));
  }
}

export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
