// When the native addon cannot load, initCrypto() falls back to the portable
// backend and says why; forcing 'native' fails with that reason.
import { describe, expect, it, vi } from 'vitest';

vi.mock('../../../crypto/backend-native.js', () => ({
  loadNativeBackend: () => {
    throw new Error('Cannot find module sodium-native.node\n    at stack line');
  },
}));

const { cryptoBackendName, cryptoFallbackReason, initCrypto, FrameOpener, FrameSealer } = await import('../../../crypto/index.js');

describe('initCrypto without the native addon', () => {
  it('falls back to libsodium-wrappers-sumo and records the reason in one line', async () => {
    await initCrypto();
    expect(cryptoBackendName()).toBe('libsodium-wrappers-sumo');
    expect(cryptoFallbackReason()).toBe('sodium-native cannot load: Cannot find module sodium-native.node');
    const key = new Uint8Array(32).fill(1);
    expect(new FrameOpener(key).open(new FrameSealer(key).seal(new Uint8Array([1, 2, 3])))).toEqual(new Uint8Array([1, 2, 3]));
  });

  it("throws when 'native' is forced", async () => {
    await expect(initCrypto('native')).rejects.toThrow(/^initCrypto: backend 'native' cannot load: Cannot find module/);
    expect(cryptoBackendName()).toBe('libsodium-wrappers-sumo');
  });
});
