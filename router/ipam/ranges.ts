// Sets of addresses as sorted, disjoint, non-adjacent half-open ranges.
// Every function takes and returns normalized sets; none mutates its input.

export interface Range {
  readonly start: number;
  /** Exclusive. */
  readonly end: number;
}

export type RangeSet = readonly Range[];

export const EMPTY: RangeSet = Object.freeze([]) as RangeSet;

/** Sort, drop empty ranges, merge overlapping and adjacent ones. */
export function normalize(ranges: Iterable<Range>): Range[] {
  const sorted = [...ranges].filter((r) => r.end > r.start).sort((a, b) => a.start - b.start || a.end - b.end);
  const out: Range[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) {
      if (r.end > last.end) out[out.length - 1] = { start: last.start, end: r.end };
    } else {
      out.push({ start: r.start, end: r.end });
    }
  }
  return out;
}

/** True when the set is sorted, disjoint, non-adjacent and has no empty range. */
export function isNormalized(ranges: RangeSet): boolean {
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i]!;
    if (!(r.end > r.start)) return false;
    if (i > 0 && r.start <= ranges[i - 1]!.end) return false;
  }
  return true;
}

export function size(set: RangeSet): number {
  let n = 0;
  for (const r of set) n += r.end - r.start;
  return n;
}

export function union(a: RangeSet, b: RangeSet): Range[] {
  return normalize([...a, ...b]);
}

export function subtract(a: RangeSet, b: RangeSet): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const r of a) {
    let start = r.start;
    while (j < b.length && b[j]!.end <= start) j++;
    let k = j;
    while (k < b.length && b[k]!.start < r.end) {
      const cut = b[k]!;
      if (cut.start > start) out.push({ start, end: cut.start });
      start = Math.max(start, cut.end);
      if (start >= r.end) break;
      k++;
    }
    if (start < r.end) out.push({ start, end: r.end });
  }
  return out;
}

export function intersect(a: RangeSet, b: RangeSet): Range[] {
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const start = Math.max(x.start, y.start);
    const end = Math.min(x.end, y.end);
    if (start < end) out.push({ start, end });
    if (x.end < y.end) i++;
    else j++;
  }
  return out;
}

export function overlaps(a: RangeSet, b: RangeSet): boolean {
  return intersect(a, b).length > 0;
}

/** Binary search: is `addr` inside the set? */
export function contains(set: RangeSet, addr: number): boolean {
  let lo = 0;
  let hi = set.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = set[mid]!;
    if (addr < r.start) hi = mid - 1;
    else if (addr >= r.end) lo = mid + 1;
    else return true;
  }
  return false;
}

/** True when every address of `inner` is in `outer`. */
export function containsAll(outer: RangeSet, inner: RangeSet): boolean {
  return subtract(inner, outer).length === 0;
}

/** The set of single addresses, merged into runs. */
export function fromAddresses(addrs: Iterable<number>): Range[] {
  return normalize([...addrs].map((a) => ({ start: a, end: a + 1 })));
}

export function* addresses(set: RangeSet): Generator<number> {
  for (const r of set) for (let a = r.start; a < r.end; a++) yield a;
}

export function equal(a: RangeSet, b: RangeSet): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.start !== b[i]!.start || a[i]!.end !== b[i]!.end) return false;
  return true;
}

/** The largest range in the set (the first one on ties), or undefined. */
export function largest(set: RangeSet): Range | undefined {
  let best: Range | undefined;
  for (const r of set) if (!best || r.end - r.start > best.end - best.start) best = r;
  return best;
}

/** Flatten to [s0, e0, s1, e1, ...] for the wire and the state file. */
export function flatten(set: RangeSet): number[] {
  const out: number[] = [];
  for (const r of set) out.push(r.start, r.end);
  return out;
}

export function unflatten(flat: readonly number[]): Range[] {
  const out: Range[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ start: flat[i]!, end: flat[i + 1]! });
  return out;
}
