// A minimal in-cluster client for the Kubernetes API: list Nodes (with
// paging) and watch them. Only what docs/deploy.md 3.1 asks for, so no
// client library: the bearer token is re-read before every request (the
// kubelet rotates projected tokens), TLS trusts only the service account's
// CA (never unverified), and every failure is one line saying what to fix.

import { readFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { KubeDecodeError, parseNodeList, parseWatchLine, type KubeNode, type WatchEvent } from './nodes.js';

export const DEFAULT_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
export const DEFAULT_CA_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';
export const PAGE_LIMIT = 500;
export const REQUEST_TIMEOUT_MS = 10_000;
export const WATCH_TIMEOUT_S = 300;

export interface KubeApiConfig {
  host: string;
  port: number;
  tokenFile: string;
  caFile: string;
}

export interface KubeEnv {
  KUBERNETES_SERVICE_HOST?: string | undefined;
  KUBERNETES_SERVICE_PORT?: string | undefined;
  MESHNET_KUBE_TOKEN_FILE?: string | undefined;
  MESHNET_KUBE_CA_FILE?: string | undefined;
}

/** The API server and credentials from the pod's environment; throws one line naming what is missing. */
export function kubeApiFromEnv(env: KubeEnv): KubeApiConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const portText = env.KUBERNETES_SERVICE_PORT;
  if (!host) throw new Error('--peers-from-kubernetes: KUBERNETES_SERVICE_HOST is not set (not running in a Kubernetes pod?)');
  if (!portText) throw new Error('--peers-from-kubernetes: KUBERNETES_SERVICE_PORT is not set (not running in a Kubernetes pod?)');
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535) throw new Error(`--peers-from-kubernetes: KUBERNETES_SERVICE_PORT "${portText}" is not a port number`);
  return {
    host: host.replace(/^\[(.*)\]$/, '$1'),
    port,
    tokenFile: env.MESHNET_KUBE_TOKEN_FILE || DEFAULT_TOKEN_FILE,
    caFile: env.MESHNET_KUBE_CA_FILE || DEFAULT_CA_FILE,
  };
}

/** https://host:port, with an IPv6 host in brackets. */
export function apiServerUrl(cfg: Pick<KubeApiConfig, 'host' | 'port'>): string {
  return `https://${isIP(cfg.host) === 6 ? `[${cfg.host}]` : cfg.host}:${cfg.port}`;
}

export type KubeErrorKind = 'unauthorized' | 'forbidden' | 'gone' | 'http' | 'tls' | 'credentials' | 'network' | 'timeout' | 'malformed';

/** A failed API request; the message is the operator's one line (without the "kubernetes discovery: " prefix). */
export class KubeError extends Error {
  constructor(
    readonly kind: KubeErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

function why(err: NodeJS.ErrnoException): string {
  return err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
}

/** A socket-level error as the operator's line. */
export function describeRequestError(err: NodeJS.ErrnoException, cfg: KubeApiConfig): KubeError {
  const code = err.code ?? '';
  if (TLS_UNTRUSTED.has(code)) return new KubeError('tls', `TLS: certificate not trusted by ${cfg.caFile}`);
  if (code === 'CERT_HAS_EXPIRED') return new KubeError('tls', "TLS: the API server's certificate has expired");
  if (code === 'CERT_NOT_YET_VALID') return new KubeError('tls', "TLS: the API server's certificate is not valid yet (check the node's clock)");
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new KubeError('tls', `TLS: the API server's certificate does not name ${cfg.host}`);
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) return new KubeError('tls', `TLS: ${err.message}`);
  return new KubeError('network', `cannot reach the API server at ${apiServerUrl(cfg)}: ${code || err.message}`);
}

/** An HTTP status other than 200 as the operator's line. */
export function describeStatus(status: number, body: string): KubeError {
  if (status === 401) return new KubeError('unauthorized', '401 Unauthorized: the service account token was rejected', status);
  if (status === 403) return new KubeError('forbidden', '403 Forbidden: ClusterRole meshnet must allow list and watch on nodes', status);
  if (status === 410) return new KubeError('gone', '410 Gone: the resource version is too old', status);
  let detail = '';
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    if (typeof m === 'string') detail = `: ${m.split('\n')[0]!.slice(0, 200)}`;
  } catch {
    /* not a Status object */
  }
  return new KubeError('http', `HTTP ${status} from the API server${detail}`, status);
}

export interface NodeList {
  nodes: KubeNode[];
  resourceVersion: string;
  pages: number;
  malformed: number;
}

export class KubeClient {
  constructor(
    readonly cfg: KubeApiConfig,
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  /** GET /api/v1/nodes, following metadata.continue to the end. */
  async listNodes(signal?: AbortSignal): Promise<NodeList> {
    const nodes: KubeNode[] = [];
    let cont = '';
    let resourceVersion = '';
    let pages = 0;
    let malformed = 0;
    do {
      const q = new URLSearchParams({ limit: String(PAGE_LIMIT) });
      if (cont) q.set('continue', cont);
      const res = await this.get(`/api/v1/nodes?${q}`, this.timeoutMs, signal);
      const body = await readAll(res, this.timeoutMs);
      let page;
      try {
        page = parseNodeList(JSON.parse(body));
      } catch (err) {
        throw new KubeError('malformed', err instanceof KubeDecodeError ? err.message : 'the node list is not JSON');
      }
      nodes.push(...page.nodes);
      malformed += page.malformed;
      resourceVersion = page.resourceVersion || resourceVersion;
      cont = page.continueToken;
      pages++;
    } while (cont);
    return { nodes, resourceVersion, pages, malformed };
  }

  /**
   * Watch Nodes from `resourceVersion` until the server ends the stream
   * (resolves) or the request fails (rejects). Lines that are not events are
   * passed to `onMalformed` and skipped.
   */
  async watchNodes(resourceVersion: string, onEvent: (e: WatchEvent) => void, onMalformed: (why: string) => void, signal?: AbortSignal): Promise<void> {
    const q = new URLSearchParams({ watch: '1', resourceVersion, allowWatchBookmarks: 'true', timeoutSeconds: String(WATCH_TIMEOUT_S) });
    const res = await this.get(`/api/v1/nodes?${q}`, this.timeoutMs, signal);
    // The server closes the stream after timeoutSeconds; silence well past that is a dead connection.
    res.socket.setTimeout((WATCH_TIMEOUT_S + 30) * 1000, () => res.destroy(new KubeError('timeout', 'the watch stream went silent')));
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        if (buf.length > 16 * 1024 * 1024) return res.destroy(new KubeError('malformed', 'a watch event is larger than 16 MiB'));
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          try {
            onEvent(parseWatchLine(line));
          } catch (err) {
            if (err instanceof KubeDecodeError) onMalformed(err.message);
            else return res.destroy(err as Error);
          }
        }
      });
      res.on('end', () => resolve());
      res.on('error', (err) => reject(err instanceof KubeError ? err : describeRequestError(err, this.cfg)));
      res.on('close', () => (res.complete ? resolve() : reject(signal?.aborted ? new KubeError('network', 'stopped') : new KubeError('network', 'the watch stream was cut'))));
    });
  }

  /** One GET with fresh credentials; resolves with a 200 response, rejects with a KubeError. */
  private get(path: string, timeoutMs: number, signal?: AbortSignal): Promise<IncomingMessage> {
    let token: string;
    let ca: Buffer;
    try {
      token = readFileSync(this.cfg.tokenFile, 'utf8').trim();
    } catch (err) {
      return Promise.reject(new KubeError('credentials', `cannot read the service account token ${this.cfg.tokenFile}: ${why(err as NodeJS.ErrnoException)}`));
    }
    if (!token) return Promise.reject(new KubeError('credentials', `the service account token ${this.cfg.tokenFile} is empty`));
    try {
      ca = readFileSync(this.cfg.caFile);
    } catch (err) {
      return Promise.reject(new KubeError('credentials', `cannot read the CA certificate ${this.cfg.caFile}: ${why(err as NodeJS.ErrnoException)}`));
    }
    const opts: RequestOptions = {
      host: this.cfg.host,
      port: this.cfg.port,
      path,
      method: 'GET',
      headers: { accept: 'application/json', authorization: `Bearer ${token}` },
      // Only the cluster's CA: no system roots, no unverified fallback.
      ca,
      rejectUnauthorized: true,
      // A fresh connection per request, so a rotated CA is used at once.
      agent: false,
    };
    if (signal) opts.signal = signal;
    return new Promise((resolve, reject) => {
      const req = request(opts, (res) => {
        clearTimeout(timer);
        if (res.statusCode === 200) return resolve(res);
        readAll(res, timeoutMs).then(
          (body) => reject(describeStatus(res.statusCode ?? 0, body)),
          () => reject(describeStatus(res.statusCode ?? 0, '')),
        );
      });
      const timer = setTimeout(() => req.destroy(new KubeError('timeout', `the API server at ${apiServerUrl(this.cfg)} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err instanceof KubeError) return reject(err);
        if (err.name === 'AbortError') return reject(new KubeError('network', 'stopped'));
        reject(describeRequestError(err, this.cfg));
      });
      req.end();
    });
  }
}

/** The whole body, within `timeoutMs`. */
function readAll(res: IncomingMessage, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => res.destroy(new KubeError('timeout', `the answer did not arrive within ${timeoutMs / 1000} s`)), timeoutMs);
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 64 * 1024 * 1024) return res.destroy(new KubeError('malformed', 'the answer is larger than 64 MiB'));
      chunks.push(c);
    });
    res.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    res.on('error', (err) => {
      clearTimeout(timer);
      reject(err instanceof KubeError ? err : new KubeError('network', err.message));
    });
  });
}
