// `meshnet launch` flags and environment → a validated LaunchConfig. Every
// problem is a ConfigError whose message is one line naming the flag and the
// value, so the CLI can print it as it is.

import { isIP } from 'node:net';
import { parseInitMode, parseRange } from './ipam/init.js';
import { kubeApiFromEnv, SEED_FROM_KUBERNETES, type KubeEnv, type KubeSettings } from './kube/index.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LaunchConfig {
  peers: string[];
  /** Passwords accepted, preferred first (rotation adds more); empty = unencrypted. */
  passwords: string[];
  ipallocRange: string;
  /** `--ipalloc-init` as given (validated); undefined means consensus. */
  ipallocInit: string | undefined;
  name?: string;
  nickname?: string;
  host: string;
  port: number;
  noFastdp: boolean;
  trustedSubnets: string[];
  mtu?: number;
  connLimit: number;
  stateDir: string;
  runDir: string;
  metricsAddr: { host: string; port: number } | null;
  foreground: boolean;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Where the password came from (for the report; never the password). */
  passwordSource: 'flag' | 'file' | 'env' | 'none';
  passwordFile?: string;
  /** --peers-from-kubernetes: the API server and this node's name (docs/deploy.md 3.1). */
  kubernetes?: KubeSettings;
}

export const DEFAULTS = {
  ipallocRange: '10.32.0.0/12',
  port: 6783,
  connLimit: 200,
  stateDir: '/var/lib/meshnet',
  runDir: '/run/meshnet',
  metricsAddr: '127.0.0.1:6782',
} as const;

/** Flags `launch` understands, and whether each takes a value. */
const LAUNCH_FLAGS: Record<string, 'value' | 'bool'> = {
  '--password': 'value',
  '--password-file': 'value',
  '--ipalloc-range': 'value',
  '--ipalloc-init': 'value',
  '--name': 'value',
  '--nickname': 'value',
  '--host': 'value',
  '--port': 'value',
  '--no-fastdp': 'bool',
  '--trusted-subnets': 'value',
  '--mtu': 'value',
  '--conn-limit': 'value',
  '--state-dir': 'value',
  '--run-dir': 'value',
  '--metrics-addr': 'value',
  '--foreground': 'bool',
  '--log-level': 'value',
  '--peers-from-kubernetes': 'bool',
};

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

/**
 * Split arguments into positionals and known flags (`--flag value` or
 * `--flag=value`). Unknown flags and missing values are errors.
 */
export function parseArgs(argv: string[], known: Record<string, 'value' | 'bool'>): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const kind = known[name];
    if (!kind) throw new ConfigError(`unknown flag ${name}`);
    if (kind === 'bool') {
      if (eq > 0) throw new ConfigError(`${name} takes no value`);
      flags.set(name, true);
      continue;
    }
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || (eq < 0 && value.startsWith('--'))) throw new ConfigError(`${name} needs a value`);
    flags.set(name, value);
  }
  return { positional, flags };
}

export interface ConfigEnv extends KubeEnv {
  MESHNET_PASSWORD?: string | undefined;
  IPALLOC_RANGE?: string | undefined;
  MESHNET_RUN_DIR?: string | undefined;
  /** Peers added to the positional ones, separated by spaces or commas (docs/deploy.md 3.3). */
  MESHNET_PEERS?: string | undefined;
  /** Set by `launch` for its background daemon when the password came from --password. */
  MESHNET_PASSWORD_SOURCE?: string | undefined;
  /** This Kubernetes node (downward API spec.nodeName). */
  NODE_NAME?: string | undefined;
}

/** Parse `launch` arguments. Reading the password file is the caller's job (see readPasswordFile). */
export function parseLaunchArgs(argv: string[], env: ConfigEnv, readFile: (path: string) => string): LaunchConfig {
  const { positional, flags } = parseArgs(argv, LAUNCH_FLAGS);
  const str = (f: string): string | undefined => {
    const v = flags.get(f);
    return typeof v === 'string' ? v : undefined;
  };
  for (const p of positional) parsePeerAddress(p, DEFAULTS.port);
  const envPeers = peersFromEnv(env.MESHNET_PEERS);
  const peers = [...positional];
  const seen = new Set(positional.map((p) => parsePeerAddress(p, DEFAULTS.port)));
  for (const p of envPeers) {
    const norm = parsePeerAddress(p, DEFAULTS.port);
    if (!seen.has(norm)) peers.push(p);
    seen.add(norm);
  }

  let passwords: string[] = [];
  let passwordSource: LaunchConfig['passwordSource'] = 'none';
  const pwFlag = str('--password');
  const pwFile = str('--password-file');
  if (pwFlag !== undefined && pwFile !== undefined) throw new ConfigError('give --password or --password-file, not both');
  if (pwFlag !== undefined) {
    passwords = [pwFlag];
    passwordSource = 'flag';
  } else if (pwFile !== undefined) {
    passwords = [readPasswordFile(pwFile, readFile)];
    passwordSource = 'file';
  } else if (env.MESHNET_PASSWORD !== undefined) {
    // A Secret with an empty key must not silently mean "unencrypted".
    if (env.MESHNET_PASSWORD === '') throw new ConfigError('MESHNET_PASSWORD is set but empty');
    passwords = [env.MESHNET_PASSWORD];
    // `launch --password` hands the password to its background daemon in the environment.
    passwordSource = env.MESHNET_PASSWORD_SOURCE === 'flag' ? 'flag' : 'env';
  }
  if (passwords.some((p) => p.length === 0)) throw new ConfigError('--password: the password is empty');

  const range = str('--ipalloc-range') ?? env.IPALLOC_RANGE ?? DEFAULTS.ipallocRange;
  const init = str('--ipalloc-init');
  const fromKube = flags.has('--peers-from-kubernetes');
  let kubernetes: KubeSettings | undefined;
  if (fromKube) {
    try {
      kubernetes = { api: kubeApiFromEnv(env) };
    } catch (err) {
      throw new ConfigError((err as Error).message);
    }
    if (env.NODE_NAME) kubernetes.nodeName = env.NODE_NAME;
  }
  try {
    parseRange(range);
    if (init === SEED_FROM_KUBERNETES) {
      if (!fromKube) throw new ConfigError('--ipalloc-init: seed-from-kubernetes needs --peers-from-kubernetes');
      if (!env.NODE_NAME) throw new ConfigError('--ipalloc-init: seed-from-kubernetes needs NODE_NAME (set it from the downward API spec.nodeName)');
    } else parseInitMode(init, peers.length);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError((err as Error).message.replace(/^invalid (--[a-z-]+) /, '$1: '));
  }

  const name = str('--name');
  if (name !== undefined && !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(name)) {
    throw new ConfigError(`--name: "${name}" is not a peer name (six hex bytes like 8a:3f:00:12:ab:cd)`);
  }
  const nickname = str('--nickname');
  if (nickname !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(nickname)) {
    throw new ConfigError(`--nickname: "${nickname}" must be 1-63 letters, digits, '.', '_' or '-'`);
  }
  const host = str('--host') ?? '0.0.0.0';
  if (!isIP(host)) throw new ConfigError(`--host: "${host}" is not an IP address`);
  const port = parsePort(str('--port') ?? String(DEFAULTS.port), '--port');
  const trusted = (str('--trusted-subnets') ?? '').split(',').filter(Boolean);
  for (const t of trusted) parseCidr(t, '--trusted-subnets');
  const mtuStr = str('--mtu');
  const mtu = mtuStr === undefined ? undefined : parseIntIn(mtuStr, '--mtu', 576, 65535);
  const connLimit = parseIntIn(str('--conn-limit') ?? String(DEFAULTS.connLimit), '--conn-limit', 0, 100_000);
  const metrics = str('--metrics-addr') ?? DEFAULTS.metricsAddr;
  const metricsAddr = metrics === '' || metrics === 'off' ? null : parseHostPort(metrics, '--metrics-addr');
  const logLevel = str('--log-level') ?? 'info';
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  if (!levels.includes(logLevel)) throw new ConfigError(`--log-level: "${logLevel}" is not one of ${levels.join(', ')}`);

  const cfg: LaunchConfig = {
    peers,
    passwords,
    passwordSource,
    ipallocRange: range,
    ipallocInit: init,
    host,
    port,
    noFastdp: flags.has('--no-fastdp'),
    trustedSubnets: trusted,
    connLimit,
    stateDir: str('--state-dir') ?? DEFAULTS.stateDir,
    runDir: str('--run-dir') ?? env.MESHNET_RUN_DIR ?? DEFAULTS.runDir,
    metricsAddr,
    foreground: flags.has('--foreground'),
    logLevel: logLevel as LaunchConfig['logLevel'],
  };
  if (name !== undefined) cfg.name = name.toLowerCase();
  if (nickname !== undefined) cfg.nickname = nickname;
  if (mtu !== undefined) cfg.mtu = mtu;
  if (pwFile !== undefined) cfg.passwordFile = pwFile;
  if (kubernetes) cfg.kubernetes = kubernetes;
  return cfg;
}

/** MESHNET_PEERS: HOST[:PORT] separated by spaces or commas; each checked, the variable named in errors. */
export function peersFromEnv(value: string | undefined): string[] {
  const list = (value ?? '').split(/[\s,]+/).filter(Boolean);
  for (const p of list) {
    try {
      parsePeerAddress(p, DEFAULTS.port);
    } catch (err) {
      throw new ConfigError(`MESHNET_PEERS: ${(err as Error).message}`);
    }
  }
  return list;
}

export function readPasswordFile(path: string, readFile: (path: string) => string): string {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new ConfigError(`--password-file: cannot read ${path}: ${why}`);
  }
  // A trailing newline is what editors and `echo` leave; it is not part of the password.
  const pw = text.replace(/\r?\n$/, '');
  if (pw.length === 0) throw new ConfigError(`--password-file: ${path} is empty`);
  return pw;
}

export function parsePort(v: string, what: string): number {
  return parseIntIn(v, what, 1, 65535);
}

function parseIntIn(v: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(v)) throw new ConfigError(`${what}: "${v}" is not a number`);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(`${what}: ${n} is outside ${min}-${max}`);
  return n;
}

export function parseCidr(v: string, what: string): { ip: string; prefix: number } {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(v);
  if (!m || isIP(m[1]!) !== 4 || Number(m[2]) > 32) throw new ConfigError(`${what}: "${v}" is not an IPv4 CIDR like 10.32.0.0/12`);
  return { ip: m[1]!, prefix: Number(m[2]) };
}

export function parseHostPort(v: string, what: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:]+):(\d+)$/.exec(v);
  if (!m || !isIP(m[1]!)) throw new ConfigError(`${what}: "${v}" is not HOST:PORT with an IP address`);
  return { host: m[1]!, port: parsePort(m[2]!, what) };
}

const HOSTNAME_RE = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** "host", "host:port", "[v6]:port" → normalised "host:port". */
export function parsePeerAddress(v: string, defaultPort: number): string {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  let host: string;
  let port: string | undefined;
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2];
    if (isIP(host) !== 6) throw new ConfigError(`invalid peer address "${v}": [${host}] is not an IPv6 address`);
  } else if (isIP(v) === 6) {
    host = v;
  } else {
    const parts = v.split(':');
    if (parts.length > 2) throw new ConfigError(`invalid peer address "${v}": expected HOST[:PORT]`);
    host = parts[0]!;
    port = parts[1];
    if (!isIP(host) && !HOSTNAME_RE.test(host)) throw new ConfigError(`invalid peer address "${v}": "${host}" is not an IP address or host name`);
  }
  const p = port === undefined ? defaultPort : Number(port);
  if (port !== undefined && (!/^\d+$/.test(port) || p < 1 || p > 65535)) throw new ConfigError(`invalid peer address "${v}": bad port "${port}"`);
  return isIP(host) === 6 ? `[${host}]:${p}` : `${host}:${p}`;
}
