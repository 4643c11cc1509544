// KubeDiscovery with the real HTTPS client against a fake API server, both
// inside one test namespace (on its loopback): paging, credentials re-read
// per request, CA-only TLS, the watch (add, modify, delete, bookmarks, 410,
// malformed lines), failures that keep known targets, and the operator's
// error lines.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor } from '../../harness/netns.js';
import type { KubeApiConfig } from '../../../router/kube/client.js';
import type { KubeDiscoveryStatus } from '../../../router/kube/discovery.js';
import type { LoggedRequest } from './fake-kube-api.js';
import { makeCa, type TestCa } from './certs.js';
import { startNsAgent, type NsAgent } from './ns-agent.js';

const HOST = '127.0.0.1';

describe('Kubernetes discovery against a fake API server', () => {
  let net: TestNet;
  let agent: NsAgent;
  let ca: TestCa;
  let other: TestCa;
  let port = 0;
  let tokenFile = '';
  let cfg: KubeApiConfig;
  let id = 0;

  const status = (d: string): Promise<KubeDiscoveryStatus> => agent.call('disc', 'status', d);
  const targets = (d: string): Promise<Record<string, string>> => agent.call('disc', 'targets', d);
  const requests = (): Promise<LoggedRequest[]> => agent.call('api', 'requests');
  const start = async (over: Partial<KubeApiConfig> = {}, o: { nodeName?: string; local?: string[] } = {}): Promise<string> => {
    const d = `d${++id}`;
    await agent.call('disc', 'start', d, { ...cfg, ...over }, o);
    return d;
  };
  const stop = (d: string): Promise<unknown> => agent.call('disc', 'stop', d);

  beforeAll(async () => {
    net = await TestNet.create(1);
    ca = makeCa(net.dir, 'cluster', [HOST]);
    other = makeCa(net.dir, 'other', [HOST]);
    tokenFile = join(net.dir, 'token');
    writeFileSync(tokenFile, 'token-1\n');
    agent = await startNsAgent(net, net.host(1).ns, 'test/unit/ops/kube-agent.ts');
    port = await agent.call<number>('api', 'start', { host: HOST, port: 0, certFile: ca.certFile, keyFile: ca.keyFile, tokens: ['token-1'] });
    cfg = { host: HOST, port, tokenFile, caFile: ca.caFile };
    for (const [name, ip, createdAt] of [
      ['node-a', '198.18.5.1', '2024-01-01T00:00:00Z'],
      ['node-b', '198.18.5.2', '2024-02-01T00:00:00Z'],
      ['node-c', '198.18.5.3', '2024-01-01T00:00:00Z'],
      ['node-d', '198.18.5.4', '2023-12-01T00:00:00Z'],
      ['node-e', '198.18.5.5', '2024-03-01T00:00:00Z'],
    ] as const) {
      await agent.call('api', 'setNode', { name, ips: [ip], createdAt });
    }
  });

  afterAll(async () => {
    agent?.close();
    await net?.destroy();
  });

  it('lists every page, leaves out itself and local addresses, connects to the rest', async () => {
    await agent.call('api', 'pageSize', 2);
    const before = (await requests()).length;
    const d = await start({}, { nodeName: 'node-b', local: ['198.18.5.3'] });
    expect(await agent.call('disc', 'waitFirst', d, 5_000)).toBe(true);
    expect(await targets(d)).toEqual({ '198.18.5.1:6783': 'node-a', '198.18.5.4:6783': 'node-d', '198.18.5.5:6783': 'node-e' });
    const s = await status(d);
    expect(s).toMatchObject({ state: 'ok', nodes: 5 });
    expect(Date.now() - Date.parse(s.lastSync!)).toBeLessThan(10_000);
    // Three pages of two, each with the token, limit=500 and the previous page's continue token.
    const lists = (await requests()).slice(before).filter((r) => !r.watch);
    expect(lists.slice(0, 3).map((r) => [r.limit, r.continueToken, r.token])).toEqual([
      ['500', null, 'token-1'],
      ['500', '2', 'token-1'],
      ['500', '4', 'token-1'],
    ]);
    expect(await agent.call('disc', 'oldest', d)).toBe('node-d');
    expect(await agent.call('disc', 'sink', d)).toEqual([{ op: 'connect', addresses: ['198.18.5.1:6783', '198.18.5.4:6783', '198.18.5.5:6783'] }]);
    await stop(d);
    await agent.call('api', 'pageSize', 500);
  });

  it('follows the watch: added, modified, deleted nodes, bookmarks, 410, malformed lines', async () => {
    const d = await start({}, { nodeName: 'node-a' });
    await agent.call('disc', 'waitFirst', d, 5_000);
    await waitFor(async () => (await agent.call<number>('api', 'watchCount')) > 0, 5_000, 'a watch is open');

    await agent.call('api', 'setNode', { name: 'node-f', ips: ['fd00::6', '198.18.5.6'], createdAt: '2024-04-01T00:00:00Z' });
    await waitFor(async () => (await targets(d))['198.18.5.6:6783'] === 'node-f', 5_000, 'node-f added (IPv4 preferred)');
    await agent.call('api', 'setNode', { name: 'node-g', ips: ['fd00::7'] });
    await waitFor(async () => (await targets(d))['[fd00::7]:6783'] === 'node-g', 5_000, 'IPv6-only node-g added in brackets');
    await agent.call('api', 'setNode', { name: 'node-f', ips: ['198.18.5.16'], createdAt: '2024-04-01T00:00:00Z' });
    await waitFor(async () => (await targets(d))['198.18.5.16:6783'] === 'node-f', 5_000, 'node-f moved');
    expect((await targets(d))['198.18.5.6:6783']).toBeUndefined();
    await agent.call('api', 'deleteNode', 'node-g');
    await waitFor(async () => (await targets(d))['[fd00::7]:6783'] === undefined, 5_000, 'node-g deleted');
    const sink = await agent.call<{ op: string; addresses: string[] }[]>('disc', 'sink', d);
    expect(sink.slice(1)).toEqual([
      { op: 'connect', addresses: ['198.18.5.6:6783'] },
      { op: 'connect', addresses: ['[fd00::7]:6783'] },
      { op: 'connect', addresses: ['198.18.5.16:6783'] },
      { op: 'forget', addresses: ['198.18.5.6:6783'] },
      { op: 'forget', addresses: ['[fd00::7]:6783'] },
    ]);

    // A bookmark moves the resource version; a reopened watch starts from it.
    const rv = await agent.call<string>('api', 'bookmark');
    await new Promise((r) => setTimeout(r, 200));
    const n = (await requests()).length;
    await agent.call('api', 'closeWatches');
    await waitFor(async () => (await requests()).slice(n).find((r) => r.watch), 5_000, 'the watch is reopened');
    expect((await requests()).slice(n).find((r) => r.watch)!.resourceVersion).toBe(rv);

    // 410: list again, then watch from the new list.
    const m = (await requests()).length;
    await agent.call('api', 'expire');
    await waitFor(async () => (await requests()).slice(m).some((r) => !r.watch), 5_000, 'a new list after 410');
    expect((await status(d)).state).toBe('ok');

    // Lines that are not events are dropped and counted; the watch goes on.
    await waitFor(async () => (await agent.call<number>('api', 'watchCount')) > 0, 5_000, 'watching again');
    await agent.call('api', 'garbage');
    await agent.call('api', 'setNode', { name: 'node-h', ips: ['198.18.5.8'] });
    await waitFor(async () => (await targets(d))['198.18.5.8:6783'] === 'node-h', 5_000, 'node-h after garbage');
    expect((await agent.call<{ malformed: number }>('disc', 'counters', d)).malformed).toBeGreaterThanOrEqual(2);
    await agent.call('api', 'deleteNode', 'node-h');
    await agent.call('api', 'deleteNode', 'node-f');
    await stop(d);
  });

  it('re-reads the token before every request (rotation by the kubelet)', async () => {
    const d = await start({}, { nodeName: 'node-a' });
    await agent.call('disc', 'waitFirst', d, 5_000);
    // Earlier discoveries are stopped: an open watch is this one's, made with the first token.
    await waitFor(async () => (await agent.call<number>('api', 'watchCount')) > 0, 5_000, 'watching with the first token');
    writeFileSync(tokenFile, 'token-2\n');
    await agent.call('api', 'setTokens', ['token-2']);
    const n = (await requests()).length;
    await agent.call('api', 'expire');
    await waitFor(async () => (await requests()).slice(n).some((r) => !r.watch && r.token === 'token-2'), 5_000, 'a list with the new token');
    await waitFor(async () => (await status(d)).state === 'ok', 5_000, 'ok with the new token');
    expect((await requests()).slice(n).filter((r) => r.token === 'token-1')).toEqual([]);
    await stop(d);
  });

  it('401 and 403: one line saying what to fix, known targets kept, recovery when fixed', async () => {
    const d = await start({}, { nodeName: 'node-a' });
    await agent.call('disc', 'waitFirst', d, 5_000);
    const known = await targets(d);
    await agent.call('api', 'setTokens', ['someone-else']);
    await agent.call('api', 'expire');
    await waitFor(async () => (await status(d)).state === 'error', 5_000, 'error state');
    expect((await status(d)).error).toBe('kubernetes discovery: 401 Unauthorized: the service account token was rejected');
    await agent.call('api', 'setTokens', ['token-2']);
    await agent.call('api', 'force', 403);
    await waitFor(async () => (await status(d)).error?.includes('403'), 5_000, '403');
    expect((await status(d)).error).toBe('kubernetes discovery: 403 Forbidden: ClusterRole meshnet must allow list and watch on nodes');
    expect(await targets(d)).toEqual(known);
    expect((await agent.call<{ op: string }[]>('disc', 'sink', d)).filter((x) => x.op === 'forget')).toEqual([]);
    // Logged once per distinct problem, not once per retry.
    await new Promise((r) => setTimeout(r, 800));
    const logs = await agent.call<{ msg: string }[]>('disc', 'logs', d);
    expect(logs.filter((l) => l.msg.includes('403 Forbidden'))).toHaveLength(1);
    await agent.call('api', 'force', null);
    await waitFor(async () => (await status(d)).state === 'ok', 5_000, 'recovered');
    await stop(d);
  });

  it('trusts only the given CA: another CA is a TLS error naming the CA file; missing files are named', async () => {
    const d = await start({ caFile: other.caFile });
    expect(await agent.call('disc', 'waitFirst', d, 1_500)).toBe(false);
    await waitFor(async () => (await status(d)).state === 'error', 5_000, 'TLS error');
    expect((await status(d)).error).toBe(`kubernetes discovery: TLS: certificate not trusted by ${other.caFile}`);
    expect(await targets(d)).toEqual({});
    await stop(d);

    const e = await start({ tokenFile: join(net.dir, 'no-token') });
    await waitFor(async () => (await status(e)).state === 'error', 5_000, 'token error');
    expect((await status(e)).error).toBe(`kubernetes discovery: cannot read the service account token ${join(net.dir, 'no-token')}: no such file`);
    await stop(e);
  });

  it('an API server that does not answer is a timeout, and an absent one a connection error', async () => {
    const d = await start({ port: 1 });
    await waitFor(async () => (await status(d)).state === 'error', 5_000, 'refused');
    expect((await status(d)).error).toBe(`kubernetes discovery: cannot reach the API server at https://127.0.0.1:1: ECONNREFUSED`);
    await stop(d);

    await agent.call('api', 'hang', true);
    const e = await start();
    try {
      await waitFor(async () => (await status(e)).state === 'error', 8_000, 'timeout');
      expect((await status(e)).error).toBe(`kubernetes discovery: the API server at https://127.0.0.1:${port} did not answer within 3 s`);
    } finally {
      await agent.call('api', 'hang', false);
    }
    await stop(e);
  });

  it('nodes without an InternalIP are skipped with one warning each', async () => {
    await agent.call('api', 'setNode', { name: 'node-x', ips: [] });
    const d = await start({}, { nodeName: 'node-a' });
    await agent.call('disc', 'waitFirst', d, 5_000);
    await agent.call('api', 'setNode', { name: 'node-x', ips: [], createdAt: '2025-01-01T00:00:00Z' });
    await new Promise((r) => setTimeout(r, 300));
    expect((await status(d)).withoutAddress).toEqual(['node-x']);
    const logs = await agent.call<{ level: string; msg: string }[]>('disc', 'logs', d);
    expect(logs.filter((l) => l.msg.includes('node-x'))).toEqual([{ level: 'warn', msg: 'kubernetes discovery: node node-x has no InternalIP address; skipped' }]);
    await agent.call('api', 'deleteNode', 'node-x');
    await stop(d);
  });
});
