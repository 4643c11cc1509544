// The attacker of the flood bench and e2e test: run inside an attacker's
// network namespace, it floods one meshnet daemon and prints what it sent.
//
//   ip netns exec <ns> node dist/bench/flood-agent.js --mode udp|tcp --target 198.18.x.y:6783 --seconds N
//
// - udp: datagrams of 40–1400 random bytes to the sleeve port as fast as the
//   socket takes them. Half carry a well-formed sleeve header (version, a
//   valid type, random receiver index) so they get past the shape check and
//   reach the session lookup; the rest are noise.
// - tcp: many parallel connections to the control port; each writes either
//   the mesh protocol header followed by a junk handshake frame, or plain
//   junk, and is then left open (a half-open handshake holds a slot until
//   the daemon gives up on it); the agent keeps dialling.
// Prints one JSON line: { mode, seconds, sent, bytes, errors, rate }: for tcp,
// sent counts every dial (a connection the daemon accepts and resets at once
// often reports ECONNRESET to us before 'connect', counted in errors too).
// Only addresses in the test network (198.18.0.0/15) are accepted.
import { createSocket } from 'node:dgram';
import { randomBytes, randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { encodeHeader } from '../mesh/wire/protocol.js';
import { MAX_TYPE, writeHeader } from '../datapath/sleeve/wire.js';
import { arg } from './table.js';

function parseTarget(s: string): { host: string; port: number } {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+):(\d+)$/.exec(s);
  if (!m) throw new Error(`--target must be IPv4:port, got '${s}'`);
  const [a, b] = [Number(m[1]), Number(m[2])];
  // The test network only: never flood anything outside it.
  if (a !== 198 || (b !== 18 && b !== 19)) throw new Error(`--target ${s} is outside 198.18.0.0/15`);
  return { host: `${m[1]}.${m[2]}.${m[3]}.${m[4]}`, port: Number(m[5]) };
}

/** A pool of datagrams, built once so the send loop spends nothing on them. */
function datagramPool(n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const b = randomBytes(randomInt(40, 1401));
    if (i % 2 === 0) writeHeader(b, 0, 1 + (i % MAX_TYPE), 0, 16, randomBytes(4).readUInt32LE(0));
    out.push(b);
  }
  return out;
}

async function udpFlood(host: string, port: number, seconds: number): Promise<{ sent: number; bytes: number; errors: number }> {
  const sock = createSocket('udp4');
  const pool = datagramPool(1024);
  let sent = 0;
  let bytes = 0;
  let errors = 0;
  let inFlight = 0;
  const end = Date.now() + seconds * 1000;
  await new Promise<void>((resolve) => {
    const pump = (): void => {
      if (Date.now() >= end) {
        if (inFlight === 0) resolve();
        return;
      }
      // Keep a bounded number queued in libuv: as fast as the socket drains, no unbounded memory.
      while (inFlight < 256) {
        const d = pool[(sent + inFlight) % pool.length]!;
        inFlight++;
        sock.send(d, port, host, (err) => {
          inFlight--;
          if (err) errors++;
          else {
            sent++;
            bytes += d.length;
          }
          if (inFlight === 0) setImmediate(pump);
        });
      }
    };
    pump();
  });
  sock.close();
  return { sent, bytes, errors };
}

async function tcpFlood(host: string, port: number, seconds: number, parallel: number): Promise<{ sent: number; bytes: number; errors: number }> {
  let sent = 0;
  let bytes = 0;
  let errors = 0;
  const open = new Set<Socket>();
  const end = Date.now() + seconds * 1000;
  const header = encodeHeader();
  await new Promise<void>((resolve) => {
    let active = 0;
    const dial = (): void => {
      if (Date.now() >= end) {
        if (active === 0) resolve();
        return;
      }
      active++;
      sent++;
      const s = connect({ host, port });
      open.add(s);
      let done = false;
      const next = (): void => {
        if (done) return;
        done = true;
        active--;
        open.delete(s);
        s.destroy();
        setImmediate(dial);
      };
      const plausible = sent % 2 === 0;
      s.on('connect', () => {
        // A plausible start (header, then a frame length and junk) or plain junk.
        const junk = plausible ? Buffer.concat([header, Buffer.from([0, 0, 0, 64]), randomBytes(64)]) : randomBytes(randomInt(1, 512));
        bytes += junk.length;
        s.write(junk);
        // Hold it a little (a half-open handshake), then dial again.
        setTimeout(next, 200);
      });
      s.on('error', () => {
        errors++;
        next();
      });
      s.on('close', next);
    };
    for (let i = 0; i < parallel; i++) dial();
  });
  for (const s of open) s.destroy();
  return { sent, bytes, errors };
}

async function main(): Promise<void> {
  const mode = arg('--mode', '');
  const { host, port } = parseTarget(arg('--target', ''));
  const seconds = Number(arg('--seconds', '5'));
  if (!(seconds > 0 && seconds <= 600)) throw new Error('--seconds must be in (0, 600]');
  if (mode !== 'udp' && mode !== 'tcp') throw new Error('--mode must be udp or tcp');
  const t0 = Date.now();
  const r = mode === 'udp' ? await udpFlood(host, port, seconds) : await tcpFlood(host, port, seconds, Number(arg('--parallel', '64')));
  const elapsed = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({ mode, target: `${host}:${port}`, seconds: elapsed, ...r, rate: r.sent / elapsed}));
}

main().catch((err: unknown) => {
  console.error(`flood-agent: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(2);
});
