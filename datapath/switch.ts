// The per-peer datapath switch. Pure: whether fastdp is allowed to a peer,
// which datapath to use given what works, and the bookkeeping of switches.
//
// Rule: fastdp when it is allowed (not --no-fastdp, the peer offers it with
// our VNI, and the traffic may travel unencrypted: no password, or the
// peer's address is in --trusted-subnets) AND it works (a full-size
// heartbeat over the vxlan was acknowledged recently); else the sleeve when
// it reaches the peer (directly or through a relay); else nothing yet.

import type { Features } from '../mesh/types.js';
import { parseRange } from './fastdp/cidr.js';

export type DatapathChoice = 'fastdp' | 'sleeve' | null;

export interface FastdpPolicy {
  noFastdp: boolean;
  vni: number;
  /** CIDRs whose peers may use the unencrypted fast path even with a password. */
  trustedSubnets: readonly string[];
}

/** Features we announce in the handshake. */
export function overlayFeatures(p: FastdpPolicy): Features {
  return { overlays: p.noFastdp ? 'sleeve' : 'fastdp,sleeve', vni: String(p.vni) };
}

export function inSubnets(ip: string, cidrs: readonly string[]): boolean {
  return cidrs.some((c) => {
    try {
      return parseRange(c).contains(ip);
    } catch {
      return false;
    }
  });
}

/** Whether fastdp may be used to a peer, and if not, why (for status and logs). */
export function fastdpAllowed(p: FastdpPolicy, remote: Features, encrypted: boolean, remoteIp: string): { allowed: boolean; reason: string } {
  if (p.noFastdp) return { allowed: false, reason: 'disabled here (--no-fastdp)' };
  const offers = (remote.overlays ?? '').split(',');
  if (!offers.includes('fastdp')) return { allowed: false, reason: 'the peer does not offer it' };
  if (remote.vni !== undefined && remote.vni !== String(p.vni)) return { allowed: false, reason: `the peer uses VNI ${remote.vni}, we use ${p.vni}` };
  if (encrypted && !inSubnets(remoteIp, p.trustedSubnets)) return { allowed: false, reason: 'password set and the peer is not in --trusted-subnets' };
  return { allowed: true, reason: '' };
}

export function chooseDatapath(allowed: boolean, fastdpWorks: boolean, sleeveReaches: boolean): DatapathChoice {
  if (allowed && fastdpWorks) return 'fastdp';
  return sleeveReaches ? 'sleeve' : null;
}

/** The current choice for one peer connection and how often it changed. */
export class PeerSwitch {
  current: DatapathChoice = null;
  /** Changes between fastdp and sleeve (the first choice does not count). */
  switches = 0;
  lastChangeAt = 0;

  /** Apply a new choice; returns the previous one when it changed, else undefined. */
  set(next: DatapathChoice, now: number): { from: DatapathChoice } | undefined {
    if (next === this.current) return undefined;
    const from = this.current;
    if (from !== null && next !== null) this.switches++;
    this.current = next;
    this.lastChangeAt = now;
    return { from };
  }
}
