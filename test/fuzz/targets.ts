// Every decoder that reads bytes or text from outside the process, as a fuzz
// target. A decoder may accept an input or reject it (null/undefined, or its
// own documented error class); any other exception would escape the
// connection or request that fed it, and is a bug.
import fc from 'fast-check';
import { decode, encode } from '@msgpack/msgpack';
import { DatagramOpener, DatagramSealer, FrameOpener, FrameSealer, initCrypto } from '../../crypto/index.js';
import { decodeHeader, decodeHello, decodeMessage, encodeHeader, encodeHello, encodeMessage, HANDSHAKE_FRAME_LIMIT, ProtocolError, Tag } from '../../mesh/wire/protocol.js';
import { decodeIdentity, encodeIdentity } from '../../mesh/wire/identity.js';
import { decodeRefusal, encodeRefusal } from '../../mesh/handshake.js';
import { encodeFrame, FrameDecoder, FrameTooLarge } from '../../mesh/wire/framing.js';
import { decodeTopologyMessage, encodeTopologyMessage, packRecords } from '../../mesh/topology-codec.js';
import { parsePeerName } from '../../mesh/peer-name.js';
import { DecodeError, decodeMessage as decodeIpam, encodeMessage as encodeIpam, type IpamMessage } from '../../router/ipam/codec.js';
import { parseCidr } from '../../router/ipam/addr.js';
import { decodeEntries as decodeEndpoints, encodeEntries as encodeEndpoints, EndpointsDecodeError } from '../../datapath/fastdp/endpoints.js';
import { parseRange } from '../../datapath/fastdp/cidr.js';
import { decodeLinks } from '../../datapath/sleeve/links.js';
import { decodeControl, encodeDatapath, encodeSleeveHello } from '../../datapath/control.js';
import { BookDecodeError, decodeEntries as decodeBook, encodeEntries as encodeBook } from '../../router/rotation/book.js';
import { emptyHeader, readHeader, TYPE_BCAST, TYPE_FRAME, TYPE_HEARTBEAT, FLAG_ROUTED, writeHeader, MAX_HEADER } from '../../datapath/sleeve/wire.js';
import { buildHeartbeat, parseHeartbeat } from '../../datapath/io/heartbeat.js';
import { decodeHeartbeat, decodeHeartbeatAck, encodeHeartbeat, encodeHeartbeatAck } from '../../datapath/fastdp/heartbeat.js';
import { decodeConfig, parseNetConf } from '../../router/cni/config.js';
import { decodeRequest, encodeRequest } from '../../router/cni/protocol.js';
import { parseCniArgs, parseCniEnv } from '../../router/cni/env.js';
import { CniError } from '../../router/cni/errors.js';
import { KubeDecodeError, parseWatchLine } from '../../router/kube/nodes.js';
import { bytesAround, textAround, valueAround } from './mutate.js';

/** Byte mutations of msgpack samples, and field mutations of their decoded values. */
function msgpackAround(valids: readonly Uint8Array[], maxJunk = 200): fc.Arbitrary<Uint8Array> {
  const fields = fc.constantFrom(...valids).chain((v) => valueAround(decode(v)).map((x) => encode(x)));
  return fc.oneof(bytesAround(valids, maxJunk), fields);
}

/** The same for JSON text. */
function jsonAround(valids: readonly string[], maxJunk = 200): fc.Arbitrary<string> {
  const fields = fc.constantFrom(...valids).chain((v) => valueAround(JSON.parse(v)).map((x) => JSON.stringify(x) ?? ''));
  return fc.oneof(textAround(valids, maxJunk), fields);
}

export type Outcome = 'accepted' | 'rejected' | 'escaped';

export interface Result {
  outcome: Outcome;
  /** The escaped exception, for the report. */
  error?: unknown;
}

export interface Target<T = unknown> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  run(input: T): Result;
  /** Never rejects by design (every input has a meaning), so "rejected" is not expected. */
  total?: boolean;
}

type ErrorClass = abstract new (...args: never[]) => Error;

/**
 * Calls `decode`: a value is accepted, null/undefined (or `isRefusal`) and
 * the decoder's own error classes are rejected, anything else escaped.
 */
export function classify(decode: () => unknown, errors: readonly ErrorClass[], isRefusal: (v: unknown) => boolean = () => false): Result {
  try {
    const v = decode();
    return v === null || v === undefined || isRefusal(v) ? { outcome: 'rejected' } : { outcome: 'accepted' };
  } catch (error) {
    return errors.some((E) => error instanceof E) ? { outcome: 'rejected' } : { outcome: 'escaped', error };
  }
}

function target<T>(name: string, arbitrary: fc.Arbitrary<T>, run: (input: T) => Result, total = false): Target {
  return { name, arbitrary, run: run as (input: unknown) => Result, total };
}

const P1 = parsePeerName('0a:00:00:00:00:01');
const P2 = parsePeerName('0a:00:00:00:00:02');
const N1 = '0a:00:00:00:00:01';
const N2 = '0a:00:00:00:00:02';

function meshTargets(): Target[] {
  const hellos = [
    encodeHello({ type: 'hello', encrypted: false }),
    encodeHello({ type: 'hello', encrypted: true, publicKey: new Uint8Array(32).fill(7), passwordIds: [new Uint8Array(8).fill(1), new Uint8Array(8).fill(2)] }),
  ];
  const messages = [
    encodeMessage({ tag: Tag.IDENTITY, body: new Uint8Array([1, 2, 3]) }),
    encodeMessage({ tag: Tag.CLOSE, reason: 'bye' }),
    encodeMessage({ tag: Tag.HEARTBEAT }),
    encodeMessage({ tag: Tag.ACCEPT }),
    encodeMessage({ tag: Tag.OVERLAY, payload: new Uint8Array(20) }),
    encodeMessage({ tag: Tag.GOSSIP, channel: 'topology', payload: new Uint8Array([9, 9]) }),
    encodeMessage({ tag: Tag.BROADCAST, channel: 'ipam', origin: P1, payload: new Uint8Array([1]) }),
    encodeMessage({ tag: Tag.UNICAST, channel: 'ipam', src: P1, dst: P2, payload: new Uint8Array([1, 2]) }),
  ];
  const identity = encodeIdentity({ name: P1, nickname: 'host-1', uid: '1234567890123', incarnation: 3, connId: '987654321', listenPort: 6783, features: { fastdp: '1', sleeve: 'yes' } });
  const conns = packRecords([
    { peer: P2, address: '198.18.0.2:6783', outbound: true, established: true },
    { peer: parsePeerName('0a:00:00:00:00:03'), address: '[fd00::3]:6783', outbound: false, established: false },
  ]);
  const topology = [
    encodeTopologyMessage({
      type: 'update',
      entries: [
        { kind: 'full', id: P1, uid: 77n, incarnation: 1, version: 4, nickname: 'one', conns },
        { kind: 'delta', id: P2, uid: 78n, incarnation: 2, baseVersion: 3, version: 5, upserts: conns, removals: [P1] },
      ],
    }),
    encodeTopologyMessage({ type: 'digest', items: [{ id: P1, uid: 77n, incarnation: 1, version: 4 }] }),
    encodeTopologyMessage({ type: 'pull', have: [{ id: P2, uid: 78n, incarnation: 0, version: 0 }] }),
    encodeTopologyMessage({ type: 'summary', reply: true, topology: { count: 3, hash: [1, 2] }, channels: [{ name: 'ipam', hash: 5 }, { name: 'passwords', hash: 6 }] }),
  ];
  const frames = Buffer.concat([encodeFrame(messages[5]!), encodeFrame(identity), encodeFrame(new Uint8Array(0))]);
  return [
    target('mesh.header', bytesAround([encodeHeader(), encodeHeader(1, 3)], 16), (b) => classify(() => decodeHeader(b), [ProtocolError])),
    target('mesh.hello', bytesAround(hellos, 128), (b) => classify(() => decodeHello(b), [ProtocolError])),
    target('mesh.message', bytesAround(messages, 96), (b) => classify(() => decodeMessage(Buffer.from(b)), [ProtocolError])),
    target('mesh.identity', msgpackAround([identity]), (b) => classify(() => decodeIdentity(b), [ProtocolError])),
    // Any text is a refusal: an unknown kind reads as 'refused', so this one only must not throw.
    target('mesh.refusal', textAround([encodeRefusal('password', 'no shared password'), encodeRefusal('self', 'that is me')], 80), (s) => classify(() => decodeRefusal(s), []), true),
    target(
      'mesh.framing',
      // The stream arrives in arbitrary pieces: the decoder must not care where they are cut.
      fc.tuple(bytesAround([frames], 300), fc.array(fc.nat(), { maxLength: 6 })),
      ([b, cuts]) =>
        classify(() => {
          const d = new FrameDecoder(HANDSHAKE_FRAME_LIMIT);
          const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
          let prev = 0;
          let n = 0;
          for (const c of [...at, b.length]) {
            n += d.push(Buffer.from(b.subarray(prev, c))).length;
            prev = c;
          }
          return n;
        }, [FrameTooLarge]),
    ),
    target('mesh.topology', bytesAround(topology, 200), (b) => classify(() => decodeTopologyMessage(Buffer.from(b)), [ProtocolError])),
  ];
}

function routerTargets(): Target[] {
  const range = parseCidr('198.19.0.0/26');
  const ballot = { round: 3, proposer: 'aa' };
  const ipam: IpamMessage[] = [
    { type: 'space-request', ring: 'r1', reqId: 7, subnet: { start: range.start, end: range.end } },
    { type: 'space-denied', reqId: 7, reason: 'no free space' },
    { type: 'prepare', inst: 'claim', ballot },
    { type: 'promise', inst: 'rm/r1/bb/-1', ballot, accepted: null, target: null, ringPeers: ['aa', 'cc'] },
    { type: 'nack', inst: 'claim', ballot, promised: { round: 4, proposer: 'bb' }, reason: 'outbid' },
    { type: 'accept', inst: 'claim', ballot, value: { kind: 'genesis', genesis: { id: 'r1', createdAt: 5, claimants: ['aa', 'bb'], mode: 'consensus' } } },
    { type: 'accepted', inst: 'claim', ballot },
    { type: 'state', range, records: [], geneses: [], removals: [], resolutions: [] },
  ];
  const book = encodeBook([
    { peer: N1, version: 2, ids: ['0123456789abcdef', 'fedcba9876543210'] },
    { peer: N2, version: 0, ids: [] },
  ]);
  const config = JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', runDir: '/run/meshnet', bridge: 'br-pods', mtu: 1376, hairpinMode: false, dns: { nameservers: ['198.19.0.1'], search: ['svc'] } });
  // CHECK and DEL carry the previous result: its parser is reached only with one.
  const prevResult = JSON.stringify({
    cniVersion: '1.1.0',
    name: 'meshnet',
    type: 'meshnet',
    prevResult: {
      interfaces: [{ name: 'eth0', mac: '02:00:00:00:01:01', mtu: 1376, sandbox: '/var/run/netns/x' }],
      ips: [{ address: '198.19.0.5/16', gateway: '198.19.0.1', interface: 0 }],
      routes: [{ dst: '0.0.0.0/0', gw: '198.19.0.1', mtu: 1376 }],
      dns: { nameservers: ['198.19.0.1'], options: ['ndots:5'] },
    },
  });
  const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: 'IP=198.19.0.9;K8S_POD_NAME=web' };
  const node = (type: string) => JSON.stringify({ type, object: { metadata: { name: 'n1', resourceVersion: '42', creationTimestamp: '2026-01-01T00:00:00Z' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } } });
  return [
    target('ipam.message', msgpackAround(ipam.map((m) => encodeIpam(m))), (b) => classify(() => decodeIpam(b, range), [DecodeError])),
    target('rotation.book', jsonAround([Buffer.from(book).toString('utf8')]).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))), (b) => classify(() => decodeBook(b), [BookDecodeError])),
    target('cni.config', jsonAround([config, JSON.stringify({ cniVersion: '0.4.0', name: 'm', type: 'meshnet' }), prevResult]), (s) =>
      classify(() => parseNetConf(decodeConfig(s)), [CniError]),
    ),
    target('cni.request', jsonAround([encodeRequest({ env, config })], 300), (s) => classify(() => decodeRequest(s), [CniError])),
    target(
      'cni.env',
      // Each variable on its own: mutations of a valid value, or arbitrary text.
      fc.oneof(
        fc.record(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, fc.option(textAround([v], 40), { nil: undefined })]))),
        // One variable off at a time, so the later checks are reached too.
        fc.tuple(fc.constantFrom(...Object.keys(env)), fc.option(textAround(Object.values(env), 40), { nil: undefined })).map(([k, v]) => ({ ...env, [k]: v })),
      ),
      (e) => classify(() => parseCniEnv(e), [CniError]),
    ),
    target('cni.args', textAround([env.CNI_ARGS, 'A=1;;B=2'], 60), (s) => classify(() => parseCniArgs(s), [CniError])),
    target('kube.watch', jsonAround([node('ADDED'), node('DELETED'), '{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"77"}}}', '{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}']), (s) =>
      classify(() => parseWatchLine(s), [KubeDecodeError]),
    ),
  ];
}

function datapathTargets(): Target[] {
  const range = parseRange('198.19.0.0/16');
  const endpoints = encodeEndpoints([
    { peer: N1, version: 4, vtep: '198.18.0.1', vni: 7000, heartbeatMac: '02:00:00:00:00:01', pods: [{ mac: '02:00:00:00:01:01', ip: '198.19.1.1' }] },
    { peer: N2, version: 1, vtep: '198.18.0.2', vni: 7000, pods: [], left: true },
  ]);
  // The wire shape of datapath/sleeve/links.ts (its encoder is private to the gossiper).
  const links = encode({ v: 1, peers: [{ n: N1, ver: 3, l: [N2], f: [N2] }, { n: N2, ver: 1, l: [] }] });
  const control = [encodeSleeveHello(5, 6783), encodeDatapath(true), encodeHeartbeatAck('1234567890', 1400)];
  const sleeve = [TYPE_FRAME, TYPE_HEARTBEAT, TYPE_BCAST].flatMap((type) =>
    [0, FLAG_ROUTED]
      .filter((f) => !(type === TYPE_BCAST && f))
      .map((flags) => {
        const b = new Uint8Array(MAX_HEADER + 8);
        const n = writeHeader(b, 0, type, flags, 16, 9, 0x0a0000000001, 0x0a0000000002, 0x0a0000000003);
        return b.subarray(0, n + 8);
      }),
  );
  const ioHeartbeat = buildHeartbeat({ src: '02:00:00:00:00:01', dst: '02:00:00:00:00:02', connUid: '18446744073709551615', seq: 9, size: 64 });
  const fastHeartbeat = encodeHeartbeat({ dst: '02:00:00:00:00:02', src: '02:00:00:00:00:01', connUid: '42', length: 60 });
  return [
    target('fastdp.endpoints', msgpackAround([endpoints]), (b) => classify(() => decodeEndpoints(b, range), [EndpointsDecodeError])),
    target('sleeve.links', msgpackAround([links]), (b) => classify(() => decodeLinks(b), [])),
    target('datapath.control', bytesAround(control, 16), (b) => classify(() => decodeControl(b), [])),
    target(
      'sleeve.header',
      // The datagram sits at an offset in a larger receive buffer, as in the real receive path.
      fc.tuple(bytesAround(sleeve, 40), fc.nat(8)),
      ([b, pad]) => {
        const buf = new Uint8Array(pad + b.length);
        buf.set(b, pad);
        // null means usable; a problem name is a rejection.
        return classify(() => readHeader(buf, pad, b.length, emptyHeader()) ?? 'usable', [], (r) => r !== 'usable');
      },
    ),
    target('io.heartbeat', fc.tuple(bytesAround([ioHeartbeat], 80), fc.nat(8)), ([b, pad]) => {
      const buf = new Uint8Array(pad + b.length);
      buf.set(b, pad);
      return classify(() => parseHeartbeat(buf, pad, b.length), []);
    }),
    target('fastdp.heartbeat', bytesAround([fastHeartbeat], 80), (b) => classify(() => decodeHeartbeat(b), [])),
    target('fastdp.heartbeat-ack', bytesAround([encodeHeartbeatAck('18446744073709551615', 65535)], 16), (b) => classify(() => decodeHeartbeatAck(b), [])),
  ];
}

async function cryptoTargets(): Promise<Target[]> {
  await initCrypto();
  const key = new Uint8Array(32).fill(11);
  const frame = new FrameSealer(key).seal(new Uint8Array(60).fill(3));
  const datagram = new DatagramSealer(key, 77).seal(new Uint8Array(80).fill(4));
  const out = new Uint8Array(400);
  return [
    // A fresh opener per input: the valid sample opens every time, so "accepted" stays reachable.
    target('crypto.frame', bytesAround([frame], 200), (b) => classify(() => new FrameOpener(key).open(b), [])),
    target('crypto.datagram', bytesAround([datagram], 200), (b) =>
      classify(() => new DatagramOpener(key).openInto(out, 0, b, 0, b.length), [], (r) => typeof r === 'string'),
    ),
  ];
}

/** All targets, in a stable order (the crypto backend is initialised first). */
export async function fuzzTargets(): Promise<Target[]> {
  return [...meshTargets(), ...routerTargets(), ...datapathTargets(), ...(await cryptoTargets())];
}
