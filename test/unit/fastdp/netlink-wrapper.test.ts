// The Netlink class over a recording transport: which requests, with which
// flags, and how kernel errors come back.
import { describe, expect, it } from 'vitest';
import { Netlink } from '../../../datapath/netlink/netlink.js';
import { NetlinkError } from '../../../datapath/netlink/errors.js';
import { NLM_F, RTM } from '../../../datapath/netlink/constants.js';
import { decodeNd } from '../../../datapath/netlink/messages.js';
import type { RawReply, RtnlTransport } from '../../../datapath/netlink/socket.js';

class Recorder implements RtnlTransport {
  sent: { type: number; flags: number; body: Buffer; operation: string }[] = [];
  reply: (type: number) => RawReply[] | NetlinkError = () => [];
  async request(type: number, flags: number, body: Buffer, operation: string): Promise<RawReply[]> {
    this.sent.push({ type, flags, body, operation });
    const r = this.reply(type);
    if (r instanceof NetlinkError) throw r;
    return r;
  }
  async dump(type: number, body: Buffer, operation: string): Promise<RawReply[]> {
    return this.request(type, NLM_F.DUMP, body, operation);
  }
  close(): void {}
}

describe('Netlink requests', () => {
  it('FDB writes carry the mode as NLM flags and address devices by index without a lookup', async () => {
    const t = new Recorder();
    const nl = Netlink.withTransport(t);
    await nl.addFdb({ dev: 6, mac: '00:00:00:00:00:00', target: 'self', dst: '198.18.0.12' }, 'append');
    await nl.addFdb({ dev: 6, mac: '02:00:00:00:00:05', target: 'master', sticky: true }, 'replace');
    await nl.deleteFdb({ dev: 6, mac: '02:00:00:00:00:05', target: 'self', dst: '198.18.0.12' });
    expect(t.sent.map((s) => [s.type, s.flags])).toEqual([
      [RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.APPEND],
      [RTM.NEWNEIGH, NLM_F.CREATE | NLM_F.REPLACE],
      [RTM.DELNEIGH, 0],
    ]);
    expect(decodeNd(t.sent[2]!.body)).toEqual({ kind: 'fdb', value: expect.objectContaining({ ifindex: 6, mac: '02:00:00:00:00:05', dst: '198.18.0.12', self: true }) });
    expect(t.sent[0]!.operation).toBe('append fdb 00:00:00:00:00:00 dst 198.18.0.12 on 6 self');
  });

  it('a missing link is undefined for getLink and an ENOENT naming it otherwise', async () => {
    const t = new Recorder();
    t.reply = () => NetlinkError.fromErrno('get link x', -19);
    const nl = Netlink.withTransport(t);
    expect(await nl.getLink('x')).toBeUndefined();
    await expect(nl.setNeighbour({ dev: 'x', ip: '198.19.0.5', mac: '02:00:00:00:00:05' })).rejects.toMatchObject({ code: 'ENOENT', message: 'get link x: ENOENT (no such file or directory): no such link' });
  });

  it('passes kernel errors through with their errno', async () => {
    const t = new Recorder();
    t.reply = (type) => (type === RTM.NEWNEIGH ? NetlinkError.fromErrno('replace neighbour', -16) : []);
    const nl = Netlink.withTransport(t);
    await expect(nl.setNeighbour({ dev: 5, ip: '198.19.0.5', mac: '02:00:00:00:00:05' })).rejects.toMatchObject({ code: 'EBUSY', errno: 16 });
  });

  it('validates input before sending anything', async () => {
    const t = new Recorder();
    const nl = Netlink.withTransport(t);
    await expect(nl.setNeighbour({ dev: 5, ip: '198.19.0', mac: '02:00:00:00:00:05' })).rejects.toThrow(/invalid IP/);
    await expect(nl.addFdb({ dev: 5, mac: 'zz', target: 'self' })).rejects.toThrow(/invalid MAC/);
    await expect(nl.addAddress(5, '198.19.0.5')).rejects.toThrow(/no prefix length/);
    expect(t.sent).toEqual([]);
  });
});
