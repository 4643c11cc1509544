// `meshnet launch`: validate the flags here (so a bad flag is reported by
// the command the user typed), then start the daemon in the background and
// return only once its control socket answers — or print the one line that
// says why it could not start.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { callApi } from '../router/api-client.js';
import type { StatusJson } from '../router/status.js';
import { LaunchProgress, startupSummary } from './progress.js';
import { parseLaunchArgs, type LaunchConfig } from '../router/config.js';
import { Daemon } from '../router/daemon.js';

const READY_FD_ENV = 'MESHNET_READY_FD';
const START_TIMEOUT_MS = 120_000;

function configFrom(argv: string[]): LaunchConfig {
  return parseLaunchArgs(argv, process.env, (p) => readFileSync(p, 'utf8'));
}

export async function launch(argv: string[]): Promise<number> {
  const cfg = configFrom(argv);
  if (cfg.foreground) return runForeground(cfg);
  return startBackground(argv, cfg);
}

/** Run the daemon in this process until it is stopped. */
async function runForeground(cfg: LaunchConfig): Promise<number> {
  const readyFd = process.env[READY_FD_ENV] ? Number(process.env[READY_FD_ENV]) : undefined;
  delete process.env[READY_FD_ENV];
  const progress = (what: string): void => {
    if (readyFd === undefined) return;
    try {
      writeSync(readyFd, `${JSON.stringify({ progress: what })}\n`);
    } catch {
      /* parent gone */
    }
  };
  const tell = (msg: object): void => {
    if (readyFd === undefined) return;
    try {
      // Synchronous, so the parent has it before we could exit.
      writeSync(readyFd, `${JSON.stringify(msg)}\n`);
      closeSync(readyFd);
    } catch {
      /* parent gone */
    }
  };
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(cfg, undefined, progress);
  } catch (err) {
    tell({ error: (err as Error).message });
    throw err;
  }
  tell({ ok: true });
  const onSignal = (sig: string): void => void daemon.stop(`received ${sig}`);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('unhandledRejection', (err) => daemon.log.error({ err: String(err) }, 'unhandled rejection'));
  await daemon.done;
  daemon.log.flush?.();
  return 0;
}

/** Start `launch --foreground` detached, wait for its word, check the socket. */
async function startBackground(argv: string[], cfg: LaunchConfig): Promise<number> {
  mkdirSync(cfg.runDir, { recursive: true, mode: 0o700 });
  const logPath = join(cfg.runDir, 'meshnet.log');
  const logFd = openSync(logPath, 'a', 0o600);
  // The password travels to the daemon in its environment, never on its command line.
  const childArgs = stripPasswordFlag(argv);
  const env: NodeJS.ProcessEnv = { ...process.env, [READY_FD_ENV]: '3' };
  if (cfg.passwordSource === 'flag') {
    env['MESHNET_PASSWORD'] = cfg.passwords[0];
    // So the daemon's report says where the operator gave it.
    env['MESHNET_PASSWORD_SOURCE'] = 'flag';
  }
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  const child = spawn(process.execPath, [main, 'launch', '--foreground', ...childArgs], {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env,
  });
  closeSync(logFd);
  // Progress lines ({"progress": ...}) come first, then one final word; a step that takes long is printed.
  const shown = new LaunchProgress((line) => process.stderr.write(`meshnet: ${line}\n`));
  const word = await new Promise<{ ok?: boolean; error?: string }>((resolve) => {
    let text = '';
    let final: { ok?: boolean; error?: string } | undefined;
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    const timer = setTimeout(() => resolve({ error: `the daemon did not start within ${START_TIMEOUT_MS / 1000} s (see ${logPath})` }), START_TIMEOUT_MS);
    pipe.on('data', (d: Buffer) => {
      text += d.toString();
      let nl: number;
      while ((nl = text.indexOf('\n')) >= 0) {
        const line = text.slice(0, nl).trim();
        text = text.slice(nl + 1);
        try {
          const msg = JSON.parse(line) as { progress?: string; ok?: boolean; error?: string };
          if (typeof msg.progress === 'string') shown.step(msg.progress);
          else final = msg;
        } catch {
          /* not ours */
        }
      }
    });
    pipe.on('end', () => {
      clearTimeout(timer);
      shown.done();
      resolve(final ?? { error: `the daemon exited during start-up (see ${logPath})` });
    });
  });
  if (!word.ok) {
    child.kill('SIGKILL');
    throw new Error(word.error ?? 'the daemon failed to start');
  }
  child.unref();
  (child.stdio[3] as unknown as { destroy(): void }).destroy();
  await callApi(cfg.runDir, 'GET', '/version', undefined, 10_000);
  try {
    const note = startupSummary(await callApi<StatusJson>(cfg.runDir, 'GET', '/status', undefined, 5_000));
    if (note) process.stderr.write(`meshnet: ${note}\n`);
  } catch {
    /* the router is up; its status is a courtesy here */
  }
  return 0;
}

function stripPasswordFlag(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--password') {
      i++;
      continue;
    }
    if (a.startsWith('--password=')) continue;
    if (a === '--foreground') continue;
    out.push(a);
  }
  return out;
}
