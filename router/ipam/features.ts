// What IPAM contributes to the mesh handshake: the range, so two peers with
// different ranges are told why at connection time, not only when their
// gossip is refused.
import type { Features } from '../../mesh/types.js';
import { type Cidr, formatCidr } from './addr.js';

/** The gossip channel name IPAM registers. */
export const IPAM_CHANNEL = 'ipam';
export const RANGE_FEATURE = 'ipalloc-range';

export function ipamFeatures(range: Cidr): Features {
  return { [RANGE_FEATURE]: formatCidr(range) };
}

/** A clear refusal when the remote peer's range differs from ours (undefined: compatible or not announced). */
export function checkIpamFeatures(range: Cidr, remote: Features): string | undefined {
  const theirs = remote[RANGE_FEATURE];
  if (theirs === undefined || theirs === formatCidr(range)) return undefined;
  return `IPAM range mismatch: the remote peer uses --ipalloc-range ${theirs} but this peer uses ${formatCidr(range)}; launch every peer with the same range`;
}
