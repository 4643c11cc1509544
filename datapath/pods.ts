// Keeping the datapath's view of local pods in step with the address
// allocator the CNI handler uses: every allocation, claim and release is
// followed by the full list of local pods (cheap: one gossip update), and the
// pods' gateway (the host's address on the overlay) is put on the bridge and
// announced, so remote pods can reach this host's gateway too.

import type { PodEndpoint } from './fastdp/index.js';

/** What the CNI handler's allocator looks like (structurally: datapath/ does not import router/). */
export interface PodAddressAllocator {
  allocate(containerId: string, ifname: string): Promise<{ address: string; prefixLength: number; gateway: string }>;
  claim(containerId: string, ifname: string, address: string): Promise<{ address: string; prefixLength: number; gateway: string }>;
  release(containerId: string, ifname: string): Promise<void>;
}

export interface PodSink {
  setLocalPods(pods: readonly PodEndpoint[]): void;
  setBridgeAddress(cidr: string): Promise<void>;
}

/** `alloc` with every change reported to `dp`; `pods()` lists the local pods after the change. */
export function announcePods<A extends PodAddressAllocator>(alloc: A, dp: PodSink, pods: () => PodEndpoint[]): A {
  const after = async <R extends { gateway: string; prefixLength: number }>(r: R): Promise<R> => {
    dp.setLocalPods(pods());
    await dp.setBridgeAddress(`${r.gateway}/${r.prefixLength}`);
    return r;
  };
  return Object.assign(Object.create(Object.getPrototypeOf(alloc) as object) as A, alloc, {
    allocate: async (id: string, ifname: string) => after(await alloc.allocate(id, ifname)),
    claim: async (id: string, ifname: string, address: string) => after(await alloc.claim(id, ifname, address)),
    release: async (id: string, ifname: string) => {
      await alloc.release(id, ifname);
      dp.setLocalPods(pods());
    },
  });
}
