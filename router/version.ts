// The product version, from package.json (read once).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

function findPackageJson(): string {
  // Works from the sources (router/) and from the build (dist/router/).
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const p = join(dir, 'package.json');
      const v = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (v.name === 'meshnet' && v.version) return v.version;
    } catch {
      /* keep looking upwards */
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

export const VERSION = findPackageJson();
