// What the sleeve keeps per remote peer: its direct session (if we have a
// mesh connection to it), the next hop frames to it take, and the path MTU
// to it over that hop.

import type { PeerName } from '../../mesh/types.js';
import type { PathMtu } from './pmtu.js';
import type { SleeveSession } from './session.js';

export interface PeerRec {
  /** 48-bit key of the peer name (wire.ts peerKey). */
  readonly key: number;
  readonly name: PeerName;
  /** The live session of our direct mesh connection, if any. */
  session: SleeveSession | undefined;
  /** The neighbour frames to this peer are sent to (itself when direct); undefined: unreachable over the sleeve. */
  hop: PeerRec | undefined;
  /** Path MTU over the current hop (created when a hop exists). */
  pmtu: PathMtu | undefined;
  /** The peer told us its frames and broadcasts to us take the vxlan (so its sleeve broadcasts are not delivered twice). */
  fastdpToUs: boolean;
  /** The verified frame budget last logged (0: none yet). */
  loggedBudget: number;
}

export function newPeerRec(key: number, name: PeerName): PeerRec {
  return { key, name, session: undefined, hop: undefined, pmtu: undefined, fastdpToUs: false, loggedBudget: 0 };
}
