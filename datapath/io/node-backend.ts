// The pure-Node I/O backend, for machines where the addon did not build.
// The TAP is a real /dev/net/tun device opened by Node and attached by a
// one-shot python3 ioctl (see privileged.ts). Node then watches the fd with
// libuv's stream machinery: a Pipe handle opened on the fd (process.binding
// ('pipe_wrap'), the same handle type net.Socket uses for pipes) puts it in
// the event loop's epoll set, and each read() of a TAP returns exactly one
// frame, delivered as one 'data' chunk while the socket stays flowing. Frames
// are written with fs.writeSync (one write() per frame, so a frame is never
// merged with another the way a stream's writev would). UDP is node:dgram
// with DF forced on the socket. Limits, measured in docs/sleeve-io.md: one
// frame per callback, one syscall per datagram, no TSO or GSO.

import { execFileSync } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { Socket } from 'node:net';
import { ipToU32, u32ToIp } from './ipv4.js';
import { attachTap, queryPathMtu, setDontFragment } from './privileged.js';
import type { Batch, DatagramBatch, DatagramSocket, DeviceStats, FrameDevice, IoBackend, SendError, SocketStats, TapOptions, UdpOptions } from './types.js';

const DEFAULT_SOCKET_BUFFER = 4 * 1024 * 1024;

interface PipeHandle {
  open(fd: number): number;
}
interface PipeWrap {
  Pipe: new (type: number) => PipeHandle;
  constants: { SOCKET: number };
}

/** A libuv stream handle on `fd`: readiness-driven reads on the loop thread, no threadpool. */
function streamOnFd(fd: number): Socket {
  const { Pipe, constants } = (process as unknown as { binding(name: string): PipeWrap }).binding('pipe_wrap');
  const handle = new Pipe(constants.SOCKET);
  const err = handle.open(fd);
  if (err < 0) throw new Error(`tap: cannot watch fd ${fd} (uv error ${err})`);
  return new Socket({ handle, readable: true, writable: false } as unknown as ConstructorParameters<typeof Socket>[0]);
}

class NodeFrameDevice implements FrameDevice {
  readonly backend = 'node' as const;
  readonly offload = false;
  private readonly batch: Batch;
  private readonly stream: Socket;
  private cb: ((batch: Batch) => void) | null = null;
  private errorCb: ((err: Error) => void) | null = null;
  private closed = false;
  private readonly counters = { rxFrames: 0, rxPackets: 0, txFrames: 0, txErrors: 0, readErrors: 0 };

  constructor(
    private readonly fd: number,
    readonly name: string,
    readonly headroom: number,
    private readonly persist: boolean,
    mtu: number,
  ) {
    this.batch = { buf: Buffer.allocUnsafe(headroom + mtu + 14), offs: Uint32Array.of(headroom), lens: new Uint32Array(1), count: 0 };
    this.stream = streamOnFd(fd);
    this.stream.on('error', (err) => {
      this.counters.readErrors++;
      if (!this.closed) this.errorCb?.(new Error(`tap ${name}: read failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    });
  }

  onFrames(cb: (batch: Batch) => void): void {
    const first = this.cb === null;
    this.cb = cb;
    if (!first) return;
    this.stream.on('data', (chunk: Buffer) => {
      this.counters.rxPackets++;
      const b = this.batch;
      if (this.headroom === 0) {
        b.buf = chunk;
      } else {
        // Give the frame its headroom (one copy; the addon reads in place).
        if (b.buf.length < this.headroom + chunk.length) b.buf = Buffer.allocUnsafe(this.headroom + chunk.length);
        chunk.copy(b.buf, this.headroom);
      }
      b.lens[0] = chunk.length;
      b.count = 1;
      this.counters.rxFrames++;
      this.cb?.(b);
    });
  }

  onError(cb: (err: Error) => void): void {
    this.errorCb = cb;
  }

  write(batch: Batch): number {
    if (this.closed) return 0;
    let done = 0;
    for (let i = 0; i < batch.count; i++) {
      try {
        fs.writeSync(this.fd, batch.buf, batch.offs[i]!, batch.lens[i]!);
        done++;
      } catch {
        this.counters.txErrors++;
      }
    }
    this.counters.txFrames += done;
    return done;
  }

  stats(): DeviceStats {
    const c = this.counters;
    return { rxFrames: c.rxFrames, rxPackets: c.rxPackets, rxGso: 0, txFrames: c.txFrames, txPackets: c.txFrames, txGso: 0, txErrors: c.txErrors, rxErrors: c.readErrors, drops: {} };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // Closing the stream closes the fd; a non-persistent TAP goes with it.
    this.stream.destroy();
    if (!this.persist) deleteLink(this.name);
  }
}

function deleteLink(name: string): void {
  try {
    execFileSync('ip', ['link', 'del', 'dev', name], { stdio: 'ignore' });
  } catch {
    /* already gone (a non-persistent TAP vanishes with its last fd) */
  }
}

class NodeDatagramSocket implements DatagramSocket {
  readonly backend = 'node' as const;
  private readonly rx: DatagramBatch = { buf: Buffer.alloc(0), offs: Uint32Array.of(0), lens: new Uint32Array(1), addrs: new Uint32Array(2), count: 0 };
  private errorCb: ((err: SendError) => void) | null = null;
  private recvErrorCb: ((err: Error) => void) | null = null;
  private lastIp = 0;
  private lastIpText = '0.0.0.0';
  private closed = false;
  private readonly counters = { rxDatagrams: 0, rxPackets: 0, txPackets: 0, rxTruncated: 0, rxErrors: 0, txDatagrams: 0, txMsgSize: 0, txErrors: 0 };

  constructor(
    private readonly sock: dgram.Socket,
    readonly address: string,
    readonly port: number,
    private readonly maxDatagram: number,
  ) {
    sock.on('error', (err) => {
      this.counters.rxErrors++;
      this.recvErrorCb?.(new Error(`udp ${address}:${port}: ${err.message}`));
    });
  }

  onDatagrams(cb: (batch: DatagramBatch) => void): void {
    const rx = this.rx;
    this.sock.removeAllListeners('message');
    this.sock.on('message', (msg: Buffer, rinfo: dgram.RemoteInfo) => {
      if (msg.length > this.maxDatagram) {
        this.counters.rxTruncated++;
        return;
      }
      this.counters.rxDatagrams++;
      this.counters.rxPackets++;
      rx.buf = msg;
      rx.lens[0] = msg.length;
      rx.addrs[0] = rinfo.address === this.lastIpText ? this.lastIp : this.remember(rinfo.address);
      rx.addrs[1] = rinfo.port;
      rx.count = 1;
      cb(rx);
    });
  }

  private remember(ip: string): number {
    this.lastIpText = ip;
    this.lastIp = ipToU32(ip);
    return this.lastIp;
  }

  sendBatch(batch: DatagramBatch): number {
    if (this.closed) return 0;
    for (let i = 0; i < batch.count; i++) {
      const ipNum = batch.addrs[2 * i]!;
      const ip = ipNum === this.lastIp ? this.lastIpText : u32ToIp(ipNum);
      const port = batch.addrs[2 * i + 1]!;
      const off = batch.offs[i]!;
      const len = batch.lens[i]!;
      // dgram may queue the buffer past this call; the caller may reuse
      // theirs at once, so send a copy.
      const copy = Buffer.allocUnsafe(len);
      batch.buf.copy(copy, 0, off, off + len);
      this.sock.send(copy, port, ip, (err) => {
        if (!err) return;
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        if (code === 'EMSGSIZE') this.counters.txMsgSize++;
        else this.counters.txErrors++;
        this.counters.txDatagrams--;
        this.errorCb?.({ code, ip, port, length: len });
      });
    }
    this.counters.txDatagrams += batch.count;
    this.counters.txPackets += batch.count;
    return batch.count;
  }

  onSendError(cb: (err: SendError) => void): void {
    this.errorCb = cb;
  }

  onError(cb: (err: Error) => void): void {
    this.recvErrorCb = cb;
  }

  pathMtu(ip: string): Promise<number> {
    ipToU32(ip);
    return queryPathMtu(ip);
  }

  stats(): SocketStats {
    return { ...this.counters };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}

/** The fd under a bound dgram socket (libuv exposes it on Unix). */
function socketFd(sock: dgram.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('udp: cannot reach the socket fd to set DF');
  return fd;
}

export function nodeBackend(): IoBackend {
  return {
    name: 'node',
    async openTap(opts: TapOptions): Promise<FrameDevice> {
      if (!/^[A-Za-z0-9_.-]{1,15}$/.test(opts.name)) throw new Error(`tap name: must be 1-15 of [A-Za-z0-9_.-], got ${JSON.stringify(opts.name)}`);
      const fd = fs.openSync('/dev/net/tun', fs.constants.O_RDWR);
      try {
        await attachTap(fd, opts.name, opts.persist ?? false);
      } catch (err) {
        fs.closeSync(fd);
        throw new Error(`tap ${opts.name}: ${(err as Error).message}`, { cause: err });
      }
      return new NodeFrameDevice(fd, opts.name, opts.headroom ?? 0, opts.persist ?? false, 65535);
    },
    async openUdp(opts: UdpOptions): Promise<DatagramSocket> {
      const sock = dgram.createSocket({
        type: 'udp4',
        recvBufferSize: opts.recvBufferSize ?? DEFAULT_SOCKET_BUFFER,
        sendBufferSize: opts.sendBufferSize ?? DEFAULT_SOCKET_BUFFER,
      });
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(opts.port, opts.address, () => {
          sock.removeListener('error', reject);
          resolve();
        });
      });
      try {
        await setDontFragment(socketFd(sock));
      } catch (err) {
        sock.close();
        throw err;
      }
      return new NodeDatagramSocket(sock, opts.address, sock.address().port, opts.maxDatagram ?? 9216);
    },
  };
}
