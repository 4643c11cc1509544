// The addon for the native unit tests: they fail (not skip) when it is not
// built, since CI builds it at `npm ci`.
import { loadNativeIo, nativeLoadError, type NativeIo } from '../../../datapath/native/index.js';

export function addon(): NativeIo {
  const io = loadNativeIo();
  if (!io) throw new Error(`meshnet_io addon not available (run \`npm run build:native\`): ${nativeLoadError()}`);
  return io;
}

export interface Segmented {
  result: number;
  frames: Buffer[];
}

/** Runs the addon's TAP read path on one (vnet header + frame) input. */
export function segment(input: Buffer, headroom = 0, outBytes = 256 * 1024, slots = 256): Segmented {
  const out = Buffer.alloc(outBytes);
  const offs = new Uint32Array(slots);
  const lens = new Uint32Array(slots);
  const result = addon().segmentFrame(input, out, offs, lens, headroom);
  const frames: Buffer[] = [];
  for (let i = 0; i < result; i++) frames.push(Buffer.from(out.subarray(offs[i]!, offs[i]! + lens[i]!)));
  return { result, frames };
}

export function reasonCode(name: string): number {
  const i = addon().dropReasons().indexOf(name);
  if (i < 0) throw new Error(`no drop reason ${name}`);
  return -i;
}

/** What tapWrite would write for these frames (vnet header + frame each). */
export function coalesce(frames: Buffer[]): Buffer[] {
  const buf = Buffer.concat(frames);
  const offs = new Uint32Array(frames.length);
  const lens = new Uint32Array(frames.length);
  let o = 0;
  frames.forEach((f, i) => {
    offs[i] = o;
    lens[i] = f.length;
    o += f.length;
  });
  return addon().coalesceFrames(buf, offs, lens, frames.length);
}
