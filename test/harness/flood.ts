// The flood scenario shared by test/e2e/flood.test.ts and bench/flood.ts:
// h1 and h2 a password mesh with a pod each, h3 an attacker that is not a
// member and floods h1 with bench/flood-agent.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestNet, waitFor, type TestHost } from './netns.js';
import { launch, metricsText, status } from './meshnet.js';
import { Pods, waitDatapaths, type Pod } from './pods.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The built agent (the e2e global setup builds it). */
export const FLOOD_AGENT = resolve(here, here.includes('/dist/') ? '../../bench/flood-agent.js' : '../../dist/bench/flood-agent.js');

export const MESH_PORT = 6783;

export interface FloodNet {
  net: TestNet;
  h1: TestHost;
  h2: TestHost;
  attacker: TestHost;
  pods: [Pod, Pod];
}

/** Three hosts; h1 and h2 an encrypted mesh on the sleeve with one pod each; h3 runs no daemon. */
export async function floodNet(password: string): Promise<FloodNet> {
  const net = await TestNet.create(3);
  try {
    const [h1, h2, attacker] = net.hosts as [TestHost, TestHost, TestHost];
    await launch(h1, { peers: [], password, args: ['--ipalloc-init', 'consensus=2'] });
    await launch(h2, { peers: [h1.address], password, args: ['--ipalloc-init', 'consensus=2'] });
    for (const h of [h1, h2]) await waitFor(async () => (await status(h)).ipam.ready, 30_000, `${h.id} IPAM ready`);
    const p = await Pods.create(net);
    const pods: [Pod, Pod] = [await p.add(h1, 'a'), await p.add(h2, 'b')];
    await waitDatapaths(h1, { h2: 'sleeve' }, 30_000);
    await waitDatapaths(h2, { h1: 'sleeve' }, 30_000);
    return { net, h1, h2, attacker, pods };
  } catch (err) {
    await net.destroy();
    throw err;
  }
}

export interface FloodResult {
  mode: string;
  seconds: number;
  sent: number;
  bytes: number;
  errors: number;
  /** Datagrams or connections per second. */
  rate: number;
}

/** Run the agent on `from` against `target`'s mesh port for `seconds`. */
export async function flood(from: TestHost, target: TestHost, mode: 'udp' | 'tcp', seconds: number): Promise<FloodResult> {
  const out = await from.run(process.execPath, [FLOOD_AGENT, '--mode', mode, '--target', `${target.address}:${MESH_PORT}`, '--seconds', String(seconds)], { timeoutMs: (seconds + 20) * 1000 });
  return JSON.parse(out.trim().split('\n').pop()!) as FloodResult;
}

/** The established connection from `host` to the peer nicknamed `peer`: its start time names it. */
export async function connectionSince(host: TestHost, peer: string): Promise<string | undefined> {
  const c = (await status(host)).connections.find((x) => x.nickname === peer && x.state === 'established');
  return c?.since;
}

export interface FloodCounters {
  /** Sleeve datagrams dropped on receive, all reasons. */
  sleeveDrops: number;
  /** Refused or failed inbound handshakes, by reason. */
  handshakeFailures: Record<string, number>;
}

export async function floodCounters(host: TestHost): Promise<FloodCounters> {
  const s = await status(host);
  const sleeveDrops = Object.values(s.datapath?.sleeve.drops ?? {}).reduce((a, b) => a + b, 0);
  const metrics = await metricsText(host);
  const handshakeFailures: Record<string, number> = {};
  for (const m of metrics.matchAll(/^meshnet_handshake_failures_total\{reason="([^"]+)"\} (\d+)/gm)) handshakeFailures[m[1]!] = Number(m[2]);
  return { sleeveDrops, handshakeFailures };
}

export function totalFailures(c: FloodCounters): number {
  return Object.values(c.handshakeFailures).reduce((a, b) => a + b, 0);
}
