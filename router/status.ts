// The status document (`meshnet status --json`, DESIGN §3) assembled from
// the components. Rendering as text lives in status-text.ts.

import type { ConnectionStatus, Mesh } from '../mesh/mesh.js';
import { formatPeerName } from '../mesh/peer-name.js';
import { recordCount } from '../mesh/topology-codec.js';
import { PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION } from '../mesh/wire/protocol.js';
import { VERSION } from './version.js';

export interface PeerStatus {
  name: string;
  nickname: string;
  uid: string;
  /** Connections this peer reports. */
  connections: number;
  /** How we reach it: "self", "direct", "via <nickname>", or "unreachable". */
  route: string;
}

export interface TargetStatusJson {
  address: string;
  direct: boolean;
  state: string;
  peer: string | null;
  lastError: string | null;
}

export interface IpamStatusJson {
  range: string;
  ready: boolean;
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
  peers: PeerStatus[];
  connections: ConnectionStatus[];
  targets: TargetStatusJson[];
  ipam: IpamStatusJson;
}

export function meshStatus(mesh: Mesh): Omit<StatusJson, 'ipam'> {
  const byId = new Map([...mesh.topology.entries.values()].map((e) => [e.id, e]));
  const routes = mesh.routes.table();
  const peers: PeerStatus[] = [...mesh.topology.entries.values()].map((e) => {
    const hop = routes.get(e.id);
    const route = e.id === mesh.selfId ? 'self' : hop === undefined ? 'unreachable' : hop === e.id ? 'direct' : `via ${byId.get(hop)?.nickname ?? formatPeerName(hop)}`;
    return { name: formatPeerName(e.id), nickname: e.nickname, uid: e.uid.toString(), connections: recordCount(e.conns), route };
  });
  peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    name: mesh.localName,
    nickname: mesh.localNickname,
    uid: mesh.localUid,
    version: VERSION,
    protocol: `meshnet ${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}`,
    encryption: mesh.encrypted,
    peers,
    connections: mesh.connectionStatus(),
    targets: mesh.targets().map((t) => ({
      address: t.address,
      direct: t.direct,
      state: t.state,
      peer: t.peer === undefined ? null : formatPeerName(t.peer),
      lastError: t.lastError ?? null,
    })),
  };
}
