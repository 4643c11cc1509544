// Every decoder fed random and mutated inputs: each one accepts or rejects
// (null/undefined or its own error class); no other exception escapes.
// The bench (bench/fuzz.ts) runs the same targets with a million cases each.
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { encode } from '@msgpack/msgpack';
import { decodeEntries } from '../../../datapath/fastdp/endpoints.js';
import { parseRange } from '../../../datapath/fastdp/cidr.js';
import { ProtocolError } from '../../../mesh/wire/protocol.js';
import { classify, fuzzTargets, type Outcome, type Target } from '../../fuzz/targets.js';

const CASES = 500;
let targets: Target[] = [];

beforeAll(async () => {
  targets = await fuzzTargets();
});

describe('decoder fuzzing', () => {
  it('counts only the decoder\'s own error class as a rejection', () => {
    expect(classify(() => ({ ok: 1 }), [ProtocolError]).outcome).toBe('accepted');
    expect(classify(() => null, [ProtocolError]).outcome).toBe('rejected');
    expect(classify(() => 'bad-length', [], (r) => r === 'bad-length').outcome).toBe('rejected');
    expect(classify(() => { throw new ProtocolError('x'); }, [ProtocolError]).outcome).toBe('rejected');
    const escaped = classify(() => new Uint8Array(2).subarray(0)[5]!.toFixed(), [ProtocolError]);
    expect(escaped.outcome).toBe('escaped');
    expect(escaped.error).toBeInstanceOf(TypeError);
    expect(classify(() => { throw new RangeError('y'); }, [ProtocolError]).outcome).toBe('escaped');
  });

  it('covers every decoder with inputs that reach both verdicts', () => {
    // Valid samples must be accepted and junk rejected, or the target tests nothing.
    for (const t of targets) {
      const seen = new Set<Outcome>();
      fc.assert(
        fc.property(t.arbitrary, (input) => {
          seen.add(t.run(input).outcome);
        }),
        { numRuns: CASES, seed: 1 },
      );
      expect([t.name, seen.has('accepted'), seen.has('rejected')]).toEqual([t.name, true, !t.total]);
    }
    expect(targets.length).toBeGreaterThanOrEqual(23);
  });

  it('never lets an exception escape a decoder', () => {
    for (const t of targets) {
      fc.assert(
        fc.property(t.arbitrary, (input) => {
          const r = t.run(input);
          if (r.outcome === 'escaped') throw new Error(`${t.name}: ${String(r.error)}`);
        }),
        { numRuns: CASES },
      );
    }
  });

  // Escapes the fuzzer found, kept as fixed inputs (each fixed in the decoder).
  const regressions: { target: string; input: unknown }[] = [
    // A pod IP with an IPv6 zone and an empty last group: BigInt(NaN) in the range check.
    { target: 'fastdp.endpoints', input: encode({ v: 1, peers: [{ n: '0a:00:00:00:00:01', ver: 1, vtep: '198.18.0.1', vni: 1, pods: [['02:00:00:00:01:01', 'fe80::%eth0']] }] }) },
    // The same, as bench/fuzz.ts found and shrank it (--only fastdp.endpoints --seed 1, before the fix).
    {
      target: 'fastdp.endpoints',
      input: new Uint8Array(
        Buffer.from(
          '82a17601a570656572739286a16eb130613a30303a30303a30303a30303a3031a376657204a476746570aa3139382e31382e302e31a3766e69cd1b58a26862b130323a30303a30303a30303a30303a3031a4706f64739192b130323a30303a30303a30303a30313a3031ab666538303a3a256574683086a16eb130613a30303a30303a30303a30303a3032a376657201a476746570aa3139382e31382e302e32a3766e69cd1b58a4706f647390a4676f6e65c3',
          'hex',
        ),
      ),
    },
  ];
  it.each(regressions)('does not escape on a fixed input for $target', ({ target, input }) => {
    const t = targets.find((x) => x.name === target)!;
    expect(t.run(input).outcome).not.toBe('escaped');
  });

  it('drops a zone-scoped pod address as out of range', () => {
    const msg = encode({ v: 1, peers: [{ n: '0a:00:00:00:00:01', ver: 1, vtep: '198.18.0.1', vni: 1, pods: [['02:00:00:00:01:01', 'fe80::%eth0']] }] });
    expect(decodeEntries(msg, parseRange('fd00::/8')).drops).toEqual([{ reason: 'ip-out-of-range', peer: '0a:00:00:00:00:01', value: 'fe80::%eth0' }]);
    expect(parseRange('fe80::/10').contains('fe80::1%eth0')).toBe(false);
  });
});
