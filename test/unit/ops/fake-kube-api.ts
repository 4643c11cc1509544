// A fake Kubernetes API server for the Node list (test only): HTTPS with a
// certificate the test makes with openssl, bearer-token checks, paging by
// `continue`, watch streams of JSON lines with bookmarks and 410 expiry,
// forced error statuses, and a log of every request. It runs inside a test
// namespace (see ns-agent.ts), never on the root namespace's network.

import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface FakeNodeSpec {
  name: string;
  createdAt?: string;
  /** InternalIP addresses (none: the node has no InternalIP). */
  ips?: string[];
}

export interface LoggedRequest {
  path: string;
  token: string;
  watch: boolean;
  resourceVersion: string | null;
  continueToken: string | null;
  limit: string | null;
}

interface Watch {
  res: ServerResponse;
}

export class FakeKubeApi {
  private server: Server | undefined;
  private readonly nodes = new Map<string, Record<string, unknown>>();
  private rv = 1000;
  /** Watches asking for a resource version below this get a 410 ERROR event. */
  private oldestRv = 0;
  private readonly watches = new Set<Watch>();
  tokens = new Set<string>();
  forcedStatus: number | null = null;
  /** Accept requests and never answer them. */
  hang = false;
  pageSize = 500;
  readonly requests: LoggedRequest[] = [];

  async start(opts: { host: string; port: number; certFile: string; keyFile: string; tokens: string[] }): Promise<number> {
    this.tokens = new Set(opts.tokens);
    const server = createServer({ cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile) }, (req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => resolve());
    });
    this.server = server;
    const addr = server.address();
    return typeof addr === 'object' && addr ? addr.port : opts.port;
  }

  async stop(): Promise<void> {
    for (const w of this.watches) w.res.destroy();
    this.watches.clear();
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private object(spec: FakeNodeSpec): Record<string, unknown> {
    return {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: { name: spec.name, creationTimestamp: spec.createdAt ?? '2024-01-01T00:00:00Z', resourceVersion: String(++this.rv) },
      status: { addresses: [...(spec.ips ?? []).map((address) => ({ type: 'InternalIP', address })), { type: 'Hostname', address: spec.name }] },
    };
  }

  /** Create or change a node; open watches get ADDED or MODIFIED. */
  setNode(spec: FakeNodeSpec): void {
    const type = this.nodes.has(spec.name) ? 'MODIFIED' : 'ADDED';
    const o = this.object(spec);
    this.nodes.set(spec.name, o);
    this.emit({ type, object: o });
  }

  deleteNode(name: string): void {
    const o = this.nodes.get(name);
    if (!o) return;
    this.nodes.delete(name);
    const gone = { ...o, metadata: { ...(o['metadata'] as object), resourceVersion: String(++this.rv) } };
    this.emit({ type: 'DELETED', object: gone });
  }

  /** A bookmark carrying the current resource version. */
  bookmark(): string {
    const rv = String(++this.rv);
    this.emit({ type: 'BOOKMARK', object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: rv } } });
    return rv;
  }

  /** Every resource version so far is too old: open watches get 410, and so do new ones from old versions. */
  expire(): void {
    this.oldestRv = ++this.rv;
    this.emit({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } });
    this.closeWatches();
  }

  /** A line that is not an event. */
  garbage(): void {
    for (const w of this.watches) w.res.write('{"type": "ADDED", "object": 42}\nnot json at all\n');
  }

  closeWatches(): void {
    for (const w of this.watches) w.res.end();
    this.watches.clear();
  }

  watchCount(): number {
    return this.watches.size;
  }

  private emit(event: unknown): void {
    for (const w of this.watches) w.res.write(`${JSON.stringify(event)}\n`);
  }

  private status(res: ServerResponse, code: number, message: string): void {
    const body = JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code });
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://x');
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const q = url.searchParams;
    const watch = q.get('watch') === '1' || q.get('watch') === 'true';
    this.requests.push({ path: url.pathname, token, watch, resourceVersion: q.get('resourceVersion'), continueToken: q.get('continue'), limit: q.get('limit') });
    if (this.hang) return;
    if (url.pathname !== '/api/v1/nodes' || req.method !== 'GET') return this.status(res, 404, 'the server could not find the requested resource');
    if (req.headers.accept !== 'application/json') return this.status(res, 406, 'expected Accept: application/json');
    if (!this.tokens.has(token)) return this.status(res, 401, 'Unauthorized');
    if (this.forcedStatus) return this.status(res, this.forcedStatus, this.forcedStatus === 403 ? 'nodes is forbidden: User "system:serviceaccount:kube-system:meshnet" cannot list resource "nodes"' : 'forced failure');
    if (watch) return this.openWatch(q, res);
    const all = [...this.nodes.values()].sort((a, b) => ((a['metadata'] as { name: string }).name < (b['metadata'] as { name: string }).name ? -1 : 1));
    const offset = Number(q.get('continue') || 0);
    const limit = Math.min(Number(q.get('limit') || all.length) || all.length, this.pageSize);
    const items = all.slice(offset, offset + limit);
    const more = offset + limit < all.length;
    const body = JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(offset + limit) } : {}) }, items });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  private openWatch(q: URLSearchParams, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const from = Number(q.get('resourceVersion') || 0);
    if (from < this.oldestRv) {
      res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
      return;
    }
    const w: Watch = { res };
    this.watches.add(w);
    res.on('close', () => this.watches.delete(w));
  }
}
