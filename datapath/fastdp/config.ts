// Fast datapath settings: device names and ports from the interface
// contract (DESIGN.md §5), the VNI, and the MTU rule.

export interface FastdpConfig {
  /** The bridge pods attach to (shared with the CNI plugin). */
  bridge: string;
  /** The kernel vxlan device, a port of the bridge. */
  vxlan: string;
  /** The sleeve TAP, a port of the bridge when the sleeve runs. */
  sleeve: string;
  /** The heartbeat TAP: fastdp heartbeats enter and leave the bridge here (the sleeve TAP is isolated from the vxlan). */
  heartbeat: string;
  /** UDP port of the vxlan (6784). */
  port: number;
  /** VXLAN network identifier; every peer of a network must use the same one. */
  vni: number;
  /** This host's underlay address: the VTEP, source of all vxlan packets. */
  localIp: string;
  /** Overlay MTU override (`--mtu`); default: underlay MTU − vxlan overhead. */
  mtu?: number;
}

export const DEFAULTS = {
  bridge: 'meshnet',
  vxlan: 'meshnet-vxlan',
  sleeve: 'meshnet-sleeve',
  heartbeat: 'meshnet-hb',
  port: 6784,
  /** ASCII "mn". Any 24-bit value works; it only has to match across peers. */
  vni: 0x6d6e,
} as const;

/**
 * Bytes VXLAN adds around an inner frame: outer IP + UDP (8) + VXLAN (8) +
 * inner Ethernet (14). IPv4 outer header 20 → 50, IPv6 40 → 70.
 */
export function vxlanOverhead(underlayFamily: 4 | 6): number {
  return (underlayFamily === 4 ? 20 : 40) + 8 + 8 + 14;
}

/** The overlay MTU: the override when given, else underlay − overhead (1500 → 1450). */
export function overlayMtu(underlayMtu: number, underlayFamily: 4 | 6, override?: number): number {
  if (override !== undefined) {
    if (!Number.isInteger(override) || override < 576 || override > 65535) throw new RangeError(`mtu ${override} outside 576..65535`);
    return override;
  }
  return underlayMtu - vxlanOverhead(underlayFamily);
}

export function fastdpConfig(c: Partial<FastdpConfig> & Pick<FastdpConfig, 'localIp'>): FastdpConfig {
  return { ...DEFAULTS, ...c };
}
