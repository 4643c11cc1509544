// --peers-from-kubernetes and --ipalloc-init seed-from-kubernetes with real
// daemons: a fake Kubernetes API server (HTTPS, a CA made with openssl)
// runs in h1's namespace on its underlay address; three routers find each
// other only through the Node list, the oldest node creates the IPAM ring,
// the others wait for it and say so, nodes added and deleted come and go
// as targets, and a failing API server is reported without losing peers.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { establishedPeers, launch, logOf, meshnet, status } from '../harness/meshnet.js';
import { makeCa } from '../unit/ops/certs.js';
import { startNsAgent, type NsAgent } from '../unit/ops/ns-agent.js';

const NODES = [
  { name: 'node-a', createdAt: '2020-01-01T00:00:00Z' },
  { name: 'node-b', createdAt: '2021-01-01T00:00:00Z' },
  { name: 'node-c', createdAt: '2022-01-01T00:00:00Z' },
];

async function http(h: TestHost, path: string): Promise<{ status: number; body: string }> {
  const r = await h.run(process.execPath, ['-e', `fetch('http://127.0.0.1:6782${path}').then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))`]);
  return JSON.parse(r) as { status: number; body: string };
}

describe('Kubernetes discovery and seed-from-kubernetes with real daemons', () => {
  let net: TestNet;
  let api: NsAgent;
  let env: (node: string) => NodeJS.ProcessEnv;
  const KUBE_ARGS = ['--peers-from-kubernetes', '--ipalloc-init', 'seed-from-kubernetes'];

  beforeAll(async () => {
    net = await TestNet.create(4);
    const h1 = net.host(1);
    const ca = makeCa(net.dir, 'cluster', [h1.address]);
    const tokenFile = join(net.dir, 'token');
    writeFileSync(tokenFile, 'sa-token\n');
    api = await startNsAgent(net, h1.ns, 'test/unit/ops/kube-agent.ts');
    await api.call('api', 'start', { host: h1.address, port: 6443, certFile: ca.certFile, keyFile: ca.keyFile, tokens: ['sa-token'] });
    for (const [i, n] of NODES.entries()) await api.call('api', 'setNode', { ...n, ips: [net.host(i + 1).address] });
    env = (node) => ({
      KUBERNETES_SERVICE_HOST: h1.address,
      KUBERNETES_SERVICE_PORT: '6443',
      MESHNET_KUBE_TOKEN_FILE: tokenFile,
      MESHNET_KUBE_CA_FILE: ca.caFile,
      NODE_NAME: node,
    });
  });

  afterAll(async () => {
    api?.close();
    await net?.destroy();
  });

  it('a follower started first waits for the ring from the oldest node and says so', async () => {
    const h2 = net.host(2);
    await launch(h2, { args: KUBE_ARGS, env: env('node-b') });
    const s = await status(h2);
    expect(s.discovery?.kubernetes).toMatchObject({ state: 'ok', nodes: 3 });
    expect(s.ipam.ready).toBe(false);
    expect(s.ipam.status).toBe('awaiting ring from seed node-a (oldest node)');
    expect(s.targets.map((t) => `${t.address} ${t.source}`).sort()).toEqual([`${net.host(1).address}:6783 kubernetes`, `${net.host(3).address}:6783 kubernetes`]);
    const text = (await meshnet(h2, ['status'])).stdout;
    expect(text).toMatch(/^ {2}PeerDiscovery: kubernetes \(3 nodes, synced \d+s ago\)$/m);
    expect(text).toMatch(/^ {9}Status: awaiting ring from seed node-a \(oldest node\)$/m);
    expect((await meshnet(h2, ['status', 'targets'])).stdout).toBe(`${net.host(1).address}:6783 (kubernetes)\n${net.host(3).address}:6783 (kubernetes)\n`);
    const ready = await http(h2, '/readyz');
    expect(ready).toEqual({ status: 503, body: 'ipam: awaiting ring from seed node-a (oldest node)\n' });
    expect((await http(h2, '/healthz')).status).toBe(200);
  });

  it('the oldest node creates the ring; everyone meshes through the node list and gets ready', async () => {
    const [h1, h2, h3] = [net.host(1), net.host(2), net.host(3)];
    // h3 also names peers in MESHNET_PEERS, overlapping the node list: no duplicates.
    await launch(h3, { args: KUBE_ARGS, env: { ...env('node-c'), MESHNET_PEERS: `${h1.address} ${h2.address}:6783` } });
    await launch(h1, { args: KUBE_ARGS, env: env('node-a') });
    for (const h of [h1, h2, h3]) {
      await waitFor(async () => (await establishedPeers(h)).length === 2, 30_000, `${h.id} meshed`);
      await waitFor(async () => (await status(h)).ipam.ready, 30_000, `${h.id} IPAM ready`);
      await waitFor(async () => (await http(h, '/readyz')).status === 200, 10_000, `${h.id} ready`);
    }
    const s1 = await status(h1);
    expect(s1.ipam['mode']).toBe(`seed=${s1.name}`);
    expect((s1.ipam['ring'] as { claimants: string[] }).claimants).toEqual([s1.name]);
    expect((await status(h2)).ipam['mode']).toBe('observer');
    const t3 = (await status(h3)).targets.map((t) => `${t.address} ${t.source}`).sort();
    expect(t3).toEqual([`${h1.address}:6783 command line`, `${h2.address}:6783 command line`]);
  });

  it('nodes added and deleted through the API become and stop being targets; explicit peers stay', async () => {
    const [h1, h2, h3] = [net.host(1), net.host(2), net.host(3)];
    await api.call('api', 'setNode', { name: 'node-d', createdAt: '2023-01-01T00:00:00Z', ips: ['198.18.0.99'] });
    for (const h of [h1, h2, h3]) {
      await waitFor(async () => (await status(h)).targets.some((t) => t.address === '198.18.0.99:6783' && t.source === 'kubernetes'), 10_000, `${h.id} targets node-d`);
    }
    await api.call('api', 'deleteNode', 'node-d');
    for (const h of [h1, h2, h3]) {
      await waitFor(async () => !(await status(h)).targets.some((t) => t.address === '198.18.0.99:6783'), 10_000, `${h.id} forgets node-d`);
    }
    // node-a leaves the list: h2 forgets the address discovery gave it, h3 keeps the one it was told.
    await api.call('api', 'deleteNode', 'node-a');
    await waitFor(async () => !(await status(h2)).targets.some((t) => t.address === `${h1.address}:6783`), 10_000, 'h2 forgets node-a');
    expect((await status(h3)).targets.some((t) => t.address === `${h1.address}:6783`)).toBe(true);
    // Forgetting a target never closes a live connection (and never removes the peer: no rmpeer).
    expect(await establishedPeers(h2)).toEqual(['h1', 'h3']);
    await api.call('api', 'setNode', { ...NODES[0]!, ips: [h1.address] });
    await waitFor(async () => (await status(h2)).targets.some((t) => t.address === `${h1.address}:6783`), 10_000, 'h2 targets node-a again');
  });

  it('a failing API server is reported in status and the log, and no peer is lost', async () => {
    const h2 = net.host(2);
    await api.call('api', 'force', 403);
    await api.call('api', 'expire');
    await waitFor(async () => (await status(h2)).discovery?.kubernetes?.state === 'error', 15_000, 'discovery error');
    const s = await status(h2);
    expect(s.discovery!.kubernetes!.error).toBe('kubernetes discovery: 403 Forbidden: ClusterRole meshnet must allow list and watch on nodes');
    expect((await meshnet(h2, ['status'])).stdout).toMatch(/^ {2}PeerDiscovery: kubernetes: kubernetes discovery: 403 Forbidden/m);
    expect(logOf(h2)).toMatch(/"level":50,.*"msg":"kubernetes discovery: 403 Forbidden: ClusterRole meshnet must allow list and watch on nodes"/);
    expect(s.targets).toHaveLength(2);
    expect(await establishedPeers(h2)).toEqual(['h1', 'h3']);
    await api.call('api', 'force', null);
    await waitFor(async () => (await status(h2)).discovery?.kubernetes?.state === 'ok', 15_000, 'discovery recovers');
  });

  it('launch says what it waits for when the API server cannot be reached, then goes on', async () => {
    const h4 = net.host(4);
    const t0 = Date.now();
    const r = await meshnet(h4, ['launch', '--host', h4.address, '--nickname', 'h4', '--state-dir', h4.stateDir, '--ipalloc-range', '198.19.0.0/16', ...KUBE_ARGS], {
      ...env('node-x'),
      KUBERNETES_SERVICE_PORT: '6444',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - t0).toBeGreaterThan(9_000);
    expect(r.stderr).toMatch(new RegExp(`^meshnet: waiting for the Kubernetes node list from ${net.host(1).address.replace(/\./g, '\\.')}:6444 \\(at most 10 s\\)\\.\\.\\.$`, 'm'));
    expect(r.stderr).toMatch(/^meshnet: started; kubernetes discovery: cannot reach the API server at https:\/\/198\.18\.0\.11:6444: ECONNREFUSED; IPAM: awaiting ring from the seed \(oldest node\): the node list could not be read at start/m);
    expect((await meshnet(h4, ['stop'])).code).toBe(0);
  });

  it('bad launch configuration: one line naming what is missing', async () => {
    const h4 = net.host(4);
    const run = (args: string[], e: NodeJS.ProcessEnv) => meshnet(h4, ['launch', '--state-dir', h4.stateDir, ...args], { KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '', ...e });
    const noEnv = await run(['--peers-from-kubernetes'], {});
    expect(noEnv.code).toBe(2);
    expect(noEnv.stderr).toBe('meshnet: --peers-from-kubernetes: KUBERNETES_SERVICE_HOST is not set (not running in a Kubernetes pod?)\n');
    const noFlag = await run(['--ipalloc-init', 'seed-from-kubernetes'], env('node-x'));
    expect(noFlag.stderr).toBe('meshnet: --ipalloc-init: seed-from-kubernetes needs --peers-from-kubernetes\n');
    const noNode = await run(KUBE_ARGS, { ...env('node-x'), NODE_NAME: '' });
    expect(noNode.stderr).toMatch(/^meshnet: --ipalloc-init: seed-from-kubernetes needs NODE_NAME/);
    const emptyPw = await run([], { MESHNET_PASSWORD: '' });
    expect(emptyPw.code).toBe(2);
    expect(emptyPw.stderr).toBe('meshnet: MESHNET_PASSWORD is set but empty\n');
    const badPeers = await run([], { MESHNET_PEERS: '198.18.0.11 -x-' });
    expect(badPeers.stderr).toMatch(/^meshnet: MESHNET_PEERS: invalid peer address "-x-"/);
  });
});
