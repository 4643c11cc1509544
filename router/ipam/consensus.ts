// Claiming the initial ring. `consensus[=N]`: single-decree Paxos among the
// consensus peers, majority quorum of N, on the value "this genesis" (the
// ring id, its time and the claimants: the peers the proposer knows). Only
// one genesis can be chosen by a set of peers whose quorums intersect, so
// two peers never both claim the range. `seed=...`: every peer computes the
// same genesis from the list, no agreement needed.
import { createHash } from 'node:crypto';
import type { PeerName } from '../../mesh/types.js';
import { type Cidr, formatCidr } from './addr.js';
import type { PaxosMessage, PaxosValue } from './codec.js';
import { isPeerName } from './codec.js';
import { ProposerRound } from './paxos.js';
import type { Genesis } from './types.js';

export const CLAIM_INSTANCE = 'claim';

const MAC_LIKE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * The seed ring for `seed=...`, or why it cannot be built yet. Entries are
 * peer names or nicknames; a nickname must resolve to exactly one known
 * peer. The id hashes the range and the sorted names, so every peer given
 * the same list (in any order, by names or nicknames) computes the same ring,
 * and a different list gives a different ring (a split brain, detected).
 */
export function seedGenesis(range: Cidr, entries: readonly string[], known: ReadonlyMap<PeerName, string>): { genesis: Genesis } | { problem: string } {
  const names: PeerName[] = [];
  const unresolved: string[] = [];
  for (const s of entries) {
    if (known.has(s) || (isPeerName(s) && MAC_LIKE.test(s))) {
      names.push(s);
      continue;
    }
    const byNick = [...known.entries()].filter(([, n]) => n === s).map(([p]) => p);
    if (byNick.length === 1) names.push(byNick[0]!);
    else if (byNick.length > 1) unresolved.push(`${s} (ambiguous: ${byNick.join(', ')})`);
    else unresolved.push(s);
  }
  if (unresolved.length > 0) return { problem: `awaiting seed peers: resolving nickname(s) ${unresolved.join(', ')}` };
  const claimants = [...new Set(names)].sort();
  const id = `seed-${createHash('sha256').update(`${formatCidr(range)}|${claimants.join(',')}`).digest('hex').slice(0, 16)}`;
  return { genesis: { id, createdAt: 0, claimants, mode: 'seed' } };
}

export interface ClaimHost {
  readonly me: PeerName;
  readonly quorum: number;
  hasRing(): boolean;
  /** Consensus-mode peers without a ring that we can reach, self included, sorted. */
  consensusPeers(): PeerName[];
  /** A fresh ballot round above `atLeast`, recorded durably before use. */
  nextRound(atLeast: number): number;
  afterSave(fn: () => void): void;
  sendPaxos(to: PeerName, m: PaxosMessage): void;
  timer(ms: number, fn: () => void): unknown;
  cancel(h: unknown): void;
  random(): number;
  now(): number;
  randomHex(): string;
  /** The genesis was chosen: record it, gossip it, join it. */
  chosen(g: Genesis): void;
  readonly proposeDelayMs: number;
  readonly retryMs: number;
}

export class ClaimProposer {
  private run: { round: ProposerRound<null>; acceptors: PeerName[]; timer: unknown } | null = null;
  private startTimer: unknown = null;

  constructor(private readonly h: ClaimHost) {}

  get proposing(): boolean {
    return this.run !== null;
  }

  /**
   * Start proposing once a quorum of consensus peers is known. The
   * lowest-named peer goes first; the others wait (with jitter) so duelling
   * proposers are rare; Paxos stays safe when they do duel.
   */
  consider(): void {
    if (this.h.hasRing()) {
      this.stop();
      return;
    }
    if (this.run || this.startTimer) return;
    const known = this.h.consensusPeers();
    if (known.length < this.h.quorum) return;
    const delay = known[0] === this.h.me ? 0 : this.h.proposeDelayMs * (1 + this.h.random());
    this.startTimer = this.h.timer(delay, () => {
      this.startTimer = null;
      this.startRound();
    });
  }

  stop(): void {
    if (this.run) this.h.cancel(this.run.timer);
    this.run = null;
    this.h.cancel(this.startTimer);
    this.startTimer = null;
  }

  private startRound(): void {
    if (this.h.hasRing()) return;
    const known = this.h.consensusPeers();
    if (this.run) this.h.cancel(this.run.timer);
    if (known.length < this.h.quorum) {
      this.run = null;
      return;
    }
    const roundNo = this.h.nextRound(this.run?.round.outbid?.round ?? 0);
    const round = new ProposerRound<null>(CLAIM_INSTANCE, { round: roundNo, proposer: this.h.me });
    const timer = this.h.timer(this.h.retryMs * (3 + 2 * this.h.random()), () => {
      if (this.run?.round === round) this.startRound();
    });
    this.run = { round, acceptors: known, timer };
    this.h.afterSave(() => {
      for (const p of known) this.h.sendPaxos(p, { type: 'prepare', inst: CLAIM_INSTANCE, ballot: round.ballot });
    });
  }

  onReply(from: PeerName, m: PaxosMessage): void {
    const c = this.run;
    if (!c) return;
    const r = c.round;
    if (m.type === 'nack') {
      r.onNack(from, m.ballot, m.promised, m.reason);
      return;
    }
    if (m.type === 'promise') {
      r.onPromise(from, m.ballot, { accepted: m.accepted, extra: null });
      if (r.phase === 'prepare' && r.promises.size >= this.h.quorum) {
        const value: PaxosValue = r.highestAccepted() ?? { kind: 'genesis', genesis: this.newGenesis(c.acceptors) };
        r.startAccept(value);
        for (const p of r.promises.keys()) this.h.sendPaxos(p, { type: 'accept', inst: CLAIM_INSTANCE, ballot: r.ballot, value });
      }
      return;
    }
    if (m.type === 'accepted') {
      r.onAccepted(from, m.ballot);
      if (r.phase === 'accept' && r.acceptances.size >= this.h.quorum && r.value?.kind === 'genesis') {
        r.phase = 'chosen';
        this.h.chosen(r.value.genesis);
      }
    }
  }

  private newGenesis(known: readonly PeerName[]): Genesis {
    const now = this.h.now();
    const claimants = [...new Set([...known, this.h.me])].sort();
    return { id: `${now.toString(36)}-${this.h.randomHex()}`, createdAt: now, claimants, mode: 'consensus' };
  }
}
