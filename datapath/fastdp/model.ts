// The desired kernel state of the fast datapath, computed from what gossip
// says about remote peers and their pods. Pure.
//
// For each remote pod {mac, ip} on peer P (VTEP v):
//   neighbour  ip -> mac            on the bridge: ARP is answered locally
//                                   (bridge neigh_suppress) and never floods
//   vxlan FDB  mac -> v             `self` entry on the vxlan device
//   pin        mac -> port          static sticky entry in the bridge FDB:
//                                   the vxlan port when P uses fastdp, the
//                                   sleeve TAP when P uses the sleeve, none
//                                   while no datapath works to P yet
// For each fastdp peer: an all-zero vxlan FDB entry -> v (head-end
// replication of broadcast and multicast).
// For heartbeats: each remote peer's heartbeat MAC is pinned to the vxlan
// port (whatever P's datapath is, since the heartbeat tests the vxlan) and
// has its vxlan FDB entry; our own heartbeat MAC is pinned to our heartbeat
// TAP, so the bridge delivers heartbeats arriving from the vxlan to the
// daemon. (The sleeve TAP and the vxlan are isolated bridge ports: frames
// never pass between them, so broadcasts cannot loop between the two
// datapaths; the heartbeat TAP is the one port that talks to the vxlan.)
//
// Switching a peer between fastdp and sleeve changes only its pins' port
// (and its flood entry); neighbour and vxlan entries stay.

import type { PeerName } from '../../mesh/types.js';

export type PeerDatapath = 'fastdp' | 'sleeve' | 'none';
export type PortRole = 'vxlan' | 'sleeve' | 'heartbeat';

export interface PodEndpoint {
  mac: string;
  ip: string;
  /** Local pods: the host end of the pod's veth (where the bridge learns its real MAC). */
  port?: string;
}

export interface RemotePeer {
  name: PeerName;
  /** Underlay address of its vxlan. */
  vtep: string;
  vni: number;
  /** Where frames to this peer go now (the overlay switch decides). */
  datapath: PeerDatapath;
  /** MAC its daemon receives heartbeats on (through its TAP). */
  heartbeatMac?: string;
  pods: PodEndpoint[];
  /** When we last learned something new about this peer (any clock, larger = newer). Breaks ties between peers claiming the same IP or MAC. */
  updatedAt: number;
}

export interface ModelInput {
  /** Our VNI: peers with another one cannot share our vxlan. */
  vni: number;
  /** Our own heartbeat MAC (pinned to our TAP). */
  heartbeatMac?: string;
  /** Our own pods: their IPs and MACs are never programmed as remote. */
  localPods: PodEndpoint[];
  /**
   * Local addresses to keep out of the underlay: our pods and the bridge's
   * own overlay addresses. A neighbour entry each makes the bridge treat
   * ARP for them as answered locally (neigh_suppress: such requests are not
   * flooded to the vxlan or the sleeve; the pod or the host answers).
   */
  localNeighbours?: PodEndpoint[];
  peers: RemotePeer[];
}

export interface DesiredState {
  /** ip -> mac, permanent neighbours on the bridge. */
  neighbours: Map<string, string>;
  /** mac -> VTEP, vxlan `self` entries (unicast). */
  vxlanFdb: Map<string, string>;
  /** VTEPs that get an all-zero entry (broadcast/multicast replication). */
  floodDsts: Set<string>;
  /** mac -> port role, static sticky entries in the bridge FDB. */
  pins: Map<string, PortRole>;
}

export interface ModelConflict {
  kind: 'ip' | 'mac' | 'vni';
  key: string;
  /** The peer whose claim was dropped. */
  dropped: PeerName;
  /** Who keeps it ("local" for our own pods). */
  kept: PeerName | 'local';
}

export function emptyDesired(): DesiredState {
  return { neighbours: new Map(), vxlanFdb: new Map(), floodDsts: new Set(), pins: new Map() };
}

/** Newer claim first; equal times broken by name so every host decides the same. */
function newer(a: RemotePeer, b: RemotePeer): boolean {
  return a.updatedAt !== b.updatedAt ? a.updatedAt > b.updatedAt : a.name < b.name;
}

/**
 * Desired entries for `input`. Claims that collide (two peers with one IP or
 * one MAC, a remote claiming a local pod's address) are resolved in favour
 * of the local pod, then of the most recently updated peer, and reported.
 */
export function computeDesired(input: ModelInput): { desired: DesiredState; conflicts: ModelConflict[] } {
  const d = emptyDesired();
  const conflicts: ModelConflict[] = [];
  const localIps = new Set(input.localPods.map((p) => p.ip));
  const localMacs = new Set(input.localPods.map((p) => p.mac));
  if (input.heartbeatMac) localMacs.add(input.heartbeatMac);

  const usable: RemotePeer[] = [];
  for (const p of input.peers) {
    if (p.vni !== input.vni) conflicts.push({ kind: 'vni', key: String(p.vni), dropped: p.name, kept: 'local' });
    else usable.push(p);
  }

  // Who owns each IP and MAC after conflict resolution.
  const ipOwner = new Map<string, { peer: RemotePeer; mac: string }>();
  const macOwner = new Map<string, RemotePeer>();
  for (const p of usable) {
    for (const pod of p.pods) {
      if (localIps.has(pod.ip)) {
        conflicts.push({ kind: 'ip', key: pod.ip, dropped: p.name, kept: 'local' });
        continue;
      }
      if (localMacs.has(pod.mac)) {
        conflicts.push({ kind: 'mac', key: pod.mac, dropped: p.name, kept: 'local' });
        continue;
      }
      const prevIp = ipOwner.get(pod.ip);
      if (prevIp && prevIp.peer !== p) {
        const win = newer(p, prevIp.peer) ? p : prevIp.peer;
        conflicts.push({ kind: 'ip', key: pod.ip, dropped: (win === p ? prevIp.peer : p).name, kept: win.name });
        if (win !== p) continue;
      }
      const prevMac = macOwner.get(pod.mac);
      if (prevMac && prevMac !== p) {
        const win = newer(p, prevMac) ? p : prevMac;
        conflicts.push({ kind: 'mac', key: pod.mac, dropped: (win === p ? prevMac : p).name, kept: win.name });
        if (win !== p) continue;
      }
      ipOwner.set(pod.ip, { peer: p, mac: pod.mac });
      macOwner.set(pod.mac, p);
    }
  }
  // A MAC taken over by a newer peer invalidates the older peer's IP claims on it.
  for (const [ip, o] of ipOwner) {
    if (macOwner.get(o.mac) !== o.peer) ipOwner.delete(ip);
    else d.neighbours.set(ip, o.mac);
  }
  for (const [mac, p] of macOwner) {
    d.vxlanFdb.set(mac, p.vtep);
    if (p.datapath === 'fastdp') d.pins.set(mac, 'vxlan');
    else if (p.datapath === 'sleeve') d.pins.set(mac, 'sleeve');
  }
  for (const p of usable) {
    if (p.datapath === 'fastdp') d.floodDsts.add(p.vtep);
    if (p.heartbeatMac && !localMacs.has(p.heartbeatMac) && !macOwner.has(p.heartbeatMac)) {
      d.vxlanFdb.set(p.heartbeatMac, p.vtep);
      d.pins.set(p.heartbeatMac, 'vxlan');
    }
  }
  if (input.heartbeatMac) d.pins.set(input.heartbeatMac, 'heartbeat');
  for (const b of input.localNeighbours ?? []) d.neighbours.set(b.ip, b.mac);
  return { desired: d, conflicts };
}

/**
 * Addresses whose MAC changed between two views (ip -> mac of remote
 * neighbours plus local pods): a pod moved. Local pods still hold the old MAC
 * in their ARP caches; the daemon announces each move with a gratuitous ARP
 * into its TAP (heartbeat.ts `gratuitousArp`), which reaches only local
 * ports (the bridge keeps gratuitous ARP off neigh_suppress ports).
 */
export function addressMoves(prev: ReadonlyMap<string, string>, next: ReadonlyMap<string, string>): PodEndpoint[] {
  const out: PodEndpoint[] = [];
  for (const [ip, mac] of next) {
    const before = prev.get(ip);
    if (before !== undefined && before !== mac) out.push({ ip, mac });
  }
  return out;
}

/** ip -> mac for every address reachable on this bridge: remote (desired neighbours) and local pods. */
export function addressView(desired: DesiredState, localPods: readonly PodEndpoint[]): Map<string, string> {
  const m = new Map(desired.neighbours);
  for (const p of localPods) m.set(p.ip, p.mac);
  return m;
}
