// The replicated IPAM state: what every peer gossips and merges. All values
// are immutable; a change replaces the object. See docs/ipam.md "The ring".
import type { PeerName } from '../../mesh/types.js';
import type { Range } from './ranges.js';

/** Identity of one claim of the whole range (a "ring"). */
export type RingId = string;

/** How this peer takes part in claiming the initial ring (`--ipalloc-init`). */
export type InitMode =
  | { readonly kind: 'consensus'; readonly n: number }
  | { readonly kind: 'seed'; readonly peers: readonly string[] }
  | { readonly kind: 'observer' };

export type ModeKind = InitMode['kind'];

/** Space the owner `from` gave to `to`, carried in the donor's record until `to` adopts it. */
export interface Transfer {
  /** Per-donor sequence number, strictly increasing, never reused. */
  readonly seq: number;
  readonly to: PeerName;
  readonly ranges: readonly Range[];
}

/**
 * One peer's entry in the ring. Only that peer writes it (owner-only
 * writes); everyone else merges copies by `version`.
 */
export interface PeerRecord {
  readonly peer: PeerName;
  readonly nickname: string;
  /** Bumped by the owner on every change; copies merge by the highest. */
  readonly version: number;
  /** The ring this record belongs to; null while the peer waits for one. */
  readonly ring: RingId | null;
  readonly mode: ModeKind;
  /** consensus: the quorum this peer was launched with (for status); otherwise 0. */
  readonly quorum: number;
  /** Space this peer owns and may allocate from. */
  readonly ranges: readonly Range[];
  /** Addresses this peer has allocated. Any part outside `ranges` is a claim on its owner. */
  readonly inUse: readonly Range[];
  /** Allocatable free addresses in `ranges` (a hint for choosing a donor). */
  readonly free: number;
  /** Highest transfer sequence number issued so far. */
  readonly transferSeq: number;
  /** Transfers issued and not yet acknowledged by their recipient. */
  readonly outgoing: readonly Transfer[];
  /** donor -> highest transfer seq adopted from it (acknowledges and de-duplicates). */
  readonly adopted: ReadonlyMap<PeerName, number>;
  /** The peer left (`meshnet reset`) after handing its space over; it adopts nothing more. */
  readonly retired: boolean;
  /** Set when this peer left a losing ring after a split brain (see docs/ipam.md). */
  readonly rehomedFrom: RingId | null;
}

/** The agreed start of a ring: the range split evenly among `claimants`. */
export interface Genesis {
  readonly id: RingId;
  /** Milliseconds since the epoch when the claim was agreed (0 for seed rings). Orders split rings. */
  readonly createdAt: number;
  /** Sorted peer names; each owns one contiguous share until it writes its own record. */
  readonly claimants: readonly PeerName[];
  readonly mode: 'consensus' | 'seed';
}

/** A dead peer's space given to live heirs, agreed by every live ring peer (rmpeer). */
export interface Removal {
  readonly target: PeerName;
  readonly ring: RingId;
  /** Version of the last removal of `target` this one follows (-1 for the first). */
  readonly after: number;
  /** The target's record as frozen by the removal; copies with version <= frozen.version are void. */
  readonly frozen: PeerRecord;
  /** The target's holdings given to heirs; seqs continue frozen.transferSeq. */
  readonly heirs: readonly Transfer[];
  readonly proposer: PeerName;
  readonly at: number;
}

/** An operator's decision on addresses in use on two peers at once (`resolve`). */
export interface Resolution {
  readonly id: string;
  readonly keeper: PeerName;
  /** Each loser gives up these addresses if it allocated them at or before `version` of its record. */
  readonly decisions: readonly { readonly loser: PeerName; readonly version: number; readonly addresses: readonly Range[] }[];
  readonly by: PeerName;
  readonly at: number;
}

/** Everything that is gossiped. Each map is merged key by key. */
export interface GossipState {
  readonly records: Map<PeerName, PeerRecord>;
  readonly geneses: Map<RingId, Genesis>;
  /** Keyed by removalKey(target, after). */
  readonly removals: Map<string, Removal>;
  readonly resolutions: Map<string, Resolution>;
}

export function emptyState(): GossipState {
  return { records: new Map(), geneses: new Map(), removals: new Map(), resolutions: new Map() };
}

export function removalKey(target: PeerName, after: number): string {
  return `${target}@${after}`;
}
