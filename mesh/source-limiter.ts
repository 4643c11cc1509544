// Per-source-address admission for inbound handshakes. The global token
// bucket alone lets one flooding address take every token (a legitimate
// peer reconnecting is then refused) and hold many half-open handshakes
// (which count against the connection limit, so our own dials stop too).
// Each address gets its own small bucket and a cap on handshakes in
// progress; the table is bounded (oldest address forgotten first), so a
// spread of addresses costs memory in proportion to the cap, not the flood.
import { TokenBucket } from './token-bucket.js';

export interface SourceLimits {
  /** Handshakes an address may start in a burst, and one more every intervalMs. */
  burst: number;
  intervalMs: number;
  /** Handshakes from one address in progress at once. */
  maxPending: number;
  /** Addresses remembered. */
  maxSources: number;
}

export const DEFAULT_SOURCE_LIMITS: SourceLimits = { burst: 4, intervalMs: 250, maxPending: 4, maxSources: 1024 };

interface Source {
  bucket: TokenBucket;
  pending: number;
}

export type Admission = 'ok' | 'rate' | 'pending';

export class SourceLimiter {
  private readonly sources = new Map<string, Source>();

  constructor(private readonly limits: SourceLimits = DEFAULT_SOURCE_LIMITS) {}

  /** Admit a handshake from `ip`; on 'ok' the caller must call done(ip) when it ends. */
  admit(ip: string, now = Date.now()): Admission {
    let s = this.sources.get(ip);
    if (s) {
      // Re-insert: the map's order is least recently seen first.
      this.sources.delete(ip);
    } else {
      s = { bucket: new TokenBucket(this.limits.burst, this.limits.intervalMs, now), pending: 0 };
    }
    this.sources.set(ip, s);
    this.trim();
    if (s.pending >= this.limits.maxPending) return 'pending';
    if (!s.bucket.take(now)) return 'rate';
    s.pending++;
    return 'ok';
  }

  done(ip: string): void {
    const s = this.sources.get(ip);
    if (s && s.pending > 0) s.pending--;
  }

  get size(): number {
    return this.sources.size;
  }

  private trim(): void {
    for (const [ip, s] of this.sources) {
      if (this.sources.size <= this.limits.maxSources) return;
      // An address with handshakes in progress stays (its done() must find it).
      if (s.pending === 0) this.sources.delete(ip);
    }
  }
}
