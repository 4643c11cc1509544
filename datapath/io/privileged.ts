// The few privileged calls the pure-Node backend cannot make itself (Node
// has no ioctl or setsockopt for these), done by a short python3 process
// that inherits our file descriptor. An ioctl or setsockopt acts on the open
// file description, which parent and child share, so the effect stays with
// our fd after python exits. Used only at setup, never per packet.

import { spawn } from 'node:child_process';

const TUNSETIFF = 0x400454ca;
const TUNSETPERSIST = 0x400454cb;
const TUNSETOFFLOAD = 0x400454d0;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const IP_MTU_DISCOVER = 10;
const IP_PMTUDISC_DO = 2;
const IP_MTU = 14;

/** Runs python3 with `fds` as its fds 3, 4, ...; resolves with stdout, rejects with stderr's last line. */
export function runPython(code: string, args: string[], fds: number[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', code, ...args], { stdio: ['ignore', 'pipe', 'pipe', ...fds] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (e) => reject(new Error(`python3: ${e.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(err.trim().split('\n').pop() || `python3 exited ${code}`));
    });
  });
}

/**
 * Attaches fd (an open /dev/net/tun) to TAP `name` (IFF_TAP|IFF_NO_PI), with
 * no offloads: a persistent TAP the native backend opened before still
 * advertises TSO and checksum offload, and the kernel would hand this
 * reader, which has no virtio-net header to learn about them, 64 KiB
 * super-packets with partial checksums.
 */
export async function attachTap(fd: number, name: string, persist: boolean): Promise<void> {
  const code = [
    'import fcntl, struct, sys',
    `fcntl.ioctl(3, ${TUNSETIFF}, struct.pack("16sH", sys.argv[1].encode(), ${IFF_TAP | IFF_NO_PI}))`,
    `fcntl.ioctl(3, ${TUNSETOFFLOAD}, 0)`,
    `fcntl.ioctl(3, ${TUNSETPERSIST}, ${persist ? 1 : 0})`,
  ].join('\n');
  await runPython(code, [name], [fd]);
}

/** Sets IP_PMTUDISC_DO on a UDP socket fd: DF on every datagram, EMSGSIZE instead of fragmenting. */
export async function setDontFragment(fd: number): Promise<void> {
  const code = [
    'import socket',
    's = socket.socket(fileno=3)',
    `s.setsockopt(socket.IPPROTO_IP, ${IP_MTU_DISCOVER}, ${IP_PMTUDISC_DO})`,
    's.detach()',
  ].join('\n');
  await runPython(code, [], [fd]);
}

/** The kernel's path MTU towards ip (IP_MTU on a connected probe socket). */
export async function queryPathMtu(ip: string): Promise<number> {
  const code = [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.setsockopt(socket.IPPROTO_IP, ${IP_MTU_DISCOVER}, ${IP_PMTUDISC_DO})`,
    's.connect((sys.argv[1], 6783))',
    `print(s.getsockopt(socket.IPPROTO_IP, ${IP_MTU}))`,
  ].join('\n');
  const mtu = Number((await runPython(code, [ip])).trim());
  if (!Number.isInteger(mtu) || mtu <= 0) throw new Error(`pathMtu: no MTU for ${ip}`);
  return mtu;
}
