// Chooses the sleeve's I/O backend once per process: the native addon when
// it loads, the pure-Node backend otherwise. MESHNET_IO=node|native forces
// one (tests run both); forcing native where it cannot load is an error.

import { loadNativeIo, nativeLoadError } from '../native/index.js';
import { nativeBackend } from './native-backend.js';
import { nodeBackend } from './node-backend.js';
import type { IoBackend, IoBackendName } from './types.js';

export type * from './types.js';
export { buildFragNeeded, ipv4PacketLength, MIN_IPV4_MTU } from './icmp.js';
export { buildHeartbeat, parseHeartbeat, HEARTBEAT_ETHERTYPE, type Heartbeat } from './heartbeat.js';
export { AeadOpener, AeadSealer, AEAD_OVERHEAD } from './aead.js';
export { ipToU32, u32ToIp } from './ipv4.js';

export interface BackendChoice {
  backend: IoBackend;
  /** Why this backend: "forced by MESHNET_IO", or the addon's load error. */
  reason: string;
}

/** A backend by name; throws when `native` is asked for and the addon cannot load. */
export function ioBackend(name: IoBackendName): IoBackend {
  if (name === 'node') return nodeBackend();
  const io = loadNativeIo();
  if (!io) throw new Error(`native I/O backend unavailable: ${nativeLoadError()}`);
  return nativeBackend(io);
}

let chosen: BackendChoice | undefined;

/** The process-wide backend, chosen on the first call. */
export function selectIoBackend(env: NodeJS.ProcessEnv = process.env): BackendChoice {
  if (chosen) return chosen;
  const forced = env.MESHNET_IO;
  if (forced !== undefined && forced !== '') {
    if (forced !== 'node' && forced !== 'native') throw new Error(`MESHNET_IO: must be "node" or "native", got ${JSON.stringify(forced)}`);
    chosen = { backend: ioBackend(forced), reason: 'forced by MESHNET_IO' };
    return chosen;
  }
  const io = loadNativeIo();
  chosen = io ? { backend: nativeBackend(io), reason: 'native addon loaded' } : { backend: nodeBackend(), reason: `fallback: ${nativeLoadError()}` };
  return chosen;
}
