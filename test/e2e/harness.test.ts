import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { TestNet } from '../harness/netns.js';

describe('netns harness', () => {
  let net: TestNet;
  beforeAll(async () => {
    net = await TestNet.create(2);
  });
  afterAll(async () => {
    await net?.destroy();
  });

  it('joins hosts on one underlay', async () => {
    const r = await net.host(1).exec('ping', ['-c', '1', '-W', '2', net.host(2).address]);
    expect(r.code).toBe(0);
  });

  it('removes every namespace it created', async () => {
    const extra = await TestNet.create(1);
    const prefix = extra.prefix;
    await extra.destroy();
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(left).not.toContain(prefix);
  });
});
