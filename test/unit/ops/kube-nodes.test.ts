// The pure parts of Kubernetes discovery and seed-from-kubernetes: Node
// fields, list pages and watch lines, targets, the seed, backoff, and the
// launch flags and environment that switch it on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, KUBE_BACKOFF } from '../../../router/kube/backoff.js';
import { apiServerUrl, describeStatus, kubeApiFromEnv } from '../../../router/kube/client.js';
import { desiredTargets, diffTargets, internalIpOf, oldestNode, parseNodeList, parseWatchLine, targetOf, type KubeNode } from '../../../router/kube/nodes.js';
import { decideSeedRole, ipamInitFor, SeedWatch, seedStatusText } from '../../../router/kube/seed.js';
import { ConfigError, parseLaunchArgs, type ConfigEnv } from '../../../router/config.js';

const node = (name: string, createdAt: string, internalIp: string | null = '198.18.1.1'): KubeNode => ({ name, createdAt, internalIp });

describe('Node fields', () => {
  it('takes the first InternalIP, IPv4 preferred, ignoring other address types and junk', () => {
    expect(internalIpOf([{ type: 'Hostname', address: 'n1' }, { type: 'InternalIP', address: 'fd00::1' }, { type: 'InternalIP', address: '198.18.0.5' }])).toBe('198.18.0.5');
    expect(internalIpOf([{ type: 'ExternalIP', address: '198.18.0.9' }, { type: 'InternalIP', address: 'fd00::1' }])).toBe('fd00::1');
    expect(internalIpOf([{ type: 'InternalIP', address: 'not-an-ip' }, null, 7])).toBeNull();
    expect(internalIpOf(undefined)).toBeNull();
  });

  it('decodes a NodeList page and counts items that are not nodes', () => {
    const page = parseNodeList({
      metadata: { resourceVersion: '42', continue: 'abc' },
      items: [{ metadata: { name: 'a', creationTimestamp: '2024-01-01T00:00:00Z' }, status: { addresses: [{ type: 'InternalIP', address: '198.18.0.1' }] } }, { metadata: {} }, 'x'],
    });
    expect(page).toEqual({ nodes: [{ name: 'a', createdAt: '2024-01-01T00:00:00Z', internalIp: '198.18.0.1' }], continueToken: 'abc', resourceVersion: '42', malformed: 2 });
    expect(() => parseNodeList({ kind: 'Status' })).toThrow(/not a NodeList/);
  });

  it('decodes watch lines, refusing what is not an event', () => {
    expect(parseWatchLine('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"77"}}}')).toEqual({ type: 'BOOKMARK', resourceVersion: '77' });
    expect(parseWatchLine('{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}')).toEqual({ type: 'ERROR', code: 410, message: 'too old' });
    expect(parseWatchLine('{"type":"DELETED","object":{"metadata":{"name":"n","resourceVersion":"9"}}}')).toMatchObject({ type: 'DELETED', node: { name: 'n', internalIp: null }, resourceVersion: '9' });
    expect(() => parseWatchLine('nope')).toThrow(/not JSON/);
    expect(() => parseWatchLine('{"type":"ADDED","object":42}')).toThrow(/without "type" or "object"/);
    expect(() => parseWatchLine('{"type":"EXPLODED","object":{}}')).toThrow(/unknown event type/);
    expect(() => parseWatchLine('{"type":"ADDED","object":{"metadata":{}}}')).toThrow(/without a name/);
  });

  it('never throws anything but KubeDecodeError on arbitrary lines', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (line) => {
        try {
          parseWatchLine(line);
        } catch (err) {
          expect((err as Error).name).toBe('KubeDecodeError');
        }
      }),
    );
  });
});

describe('targets and the seed', () => {
  it('formats targets, IPv6 in brackets', () => {
    expect(targetOf('198.18.0.1')).toBe('198.18.0.1:6783');
    expect(targetOf('fd00::1')).toBe('[fd00::1]:6783');
    expect(apiServerUrl({ host: 'fd00::9', port: 443 })).toBe('https://[fd00::9]:443');
  });

  it('leaves out this node and local addresses; lists nodes without an address', () => {
    const d = desiredTargets([node('a', '', '198.18.0.1'), node('b', '', '198.18.0.2'), node('c', '', '198.18.0.3'), node('d', '', null)], { nodeName: 'a', localAddresses: new Set(['198.18.0.3']) });
    expect([...d.targets]).toEqual([['198.18.0.2:6783', 'b']]);
    expect(d.withoutAddress).toEqual(['d']);
    expect(diffTargets(new Map([['x', 'n1'], ['y', 'n2']]), new Map([['y', 'n2'], ['z', 'n3']]))).toEqual({ added: ['z'], removed: ['x'] });
  });

  it('the seed is the oldest node, ties by name, missing timestamps last', () => {
    expect(oldestNode([node('b', '2024-01-01T00:00:00Z'), node('a', '2024-01-01T00:00:00Z'), node('c', '2023-06-01T00:00:00Z')])!.name).toBe('c');
    expect(oldestNode([node('b', '2024-01-01T00:00:00Z'), node('a', '2024-01-01T00:00:00Z')])!.name).toBe('a');
    expect(oldestNode([node('a', ''), node('z', '2030-01-01T00:00:00Z')])!.name).toBe('z');
    expect(oldestNode([])).toBeUndefined();
  });

  it('a node that joins later never changes the seed, whatever order the list comes in', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(fc.string({ minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 1000 })), { selector: (t) => t[0], minLength: 1 }), (specs) => {
        const nodes = specs.map(([n, t]) => node(n, new Date(t * 1000).toISOString()));
        const seed = oldestNode(nodes)!;
        const later = node('\uffffnew', new Date(2000 * 1000).toISOString());
        expect(oldestNode([...nodes].reverse())!.name).toBe(seed.name);
        expect(oldestNode([later, ...nodes])!.name).toBe(seed.name);
      }),
    );
  });

  it('role: seed=<own peer name> on the oldest node, observer elsewhere, with the status words', () => {
    const seed = decideSeedRole('node-a', true, node('node-a', 'x'));
    expect(ipamInitFor(seed, '8a:00:00:00:00:01')).toBe('seed=8a:00:00:00:00:01');
    const follower = decideSeedRole('node-b', true, node('node-a', 'x'));
    expect(ipamInitFor(follower, '8a:00:00:00:00:02')).toBe('observer');
    expect(seedStatusText(follower, { ready: false, status: 'observer: waiting for a ring from another peer' })).toBe('awaiting ring from seed node-a (oldest node)');
    expect(seedStatusText(follower, { ready: true, status: 'ready' })).toBe('ready');
    const unknown = decideSeedRole('node-b', false, undefined, 'kubernetes discovery: 403 Forbidden: x');
    expect(ipamInitFor(unknown, 'x')).toBe('observer');
    expect(seedStatusText(unknown, { ready: false, status: 'x' })).toMatch(/^awaiting ring from the seed \(oldest node\): the node list could not be read at start \(kubernetes discovery: 403/);
  });

  it('a follower that became the oldest node, with no ring anywhere, asks for a restart after the grace time', () => {
    const w = new SeedWatch(decideSeedRole('node-b', true, node('node-a', 'x')), 1000);
    expect(w.check('node-a', false, 0)).toBeUndefined();
    expect(w.check('node-b', false, 100)).toBeUndefined();
    expect(w.check('node-b', false, 1099)).toBeUndefined();
    expect(w.check('node-b', false, 1100)).toMatch(/^ipam: this node is now the oldest node but started as a follower of node-a and no peer has a ring; restart it/);
    expect(w.check('node-b', true, 5000)).toBeUndefined();
    expect(new SeedWatch(decideSeedRole('node-a', true, node('node-a', 'x')), 0).check('node-a', false, 10)).toBeUndefined();
  });
});

describe('retries and errors', () => {
  it('backs off from 1 s doubling to 60 s with ±20 % jitter', () => {
    expect([0, 1, 2, 5, 6, 20].map((a) => backoffDelay(a, KUBE_BACKOFF, () => 0.5))).toEqual([1000, 2000, 4000, 32000, 60000, 60000]);
    expect(backoffDelay(0, KUBE_BACKOFF, () => 0)).toBe(800);
    expect(backoffDelay(10, KUBE_BACKOFF, () => 1)).toBe(72000);
  });

  it('names what to fix for each HTTP status', () => {
    expect(describeStatus(401, '').message).toBe('401 Unauthorized: the service account token was rejected');
    expect(describeStatus(403, '').message).toBe('403 Forbidden: ClusterRole meshnet must allow list and watch on nodes');
    expect(describeStatus(500, '{"message":"etcd down\\nmore"}').message).toBe('HTTP 500 from the API server: etcd down');
    expect(describeStatus(502, '<html>').message).toBe('HTTP 502 from the API server');
  });
});

describe('launch flags and environment', () => {
  const parse = (argv: string[], env: ConfigEnv = {}) => parseLaunchArgs(argv, env, () => 'file-password\n');
  const kubeEnv: ConfigEnv = { KUBERNETES_SERVICE_HOST: '198.18.0.1', KUBERNETES_SERVICE_PORT: '6443', NODE_NAME: 'node-a' };

  it('--peers-from-kubernetes needs the service variables, and says so', () => {
    expect(() => parse(['--peers-from-kubernetes'])).toThrow(new ConfigError('--peers-from-kubernetes: KUBERNETES_SERVICE_HOST is not set (not running in a Kubernetes pod?)'));
    expect(() => parse(['--peers-from-kubernetes'], { KUBERNETES_SERVICE_HOST: 'x' })).toThrow(/KUBERNETES_SERVICE_PORT is not set/);
    const cfg = parse(['--peers-from-kubernetes'], { ...kubeEnv, MESHNET_KUBE_CA_FILE: '/tmp/ca', KUBERNETES_SERVICE_HOST: '[fd00::1]' });
    expect(cfg.kubernetes).toEqual({ api: { host: 'fd00::1', port: 6443, tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token', caFile: '/tmp/ca' }, nodeName: 'node-a' });
    expect(kubeApiFromEnv({ KUBERNETES_SERVICE_HOST: 'h', KUBERNETES_SERVICE_PORT: '443', MESHNET_KUBE_TOKEN_FILE: '/t' }).tokenFile).toBe('/t');
  });

  it('seed-from-kubernetes needs --peers-from-kubernetes and NODE_NAME', () => {
    expect(() => parse(['--ipalloc-init', 'seed-from-kubernetes'], kubeEnv)).toThrow('--ipalloc-init: seed-from-kubernetes needs --peers-from-kubernetes');
    expect(() => parse(['--peers-from-kubernetes', '--ipalloc-init', 'seed-from-kubernetes'], { ...kubeEnv, NODE_NAME: '' })).toThrow(/needs NODE_NAME/);
    expect(parse(['--peers-from-kubernetes', '--ipalloc-init=seed-from-kubernetes'], kubeEnv).ipallocInit).toBe('seed-from-kubernetes');
  });

  it('MESHNET_PEERS adds peers separated by spaces or commas, without duplicates, and names itself in errors', () => {
    expect(parse(['198.18.0.1'], { MESHNET_PEERS: ' 198.18.0.2, 198.18.0.1:6783  host-c:7000 ' }).peers).toEqual(['198.18.0.1', '198.18.0.2', 'host-c:7000']);
    expect(parse([], { MESHNET_PEERS: '' }).peers).toEqual([]);
    expect(() => parse([], { MESHNET_PEERS: '198.18.0.1 bad_host!' })).toThrow(/^MESHNET_PEERS: invalid peer address "bad_host!"/);
  });

  it('an empty MESHNET_PASSWORD is an error, not an unencrypted mesh', () => {
    expect(() => parse([], { MESHNET_PASSWORD: '' })).toThrow(new ConfigError('MESHNET_PASSWORD is set but empty'));
    expect(parse(['--password-file', '/x'], { MESHNET_PASSWORD: '' }).passwordSource).toBe('file');
    expect(parse([], { MESHNET_PASSWORD: 'pw' }).passwordSource).toBe('env');
    expect(parse([], { MESHNET_PASSWORD: 'pw', MESHNET_PASSWORD_SOURCE: 'flag' }).passwordSource).toBe('flag');
  });
});
