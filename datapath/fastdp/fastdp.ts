// The fast datapath as the router sees it: devices, reconcile, reset, and
// the step from gossip entries to the desired kernel state.

import type { PeerName } from '../../mesh/types.js';
import { Netlink } from '../netlink/netlink.js';
import type { FastdpConfig } from './config.js';
import { ensureDevices, ensureHeartbeatPort, ensureSleevePort, resetDevices, type DevicesReport } from './devices.js';
import type { EntryOp } from './diff.js';
import type { StoredEntry } from './endpoints.js';
import type { FastdpKernel } from './kernel.js';
import { computeDesired, type DesiredState, type ModelConflict, type PeerDatapath, type PodEndpoint } from './model.js';
import { Reconciler, type ReconcileOptions, type ReconcileReport } from './reconcile.js';

export interface LocalView {
  vni: number;
  heartbeatMac?: string;
  pods: PodEndpoint[];
  /** Local addresses answered locally (model.ts ModelInput.localNeighbours). */
  localNeighbours?: PodEndpoint[];
}

/** Desired kernel state from the endpoints channel and the overlay switch's per-peer choice. */
export function desiredFromEntries(
  local: LocalView,
  entries: readonly StoredEntry[],
  datapathOf: (peer: PeerName) => PeerDatapath,
): { desired: DesiredState; conflicts: ModelConflict[] } {
  return computeDesired({
    vni: local.vni,
    heartbeatMac: local.heartbeatMac,
    localPods: local.pods,
    ...(local.localNeighbours ? { localNeighbours: local.localNeighbours } : {}),
    peers: entries.map((e) => ({
      name: e.peer,
      vtep: e.vtep,
      vni: e.vni,
      datapath: datapathOf(e.peer),
      heartbeatMac: e.heartbeatMac,
      pods: e.pods,
      updatedAt: e.updatedAt,
    })),
  });
}

export class Fastdp {
  private readonly reconciler: Reconciler;
  private mtuValue: number | undefined;

  constructor(
    private readonly kernel: FastdpKernel,
    readonly config: FastdpConfig,
  ) {
    this.reconciler = new Reconciler(kernel, { bridge: config.bridge, vxlan: config.vxlan, sleeve: config.sleeve, heartbeat: config.heartbeat });
  }

  /** A fast datapath driving this process's network namespace through netlink. */
  static open(config: FastdpConfig): Fastdp {
    return new Fastdp(Netlink.open(), config);
  }

  /** The overlay MTU (known after ensureDevices). */
  get mtu(): number | undefined {
    return this.mtuValue;
  }

  /** Create or repair bridge and vxlan (and attach the sleeve and heartbeat TAPs when they exist). */
  async ensureDevices(): Promise<DevicesReport & { sleeveAttached: boolean; heartbeatAttached: boolean }> {
    const r = await ensureDevices(this.kernel, this.config);
    this.mtuValue = r.mtu;
    const sleeveAttached = await ensureSleevePort(this.kernel, this.config, r.mtu);
    const heartbeatAttached = await ensureHeartbeatPort(this.kernel, this.config, r.mtu);
    return { ...r, sleeveAttached, heartbeatAttached };
  }

  /** Attach the sleeve TAP once it exists (call after creating it). */
  async attachSleeve(): Promise<boolean> {
    if (this.mtuValue === undefined) throw new Error('fastdp: ensureDevices first');
    return ensureSleevePort(this.kernel, this.config, this.mtuValue);
  }

  /** Attach the heartbeat TAP once it exists (call after creating it). */
  async attachHeartbeat(): Promise<boolean> {
    if (this.mtuValue === undefined) throw new Error('fastdp: ensureDevices first');
    return ensureHeartbeatPort(this.kernel, this.config, this.mtuValue);
  }

  /** Bring kernel entries to `desired`, touching only what differs (or, additive, only adding what is missing). */
  reconcile(desired: DesiredState, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
    return this.reconciler.reconcile(desired, opts);
  }

  /** The operations reconcile would apply now (dry run). */
  plan(desired: DesiredState): Promise<EntryOp[]> {
    return this.reconciler.plan(desired);
  }

  /** Release the kernel handle (the kernel state stays: that is `meshnet stop`). */
  close(): void {
    (this.kernel as Partial<Pick<Netlink, 'close'>>).close?.();
  }

  /** `meshnet reset`: remove bridge, vxlan and sleeve TAP. (`stop` leaves everything.) */
  reset(): Promise<string[]> {
    return resetDevices(this.kernel, this.config);
  }
}
