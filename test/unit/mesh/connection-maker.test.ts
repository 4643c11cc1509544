import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConnectionMaker, jitter } from '../../../mesh/connection-maker.js';
import { HandshakeFailure } from '../../../mesh/handshake.js';
import { TokenBucket } from '../../../mesh/token-bucket.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('backoff', () => {
  it('jitters within [i/2, 3i/2]', () => {
    expect(jitter(1000, () => 0)).toBe(500);
    expect(jitter(1000, () => 0.999999)).toBe(1500);
  });

  it('retries with growing, capped intervals and never retries a permanent failure', async () => {
    vi.useFakeTimers();
    const attempts: number[] = [];
    let fail: Error = new Error('ECONNREFUSED');
    const maker = new ConnectionMaker(
      {
        dial: async () => {
          attempts.push(Date.now());
          throw fail;
        },
        isConnected: () => false,
        canDial: () => true,
      },
      { initialMs: 1000, maxMs: 4000, resetAfterMs: 60_000 },
    );
    maker.addDirect('198.18.0.1:6783');
    await vi.advanceTimersByTimeAsync(60_000);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    expect(gaps.length).toBeGreaterThan(5);
    gaps.forEach((g, i) => {
      const interval = Math.min(4000, 1000 * 1.5 ** i);
      expect(g).toBeGreaterThanOrEqual(Math.floor(interval / 2));
      expect(g).toBeLessThanOrEqual(Math.ceil((interval * 3) / 2));
    });
    expect(maker.status()[0]!.state).toBe('retrying');

    fail = new HandshakeFailure('self', 'cannot connect to ourself');
    const n = attempts.length;
    await vi.advanceTimersByTimeAsync(10_000);
    const after = attempts.length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(attempts.length).toBe(after);
    expect(after).toBeLessThanOrEqual(n + 1);
    expect(maker.status()[0]).toMatchObject({ state: 'failed', lastError: 'cannot connect to ourself' });
    maker.stop();
  });

  it('an isolated peer retries its direct targets at the initial interval; a connected one backs off', async () => {
    vi.useFakeTimers();
    const gaps = async (isolated: boolean): Promise<number[]> => {
      const attempts: number[] = [];
      const maker = new ConnectionMaker(
        {
          dial: async () => {
            attempts.push(Date.now());
            throw new HandshakeFailure('closed', 'connection reset');
          },
          isConnected: () => false,
          canDial: () => true,
          isolated: () => isolated,
        },
        { initialMs: 1000, maxMs: 60_000, resetAfterMs: 60_000 },
      );
      maker.addDirect('198.18.0.1:6783');
      await vi.advanceTimersByTimeAsync(30_000);
      maker.stop();
      return attempts.slice(1).map((t, i) => t - attempts[i]!);
    };
    const alone = await gaps(true);
    expect(alone.length).toBeGreaterThan(15);
    expect(Math.max(...alone)).toBeLessThanOrEqual(1500);
    const member = await gaps(false);
    expect(member.length).toBeLessThan(10);
    expect(Math.max(...member)).toBeGreaterThan(3000);
  });

  it('marks refusals by a live peer as failed and network errors as retrying', async () => {
    vi.useFakeTimers();
    const maker = new ConnectionMaker({
      dial: async (a) => {
        throw a.startsWith('198.18.0.1') ? new HandshakeFailure('password', 'wrong password') : new Error('connect ECONNREFUSED');
      },
      isConnected: () => false,
      canDial: () => true,
    });
    maker.addDirect('198.18.0.1:6783');
    maker.addDirect('198.18.0.2:6783');
    await vi.advanceTimersByTimeAsync(10);
    const st = new Map(maker.status().map((s) => [s.address, s.state]));
    expect(st.get('198.18.0.1:6783')).toBe('failed');
    expect(st.get('198.18.0.2:6783')).toBe('retrying');
    maker.stop();
  });

  it('redials at once after a long-lived connection ends', async () => {
    vi.useFakeTimers();
    let dials = 0;
    const maker = new ConnectionMaker(
      { dial: async () => (dials++, 7), isConnected: () => false, canDial: () => true },
      { initialMs: 10_000, maxMs: 60_000, resetAfterMs: 1_000 },
    );
    maker.addDirect('198.18.0.1:6783');
    await vi.advanceTimersByTimeAsync(1);
    expect(dials).toBe(1);
    maker.onDisconnected(7, 5_000);
    await vi.advanceTimersByTimeAsync(800);
    expect(dials).toBe(2);
    maker.stop();
  });
});

describe('simultaneous connections', () => {
  it('a target whose first dial lost to the peer\'s own connection rests as connected and redials once that connection ends', async () => {
    vi.useFakeTimers();
    let dials = 0;
    let connected = true;
    const maker = new ConnectionMaker(
      {
        dial: async () => {
          dials++;
          if (connected) throw new HandshakeFailure('duplicate', 'already connected to 00:00:00:00:00:07', 7);
          return 7;
        },
        isConnected: (p) => connected && p === 7,
        canDial: () => true,
      },
      { initialMs: 1000, maxMs: 4000, resetAfterMs: 60_000 },
    );
    maker.addDirect('198.18.0.1:6783');
    await vi.advanceTimersByTimeAsync(60_000);
    // One dial, no retries: the peer's inbound connection is the connection to it.
    expect(dials).toBe(1);
    expect(maker.status()[0]).toMatchObject({ state: 'connected', peer: 7 });
    expect(maker.status()[0]!.lastError).toBeUndefined();
    // When that connection ends, this target is the one that redials.
    connected = false;
    maker.onDisconnected(7, 5_000);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(dials).toBe(2);
    expect(maker.status()[0]!.state).toBe('connected');
    maker.stop();
  });
});

describe('token bucket', () => {
  it('allows a burst, then one per interval', () => {
    const b = new TokenBucket(3, 50, 0);
    expect([b.take(0), b.take(0), b.take(0), b.take(0)]).toEqual([true, true, true, false]);
    expect(b.take(49)).toBe(false);
    expect(b.take(50)).toBe(true);
    expect(b.take(1000)).toBe(true);
  });
});
