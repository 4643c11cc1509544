import { describe, expect, it } from 'vitest';
import { parseCniArgs, parseCniEnv } from '../../../router/cni/env.js';
import { CniCode, CniError } from '../../../router/cni/errors.js';

const add = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc123', CNI_NETNS: '/run/netns/p1', CNI_IFNAME: 'eth0' };

function code(env: Record<string, string | undefined>): { code: number; msg: string } {
  try {
    parseCniEnv(env);
  } catch (err) {
    if (err instanceof CniError) return { code: err.code, msg: err.msg };
    throw err;
  }
  return { code: 0, msg: '' };
}

describe('CNI environment', () => {
  it('parses a complete ADD', () => {
    expect(parseCniEnv({ ...add, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web', CNI_PATH: '/opt/cni/bin' })).toMatchObject({
      command: 'ADD',
      containerId: 'abc123',
      netns: '/run/netns/p1',
      ifname: 'eth0',
    });
  });

  it.each([
    [{}, 'CNI_COMMAND is missing'],
    [{ CNI_COMMAND: 'ATTACH' }, 'ATTACH'],
    [{ CNI_COMMAND: 'add' }, 'add'],
    [{ ...add, CNI_CONTAINERID: undefined }, 'CNI_CONTAINERID'],
    [{ ...add, CNI_NETNS: '' }, 'CNI_NETNS'],
    [{ ...add, CNI_IFNAME: undefined }, 'CNI_IFNAME'],
    [{ ...add, CNI_CONTAINERID: '-abc' }, '-abc'],
    [{ ...add, CNI_CONTAINERID: 'a b' }, 'a b'],
    [{ ...add, CNI_IFNAME: 'eth0:1' }, 'eth0:1'],
    [{ ...add, CNI_IFNAME: 'a-very-long-ifname' }, 'a-very-long-ifname'],
    [{ ...add, CNI_IFNAME: '..' }, '..'],
    [{ ...add, CNI_NETNS: 'relative' }, 'relative'],
    [{ ...add, CNI_NETNS: '/run/netns/with space' }, 'with space'],
    [{ ...add, CNI_ARGS: 'novalue' }, 'novalue'],
    [{ ...add, CNI_ARGS: 'IP=300.1.1.1' }, '300.1.1.1'],
  ])('rejects %j with code 4 naming %s', (env, named) => {
    const r = code(env);
    expect(r.code).toBe(CniCode.INVALID_ENV);
    expect(r.msg).toContain(named);
  });

  it('lets DEL go without a netns (containerd passes an empty one)', () => {
    expect(parseCniEnv({ ...add, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns).toBe('');
  });

  it('needs no container for STATUS, GC and VERSION', () => {
    for (const c of ['STATUS', 'GC', 'VERSION']) expect(parseCniEnv({ CNI_COMMAND: c }).command).toBe(c);
  });

  it('reads IP= from CNI_ARGS as a requested address', () => {
    expect(parseCniEnv({ ...add, CNI_ARGS: 'IgnoreUnknown=1;IP=198.19.0.7' }).requestedIp).toBe('198.19.0.7');
  });

  it('splits CNI_ARGS on ; and the first =', () => {
    expect([...parseCniArgs('A=1;B=x=y;;C=')]).toEqual([
      ['A', '1'],
      ['B', 'x=y'],
      ['C', ''],
    ]);
  });
});
