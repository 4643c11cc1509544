// Password rotation without downtime (docs/operations.md, "Rotating the
// password"): the passwords this router accepts change at runtime, in three
// steps run on every host in turn — add the new one (accepted, not
// preferred), promote it (preferred: new connections use it), remove the
// old one. Established connections keep the session keys they agreed, so
// nothing is dropped and nothing is ever unencrypted; each step is checked
// against what every peer reports over the `passwords` channel and refused
// when it would leave a peer unable to connect.
//
// Passwords live in memory only (stretched); nothing is persisted. A router
// restarted mid-roll accepts what its launch config gives it.

import type { Logger as Pino } from 'pino';
import { passwordId, stretchPassword } from '../../crypto/index.js';
import type { Secret } from '../../mesh/handshake.js';
import type { Mesh } from '../../mesh/mesh.js';
import { formatPeerName } from '../../mesh/peer-name.js';
import { GossipRejected, type GossipChannel, type Gossiper, type PeerName } from '../../mesh/types.js';
import { ApiError, type ApiServer } from '../api-server.js';
import { BookDecodeError, decodeEntries, encodeEntries, MAX_ACCEPTED, PASSWORDS_CHANNEL, PasswordBook, promoteRefusal, removeRefusal, rollSummary, type PeerRef } from './book.js';

export interface AcceptedPassword {
  id: string;
  preferred: boolean;
  /** "launch" (from the launch config) or "added" (meshnet password add). */
  source: 'launch' | 'added';
  addedAt: string;
  /** Live connections whose keys came from this password. */
  connections: number;
}

export interface RotationStatus {
  encryption: boolean;
  accepted: AcceptedPassword[];
  peers: { name: string; nickname: string; reachable: boolean; accepts: string[] | null }[];
  connections: { peer: string; nickname: string; password: string | null }[];
  roll: string;
}

interface Held {
  secret: Secret;
  id: string;
  source: AcceptedPassword['source'];
  addedAt: string;
}

export function idHex(id: Uint8Array): string {
  return Buffer.from(id).toString('hex');
}

export async function secretOf(password: string): Promise<Secret> {
  const key = await stretchPassword(Buffer.from(password, 'utf8'));
  return { id: passwordId(key), key };
}

type RotationMesh = Pick<Mesh, 'localName' | 'registerChannel' | 'peers' | 'isReachable' | 'liveConnections' | 'setSecrets'>;

export class PasswordRotation implements Gossiper {
  private held: Held[];
  private readonly book: PasswordBook;
  private channel: GossipChannel | undefined;
  /** Serialises changes (stretching takes ~0.1 s; two adds must not interleave). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly mesh: RotationMesh,
    initial: readonly Secret[],
    private readonly log: Pino,
    private readonly now: () => number = Date.now,
  ) {
    const at = new Date(now()).toISOString();
    this.held = initial.map((secret) => ({ secret, id: idHex(secret.id), source: 'launch', addedAt: at }));
    this.book = new PasswordBook(mesh.localName);
    this.book.setOwn(this.ids(), now());
  }

  /** Register the gossip channel (before the mesh starts). */
  register(): void {
    this.channel = this.mesh.registerChannel(PASSWORDS_CHANNEL, this);
  }

  get encrypted(): boolean {
    return this.held.length > 0;
  }

  /** Accepted ids, preferred first. */
  ids(): string[] {
    return this.held.map((h) => h.id);
  }

  // ---- Gossiper ---------------------------------------------------------------

  gossip(): Uint8Array | undefined {
    return encodeEntries(this.book.all());
  }

  onGossip(_from: PeerName, update: Uint8Array): Uint8Array | undefined {
    let entries;
    try {
      entries = decodeEntries(update);
    } catch (err) {
      if (err instanceof BookDecodeError) throw new GossipRejected(err.message);
      throw err;
    }
    const news = this.book.merge(entries);
    return news.length ? encodeEntries(news) : undefined;
  }

  onBroadcast(origin: PeerName, update: Uint8Array): Uint8Array | undefined {
    return this.onGossip(origin, update);
  }

  onUnicast(): void {
    /* not used */
  }

  // ---- the three steps ----------------------------------------------------------

  /** Accept `password` too, as the least preferred. */
  add(password: string): Promise<{ id: string; accepted: string[]; message: string }> {
    return this.serial(async () => {
      this.requireEncryption();
      const secret = await secretOf(password);
      const id = idHex(secret.id);
      if (this.held.some((h) => h.id === id)) return { id, accepted: this.ids(), message: `password ${id} is already accepted here` };
      if (this.held.length >= MAX_ACCEPTED) throw new ApiError(409, `refused: ${MAX_ACCEPTED} passwords are accepted already; remove one first`);
      this.apply([...this.held, { secret, id, source: 'added', addedAt: new Date(this.now()).toISOString() }]);
      const message = `password ${id} is now accepted here (not preferred); next: add it on every other host, then 'meshnet password promote ${id}'`;
      this.log.info({ passwordId: id }, `password ${id} added (accepted, not preferred)`);
      return { id, accepted: this.ids(), message };
    });
  }

  /** Make the password `ref` (id or password) the preferred one. */
  promote(ref: { id?: string; password?: string }, force = false): Promise<{ id: string; accepted: string[]; message: string }> {
    return this.serial(async () => {
      this.requireEncryption();
      const id = await this.resolve(ref);
      const i = this.held.findIndex((h) => h.id === id);
      if (i < 0) throw new ApiError(409, `refused: password ${id} is not accepted here; add it first (meshnet password add)`);
      if (i === 0) return { id, accepted: this.ids(), message: `password ${id} is already the preferred one here` };
      const refusal = promoteRefusal(id, this.otherPeers(), this.book);
      if (refusal && !force) throw new ApiError(409, refusal);
      this.apply([this.held[i]!, ...this.held.filter((_, j) => j !== i)]);
      this.log.info({ passwordId: id, forced: Boolean(refusal) }, `password ${id} is now preferred`);
      return { id, accepted: this.ids(), message: `password ${id} is now preferred here: new connections from this host use it` };
    });
  }

  /** Stop accepting the password `ref` (id or password). */
  remove(ref: { id?: string; password?: string }, force = false): Promise<{ id: string; accepted: string[]; message: string }> {
    return this.serial(async () => {
      this.requireEncryption();
      const id = await this.resolve(ref);
      const ours = this.ids();
      const refusal = removeRefusal(id, ours, this.otherPeers(), this.book);
      // Two refusals are never forced: removing what is not there, and the last password (encryption cannot be switched off).
      if (refusal && (!force || !ours.includes(id) || ours.length === 1)) throw new ApiError(409, refusal);
      this.apply(this.held.filter((h) => h.id !== id));
      const still = this.liveByPassword().get(id) ?? 0;
      this.log.info({ passwordId: id, forced: Boolean(refusal) }, `password ${id} is no longer accepted`);
      const keep = still
        ? `; ${still} established connection${still > 1 ? 's keep' : ' keeps'} the session keys agreed with it until ${still > 1 ? 'they reconnect' : 'it reconnects'}`
        : '';
      return { id, accepted: this.ids(), message: `password ${id} is no longer accepted here${keep}` };
    });
  }

  status(): RotationStatus {
    const live = this.liveByPassword();
    return {
      encryption: this.encrypted,
      accepted: this.held.map((h, i) => ({ id: h.id, preferred: i === 0, source: h.source, addedAt: h.addedAt, connections: live.get(h.id) ?? 0 })),
      peers: this.mesh
        .peers()
        .filter((p) => p.name !== this.mesh.localName)
        .sort((a, b) => (a.name < b.name ? -1 : 1))
        .map((p) => ({ name: p.name, nickname: p.nickname, reachable: this.mesh.isReachable(p.name), accepts: this.book.get(p.name)?.ids ?? null })),
      connections: this.mesh.liveConnections().map((c) => ({
        peer: formatPeerName(c.peer),
        nickname: c.remote.nickname,
        password: c.secretId ? idHex(c.secretId) : null,
      })),
      roll: this.encrypted ? rollSummary(this.ids(), this.otherPeers(), this.book) : 'unencrypted: no passwords',
    };
  }

  registerRoutes(api: ApiServer): void {
    const body = (b: unknown): { id?: string; password?: string; force: boolean } => {
      const o = (b ?? {}) as Record<string, unknown>;
      const out: { id?: string; password?: string; force: boolean } = { force: o['force'] === true };
      if (typeof o['id'] === 'string') {
        if (!/^[0-9a-f]{16}$/.test(o['id'])) throw new ApiError(400, `"id": "${String(o['id']).slice(0, 40)}" is not a password id (16 hex digits, see 'meshnet password')`);
        out.id = o['id'];
      }
      if (typeof o['password'] === 'string') out.password = o['password'];
      if (out.id === undefined && out.password === undefined) throw new ApiError(400, 'body must be {"id": "<16 hex digits>"} or {"password": "..."}');
      return out;
    };
    api.route('GET', '/passwords', () => this.status());
    api.route('POST', '/passwords/add', (r) => {
      const pw = ((r.body ?? {}) as { password?: unknown }).password;
      if (typeof pw !== 'string' || pw.length === 0) throw new ApiError(400, 'body must be {"password": "<non-empty>"}');
      return this.add(pw);
    });
    api.route('POST', '/passwords/promote', (r) => {
      const b = body(r.body);
      return this.promote(b, b.force);
    });
    api.route('POST', '/passwords/remove', (r) => {
      const b = body(r.body);
      return this.remove(b, b.force);
    });
  }

  // ---- internals -------------------------------------------------------------------

  private apply(next: Held[]): void {
    this.mesh.setSecrets(next.map((h) => h.secret));
    this.held = next;
    const e = this.book.setOwn(this.ids(), this.now());
    this.channel?.gossip(encodeEntries([e]));
  }

  private requireEncryption(): void {
    if (!this.encrypted) {
      throw new ApiError(409, 'refused: this router runs unencrypted; a password cannot be added at runtime (restart every router with --password-file)');
    }
  }

  private async resolve(ref: { id?: string; password?: string }): Promise<string> {
    if (ref.id !== undefined) return ref.id;
    if (ref.password === undefined || ref.password.length === 0) throw new ApiError(400, 'the password is empty');
    return idHex((await secretOf(ref.password)).id);
  }

  private otherPeers(): PeerRef[] {
    return this.mesh
      .peers()
      .filter((p) => p.name !== this.mesh.localName && this.mesh.isReachable(p.name))
      .map((p) => ({ name: p.name, nickname: p.nickname }));
  }

  private liveByPassword(): Map<string, number> {
    const m = new Map<string, number>();
    for (const c of this.mesh.liveConnections()) {
      if (!c.secretId) continue;
      const id = idHex(c.secretId);
      m.set(id, (m.get(id) ?? 0) + 1);
    }
    return m;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }
}
