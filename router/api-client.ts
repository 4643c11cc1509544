// Client of the control API (used by the CLI and the CNI plugin). Small on
// purpose: node:http over the unix socket, JSON in and out.

import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export class ApiUnavailable extends Error {
  constructor(
    readonly socketPath: string,
    readonly reason: string,
  ) {
    const hint = process.env['KUBERNETES_SERVICE_HOST']
      ? ''
      : existsSync('/var/run/secrets/kubernetes.io') || existsSync('/etc/kubernetes')
        ? '; on Kubernetes run it in the router\'s pod: kubectl -n kube-system exec <meshnet pod> -c meshnet -- meshnet status'
        : '';
    super(`no router is running (no control socket at ${socketPath}${reason === "ENOENT" || reason === "ECONNREFUSED" ? "" : `: ${reason}`})${hint}`);
    this.name = 'ApiUnavailable';
  }
}

export class ApiRequestFailed extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiRequestFailed';
  }
}

export function socketPath(runDir: string): string {
  return join(runDir, 'meshnet.sock');
}

export function callApi<T = unknown>(runDir: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<T> {
  const sock = socketPath(runDir);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: sock,
        method,
        path,
        headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {},
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let value: unknown;
          try {
            value = text ? JSON.parse(text) : undefined;
          } catch {
            return reject(new ApiRequestFailed(res.statusCode ?? 0, `bad answer from meshnet: ${text.slice(0, 200)}`));
          }
          if ((res.statusCode ?? 500) >= 400) {
            const msg = (value as { error?: string } | undefined)?.error ?? `HTTP ${res.statusCode}`;
            return reject(new ApiRequestFailed(res.statusCode ?? 500, msg));
          }
          resolve(value as T);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new ApiUnavailable(sock, err.code));
      else reject(new ApiUnavailable(sock, err.message));
    });
    req.end(payload);
  });
}
