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
