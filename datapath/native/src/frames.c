/* See frames.h. Every read of frame memory is preceded by a length check. */
#include "frames.h"

#include <string.h>

#define GSO_NONE 0
#define GSO_TCPV4 1
#define GSO_ECN 0x80
#define F_NEEDS_CSUM 1
#define ETH_LEN 14
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80
/* Linux never uses an MSS this small; a smaller gso_size is malformed and
 * would let one 64 KiB frame fan out into thousands of segments. */
#define MIN_GSO_SIZE 64

const char *const drop_reason_names[DROP_REASON_COUNT] = {
    "none",          "short",       "csumOffsets", "gsoUnsupported", "gsoNotIpv4",
    "gsoBadIp",      "gsoNotTcp",   "gsoBadTcp",   "gsoBadSize",     "tooBig",
};

static uint16_t rd16be(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t rd32be(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static void wr16be(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32be(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

void vnet_hdr_parse(const uint8_t *p, vnet_hdr *h) {
  h->flags = p[0];
  h->gso_type = p[1];
  memcpy(&h->hdr_len, p + 2, 2);
  memcpy(&h->gso_size, p + 4, 2);
  memcpy(&h->csum_start, p + 6, 2);
  memcpy(&h->csum_offset, p + 8, 2);
}

/* One's-complement sum in native byte order (RFC 1071 §2(B): the result
 * stored back with memcpy is correct whatever the host's endianness). Chunks
 * passed in sequence must start at even offsets of the checksummed range. */
uint32_t csum_partial(const uint8_t *p, size_t len, uint32_t sum) {
  uint64_t s = sum;
  while (len >= 8) {
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + 4, 4);
    s += a;
    s += b;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t a;
    memcpy(&a, p, 4);
    s += a;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t a;
    memcpy(&a, p, 2);
    s += a;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t a = 0;
    memcpy(&a, p, 1);
    s += a;
  }
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  return (uint32_t)s;
}

uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

int frame_begin(frame_cursor *c, uint8_t *f, size_t len, const vnet_hdr *h) {
  memset(c, 0, sizeof *c);
  c->frame = f;
  c->len = len;
  c->nseg = 1;
  if (len < ETH_LEN) return DROP_SHORT;
  uint8_t type = h->gso_type & (uint8_t)~GSO_ECN;
  if (type == GSO_NONE) {
    if (h->flags & F_NEEDS_CSUM) {
      /* The field already holds the pseudo-header sum; add the rest. */
      size_t start = h->csum_start;
      size_t field = start + h->csum_offset;
      if (start >= len || field + 2 > len) return DROP_CSUM_OFFSETS;
      uint16_t r = csum_fold(csum_partial(f + start, len - start, 0));
      if (r == 0) r = 0xffff; /* as the kernel does: 0 means "none" for UDP */
      memcpy(f + field, &r, 2);
    }
    return DROP_NONE;
  }
  if (type != GSO_TCPV4) return DROP_GSO_UNSUPPORTED;

  size_t l3 = ETH_LEN;
  uint16_t ethertype = rd16be(f + 12);
  if (ethertype == 0x8100) { /* one 802.1Q tag */
    if (len < ETH_LEN + 4) return DROP_SHORT;
    ethertype = rd16be(f + 16);
    l3 = ETH_LEN + 4;
  }
  if (ethertype != 0x0800) return DROP_GSO_NOT_IPV4;
  if (len < l3 + 20) return DROP_SHORT;
  const uint8_t *ip = f + l3;
  if ((ip[0] >> 4) != 4) return DROP_GSO_BAD_IP;
  size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
  if (ihl < 20) return DROP_GSO_BAD_IP;
  if (len < l3 + ihl) return DROP_SHORT;
  if (rd16be(ip + 6) & 0x3fff) return DROP_GSO_BAD_IP; /* MF or a fragment offset */
  if (ip[9] != 6) return DROP_GSO_NOT_TCP;
  size_t l4 = l3 + ihl;
  if (len < l4 + 20) return DROP_SHORT;
  size_t thl = (size_t)(f[l4 + 12] >> 4) * 4;
  if (thl < 20) return DROP_GSO_BAD_TCP;
  if (len < l4 + thl) return DROP_SHORT;
  if (h->gso_size < MIN_GSO_SIZE) return DROP_GSO_BAD_SIZE;

  c->gso = 1;
  c->l3off = l3;
  c->l4off = l4;
  c->hdrs = l4 + thl;
  c->payload = len - c->hdrs;
  c->gso_size = h->gso_size;
  c->nseg = c->payload == 0 ? 1 : (uint32_t)((c->payload + c->gso_size - 1) / c->gso_size);
  return DROP_NONE;
}

static size_t seg_payload(const frame_cursor *c, uint32_t i) {
  size_t done = (size_t)i * c->gso_size;
  if (done >= c->payload) return 0;
  size_t left = c->payload - done;
  return left < c->gso_size ? left : c->gso_size;
}

size_t frame_next_len(const frame_cursor *c) {
  if (c->next >= c->nseg) return 0;
  if (!c->gso) return c->len;
  return c->hdrs + seg_payload(c, c->next);
}

size_t frame_emit(frame_cursor *c, uint8_t *out) {
  if (c->next >= c->nseg) return 0;
  uint32_t i = c->next++;
  if (!c->gso) {
    memcpy(out, c->frame, c->len);
    return c->len;
  }
  const uint8_t *f = c->frame;
  size_t seglen = seg_payload(c, i);
  memcpy(out, f, c->hdrs);
  memcpy(out + c->hdrs, f + c->hdrs + (size_t)i * c->gso_size, seglen);

  uint8_t *ip = out + c->l3off;
  size_t ihl = c->l4off - c->l3off;
  size_t l4len = c->hdrs - c->l4off + seglen;
  wr16be(ip + 2, (uint16_t)(ihl + l4len));
  wr16be(ip + 4, (uint16_t)(rd16be(f + c->l3off + 4) + i));
  ip[10] = ip[11] = 0;
  uint16_t ipsum = csum_fold(csum_partial(ip, ihl, 0));
  memcpy(ip + 10, &ipsum, 2);

  uint8_t *tcp = out + c->l4off;
  wr32be(tcp + 4, rd32be(f + c->l4off + 4) + i * (uint32_t)c->gso_size);
  uint8_t flags = tcp[13];
  if (i + 1 < c->nseg) flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
  if (i > 0) flags &= (uint8_t)~TCP_CWR;
  tcp[13] = flags;
  tcp[16] = tcp[17] = 0;
  /* Pseudo-header: addresses as stored, then protocol and length words. */
  uint8_t pseudo[4];
  wr16be(pseudo, 6);
  wr16be(pseudo + 2, (uint16_t)l4len);
  uint32_t sum = csum_partial(ip + 12, 8, 0);
  sum = csum_partial(pseudo, 4, sum);
  sum = csum_partial(tcp, l4len, sum);
  uint16_t tsum = csum_fold(sum);
  memcpy(tcp + 16, &tsum, 2);
  return c->hdrs + seglen;
}

/* ---------- receive-side coalescing ---------- */

#define TCP_ACK 0x10
#define TCP_FLAGS_NOT_MERGED 0xe7 /* CWR ECE URG RST SYN FIN: never merged */

static const uint8_t zero_vnet[VNET_HDR_LEN];

void gro_init(gro_state *g, gro_sink sink, void *ctx) {
  memset(g->used, 0, sizeof g->used);
  g->clock = 0;
  g->sink = sink;
  g->ctx = ctx;
}

/* A mergeable segment: Ethernet/IPv4 without options or fragmentation,
 * TCP with ACK (and maybe PSH) only, some payload. Fills the offsets. */
static int gro_candidate(const uint8_t *f, size_t len, size_t *l4, size_t *hdrs, size_t *payload) {
  if (len < ETH_LEN + 20 + 20) return 0;
  if (f[12] != 0x08 || f[13] != 0x00) return 0;
  const uint8_t *ip = f + ETH_LEN;
  if (ip[0] != 0x45 || ip[9] != 6) return 0;
  if (rd16be(ip + 6) & 0x3fff) return 0;
  size_t tot = rd16be(ip + 2);
  if (tot > len - ETH_LEN || tot < 40) return 0;
  const uint8_t *tcp = ip + 20;
  size_t thl = (size_t)(tcp[12] >> 4) * 4;
  if (thl < 20 || 20 + thl + MIN_GSO_SIZE > tot) return 0; /* pure ACKs and tiny segments pass through */
  if ((tcp[13] & TCP_FLAGS_NOT_MERGED) || !(tcp[13] & TCP_ACK)) return 0;
  *l4 = ETH_LEN + 20;
  *hdrs = ETH_LEN + 20 + thl;
  *payload = tot - 20 - thl;
  return 1;
}

/* Same flow as the group: Ethernet header, addresses, ports. */
static int gro_same_flow(const gro_group *gr, const uint8_t *f) {
  const uint8_t *a = gr->first;
  return memcmp(a, f, ETH_LEN) == 0 && memcmp(a + ETH_LEN + 12, f + ETH_LEN + 12, 8) == 0 &&
         memcmp(a + gr->l4off, f + gr->l4off, 4) == 0;
}

/* Whether f (same flow, candidate) may be appended to gr. */
static int gro_can_append(const gro_group *gr, const uint8_t *f, size_t hdrs, size_t payload) {
  if (gr->closed || gr->nseg >= GRO_MAX_SEGS || hdrs != gr->hdrs) return 0;
  if (payload > gr->gso_size) return 0;
  if (gr->hdrs - ETH_LEN + gr->payload + payload > 65535) return 0;
  const uint8_t *a = gr->first + ETH_LEN, *b = f + ETH_LEN;
  if (a[1] != b[1] || a[8] != b[8] || (a[6] & 0x40) != (b[6] & 0x40)) return 0; /* TOS, TTL, DF */
  if (!(b[6] & 0x40) && rd16be(b + 4) != gr->next_id) return 0;               /* IDs must run on without DF */
  const uint8_t *ta = gr->first + gr->l4off, *tb = f + gr->l4off;
  if (rd32be(tb + 4) != gr->next_seq) return 0;
  if (memcmp(ta + 8, tb + 8, 4) != 0) return 0;                  /* ack */
  if (ta[12] != tb[12] || memcmp(ta + 14, tb + 14, 2) != 0) return 0; /* header length, window */
  if (memcmp(ta + 20, tb + 20, hdrs - gr->l4off - 20) != 0) return 0; /* options (timestamps) */
  return 1;
}

static void gro_flush(gro_state *g, int i) {
  gro_group *gr = &g->groups[i];
  g->used[i] = 0;
  struct iovec *iov = g->iov;
  if (gr->nseg == 1) {
    iov[0].iov_base = (void *)zero_vnet;
    iov[0].iov_len = VNET_HDR_LEN;
    iov[1].iov_base = (void *)gr->first;
    iov[1].iov_len = gr->hdrs + gr->payload;
    g->sink(g->ctx, iov, 2, 1);
    return;
  }
  uint8_t *vh = gr->out_hdr;
  uint8_t *h = vh + VNET_HDR_LEN;
  memcpy(h, gr->first, gr->hdrs);
  uint8_t *ip = h + gr->l3off;
  uint8_t *tcp = h + gr->l4off;
  size_t l4len = gr->hdrs - gr->l4off + gr->payload;
  wr16be(ip + 2, (uint16_t)(20 + l4len));
  ip[10] = ip[11] = 0;
  uint16_t ipsum = csum_fold(csum_partial(ip, 20, 0));
  memcpy(ip + 10, &ipsum, 2);
  tcp[13] |= gr->psh;
  /* CHECKSUM_PARTIAL convention: the field holds the folded pseudo-header
   * sum (not inverted); whoever segments or checks completes it. */
  uint8_t pseudo[4];
  wr16be(pseudo, 6);
  wr16be(pseudo + 2, (uint16_t)l4len);
  uint32_t sum = csum_partial(ip + 12, 8, 0);
  sum = csum_partial(pseudo, 4, sum);
  uint16_t partial = (uint16_t)~csum_fold(sum);
  memcpy(tcp + 16, &partial, 2);
  vh[0] = F_NEEDS_CSUM;
  vh[1] = GSO_TCPV4;
  uint16_t hdr_len = (uint16_t)gr->hdrs, gso = gr->gso_size, cstart = (uint16_t)gr->l4off, coff = 16;
  memcpy(vh + 2, &hdr_len, 2);
  memcpy(vh + 4, &gso, 2);
  memcpy(vh + 6, &cstart, 2);
  memcpy(vh + 8, &coff, 2);
  iov[0].iov_base = vh;
  iov[0].iov_len = VNET_HDR_LEN;
  iov[1].iov_base = h;
  iov[1].iov_len = gr->hdrs;
  for (uint32_t s = 0; s < gr->nseg; s++) {
    iov[2 + s].iov_base = (void *)gr->pay[s];
    iov[2 + s].iov_len = gr->paylen[s];
  }
  g->sink(g->ctx, iov, (int)gr->nseg + 2, gr->nseg);
}

static void gro_start(gro_state *g, int i, const uint8_t *f, size_t l4, size_t hdrs, size_t payload) {
  gro_group *gr = &g->groups[i];
  g->used[i] = 1;
  gr->first = f;
  gr->l3off = ETH_LEN;
  gr->l4off = l4;
  gr->hdrs = hdrs;
  gr->payload = payload;
  gr->gso_size = (uint16_t)payload;
  gr->nseg = 1;
  gr->pay[0] = f + hdrs;
  gr->paylen[0] = payload;
  gr->next_seq = rd32be(f + l4 + 4) + (uint32_t)payload;
  gr->next_id = (uint16_t)(rd16be(f + ETH_LEN + 4) + 1);
  gr->psh = f[l4 + 13] & TCP_PSH;
  gr->closed = gr->psh != 0;
  gr->age = g->clock++;
}

static void gro_write_single(gro_state *g, const uint8_t *f, size_t len) {
  g->iov[0].iov_base = (void *)zero_vnet;
  g->iov[0].iov_len = VNET_HDR_LEN;
  g->iov[1].iov_base = (void *)f;
  g->iov[1].iov_len = len;
  g->sink(g->ctx, g->iov, 2, 1);
}

void gro_add(gro_state *g, const uint8_t *f, size_t len) {
  size_t l4 = 0, hdrs = 0, payload = 0;
  int cand = gro_candidate(f, len, &l4, &hdrs, &payload);
  /* Any IPv4 TCP frame of an open group's flow keeps its place in line. */
  int match = -1;
  if (len >= ETH_LEN + 20 + 4 && f[12] == 0x08 && f[13] == 0x00) {
    for (int i = 0; i < GRO_MAX_FLOWS; i++)
      if (g->used[i] && gro_same_flow(&g->groups[i], f)) {
        match = i;
        break;
      }
  }
  if (!cand) {
    if (match >= 0) gro_flush(g, match);
    gro_write_single(g, f, len);
    return;
  }
  if (match >= 0) {
    gro_group *gr = &g->groups[match];
    if (gro_can_append(gr, f, hdrs, payload)) {
      gr->pay[gr->nseg] = f + hdrs;
      gr->paylen[gr->nseg] = payload;
      gr->nseg++;
      gr->payload += payload;
      gr->next_seq += (uint32_t)payload;
      gr->next_id++;
      uint8_t psh = f[l4 + 13] & TCP_PSH;
      gr->psh |= psh;
      if (psh || payload < gr->gso_size) gr->closed = 1;
      return;
    }
    gro_flush(g, match);
    gro_start(g, match, f, l4, hdrs, payload);
    return;
  }
  int slot = -1;
  for (int i = 0; i < GRO_MAX_FLOWS && slot < 0; i++)
    if (!g->used[i]) slot = i;
  if (slot < 0) { /* all busy: evict the oldest */
    slot = 0;
    for (int i = 1; i < GRO_MAX_FLOWS; i++)
      if (g->groups[i].age < g->groups[slot].age) slot = i;
    gro_flush(g, slot);
  }
  gro_start(g, slot, f, l4, hdrs, payload);
}

void gro_flush_all(gro_state *g) {
  /* Oldest first, so flows come out in the order they started. */
  for (;;) {
    int oldest = -1;
    for (int i = 0; i < GRO_MAX_FLOWS; i++)
      if (g->used[i] && (oldest < 0 || g->groups[i].age < g->groups[oldest].age)) oldest = i;
    if (oldest < 0) return;
    gro_flush(g, oldest);
  }
}
