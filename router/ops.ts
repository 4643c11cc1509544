// The operator-facing parts of the daemon — Kubernetes discovery and the
// seed-from-kubernetes IPAM role, health and readiness probes, the topology
// page, `meshnet report`, password rotation — wired in one place so the
// composition root (daemon.ts) calls a handful of methods at fixed points
// of its start-up.

import { uptime } from 'node:process';
import type { Logger as Pino } from 'pino';
import { cryptoBackendName, cryptoFallbackReason } from '../crypto/index.js';
import { selectIoBackend } from '../datapath/io/index.js';
import type { Secret } from '../mesh/handshake.js';
import type { Mesh } from '../mesh/mesh.js';
import { callApi } from './api-client.js';
import type { ApiServer } from './api-server.js';
import type { LaunchConfig } from './config.js';
import { Health } from './health.js';
import type { IpamService } from './ipam-service.js';
import { FIRST_LIST_WAIT_MS, KubeIntegration } from './kube/index.js';
import type { RecentErrors } from './logger.js';
import { Metrics, MetricsServer } from './metrics.js';
import { topologyPages } from './page/index.js';
import { buildReport, hostVersions, type Versions } from './report.js';
import { PasswordRotation } from './rotation/service.js';
import type { StatusJson } from './status.js';
import { VERSION } from './version.js';

/** What the daemon tells `launch` while it starts (printed when a step takes long). */
export type Progress = (what: string) => void;

export interface OpsHost {
  readonly config: LaunchConfig;
  readonly log: Pino;
  readonly recent: RecentErrors;
  readonly mesh: Mesh;
  readonly ipam: IpamService;
  status(): StatusJson;
}

export class DaemonOps {
  readonly health = new Health();
  readonly kube: KubeIntegration | undefined;
  readonly rotation: PasswordRotation;
  private metricsRegistry: Metrics | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly host: OpsHost,
    secrets: readonly Secret[],
    private readonly progress: Progress = () => undefined,
  ) {
    const cfg = host.config;
    this.kube = cfg.kubernetes ? new KubeIntegration(cfg.kubernetes, host.log, 6783) : undefined;
    this.rotation = new PasswordRotation(host.mesh, secrets, host.log);
    // Registered before the mesh starts, like every gossip channel.
    this.rotation.register();
  }

  get metrics(): Metrics {
    this.metricsRegistry ??= new Metrics(this.host.mesh);
    return this.metricsRegistry;
  }

  /**
   * Before IPAM is built: read the Kubernetes node list (at most 10 s) and
   * turn seed-from-kubernetes into the IPAM mode for this node.
   */
  async ipamInit(selfPeerName: string): Promise<string | undefined> {
    const cfg = this.host.config;
    if (!this.kube) return cfg.ipallocInit;
    this.progress(`waiting for the Kubernetes node list from ${cfg.kubernetes!.api.host}:${cfg.kubernetes!.api.port} (at most ${FIRST_LIST_WAIT_MS / 1000} s)`);
    const listed = await this.kube.start();
    if (!listed) {
      this.host.log.warn({ error: this.kube.discovery.status().error }, 'no Kubernetes node list yet; going on with explicit peers while discovery keeps trying');
    }
    const init = this.kube.ipamInit(cfg.ipallocInit, selfPeerName);
    const role = this.kube.seedRole();
    if (role) {
      const what = role.role === 'seed' ? 'this is the oldest node: it may create the IPAM ring' : role.role === 'follower' ? `waiting for the IPAM ring from seed ${role.seed} (oldest node)` : `IPAM seed unknown: ${role.reason}`;
      this.host.log.info({ role: role.role, init }, `seed-from-kubernetes: ${what}`);
    }
    return init;
  }

  /** After the mesh started: probes get their checks. */
  afterMesh(): void {
    const h = this.health;
    h.addReadiness('control API', async () => {
      try {
        await callApi(this.host.config.runDir, 'GET', '/version', undefined, 700);
        return [];
      } catch (err) {
        return [`control API: ${(err as Error).message}`];
      }
    });
    h.addReadiness('ipam', () => {
      const ipam = this.host.status().ipam;
      return ipam.ready ? [] : [`ipam: ${ipam.status}`];
    });
    h.addLiveness('ipam seed', () => this.kube?.healthProblems(this.host.ipam.ipam.status().ring !== null) ?? []);
  }

  /**
   * Start-up is complete (explicit peers are targets already, so an address
   * that is both keeps its explicit source): discovered targets go to the
   * mesh from now on, and the probes stop answering "starting".
   */
  started(): void {
    this.kube?.attach(this.host.mesh);
    this.health.markStarted();
  }

  /** The metrics server with the probes and the topology page. */
  metricsServer(): MetricsServer {
    const server = new MetricsServer(this.metrics, this.health);
    server.addPages(topologyPages(() => this.host.status()));
    return server;
  }

  stopKube(): Promise<void> {
    return this.kube?.stop() ?? Promise.resolve();
  }

  /** Fields added to the status document. */
  statusExtras(): Pick<StatusJson, 'discovery'> {
    return this.kube ? { discovery: { kubernetes: this.kube.status() } } : {};
  }

  /** IPAM's status with the seed-from-kubernetes wording while it waits. */
  ipamStatus(ipam: StatusJson['ipam']): StatusJson['ipam'] {
    return this.kube ? { ...ipam, status: this.kube.ipamStatusText(ipam) } : ipam;
  }

  registerRoutes(api: ApiServer): void {
    this.rotation.registerRoutes(api);
    api.route('GET', '/report', () => this.report());
  }

  async report(): Promise<Record<string, unknown>> {
    return buildReport({
      generatedAt: new Date(),
      versions: versions(),
      config: this.host.config,
      status: this.host.status(),
      recent: this.host.recent.list(),
      metrics: await this.metrics.registry.getMetricsAsJSON(),
      uptimeSeconds: (Date.now() - this.startedAt) / 1000,
      extra: {
        process: { pid: process.pid, uptimeSeconds: Math.round(uptime()), execArgv: process.execArgv },
        passwords: this.rotation.status(),
      },
    });
  }
}

function versions(): Versions {
  let io: Versions['io'];
  try {
    const b = selectIoBackend();
    io = { backend: b.backend.name, reason: b.reason };
  } catch (err) {
    io = { backend: 'unavailable', reason: (err as Error).message };
  }
  return hostVersions(VERSION, { backend: cryptoBackendName(), fallback: cryptoFallbackReason() }, io);
}
