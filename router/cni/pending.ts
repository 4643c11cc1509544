// DELs parked in <runDir>/cni-pending/ because the daemon could not finish
// them (the plugin could not reach it, or the release failed). Each file holds
// one plugin request body; names sort by time. Written atomically (temp file,
// fsync, rename) by the daemon, the Node plugin and the C shim alike.

import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { encodeRequest, pendingDir, type CniRequest } from './protocol.js';

/** "del-<ms since epoch, 13 digits>-<pid>-<random>.json"; the C shim writes the same shape. */
export const PENDING_FILE_RE = /^del-\d{13}-\d+(-[0-9a-f]+)?\.json$/;

export async function parkPendingDel(runDir: string, req: CniRequest): Promise<string> {
  const dir = pendingDir(runDir);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const name = `del-${String(Date.now()).padStart(13, '0')}-${process.pid}-${randomBytes(4).toString('hex')}.json`;
  const tmp = join(dir, `.tmp-${name}`);
  const fh = await fsp.open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(encodeRequest(req));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, join(dir, name));
  const dh = await fsp.open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  return join(dir, name);
}

export interface PendingEntry {
  path: string;
  body: string;
}

/** Parked requests, oldest first; temp files of writers that died long ago are removed. */
export async function listPending(runDir: string, now = Date.now()): Promise<PendingEntry[]> {
  const dir = pendingDir(runDir);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: PendingEntry[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (name.startsWith('.tmp-')) {
      const st = await fsp.stat(path).catch(() => undefined);
      if (st && now - st.mtimeMs > 10 * 60_000) await fsp.rm(path, { force: true });
      continue;
    }
    if (!PENDING_FILE_RE.test(name)) continue;
    const body = await fsp.readFile(path, 'utf8').catch(() => undefined);
    if (body !== undefined) out.push({ path, body });
  }
  return out;
}

export async function removePending(path: string): Promise<void> {
  await fsp.rm(path, { force: true });
}
