// The topology page's model and handler, the report's assembly, the probes
// and what `launch` prints while it waits.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { LaunchProgress, startupSummary } from '../../../cli/progress.js';
import { formatPasswords } from '../../../cli/ops-commands.js';
import type { LaunchConfig } from '../../../router/config.js';
import { Health } from '../../../router/health.js';
import { connectionKind, pageModel, remoteLinkKind } from '../../../router/page/model.js';
import { topologyPages } from '../../../router/page/index.js';
import { buildReport, configWithoutSecrets, metricsSummary, scrubSecrets } from '../../../router/report.js';
import type { StatusJson } from '../../../router/status.js';

const A = '8a:3f:00:12:ab:01';
const B = '8a:3f:00:12:ab:02';
const C = '8a:3f:00:12:ab:03';

function example(): StatusJson {
  const link = (peer: string, established = true) => ({ peer, address: '198.18.0.1:6783', outbound: true, established });
  return {
    name: A,
    nickname: 'node-a',
    uid: '1',
    version: '0.1.0',
    protocol: 'meshnet 1..1',
    encryption: true,
    trustedSubnets: [],
    peers: [
      { name: C, nickname: 'node-c', uid: '3', connections: 2, reachable: true, route: 'direct', links: [link(A), link(B)] },
      { name: A, nickname: 'node-a', uid: '1', connections: 2, reachable: true, route: 'self', links: [link(B), link(C)] },
      { name: B, nickname: 'node-b', uid: '2', connections: 2, reachable: true, route: 'direct', links: [link(A), link(C, false)] },
    ],
    connections: [
      { peer: B, nickname: 'node-b', address: '198.18.0.2:6783', state: 'established', datapath: 'fastdp', encrypted: false, outbound: true, info: 'mtu=1410' },
      { peer: C, nickname: 'node-c', address: '198.18.0.3:6783', state: 'retrying', datapath: null, encrypted: true, outbound: true, info: 'timed out' },
      { peer: C, nickname: 'node-c', address: '198.18.0.3:40000', state: 'established', datapath: 'sleeve', encrypted: true, outbound: false, info: '' },
      { peer: null, nickname: null, address: '198.18.0.9:6783', state: 'retrying', datapath: null, encrypted: true, outbound: true, info: 'connection refused' },
    ],
    targets: [],
    ipam: {
      range: '10.32.0.0/12',
      ready: true,
      status: 'ready',
      owned: 524288,
      allocated: 3,
      ranges: [
        { start: '10.32.0.0', size: 524288, owner: A },
        { start: '10.40.0.0', size: 524288, owner: B },
      ],
      peers: [{ name: B, owned: 524288, share: 0.5, allocated: 7 }],
    },
  };
}

describe('topology page model', () => {
  it('colours a link between two other peers by what they announce', () => {
    const ann = (announced: Record<string, { sleeve: string[]; fastdp: string[] }>, encryption = false) =>
      ({ encryption, datapath: { announced } }) as unknown as Pick<StatusJson, 'encryption' | 'datapath'>;
    expect(remoteLinkKind(ann({ [B]: { sleeve: [C], fastdp: [C] } }), B, C)[0]).toBe('fastdp');
    expect(remoteLinkKind(ann({ [C]: { sleeve: [], fastdp: [B] } }), B, C)[0]).toBe('fastdp');
    expect(remoteLinkKind(ann({ [B]: { sleeve: [C], fastdp: [] } }), B, C)[0]).toBe('sleeve');
    expect(remoteLinkKind(ann({ [B]: { sleeve: [C], fastdp: [] } }, true), B, C)[0]).toBe('encrypted');
    expect(remoteLinkKind(ann({ [B]: { sleeve: [A], fastdp: [A] } }), B, C)[0]).toBe('remote');
    expect(remoteLinkKind({ encryption: false }, B, C)[0]).toBe('remote');
  });

  it('colours our connections by state, encryption and datapath', () => {
    expect(connectionKind({ state: 'established', datapath: 'fastdp', encrypted: false })).toBe('fastdp');
    expect(connectionKind({ state: 'established', datapath: 'sleeve', encrypted: false })).toBe('sleeve');
    expect(connectionKind({ state: 'established', datapath: 'sleeve', encrypted: true })).toBe('encrypted');
    // A trusted-subnet peer: encrypted control channel, data on the kernel path unencrypted.
    expect(connectionKind({ state: 'established', datapath: 'fastdp', encrypted: true })).toBe('fastdp');
    expect(connectionKind({ state: 'established', datapath: null, encrypted: false })).toBe('up');
    expect(connectionKind({ state: 'connecting', datapath: null, encrypted: true })).toBe('pending');
    expect(connectionKind({ state: 'retrying', datapath: null, encrypted: true })).toBe('failed');
    expect(connectionKind({ state: 'failed', datapath: null, encrypted: false })).toBe('failed');
  });

  it('builds nodes (self on top), links and IPAM shares from the status', () => {
    const m = pageModel(example(), new Date('2026-01-01T00:00:00Z'));
    expect(m.nodes.map((n) => n.nickname)).toEqual(['node-a', 'node-b', 'node-c']);
    expect(m.nodes[0]).toMatchObject({ self: true, x: 320, y: 60, owned: 524288, share: 0.5, inUse: 3 });
    expect(m.nodes[1]).toMatchObject({ owned: 524288, share: 0.5, inUse: 7 });
    expect(m.nodes[2]).toMatchObject({ owned: 0, share: 0, inUse: null });
    const kinds = Object.fromEntries(m.links.map((l) => [`${l.a}-${l.b}`, l.kind]));
    // The live connection to C wins over the stale retrying target; B-C is pending on one side.
    expect(kinds).toEqual({ [`${A}-${B}`]: 'fastdp', [`${A}-${C}`]: 'encrypted', [`${B}-${C}`]: 'pending' });
    expect(m.unknownTargets).toEqual([{ address: '198.18.0.9:6783', state: 'retrying', info: 'connection refused' }]);
    expect(m.legend.map((l) => l.kind)).toContain('failed');
  });

  it('a failed connection to a known peer is a red link', () => {
    const s = example();
    s.connections = s.connections.filter((c) => !(c.peer === C && c.state === 'established'));
    const l = pageModel(s).links.find((x) => x.b === C && x.a === A)!;
    expect(l).toMatchObject({ kind: 'failed', colour: '#d62728', dashed: true });
  });

  it('serves /, its assets and the model; anything else is not its business (404 upstream)', () => {
    const handler = topologyPages(() => example());
    const call = (url: string, method = 'GET') => {
      let status = 0;
      let headers: Record<string, string> = {};
      let body = '';
      const res = {
        writeHead: (s: number, h: Record<string, string>) => ((status = s), (headers = h)),
        end: (b?: string) => (body = b ?? ''),
      } as unknown as ServerResponse;
      const handled = handler({ url, method } as IncomingMessage, res);
      return { handled, status, headers, body };
    };
    const root = call('/');
    expect(root).toMatchObject({ handled: true, status: 200 });
    expect(root.headers['content-security-policy']).toMatch(/default-src 'none'/);
    expect(root.body).toMatch(/<script src="page.js" defer><\/script>/);
    expect(call('/page.js').body).not.toMatch(/innerHTML/);
    expect(JSON.parse(call('/topology.json?x=1').body).self).toBe(A);
    expect(call('/topology.json', 'HEAD').body).toBe('');
    expect(call('/nope').handled).toBe(false);
    expect(call('/page.js/../x').handled).toBe(false);
  });
});

describe('report', () => {
  const cfg = {
    peers: [],
    passwords: ['hunter2-secret', 'second-secret'],
    passwordSource: 'file',
    passwordFile: '/etc/meshnet/password',
    ipallocRange: '10.32.0.0/12',
    ipallocInit: undefined,
    host: '0.0.0.0',
    port: 6783,
    noFastdp: false,
    trustedSubnets: [],
    connLimit: 200,
    stateDir: '/var/lib/meshnet',
    runDir: '/run/meshnet',
    metricsAddr: { host: '127.0.0.1', port: 6782 },
    foreground: true,
    logLevel: 'info',
  } as LaunchConfig;

  it('keeps the config but not the passwords', () => {
    const c = configWithoutSecrets(cfg);
    expect(c['password']).toEqual({ source: 'file', file: '/etc/meshnet/password', count: 2 });
    expect(JSON.stringify(c)).not.toContain('secret');
  });

  it('scrubs a password that appears anywhere, even in a key or a log line', () => {
    const s = scrubSecrets({ a: ['x hunter2-secret y'], 'hunter2-secret': 1, n: 5, pw: 'pw' }, ['hunter2-secret', 'pw']);
    expect(JSON.stringify(s)).toBe('{"a":["x [redacted] y"],"[redacted]":1,"n":5,"pw":"pw"}');
  });

  it('assembles versions, config, status, recent problems and metrics; never the password', () => {
    const r = buildReport({
      generatedAt: new Date('2026-01-01T00:00:00Z'),
      versions: { meshnet: '0.1.0', node: '20', kernel: '6', os: 'Linux', arch: 'x64', crypto: { backend: 'sodium-native', fallback: null }, io: { backend: 'native', reason: 'r' } },
      config: cfg,
      status: example(),
      recent: [{ time: '2026-01-01T00:00:00Z', level: 'warn', msg: 'someone logged hunter2-secret by mistake' }],
      metrics: ([
        { name: 'meshnet_peers', help: '', type: 'gauge' as never, aggregator: 'sum', values: [{ value: 3, labels: {} }] },
        { name: 'meshnet_connections', help: '', type: 'gauge' as never, aggregator: 'sum', values: [{ value: 2, labels: { state: 'established' } }] },
        { name: 'meshnet_nodejs_gc_duration_seconds', help: '', type: 'histogram' as never, aggregator: 'sum', values: [{ value: 1, labels: {} }] },
      ] as unknown as Parameters<typeof metricsSummary>[0]),
      uptimeSeconds: 12.4,
    });
    const text = JSON.stringify(r);
    expect(text).not.toContain('hunter2-secret');
    expect(text).not.toContain('second-secret');
    expect(r['summary']).toMatchObject({ peers: 3, connections: { established: 2, retrying: 2 }, datapaths: { fastdp: 1, sleeve: 1 } });
    expect(r['metrics']).toEqual({ meshnet_peers: 3, meshnet_connections: [{ labels: { state: 'established' }, value: 2 }] });
    expect((r['recentProblems'] as { msg: string }[])[0]!.msg).toBe('someone logged [redacted] by mistake');
  });

  it('summarises histograms by sum and count', () => {
    const m = metricsSummary(([
      {
        name: 'meshnet_x_seconds',
        help: '',
        type: 'histogram' as never,
        aggregator: 'sum',
        values: [
          { value: 1, labels: { le: 0.1 }, metricName: 'meshnet_x_seconds_bucket' },
          { value: 2.5, labels: {}, metricName: 'meshnet_x_seconds_sum' },
          { value: 4, labels: {}, metricName: 'meshnet_x_seconds_count' },
        ],
      },
    ] as unknown) as Parameters<typeof metricsSummary>[0]);
    expect(m).toEqual({ meshnet_x_seconds: [{ labels: { stat: 'sum' }, value: 2.5 }, { labels: { stat: 'count' }, value: 4 }] });
  });
});

describe('probes', () => {
  it('fail with "starting" until started, then list every failed condition', async () => {
    const h = new Health();
    h.addReadiness('ipam', () => ['ipam: awaiting consensus (quorum 2, known 1)']);
    h.addReadiness('api', async () => []);
    h.addLiveness('x', () => []);
    expect(await h.healthz()).toEqual({ ok: false, problems: ['router: starting'] });
    h.markStarted();
    expect(await h.healthz()).toEqual({ ok: true, problems: [] });
    expect(await h.readyz()).toEqual({ ok: false, problems: ['ipam: awaiting consensus (quorum 2, known 1)'] });
  });

  it('a check that throws or hangs is a problem line, and the probe still answers within a second', async () => {
    const h = new Health();
    h.addReadiness('boom', () => {
      throw new Error('netlink socket closed');
    });
    h.addReadiness('slow', () => new Promise<string[]>(() => undefined));
    h.markStarted();
    const t = Date.now();
    const r = await h.readyz();
    expect(Date.now() - t).toBeLessThan(1000);
    expect(r.problems).toEqual(['boom: netlink socket closed', 'slow: no answer within 800 ms']);
  });
});

describe('launch progress', () => {
  it('is quiet when quick; names the step it waits for when slow, and every later step', async () => {
    const lines: string[] = [];
    const p = new LaunchProgress((l) => lines.push(l), 50);
    p.step('stretching the password (argon2id)');
    expect(lines).toEqual([]);
    await new Promise((r) => setTimeout(r, 80));
    expect(lines).toEqual(['stretching the password (argon2id)...']);
    p.step('waiting for the Kubernetes node list');
    expect(lines[1]).toBe('waiting for the Kubernetes node list...');
    p.done();
    const quiet: string[] = [];
    const q = new LaunchProgress((l) => quiet.push(l), 50);
    q.step('quick');
    q.done();
    await new Promise((r) => setTimeout(r, 80));
    expect(quiet).toEqual([]);
  });

  it('says what the started router still waits for', () => {
    const s = example();
    expect(startupSummary(s)).toBeUndefined();
    s.ipam = { ...s.ipam, ready: false, status: 'awaiting ring from seed node-a (oldest node)' };
    s.discovery = { kubernetes: { state: 'error', nodes: 0, error: 'kubernetes discovery: 403 Forbidden: x' } };
    expect(startupSummary(s)).toBe("started; kubernetes discovery: 403 Forbidden: x; IPAM: awaiting ring from seed node-a (oldest node) (pods get addresses once IPAM is ready; see 'meshnet status ipam')");
  });

  it('formats `meshnet password`', () => {
    const text = formatPasswords({
      encryption: true,
      accepted: [
        { id: '1111111111111111', preferred: true, source: 'launch', addedAt: 'x', connections: 2 },
        { id: '2222222222222222', preferred: false, source: 'added', addedAt: '2026-01-01T00:00:00.000Z', connections: 0 },
      ],
      peers: [{ name: B, nickname: 'node-b', reachable: true, accepts: ['1111111111111111'] }, { name: C, nickname: '', reachable: false, accepts: null }],
      connections: [],
      roll: 'rolling',
    });
    expect(text).toBe(
      [
        'Accepted here (preferred first):',
        '  1111111111111111 preferred from launch, 2 connections',
        '  2222222222222222 accepted  added 2026-01-01T00:00:00.000Z, 0 connections',
        'Peers:',
        `  ${B}(node-b) accepts 1111111111111111`,
        `  ${C} has not reported its passwords - unreachable`,
        'Roll: rolling',
        '',
      ].join('\n'),
    );
  });
});
