// Errors from the kernel carry an errno. The netlink package reports them as
// `Error("Request rejected: EEXIST")`; we read the errno ourselves and throw
// NetlinkError, so callers branch on `err.code` instead of parsing messages.
// The `ip`/`bridge` fallback maps its stderr onto the same codes.

import { constants, strerror } from './errno.js';

export type ErrnoCode = keyof typeof constants | 'UNKNOWN';

export class NetlinkError extends Error {
  override readonly name = 'NetlinkError';
  constructor(
    /** What we tried, e.g. "create link meshnet-vxlan". */
    readonly operation: string,
    /** Positive errno (0 when the failure has none, e.g. a timeout). */
    readonly errno: number,
    readonly code: ErrnoCode,
    detail?: string,
  ) {
    super(`${operation}: ${code}${errno ? ` (${strerror(errno)})` : ''}${detail ? `: ${detail}` : ''}`);
  }

  static fromErrno(operation: string, errno: number, detail?: string): NetlinkError {
    const n = Math.abs(errno);
    const code = (Object.entries(constants).find(([, v]) => v === n)?.[0] ?? 'UNKNOWN') as ErrnoCode;
    return new NetlinkError(operation, n, code, detail);
  }
}

/** True when `err` is a NetlinkError with one of `codes`. */
export function isErrno(err: unknown, ...codes: ErrnoCode[]): err is NetlinkError {
  return err instanceof NetlinkError && codes.includes(err.code);
}

// iproute2 prints strerror() text; map it back to errno for the fallback.
const STDERR_PATTERNS: [RegExp, keyof typeof constants][] = [
  [/File exists|already assigned|already exists/i, 'EEXIST'],
  [/No such file or directory|Cannot find device|does not exist|No such device/i, 'ENOENT'],
  [/Device or resource busy/i, 'EBUSY'],
  [/Operation not permitted/i, 'EPERM'],
  [/Operation not supported|not supported/i, 'EOPNOTSUPP'],
  [/Invalid argument/i, 'EINVAL'],
  [/Network is unreachable/i, 'ENETUNREACH'],
  [/No buffer space/i, 'ENOBUFS'],
  [/Address already in use/i, 'EADDRINUSE'],
  [/Numerical result out of range/i, 'ERANGE'],
];

/** Turn an iproute2 error line into a NetlinkError with the errno it stands for. */
export function fromIprouteStderr(operation: string, stderr: string): NetlinkError {
  const line = stderr.trim().split('\n').find((l) => l.trim()) ?? 'failed';
  for (const [re, code] of STDERR_PATTERNS) if (re.test(line)) return new NetlinkError(operation, constants[code], code, line);
  return new NetlinkError(operation, 0, 'UNKNOWN', line);
}
