// Which addresses to dial and when. Direct targets come from `launch` and
// `connect`; discovered targets from the topology (every peer someone is
// connected to and we are not). Failed attempts back off exponentially with
// jitter; a connection that lived long resets the backoff; a target that
// turned out to be ourselves, or a peer with our name, is never retried.

import type { PeerId } from './peer-name.js';
import { PERMANENT_FAILURES, HandshakeFailure } from './handshake.js';

export type TargetState = 'waiting' | 'connecting' | 'retrying' | 'failed' | 'connected';

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** A connection that lived this long resets the backoff. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 2_000, maxMs: 6 * 60_000, resetAfterMs: 60_000 };

export interface TargetStatus {
  address: string;
  direct: boolean;
  /** Where a direct target came from ("command line", "connect", "kubernetes"…). */
  source?: string;
  state: TargetState;
  peer?: PeerId;
  lastError?: string;
  nextTryAt?: number;
  attempts: number;
}

interface Target extends TargetStatus {
  intervalMs: number;
  timer?: NodeJS.Timeout;
  /** Aborts the attempt in flight when the target is forgotten. */
  inflight?: AbortController;
  /** Never retried (self, name collision). */
  permanent: boolean;
}

export interface Dialer {
  /** Dial, handshake and register; resolves with the peer reached. Must not register once `signal` is aborted. */
  /** `direct`: a target we were told of (connect, command line), not one found by discovery. */
  dial(address: string, signal: AbortSignal, direct: boolean): Promise<PeerId>;
  isConnected(peer: PeerId): boolean;
  /** Whether the connection limit allows another outbound attempt (direct targets may use all of it). */
  canDial(direct: boolean): boolean;
  /** True while we have no established connection at all (optional; false when absent). */
  isolated?(): boolean;
}

/** Delay before the next attempt: uniform in [i/2, 3i/2], so peers don't retry in lockstep. */
export function jitter(intervalMs: number, random = Math.random): number {
  return Math.round(intervalMs * (0.5 + random()));
}

export class ConnectionMaker {
  private readonly targets = new Map<string, Target>();
  private readonly forgotten = new Set<string>();
  private stopped = false;

  constructor(
    private readonly dialer: Dialer,
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
  ) {}

  /** Add (or re-arm) a direct target; it is tried now. */
  addDirect(address: string, source = 'connect'): void {
    this.forgotten.delete(address);
    const t = this.targets.get(address);
    if (t) {
      if (!t.direct) t.source = source;
      t.direct = true;
      t.permanent = false;
      t.intervalMs = this.policy.initialMs;
      if (t.state !== 'connected' && t.state !== 'connecting') this.schedule(t, 0);
      return;
    }
    this.add(address, true, undefined, source);
  }

  /** Stop trying `address`, and never dial it from discovery either (until added again). */
  forget(address: string): boolean {
    const t = this.targets.get(address);
    this.forgotten.add(address);
    if (!t) return false;
    clearTimeout(t.timer);
    t.inflight?.abort();
    this.targets.delete(address);
    return true;
  }

  /** Make the direct targets exactly `addresses`. */
  replaceDirect(addresses: string[], source = 'connect'): void {
    const want = new Set(addresses);
    for (const t of [...this.targets.values()]) if (t.direct && !want.has(t.address)) this.forget(t.address);
    for (const a of addresses) this.addDirect(a, source);
  }

  /** Discovered peers and where they can be dialled; replaces the previous set. */
  setDiscovered(found: Map<PeerId, string[]>): void {
    const keep = new Set<string>();
    for (const [peer, addresses] of found) {
      if (this.dialer.isConnected(peer)) continue;
      const address = addresses.find((a) => !this.forgotten.has(a));
      if (!address) continue;
      keep.add(address);
      const t = this.targets.get(address);
      if (!t) this.add(address, false, peer);
      else if (t.state === 'connected' && t.peer !== undefined && !this.dialer.isConnected(t.peer)) this.schedule(t, 0);
    }
    for (const t of [...this.targets.values()]) {
      if (!t.direct && !keep.has(t.address) && t.state !== 'connecting') {
        clearTimeout(t.timer);
        this.targets.delete(t.address);
      }
    }
  }

  /** A connection to `peer` ended after `livedMs`: re-dial the targets that led to it. */
  onDisconnected(peer: PeerId, livedMs: number): void {
    for (const t of this.targets.values()) {
      if (t.peer !== peer || t.state !== 'connected') continue;
      if (livedMs >= this.policy.resetAfterMs) {
        t.intervalMs = this.policy.initialMs;
        this.schedule(t, jitter(500));
      } else this.retryLater(t, 'retrying', t.lastError);
    }
  }

  /** A connection to `peer` came up (in either direction): targets for it rest. */
  onConnected(peer: PeerId): void {
    for (const t of this.targets.values()) {
      if (t.peer === peer && t.state !== 'connecting') {
        clearTimeout(t.timer);
        t.state = 'connected';
        t.nextTryAt = undefined;
      }
    }
  }

  status(): TargetStatus[] {
    return [...this.targets.values()].map(({ address, direct, source, state, peer, lastError, nextTryAt, attempts }) => ({
      address,
      direct,
      ...(source ? { source } : {}),
      state,
      ...(peer !== undefined ? { peer } : {}),
      ...(lastError ? { lastError } : {}),
      ...(nextTryAt ? { nextTryAt } : {}),
      attempts,
    }));
  }

  directAddresses(): string[] {
    return [...this.targets.values()].filter((t) => t.direct).map((t) => t.address);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.targets.values()) {
      clearTimeout(t.timer);
      t.inflight?.abort();
    }
  }

  private add(address: string, direct: boolean, peer?: PeerId, source?: string): void {
    const t: Target = { address, direct, state: 'waiting', attempts: 0, intervalMs: this.policy.initialMs, permanent: false };
    if (source) t.source = source;
    if (peer !== undefined) t.peer = peer;
    this.targets.set(address, t);
    this.schedule(t, 0);
  }

  private schedule(t: Target, delayMs: number): void {
    clearTimeout(t.timer);
    if (this.stopped) return;
    t.nextTryAt = Date.now() + delayMs;
    t.timer = setTimeout(() => void this.attempt(t), delayMs);
    t.timer.unref?.();
  }

  private async attempt(t: Target): Promise<void> {
    if (this.stopped || this.targets.get(t.address) !== t) return;
    if (t.peer !== undefined && this.dialer.isConnected(t.peer)) {
      t.state = 'connected';
      t.nextTryAt = undefined;
      return;
    }
    if (!this.dialer.canDial(t.direct)) {
      t.lastError = 'connection limit reached';
      return this.retryLater(t, 'retrying', t.lastError);
    }
    t.state = 'connecting';
    t.nextTryAt = undefined;
    t.attempts++;
    t.inflight = new AbortController();
    try {
      const peer = await this.dialer.dial(t.address, t.inflight.signal, t.direct);
      if (this.targets.get(t.address) !== t) return;
      t.peer = peer;
      t.state = 'connected';
      t.lastError = undefined;
      t.intervalMs = this.policy.initialMs;
    } catch (err) {
      if (this.targets.get(t.address) !== t) return;
      const failure = err instanceof HandshakeFailure ? err : undefined;
      const message = err instanceof Error ? err.message : String(err);
      // Both ends dialled at once and the other connection won: the target
      // has its peer. A target that never connected before learns the peer
      // from the refusal, else it would stay "failed" and keep re-dialling a
      // peer it is connected to.
      if (failure?.kind === 'duplicate' && t.peer === undefined && failure.peer !== undefined) t.peer = failure.peer;
      if (failure?.kind === 'duplicate' && t.peer !== undefined && this.dialer.isConnected(t.peer)) {
        t.state = 'connected';
        t.lastError = undefined;
        t.nextTryAt = undefined;
        t.intervalMs = this.policy.initialMs;
        return;
      }
      if (failure && PERMANENT_FAILURES.has(failure.kind)) {
        t.permanent = true;
        t.state = 'failed';
        t.lastError = message;
        t.nextTryAt = undefined;
        return;
      }
      // Refusals by a live peer (password, version, limits) are failures;
      // network errors are transient. Both retry with backoff.
      this.retryLater(t, failure && failure.kind !== 'closed' && failure.kind !== 'timeout' ? 'failed' : 'retrying', message);
    } finally {
      t.inflight = undefined;
    }
  }

  private retryLater(t: Target, state: TargetState, error: string | undefined): void {
    t.state = state;
    if (error !== undefined) t.lastError = error;
    // An isolated peer (a newcomer whose seeds were busy, or one cut off)
    // keeps trying its direct targets at the initial interval: it has no
    // other way in, and the acceptor's own rate limit bounds what that costs
    // it. Backing off exponentially left newcomers of a 30-host rollout out
    // for tens of seconds after one refusal too many.
    if (t.direct && this.dialer.isolated?.()) t.intervalMs = this.policy.initialMs;
    const delay = jitter(t.intervalMs);
    t.intervalMs = Math.min(this.policy.maxMs, Math.round(t.intervalMs * 1.5));
    this.schedule(t, delay);
  }
}
