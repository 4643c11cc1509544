// Kubernetes in the daemon: discovery of peers from the Node list and the
// seed-from-kubernetes IPAM role, behind one object the composition root
// calls at four points (start, IPAM init, attach to the mesh, stop).

import { networkInterfaces } from 'node:os';
import type { Logger as Pino } from 'pino';
import type { Mesh } from '../../mesh/mesh.js';
import { KubeClient, type KubeApiConfig } from './client.js';
import { KubeDiscovery, type KubeDiscoveryStatus, type TargetSink } from './discovery.js';
import { decideSeedRole, ipamInitFor, SeedWatch, seedStatusText, type SeedRole } from './seed.js';

export { kubeApiFromEnv, apiServerUrl, KubeClient, KubeError, type KubeApiConfig, type KubeEnv } from './client.js';
export { KubeDiscovery, type KubeDiscoveryStatus, type TargetSink } from './discovery.js';
export * from './nodes.js';
export * from './seed.js';

export const SEED_FROM_KUBERNETES = 'seed-from-kubernetes';
/** Launch waits this long for the first node list, then goes on with explicit peers. */
export const FIRST_LIST_WAIT_MS = 10_000;

/** What `launch --peers-from-kubernetes` needs (from the environment, validated at launch). */
export interface KubeSettings {
  api: KubeApiConfig;
  /** $NODE_NAME (the DaemonSet sets it from spec.nodeName). */
  nodeName?: string;
}

/** Every address of a local interface. */
export function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/** Discovered targets go to the mesh like `connect`; a deleted node's target is forgotten only if discovery added it. */
export function meshSink(mesh: Pick<Mesh, 'connect' | 'forget' | 'targets'>): TargetSink {
  return {
    connect: (addresses) => mesh.connect(addresses, false, 'kubernetes'),
    forget: (addresses) => {
      const ours = new Set(
        mesh
          .targets()
          .filter((t) => t.direct && t.source === 'kubernetes')
          .map((t) => t.address),
      );
      const drop = addresses.filter((a) => ours.has(a));
      if (drop.length) mesh.forget(drop);
    },
  };
}

export class KubeIntegration {
  readonly discovery: KubeDiscovery;
  private role: SeedRole | undefined;
  private seedWatch: SeedWatch | undefined;

  constructor(
    readonly settings: KubeSettings,
    log: Pino,
    port: number,
  ) {
    this.discovery = new KubeDiscovery({
      source: new KubeClient(settings.api),
      nodeName: settings.nodeName,
      localAddresses,
      port,
      log: (level, msg, fields) => log[level](fields ?? {}, msg),
    });
  }

  /** Start following the node list; resolves after the first list or `waitMs`. */
  async start(waitMs = FIRST_LIST_WAIT_MS): Promise<boolean> {
    this.discovery.start();
    return this.discovery.waitFirstList(waitMs);
  }

  /** `--ipalloc-init` for IPAM: seed-from-kubernetes becomes seed=<self> on the oldest node, observer elsewhere. */
  ipamInit(requested: string | undefined, selfPeerName: string): string | undefined {
    if (requested !== SEED_FROM_KUBERNETES) return requested;
    const nodeName = this.settings.nodeName ?? '';
    this.role = decideSeedRole(nodeName, this.discovery.synced, this.discovery.oldest(), this.discovery.status().error);
    this.seedWatch = new SeedWatch(this.role);
    return ipamInitFor(this.role, selfPeerName);
  }

  seedRole(): SeedRole | undefined {
    return this.role;
  }

  attach(mesh: Pick<Mesh, 'connect' | 'forget' | 'targets'>): void {
    this.discovery.attach(meshSink(mesh));
  }

  stop(): Promise<void> {
    return this.discovery.stop();
  }

  status(): KubeDiscoveryStatus & { seed?: SeedRole } {
    return { ...this.discovery.status(), ...(this.role ? { seed: this.role } : {}) };
  }

  /** IPAM's status words, with the seed-from-kubernetes wording while waiting for the ring. */
  ipamStatusText(ipam: { ready: boolean; status: string }): string {
    return this.role ? seedStatusText(this.role, ipam) : ipam.status;
  }

  /** /healthz problems (a router that can never get a ring without a restart). */
  healthProblems(hasRing: boolean, now = Date.now()): string[] {
    const p = this.seedWatch?.check(this.discovery.oldest()?.name, hasRing, now);
    return p ? [p] : [];
  }
}
