// A simulated clock for running many real routers in one process: while it
// is installed, setTimeout/setInterval/setImmediate and Date.now run on
// simulated time, so a protocol's delays (publish batching, pull delays,
// backoff, heartbeats) are measured as the protocol defines them and not
// stretched by the CPU cost of simulating a thousand peers on two cores.
//
// Timers live in a binary heap (a large simulation keeps tens of thousands
// pending; a scan per firing would be quadratic). After each callback the
// clock yields to the real event loop, so promise chains the callback
// started run to completion before the next timer fires, as in Node itself.

type Callback = (...args: unknown[]) => void;

class SimTimer {
  cancelled = false;
  constructor(
    readonly id: number,
    public at: number,
    readonly seq: number,
    readonly cb: Callback,
    readonly args: unknown[],
    readonly repeatMs: number | undefined,
  ) {}
  // The Timeout methods product code calls.
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return true;
  }
  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

export class SimClock {
  private heap: SimTimer[] = [];
  private seq = 0;
  private readonly byId = new Map<number, SimTimer>();
  private saved: Record<string, unknown> | undefined;
  private readonly realImmediate = globalThis.setImmediate;
  /** Simulated milliseconds since the epoch. */
  now: number;
  /** Callbacks run so far, and exceptions they threw (also rethrown by run()). */
  fired = 0;
  private batch = 0;
  readonly errors: unknown[] = [];

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.now = start;
  }

  install(): this {
    const g = globalThis as unknown as Record<string, unknown>;
    this.saved = { setTimeout: g.setTimeout, clearTimeout: g.clearTimeout, setInterval: g.setInterval, clearInterval: g.clearInterval, setImmediate: g.setImmediate, clearImmediate: g.clearImmediate, dateNow: Date.now };
    const clear = (t: unknown): void => this.clear(t);
    g.setTimeout = (cb: Callback, ms?: number, ...args: unknown[]) => this.schedule(cb, ms, args, undefined);
    g.setInterval = (cb: Callback, ms?: number, ...args: unknown[]) => this.schedule(cb, ms, args, Math.max(1, ms ?? 1));
    g.setImmediate = (cb: Callback, ...args: unknown[]) => this.schedule(cb, 0, args, undefined);
    g.clearTimeout = g.clearInterval = g.clearImmediate = clear;
    Date.now = () => this.now;
    return this;
  }

  uninstall(): void {
    if (!this.saved) return;
    const g = globalThis as unknown as Record<string, unknown>;
    const { dateNow, ...timers } = this.saved;
    Object.assign(g, timers);
    Date.now = dateNow as () => number;
    this.saved = undefined;
  }

  get pending(): number {
    return this.byId.size;
  }

  /** Run every timer due within the next `ms` simulated milliseconds, in order. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      const t = this.heap[0];
      if (!t || t.at > until) break;
      this.pop();
      if (t.cancelled) continue;
      this.now = Math.max(this.now, t.at);
      if (t.repeatMs !== undefined) {
        t.at = this.now + t.repeatMs;
        this.push(t);
      } else this.byId.delete(t.id);
      this.fired++;
      try {
        t.cb(...t.args);
      } catch (err) {
        this.errors.push(err);
      }
      // Let the promise jobs this callback started finish before time moves
      // on. Callbacks due at the same instant share one turn of the real
      // event loop (a turn per callback was a quarter of a large run's time):
      // their promise jobs run after all of them, a legal interleaving too.
      const next = this.heap[0];
      if (!next || next.at !== this.now || ++this.batch >= 64) {
        this.batch = 0;
        await new Promise((r) => this.realImmediate(r));
      }
    }
    this.now = until;
    if (this.errors.length) throw this.errors[0];
  }

  /** Advance in steps until `done()` holds; returns the simulated ms it took. Throws after `limitMs`. */
  async until(done: () => boolean, limitMs: number, what: string, stepMs = 10): Promise<number> {
    const t0 = this.now;
    while (!done()) {
      if (this.now - t0 > limitMs) throw new Error(`${what}: not within ${limitMs / 1000} s of simulated time`);
      await this.advance(stepMs);
    }
    return this.now - t0;
  }

  private schedule(cb: Callback, ms: number | undefined, args: unknown[], repeatMs: number | undefined): SimTimer {
    const delay = Math.max(0, Number.isFinite(ms) ? (ms as number) : 0);
    const id = ++this.seq;
    const t = new SimTimer(id, this.now + delay, id, cb, args, repeatMs);
    this.byId.set(id, t);
    this.push(t);
    return t;
  }

  private clear(t: unknown): void {
    const timer = t instanceof SimTimer ? t : typeof t === 'number' ? this.byId.get(t) : undefined;
    if (!timer) return;
    timer.cancelled = true;
    this.byId.delete(timer.id);
  }

  // ---- binary heap ordered by (at, seq) ----

  private less(a: SimTimer, b: SimTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(t: SimTimer): void {
    const h = this.heap;
    // A re-armed interval takes a fresh sequence number, behind timers already due then.
    (t as { seq: number }).seq = ++this.seq;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
