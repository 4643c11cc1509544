// Errors the IPAM API returns. `code` lets the control API map them to
// status codes and CNI error codes without parsing messages.

export type IpamErrorCode =
  | 'invalid' // bad input: malformed container ID, address outside the range...
  | 'not-ready' // the ring is not agreed yet (bounded wait expired)
  | 'no-space' // no free address here and no reachable peer could donate in time
  | 'conflict' // the address is allocated elsewhere / this peer was removed...
  | 'unreachable' // the owner of an address, or a peer that must agree, is unreachable
  | 'timeout'
  | 'stopped'
  | 'store'; // the state file is unreadable or cannot be written

export class IpamError extends Error {
  constructor(
    readonly code: IpamErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'IpamError';
  }
}
