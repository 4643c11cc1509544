// The daemon's CNI side in one call. The control API mounts the result:
//
//   const cni = createCniService({ allocator, runDir, defaultMtu: () => overlayMtu, log });
//   await cni.drainPending();                       // at start, once IPAM is loaded
//   // in the node:http request handler of <runDir>/meshnet.sock:
//   if (req.method === 'POST' && req.url === CNI_HTTP_PATH) return serveCniHttp(cni, req, res);

import { CniCommands, type CniLog } from './commands.js';
import { CniService } from './http.js';
import { IpHostNetwork } from './ip-host-network.js';
import { parkPendingDel } from './pending.js';
import type { CniAllocator, CniHostNetwork } from './types.js';

export interface CreateCniServiceOptions {
  allocator: CniAllocator;
  /** The daemon's run dir (holds meshnet.sock and cni-pending/). */
  runDir: string;
  /** The overlay MTU, for configs that say "mtu": 0. */
  defaultMtu(): number;
  /** Defaults to IpHostNetwork (ip -batch + nsenter). */
  hostNetwork?: CniHostNetwork;
  log?: CniLog;
}

export function createCniService(opts: CreateCniServiceOptions): CniService {
  const commands = new CniCommands({
    allocator: opts.allocator,
    hostNetwork: opts.hostNetwork ?? new IpHostNetwork(),
    defaultMtu: opts.defaultMtu,
    parkDel: async (req) => {
      await parkPendingDel(opts.runDir, req);
    },
    ...(opts.log ? { log: opts.log } : {}),
  });
  return new CniService(commands, opts.runDir, opts.log);
}

export { CniCommands, type CniLog } from './commands.js';
export { CniService, serveCniHttp, type CniHttpResponse } from './http.js';
export { installCni, meshnetConflist, type InstallCniOptions, type InstallCniResult } from './install.js';
export { IpHostNetwork } from './ip-host-network.js';
export { CNI_EXIT_HEADER, CNI_HTTP_PATH, socketPath } from './protocol.js';
export * from './types.js';
