// Single-decree Paxos, as pure state machines; the caller moves the messages
// (unicast over the mesh) and persists acceptor state before replying.
// Used twice: to agree on the initial ring (`consensus` mode, majority
// quorum) and to agree on a dead peer's removal (`rmpeer`, every live ring
// peer). Safety is the textbook argument: a value is chosen once a quorum
// accepted it under one ballot; any later ballot's phase 1 meets that quorum
// in at least one acceptor, learns the value and proposes it again.
import type { PeerName } from '../../mesh/types.js';
import type { Ballot, PaxosValue } from './codec.js';

export interface AcceptorState {
  readonly promised: Ballot | null;
  readonly accepted: { readonly ballot: Ballot; readonly value: PaxosValue } | null;
}

export const FRESH_ACCEPTOR: AcceptorState = { promised: null, accepted: null };

/** Ballots are ordered by round, then by proposer name (so two proposers never share one). */
export function compareBallots(a: Ballot, b: Ballot): number {
  if (a.round !== b.round) return a.round - b.round;
  return a.proposer < b.proposer ? -1 : a.proposer > b.proposer ? 1 : 0;
}

/** Phase 1b. A promise is also given again for the ballot already promised (retransmits). */
export function handlePrepare(s: AcceptorState, ballot: Ballot): { next: AcceptorState; ok: boolean } {
  if (s.promised && compareBallots(ballot, s.promised) < 0) return { next: s, ok: false };
  return { next: { ...s, promised: ballot }, ok: true };
}

/** Phase 2b. */
export function handleAccept(s: AcceptorState, ballot: Ballot, value: PaxosValue): { next: AcceptorState; ok: boolean } {
  if (s.promised && compareBallots(ballot, s.promised) < 0) return { next: s, ok: false };
  return { next: { promised: ballot, accepted: { ballot, value } }, ok: true };
}

export interface PromiseInfo<Extra> {
  readonly accepted: AcceptorState['accepted'];
  readonly extra: Extra;
}

/** One ballot of a proposer: collects promises, then acceptances. */
export class ProposerRound<Extra> {
  phase: 'prepare' | 'accept' | 'chosen' = 'prepare';
  readonly promises = new Map<PeerName, PromiseInfo<Extra>>();
  readonly acceptances = new Set<PeerName>();
  value: PaxosValue | null = null;
  /** The highest ballot some acceptor told us it promised instead (we must go higher). */
  outbid: Ballot | null = null;
  readonly nackReasons = new Map<PeerName, string>();

  constructor(
    readonly inst: string,
    readonly ballot: Ballot,
  ) {}

  private sameBallot(b: Ballot): boolean {
    return compareBallots(b, this.ballot) === 0;
  }

  onPromise(from: PeerName, ballot: Ballot, info: PromiseInfo<Extra>): void {
    if (this.phase !== 'prepare' || !this.sameBallot(ballot)) return;
    this.promises.set(from, info);
  }

  onNack(from: PeerName, ballot: Ballot, promised: Ballot | null, reason: string): void {
    if (!this.sameBallot(ballot)) return;
    this.nackReasons.set(from, reason);
    if (promised && compareBallots(promised, this.ballot) > 0 && (!this.outbid || compareBallots(promised, this.outbid) > 0)) {
      this.outbid = promised;
    }
  }

  /** The value accepted under the highest ballot among the promises, which phase 2 must propose. */
  highestAccepted(): PaxosValue | null {
    let best: AcceptorState['accepted'] = null;
    for (const p of this.promises.values()) {
      if (p.accepted && (!best || compareBallots(p.accepted.ballot, best.ballot) > 0)) best = p.accepted;
    }
    return best?.value ?? null;
  }

  startAccept(value: PaxosValue): void {
    this.phase = 'accept';
    this.value = value;
  }

  onAccepted(from: PeerName, ballot: Ballot): void {
    if (this.phase !== 'accept' || !this.sameBallot(ballot)) return;
    this.acceptances.add(from);
  }
}
