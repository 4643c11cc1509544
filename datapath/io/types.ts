// The I/O the sleeve runs on: a TAP device that yields Ethernet frames in
// batches and a UDP socket that moves datagrams in batches. Two backends
// implement it (native addon, pure Node); one is chosen at start.
//
// Buffer ownership: a batch handed to a callback lives in the backend's
// receive buffer and is valid only until the callback returns; copy (or
// seal into your own buffer) what you keep. Batches passed to write/send
// belong to the caller and may be reused as soon as the call returns.

export type IoBackendName = 'native' | 'node';

/** Frames (or datagrams) laid out in one buffer: item i is buf[offs[i], offs[i]+lens[i]). */
export interface Batch {
  buf: Buffer;
  offs: Uint32Array;
  lens: Uint32Array;
  count: number;
}

/** Datagrams with their peers: addrs[2i] = IPv4 as a host-order u32, addrs[2i+1] = UDP port. */
export interface DatagramBatch extends Batch {
  addrs: Uint32Array;
}

export interface TapOptions {
  name: string;
  /**
   * Let the kernel hand us TSO super-packets (up to 64 KiB, IPv4 TCP) and
   * frames with partial checksums; the backend segments and completes them,
   * so readers always see ordinary frames of at most the device MTU + 14.
   * Only the native backend can; the pure-Node one ignores it (see `offload`).
   */
  offload?: boolean;
  /** Keep the device when the fd closes (default false). */
  persist?: boolean;
  /** Free bytes left before each received frame, so a header can be written in place (default 0). */
  headroom?: number;
}

export interface DeviceStats {
  /** Frames delivered to onFrames. */
  rxFrames: number;
  /** Reads from the device (a TSO super-packet is one read, many frames). */
  rxPackets: number;
  /** Super-packets segmented. */
  rxGso: number;
  txFrames: number;
  /** Writes to the device: with offload, runs of TCP segments are coalesced into one super-packet write. */
  txPackets: number;
  /** Coalesced super-packets written. */
  txGso: number;
  txErrors: number;
  /** Failed reads (the device went away). */
  rxErrors: number;
  /** Frames dropped on receive, by reason (malformed, unsupported offload, ...). */
  drops: Record<string, number>;
}

export interface FrameDevice {
  readonly name: string;
  readonly backend: IoBackendName;
  /** Whether TSO/checksum offload is on (so frames on the wire may come from 64 KiB super-packets). */
  readonly offload: boolean;
  /** Free bytes before each received frame (TapOptions.headroom). */
  readonly headroom: number;
  /** Start delivering received frames; replaces an earlier callback. */
  onFrames(cb: (batch: Batch) => void): void;
  /**
   * Write `count` frames to the device; returns how many were written
   * (failures are counted). With offload, consecutive segments of one TCP
   * flow are coalesced into one super-packet (userspace GRO).
   */
  write(batch: Batch): number;
  /** The device failed (e.g. it was deleted): reading has stopped; close and reopen. */
  onError(cb: (err: Error) => void): void;
  stats(): DeviceStats;
  /** Stop and release the device (a non-persistent device disappears). Idempotent. */
  close(): void;
}

export interface UdpOptions {
  /** Local IPv4 address to bind (e.g. the host's underlay address, or 0.0.0.0). */
  address: string;
  /** 0 picks a free port. */
  port: number;
  /** Socket buffer sizes in bytes (default 4 MiB each). */
  recvBufferSize?: number;
  sendBufferSize?: number;
  /** Receive slot size without offload: datagrams longer than this are dropped and counted (default 9216). */
  maxDatagram?: number;
  /**
   * Hand runs of equal-size datagrams to one peer to the kernel as one UDP
   * GSO send, and take coalesced receives (UDP_GRO), where the kernel allows
   * (default true; native backend only). Datagrams on the wire are the same.
   */
  offload?: boolean;
}

export interface SendError {
  /** errno name, e.g. "EMSGSIZE" (datagram larger than the path MTU: not sent, never fragmented). */
  code: string;
  ip: string;
  port: number;
  length: number;
}

export interface SocketStats {
  rxDatagrams: number;
  /** Receive messages from the kernel (a coalesced one carries many datagrams). */
  rxPackets: number;
  /** Send messages to the kernel (a GSO run carries many datagrams). */
  txPackets: number;
  /** Datagrams longer than maxDatagram, dropped. */
  rxTruncated: number;
  rxErrors: number;
  txDatagrams: number;
  /** Datagrams refused with EMSGSIZE (bigger than the path MTU). */
  txMsgSize: number;
  /** Other send failures, and datagrams dropped because the socket buffer was full. */
  txErrors: number;
}

export interface DatagramSocket {
  readonly backend: IoBackendName;
  readonly address: string;
  readonly port: number;
  /** Start delivering received datagrams; replaces an earlier callback. */
  onDatagrams(cb: (batch: DatagramBatch) => void): void;
  /**
   * Send `count` datagrams, each with DF set. Returns how many the kernel
   * took; a datagram it refused is reported to onSendError (EMSGSIZE when it
   * exceeds the path MTU) and counted, never fragmented.
   */
  sendBatch(batch: DatagramBatch): number;
  onSendError(cb: (err: SendError) => void): void;
  /** A receive failed (counted in rxErrors; receiving goes on). */
  onError(cb: (err: Error) => void): void;
  /** The kernel's path MTU towards `ip` (what IP_MTU reports: includes PMTU learned from ICMP). */
  pathMtu(ip: string): Promise<number>;
  stats(): SocketStats;
  close(): void;
}

export interface IoBackend {
  readonly name: IoBackendName;
  openTap(opts: TapOptions): Promise<FrameDevice>;
  openUdp(opts: UdpOptions): Promise<DatagramSocket>;
}
