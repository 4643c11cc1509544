// The I/O backend on the meshnet_io addon: batched TAP reads (with TSO
// super-packets segmented in C) and recvmmsg/sendmmsg, woken by uv_poll.

import { constants as osConstants } from 'node:os';
import { POLL_READABLE, TUN_F_CSUM, TUN_F_TSO4, UDP_FLAG_GRO, UDP_FLAG_GSO, type NativeHandle, type NativeIo } from '../native/index.js';
import { u32ToIp } from './ipv4.js';
import type { Batch, DatagramBatch, DatagramSocket, DeviceStats, FrameDevice, IoBackend, SendError, SocketStats, TapOptions, UdpOptions } from './types.js';

/** Frames per read batch: one poll wakeup drains up to this many. */
const BATCH = 256;
/** Room for a full batch of MTU-sized frames, and at least one 64 KiB frame. */
const RX_BYTES = 512 * 1024;
/** Upper bound of a socket's receive buffer (slots x slot size). */
const RX_SOCKET_BYTES = 4 * 1024 * 1024;
/** Default receive slot: jumbo frames fit; larger datagrams cannot reach us with DF set on a jumbo underlay. */
const DEFAULT_MAX_DATAGRAM = 9216;
/** With UDP_GRO a receive holds up to 64 datagrams in up to 64 KiB. */
const GRO_SLOT = 65536;
const GRO_SLOTS = 32;
const GRO_SEGS = 64;
/** Read rounds per wakeup before yielding to the rest of the loop. */
const ROUNDS = 4;
const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

class NativeFrameDevice implements FrameDevice {
  readonly backend = 'native' as const;
  private readonly rx: Batch;
  private errorCb: ((err: Error) => void) | null = null;
  private closed = false;

  constructor(
    private readonly io: NativeIo,
    private readonly h: NativeHandle,
    readonly name: string,
    readonly offload: boolean,
    readonly headroom: number,
  ) {
    this.rx = { buf: Buffer.allocUnsafe(RX_BYTES), offs: new Uint32Array(BATCH), lens: new Uint32Array(BATCH), count: 0 };
  }

  onFrames(cb: (batch: Batch) => void): void {
    const { io, h, rx } = this;
    const drain = (): void => {
      for (let round = 0; round < ROUNDS; round++) {
        if (this.closed) return;
        const n = io.tapRead(h, rx.buf, rx.offs, rx.lens, this.headroom);
        if (n < 0) {
          io.pollStop(h);
          this.errorCb?.(new Error(`tap ${this.name}: read failed: ${errnoNames.get(-n) ?? `errno ${-n}`}`));
          return;
        }
        rx.count = n;
        if (n === 0) return;
        cb(rx);
      }
      // Frames may still wait: in the device (the poll fires again) or as
      // the rest of a super-packet inside the addon (it would not), so
      // come back after the loop has served everyone else.
      setImmediate(drain);
    };
    io.pollStart(h, POLL_READABLE, drain);
  }

  onError(cb: (err: Error) => void): void {
    this.errorCb = cb;
  }

  write(batch: Batch): number {
    if (this.closed || batch.count === 0) return 0;
    return this.io.tapWrite(this.h, batch.buf, batch.offs, batch.lens, batch.count);
  }

  stats(): DeviceStats {
    const s = this.io.stats(this.h);
    return { rxFrames: s.rxFrames, rxPackets: s.rxPackets, rxGso: s.rxGso, txFrames: s.txFrames, txPackets: s.txPackets, txGso: s.txGso, txErrors: s.txErrors, rxErrors: s.rxErrors, drops: s.drops };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.io.close(this.h);
  }
}

class NativeDatagramSocket implements DatagramSocket {
  readonly backend = 'native' as const;
  readonly port: number;
  private readonly rx: DatagramBatch;
  private readonly slot: number;
  private status = new Int32Array(BATCH);
  private errorCb: ((err: SendError) => void) | null = null;
  private recvErrorCb: ((err: Error) => void) | null = null;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly io: NativeIo,
    private readonly h: NativeHandle,
    readonly address: string,
    maxDatagram: number,
    gro: boolean,
  ) {
    this.port = io.udpLocalPort(h);
    this.slot = gro ? GRO_SLOT : maxDatagram;
    const slots = gro ? GRO_SLOTS : Math.max(1, Math.min(BATCH, Math.floor(RX_SOCKET_BYTES / maxDatagram)));
    const n = gro ? GRO_SLOTS * GRO_SEGS : slots;
    this.rx = { buf: Buffer.allocUnsafe(slots * this.slot), offs: new Uint32Array(n), lens: new Uint32Array(n), addrs: new Uint32Array(2 * n), count: 0 };
  }

  onDatagrams(cb: (batch: DatagramBatch) => void): void {
    const { io, h, rx } = this;
    io.pollStart(h, POLL_READABLE, () => {
      for (let round = 0; round < ROUNDS && !this.closed; round++) {
        const n = io.udpRecv(h, rx.buf, this.slot, rx.offs, rx.lens, rx.addrs);
        if (n < 0) {
          this.recvErrorCb?.(new Error(`udp ${this.address}:${this.port}: receive failed: ${errnoNames.get(-n) ?? `errno ${-n}`}`));
          return;
        }
        rx.count = n;
        if (n === 0) return;
        cb(rx);
      }
    });
  }

  sendBatch(batch: DatagramBatch): number {
    if (this.closed || batch.count === 0) return 0;
    if (this.status.length < batch.count) this.status = new Int32Array(batch.count);
    const status = this.status;
    const done = this.io.udpSend(this.h, batch.buf, batch.offs, batch.lens, batch.addrs, batch.count, status);
    let sent = done;
    for (let i = 0; i < done; i++) {
      if (status[i] === 0) continue;
      sent--;
      this.errorCb?.({ code: errnoNames.get(status[i]!) ?? `E${status[i]}`, ip: u32ToIp(batch.addrs[2 * i]!), port: batch.addrs[2 * i + 1]!, length: batch.lens[i]! });
    }
    // The socket buffer was full: the rest is dropped, like a full NIC queue would.
    this.dropped += batch.count - done;
    return sent;
  }

  onSendError(cb: (err: SendError) => void): void {
    this.errorCb = cb;
  }

  onError(cb: (err: Error) => void): void {
    this.recvErrorCb = cb;
  }

  async pathMtu(ip: string): Promise<number> {
    return this.io.pathMtu(ip);
  }

  stats(): SocketStats {
    const s = this.io.stats(this.h);
    return { rxDatagrams: s.rxFrames, rxPackets: s.rxPackets, txPackets: s.txPackets, rxTruncated: s.rxTruncated, rxErrors: s.rxErrors, txDatagrams: s.txFrames, txMsgSize: s.txMsgSize, txErrors: s.txErrors + this.dropped };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.io.close(this.h);
  }
}

export function nativeBackend(io: NativeIo): IoBackend {
  return {
    name: 'native',
    async openTap(opts: TapOptions): Promise<FrameDevice> {
      const offload = opts.offload ?? false;
      const h = io.tapOpen(opts.name, offload, offload ? TUN_F_CSUM | TUN_F_TSO4 : 0, opts.persist ?? false);
      return new NativeFrameDevice(io, h, opts.name, offload, opts.headroom ?? 0);
    },
    async openUdp(opts: UdpOptions): Promise<DatagramSocket> {
      const offload = opts.offload ?? true;
      const h = io.udpOpen(opts.address, opts.port, opts.recvBufferSize ?? DEFAULT_SOCKET_BUFFER, opts.sendBufferSize ?? DEFAULT_SOCKET_BUFFER, offload ? UDP_FLAG_GSO | UDP_FLAG_GRO : 0);
      return new NativeDatagramSocket(io, h, opts.address, opts.maxDatagram ?? DEFAULT_MAX_DATAGRAM, offload);
    },
  };
}
