// --peers-from-kubernetes (docs/deploy.md 3.1): list the Nodes, connect to
// each one's InternalIP, then follow the list with a watch: a node added
// becomes a target (like `meshnet connect`), a node deleted stops being one
// (like `meshnet forget`; never rmpeer, which is a deliberate act). Failures
// never stop the router or drop known targets: it retries with backoff and
// relists, and status says what is wrong.

import { backoffDelay, KUBE_BACKOFF, type KubeBackoffPolicy } from './backoff.js';
import { KubeError, type NodeList } from './client.js';
import { desiredTargets, diffTargets, MESH_PORT, oldestNode, type KubeNode, type WatchEvent } from './nodes.js';

/** Where discovered targets go (the mesh's connection maker). */
export interface TargetSink {
  connect(addresses: string[]): void;
  forget(addresses: string[]): void;
}

export interface NodeSource {
  listNodes(signal?: AbortSignal): Promise<NodeList>;
  watchNodes(resourceVersion: string, onEvent: (e: WatchEvent) => void, onMalformed: (why: string) => void, signal?: AbortSignal): Promise<void>;
}

export type DiscoveryLog = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export interface KubeDiscoveryOptions {
  source: NodeSource;
  /** $NODE_NAME: this node, left out of the targets. */
  nodeName?: string | undefined;
  /** Addresses of local interfaces (also left out). */
  localAddresses: () => ReadonlySet<string>;
  port?: number;
  log: DiscoveryLog;
  backoff?: KubeBackoffPolicy;
  random?: () => number;
  /** A watch that ends sooner than this is reopened only after this delay (no busy loop). */
  minWatchMs?: number;
}

/** `discovery.kubernetes` of `status --json`. */
export interface KubeDiscoveryStatus {
  state: 'starting' | 'ok' | 'error';
  nodes: number;
  lastSync?: string;
  error?: string;
  /** Nodes skipped because they have no InternalIP. */
  withoutAddress?: string[];
}

const PREFIX = 'kubernetes discovery: ';

export class KubeDiscovery {
  private readonly nodes = new Map<string, KubeNode>();
  private applied = new Map<string, string>();
  private sink: TargetSink | undefined;
  private state: KubeDiscoveryStatus['state'] = 'starting';
  private lastSync: Date | undefined;
  private error: string | undefined;
  private withoutAddress: string[] = [];
  private readonly warned = new Set<string>();
  private lastLoggedError = '';
  private readonly abort = new AbortController();
  private sleepTimer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private firstDone = false;
  private readonly firstWaiters: (() => void)[] = [];
  /** Events and lines that could not be used. */
  readonly counters = { lists: 0, watches: 0, events: 0, malformed: 0, failures: 0 };

  constructor(private readonly opts: KubeDiscoveryOptions) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.sleepTimer);
    this.wake?.();
    await this.running;
  }

  /** Resolves true once the first list succeeded, false if `timeoutMs` passes first. */
  waitFirstList(timeoutMs: number): Promise<boolean> {
    if (this.firstDone) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.firstWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /** Start sending targets to `sink` (the mesh exists only after the first list). */
  attach(sink: TargetSink): void {
    this.sink = sink;
    this.reconcile();
  }

  status(): KubeDiscoveryStatus {
    const s: KubeDiscoveryStatus = { state: this.state, nodes: this.nodes.size };
    if (this.lastSync) s.lastSync = this.lastSync.toISOString();
    if (this.error) s.error = `${PREFIX}${this.error}`;
    if (this.withoutAddress.length) s.withoutAddress = [...this.withoutAddress];
    return s;
  }

  /** The nodes as last seen (kept through failures). */
  nodeList(): KubeNode[] {
    return [...this.nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** The oldest node (the IPAM seed of seed-from-kubernetes), once a list succeeded. */
  oldest(): KubeNode | undefined {
    return this.firstDone ? oldestNode(this.nodes.values()) : undefined;
  }

  get synced(): boolean {
    return this.firstDone;
  }

  /** Target address → node name, as applied to the sink. */
  targets(): Map<string, string> {
    return new Map(this.applied);
  }

  // ---- the loop -------------------------------------------------------------

  private get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      try {
        const rv = await this.list();
        attempt = 0;
        await this.follow(rv);
      } catch (err) {
        if (this.stopped) return;
        this.fail(err);
        await this.sleep(backoffDelay(attempt++, this.opts.backoff ?? KUBE_BACKOFF, this.opts.random));
      }
    }
  }

  private async list(): Promise<string> {
    const r = await this.opts.source.listNodes(this.abort.signal);
    this.counters.lists++;
    this.counters.malformed += r.malformed;
    this.nodes.clear();
    for (const n of r.nodes) this.nodes.set(n.name, n);
    this.synced_();
    return r.resourceVersion;
  }

  /** Watch from `rv` until the list must be read again (410) or a request fails (throws). */
  private async follow(rv: string): Promise<void> {
    let resourceVersion = rv;
    while (!this.stopped) {
      let relist = false;
      const opened = Date.now();
      this.counters.watches++;
      await this.opts.source.watchNodes(
        resourceVersion,
        (e) => {
          this.counters.events++;
          if (e.type === 'ERROR') {
            // 410: our resource version is too old; anything else: start over from a list.
            relist = true;
            if (e.code !== 410) this.fail(new KubeError('http', `watch error ${e.code}: ${e.message}`));
            return;
          }
          if (e.resourceVersion) resourceVersion = e.resourceVersion;
          if (e.type === 'BOOKMARK') return;
          if (e.type === 'DELETED') this.nodes.delete(e.node.name);
          else this.nodes.set(e.node.name, e.node);
          this.synced_();
        },
        (why) => {
          this.counters.malformed++;
          this.logOnceError(`watch: dropped a malformed line (${why})`, 'warn');
        },
        this.abort.signal,
      );
      const minMs = this.opts.minWatchMs ?? 1_000;
      if (Date.now() - opened < minMs) await this.sleep(minMs);
      if (relist) return;
    }
  }

  private synced_(): void {
    this.state = 'ok';
    this.error = undefined;
    this.lastLoggedError = '';
    this.lastSync = new Date();
    if (!this.firstDone) {
      this.firstDone = true;
      for (const w of this.firstWaiters.splice(0)) w();
      this.opts.log('info', `kubernetes discovery: ${this.nodes.size} nodes listed`, { nodes: this.nodes.size });
    }
    this.reconcile();
  }

  private fail(err: unknown): void {
    this.counters.failures++;
    const msg = err instanceof KubeError ? err.message : err instanceof Error ? err.message : String(err);
    this.state = 'error';
    this.error = msg;
    this.logOnceError(msg, 'error');
  }

  /** One log line per distinct problem, not one per retry. */
  private logOnceError(msg: string, level: 'warn' | 'error'): void {
    if (msg === this.lastLoggedError) return;
    this.lastLoggedError = msg;
    this.opts.log(level, `${PREFIX}${msg}`);
  }

  private reconcile(): void {
    const d = desiredTargets(this.nodes.values(), { nodeName: this.opts.nodeName, localAddresses: this.opts.localAddresses() }, this.opts.port ?? MESH_PORT);
    this.withoutAddress = d.withoutAddress;
    for (const name of d.withoutAddress) {
      if (this.warned.has(name)) continue;
      this.warned.add(name);
      this.opts.log('warn', `${PREFIX}node ${name} has no InternalIP address; skipped`, { node: name });
    }
    if (!this.sink) return;
    const { added, removed } = diffTargets(this.applied, d.targets);
    if (added.length) {
      this.sink.connect(added);
      this.opts.log('info', `${PREFIX}connecting to ${added.map((a) => `${d.targets.get(a)} (${a})`).join(', ')}`, { targets: added });
    }
    if (removed.length) {
      this.sink.forget(removed);
      this.opts.log('info', `${PREFIX}forgetting ${removed.map((a) => `${this.applied.get(a)} (${a})`).join(', ')}`, { targets: removed });
    }
    this.applied = d.targets;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = resolve;
      this.sleepTimer = setTimeout(resolve, ms);
    });
  }
}
