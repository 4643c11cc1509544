// The CNI commands as the daemon runs them: ADD, DEL, CHECK, VERSION, STATUS
// and GC over an injected allocator and host networking. Every invocation
// ends in a CniOutput (stdout + exit code); nothing here throws to the caller.
//
// ADD follows the reference bridge plugin's shape: a `success` flag set on the
// last line, and a `finally` that undoes whatever this ADD did when it is not
// set. DEL is idempotent and tolerant (no netns, an empty CNI_NETNS, a missing
// link or an unknown container are all success).

import { decodeConfig, parseNetConf, type Attachment, type NetConf } from './config.js';
import { parseCniEnv, parseCommand, type CniEnv } from './env.js';
import { CniCode, CniError, errorResult, oneLine } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import { bridgeMac, HOST_VETH_RE, hostVethMac, hostVethName, podMac } from './names.js';
import { peekConfig, type CniOutput, type CniRequest } from './protocol.js';
import { attachmentModel, resultListsAttachment, shapeResult } from './result.js';
import {
  AllocatorError,
  HostNetworkError,
  type CniAllocator,
  type CniHostNetwork,
  type PodAddress,
  type PodLink,
  type PodLinkState,
} from './types.js';
import { allowsCheck, allowsStatusAndGc, isSupportedVersion, LATEST_VERSION, versionResult } from './version.js';

export type CniLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface CniCommandsDeps {
  allocator: CniAllocator;
  hostNetwork: CniHostNetwork;
  /** The overlay MTU, used when the config says `"mtu": 0`. */
  defaultMtu(): number;
  /** Where a DEL whose release failed is parked for a later retry (the daemon's pending directory). */
  parkDel?(req: CniRequest): Promise<void>;
  log?: CniLog;
}

const OK_EMPTY: CniOutput = { stdout: '', exitCode: 0 };

export class CniCommands {
  private readonly locks = new KeyedLock();
  private readonly bridges = new Map<string, Promise<{ mac: string }>>();
  private readonly log: CniLog;

  constructor(private readonly deps: CniCommandsDeps) {
    this.log = deps.log ?? (() => undefined);
  }

  /** Run one invocation. Never throws: failures become CNI error results. */
  async execute(req: CniRequest): Promise<CniOutput> {
    // Error results carry the config's version when it names one we speak.
    const peeked = peekConfig(req.config).cniVersion;
    const version = isSupportedVersion(peeked) ? peeked : LATEST_VERSION;
    try {
      const command = parseCommand(req.env.CNI_COMMAND);
      if (command === 'VERSION') return json(versionResult(peeked));
      const raw = decodeConfig(req.config);
      const conf = parseNetConf(raw);
      const env = parseCniEnv(req.env);
      switch (env.command) {
        case 'ADD':
          return await this.add(env, conf);
        case 'DEL':
          return await this.del(env, conf, req);
        case 'CHECK':
          return await this.check(env, conf);
        case 'STATUS':
          return this.status(conf);
        case 'GC':
          return await this.gc(conf);
        default:
          throw new CniError(CniCode.INVALID_ENV, `unknown CNI_COMMAND=${JSON.stringify(env.command)}`);
      }
    } catch (err) {
      if (!(err instanceof CniError)) this.log('error', 'cni: unexpected failure', { err: oneLine(err), command: req.env.CNI_COMMAND });
      return { stdout: JSON.stringify(errorResult(err, version)), exitCode: 1 };
    }
  }

  private async add(env: CniEnv, conf: NetConf): Promise<CniOutput> {
    await this.requireNetns(env.netns);
    const { allocator, hostNetwork } = this.deps;
    if (!allocator.ready()) {
      throw new CniError(CniCode.TRY_AGAIN_LATER, 'meshnet IPAM is not ready yet', 'the daemon has not claimed address space; retry shortly');
    }
    const key = attachmentKey(env);
    return this.locks.run(key, async () => {
      const existing = await allocator.lookup(env.containerId, env.ifname);
      const hostIfname = hostVethName(env.containerId, env.ifname);
      const requested = env.requestedIp ?? conf.requestedIp;
      let allocated = false;
      let wired = false;
      let success = false;
      try {
        const addr = await allocatorCall(() =>
          requested ? allocator.claim(env.containerId, env.ifname, requested) : allocator.allocate(env.containerId, env.ifname),
        );
        allocated = !existing;
        const mtu = conf.mtu || this.deps.defaultMtu();
        const bridge = await this.ensureBridge(conf.bridge, addr, mtu);
        const link = podLink(env, conf, addr, hostIfname, mtu);
        const output = json(
          shapeResult(
            attachmentModel(
              {
                bridge: { name: conf.bridge, mac: bridge.mac },
                hostVeth: { name: hostIfname, mac: link.hostMac },
                pod: { name: env.ifname, mac: link.podMac, netns: env.netns },
                mtu,
                address: addr.address,
                prefixLength: addr.prefixLength,
                gateway: addr.gateway,
                dns: conf.dns,
              },
              conf.prevResult,
            ),
            conf.cniVersion,
          ),
        );
        wired = true;
        if (existing) {
          // A repeated ADD for an attachment that is fully wired answers as before;
          // a half-wired one (a crash mid-ADD) is cleared and wired again.
          if (!stateProblem(await hostNetwork.inspect(link), link)) {
            success = true;
            return output;
          }
          await hostNetwork.detach(hostIfname);
        }
        await this.attachWithRetry(link, addr, mtu);
        success = true;
        this.log('info', 'cni: attached', { containerId: env.containerId, ifname: env.ifname, address: addr.address, hostIfname });
        return output;
      } finally {
        if (!success) await this.rollbackAdd(env, hostIfname, wired, allocated);
      }
    });
  }

  /** Attach; on failure clean up, re-ensure the bridge (it may have been removed under us) and try once more. */
  private async attachWithRetry(link: PodLink, addr: PodAddress, mtu: number): Promise<void> {
    const { hostNetwork } = this.deps;
    try {
      await hostNetwork.attach(link);
      return;
    } catch (first) {
      this.log('warn', 'cni: attach failed, retrying once', { hostIfname: link.hostIfname, err: oneLine(first) });
      await hostNetwork.detach(link.hostIfname);
      this.bridges.delete(bridgeKey(link.bridge, addr));
      await this.ensureBridge(link.bridge, addr, mtu);
    }
    try {
      await hostNetwork.attach(link);
    } catch (err) {
      throw setupError(err, link);
    }
  }

  private async rollbackAdd(env: CniEnv, hostIfname: string, detach: boolean, release: boolean): Promise<void> {
    if (detach) {
      try {
        await this.deps.hostNetwork.detach(hostIfname);
      } catch (err) {
        this.log('error', 'cni: rollback could not remove veth', { hostIfname, err: oneLine(err) });
      }
    }
    if (release) {
      try {
        await this.deps.allocator.release(env.containerId, env.ifname);
      } catch (err) {
        this.log('error', 'cni: rollback could not release address', { containerId: env.containerId, err: oneLine(err) });
      }
    }
  }

  private async del(env: CniEnv, _conf: NetConf, req: CniRequest): Promise<CniOutput> {
    const { allocator, hostNetwork } = this.deps;
    return this.locks.run(attachmentKey(env), async () => {
      // Deleting the host end removes the pair, the pod's end included, so the netns is never entered.
      const hostIfname = hostVethName(env.containerId, env.ifname);
      try {
        await hostNetwork.detach(hostIfname);
      } catch (err) {
        // The address stays held while its interface may still exist: a retry of DEL finishes the job.
        throw new CniError(CniCode.SETUP_FAILED, `could not delete ${hostIfname}: ${oneLine(err)}`);
      }
      try {
        await allocator.release(env.containerId, env.ifname);
      } catch (err) {
        if (!this.deps.parkDel) throw new CniError(CniCode.TRY_AGAIN_LATER, `could not release the address of ${env.containerId}: ${oneLine(err)}`);
        // DEL must succeed when it can: park it and let the daemon finish the release later.
        await this.deps.parkDel(req);
        this.log('warn', 'cni: release failed, parked for later', { containerId: env.containerId, err: oneLine(err) });
      }
      return OK_EMPTY;
    });
  }

  private async check(env: CniEnv, conf: NetConf): Promise<CniOutput> {
    if (!allowsCheck(conf.cniVersion)) {
      throw new CniError(CniCode.INCOMPATIBLE_VERSION, `CHECK needs cniVersion 0.4.0 or later, config has "${conf.cniVersion}"`);
    }
    await this.requireNetns(env.netns);
    return this.locks.run(attachmentKey(env), async () => {
      const addr = await this.deps.allocator.lookup(env.containerId, env.ifname);
      if (!addr) {
        throw new CniError(CniCode.UNKNOWN_CONTAINER, `meshnet holds no address for CNI_CONTAINERID=${env.containerId} CNI_IFNAME=${env.ifname}`);
      }
      const hostIfname = hostVethName(env.containerId, env.ifname);
      const link = podLink(env, conf, addr, hostIfname, conf.mtu || this.deps.defaultMtu());
      const problem = stateProblem(await this.deps.hostNetwork.inspect(link), link);
      if (problem) throw new CniError(CniCode.CHECK_FAILED, problem);
      if (conf.prevResult) {
        const mismatch = resultListsAttachment(conf.prevResult, env.ifname, env.netns, `${addr.address}/${addr.prefixLength}`);
        if (mismatch) throw new CniError(CniCode.CHECK_FAILED, mismatch);
      }
      return OK_EMPTY;
    });
  }

  private status(conf: NetConf): CniOutput {
    if (!allowsStatusAndGc(conf.cniVersion)) {
      throw new CniError(CniCode.INCOMPATIBLE_VERSION, `STATUS needs cniVersion 1.1.0 or later, config has "${conf.cniVersion}"`);
    }
    if (!this.deps.allocator.ready()) throw new CniError(CniCode.NOT_AVAILABLE, 'meshnet IPAM is not ready', 'the daemon has not claimed address space yet');
    return OK_EMPTY;
  }

  private async gc(conf: NetConf): Promise<CniOutput> {
    if (!allowsStatusAndGc(conf.cniVersion)) {
      throw new CniError(CniCode.INCOMPATIBLE_VERSION, `GC needs cniVersion 1.1.0 or later, config has "${conf.cniVersion}"`);
    }
    if (!conf.validAttachments) throw new CniError(CniCode.INVALID_CONFIG, 'GC needs the field "cni.dev/valid-attachments"');
    const { allocator, hostNetwork } = this.deps;
    const valid = new Set(conf.validAttachments.map(attachmentKey));
    const keep = new Set(conf.validAttachments.map((a) => hostVethName(a.containerId, a.ifname)));
    const errors: string[] = [];
    let released = 0;
    for (const a of await allocator.allocations()) {
      if (valid.has(attachmentKey(a))) continue;
      await this.locks.run(attachmentKey(a), async () => {
        try {
          await hostNetwork.detach(hostVethName(a.containerId, a.ifname));
          await allocator.release(a.containerId, a.ifname);
          released++;
        } catch (err) {
          errors.push(`${a.containerId}/${a.ifname}: ${oneLine(err)}`);
        }
      });
    }
    // Host ends whose attachment is gone (e.g. a crash between veth and allocation records).
    let orphans = 0;
    try {
      for (const port of await hostNetwork.bridgePorts(conf.bridge)) {
        if (!HOST_VETH_RE.test(port) || keep.has(port)) continue;
        try {
          if (await hostNetwork.detach(port)) orphans++;
        } catch (err) {
          errors.push(`${port}: ${oneLine(err)}`);
        }
      }
    } catch (err) {
      errors.push(`listing ports of ${conf.bridge}: ${oneLine(err)}`);
    }
    this.log('info', 'cni: gc', { released, orphans, errors: errors.length });
    if (errors.length > 0) throw new CniError(CniCode.SETUP_FAILED, `GC could not remove ${errors.length} stale attachment(s)`, errors.join('; '));
    return OK_EMPTY;
  }

  private async requireNetns(netns: string): Promise<void> {
    const state = await this.deps.hostNetwork.netnsState(netns);
    if (state === 'missing') throw new CniError(CniCode.UNKNOWN_CONTAINER, `CNI_NETNS=${netns} does not exist`);
    if (state === 'not-netns') throw new CniError(CniCode.INVALID_ENV, `CNI_NETNS=${netns} is not a network namespace`);
  }

  /** The bridge once per (name, gateway); concurrent first ADDs share one attempt. */
  private ensureBridge(name: string, addr: PodAddress, mtu: number): Promise<{ mac: string }> {
    // Keyed by the gateway too: a new gateway address (a new `expose`) is added to the bridge.
    const key = bridgeKey(name, addr);
    const cached = this.bridges.get(key);
    if (cached) return cached;
    const p = this.deps.hostNetwork
      .ensureBridge({ name, gateway: addr.gateway, prefixLength: addr.prefixLength, mtu, mac: bridgeMac(addr.gateway) })
      .catch((err: unknown) => {
        this.bridges.delete(key);
        throw new CniError(CniCode.SETUP_FAILED, `could not set up bridge ${name} with ${addr.gateway}/${addr.prefixLength}: ${oneLine(err)}`);
      });
    this.bridges.set(key, p);
    return p;
  }
}

function json(v: unknown): CniOutput {
  return { stdout: JSON.stringify(v), exitCode: 0 };
}

function bridgeKey(name: string, addr: PodAddress): string {
  return `${name}|${addr.gateway}/${addr.prefixLength}`;
}

function attachmentKey(a: Pick<Attachment, 'containerId' | 'ifname'>): string {
  return `${a.containerId}\0${a.ifname}`;
}

function podLink(env: CniEnv, conf: NetConf, addr: PodAddress, hostIfname: string, mtu: number): PodLink {
  return {
    netns: env.netns,
    ifname: env.ifname,
    hostIfname,
    bridge: conf.bridge,
    address: addr.address,
    prefixLength: addr.prefixLength,
    gateway: addr.gateway,
    mtu,
    hairpin: conf.hairpinMode,
    podMac: podMac(addr.address),
    hostMac: hostVethMac(addr.address),
  };
}

/**
 * What differs between the wiring found and the wiring wanted, or undefined.
 * MAC and MTU are not compared: a later plugin in the chain (tuning) may change them.
 */
export function stateProblem(s: PodLinkState, link: PodLink): string | undefined {
  if (!s.host.exists) return `host interface ${link.hostIfname} does not exist`;
  if (s.host.master !== link.bridge) return `host interface ${link.hostIfname} is not attached to bridge ${link.bridge}`;
  if (!s.pod.exists) return `interface ${link.ifname} does not exist in ${link.netns}`;
  if (!s.pod.up) return `interface ${link.ifname} in ${link.netns} is down`;
  const cidr = `${link.address}/${link.prefixLength}`;
  if (!s.pod.addresses.includes(cidr)) return `interface ${link.ifname} in ${link.netns} lacks address ${cidr}`;
  if (!s.pod.defaultGateways.includes(link.gateway)) return `${link.netns} has no default route via ${link.gateway}`;
  return undefined;
}

async function allocatorCall(fn: () => Promise<PodAddress>): Promise<PodAddress> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AllocatorError) {
      if (err.kind === 'not-ready') throw new CniError(CniCode.TRY_AGAIN_LATER, `meshnet IPAM is not ready: ${err.message}`);
      throw new CniError(CniCode.ADDRESS_UNAVAILABLE, err.message);
    }
    throw new CniError(CniCode.INTERNAL, `address allocation failed: ${oneLine(err)}`);
  }
}

function setupError(err: unknown, link: PodLink): CniError {
  const step = err instanceof HostNetworkError ? ` (${err.step})` : '';
  return new CniError(CniCode.SETUP_FAILED, `wiring ${link.ifname} in ${link.netns} failed${step}: ${oneLine(err)}`);
}
