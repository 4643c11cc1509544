// Prometheus metrics, read from the components when scraped (no counters
// duplicated on the hot path), and the small HTTP server on --metrics-addr
// that serves them with the health endpoints.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Mesh } from '../mesh/mesh.js';
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
