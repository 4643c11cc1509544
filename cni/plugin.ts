// The Node fallback of the installed `meshnet` CNI plugin, for hosts where
// install-cni found no C compiler for cni/shim.c. It speaks the same protocol
// (router/cni/protocol.ts) and answers the same way without the daemon
// (router/cni/offline.ts). Installed as a /bin/sh wrapper that execs the
// absolute node path, since runtimes call plugins without PATH.
// Keep the import graph small: every module loaded here is start-up latency.

import { CniCode } from '../router/cni/errors.js';
import { localError, localVersionAnswer, offlineAnswer } from '../router/cni/offline.js';
import {
  CNI_EXIT_HEADER,
  CNI_HTTP_PATH,
  cniEnvOf,
  DEFAULT_RUN_DIR,
  encodeRequest,
  MAX_REQUEST_BYTES,
  peekConfig,
  socketPath,
  type CniOutput,
  type CniRequest,
} from '../router/cni/protocol.js';

const CONNECT_TIMEOUT_MS = 5_000;

function timeoutFor(command: string | undefined): number {
  return command === 'STATUS' ? 10_000 : command === 'DEL' ? 30_000 : 120_000;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REQUEST_BYTES) throw new Error('network config on stdin is larger than 1 MiB');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One request to the daemon; rejects with a short reason when it cannot be had. */
async function ask(sock: string, body: string, timeoutMs: number): Promise<CniOutput> {
  // node:http is loaded only when needed (VERSION never needs it): start-up time is this plugin's latency.
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: sock,
        method: 'POST',
        path: CNI_HTTP_PATH,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new Error(`${sock}: ${err.message}`)));
        res.on('end', () => {
          const exit = res.headers[CNI_EXIT_HEADER];
          if (res.statusCode !== 200 || typeof exit !== 'string' || !/^\d+$/.test(exit)) {
            reject(new Error(`${sock}: not a meshnet answer (HTTP ${res.statusCode})`));
            return;
          }
          resolve({ stdout: Buffer.concat(chunks).toString('utf8'), exitCode: Math.min(Number(exit), 255) });
        });
      },
    );
    const connectTimer = setTimeout(() => req.destroy(new Error(`${sock}: connect timed out`)), CONNECT_TIMEOUT_MS);
    req.on('socket', (s) => s.once('connect', () => clearTimeout(connectTimer)));
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${sock}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(connectTimer);
      reject(new Error(err.code && !err.message.startsWith(sock) ? `${sock}: ${err.code}` : err.message));
    });
    req.on('close', () => clearTimeout(connectTimer));
    req.end(body);
  });
}

async function main(): Promise<CniOutput> {
  const env = cniEnvOf(process.env);
  let stdin: string;
  try {
    stdin = await readStdin();
  } catch (err) {
    return localError(CniCode.IO_FAILURE, (err as Error).message, '');
  }
  if (env.CNI_COMMAND === 'VERSION') return localVersionAnswer(stdin);
  const peek = peekConfig(stdin);
  // Without a readable config we cannot know which daemon to ask (runDir).
  if (!peek.wellFormed) return localError(CniCode.DECODE_FAILURE, 'network config on stdin is not a well-formed JSON object', stdin);
  const runDir = peek.runDir ?? DEFAULT_RUN_DIR;
  if (!runDir.startsWith('/')) return localError(CniCode.INVALID_CONFIG, 'network config field "runDir" must be an absolute path', stdin, runDir);
  const req: CniRequest = { env, config: stdin };
  try {
    return await ask(socketPath(runDir), encodeRequest(req), timeoutFor(env.CNI_COMMAND));
  } catch (err) {
    return offlineAnswer(req, runDir, (err as Error).message);
  }
}

main().then(
  (out) => process.stdout.write(out.stdout, () => process.exit(out.exitCode)),
  (err: unknown) => {
    const out = localError(CniCode.INTERNAL, String((err as Error)?.message ?? err).split('\n')[0] ?? 'unknown error', '');
    process.stdout.write(out.stdout, () => process.exit(1));
  },
);
