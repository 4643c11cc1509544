// Who owns a MAC address, as the sleeve sees it. Pure (the caller passes the
// clock). MACs are 48-bit numbers (wire.ts read48), so lookups per frame are
// Map lookups on a number, no string is built.
//
// Remote MACs come from two sources: the datapath endpoints gossip (pods
// placed by the CNI, bridge addresses: authoritative) and, for MACs gossip
// does not know, learning from the source MAC of frames that arrived over
// the sleeve from a peer (Weave's MAC cache), with expiry. Local MACs are
// ours to deliver to: local pods, our bridge, and source MACs seen on frames
// read from our TAP (only local ports can send into it: it is isolated from
// the vxlan).

export const LEARNED_TTL_MS = 5 * 60_000;

/** True for broadcast and multicast MACs (the I/G bit). */
export function isGroupMac(buf: Uint8Array, off: number): boolean {
  return (buf[off]! & 1) === 1;
}

export function macKeyOf(mac: string): number {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(mac);
  if (!m) throw new TypeError(`mac: not a MAC address: ${JSON.stringify(mac)}`);
  return parseInt(m.slice(1).join(''), 16);
}

export function macStringOf(key: number): string {
  return key
    .toString(16)
    .padStart(12, '0')
    .replace(/(..)(?!$)/g, '$1:');
}

interface Learned {
  peer: number;
  expires: number;
}

export class RemoteMacs {
  private gossiped = new Map<number, number>();
  private readonly learned = new Map<number, Learned>();

  constructor(private readonly ttlMs = LEARNED_TTL_MS) {}

  /** Replace the gossiped view: mac key -> peer key. */
  setGossiped(m: Map<number, number>): void {
    this.gossiped = m;
  }

  /** The peer that owns `mac`, or undefined. */
  lookup(mac: number, now: number): number | undefined {
    const g = this.gossiped.get(mac);
    if (g !== undefined) return g;
    const l = this.learned.get(mac);
    if (!l) return undefined;
    if (l.expires <= now) {
      this.learned.delete(mac);
      return undefined;
    }
    return l.peer;
  }

  /** A frame from `peer` carried source MAC `mac`. Gossip keeps precedence. */
  learn(mac: number, peer: number, now: number): void {
    const l = this.learned.get(mac);
    // Refresh only when half the lifetime is gone: one Map write per MAC per
    // few minutes, not one per frame.
    if (l && l.peer === peer && l.expires - now > this.ttlMs / 2) return;
    if (this.gossiped.has(mac)) return;
    this.learned.set(mac, { peer, expires: now + this.ttlMs });
  }

  /** Forget what was learned from a peer that left. */
  forgetPeer(peer: number): void {
    for (const [mac, l] of this.learned) if (l.peer === peer) this.learned.delete(mac);
  }

  /** Drop expired entries (call now and then; lookups also expire lazily). */
  sweep(now: number): void {
    for (const [mac, l] of this.learned) if (l.expires <= now) this.learned.delete(mac);
  }

  get learnedCount(): number {
    return this.learned.size;
  }
}

export class LocalMacs {
  private known = new Set<number>();
  private readonly seen = new Map<number, number>();

  constructor(private readonly ttlMs = LEARNED_TTL_MS) {}

  /** Our pods and bridge (from CNI/IPAM and the kernel). */
  setKnown(macs: Iterable<number>): void {
    this.known = new Set(macs);
  }

  /** A frame read from our TAP had this source MAC. */
  saw(mac: number, now: number): void {
    const e = this.seen.get(mac);
    if (e !== undefined && e - now > this.ttlMs / 2) return;
    this.seen.set(mac, now + this.ttlMs);
  }

  has(mac: number, now: number): boolean {
    if (this.known.has(mac)) return true;
    const e = this.seen.get(mac);
    if (e === undefined) return false;
    if (e <= now) {
      this.seen.delete(mac);
      return false;
    }
    return true;
  }

  sweep(now: number): void {
    for (const [mac, e] of this.seen) if (e <= now) this.seen.delete(mac);
  }
}
