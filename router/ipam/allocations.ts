// This peer's own allocations and the choice of free addresses and of space
// to donate. Pure data: ownership comes in as arguments.
import { type Cidr, reservedAddresses } from './addr.js';
import { type Range, type RangeSet, contains, fromAddresses, intersect, largest, normalize, size, subtract } from './ranges.js';

export interface Allocation {
  readonly containerId: string;
  readonly iface: string;
  readonly address: number;
  /** The block the address was allocated in; its prefix length is what the container gets. */
  readonly subnet: Cidr;
  /** Version of this peer's record when the allocation was made (for `resolve`). */
  readonly createdVersion: number;
  readonly at: number;
}

export function allocationKey(containerId: string, iface: string): string {
  return `${containerId}\u0000${iface}`;
}

export class AllocationTable {
  private readonly byKey = new Map<string, Allocation>();
  private readonly byAddress = new Map<number, Allocation>();
  /** Addresses in use whose container is unknown (state recovered from gossip); only `claim` or `gc` clears them. */
  private orphanSet: Range[] = [];
  /** Next address to try, so a released address is not handed out again at once. */
  cursor = 0;

  get size(): number {
    return this.byKey.size;
  }

  get(containerId: string, iface: string): Allocation | undefined {
    return this.byKey.get(allocationKey(containerId, iface));
  }

  ofContainer(containerId: string): Allocation[] {
    return [...this.byKey.values()].filter((a) => a.containerId === containerId);
  }

  atAddress(addr: number): Allocation | undefined {
    return this.byAddress.get(addr);
  }

  all(): Allocation[] {
    return [...this.byKey.values()].sort((a, b) => a.address - b.address);
  }

  add(a: Allocation): void {
    const key = allocationKey(a.containerId, a.iface);
    if (this.byKey.has(key)) throw new Error(`allocation for ${a.containerId}/${a.iface} exists`);
    if (this.byAddress.has(a.address)) throw new Error(`address ${a.address} is already allocated`);
    this.byKey.set(key, a);
    this.byAddress.set(a.address, a);
    this.orphanSet = subtract(this.orphanSet, [{ start: a.address, end: a.address + 1 }]);
  }

  remove(a: Allocation): void {
    this.byKey.delete(allocationKey(a.containerId, a.iface));
    this.byAddress.delete(a.address);
  }

  clear(): void {
    this.byKey.clear();
    this.byAddress.clear();
    this.orphanSet = [];
  }

  get orphans(): RangeSet {
    return this.orphanSet;
  }

  addOrphans(set: RangeSet): void {
    const known = fromAddresses(this.byAddress.keys());
    this.orphanSet = normalize([...this.orphanSet, ...subtract(set, known)]);
  }

  removeOrphans(set: RangeSet): void {
    this.orphanSet = subtract(this.orphanSet, set);
  }

  isOrphan(addr: number): boolean {
    return contains(this.orphanSet, addr);
  }

  /** Every address in use here: allocations and orphans. */
  inUse(): Range[] {
    return normalize([...fromAddresses(this.byAddress.keys()), ...this.orphanSet]);
  }
}

/**
 * Free, allocatable space: owned ranges minus what is in use here, what other
 * peers report in use (never hand those out, whatever the ring says), and the
 * range's network and broadcast addresses.
 */
export function freeSpace(owned: RangeSet, inUseHere: RangeSet, reserved: RangeSet, range: Cidr): Range[] {
  const never = fromAddresses(reservedAddresses(range));
  return subtract(subtract(subtract(owned, inUseHere), reserved), never);
}

/**
 * The next free address in `subnet`, at or after `cursor` (wrapping), never
 * the subnet's own network or broadcast address.
 */
export function pickAddress(free: RangeSet, subnet: Cidr, cursor: number): number | undefined {
  const usable = subtract(intersect(free, [subnet]), fromAddresses(reservedAddresses(subnet)));
  if (usable.length === 0) return undefined;
  for (const r of usable) {
    if (r.end > cursor) return Math.max(r.start, cursor);
  }
  return usable[0]!.start;
}

/**
 * Space to give a peer that asked: from the largest free run inside
 * `subnet`, at most half of all our free space (at least one address), taken
 * from the top of the run so our own next allocations stay where they were.
 */
export function pickDonation(free: RangeSet, subnet: Range): Range | undefined {
  const run = largest(intersect(free, [subnet]));
  if (!run) return undefined;
  const give = Math.min(run.end - run.start, Math.max(1, Math.floor(size(free) / 2)));
  return { start: run.end - give, end: run.end };
}
