import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cidrContains, formatAddress, formatCidr, parseAddress, parseCidr, reservedAddresses } from '../../../router/ipam/addr.js';
import { parseInitMode, parseRange, quorumOf } from '../../../router/ipam/init.js';
import { containerIdError, interfaceNameError } from '../../../router/ipam/ids.js';

describe('addresses and CIDRs', () => {
  it('round-trips every IPv4 address', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => parseAddress(formatAddress(n)) === n));
  });

  it('parses a CIDR to its block', () => {
    expect(parseCidr('10.32.0.0/12')).toEqual({ start: 10 * 2 ** 24 + 32 * 2 ** 16, end: 10 * 2 ** 24 + 48 * 2 ** 16, prefixLength: 12 });
    expect(formatCidr(parseCidr('0.0.0.0/0'))).toBe('0.0.0.0/0');
    expect(parseCidr('255.255.255.255/32').end).toBe(2 ** 32);
  });

  it('refuses bad input with an error naming the value', () => {
    expect(() => parseAddress('10.0.0')).toThrow(/invalid address "10\.0\.0"/);
    expect(() => parseAddress('10.0.0.256')).toThrow(/octet "256"/);
    expect(() => parseAddress('10.0.0.01')).toThrow(/leading zeros/);
    expect(() => parseCidr('10.32.0.0')).toThrow(/invalid CIDR "10\.32\.0\.0": expected address\/prefix-length/);
    expect(() => parseCidr('10.32.0.0/33')).toThrow(/prefix length "33"/);
    expect(() => parseCidr('10.32.0.5/12', '--ipalloc-range')).toThrow(/invalid --ipalloc-range "10\.32\.0\.5\/12": host bits are set; the network address is 10\.32\.0\.0\/12/);
  });

  it('knows containment and reserved addresses', () => {
    expect(cidrContains(parseCidr('10.32.0.0/12'), parseCidr('10.40.0.0/16'))).toBe(true);
    expect(cidrContains(parseCidr('10.32.0.0/12'), parseCidr('10.48.0.0/16'))).toBe(false);
    expect(reservedAddresses(parseCidr('10.0.0.0/30')).map(formatAddress)).toEqual(['10.0.0.0', '10.0.0.3']);
    expect(reservedAddresses(parseCidr('10.0.0.0/31'))).toEqual([]);
  });
});

describe('launch options', () => {
  it('parses --ipalloc-init', () => {
    expect(parseInitMode(undefined, 2)).toEqual({ kind: 'consensus', n: 3 });
    expect(parseInitMode('consensus', 0)).toEqual({ kind: 'consensus', n: 1 });
    expect(parseInitMode('consensus=5', 0)).toEqual({ kind: 'consensus', n: 5 });
    expect(parseInitMode('seed=a, b ,c', 0)).toEqual({ kind: 'seed', peers: ['a', 'b', 'c'] });
    expect(parseInitMode('observer', 3)).toEqual({ kind: 'observer' });
    expect(() => parseInitMode('consensus=0', 0)).toThrow(/N in consensus=N/);
    expect(() => parseInitMode('seed=a,,b', 0)).toThrow(/seed= needs a comma-separated list/);
    expect(() => parseInitMode('seed=a,a', 0)).toThrow(/listed twice/);
    expect(() => parseInitMode('paxos', 0)).toThrow(/invalid --ipalloc-init "paxos": expected consensus\[=N\], seed=PEER,\.\.\. or observer/);
  });

  it('parses --ipalloc-range with the default and refuses tiny ranges', () => {
    expect(formatCidr(parseRange(undefined))).toBe('10.32.0.0/12');
    expect(() => parseRange('10.0.0.0/31')).toThrow(/no room for containers/);
  });

  it('computes a majority quorum', () => {
    expect([1, 2, 3, 4, 5].map(quorumOf)).toEqual([1, 2, 2, 3, 3]);
  });

  it('validates container IDs and interface names as CNI does', () => {
    expect(containerIdError('abc-123_x.y')).toBeUndefined();
    expect(containerIdError('')).toMatch(/empty/);
    expect(containerIdError('-abc')).toMatch(/must start with a letter or digit/);
    expect(containerIdError('a/b')).toMatch(/only letters, digits/);
    expect(containerIdError('x'.repeat(2000))).toMatch(/longer than/);
    expect(interfaceNameError('eth0')).toBeUndefined();
    expect(interfaceNameError('a'.repeat(16))).toMatch(/longer than 15/);
    expect(interfaceNameError('..')).toMatch(/not allowed/);
    expect(interfaceNameError('e th')).toMatch(/whitespace/);
  });
});
