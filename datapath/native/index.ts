// Loads the meshnet_io addon (datapath/native/src, built by node-gyp at
// install). Returns null when it was not built or cannot load here; the I/O
// layer then uses its pure-Node backend. Nothing else imports the .node file.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** An opaque native handle (TAP device or UDP socket). */
export type NativeHandle = { readonly __nativeHandle: unique symbol };

/** Counters kept by the addon per handle. */
export interface NativeStats {
  rxFrames: number;
  rxPackets: number;
  rxGso: number;
  rxTruncated: number;
  rxErrors: number;
  txFrames: number;
  /** Writes to the device (a coalesced super-packet is one write, many frames). */
  txPackets: number;
  txGso: number;
  txErrors: number;
  txMsgSize: number;
  drops: Record<string, number>;
}

/** TUNSETOFFLOAD bits the addon accepts. */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
/** udpOpen flags: send equal-size runs with UDP_SEGMENT; accept UDP_GRO receives. */
export const UDP_FLAG_GSO = 1;
export const UDP_FLAG_GRO = 2;
export const POLL_READABLE = 1;
export const POLL_WRITABLE = 2;

/** The addon's functions, exactly as src/addon.c exports them. */
export interface NativeIo {
  tapOpen(name: string, vnetHdr: boolean, offload: number, persist: boolean): NativeHandle;
  /** Frames read, or -errno when the device failed (e.g. deleted). */
  tapRead(h: NativeHandle, buf: Uint8Array, offs: Uint32Array, lens: Uint32Array, headroom: number): number;
  tapWrite(h: NativeHandle, buf: Uint8Array, offs: Uint32Array, lens: Uint32Array, count: number): number;
  /** What tapWrite on an IFF_VNET_HDR device writes for these frames (virtio-net header + frame each). */
  coalesceFrames(buf: Uint8Array, offs: Uint32Array, lens: Uint32Array, count: number): Buffer[];
  /** The TAP read path on one (virtio-net header + frame) input: frames emitted, or -reason. */
  segmentFrame(input: Uint8Array, out: Uint8Array, offs: Uint32Array, lens: Uint32Array, headroom: number): number;
  /** flags: UDP_FLAG_GSO | UDP_FLAG_GRO. */
  udpOpen(ip: string, port: number, rcvbuf: number, sndbuf: number, flags: number): NativeHandle;
  udpLocalPort(h: NativeHandle): number;
  /** Datagrams received, or -errno on a receive error. */
  udpRecv(h: NativeHandle, buf: Uint8Array, slot: number, offs: Uint32Array, lens: Uint32Array, addrs: Uint32Array): number;
  udpSend(h: NativeHandle, buf: Uint8Array, offs: Uint32Array, lens: Uint32Array, addrs: Uint32Array, count: number, status: Int32Array): number;
  pathMtu(ip: string): number;
  pollStart(h: NativeHandle, events: number, cb: (status: number, events: number) => void): void;
  pollStop(h: NativeHandle): void;
  close(h: NativeHandle): void;
  stats(h: NativeHandle): NativeStats;
  /**
   * ChaCha20-Poly1305 (RFC 8439) over a batch, on Node's OpenSSL. Item i is
   * sealed into dst at dstOffs[i] as counter(8, LE) | ciphertext | tag(16),
   * nonce = prefix(4, LE) | counter; AAD = the `aad` bytes before dstOffs[i]
   * plus the counter. status[i] = bytes written from dstOffs[i], or -1.
   */
  aeadSeal(key: Uint8Array, prefix: number, counterLo: number, counterHi: number, src: Uint8Array, srcOffs: Uint32Array, srcLens: Uint32Array, dst: Uint8Array, dstOffs: Uint32Array, count: number, aad: number, status: Int32Array): number;
  /** Opens what aeadSeal wrote: status[i] = plaintext length or -1; counters[2i..2i+1] = its counter (lo, hi). */
  aeadOpen(key: Uint8Array, prefix: number, src: Uint8Array, srcOffs: Uint32Array, srcLens: Uint32Array, dst: Uint8Array, dstOffs: Uint32Array, count: number, aad: number, status: Int32Array, counters: Uint32Array): number;
  /** Drop reason names, indexed by the codes segmentFrame returns negated. */
  dropReasons(): string[];
}

const ADDON = 'meshnet_io.node';

/** Where the built addon may be: next to this file's source or its dist copy. */
export function addonCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const roots = [here, resolve(here, '../../../datapath/native')];
  return roots.flatMap((r) => [join(r, 'build', 'Release', ADDON), join(r, 'build', 'Debug', ADDON)]);
}

let cached: { io: NativeIo | null; error: string | null } | undefined;

/** The addon, or null (with the reason in `nativeLoadError()`). Loaded once. */
export function loadNativeIo(): NativeIo | null {
  if (cached) return cached.io;
  const require = createRequire(import.meta.url);
  let error = `${ADDON} not built (looked in ${addonCandidates().join(', ')})`;
  for (const path of addonCandidates()) {
    if (!existsSync(path)) continue;
    try {
      cached = { io: require(path) as NativeIo, error: null };
      return cached.io;
    } catch (err) {
      error = `${path}: ${(err as Error).message}`;
    }
  }
  cached = { io: null, error };
  return null;
}

export function nativeLoadError(): string | null {
  loadNativeIo();
  return cached?.error ?? null;
}
