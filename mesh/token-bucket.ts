// A token bucket: `burst` tokens, one more every `intervalMs`. Limits how
// fast we accept inbound handshakes, so a password cannot be guessed online
// faster than this and a connection storm cannot starve the daemon.

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly burst: number,
    private readonly intervalMs: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now = Date.now()): boolean {
    const refill = Math.floor((now - this.last) / this.intervalMs);
    if (refill > 0) {
      this.tokens = Math.min(this.burst, this.tokens + refill);
      this.last += refill * this.intervalMs;
    }
    if (this.tokens <= 0) return false;
    this.tokens--;
    return true;
  }
}
