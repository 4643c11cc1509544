/* global process, console */
// Builds the meshnet_io addon at `npm install`/`npm ci`. Never fails the
// install: when the build fails, meshnet uses its pure-Node I/O backend and
// this prints one line saying so.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function nodeGyp() {
  // npm tells its scripts where its bundled node-gyp is.
  const candidates = [process.env.npm_config_node_gyp];
  const npmRoot = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  if (npmRoot.status === 0) candidates.push(join(npmRoot.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((p) => p && existsSync(p));
}

function headersDir() {
  // Distribution packages put Node's headers under /usr/include/node; point
  // node-gyp there so it never tries to download them.
  for (const d of [process.env.npm_config_nodedir, dirname(dirname(process.execPath)), '/usr', '/usr/local']) {
    if (d && existsSync(join(d, 'include', 'node', 'common.gypi'))) return d;
  }
  return undefined;
}

// `npm run build` calls this too; skip when the addon is newer than its sources.
function upToDate() {
  const out = join(here, 'build', 'Release', 'meshnet_io.node');
  if (!existsSync(out)) return false;
  const built = statSync(out).mtimeMs;
  const sources = [join(here, 'binding.gyp'), ...readdirSync(join(here, 'src')).map((f) => join(here, 'src', f))];
  return sources.every((f) => statSync(f).mtimeMs <= built);
}

if (!process.argv.includes('--force') && upToDate()) process.exit(0);

const gyp = nodeGyp();
if (!gyp) {
  console.warn('meshnet: node-gyp not found; using the pure-Node I/O backend');
  process.exit(0);
}
const args = [gyp, 'rebuild', '--directory', here];
const dir = headersDir();
if (dir) args.push(`--nodedir=${dir}`);
const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, npm_config_loglevel: 'error' } });
if (r.status !== 0) {
  const why = `${r.stderr ?? ''}${r.error ?? ''}`.trim().split('\n').filter((l) => /error/i.test(l)).slice(0, 3).join(' | ');
  console.warn(`meshnet: native I/O addon did not build (${why || `exit ${r.status}`}); using the pure-Node I/O backend`);
}
process.exit(0);
