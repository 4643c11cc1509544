// The topology page's data: the status document reduced to a graph the
// browser only has to draw — peers placed on a circle (this router at the
// top), links with a kind and a colour, each peer's IPAM share and the
// addresses it has in use. Pure, so the colouring rules are unit-tested.
//
// What the status can tell: the datapath and encryption of *this* router's
// own connections. Links between two other peers come from the topology
// gossip, which says whether they are established, not which datapath they
// use; they are drawn as "remote".

import type { ConnectionStatus } from '../../mesh/mesh.js';
import type { StatusJson } from '../status.js';

export type LinkKind = 'fastdp' | 'sleeve' | 'encrypted' | 'up' | 'pending' | 'failed' | 'remote';

export const LINK_STYLE: Record<LinkKind, { colour: string; dashed: boolean; label: string }> = {
  fastdp: { colour: '#2e9e44', dashed: false, label: 'fast datapath (data unencrypted)' },
  sleeve: { colour: '#1f6fd1', dashed: false, label: 'sleeve (unencrypted)' },
  encrypted: { colour: '#7b3fbf', dashed: false, label: 'sleeve, encrypted' },
  up: { colour: '#444444', dashed: false, label: 'established, no datapath yet' },
  pending: { colour: '#999999', dashed: true, label: 'connecting' },
  failed: { colour: '#d62728', dashed: true, label: 'failed' },
  remote: { colour: '#b0b0b0', dashed: false, label: 'between other peers, no datapath announced' },
};

export interface PageNode {
  name: string;
  nickname: string;
  self: boolean;
  reachable: boolean;
  /** "self", "direct", "via <nick>", "unreachable". */
  route: string;
  /** Addresses owned, and as a fraction of the range. */
  owned: number;
  share: number;
  /** Addresses in use on that peer (pods, plus its own `expose` address), when known. */
  inUse: number | null;
  x: number;
  y: number;
}

export interface PageLink {
  a: string;
  b: string;
  kind: LinkKind;
  colour: string;
  dashed: boolean;
  /** Tooltip: state, datapath, encryption, info. */
  detail: string;
}

export interface PageModel {
  self: string;
  generatedAt: string;
  encryption: boolean;
  range: string;
  ipamStatus: string;
  nodes: PageNode[];
  links: PageLink[];
  /** Connections to addresses whose peer is unknown (never reached). */
  unknownTargets: { address: string; state: string; info: string }[];
  legend: { kind: LinkKind; colour: string; dashed: boolean; label: string }[];
}

export const VIEW = { width: 640, height: 480, radius: 180 } as const;

/** How one of our connections is drawn. */
export function connectionKind(c: Pick<ConnectionStatus, 'state' | 'datapath' | 'encrypted'>): LinkKind {
  if (c.state === 'failed' || c.state === 'retrying') return 'failed';
  if (c.state === 'connecting') return 'pending';
  // Fastdp carries data unencrypted even on an encrypted control channel
  // (a peer in --trusted-subnets): draw what the data gets.
  if (c.datapath === 'fastdp') return 'fastdp';
  if (c.encrypted) return 'encrypted';
  return c.datapath ?? 'up';
}

/**
 * A link between two other peers, from what they announce over gossip
 * (datapath "announced"): fastdp when either end sends over it, else the
 * sleeve when either end reaches the other directly over UDP (encrypted in
 * an encrypted mesh), else only known to be established.
 */
export function remoteLinkKind(s: Pick<StatusJson, 'encryption' | 'datapath'>, a: string, b: string): [LinkKind, string] {
  const ann = s.datapath?.announced;
  const says = (x: string, y: string, what: 'fastdp' | 'sleeve'): boolean => !!ann?.[x]?.[what].includes(y);
  if (says(a, b, 'fastdp') || says(b, a, 'fastdp')) return ['fastdp', 'established, fastdp (as announced by its peers)'];
  if (says(a, b, 'sleeve') || says(b, a, 'sleeve')) {
    return s.encryption ? ['encrypted', 'established, sleeve, encrypted (as announced by its peers)'] : ['sleeve', 'established, sleeve (as announced by its peers)'];
  }
  return ['remote', 'established (no datapath announced)'];
}

/** A better-known state wins when one peer has several entries (an old retrying target and a live connection). */
const RANK: Record<LinkKind, number> = { fastdp: 6, sleeve: 6, encrypted: 6, up: 5, pending: 3, failed: 2, remote: 1 };

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

interface IpamPeer {
  name?: unknown;
  owned?: unknown;
  share?: unknown;
  allocated?: unknown;
}

export function pageModel(s: StatusJson, now: Date = new Date()): PageModel {
  const total = 2 ** (32 - Number(s.ipam.range.split('/')[1] ?? 32));
  const ownedBy = new Map<string, number>();
  for (const r of s.ipam.ranges) ownedBy.set(r.owner, (ownedBy.get(r.owner) ?? 0) + r.size);
  const ipamPeers = new Map<string, IpamPeer>();
  if (Array.isArray(s.ipam['peers'])) for (const p of s.ipam['peers'] as IpamPeer[]) if (typeof p.name === 'string') ipamPeers.set(p.name, p);

  // Self first, then by name: a stable layout that does not jump as peers come and go elsewhere.
  const known = [...s.peers].sort((a, b) => (a.name === s.name ? -1 : b.name === s.name ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const n = known.length;
  const nodes: PageNode[] = known.map((p, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    const ip = ipamPeers.get(p.name);
    const owned = typeof ip?.owned === 'number' ? ip.owned : (ownedBy.get(p.name) ?? 0);
    const inUse = typeof ip?.allocated === 'number' ? ip.allocated : p.name === s.name ? s.ipam.allocated : null;
    return {
      name: p.name,
      nickname: p.nickname,
      self: p.name === s.name,
      reachable: p.reachable,
      route: p.route,
      owned,
      share: typeof ip?.share === 'number' ? ip.share : owned / total,
      inUse,
      x: Math.round(VIEW.width / 2 + (n > 1 ? VIEW.radius * Math.cos(angle) : 0)),
      y: Math.round(VIEW.height / 2 + (n > 1 ? VIEW.radius * Math.sin(angle) : 0)),
    };
  });
  const names = new Set(nodes.map((x) => x.name));

  const links = new Map<string, PageLink>();
  const put = (a: string, b: string, kind: LinkKind, detail: string): void => {
    const key = pairKey(a, b);
    const cur = links.get(key);
    if (cur && RANK[cur.kind] >= RANK[kind]) return;
    const st = LINK_STYLE[kind];
    links.set(key, { a: a < b ? a : b, b: a < b ? b : a, kind, colour: st.colour, dashed: st.dashed, detail });
  };

  // Links as gossiped: established when every side that reports it says so.
  const reported = new Map<string, { a: string; b: string; established: boolean }>();
  for (const p of s.peers) {
    for (const l of p.links ?? []) {
      if (!names.has(l.peer)) continue;
      const key = pairKey(p.name, l.peer);
      const cur = reported.get(key);
      reported.set(key, { a: p.name, b: l.peer, established: (cur?.established ?? true) && l.established });
    }
  }
  for (const r of reported.values()) {
    if (r.a === s.name || r.b === s.name) continue;
    if (!r.established) put(r.a, r.b, 'pending', 'pending');
    else {
      const [kind, detail] = remoteLinkKind(s, r.a, r.b);
      put(r.a, r.b, kind, detail);
    }
  }

  // Our own connections: what we know best.
  const unknownTargets: PageModel['unknownTargets'] = [];
  for (const c of s.connections) {
    if (!c.peer || !names.has(c.peer)) {
      unknownTargets.push({ address: c.address, state: c.state, info: c.info });
      continue;
    }
    const kind = connectionKind(c);
    const detail = [c.state, c.datapath ?? 'no datapath', c.encrypted ? 'encrypted' : 'unencrypted', c.address, c.info].filter(Boolean).join(', ');
    put(s.name, c.peer, kind, detail);
  }

  return {
    self: s.name,
    generatedAt: now.toISOString(),
    encryption: s.encryption,
    range: s.ipam.range,
    ipamStatus: s.ipam.status,
    nodes,
    links: [...links.values()].sort((x, y) => pairKey(x.a, x.b).localeCompare(pairKey(y.a, y.b))),
    unknownTargets,
    legend: (Object.keys(LINK_STYLE) as LinkKind[]).map((kind) => ({ kind, ...LINK_STYLE[kind] })),
  };
}
