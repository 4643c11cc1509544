// deploy/systemd: systemd itself parses the unit (systemd-analyze verify),
// and the unit says what meshnet needs it to say.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../../..');
const unitText = readFileSync(join(root, 'deploy/systemd/meshnet.service'), 'utf8');
const envText = readFileSync(join(root, 'deploy/systemd/meshnet.env'), 'utf8');
const CLI = '/usr/local/bin/meshnet';

/** The unit's [Section] → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (!current || eq < 0) throw new Error(`unit line outside a section or without '=': ${line}`);
    const key = line.slice(0, eq);
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)]);
  }
  return sections;
}

const service = parseUnit(unitText).get('Service')!;
const one = (key: string): string | undefined => service.get(key)?.at(-1);

function hasSystemdAnalyze(): boolean {
  return spawnSync('systemd-analyze', ['--version'], { stdio: 'ignore' }).status === 0;
}

describe.runIf(hasSystemdAnalyze())('systemd-analyze verify', () => {
  // verify checks that ExecStart's program exists, and the CLI is not
  // installed here: each check runs on a copy whose commands point at a
  // stand-in executable. Everything else is the unit as shipped.
  const dir = mkdtempSync(join(tmpdir(), 'meshnet-unit-'));
  const standIn = join(dir, 'meshnet');
  writeFileSync(standIn, '#!/bin/sh\nexit 0\n');
  chmodSync(standIn, 0o755);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Exit status and everything systemd said about the unit. */
  function verify(text: string, name = 'meshnet.service'): { status: number | null; output: string } {
    const file = join(dir, name);
    writeFileSync(file, text.replaceAll(CLI, standIn));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', file], { encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
  }

  it('accepts the unit without a single warning', () => {
    expect(unitText).toContain(CLI);
    expect(verify(unitText)).toEqual({ status: 0, output: '' });
  });

  // verify only warns (exit 0) about unknown keys and bad values, so a
  // clean unit means: exit 0 and nothing said. These prove that is enough.
  it('reports a typo in a key', () => {
    const r = verify(unitText.replace('RuntimeDirectoryPreserve=', 'RuntimeDirectoryPreserv='), 'typo.service');
    expect(r.output).toMatch(/Unknown key .*RuntimeDirectoryPreserv/);
  });

  it('reports a value it cannot parse', () => {
    const r = verify(unitText.replace('ProtectSystem=strict', 'ProtectSystem=very'), 'value.service');
    expect(r.output).toMatch(/ProtectSystem|protect system/i);
  });

  it('fails on a command that does not exist', () => {
    const r = verify(unitText.replace(`ExecStart=${CLI}`, 'ExecStart=/nonexistent/meshnet'), 'exec.service');
    expect(r.status).not.toBe(0);
    expect(r.output).toContain('/nonexistent/meshnet');
  });
});

describe('meshnet.service', () => {
  it('runs the router in the foreground with the password from a credential file', () => {
    const start = one('ExecStart')!;
    expect(start.startsWith(`${CLI} launch --foreground `)).toBe(true);
    expect(start).toContain('--password-file ${CREDENTIALS_DIRECTORY}/meshnet-password');
    expect(service.get('LoadCredential')).toEqual(['meshnet-password:/etc/meshnet/password']);
    // The password is never on a command line or in the environment.
    expect(unitText).not.toMatch(/--password[ =](?!file)/);
    expect(unitText).not.toMatch(/MESHNET_PASSWORD/);
  });

  it('takes peers, range and options from /etc/default/meshnet, split into arguments', () => {
    expect(service.get('EnvironmentFile')).toEqual(['-/etc/default/meshnet']);
    // Unbraced $VAR: systemd splits it on whitespace; ${VAR} would be one argument.
    expect(one('ExecStart')).toMatch(/ \$MESHNET_OPTS\b/);
    expect(one('ExecStart')).toMatch(/ \$MESHNET_PEERS\b/);
  });

  it('restarts on failure and stops through `meshnet stop`', () => {
    expect(one('Type')).toBe('exec');
    expect(one('Restart')).toBe('on-failure');
    expect(one('ExecStop')).toBe(`-${CLI} stop`);
  });

  it('keeps state and run dir, and the run dir survives a restart', () => {
    expect(one('StateDirectory')).toBe('meshnet');
    expect(one('RuntimeDirectory')).toBe('meshnet');
    expect(one('RuntimeDirectoryPreserve')).toBe('yes');
    expect(service.get('Environment')).toContain('MESHNET_RUN_DIR=/run/meshnet');
    expect(one('ExecStart')).toContain('--state-dir /var/lib/meshnet');
    expect(one('ReadWritePaths')?.split(/\s+/).sort()).toEqual(['/run/meshnet', '/var/lib/meshnet']);
  });

  it('is hardened without losing what netlink, TAP and netns work need', () => {
    expect(one('CapabilityBoundingSet')?.split(/\s+/).sort()).toEqual(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE']);
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('DevicePolicy')).toBe('closed');
    expect(service.get('DeviceAllow')).toContain('/dev/net/tun rw');
    expect(one('RestrictAddressFamilies')?.split(/\s+/)).toContain('AF_NETLINK');
    expect(one('RestrictNamespaces')?.split(/\s+/)).toContain('net');
    // Each of these would break the router (see the comments in the unit).
    for (const key of ['MemoryDenyWriteExecute', 'PrivateDevices', 'PrivateNetwork', 'ProtectKernelTunables', 'ProtectProc', 'ProcSubset', 'PrivateUsers', 'User', 'DynamicUser']) {
      expect(service.has(key), key).toBe(false);
    }
  });
});

describe('meshnet.env', () => {
  const assignments = new Map<string, string>();
  for (const raw of envText.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new Error(`meshnet.env: not KEY=value: ${line}`);
    assignments.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }

  it('sets exactly what the unit and meshnet read', () => {
    expect([...assignments.keys()].sort()).toEqual(['IPALLOC_RANGE', 'MESHNET_OPTS', 'MESHNET_PEERS']);
    expect(assignments.get('IPALLOC_RANGE')).toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    for (const peer of assignments.get('MESHNET_PEERS')!.split(/\s+/)) expect(peer).toMatch(/^[\w.-]+(:\d+)?$/);
  });
});
