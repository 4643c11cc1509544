// `meshnet report`, the probes and the metrics address with real daemons:
// the report never contains the password whether it came from the flag,
// a file or the environment; /healthz and /readyz say why; the metrics
// address is loopback unless asked, with a warning when it is not.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { establishedPeers, launch, logOf, meshnet } from '../harness/meshnet.js';

const FLAG_PW = 'report-flag-password-7f3a';
const FILE_PW = 'report-file-password-91bc';
const ENV_PW = 'report-env-password-c0d4';

async function http(h: TestHost, url: string, method = 'GET'): Promise<{ status: number; body: string }> {
  const r = await h.run(process.execPath, ['-e', `fetch(${JSON.stringify(url)}, { method: ${JSON.stringify(method)} }).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })))`]);
  return JSON.parse(r) as { status: number; body: string };
}

describe('report, probes, metrics address', () => {
  let net: TestNet;

  beforeAll(async () => {
    net = await TestNet.create(4);
  });

  afterAll(async () => {
    await net?.destroy();
  });

  it('the report never contains the password: flag, file and environment', async () => {
    const [h1, h2, h3] = net.hosts;
    // Three sources, one password each; all three hosts must agree to connect, so each accepts the others via rotation.
    const file = join(net.dir, 'pw.txt');
    writeFileSync(file, `${FILE_PW}\n`, { mode: 0o600 });
    await launch(h1!, { password: FLAG_PW, args: ['--ipalloc-init', 'consensus=1'] });
    await launch(h2!, { peers: [h1!.address], args: ['--password-file', file, '--ipalloc-init', 'observer'] });
    await launch(h3!, { peers: [h1!.address], env: { MESHNET_PASSWORD: ENV_PW }, args: ['--ipalloc-init', 'observer'] });
    // Let them connect (and make the passwords travel through as many code paths as possible).
    for (const [h, pw] of [
      [h1!, FILE_PW],
      [h1!, ENV_PW],
      [h2!, FLAG_PW],
      [h3!, FLAG_PW],
    ] as const) {
      const r = await meshnet(h, ['password', 'add', '--password', pw]);
      expect(r.code, r.stderr).toBe(0);
    }
    for (const h of [h2!, h3!]) await waitFor(async () => (await establishedPeers(h)).includes('h1'), 30_000, `${h.id} connects to h1`);

    const sources: Record<string, string> = { h1: 'flag', h2: 'file', h3: 'env' };
    for (const h of [h1!, h2!, h3!]) {
      const r = await meshnet(h, ['report']);
      expect(r.code, r.stderr).toBe(0);
      for (const pw of [FLAG_PW, FILE_PW, ENV_PW]) expect(r.stdout).not.toContain(pw);
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a JSON document probed field by field
      const rep = JSON.parse(r.stdout) as Record<string, any>;
      expect(rep['config'].password.source).toBe(sources[h.id]);
      expect(rep['config'].passwords).toBeUndefined();
      expect(rep['versions'].meshnet).toMatch(/^\d+\.\d+\.\d+/);
      expect(rep['versions'].node).toBe(process.versions.node);
      expect(rep['versions'].kernel).toBeTruthy();
      expect(rep['versions'].crypto.backend).toMatch(/sodium/);
      expect(['native', 'node']).toContain(rep['versions'].io.backend);
      expect(rep['status'].name).toMatch(/^[0-9a-f:]{17}$/);
      expect(Array.isArray(rep['recentProblems'])).toBe(true);
      expect(rep['metrics'].meshnet_peers).toBeGreaterThanOrEqual(2);
      expect(rep['passwords'].accepted.length).toBeGreaterThanOrEqual(2);
      expect(Array.isArray(rep['targets'])).toBe(true);
      // The log, which the report quotes from, never had it either.
      for (const pw of [FLAG_PW, FILE_PW, ENV_PW]) expect(logOf(h)).not.toContain(pw);
    }
    expect(JSON.parse((await meshnet(h2!, ['report'])).stdout).config.password.file).toBe(file);
  });

  it('the report quotes recent warnings and errors', async () => {
    // h2 dialled h1 before they shared a password: both logged the refusal, and the report quotes it.
    const rep = JSON.parse((await meshnet(net.host(2), ['report'])).stdout) as { recentProblems: { time: string; level: string; msg: string }[] };
    const refusal = rep.recentProblems.find((p) => /refused: .*password/.test(p.msg));
    expect(refusal, JSON.stringify(rep.recentProblems)).toBeDefined();
    expect(refusal!.level).toBe('warn');
    expect(Number.isNaN(Date.parse(refusal!.time))).toBe(false);
  });

  it('without a router: a partial report, one line on stderr, exit 1', async () => {
    const h4 = net.host(4);
    const r = await meshnet(h4, ['report']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no router is running/);
    expect(JSON.parse(r.stdout).router.running).toBe(false);
  });

  it('/healthz is ok and /readyz says what is missing while IPAM waits; unknown paths 404', async () => {
    const h4 = net.host(4);
    // Alone with a quorum of 3: healthy, but IPAM cannot be ready.
    await launch(h4, { args: ['--ipalloc-init', 'consensus=3'] });
    const health = await http(h4, 'http://127.0.0.1:6782/healthz');
    expect(health).toEqual({ status: 200, body: 'ok\n' });
    const ready = await http(h4, 'http://127.0.0.1:6782/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/^ipam: awaiting consensus \(quorum 2, known 1\)/m);
    expect(ready.body).not.toMatch(/control API/);
    expect((await http(h4, 'http://127.0.0.1:6782/nope')).status).toBe(404);
    expect((await http(h4, 'http://127.0.0.1:6782/healthz', 'POST')).status).toBe(405);
    // A ready router.
    expect(await http(net.host(1), 'http://127.0.0.1:6782/readyz')).toEqual({ status: 200, body: 'ready\n' });
  });

  it('metrics stay on loopback unless asked; a non-loopback address is used with a warning', async () => {
    const h4 = net.host(4);
    const listening = await h4.run('ss', ['-ltnH']);
    expect(listening).toMatch(/127\.0\.0\.1:6782/);
    expect(listening).not.toMatch(/0\.0\.0\.0:6782|198\.18\.[0-9.]+:6782/);
    expect((await meshnet(h4, ['stop'])).code).toBe(0);
    await launch(h4, { args: ['--ipalloc-init', 'consensus=3', '--metrics-addr', `${h4.address}:6782`] });
    expect(logOf(h4)).toMatch(/metrics and the topology page are served on a non-loopback address, as --metrics-addr asks/);
    // Reachable from another host on the underlay, as asked.
    expect((await http(net.host(1), `http://${h4.address}:6782/healthz`)).status).toBe(200);
  });
});
