// Netlink attribute (TLV) encoding and decoding, plus the address codecs the
// rtnetlink messages use. Pure functions over Buffers; host byte order is
// little-endian on every platform meshnet targets (x86-64, arm64), which the
// kernel ABI uses for native-endian fields.

import { isIPv4, isIPv6 } from 'node:net';
import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants.js';

/** An attribute to encode: raw payload bytes or nested attributes. */
export interface Attr {
  type: number;
  value: Buffer | Attr[];
}

const align4 = (n: number): number => (n + 3) & ~3;

/** Encode attributes with 4-byte alignment; nested lists get NLA_F_NESTED. */
export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const nested = Array.isArray(a.value);
    const payload = nested ? encodeAttrs(a.value as Attr[]) : (a.value as Buffer);
    const len = 4 + payload.length;
    const hdr = Buffer.alloc(4);
    hdr.writeUInt16LE(len, 0);
    hdr.writeUInt16LE(a.type | (nested ? NLA_F_NESTED : 0), 2);
    parts.push(hdr, payload, Buffer.alloc(align4(len) - len));
  }
  return Buffer.concat(parts);
}

/**
 * Decode a run of attributes into type -> payload (the last one wins for a
 * repeated type). A truncated or malformed attribute ends the run rather
 * than throwing: the kernel never sends one, and a partial decode of what we
 * did get is more useful to a caller than an exception.
 */
export function decodeAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > buf.length) break;
    out.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export const attr = {
  u8: (type: number, v: number): Attr => ({ type, value: Buffer.from([v & 0xff]) }),
  u16: (type: number, v: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(v, 0);
    return { type, value: b };
  },
  be16: (type: number, v: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(v, 0);
    return { type, value: b };
  },
  u32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return { type, value: b };
  },
  s32: (type: number, v: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v, 0);
    return { type, value: b };
  },
  /** NUL-terminated string. */
  str: (type: number, v: string): Attr => ({ type, value: Buffer.concat([Buffer.from(v, 'utf8'), Buffer.alloc(1)]) }),
  bytes: (type: number, v: Buffer): Attr => ({ type, value: v }),
  nest: (type: number, children: Attr[]): Attr => ({ type, value: children }),
};

export const read = {
  u8: (b: Buffer | undefined): number | undefined => (b && b.length >= 1 ? b.readUInt8(0) : undefined),
  u16: (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16LE(0) : undefined),
  be16: (b: Buffer | undefined): number | undefined => (b && b.length >= 2 ? b.readUInt16BE(0) : undefined),
  u32: (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined),
  s32: (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readInt32LE(0) : undefined),
  str: (b: Buffer | undefined): string | undefined => {
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
  },
};

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** True for "aa:bb:cc:dd:ee:ff" (either case). */
export function isMac(s: unknown): s is string {
  return typeof s === 'string' && MAC_RE.test(s.toLowerCase());
}

/** Canonical lower-case MAC; throws for anything else. */
export function normalizeMac(s: string): string {
  const m = s.toLowerCase();
  if (!MAC_RE.test(m)) throw new TypeError(`invalid MAC address ${JSON.stringify(s)}`);
  return m;
}

export function macToBuffer(mac: string): Buffer {
  return Buffer.from(normalizeMac(mac).split(':').map((h) => parseInt(h, 16)));
}

export function bufferToMac(b: Buffer): string {
  const h = b.toString('hex');
  let out = h.slice(0, 2);
  for (let i = 2; i < h.length; i += 2) out += ':' + h.slice(i, i + 2);
  return out;
}

/** Family (4 or 6) of an IP literal; throws for anything else. */
export function ipFamily(ip: string): 4 | 6 {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  throw new TypeError(`invalid IP address ${JSON.stringify(ip)}`);
}

export function ipToBuffer(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (isIPv6(ip)) return ipv6ToBuffer(ip);
  throw new TypeError(`invalid IP address ${JSON.stringify(ip)}`);
}

function ipv6ToBuffer(ip: string): Buffer {
  // Expand an embedded dotted quad first, then "::".
  let s = ip;
  const dq = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dq) {
    const b = ipToBuffer(dq[1]!);
    s = s.slice(0, -dq[1]!.length) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function bufferToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
    // Compress the longest run of zero groups (RFC 5952).
    let best = -1;
    let bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (groups[i] !== '0') {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && groups[j] === '0') j++;
      if (j - i > bestLen && j - i > 1) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    if (best < 0) return groups.join(':');
    return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
  }
  throw new TypeError(`address of ${b.length} bytes`);
}

/** Parse "10.0.0.1/24" into address and prefix length. */
export function parseCidr(cidr: string): { ip: string; prefixLength: number; family: 4 | 6 } {
  const slash = cidr.indexOf('/');
  if (slash < 0) throw new TypeError(`invalid CIDR ${JSON.stringify(cidr)} (no prefix length)`);
  const ip = cidr.slice(0, slash);
  const family = ipFamily(ip);
  const plenStr = cidr.slice(slash + 1);
  const prefixLength = Number(plenStr);
  if (!/^\d{1,3}$/.test(plenStr) || prefixLength > (family === 4 ? 32 : 128)) {
    throw new TypeError(`invalid CIDR ${JSON.stringify(cidr)} (prefix length)`);
  }
  return { ip, prefixLength, family };
}
