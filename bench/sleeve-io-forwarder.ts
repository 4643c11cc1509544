// A minimal sleeve-like forwarding loop, for measuring the I/O layer (and
// for the e2e test): TAP -> [seal] -> UDP -> [open] -> TAP, with a static
// MAC -> peer table. It is a measurement harness, not the sleeve: no
// handshake, no replay window, one key per direction given on the command
// line. Run inside a host namespace:
//   node dist/bench/sleeve-io-forwarder.js '<json ForwarderConfig>'
// Prints "ready" once the TAP and socket are open, and its counters as one
// JSON line on SIGTERM/SIGINT before exiting.

import { createRequire } from 'node:module';
import { AeadOpener, AeadSealer } from '../datapath/io/aead.js';
import { ioBackend, ipToU32 } from '../datapath/io/index.js';
import type { Batch, DatagramBatch, IoBackendName } from '../datapath/io/index.js';

export interface ForwarderConfig {
  backend: IoBackendName;
  tap: string;
  offload: boolean;
  bind: string;
  port: number;
  /** Peers and the MACs (aa:bb:...) behind each; frames to unknown or group MACs go to every peer. */
  peers: { ip: string; port: number; macs: string[] }[];
  /** 32-byte keys as hex: seal with sendKey, open with recvKey. Absent: frames travel in the clear. */
  sendKey?: string;
  recvKey?: string;
  /**
   * secretbox: XSalsa20-Poly1305 per datagram from JS (sodium-native), as
   * crypto/ does; chacha20: ChaCha20-Poly1305 per batch (datapath/io/aead.ts,
   * in the addon when it is built). Two hosts only.
   */
  cipher?: 'secretbox' | 'chacha20';
}

interface Secretbox {
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
}

/** Datagram = 8-byte counter (little-endian, the nonce's first 8 bytes) + frame or secretbox(frame). */
const HDR = 8;
const MAC_BYTES = 16;
const BATCH = 256;
const SLOT = 2048;

function macKey(buf: Uint8Array, off: number): number {
  // 48 bits fit a double exactly.
  return ((buf[off]! << 8) | buf[off + 1]!) * 0x100000000 + (((buf[off + 2]! << 24) | (buf[off + 3]! << 16) | (buf[off + 4]! << 8) | buf[off + 5]!) >>> 0);
}

function parseMac(mac: string): number {
  const b = Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
  if (b.length !== 6) throw new Error(`mac: not a MAC address: ${mac}`);
  return macKey(b, 0);
}

export async function runForwarder(cfg: ForwarderConfig): Promise<() => Record<string, unknown>> {
  const backend = ioBackend(cfg.backend);
  const dev = await backend.openTap({ name: cfg.tap, offload: cfg.offload, headroom: HDR });
  const sock = await backend.openUdp({ address: cfg.bind, port: cfg.port, maxDatagram: SLOT });
  const peers = cfg.peers.map((p) => ({ ip: ipToU32(p.ip), port: p.port }));
  const byMac = new Map<number, number>();
  cfg.peers.forEach((p, i) => p.macs.forEach((m) => byMac.set(parseMac(m), i)));

  const chacha = cfg.sendKey && cfg.recvKey && cfg.cipher === 'chacha20' ? { sealer: new AeadSealer(Buffer.from(cfg.sendKey, 'hex'), 0), opener: new AeadOpener(Buffer.from(cfg.recvKey, 'hex'), 0) } : null;
  if (chacha && peers.length !== 1) throw new Error('chacha20: one peer only');
  const sodium = cfg.sendKey && !chacha ? (createRequire(import.meta.url)('sodium-native') as Secretbox) : null;
  const sendKey = cfg.sendKey ? Buffer.from(cfg.sendKey, 'hex') : null;
  const recvKey = cfg.recvKey ? Buffer.from(cfg.recvKey, 'hex') : null;
  const sendNonce = Buffer.alloc(24);
  const recvNonce = Buffer.alloc(24);
  let counterLo = 0;
  let counterHi = 0;
  const counters = { framesOut: 0, framesIn: 0, badDatagrams: 0, unknownPeer: 0, sendErrors: 0 };

  // Outbound: frames from the TAP into datagrams. In the clear they are sent
  // from the receive buffer itself (the 8-byte header goes into the
  // headroom); sealed they go through `sealed`.
  const sealed: DatagramBatch = { buf: Buffer.allocUnsafe(BATCH * peers.length * SLOT), offs: new Uint32Array(BATCH * peers.length), lens: new Uint32Array(BATCH * peers.length), addrs: new Uint32Array(2 * BATCH * peers.length), count: 0 };
  const out: DatagramBatch = { buf: sealed.buf, offs: sealed.offs, lens: sealed.lens, addrs: sealed.addrs, count: 0 };
  const status = new Int32Array(BATCH);
  dev.onFrames((b: Batch) => {
    if (chacha) {
      // One call seals the whole batch; every frame goes to the one peer.
      for (let i = 0; i < b.count; i++) {
        out.offs[i] = i * SLOT;
        out.addrs[2 * i] = peers[0]!.ip;
        out.addrs[2 * i + 1] = peers[0]!.port;
      }
      chacha.sealer.seal(b.buf, b.offs, b.lens, b.count, sealed.buf, out.offs, status);
      let n = 0;
      for (let i = 0; i < b.count; i++) {
        if (status[i]! < 0 || status[i]! > SLOT) continue;
        out.offs[n] = out.offs[i]!;
        out.lens[n] = status[i]!;
        n++;
      }
      out.buf = sealed.buf;
      out.count = n;
      counters.framesOut += n;
      if (n) sock.sendBatch(out);
      return;
    }
    out.buf = sodium ? sealed.buf : b.buf;
    let n = 0;
    for (let i = 0; i < b.count; i++) {
      const off = b.offs[i]!;
      const len = b.lens[i]!;
      if (len + HDR + MAC_BYTES > SLOT) continue;
      const dst = b.buf[off]! & 1 ? -1 : (byMac.get(macKey(b.buf, off)) ?? -1);
      for (let p = dst < 0 ? 0 : dst; p < (dst < 0 ? peers.length : dst + 1); p++) {
        if (++counterLo > 0xffffffff) {
          counterLo = 0;
          counterHi++;
        }
        let doff: number;
        let dlen: number;
        if (sodium && sendKey) {
          doff = n * SLOT;
          sendNonce.writeUInt32LE(counterLo, 0);
          sendNonce.writeUInt32LE(counterHi, 4);
          sendNonce.copy(sealed.buf, doff, 0, HDR);
          sodium.crypto_secretbox_easy(sealed.buf.subarray(doff + HDR, doff + HDR + MAC_BYTES + len), b.buf.subarray(off, off + len), sendNonce, sendKey);
          dlen = HDR + MAC_BYTES + len;
        } else {
          doff = off - HDR;
          b.buf.writeUInt32LE(counterLo, doff);
          b.buf.writeUInt32LE(counterHi, doff + 4);
          dlen = HDR + len;
        }
        out.offs[n] = doff;
        out.lens[n] = dlen;
        out.addrs[2 * n] = peers[p]!.ip;
        out.addrs[2 * n + 1] = peers[p]!.port;
        n++;
      }
    }
    out.count = n;
    counters.framesOut += n;
    if (n) sock.sendBatch(out);
  });
  sock.onSendError(() => counters.sendErrors++);

  // Inbound: datagrams to frames on the TAP. In the clear the frames are
  // written straight from the receive buffer.
  let opened: Batch = { buf: Buffer.allocUnsafe(BATCH * SLOT), offs: new Uint32Array(BATCH), lens: new Uint32Array(BATCH), count: 0 };
  const inb: Batch = { buf: opened.buf, offs: opened.offs, lens: opened.lens, count: 0 };
  let ostatus = new Int32Array(0);
  let octrs = new Uint32Array(0);
  let odoffs = new Uint32Array(0);
  sock.onDatagrams((d: DatagramBatch) => {
    if (d.count > opened.offs.length) {
      opened = { buf: Buffer.allocUnsafe(d.count * SLOT), offs: new Uint32Array(d.count), lens: new Uint32Array(d.count), count: 0 };
      inb.offs = opened.offs;
      inb.lens = opened.lens;
    }
    if (chacha) {
      if (ostatus.length < d.count) {
        ostatus = new Int32Array(d.count);
        octrs = new Uint32Array(2 * d.count);
        odoffs = new Uint32Array(d.count);
        for (let i = 0; i < d.count; i++) odoffs[i] = i * SLOT;
      }
      chacha.opener.open(d.buf, d.offs, d.lens, d.count, opened.buf, odoffs, ostatus, octrs);
      let n = 0;
      for (let i = 0; i < d.count; i++) {
        if (ostatus[i]! < 14 || d.addrs[2 * i] !== peers[0]!.ip) {
          counters.badDatagrams++;
          continue;
        }
        inb.offs[n] = odoffs[i]!;
        inb.lens[n] = ostatus[i]!;
        n++;
      }
      inb.buf = opened.buf;
      inb.count = n;
      counters.framesIn += n;
      if (n) dev.write(inb);
      return;
    }
    inb.buf = sodium ? opened.buf : d.buf;
    let n = 0;
    for (let i = 0; i < d.count; i++) {
      const off = d.offs[i]!;
      const len = d.lens[i]!;
      if (!peers.some((p) => p.ip === d.addrs[2 * i])) {
        counters.unknownPeer++;
        continue;
      }
      const flen = len - HDR - (sodium ? MAC_BYTES : 0);
      if (flen < 14) {
        counters.badDatagrams++;
        continue;
      }
      if (sodium && recvKey) {
        d.buf.copy(recvNonce, 0, off, off + HDR);
        const dst = opened.buf.subarray(n * SLOT, n * SLOT + flen);
        if (!sodium.crypto_secretbox_open_easy(dst, d.buf.subarray(off + HDR, off + len), recvNonce, recvKey)) {
          counters.badDatagrams++;
          continue;
        }
        inb.offs[n] = n * SLOT;
      } else {
        inb.offs[n] = off + HDR;
      }
      inb.lens[n] = flen;
      n++;
    }
    inb.count = n;
    counters.framesIn += n;
    if (n) dev.write(inb);
  });

  return () => {
    const s = { ...counters, device: dev.stats(), socket: sock.stats() };
    dev.close();
    sock.close();
    return s;
  };
}

// Entry point when run as a script.
if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as ForwarderConfig;
  const stop = await runForwarder(cfg);
  process.stdout.write('ready\n');
  const finish = (): void => {
    process.stdout.write(`${JSON.stringify(stop())}\n`);
    process.exit(0);
  };
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
}
