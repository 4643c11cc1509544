// The daemon's side of the plugin protocol (see protocol.ts): decode the
// request, finish parked DELs first, run the command, answer. The control API
// mounts it at POST /cni with serveCniHttp(); handleCniRequest() is the same
// thing as a plain function for servers of other shapes.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CniCommands, CniLog } from './commands.js';
import { CniCode, CniError, errorResult, oneLine } from './errors.js';
import { listPending, removePending } from './pending.js';
import { CNI_EXIT_HEADER, decodeRequest, MAX_REQUEST_BYTES, type CniRequest } from './protocol.js';
import { LATEST_VERSION } from './version.js';

export interface CniHttpResponse {
  /** HTTP status: 200 whenever the body is a plugin answer (CNI errors included). */
  status: number;
  /** What the plugin prints on stdout. */
  stdout: string;
  /** The plugin's exit code (the X-Meshnet-Cni-Exit header). */
  exitCode: number;
}

/** Parked-DEL errors that can never succeed on replay; such files are dropped. */
const PERMANENT_CODES = new Set<number>([CniCode.INCOMPATIBLE_VERSION, CniCode.UNSUPPORTED_FIELD, CniCode.INVALID_ENV, CniCode.DECODE_FAILURE, CniCode.INVALID_CONFIG]);

export class CniService {
  private draining: Promise<void> | undefined;
  private readonly log: CniLog;
  /** Counters for metrics/status. */
  readonly stats = { requests: 0, errors: 0, pendingReplayed: 0, pendingDropped: 0 };

  constructor(
    private readonly commands: CniCommands,
    private readonly runDir: string,
    log?: CniLog,
  ) {
    this.log = log ?? (() => undefined);
  }

  async handleCniRequest(body: string | Uint8Array): Promise<CniHttpResponse> {
    this.stats.requests++;
    const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
    let req: CniRequest;
    try {
      if (Buffer.byteLength(text) > MAX_REQUEST_BYTES) throw new CniError(CniCode.IO_FAILURE, `plugin request larger than ${MAX_REQUEST_BYTES} bytes`);
      req = decodeRequest(text);
    } catch (err) {
      this.stats.errors++;
      return { status: 200, stdout: JSON.stringify(errorResult(err, LATEST_VERSION)), exitCode: 1 };
    }
    // A DEL parked while the daemon was away must land before any newer request
    // for the same container (podman restarts a container under the same ID).
    await this.drainPending();
    const out = await this.commands.execute(req);
    if (out.exitCode !== 0) this.stats.errors++;
    return { status: 200, stdout: out.stdout, exitCode: out.exitCode };
  }

  /** Replay parked DELs (without their netns: it is gone or may be reused). Single-flight. */
  drainPending(): Promise<void> {
    this.draining ??= this.drainOnce().finally(() => (this.draining = undefined));
    return this.draining;
  }

  private async drainOnce(): Promise<void> {
    let entries;
    try {
      entries = await listPending(this.runDir);
    } catch (err) {
      this.log('error', 'cni: cannot read parked DELs', { err: oneLine(err) });
      return;
    }
    for (const entry of entries) {
      let req: CniRequest;
      try {
        req = decodeRequest(entry.body);
      } catch (err) {
        this.log('error', 'cni: dropping unreadable parked request', { path: entry.path, err: oneLine(err) });
        this.stats.pendingDropped++;
        await removePending(entry.path);
        continue;
      }
      if (req.env.CNI_COMMAND !== 'DEL') {
        this.log('error', 'cni: dropping parked request that is not a DEL', { path: entry.path, command: req.env.CNI_COMMAND });
        this.stats.pendingDropped++;
        await removePending(entry.path);
        continue;
      }
      const out = await this.commands.execute({ env: { ...req.env, CNI_NETNS: '' }, config: req.config });
      if (out.exitCode === 0) {
        this.stats.pendingReplayed++;
        this.log('info', 'cni: finished parked DEL', { containerId: req.env.CNI_CONTAINERID, ifname: req.env.CNI_IFNAME });
        await removePending(entry.path);
        continue;
      }
      const code = errorCode(out.stdout);
      if (code !== undefined && PERMANENT_CODES.has(code)) {
        this.stats.pendingDropped++;
        this.log('error', 'cni: dropping parked DEL that cannot succeed', { path: entry.path, answer: out.stdout });
        await removePending(entry.path);
      }
      // Otherwise keep it; the next request or drain tries again.
    }
  }
}

function errorCode(stdout: string): number | undefined {
  try {
    const v = (JSON.parse(stdout) as { code?: unknown }).code;
    return typeof v === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Mount point for node:http: `if (req.method === 'POST' && req.url === CNI_HTTP_PATH) return serveCniHttp(service, req, res);` */
export async function serveCniHttp(service: CniService, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) {
      tooBig = true;
      break;
    }
    chunks.push(chunk);
  }
  let answer: CniHttpResponse;
  if (tooBig) {
    const err = new CniError(CniCode.IO_FAILURE, `plugin request larger than ${MAX_REQUEST_BYTES} bytes`);
    answer = { status: 200, stdout: JSON.stringify(errorResult(err, LATEST_VERSION)), exitCode: 1 };
  } else {
    answer = await service.handleCniRequest(Buffer.concat(chunks));
  }
  const body = Buffer.from(answer.stdout);
  res.writeHead(answer.status, {
    'content-type': 'application/json',
    'content-length': body.length,
    [CNI_EXIT_HEADER]: String(answer.exitCode),
    connection: 'close',
  });
  res.end(body);
}
