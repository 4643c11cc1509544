// Path MTU discovery for one sleeve destination. Pure: the caller sends the
// probes and reports acks and the clock.
//
// Sizes here are "frame budgets": the largest Ethernet frame (14-byte
// header included) that reaches the destination inside one datagram with DF
// set. Datagrams are never fragmented (IP_PMTUDISC_DO), so a probe either
// arrives whole and is acked, or is lost (dropped by a smaller link, which
// may or may not say so with ICMP) or refused locally (EMSGSIZE).
//
// Search: probes go out in parallel rounds instead of Weave's one-at-a-time
// binary search (8 probes × 10 ms doubling timeouts): round 1 probes the
// candidate (what the local kernel allows) and seven sizes spread down to
// the minimum; if the candidate is not acked, rounds 2 to 4 probe seven
// sizes between the largest acked and the smallest lost size. Each round's
// probes are sent twice (UDP may lose one) and it ends after `timeoutMs`.
// Three rounds narrow a 1500-byte range to 16 bytes (four a 9000-byte one)
// in about a second. Until the first search ends the candidate is used (optimism costs
// nothing when the path is fine, and an early pessimistic value would be
// cached by the pods' kernels for minutes through ICMP); afterwards the
// largest acked size. A search with no ack at all is retried with backoff.

export interface PmtuTimings {
  /** A round ends this long after its probes went out. */
  timeoutMs: number;
  /**
   * A verified size is checked again (one probe) this often: a path can
   * shrink without telling anyone (a switch port drops big frames silently).
   * If the check is not acked, a full search follows.
   */
  reverifyMs: number;
  /** After a search without any ack: first retry delay (doubles up to maxRetryMs). */
  retryMs: number;
  maxRetryMs: number;
}

export const DEFAULT_PMTU_TIMINGS: PmtuTimings = { timeoutMs: 400, reverifyMs: 15_000, retryMs: 1000, maxRetryMs: 30_000 };

/** The smallest frame budget we search down to: 576-byte IPv4 packets (RFC 791) plus Ethernet. */
export const MIN_FRAME_BUDGET = 576 + 14;
/** Stop narrowing when the gap is this small. */
const PRECISION = 16;
const MAX_ROUNDS = 4;
const FRACTIONS = [0, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1];

export interface Probe {
  /** Echoed by the ack: round and slot. */
  id: number;
  size: number;
}

type State =
  | { kind: 'idle'; nextAt: number }
  | { kind: 'probing'; round: number; probes: Probe[]; acked: Set<number>; sentTwice: boolean; startedAt: number; check: boolean };

export class PathMtu {
  private state: State = { kind: 'idle', nextAt: 0 };
  private current: number;
  private candidate: number;
  private isVerified = false;
  private lo = 0;
  private hi = 0;
  private roundSeq = 0;
  private roundsThisSearch = 0;
  private retryDelay: number;
  /** Completed searches (for tests and status). */
  searches = 0;

  constructor(
    candidate: number,
    private readonly min = MIN_FRAME_BUDGET,
    private readonly t: PmtuTimings = DEFAULT_PMTU_TIMINGS,
  ) {
    this.current = Math.max(candidate, min);
    this.candidate = this.current;
    this.retryDelay = t.retryMs;
  }

  /** The frame budget to use now. */
  get budget(): number {
    return this.current;
  }

  get verified(): boolean {
    return this.isVerified;
  }

  get probing(): boolean {
    return this.state.kind === 'probing';
  }

  /** A new path (route change, EMSGSIZE, restart): search again from `candidate`. */
  reset(candidate: number, now: number): void {
    this.current = Math.max(candidate, this.min);
    this.candidate = this.current;
    this.isVerified = false;
    this.retryDelay = this.t.retryMs;
    this.state = { kind: 'idle', nextAt: now };
  }

  /** Something suggests the path changed (the fast datapath to the peer failed): check the size in use now. */
  recheck(now: number): void {
    if (this.state.kind === 'idle') this.state = { kind: 'idle', nextAt: now };
  }

  /** Probes to send now (empty when none are due). Call it regularly (every ~100 ms). */
  due(now: number): Probe[] {
    const s = this.state;
    if (s.kind === 'idle') {
      if (now < s.nextAt) return [];
      // A verified size: one probe confirms it, a full search follows only if it fails.
      if (this.isVerified) return this.startRound(now, [this.current], true);
      return this.startSearch(now);
    }
    if (!s.sentTwice && now - s.startedAt >= this.t.timeoutMs / 2) {
      s.sentTwice = true;
      return s.probes.filter((p) => !s.acked.has(p.size));
    }
    if (now - s.startedAt < this.t.timeoutMs) return [];
    return this.endRound(now, s);
  }

  /** A probe ack arrived. */
  acked(id: number, size: number): void {
    const s = this.state;
    if (s.kind !== 'probing' || id >>> 4 !== s.round) return;
    const p = s.probes[id & 0x0f];
    if (p && p.size === size) s.acked.add(size);
  }

  private startSearch(now: number): Probe[] {
    this.lo = 0;
    this.hi = this.candidate;
    this.roundsThisSearch = 0;
    return this.startRound(now, this.firstRoundSizes());
  }

  private firstRoundSizes(): number[] {
    const top = this.hi;
    return FRACTIONS.map((f) => Math.round(top - (top - this.min) * f));
  }

  private startRound(now: number, sizes: number[], check = false): Probe[] {
    this.roundSeq = (this.roundSeq + 1) & 0x0fffffff;
    this.roundsThisSearch++;
    const uniq = [...new Set(sizes)].filter((x) => x >= this.min).sort((a, b) => b - a);
    const probes = uniq.map((size, i) => ({ id: (this.roundSeq << 4) | i, size }));
    this.state = { kind: 'probing', round: this.roundSeq, probes, acked: new Set(), sentTwice: false, startedAt: now, check };
    return probes;
  }

  private endRound(now: number, s: Extract<State, { kind: 'probing' }>): Probe[] {
    if (s.check) {
      if (s.acked.size > 0) {
        this.state = { kind: 'idle', nextAt: now + this.t.reverifyMs };
        return [];
      }
      // The verified size no longer gets through: search again (the old size stays in use meanwhile).
      this.isVerified = false;
      return this.startSearch(now);
    }
    let best = this.lo;
    let lost = this.hi + 1;
    for (const p of s.probes) {
      if (s.acked.has(p.size)) best = Math.max(best, p.size);
    }
    for (const p of s.probes) if (!s.acked.has(p.size) && p.size > best) lost = Math.min(lost, p.size);
    if (best === 0) {
      // Nothing came back: the destination is not reachable this way now.
      this.state = { kind: 'idle', nextAt: now + this.retryDelay };
      this.retryDelay = Math.min(this.retryDelay * 2, this.t.maxRetryMs);
      return [];
    }
    this.lo = best;
    this.hi = lost - 1;
    if (this.hi - this.lo <= PRECISION || this.roundsThisSearch >= MAX_ROUNDS) return this.finish(now);
    const step = (this.hi - this.lo) / 8;
    const sizes = [1, 2, 3, 4, 5, 6, 7].map((k) => Math.round(this.lo + step * k));
    return this.startRound(now, sizes);
  }

  private finish(now: number): Probe[] {
    this.current = this.lo;
    this.isVerified = true;
    this.searches++;
    this.retryDelay = this.t.retryMs;
    this.state = { kind: 'idle', nextAt: now + this.t.reverifyMs };
    return [];
  }
}
