// The file store with real temp files: atomic round trip, and a torn or
// corrupt file detected and reported by name, never silently reset.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileIpamStore } from '../../../router/ipam/store.js';
import { IpamError } from '../../../router/ipam/errors.js';
import { Ipam } from '../../../router/ipam/ipam.js';
import type { GossipChannel } from '../../../mesh/types.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipam-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const channel: GossipChannel = { name: 'ipam', gossip: () => undefined, broadcast: () => undefined, unicast: () => false };
const mesh = { localName: '8a:00:00:00:00:01', localNickname: 'host1', localUid: '1', peers: () => [{ name: '8a:00:00:00:00:01', nickname: 'host1' }], isReachable: () => false };

function ipam(store: FileIpamStore, range = '10.32.0.0/24') {
  return new Ipam({ range, init: { kind: 'consensus', n: 1 }, mesh, channel, store });
}

describe('FileIpamStore', () => {
  it('saves atomically and loads what it saved', async () => {
    const s = new FileIpamStore(join(dir, 'ipam.json'));
    expect(await s.load()).toBeUndefined();
    await s.save({ format: 1, hello: 'world' });
    expect(await s.load()).toEqual({ format: 1, hello: 'world' });
    await s.save({ format: 1, hello: 'again' });
    expect(await s.load()).toEqual({ format: 1, hello: 'again' });
    expect(await readdir(dir)).toEqual(['ipam.json']); // no temp files left
  });

  it('reports a torn (truncated) file by name', async () => {
    const path = join(dir, 'ipam.json');
    const s = new FileIpamStore(path);
    await s.save({ format: 1, data: 'x'.repeat(100) });
    const full = await readFile(path);
    await writeFile(path, full.subarray(0, full.length - 10));
    await expect(s.load()).rejects.toThrow(new RegExp(`${path}: torn or truncated state file \\(header says \\d+ bytes, found \\d+\\)`));
  });

  it('reports a corrupt file (flipped byte) by name', async () => {
    const path = join(dir, 'ipam.json');
    const s = new FileIpamStore(path);
    await s.save({ format: 1, data: 'abcdef' });
    const full = Buffer.from(await readFile(path));
    full[full.length - 3] = full[full.length - 3]! ^ 0x01;
    await writeFile(path, full);
    const err = await s.load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IpamError);
    expect((err as IpamError).code).toBe('store');
    expect((err as Error).message).toContain(`${path}: corrupt state file (SHA-256 mismatch)`);
  });

  it('reports a file that is not a state file at all', async () => {
    const path = join(dir, 'ipam.json');
    await writeFile(path, '{"hello": 1}\n');
    await expect(new FileIpamStore(path).load()).rejects.toThrow(/not a meshnet IPAM state file \(unrecognised header\)/);
  });

  it('removes temp files left by a crash mid-write, keeping the real file', async () => {
    const path = join(dir, 'ipam.json');
    const s = new FileIpamStore(path);
    await s.save({ format: 1, v: 1 });
    await writeFile(join(dir, '.ipam.json.tmp-999-1'), 'half a fi');
    expect(await s.load()).toEqual({ format: 1, v: 1 });
    expect(await readdir(dir)).toEqual(['ipam.json']);
  });

  it('reports a write that cannot happen, naming the file', async () => {
    const s = new FileIpamStore(join(dir, 'missing-dir', 'ipam.json'));
    await expect(s.save({ format: 1 })).rejects.toThrow(/missing-dir\/ipam\.json: cannot write state/);
  });
});

describe('IPAM state across restarts (real files)', () => {
  it('keeps ranges and allocations across a restart with a new UID', async () => {
    const path = join(dir, 'ipam.json');
    const a = ipam(new FileIpamStore(path));
    await a.start();
    const got = await a.allocate('pod1', 'eth0');
    const owned = a.ownedRanges();
    await a.stop();
    const b = ipam(new FileIpamStore(path));
    await b.start();
    expect(b.lookup('pod1')).toEqual([got]);
    expect(b.ownedRanges()).toEqual(owned);
    expect((await b.allocate('pod1', 'eth0')).address).toBe(got.address);
    expect((await b.allocate('pod2', 'eth0')).address).not.toBe(got.address);
    await b.stop();
  });

  it('refuses to start on a corrupt state file, naming it, and leaves the file alone', async () => {
    const path = join(dir, 'ipam.json');
    const a = ipam(new FileIpamStore(path));
    await a.start();
    await a.allocate('pod1', 'eth0');
    await a.stop();
    const bytes = Buffer.from(await readFile(path));
    bytes[bytes.length - 5] = bytes[bytes.length - 5]! ^ 0xff;
    await writeFile(path, bytes);
    const b = ipam(new FileIpamStore(path));
    await expect(b.start()).rejects.toThrow(`${path}: corrupt state file`);
    expect(await readFile(path)).toEqual(bytes);
  });

  it('refuses to start with a different range than the state was written for', async () => {
    const path = join(dir, 'ipam.json');
    const a = ipam(new FileIpamStore(path));
    await a.start();
    await a.stop();
    const b = ipam(new FileIpamStore(path), '10.40.0.0/16');
    await expect(b.start()).rejects.toThrow(/written for --ipalloc-range 10\.32\.0\.0\/24 but this peer was started with 10\.40\.0\.0\/16/);
  });
});
