// The fast datapath's kernel devices: "ensure, compare, recreate" (flannel's
// device.go). `planDevices` compares what exists with what should and
// returns the smallest set of actions; a correct device is left alone, a
// wrong setting that the kernel can change in place is changed, and a vxlan
// whose identity is wrong (VNI, port, local address, learning, df) is
// recreated. `ensureDevices` applies the plan and checks it converged.
//
// Settings and why (see docs/fastdp.md):
// - vxlan `nolearning`: remote MACs come from gossip only; a learned entry
//   could point a MAC at a spoofed source.
// - vxlan `df set`: an oversized packet is dropped (and the heartbeat fails)
//   instead of being fragmented silently on the underlay.
// - vxlan port: learning off (pins come from gossip), unknown-unicast flood
//   off (a MAC we have no entry for is dropped, never replicated to every
//   peer), neigh_suppress on (the bridge answers ARP from the permanent
//   neighbour entries and keeps ARP requests off the underlay).
// - MTU: underlay − 50 on bridge and vxlan, unless overridden.

import { randomBytes } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { isErrno } from '../netlink/errors.js';
import type { BridgePortFlags, Link, LinkChange, VxlanSpec } from '../netlink/types.js';
import { overlayMtu, type FastdpConfig } from './config.js';
import type { DeviceKernel } from './kernel.js';

type PortFlags = Required<Pick<BridgePortFlags, 'learning' | 'unicastFlood' | 'neighSuppress' | 'isolated'>> & BridgePortFlags;

/**
 * Port settings of the vxlan on the bridge. Isolated, like the sleeve TAP:
 * the bridge never forwards between two isolated ports, so a frame that
 * arrived over one datapath never leaves over the other (no broadcast loops
 * between fastdp and sleeve peers, no duplicate deliveries).
 */
export const VXLAN_PORT_FLAGS: PortFlags = {
  learning: false,
  unicastFlood: false,
  neighSuppress: true,
  isolated: true,
};

/**
 * Port settings of the sleeve TAP on the bridge. Known MACs are pinned to it;
 * unknown unicast is flooded to it too (only from local ports: it is
 * isolated from the vxlan), so the daemon can deliver frames to MACs it
 * learned from the sleeve, or drop and count them.
 */
export const SLEEVE_PORT_FLAGS: PortFlags = {
  learning: false,
  unicastFlood: true,
  neighSuppress: true,
  isolated: true,
};

/**
 * Port settings of the heartbeat TAP: only frames to our heartbeat MAC
 * (pinned) reach it, nothing is flooded to it; not isolated, since
 * heartbeats pass between it and the vxlan.
 */
export const HEARTBEAT_PORT_FLAGS: PortFlags = {
  learning: false,
  unicastFlood: false,
  multicastFlood: false,
  broadcastFlood: false,
  neighSuppress: true,
  isolated: false,
};

export interface DeviceSpec {
  bridge: string;
  vxlan: string;
  vni: number;
  port: number;
  localIp: string;
  mtu: number;
}

export type DeviceAction =
  | { op: 'delete'; name: string; reason: string }
  | { op: 'create-bridge'; name: string; mtu: number }
  | { op: 'create-vxlan'; name: string; vxlan: VxlanSpec; mtu: number; master: string }
  | { op: 'set-link'; name: string; change: LinkChange; reason: string }
  | { op: 'set-port'; name: string; flags: BridgePortFlags; reason: string };

export function describeAction(a: DeviceAction): string {
  switch (a.op) {
    case 'delete':
      return `delete ${a.name} (${a.reason})`;
    case 'create-bridge':
      return `create bridge ${a.name} mtu ${a.mtu}`;
    case 'create-vxlan':
      return `create vxlan ${a.name} vni ${a.vxlan.vni} port ${a.vxlan.port} local ${a.vxlan.local} mtu ${a.mtu}`;
    case 'set-link':
    case 'set-port':
      return `set ${a.name}: ${a.reason}`;
  }
}

function vxlanSpec(s: DeviceSpec): VxlanSpec {
  return { vni: s.vni, port: s.port, local: s.localIp, learning: false, df: 'set' };
}

/** Why an existing vxlan cannot be kept (its identity is fixed at creation), or undefined. */
export function vxlanMismatch(s: DeviceSpec, l: Link): string | undefined {
  if (l.kind !== 'vxlan' || !l.vxlan) return `kind ${l.kind ?? 'none'}, want vxlan`;
  const v = l.vxlan;
  if (v.vni !== s.vni) return `vni ${v.vni}, want ${s.vni}`;
  if (v.port !== s.port) return `port ${v.port}, want ${s.port}`;
  if (v.local !== s.localIp) return `local ${v.local ?? 'none'}, want ${s.localIp}`;
  if (v.learning) return 'learning on, want off';
  // undefined: the kernel does not report (or support) df; nothing to fix.
  if (v.df !== undefined && v.df !== 'set') return `df ${v.df}, want set`;
  return undefined;
}

function portFlagChanges(want: BridgePortFlags, l: Link): { flags: BridgePortFlags; reason: string } | undefined {
  const p = l.bridgePort;
  const flags: BridgePortFlags = {};
  const reasons: string[] = [];
  for (const [k, v] of Object.entries(want) as [keyof BridgePortFlags, boolean][]) {
    if (!p || p[k] !== v) {
      flags[k] = v;
      reasons.push(`${k} ${v ? 'on' : 'off'}`);
    }
  }
  return reasons.length ? { flags, reason: reasons.join(', ') } : undefined;
}

/**
 * The actions that turn `actual` into `spec`. Pure. Creation also sets MTU,
 * master and up, so a freshly created device needs no further action.
 */
export function planDevices(spec: DeviceSpec, actual: { bridge?: Link; vxlan?: Link }): DeviceAction[] {
  const out: DeviceAction[] = [];
  const br = actual.bridge;
  let bridgeIndex: number | undefined = br?.index;
  if (br && br.kind !== 'bridge') {
    out.push({ op: 'delete', name: spec.bridge, reason: `kind ${br.kind ?? 'none'}, want bridge` });
    bridgeIndex = undefined;
  }
  if (bridgeIndex === undefined) {
    out.push({ op: 'create-bridge', name: spec.bridge, mtu: spec.mtu });
  } else if (br) {
    const change: LinkChange = {};
    const why: string[] = [];
    if (br.mtu !== spec.mtu) {
      change.mtu = spec.mtu;
      why.push(`mtu ${br.mtu} -> ${spec.mtu}`);
    }
    if (!br.up) {
      change.up = true;
      why.push('up');
    }
    if (why.length) out.push({ op: 'set-link', name: spec.bridge, change, reason: why.join(', ') });
  }

  const vx = actual.vxlan;
  const mismatch = vx ? vxlanMismatch(spec, vx) : undefined;
  if (vx && mismatch) out.push({ op: 'delete', name: spec.vxlan, reason: mismatch });
  if (!vx || mismatch) {
    out.push({ op: 'create-vxlan', name: spec.vxlan, vxlan: vxlanSpec(spec), mtu: spec.mtu, master: spec.bridge });
    out.push({ op: 'set-port', name: spec.vxlan, flags: { ...VXLAN_PORT_FLAGS }, reason: 'new port' });
    return out;
  }
  const change: LinkChange = {};
  const why: string[] = [];
  if (vx.mtu !== spec.mtu) {
    change.mtu = spec.mtu;
    why.push(`mtu ${vx.mtu} -> ${spec.mtu}`);
  }
  if (bridgeIndex === undefined || vx.master !== bridgeIndex) {
    change.master = spec.bridge;
    why.push(`master -> ${spec.bridge}`);
  }
  if (!vx.up) {
    change.up = true;
    why.push('up');
  }
  if (why.length) out.push({ op: 'set-link', name: spec.vxlan, change, reason: why.join(', ') });
  // A port that just got (re-)enslaved starts with the bridge's defaults.
  const flags = change.master ? { flags: { ...VXLAN_PORT_FLAGS }, reason: 'new port' } : portFlagChanges(VXLAN_PORT_FLAGS, vx);
  if (flags) out.push({ op: 'set-port', name: spec.vxlan, ...flags });
  return out;
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

async function applyAction(k: DeviceKernel, a: DeviceAction): Promise<void> {
  switch (a.op) {
    case 'delete':
      try {
        await k.deleteLink(a.name);
      } catch (err) {
        if (!isErrno(err, 'ENOENT', 'ENODEV')) throw err;
      }
      return;
    case 'create-bridge':
      // An explicit MAC: otherwise the bridge takes its lowest port's MAC and
      // changes it whenever ports come and go.
      await k.createBridge(a.name, { mac: randomMac(), up: true });
      // Set the MTU as a change, not at creation: only then does the bridge
      // keep it instead of following its smallest port (BROPT_MTU_SET_BY_USER).
      await k.setLink(a.name, { mtu: a.mtu });
      return;
    case 'create-vxlan':
      await k.createVxlan(a.name, a.vxlan, { mtu: a.mtu, master: a.master, up: true });
      return;
    case 'set-link':
      await k.setLink(a.name, a.change);
      return;
    case 'set-port':
      await k.setBridgePort(a.name, a.flags);
      return;
  }
}

/** Underlay MTU and family of the interface that holds `localIp`. */
export async function underlayOf(k: DeviceKernel, localIp: string): Promise<{ mtu: number; family: 4 | 6; link: Link }> {
  const family = isIPv4(localIp) ? 4 : 6;
  const addr = (await k.listAddresses(undefined, family)).find((a) => a.address === localIp);
  if (!addr) throw new Error(`fastdp: local address ${localIp} is not configured on any interface`);
  const link = await k.getLink(addr.ifindex);
  if (!link) throw new Error(`fastdp: interface ${addr.ifindex} holding ${localIp} vanished`);
  return { mtu: link.mtu, family, link };
}

export interface DevicesReport {
  /** What was changed, one line each; empty when everything was right. */
  changes: string[];
  /** True when the vxlan was (re)created: its FDB is empty, reconcile everything. */
  vxlanRecreated: boolean;
  mtu: number;
  bridge: Link;
  vxlan: Link;
}

/** Make the bridge and vxlan match the config; leave correct devices untouched. */
export async function ensureDevices(k: DeviceKernel, cfg: FastdpConfig): Promise<DevicesReport> {
  const underlay = await underlayOf(k, cfg.localIp);
  const mtu = overlayMtu(underlay.mtu, underlay.family, cfg.mtu);
  const spec: DeviceSpec = { bridge: cfg.bridge, vxlan: cfg.vxlan, vni: cfg.vni, port: cfg.port, localIp: cfg.localIp, mtu };
  const changes: string[] = [];
  let vxlanRecreated = false;
  for (let round = 0; round < 3; round++) {
    const actual = { bridge: await k.getLink(cfg.bridge), vxlan: await k.getLink(cfg.vxlan) };
    const actions = planDevices(spec, actual);
    if (actions.length === 0) {
      return { changes, vxlanRecreated, mtu, bridge: actual.bridge!, vxlan: actual.vxlan! };
    }
    for (const a of actions) {
      await applyAction(k, a);
      changes.push(describeAction(a));
      if (a.op === 'create-vxlan') vxlanRecreated = true;
    }
  }
  const left = planDevices(spec, { bridge: await k.getLink(cfg.bridge), vxlan: await k.getLink(cfg.vxlan) });
  throw new Error(`fastdp: devices do not converge: ${left.map(describeAction).join('; ')}`);
}

/** Attach a TAP (if it exists) to the bridge with the given port settings. Returns false when there is no such TAP. */
export async function ensureTapPort(k: DeviceKernel, cfg: FastdpConfig, name: string, flags: PortFlags, mtu: number): Promise<boolean> {
  const tap = await k.getLink(name);
  const br = await k.getLink(cfg.bridge);
  if (!tap || !br) return false;
  const change: LinkChange = {};
  if (tap.master !== br.index) change.master = cfg.bridge;
  if (tap.mtu !== mtu) change.mtu = mtu;
  if (!tap.up) change.up = true;
  if (Object.keys(change).length) await k.setLink(name, change);
  const set = change.master ? { flags: { ...flags } } : portFlagChanges(flags, tap);
  if (set) await k.setBridgePort(name, set.flags);
  return true;
}

/** Attach the sleeve TAP (if it exists) to the bridge with its port settings. Returns false when there is no TAP. */
export function ensureSleevePort(k: DeviceKernel, cfg: FastdpConfig, mtu: number): Promise<boolean> {
  return ensureTapPort(k, cfg, cfg.sleeve, SLEEVE_PORT_FLAGS, mtu);
}

/** Attach the heartbeat TAP (if it exists). Its MTU is the overlay MTU: heartbeats are full-size frames. */
export function ensureHeartbeatPort(k: DeviceKernel, cfg: FastdpConfig, mtu: number): Promise<boolean> {
  return ensureTapPort(k, cfg, cfg.heartbeat, HEARTBEAT_PORT_FLAGS, mtu);
}

/** `meshnet reset`: remove vxlan, TAPs and bridge (missing ones are fine). */
export async function resetDevices(k: DeviceKernel, cfg: FastdpConfig): Promise<string[]> {
  const removed: string[] = [];
  for (const name of [cfg.vxlan, cfg.sleeve, cfg.heartbeat, cfg.bridge]) {
    try {
      await k.deleteLink(name);
      removed.push(name);
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENODEV')) throw err;
    }
  }
  return removed;
}
