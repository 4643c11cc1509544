// The typed rtnetlink API meshnet uses: links (bridge, veth, vxlan), bridge
// port flags, addresses, routes, neighbours and FDB entries, dumps of all of
// them, and events. Everything works in the namespace of the calling process
// (Node cannot setns); links can be created in or moved to another namespace
// by fd, path or pid, and the pod side of a veth can be created directly in
// the pod's namespace. Configuring addresses and routes *inside* another
// namespace goes through `inNetns()` (one `ip -batch` spawn, see ip-batch.ts).

import { closeSync, openSync } from 'node:fs';
import { attr, ipFamily, macToBuffer, normalizeMac, parseCidr, type Attr } from './attrs.js';
import { AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC, IFF_UP, IFLA, NLM_F, RTM, RTNLGRP, RTPROT, RT_SCOPE, RTN, RT_TABLE_MAIN } from './constants.js';
import { NetlinkError, isErrno } from './errors.js';
import { IpBatchNetns } from './ip-batch.js';
import {
  bridgePortInfo,
  decodeAddress,
  decodeLink,
  decodeNd,
  decodeRoute,
  encodeAddress,
  encodeAddressDump,
  encodeFdb,
  encodeIfinfo,
  encodeNdDump,
  encodeNeighbour,
  encodeRoute,
  encodeRouteDump,
  linkInfo,
  vethData,
  vxlanData,
} from './messages.js';
import { RtnlSocket, openEventSocket, type RtnlTransport } from './socket.js';
import type {
  Address,
  BridgePortFlags,
  FdbEntry,
  FdbSpec,
  Link,
  LinkChange,
  LinkOptions,
  LinkRef,
  NetlinkEvent,
  NetnsRef,
  Neighbour,
  NeighbourSpec,
  Route,
  RouteSpec,
  VethPeerSpec,
  VxlanSpec,
  WriteMode,
} from './types.js';

const writeFlags: Record<WriteMode, number> = {
  add: NLM_F.CREATE | NLM_F.EXCL,
  replace: NLM_F.CREATE | NLM_F.REPLACE,
  append: NLM_F.CREATE | NLM_F.APPEND,
};

/** Resolve a namespace reference to an fd or pid; `close` releases an fd we opened. */
function netnsTarget(ns: NetnsRef): { fd?: number; pid?: number; attr: Attr; close(): void } {
  if ('pid' in ns) return { pid: ns.pid, attr: attr.u32(IFLA.NET_NS_PID, ns.pid), close: () => undefined };
  if ('fd' in ns) return { fd: ns.fd, attr: attr.u32(IFLA.NET_NS_FD, ns.fd), close: () => undefined };
  const fd = openSync(ns.path, 'r');
  return { fd, attr: attr.u32(IFLA.NET_NS_FD, fd), close: () => closeSync(fd) };
}

export class Netlink {
  private constructor(private readonly t: RtnlTransport) {}

  /** A netlink socket in this process's network namespace. */
  static open(): Netlink {
    return new Netlink(new RtnlSocket());
  }

  /** For tests: drive the API over another transport. */
  static withTransport(t: RtnlTransport): Netlink {
    return new Netlink(t);
  }

  close(): void {
    this.t.close();
  }

  /** Operations inside another network namespace (by path), via iproute2. */
  inNetns(nsPath: string): IpBatchNetns {
    return new IpBatchNetns(nsPath);
  }

  // ------------------------------------------------------------ links

  async getLink(ref: LinkRef): Promise<Link | undefined> {
    const body = typeof ref === 'number' ? encodeIfinfo({ index: ref }) : encodeIfinfo({}, [attr.str(IFLA.IFNAME, ref)]);
    try {
      const [r] = await this.t.request(RTM.GETLINK, 0, body, `get link ${ref}`);
      return r ? decodeLink(r.data) : undefined;
    } catch (err) {
      if (isErrno(err, 'ENODEV', 'ENOENT')) return undefined;
      throw err;
    }
  }

  /** Like getLink, but a missing link is an ENOENT error naming it. */
  async link(ref: LinkRef): Promise<Link> {
    const l = await this.getLink(ref);
    if (!l) throw new NetlinkError(`get link ${ref}`, 2, 'ENOENT', 'no such link');
    return l;
  }

  async listLinks(): Promise<Link[]> {
    const replies = await this.t.dump(RTM.GETLINK, encodeIfinfo({ family: AF_UNSPEC }), 'list links');
    return replies.filter((r) => r.type === RTM.NEWLINK).map((r) => decodeLink(r.data));
  }

  async ifindex(ref: LinkRef): Promise<number> {
    return typeof ref === 'number' ? ref : (await this.link(ref)).index;
  }

  private async create(name: string, info: Attr, opts: LinkOptions, extra: Attr[] = []): Promise<Link> {
    const attrs: Attr[] = [attr.str(IFLA.IFNAME, name), ...extra];
    if (opts.mtu !== undefined) attrs.push(attr.u32(IFLA.MTU, opts.mtu));
    if (opts.mac !== undefined) attrs.push(attr.bytes(IFLA.ADDRESS, macToBuffer(opts.mac)));
    if (opts.master !== undefined) attrs.push(attr.u32(IFLA.MASTER, await this.ifindex(opts.master)));
    attrs.push(info);
    const up = opts.up ? IFF_UP : 0;
    await this.t.request(RTM.NEWLINK, NLM_F.CREATE | NLM_F.EXCL, encodeIfinfo({ flags: up, change: up }, attrs), `create link ${name}`);
    return this.link(name);
  }

  createBridge(name: string, opts: LinkOptions = {}): Promise<Link> {
    return this.create(name, linkInfo('bridge'), opts);
  }

  async createVxlan(name: string, spec: VxlanSpec, opts: LinkOptions = {}): Promise<Link> {
    const devIndex = spec.dev !== undefined ? await this.ifindex(spec.dev) : undefined;
    return this.create(name, linkInfo('vxlan', vxlanData({ ...spec, devIndex })), opts);
  }

  /**
   * A veth pair; with `peer.netns` the peer is born in that namespace (no
   * name clash with the host, no move afterwards). Returns the local end.
   */
  async createVeth(name: string, peer: VethPeerSpec, opts: LinkOptions = {}): Promise<Link> {
    const ns = peer.netns ? netnsTarget(peer.netns) : undefined;
    try {
      const data = vethData({ name: peer.name, mtu: peer.mtu, mac: peer.mac, netnsFd: ns?.fd, netnsPid: ns?.pid });
      return await this.create(name, linkInfo('veth', data), opts);
    } finally {
      ns?.close();
    }
  }

  async setLink(ref: LinkRef, change: LinkChange): Promise<void> {
    const index = await this.ifindex(ref);
    const attrs: Attr[] = [];
    if (change.mtu !== undefined) attrs.push(attr.u32(IFLA.MTU, change.mtu));
    if (change.name !== undefined) attrs.push(attr.str(IFLA.IFNAME, change.name));
    if (change.mac !== undefined) attrs.push(attr.bytes(IFLA.ADDRESS, macToBuffer(change.mac)));
    if (change.master !== undefined) attrs.push(attr.u32(IFLA.MASTER, change.master === null ? 0 : await this.ifindex(change.master)));
    const ns = change.netns ? netnsTarget(change.netns) : undefined;
    if (ns) attrs.push(ns.attr);
    const flags = change.up ? IFF_UP : 0;
    const mask = change.up !== undefined ? IFF_UP : 0;
    try {
      await this.t.request(RTM.NEWLINK, 0, encodeIfinfo({ index, flags, change: mask }, attrs), `set link ${ref}`);
    } finally {
      ns?.close();
    }
  }

  async deleteLink(ref: LinkRef): Promise<void> {
    const index = await this.ifindex(ref);
    await this.t.request(RTM.DELLINK, 0, encodeIfinfo({ index }), `delete link ${ref}`);
  }

  /** Bridge port settings (hairpin, learning, flooding, neigh_suppress…) of a port. */
  async setBridgePort(ref: LinkRef, flags: BridgePortFlags): Promise<void> {
    const index = await this.ifindex(ref);
    await this.t.request(RTM.NEWLINK, 0, encodeIfinfo({ index }, [bridgePortInfo(flags)]), `set bridge port ${ref}`);
  }

  // ------------------------------------------------------------ addresses

  async listAddresses(ref?: LinkRef, family: 4 | 6 | 0 = 0): Promise<Address[]> {
    const index = ref === undefined ? undefined : await this.ifindex(ref);
    const fam = family === 4 ? AF_INET : family === 6 ? AF_INET6 : AF_UNSPEC;
    const replies = await this.t.dump(RTM.GETADDR, encodeAddressDump(fam), 'list addresses');
    return replies
      .filter((r) => r.type === RTM.NEWADDR)
      .map((r) => decodeAddress(r.data))
      .filter((a): a is Address => a !== undefined && (index === undefined || a.ifindex === index));
  }

  async addAddress(ref: LinkRef, cidr: string): Promise<void> {
    const { ip, prefixLength } = parseCidr(cidr);
    const index = await this.ifindex(ref);
    await this.t.request(RTM.NEWADDR, NLM_F.CREATE | NLM_F.EXCL, encodeAddress(index, ip, prefixLength), `add address ${cidr} to ${ref}`);
  }

  async deleteAddress(ref: LinkRef, cidr: string): Promise<void> {
    const { ip, prefixLength } = parseCidr(cidr);
    const index = await this.ifindex(ref);
    await this.t.request(RTM.DELADDR, 0, encodeAddress(index, ip, prefixLength), `delete address ${cidr} from ${ref}`);
  }

  // ------------------------------------------------------------ routes

  async listRoutes(family: 4 | 6 = 4, table = RT_TABLE_MAIN): Promise<Route[]> {
    const replies = await this.t.dump(RTM.GETROUTE, encodeRouteDump(family === 4 ? AF_INET : AF_INET6), 'list routes');
    return replies
      .filter((r) => r.type === RTM.NEWROUTE)
      .map((r) => decodeRoute(r.data))
      .filter((r): r is Route => r !== undefined && r.table === table);
  }

  private async routeBody(spec: RouteSpec): Promise<Buffer> {
    const { ip, prefixLength } = parseCidr(spec.dst);
    const scope = spec.scope === 'link' ? RT_SCOPE.LINK : spec.scope === 'host' ? RT_SCOPE.HOST : spec.gateway ? RT_SCOPE.UNIVERSE : RT_SCOPE.LINK;
    return encodeRoute({
      dst: ip,
      dstLen: prefixLength,
      gateway: spec.gateway,
      oif: spec.dev !== undefined ? await this.ifindex(spec.dev) : undefined,
      table: spec.table ?? RT_TABLE_MAIN,
      protocol: spec.protocol ?? RTPROT.BOOT,
      scope,
      type: RTN.UNICAST,
      prefsrc: spec.src,
      priority: spec.metric,
      onlink: spec.onlink,
    });
  }

  async addRoute(spec: RouteSpec, mode: Exclude<WriteMode, 'append'> = 'add'): Promise<void> {
    await this.t.request(RTM.NEWROUTE, writeFlags[mode], await this.routeBody(spec), `${mode} route ${spec.dst}`);
  }

  async deleteRoute(spec: RouteSpec): Promise<void> {
    await this.t.request(RTM.DELROUTE, 0, await this.routeBody(spec), `delete route ${spec.dst}`);
  }

  // ------------------------------------------------------------ neighbours

  async listNeighbours(ref?: LinkRef, family: 4 | 6 = 4): Promise<Neighbour[]> {
    const index = ref === undefined ? undefined : await this.ifindex(ref);
    const replies = await this.t.dump(RTM.GETNEIGH, encodeNdDump(family === 4 ? AF_INET : AF_INET6), 'list neighbours');
    const out: Neighbour[] = [];
    for (const r of replies) {
      if (r.type !== RTM.NEWNEIGH) continue;
      const d = decodeNd(r.data);
      if (d?.kind === 'neigh' && (index === undefined || d.value.ifindex === index)) out.push(d.value);
    }
    return out;
  }

  /** A permanent neighbour entry; `replace` (default) overwrites whatever is there. */
  async setNeighbour(spec: NeighbourSpec, mode: Exclude<WriteMode, 'append'> = 'replace'): Promise<void> {
    const index = await this.ifindex(spec.dev);
    const body = encodeNeighbour(index, spec.ip, normalizeMac(spec.mac), spec.protocol);
    await this.t.request(RTM.NEWNEIGH, writeFlags[mode], body, `${mode} neighbour ${spec.ip} on ${spec.dev}`);
  }

  async deleteNeighbour(dev: LinkRef, ip: string): Promise<void> {
    ipFamily(ip);
    const index = await this.ifindex(dev);
    await this.t.request(RTM.DELNEIGH, 0, encodeNeighbour(index, ip, undefined), `delete neighbour ${ip} on ${dev}`);
  }

  // ------------------------------------------------------------ FDB

  /** All AF_BRIDGE entries, optionally only those of one device (port or vxlan). */
  async listFdb(ref?: LinkRef): Promise<FdbEntry[]> {
    const index = ref === undefined ? undefined : await this.ifindex(ref);
    const replies = await this.t.dump(RTM.GETNEIGH, encodeNdDump(AF_BRIDGE), 'list fdb');
    const out: FdbEntry[] = [];
    for (const r of replies) {
      if (r.type !== RTM.NEWNEIGH) continue;
      const d = decodeNd(r.data);
      if (d?.kind === 'fdb' && (index === undefined || d.value.ifindex === index)) out.push(d.value);
    }
    return out;
  }

  async addFdb(spec: FdbSpec, mode: WriteMode = 'add'): Promise<void> {
    const index = await this.ifindex(spec.dev);
    const body = encodeFdb({ ifindex: index, mac: normalizeMac(spec.mac), target: spec.target, dst: spec.dst, vni: spec.vni, sticky: spec.sticky });
    await this.t.request(RTM.NEWNEIGH, writeFlags[mode], body, `${mode} fdb ${spec.mac}${spec.dst ? ` dst ${spec.dst}` : ''} on ${spec.dev} ${spec.target}`);
  }

  /** Delete one entry; for a vxlan `self` entry with `dst`, only that remote. */
  async deleteFdb(spec: FdbSpec): Promise<void> {
    const index = await this.ifindex(spec.dev);
    const body = encodeFdb({ ifindex: index, mac: normalizeMac(spec.mac), target: spec.target, dst: spec.dst, vni: spec.vni });
    await this.t.request(RTM.DELNEIGH, 0, body, `delete fdb ${spec.mac}${spec.dst ? ` dst ${spec.dst}` : ''} on ${spec.dev} ${spec.target}`);
  }

  // ------------------------------------------------------------ events

  /**
   * Link, neighbour and FDB notifications. `overflow` means events were lost
   * (the kernel's buffer filled): dump and reconcile. Returns the unsubscriber.
   */
  watch(handler: (ev: NetlinkEvent) => void): () => void {
    const sock = openEventSocket(
      [RTNLGRP.LINK, RTNLGRP.NEIGH],
      (type, data) => {
        try {
          if (type === RTM.NEWLINK || type === RTM.DELLINK) {
            handler({ type: 'link', action: type === RTM.NEWLINK ? 'new' : 'del', link: decodeLink(data) });
          } else if (type === RTM.NEWNEIGH || type === RTM.DELNEIGH) {
            const d = decodeNd(data);
            const action = type === RTM.NEWNEIGH ? 'new' : 'del';
            if (d?.kind === 'neigh') handler({ type: 'neigh', action, neighbour: d.value });
            else if (d?.kind === 'fdb') handler({ type: 'fdb', action, entry: d.value });
          }
        } catch {
          // A message we cannot decode is not an event we act on.
        }
      },
      () => handler({ type: 'overflow' }),
    );
    return () => sock.close();
  }
}

