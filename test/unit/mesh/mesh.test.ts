// Many real routers in one process over the in-memory transport.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { initCrypto, passwordId, stretchPassword } from '../../../crypto/index.js';
import type { Secret } from '../../../mesh/handshake.js';
import { GossipRejected, type Gossiper } from '../../../mesh/types.js';
import { MemoryCluster, until } from '../../harness/memory-mesh.js';
import { hashFields, SetHash } from '../../../crypto/fingerprint.js';

let secretA: Secret;
let secretB: Secret;
let cluster: MemoryCluster;

beforeAll(async () => {
  await initCrypto();
  const ka = await stretchPassword(Buffer.from('correct horse'));
  const kb = await stretchPassword(Buffer.from('battery staple'));
  secretA = { id: passwordId(ka), key: ka };
  secretB = { id: passwordId(kb), key: kb };
});

afterEach(async () => {
  await cluster?.stopAll();
});

const established = (c: MemoryCluster, i: number): string[] =>
  c.peers[i]!.mesh.connectionStatus().filter((s) => s.state === 'established').map((s) => s.nickname ?? '');

describe('mesh over the in-memory transport', () => {
  it('peers that each know only the first end up in a full mesh (discovery)', async () => {
    cluster = new MemoryCluster({ secrets: [secretA] });
    await cluster.add(0);
    for (let i = 1; i < 5; i++) await cluster.add(i, {});
    for (let i = 1; i < 5; i++) cluster.peers[i]!.mesh.connect([cluster.address(0)]);
    await until(() => cluster.fullyMeshed(), 10_000, 'full mesh');
    for (const p of cluster.live()) {
      for (const c of p.mesh.connectionStatus()) expect(c.encrypted).toBe(true);
    }
  });

  it('two peers dialling each other at once keep exactly one connection', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0);
    await cluster.add(1);
    for (let round = 0; round < 5; round++) {
      cluster.peers[0]!.mesh.connect([cluster.address(1)]);
      cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    }
    await until(() => established(cluster, 0).length === 1 && established(cluster, 1).length === 1, 5_000, 'one connection each');
    await new Promise((r) => setTimeout(r, 500));
    expect(established(cluster, 0)).toEqual(['p1']);
    expect(established(cluster, 1)).toEqual(['p0']);
    const a = cluster.peers[0]!.mesh.liveConnections()[0]!;
    const b = cluster.peers[1]!.mesh.liveConnections()[0]!;
    expect(a.connUid).toBe(b.connUid);
  });

  it('refuses a connection to itself and says so in status, without retrying', async () => {
    cluster = new MemoryCluster();
    const p = await cluster.add(0);
    p.mesh.connect([cluster.address(0)]);
    await until(() => p.mesh.connectionStatus().some((c) => c.state === 'failed' && /ourself/.test(c.info) && c.outbound), 5_000, 'self refusal');
    const t = p.mesh.targets()[0]!;
    expect(t.state).toBe('failed');
    const attempts = t.attempts;
    await new Promise((r) => setTimeout(r, 600));
    expect(p.mesh.targets()[0]!.attempts).toBe(attempts);
  });

  it('refuses a peer that uses our name, on both sides', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0);
    await cluster.add(1, { name: MemoryCluster.peerName(0) });
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => cluster.peers[1]!.mesh.targets()[0]?.state === 'failed', 5_000, 'collision refusal');
    expect(cluster.peers[1]!.mesh.targets()[0]!.lastError).toMatch(/name collision/);
    expect(cluster.peers[0]!.mesh.connectionStatus().some((c) => !c.outbound && /name collision/.test(c.info))).toBe(true);
  });

  it('refuses a wrong password and a missing one, keeps the daemons up, and backs off', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { secrets: [secretA] });
    await cluster.add(1, { secrets: [secretB] });
    await cluster.add(2, { secrets: [] });
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    cluster.peers[2]!.mesh.connect([cluster.address(0)]);
    await until(() => cluster.peers[1]!.mesh.targets()[0]?.state === 'failed' && cluster.peers[2]!.mesh.targets()[0]?.state === 'failed', 5_000, 'refusals');
    expect(cluster.peers[1]!.mesh.targets()[0]!.lastError).toMatch(/wrong password/);
    expect(cluster.peers[2]!.mesh.targets()[0]!.lastError).toMatch(/requires encryption/);
    const inbound = cluster.peers[0]!.mesh.connectionStatus().filter((c) => !c.outbound);
    expect(inbound.map((c) => c.info).join(' ')).toMatch(/wrong password/);
    expect(inbound.map((c) => c.info).join(' ')).toMatch(/no password/);
    expect(cluster.peers[0]!.mesh.stats.handshakeFailures.get('password')).toBeGreaterThan(0);
    expect(established(cluster, 0)).toEqual([]);
  });

  it('accepts either password during a rotation and picks the same one on both sides', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { secrets: [secretA, secretB] });
    await cluster.add(1, { secrets: [secretB] });
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'connection');
    expect(cluster.peers[0]!.mesh.liveConnections()[0]!.secretIndex).toBe(1);
  });

  it('notices a crashed peer, forgets it, and recognises it when it restarts', async () => {
    cluster = new MemoryCluster();
    for (let i = 0; i < 3; i++) await cluster.add(i);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    cluster.peers[2]!.mesh.connect([cluster.address(0)]);
    await until(() => cluster.fullyMeshed(), 5_000, 'full mesh');
    const oldUid = cluster.peers[2]!.mesh.localUid;
    await cluster.crash(2);
    await until(() => cluster.peers[0]!.mesh.peers().length === 2 && cluster.peers[1]!.mesh.peers().length === 2, 5_000, 'peer gone');
    const restarted: boolean[] = [];
    cluster.peers[0]!.mesh.on('connection-established', (_p, info) => restarted.push(info.restarted));
    await cluster.add(2, {}, 2);
    cluster.peers[2]!.mesh.connect([cluster.address(0)]);
    await until(() => cluster.fullyMeshed(), 5_000, 'full mesh again');
    expect(cluster.peers[2]!.mesh.localUid).not.toBe(oldUid);
    expect(restarted).toContain(true);
    const seen = cluster.peers[1]!.mesh.peers().find((p) => p.name === MemoryCluster.peerName(2))!;
    expect(seen.uid).toBe(cluster.peers[2]!.mesh.localUid);
  });

  it('routes around a cut link through a third peer', async () => {
    cluster = new MemoryCluster();
    for (let i = 0; i < 3; i++) await cluster.add(i);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    cluster.peers[2]!.mesh.connect([cluster.address(0)]);
    await until(() => cluster.fullyMeshed(), 5_000, 'full mesh');
    cluster.net.setCut(cluster.peers[0]!.ip, cluster.peers[2]!.ip, true);
    const p0 = cluster.peers[0]!.mesh;
    const name2 = MemoryCluster.peerName(2);
    await until(() => p0.nextHop(name2) === MemoryCluster.peerName(1), 5_000, 'route via p1');
    expect(p0.isReachable(name2)).toBe(true);
    cluster.net.setCut(cluster.peers[0]!.ip, cluster.peers[2]!.ip, false);
    await until(() => p0.nextHop(name2) === name2, 8_000, 'direct route again');
  });

  it('forget stops reconnection attempts', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0);
    await cluster.add(1);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 1).length === 1, 5_000, 'connected');
    await cluster.crash(0);
    await until(() => (cluster.peers[1]!.mesh.targets()[0]?.attempts ?? 0) >= 2, 5_000, 'retrying');
    cluster.peers[1]!.mesh.forget([cluster.address(0)]);
    expect(cluster.peers[1]!.mesh.targets()).toEqual([]);
    await cluster.add(0);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(established(cluster, 1)).toEqual([]);
  });

  it('enforces the connection limit with a reason', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { connLimit: 1 });
    await cluster.add(1);
    await cluster.add(2);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'first connection');
    cluster.peers[2]!.mesh.connect([cluster.address(0)]);
    await until(() => /connection limit/.test(cluster.peers[2]!.mesh.targets()[0]?.lastError ?? ''), 5_000, 'limit refusal');
    expect(established(cluster, 0)).toEqual(['p1']);
  });

  it('keeps a quarter of the limit for joining peers: discovered dials stop at three quarters', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { connLimit: 4 });
    for (let i = 1; i <= 5; i++) await cluster.add(i);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'p1 joined p0');
    // p2..p4 know only p1; they find p0 by discovery. p0 takes discovered
    // connections up to 3 of its 4 (p1's counts): one of them is refused.
    for (const i of [2, 3, 4]) cluster.peers[i]!.mesh.connect([cluster.address(1)]);
    const refused = (): string[] =>
      [2, 3, 4].filter((i) => cluster.peers[i]!.mesh.targets().some((t) => t.address === cluster.address(0) && /limit for discovered peers/.test(t.lastError ?? ''))).map((i) => `p${i}`);
    await until(() => established(cluster, 0).length === 3 && refused().length === 1, 10_000, 'p0 at three quarters, one discovered dial refused');
    // A peer told to join through p0 still gets in.
    cluster.peers[5]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).includes('p5'), 5_000, 'p5 joined through p0');
    expect(established(cluster, 0)).toHaveLength(4);
  });

  it('at the limit, a peer joining through us takes the place of a discovered connection; the other stays reachable', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { connLimit: 4 });
    for (let i = 1; i <= 5; i++) await cluster.add(i);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'p1 joined p0');
    // p2 and p3 reach p0 by discovery (p0 at three quarters: p1 + 2), p4 joins directly: p0 is full.
    for (const i of [2, 3]) cluster.peers[i]!.mesh.connect([cluster.address(1)]);
    await until(() => established(cluster, 0).length === 3, 10_000, 'p2, p3 discovered by p0');
    cluster.peers[4]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 4, 5_000, 'p4 joined p0');
    cluster.peers[5]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).includes('p5'), 10_000, 'p5 joined p0');
    const now = established(cluster, 0);
    expect(now).toHaveLength(4);
    expect(now).toEqual(expect.arrayContaining(['p1', 'p4', 'p5']));
    const evicted = ['p2', 'p3'].find((p) => !now.includes(p))!;
    await until(() => cluster.peers[0]!.mesh.isReachable(MemoryCluster.peerName(Number(evicted.slice(1)))), 5_000, `${evicted} still reachable`);
  });

  it('carries channel gossip, broadcasts and unicasts; a rejecting gossiper does not cost the connection', async () => {
    cluster = new MemoryCluster();
    for (let i = 0; i < 4; i++) await cluster.add(i);
    // A line: 0 - 1 - 2 - 3 (cut the shortcuts).
    for (const [a, b] of [[0, 2], [0, 3], [1, 3]] as const) cluster.net.setCut(cluster.peers[a]!.ip, cluster.peers[b]!.ip, true);
    const got: string[][] = [[], [], [], []];
    const channels = cluster.peers.map((p, i) => {
      const g: Gossiper = {
        gossip: () => undefined,
        onGossip: (_from, u) => {
          const s = Buffer.from(u).toString();
          if (s === 'bad') throw new GossipRejected('bad update');
          if (got[i]!.includes(`g:${s}`)) return undefined;
          got[i]!.push(`g:${s}`);
          return u;
        },
        onBroadcast: (origin, u) => {
          got[i]!.push(`b:${origin.slice(-2)}:${Buffer.from(u).toString()}`);
          return u;
        },
        onUnicast: (from, m) => void got[i]!.push(`u:${from.slice(-2)}:${Buffer.from(m).toString()}`),
      };
      return p!.mesh.registerChannel('test', g);
    });
    for (let i = 1; i < 4; i++) cluster.peers[i]!.mesh.connect([cluster.address(i - 1)]);
    await until(() => cluster.peers[0]!.mesh.isReachable(MemoryCluster.peerName(3)) && cluster.peers[3]!.mesh.isReachable(MemoryCluster.peerName(0)) && cluster.peers.every((p) => p!.mesh.broadcastChildren(MemoryCluster.peerName(0)).length > 0 || p!.index === 3), 8_000, 'routes on the line');
    channels[0]!.broadcast(Buffer.from('hello'));
    expect(channels[0]!.unicast(MemoryCluster.peerName(3), Buffer.from('psst'))).toBe(true);
    channels[0]!.gossip(Buffer.from('state'));
    channels[0]!.gossip(Buffer.from('bad'));
    await until(() => got[3]!.length >= 3, 5_000, 'delivery to the far end');
    expect(got[3]).toEqual(expect.arrayContaining(['b:01:hello', 'u:01:psst', 'g:state']));
    expect(got[2]!.filter((x) => x.startsWith('b:')).length).toBe(1);
    expect(cluster.peers[1]!.mesh.stats.droppedMessages.get('rejected:test')).toBeGreaterThan(0);
    expect(established(cluster, 1).sort()).toEqual(['p0', 'p2']);
  });
});

describe('anti-entropy', () => {
  /** A channel whose state is a set of strings set directly (not gossiped), with a fingerprint. */
  function setChannel(state: Set<string>): Gossiper {
    const encode = (): Uint8Array => Buffer.from([...state].sort().join(','));
    return {
      gossip: () => (state.size ? encode() : undefined),
      onGossip: (_from, u) => {
        const news = Buffer.from(u).toString().split(',').filter((x) => x && !state.has(x));
        for (const x of news) state.add(x);
        return news.length ? Buffer.from(news.join(',')) : undefined;
      },
      onBroadcast: () => undefined,
      onUnicast: () => undefined,
      stateHash: () => {
        const h = new SetHash();
        for (const x of state) h.add(hashFields(x));
        return h.value()[0];
      },
    };
  }

  it('repairs a channel that diverged, in both directions, and then sends only fingerprints', async () => {
    const states = [new Set<string>(), new Set<string>()];
    cluster = new MemoryCluster({}, 6783, { beforeStart: (mesh, i) => void mesh.registerChannel('set', setChannel(states[i]!)) });
    await cluster.add(0);
    await cluster.add(1);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'connected');
    // Changes made behind gossip's back: only anti-entropy can bring them over.
    states[0]!.add('a');
    states[1]!.add('b');
    await until(() => states.every((s) => s.has('a') && s.has('b')), 5_000, 'both sides repaired');
    const sent = (): number => cluster.peers.reduce((s, p) => s + (p!.mesh.stats.gossipBytesSent.get('set') ?? 0), 0);
    const summaries = (): number => cluster.peers.reduce((s, p) => s + (p!.mesh.stats.topologySent.get('summary') ?? 0), 0);
    const before = { set: sent(), summaries: summaries() };
    await new Promise((r) => setTimeout(r, 3_500));
    expect(summaries() - before.summaries).toBeGreaterThanOrEqual(4);
    expect(sent() - before.set).toBe(0);
  });
});

describe('hostile input on a live mesh', () => {
  it('drops inbound handshakes beyond the rate limit and counts them', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { acceptRate: { burst: 2, intervalMs: 60_000 } });
    for (let i = 1; i <= 4; i++) {
      await cluster.add(i);
      cluster.peers[i]!.mesh.connect([cluster.address(0)]);
    }
    await until(() => (cluster.peers[0]!.mesh.stats.handshakeFailures.get('rate-limited') ?? 0) >= 2 && established(cluster, 0).length === 2, 5_000, 'rate limiting');
    await new Promise((r) => setTimeout(r, 300));
    expect(established(cluster, 0).length).toBe(2);
  });

  it('one address flooding handshakes is held to its own limit: a peer from another address still gets in', async () => {
    cluster = new MemoryCluster();
    await cluster.add(0, { acceptRate: { burst: 6, intervalMs: 60_000 }, sourceLimits: { burst: 2, intervalMs: 60_000, maxPending: 2, maxSources: 16 } });
    const attacker = cluster.net.transport('198.18.9.9', 6783);
    for (let i = 0; i < 20; i++) (await attacker.dial(cluster.peers[0]!.ip, 6783)).write(Buffer.from('junk junk junk'));
    await new Promise((r) => setTimeout(r, 100));
    const failures = cluster.peers[0]!.mesh.stats.handshakeFailures;
    expect((failures.get('source-rate-limited') ?? 0) + (failures.get('source-pending') ?? 0)).toBe(18);
    expect(failures.get('rate-limited') ?? 0).toBe(0);
    await cluster.add(1);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'the honest peer gets in');
  });

  it('random frames after a valid handshake close only that connection', async () => {
    const fc = (await import('fast-check')).default;
    const { runHandshake } = await import('../../../mesh/handshake.js');
    const { encodeFrame } = await import('../../../mesh/wire/framing.js');
    const { parsePeerName } = await import('../../../mesh/peer-name.js');
    cluster = new MemoryCluster({ secrets: [secretA] });
    await cluster.add(0);
    await cluster.add(1);
    cluster.peers[1]!.mesh.connect([cluster.address(0)]);
    await until(() => established(cluster, 0).length === 1, 5_000, 'honest connection');
    const attacker = cluster.net.transport('198.18.9.9', 6783);
    let n = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 64 }), { minLength: 1, maxLength: 4 }), fc.boolean(), async (frames, sealed) => {
        const s = await attacker.dial(cluster.peers[0]!.ip, 6783);
        const hs = await runHandshake(s, {
          outbound: true,
          identity: { name: parsePeerName('02:00:00:00:99:00') + n++, nickname: 'evil', uid: String(1000 + n), incarnation: 1, listenPort: 6783, features: {} },
          secrets: [secretA],
          versionRange: { min: 1, max: 1 },
          timeoutMs: 2_000,
          validate: () => undefined,
        });
        for (const f of frames) s.write(encodeFrame(sealed ? hs.sealer!.seal(f) : f));
        await new Promise((r) => setTimeout(r, 20));
        s.destroy();
      }),
      { numRuns: 60 },
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(established(cluster, 0)).toEqual(['p1']);
    expect(established(cluster, 1)).toEqual(['p0']);
  });
});
