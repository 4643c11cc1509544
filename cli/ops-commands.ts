// `meshnet report` and `meshnet password ...`: thin clients of the control
// API, like every command but launch.

import { readFileSync } from 'node:fs';
import { ApiUnavailable, callApi } from '../router/api-client.js';
import { ConfigError, parseArgs, readPasswordFile } from '../router/config.js';
import type { RotationStatus } from '../router/rotation/service.js';
import { VERSION } from '../router/version.js';

export class OpsUsageError extends ConfigError {}

export const PASSWORD_USAGE = `usage: meshnet password [list] [--json]
       meshnet password add     --password-file FILE | --password PW
       meshnet password promote ID | --password-file FILE | --password PW  [--force]
       meshnet password remove  ID | --password-file FILE | --password PW  [--force]
Roll a new password with no connection dropped: 'add' on every host, then
'promote' on every host, then 'remove' the old one on every host
(docs/operations.md). Nothing is saved: put the new password into each
host's launch configuration before its next restart.`;

/** `meshnet report`: the daemon's report; without a daemon, what this host can say and exit 1. */
export async function reportCommand(argv: string[], runDir: (flags: Map<string, string | true>) => string): Promise<number> {
  const { positional, flags } = parseArgs(argv, { '--run-dir': 'value' });
  if (positional.length) throw new OpsUsageError(`report takes no arguments (got "${positional[0]}")`);
  try {
    const r = await callApi(runDir(flags), 'GET', '/report', undefined, 15_000);
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ApiUnavailable)) throw err;
    const partial = {
      report: { format: 1, generatedAt: new Date().toISOString(), partial: true },
      versions: { meshnet: VERSION, node: process.versions.node, kernel: (await import('node:os')).release() },
      router: { running: false, error: err.message },
    };
    process.stdout.write(`${JSON.stringify(partial, null, 2)}\n`);
    process.stderr.write(`meshnet: ${err.message}\n`);
    return 1;
  }
}

function secretArg(flags: Map<string, string | true>): string | undefined {
  const pw = flags.get('--password');
  const file = flags.get('--password-file');
  if (typeof pw === 'string' && typeof file === 'string') throw new OpsUsageError('give --password or --password-file, not both');
  if (typeof file === 'string') return readPasswordFile(file, (p) => readFileSync(p, 'utf8'));
  if (typeof pw === 'string') {
    if (pw.length === 0) throw new OpsUsageError('--password: the password is empty');
    return pw;
  }
  return undefined;
}

export async function passwordCommand(argv: string[], runDir: (flags: Map<string, string | true>) => string): Promise<number> {
  const { positional, flags } = parseArgs(argv, {
    '--run-dir': 'value',
    '--password': 'value',
    '--password-file': 'value',
    '--force': 'bool',
    '--json': 'bool',
  });
  const [sub = 'list', ...args] = positional;
  const dir = runDir(flags);
  const print = (r: { message: string }): number => {
    console.log(r.message);
    return 0;
  };
  switch (sub) {
    case 'list': {
      if (args.length) throw new OpsUsageError('password list takes no arguments');
      const s = await callApi<RotationStatus>(dir, 'GET', '/passwords');
      process.stdout.write(flags.has('--json') ? `${JSON.stringify(s, null, 2)}\n` : formatPasswords(s));
      return 0;
    }
    case 'add': {
      if (args.length) throw new OpsUsageError('password add takes the password from --password-file or --password, not as an argument');
      const password = secretArg(flags);
      if (password === undefined) throw new OpsUsageError('password add needs --password-file FILE or --password PW');
      return print(await callApi<{ message: string }>(dir, 'POST', '/passwords/add', { password }, 60_000));
    }
    case 'promote':
    case 'remove': {
      const password = secretArg(flags);
      if (args.length > 1 || (args.length === 1) === (password !== undefined)) {
        throw new OpsUsageError(`password ${sub} needs exactly one of: a password id (see 'meshnet password'), --password-file FILE, --password PW`);
      }
      const body = password !== undefined ? { password } : { id: args[0]!.toLowerCase() };
      return print(await callApi<{ message: string }>(dir, 'POST', `/passwords/${sub}`, { ...body, force: flags.has('--force') }, 60_000));
    }
    default:
      throw new OpsUsageError(`password: unknown subcommand "${sub}"\n${PASSWORD_USAGE}`);
  }
}

/** `meshnet password` as text. */
export function formatPasswords(s: RotationStatus): string {
  if (!s.encryption) return 'Encryption: disabled (no passwords)\n';
  const lines = ['Accepted here (preferred first):'];
  for (const a of s.accepted) {
    lines.push(`  ${a.id} ${a.preferred ? 'preferred' : 'accepted '} ${a.source === 'launch' ? 'from launch' : `added ${a.addedAt}`}, ${a.connections} connection${a.connections === 1 ? '' : 's'}`);
  }
  lines.push('Peers:');
  if (s.peers.length === 0) lines.push('  none');
  for (const p of s.peers) {
    const name = p.nickname ? `${p.name}(${p.nickname})` : p.name;
    lines.push(`  ${name} ${p.accepts ? `accepts ${p.accepts.join(', ')}` : 'has not reported its passwords'}${p.reachable ? '' : ' - unreachable'}`);
  }
  lines.push(`Roll: ${s.roll}`);
  return `${lines.join('\n')}\n`;
}
