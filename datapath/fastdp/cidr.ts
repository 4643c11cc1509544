// CIDR membership for IPv4 and IPv6 literals. Pure.

import { isIPv4, isIPv6 } from 'node:net';

function toBigInt(ip: string): { v: bigint; bits: number } | undefined {
  if (isIPv4(ip)) return { v: ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n), bits: 32 };
  // A zone ("fe80::%eth0", which isIPv6 accepts) names a link, not a place in a range; and its
  // empty last group would reach BigInt(NaN) below, a RangeError out of a gossip decoder.
  if (!isIPv6(ip) || ip.includes('%')) return undefined;
  let s = ip;
  const dq = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dq) {
    const n = toBigInt(dq[1]!)!.v;
    s = s.slice(0, -dq[1]!.length) + `${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return { v: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n), bits: 128 };
}

export interface Cidr {
  readonly text: string;
  contains(ip: string): boolean;
}

/** Parse "10.32.0.0/12"; throws a one-line error naming the problem. */
export function parseRange(text: string): Cidr {
  const slash = text.indexOf('/');
  const base = toBigInt(slash < 0 ? text : text.slice(0, slash));
  const plen = Number(text.slice(slash + 1));
  if (slash < 0 || !base || !/^\d{1,3}$/.test(text.slice(slash + 1)) || plen > base.bits) throw new TypeError(`invalid range ${JSON.stringify(text)}`);
  const shift = BigInt(base.bits - plen);
  const net = base.v >> shift;
  return {
    text,
    contains(ip: string): boolean {
      const x = toBigInt(ip);
      return x !== undefined && x.bits === base.bits && x.v >> shift === net;
    },
  };
}
