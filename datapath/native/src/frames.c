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
