// datapath/netlink: typed rtnetlink for meshnet (see docs/fastdp.md).
export { Netlink } from './netlink.js';
export { IpBatchNetns, ipLine, bridgeLine } from './ip-batch.js';
export { NetlinkError, isErrno, type ErrnoCode } from './errors.js';
export { isMac, normalizeMac, ipFamily, parseCidr } from './attrs.js';
export type * from './types.js';
