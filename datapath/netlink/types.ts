// What the rest of meshnet sees of kernel network objects: plain typed
// records with addresses as strings. No raw netlink attribute leaks past
// datapath/netlink.

/** A link by name or by ifindex. */
export type LinkRef = string | number;

/** A network namespace: an open fd, a path (/var/run/netns/x, /proc/PID/ns/net) or a pid. */
export type NetnsRef = { fd: number } | { path: string } | { pid: number };

export interface Link {
  index: number;
  name: string;
  /** IFLA_INFO_KIND: "bridge", "veth", "vxlan", "tun", … undefined for physical devices. */
  kind: string | undefined;
  mtu: number;
  mac: string | undefined;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Carrier (IFF_LOWER_UP). */
  lowerUp: boolean;
  /** ifindex of the master (bridge), if enslaved. */
  master: number | undefined;
  /** IFLA_LINK: e.g. a veth's peer ifindex (in `linkNetnsId`'s namespace when set). */
  link: number | undefined;
  linkNetnsId: number | undefined;
  vxlan?: VxlanInfo;
  bridge?: BridgeInfo;
  /** Set when the link is a bridge port. */
  bridgePort?: BridgePortInfo;
}

export type VxlanDf = 'unset' | 'set' | 'inherit';

export interface VxlanInfo {
  vni: number;
  /** UDP destination port. */
  port: number;
  /** Local (source) underlay address. */
  local: string | undefined;
  /** Underlay device ifindex, if bound to one. */
  dev: number | undefined;
  learning: boolean;
  proxy: boolean;
  l2miss: boolean;
  l3miss: boolean;
  ttl: number;
  ageing: number | undefined;
  /** undefined when the kernel does not report it (older than 5.0). */
  df: VxlanDf | undefined;
}

export interface BridgeInfo {
  stpState: number | undefined;
  ageingTime: number | undefined;
}

export interface BridgePortInfo {
  /** STP state (3 = forwarding). */
  state: number | undefined;
  hairpin: boolean;
  learning: boolean;
  unicastFlood: boolean;
  multicastFlood: boolean;
  broadcastFlood: boolean;
  neighSuppress: boolean;
  proxyArp: boolean;
  isolated: boolean;
}

export type BridgePortFlags = Partial<
  Pick<BridgePortInfo, 'hairpin' | 'learning' | 'unicastFlood' | 'multicastFlood' | 'broadcastFlood' | 'neighSuppress' | 'proxyArp' | 'isolated'>
>;

export interface VxlanSpec {
  vni: number;
  port: number;
  local?: string;
  /** Underlay device (name or index). */
  dev?: LinkRef;
  learning?: boolean;
  proxy?: boolean;
  ttl?: number;
  df?: VxlanDf;
  ageing?: number;
}

export interface LinkOptions {
  mtu?: number;
  mac?: string;
  up?: boolean;
  master?: LinkRef;
}

export interface LinkChange {
  up?: boolean;
  mtu?: number;
  /** A bridge to enslave to, or null to release. */
  master?: LinkRef | null;
  name?: string;
  mac?: string;
  netns?: NetnsRef;
}

export interface VethPeerSpec {
  name: string;
  /** Create the peer directly in this namespace. */
  netns?: NetnsRef;
  mtu?: number;
  mac?: string;
}

export interface Address {
  ifindex: number;
  family: 4 | 6;
  address: string;
  prefixLength: number;
  label: string | undefined;
}

export interface Route {
  /** "0.0.0.0/0", "10.32.0.0/12", … */
  dst: string;
  gateway: string | undefined;
  oif: number | undefined;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  prefsrc: string | undefined;
  priority: number | undefined;
  onlink: boolean;
}

export interface RouteSpec {
  dst: string;
  gateway?: string;
  dev?: LinkRef;
  table?: number;
  protocol?: number;
  scope?: 'universe' | 'link' | 'host';
  src?: string;
  metric?: number;
  onlink?: boolean;
}

export type NeighState = 'permanent' | 'noarp' | 'reachable' | 'stale' | 'delay' | 'probe' | 'failed' | 'incomplete' | 'none';

/** An ARP / NDP neighbour entry. */
export interface Neighbour {
  ifindex: number;
  ip: string;
  mac: string | undefined;
  state: NeighState;
  /** NDA_PROTOCOL: who installed it (0 when unset). */
  protocol: number;
}

export interface NeighbourSpec {
  dev: LinkRef;
  ip: string;
  mac: string;
  /** Owner tag stored in the entry (NDA_PROTOCOL), to recognise our entries in dumps. */
  protocol?: number;
}

/**
 * A forwarding-database entry (AF_BRIDGE neighbour). `self` entries live in
 * the device's own table (a vxlan's remote table); `master` entries live in
 * the bridge the device is a port of.
 */
export interface FdbEntry {
  ifindex: number;
  mac: string;
  /** Remote VTEP for vxlan `self` entries. */
  dst: string | undefined;
  vni: number | undefined;
  vlan: number | undefined;
  /** NDA_MASTER: the bridge ifindex for bridge entries. */
  master: number | undefined;
  self: boolean;
  /** Entry of the master (bridge) FDB (NTF_MASTER). */
  isMaster: boolean;
  /** permanent (local or vxlan static), static (user entry, NUD_NOARP), dynamic (learned). */
  state: 'permanent' | 'static' | 'dynamic';
  sticky: boolean;
}

export interface FdbSpec {
  dev: LinkRef;
  mac: string;
  /** `self`: the device's own table (vxlan remotes); `master`: the bridge's FDB. */
  target: 'self' | 'master';
  /** vxlan remote address (self entries). */
  dst?: string;
  vni?: number;
  /** Bridge entries: can't be moved by learning. */
  sticky?: boolean;
}

/** How NEW requests treat an existing object. */
export type WriteMode = 'add' | 'replace' | 'append';

export type NetlinkEvent =
  | { type: 'link'; action: 'new' | 'del'; link: Link }
  | { type: 'neigh'; action: 'new' | 'del'; neighbour: Neighbour }
  | { type: 'fdb'; action: 'new' | 'del'; entry: FdbEntry }
  /** The kernel dropped events (receive buffer overflow): resynchronise by dumping. */
  | { type: 'overflow' };
