// What `meshnet launch` says while it waits. Quiet when the start is quick;
// once a step has taken longer than `quietMs`, it names the step it is
// waiting for, and every later step as it begins. After the start, one line
// says what the router itself still waits for (the IPAM ring, the node list).

import type { StatusJson } from '../router/status.js';

export class LaunchProgress {
  private current = 'starting the router';
  private verbose = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly print: (line: string) => void,
    private readonly quietMs = 1_000,
  ) {
    this.arm();
  }

  step(what: string): void {
    this.current = what;
    if (this.verbose) this.print(`${what}...`);
    else this.arm();
  }

  done(): void {
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.verbose = true;
      this.print(`${this.current}...`);
    }, this.quietMs);
    this.timer.unref?.();
  }
}

/** A line about what the started router still waits for, or undefined when it waits for nothing. */
export function startupSummary(s: StatusJson): string | undefined {
  const notes: string[] = [];
  const k8s = s.discovery?.kubernetes;
  if (k8s?.error) notes.push(k8s.error);
  if (!s.ipam.ready) notes.push(`IPAM: ${s.ipam.status} (pods get addresses once IPAM is ready; see 'meshnet status ipam')`);
  return notes.length ? `started; ${notes.join('; ')}` : undefined;
}
