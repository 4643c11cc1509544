// Real daemons in network namespaces: discovery, crash and restart, routing
// around a cut link, password refusal, forget, bad input.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { crashDaemon, establishedPeers, gossipBytesSent, launch, logOf, meshnet, metricsText, status, statusViaCli } from '../harness/meshnet.js';

const PASSWORD = 'e2e mesh secret';

describe('mesh of five real daemons', () => {
  let net: TestNet;
  let hosts: TestHost[];

  beforeAll(async () => {
    net = await TestNet.create(6);
    hosts = net.hosts.slice(0, 5);
    // Each host knows only h1.
    await launch(hosts[0]!, { password: PASSWORD });
    await Promise.all(hosts.slice(1).map((h) => launch(h, { peers: [hosts[0]!.address], password: PASSWORD })));
  });

  afterAll(async () => {
    await net?.destroy();
  });

  const others = (h: TestHost): string[] => hosts.filter((x) => x !== h).map((x) => x.id).sort();

  it('every host ends up connected to every other (discovery through gossip)', async () => {
    for (const h of hosts) {
      await waitFor(async () => JSON.stringify(await establishedPeers(h)) === JSON.stringify(others(h)), 30_000, `${h.id} fully meshed`);
    }
    const s = await status(hosts[2]!);
    expect(s.peers.map((p) => p.nickname).sort()).toEqual(['h1', 'h2', 'h3', 'h4', 'h5']);
    expect(s.connections.every((c) => c.encrypted)).toBe(true);
    expect(s.encryption).toBe(true);
    // The CLI's --json is the control API's document (tests read the API directly).
    const cli = await statusViaCli(hosts[2]!);
    expect(cli.name).toBe(s.name);
    expect(cli.peers.map((p) => p.nickname).sort()).toEqual(['h1', 'h2', 'h3', 'h4', 'h5']);
    expect(Object.keys(cli).sort()).toEqual(Object.keys(s).sort());
  });

  it('a quiet mesh stays quiet: no gossip channel keeps sending', async () => {
    // An update that is relayed back to its owner must not start a new round
    // (it once did: five idle daemons gossiped 1.2 MB/s each and used 40 % CPU).
    const sent = (): Promise<number> => gossipBytesSent(hosts[0]!);
    const before = await sent();
    await new Promise((r) => setTimeout(r, 4000));
    const grew = (await sent()) - before;
    expect(before).toBeGreaterThan(0);
    expect(grew).toBeLessThan(64 * 1024);
  });

  it('serves Prometheus metrics on the metrics address', async () => {
    const r = { stdout: await metricsText(hosts[0]!) };
    expect(r.stdout).toMatch(/meshnet_connections\{state="established",encryption="encrypted",datapath="sleeve"\} 4/);
    expect(r.stdout).toMatch(/meshnet_peers 5/);
  });

  it('a daemon killed with -9 is reported gone, and recognised as restarted when it comes back', async () => {
    const h5 = hosts[4]!;
    const before = await status(h5);
    crashDaemon(h5);
    for (const h of hosts.slice(0, 4)) {
      await waitFor(async () => !(await status(h)).peers.some((p) => p.nickname === 'h5'), 20_000, `${h.id} forgets h5`);
    }
    await launch(h5, { peers: [hosts[0]!.address], password: PASSWORD });
    for (const h of hosts) await waitFor(async () => JSON.stringify(await establishedPeers(h)) === JSON.stringify(others(h)), 30_000, `${h.id} meshed again`);
    const after = await status(h5);
    expect(after.name).toBe(before.name);
    expect(after.uid).not.toBe(before.uid);
    const seenByH2 = (await status(hosts[1]!)).peers.find((p) => p.nickname === 'h5')!;
    expect(seenByH2.uid).toBe(after.uid);
    expect(logOf(hosts[1]!)).toMatch(/connection to h5 .* established; the peer restarted/);
  });

  it('reaches h3 through another peer when TCP between h1 and h3 is dropped', async () => {
    const [h1, , h3] = hosts;
    await h1!.run('nft', ['add table inet mntest; add chain inet mntest in { type filter hook input priority 0; }; add chain inet mntest out { type filter hook output priority 0; }']);
    await h1!.run('nft', [`add rule inet mntest in ip saddr ${h3!.address} tcp dport 6783 drop; add rule inet mntest in ip saddr ${h3!.address} tcp sport 6783 drop`]);
    await h1!.run('nft', [`add rule inet mntest out ip daddr ${h3!.address} tcp dport 6783 drop; add rule inet mntest out ip daddr ${h3!.address} tcp sport 6783 drop`]);
    try {
      // Either side may notice first; wait until h1 has dropped its connection too.
      const s = await waitFor(
        async () => {
          const st = await status(h1!);
          const p = st.peers.find((x) => x.nickname === 'h3');
          const direct = st.connections.some((c) => c.nickname === 'h3' && c.state === 'established');
          return p && p.route.startsWith('via ') && !direct ? st : undefined;
        },
        45_000,
        'h1 routes to h3 through another peer',
      );
      expect(s.peers.find((x) => x.nickname === 'h3')!.reachable).toBe(true);
    } finally {
      await h1!.run('nft', ['delete table inet mntest']);
    }
    await waitFor(async () => (await status(h1!)).peers.find((x) => x.nickname === 'h3')?.route === 'direct', 60_000, 'direct route again');
  });

  it('refuses a peer with the wrong password while the mesh keeps working', async () => {
    const intruder = net.hosts[5]!;
    await launch(intruder, { peers: [hosts[0]!.address], password: 'not the password' });
    await waitFor(async () => (await status(intruder)).connections.some((c) => c.state === 'failed' && /wrong password/.test(c.info)), 20_000, 'intruder refused');
    const h1 = await status(hosts[0]!);
    expect(h1.connections.some((c) => !c.outbound && c.state === 'failed' && /wrong password/.test(c.info))).toBe(true);
    expect(h1.peers.map((p) => p.nickname)).not.toContain(intruder.id);
    expect(await establishedPeers(hosts[0]!)).toEqual(others(hosts[0]!));
    expect(logOf(hosts[0]!)).not.toContain(PASSWORD);
    expect(logOf(intruder)).not.toContain('not the password');
    // Logged once, not once per retry.
    await new Promise((r) => setTimeout(r, 5_000));
    const lines = logOf(hosts[0]!).split('\n').filter((l) => /wrong password/.test(l));
    expect(lines.length).toBe(1);
    await meshnet(intruder, ['stop']);
  });

  it('refuses garbage on the TCP port with a reason and keeps running', async () => {
    const h2 = hosts[1]!;
    // Send from another host's namespace through the underlay.
    await hosts[3]!.exec(process.execPath, [
      '-e',
      `const s = require('net').connect(6783, '${h2.address}', () => s.write('GET / HTTP/1.1\\r\\n\\r\\n')); s.on('data', () => {}); s.on('error', () => {}); setTimeout(() => process.exit(0), 2000);`,
    ]);
    await waitFor(() => /not a meshnet peer/.test(logOf(h2)), 10_000, 'garbage logged');
    expect(await establishedPeers(h2)).toEqual(others(h2));
  });

  it('forget stops reconnection attempts', async () => {
    const [h1, h2] = hosts;
    // h2 was launched with h1 as its peer: that is a direct target.
    const targetsBefore = (await status(h2!)).targets;
    expect(targetsBefore.map((t) => t.address)).toEqual([`${h1!.address}:6783`]);
    const r = await meshnet(h2!, ['forget', h1!.address]);
    expect(r.code).toBe(0);
    expect((await status(h2!)).targets).toEqual([]);
  });

  it('stop leaves the others running and makes the CLI report it is not running', async () => {
    const h4 = hosts[3]!;
    expect((await meshnet(h4, ['stop'])).code).toBe(0);
    const r = await meshnet(h4, ['status']);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/no router is running/);
  });
});

describe('launch refuses bad input with one line', () => {
  let net: TestNet;
  beforeAll(async () => {
    net = await TestNet.create(1);
  });
  afterAll(async () => {
    await net?.destroy();
  });

  const cases: [string, string[], RegExp][] = [
    ['a bad port', ['--port', 'abc'], /--port: "abc" is not a number/],
    ['an unknown flag', ['--frobnicate'], /unknown flag --frobnicate/],
    ['a missing password file', ['--password-file', '/nonexistent/pw'], /--password-file: cannot read \/nonexistent\/pw: no such file/],
    ['a peer address that does not parse', ['not a host!'], /invalid peer address "not a host!"/],
    ['a bad range', ['--ipalloc-range', '198.19.0.0/99'], /--ipalloc-range: "198.19.0.0\/99": prefix length "99" is not 0-32/],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const h = net.host(1);
    const r = await meshnet(h, ['launch', '--state-dir', h.stateDir, ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a port already in use', async () => {
    const h = net.host(1);
    const blocker = h.spawn(process.execPath, ['-e', `require('net').createServer().listen(6783, '${h.address}'); setInterval(()=>{}, 1e6)`]);
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          void h.exec('sh', ['-c', `ss -ltn | grep -q ${h.address}:6783`]).then((r) => resolve(r.code === 0));
        }),
      5_000,
      'blocker listening',
    );
    const r = await meshnet(h, ['launch', '--host', h.address, '--state-dir', h.stateDir, '--metrics-addr', '127.0.0.1:6782']);
    blocker.kill('SIGKILL');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/port 198\.18\.0\.11:6783 is already in use/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
