// Write-ahead discipline for IPAM: every change bumps a generation; anything
// that lets another peer (or a caller) rely on a change runs only after a
// save covering that generation has finished. Saves never overlap; changes
// made during a save are covered by the next one (coalescing).
import type { PlainSnapshot } from './persist.js';

export interface PersisterHost {
  /** False while starting or after stopping for good (then nothing is saved or sent). */
  canSave(): boolean;
  canSend(): boolean;
  /** The state to save now, with a token handed back to onSaved (e.g. the record that was saved). */
  snapshot(): { plain: PlainSnapshot; token: unknown };
  save(plain: PlainSnapshot): Promise<void>;
  onSaved(token: unknown): void;
  onError(message: string): void;
  /** Call `fn` later (used to retry a failed save). */
  later(ms: number, fn: () => void): void;
  retryMs: number;
}

export class Persister {
  private gen = 0;
  private savedGen = 0;
  private saving = false;
  private outbox: { gen: number; fn: () => void }[] = [];
  private idleWaiters: (() => void)[] = [];
  error: string | null = null;

  constructor(private readonly host: PersisterHost) {}

  /** The generation of the current in-memory state. */
  get current(): number {
    return this.gen;
  }

  isSaved(gen: number): boolean {
    return this.savedGen >= gen;
  }

  /** Note a change; a save follows once the current synchronous work is done. */
  markDirty(): number {
    this.gen++;
    queueMicrotask(() => this.kick());
    return this.gen;
  }

  /** Run `fn` once everything changed so far is durable. */
  afterSave(fn: () => void): void {
    if (this.savedGen >= this.gen) fn();
    else this.outbox.push({ gen: this.gen, fn });
  }

  /** Resolves when no save is running and nothing is left unsaved (or saving fails). */
  idle(): Promise<void> {
    if (!this.saving && (this.savedGen >= this.gen || this.error)) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      queueMicrotask(() => this.kick());
    });
  }

  kick(): void {
    if (this.saving || !this.host.canSave()) return;
    if (this.savedGen >= this.gen) {
      this.flush();
      return;
    }
    const gen = this.gen;
    let snap: { plain: PlainSnapshot; token: unknown };
    try {
      snap = this.host.snapshot();
    } catch (e) {
      this.fail(`cannot encode state: ${(e as Error).message}`);
      return;
    }
    this.saving = true;
    this.host.save(snap.plain).then(
      () => {
        this.saving = false;
        this.savedGen = Math.max(this.savedGen, gen);
        this.error = null;
        this.host.onSaved(snap.token);
        this.flush();
        this.kick();
      },
      (e: unknown) => {
        this.saving = false;
        this.fail((e as Error)?.message ?? String(e));
        this.host.later(this.host.retryMs, () => this.kick());
      },
    );
  }

  private fail(message: string): void {
    this.error = message;
    this.host.onError(message);
    this.releaseIdle();
  }

  private flush(): void {
    if (this.host.canSend()) {
      const due = this.outbox.filter((o) => o.gen <= this.savedGen);
      this.outbox = this.outbox.filter((o) => o.gen > this.savedGen);
      for (const o of due) o.fn();
    }
    this.releaseIdle();
  }

  private releaseIdle(): void {
    if (this.saving || (this.savedGen < this.gen && !this.error)) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }
}
