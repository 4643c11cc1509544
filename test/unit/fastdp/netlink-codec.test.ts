// datapath/netlink's pure parts: attribute TLVs, address codecs, message
// encoders/decoders, the iproute2 batch lines and error mapping.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attr, bufferToIp, bufferToMac, decodeAttrs, encodeAttrs, ipToBuffer, macToBuffer, parseCidr } from '../../../datapath/netlink/attrs.js';
import { IFLA, IFLA_BRPORT, IFLA_INFO, IFLA_VXLAN, NLA_F_NESTED, NTF, NUD } from '../../../datapath/netlink/constants.js';
import { fromIprouteStderr, isErrno, NetlinkError } from '../../../datapath/netlink/errors.js';
import { bridgeLine, ipLine } from '../../../datapath/netlink/ip-batch.js';
import { bridgePortInfo, decodeLink, decodeNd, encodeFdb, encodeIfinfo, encodeNeighbour, linkInfo, vxlanData, vethData } from '../../../datapath/netlink/messages.js';

describe('attributes', () => {
  it('encode 4-byte aligned, mark nests, and decode back', () => {
    const buf = encodeAttrs([attr.str(3, 'eth0'), attr.nest(18, [attr.u8(1, 7)]), attr.u32(4, 1450)]);
    expect(buf.length % 4).toBe(0);
    const a = decodeAttrs(buf);
    expect(a.get(3)!.toString()).toBe('eth0\0');
    expect(a.get(4)!.readUInt32LE(0)).toBe(1450);
    // The nested flag is set on the wire and masked on decode.
    expect(buf.readUInt16LE(12 + 2)).toBe(18 | NLA_F_NESTED);
    expect(decodeAttrs(a.get(18)!).get(1)).toEqual(Buffer.from([7]));
  });

  it('round-trip arbitrary attribute lists', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 0x3fff }), fc.uint8Array({ maxLength: 40 })), { maxLength: 8 }), (list) => {
        const uniq = new Map(list.map(([t, v]) => [t, Buffer.from(v)]));
        const dec = decodeAttrs(encodeAttrs([...uniq].map(([type, value]) => ({ type, value }))));
        expect(dec).toEqual(uniq);
      }),
    );
  });

  it('stop at a truncated attribute instead of throwing', () => {
    const buf = encodeAttrs([attr.u32(1, 5), attr.u32(2, 6)]);
    expect([...decodeAttrs(buf.subarray(0, 10)).keys()]).toEqual([1]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => void decodeAttrs(Buffer.from(b))));
  });
});

describe('addresses', () => {
  it('round-trip IPv4 and IPv6 literals', () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        expect(bufferToIp(ipToBuffer(ip))).toBe(ip);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        expect(ipToBuffer(bufferToIp(ipToBuffer(ip)))).toEqual(ipToBuffer(ip));
      }),
    );
    expect(bufferToIp(ipToBuffer('fe80::1'))).toBe('fe80::1');
    expect(bufferToIp(ipToBuffer('::ffff:198.18.0.1'))).toBe('::ffff:c612:1');
  });

  it('round-trip MACs and reject bad ones', () => {
    expect(bufferToMac(macToBuffer('02:AA:bb:cc:dd:ee'))).toBe('02:aa:bb:cc:dd:ee');
    expect(() => macToBuffer('02:aa:bb:cc:dd')).toThrow(/invalid MAC/);
    expect(() => ipToBuffer('198.18.0')).toThrow(/invalid IP/);
    expect(parseCidr('198.19.0.0/16')).toEqual({ ip: '198.19.0.0', prefixLength: 16, family: 4 });
    expect(() => parseCidr('198.19.0.0/33')).toThrow(/prefix length/);
    expect(() => parseCidr('198.19.0.0')).toThrow(/no prefix length/);
  });
});

describe('link messages', () => {
  it('encode vxlan linkinfo with the attributes meshnet needs', () => {
    const info = decodeAttrs(encodeAttrs([linkInfo('vxlan', vxlanData({ vni: 0x6d6e, port: 6784, local: '198.18.0.11', learning: false, df: 'set' }))]));
    const li = decodeAttrs(info.get(IFLA.LINKINFO)!);
    expect(li.get(IFLA_INFO.KIND)!.toString()).toBe('vxlan\0');
    const data = decodeAttrs(li.get(IFLA_INFO.DATA)!);
    expect(data.get(IFLA_VXLAN.ID)!.readUInt32LE(0)).toBe(0x6d6e);
    expect(data.get(IFLA_VXLAN.PORT)!.readUInt16BE(0)).toBe(6784);
    expect([...data.get(IFLA_VXLAN.LOCAL)!]).toEqual([198, 18, 0, 11]);
    expect(data.get(IFLA_VXLAN.LEARNING)).toEqual(Buffer.from([0]));
    expect(data.get(IFLA_VXLAN.DF)).toEqual(Buffer.from([1]));
    expect(() => vxlanData({ vni: -1, port: 6784 })).toThrow(/VNI/);
    expect(() => vxlanData({ vni: 1, port: 0 })).toThrow(/port/);
  });

  it('decode a link with vxlan data and bridge-port data (what the kernel sends)', () => {
    const body = encodeIfinfo({ index: 7, flags: 0x1 | 0x10000 }, [
      attr.str(IFLA.IFNAME, 'meshnet-vxlan'),
      attr.u32(IFLA.MTU, 1450),
      attr.bytes(IFLA.ADDRESS, macToBuffer('02:00:00:00:00:07')),
      attr.u32(IFLA.MASTER, 5),
      attr.nest(IFLA.LINKINFO, [
        attr.str(IFLA_INFO.KIND, 'vxlan'),
        attr.nest(IFLA_INFO.DATA, vxlanData({ vni: 42, port: 6784, local: '198.18.0.11', df: 'set' })),
        attr.str(IFLA_INFO.SLAVE_KIND, 'bridge'),
        attr.nest(IFLA_INFO.SLAVE_DATA, [
          attr.u8(IFLA_BRPORT.LEARNING, 0),
          attr.u8(IFLA_BRPORT.UNICAST_FLOOD, 0),
          attr.u8(IFLA_BRPORT.NEIGH_SUPPRESS, 1),
          attr.u8(IFLA_BRPORT.MODE, 1),
          attr.u8(IFLA_BRPORT.MCAST_FLOOD, 1),
          attr.u8(IFLA_BRPORT.BCAST_FLOOD, 1),
        ]),
      ]),
    ]);
    const l = decodeLink(body);
    expect(l).toMatchObject({ index: 7, name: 'meshnet-vxlan', mtu: 1450, mac: '02:00:00:00:00:07', up: true, lowerUp: true, master: 5, kind: 'vxlan' });
    expect(l.vxlan).toMatchObject({ vni: 42, port: 6784, local: '198.18.0.11', learning: false, df: 'set' });
    expect(l.bridgePort).toMatchObject({ learning: false, unicastFlood: false, neighSuppress: true, hairpin: true, multicastFlood: true, broadcastFlood: true });
  });

  it('changes bridge-port settings through SLAVE_DATA only (the master supplies the kind)', () => {
    const li = decodeAttrs(decodeAttrs(encodeAttrs([bridgePortInfo({ learning: false, neighSuppress: true })])).get(IFLA.LINKINFO)!);
    expect([...li.keys()]).toEqual([IFLA_INFO.SLAVE_DATA]);
    const d = decodeAttrs(li.get(IFLA_INFO.SLAVE_DATA)!);
    expect(d).toEqual(new Map([[IFLA_BRPORT.LEARNING, Buffer.from([0])], [IFLA_BRPORT.NEIGH_SUPPRESS, Buffer.from([1])]]));
  });

  it('puts the veth peer (with its namespace fd) in a full ifinfomsg', () => {
    const [peer] = vethData({ name: 'eth0', netnsFd: 33, mtu: 1450 });
    const payload = peer!.value as Buffer;
    const a = decodeAttrs(payload.subarray(16));
    expect(a.get(IFLA.IFNAME)!.toString()).toBe('eth0\0');
    expect(a.get(IFLA.NET_NS_FD)!.readUInt32LE(0)).toBe(33);
    expect(a.get(IFLA.MTU)!.readUInt32LE(0)).toBe(1450);
  });
});

describe('neighbour and FDB messages', () => {
  it('vxlan remotes are permanent self entries; bridge pins are static master entries', () => {
    const self = encodeFdb({ ifindex: 6, mac: '02:00:00:00:00:05', target: 'self', dst: '198.18.0.12' });
    expect(self.readUInt16LE(8)).toBe(NUD.PERMANENT);
    expect(self.readUInt8(10)).toBe(NTF.SELF);
    const pin = encodeFdb({ ifindex: 6, mac: '02:00:00:00:00:05', target: 'master', sticky: true });
    expect(pin.readUInt16LE(8)).toBe(NUD.NOARP);
    expect(pin.readUInt8(10)).toBe(NTF.MASTER | NTF.STICKY);
    const d = decodeNd(self);
    expect(d).toEqual({ kind: 'fdb', value: expect.objectContaining({ ifindex: 6, mac: '02:00:00:00:00:05', dst: '198.18.0.12', self: true, state: 'permanent' }) });
  });

  it('neighbours round-trip with their protocol tag', () => {
    const n = decodeNd(encodeNeighbour(5, '198.19.0.5', '02:00:00:00:00:05', 109));
    expect(n).toEqual({ kind: 'neigh', value: { ifindex: 5, ip: '198.19.0.5', mac: '02:00:00:00:00:05', state: 'permanent', protocol: 109 } });
  });
});

describe('iproute2 fallback', () => {
  it('builds batch lines', () => {
    expect(ipLine.addrAdd('eth0', '198.19.0.5/16')).toBe('addr add 198.19.0.5/16 dev eth0');
    expect(ipLine.route('replace', { dst: '0.0.0.0/0', gateway: '198.19.0.1', dev: 'eth0' })).toBe('route replace 0.0.0.0/0 via 198.19.0.1 dev eth0');
    expect(ipLine.neighSet({ dev: 'meshnet', ip: '198.19.0.5', mac: '02:00:00:00:00:05', protocol: 109 })).toBe(
      'neigh replace 198.19.0.5 lladdr 02:00:00:00:00:05 dev meshnet nud permanent protocol 109',
    );
    expect(bridgeLine.fdb('append', { dev: 'meshnet-vxlan', mac: '00:00:00:00:00:00', target: 'self', dst: '198.18.0.12' })).toBe(
      'fdb append 00:00:00:00:00:00 dev meshnet-vxlan dst 198.18.0.12 self permanent',
    );
    expect(bridgeLine.fdb('replace', { dev: 'meshnet-vxlan', mac: '02:00:00:00:00:05', target: 'master', sticky: true })).toBe(
      'fdb replace 02:00:00:00:00:05 dev meshnet-vxlan master static sticky',
    );
    expect(bridgeLine.portFlags('meshnet-vxlan', { learning: false, unicastFlood: false, neighSuppress: true })).toBe(
      'link set dev meshnet-vxlan learning off flood off neigh_suppress on',
    );
  });

  it('refuses tokens that could inject batch commands', () => {
    expect(() => ipLine.linkUp('eth0\nlink del meshnet')).toThrow(/unsafe token/);
    expect(() => ipLine.linkUp('eth0 down')).toThrow(/unsafe token/);
    expect(() => ipLine.addrAdd('eth0', 'x/1')).toThrow(/invalid IP/);
  });

  it('maps iproute2 messages to errno codes', () => {
    expect(fromIprouteStderr('add', 'RTNETLINK answers: File exists\n').code).toBe('EEXIST');
    expect(fromIprouteStderr('add', 'Error: ipv4: Address already assigned.\nCommand failed -:1').code).toBe('EEXIST');
    expect(fromIprouteStderr('del', 'Cannot find device "x"').code).toBe('ENOENT');
    expect(fromIprouteStderr('del', 'RTNETLINK answers: Device or resource busy').code).toBe('EBUSY');
    expect(fromIprouteStderr('x', 'something odd').code).toBe('UNKNOWN');
    const e = NetlinkError.fromErrno('create link x', -17);
    expect(e).toMatchObject({ errno: 17, code: 'EEXIST' });
    expect(e.message).toBe('create link x: EEXIST (file already exists)');
    expect(isErrno(e, 'ENOENT', 'EEXIST')).toBe(true);
    expect(isErrno(new Error('x'), 'EEXIST')).toBe(false);
  });
});
