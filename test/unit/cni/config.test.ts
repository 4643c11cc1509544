import { describe, expect, it } from 'vitest';
import { configVersion, decodeConfig, parseNetConf } from '../../../router/cni/config.js';
import { CniCode, CniError } from '../../../router/cni/errors.js';
import { SUPPORTED_VERSIONS } from '../../../router/cni/version.js';

const base = { cniVersion: '1.0.0', name: 'meshnet', type: 'meshnet' };

function parse(extra: Record<string, unknown>): ReturnType<typeof parseNetConf> {
  return parseNetConf({ ...base, ...extra });
}

function rejection(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error('did not throw');
}

describe('network config', () => {
  it.each(SUPPORTED_VERSIONS)('accepts cniVersion %s with defaults', (v) => {
    const c = parseNetConf({ ...base, cniVersion: v });
    expect(c).toMatchObject({ cniVersion: v, name: 'meshnet', type: 'meshnet', runDir: '/run/meshnet', bridge: 'meshnet', mtu: 0, hairpinMode: true, dns: {} });
  });

  it('reads every field of the DESIGN conflist entry', () => {
    const c = parse({ runDir: '/tmp/x/run', bridge: 'br-pods', mtu: 1376, hairpinMode: false, dns: { nameservers: ['198.19.0.1'], search: ['svc'], domain: 'cluster', options: ['ndots:5'] } });
    expect(c).toMatchObject({ runDir: '/tmp/x/run', bridge: 'br-pods', mtu: 1376, hairpinMode: false });
    expect(c.dns).toEqual({ nameservers: ['198.19.0.1'], search: ['svc'], domain: 'cluster', options: ['ndots:5'] });
  });

  it('ignores fields it does not know (runtimes add their own)', () => {
    expect(() => parse({ capabilities: { portMappings: true }, someVendorKey: [1, 2] })).not.toThrow();
  });

  it.each([
    ['0.2.0'],
    ['2.0.0'],
    ['1.0'],
    [''],
  ])('rejects unsupported cniVersion %j with code 1 naming it', (v) => {
    const e = rejection(() => configVersion({ ...base, cniVersion: v }));
    expect(e.code).toBe(CniCode.INCOMPATIBLE_VERSION);
    expect(e.msg).toContain(JSON.stringify(v));
  });

  it.each([
    [{ cniVersion: undefined }, 'cniVersion'],
    [{ cniVersion: 1 }, 'cniVersion'],
    [{ name: undefined }, 'name'],
    [{ name: 42 }, 'name'],
    [{ name: 'bad name' }, 'bad name'],
    [{ name: '-x' }, '-x'],
    [{ type: undefined }, 'type'],
    [{ type: 'a/b' }, 'a/b'],
    [{ runDir: 'relative/dir' }, 'relative/dir'],
    [{ runDir: 7 }, 'runDir'],
    [{ bridge: 'this-name-is-too-long' }, 'this-name-is-too-long'],
    [{ bridge: 'br 0' }, 'br 0'],
    [{ bridge: 'br/0' }, 'br/0'],
    [{ bridge: '' }, 'bridge'],
    [{ bridge: 5 }, 'bridge'],
    [{ mtu: '1500' }, '"1500"'],
    [{ mtu: 1.5 }, '1.5'],
    [{ mtu: 67 }, '67'],
    [{ mtu: 70000 }, '70000'],
    [{ hairpinMode: 'yes' }, 'hairpinMode'],
    [{ dns: [] }, 'dns'],
    [{ dns: { nameservers: 'x' } }, 'nameservers'],
    [{ dns: { nameservers: ['not-an-ip'] } }, 'not-an-ip'],
    [{ dns: { domain: 3 } }, 'domain'],
    [{ args: 'x' }, 'args'],
    [{ runtimeConfig: [] }, 'runtimeConfig'],
    [{ runtimeConfig: { ips: ['198.19.0.9/24', '198.19.0.10/24'] } }, 'runtimeConfig.ips'],
    [{ runtimeConfig: { ips: ['fd00::1/64'] } }, 'fd00::1/64'],
    [{ prevResult: [] }, 'prevResult'],
    [{ prevResult: { ips: [{ address: 5 }] } }, 'ips[0].address'],
    [{ prevResult: { interfaces: [{ name: 'eth0' }], ips: [{ address: '198.19.0.2/24', interface: 3 }] } }, 'ips[0].interface'],
    [{ 'cni.dev/valid-attachments': {} }, 'cni.dev/valid-attachments'],
    [{ 'cni.dev/valid-attachments': [{ containerID: 1 }] }, 'cni.dev/valid-attachments'],
  ])('rejects %j with code 7 naming %s', (extra, named) => {
    const e = rejection(() => parseNetConf({ ...base, ...(extra as Record<string, unknown>) }));
    expect(e.code).toBe(CniCode.INVALID_CONFIG);
    expect(`${e.msg} ${e.details}`).toContain(named);
  });

  it('rejects an ipam section with code 2 naming key and value', () => {
    const e = rejection(() => parse({ ipam: { type: 'host-local', subnet: '198.19.0.0/24' } }));
    expect(e.code).toBe(CniCode.UNSUPPORTED_FIELD);
    expect(e.msg).toContain('ipam');
    expect(e.msg).toContain('host-local');
  });

  it('accepts an empty ipam section', () => {
    expect(() => parse({ ipam: {} })).not.toThrow();
  });

  it('takes a requested address from runtimeConfig.ips or args.cni.ips', () => {
    expect(parse({ runtimeConfig: { ips: ['198.19.0.9/24'] } }).requestedIp).toBe('198.19.0.9');
    expect(parse({ args: { cni: { ips: ['198.19.0.8'] } } }).requestedIp).toBe('198.19.0.8');
    expect(parse({ runtimeConfig: { ips: [] } }).requestedIp).toBeUndefined();
  });

  it('reads GC attachments under either spelling', () => {
    const a = [{ containerID: 'c1', ifname: 'eth0' }];
    expect(parse({ 'cni.dev/valid-attachments': a }).validAttachments).toEqual([{ containerId: 'c1', ifname: 'eth0' }]);
    expect(parse({ 'cni.dev/attachments': a }).validAttachments).toEqual([{ containerId: 'c1', ifname: 'eth0' }]);
  });

  it.each([
    ['', 'empty'],
    ['{', 'not valid JSON'],
    ['{"cniVersion": "1.0.0",}', 'not valid JSON'],
    ['[1,2]', 'must be a JSON object'],
    ['"meshnet"', 'must be a JSON object'],
    ['null', 'must be a JSON object'],
  ])('decoding %j fails with code 6 (%s)', (text, what) => {
    const e = rejection(() => decodeConfig(text));
    expect(e.code).toBe(CniCode.DECODE_FAILURE);
    expect(e.msg).toContain(what);
  });
});
