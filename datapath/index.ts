// datapath/: the Overlay the router plugs into the mesh (docs/datapath.md).
export {
  Datapath,
  DATAPATH_DEVICES,
  DEFAULT_TIMINGS,
  resetDatapathDevices,
  type DatapathLog,
  type DatapathOptions,
  type DatapathPeerStatus,
  type DatapathStatus,
  type DatapathTimings,
} from './datapath.js';
export type { PodEndpoint } from './fastdp/index.js';
export { RX_DROP_REASONS, TX_DROP_REASONS, type RxDropReason, type TxDropReason, type SleeveCounters } from './sleeve/sleeve.js';
