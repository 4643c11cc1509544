// Where IPAM keeps its state between runs. One narrow interface; the file
// implementation writes atomically (temp file, fsync, rename, fsync of the
// directory) and seals the body with its length and SHA-256, so a torn or
// corrupt file is detected and reported, never silently replaced.
import { createHash } from 'node:crypto';
import { open, readFile, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { IpamError } from './errors.js';
import type { PlainSnapshot } from './persist.js';

export interface IpamStore {
  /** Where the state lives, for messages ("/var/lib/meshnet/ipam.json"). */
  readonly location: string;
  /** The saved state, or undefined when there is none yet. Throws IpamError('store') naming the file when it is unreadable or corrupt. */
  load(): Promise<PlainSnapshot | undefined>;
  /** Replace the saved state atomically; resolves once it is durable. */
  save(state: PlainSnapshot): Promise<void>;
}

const MAGIC = 'meshnet-ipam-state';
const HEADER = /^meshnet-ipam-state v1 sha256=([0-9a-f]{64}) bytes=(\d{1,12})$/;

export function sealState(state: PlainSnapshot): Buffer {
  const body = Buffer.from(JSON.stringify(state), 'utf8');
  const sha = createHash('sha256').update(body).digest('hex');
  return Buffer.concat([Buffer.from(`${MAGIC} v1 sha256=${sha} bytes=${body.length}\n`, 'utf8'), body]);
}

/** Check the seal and parse; `where` names the file in every error. */
export function unsealState(data: Buffer, where: string): PlainSnapshot {
  const nl = data.indexOf(0x0a);
  if (nl < 0 || nl > 200) throw new IpamError('store', `${where}: not a meshnet IPAM state file (no header line); refusing to start rather than lose allocations`);
  const m = HEADER.exec(data.subarray(0, nl).toString('utf8'));
  if (!m) throw new IpamError('store', `${where}: not a meshnet IPAM state file (unrecognised header); refusing to start rather than lose allocations`);
  const body = data.subarray(nl + 1);
  const expected = Number(m[2]);
  if (body.length !== expected) {
    throw new IpamError(
      'store',
      `${where}: torn or truncated state file (header says ${expected} bytes, found ${body.length}); move it aside only if you accept losing this peer's allocations`,
    );
  }
  const sha = createHash('sha256').update(body).digest('hex');
  if (sha !== m[1]) {
    throw new IpamError('store', `${where}: corrupt state file (SHA-256 mismatch); move it aside only if you accept losing this peer's allocations`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw new IpamError('store', `${where}: corrupt state file (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new IpamError('store', `${where}: state is not an object`);
  return parsed as PlainSnapshot;
}

export class FileIpamStore implements IpamStore {
  private seq = 0;

  constructor(readonly location: string) {}

  async load(): Promise<PlainSnapshot | undefined> {
    let data: Buffer;
    try {
      data = await readFile(this.location);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        await this.removeStaleTemps();
        return undefined;
      }
      throw new IpamError('store', `${this.location}: cannot read state: ${(e as Error).message}`);
    }
    await this.removeStaleTemps();
    return unsealState(data, this.location);
  }

  async save(state: PlainSnapshot): Promise<void> {
    const dir = dirname(this.location);
    const tmp = join(dir, `.${basename(this.location)}.tmp-${process.pid}-${++this.seq}`);
    try {
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(sealState(state));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.location);
      const dh = await open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw new IpamError('store', `${this.location}: cannot write state: ${(e as Error).message}`);
    }
  }

  /** Temp files left by a crash mid-write; the real file is intact, so they are garbage. */
  private async removeStaleTemps(): Promise<void> {
    const dir = dirname(this.location);
    const prefix = `.${basename(this.location)}.tmp-`;
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => unlink(join(dir, n)).catch(() => undefined)));
  }
}
