// IPAM inside the daemon: the ring (router/ipam) on its gossip channel, its
// control API routes, the host's own overlay address (`meshnet expose`), and
// the allocator the CNI service draws pod addresses from.

import { join } from 'node:path';
import type { Mesh } from '../mesh/mesh.js';
import type { Features } from '../mesh/types.js';
import { ApiError, type ApiServer } from './api-server.js';
import { AllocatorError, type CniAllocator, type PodAddress } from './cni/types.js';
import type { Attachment } from './cni/config.js';
import {
  checkIpamFeatures,
  FileIpamStore,
  HOST_CONTAINER_ID,
  Ipam,
  IPAM_CHANNEL,
  IpamError,
  ipamFeatures,
  parseInitMode,
  parseRange,
  type AllocationResult,
} from './ipam/index.js';
import type { Logger as Pino } from 'pino';

/** The interface name the host's own address is allocated under. */
const HOST_IFACE = 'meshnet';

export interface IpamServiceConfig {
  range: string;
  /** `--ipalloc-init` as given (undefined: consensus). */
  init: string | undefined;
  /** Peers named at launch (the default consensus size is this + 1). */
  launchPeers: number;
  stateDir: string;
}

export class IpamService {
  readonly ipam: Ipam;
  private readonly range;

  constructor(
    cfg: IpamServiceConfig,
    mesh: Mesh,
    private readonly log: Pino,
  ) {
    this.range = parseRange(cfg.range);
    this.ipam = new Ipam({
      range: this.range,
      init: parseInitMode(cfg.init, cfg.launchPeers),
      mesh,
      channel: (g) => mesh.registerChannel(IPAM_CHANNEL, g),
      store: new FileIpamStore(join(cfg.stateDir, 'ipam.state')),
      log: (level, msg, fields) => log[level](fields ?? {}, msg),
    });
    const changed = (): void => this.ipam.topologyChanged();
    for (const e of ['topology-changed', 'connection-established', 'connection-lost', 'peer-removed'] as const) mesh.on(e, changed);
  }

  /** Announced in every handshake: a peer with another range is refused. */
  features(): Features {
    return ipamFeatures(this.range);
  }

  checkFeatures(remote: Features): string | undefined {
    return checkIpamFeatures(this.range, remote);
  }

  start(): Promise<void> {
    return this.ipam.start();
  }

  stop(): Promise<void> {
    return this.ipam.stop();
  }

  /** This host's address on the overlay (the pods' gateway), allocated on first use. */
  hostAddress(cidr?: string): Promise<AllocationResult> {
    return viaApi(async () => {
      const existing = this.ipam.lookup(HOST_CONTAINER_ID, HOST_IFACE)[0];
      if (existing && (!cidr || existing.subnet === cidr)) return existing;
      return this.ipam.allocate(HOST_CONTAINER_ID, HOST_IFACE, cidr ? { subnet: cidr } : {});
    });
  }

  /** The CNI service's view: pods' addresses with the host's address as gateway. */
  cniAllocator(): CniAllocator {
    const ipam = this.ipam;
    const pod = async (r: AllocationResult): Promise<PodAddress> => ({
      address: r.address,
      prefixLength: r.prefixLength,
      gateway: (await this.hostAddress()).address,
    });
    return {
      ready: () => ipam.status().ready,
      allocate: (id, ifname) => asAllocator(async () => pod(await ipam.allocate(id, ifname))),
      claim: (id, ifname, address) => asAllocator(async () => pod(await ipam.claim(id, ifname, address))),
      lookup: async (id, ifname) => {
        const r = ipam.lookup(id, ifname)[0];
        return r ? pod(r) : undefined;
      },
      release: async (id, ifname) => {
        await ipam.release(id, ifname);
      },
      allocations: (): Attachment[] =>
        ipam
          .allocations()
          .filter((a) => a.containerId !== HOST_CONTAINER_ID)
          .map((a) => ({ containerId: a.containerId, ifname: a.iface })),
    };
  }

  registerRoutes(api: ApiServer): void {
    const str = (body: unknown, key: string, required = true): string | undefined => {
      const v = (body as Record<string, unknown> | undefined)?.[key];
      if (v === undefined && !required) return undefined;
      if (typeof v !== 'string' || v.length === 0) throw new ApiError(400, `"${key}" must be a non-empty string`);
      return v;
    };
    api.route('POST', '/ipam/allocate', (r) => viaApi(() => this.ipam.allocate(str(r.body, 'containerId')!, str(r.body, 'iface', false) ?? 'eth0')));
    api.route('POST', '/ipam/claim', (r) => viaApi(() => this.ipam.claim(str(r.body, 'containerId')!, str(r.body, 'iface', false) ?? 'eth0', str(r.body, 'address')!)));
    api.route('POST', '/ipam/release', (r) => viaApi(() => this.ipam.release(str(r.body, 'containerId')!, str(r.body, 'iface', false))));
    api.route('GET', '/ipam/allocations', () => this.ipam.allocations());
    api.route('POST', '/ipam/resolve', (r) => viaApi(() => this.ipam.resolve(str(r.body, 'keep')!)));
    api.route('DELETE', '/peer/:name', (r) => viaApi(() => this.ipam.rmpeer(r.params['name']!)));
  }

  /** Give our ranges to a live peer before our state is deleted (`meshnet reset`). */
  async handover(): Promise<string> {
    const r = await this.ipam.handover();
    this.log.info({ heir: r.heir, acknowledged: r.acknowledged }, r.message);
    return r.message;
  }
}

/** IPAM errors as HTTP statuses with IPAM's own message. */
async function viaApi<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof IpamError) {
      const status = err.code === 'invalid' ? 400 : err.code === 'conflict' ? 409 : err.code === 'no-space' ? 507 : 503;
      throw new ApiError(status, err.message);
    }
    throw err;
  }
}

/** IPAM errors as the CNI allocator's refusals (mapped to CNI codes by router/cni). */
async function asAllocator<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof IpamError) {
      const kind = err.code === 'not-ready' || err.code === 'timeout' || err.code === 'unreachable' ? 'not-ready' : err.code === 'no-space' ? 'exhausted' : 'unavailable';
      throw new AllocatorError(kind, err.message);
    }
    throw err;
  }
}
