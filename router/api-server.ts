// The control API: HTTP/JSON over a unix socket in the run dir, readable by
// root only (mode 0600, in a 0700 directory). Components register routes;
// handlers return a value (sent as JSON) or throw ApiError for a status code.

import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface ApiRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
}

export type Handler = (req: ApiRequest) => unknown;
/** A route that reads and answers the HTTP exchange itself (the CNI protocol). */
export type RawHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

const MAX_BODY = 1024 * 1024;

export class ApiServer {
  private readonly routes: Route[] = [];
  private readonly raw = new Map<string, RawHandler>();
  private server: Server | undefined;

  constructor(private readonly socketPath: string) {}

  /** Register `METHOD /path/:param`. */
  route(method: string, path: string, handler: Handler): void {
    const keys: string[] = [];
    const pattern = new RegExp(
      `^${path.replace(/:([a-zA-Z]+)/g, (_m, k: string) => {
        keys.push(k);
        return '([^/]+)';
      })}$`,
    );
    this.routes.push({ method, pattern, keys, handler });
  }

  /** Register a handler that owns the whole exchange for `METHOD /exact/path`. */
  rawRoute(method: string, path: string, handler: RawHandler): void {
    this.raw.set(`${method} ${path}`, handler);
  }

  async listen(): Promise<void> {
    mkdirSync(this.socketPath.replace(/\/[^/]+$/, ''), { recursive: true, mode: 0o700 });
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* none left over */
    }
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
    chmodSync(this.socketPath, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://meshnet');
    const raw = this.raw.get(`${req.method} ${url.pathname}`);
    if (raw) {
      try {
        return await raw(req, res);
      } catch (err) {
        if (!res.headersSent) return send(res, 500, { error: err instanceof Error ? err.message : String(err) });
        res.destroy();
        return;
      }
    }
    try {
      const body = await readBody(req);
      for (const r of this.routes) {
        if (r.method !== req.method) continue;
        const m = r.pattern.exec(url.pathname);
        if (!m) continue;
        const params: Record<string, string> = {};
        r.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1]!)));
        const result = await r.handler({ method: req.method, path: url.pathname, params, query: url.searchParams, body });
        return send(res, 200, result ?? { ok: true });
      }
      send(res, 404, { error: `no such endpoint: ${req.method} ${url.pathname}` });
    } catch (err) {
      if (err instanceof ApiError) return send(res, err.status, { error: err.message });
      send(res, 500, { error: err instanceof Error ? err.message : String(err) });
    }
  }
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ApiError(413, 'request body too large');
    chunks.push(c);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'request body is not JSON');
  }
}

function send(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
