// CNI ADD results: one version-neutral model, a tolerant parser for the
// `prevResult` a runtime hands back, and the shaping into each spec version's
// JSON. Pure.

import { CniCode, CniError } from './errors.js';
import { parseIPv4, parseIPv4Cidr } from './names.js';
import { interfacesCarryMtu, ipsCarryVersion } from './version.js';

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface ResultInterface {
  name: string;
  mac?: string;
  /** Shown from spec 1.1.0 on. */
  mtu?: number;
  /** The netns path for a pod's interface; absent on the host. */
  sandbox?: string;
}

export interface ResultIp {
  /** CIDR: "198.19.0.5/24". */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  /** 1.1.0 extras, kept as given when passing a prevResult through. */
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface ResultModel {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: ResultRoute[];
  dns: CniDns;
}

const ROUTE_EXTRAS_1_1 = ['mtu', 'advmss', 'priority', 'table', 'scope'] as const;

/** The JSON a plugin prints for a successful ADD in `version`'s format. */
export function shapeResult(model: ResultModel, version: string): Record<string, unknown> {
  const withIpVersion = ipsCarryVersion(version);
  const withMtu = interfacesCarryMtu(version);
  const interfaces = model.interfaces.map((i) => {
    const o: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined) o.mac = i.mac;
    if (withMtu && i.mtu !== undefined) o.mtu = i.mtu;
    if (i.sandbox !== undefined) o.sandbox = i.sandbox;
    return o;
  });
  const ips = model.ips.map((ip) => {
    const o: Record<string, unknown> = {};
    if (withIpVersion) o.version = ip.address.includes(':') ? '6' : '4';
    o.address = ip.address;
    if (ip.gateway !== undefined) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  const routes = model.routes.map((r) => {
    const o: Record<string, unknown> = { dst: r.dst };
    if (r.gw !== undefined) o.gw = r.gw;
    if (withMtu) for (const k of ROUTE_EXTRAS_1_1) if (r[k] !== undefined) o[k] = r[k];
    return o;
  });
  return { cniVersion: version, interfaces, ips, routes, dns: { ...model.dns } };
}

function bad(field: string, problem: string): CniError {
  return new CniError(CniCode.INVALID_CONFIG, `invalid prevResult: ${field} ${problem}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${where}.${key}`, `must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function optUint(o: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad(`${where}.${key}`, `must be a non-negative integer, got ${JSON.stringify(v)}`);
  return v;
}

/** Parse a result of any supported version (0.3.0 … 1.1.0) into the model; fields we don't model are dropped. */
export function parseResult(raw: unknown): ResultModel {
  if (!isObject(raw)) throw bad('prevResult', `must be an object, got ${JSON.stringify(raw)}`);
  const list = (key: string): unknown[] => {
    const v = raw[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw bad(key, `must be an array, got ${JSON.stringify(v)}`);
    return v;
  };
  const interfaces = list('interfaces').map((x, i): ResultInterface => {
    const where = `interfaces[${i}]`;
    if (!isObject(x)) throw bad(where, 'must be an object');
    const name = optString(x, 'name', where);
    if (!name) throw bad(`${where}.name`, 'is missing');
    const out: ResultInterface = { name };
    const mac = optString(x, 'mac', where);
    if (mac) out.mac = mac;
    const mtu = optUint(x, 'mtu', where);
    if (mtu !== undefined) out.mtu = mtu;
    const sandbox = optString(x, 'sandbox', where);
    if (sandbox) out.sandbox = sandbox;
    return out;
  });
  const ips = list('ips').map((x, i): ResultIp => {
    const where = `ips[${i}]`;
    if (!isObject(x)) throw bad(where, 'must be an object');
    const address = optString(x, 'address', where);
    if (!address) throw bad(`${where}.address`, 'is missing');
    const out: ResultIp = { address };
    const gateway = optString(x, 'gateway', where);
    if (gateway) out.gateway = gateway;
    const iface = optUint(x, 'interface', where);
    if (iface !== undefined) {
      if (iface >= interfaces.length) throw bad(`${where}.interface`, `${iface} is not an index into interfaces`);
      out.interface = iface;
    }
    return out;
  });
  const routes = list('routes').map((x, i): ResultRoute => {
    const where = `routes[${i}]`;
    if (!isObject(x)) throw bad(where, 'must be an object');
    const dst = optString(x, 'dst', where);
    if (!dst) throw bad(`${where}.dst`, 'is missing');
    const out: ResultRoute = { dst };
    const gw = optString(x, 'gw', where);
    if (gw) out.gw = gw;
    for (const k of ROUTE_EXTRAS_1_1) {
      const v = optUint(x, k, where);
      if (v !== undefined) out[k] = v;
    }
    return out;
  });
  const dns = raw.dns === undefined || raw.dns === null ? {} : parseDns(raw.dns, 'prevResult.dns', CniCode.INVALID_CONFIG);
  return { interfaces, ips, routes, dns };
}

/** The `dns` dictionary (network config or result). */
export function parseDns(raw: unknown, where: string, code: number): CniDns {
  const fail = (what: string): CniError => new CniError(code, `invalid ${where}${what}`);
  if (!isObject(raw)) throw fail(`: must be an object, got ${JSON.stringify(raw)}`);
  const out: CniDns = {};
  for (const key of ['nameservers', 'search', 'options'] as const) {
    const v = raw[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw fail(`.${key}: must be a list of strings, got ${JSON.stringify(v)}`);
    out[key] = [...(v as string[])];
  }
  if (out.nameservers) {
    for (const ns of out.nameservers) {
      if (!parseIPv4(ns) && !/^[0-9a-fA-F:]+$/.test(ns)) throw fail(`.nameservers: ${JSON.stringify(ns)} is not an IP address`);
    }
  }
  if (raw.domain !== undefined && raw.domain !== null) {
    if (typeof raw.domain !== 'string') throw fail(`.domain: must be a string, got ${JSON.stringify(raw.domain)}`);
    out.domain = raw.domain;
  }
  return out;
}

/** The pod's own attachment as meshnet reports it. */
export interface AttachmentResult {
  bridge: { name: string; mac: string };
  hostVeth: { name: string; mac: string };
  pod: { name: string; mac: string; netns: string };
  mtu: number;
  address: string;
  prefixLength: number;
  gateway: string;
  dns: CniDns;
}

/** Our attachment appended to whatever earlier plugins returned (usually nothing: meshnet comes first). */
export function attachmentModel(a: AttachmentResult, prev?: ResultModel): ResultModel {
  const base: ResultModel = prev
    ? { interfaces: [...prev.interfaces], ips: [...prev.ips], routes: [...prev.routes], dns: prev.dns }
    : { interfaces: [], ips: [], routes: [], dns: {} };
  const first = base.interfaces.length;
  base.interfaces.push(
    { name: a.bridge.name, mac: a.bridge.mac, mtu: a.mtu },
    { name: a.hostVeth.name, mac: a.hostVeth.mac, mtu: a.mtu },
    { name: a.pod.name, mac: a.pod.mac, mtu: a.mtu, sandbox: a.pod.netns },
  );
  base.ips.push({ address: `${a.address}/${a.prefixLength}`, gateway: a.gateway, interface: first + 2 });
  base.routes.push({ dst: '0.0.0.0/0', gw: a.gateway });
  const hasDns = Object.keys(a.dns).length > 0;
  if (hasDns) base.dns = { ...a.dns };
  return base;
}

/** Does the result list our pod interface with our address? (CHECK consults prevResult.) */
export function resultListsAttachment(model: ResultModel, ifname: string, netns: string, cidr: string): string | undefined {
  const idx = model.interfaces.findIndex((i) => i.name === ifname && (i.sandbox ?? '') === netns);
  if (idx < 0) return `prevResult lists no interface ${ifname} in ${netns}`;
  const want = parseIPv4Cidr(cidr);
  const ip = model.ips.find((x) => x.interface === idx && x.address === cidr);
  if (!ip || !want) return `prevResult lists no address ${cidr} on ${ifname}`;
  return undefined;
}
