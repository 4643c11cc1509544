// Agent targets (ns-agent.ts) for the Kubernetes tests: the fake API server,
// and KubeDiscovery instances using the real KubeClient, all in one test
// namespace so their traffic never leaves it.

import { KubeClient, type KubeApiConfig } from '../../../router/kube/client.js';
import { KubeDiscovery } from '../../../router/kube/discovery.js';
import { FakeKubeApi, type FakeNodeSpec } from './fake-kube-api.js';

const api = new FakeKubeApi();
const discoveries = new Map<string, { d: KubeDiscovery; sink: { op: string; addresses: string[] }[]; logs: { level: string; msg: string }[] }>();

function disc(id: string): NonNullable<ReturnType<typeof discoveries.get>> {
  const x = discoveries.get(id);
  if (!x) throw new Error(`no discovery ${id}`);
  return x;
}

export const targets = {
  api: {
    start: (o: { host: string; port: number; certFile: string; keyFile: string; tokens: string[] }) => api.start(o),
    setNode: (n: FakeNodeSpec) => api.setNode(n),
    deleteNode: (name: string) => api.deleteNode(name),
    bookmark: () => api.bookmark(),
    expire: () => api.expire(),
    garbage: () => api.garbage(),
    closeWatches: () => api.closeWatches(),
    watchCount: () => api.watchCount(),
    setTokens: (t: string[]) => void (api.tokens = new Set(t)),
    hang: (on: boolean) => void (api.hang = on),
    force: (code: number | null) => void (api.forcedStatus = code),
    pageSize: (n: number) => void (api.pageSize = n),
    requests: () => api.requests,
  },
  disc: {
    start: (id: string, cfg: KubeApiConfig, o: { nodeName?: string; local?: string[]; backoffMs?: number }) => {
      const sink: { op: string; addresses: string[] }[] = [];
      const logs: { level: string; msg: string }[] = [];
      const d = new KubeDiscovery({
        source: new KubeClient(cfg, 3_000),
        nodeName: o.nodeName,
        localAddresses: () => new Set(o.local ?? []),
        log: (level, msg) => void logs.push({ level, msg }),
        backoff: { initialMs: o.backoffMs ?? 100, maxMs: 400, jitter: 0.2 },
        minWatchMs: 100,
      });
      d.attach({ connect: (a) => void sink.push({ op: 'connect', addresses: a }), forget: (a) => void sink.push({ op: 'forget', addresses: a }) });
      discoveries.set(id, { d, sink, logs });
      d.start();
      return true;
    },
    waitFirst: (id: string, ms: number) => disc(id).d.waitFirstList(ms),
    status: (id: string) => disc(id).d.status(),
    targets: (id: string) => Object.fromEntries(disc(id).d.targets()),
    oldest: (id: string) => disc(id).d.oldest()?.name ?? null,
    counters: (id: string) => disc(id).d.counters,
    sink: (id: string) => disc(id).sink,
    logs: (id: string) => disc(id).logs,
    stop: async (id: string) => {
      await disc(id).d.stop();
      discoveries.delete(id);
      return true;
    },
  },
};
