// IPv4 address arithmetic and CIDR parsing. Addresses are plain numbers
// (0 .. 2^32-1) so range arithmetic stays exact and cheap; a range's end is
// exclusive and may be 2^32.

export const ADDRESS_SPACE = 2 ** 32;

/** A CIDR block: `start` is the network address, `end` is exclusive. */
export interface Cidr {
  readonly start: number;
  readonly end: number;
  readonly prefixLength: number;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parse dotted-quad IPv4; throws naming the value when it is not one. */
export function parseAddress(text: string, what = 'address'): number {
  const m = DOTTED_QUAD.exec(text);
  if (!m) throw new Error(`invalid ${what} "${text}": expected an IPv4 address like 10.32.0.1`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    const octet = Number(part);
    // Leading zeros are refused: some tools read them as octal.
    if (octet > 255 || (part.length > 1 && part.startsWith('0'))) {
      throw new Error(`invalid ${what} "${text}": octet "${part}" is not 0-255 without leading zeros`);
    }
    n = n * 256 + octet;
  }
  return n;
}

export function formatAddress(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= ADDRESS_SPACE) throw new Error(`not an IPv4 address number: ${n}`);
  return `${Math.floor(n / 2 ** 24) % 256}.${Math.floor(n / 2 ** 16) % 256}.${Math.floor(n / 2 ** 8) % 256}.${n % 256}`;
}

/**
 * Parse "a.b.c.d/p". The address must be the network address of the block
 * (10.32.0.5/12 is refused): a typo there would silently change the range.
 */
export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`invalid ${what} "${text}": expected address/prefix-length like 10.32.0.0/12`);
  const addr = parseAddress(text.slice(0, slash), what);
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
    throw new Error(`invalid ${what} "${text}": prefix length "${prefixText}" is not 0-32`);
  }
  const prefixLength = Number(prefixText);
  const size = 2 ** (32 - prefixLength);
  if (addr % size !== 0) {
    throw new Error(
      `invalid ${what} "${text}": host bits are set; the network address is ${formatAddress(addr - (addr % size))}/${prefixLength}`,
    );
  }
  return { start: addr, end: addr + size, prefixLength };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.start)}/${c.prefixLength}`;
}

export function cidrSize(c: Cidr): number {
  return c.end - c.start;
}

/** True when `inner` lies entirely inside `outer`. */
export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return inner.start >= outer.start && inner.end <= outer.end;
}

export function addressInCidr(c: Cidr, addr: number): boolean {
  return addr >= c.start && addr < c.end;
}

/**
 * The addresses of a block that are never handed out: its network and
 * broadcast addresses (for blocks of 4 or more addresses, as in Linux).
 */
export function reservedAddresses(c: Cidr): number[] {
  return c.end - c.start >= 4 ? [c.start, c.end - 1] : [];
}
