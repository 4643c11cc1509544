// The contract between the mesh's connections and the datapaths. A mesh
// connection hands each established peer connection to the Overlay, which
// decides (per peer) how data frames travel: fastdp, sleeve, or not yet.

import type { Features, PeerName } from '../mesh/types.js';

export type DatapathName = 'fastdp' | 'sleeve';

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
  /** The datapath carrying frames to this peer right now; null until one works. */
  readonly datapath: DatapathName | null;
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
