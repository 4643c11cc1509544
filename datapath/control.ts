// Overlay control messages, exchanged over the mesh connection
// (OverlayConnectionParams.sendControl / OverlayConnection.onControl):
// reliable, ordered, sealed when the mesh is encrypted. Pure codecs.
//
//   0x01 fastdp heartbeat ack   (fastdp/heartbeat.ts: type, connUid u64, length u16)
//   0x10 sleeve hello           type | rx index (u32) | UDP port (u16)
//   0x11 datapath               type | fastdp (u8): "my frames and broadcasts to you take the vxlan"
//
// A malformed message is reported as undefined (the caller counts it); it
// never throws.

import { decodeHeartbeatAck } from './fastdp/heartbeat.js';

export const CONTROL_HEARTBEAT_ACK = 0x01;
export const CONTROL_SLEEVE_HELLO = 0x10;
export const CONTROL_DATAPATH = 0x11;

export type ControlMessage =
  | { type: 'heartbeat-ack'; connUid: string; length: number }
  | { type: 'sleeve-hello'; index: number; port: number }
  | { type: 'datapath'; fastdp: boolean };

export function encodeSleeveHello(index: number, port: number): Uint8Array {
  if (!Number.isInteger(index) || index <= 0 || index > 0xffffffff) throw new RangeError(`index: must be a u32 > 0, got ${index}`);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new RangeError(`port: must be 1-65535, got ${port}`);
  const b = Buffer.alloc(7);
  b[0] = CONTROL_SLEEVE_HELLO;
  b.writeUInt32BE(index, 1);
  b.writeUInt16BE(port, 5);
  return b;
}

export function encodeDatapath(fastdp: boolean): Uint8Array {
  return Uint8Array.of(CONTROL_DATAPATH, fastdp ? 1 : 0);
}

export function decodeControl(msg: Uint8Array): ControlMessage | undefined {
  if (msg.byteLength === 0) return undefined;
  const b = Buffer.from(msg.buffer, msg.byteOffset, msg.byteLength);
  switch (b[0]) {
    case CONTROL_HEARTBEAT_ACK: {
      const ack = decodeHeartbeatAck(msg);
      return ack ? { type: 'heartbeat-ack', ...ack } : undefined;
    }
    case CONTROL_SLEEVE_HELLO: {
      if (b.length !== 7) return undefined;
      const index = b.readUInt32BE(1);
      const port = b.readUInt16BE(5);
      return index > 0 && port > 0 ? { type: 'sleeve-hello', index, port } : undefined;
    }
    case CONTROL_DATAPATH:
      if (b.length !== 2 || b[1]! > 1) return undefined;
      return { type: 'datapath', fastdp: b[1] === 1 };
    default:
      return undefined;
  }
}
