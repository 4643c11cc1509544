// Backend selection. Each test file has its own module instances, so this one
// starts with no backend chosen.
import { describe, expect, it } from 'vitest';
import { cryptoBackendName, cryptoFallbackReason, generateKeyPair, initCrypto } from '../../../crypto/index.js';

describe('initCrypto', () => {
  it('refuses to work before a backend is chosen', () => {
    expect(() => cryptoBackendName()).toThrow(/initCrypto\(\) has not been called/);
    expect(() => generateKeyPair()).toThrow(/initCrypto\(\) has not been called/);
  });

  it('chooses sodium-native by default, once', async () => {
    await initCrypto();
    expect(cryptoBackendName()).toBe('sodium-native');
    expect(cryptoFallbackReason()).toBeNull();
    await initCrypto('portable');
    await initCrypto(); // no argument: keeps the current choice
    expect(cryptoBackendName()).toBe('libsodium-wrappers-sumo');
  });

  it('rejects an unknown preference', async () => {
    await expect(initCrypto('wasm' as never)).rejects.toThrow(/prefer must be 'native' or 'portable'/);
  });
});
