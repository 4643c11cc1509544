// Public surface of router/ipam for the daemon, control API, CNI and tests.
export { Ipam, DEFAULT_TIMEOUTS, systemTimers } from './ipam.js';
export type {
  AllocationChange,
  AllocationResult,
  HandoverResult,
  IpamEvents,
  IpamLog,
  IpamLogLevel,
  IpamMeshView,
  IpamOptions,
  IpamTimeouts,
  IpamTimers,
  ResolveResult,
  RmpeerResult,
} from './ipam.js';
export { IpamError } from './errors.js';
export type { IpamErrorCode } from './errors.js';
export { FileIpamStore } from './store.js';
export type { IpamStore } from './store.js';
export { parseInitMode, parseRange, quorumOf, DEFAULT_RANGE } from './init.js';
export { renderIpamStatus } from './status.js';
export type { IpamStatus, IpamConflict, IpamPeerStatus, IpamRangeStatus } from './status.js';
export { HOST_CONTAINER_ID, containerIdError, interfaceNameError } from './ids.js';
export { ipamFeatures, checkIpamFeatures, IPAM_CHANNEL } from './features.js';
export type { InitMode } from './types.js';
