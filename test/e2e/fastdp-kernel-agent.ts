// The per-namespace agent started by fastdp-kernel-runner.ts: reads
// {id, target, method, args} lines on stdin, calls target[method](...args)
// and answers {id, result} or {id, error}. Targets are the real datapath
// objects, opened in this process's namespace.

import { createInterface } from 'node:readline';
import { Netlink } from '../../datapath/netlink/index.js';
import { Fastdp, computeDesired, fastdpConfig, type FastdpConfig, type ModelInput } from '../../datapath/fastdp/index.js';

const nl = Netlink.open();
const events: unknown[] = [];
let fdp: Fastdp | undefined;
const need = (): Fastdp => {
  if (!fdp) throw new Error('fastdp.ensure first');
  return fdp;
};
let unwatch: (() => void) | undefined;

const targets: Record<string, Record<string, (...args: never[]) => unknown>> = {
  agent: {
    ping: () => 'pong',
    watch: () => {
      unwatch ??= nl.watch((ev) => events.push(ev));
      return true;
    },
    events: () => events.splice(0),
  },
  netns: {
    configure: (path: string, c: Parameters<ReturnType<Netlink['inNetns']>['configureInterface']>[0]) => nl.inNetns(path).configureInterface(c),
    getLink: (path: string, name: string) => nl.inNetns(path).getLink(name),
  } as unknown as Record<string, (...args: never[]) => unknown>,
  fastdp: {
    ensure: (c: Partial<FastdpConfig> & { localIp: string }) => {
      fdp = new Fastdp(nl, fastdpConfig(c));
      return fdp.ensureDevices();
    },
    attachSleeve: () => need().attachSleeve(),
    attachHeartbeat: () => need().attachHeartbeat(),
    reconcile: async (input: ModelInput) => {
      const { desired, conflicts } = computeDesired(input);
      return { ...(await need().reconcile(desired)), conflicts };
    },
    plan: (input: ModelInput) => need().plan(computeDesired(input).desired),
    reset: () => need().reset(),
  } as unknown as Record<string, (...args: never[]) => unknown>,
  nl: nl as unknown as Record<string, (...args: never[]) => unknown>,
};

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req: { id: number; target: string; method: string; args: unknown[] };
  try {
    req = JSON.parse(line);
  } catch {
    return;
  }
  void (async () => {
    try {
      const obj = targets[req.target];
      const fn = obj?.[req.method];
      if (typeof fn !== 'function') throw new Error(`no method ${req.target}.${req.method}`);
      const result = await (fn as (...a: unknown[]) => unknown).apply(obj, req.args);
      process.stdout.write(JSON.stringify({ id: req.id, result: result ?? null }) + '\n');
    } catch (err) {
      const e = err as { message?: string; code?: string };
      process.stdout.write(JSON.stringify({ id: req.id, error: { message: e.message ?? String(err), code: e.code } }) + '\n');
    }
  })();
});
rl.on('close', () => {
  unwatch?.();
  nl.close();
  process.exit(0);
});
