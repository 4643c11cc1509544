// JSON logs with pino, plus an in-memory ring of recent warnings and errors
// for `meshnet report`. Secrets never reach a log: the password is not in any
// object the daemon logs, and `redact` guards the obvious field names anyway.

import { pino, multistream, type Logger as Pino } from 'pino';
import { Writable } from 'node:stream';

export interface RecentEntry {
  time: string;
  level: string;
  msg: string;
}

export class RecentErrors {
  private readonly entries: RecentEntry[] = [];
  constructor(private readonly max = 100) {}
  add(e: RecentEntry): void {
    this.entries.push(e);
    if (this.entries.length > this.max) this.entries.shift();
  }
  list(): RecentEntry[] {
    return [...this.entries];
  }
}

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export function createLogger(level: string, recent: RecentErrors, dest: NodeJS.WritableStream = process.stdout): Pino {
  const ring = new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        const o = JSON.parse(chunk.toString('utf8')) as { time?: number; level?: number; msg?: string };
        recent.add({ time: new Date(o.time ?? Date.now()).toISOString(), level: LEVELS[o.level ?? 50] ?? 'error', msg: o.msg ?? '' });
      } catch {
        /* not JSON: ignore */
      }
      cb();
    },
  });
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: { paths: ['password', 'passwords', '*.password', 'secret', '*.secret'], censor: '[redacted]' },
    },
    multistream([
      { level: level as 'info', stream: dest },
      { level: 'warn', stream: ring },
    ]),
  );
}
