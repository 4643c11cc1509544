// Backend choice: native when the addon loads, node when forced; both are
// exercised against real devices in test/e2e/sleeve-io.test.ts.
import { describe, expect, it, vi } from 'vitest';
import { ioBackend } from '../../../datapath/io/index.js';
import { addon } from './addon.js';

describe('I/O backend choice', () => {
  it('gives the native backend when the addon is built', () => {
    addon();
    expect(ioBackend('native').name).toBe('native');
    expect(ioBackend('node').name).toBe('node');
  });

  it('refuses an unknown MESHNET_IO with a one-line error', async () => {
    // selectIoBackend memoizes; import a fresh copy of the module.
    vi.resetModules();
    const mod = await import('../../../datapath/io/index.js');
    expect(() => mod.selectIoBackend({ MESHNET_IO: 'fast' })).toThrow(/^MESHNET_IO: must be "node" or "native"/);
  });

  it('honours MESHNET_IO=node and chooses once', async () => {
    vi.resetModules();
    const mod = await import('../../../datapath/io/index.js');
    const first = mod.selectIoBackend({ MESHNET_IO: 'node' });
    expect(first.backend.name).toBe('node');
    expect(first.reason).toBe('forced by MESHNET_IO');
    expect(mod.selectIoBackend({ MESHNET_IO: 'native' })).toBe(first);
  });

  it('picks native by default when it loads', async () => {
    vi.resetModules();
    const mod = await import('../../../datapath/io/index.js');
    expect(mod.selectIoBackend({}).backend.name).toBe('native');
  });
});
