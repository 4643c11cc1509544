import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installCni, meshnetConflist } from '../../../router/cni/install.js';
import { SUPPORTED_VERSIONS } from '../../../router/cni/version.js';

const ROOT = resolve(import.meta.dirname, '../../..');

describe('install-cni', () => {
  let dir: string;
  let pkg: string;
  let binDir: string;
  let confDir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshnet-install-'));
    // A package root of our own: the shim's source and a built Node plugin, no prebuilt shim.
    pkg = join(dir, 'pkg');
    mkdirSync(join(pkg, 'cni'), { recursive: true });
    mkdirSync(join(pkg, 'dist/cni'), { recursive: true });
    copyFileSync(join(ROOT, 'cni/shim.c'), join(pkg, 'cni/shim.c'));
    writeFileSync(join(pkg, 'dist/cni/plugin.js'), '');
    binDir = join(dir, 'opt/cni/bin');
    confDir = join(dir, 'etc/cni/net.d');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the conflist of DESIGN §4 with the absolute run dir', async () => {
    const r = await installCni({ binDir, confDir, runDir: '/run/meshnet-test', packageRoot: pkg, compilers: [] });
    expect(r.conflist).toBe(join(confDir, '10-meshnet.conflist'));
    expect(JSON.parse(readFileSync(r.conflist, 'utf8'))).toEqual({
      cniVersion: '1.0.0',
      name: 'meshnet',
      plugins: [
        { type: 'meshnet', runDir: '/run/meshnet-test', bridge: 'meshnet', mtu: 0, hairpinMode: true },
        { type: 'portmap', capabilities: { portMappings: true }, snat: true },
      ],
    });
    expect(meshnetConflist({ runDir: 'relative' }).plugins).toEqual(expect.arrayContaining([expect.objectContaining({ runDir: resolve('relative') })]));
  });

  it('compiles the shim when there is no prebuilt one, and it answers VERSION without any environment', async () => {
    const r = await installCni({ binDir, confDir, packageRoot: pkg });
    expect(r.kind).toBe('shim');
    expect(r.note).toMatch(/^compiled with /);
    expect(statSync(r.plugin).mode & 0o777).toBe(0o755);
    const out = execFileSync(r.plugin, [], { env: { CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"0.3.1"}' }).toString();
    expect(JSON.parse(out)).toEqual({ cniVersion: '0.3.1', supportedVersions: [...SUPPORTED_VERSIONS] });
    // Atomic writes leave no temp files behind.
    expect(readdirSync(binDir)).toEqual(['meshnet']);
    expect(readdirSync(confDir)).toEqual(['10-meshnet.conflist']);
  });

  it('copies a prebuilt shim that is current', async () => {
    mkdirSync(join(pkg, 'build/cni'), { recursive: true });
    execFileSync('cc', ['-O2', '-o', join(pkg, 'build/cni/meshnet'), join(pkg, 'cni/shim.c')]);
    const r = await installCni({ binDir, confDir, packageRoot: pkg, compilers: [] });
    expect(r).toMatchObject({ kind: 'shim', note: `copied ${join(pkg, 'build/cni/meshnet')}` });
  });

  it('falls back to a /bin/sh wrapper with absolute paths when nothing compiles', async () => {
    const r = await installCni({ binDir, confDir, packageRoot: pkg, compilers: ['/bin/false'], nodePath: '/usr/bin/node' });
    expect(r.kind).toBe('node');
    expect(r.note).toContain('no working C compiler');
    const text = readFileSync(r.plugin, 'utf8');
    expect(text.split('\n')[0]).toBe('#!/bin/sh');
    expect(text).toContain(`exec '/usr/bin/node' '${join(pkg, 'dist/cni/plugin.js')}' "$@"`);
    expect(statSync(r.plugin).mode & 0o777).toBe(0o755);
  });

  it('refuses the Node fallback when the plugin was never built', async () => {
    rmSync(join(pkg, 'dist'), { recursive: true });
    await expect(installCni({ binDir, confDir, packageRoot: pkg, kind: 'node' })).rejects.toThrow(/dist\/cni\/plugin\.js is missing/);
  });

  it('replaces an earlier install in place', async () => {
    await installCni({ binDir, confDir, packageRoot: pkg, kind: 'node', nodePath: '/usr/bin/node' });
    const r = await installCni({ binDir, confDir, packageRoot: pkg });
    expect(r.kind).toBe('shim');
    expect(readFileSync(r.plugin).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  });
});
