// The network configuration a runtime streams on stdin: decode, validate and
// normalise it. Every rejection names the field and the value. Pure.

import { CniCode, CniError } from './errors.js';
import { interfaceNameProblem, parseIPv4Cidr } from './names.js';
import { DEFAULT_RUN_DIR } from './protocol.js';
import { parseDns, parseResult, type CniDns, type ResultModel } from './result.js';
import { isSupportedVersion, SUPPORTED_VERSIONS } from './version.js';

export const DEFAULT_BRIDGE = 'meshnet';

export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  runDir: string;
  bridge: string;
  /** 0: the daemon's overlay MTU. */
  mtu: number;
  hairpinMode: boolean;
  dns: CniDns;
  /** A specific address the runtime asked for (runtimeConfig.ips or args.cni.ips). */
  requestedIp?: string;
  /** The previous plugin's (or the cached ADD) result. */
  prevResult?: ResultModel;
  /** GC: attachments that are still valid. */
  validAttachments?: Attachment[];
}

const NETWORK_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function invalid(msg: string, details = ''): CniError {
  return new CniError(CniCode.INVALID_CONFIG, msg, details);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 120 ? `${s.slice(0, 117)}...` : s;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decode stdin; only the JSON shape is checked here (DECODE_FAILURE), not the fields. */
export function decodeConfig(stdin: string): Record<string, unknown> {
  if (stdin.trim() === '') throw new CniError(CniCode.DECODE_FAILURE, 'network config on stdin is empty');
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.DECODE_FAILURE, `network config on stdin is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(CniCode.DECODE_FAILURE, `network config must be a JSON object, got ${show(raw)}`);
  return raw;
}

/** The cniVersion alone (error results carry it, so it is read before anything can fail). */
export function configVersion(raw: Record<string, unknown>): string {
  const v = raw.cniVersion;
  if (v === undefined) throw invalid('network config field "cniVersion" is missing');
  if (typeof v !== 'string') throw invalid(`network config field "cniVersion" must be a string, got ${show(v)}`);
  if (!isSupportedVersion(v)) {
    throw new CniError(CniCode.INCOMPATIBLE_VERSION, `unsupported cniVersion ${show(v)}`, `meshnet supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return v;
}

export function parseNetConf(raw: Record<string, unknown>): NetConf {
  const cniVersion = configVersion(raw);
  const str = (key: string, required: boolean): string | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) {
      if (required) throw invalid(`network config field "${key}" is missing`);
      return undefined;
    }
    if (typeof v !== 'string') throw invalid(`network config field "${key}" must be a string, got ${show(v)}`);
    return v;
  };

  const name = str('name', true)!;
  if (!NETWORK_NAME_RE.test(name)) {
    throw invalid(`invalid network name "name"=${show(name)}`, 'must start with a letter or digit, followed by letters, digits, "_", "." or "-"');
  }
  const type = str('type', true)!;
  if (type === '' || /[/\\]/.test(type)) throw invalid(`invalid plugin "type"=${show(type)}`);

  const runDir = str('runDir', false) ?? DEFAULT_RUN_DIR;
  if (!runDir.startsWith('/')) throw invalid(`network config field "runDir" must be an absolute path, got ${show(runDir)}`);

  const bridge = str('bridge', false) ?? DEFAULT_BRIDGE;
  const problem = interfaceNameProblem(bridge);
  if (problem) throw invalid(`invalid "bridge"=${show(bridge)}: not a valid interface name (${problem})`);

  let mtu = 0;
  if (raw.mtu !== undefined && raw.mtu !== null) {
    const v = raw.mtu;
    if (typeof v !== 'number' || !Number.isInteger(v) || (v !== 0 && (v < 68 || v > 65535))) {
      throw invalid(`invalid "mtu"=${show(v)}: must be 0 (the overlay's MTU) or an integer from 68 to 65535`);
    }
    mtu = v;
  }

  let hairpinMode = true;
  if (raw.hairpinMode !== undefined && raw.hairpinMode !== null) {
    if (typeof raw.hairpinMode !== 'boolean') throw invalid(`invalid "hairpinMode"=${show(raw.hairpinMode)}: must be true or false`);
    hairpinMode = raw.hairpinMode;
  }

  const dns = raw.dns === undefined || raw.dns === null ? {} : parseDns(raw.dns, '"dns"', CniCode.INVALID_CONFIG);

  // meshnet allocates addresses itself; an ipam section would silently do nothing.
  if (raw.ipam !== undefined && raw.ipam !== null && !(isObject(raw.ipam) && Object.keys(raw.ipam).length === 0)) {
    throw new CniError(CniCode.UNSUPPORTED_FIELD, `unsupported field "ipam"=${show(raw.ipam)}`, 'meshnet allocates addresses itself; remove "ipam"');
  }

  const conf: NetConf = { cniVersion, name, type, runDir, bridge, mtu, hairpinMode, dns };

  for (const key of ['args', 'runtimeConfig'] as const) {
    if (raw[key] !== undefined && raw[key] !== null && !isObject(raw[key])) throw invalid(`network config field "${key}" must be an object, got ${show(raw[key])}`);
  }
  const rc = isObject(raw.runtimeConfig) ? raw.runtimeConfig : {};
  const argsCni = isObject(raw.args) && isObject(raw.args.cni) ? raw.args.cni : {};
  const requested = requestedIp(rc.ips, 'runtimeConfig.ips') ?? requestedIp(argsCni.ips, 'args.cni.ips');
  if (requested) conf.requestedIp = requested;

  if (raw.prevResult !== undefined && raw.prevResult !== null) conf.prevResult = parseResult(raw.prevResult);

  // Spec 1.1.0 names it cni.dev/valid-attachments; libcni also sends cni.dev/attachments.
  const valid = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (valid !== undefined && valid !== null) conf.validAttachments = parseAttachments(valid);
  return conf;
}

function requestedIp(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw invalid(`invalid "${field}"=${show(v)}: must be a list of strings`);
  if (v.length === 0) return undefined;
  if (v.length > 1) throw invalid(`invalid "${field}"=${show(v)}: meshnet gives a pod one IPv4 address`);
  const parsed = parseIPv4Cidr(v[0] as string);
  if (!parsed) throw invalid(`invalid "${field}"=${show(v)}: ${show(v[0])} is not an IPv4 address`);
  return parsed.ip;
}

function parseAttachments(v: unknown): Attachment[] {
  const field = 'cni.dev/valid-attachments';
  if (!Array.isArray(v)) throw invalid(`invalid "${field}"=${show(v)}: must be a list`);
  return v.map((x, i) => {
    if (!isObject(x) || typeof x.containerID !== 'string' || typeof x.ifname !== 'string') {
      throw invalid(`invalid "${field}"[${i}]=${show(x)}: needs string "containerID" and "ifname"`);
    }
    return { containerId: x.containerID, ifname: x.ifname };
  });
}
