// Prometheus metrics, read from the components when scraped (no counters
// duplicated on the hot path), and the small HTTP server on --metrics-addr
// that serves them with the health endpoints.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Mesh } from '../mesh/mesh.js';
import type { Datapath } from '../datapath/index.js';
import type { ProbeResult } from './health.js';

export type PageHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export class Metrics {
  readonly registry = new Registry();

  constructor(mesh: Mesh) {
    collectDefaultMetrics({ register: this.registry, prefix: 'meshnet_' });
    const reg = [this.registry];
    new Gauge({
      name: 'meshnet_connections',
      help: 'Mesh connections by state, encryption and datapath',
      labelNames: ['state', 'encryption', 'datapath'],
      registers: reg,
      collect() {
        this.reset();
        for (const c of mesh.connectionStatus()) {
          this.inc({ state: c.state, encryption: c.encrypted ? 'encrypted' : 'plain', datapath: c.datapath ?? 'none' });
        }
      },
    });
    new Gauge({
      name: 'meshnet_peers',
      help: 'Peers known through gossip, this one included',
      registers: reg,
      collect() {
        this.set(mesh.topology.entries.size);
      },
    });
    // Counters kept by the mesh are exposed as gauges read at scrape time.
    const fromMap = (name: string, help: string, label: string, read: () => Map<string, number>): void => {
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: reg,
        collect() {
          this.reset();
          for (const [k, v] of read()) this.set({ [label]: k }, v);
        },
      });
    };
    fromMap('meshnet_gossip_sent_bytes_total', 'Gossip payload bytes sent, by channel', 'channel', () => mesh.stats.gossipBytesSent);
    fromMap('meshnet_gossip_received_bytes_total', 'Gossip payload bytes received, by channel', 'channel', () => mesh.stats.gossipBytesReceived);
    fromMap('meshnet_handshake_failures_total', 'Failed or refused handshakes, by reason', 'reason', () => mesh.stats.handshakeFailures as Map<string, number>);
    fromMap('meshnet_dropped_messages_total', 'Mesh messages dropped, by reason', 'reason', () => mesh.stats.droppedMessages);
  }

  /** The datapath's gauges (once, when the daemon has built it). */
  addDatapath(datapath: Datapath): void {
    datapathMetrics([this.registry], datapath);
  }
}

/** The datapath's counters and per-peer state, read at scrape time (docs/datapath.md, "Metrics"). */
function datapathMetrics(reg: Registry[], dp: Datapath): void {
  let cached: { at: number; st: ReturnType<Datapath['status']> } | undefined;
  // One status() per scrape, shared by the gauges below.
  const st = (): ReturnType<Datapath['status']> => {
    const now = Date.now();
    if (!cached || now - cached.at > 500) cached = { at: now, st: dp.status() };
    return cached.st;
  };
  const gauge = (name: string, help: string, labelNames: string[], fill: (g: Gauge) => void): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: reg,
      collect() {
        this.reset();
        fill(this);
      },
    });
  };
  gauge('meshnet_datapath_switches_total', 'Peers moved between fastdp and sleeve since start', [], (g) => g.set(st().switches));
  gauge('meshnet_datapath_peers', 'Remote peers by the datapath carrying their traffic', ['datapath'], (g) => {
    for (const p of st().peers) g.inc({ datapath: p.datapath ?? 'none' });
  });
  gauge('meshnet_datapath_peer_mtu', 'Largest IP packet that reaches a peer over its datapath', ['peer', 'nickname', 'datapath'], (g) => {
    const s = st();
    for (const p of s.peers) {
      const mtu = p.datapath === 'fastdp' ? s.mtu : p.sleeve.mtu;
      if (mtu !== null && p.datapath) g.set({ peer: p.peer, nickname: p.nickname ?? '', datapath: p.datapath }, mtu);
    }
  });
  gauge('meshnet_sleeve_dropped_total', 'Sleeve datagrams (direction="rx") and frames (direction="tx") dropped, by reason', ['direction', 'reason'], (g) => {
    const s = st().sleeve;
    for (const [reason, n] of Object.entries(s.drops)) g.set({ direction: 'rx', reason }, n);
    for (const [reason, n] of Object.entries(s.txDrops)) g.set({ direction: 'tx', reason }, n);
  });
  gauge('meshnet_sleeve_frames_total', 'Frames carried by the sleeve', ['direction'], (g) => {
    const c = st().sleeve.counters;
    g.set({ direction: 'tx' }, c.txFrames);
    g.set({ direction: 'rx' }, c.rxFrames);
    g.set({ direction: 'relayed' }, c.relayed);
  });
  gauge('meshnet_sleeve_bytes_total', 'Frame bytes carried by the sleeve', ['direction'], (g) => {
    const c = st().sleeve.counters;
    g.set({ direction: 'tx' }, c.txBytes);
    g.set({ direction: 'rx' }, c.rxBytes);
  });
  gauge('meshnet_sleeve_frag_needed_total', 'ICMP "fragmentation needed" answers sent to local pods', [], (g) => g.set(st().sleeve.counters.fragNeededSent));
  gauge('meshnet_fastdp_endpoints_dropped_total', 'Datapath endpoint gossip entries ignored, by reason', ['reason'], (g) => {
    for (const [reason, n] of Object.entries(st().endpoints.dropped)) g.set({ reason }, n);
  });
}

export interface HttpEndpoint {
  host: string;
  port: number;
}

/** Serves /metrics, /healthz, /readyz, plus whatever extra pages are added. */
export class MetricsServer {
  private server: Server | undefined;
  private readonly pages: PageHandler[] = [];

  constructor(
    private readonly metrics: Metrics,
    private readonly probes: { healthz(): Promise<ProbeResult>; readyz(): Promise<ProbeResult> },
  ) {}

  addPages(handler: PageHandler): void {
    this.pages.push(handler);
  }

  async listen(addr: HttpEndpoint): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(err.code === 'EADDRINUSE' ? `--metrics-addr: ${addr.host}:${addr.port} is already in use` : `--metrics-addr: ${err.message}`)),
      );
      server.listen(addr.port, addr.host, () => resolve());
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(res, 405, 'text/plain', 'method not allowed\n');
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/metrics') return reply(res, 200, this.metrics.registry.contentType, await this.metrics.registry.metrics());
    if (path === '/healthz' || path === '/readyz') {
      const r = await (path === '/healthz' ? this.probes.healthz() : this.probes.readyz());
      return reply(res, r.ok ? 200 : 503, 'text/plain', r.ok ? (path === '/healthz' ? 'ok\n' : 'ready\n') : `${r.problems.join('\n')}\n`);
    }
    for (const p of this.pages) if (p(req, res)) return;
    reply(res, 404, 'text/plain', 'not found\n');
  }
}

export function reply(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
