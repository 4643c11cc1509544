// CNI error results: the spec's well-known codes, meshnet's own codes (100+),
// and the error JSON a plugin prints on stdout with a non-zero exit.
// Pure: no I/O, imported by the daemon and by the Node fallback plugin.

/** The spec's well-known error codes (CNI 1.1.0, "Error"). */
export const CniCode = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  /** STATUS: cannot service ADD. */
  NOT_AVAILABLE: 50,
  /** STATUS: cannot service ADD, and existing pods may have limited connectivity. */
  NOT_AVAILABLE_LIMITED: 51,
  // meshnet's own codes (the spec leaves 100+ to plugins).
  /** The requested address is taken, or the range has no free address. */
  ADDRESS_UNAVAILABLE: 100,
  /** The kernel refused part of the pod's wiring (veth, address, route). */
  SETUP_FAILED: 101,
  /** CHECK found the pod's networking not as ADD left it. */
  CHECK_FAILED: 102,
  /** Anything unexpected (a bug): the message says what. */
  INTERNAL: 999,
} as const;
export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

/** An error that becomes a CNI error result. `msg` is one line naming the field or value at fault. */
export class CniError extends Error {
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details = '',
  ) {
    super(msg);
    this.name = 'CniError';
  }
}

export interface CniErrorJson {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

/** The error result for `err`; anything that is not a CniError becomes INTERNAL with its message. */
export function errorResult(err: unknown, cniVersion: string): CniErrorJson {
  const e = err instanceof CniError ? err : new CniError(CniCode.INTERNAL, oneLine(err));
  const out: CniErrorJson = { cniVersion, code: e.code, msg: oneLine(e.msg) };
  if (e.details) out.details = e.details;
  return out;
}

/** First line of an error's message, never a stack trace. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  const line = text.split('\n').find((l) => l.trim() !== '') ?? 'unknown error';
  return line.trim().slice(0, 500);
}
