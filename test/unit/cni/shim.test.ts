// The C shim against the daemon's real HTTP handler (with in-memory edges),
// and alone (daemon down). The shim is compiled into a temp dir first.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CniCommands } from '../../../router/cni/commands.js';
import { CniCode } from '../../../router/cni/errors.js';
import { CniService, serveCniHttp } from '../../../router/cni/http.js';
import { listPending, parkPendingDel, PENDING_FILE_RE } from '../../../router/cni/pending.js';
import { CNI_EXIT_HEADER, decodeRequest, pendingDir, socketPath, type CniRequest } from '../../../router/cni/protocol.js';
import { SUPPORTED_VERSIONS } from '../../../router/cni/version.js';
import { MemAllocator, MemHostNetwork } from './fakes.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const NS = '/run/netns/pod1';

interface Run {
  code: number;
  stdout: string;
  json: Record<string, unknown>;
}

function runShim(bin: string, env: Record<string, string>, stdin: string): Promise<Run> {
  return new Promise((done, fail) => {
    // No PATH, no HOME: what podman's cleanup gives a plugin.
    const child = spawn(bin, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.on('error', fail);
    child.on('close', (code) => {
      let json: Record<string, unknown> = {};
      try {
        json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : {};
      } catch {
        /* leave empty; the test looks at stdout */
      }
      done({ code: code ?? -1, stdout, json });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdin);
  });
}

describe('C shim', () => {
  let dir: string;
  let bin: string;
  let runDir: string;
  let alloc: MemAllocator;
  let net: MemHostNetwork;
  let service: CniService;
  let server: Server | undefined;
  let seen: CniRequest[];

  const conf = (extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', runDir, bridge: 'meshnet', mtu: 0, hairpinMode: true, ...extra });
  const env = (command: string, id = 'c1'): Record<string, string> => ({ CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: NS, CNI_IFNAME: 'eth0' });

  async function listen(handler: Parameters<typeof createServer>[0]): Promise<void> {
    server = createServer(handler);
    await new Promise<void>((r) => server!.listen(socketPath(runDir), r));
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'meshnet-shim-'));
    bin = join(dir, 'meshnet');
    execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin, join(ROOT, 'cni/shim.c')]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(async () => {
    runDir = mkdtempSync(join(dir, 'run-'));
    alloc = new MemAllocator();
    net = new MemHostNetwork();
    net.namespaces.add(NS);
    const commands = new CniCommands({ allocator: alloc, hostNetwork: net, defaultMtu: () => 1400, parkDel: (r) => parkPendingDel(runDir, r).then(() => undefined) });
    service = new CniService(commands, runDir);
    seen = [];
    await listen((req, res) => {
      void serveCniHttp(service, req, res);
    });
    const orig = service.handleCniRequest.bind(service);
    service.handleCniRequest = async (body) => {
      seen.push(decodeRequest(String(body)));
      return orig(body);
    };
  });
  afterEach(async () => {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    server = undefined;
  });

  it('answers VERSION itself with the same list as the daemon', async () => {
    const r = await runShim(bin, { CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '0.4.0', supportedVersions: [...SUPPORTED_VERSIONS] });
    expect(seen).toHaveLength(0);
    const empty = await runShim(bin, { CNI_COMMAND: 'VERSION' }, '');
    expect(empty.json).toEqual({ cniVersion: '1.1.0', supportedVersions: [...SUPPORTED_VERSIONS] });
  });

  it('forwards ADD and DEL and prints the daemon answer with its exit code', async () => {
    const add = await runShim(bin, { ...env('ADD'), CNI_ARGS: 'IgnoreUnknown=1', HOME: '/root' }, conf());
    expect(add.code).toBe(0);
    expect((add.json.ips as { address: string }[])[0]!.address).toBe('198.19.9.2/24');
    expect(seen[0]!.env).toEqual({ ...env('ADD'), CNI_ARGS: 'IgnoreUnknown=1' });
    expect(seen[0]!.config).toBe(conf());
    const del = await runShim(bin, env('DEL'), conf());
    expect(del).toMatchObject({ code: 0, stdout: '' });
    expect(alloc.held.size).toBe(0);
  });

  it('passes CNI errors through with exit code 1', async () => {
    const r = await runShim(bin, env('ADD'), conf({ bridge: 'not a name' }));
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ cniVersion: '1.0.0', code: CniCode.INVALID_CONFIG });
    expect(r.json.msg).toContain('not a name');
    const bad = await runShim(bin, env('ADD'), conf({ cniVersion: '0.2.0' }));
    expect(bad.json).toMatchObject({ code: CniCode.INCOMPATIBLE_VERSION, msg: 'unsupported cniVersion "0.2.0"' });
  });

  it('carries any config and env value to the daemon byte for byte (property)', async () => {
    const layouts = [(o: object) => JSON.stringify(o), (o: object) => JSON.stringify(o, null, '\t'), (o: object) => `\r\n ${JSON.stringify(o, null, 1).replace(/\n/g, '\r\n')} \n`];
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.nat(2), async (value, arg, layout) => {
        seen = [];
        const stdin = layouts[layout]!({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet', weird: value, runDir, list: [value, { v: value }] });
        // Env values cannot hold NUL.
        const cleanArg = arg.replace(/\0/g, '');
        await runShim(bin, { CNI_COMMAND: 'ADD', CNI_ARGS: cleanArg }, stdin);
        expect(seen).toHaveLength(1);
        expect(seen[0]!.config).toBe(stdin);
        expect(seen[0]!.env.CNI_ARGS).toBe(cleanArg);
      }),
      { numRuns: 40 },
    );
  });

  it('finds the top-level runDir in any well-formed config (property)', async () => {
    const other = fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== 'runDir' && k !== 'cniVersion'), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 });
    // Decoys: the same key names nested deeper must not be taken.
    const decoy = fc.record({ runDir: fc.string(), cniVersion: fc.string(), nested: fc.record({ runDir: fc.constant('/nowhere') }) });
    await fc.assert(
      fc.asyncProperty(other, decoy, fc.nat(6), fc.boolean(), async (extra, trap, at, pretty) => {
        seen = [];
        const entries = Object.entries({ ...extra, trap: [trap], obj: trap });
        entries.splice(at % (entries.length + 1), 0, ['runDir', runDir], ['cniVersion', '1.0.0']);
        const stdin = JSON.stringify(Object.fromEntries(entries), null, pretty ? 2 : undefined);
        await runShim(bin, { CNI_COMMAND: 'STATUS' }, stdin);
        expect(seen).toHaveLength(1);
      }),
      { numRuns: 60 },
    );
  });

  it.each(['', '   ', '{', '{"cniVersion": "1.0.0", oops}', '{"a": }', '{"a": 1,}', '[{"runDir": "/x"}]', '{"a": 1} trailing', '{"a": "unterminated}'])(
    'answers malformed stdin %j with code 6 without asking anyone',
    async (stdin) => {
      const r = await runShim(bin, env('ADD'), stdin);
      expect(r.code).toBe(1);
      expect(r.json.code).toBe(CniCode.DECODE_FAILURE);
      expect(seen).toHaveLength(0);
    },
  );

  it('reads runDir only from the top level of the config', async () => {
    const other = mkdtempSync(join(dir, 'other-'));
    const stdin = JSON.stringify({ cniVersion: '1.0.0', name: 'm', type: 'meshnet', prevResult: { runDir: other }, args: { x: ['{', '"runDir"'] }, runDir });
    const r = await runShim(bin, env('ADD'), stdin);
    expect(r.code).toBe(0);
    expect(seen).toHaveLength(1);
  });

  it('refuses a relative runDir and stdin over 1 MiB', async () => {
    const rel = await runShim(bin, env('ADD'), conf({ runDir: 'run/meshnet' }));
    expect(rel.json.code).toBe(CniCode.INVALID_CONFIG);
    const big = await runShim(bin, env('ADD'), conf({ pad: 'x'.repeat(1 << 20) }));
    expect(big.json.code).toBe(CniCode.IO_FAILURE);
  });

  describe('without the daemon', () => {
    beforeEach(async () => {
      // Closing the server leaves the socket file behind, like a daemon that died.
      await new Promise((r) => server!.close(r));
      server = undefined;
      writeFileSync(socketPath(runDir), '');
    });

    it.each([
      ['ADD', CniCode.TRY_AGAIN_LATER],
      ['CHECK', CniCode.TRY_AGAIN_LATER],
      ['GC', CniCode.TRY_AGAIN_LATER],
      ['STATUS', CniCode.NOT_AVAILABLE],
      ['FROB', CniCode.INVALID_ENV],
    ])('%s gets code %i', async (cmd, code) => {
      const r = await runShim(bin, env(cmd), conf());
      expect(r.code).toBe(1);
      expect(r.json).toMatchObject({ cniVersion: '1.0.0', code });
      expect(String(r.json.msg)).toContain(cmd === 'FROB' ? 'FROB' : 'meshnet daemon not reachable');
    });

    it('parks a DEL, and the daemon finishes it before anything else', async () => {
      alloc.held.set('c1/eth0', '198.19.9.2');
      const r = await runShim(bin, env('DEL'), conf());
      expect(r).toMatchObject({ code: 0, stdout: '' });
      const files = readdirSync(pendingDir(runDir));
      expect(files).toHaveLength(1);
      expect(files[0]).toMatch(PENDING_FILE_RE);
      const parked = decodeRequest(readFileSync(join(pendingDir(runDir), files[0]!), 'utf8'));
      expect(parked).toEqual({ env: env('DEL'), config: conf() });
      // The daemon comes back: the first request it serves drains the parked DEL first.
      const ready = await service.handleCniRequest(JSON.stringify({ env: { CNI_COMMAND: 'STATUS' }, config: conf({ cniVersion: '1.1.0' }) }));
      expect(ready.exitCode).toBe(0);
      expect(alloc.held.size).toBe(0);
      expect(readdirSync(pendingDir(runDir))).toHaveLength(0);
    });

    it('fails a DEL with code 5 when it cannot be parked', async () => {
      const r = await runShim(bin, env('DEL'), conf({ runDir: '/proc/meshnet-cannot-exist' }));
      expect(r.code).toBe(1);
      expect(r.json.code).toBe(CniCode.IO_FAILURE);
      expect(r.json.details).toContain('/proc/meshnet-cannot-exist/cni-pending');
    });
  });

  it('treats an answer that is not meshnet’s as the daemon being away', async () => {
    await new Promise((r) => server!.close(r));
    await listen((_req, res) => {
      res.writeHead(404, { [CNI_EXIT_HEADER]: '0' }).end('nope');
    });
    const r = await runShim(bin, env('ADD'), conf());
    expect(r.json.code).toBe(CniCode.TRY_AGAIN_LATER);
    expect(String(r.json.msg)).toContain('not a meshnet answer');
    await new Promise((r2) => server!.close(r2));
    await listen((_req, res) => {
      res.writeHead(200).end('{}');
    });
    expect((await runShim(bin, env('ADD'), conf())).json.code).toBe(CniCode.TRY_AGAIN_LATER);
  });

  it('reads an answer without Content-Length up to the end of the connection', async () => {
    await new Promise((r) => server!.close(r));
    await listen((_req, res) => {
      res.socket!.end(`HTTP/1.1 200 OK\r\n${CNI_EXIT_HEADER}: 3\r\n\r\n{"partial":true}`);
    });
    const r = await runShim(bin, env('ADD'), conf());
    expect(r.code).toBe(3);
    expect(r.json).toEqual({ partial: true });
  });
});

describe('CniService', () => {
  let runDir: string;
  let alloc: MemAllocator;
  let service: CniService;
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet' });

  beforeEach(() => {
    runDir = mkdtempSync(join(tmpdir(), 'meshnet-svc-'));
    alloc = new MemAllocator();
    const net = new MemHostNetwork();
    service = new CniService(new CniCommands({ allocator: alloc, hostNetwork: net, defaultMtu: () => 1400 }), runDir);
  });
  afterEach(() => rmSync(runDir, { recursive: true, force: true }));

  it.each(['', 'null', '[]', '{"env":1,"config":""}', '{"env":{"CNI_COMMAND":2},"config":""}', '{"env":{},"config":{}}'])(
    'answers an undecodable request %j with code 6',
    async (body) => {
      const r = await service.handleCniRequest(body);
      expect(r.status).toBe(200);
      expect(r.exitCode).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: CniCode.DECODE_FAILURE });
    },
  );

  it('drops parked requests that are not DELs or can never succeed, keeps transient failures', async () => {
    alloc.held.set('c1/eth0', '198.19.9.2');
    await parkPendingDel(runDir, { env: { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }, config: conf });
    await parkPendingDel(runDir, { env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'x', CNI_IFNAME: 'eth0' }, config: '{bad' });
    mkdirSync(pendingDir(runDir), { recursive: true });
    writeFileSync(join(pendingDir(runDir), 'del-0000000000001-1-aa.json'), 'not json');
    alloc.failRelease = true;
    await parkPendingDel(runDir, { env: { CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0' }, config: conf });
    await service.drainPending();
    const left = await listPending(runDir);
    expect(left).toHaveLength(1);
    expect(decodeRequest(left[0]!.body).env.CNI_CONTAINERID).toBe('c1');
    expect(service.stats.pendingDropped).toBe(3);
    alloc.failRelease = false;
    await service.drainPending();
    expect(await listPending(runDir)).toHaveLength(0);
    expect(alloc.held.size).toBe(0);
    expect(existsSync(pendingDir(runDir))).toBe(true);
  });
});
