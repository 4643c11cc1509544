// `meshnet report`: one JSON document with what a bug report needs —
// versions, the launch config without secrets, the full status, recent
// warnings and errors, targets, a metrics summary, the password ids (never
// the passwords). Assembled from plain inputs so it can be tested without a
// daemon; a final scan guarantees no password string survives anywhere in it.

import { arch, release, type as osType } from 'node:os';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { LaunchConfig } from './config.js';
import type { RecentEntry } from './logger.js';
import type { StatusJson } from './status.js';

export const REPORT_FORMAT = 1;

export interface Versions {
  meshnet: string;
  node: string;
  kernel: string;
  os: string;
  arch: string;
  crypto: { backend: string; fallback: string | null };
  io: { backend: string; reason: string };
}

export interface ReportInput {
  generatedAt: Date;
  versions: Versions;
  config: LaunchConfig;
  status: StatusJson;
  recent: RecentEntry[];
  metrics: MetricObjectWithValues<MetricValue<string>>[];
  /** Extra sections (passwords by id, discovery, ...). */
  extra?: Record<string, unknown>;
  uptimeSeconds: number;
}

export function hostVersions(meshnet: string, crypto: Versions['crypto'], io: Versions['io']): Versions {
  return { meshnet, node: process.versions.node, kernel: release(), os: osType(), arch: arch(), crypto, io };
}

/** The launch config with every secret replaced by where it came from. */
export function configWithoutSecrets(cfg: LaunchConfig): Record<string, unknown> {
  const { passwords, passwordSource, passwordFile, ...rest } = cfg;
  return {
    ...rest,
    password: { source: passwordSource, ...(passwordFile ? { file: passwordFile } : {}), count: passwords.length },
  };
}

/**
 * The meshnet_* metrics with their values (Node's process metrics are
 * reduced to a handful), grouped by name: `{name: value}` for unlabelled
 * metrics, `{name: [{labels, value}]}` otherwise. Histograms are summarised
 * by their sum and count.
 */
export function metricsSummary(metrics: MetricObjectWithValues<MetricValue<string>>[]): Record<string, unknown> {
  const keepProcess = new Set([
    'meshnet_process_resident_memory_bytes',
    'meshnet_process_cpu_seconds_total',
    'meshnet_process_open_fds',
    'meshnet_process_start_time_seconds',
    'meshnet_nodejs_heap_size_used_bytes',
    'meshnet_nodejs_eventloop_lag_p99_seconds',
    'meshnet_nodejs_active_handles_total',
  ]);
  const out: Record<string, unknown> = {};
  for (const m of metrics) {
    const internal = m.name.startsWith('meshnet_process_') || m.name.startsWith('meshnet_nodejs_');
    if (internal && !keepProcess.has(m.name)) continue;
    const nameOf = (v: MetricValue<string>): string | undefined => (v as { metricName?: string }).metricName;
    const values = m.values.filter((v) => {
      const n = nameOf(v);
      return !n || n === m.name || n.endsWith('_sum') || n.endsWith('_count');
    });
    const plain = values.map((v) => {
      const labels = { ...v.labels } as Record<string, string | number>;
      const n = nameOf(v);
      const suffix = n && n !== m.name ? n.slice(m.name.length + 1) : undefined;
      if (suffix) labels['stat'] = suffix;
      return { labels, value: v.value };
    });
    if (plain.length === 1 && Object.keys(plain[0]!.labels).length === 0) out[m.name] = plain[0]!.value;
    else if (plain.length > 0) out[m.name] = plain;
  }
  return out;
}

export function buildReport(input: ReportInput): Record<string, unknown> {
  const s = input.status;
  const report = {
    report: { format: REPORT_FORMAT, generatedAt: input.generatedAt.toISOString(), uptimeSeconds: Math.round(input.uptimeSeconds) },
    versions: input.versions,
    config: configWithoutSecrets(input.config),
    summary: {
      peers: s.peers.length,
      connections: countBy(s.connections.map((c) => c.state)),
      datapaths: countBy(s.connections.filter((c) => c.state === 'established').map((c) => c.datapath ?? 'none')),
      encryption: s.encryption,
      ipam: { ready: s.ipam.ready, status: s.ipam.status },
    },
    targets: s.targets,
    status: s,
    recentProblems: input.recent,
    metrics: metricsSummary(input.metrics),
    ...input.extra,
  };
  return scrubSecrets(report, input.config.passwords) as Record<string, unknown>;
}

function countBy(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/**
 * Defence in depth: if any password (of at least 4 characters; shorter
 * strings occur everywhere by chance) appears anywhere in the document — a
 * log line that quoted it, say — it is replaced. The structure above never
 * includes one; this makes that a guarantee rather than a habit.
 */
export function scrubSecrets(value: unknown, secrets: readonly string[]): unknown {
  const words = secrets.filter((s) => s.length >= 4);
  if (words.length === 0) return value;
  const scrub = (v: unknown): unknown => {
    if (typeof v === 'string') return words.reduce((acc, w) => acc.split(w).join('[redacted]'), v);
    if (Array.isArray(v)) return v.map(scrub);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [scrub(k) as string, scrub(x)]));
    return v;
  };
  return scrub(value);
}
