// The live topology page in a real browser: Debian's chromium, driven by
// playwright-core, runs inside h1's network namespace (the page is on
// 127.0.0.1 there) through a wrapper that execs it under `ip netns exec`;
// playwright talks to it over its debugging pipe, so nothing listens in the
// root namespace. Three real daemons without a password (so fastdp is
// allowed; the encrypted colour is covered by the model's unit test). A link
// changes colour when its datapath changes (UDP 6784 blocked: fastdp -> sleeve, and back), turns red
// when nftables cuts its TCP and back when the cut is lifted, all without
// the page being reloaded.
import { mkdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestNet, waitFor, type TestHost } from '../harness/netns.js';
import { establishedPeers, launch, status } from '../harness/meshnet.js';
import { nftDrop } from '../harness/pods.js';

const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface DrawnLink {
  a: string;
  b: string;
  kind: string;
  stroke: string;
}

async function drawn(page: Page): Promise<{ peers: string[]; links: DrawnLink[]; generation: number }> {
  return page.evaluate(() => {
    const nick = new Map<string, string>();
    for (const g of document.querySelectorAll('#graph g.peer')) nick.set(g.getAttribute('data-peer')!, g.getAttribute('data-nickname')!);
    const links = [...document.querySelectorAll('#graph line.link')].map((l) => {
      const [a, b] = [nick.get(l.getAttribute('data-a')!)!, nick.get(l.getAttribute('data-b')!)!].sort();
      return { a: a!, b: b!, kind: l.getAttribute('data-kind')!, stroke: l.getAttribute('stroke')! };
    });
    return { peers: [...nick.values()].sort(), links: links.sort((x, y) => `${x.a}${x.b}`.localeCompare(`${y.a}${y.b}`)), generation: Number(document.body.getAttribute('data-generation') ?? 0) };
  });
}

function link(d: { links: DrawnLink[] }, a: string, b: string): DrawnLink | undefined {
  return d.links.find((l) => l.a === a && l.b === b);
}

async function cut(h: TestHost, other: TestHost): Promise<void> {
  await h.run('nft', ['add table inet mnpage; add chain inet mnpage in { type filter hook input priority 0; }; add chain inet mnpage out { type filter hook output priority 0; }']);
  await h.run('nft', [`add rule inet mnpage in ip saddr ${other.address} tcp dport 6783 drop; add rule inet mnpage in ip saddr ${other.address} tcp sport 6783 drop`]);
  await h.run('nft', [`add rule inet mnpage out ip daddr ${other.address} tcp dport 6783 drop; add rule inet mnpage out ip daddr ${other.address} tcp sport 6783 drop`]);
}

describe('topology page in a real browser', () => {
  let net: TestNet;
  let browser: BrowserContext;
  let page: Page;
  let navigations = 0;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    net = await TestNet.create(3);
    const [h1, h2, h3] = net.hosts;
    await launch(h1!);
    await Promise.all([h2!, h3!].map((h) => launch(h, { peers: [h1!.address] })));
    for (const h of net.hosts) await waitFor(async () => (await establishedPeers(h)).length === 2, 30_000, `${h.id} meshed`);

    // The browser runs in h1's namespace; its profile is fresh and thrown away with the run.
    const wrapper = join(net.dir, 'chromium-in-h1');
    writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${h1!.ns} /usr/bin/chromium "$@"\n`);
    chmodSync(wrapper, 0o755);
    const profile = join(net.dir, 'chromium-profile');
    mkdirSync(profile);
    browser = await chromium.launchPersistentContext(profile, { executablePath: wrapper, args: FLAGS, timeout: 60_000, viewport: { width: 1100, height: 700 } });
    page = browser.pages()[0] ?? (await browser.newPage());
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations++;
    });
  });

  afterAll(async () => {
    await browser?.close().catch(() => undefined);
    await net?.destroy();
  });

  it('shows the three peers, their links, IPAM shares', async () => {
    const res = await page.goto('http://127.0.0.1:6782/');
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    await page.waitForFunction(() => document.querySelectorAll('#graph g.peer').length === 3 && document.querySelectorAll('#graph line.link[data-kind="fastdp"]').length === 3, undefined, { timeout: 20_000 });
    const d = await drawn(page);
    expect(d.peers).toEqual(['h1', 'h2', 'h3']);
    // h1's own connections are on fastdp; h2-h3's datapath is what h2 and h3 announce.
    expect(link(d, 'h1', 'h2')).toMatchObject({ kind: 'fastdp', stroke: '#2e9e44' });
    expect(link(d, 'h1', 'h3')).toMatchObject({ kind: 'fastdp', stroke: '#2e9e44' });
    expect(link(d, 'h2', 'h3')).toMatchObject({ kind: 'fastdp', stroke: '#2e9e44' });
    const rows = await page.$$eval('#peers tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows).toHaveLength(3);
    // Each row names the peer and its IPAM share (the ring is split once IPAM is ready).
    const s = await status(net.host(1));
    for (const p of s.peers) expect(rows.some((r) => r[0]!.includes(p.name))).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'page-meshed.png') });
  });

  it('answers 404 for unknown paths and 405 for writes (read-only)', async () => {
    const codes = await page.evaluate(async () => {
      const get = async (p: string): Promise<number> => (await fetch(p)).status;
      return {
        unknown: await get('/no-such-page'),
        traversal: await get('/page.js/../../etc/passwd'),
        json: await get('/topology.json'),
        css: await get('/page.css'),
        post: (await fetch('/', { method: 'POST', body: 'x' })).status,
      };
    });
    expect(codes).toEqual({ unknown: 404, traversal: 404, json: 200, css: 200, post: 405 });
  });

  it('links turn from fastdp to sleeve when UDP 6784 is blocked, and back, without a reload: ours and one between two other peers', async () => {
    const [h1, h2, h3] = net.hosts;
    const navBefore = navigations;
    // h1-h2: a link of the page's own host; h2-h3: one it knows only from what h2 and h3 announce.
    const unblock1 = await nftDrop(h1!, [`in ip saddr ${h2!.address} udp dport 6784 drop`, `out ip daddr ${h2!.address} udp dport 6784 drop`]);
    const unblock3 = await nftDrop(h3!, [`in ip saddr ${h2!.address} udp dport 6784 drop`, `out ip daddr ${h2!.address} udp dport 6784 drop`]);
    try {
      await waitFor(async () => {
        const d = await drawn(page);
        return link(d, 'h1', 'h2')?.kind === 'sleeve' && link(d, 'h2', 'h3')?.kind === 'sleeve';
      }, 20_000, 'h1-h2 and h2-h3 drawn as sleeve');
      const d = await drawn(page);
      expect(link(d, 'h1', 'h2')).toMatchObject({ kind: 'sleeve', stroke: '#1f6fd1' });
      expect(link(d, 'h2', 'h3')).toMatchObject({ kind: 'sleeve', stroke: '#1f6fd1' });
      expect(link(d, 'h1', 'h3')).toMatchObject({ kind: 'fastdp' });
      await page.screenshot({ path: join(ARTIFACTS, 'page-sleeve.png') });
    } finally {
      await unblock1();
      await unblock3();
    }
    await waitFor(async () => {
      const d = await drawn(page);
      return link(d, 'h1', 'h2')?.kind === 'fastdp' && link(d, 'h2', 'h3')?.kind === 'fastdp';
    }, 20_000, 'h1-h2 and h2-h3 drawn as fastdp again');
    expect(navigations).toBe(navBefore);
  });

  it('a link turns red when its connection fails, and back when it heals, without a reload', async () => {
    const [h1, h2] = net.hosts;
    const before = (await drawn(page)).generation;
    const navBefore = navigations;
    await cut(h1!, h2!);
    try {
      // Heartbeats stop; the connection is declared dead after its deadline and retried.
      await page.waitForFunction(
        () => {
          const ls = [...document.querySelectorAll('#graph line.link')];
          const peers = new Map([...document.querySelectorAll('#graph g.peer')].map((g) => [g.getAttribute('data-peer'), g.getAttribute('data-nickname')]));
          return ls.some((l) => [peers.get(l.getAttribute('data-a')), peers.get(l.getAttribute('data-b'))].sort().join() === 'h1,h2' && l.getAttribute('data-kind') === 'failed');
        },
        undefined,
        { timeout: 60_000, polling: 250 },
      );
      const d = await drawn(page);
      expect(link(d, 'h1', 'h2')).toMatchObject({ kind: 'failed', stroke: '#d62728' });
      expect(link(d, 'h1', 'h3')).toMatchObject({ kind: 'fastdp' });
      expect(d.peers).toEqual(['h1', 'h2', 'h3']);
      expect(d.generation).toBeGreaterThan(before);
      await page.screenshot({ path: join(ARTIFACTS, 'page-link-failed.png') });
    } finally {
      await h1!.run('nft', ['delete table inet mnpage']);
    }
    await waitFor(async () => link(await drawn(page), 'h1', 'h2')?.kind === 'fastdp', 60_000, 'h1-h2 drawn on fastdp again');
    expect(navigations).toBe(navBefore);
    await page.screenshot({ path: join(ARTIFACTS, 'page-healed.png') });
  });
});
