// Enforces the dependency direction of docs/architecture.md: an arrow means
// "may import". Violations are listed file by file.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const MODULES = ['cli', 'router', 'mesh', 'crypto', 'datapath', 'cni'] as const;
type Module = (typeof MODULES)[number];

/** What each module may import, besides itself and npm/node packages. */
const ALLOWED: Record<Module, readonly Module[]> = {
  crypto: [],
  mesh: ['crypto'],
  datapath: ['mesh', 'crypto'],
  router: ['mesh', 'datapath', 'crypto'],
  cli: ['router'],
  cni: ['router', 'datapath'],
};
/** Imports allowed only as `import type` (no runtime coupling). */
const TYPES_ONLY: Partial<Record<Module, Module[]>> = { datapath: ['mesh'] };

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

function importsOf(file: string): { spec: string; typeOnly: boolean }[] {
  const text = readFileSync(file, 'utf8');
  const re = /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  const out: { spec: string; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(re)) out.push({ spec: (m[3] ?? m[4])!, typeOnly: Boolean(m[2]) });
  return out;
}

function moduleOf(path: string): string {
  return relative(root, path).split('/')[0]!;
}

describe('architecture', () => {
  it('keeps the dependency direction', () => {
    const violations: string[] = [];
    for (const mod of MODULES) {
      for (const file of sourceFiles(join(root, mod))) {
        for (const { spec, typeOnly } of importsOf(file)) {
          if (!spec.startsWith('.')) continue;
          const target = moduleOf(resolve(dirname(file), spec));
          if (target === mod) continue;
          const ok = (ALLOWED[mod] as readonly string[]).includes(target);
          const typeRule = TYPES_ONLY[mod]?.includes(target as Module);
          if (!ok) violations.push(`${relative(root, file)} imports ${target} (${spec})`);
          else if (typeRule && !typeOnly) violations.push(`${relative(root, file)} may only import types from ${target} (${spec})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it('can see a violation', () => {
    // Guard against a regex that silently matches nothing.
    const specs = importsOf(join(root, 'datapath/types.ts')).map((i) => i.spec);
    expect(specs).toContain('../mesh/types.js');
  });
});
