// Driving real meshnet daemons inside TestNet hosts: the CLI runs in the
// host's namespace with the host's own run and state dirs.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StatusJson } from '../../router/status.js';
import { callApi } from '../../router/api-client.js';
import type { ExecResult, TestHost } from './netns.js';

const here = fileURLToPath(new URL('.', import.meta.url));
/** The built CLI (the e2e global setup builds it). */
export const MESHNET_MAIN = resolve(here, here.includes('/dist/') ? '../../cli/main.js' : '../../dist/cli/main.js');

export interface LaunchOptions {
  peers?: string[];
  password?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
}

/** Run `meshnet ARGS --run-dir <host's>` in the host's namespace. */
export function meshnet(host: TestHost, args: string[], env?: NodeJS.ProcessEnv): Promise<ExecResult> {
  return host.exec(process.execPath, [MESHNET_MAIN, ...args, '--run-dir', host.runDir], { env: { ...process.env, ...env }, timeoutMs: 150_000 });
}

/** `meshnet launch` with the host's dirs, address and nickname; throws with stderr if it fails. */
export async function launch(host: TestHost, opts: LaunchOptions = {}): Promise<void> {
  const args = [
    'launch',
    ...(opts.peers ?? []),
    '--host',
    host.address,
    '--nickname',
    host.id,
    '--state-dir',
    host.stateDir,
    '--metrics-addr',
    '127.0.0.1:6782',
    '--ipalloc-range',
    '198.19.0.0/16',
    ...(opts.password ? ['--password', opts.password] : []),
    ...(opts.args ?? []),
  ];
  const r = await meshnet(host, args, opts.env);
  if (r.code !== 0) throw new Error(`launch on ${host.id} failed (${r.code}): ${r.stderr.trim()}`);
}

/**
 * The host's status document, read from its control socket directly (what
 * `meshnet status --json` prints): tests poll it many times a second, and a
 * Node start per poll would load the two cores more than the daemons do.
 * `statusViaCli` goes through the CLI; the mesh e2e checks both agree.
 */
export async function status(host: TestHost): Promise<StatusJson> {
  try {
    return await callApi<StatusJson>(host.runDir, 'GET', '/status', undefined, 60_000);
  } catch (err) {
    throw new Error(`status on ${host.id} failed: ${(err as Error).message}`, { cause: err });
  }
}

export async function statusViaCli(host: TestHost): Promise<StatusJson> {
  const r = await meshnet(host, ['status', '--json']);
  if (r.code !== 0) throw new Error(`status on ${host.id} failed: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as StatusJson;
}

export function daemonPid(host: TestHost): number {
  return Number(readFileSync(join(host.runDir, 'meshnet.pid'), 'utf8').trim());
}

/** kill -9 the daemon: no goodbye to anyone. */
export function crashDaemon(host: TestHost): void {
  process.kill(daemonPid(host), 'SIGKILL');
}

export function logOf(host: TestHost): string {
  try {
    return readFileSync(join(host.runDir, 'meshnet.log'), 'utf8');
  } catch {
    return '';
  }
}

/** Established peer nicknames as the host sees them. */
export async function establishedPeers(host: TestHost): Promise<string[]> {
  const s = await status(host);
  return s.connections.filter((c) => c.state === 'established').map((c) => c.nickname ?? '').sort();
}

/** A daemon's Prometheus metrics text (the harness launches it with --metrics-addr 127.0.0.1:6782). */
export async function metricsText(h: TestHost): Promise<string> {
  return (await h.exec(process.execPath, ['-e', `fetch('http://127.0.0.1:6782/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`])).stdout;
}

/** Gossip payload bytes a daemon has sent, all channels. */
export async function gossipBytesSent(h: TestHost): Promise<number> {
  return [...(await metricsText(h)).matchAll(/^meshnet_gossip_sent_bytes_total\{channel="[^"]+"\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}
