// Glue between gossip and the kernel, so the router's wiring stays small:
// the endpoints Gossiper (register it as a channel), our own pods, each
// peer's current datapath (from the overlay switch), and a debounced
// reconcile whenever any of them changes. Moved addresses are reported so
// the daemon can announce them (gratuitous ARP into its TAP).

import type { PeerName } from '../../mesh/types.js';
import { EndpointsGossiper, type EndpointsOptions } from './endpoints.js';
import { desiredFromEntries, type Fastdp } from './fastdp.js';
import { addressMoves, addressView, type ModelConflict, type PeerDatapath, type PodEndpoint } from './model.js';
import type { ReconcileReport } from './reconcile.js';

export interface ControllerOptions extends Omit<EndpointsOptions, 'onChange'> {
  fastdp: Fastdp;
  /** Our VTEP (underlay address peers reach our vxlan on) and VNI. */
  vtep: string;
  vni: number;
  /** Our heartbeat MAC (heartbeat.ts heartbeatMac(self)). */
  heartbeatMac?: string;
  /** Coalesce bursts of changes (default 50 ms). */
  debounceMs?: number;
  /** After each reconcile: what was done, conflicts, and addresses that moved to a new MAC. */
  onReconciled?(r: ReconcileReport & { conflicts: ModelConflict[]; moves: PodEndpoint[] }): void;
  onError?(err: unknown): void;
  /**
   * Start held: until release(), reconciles only add entries that do not
   * exist (so heartbeats and new pods work at once) and never remove or
   * change one. A restarted daemon holds until it has heard the mesh's state
   * and chosen each peer's datapath, so it never removes entries that are
   * right only because it does not know about them yet.
   */
  held?: boolean;
}

export class FastdpController {
  readonly gossiper: EndpointsGossiper;
  private localPods: PodEndpoint[] = [];
  private localNeighbours: PodEndpoint[] = [];

  private readonly datapaths = new Map<PeerName, PeerDatapath>();
  private view = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private heldBack: boolean;
  /** Entries added by additive reconciles while held. */
  addedWhileHeld = 0;

  constructor(private readonly o: ControllerOptions) {
    this.heldBack = o.held ?? false;
    this.gossiper = new EndpointsGossiper({ ...o, onChange: () => this.schedule() });
  }

  get held(): boolean {
    return this.heldBack;
  }

  /** Stop holding: reconcile now with everything learned so far. */
  release(): Promise<ReconcileReport & { conflicts: ModelConflict[]; moves: PodEndpoint[] }> {
    this.heldBack = false;
    return this.reconcileNow();
  }

  /**
   * Our pods changed (CNI ADD/DEL). `pods`: every local address to announce
   * (pods and the bridge's own addresses); `answerLocally`: those whose MAC
   * is certain, which get a neighbour entry on the bridge so ARP for them
   * never leaves the host. Returns the gossip update to send.
   */
  setLocalPods(pods: PodEndpoint[], answerLocally: PodEndpoint[] = []): Uint8Array {
    this.localPods = [...pods];
    this.localNeighbours = [...answerLocally];
    this.schedule();
    return this.gossiper.setLocal({ vtep: this.o.vtep, vni: this.o.vni, heartbeatMac: this.o.heartbeatMac, pods });
  }

  /** We leave the mesh (`meshnet reset`): the update that tells peers to drop our entries now. */
  leave(): Uint8Array {
    return this.gossiper.setLocal({ vtep: this.o.vtep, vni: this.o.vni, heartbeatMac: this.o.heartbeatMac, pods: [], left: true });
  }

  /** The overlay switch moved `peer` to another datapath (only its pins and flood entry change). */
  setPeerDatapath(peer: PeerName, dp: PeerDatapath): void {
    if (this.datapaths.get(peer) === dp) return;
    this.datapaths.set(peer, dp);
    this.schedule();
  }

  /** A peer left the topology: its entries go. */
  peerRemoved(peer: PeerName): void {
    this.datapaths.delete(peer);
    this.gossiper.forgetPeer(peer);
    this.schedule();
  }

  /** Reconcile now (e.g. at start, after ensureDevices), bypassing the debounce. */
  async reconcileNow(): Promise<ReconcileReport & { conflicts: ModelConflict[]; moves: PodEndpoint[] }> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const local = { vni: this.o.vni, heartbeatMac: this.o.heartbeatMac, pods: this.localPods, localNeighbours: this.localNeighbours };
    const { desired, conflicts } = desiredFromEntries(local, this.gossiper.remoteEntries(), (p) => this.datapaths.get(p) ?? 'none');
    const report = await this.o.fastdp.reconcile(desired, { additive: this.heldBack });
    if (this.heldBack) this.addedWhileHeld += report.applied.length;
    const next = addressView(desired, this.localPods);
    const moves = addressMoves(this.view, next);
    this.view = next;
    const r = { ...report, conflicts, moves };
    this.o.onReconciled?.(r);
    return r;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reconcileNow().catch((err) => this.o.onError?.(err));
    }, this.o.debounceMs ?? 50);
  }
}
