// Which underlay address the datapath uses when --host does not name one.
import { describe, expect, it } from 'vitest';
import { resolveLocalIp } from '../../../datapath/local-ip.js';
import type { Address, Link, Route } from '../../../datapath/netlink/types.js';

const link = (index: number, name: string, up = true): Link => ({ index, name, kind: undefined, mtu: 1500, mac: '02:00:00:00:00:01', up, lowerUp: up, master: undefined, link: undefined, linkNetnsId: undefined });
const addr = (ifindex: number, address: string): Address => ({ ifindex, family: 4, address, prefixLength: 24, label: undefined });
const route = (dst: string, oif: number, prefsrc?: string): Route => ({ dst, gateway: undefined, oif, table: 254, protocol: 3, scope: 0, type: 1, prefsrc, priority: undefined, onlink: false });

function fakeNl(links: Link[], addrs: Address[], routes: Route[]) {
  return { listLinks: async () => links, listAddresses: async () => addrs, listRoutes: async () => routes };
}

describe('resolveLocalIp', () => {
  const nl = fakeNl([link(1, 'lo'), link(2, 'meshnet'), link(3, 'eth0'), link(4, 'eth1')], [addr(1, '127.0.0.1'), addr(2, '198.19.0.1'), addr(3, '198.18.0.11'), addr(4, '198.18.9.9')], [route('0.0.0.0/0', 4)]);

  it('takes --host when it names an address, and refuses a non-IPv4 one', async () => {
    expect(await resolveLocalIp('198.18.0.11', [], nl)).toBe('198.18.0.11');
    await expect(resolveLocalIp('fd00::1', [], nl)).rejects.toThrow(/--host: the datapath needs an IPv4 underlay address/);
  });

  it('uses the source address towards the first peer (no packet is sent)', async () => {
    expect(await resolveLocalIp('0.0.0.0', ['127.0.0.1:6783'], nl)).toBe('127.0.0.1');
  });

  it('falls back to the default route, then to any up interface, never our own bridge', async () => {
    expect(await resolveLocalIp('0.0.0.0', [], nl, ['meshnet'])).toBe('198.18.9.9');
    expect(await resolveLocalIp('0.0.0.0', [], fakeNl([link(2, 'meshnet'), link(3, 'eth0')], [addr(2, '198.19.0.1'), addr(3, '198.18.0.11')], []), ['meshnet'])).toBe('198.18.0.11');
    await expect(resolveLocalIp('0.0.0.0', [], fakeNl([link(2, 'meshnet')], [addr(2, '198.19.0.1')], []), ['meshnet'])).rejects.toThrow(/give one with --host/);
  });
});
