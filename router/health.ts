// /healthz and /readyz (docs/deploy.md 3.4): components register checks
// that return the problems they see, one line each, in the words
// `meshnet status` uses. Liveness is about the router itself (never about
// peers or the ring: a lone node is healthy); readiness is "a CNI ADD would
// succeed now". Each check is bounded so a probe answers within a second.

export type Check = () => string[] | Promise<string[]>;

export interface ProbeResult {
  ok: boolean;
  /** One line per failed condition (empty when ok). */
  problems: string[];
}

const CHECK_TIMEOUT_MS = 800;

export class Health {
  private readonly liveness = new Map<string, Check>();
  private readonly readiness = new Map<string, Check>();
  private started = false;

  /** A condition that, when it fails, needs a restart (the kubelet's liveness probe). */
  addLiveness(name: string, check: Check): void {
    this.liveness.set(name, check);
  }

  /** A condition a CNI ADD needs (the readiness probe). */
  addReadiness(name: string, check: Check): void {
    this.readiness.set(name, check);
  }

  /** Every component has started (until then both probes fail with "starting"). */
  markStarted(): void {
    this.started = true;
  }

  healthz(): Promise<ProbeResult> {
    return this.run(this.liveness);
  }

  readyz(): Promise<ProbeResult> {
    return this.run(this.readiness);
  }

  private async run(checks: Map<string, Check>): Promise<ProbeResult> {
    if (!this.started) return { ok: false, problems: ['router: starting'] };
    const results = await Promise.all([...checks].map(([name, check]) => runCheck(name, check)));
    const problems = results.flat();
    return { ok: problems.length === 0, problems };
  }
}

async function runCheck(name: string, check: Check): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(check),
      new Promise<string[]>((resolve) => {
        timer = setTimeout(() => resolve([`${name}: no answer within ${CHECK_TIMEOUT_MS} ms`]), CHECK_TIMEOUT_MS);
      }),
    ]);
  } catch (err) {
    return [`${name}: ${err instanceof Error ? err.message : String(err)}`];
  } finally {
    clearTimeout(timer);
  }
}
