// Retry delays for Kubernetes discovery (docs/deploy.md 3.1): 1 s doubling
// to 60 s, ±20 % jitter so a cluster's routers do not retry in lockstep
// after an API server restart.

export interface KubeBackoffPolicy {
  initialMs: number;
  maxMs: number;
  /** Fraction of the delay added or removed at random. */
  jitter: number;
}

export const KUBE_BACKOFF: KubeBackoffPolicy = { initialMs: 1_000, maxMs: 60_000, jitter: 0.2 };

/** The delay before retry number `attempt` (0 = first retry). */
export function backoffDelay(attempt: number, policy: KubeBackoffPolicy = KUBE_BACKOFF, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - policy.jitter + 2 * policy.jitter * random()));
}
