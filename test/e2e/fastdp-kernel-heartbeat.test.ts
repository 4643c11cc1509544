// The fastdp heartbeat path in the kernel: a frame written into one host's
// heartbeat TAP, addressed to the other host's heartbeat MAC, crosses the vxlan (df
// set) and comes out of the other host's TAP — and does not when UDP 6784 is
// blocked or when the underlay cannot carry a full-size frame.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor } from '../harness/netns.js';
import { startAgent, startTap, type Agent, type TapIo } from './fastdp-kernel-runner.js';
import {
  decodeHeartbeat,
  decodeHeartbeatAck,
  encodeHeartbeat,
  encodeHeartbeatAck,
  heartbeatFrameLength,
  heartbeatMac,
  HeartbeatTracker,
  type ModelInput,
  type ReconcileReport,
} from '../../datapath/fastdp/index.js';

const VNI = 4243;
const MTU = 1450;
const FULL = heartbeatFrameLength(MTU);

describe('fastdp heartbeat through the kernel (2 hosts)', () => {
  let net: TestNet;
  const agents: Agent[] = [];
  const taps: TapIo[] = [];
  const name = (i: number): string => `aa:00:00:00:00:0${i}`;
  const hb = (i: number): string => heartbeatMac(name(i));

  const input = (i: number): ModelInput => {
    const j = 3 - i;
    return {
      vni: VNI,
      heartbeatMac: hb(i),
      localPods: [],
      // The peer's pods use the sleeve: heartbeats must still take the vxlan.
      peers: [{ name: name(j), vtep: net.host(j).address, vni: VNI, datapath: 'sleeve', heartbeatMac: hb(j), pods: [], updatedAt: 1 }],
    };
  };

  /** Send one heartbeat h1 -> h2 of `length` bytes; the frame h2's daemon reads, if any, within `waitMs`. */
  async function beat(length: number, uid = '77', waitMs = 1000): Promise<Buffer | undefined> {
    taps[1]!.drain();
    taps[0]!.write(encodeHeartbeat({ dst: hb(2), src: hb(1), connUid: uid, length }));
    const line = await taps[1]!.next(waitMs);
    return line ? Buffer.from(line, 'hex') : undefined;
  }

  async function countOnUnderlay(filter: string, during: () => Promise<void>): Promise<number> {
    const td = spawn('ip', ['netns', 'exec', net.switchNs, 'tcpdump', '-i', 'br0', '-n', '-l', '-q', filter], { stdio: ['ignore', 'pipe', 'pipe'] });
    net.track(td);
    let lines = 0;
    let err = '';
    td.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').filter(Boolean).length));
    td.stderr.on('data', (d: Buffer) => (err += d.toString()));
    await waitFor(() => err.includes('listening on'), 5000, 'tcpdump to start');
    await during();
    await new Promise((r) => setTimeout(r, 300));
    td.kill('SIGINT');
    await new Promise((r) => td.once('exit', r));
    return lines;
  }

  beforeAll(async () => {
    net = await TestNet.create(2);
    for (const h of net.hosts) agents.push(await startAgent(net, h.ns));
    for (const i of [1, 2]) {
      await agents[i - 1]!.call('fastdp', 'ensure', { localIp: net.host(i).address, vni: VNI });
      taps.push(await startTap(net, net.host(i).ns, 'meshnet-hb'));
      expect(await agents[i - 1]!.call('fastdp', 'attachHeartbeat')).toBe(true);
      const r = await agents[i - 1]!.call<ReconcileReport>('fastdp', 'reconcile', input(i));
      expect(r.failed).toEqual([]);
      expect(r.unplaced).toBe(0);
    }
  }, 120_000);

  afterAll(async () => {
    for (const t of taps) t.close();
    for (const a of agents) a.close();
    await net?.destroy();
  });

  it('pins: own heartbeat MAC to the TAP, the peer’s to the vxlan', async () => {
    const fdb = await net.host(1).run('bridge', ['fdb', 'show', 'br', 'meshnet']);
    expect(fdb).toContain(`${hb(1)} dev meshnet-hb sticky master meshnet static`);
    expect(fdb).toContain(`${hb(2)} dev meshnet-vxlan sticky master meshnet static`);
    expect(await net.host(1).run('bridge', ['fdb', 'show', 'dev', 'meshnet-vxlan'])).toContain(`${hb(2)} dst ${net.host(2).address} self permanent`);
  });

  it('a full-size heartbeat crosses the vxlan with DF set and is acknowledged', async () => {
    let got: Buffer | undefined;
    // 1514 bytes on the wire: 1500-byte outer IP packets with DF.
    const onWire = await countOnUnderlay('udp port 6784 and (ip[6] & 0x40) != 0 and greater 1514', async () => {
      got = await beat(FULL);
    });
    expect(onWire).toBeGreaterThanOrEqual(1);
    const h = decodeHeartbeat(got!);
    expect(h).toEqual({ dst: hb(2), src: hb(1), connUid: '77', length: FULL });
    // h2 acks over the mesh; h1's tracker counts fastdp as working only now.
    const tracker = new HeartbeatTracker('77', FULL);
    tracker.sent(0);
    expect(tracker.working(1)).toBe(false);
    expect(tracker.acked(1, decodeHeartbeatAck(encodeHeartbeatAck(h!.connUid, h!.length))!)).toBe(true);
    expect(tracker.working(2)).toBe(true);
  });

  it('blocking UDP 6784 stops the heartbeat', async () => {
    const nft = (args: string): Promise<string> => net.host(2).run('nft', args.split(' '));
    await nft('add table inet mnhb');
    await nft('add chain inet mnhb in { type filter hook input priority 0 ; }');
    await nft('add rule inet mnhb in udp dport 6784 counter drop');
    expect(await beat(FULL)).toBeUndefined();
    expect(await beat(200)).toBeUndefined();
    expect(await net.host(2).run('nft', ['list', 'chain', 'inet', 'mnhb', 'in'])).toMatch(/counter packets [1-9]/);
    await nft('delete table inet mnhb');
    expect(decodeHeartbeat((await beat(FULL))!)?.length).toBe(FULL);
  });

  it('an underlay that cannot carry a full-size frame fails full heartbeats while small ones pass', async () => {
    // The path shrinks in the middle (the switch's port to h2): dropped silently.
    await net.ip(net.switchNs, ['link', 'set', 'h2', 'mtu', '1400']);
    expect(await beat(FULL)).toBeUndefined();
    expect(decodeHeartbeat((await beat(1000))!)?.length).toBe(1000);
    await net.ip(net.switchNs, ['link', 'set', 'h2', 'mtu', '1500']);
    expect(decodeHeartbeat((await beat(FULL))!)?.length).toBe(FULL);

    // The sender's own link shrinks: with df set the vxlan must not fragment.
    await net.ip(net.host(1).ns, ['link', 'set', 'eth0', 'mtu', '1400']);
    const fragments = await countOnUnderlay('udp port 6784 or (ip[6:2] & 0x1fff) != 0', async () => {
      expect(await beat(FULL)).toBeUndefined();
    });
    expect(fragments).toBe(0);
    expect(decodeHeartbeat((await beat(1000))!)?.length).toBe(1000);
    // Control: without df the same frame gets through, fragmented — the
    // silent degradation `df set` exists to expose.
    await net.host(1).run('ip', ['link', 'set', 'meshnet-vxlan', 'type', 'vxlan', 'df', 'unset']);
    let got: Buffer | undefined;
    const frags = await countOnUnderlay('udp port 6784 or (ip[6:2] & 0x1fff) != 0', async () => {
      got = await beat(FULL);
    });
    expect(got?.length).toBe(FULL);
    expect(frags).toBeGreaterThanOrEqual(2);
    // ensure puts df back (the vxlan is recreated), reconcile restores its entries.
    const r = await agents[0]!.call<{ changes: string[] }>('fastdp', 'ensure', { localIp: net.host(1).address, vni: VNI, mtu: MTU });
    expect(r.changes[0]).toBe('delete meshnet-vxlan (df unset, want set)');
    expect((await agents[0]!.call<ReconcileReport>('fastdp', 'reconcile', input(1))).failed).toEqual([]);
    expect(await beat(FULL)).toBeUndefined();
    await net.ip(net.host(1).ns, ['link', 'set', 'eth0', 'mtu', '1500']);
    await waitFor(async () => (await beat(FULL, '78', 500)) !== undefined, 5000, 'full heartbeats after restoring the MTU');
  });
});
