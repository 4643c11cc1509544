// Desired vs actual kernel entries -> the minimal list of operations. Pure.
//
// Order (flannel's rule, adapted): first everything that makes a path
// usable, then what steers traffic onto it, then removals in reverse:
//   neighbour set, vxlan FDB set, flood add, pin set,
//   pin delete, flood delete, vxlan FDB delete, neighbour delete.
// A pin is the "route" here: it sends a MAC's frames into the vxlan, so it
// is installed only after the vxlan knows where that MAC lives (otherwise the
// vxlan would replicate the frame to every flood destination), and removed
// before the vxlan entry goes.

import type { DesiredState, PortRole } from './model.js';

export interface ActualNeighbour {
  mac: string | undefined;
  permanent: boolean;
  /** Tagged with our protocol: installed by meshnet. */
  ours: boolean;
}

export interface ActualPin {
  role: PortRole;
  sticky: boolean;
}

export interface ActualState {
  /** ip -> entry on the bridge (permanent ones, and any entry for an IP we want). */
  neighbours: Map<string, ActualNeighbour>;
  /** mac -> VTEPs of the vxlan `self` entries (all-zero MAC excluded). */
  vxlanFdb: Map<string, string[]>;
  /** VTEPs of the all-zero entries. */
  floodDsts: Set<string>;
  /** mac -> static entry in the bridge FDB on the vxlan or sleeve port. */
  pins: Map<string, ActualPin>;
}

export type EntryOp =
  | { op: 'neigh-set'; ip: string; mac: string }
  | { op: 'fdb-set'; mac: string; dst: string }
  | { op: 'flood-add'; dst: string }
  | { op: 'pin-set'; mac: string; role: PortRole }
  | { op: 'pin-del'; mac: string; role: PortRole }
  | { op: 'flood-del'; dst: string }
  | { op: 'fdb-del'; mac: string; dst: string }
  | { op: 'neigh-del'; ip: string };

const PHASE: Record<EntryOp['op'], number> = {
  'neigh-set': 0,
  'fdb-set': 1,
  'flood-add': 2,
  'pin-set': 3,
  'pin-del': 4,
  'flood-del': 5,
  'fdb-del': 6,
  'neigh-del': 7,
};

function key(o: EntryOp): string {
  switch (o.op) {
    case 'neigh-set':
    case 'neigh-del':
      return o.ip;
    case 'fdb-set':
    case 'fdb-del':
      return `${o.mac} ${o.dst}`;
    case 'flood-add':
    case 'flood-del':
      return o.dst;
    case 'pin-set':
    case 'pin-del':
      return o.mac;
  }
}

export function emptyActual(): ActualState {
  return { neighbours: new Map(), vxlanFdb: new Map(), floodDsts: new Set(), pins: new Map() };
}

export function diffEntries(desired: DesiredState, actual: ActualState): EntryOp[] {
  const ops: EntryOp[] = [];

  for (const [ip, mac] of desired.neighbours) {
    const a = actual.neighbours.get(ip);
    if (!a || a.mac !== mac || !a.permanent || !a.ours) ops.push({ op: 'neigh-set', ip, mac });
  }
  for (const [ip, a] of actual.neighbours) {
    if (a.ours && a.permanent && !desired.neighbours.has(ip)) ops.push({ op: 'neigh-del', ip });
  }

  for (const [mac, dst] of desired.vxlanFdb) {
    const dsts = actual.vxlanFdb.get(mac) ?? [];
    if (dsts.includes(dst)) {
      for (const other of dsts) if (other !== dst) ops.push({ op: 'fdb-del', mac, dst: other });
    } else {
      // `replace` rewrites the entry's first remote in place (no window
      // without an entry); any further remotes are deleted.
      ops.push({ op: 'fdb-set', mac, dst });
      for (const other of dsts.slice(1)) ops.push({ op: 'fdb-del', mac, dst: other });
    }
  }
  for (const [mac, dsts] of actual.vxlanFdb) {
    if (!desired.vxlanFdb.has(mac)) for (const dst of dsts) ops.push({ op: 'fdb-del', mac, dst });
  }

  for (const dst of desired.floodDsts) if (!actual.floodDsts.has(dst)) ops.push({ op: 'flood-add', dst });
  for (const dst of actual.floodDsts) if (!desired.floodDsts.has(dst)) ops.push({ op: 'flood-del', dst });

  for (const [mac, role] of desired.pins) {
    const a = actual.pins.get(mac);
    if (!a || a.role !== role || !a.sticky) ops.push({ op: 'pin-set', mac, role });
  }
  for (const [mac, a] of actual.pins) {
    if (!desired.pins.has(mac)) ops.push({ op: 'pin-del', mac, role: a.role });
  }

  return ops.sort((x, y) => PHASE[x.op] - PHASE[y.op] || (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
}

/** The state that results from applying `ops` to `actual` (for tests and dry runs). */
export function applyToActual(actual: ActualState, ops: EntryOp[]): ActualState {
  const s: ActualState = {
    neighbours: new Map(actual.neighbours),
    vxlanFdb: new Map([...actual.vxlanFdb].map(([k, v]) => [k, [...v]])),
    floodDsts: new Set(actual.floodDsts),
    pins: new Map(actual.pins),
  };
  for (const o of ops) {
    switch (o.op) {
      case 'neigh-set':
        s.neighbours.set(o.ip, { mac: o.mac, permanent: true, ours: true });
        break;
      case 'neigh-del':
        s.neighbours.delete(o.ip);
        break;
      case 'fdb-set': {
        // `replace` rewrites the first remote, or creates the entry.
        const d = s.vxlanFdb.get(o.mac);
        if (d && d.length) d[0] = o.dst;
        else s.vxlanFdb.set(o.mac, [o.dst]);
        break;
      }
      case 'fdb-del': {
        const d = (s.vxlanFdb.get(o.mac) ?? []).filter((x) => x !== o.dst);
        if (d.length) s.vxlanFdb.set(o.mac, d);
        else s.vxlanFdb.delete(o.mac);
        break;
      }
      case 'flood-add':
        s.floodDsts.add(o.dst);
        break;
      case 'flood-del':
        s.floodDsts.delete(o.dst);
        break;
      case 'pin-set':
        s.pins.set(o.mac, { role: o.role, sticky: true });
        break;
      case 'pin-del':
        s.pins.delete(o.mac);
        break;
    }
  }
  return s;
}
