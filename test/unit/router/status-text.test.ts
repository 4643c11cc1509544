// docs/status-format.md is the specification of the text views: this test
// reads its example JSON and expected outputs, so the doc and the code
// cannot drift apart.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatStatus, type StatusView } from '../../../router/status-text.js';
import type { StatusJson } from '../../../router/status.js';

const doc = readFileSync(resolve(import.meta.dirname, '../../../docs/status-format.md'), 'utf8');
const example = JSON.parse(/## 2\. The example used below[\s\S]*?```json\n([\s\S]*?)```/.exec(doc)![1]!) as StatusJson;
const now = new Date('2026-01-05T10:00:14Z');
const views = [...doc.matchAll(/### 3\.\d `meshnet status ?([a-z]*)`[^\n]*\n\n```\n([\s\S]*?)```/g)].map((m) => ({ view: (m[1] || 'summary') as StatusView, text: m[2]! }));

describe('status text views (docs/status-format.md)', () => {
  it('the doc holds the five views', () => {
    expect(views.map((v) => v.view).sort()).toEqual(['connections', 'ipam', 'peers', 'summary', 'targets']);
  });

  it.each(views)('$view', ({ view, text }) => {
    expect(formatStatus(view, example, now)).toBe(text);
  });

  it('marks an unreachable IPAM owner the way Weave users search for', () => {
    const s = structuredClone(example);
    s.peers[2]!.reachable = false;
    expect(formatStatus('ipam', s, now)).toContain('8a:3f:00:12:ab:03(node-c) 262144 IPs (25.0% of total) - unreachable!');
    expect(formatStatus('peers', s, now)).toContain('8a:3f:00:12:ab:03(node-c) - unreachable\n');
  });

  it('says what IPAM waits for, and lists problems', () => {
    const s = structuredClone(example);
    s.ipam.ready = false;
    s.ipam.status = 'awaiting consensus (quorum: 2, known: 1)';
    s.ipam.ranges = [];
    s.ipam.owned = 0;
    s.ipam.problems = ['refused ring from 8a:3f:00:12:ab:09: claimed separately'];
    expect(formatStatus('ipam', s, now)).toBe('Status: awaiting consensus (quorum: 2, known: 1)\n! refused ring from 8a:3f:00:12:ab:09: claimed separately\n');
    expect(formatStatus('summary', s, now)).toContain('     Owned here: none (asks peers for space)\n');
  });
});
