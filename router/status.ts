// The status document (`meshnet status --json`, DESIGN §3) assembled from
// the components. Rendering as text lives in status-text.ts.

import type { ConnectionStatus, Mesh } from '../mesh/mesh.js';
import { formatPeerName } from '../mesh/peer-name.js';
import { recordCount, unpackRecords } from '../mesh/topology-codec.js';
import { PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION } from '../mesh/wire/protocol.js';
import { VERSION } from './version.js';
import type { DatapathStatus } from '../datapath/index.js';

export interface LinkStatus {
  peer: string;
  address: string;
  outbound: boolean;
  established: boolean;
}

export interface PeerStatus {
  name: string;
  nickname: string;
  uid: string;
  /** Connections this peer reports. */
  connections: number;
  /** A route to it exists now. */
  reachable: boolean;
  /** How we reach it: "self", "direct", "via <nickname>", or "unreachable". */
  route: string;
  /** The connections it reports, as gossiped. */
  links: LinkStatus[];
}

export interface TargetStatusJson {
  address: string;
  /** "command line", "connect", "kubernetes". */
  source: string;
  state: string;
  peer: string | null;
  lastError: string | null;
}

export interface IpamStatusJson {
  range: string;
  ready: boolean;
  /** One of the status words of docs/status-format.md §4. */
  status: string;
  /** Problems to show (a refused conflicting ring, say). */
  problems?: string[];
  owned: number;
  allocated: number;
  ranges: { start: string; size: number; owner: string }[];
  [key: string]: unknown;
}

export interface StatusJson {
  name: string;
  nickname: string;
  uid: string;
  version: string;
  protocol: string;
  encryption: boolean;
  trustedSubnets: string[];
  /** Peer discovery from Kubernetes, when configured. */
  discovery?: { kubernetes?: { state: string; nodes: number; lastSync?: string; error?: string } };
  peers: PeerStatus[];
  connections: ConnectionStatus[];
  targets: TargetStatusJson[];
  ipam: IpamStatusJson;
  /** Devices, MTU, I/O backend, per-peer datapath and sleeve counters (docs/datapath.md). */
  datapath?: DatapathStatus;
}

export function meshStatus(mesh: Mesh, trustedSubnets: string[] = []): Omit<StatusJson, 'ipam'> {
  const byId = new Map([...mesh.topology.entries.values()].map((e) => [e.id, e]));
  const routes = mesh.routes.table();
  const peers: PeerStatus[] = [...mesh.topology.entries.values()].map((e) => {
    const hop = routes.get(e.id);
    const self = e.id === mesh.selfId;
    const route = self ? 'self' : hop === undefined ? 'unreachable' : hop === e.id ? 'direct' : `via ${byId.get(hop)?.nickname ?? formatPeerName(hop)}`;
    return {
      name: formatPeerName(e.id),
      nickname: e.nickname,
      uid: e.uid.toString(),
      connections: recordCount(e.conns),
      reachable: self || hop !== undefined,
      route,
      links: unpackRecords(e.conns).map((c) => ({ peer: formatPeerName(c.peer), address: c.address, outbound: c.outbound, established: c.established })),
    };
  });
  // Self first, then by name.
  peers.sort((a, b) => (a.route === 'self' ? -1 : b.route === 'self' ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    name: mesh.localName,
    nickname: mesh.localNickname,
    uid: mesh.localUid,
    version: VERSION,
    protocol: `meshnet ${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}`,
    encryption: mesh.encrypted,
    trustedSubnets,
    peers,
    connections: mesh.connectionStatus(),
    targets: mesh
      .targets()
      .filter((t) => t.direct)
      .map((t) => ({
        address: t.address,
        source: t.source ?? 'connect',
        state: t.state,
        peer: t.peer === undefined ? null : formatPeerName(t.peer),
        lastError: t.lastError ?? null,
      })),
  };
}
