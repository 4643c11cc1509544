import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  decodeHeader,
  decodeHello,
  decodeMessage,
  encodeHeader,
  encodeHello,
  encodeMessage,
  negotiateVersion,
  ProtocolError,
  Tag,
  type Message,
} from '../../../mesh/wire/protocol.js';
import { decodeIdentity, encodeIdentity, connectionUid } from '../../../mesh/wire/identity.js';
import { decodeTopologyMessage } from '../../../mesh/topology-codec.js';
import { formatPeerName, parsePeerName } from '../../../mesh/peer-name.js';

/** A decoder may return or throw ProtocolError; anything else is a bug. */
function onlyProtocolErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
  }
}

describe('protocol header', () => {
  it('negotiates the highest common version', () => {
    expect(negotiateVersion({ min: 1, max: 3 }, { min: 2, max: 5 })).toBe(3);
    expect(negotiateVersion({ min: 1, max: 1 }, { min: 1, max: 1 })).toBe(1);
  });

  it('refuses disjoint ranges naming both', () => {
    expect(() => negotiateVersion({ min: 1, max: 1 }, { min: 2, max: 3 })).toThrow(/\[2,3\] is incompatible with ours \[1,1\]/);
  });

  it('refuses another protocol', () => {
    expect(() => decodeHeader(Buffer.from('GET / H'))).toThrow(/not a meshnet peer/);
    expect(decodeHeader(encodeHeader(1, 2))).toEqual({ min: 1, max: 2 });
  });
});

describe('hello', () => {
  it('round-trips both kinds and refusals', () => {
    const enc = { type: 'hello', encrypted: true, publicKey: Buffer.alloc(32, 9), passwordIds: [Buffer.alloc(8, 1), Buffer.alloc(8, 2)] } as const;
    expect(decodeHello(encodeHello(enc))).toEqual(enc);
    expect(decodeHello(encodeHello({ type: 'hello', encrypted: false }))).toEqual({ type: 'hello', encrypted: false });
    expect(decodeHello(encodeHello({ type: 'refuse', reason: 'no' }))).toEqual({ type: 'refuse', reason: 'no' });
  });
});

describe('messages', () => {
  const peer = parsePeerName('02:00:00:00:00:07');
  const cases: Message[] = [
    { tag: Tag.HEARTBEAT },
    { tag: Tag.CLOSE, reason: 'bye' },
    { tag: Tag.GOSSIP, channel: 'ipam', payload: Buffer.from([1, 2, 3]) },
    { tag: Tag.BROADCAST, channel: 'x', origin: peer, payload: Buffer.from('hi') },
    { tag: Tag.UNICAST, channel: 'y', src: peer, dst: peer + 1, payload: Buffer.alloc(0) },
    { tag: Tag.OVERLAY, payload: Buffer.from([9]) },
  ];
  it.each(cases)('round-trips tag $tag', (m) => {
    const back = decodeMessage(encodeMessage(m));
    expect(JSON.stringify(back)).toBe(JSON.stringify({ ...m, ...('payload' in m ? { payload: Buffer.from(m.payload) } : {}) }));
  });

  it('peer names survive the 48-bit number form', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 6, maxLength: 6 }), (b) => {
        const name = [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
        expect(formatPeerName(parsePeerName(name))).toBe(name);
      }),
    );
  });

  it('identity round-trips and the connection UID is symmetric', () => {
    const id = { name: peer, nickname: 'h1', uid: '123', incarnation: 4, connId: '99', listenPort: 6783, features: { overlays: 'fastdp,sleeve' } };
    expect(decodeIdentity(encodeIdentity(id))).toEqual(id);
    expect(connectionUid('5', '3')).toBe(connectionUid('3', '5'));
  });
});

describe('decoders under random and mutated input', () => {
  const valid = [
    encodeMessage({ tag: Tag.BROADCAST, channel: 'ipam', origin: 5, payload: Buffer.from('abc') }),
    encodeHello({ type: 'hello', encrypted: true, publicKey: Buffer.alloc(32), passwordIds: [Buffer.alloc(8)] }),
    encodeIdentity({ name: 5, nickname: 'n', uid: '1', incarnation: 1, connId: '2', listenPort: 1, features: {} }),
  ];
  const inputs = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.constantFrom(...valid), fc.nat(60), fc.integer({ min: 0, max: 255 })).map(([v, i, b]) => {
      const m = Buffer.from(v);
      if (m.length) m[i % m.length] = b;
      return m;
    }),
    fc.tuple(fc.constantFrom(...valid), fc.nat(60)).map(([v, n]) => Buffer.from(v).subarray(0, n)),
  );

  it('never throw anything but ProtocolError', () => {
    fc.assert(
      fc.property(inputs, (bytes) => {
        const b = Buffer.from(bytes);
        onlyProtocolErrors(() => decodeMessage(b));
        onlyProtocolErrors(() => decodeHello(b));
        onlyProtocolErrors(() => decodeIdentity(b));
        onlyProtocolErrors(() => decodeTopologyMessage(b));
        onlyProtocolErrors(() => decodeHeader(b.subarray(0, 7)));
      }),
      { numRuns: 2000 },
    );
  });
});
