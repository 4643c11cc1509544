// The CNI spec versions meshnet speaks and what each allows. The C shim
// (cni/shim.c) carries the same list; a unit test keeps the two equal.

export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The version meshnet answers with when the caller named none it knows. */
export const LATEST_VERSION: CniVersion = '1.1.0';

export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Compare two "x.y.z" versions numerically: <0, 0, >0. Missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split('.').map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** CHECK arrived with spec 0.4.0. */
export function allowsCheck(v: string): boolean {
  return compareVersions(v, '0.4.0') >= 0;
}

/** STATUS and GC arrived with spec 1.1.0. */
export function allowsStatusAndGc(v: string): boolean {
  return compareVersions(v, '1.1.0') >= 0;
}

/** Before 1.0.0 every entry of `ips` carried "version": "4" | "6". */
export function ipsCarryVersion(v: string): boolean {
  return compareVersions(v, '1.0.0') < 0;
}

/** 1.1.0 added `mtu` to interfaces (and mtu/advmss/priority/table/scope to routes). */
export function interfacesCarryMtu(v: string): boolean {
  return compareVersions(v, '1.1.0') >= 0;
}

/** The VERSION answer: echo the caller's version when we speak it (the spec asks for that). */
export function versionResult(requested: unknown): { cniVersion: string; supportedVersions: string[] } {
  return {
    cniVersion: isSupportedVersion(requested) ? requested : LATEST_VERSION,
    supportedVersions: [...SUPPORTED_VERSIONS],
  };
}
