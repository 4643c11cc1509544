// rtnetlink message bodies: encoders for the requests meshnet sends and
// decoders for what the kernel answers. Pure; the fixed headers follow
// struct ifinfomsg / ifaddrmsg / rtmsg / ndmsg, the attributes the uapi
// headers. IFLA_LINKINFO is encoded and decoded here (the netlink package
// only hands it over as an opaque Buffer).

import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  IFA,
  IFF_LOWER_UP,
  IFF_UP,
  IFLA,
  IFLA_BR,
  IFLA_BRPORT,
  IFLA_INFO,
  IFLA_VXLAN,
  NDA,
  NTF,
  NUD,
  RTA,
  RTNH_F_ONLINK,
  RT_TABLE_MAIN,
  VETH_INFO_PEER,
  VXLAN_DF,
} from './constants.js';
import { attr, bufferToIp, bufferToMac, decodeAttrs, encodeAttrs, ipFamily, ipToBuffer, macToBuffer, read, type Attr } from './attrs.js';
import type {
  Address,
  BridgeInfo,
  BridgePortFlags,
  BridgePortInfo,
  FdbEntry,
  Link,
  NeighState,
  Neighbour,
  Route,
  VxlanDf,
  VxlanInfo,
} from './types.js';

// ---------------------------------------------------------------- links

export interface IfInfoHeader {
  family?: number;
  index?: number;
  flags?: number;
  change?: number;
}

export function encodeIfinfo(h: IfInfoHeader, attrs: Attr[] = []): Buffer {
  const hdr = Buffer.alloc(16);
  hdr.writeUInt8(h.family ?? 0, 0);
  hdr.writeInt32LE(h.index ?? 0, 4);
  hdr.writeUInt32LE((h.flags ?? 0) >>> 0, 8);
  hdr.writeUInt32LE((h.change ?? 0) >>> 0, 12);
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

/** IFLA_LINKINFO { KIND, DATA } for creating a device of `kind`. */
export function linkInfo(kind: string, data?: Attr[]): Attr {
  const children: Attr[] = [attr.str(IFLA_INFO.KIND, kind)];
  if (data && data.length) children.push(attr.nest(IFLA_INFO.DATA, data));
  return attr.nest(IFLA.LINKINFO, children);
}

/** IFLA_LINKINFO { SLAVE_DATA } changing a bridge port's settings (the master supplies the kind). */
export function bridgePortInfo(flags: BridgePortFlags): Attr {
  const b = (v: boolean | undefined): number => (v ? 1 : 0);
  const data: Attr[] = [];
  if (flags.hairpin !== undefined) data.push(attr.u8(IFLA_BRPORT.MODE, b(flags.hairpin)));
  if (flags.learning !== undefined) data.push(attr.u8(IFLA_BRPORT.LEARNING, b(flags.learning)));
  if (flags.unicastFlood !== undefined) data.push(attr.u8(IFLA_BRPORT.UNICAST_FLOOD, b(flags.unicastFlood)));
  if (flags.multicastFlood !== undefined) data.push(attr.u8(IFLA_BRPORT.MCAST_FLOOD, b(flags.multicastFlood)));
  if (flags.broadcastFlood !== undefined) data.push(attr.u8(IFLA_BRPORT.BCAST_FLOOD, b(flags.broadcastFlood)));
  if (flags.neighSuppress !== undefined) data.push(attr.u8(IFLA_BRPORT.NEIGH_SUPPRESS, b(flags.neighSuppress)));
  if (flags.proxyArp !== undefined) data.push(attr.u8(IFLA_BRPORT.PROXYARP, b(flags.proxyArp)));
  if (flags.isolated !== undefined) data.push(attr.u8(IFLA_BRPORT.ISOLATED, b(flags.isolated)));
  return attr.nest(IFLA.LINKINFO, [attr.nest(IFLA_INFO.SLAVE_DATA, data)]);
}

export interface VxlanData {
  vni: number;
  port: number;
  local?: string;
  devIndex?: number;
  learning?: boolean;
  proxy?: boolean;
  ttl?: number;
  df?: VxlanDf;
  ageing?: number;
}

export function vxlanData(v: VxlanData): Attr[] {
  if (!Number.isInteger(v.vni) || v.vni < 0 || v.vni > 0xffffff) throw new RangeError(`vxlan VNI ${v.vni} outside 0..16777215`);
  if (!Number.isInteger(v.port) || v.port < 1 || v.port > 65535) throw new RangeError(`vxlan port ${v.port} outside 1..65535`);
  const out: Attr[] = [attr.u32(IFLA_VXLAN.ID, v.vni), attr.be16(IFLA_VXLAN.PORT, v.port)];
  if (v.local !== undefined) out.push(attr.bytes(ipFamily(v.local) === 4 ? IFLA_VXLAN.LOCAL : IFLA_VXLAN.LOCAL6, ipToBuffer(v.local)));
  if (v.devIndex !== undefined) out.push(attr.u32(IFLA_VXLAN.LINK, v.devIndex));
  out.push(attr.u8(IFLA_VXLAN.LEARNING, v.learning ? 1 : 0));
  if (v.proxy !== undefined) out.push(attr.u8(IFLA_VXLAN.PROXY, v.proxy ? 1 : 0));
  if (v.ttl !== undefined) out.push(attr.u8(IFLA_VXLAN.TTL, v.ttl));
  if (v.ageing !== undefined) out.push(attr.u32(IFLA_VXLAN.AGEING, v.ageing));
  if (v.df !== undefined) out.push(attr.u8(IFLA_VXLAN.DF, VXLAN_DF[v.df.toUpperCase() as Uppercase<VxlanDf>]));
  return out;
}

export interface VethPeerData {
  name: string;
  netnsFd?: number;
  netnsPid?: number;
  mtu?: number;
  mac?: string;
}

/** VETH_INFO_PEER carries a whole ifinfomsg + attributes (not a plain nest). */
export function vethData(peer: VethPeerData): Attr[] {
  const attrs: Attr[] = [attr.str(IFLA.IFNAME, peer.name)];
  if (peer.mtu !== undefined) attrs.push(attr.u32(IFLA.MTU, peer.mtu));
  if (peer.mac !== undefined) attrs.push(attr.bytes(IFLA.ADDRESS, macToBuffer(peer.mac)));
  if (peer.netnsFd !== undefined) attrs.push(attr.u32(IFLA.NET_NS_FD, peer.netnsFd));
  if (peer.netnsPid !== undefined) attrs.push(attr.u32(IFLA.NET_NS_PID, peer.netnsPid));
  return [attr.bytes(VETH_INFO_PEER, encodeIfinfo({}, attrs))];
}

export function decodeLink(body: Buffer): Link {
  const index = body.readInt32LE(4);
  const flags = body.readUInt32LE(8);
  const a = decodeAttrs(body.subarray(16));
  const mac = a.get(IFLA.ADDRESS);
  const link: Link = {
    index,
    name: read.str(a.get(IFLA.IFNAME)) ?? '',
    kind: undefined,
    mtu: read.u32(a.get(IFLA.MTU)) ?? 0,
    mac: mac && mac.length === 6 ? bufferToMac(mac) : undefined,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    master: read.u32(a.get(IFLA.MASTER)),
    link: read.u32(a.get(IFLA.LINK)),
    linkNetnsId: read.s32(a.get(IFLA.LINK_NETNSID)),
  };
  const li = a.get(IFLA.LINKINFO);
  if (li) {
    const info = decodeAttrs(li);
    link.kind = read.str(info.get(IFLA_INFO.KIND));
    const data = info.get(IFLA_INFO.DATA);
    if (data && link.kind === 'vxlan') link.vxlan = decodeVxlan(data);
    if (data && link.kind === 'bridge') link.bridge = decodeBridge(data);
    const slaveKind = read.str(info.get(IFLA_INFO.SLAVE_KIND));
    const slave = info.get(IFLA_INFO.SLAVE_DATA);
    if (slave && slaveKind === 'bridge') link.bridgePort = decodeBridgePort(slave);
  }
  return link;
}

function decodeVxlan(data: Buffer): VxlanInfo {
  const a = decodeAttrs(data);
  const local4 = a.get(IFLA_VXLAN.LOCAL);
  const local6 = a.get(IFLA_VXLAN.LOCAL6);
  const dfNum = read.u8(a.get(IFLA_VXLAN.DF));
  const df = dfNum === undefined ? undefined : (['unset', 'set', 'inherit'] as const)[dfNum];
  const link = read.u32(a.get(IFLA_VXLAN.LINK));
  return {
    vni: read.u32(a.get(IFLA_VXLAN.ID)) ?? 0,
    port: read.be16(a.get(IFLA_VXLAN.PORT)) ?? 0,
    local: local4 ? bufferToIp(local4) : local6 ? bufferToIp(local6) : undefined,
    dev: link ? link : undefined,
    learning: read.u8(a.get(IFLA_VXLAN.LEARNING)) === 1,
    proxy: read.u8(a.get(IFLA_VXLAN.PROXY)) === 1,
    l2miss: read.u8(a.get(IFLA_VXLAN.L2MISS)) === 1,
    l3miss: read.u8(a.get(IFLA_VXLAN.L3MISS)) === 1,
    ttl: read.u8(a.get(IFLA_VXLAN.TTL)) ?? 0,
    ageing: read.u32(a.get(IFLA_VXLAN.AGEING)),
    df,
  };
}

function decodeBridge(data: Buffer): BridgeInfo {
  const a = decodeAttrs(data);
  return { stpState: read.u32(a.get(IFLA_BR.STP_STATE)), ageingTime: read.u32(a.get(IFLA_BR.AGEING_TIME)) };
}

function decodeBridgePort(data: Buffer): BridgePortInfo {
  const a = decodeAttrs(data);
  const on = (t: number): boolean => read.u8(a.get(t)) === 1;
  return {
    state: read.u8(a.get(IFLA_BRPORT.STATE)),
    hairpin: on(IFLA_BRPORT.MODE),
    learning: on(IFLA_BRPORT.LEARNING),
    unicastFlood: on(IFLA_BRPORT.UNICAST_FLOOD),
    multicastFlood: on(IFLA_BRPORT.MCAST_FLOOD),
    broadcastFlood: on(IFLA_BRPORT.BCAST_FLOOD),
    neighSuppress: on(IFLA_BRPORT.NEIGH_SUPPRESS),
    proxyArp: on(IFLA_BRPORT.PROXYARP),
    isolated: on(IFLA_BRPORT.ISOLATED),
  };
}

// ---------------------------------------------------------------- addresses

export function encodeAddress(ifindex: number, ip: string, prefixLength: number): Buffer {
  const family = ipFamily(ip);
  const hdr = Buffer.alloc(8);
  hdr.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  hdr.writeUInt8(prefixLength, 1);
  hdr.writeUInt32LE(ifindex, 4);
  const addr = ipToBuffer(ip);
  return Buffer.concat([hdr, encodeAttrs([attr.bytes(IFA.LOCAL, addr), attr.bytes(IFA.ADDRESS, addr)])]);
}

export function encodeAddressDump(family: number): Buffer {
  const hdr = Buffer.alloc(8);
  hdr.writeUInt8(family, 0);
  return hdr;
}

export function decodeAddress(body: Buffer): Address | undefined {
  const fam = body.readUInt8(0);
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const a = decodeAttrs(body.subarray(8));
  const ip = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
  if (!ip) return undefined;
  return {
    family: fam === AF_INET ? 4 : 6,
    prefixLength: body.readUInt8(1),
    ifindex: body.readUInt32LE(4),
    address: bufferToIp(ip),
    label: read.str(a.get(IFA.LABEL)),
  };
}

// ---------------------------------------------------------------- routes

export interface RouteBody {
  dst: string;
  dstLen: number;
  gateway?: string;
  oif?: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  prefsrc?: string;
  priority?: number;
  onlink?: boolean;
}

export function encodeRoute(r: RouteBody): Buffer {
  const family = ipFamily(r.dst);
  const hdr = Buffer.alloc(12);
  hdr.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  hdr.writeUInt8(r.dstLen, 1);
  hdr.writeUInt8(r.table < 256 ? r.table : 0, 4);
  hdr.writeUInt8(r.protocol, 5);
  hdr.writeUInt8(r.scope, 6);
  hdr.writeUInt8(r.type, 7);
  hdr.writeUInt32LE(r.onlink ? RTNH_F_ONLINK : 0, 8);
  const attrs: Attr[] = [attr.u32(RTA.TABLE, r.table)];
  if (r.dstLen > 0) attrs.push(attr.bytes(RTA.DST, ipToBuffer(r.dst)));
  if (r.gateway) attrs.push(attr.bytes(RTA.GATEWAY, ipToBuffer(r.gateway)));
  if (r.oif !== undefined) attrs.push(attr.u32(RTA.OIF, r.oif));
  if (r.prefsrc) attrs.push(attr.bytes(RTA.PREFSRC, ipToBuffer(r.prefsrc)));
  if (r.priority !== undefined) attrs.push(attr.u32(RTA.PRIORITY, r.priority));
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

export function encodeRouteDump(family: number): Buffer {
  const hdr = Buffer.alloc(12);
  hdr.writeUInt8(family, 0);
  return hdr;
}

export function decodeRoute(body: Buffer): Route | undefined {
  const fam = body.readUInt8(0);
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const dstLen = body.readUInt8(1);
  const a = decodeAttrs(body.subarray(12));
  const dstBuf = a.get(RTA.DST);
  const dst = dstBuf ? bufferToIp(dstBuf) : fam === AF_INET ? '0.0.0.0' : '::';
  const gw = a.get(RTA.GATEWAY);
  const src = a.get(RTA.PREFSRC);
  return {
    dst: `${dst}/${dstLen}`,
    gateway: gw ? bufferToIp(gw) : undefined,
    oif: read.u32(a.get(RTA.OIF)),
    table: read.u32(a.get(RTA.TABLE)) ?? body.readUInt8(4),
    protocol: body.readUInt8(5),
    scope: body.readUInt8(6),
    type: body.readUInt8(7),
    prefsrc: src ? bufferToIp(src) : undefined,
    priority: read.u32(a.get(RTA.PRIORITY)),
    onlink: (body.readUInt32LE(8) & RTNH_F_ONLINK) !== 0,
  };
}

export const DEFAULT_TABLE = RT_TABLE_MAIN;

// ---------------------------------------------------------------- neighbours and FDB

export interface NdHeader {
  family: number;
  ifindex: number;
  state: number;
  flags: number;
}

export function encodeNd(h: NdHeader, attrs: Attr[] = []): Buffer {
  const hdr = Buffer.alloc(12);
  hdr.writeUInt8(h.family, 0);
  hdr.writeInt32LE(h.ifindex, 4);
  hdr.writeUInt16LE(h.state, 8);
  hdr.writeUInt8(h.flags, 10);
  return Buffer.concat([hdr, encodeAttrs(attrs)]);
}

/** A permanent ARP/NDP entry (optionally tagged with an owner protocol). */
export function encodeNeighbour(ifindex: number, ip: string, mac: string | undefined, protocol?: number): Buffer {
  const family = ipFamily(ip) === 4 ? AF_INET : AF_INET6;
  const attrs: Attr[] = [attr.bytes(NDA.DST, ipToBuffer(ip))];
  if (mac !== undefined) attrs.push(attr.bytes(NDA.LLADDR, macToBuffer(mac)));
  if (protocol !== undefined) attrs.push(attr.u8(NDA.PROTOCOL, protocol));
  return encodeNd({ family, ifindex, state: NUD.PERMANENT, flags: 0 }, attrs);
}

export interface FdbBody {
  ifindex: number;
  mac: string;
  target: 'self' | 'master';
  dst?: string;
  vni?: number;
  sticky?: boolean;
}

/**
 * An FDB entry. vxlan remotes (`self`) are NUD_PERMANENT; bridge entries
 * (`master`) are NUD_NOARP ("static"): a *permanent* master entry would be a
 * local address, whose frames go up to the host instead of out of the port.
 */
export function encodeFdb(f: FdbBody): Buffer {
  const attrs: Attr[] = [attr.bytes(NDA.LLADDR, macToBuffer(f.mac))];
  if (f.dst !== undefined) attrs.push(attr.bytes(NDA.DST, ipToBuffer(f.dst)));
  if (f.vni !== undefined) attrs.push(attr.u32(NDA.VNI, f.vni));
  const self = f.target === 'self';
  const flags = (self ? NTF.SELF : NTF.MASTER) | (f.sticky ? NTF.STICKY : 0);
  return encodeNd({ family: AF_BRIDGE, ifindex: f.ifindex, state: self ? NUD.PERMANENT : NUD.NOARP, flags }, attrs);
}

export function encodeNdDump(family: number): Buffer {
  return encodeNd({ family, ifindex: 0, state: 0, flags: 0 });
}

function neighState(state: number): NeighState {
  if (state & NUD.PERMANENT) return 'permanent';
  if (state & NUD.NOARP) return 'noarp';
  if (state & NUD.REACHABLE) return 'reachable';
  if (state & NUD.STALE) return 'stale';
  if (state & NUD.DELAY) return 'delay';
  if (state & NUD.PROBE) return 'probe';
  if (state & NUD.FAILED) return 'failed';
  if (state & NUD.INCOMPLETE) return 'incomplete';
  return 'none';
}

export function decodeNd(body: Buffer): { kind: 'neigh'; value: Neighbour } | { kind: 'fdb'; value: FdbEntry } | undefined {
  const family = body.readUInt8(0);
  const ifindex = body.readInt32LE(4);
  const state = body.readUInt16LE(8);
  const flags = body.readUInt8(10);
  const a = decodeAttrs(body.subarray(12));
  const ll = a.get(NDA.LLADDR);
  const mac = ll && ll.length === 6 ? bufferToMac(ll) : undefined;
  const dst = a.get(NDA.DST);
  if (family === AF_BRIDGE) {
    if (!mac) return undefined;
    const master = read.u32(a.get(NDA.MASTER));
    const self = (flags & NTF.SELF) !== 0;
    return {
      kind: 'fdb',
      value: {
        ifindex,
        mac,
        dst: dst ? bufferToIp(dst) : undefined,
        vni: read.u32(a.get(NDA.VNI)),
        vlan: read.u16(a.get(NDA.VLAN)),
        master,
        self,
        // Dumps of the bridge FDB do not set NTF_MASTER; they name the bridge in NDA_MASTER.
        isMaster: (flags & NTF.MASTER) !== 0 || (!self && master !== undefined),
        state: state & NUD.PERMANENT ? 'permanent' : state & NUD.NOARP ? 'static' : 'dynamic',
        sticky: (flags & NTF.STICKY) !== 0,
      },
    };
  }
  if ((family === AF_INET || family === AF_INET6) && dst) {
    return {
      kind: 'neigh',
      value: { ifindex, ip: bufferToIp(dst), mac, state: neighState(state), protocol: read.u8(a.get(NDA.PROTOCOL)) ?? 0 },
    };
  }
  return undefined;
}
