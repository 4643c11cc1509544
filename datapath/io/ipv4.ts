// Small pure helpers for IPv4 addresses and the Internet checksum.

/** "198.18.0.1" -> host-order u32. Throws naming the input when it is not dotted-quad IPv4. */
export function ipToU32(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new Error(`ip: not an IPv4 address: ${JSON.stringify(ip)}`);
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`ip: not an IPv4 address: ${JSON.stringify(ip)}`);
    v = v * 256 + Number(p);
  }
  return v >>> 0;
}

export function u32ToIp(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** RFC 1071 one's-complement sum of buf[off, off+len), folded and inverted, as a big-endian u16. */
export function internetChecksum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The unfolded pseudo-header sum for TCP/UDP over IPv4 (add to the segment's sum). */
export function pseudoHeaderSum(ip: Uint8Array, ipOff: number, protocol: number, l4len: number): number {
  let sum = 0;
  for (let i = 12; i < 20; i += 2) sum += (ip[ipOff + i]! << 8) | ip[ipOff + i + 1]!;
  return sum + protocol + l4len;
}
