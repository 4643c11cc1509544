// The narrow slice of datapath/netlink the fast datapath uses. The real
// `Netlink` class satisfies it; unit tests use an in-memory twin.

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
} from '../netlink/types.js';

export interface DeviceKernel {
  getLink(ref: LinkRef): Promise<Link | undefined>;
  listAddresses(ref?: LinkRef, family?: 4 | 6 | 0): Promise<Address[]>;
  createBridge(name: string, opts?: LinkOptions): Promise<Link>;
  createVxlan(name: string, spec: VxlanSpec, opts?: LinkOptions): Promise<Link>;
  setLink(ref: LinkRef, change: LinkChange): Promise<void>;
  setBridgePort(ref: LinkRef, flags: BridgePortFlags): Promise<void>;
  deleteLink(ref: LinkRef): Promise<void>;
}

export interface EntryKernel {
  getLink(ref: LinkRef): Promise<Link | undefined>;
  listNeighbours(ref?: LinkRef, family?: 4 | 6): Promise<Neighbour[]>;
  setNeighbour(spec: NeighbourSpec, mode?: Exclude<WriteMode, 'append'>): Promise<void>;
  deleteNeighbour(dev: LinkRef, ip: string): Promise<void>;
  listFdb(ref?: LinkRef): Promise<FdbEntry[]>;
  addFdb(spec: FdbSpec, mode?: WriteMode): Promise<void>;
  deleteFdb(spec: FdbSpec): Promise<void>;
}

export type FastdpKernel = DeviceKernel & EntryKernel;
