// In-memory twins of the CNI handler's two edges, for unit tests of its logic.

import type { Attachment } from '../../../router/cni/config.js';
import {
  AllocatorError,
  HostNetworkError,
  type BridgeSpec,
  type CniAllocator,
  type CniHostNetwork,
  type NetnsState,
  type PodAddress,
  type PodLink,
  type PodLinkState,
} from '../../../router/cni/types.js';

export class MemAllocator implements CniAllocator {
  readonly held = new Map<string, string>();
  isReady = true;
  failRelease = false;
  /** Addresses .2 … .(1+size) of 198.19.9.0/24. */
  constructor(private readonly size = 200) {}

  ready(): boolean {
    return this.isReady;
  }
  async allocate(containerId: string, ifname: string): Promise<PodAddress> {
    await Promise.resolve();
    if (!this.isReady) throw new AllocatorError('not-ready', 'not ready');
    const key = `${containerId}/${ifname}`;
    let ip = this.held.get(key);
    if (!ip) {
      const used = new Set(this.held.values());
      for (let i = 2; i < 2 + this.size && !ip; i++) if (!used.has(`198.19.9.${i}`)) ip = `198.19.9.${i}`;
      if (!ip) throw new AllocatorError('exhausted', 'range 198.19.9.0/24 is full');
      this.held.set(key, ip);
    }
    return addr(ip);
  }
  async claim(containerId: string, ifname: string, address: string): Promise<PodAddress> {
    await Promise.resolve();
    const key = `${containerId}/${ifname}`;
    if (this.held.get(key) === address) return addr(address);
    for (const [k, v] of this.held) if (v === address || k === key) throw new AllocatorError('unavailable', `${address} is taken`);
    this.held.set(key, address);
    return addr(address);
  }
  lookup(containerId: string, ifname: string): PodAddress | undefined {
    const ip = this.held.get(`${containerId}/${ifname}`);
    return ip ? addr(ip) : undefined;
  }
  async release(containerId: string, ifname: string): Promise<void> {
    await Promise.resolve();
    if (this.failRelease) throw new Error('ring not loaded');
    this.held.delete(`${containerId}/${ifname}`);
  }
  allocations(): Attachment[] {
    return [...this.held.keys()].map((k) => ({ containerId: k.split('/')[0]!, ifname: k.split('/')[1]! }));
  }
}

function addr(ip: string): PodAddress {
  return { address: ip, prefixLength: 24, gateway: '198.19.9.1' };
}

interface FakeLink {
  link: PodLink;
  podUp: boolean;
  podAddresses: string[];
  gateways: string[];
}

/** Namespaces are paths in `namespaces`; links live in `links` by host name. */
export class MemHostNetwork implements CniHostNetwork {
  readonly namespaces = new Set<string>();
  readonly notNetns = new Set<string>();
  readonly bridges = new Map<string, BridgeSpec>();
  readonly links = new Map<string, FakeLink>();
  /** Interfaces that already exist in a namespace, "netns/ifname". */
  readonly podNames = new Set<string>();
  /** Fail the next N attach calls at this step. */
  failAttach: { step: 'host veth' | 'pod interface'; times: number } | undefined;
  failDetach = false;
  calls: string[] = [];

  async netnsState(path: string): Promise<NetnsState> {
    if (this.notNetns.has(path)) return 'not-netns';
    return this.namespaces.has(path) ? 'present' : 'missing';
  }
  async ensureBridge(spec: BridgeSpec): Promise<{ mac: string }> {
    this.calls.push(`ensureBridge ${spec.name}`);
    if (!this.bridges.has(spec.name)) this.bridges.set(spec.name, spec);
    return { mac: this.bridges.get(spec.name)!.mac };
  }
  async attach(link: PodLink): Promise<void> {
    this.calls.push(`attach ${link.hostIfname}`);
    if (!this.bridges.has(link.bridge)) throw new HostNetworkError('host veth', `Cannot find device "${link.bridge}"`);
    if (this.links.has(link.hostIfname)) throw new HostNetworkError('host veth', 'RTNETLINK answers: File exists');
    if (this.podNames.has(`${link.netns}/${link.ifname}`)) throw new HostNetworkError('host veth', 'RTNETLINK answers: File exists');
    if (this.failAttach?.step === 'host veth' && this.failAttach.times-- > 0) throw new HostNetworkError('host veth', 'injected');
    this.links.set(link.hostIfname, { link, podUp: false, podAddresses: [], gateways: [] });
    if (this.failAttach?.step === 'pod interface' && this.failAttach.times-- > 0) throw new HostNetworkError('pod interface', 'RTNETLINK answers: File exists');
    const l = this.links.get(link.hostIfname)!;
    l.podUp = true;
    l.podAddresses.push(`${link.address}/${link.prefixLength}`);
    l.gateways.push(link.gateway);
  }
  async detach(hostIfname: string): Promise<boolean> {
    this.calls.push(`detach ${hostIfname}`);
    if (this.failDetach) throw new HostNetworkError('delete veth', 'Operation not permitted');
    return this.links.delete(hostIfname);
  }
  async inspect(l: Pick<PodLink, 'netns' | 'ifname' | 'hostIfname'>): Promise<PodLinkState> {
    const f = this.links.get(l.hostIfname);
    if (!f) return { host: { exists: false }, pod: { exists: false, addresses: [], defaultGateways: [] } };
    return {
      host: { exists: true, master: f.link.bridge, up: true },
      pod: { exists: true, up: f.podUp, mac: f.link.podMac, mtu: f.link.mtu, addresses: [...f.podAddresses], defaultGateways: [...f.gateways] },
    };
  }
  async bridgePorts(bridge: string): Promise<string[]> {
    return [...this.links.values()].filter((l) => l.link.bridge === bridge).map((l) => l.link.hostIfname);
  }
}
