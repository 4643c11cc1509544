import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attachmentModel, parseResult, shapeResult, type ResultModel } from '../../../router/cni/result.js';
import { SUPPORTED_VERSIONS } from '../../../router/cni/version.js';

const attachment = {
  bridge: { name: 'meshnet', mac: '0a:58:c6:13:00:01' },
  hostVeth: { name: 'mn0123456789ab', mac: '0e:58:c6:13:00:05' },
  pod: { name: 'eth0', mac: '0a:58:c6:13:00:05', netns: '/run/netns/p1' },
  mtu: 1376,
  address: '198.19.0.5',
  prefixLength: 16,
  gateway: '198.19.0.1',
  dns: {},
};

describe('result shaping', () => {
  it('0.3.x and 0.4.0 carry the ip version and no mtu', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0']) {
      expect(shapeResult(attachmentModel(attachment), v)).toEqual({
        cniVersion: v,
        interfaces: [
          { name: 'meshnet', mac: '0a:58:c6:13:00:01' },
          { name: 'mn0123456789ab', mac: '0e:58:c6:13:00:05' },
          { name: 'eth0', mac: '0a:58:c6:13:00:05', sandbox: '/run/netns/p1' },
        ],
        ips: [{ version: '4', address: '198.19.0.5/16', gateway: '198.19.0.1', interface: 2 }],
        routes: [{ dst: '0.0.0.0/0', gw: '198.19.0.1' }],
        dns: {},
      });
    }
  });

  it('1.0.0 drops the ip version field', () => {
    const r = shapeResult(attachmentModel(attachment), '1.0.0');
    expect(r.ips).toEqual([{ address: '198.19.0.5/16', gateway: '198.19.0.1', interface: 2 }]);
    expect((r.interfaces as Record<string, unknown>[]).every((i) => !('mtu' in i))).toBe(true);
  });

  it('1.1.0 adds the interfaces MTU', () => {
    const r = shapeResult(attachmentModel(attachment), '1.1.0');
    expect(r.interfaces).toEqual([
      { name: 'meshnet', mac: '0a:58:c6:13:00:01', mtu: 1376 },
      { name: 'mn0123456789ab', mac: '0e:58:c6:13:00:05', mtu: 1376 },
      { name: 'eth0', mac: '0a:58:c6:13:00:05', mtu: 1376, sandbox: '/run/netns/p1' },
    ]);
    expect(r.ips).toEqual([{ address: '198.19.0.5/16', gateway: '198.19.0.1', interface: 2 }]);
  });

  it('passes DNS from the config through', () => {
    const r = shapeResult(attachmentModel({ ...attachment, dns: { nameservers: ['198.19.0.1'], search: ['svc.local'] } }), '1.0.0');
    expect(r.dns).toEqual({ nameservers: ['198.19.0.1'], search: ['svc.local'] });
  });

  it('appends to a prevResult and points the ip at the right interface', () => {
    const prev: ResultModel = { interfaces: [{ name: 'lo', sandbox: '/run/netns/p1' }], ips: [{ address: '127.0.0.1/8', interface: 0 }], routes: [], dns: { domain: 'x' } };
    const m = attachmentModel(attachment, prev);
    expect(m.interfaces.map((i) => i.name)).toEqual(['lo', 'meshnet', 'mn0123456789ab', 'eth0']);
    expect(m.ips[1]).toEqual({ address: '198.19.0.5/16', gateway: '198.19.0.1', interface: 3 });
    expect(m.dns).toEqual({ domain: 'x' });
  });

  it('reads back what it writes, for every version (property)', () => {
    const mac = fc.constantFrom('0a:58:c6:13:00:01', '0e:58:00:00:00:02');
    const ip = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => `198.19.${a}.${b}`);
    const model = fc
      .record({
        interfaces: fc.array(
          fc.record({ name: fc.constantFrom('eth0', 'net1', 'mnabc'), mac: fc.option(mac, { nil: undefined }), mtu: fc.option(fc.integer({ min: 68, max: 9000 }), { nil: undefined }), sandbox: fc.option(fc.constant('/run/netns/x'), { nil: undefined }) }),
          { minLength: 1, maxLength: 4 },
        ),
        ips: fc.array(fc.record({ address: ip.map((a) => `${a}/24`), gateway: fc.option(ip, { nil: undefined }) }), { maxLength: 3 }),
        routes: fc.array(fc.record({ dst: fc.constantFrom('0.0.0.0/0', '198.19.0.0/16'), gw: fc.option(ip, { nil: undefined }), priority: fc.option(fc.nat(1000), { nil: undefined }) }), { maxLength: 3 }),
        dns: fc.record({ nameservers: fc.option(fc.array(ip, { maxLength: 2 }), { nil: undefined }) }),
      })
      .map((m) => ({ ...m, ips: m.ips.map((x) => ({ ...x, interface: 0 })) }));
    const strip = <T extends object>(o: T): T => JSON.parse(JSON.stringify(o)) as T;
    fc.assert(
      fc.property(model, fc.constantFrom(...SUPPORTED_VERSIONS), (m, v) => {
        const back = parseResult(strip(shapeResult(m, v)));
        const want = strip(m) as ResultModel;
        if (v !== '1.1.0') {
          want.interfaces.forEach((i) => delete i.mtu);
          want.routes.forEach((r) => delete r.priority);
        }
        expect(back).toEqual(want);
      }),
    );
  });
});
