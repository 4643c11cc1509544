// The logger shape the mesh needs (pino satisfies it), and a filter that
// says a repeated problem once instead of once per retry or per packet.

export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/**
 * Remembers what it has said: `shouldLog(key, detail)` is true the first time
 * for a key, when the detail changes, or once `quietMs` has passed.
 */
export class LogOnce {
  private readonly said = new Map<string, { detail: string; at: number }>();

  constructor(
    private readonly quietMs = 10 * 60_000,
    private readonly maxKeys = 4096,
  ) {}

  shouldLog(key: string, detail: string, now = Date.now()): boolean {
    const prev = this.said.get(key);
    if (prev && prev.detail === detail && now - prev.at < this.quietMs) return false;
    if (!prev && this.said.size >= this.maxKeys) {
      const oldest = this.said.keys().next().value;
      if (oldest !== undefined) this.said.delete(oldest);
    }
    this.said.set(key, { detail, at: now });
    return true;
  }

  forget(key: string): void {
    this.said.delete(key);
  }
}
