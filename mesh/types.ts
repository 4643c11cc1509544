// The mesh's public contract: what IPAM, the datapaths and the router see of
// the mesh, and what the mesh needs of a datapath (Overlay). Types only (and
// one error class), so `datapath/` may import it without pulling in any mesh
// code (see docs/architecture.md, "Dependencies").

/** A peer's stable name: 6 bytes as lower-case hex with colons, "8a:3f:00:12:ab:cd". */
export type PeerName = string;

/** Key/value features a peer announces in its handshake (datapaths, IPAM range…). */
export type Features = Record<string, string>;

/** What the topology knows of one peer. */
export interface PeerInfo {
  name: PeerName;
  nickname: string;
  /** Random per process start, decimal; a new UID means the peer restarted. */
  uid: string;
  /** Bumped by the owner on every change of its entry. */
  version: number;
  /** Peers this one reports a connection to (established or not). */
  connections: PeerConnectionInfo[];
}

export interface PeerConnectionInfo {
  peer: PeerName;
  /** The address this peer dialled, or the remote address it accepted from. */
  address: string;
  outbound: boolean;
  established: boolean;
}

/**
 * A component's state carried over a named gossip channel. The channel never
 * knows what it carries: it moves opaque bytes and calls these hooks.
 * Hooks must not throw for malformed input; they throw `GossipRejected` to
 * refuse an update (it is counted and logged, the connection survives).
 */
export interface Gossiper {
  /** Full state: sent to a newly connected or restarted peer and periodically (anti-entropy). */
  gossip(): Uint8Array | undefined;
  /**
   * Merge state received from neighbour `from` (sent by `gossip()` or
   * `GossipChannel.gossip()`). Return the part that was new to us, which the
   * mesh passes on to other neighbours, or undefined when nothing changed.
   */
  onGossip(from: PeerName, update: Uint8Array): Uint8Array | undefined;
  /**
   * A broadcast originated by `origin` (GossipChannel.broadcast). Return what
   * to relay down the broadcast tree (usually `update` itself), or undefined.
   */
  onBroadcast(origin: PeerName, update: Uint8Array): Uint8Array | undefined;
  /** A message addressed to this peer by GossipChannel.unicast. */
  onUnicast(from: PeerName, msg: Uint8Array): void;
  /**
   * Optional: an order-independent 32-bit fingerprint of the state
   * `gossip()` would send (crypto/fingerprint.ts). Peers equal in it skip the
   * periodic full-state exchange; without it the channel's whole state goes
   * to a random neighbour every anti-entropy period.
   */
  stateHash?(): number;
}

/** Thrown by a Gossiper hook to refuse an update with a reason. */
export class GossipRejected extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GossipRejected';
  }
}

/** The sending half of a registered channel. */
export interface GossipChannel {
  readonly name: string;
  /** Send state to neighbours; each relays it while it is new to them. */
  gossip(update: Uint8Array): void;
  /** Send to every reachable peer along the per-source broadcast tree (each peer gets it once). */
  broadcast(update: Uint8Array): void;
  /** Route `msg` hop by hop to `to`. Returns false when `to` is unreachable now. */
  unicast(to: PeerName, msg: Uint8Array): boolean;
}

/** Events the mesh emits to its components. */
export interface MeshEvents {
  /** The set of known peers or their connections changed. */
  'topology-changed': [];
  /** A direct connection to `peer` finished its handshake. */
  'connection-established': [peer: PeerName, info: { restarted: boolean; features: Features }];
  /** A direct connection to `peer` went away. */
  'connection-lost': [peer: PeerName];
  /** A peer disappeared from the topology (unreachable and garbage-collected). */
  'peer-removed': [peer: PeerName];
}

/** The mesh as components see it. */
export interface MeshHandle {
  readonly localName: PeerName;
  readonly localNickname: string;
  readonly localUid: string;
  /** Register a named channel. Register before `start()`; names are unique. */
  registerChannel(name: string, gossiper: Gossiper): GossipChannel;
  /** Every peer known by gossip, self included. */
  peers(): PeerInfo[];
  /** True when a route (possibly multi-hop) to `peer` exists now. */
  isReachable(peer: PeerName): boolean;
  /** Next hop towards `peer` over established, symmetric connections, or undefined. */
  nextHop(peer: PeerName): PeerName | undefined;
  /** Neighbours to forward a broadcast from `origin` to (its spanning tree below us). */
  broadcastChildren(origin: PeerName): PeerName[];
  on<E extends keyof MeshEvents>(event: E, listener: (...args: MeshEvents[E]) => void): this;
  off<E extends keyof MeshEvents>(event: E, listener: (...args: MeshEvents[E]) => void): this;
}

// ---- the overlay (datapath) as the mesh sees it ----------------------------
// Defined here, not in datapath/, because the mesh depends on it and the
// mesh may not import datapath/ (docs/architecture.md). datapath/ implements it.

/** Keys for the data plane of one peer connection, derived by its handshake. */
export interface DataKeys {
  /** Seals datagrams we send to this peer. */
  send: Uint8Array;
  /** Opens datagrams this peer sends to us. */
  recv: Uint8Array;
}

export interface OverlayConnectionParams {
  peer: PeerName;
  /** Unique per connection, the same on both ends (decimal u64). */
  connUid: string;
  /** The peer's underlay IP as seen on the TCP connection. */
  remoteIp: string;
  /** Our underlay IP on that connection. */
  localIp: string;
  /** What the peer announced in its handshake (see Overlay.features()). */
  remoteFeatures: Features;
  outbound: boolean;
  /** Keys when traffic to this peer must be encrypted, null when it may travel in the clear. */
  keys: DataKeys | null;
  /** Send an overlay control message to the peer over the mesh connection (reliable, ordered, sealed when encrypted). */
  sendControl(msg: Uint8Array): void;
}

/** What the overlay tracks for one peer connection. */
export interface OverlayConnection {
  /** The datapath carrying frames to this peer right now ("fastdp", "sleeve"); null until one works. */
  readonly datapath: 'fastdp' | 'sleeve' | null;
  /** Human-readable detail for `meshnet status connections` (e.g. "mtu=1410"). */
  readonly info: string;
  /** An overlay control message from the peer (sent with its `sendControl`). */
  onControl(msg: Uint8Array): void;
  /** The mesh connection closed. */
  close(): void;
}

/** The datapath as the mesh sees it. The router wires one in; tests may run without. */
export interface Overlay {
  /** Features to announce in every handshake (e.g. overlays=fastdp,sleeve; vtep=…). */
  features(): Features;
  /** A peer connection finished its handshake. */
  connect(params: OverlayConnectionParams): OverlayConnection;
}
