#!/usr/bin/env node
// meshnet's command line. Every command but `launch` is a thin client of the
// daemon's control API. Errors are one line on stderr and a non-zero exit.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiUnavailable, callApi } from '../router/api-client.js';
import { ConfigError, DEFAULTS, parseArgs, parsePeerAddress } from '../router/config.js';
import type { StatusJson } from '../router/status.js';
import { formatStatus, type StatusView } from '../router/status-text.js';
import { VERSION } from '../router/version.js';
import { launch } from './launch.js';
import { passwordCommand, PASSWORD_USAGE, reportCommand } from './ops-commands.js';
import { removeHostState } from '../router/daemon.js';
import { DEFAULT_BIN_DIR, DEFAULT_CONF_DIR, installCni } from '../router/cni/install.js';

const USAGE = `usage: meshnet COMMAND [ARGS]
  launch [PEER...]            start the router (see 'meshnet launch --help')
  connect HOST[:PORT]... [--replace]
  forget HOST[:PORT]...
  status [peers|connections|ipam|targets] [--json]
  expose [CIDR]               give this host an address on the overlay
  rmpeer PEER                 reclaim a dead peer's address space (name or nickname)
  ipam resolve --keep PEER|RING   settle an IPAM conflict (see docs/ipam.md)
  stop                        stop the router; kernel state and allocations stay
  reset [--state-dir DIR]     give our address space away, stop, remove bridge, vxlan, TAP and state
  install-cni [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d]
  report                      one JSON document for a bug report (no secrets)
  password [list|add|promote|remove]   roll a new password without downtime
  version
Every command takes --run-dir DIR (env MESHNET_RUN_DIR, default ${DEFAULTS.runDir}).`;

const LAUNCH_HELP = `usage: meshnet launch [PEER...] [flags]
  --password PW | --password-file FILE   (env MESHNET_PASSWORD) encrypt all peer traffic
  --ipalloc-range CIDR     default ${DEFAULTS.ipallocRange} (env IPALLOC_RANGE)
  --ipalloc-init consensus[=N] | seed=PEER,... | observer
  --name NAME  --nickname NICK
  --host ADDR  --port ${DEFAULTS.port}
  --no-fastdp  --trusted-subnets CIDR,...  --mtu N
  --conn-limit N           default ${DEFAULTS.connLimit}
  --state-dir DIR          default ${DEFAULTS.stateDir}
  --run-dir DIR            default ${DEFAULTS.runDir} (env MESHNET_RUN_DIR)
  --metrics-addr HOST:PORT default ${DEFAULTS.metricsAddr}
  --foreground  --log-level LEVEL
  --peers-from-kubernetes  also connect to every Kubernetes Node (in-cluster API; env NODE_NAME)
Env MESHNET_PEERS adds peers (HOST[:PORT] separated by spaces or commas).
--ipalloc-init seed-from-kubernetes: the oldest Node creates the IPAM ring (needs --peers-from-kubernetes).`;

class UsageError extends Error {}

function runDirOf(flags: Map<string, string | true>): string {
  const v = flags.get('--run-dir');
  return typeof v === 'string' ? v : (process.env['MESHNET_RUN_DIR'] ?? DEFAULTS.runDir);
}

/** Return once the daemon has let go of its socket. */
/** The daemon's pid from its pid file (read before asking it to stop: it removes the file while stopping). */
function daemonPid(runDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(runDir, 'meshnet.pid'), 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Until the control socket is gone and the daemon's process has exited (it finishes `reset`'s clean-up first). */
async function waitStopped(runDir: string, pid: number | undefined): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    let answered = true;
    try {
      await callApi(runDir, 'GET', '/version', undefined, 1_000);
    } catch (err) {
      if (err instanceof ApiUnavailable) answered = false;
    }
    if (!answered && (pid === undefined || !alive(pid))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the daemon did not stop within 15 s');
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'launch':
      if (rest.includes('--help') || rest.includes('-h')) {
        console.log(LAUNCH_HELP);
        return 0;
      }
      return launch(rest);
    case 'connect': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value', '--replace': 'bool' });
      if (positional.length === 0 && !flags.has('--replace')) throw new UsageError('connect needs at least one HOST[:PORT]');
      for (const p of positional) parsePeerAddress(p, DEFAULTS.port);
      await callApi(runDirOf(flags), 'POST', '/connect', { peers: positional, replace: flags.has('--replace') });
      return 0;
    }
    case 'forget': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value' });
      if (positional.length === 0) throw new UsageError('forget needs at least one HOST[:PORT]');
      for (const p of positional) parsePeerAddress(p, DEFAULTS.port);
      await callApi(runDirOf(flags), 'POST', '/forget', { peers: positional });
      return 0;
    }
    case 'status': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value', '--json': 'bool' });
      const views = ['peers', 'connections', 'ipam', 'targets'];
      const view = positional[0];
      if (positional.length > 1 || (view !== undefined && !views.includes(view))) {
        throw new UsageError(`status: unknown view "${positional.join(' ')}" (one of ${views.join(', ')})`);
      }
      const s = await callApi<StatusJson>(runDirOf(flags), 'GET', '/status');
      if (flags.has('--json')) {
        // A view's JSON keeps its key, so `jq .peers` works on full and partial output alike.
        const part = view === undefined ? s : { [view]: s[view as 'peers' | 'connections' | 'ipam' | 'targets'] };
        process.stdout.write(`${JSON.stringify(part, null, 2)}\n`);
      } else process.stdout.write(formatStatus((view ?? 'summary') as StatusView, s));
      return 0;
    }
    case 'stop': {
      const { flags } = parseArgs(rest, { '--run-dir': 'value' });
      const runDir = runDirOf(flags);
      const pid = daemonPid(runDir);
      await callApi(runDir, 'POST', '/stop');
      await waitStopped(runDir, pid);
      return 0;
    }
    case 'expose': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value' });
      if (positional.length > 1) throw new UsageError('expose takes at most one CIDR');
      const r = await callApi<{ cidr: string }>(runDirOf(flags), 'POST', '/expose', positional[0] ? { cidr: positional[0] } : {});
      console.log(r.cidr);
      return 0;
    }
    case 'rmpeer': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value' });
      if (positional.length !== 1) throw new UsageError('rmpeer needs exactly one peer name or nickname');
      const r = await callApi<{ message: string }>(runDirOf(flags), 'DELETE', `/peer/${encodeURIComponent(positional[0]!)}`, undefined, 60_000);
      console.log(r.message);
      return 0;
    }
    case 'ipam': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value', '--keep': 'value' });
      const keep = flags.get('--keep');
      if (positional[0] !== 'resolve' || positional.length !== 1 || typeof keep !== 'string') throw new UsageError('usage: meshnet ipam resolve --keep PEER|RING');
      const r = await callApi<{ message: string }>(runDirOf(flags), 'POST', '/ipam/resolve', { keep }, 60_000);
      console.log(r.message);
      return 0;
    }
    case 'reset': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value', '--state-dir': 'value' });
      if (positional.length) throw new UsageError('reset takes no arguments');
      const runDir = runDirOf(flags);
      const pid = daemonPid(runDir);
      try {
        process.stderr.write('meshnet: handing this peer\'s address space to a live peer\n');
        const r = await callApi<{ handover: { message: string } }>(runDir, 'POST', '/reset', undefined, 60_000);
        process.stderr.write(`meshnet: ${r.handover.message}\nmeshnet: waiting for the router to stop and remove its devices and state\n`);
        await waitStopped(runDir, pid);
      } catch (err) {
        if (!(err instanceof ApiUnavailable)) throw err;
        // Not running: remove what it left behind ourselves.
        const stateDir = typeof flags.get('--state-dir') === 'string' ? (flags.get('--state-dir') as string) : DEFAULTS.stateDir;
        process.stderr.write(`meshnet: the router is not running; removing its devices and the state in ${stateDir}\n`);
        removeHostState(stateDir);
      }
      return 0;
    }
    case 'install-cni': {
      const { positional, flags } = parseArgs(rest, { '--run-dir': 'value', '--bin-dir': 'value', '--conf-dir': 'value' });
      if (positional.length) throw new UsageError(`install-cni takes no arguments (got "${positional[0]}")`);
      const str = (f: string): string | undefined => (typeof flags.get(f) === 'string' ? (flags.get(f) as string) : undefined);
      const binDir = str('--bin-dir') ?? DEFAULT_BIN_DIR;
      const confDir = str('--conf-dir') ?? DEFAULT_CONF_DIR;
      process.stderr.write(`meshnet: installing the CNI plugin into ${binDir} and its configuration into ${confDir}\n`);
      const r = await installCni({ binDir, confDir, runDir: runDirOf(flags) });
      process.stdout.write(`${r.plugin} (${r.kind === 'shim' ? 'compiled shim' : 'Node plugin'}: ${r.note})\n${r.conflist}\n`);
      return 0;
    }
    case 'report':
      return reportCommand(rest, runDirOf);
    case 'password':
      if (rest.includes('--help') || rest.includes('-h')) {
        console.log(PASSWORD_USAGE);
        return 0;
      }
      return passwordCommand(rest, runDirOf);
    case 'version':
      console.log(`meshnet ${VERSION}`);
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`meshnet: ${msg.split('\n')[0]}\n`);
    process.exit(err instanceof UsageError || err instanceof ConfigError ? 2 : 1);
  },
);
