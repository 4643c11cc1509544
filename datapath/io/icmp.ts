// ICMP "fragmentation needed" (type 3 code 4) for the sleeve's path MTU
// handling: when a pod sends an IPv4 packet with DF set that is too big for
// the path to the peer, the sleeve answers the pod with this frame (written
// back to the TAP) instead of dropping it silently. Pure function, no I/O.

import { internetChecksum } from './ipv4.js';

const ETH_LEN = 14;
const IP_LEN = 20;
const ICMP_HDR_LEN = 8;
/** RFC 792: quote the IP header and the first 64 bits of the datagram. */
const QUOTED_DATA = 8;
/** RFC 791: every IPv4 link carries at least 68 bytes. */
export const MIN_IPV4_MTU = 68;
/** ICMP error types: never answer one with another (RFC 1122 §3.2.2). */
const ICMP_ERROR_TYPES = new Set([3, 4, 5, 11, 12]);

/**
 * Builds the Ethernet frame that tells the sender of `frame` (an Ethernet
 * frame with an IPv4 packet, at buf[off, off+len)) to use at most `mtu`
 * bytes. Returns null when no answer is due: not IPv4, DF clear, a
 * non-first fragment, a malformed header, an ICMP error, or a broadcast,
 * multicast or unspecified sender/destination.
 */
export function buildFragNeeded(buf: Uint8Array, off: number, len: number, mtu: number): Buffer | null {
  if (!Number.isInteger(mtu) || mtu < MIN_IPV4_MTU || mtu > 0xffff) {
    throw new RangeError(`mtu: must be an integer ${MIN_IPV4_MTU}-65535, got ${mtu}`);
  }
  if (off < 0 || len < 0 || off + len > buf.length) throw new RangeError(`len: frame [${off}, ${off + len}) outside a ${buf.length}-byte buffer`);
  if (len < ETH_LEN + IP_LEN) return null;
  if (buf[off + 12] !== 0x08 || buf[off + 13] !== 0x00) return null;
  if ((buf[off]! & 1) || (buf[off + 6]! & 1)) return null; // group MAC as destination or source
  const ip = off + ETH_LEN;
  const vihl = buf[ip]!;
  const ihl = (vihl & 0x0f) * 4;
  if (vihl >> 4 !== 4 || ihl < IP_LEN || ETH_LEN + ihl > len) return null;
  const totLen = (buf[ip + 2]! << 8) | buf[ip + 3]!;
  if (totLen < ihl) return null;
  const flagsFrag = (buf[ip + 6]! << 8) | buf[ip + 7]!;
  if (!(flagsFrag & 0x4000) || (flagsFrag & 0x1fff)) return null; // DF clear, or not the first fragment
  const src = buf[ip + 12]!;
  const dst = buf[ip + 16]!;
  if (src === 0 || src >= 224 || src === 127 || dst >= 224) return null;
  const proto = buf[ip + 9]!;
  // Bytes of the packet actually present after its header (the frame may be shorter than tot_len claims).
  const present = Math.min(totLen, len - ETH_LEN) - ihl;
  if (proto === 1) {
    if (present < 1) return null;
    if (ICMP_ERROR_TYPES.has(buf[ip + ihl]!)) return null;
  }
  const quoted = ihl + Math.min(QUOTED_DATA, Math.max(0, present));

  const out = Buffer.alloc(ETH_LEN + IP_LEN + ICMP_HDR_LEN + quoted);
  // Ethernet: back to the sender, from the MAC it was sending to.
  out.set(buf.subarray(off + 6, off + 12), 0);
  out.set(buf.subarray(off, off + 6), 6);
  out[12] = 0x08;
  out[13] = 0x00;
  // IPv4 header, from the address the packet was for (the sender's stack
  // matches the quoted header against its socket, not the source address).
  const o = ETH_LEN;
  out[o] = 0x45;
  out[o + 1] = 0xc0; // precedence: internetwork control, as Linux sends ICMP errors
  out.writeUInt16BE(IP_LEN + ICMP_HDR_LEN + quoted, o + 2);
  out[o + 8] = 64; // TTL
  out[o + 9] = 1; // ICMP
  out.set(buf.subarray(ip + 16, ip + 20), o + 12);
  out.set(buf.subarray(ip + 12, ip + 16), o + 16);
  out.writeUInt16BE(internetChecksum(out, o, IP_LEN), o + 10);
  // ICMP: type 3 code 4, next-hop MTU, then the quoted packet.
  const c = o + IP_LEN;
  out[c] = 3;
  out[c + 1] = 4;
  out.writeUInt16BE(mtu, c + 6);
  out.set(buf.subarray(ip, ip + quoted), c + ICMP_HDR_LEN);
  out.writeUInt16BE(internetChecksum(out, c, ICMP_HDR_LEN + quoted), c + 2);
  return out;
}

/** The IPv4 total length of the packet in an Ethernet frame, or -1 when it is not IPv4 (for MTU checks). */
export function ipv4PacketLength(buf: Uint8Array, off: number, len: number): number {
  if (len < ETH_LEN + IP_LEN || buf[off + 12] !== 0x08 || buf[off + 13] !== 0x00) return -1;
  return (buf[off + ETH_LEN + 2]! << 8) | buf[off + ETH_LEN + 3]!;
}
