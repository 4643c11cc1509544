// Names and hardware addresses meshnet derives for a pod attachment, plus the
// validity rules for interface names and IPv4 text. Pure.

import { createHash } from 'node:crypto';

/** Linux interface name rules (the CNI spec repeats them for CNI_IFNAME). */
export function interfaceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > 15) return 'is longer than 15 bytes';
  if (name === '.' || name === '..') return 'is "." or ".."';
  if (/[/:\s]/.test(name)) return 'contains "/", ":" or whitespace';
  return undefined;
}

/** Host-side veth of an attachment: "mn" + 12 hex digits of sha256(containerId/ifname). */
export function hostVethName(containerId: string, ifname: string): string {
  return `mn${createHash('sha256').update(`${containerId}/${ifname}`).digest('hex').slice(0, 12)}`;
}

/** Host-side veths meshnet created look like this (GC finds orphans by it). */
export const HOST_VETH_RE = /^mn[0-9a-f]{12}$/;

/**
 * Hardware addresses derived from the pod's IP: locally administered, unicast,
 * unique wherever the IP is (IPAM keeps IPs unique across the mesh), and the
 * same for the same IP, so a neighbour's stale ARP entry is never wrong.
 */
export function podMac(ip: string): string {
  return macFrom(0x0a, ip);
}
export function hostVethMac(ip: string): string {
  return macFrom(0x0e, ip);
}
/** The bridge gets a fixed MAC, else Linux gives it its lowest port's MAC, which changes as pods come and go. */
export function bridgeMac(gateway: string): string {
  return macFrom(0x0a, gateway);
}

function macFrom(first: number, ip: string): string {
  const b = parseIPv4(ip);
  if (!b) throw new Error(`not an IPv4 address: ${ip}`);
  return [first, 0x58, ...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Parse dotted-quad IPv4 text strictly (no leading zeros, no shorthand). */
export function parseIPv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out: number[] = [];
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out.push(n);
  }
  return out;
}

/** "a.b.c.d/len" or "a.b.c.d" (prefix undefined). */
export function parseIPv4Cidr(text: string): { ip: string; prefixLength?: number } | undefined {
  const [ip, len, extra] = text.split('/');
  if (extra !== undefined || ip === undefined || !parseIPv4(ip)) return undefined;
  if (len === undefined) return { ip };
  if (!/^(0|[1-9][0-9]?)$/.test(len) || Number(len) > 32) return undefined;
  return { ip, prefixLength: Number(len) };
}
