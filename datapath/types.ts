// The contract between the mesh's connections and the datapaths. The mesh
// defines what it needs of an overlay (mesh/types.ts, since the mesh may not
// import datapath/); the datapaths implement it. Re-exported here so datapath
// code reads its own contract from its own module.

export type { DataKeys, Overlay, OverlayConnection, OverlayConnectionParams } from '../mesh/types.js';

export type DatapathName = 'fastdp' | 'sleeve';
