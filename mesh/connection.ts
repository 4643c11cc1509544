// An established mesh connection: sealed (or plain) frames in both
// directions, heartbeats, a read deadline, and bounded buffering. A frame
// that fails to open or decode ends this connection with a reason; it never
// reaches the rest of the daemon.

import type { FrameOpener, FrameSealer, SessionKeys } from '../crypto/index.js';
import type { HandshakeResult } from './handshake.js';
import type { PeerId } from './peer-name.js';
import type { ByteStream } from './transport.js';
import { encodeFrame, FrameTooLarge, type FrameDecoder } from './wire/framing.js';
import type { Identity } from './wire/identity.js';
import { decodeMessage, encodeMessage, ProtocolError, Tag, type Message } from './wire/protocol.js';

export interface ConnectionTiming {
  heartbeatMs: number;
  /** Close when nothing arrived for this long. */
  deadlineMs: number;
  /** Drop droppable messages (gossip) when this many bytes are queued. */
  maxBacklogBytes: number;
}

export interface ConnectionOwner {
  onMessage(conn: Connection, msg: Message): void;
  onClosed(conn: Connection, reason: string): void;
}

export class Connection {
  readonly peer: PeerId;
  readonly remote: Identity;
  readonly connUid: string;
  readonly encrypted: boolean;
  readonly keys: SessionKeys | undefined;
  readonly secretIndex: number;
  /** Id of the password this connection's keys came from (the secrets may change later: rotation). */
  readonly secretId: Uint8Array | undefined;
  /** "ip:port" of the other end of the TCP connection. */
  readonly remoteAddress: string;
  bytesIn = 0;
  bytesOut = 0;
  droppedForBacklog = 0;
  readonly since = Date.now();
  private readonly sealer: FrameSealer | undefined;
  private readonly opener: FrameOpener | undefined;
  private decoder: FrameDecoder;
  private lastReceived = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Why the connection closed, once it has. */
  closeReason: string | undefined;

  constructor(
    private readonly stream: ByteStream,
    hs: HandshakeResult,
    readonly outbound: boolean,
    /** Where the peer can be dialled: the dialled address, or its IP and announced port. */
    readonly dialAddress: string,
    private readonly timing: ConnectionTiming,
    private readonly owner: ConnectionOwner,
  ) {
    this.remote = hs.remote;
    this.peer = hs.remote.name;
    this.connUid = hs.connUid;
    this.encrypted = hs.encrypted;
    this.keys = hs.keys;
    this.secretIndex = hs.secretIndex;
    this.secretId = hs.secretId;
    this.sealer = hs.sealer;
    this.opener = hs.opener;
    this.remoteAddress = `${stream.remoteIp}:${stream.remotePort}`;
    const left = hs.reader.handOver({
      onChunk: (c) => this.onChunk(c),
      onClose: (err) => this.finish(err ? `connection lost: ${err.message}` : 'connection closed by peer'),
    });
    this.decoder = left.decoder;
    this.decoder.limit = 16 * 1024 * 1024;
    // Frames the handshake read past its end are processed once the owner has registered us.
    queueMicrotask(() => {
      for (const f of left.frames) if (!this.closed) this.onFrame(f);
      for (const c of left.raw) if (!this.closed) this.onChunk(c);
      if (left.closed) this.finish('connection closed by peer');
    });
    this.timer = setInterval(() => this.tick(), timing.heartbeatMs);
    this.timer.unref?.();
  }

  get localIp(): string {
    return this.stream.localIp;
  }

  get remoteIp(): string {
    return this.stream.remoteIp;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Queue a message. Droppable ones are dropped when the peer is not keeping up. */
  send(msg: Message, droppable = false): boolean {
    if (this.closed) return false;
    if (droppable && this.stream.writableLength > this.timing.maxBacklogBytes) {
      this.droppedForBacklog++;
      return false;
    }
    const plain = encodeMessage(msg);
    const frame = encodeFrame(this.sealer ? this.sealer.seal(plain) : plain);
    this.bytesOut += frame.length;
    this.stream.write(frame);
    return true;
  }

  /** Tell the peer why and close. */
  close(reason: string, kindForPeer = 'refused'): void {
    if (this.closed) return;
    this.send({ tag: Tag.CLOSE, reason: `${kindForPeer}\n${reason}` });
    this.finish(reason);
    this.stream.destroy();
  }

  private onChunk(chunk: Buffer): void {
    if (this.closed) return;
    this.bytesIn += chunk.length;
    this.lastReceived = Date.now();
    let frames: Buffer[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      const why = err instanceof FrameTooLarge ? err.message : 'malformed frame';
      return this.abort(`protocol error: ${why}`);
    }
    for (const f of frames) {
      if (this.closed) return;
      this.onFrame(f);
    }
  }

  private onFrame(frame: Buffer): void {
    let plain: Buffer = frame;
    if (this.opener) {
      const opened = this.opener.open(frame);
      if (!opened) return this.abort('authentication failed: a sealed frame did not open');
      plain = Buffer.from(opened.buffer, opened.byteOffset, opened.byteLength);
    }
    let msg: Message;
    try {
      msg = decodeMessage(plain);
    } catch (err) {
      return this.abort(`protocol error: ${err instanceof ProtocolError ? err.message : 'undecodable message'}`);
    }
    if (msg.tag === Tag.HEARTBEAT) return;
    if (msg.tag === Tag.CLOSE) {
      const nl = msg.reason.indexOf('\n');
      return this.abort(`closed by peer: ${nl >= 0 ? msg.reason.slice(nl + 1) : msg.reason}`);
    }
    this.owner.onMessage(this, msg);
  }

  private tick(): void {
    if (this.closed) return;
    if (Date.now() - this.lastReceived > this.timing.deadlineMs) {
      return this.abort(`no message from peer for ${Math.round(this.timing.deadlineMs / 1000)} s`);
    }
    this.send({ tag: Tag.HEARTBEAT });
  }

  private abort(reason: string): void {
    this.finish(reason);
    this.stream.destroy();
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    clearInterval(this.timer);
    this.owner.onClosed(this, reason);
  }
}
