// Order-independent 32-bit fingerprints of gossip state, for anti-entropy:
// two peers compare fingerprints and move whole state only when they differ
// (in a quiet mesh they never do, so the periodic repair costs a few dozen
// bytes instead of the whole table). Not a MAC: they detect divergence
// between honest peers, over the already authenticated channel. Pure logic.

/** Murmur3's finaliser: spreads every input bit over the output. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of a string (FNV-1a, finalised). */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return fmix32(h);
}

/** Hash one item's fields in order (numbers are taken as 53-bit integers). */
export function hashFields(...fields: (number | string | bigint | boolean)[]): number {
  let h = 0x9747b28c;
  for (const f of fields) {
    if (typeof f === 'string') h = fmix32(h ^ hashString(f));
    else if (typeof f === 'bigint') h = fmix32(fmix32(h ^ Number(f & 0xffffffffn)) ^ Number((f >> 32n) & 0xffffffffn));
    else if (typeof f === 'boolean') h = fmix32(h ^ (f ? 0x5bd1e995 : 0x1b873593));
    else h = fmix32(fmix32(h ^ (f >>> 0)) ^ Math.floor(f / 2 ** 32));
  }
  return h;
}

/** Combine item hashes without regard to order: a sum and a xor of differently mixed copies, folded. */
export class SetHash {
  private sum = 0;
  private xor = 0;
  count = 0;
  add(itemHash: number): this {
    this.sum = (this.sum + itemHash) >>> 0;
    this.xor = (this.xor ^ fmix32(itemHash ^ 0x27d4eb2f)) >>> 0;
    this.count++;
    return this;
  }
  /** Two 32-bit words: with the count, a 64-bit fingerprint. */
  value(): [number, number] {
    return [fmix32(this.sum ^ this.count), this.xor];
  }
}
