// The wire between the installed plugin (C shim or Node fallback) and the
// daemon: one HTTP/1.1 request per CNI invocation on <runDir>/meshnet.sock.
//
//   POST /cni   {"env": {"CNI_COMMAND": "ADD", ...}, "config": "<stdin as a string>"}
//   200         body = what the plugin prints on stdout
//               X-Meshnet-Cni-Exit: the plugin's exit code
//
// stdin travels as a string, not embedded JSON, so malformed input reaches the
// daemon intact and gets the right CNI error there. A DEL that cannot reach
// the daemon is written, as this same body, to <runDir>/cni-pending/ and the
// daemon replays it before serving anything else. Pure.

import { CniCode, CniError } from './errors.js';

export const CNI_HTTP_PATH = '/cni';
export const DEFAULT_RUN_DIR = '/run/meshnet';
export const CNI_EXIT_HEADER = 'x-meshnet-cni-exit';
export const SOCKET_NAME = 'meshnet.sock';
export const PENDING_DIR = 'cni-pending';
/** Larger request bodies are refused (a network config is a few KiB). */
export const MAX_REQUEST_BYTES = 1 << 20;

export interface CniRequest {
  /** The CNI_* variables only. */
  env: Record<string, string>;
  /** stdin, verbatim. */
  config: string;
}

export interface CniOutput {
  stdout: string;
  exitCode: number;
}

export function socketPath(runDir: string): string {
  return `${runDir.replace(/\/+$/, '')}/${SOCKET_NAME}`;
}

export function pendingDir(runDir: string): string {
  return `${runDir.replace(/\/+$/, '')}/${PENDING_DIR}`;
}

/** The CNI_* part of an environment (the rest is none of the daemon's business). */
export function cniEnvOf(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('CNI_') && v !== undefined) out[k] = v;
  return out;
}

export function encodeRequest(req: CniRequest): string {
  return JSON.stringify({ env: req.env, config: req.config });
}

export function decodeRequest(body: string): CniRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch (err) {
    throw new CniError(CniCode.DECODE_FAILURE, `plugin request is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CniError(CniCode.DECODE_FAILURE, 'plugin request must be a JSON object {env, config}');
  const { env, config } = raw as Record<string, unknown>;
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new CniError(CniCode.DECODE_FAILURE, 'plugin request field "env" must be an object');
  const outEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string') throw new CniError(CniCode.DECODE_FAILURE, `plugin request env ${k} must be a string, got ${JSON.stringify(v)}`);
    if (k.startsWith('CNI_')) outEnv[k] = v;
  }
  if (typeof config !== 'string') throw new CniError(CniCode.DECODE_FAILURE, 'plugin request field "config" must be a string');
  return { env: outEnv, config };
}

/** runDir and cniVersion from stdin, leniently (the plugin needs them before anything is validated). */
export function peekConfig(stdin: string): { wellFormed: boolean; runDir?: string; cniVersion?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch {
    return { wellFormed: false };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { wellFormed: false };
  const o = raw as Record<string, unknown>;
  const out: { wellFormed: boolean; runDir?: string; cniVersion?: string } = { wellFormed: true };
  if (typeof o.runDir === 'string') out.runDir = o.runDir;
  if (typeof o.cniVersion === 'string') out.cniVersion = o.cniVersion;
  return out;
}
