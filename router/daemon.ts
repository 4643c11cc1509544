// The router daemon's composition root: builds every component from the
// launch config, starts them in order, and stops what already started if a
// later one fails (so a failed launch leaves no socket or port behind).

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger as Pino } from 'pino';
import { cryptoBackendName, cryptoFallbackReason, initCrypto, passwordId, stretchPassword } from '../crypto/index.js';
import type { Secret } from '../mesh/handshake.js';
import { Mesh } from '../mesh/mesh.js';
import { derivePeerName } from '../mesh/peer-name.js';
import { TcpTransport } from '../mesh/transport.js';
import { callApi } from './api-client.js';
import { ApiError, ApiServer } from './api-server.js';
import { ConfigError, parsePeerAddress, type LaunchConfig } from './config.js';
import { absoluteStateDir, loadIdentity, machineId, saveIdentity } from './identity-store.js';
import { createLogger, RecentErrors } from './logger.js';
import { DaemonOps, type Progress } from './ops.js';
import { meshStatus, type StatusJson } from './status.js';
import { VERSION } from './version.js';
import { IpamService } from './ipam-service.js';
import { HOST_CONTAINER_ID, ipamFeatures as ipamFeaturesOf, parseRange } from './ipam/index.js';
import { CNI_HTTP_PATH, createCniService, IpHostNetwork, serveCniHttp, type CniLog, type CniService } from './cni/index.js';
import { bridgeMac, hostVethName, podMac } from './cni/names.js';
import { Datapath, DATAPATH_DEVICES } from '../datapath/index.js';

export class StartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartError';
  }
}

/** Anything with a start and a stop; a failed start stops what already started. */
interface Startable {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export class Daemon {
  readonly log: Pino;
  readonly recent = new RecentErrors();
  mesh!: Mesh;
  ipam!: IpamService;
  cni!: CniService;
  datapath!: Datapath;
  api!: ApiServer;
  ops!: DaemonOps;
  private readonly started: Startable[] = [];
  private stopping: Promise<void> | undefined;
  /** Resolves when the daemon has stopped (by API, signal or error). */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  private constructor(
    readonly config: LaunchConfig,
    logDest?: NodeJS.WritableStream,
    private readonly progress: Progress = () => undefined,
  ) {
    this.log = createLogger(config.logLevel, this.recent, logDest);
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  static async start(config: LaunchConfig, logDest?: NodeJS.WritableStream, progress?: Progress): Promise<Daemon> {
    const d = new Daemon(config, logDest, progress);
    try {
      await d.boot();
    } catch (err) {
      await d.stopAll();
      throw err instanceof StartError || err instanceof ConfigError ? err : new StartError(err instanceof Error ? err.message : String(err));
    }
    return d;
  }

  private async boot(): Promise<void> {
    const cfg = this.config;
    mkdirSync(cfg.stateDir, { recursive: true, mode: 0o700 });
    mkdirSync(cfg.runDir, { recursive: true, mode: 0o700 });
    if (await isRunning(cfg.runDir)) throw new StartError(`meshnet is already running with run dir ${cfg.runDir}`);

    const stored = loadIdentity(cfg.stateDir);
    const name = cfg.name ?? stored?.name ?? derivePeerName(machineId(), absoluteStateDir(cfg.stateDir));
    const incarnation = (stored?.name === name ? stored.incarnation : 0) + 1;
    saveIdentity(cfg.stateDir, { name, incarnation });

    await initCrypto();
    const fallback = cryptoFallbackReason();
    if (fallback) this.log.warn({ backend: cryptoBackendName() }, `using the portable crypto backend: ${fallback}`);
    const secrets: Secret[] = [];
    if (cfg.passwords.length) this.progress('stretching the password (argon2id)');
    for (const pw of cfg.passwords) {
      const key = await stretchPassword(Buffer.from(pw, 'utf8'));
      secrets.push({ id: passwordId(key), key });
    }

    // The IPAM range travels in every handshake: a peer with another range is refused.
    const ipamFeatures = ipamFeaturesOf(parseRange(cfg.ipallocRange));
    this.mesh = new Mesh({
      name,
      nickname: cfg.nickname ?? hostname().split('.')[0]!.slice(0, 63),
      incarnation,
      transport: new TcpTransport(cfg.host, cfg.port),
      listenPort: cfg.port,
      defaultPort: 6783,
      secrets,
      connLimit: cfg.connLimit,
      features: ipamFeatures,
      checkFeatures: (remote) => this.ipam.checkFeatures(remote),
      logger: this.log,
      onIncarnation: (inc) => saveIdentity(cfg.stateDir, { name, incarnation: inc }),
    });
    this.ops = new DaemonOps(this, secrets, this.progress);
    await this.add({ name: 'kubernetes discovery', start: async () => undefined, stop: () => this.ops.stopKube() });
    const init = await this.ops.ipamInit(name);
    this.ipam = new IpamService({ range: cfg.ipallocRange, init, launchPeers: cfg.peers.length, stateDir: cfg.stateDir }, this.mesh, this.log);
    // IPAM loads its state before any gossip can arrive.
    await this.add({ name: 'IPAM', start: () => this.ipam.start(), stop: () => this.ipam.stop() });
    // The datapath registers its gossip channels and is plugged in before the mesh starts.
    const dpOpts = { host: cfg.host, peers: cfg.peers, sleevePort: cfg.port, noFastdp: cfg.noFastdp, trustedSubnets: cfg.trustedSubnets, encrypted: secrets.length > 0, runDir: cfg.runDir, range: cfg.ipallocRange };
    this.datapath = await Datapath.create({ ...dpOpts, ...(cfg.mtu !== undefined ? { mtu: cfg.mtu } : {}) }, this.mesh, this.log);
    this.mesh.setOverlay(this.datapath);
    this.ops.metrics.addDatapath(this.datapath);
    await this.add({ name: 'datapath', start: () => this.datapath.start(), stop: () => this.datapath.stop() });
    this.syncPods();
    this.ipam.ipam.on('allocations-changed', () => this.syncPods());
    await this.add({ name: 'mesh', start: () => this.mesh.start(), stop: () => this.mesh.stop() });
    this.ops.afterMesh();
    enableForwarding(this.log);
    this.cni = createCniService({
      allocator: this.ipam.cniAllocator(),
      runDir: cfg.runDir,
      defaultMtu: () => this.overlayMtu(),
      log: cniLog(this.log),
    });

    this.api = new ApiServer(join(cfg.runDir, 'meshnet.sock'));
    this.registerRoutes();
    await this.add({ name: 'control API', start: () => this.api.listen(), stop: () => this.api.close() });
    // DELs the plugin parked while we were down are finished before new work.
    await this.cni.drainPending();

    if (cfg.metricsAddr) {
      const addr = cfg.metricsAddr;
      if (addr.host !== '127.0.0.1' && addr.host !== '::1') {
        this.log.warn({ addr: `${addr.host}:${addr.port}` }, 'metrics and the topology page are served on a non-loopback address, as --metrics-addr asks');
      }
      const server = this.ops.metricsServer();
      await this.add({ name: 'metrics', start: () => server.listen(addr), stop: () => server.close() });
    }

    const pidFile = join(cfg.runDir, 'meshnet.pid');
    writeFileSync(pidFile, `${process.pid}\n`);
    this.started.push({ name: 'pid file', start: async () => undefined, stop: async () => void unlinkQuiet(pidFile) });

    this.mesh.connect(cfg.peers.map((p) => parsePeerAddress(p, cfg.port)), false, 'command line');
    this.log.info(
      { name, nickname: this.mesh.localNickname, incarnation, version: VERSION, encryption: secrets.length > 0, port: cfg.port },
      `meshnet ${VERSION} started as ${this.mesh.localNickname} (${name})`,
    );
    this.ops.started();
  }

  private async add(c: Startable): Promise<void> {
    await c.start();
    this.started.push(c);
  }

  status(): StatusJson {
    return {
      ...meshStatus(this.mesh, this.config.trustedSubnets),
      ...this.ops.statusExtras(),
      ipam: this.ops.ipamStatus(this.ipamStatus()),
      datapath: this.datapath.status(),
    };
  }

  private ipamStatus(): StatusJson['ipam'] {
    const st = this.ipam.ipam.status();
    const problems = st.conflicts.map((c) => c.message);
    return { ...st, ...(problems.length ? { problems } : {}) };
  }

  /** The MTU pods get when their config says 0: --mtu, else the underlay's minus VXLAN overhead. */
  overlayMtu(): number {
    return this.datapath?.mtu || (this.config.mtu ?? 1450);
  }

  /** Tell the datapath our pods (IPAM allocations; the CNI derives their MACs from their addresses) and our gateway address. */
  private syncPods(): void {
    const all = this.ipam.ipam.allocations();
    this.datapath.setLocalPods(all.filter((a) => a.containerId !== HOST_CONTAINER_ID).map((a) => ({ mac: podMac(a.address), ip: a.address, port: hostVethName(a.containerId, a.iface) })));
    for (const a of all) if (a.containerId === HOST_CONTAINER_ID) this.datapath.announceBridgeAddress(a.address);
  }

  private registerRoutes(): void {
    const api = this.api;
    this.ipam.registerRoutes(api);
    this.ops.registerRoutes(api);
    api.rawRoute('POST', CNI_HTTP_PATH, (req, res) => serveCniHttp(this.cni, req, res));
    api.route('POST', '/expose', async (req) => {
      const cidr = (req.body as { cidr?: unknown } | undefined)?.cidr;
      if (cidr !== undefined && typeof cidr !== 'string') throw new ApiError(400, '"cidr" must be a string');
      const host = await this.ipam.hostAddress(cidr);
      await new IpHostNetwork().ensureBridge({ name: 'meshnet', gateway: host.address, prefixLength: host.prefixLength, mtu: this.overlayMtu(), mac: bridgeMac(host.address) });
      await this.datapath.setBridgeAddress(`${host.address}/${host.prefixLength}`);
      return host;
    });
    const addresses = (body: unknown): string[] => {
      const peers = (body as { peers?: unknown } | undefined)?.peers;
      if (!Array.isArray(peers) || peers.some((p) => typeof p !== 'string')) throw new ApiError(400, 'body must be {"peers": ["host[:port]", ...]}');
      try {
        return (peers as string[]).map((p) => parsePeerAddress(p, this.config.port));
      } catch (err) {
        throw new ApiError(400, (err as Error).message);
      }
    };
    api.route('GET', '/status', () => this.status());
    api.route('GET', '/version', () => ({ version: VERSION, protocol: meshStatus(this.mesh).protocol }));
    api.route('POST', '/connect', (req) => {
      const list = addresses(req.body);
      this.mesh.connect(list, (req.body as { replace?: boolean }).replace === true);
      return { targets: this.mesh.directTargets() };
    });
    api.route('POST', '/forget', (req) => ({ forgotten: this.mesh.forget(addresses(req.body)) }));
    api.route('POST', '/reset', async () => {
      // Hand our address space to a live peer first: afterwards there is no state to give it from.
      const handover = await this.ipam.handover();
      setImmediate(() => void this.reset());
      return { handover };
    });
    api.route('POST', '/stop', () => {
      setImmediate(() => void this.stop('stop requested'));
      return { stopping: true };
    });
  }

  /** Stop, then remove this host's bridge, vxlan and TAP and its state (`meshnet reset`). */
  async reset(): Promise<void> {
    // Peers drop our pods at once instead of keeping them for the crash grace period.
    await this.datapath?.leave().catch(() => undefined);
    // Removed before `done` resolves: the process exits right after it.
    await this.stop('reset requested', () => removeHostState(this.config.stateDir));
  }

  /** Stop everything (kernel state and allocations stay). Idempotent. `last` runs after everything stopped, before the process may exit. */
  stop(reason: string, last?: () => void): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info({ reason }, `meshnet stopping: ${reason}`);
      await this.stopAll();
      try {
        last?.();
      } catch (err) {
        this.log.error({ err: (err as Error).message }, `meshnet: ${reason}: ${(err as Error).message}`);
      }
      this.resolveDone();
    })();
    return this.stopping;
  }

  private async stopAll(): Promise<void> {
    for (const c of this.started.splice(0).reverse()) {
      try {
        await c.stop();
      } catch (err) {
        this.log.error({ component: c.name, err: (err as Error).message }, `stopping ${c.name} failed`);
      }
    }
  }
}

async function isRunning(runDir: string): Promise<boolean> {
  try {
    await callApi(runDir, 'GET', '/version', undefined, 2_000);
    return true;
  } catch {
    return false;
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

/** Pods reached from other hosts (and portmap) need IP forwarding on this host. */
function enableForwarding(log: Pino): void {
  try {
    if (readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim() !== '1') {
      writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
      log.info({}, 'enabled IPv4 forwarding (net.ipv4.ip_forward=1)');
    }
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'could not enable IPv4 forwarding; pods may not be reachable from other hosts');
  }
}

function cniLog(log: Pino): CniLog {
  return (level, msg, fields) => log[level](fields ?? {}, msg);
}

/** What `reset` removes: the datapath's devices and the state files. */
export function removeHostState(stateDir: string): void {
  for (const dev of DATAPATH_DEVICES) {
    try {
      execFileSync('ip', ['link', 'del', dev], { stdio: 'ignore' });
    } catch {
      /* not there */
    }
  }
  for (const f of ['peer.json', 'ipam.state']) rmSync(join(stateDir, f), { force: true });
}
