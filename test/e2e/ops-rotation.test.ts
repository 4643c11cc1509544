// Password rotation across real daemons: h1..h3 roll from OLD to NEW with
// `meshnet password add/promote/remove` while a monitor samples every
// host's status several times a second. No connection among them may drop
// or be unencrypted at any sample; hosts launched mid-roll (with only the
// new, or only the old password) connect; removing the old password while
// a peer holds neither of the remaining ones is refused with a clear reason.
// Pods on h1..h3 (through the CNI plugin) ping each other over the
// encrypted sleeve for the whole roll: not one reply may go missing.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runIn, TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { establishedPeers, launch, logOf, meshnet, status } from '../harness/meshnet.js';
import type { RotationStatus } from '../../router/rotation/service.js';
import { Pods, type Pod } from '../harness/pods.js';

const OLD = 'rotation e2e old secret';
const NEW = 'rotation e2e new secret';

async function passwords(h: TestHost): Promise<RotationStatus> {
  const r = await meshnet(h, ['password', '--json']);
  if (r.code !== 0) throw new Error(`password on ${h.id}: ${r.stderr}`);
  return JSON.parse(r.stdout) as RotationStatus;
}

async function pw(h: TestHost, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await meshnet(h, ['password', ...args]);
  return { code: r.code, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** A ping from one pod to another, five a second, running until stopped. */
class PodPing {
  private out = '';
  private readonly child: ChildProcess;

  constructor(net: TestNet, readonly from: Pod, readonly to: Pod) {
    this.child = spawn('ip', ['netns', 'exec', from.ns, 'ping', '-n', '-i', '0.2', to.ip], { stdio: ['ignore', 'pipe', 'pipe'] });
    net.track(this.child);
    this.child.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
  }

  /** Stops it; the sequence numbers answered (the last one may still have been in flight). */
  async stop(): Promise<number[]> {
    const exited = new Promise((ok) => (this.child.exitCode === null ? this.child.once('exit', ok) : ok(null)));
    this.child.kill('SIGINT');
    await exited;
    return [...this.out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
  }
}

/** Samples status of the core hosts until stopped; records every violation. */
class Monitor {
  readonly violations: string[] = [];
  samples = 0;
  private running = true;
  private loop: Promise<void> | undefined;

  constructor(private readonly core: TestHost[]) {}

  start(): void {
    this.loop = (async () => {
      while (this.running) {
        await Promise.all(
          this.core.map(async (h) => {
            const s = await status(h);
            this.samples++;
            for (const other of this.core) {
              if (other === h) continue;
              const c = s.connections.filter((x) => x.nickname === other.id);
              const up = c.find((x) => x.state === 'established');
              if (!up) this.violations.push(`${h.id}: no established connection to ${other.id}: ${JSON.stringify(c)}`);
              else if (!up.encrypted) this.violations.push(`${h.id}: connection to ${other.id} is not encrypted`);
            }
            for (const x of s.connections) if (x.state === 'established' && !x.encrypted) this.violations.push(`${h.id}: unencrypted connection to ${x.nickname}`);
          }),
        );
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

describe('password rotation without downtime', () => {
  let net: TestNet;
  let core: TestHost[];
  let monitor: Monitor;
  let oldId = '';
  /** Log length of each core host when the roll started (simultaneous dials may replace connections before). */
  const logStart = new Map<string, number>();
  let newId = '';
  const pings: PodPing[] = [];

  beforeAll(async () => {
    net = await TestNet.create(5);
    core = net.hosts.slice(0, 3);
    const [h1] = core;
    await launch(h1!, { password: OLD, args: ['--ipalloc-init', 'consensus=3'] });
    await Promise.all(core.slice(1).map((h) => launch(h, { peers: [h1!.address], password: OLD, args: ['--ipalloc-init', 'consensus=3'] })));
    for (const h of core) {
      const others = core.filter((x) => x !== h).map((x) => x.id);
      await waitFor(async () => JSON.stringify(await establishedPeers(h)) === JSON.stringify(others), 30_000, `${h.id} meshed`);
    }
    // Every host has heard every other's passwords before the roll starts.
    for (const h of core) await waitFor(async () => (await passwords(h)).peers.every((p) => p.accepts !== null), 20_000, `${h.id} knows its peers' passwords`);
    for (const h of core) await waitFor(async () => (await status(h)).ipam.ready, 30_000, `${h.id} IPAM ready`);
    const pods = await Pods.create(net);
    const [p1, p2, p3] = [await pods.add(core[0]!, 'p1'), await pods.add(core[1]!, 'p2'), await pods.add(core[2]!, 'p3')];
    for (const [from, to] of [[p1, p2], [p2, p3], [p3, p1]] as const) {
      const r = await runIn(from.ns, 'ping', ['-c', '1', '-w', '10', to.ip]);
      expect(r.code, `${from.id} -> ${to.id} before the roll: ${r.stdout}`).toBe(0);
      pings.push(new PodPing(net, from, to));
    }
    oldId = (await passwords(core[0]!)).accepted[0]!.id;
    for (const h of core) logStart.set(h.id, logOf(h).length);
    monitor = new Monitor(core);
    monitor.start();
  });

  afterAll(async () => {
    await monitor?.stop();
    await net?.destroy();
  });

  it('starts with one password everywhere, every connection on it', async () => {
    for (const h of core) {
      const p = await passwords(h);
      expect(p.accepted.map((a) => a.id)).toEqual([oldId]);
      expect(p.connections.every((c) => c.password === oldId)).toBe(true);
      expect(p.roll).toMatch(/^steady/);
    }
  });

  it('add: every host accepts the new password too, old one still preferred', async () => {
    for (const h of core) {
      const r = await pw(h, ['add', '--password', NEW]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/is now accepted here \(not preferred\)/);
      newId = /password ([0-9a-f]{16})/.exec(r.out)![1]!;
    }
    expect(newId).not.toBe(oldId);
    for (const h of core) {
      await waitFor(async () => (await passwords(h)).peers.filter((p) => core.some((c) => c.id === p.nickname)).every((p) => p.accepts?.includes(newId)), 20_000, `${h.id} sees NEW everywhere`);
      expect((await passwords(h)).accepted.map((a) => a.id)).toEqual([oldId, newId]);
    }
  });

  it('a host launched mid-roll with only the new password connects to all', async () => {
    const h4 = net.host(4);
    await launch(h4, { peers: [core[0]!.address], password: NEW });
    await waitFor(async () => (await establishedPeers(h4)).join(',') === 'h1,h2,h3', 30_000, 'h4 meshed with the new password');
    const p = await passwords(h4);
    expect(p.connections.every((c) => c.password === newId)).toBe(true);
    expect((await status(h4)).connections.every((c) => c.encrypted)).toBe(true);
  });

  it('promote: refused while a peer does not accept it; then every host prefers the new password', async () => {
    // Not yet everywhere would be fine; but a peer without it is refused: h5 holds only OLD.
    const h5 = net.host(5);
    await launch(h5, { peers: [core[0]!.address], password: OLD });
    await waitFor(async () => (await establishedPeers(h5)).join(',') === 'h1,h2,h3', 30_000, 'h5 meshed with the old password');
    await waitFor(async () => (await passwords(core[0]!)).peers.find((p) => p.nickname === 'h5')?.accepts !== null, 20_000, 'h1 knows h5\'s passwords');
    const refused = await pw(core[0]!, ['promote', newId]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/refused: .*\(h5\) does not accept password [0-9a-f]{16} yet; run 'meshnet password add' there first/);
    expect((await passwords(core[0]!)).accepted[0]!.id).toBe(oldId);

    const added = await pw(h5, ['add', '--password', NEW]);
    expect(added.code, added.err).toBe(0);
    for (const h of core) {
      await waitFor(async () => (await pw(h, ['promote', newId])).code === 0, 20_000, `${h.id} promotes NEW`);
      expect((await passwords(h)).accepted.map((a) => a.id)).toEqual([newId, oldId]);
    }
  });

  it('remove: refused while a peer would hold neither remaining password; then the old one is gone everywhere', async () => {
    // h4 is relaunched with only OLD after h5 showed the other direction: a peer with neither of what h1 would keep.
    const h4 = net.host(4);
    expect((await meshnet(h4, ['stop'])).code).toBe(0);
    await launch(h4, { peers: [core[0]!.address], password: OLD });
    await waitFor(async () => (await passwords(core[0]!)).peers.find((p) => p.nickname === 'h4')?.accepts?.join() === oldId, 30_000, 'h1 sees h4 with only OLD');
    const refused = await pw(core[0]!, ['remove', oldId]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/refused: .*\(h4\) holds neither of the passwords this host would keep \([0-9a-f]{16}\); run 'meshnet password add' there first/);
    expect((await passwords(core[0]!)).accepted.map((a) => a.id)).toEqual([newId, oldId]);

    expect((await meshnet(h4, ['stop'])).code).toBe(0);
    await waitFor(async () => !(await passwords(core[0]!)).peers.some((p) => p.nickname === 'h4'), 20_000, 'h4 gone');
    // h5 finishes its own roll so that it can stay.
    expect((await pw(h5Of(net), ['promote', newId])).code).toBe(0);
    for (const h of [...core, h5Of(net)]) {
      await waitFor(async () => (await pw(h, ['remove', oldId])).code === 0, 20_000, `${h.id} removes OLD`);
      expect((await passwords(h)).accepted.map((a) => a.id)).toEqual([newId]);
    }
    const s = await passwords(core[0]!);
    expect(s.roll).toMatch(/^steady: every peer accepts only/);
    // Connections made before the roll keep the keys they agreed: nothing was re-established.
    expect(s.connections.filter((c) => ['h2', 'h3'].includes(c.nickname)).every((c) => c.password === oldId)).toBe(true);
  });

  it('after the roll: the new password connects, the old one is refused', async () => {
    const h4 = net.host(4);
    await launch(h4, { peers: [core[0]!.address], password: NEW });
    await waitFor(async () => (await establishedPeers(h4)).join(',') === 'h1,h2,h3,h5', 30_000, 'h4 meshed with NEW after the roll');
    expect((await meshnet(h4, ['stop'])).code).toBe(0);
    await launch(h4, { peers: [core[0]!.address], password: OLD });
    await waitFor(async () => (await status(h4)).connections.some((c) => /wrong password|none of the passwords/.test(c.info)), 30_000, 'h4 refused with OLD');
    expect(await establishedPeers(h4)).toEqual([]);
  });

  it('no connection among h1..h3 dropped or ran unencrypted at any moment of the roll, and no pod lost a ping', async () => {
    await monitor.stop();
    for (const p of pings) {
      const seqs = await p.stop();
      // Every request up to the last answered one was answered: no gap, no drop.
      expect(seqs.length, `${p.from.id} -> ${p.to.id}`).toBeGreaterThan(50);
      const missing = Array.from({ length: Math.max(...seqs) }, (_, i) => i + 1).filter((n) => !seqs.includes(n));
      expect(missing, `${p.from.id} -> ${p.to.id}: requests without a reply`).toEqual([]);
    }
    expect(monitor.samples).toBeGreaterThan(30);
    expect(monitor.violations).toEqual([]);
    for (const h of core) {
      const others = core.filter((x) => x !== h).map((x) => x.id);
      const during = logOf(h).slice(logStart.get(h.id));
      for (const o of others) expect(during).not.toMatch(new RegExp(`connection to ${o} \\(.*\\) lost`));
    }
  });

  it('passwords never reach the logs', () => {
    for (const h of net.hosts) {
      expect(logOf(h)).not.toContain(OLD);
      expect(logOf(h)).not.toContain(NEW);
    }
  });
});

function h5Of(net: TestNet): TestHost {
  return net.host(5);
}
