// Shared by the fuzz targets and the crypto fuzz tests: inputs that start from
// a valid encoding, so a fuzzer gets past the length and magic checks and into
// the decoder's deeper paths.
import fc from 'fast-check';

/** A copy of `valid` with some bytes changed, cut or appended; never equal to it. */
export const mutation = (valid: Uint8Array): fc.Arbitrary<Uint8Array> =>
  fc
    .record({
      flips: fc.array(fc.record({ at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }), { maxLength: 4 }),
      cut: fc.nat(valid.length),
      extra: fc.uint8Array({ maxLength: 8 }),
    })
    .map(({ flips, cut, extra }) => {
      const m = new Uint8Array(valid.length - cut + extra.length);
      m.set(valid.subarray(0, valid.length - cut));
      m.set(extra, valid.length - cut);
      for (const { at, xor } of flips) if (m.length > 0) m[at % m.length]! ^= xor;
      return m;
    })
    .filter((m) => Buffer.compare(Buffer.from(m), Buffer.from(valid)) !== 0);

/**
 * Random bytes, a valid sample as is, or a mutation of one. The valid share
 * keeps the "accepted" path exercised too (a decoder that rejects everything
 * passes a pure-junk fuzz).
 */
export function bytesAround(valids: readonly Uint8Array[], maxJunk = 256): fc.Arbitrary<Uint8Array> {
  const pick = fc.constantFrom(...valids);
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: maxJunk }) },
    { weight: 1, arbitrary: pick },
    { weight: 6, arbitrary: pick.chain((v) => mutation(v)) },
  );
}

/** The same for text inputs (JSON, KEY=VALUE lists): mutate the UTF-8 bytes, plus arbitrary strings. */
export function textAround(valids: readonly string[], maxJunk = 200): fc.Arbitrary<string> {
  const bytes = bytesAround(
    valids.map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
    maxJunk,
  ).map((b) => Buffer.from(b).toString('utf8'));
  return fc.oneof({ weight: 1, arbitrary: fc.string({ maxLength: maxJunk, unit: 'binary' }) }, { weight: 4, arbitrary: bytes });
}

/** Odd values a decoder may not expect where its valid sample has something else. */
const oddValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(-1, 0.5, -0, 2 ** 53, 1e300, '', 'x'.repeat(300), [], {}, null),
  // Strings that pass a first check (isIP, a name pattern) and trip a later one.
  fc.constantFrom('198.19.0.1', '::ffff:198.19.0.1', 'fe80::%eth0', 'fe80::1%eth0', '::', '0a:00:00:00:00:01', '02:00:00:00:00:01', 'ff:ff:ff:ff:ff:ff'),
  fc.uint8Array({ maxLength: 8 }),
);
const DELETE = Symbol('delete');

/** `v` (mutated in place) with the node at the end of a random walk replaced or deleted. */
function replaceAt(v: unknown, path: readonly number[], repl: unknown): unknown {
  if (path.length === 0 || typeof v !== 'object' || v === null) return repl;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 0) return repl;
  const k = keys[path[0]! % keys.length]!;
  const next = replaceAt(o[k], path.slice(1), repl);
  if (next === DELETE) delete o[k];
  else o[k] = next;
  return v;
}

/**
 * Structure-aware mutation: the decoded valid value with one field, at any
 * depth, replaced by an odd value or removed. Byte mutations of msgpack or
 * JSON mostly fail the parse; these reach each field's own checks.
 */
export function valueAround(valid: unknown): fc.Arbitrary<unknown> {
  return fc
    .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 6 }), fc.oneof({ weight: 4, arbitrary: oddValue }, { weight: 1, arbitrary: fc.constant(DELETE) }))
    .map(([path, repl]) => {
      const out = replaceAt(structuredClone(valid), path, repl);
      return out === DELETE ? undefined : out;
    });
}
