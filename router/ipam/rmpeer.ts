// rmpeer as single-decree Paxos, one instance per (ring, dead peer, life).
// The quorum is every live ring peer plus every other reachable peer (and
// any ring peer an acceptor tells us about), so:
//  - two concurrent removals of the same peer, anywhere, choose one value
//    (Paxos), hence one set of heirs;
//  - a removal cannot complete on both sides of a partition (each side
//    lacks the other's ring peers), nor while a ring peer is unreachable;
//  - the frozen record is the newest copy any live peer holds, so space the
//    dead peer handed to someone before dying is not given away twice.
import type { PeerName } from '../../mesh/types.js';
import type { Cidr } from './addr.js';
import type { PaxosMessage } from './codec.js';
import { IpamError } from './errors.js';
import { ProposerRound, compareBallots } from './paxos.js';
import { computeRemoval } from './removal.js';
import { compareRecords, isVoid } from './state.js';
import type { GossipState, PeerRecord, Removal, RingId } from './types.js';
import { removalKey } from './types.js';

export interface RemovalHost {
  readonly me: PeerName;
  readonly range: Cidr;
  state(): GossipState;
  ring(): RingId | null;
  isReachable(p: PeerName): boolean;
  describe(p: PeerName): string;
  /** Our copy of a peer's record in our ring (a claimant's virtual share if it never wrote one). */
  copyOf(p: PeerName): PeerRecord | undefined;
  /** Live (not retired, not removed) peers of our ring. */
  ringMembers(): PeerName[];
  nextRound(atLeast: number): number;
  afterSave(fn: () => void): void;
  sendPaxos(to: PeerName, m: PaxosMessage): void;
  timer(ms: number, fn: () => void): unknown;
  cancel(h: unknown): void;
  random(): number;
  now(): number;
  /** The removal was chosen: record it, gossip it, apply it. */
  chosen(r: Removal): void;
  readonly timeoutMs: number;
  readonly retryMs: number;
}

interface Extra {
  target: PeerRecord | null;
  ringPeers: readonly PeerName[];
}

interface Run {
  readonly inst: string;
  readonly target: PeerName;
  readonly after: number;
  readonly together: ReadonlySet<PeerName>;
  readonly required: Set<PeerName>;
  /** Given for a sweep of an already removed peer; otherwise the newest copy acceptors report. */
  readonly frozen: PeerRecord | undefined;
  round: ProposerRound<Extra>;
  retry: unknown;
  deadline: unknown;
  settle: (r: Removal | Error) => void;
}

export function removalInstance(ring: RingId, target: PeerName, after: number): string {
  return `rm/${ring}/${target}/${after}`;
}

/** The target of an rmpeer instance, or undefined for other instances. */
export function parseRemovalInstance(inst: string): { ring: string; target: PeerName; after: number } | undefined {
  const parts = inst.split('/');
  if (parts.length !== 4 || parts[0] !== 'rm' || !/^-?\d+$/.test(parts[3]!)) return undefined;
  return { ring: parts[1]!, target: parts[2]!, after: Number(parts[3]) };
}

export class RemovalProposer {
  private readonly runs = new Map<string, Run>();

  constructor(private readonly h: RemovalHost) {}

  /** Agree on the removal of `target`; `required` must all promise and accept. */
  remove(target: PeerName, after: number, together: ReadonlySet<PeerName>, required: readonly PeerName[], frozen?: PeerRecord): Promise<Removal> {
    const ring = this.h.ring();
    if (!ring) return Promise.reject(new IpamError('not-ready', 'no ring'));
    const inst = removalInstance(ring, target, after);
    if (this.runs.has(inst)) return Promise.reject(new IpamError('conflict', `a removal of ${this.h.describe(target)} is already running here`));
    return new Promise<Removal>((resolve, reject) => {
      const run: Run = {
        inst,
        target,
        after,
        together,
        required: new Set(required),
        frozen,
        round: new ProposerRound(inst, { round: 0, proposer: this.h.me }),
        retry: null,
        deadline: null,
        settle: (r) => {
          this.runs.delete(inst);
          this.h.cancel(run.retry);
          this.h.cancel(run.deadline);
          if (r instanceof Error) reject(r);
          else resolve(r);
        },
      };
      this.runs.set(inst, run);
      run.deadline = this.h.timer(this.h.timeoutMs, () => {
        const r = run.round;
        const missing = [...run.required].filter((p) => (r.phase === 'prepare' ? !r.promises.has(p) : !r.acceptances.has(p)));
        const reasons = [...r.nackReasons.entries()].map(([p, x]) => `${p}: ${x}`);
        run.settle(
          new IpamError(
            'timeout',
            `removal of ${this.h.describe(target)} not agreed within ${this.h.timeoutMs} ms${missing.length ? `; no answer from ${missing.join(', ')}` : ''}${
              reasons.length ? `; refused by ${reasons.join('; ')}` : ''
            }`,
          ),
        );
      });
      this.startRound(run);
    });
  }

  running(inst: string): boolean {
    return this.runs.has(inst);
  }

  /** Finish runs whose removal some other proposer already completed. */
  settleFinished(state: GossipState): void {
    for (const run of [...this.runs.values()]) {
      const done = state.removals.get(removalKey(run.target, run.after));
      if (done && run.round.phase !== 'chosen') run.settle(done);
    }
  }

  stopAll(err: Error): void {
    for (const run of [...this.runs.values()]) run.settle(err);
  }

  onReply(from: PeerName, m: PaxosMessage): void {
    const run = this.runs.get(m.inst);
    if (!run) return;
    const r = run.round;
    if (m.type === 'nack') {
      r.onNack(from, m.ballot, m.promised, m.reason);
      // A refusal with a reason (not being outbid) ends the attempt: it says why.
      if (m.promised === null && compareBallots(m.ballot, r.ballot) === 0) {
        run.settle(new IpamError('conflict', `removal of ${this.h.describe(run.target)} refused by ${this.h.describe(from)}: ${m.reason}`));
      }
      return;
    }
    if (m.type === 'promise') this.onPromise(run, from, m);
    else if (m.type === 'accepted') this.onAccepted(run, from, m);
  }

  private startRound(run: Run): void {
    this.h.cancel(run.retry);
    run.round = new ProposerRound(run.inst, { round: this.h.nextRound(run.round.outbid?.round ?? 0), proposer: this.h.me });
    const ballot = run.round.ballot;
    this.h.afterSave(() => {
      for (const p of run.required) this.h.sendPaxos(p, { type: 'prepare', inst: run.inst, ballot });
    });
    run.retry = this.h.timer(this.h.retryMs * (2 + this.h.random()), () => {
      if (this.runs.get(run.inst) === run) this.startRound(run);
    });
  }

  private onPromise(run: Run, from: PeerName, m: Extract<PaxosMessage, { type: 'promise' }>): void {
    const r = run.round;
    r.onPromise(from, m.ballot, { accepted: m.accepted, extra: { target: m.target, ringPeers: m.ringPeers } });
    // Ring peers an acceptor knows and we did not must answer too.
    const state = this.h.state();
    for (const p of m.ringPeers) {
      if (run.required.has(p) || run.together.has(p)) continue;
      const rec = state.records.get(p);
      if (rec && (rec.retired || isVoid(state, rec))) continue;
      if (p !== this.h.me && !this.h.isReachable(p)) {
        run.settle(new IpamError('unreachable', `cannot remove ${this.h.describe(run.target)}: ring peer ${this.h.describe(p)} (known to ${from}) is unreachable`));
        return;
      }
      run.required.add(p);
      this.h.sendPaxos(p, { type: 'prepare', inst: run.inst, ballot: r.ballot });
    }
    if (r.phase !== 'prepare' || ![...run.required].every((p) => r.promises.has(p))) return;
    let value = r.highestAccepted();
    if (!value) {
      // Freeze the newest copy of the target's record any live peer holds.
      let frozen = run.frozen ?? this.h.copyOf(run.target);
      for (const info of run.frozen ? [] : r.promises.values()) {
        const t = info.extra.target;
        if (t && (!frozen || compareRecords(t, frozen) > 0)) frozen = t;
      }
      const ring = this.h.ring();
      if (!frozen || !ring) {
        run.settle(new IpamError('invalid', `no peer knows the state of ${run.target}`));
        return;
      }
      const members = new Set(this.h.ringMembers());
      for (const info of r.promises.values()) for (const p of info.extra.ringPeers) members.add(p);
      const live = [...run.required].filter((p) => members.has(p) && !run.together.has(p)).sort();
      value = {
        kind: 'removal',
        removal: computeRemoval({
          state,
          range: this.h.range,
          ring,
          frozen: { ...frozen, ring },
          after: run.after,
          live,
          together: run.together,
          proposer: this.h.me,
          at: this.h.now(),
        }),
      };
    }
    r.startAccept(value);
    for (const p of run.required) this.h.sendPaxos(p, { type: 'accept', inst: run.inst, ballot: r.ballot, value });
  }

  private onAccepted(run: Run, from: PeerName, m: Extract<PaxosMessage, { type: 'accepted' }>): void {
    const r = run.round;
    r.onAccepted(from, m.ballot);
    if (r.phase !== 'accept' || ![...run.required].every((p) => r.acceptances.has(p)) || r.value?.kind !== 'removal') return;
    r.phase = 'chosen';
    const removal = r.value.removal;
    this.h.chosen(removal);
    run.settle(removal);
  }
}
