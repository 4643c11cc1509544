import { describe, expect, it } from 'vitest';
import { SourceLimiter } from '../../../mesh/source-limiter.js';

describe('SourceLimiter', () => {
  const limits = { burst: 3, intervalMs: 100, maxPending: 2, maxSources: 4 };

  it('caps handshakes in progress per address, and frees a slot on done()', () => {
    const l = new SourceLimiter(limits);
    expect(l.admit('a', 0)).toBe('ok');
    expect(l.admit('a', 0)).toBe('ok');
    expect(l.admit('a', 0)).toBe('pending');
    expect(l.admit('b', 0)).toBe('ok');
    l.done('a');
    expect(l.admit('a', 0)).toBe('ok');
  });

  it('rate-limits one address without touching another, and refills with time', () => {
    const l = new SourceLimiter({ ...limits, maxPending: 100 });
    for (let i = 0; i < 3; i++) expect(l.admit('a', 0)).toBe('ok');
    expect(l.admit('a', 50)).toBe('rate');
    expect(l.admit('b', 50)).toBe('ok');
    expect(l.admit('a', 100)).toBe('ok');
    expect(l.admit('a', 100)).toBe('rate');
  });

  it('remembers at most maxSources idle addresses, forgetting the least recently seen', () => {
    const l = new SourceLimiter(limits);
    for (const ip of ['a', 'b', 'c', 'd', 'e', 'f']) {
      expect(l.admit(ip, 0)).toBe('ok');
      l.done(ip);
    }
    expect(l.size).toBe(4);
    // 'a' was forgotten: it starts again with a full bucket.
    for (let i = 0; i < 3; i++) {
      expect(l.admit('a', 0)).toBe('ok');
      l.done('a');
    }
  });

  it('keeps an address with handshakes in progress even past maxSources', () => {
    const l = new SourceLimiter(limits);
    expect(l.admit('busy', 0)).toBe('ok');
    expect(l.admit('busy', 0)).toBe('ok');
    for (const ip of ['b', 'c', 'd', 'e', 'f']) {
      l.admit(ip, 0);
      l.done(ip);
    }
    expect(l.admit('busy', 0)).toBe('pending');
  });
});
