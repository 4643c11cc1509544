// Reconcile: dump the kernel's entries, diff them against the desired state
// and apply the difference. Entries that are already right are not touched,
// so a restarted daemon changes nothing that survived it, and a second
// reconcile with the same desired state applies zero operations.
//
// Failures are contained: a failed vxlan FDB entry withdraws the pin and the
// neighbour entries that would lead traffic to it (compensating deletes, as
// flannel does), and everything else still goes through; the next reconcile
// retries what failed.

import { isErrno } from '../netlink/errors.js';
import type { FdbEntry, Link } from '../netlink/types.js';
import { diffEntries, type ActualState, type EntryOp } from './diff.js';
import type { EntryKernel } from './kernel.js';
import type { DesiredState, PortRole } from './model.js';

/** NDA_PROTOCOL tag on our neighbour entries (an unassigned rtprot number, "m"). */
export const MESHNET_NEIGH_PROTOCOL = 109;

const ZERO_MAC = '00:00:00:00:00:00';

export interface DeviceNames {
  bridge: string;
  vxlan: string;
  sleeve: string;
  heartbeat: string;
}

export interface ReconcileReport {
  /** Operations applied successfully. */
  applied: EntryOp[];
  failed: { op: EntryOp; error: string }[];
  /** Operations skipped because an earlier one they depend on failed. */
  skipped: EntryOp[];
  /** Compensating deletes performed after failures. */
  compensated: EntryOp[];
  /** Pins not placed because their port does not exist (no sleeve or heartbeat TAP yet). */
  unplaced: number;
}

export interface Ports {
  bridge: Link;
  vxlan: Link;
  sleeve: Link | undefined;
  heartbeat: Link | undefined;
}

async function ports(k: EntryKernel, names: DeviceNames): Promise<Ports> {
  const bridge = await k.getLink(names.bridge);
  const vxlan = await k.getLink(names.vxlan);
  if (!bridge || !vxlan) throw new Error(`fastdp: ${!bridge ? names.bridge : names.vxlan} does not exist (ensureDevices first)`);
  return { bridge, vxlan, sleeve: await k.getLink(names.sleeve), heartbeat: await k.getLink(names.heartbeat) };
}

/** Our entries as the kernel has them now. */
export async function readActual(k: EntryKernel, p: Ports, desired?: DesiredState): Promise<ActualState> {
  const actual: ActualState = { neighbours: new Map(), vxlanFdb: new Map(), floodDsts: new Set(), pins: new Map() };
  for (const family of [4, 6] as const) {
    for (const n of await k.listNeighbours(p.bridge.index, family)) {
      const permanent = n.state === 'permanent';
      // Learned entries matter only where we want an entry (they must be replaced).
      if (!permanent && !desired?.neighbours.has(n.ip)) continue;
      actual.neighbours.set(n.ip, { mac: n.mac, permanent, ours: n.protocol === MESHNET_NEIGH_PROTOCOL });
    }
  }
  const roleOf = (e: FdbEntry): PortRole | undefined =>
    e.ifindex === p.vxlan.index
      ? 'vxlan'
      : p.sleeve && e.ifindex === p.sleeve.index
        ? 'sleeve'
        : p.heartbeat && e.ifindex === p.heartbeat.index
          ? 'heartbeat'
          : undefined;
  for (const e of await k.listFdb()) {
    if (e.self && e.ifindex === p.vxlan.index && e.dst) {
      if (e.mac === ZERO_MAC) actual.floodDsts.add(e.dst);
      else actual.vxlanFdb.set(e.mac, [...(actual.vxlanFdb.get(e.mac) ?? []), e.dst]);
    } else if (e.isMaster && e.state === 'static') {
      const role = roleOf(e);
      if (role) actual.pins.set(e.mac, { role, sticky: e.sticky });
    }
  }
  return actual;
}

/** Drop pins whose port is missing (counted), so reconcile stays idempotent without a TAP. */
export function placeable(desired: DesiredState, p: Ports): { desired: DesiredState; unplaced: number } {
  if (p.sleeve && p.heartbeat) return { desired, unplaced: 0 };
  const pins = new Map<string, PortRole>();
  let unplaced = 0;
  for (const [mac, role] of desired.pins) {
    if ((role === 'sleeve' && !p.sleeve) || (role === 'heartbeat' && !p.heartbeat)) unplaced++;
    else pins.set(mac, role);
  }
  return { desired: { ...desired, pins }, unplaced };
}

/**
 * One operation. Devices go by ifindex (resolved once per reconcile): a name
 * would cost the kernel a lookup round trip per entry (bench/netlink.ts).
 */
async function execute(k: EntryKernel, p: Ports, op: EntryOp): Promise<void> {
  const names = { bridge: p.bridge.index, vxlan: p.vxlan.index };
  const portOf = (role: PortRole): number => {
    if (role === 'vxlan') return p.vxlan.index;
    const port = role === 'sleeve' ? p.sleeve : p.heartbeat;
    if (!port) throw new Error(`fastdp: no ${role} TAP to pin to`);
    return port.index;
  };
  try {
    switch (op.op) {
      case 'neigh-set':
        return await k.setNeighbour({ dev: names.bridge, ip: op.ip, mac: op.mac, protocol: MESHNET_NEIGH_PROTOCOL }, 'replace');
      case 'neigh-del':
        return await k.deleteNeighbour(names.bridge, op.ip);
      case 'fdb-set':
        return await k.addFdb({ dev: names.vxlan, mac: op.mac, target: 'self', dst: op.dst }, 'replace');
      case 'fdb-del':
        return await k.deleteFdb({ dev: names.vxlan, mac: op.mac, target: 'self', dst: op.dst });
      case 'flood-add':
        return await k.addFdb({ dev: names.vxlan, mac: ZERO_MAC, target: 'self', dst: op.dst }, 'append');
      case 'flood-del':
        return await k.deleteFdb({ dev: names.vxlan, mac: ZERO_MAC, target: 'self', dst: op.dst });
      case 'pin-set':
        return await k.addFdb({ dev: portOf(op.role), mac: op.mac, target: 'master', sticky: true }, 'replace');
      case 'pin-del':
        return await k.deleteFdb({ dev: portOf(op.role), mac: op.mac, target: 'master' });
    }
  } catch (err) {
    // Deleting what is already gone, or appending what is already there, is success.
    if ((op.op.endsWith('-del') && isErrno(err, 'ENOENT')) || (op.op === 'flood-add' && isErrno(err, 'EEXIST'))) return;
    throw err;
  }
}

/** Apply ops in order, with compensation for failed vxlan entries. */
export async function applyOps(k: EntryKernel, ports: Ports, ops: EntryOp[]): Promise<Omit<ReconcileReport, 'unplaced'>> {
  const report: Omit<ReconcileReport, 'unplaced'> = { applied: [], failed: [], skipped: [], compensated: [] };
  const brokenMacs = new Set<string>();
  const setNeigh = new Map<string, string>(); // ip -> mac set in this run
  for (const op of ops) {
    if (op.op === 'pin-set' && brokenMacs.has(op.mac)) {
      report.skipped.push(op);
      continue;
    }
    try {
      await execute(k, ports, op);
      report.applied.push(op);
      if (op.op === 'neigh-set') setNeigh.set(op.ip, op.mac);
    } catch (err) {
      report.failed.push({ op, error: err instanceof Error ? err.message : String(err) });
      if (op.op === 'fdb-set') {
        brokenMacs.add(op.mac);
        // Withdraw the ARP answer we just installed for this MAC.
        for (const [ip, mac] of setNeigh) {
          if (mac !== op.mac) continue;
          const undo: EntryOp = { op: 'neigh-del', ip };
          try {
            await execute(k, ports, undo);
            report.compensated.push(undo);
          } catch {
            /* the next reconcile retries */
          }
        }
      }
    }
  }
  return report;
}

/**
 * Only the operations that add an entry where none exists: no deletion, no
 * change of an existing entry. What a restarted daemon may do before it
 * knows the mesh's state (it must not remove or move what the kernel
 * already forwards with).
 */
export function additiveOnly(ops: EntryOp[], actual: ActualState): EntryOp[] {
  return ops.filter((op) => {
    switch (op.op) {
      case 'neigh-set':
        return !actual.neighbours.has(op.ip);
      case 'fdb-set':
        return !actual.vxlanFdb.has(op.mac);
      case 'flood-add':
        return true;
      case 'pin-set':
        return !actual.pins.has(op.mac);
      default:
        return false;
    }
  });
}

export interface ReconcileOptions {
  /** Apply only additions (additiveOnly). */
  additive?: boolean;
}

/**
 * Serialised, coalescing reconciler: calls while one runs are merged into a
 * single follow-up run with the latest desired state.
 */
export class Reconciler {
  private running: Promise<ReconcileReport> | undefined;
  private next: { desired: DesiredState; opts: ReconcileOptions; waiters: ((r: Promise<ReconcileReport>) => void)[] } | undefined;

  constructor(
    private readonly k: EntryKernel,
    private readonly names: DeviceNames,
  ) {}

  /** Plan only: the operations a reconcile would apply now. */
  async plan(desired: DesiredState): Promise<EntryOp[]> {
    const p = await ports(this.k, this.names);
    const { desired: d } = placeable(desired, p);
    return diffEntries(d, await readActual(this.k, p, d));
  }

  reconcile(desired: DesiredState, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
    if (!this.running) return this.start(desired, opts);
    if (this.next) {
      this.next.desired = desired;
      this.next.opts = opts;
    } else {
      this.next = { desired, opts, waiters: [] };
    }
    const slot = this.next;
    return new Promise<Promise<ReconcileReport>>((resolve) => slot.waiters.push(resolve)).then((p) => p);
  }

  private start(desired: DesiredState, opts: ReconcileOptions): Promise<ReconcileReport> {
    const run = this.once(desired, opts).finally(() => {
      this.running = undefined;
      const n = this.next;
      this.next = undefined;
      if (n) {
        const p = this.start(n.desired, n.opts);
        for (const w of n.waiters) w(p);
      }
    });
    this.running = run;
    return run;
  }

  private async once(desired: DesiredState, opts: ReconcileOptions): Promise<ReconcileReport> {
    const p = await ports(this.k, this.names);
    const { desired: d, unplaced } = placeable(desired, p);
    const actual = await readActual(this.k, p, d);
    const all = diffEntries(d, actual);
    const ops = opts.additive ? additiveOnly(all, actual) : all;
    return { ...(await applyOps(this.k, p, ops)), unplaced };
  }
}
