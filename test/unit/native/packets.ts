// Builders of Ethernet/IPv4/TCP/UDP frames for the native I/O tests, and
// checkers written independently of the addon (checksums via ipv4.ts).

import { internetChecksum, pseudoHeaderSum } from '../../../datapath/io/ipv4.js';

export const VNET_HDR_LEN = 10;
export const NEEDS_CSUM = 1;
export const GSO_NONE = 0;
export const GSO_TCPV4 = 1;

export interface TcpSpec {
  srcMac?: number[];
  dstMac?: number[];
  src?: number[];
  dst?: number[];
  sport?: number;
  dport?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  id?: number;
  df?: boolean;
  options?: number[];
  payload: Uint8Array;
  window?: number;
}

export const ACK = 0x10;
export const PSH = 0x08;
export const FIN = 0x01;
export const CWR = 0x80;
export const SYN = 0x02;

/** An Ethernet+IPv4+TCP frame with correct IP and TCP checksums. */
export function tcpFrame(s: TcpSpec): Buffer {
  const opts = s.options ?? [];
  const thl = 20 + opts.length;
  const ipLen = 20 + thl + s.payload.length;
  const f = Buffer.alloc(14 + ipLen);
  Buffer.from(s.dstMac ?? [2, 0, 0, 0, 0, 2]).copy(f, 0);
  Buffer.from(s.srcMac ?? [2, 0, 0, 0, 0, 1]).copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  const ip = 14;
  f[ip] = 0x45;
  f.writeUInt16BE(ipLen, ip + 2);
  f.writeUInt16BE(s.id ?? 100, ip + 4);
  f.writeUInt16BE(s.df === false ? 0 : 0x4000, ip + 6);
  f[ip + 8] = 64;
  f[ip + 9] = 6;
  Buffer.from(s.src ?? [198, 19, 0, 1]).copy(f, ip + 12);
  Buffer.from(s.dst ?? [198, 19, 0, 2]).copy(f, ip + 16);
  f.writeUInt16BE(internetChecksum(f, ip, 20), ip + 10);
  const t = ip + 20;
  f.writeUInt16BE(s.sport ?? 40000, t);
  f.writeUInt16BE(s.dport ?? 5201, t + 2);
  f.writeUInt32BE((s.seq ?? 1000) >>> 0, t + 4);
  f.writeUInt32BE((s.ack ?? 5000) >>> 0, t + 8);
  f[t + 12] = (thl / 4) << 4;
  f[t + 13] = s.flags ?? ACK;
  f.writeUInt16BE(s.window ?? 502, t + 14);
  Buffer.from(opts).copy(f, t + 20);
  Buffer.from(s.payload).copy(f, t + thl);
  f.writeUInt16BE(internetChecksum(f, t, thl + s.payload.length, pseudoHeaderSum(f, ip, 6, thl + s.payload.length)), t + 16);
  return f;
}

/** A UDP frame with a given checksum field value. */
export function udpFrame(payload: Uint8Array, checksum = 0): Buffer {
  const ipLen = 20 + 8 + payload.length;
  const f = Buffer.alloc(14 + ipLen);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(ipLen, 16);
  f[14 + 8] = 64;
  f[14 + 9] = 17;
  Buffer.from([198, 19, 0, 1, 198, 19, 0, 2]).copy(f, 14 + 12);
  f.writeUInt16BE(internetChecksum(f, 14, 20), 14 + 10);
  f.writeUInt16BE(1234, 34);
  f.writeUInt16BE(5678, 36);
  f.writeUInt16BE(8 + payload.length, 38);
  f.writeUInt16BE(checksum, 40);
  Buffer.from(payload).copy(f, 42);
  return f;
}

/** virtio-net header (little-endian fields, as on x86) + frame. */
export function withVnet(frame: Uint8Array, h: { flags?: number; gsoType?: number; hdrLen?: number; gsoSize?: number; csumStart?: number; csumOffset?: number }): Buffer {
  const out = Buffer.alloc(VNET_HDR_LEN + frame.length);
  out[0] = h.flags ?? 0;
  out[1] = h.gsoType ?? GSO_NONE;
  out.writeUInt16LE(h.hdrLen ?? 0, 2);
  out.writeUInt16LE(h.gsoSize ?? 0, 4);
  out.writeUInt16LE(h.csumStart ?? 0, 6);
  out.writeUInt16LE(h.csumOffset ?? 0, 8);
  Buffer.from(frame).copy(out, VNET_HDR_LEN);
  return out;
}

/**
 * A TSO super-packet as the kernel hands it to a TAP: one big frame with
 * the TCP checksum field holding only the pseudo-header sum (no length),
 * NEEDS_CSUM and GSO_TCPV4.
 */
export function superPacket(s: TcpSpec, gsoSize: number): Buffer {
  const f = tcpFrame(s);
  const thl = 20 + (s.options?.length ?? 0);
  f.writeUInt16BE(~internetChecksum(Buffer.alloc(0), 0, 0, pseudoHeaderSum(f, 14, 6, 0)) & 0xffff, 34 + 16);
  return withVnet(f, { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 14 + 20 + thl, gsoSize, csumStart: 34, csumOffset: 16 });
}

/** Whether the IPv4 header checksum of a frame verifies. */
export function ipChecksumOk(f: Uint8Array): boolean {
  return internetChecksum(f, 14, (f[14]! & 0x0f) * 4) === 0;
}

/** Whether the TCP or UDP checksum of a frame (no options in IP) verifies. */
export function l4ChecksumOk(f: Buffer): boolean {
  const ihl = (f[14]! & 0x0f) * 4;
  const l4len = f.readUInt16BE(16) - ihl;
  return internetChecksum(f, 14 + ihl, l4len, pseudoHeaderSum(f, 14, f[14 + 9]!, l4len)) === 0;
}

export interface TcpView {
  id: number;
  totLen: number;
  seq: number;
  flags: number;
  payload: Buffer;
}

export function viewTcp(f: Buffer): TcpView {
  const thl = (f[34 + 12]! >> 4) * 4;
  const totLen = f.readUInt16BE(16);
  return { id: f.readUInt16BE(18), totLen, seq: f.readUInt32BE(34 + 4), flags: f[34 + 13]!, payload: f.subarray(34 + thl, 14 + totLen) };
}

export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7) & 0xff;
  return b;
}
