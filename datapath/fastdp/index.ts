// datapath/fastdp: kernel VXLAN + bridge, programmed from gossip (docs/fastdp.md).
export { Fastdp, desiredFromEntries, type LocalView } from './fastdp.js';
export { FastdpController, type ControllerOptions } from './controller.js';
export { DEFAULTS, fastdpConfig, overlayMtu, vxlanOverhead, type FastdpConfig } from './config.js';
export {
  ensureDevices,
  ensureSleevePort,
  ensureHeartbeatPort,
  planDevices,
  resetDevices,
  underlayOf,
  VXLAN_PORT_FLAGS,
  SLEEVE_PORT_FLAGS,
  HEARTBEAT_PORT_FLAGS,
  type DeviceAction,
  type DevicesReport,
} from './devices.js';
export { computeDesired, emptyDesired, addressMoves, addressView, type DesiredState, type ModelConflict, type ModelInput, type PeerDatapath, type PodEndpoint, type PortRole, type RemotePeer } from './model.js';
export { diffEntries, applyToActual, emptyActual, type ActualState, type EntryOp } from './diff.js';
export { Reconciler, applyOps, readActual, MESHNET_NEIGH_PROTOCOL, type ReconcileReport } from './reconcile.js';
export {
  EndpointsGossiper,
  EndpointsDecodeError,
  ENDPOINTS_CHANNEL,
  LIMITS,
  decodeEntries,
  encodeEntries,
  type DropReason,
  type EndpointsEntry,
  type EndpointsOptions,
  type LocalEndpoints,
  type StoredEntry,
} from './endpoints.js';
export {
  HEARTBEAT_ETHERTYPE,
  DEFAULT_TIMINGS,
  HeartbeatTracker,
  decodeHeartbeat,
  decodeHeartbeatAck,
  encodeHeartbeat,
  encodeHeartbeatAck,
  gratuitousArp,
  heartbeatFrameLength,
  heartbeatMac,
  type Heartbeat,
  type HealthTimings,
} from './heartbeat.js';
export type { DeviceKernel, EntryKernel, FastdpKernel } from './kernel.js';
