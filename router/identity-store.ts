// This host's peer identity in the state dir: its stable name and the
// incarnation counter that orders its restarts (mesh/topology.ts).

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';

export interface StoredIdentity {
  name: string;
  incarnation: number;
}

const FILE = 'peer.json';

export class IdentityError extends Error {}

/** Load the stored identity, or undefined on first start. A corrupt file is an error, never silently replaced. */
export function loadIdentity(stateDir: string): StoredIdentity | undefined {
  const path = join(stateDir, FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new IdentityError(`cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const v = JSON.parse(text) as Partial<StoredIdentity>;
    if (typeof v.name !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(v.name) || !Number.isSafeInteger(v.incarnation) || (v.incarnation as number) < 0) {
      throw new Error('unexpected content');
    }
    return { name: v.name, incarnation: v.incarnation as number };
  } catch {
    throw new IdentityError(`${path} is corrupt; remove it to give this host a new peer name`);
  }
}

export function saveIdentity(stateDir: string, id: StoredIdentity): void {
  writeFileAtomic(join(stateDir, FILE), `${JSON.stringify(id)}\n`);
}

export function machineId(): string {
  for (const p of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      const v = readFileSync(p, 'utf8').trim();
      if (v) return v;
    } catch {
      /* next */
    }
  }
  return 'no-machine-id';
}

export function absoluteStateDir(stateDir: string): string {
  return resolve(stateDir);
}
