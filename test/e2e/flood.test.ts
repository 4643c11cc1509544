// A flood from a namespace that is not a member: random datagrams at the
// sleeve port, then junk and bogus handshakes at the control port. The
// established h1–h2 connection must survive unchanged, its pods keep
// talking, h1 keeps answering its API, and the junk is dropped and counted.
// Throughput under flood is bench/flood.ts's job, not this test's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runIn, waitFor } from '../harness/netns.js';
import { launch, meshnet, status } from '../harness/meshnet.js';
import { connectionSince, flood, floodCounters, floodNet, totalFailures, type FloodNet } from '../harness/flood.js';

const SECONDS = 8;
const PASSWORD = 'flood e2e secret';

/** Pings from the pod every 0.2 s for the flood's duration: replies received out of sent. */
async function pingsDuring(fn: FloodNet, seconds: number): Promise<{ sent: number; received: number }> {
  const [a, b] = fn.pods;
  const r = await runIn(a.ns, 'ping', ['-c', String(seconds * 5), '-i', '0.2', '-W', '1', b.ip], { timeoutMs: (seconds + 10) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}

/** Status calls to the flooded daemon every 0.5 s while `during` runs: how many answered, and the slowest. */
async function apiDuring<T>(fn: FloodNet, during: Promise<T>): Promise<{ result: T; calls: number; answered: number; slowestMs: number }> {
  let done = false;
  let calls = 0;
  let answered = 0;
  let slowestMs = 0;
  const poll = (async () => {
    while (!done) {
      const t0 = Date.now();
      calls++;
      try {
        await status(fn.h1);
        answered++;
      } catch {
        /* counted as unanswered */
      }
      slowestMs = Math.max(slowestMs, Date.now() - t0);
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const result = await during;
  done = true;
  await poll;
  return { result, calls, answered, slowestMs };
}

describe('a flood from a non-member namespace', () => {
  let fn: FloodNet;

  beforeAll(async () => {
    fn = await floodNet(PASSWORD);
  }, 60_000);

  afterAll(async () => {
    await fn?.net.destroy();
  });

  it('UDP junk at the sleeve port, then junk connections at the control port: the mesh connection stays, pods keep talking, the API answers, the junk is counted', async () => {
    const { h1, h2, attacker } = fn;
    const since = [await connectionSince(h1, 'h2'), await connectionSince(h2, 'h1')];
    expect(since.every(Boolean)).toBe(true);
    const before = await floodCounters(h1);

    for (const mode of ['udp', 'tcp'] as const) {
      const [sent, pings] = await Promise.all([apiDuring(fn, flood(attacker, h1, mode, SECONDS)), pingsDuring(fn, SECONDS)]);
      console.log(`${mode} flood: ${sent.result.sent} ${mode === 'udp' ? 'datagrams' : 'connections'} (${sent.result.rate.toFixed(0)}/s); pings ${pings.received}/${pings.sent}; API ${sent.answered}/${sent.calls}, slowest ${sent.slowestMs} ms`);
      expect(sent.result.sent).toBeGreaterThan(mode === 'udp' ? 10_000 : 100);
      // A shared, loaded machine: allow a little loss, not an outage.
      expect(pings.received).toBeGreaterThanOrEqual(pings.sent * 0.9);
      expect(sent.answered).toBe(sent.calls);
      expect(sent.slowestMs).toBeLessThan(3000);
      expect([await connectionSince(h1, 'h2'), await connectionSince(h2, 'h1')]).toEqual(since);
    }

    const after = await floodCounters(h1);
    console.log(`h1 counters: sleeve drops +${after.sleeveDrops - before.sleeveDrops}, handshake failures ${JSON.stringify(after.handshakeFailures)}`);
    expect(after.sleeveDrops - before.sleeveDrops).toBeGreaterThan(10_000);
    expect(totalFailures(after) - totalFailures(before)).toBeGreaterThan(100);
    // The flooder is held to its own limit, so the shared one is left for peers.
    expect(after.handshakeFailures['source-rate-limited'] ?? 0).toBeGreaterThan(0);
    expect((await status(h1)).connections.filter((c) => c.state === 'established').map((c) => c.nickname)).toEqual(['h2']);
  });

  it('a member restarting during a connection flood gets back in', async () => {
    const { h1, h2, attacker } = fn;
    const flooding = flood(attacker, h1, 'tcp', SECONDS);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await meshnet(h2, ['stop'])).code).toBe(0);
    await launch(h2, { peers: [h1.address], password: PASSWORD, args: ['--ipalloc-init', 'consensus=2'] });
    const t0 = Date.now();
    await waitFor(async () => (await status(h1)).connections.some((c) => c.nickname === 'h2' && c.state === 'established'), SECONDS * 1000, 'h2 back in while h1 is flooded');
    console.log(`h2 re-established ${Date.now() - t0} ms after its restart, under the flood`);
    await flooding;
  });
});
