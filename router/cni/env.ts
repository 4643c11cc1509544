// The CNI_* environment of one invocation, validated per command (CNI 1.1.0
// "Parameters" and each operation's required variables). Pure.

import { CniCode, CniError } from './errors.js';
import { interfaceNameProblem, parseIPv4 } from './names.js';

export const CNI_COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type CniCommand = (typeof CNI_COMMANDS)[number];

export interface CniEnv {
  command: CniCommand;
  /** Empty for VERSION, STATUS and GC. */
  containerId: string;
  /** Empty when not given (DEL may omit it; containerd passes an empty one). */
  netns: string;
  /** Empty for VERSION, STATUS and GC. */
  ifname: string;
  /** CNI_ARGS as key/value pairs. */
  args: Map<string, string>;
  /** An address asked for with CNI_ARGS "IP=a.b.c.d". */
  requestedIp?: string;
}

const CONTAINER_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function invalid(msg: string, details = ''): CniError {
  return new CniError(CniCode.INVALID_ENV, msg, details);
}

/** Which variables each command needs (CNI 1.1.0 section 2). */
const REQUIRES: Record<CniCommand, { containerId: boolean; netns: boolean; ifname: boolean }> = {
  ADD: { containerId: true, netns: true, ifname: true },
  CHECK: { containerId: true, netns: true, ifname: true },
  DEL: { containerId: true, netns: false, ifname: true },
  VERSION: { containerId: false, netns: false, ifname: false },
  STATUS: { containerId: false, netns: false, ifname: false },
  GC: { containerId: false, netns: false, ifname: false },
};

export function parseCommand(raw: string | undefined): CniCommand {
  if (raw === undefined || raw === '') throw invalid('CNI_COMMAND is missing', `expected one of ${CNI_COMMANDS.join(', ')}`);
  if (!(CNI_COMMANDS as readonly string[]).includes(raw)) {
    throw invalid(`unknown CNI_COMMAND=${JSON.stringify(raw)}`, `expected one of ${CNI_COMMANDS.join(', ')}`);
  }
  return raw as CniCommand;
}

export function parseCniEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = parseCommand(env.CNI_COMMAND);
  const need = REQUIRES[command];
  const containerId = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';

  const missing: string[] = [];
  if (need.containerId && containerId === '') missing.push('CNI_CONTAINERID');
  if (need.netns && netns === '') missing.push('CNI_NETNS');
  if (need.ifname && ifname === '') missing.push('CNI_IFNAME');
  if (missing.length > 0) throw invalid(`required environment variables missing: ${missing.join(', ')}`, `CNI_COMMAND=${command} needs them`);

  if (containerId !== '' && !CONTAINER_ID_RE.test(containerId)) {
    throw invalid(
      `invalid CNI_CONTAINERID=${JSON.stringify(containerId)}`,
      'must start with a letter or digit, followed by letters, digits, "_", "." or "-"',
    );
  }
  if (ifname !== '') {
    const problem = interfaceNameProblem(ifname);
    if (problem) throw invalid(`invalid CNI_IFNAME=${JSON.stringify(ifname)}: ${problem}`);
  }
  // The path goes into an `ip -batch` line and an nsenter argument: absolute, no quoting needed.
  if (netns !== '' && (!netns.startsWith('/') || /[\s"'\\]/.test(netns))) {
    throw invalid(`invalid CNI_NETNS=${JSON.stringify(netns)}: must be an absolute path without whitespace or quotes`);
  }

  const args = parseCniArgs(env.CNI_ARGS ?? '');
  const out: CniEnv = { command, containerId, netns, ifname, args };
  const ip = args.get('IP');
  if (ip !== undefined) {
    if (!parseIPv4(ip)) throw invalid(`invalid CNI_ARGS IP=${JSON.stringify(ip)}: not an IPv4 address`);
    out.requestedIp = ip;
  }
  return out;
}

/** "K1=V1;K2=V2". Unknown keys are ignored (runtimes pass K8S_POD_NAME etc. to every plugin). */
export function parseCniArgs(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  if (raw === '') return out;
  for (const pair of raw.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw invalid(`invalid CNI_ARGS entry ${JSON.stringify(pair)}: expected KEY=VALUE`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return out;
}
