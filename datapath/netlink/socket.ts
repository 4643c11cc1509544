// Transport: one rtnetlink socket from the `netlink` npm package (native
// socket, sequence numbers, multipart assembly), with our own error handling
// and the ordering rules the package leaves to the caller:
//
// - A socket runs one dump at a time (the kernel answers a second one with
//   EBUSY) and the package keeps a single multipart buffer, so while a dump
//   is in flight nothing else is sent on the socket. Plain requests may be
//   pipelined (replies are matched by sequence number).
// - Errors are read from NLMSG_ERROR ourselves (checkError: false) so they
//   keep their errno (NetlinkError), instead of the package's string.
// - A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is retried.

import { createNetlink, type NetlinkSocket } from 'netlink';
import { NLM_F, NLMSG_DONE, NLMSG_ERROR } from './constants.js';
import { NetlinkError } from './errors.js';

const NETLINK_ROUTE = 0;
const DUMP_RETRIES = 5;

export interface RawReply {
  type: number;
  flags: number;
  data: Buffer;
}

export interface RtnlTransport {
  /** Send a request and wait for its ACK (or the kernel's answer, for GET). */
  request(type: number, flags: number, body: Buffer, operation: string, timeoutMs?: number): Promise<RawReply[]>;
  /** Dump: one answer per object. */
  dump(type: number, body: Buffer, operation: string): Promise<RawReply[]>;
  close(): void;
}

interface PackageMessage {
  type: number;
  flags: number;
  seq: number;
  data: Buffer;
}

export class RtnlSocket implements RtnlTransport {
  private readonly sock: NetlinkSocket;
  private inflight = 0;
  private dumping: Promise<unknown> | undefined;
  private readonly idle: (() => void)[] = [];
  private closed = false;

  constructor() {
    this.sock = createNetlink(NETLINK_ROUTE, { recvBufferSize: 1 << 20, sendBufferSize: 0 });
    // Unsolicited messages (none expected on a request socket) and
    // malformed ones are not errors of any request: ignore them.
    this.sock.on('message', () => undefined);
    this.sock.on('invalid', () => undefined);
    this.sock.on('error', () => undefined);
  }

  async request(type: number, flags: number, body: Buffer, operation: string, timeoutMs = 10_000): Promise<RawReply[]> {
    while (this.dumping) await this.dumping;
    this.inflight++;
    try {
      return await this.send(type, flags, body, operation, timeoutMs);
    } finally {
      if (--this.inflight === 0) for (const f of this.idle.splice(0)) f();
    }
  }

  async dump(type: number, body: Buffer, operation: string): Promise<RawReply[]> {
    while (this.dumping) await this.dumping;
    const run = (async () => {
      if (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
      for (let attempt = 0; ; attempt++) {
        const replies = await this.send(type, NLM_F.DUMP, body, operation, 30_000);
        if (!replies.some((r) => r.flags & NLM_F.DUMP_INTR) || attempt >= DUMP_RETRIES) return replies;
      }
    })();
    this.dumping = run.catch(() => undefined);
    try {
      return await run;
    } finally {
      this.dumping = undefined;
    }
  }

  private async send(type: number, flags: number, body: Buffer, operation: string, timeoutMs: number): Promise<RawReply[]> {
    if (this.closed) throw new NetlinkError(operation, 0, 'UNKNOWN', 'netlink socket closed');
    let msgs: PackageMessage[];
    try {
      [msgs] = (await this.sock.request(type, body, { flags, checkError: false, timeout: timeoutMs })) as unknown as [PackageMessage[]];
    } catch (err) {
      const e = err as { errno?: number; message?: string };
      if (typeof e.errno === 'number') throw NetlinkError.fromErrno(operation, e.errno);
      throw new NetlinkError(operation, 0, 'UNKNOWN', e.message ?? String(err));
    }
    const out: RawReply[] = [];
    for (const m of msgs) {
      if (m.type === NLMSG_ERROR) {
        const errno = m.data.length >= 4 ? m.data.readInt32LE(0) : -1;
        if (errno !== 0) throw NetlinkError.fromErrno(operation, errno);
        continue;
      }
      if (m.type === NLMSG_DONE) {
        // A dump can end in an error (e.g. a filter the kernel rejects).
        const errno = m.data.length >= 4 ? m.data.readInt32LE(0) : 0;
        if (errno < 0) throw NetlinkError.fromErrno(operation, errno);
        continue;
      }
      out.push({ type: m.type, flags: m.flags, data: m.data });
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}

/** A socket subscribed to rtnetlink multicast groups, for events. */
export function openEventSocket(groups: number[], onMessage: (type: number, data: Buffer) => void, onOverflow: () => void): { close(): void } {
  const sock = createNetlink(NETLINK_ROUTE, { ref: false, recvBufferSize: 4 << 20, sendBufferSize: 0 });
  for (const g of groups) sock.addMembership(g);
  sock.on('message', (msgs) => {
    const list = msgs as unknown as PackageMessage[];
    for (const m of list) onMessage(m.type, m.data);
  });
  sock.on('invalid', () => undefined);
  // ENOBUFS: the kernel dropped notifications because we were slow.
  sock.on('error', () => onOverflow());
  return { close: () => sock.close() };
}
