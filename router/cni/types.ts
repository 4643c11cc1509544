// What the CNI handler needs from the rest of the daemon, as two narrow
// interfaces: an address allocator (the daemon's IPAM) and host networking
// (ip -batch today, in-process netlink later). Unit tests use in-memory fakes.

import type { Attachment } from './config.js';

/** A pod's address on the overlay. */
export interface PodAddress {
  /** "198.19.0.5" */
  address: string;
  /** The overlay's prefix length, e.g. 12 for 10.32.0.0/12. */
  prefixLength: number;
  /** The bridge's (the host's exposed) address, the pod's default gateway. */
  gateway: string;
}

/** Why an allocator refused; the handler maps each kind to a CNI error code. */
export type AllocatorErrorKind = 'not-ready' | 'exhausted' | 'unavailable';

export class AllocatorError extends Error {
  constructor(
    readonly kind: AllocatorErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'AllocatorError';
  }
}

/**
 * The daemon's IPAM as the CNI handler sees it. Keys are (containerId, ifname).
 * Implementations throw AllocatorError for expected refusals; anything else is
 * reported as an internal error.
 */
export interface CniAllocator {
  /** Can ADD be served now (the ring is claimed, this peer owns or can borrow space)? STATUS reports it. */
  ready(): boolean;
  /** The attachment's address: a new one, or the one it already holds (idempotent). */
  allocate(containerId: string, ifname: string): Promise<PodAddress>;
  /**
   * A specific address for the attachment (runtimeConfig.ips, CNI_ARGS IP=).
   * Idempotent for the same key and address; AllocatorError('unavailable') when
   * another attachment holds it, it is outside the range, or the key holds another address.
   */
  claim(containerId: string, ifname: string, address: string): Promise<PodAddress>;
  /** The address the attachment holds, if any. */
  lookup(containerId: string, ifname: string): PodAddress | undefined | Promise<PodAddress | undefined>;
  /** Free the attachment's address; an unknown attachment is not an error. */
  release(containerId: string, ifname: string): Promise<void>;
  /** Every attachment that holds an address through this interface (GC compares them with the runtime's list). */
  allocations(): Attachment[] | Promise<Attachment[]>;
}

export interface BridgeSpec {
  name: string;
  /** The address the bridge carries: the pods' gateway. */
  gateway: string;
  prefixLength: number;
  /** Used when the bridge is created; an existing bridge keeps its MTU. */
  mtu: number;
  /** Used when the bridge is created. */
  mac: string;
}

/** Everything needed to wire one pod. */
export interface PodLink {
  /** CNI_NETNS */
  netns: string;
  /** CNI_IFNAME, the pod's interface. */
  ifname: string;
  /** The host end of the veth pair, "mn" + hash. */
  hostIfname: string;
  bridge: string;
  address: string;
  prefixLength: number;
  gateway: string;
  mtu: number;
  hairpin: boolean;
  podMac: string;
  hostMac: string;
}

export type NetnsState = 'present' | 'missing' | 'not-netns';

/** What is there now for one attachment (CHECK and repeated ADD compare it with PodLink). */
export interface PodLinkState {
  host: { exists: boolean; master?: string; up?: boolean };
  pod: { exists: boolean; up?: boolean; mac?: string; mtu?: number; addresses: string[]; defaultGateways: string[] };
}

/** Thrown by host networking with the step that failed and the kernel's (or ip's) words. */
export class HostNetworkError extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(message);
    this.name = 'HostNetworkError';
  }
}

/** Host networking for pods. All methods are safe to call concurrently for different attachments. */
export interface CniHostNetwork {
  netnsState(path: string): Promise<NetnsState>;
  /** Create the bridge with the gateway address if missing; add the address if the bridge lacks it; bring it up. Returns its MAC. */
  ensureBridge(spec: BridgeSpec): Promise<{ mac: string }>;
  /** Create the veth pair, move/rename the peer into the netns, set address/MTU/route, attach the host end. Throws HostNetworkError. */
  attach(link: PodLink): Promise<void>;
  /** Delete the veth pair by its host end. Returns false when it was not there. */
  detach(hostIfname: string): Promise<boolean>;
  inspect(link: Pick<PodLink, 'netns' | 'ifname' | 'hostIfname'>): Promise<PodLinkState>;
  /** Names of the links enslaved to `bridge`. */
  bridgePorts(bridge: string): Promise<string[]>;
}
