// The namespaces the sleeve I/O benchmark and e2e test run in: on each test
// host a bridge `meshnet` with a "pod" namespace on a veth (198.19.0.<i>,
// MAC 02:00:00:00:00:0<i>), and a forwarder process per host that opens the
// TAP `meshnet-sleeve` and tunnels frames over the underlay (UDP 6783).

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestHost, TestNet } from '../test/harness/netns.js';
import type { ForwarderConfig } from './sleeve-io-forwarder.js';

export const SLEEVE_PORT = 6783;
export const TAP_NAME = 'meshnet-sleeve';
export const BRIDGE = 'meshnet';

export interface Pod {
  host: TestHost;
  ns: string;
  ip: string;
  mac: string;
  /** The host's own address on its bridge (198.19.0.10<i>): host-to-host traffic over the sleeve. */
  hostIp: string;
}

/** Bridge (with an address of the host's own) + pod on every host of `net`; pods get `mtu`. */
export async function addPods(net: TestNet, mtu: number): Promise<Pod[]> {
  const pods: Pod[] = [];
  for (const [i, host] of net.hosts.entries()) {
    const n = i + 1;
    const ns = host.podNs('pod');
    const pod = { host, ns, ip: `198.19.0.${n}`, mac: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`, hostIp: `198.19.0.${100 + n}` };
    await net.addNamespace(ns);
    await net.ip(host.ns, ['link', 'add', BRIDGE, 'type', 'bridge']);
    await net.ip(host.ns, ['link', 'set', BRIDGE, 'up']);
    await net.ip(host.ns, ['addr', 'add', `${pod.hostIp}/24`, 'dev', BRIDGE]);
    await net.ip(host.ns, ['link', 'add', 'vpod', 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await net.ip(host.ns, ['link', 'set', 'vpod', 'master', BRIDGE, 'up']);
    await net.ip(ns, ['link', 'set', 'eth0', 'address', pod.mac, 'mtu', String(mtu), 'up']);
    await net.ip(ns, ['addr', 'add', `${pod.ip}/24`, 'dev', 'eth0']);
    pods.push(pod);
  }
  return pods;
}

export interface Forwarder {
  child: ChildProcess;
  pid: number;
  /** SIGTERM, then the forwarder's final counters. */
  stop(): Promise<Record<string, unknown>>;
}

/** The compiled forwarder script (run `npm run build` first). */
export function forwarderScript(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  // Running from dist/bench: the script is beside us; from bench/ (vitest): in dist.
  return here.includes('/dist/') ? resolve(here, 'sleeve-io-forwarder.js') : resolve(here, '../dist/bench/sleeve-io-forwarder.js');
}

export interface ForwarderOptions {
  backend: ForwarderConfig['backend'];
  offload: boolean;
  encrypted: boolean;
  mtu: number;
  /** With `encrypted`: which AEAD (default secretbox). */
  cipher?: ForwarderConfig['cipher'];
}

/** Starts one forwarder per pod's host, each sending to all the others, and bridges its TAP. */
export async function startForwarders(net: TestNet, pods: Pod[], opts: ForwarderOptions): Promise<Forwarder[]> {
  const keys = pods.map((_, i) => Buffer.alloc(32, i + 1).toString('hex'));
  const fwds: Forwarder[] = [];
  for (const [i, pod] of pods.entries()) {
    const others = pods.filter((_, j) => j !== i);
    const cfg: ForwarderConfig = {
      backend: opts.backend,
      tap: TAP_NAME,
      offload: opts.offload,
      bind: pod.host.address,
      port: SLEEVE_PORT,
      peers: others.map((o) => ({ ip: o.host.address, port: SLEEVE_PORT, macs: [o.mac] })),
    };
    if (opts.encrypted) {
      if (pods.length !== 2) throw new Error('encrypted forwarders: two hosts only (one key per direction)');
      cfg.sendKey = keys[i];
      cfg.recvKey = keys[1 - i];
      cfg.cipher = opts.cipher ?? 'secretbox';
    }
    const child = spawn('ip', ['netns', 'exec', pod.host.ns, process.execPath, forwarderScript(), JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
    net.track(child);
    const lines = createInterface({ input: child.stdout! });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const last: string[] = [];
    await new Promise<void>((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`forwarder on ${pod.host.id} not ready in 15 s: ${stderr}`)), 15_000);
      lines.on('line', (l) => {
        if (l === 'ready') {
          clearTimeout(timer);
          ok();
        } else last.push(l);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`forwarder on ${pod.host.id} exited ${code}: ${stderr.trim()}`));
      });
    });
    await net.ip(pod.host.ns, ['link', 'set', TAP_NAME, 'mtu', String(opts.mtu), 'master', BRIDGE, 'up']);
    fwds.push({
      child,
      pid: child.pid!,
      stop: () =>
        new Promise((done) => {
          if (child.exitCode !== null) return done({ exited: child.exitCode, stderr });
          child.once('exit', () => {
            try {
              done(JSON.parse(last[last.length - 1] ?? '{}') as Record<string, unknown>);
            } catch {
              done({ stderr });
            }
          });
          child.kill('SIGTERM');
        }),
    });
  }
  return fwds;
}

export { median, pingSamples, quantile } from './tunnels.js';
