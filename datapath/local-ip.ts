// Which underlay address this host's datapath uses (the VTEP and the source
// of sleeve datagrams): --host when it names one; otherwise the address the
// kernel would send from towards the first peer (a connected UDP socket
// reveals it without sending anything), else the address on the interface
// of the default route, else the first global IPv4 address of any other
// interface.

import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import type { Netlink } from './netlink/netlink.js';

/** The source address the kernel picks for `ip` (no packet is sent). */
export async function sourceAddressFor(ip: string): Promise<string | undefined> {
  const sock = createSocket('udp4');
  try {
    await new Promise<void>((ok, fail) => {
      sock.once('error', fail);
      sock.connect(6783, ip, () => ok());
    });
    const a = sock.address().address;
    return a && a !== '0.0.0.0' ? a : undefined;
  } catch {
    return undefined;
  } finally {
    sock.close();
  }
}

function hostOf(peer: string): string {
  const bracket = /^\[([^\]]+)\]/.exec(peer);
  if (bracket) return bracket[1]!;
  const i = peer.lastIndexOf(':');
  return i > 0 && peer.indexOf(':') === i ? peer.slice(0, i) : peer;
}

export async function resolveLocalIp(host: string, peers: readonly string[], nl: Pick<Netlink, 'listRoutes' | 'listAddresses' | 'listLinks'>, exclude: readonly string[] = []): Promise<string> {
  if (host && host !== '0.0.0.0') {
    if (!isIPv4(host)) throw new Error(`--host: the datapath needs an IPv4 underlay address, got ${host}`);
    return host;
  }
  for (const p of peers) {
    let ip = hostOf(p);
    if (!isIPv4(ip)) {
      try {
        ip = (await lookup(ip, { family: 4 })).address;
      } catch {
        continue;
      }
    }
    const src = await sourceAddressFor(ip);
    if (src) return src;
  }
  const addrs = (await nl.listAddresses(undefined, 4)).filter((a) => !a.address.startsWith('127.'));
  const links = new Map((await nl.listLinks()).map((l) => [l.index, l]));
  const usable = addrs.filter((a) => !exclude.includes(links.get(a.ifindex)?.name ?? ''));
  const def = (await nl.listRoutes(4)).find((r) => r.dst === '0.0.0.0/0');
  if (def?.prefsrc && usable.some((a) => a.address === def.prefsrc)) return def.prefsrc;
  const onDefault = def?.oif === undefined ? undefined : usable.find((a) => a.ifindex === def.oif);
  if (onDefault) return onDefault.address;
  const any = usable.find((a) => links.get(a.ifindex)?.up);
  if (any) return any.address;
  throw new Error('datapath: no IPv4 underlay address found; give one with --host');
}
