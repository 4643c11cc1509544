// One sleeve session: the UDP side of one mesh connection to a direct
// neighbour. It holds the keys of that connection (sealed datagrams) or
// none (plain), the replay window, the index the peer addresses us by and
// the one we address it by, and the health of the UDP link measured by
// heartbeats.

import { ReplayWindow } from '../../crypto/replay-window.js';
import { AeadOpener, AeadSealer, type AeadBackend } from '../io/aead.js';
import { ipToU32 } from '../io/ipv4.js';
import type { DataKeys } from '../types.js';
import type { PeerRec } from './peers.js';

export interface LinkTimings {
  /** Heartbeat interval per session. */
  heartbeatMs: number;
  /** No heartbeat for this long: the link is down. */
  linkTimeoutMs: number;
}

export const DEFAULT_LINK_TIMINGS: LinkTimings = { heartbeatMs: 500, linkTimeoutMs: 2500 };

export class SleeveSession {
  /** The index the peer puts in datagrams to us (ours to choose, unique). */
  readonly index: number;
  /** The index we put in datagrams to the peer (from its hello); 0 until then. */
  remoteIndex = 0;
  port = 0;
  readonly ip: string;
  readonly ipU32: number;
  readonly sealer: AeadSealer | null;
  readonly opener: AeadOpener | null;
  readonly window: ReplayWindow | null;
  /** Path MTU to the peer's address as the kernel knows it (0: not asked yet). */
  pathMtu = 0;
  pathMtuPending = false;
  lastRx = -Infinity;
  peerHearsUs = false;
  hbSeq = 0;
  lastHbSent = -Infinity;
  /** What our last heartbeat said: false makes us answer the peer's next heartbeat at once. */
  lastSentHear = false;
  closed = false;

  constructor(
    readonly peer: PeerRec,
    readonly connUid: string,
    index: number,
    ip: string,
    keys: DataKeys | null,
    aead: AeadBackend,
  ) {
    this.index = index;
    this.ip = ip;
    this.ipU32 = ipToU32(ip);
    // One key per direction and connection: the nonce prefix can be constant.
    this.sealer = keys ? new AeadSealer(keys.send, 0, aead) : null;
    this.opener = keys ? new AeadOpener(keys.recv, 0, aead) : null;
    this.window = keys ? new ReplayWindow() : null;
  }

  get sealed(): boolean {
    return this.sealer !== null;
  }

  /** The peer told us how to address it. */
  get ready(): boolean {
    return !this.closed && this.remoteIndex !== 0 && this.port !== 0;
  }

  /** We heard from the peer recently. */
  hearing(now: number, t: LinkTimings): boolean {
    return now - this.lastRx <= t.linkTimeoutMs;
  }

  /** UDP works both ways: we hear the peer, and it says it hears us. */
  healthy(now: number, t: LinkTimings): boolean {
    return this.ready && this.hearing(now, t) && this.peerHearsUs;
  }
}
