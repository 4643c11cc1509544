// `npm run demo`: meshnet's main job on this one machine. Three "hosts" in
// network namespaces on one underlay (198.18.0.0/24), meshnet launched with a
// password on each, joined with `meshnet connect`; two pods per host attached
// by the real CNI plugin (addresses from the mesh's IPAM in 198.19.0.0/16),
// every pod pinging every other across the encrypted mesh, then the status of
// each host. Everything is removed at the end, also on failure or Ctrl-C.

import { TestNet, waitFor, type TestHost } from './harness/netns.js';
import { launch, meshnet, status } from './harness/meshnet.js';
import { Pods, runPing, type Pod } from './harness/pods.js';

const PASSWORD = 'demo-password';

function say(msg: string): void {
  process.stdout.write(`\n\x1b[1m==> ${msg}\x1b[0m\n`);
}

async function show(host: TestHost, args: string[]): Promise<void> {
  process.stdout.write(`\n[${host.id}]$ meshnet ${args.join(' ')}\n`);
  const r = await meshnet(host, args);
  process.stdout.write(r.stdout || r.stderr);
}

async function main(): Promise<void> {
  say('creating 3 hosts in network namespaces (underlay 198.18.0.0/24)');
  const net = await TestNet.create(3);
  const stop = (): void => {
    void net.destroy().then(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const [h1, h2, h3] = net.hosts as [TestHost, TestHost, TestHost];
    for (const h of net.hosts) process.stdout.write(`  ${h.id}: namespace ${h.ns}, address ${h.address}\n`);

    // consensus=3: the three hosts agree on the address ring before anyone allocates.
    say('meshnet launch --password … --ipalloc-range 198.19.0.0/16 --ipalloc-init consensus=3 on each host');
    await Promise.all(net.hosts.map((h) => launch(h, { password: PASSWORD, args: ['--ipalloc-init', 'consensus=3'] })));

    say(`joining: h2 and h3 run "meshnet connect ${h1.address}"; gossip does the rest`);
    for (const h of [h2, h3]) {
      const r = await meshnet(h, ['connect', h1.address]);
      if (r.code !== 0) throw new Error(r.stderr);
    }
    await waitFor(
      async () => {
        for (const h of net.hosts) {
          const s = await status(h);
          if (s.connections.filter((c) => c.state === 'established').length !== 2) return false;
        }
        return true;
      },
      30_000,
      'a full mesh',
    );

    for (const h of net.hosts) await waitFor(async () => (await status(h)).ipam.ready, 30_000, `${h.id}: IPAM ready`);

    say('two pods per host, attached by the meshnet CNI plugin (veth + address from the mesh)');
    const pods = await Pods.create(net);
    const all: Pod[] = [];
    for (const h of net.hosts) {
      for (const n of ['a', 'b']) {
        const pod = await pods.add(h, `${h.id}${n}`);
        all.push(pod);
        process.stdout.write(`  pod ${pod.id} on ${h.id}: ${pod.ip}\n`);
      }
    }

    say('every pod pings every other pod');
    let failed = 0;
    for (const from of all) {
      for (const to of all) {
        if (to === from) continue;
        // The first packets may wait for the sleeve's session: allow a few tries.
        const r = await runPing(from, to.ip, 5);
        if (!r.ok) failed++;
        process.stdout.write(`  ${from.id} (${from.host.id}) -> ${to.id} (${to.host.id}) ${to.ip}: ${r.ok ? r.rtt : 'NO REPLY'}\n`);
      }
    }
    if (failed > 0) throw new Error(`${failed} pod pairs could not reach each other`);

    for (const h of net.hosts) await show(h, ['status']);
    await show(h3, ['status', 'connections']);
    await show(h3, ['status', 'peers']);
    say('done: every host is connected to every other, all connections encrypted, every pod reaches every pod');
  } finally {
    say('cleaning up');
    await net.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
