// An in-memory twin of the kernel objects the fast datapath touches, with
// the semantics that matter to it: EEXIST/ENOENT, vxlan `replace` rewriting
// the first remote, `append` adding one, bridge entries moved by `replace`,
// ports released when their bridge goes. Counts every mutating call.

import { NetlinkError } from '../../../datapath/netlink/errors.js';
import type {
  Address,
  BridgePortFlags,
  FdbEntry,
  FdbSpec,
  Link,
  LinkChange,
  LinkOptions,
  LinkRef,
  Neighbour,
  NeighbourSpec,
  VxlanSpec,
  WriteMode,
} from '../../../datapath/netlink/types.js';
import type { FastdpKernel } from '../../../datapath/fastdp/kernel.js';

const defaultPort = {
  state: 3,
  hairpin: false,
  learning: true,
  unicastFlood: true,
  multicastFlood: true,
  broadcastFlood: true,
  neighSuppress: false,
  proxyArp: false,
  isolated: false,
};

export class FakeKernel implements FastdpKernel {
  links = new Map<number, Link>();
  addresses: Address[] = [];
  neighbours = new Map<string, Neighbour>(); // `${ifindex}|${ip}`
  vxlanRemotes = new Map<number, Map<string, string[]>>(); // ifindex -> mac -> dsts
  bridgeFdb = new Map<string, { port: number; sticky: boolean }>(); // mac -> static entry (single bridge)
  /** Mutating calls, by method. */
  calls: string[] = [];
  /** Make the next matching call fail. */
  failures: { method: string; match?: (arg: unknown) => boolean; errno: number }[] = [];
  private nextIndex = 1;

  constructor() {
    this.addLink({ name: 'lo', kind: undefined, mtu: 65536 });
  }

  addLink(l: Partial<Link> & { name: string }): Link {
    const link: Link = {
      index: this.nextIndex++,
      kind: undefined,
      mtu: 1500,
      mac: '02:00:00:00:00:' + this.nextIndex.toString(16).padStart(2, '0'),
      up: false,
      lowerUp: false,
      master: undefined,
      link: undefined,
      linkNetnsId: undefined,
      ...l,
    };
    this.links.set(link.index, link);
    return link;
  }

  /** An underlay interface holding `ip`. */
  addUnderlay(name: string, ip: string, mtu = 1500): Link {
    const l = this.addLink({ name, mtu, up: true });
    this.addresses.push({ ifindex: l.index, family: 4, address: ip, prefixLength: 24, label: name });
    return l;
  }

  private find(ref: LinkRef): Link | undefined {
    if (typeof ref === 'number') return this.links.get(ref);
    return [...this.links.values()].find((l) => l.name === ref);
  }

  private must(ref: LinkRef, op: string): Link {
    const l = this.find(ref);
    if (!l) throw NetlinkError.fromErrno(op, typeof ref === 'number' ? 19 : 2);
    return l;
  }

  private mutate(method: string, arg: unknown): void {
    const i = this.failures.findIndex((f) => f.method === method && (!f.match || f.match(arg)));
    if (i >= 0) {
      const [f] = this.failures.splice(i, 1);
      throw NetlinkError.fromErrno(`fake ${method}`, f!.errno);
    }
    this.calls.push(method);
  }

  async getLink(ref: LinkRef): Promise<Link | undefined> {
    const l = this.find(ref);
    return l ? structuredClone(l) : undefined;
  }

  async listAddresses(ref?: LinkRef, family: 4 | 6 | 0 = 0): Promise<Address[]> {
    const idx = ref === undefined ? undefined : this.find(ref)?.index;
    return this.addresses.filter((a) => (idx === undefined || a.ifindex === idx) && (family === 0 || a.family === family));
  }

  private createLink(name: string, kind: string, opts: LinkOptions): Link {
    if (this.find(name)) throw NetlinkError.fromErrno(`create ${name}`, 17);
    const master = opts.master !== undefined ? this.must(opts.master, 'master').index : undefined;
    return this.addLink({ name, kind, mtu: opts.mtu ?? 1500, up: Boolean(opts.up), mac: opts.mac ?? undefined, master, ...(master ? { bridgePort: { ...defaultPort } } : {}) });
  }

  async createBridge(name: string, opts: LinkOptions = {}): Promise<Link> {
    this.mutate('createBridge', name);
    return structuredClone(this.createLink(name, 'bridge', opts));
  }

  async createVxlan(name: string, spec: VxlanSpec, opts: LinkOptions = {}): Promise<Link> {
    this.mutate('createVxlan', name);
    const l = this.createLink(name, 'vxlan', opts);
    l.vxlan = {
      vni: spec.vni,
      port: spec.port,
      local: spec.local,
      dev: undefined,
      learning: Boolean(spec.learning),
      proxy: false,
      l2miss: false,
      l3miss: false,
      ttl: 0,
      ageing: 300,
      df: spec.df ?? 'unset',
    };
    this.vxlanRemotes.set(l.index, new Map());
    return structuredClone(l);
  }

  async setLink(ref: LinkRef, change: LinkChange): Promise<void> {
    this.mutate('setLink', change);
    const l = this.must(ref, 'set link');
    if (change.mtu !== undefined) l.mtu = change.mtu;
    if (change.up !== undefined) l.up = change.up;
    if (change.name !== undefined) l.name = change.name;
    if (change.mac !== undefined) l.mac = change.mac;
    if (change.master !== undefined) {
      const m = change.master === null ? undefined : this.must(change.master, 'master').index;
      if (m !== l.master) {
        l.master = m;
        l.bridgePort = m ? { ...defaultPort } : undefined;
      }
    }
  }

  async setBridgePort(ref: LinkRef, flags: BridgePortFlags): Promise<void> {
    this.mutate('setBridgePort', flags);
    const l = this.must(ref, 'set port');
    if (!l.bridgePort) throw NetlinkError.fromErrno('set port', 95);
    Object.assign(l.bridgePort, flags);
  }

  async deleteLink(ref: LinkRef): Promise<void> {
    this.mutate('deleteLink', ref);
    const l = this.must(ref, 'delete link');
    this.links.delete(l.index);
    this.vxlanRemotes.delete(l.index);
    for (const [mac, e] of this.bridgeFdb) if (e.port === l.index) this.bridgeFdb.delete(mac);
    for (const [k, n] of this.neighbours) if (n.ifindex === l.index) this.neighbours.delete(k);
    for (const p of this.links.values()) {
      if (p.master === l.index) {
        p.master = undefined;
        p.bridgePort = undefined;
        for (const [mac, e] of this.bridgeFdb) if (e.port === p.index) this.bridgeFdb.delete(mac);
      }
    }
  }

  async listNeighbours(ref?: LinkRef, family: 4 | 6 = 4): Promise<Neighbour[]> {
    const idx = ref === undefined ? undefined : this.must(ref, 'list').index;
    return [...this.neighbours.values()].filter((n) => (idx === undefined || n.ifindex === idx) && (family === 4) === n.ip.includes('.')).map((n) => ({ ...n }));
  }

  async setNeighbour(spec: NeighbourSpec, mode: Exclude<WriteMode, 'append'> = 'replace'): Promise<void> {
    this.mutate('setNeighbour', spec);
    const l = this.must(spec.dev, 'set neighbour');
    const k = `${l.index}|${spec.ip}`;
    if (mode === 'add' && this.neighbours.has(k)) throw NetlinkError.fromErrno('set neighbour', 17);
    this.neighbours.set(k, { ifindex: l.index, ip: spec.ip, mac: spec.mac, state: 'permanent', protocol: spec.protocol ?? 0 });
  }

  async deleteNeighbour(dev: LinkRef, ip: string): Promise<void> {
    this.mutate('deleteNeighbour', ip);
    const l = this.must(dev, 'delete neighbour');
    if (!this.neighbours.delete(`${l.index}|${ip}`)) throw NetlinkError.fromErrno('delete neighbour', 2);
  }

  async listFdb(ref?: LinkRef): Promise<FdbEntry[]> {
    const idx = ref === undefined ? undefined : this.must(ref, 'list fdb').index;
    const out: FdbEntry[] = [];
    for (const [vx, macs] of this.vxlanRemotes) {
      for (const [mac, dsts] of macs) {
        for (const dst of dsts) out.push({ ifindex: vx, mac, dst, vni: undefined, vlan: undefined, master: undefined, self: true, isMaster: false, state: 'permanent', sticky: false });
      }
    }
    for (const [mac, e] of this.bridgeFdb) {
      const port = this.links.get(e.port);
      out.push({ ifindex: e.port, mac, dst: undefined, vni: undefined, vlan: undefined, master: port?.master, self: false, isMaster: true, state: 'static', sticky: e.sticky });
    }
    return out.filter((e) => idx === undefined || e.ifindex === idx);
  }

  async addFdb(spec: FdbSpec, mode: WriteMode = 'add'): Promise<void> {
    this.mutate('addFdb', spec);
    const l = this.must(spec.dev, 'add fdb');
    if (spec.target === 'self') {
      const macs = this.vxlanRemotes.get(l.index);
      if (!macs || !spec.dst) throw NetlinkError.fromErrno('add fdb', 22);
      const dsts = macs.get(spec.mac);
      if (!dsts) macs.set(spec.mac, [spec.dst]);
      else if (mode === 'add') throw NetlinkError.fromErrno('add fdb', 17);
      else if (mode === 'append') {
        if (dsts.includes(spec.dst)) throw NetlinkError.fromErrno('add fdb', 17);
        dsts.push(spec.dst);
      } else if (!dsts.includes(spec.dst)) dsts[0] = spec.dst;
      return;
    }
    if (!l.master) throw NetlinkError.fromErrno('add fdb', 22);
    const cur = this.bridgeFdb.get(spec.mac);
    if (cur && mode === 'add') throw NetlinkError.fromErrno('add fdb', 17);
    this.bridgeFdb.set(spec.mac, { port: l.index, sticky: Boolean(spec.sticky) });
  }

  async deleteFdb(spec: FdbSpec): Promise<void> {
    this.mutate('deleteFdb', spec);
    const l = this.must(spec.dev, 'delete fdb');
    if (spec.target === 'self') {
      const macs = this.vxlanRemotes.get(l.index);
      const dsts = macs?.get(spec.mac);
      if (!macs || !dsts || (spec.dst && !dsts.includes(spec.dst))) throw NetlinkError.fromErrno('delete fdb', 2);
      const left = spec.dst ? dsts.filter((d) => d !== spec.dst) : [];
      if (left.length) macs.set(spec.mac, left);
      else macs.delete(spec.mac);
      return;
    }
    const cur = this.bridgeFdb.get(spec.mac);
    if (!cur || cur.port !== l.index) throw NetlinkError.fromErrno('delete fdb', 2);
    this.bridgeFdb.delete(spec.mac);
  }
}
