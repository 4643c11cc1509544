// Crypto micro-benchmark: per backend, datagram seal/open rates (the sleeve's
// hot path, sealInto/openInto into reused buffers), stream frame rates, key
// agreement rate and argon2id stretch time. Prints a Markdown table.
//
//   npx tsc -p tsconfig.json && node dist/bench/crypto.js [--seconds 0.5] [--rounds 3]
//
// Each rate is the best of N rounds: the machine is shared, and the best round
// is the one least disturbed by other load.

import { loadavg } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import {
  DATAGRAM_OVERHEAD,
  DatagramOpener,
  DatagramSealer,
  FrameOpener,
  FrameSealer,
  cryptoBackendName,
  deriveSessionKeys,
  generateKeyPair,
  initCrypto,
  stretchPassword,
  type BackendPreference,
} from '../crypto/index.js';

const SIZES = [64, 1400, 9000];
const BATCH = 2048; // distinct datagrams per opener pass (each counter opens once)

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: expected a positive number`);
  return v;
}
const SECONDS = arg('seconds', 0.5);
const ROUNDS = arg('rounds', 3);

/** Ops per second: runs `step` (which does `opsPerStep` ops) for SECONDS, best of ROUNDS. */
function rate(step: () => void, opsPerStep: number): number {
  for (let i = 0; i < 3; i++) step(); // warm up the JIT
  let best = 0;
  for (let r = 0; r < ROUNDS; r++) {
    let ops = 0;
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(SECONDS * 1e9));
    let now = start;
    while (now < deadline) {
      step();
      ops += opsPerStep;
      now = process.hrtime.bigint();
    }
    best = Math.max(best, ops / (Number(now - start) / 1e9));
  }
  return best;
}

function fill(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7) & 0xff;
  return b;
}

interface Row {
  backend: string;
  what: string;
  size: string;
  perSec: number;
  unit: string;
}

async function benchBackend(pref: BackendPreference): Promise<Row[]> {
  await initCrypto(pref);
  const name = cryptoBackendName();
  const rows: Row[] = [];
  const key = fill(32);

  for (const size of SIZES) {
    const plain = fill(size);
    const out = new Uint8Array(size + DATAGRAM_OVERHEAD);
    let sealer = new DatagramSealer(key);
    const seals = rate(() => {
      for (let i = 0; i < 64; i++) sealer.sealInto(out, 0, plain, 0, size);
    }, 64);
    rows.push({ backend: name, what: 'datagram sealInto', size: `${size} B`, perSec: seals, unit: 'ops/s' });

    sealer = new DatagramSealer(key);
    const sealed = Array.from({ length: BATCH }, () => sealer.seal(plain));
    const dst = new Uint8Array(size);
    const opens = rate(() => {
      const opener = new DatagramOpener(key);
      for (const d of sealed) {
        if (opener.openInto(dst, 0, d, 0, d.length) !== size) throw new Error('bench: open failed');
      }
    }, BATCH);
    rows.push({ backend: name, what: 'datagram openInto', size: `${size} B`, perSec: opens, unit: 'ops/s' });

    let fs = new FrameSealer(key);
    const fseals = rate(() => {
      for (let i = 0; i < 64; i++) fs.seal(plain);
    }, 64);
    rows.push({ backend: name, what: 'stream seal', size: `${size} B`, perSec: fseals, unit: 'ops/s' });

    fs = new FrameSealer(key);
    const frames = Array.from({ length: BATCH }, () => fs.seal(plain));
    const fopens = rate(() => {
      const fo = new FrameOpener(key);
      for (const f of frames) if (!fo.open(f)) throw new Error('bench: frame open failed');
    }, BATCH);
    rows.push({ backend: name, what: 'stream open', size: `${size} B`, perSec: fopens, unit: 'ops/s' });
  }

  const secret = fill(32);
  const transcript = fill(200);
  const remote = generateKeyPair();
  const handshakes = rate(() => {
    const local = generateKeyPair();
    deriveSessionKeys({ local, remotePublic: remote.publicKey, secret, initiator: true, transcript });
  }, 1);
  rows.push({ backend: name, what: 'key pair + deriveSessionKeys', size: '-', perSec: handshakes, unit: 'ops/s' });

  rows.push({ backend: name, what: 'GCs during 200k datagram sealInto+openInto, 1400 B', size: '-', perSec: await gcsDuringDatagrams(), unit: 'count' });

  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    await stretchPassword(fill(24));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  rows.push({ backend: name, what: 'stretchPassword (argon2id t=3, 64 MiB)', size: '-', perSec: times[0]!, unit: 'ms (best)' });
  return rows;
}

/** Garbage collections while sealing and opening datagrams: 0 means the hot path allocates nothing. */
async function gcsDuringDatagrams(): Promise<number> {
  const key = fill(32);
  const plain = fill(1400);
  const wire = new Uint8Array(1400 + DATAGRAM_OVERHEAD);
  const dst = new Uint8Array(1400);
  const sealer = new DatagramSealer(key);
  const opener = new DatagramOpener(key);
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
  let gcs = 0;
  const obs = new PerformanceObserver((list) => {
    gcs += list.getEntries().length;
  });
  await settle();
  obs.observe({ entryTypes: ['gc'] });
  for (let i = 0; i < 200_000; i++) {
    sealer.sealInto(wire, 0, plain, 0, plain.length);
    if (opener.openInto(dst, 0, wire, 0, wire.length) !== 1400) throw new Error('bench: open failed');
  }
  await settle(); // gc entries are delivered asynchronously
  obs.disconnect();
  return gcs;
}

function format(n: number, unit: string): string {
  if (unit === 'count') return String(n);
  if (unit.startsWith('ms')) return `${n.toFixed(0)} ms`;
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : `${(n / 1e3).toFixed(1)} k/s`;
}

async function main(): Promise<void> {
  const all: Row[] = [];
  for (const pref of ['native', 'portable'] as const) {
    try {
      all.push(...(await benchBackend(pref)));
    } catch (err) {
      console.error(`${pref}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const load = loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`node ${process.version}, ${SECONDS} s x ${ROUNDS} rounds per cell (best round), load average ${load}\n`);
  console.log('| backend | operation | size | rate | MB/s |');
  console.log('|---|---|---|---|---|');
  for (const r of all) {
    const bytes = Number.parseInt(r.size, 10);
    const mbps = Number.isFinite(bytes) && r.unit === 'ops/s' ? ((r.perSec * bytes) / 1e6).toFixed(0) : '-';
    console.log(`| ${r.backend} | ${r.what} | ${r.size} | ${format(r.perSec, r.unit)} | ${mbps} |`);
  }
}

await main();
