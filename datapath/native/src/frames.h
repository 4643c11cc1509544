/* Pure frame logic for the sleeve's I/O addon: virtio-net header parsing,
 * TCP/IPv4 segmentation of TSO super-packets and checksum completion.
 * No I/O here: everything works on caller-owned memory and bounds-checks
 * every offset, so a malformed frame is rejected with a reason code. */
#ifndef MESHNET_FRAMES_H
#define MESHNET_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#define VNET_HDR_LEN 10

/* Why a frame was dropped; index into the addon's per-device counters. */
enum drop_reason {
  DROP_NONE = 0,
  DROP_SHORT,           /* shorter than the headers it claims */
  DROP_CSUM_OFFSETS,    /* NEEDS_CSUM with csum_start/offset outside the frame */
  DROP_GSO_UNSUPPORTED, /* a GSO type we never enabled (UDP, TCPv6, ...) */
  DROP_GSO_NOT_IPV4,    /* GSO TCPv4 frame that is not Ethernet+IPv4 */
  DROP_GSO_BAD_IP,      /* bad IPv4 header (version, IHL, fragment) */
  DROP_GSO_NOT_TCP,     /* GSO TCPv4 frame whose IP protocol is not TCP */
  DROP_GSO_BAD_TCP,     /* bad TCP header length */
  DROP_GSO_BAD_SIZE,    /* gso_size 0 or too many segments */
  DROP_TOO_BIG,         /* a single output frame larger than the caller's buffer */
  DROP_REASON_COUNT
};

extern const char *const drop_reason_names[DROP_REASON_COUNT];

typedef struct {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
} vnet_hdr;

/* One frame being turned into output frames: a plain frame yields one
 * output, a TSO super-packet yields nseg segments. `frame` points into
 * memory the caller keeps alive until every segment has been emitted. */
typedef struct {
  uint8_t *frame;
  size_t len;
  int gso;          /* 1 when segmenting */
  size_t l3off;     /* IPv4 header offset */
  size_t l4off;     /* TCP header offset */
  size_t hdrs;      /* bytes of Ethernet+IP+TCP headers copied to every segment */
  size_t payload;   /* TCP payload bytes of the super-packet */
  uint16_t gso_size;
  uint32_t nseg;
  uint32_t next;    /* next segment to emit */
} frame_cursor;

/* Parses the virtio-net header (host byte order, as tun uses on x86/arm). */
void vnet_hdr_parse(const uint8_t *p, vnet_hdr *h);

/* Starts emitting `frame`. Completes a partial checksum in place for
 * non-GSO frames marked NEEDS_CSUM. Returns DROP_NONE or a drop reason. */
int frame_begin(frame_cursor *c, uint8_t *frame, size_t len, const vnet_hdr *h);

/* Size of the next output frame, 0 when done. */
size_t frame_next_len(const frame_cursor *c);

/* Writes the next output frame to `out` (which must hold frame_next_len
 * bytes) and advances. Returns the bytes written. */
size_t frame_emit(frame_cursor *c, uint8_t *out);

/* Internet checksum helpers (RFC 1071), exposed for the tests. */
uint32_t csum_partial(const uint8_t *p, size_t len, uint32_t sum);
uint16_t csum_fold(uint32_t sum);

#endif

/* ---------- receive-side coalescing (userspace GRO) ----------
 * Consecutive TCP/IPv4 segments of one flow in a write batch are merged into
 * one TSO super-packet (virtio-net header GSO_TCPV4 + NEEDS_CSUM), so the
 * kernel passes one skb instead of dozens through bridge, veth and the
 * pod's TCP. Payloads are not copied: the sink gets an iovec list pointing
 * into the caller's frames. */

#include <sys/uio.h>

#define GRO_MAX_SEGS 64
#define GRO_MAX_FLOWS 8
#define GRO_HDR_MAX (18 + 60 + 60)

typedef struct {
  const uint8_t *first; /* the first segment (headers are taken from it) */
  size_t hdrs;          /* Ethernet + IP + TCP header bytes */
  size_t l3off, l4off;
  uint32_t next_seq;
  uint16_t next_id;
  uint16_t gso_size;
  size_t payload;       /* total payload bytes */
  uint32_t nseg;
  int closed;           /* a short or PSH segment ends the group */
  uint8_t psh;
  uint64_t age;
  const uint8_t *pay[GRO_MAX_SEGS];
  size_t paylen[GRO_MAX_SEGS];
  /* Built at flush: virtio-net header + rewritten headers. */
  uint8_t out_hdr[VNET_HDR_LEN + GRO_HDR_MAX];
} gro_group;

/* Receives each output: iov[0] is the virtio-net header, the rest the frame;
 * `frames` is how many input frames it carries. */
typedef void (*gro_sink)(void *ctx, struct iovec *iov, int iovcnt, uint32_t frames);

typedef struct {
  gro_group groups[GRO_MAX_FLOWS];
  int used[GRO_MAX_FLOWS];
  uint64_t clock;
  gro_sink sink;
  void *ctx;
  struct iovec iov[GRO_MAX_SEGS + 2];
} gro_state;

void gro_init(gro_state *g, gro_sink sink, void *ctx);
/* Adds one frame (kept alive by the caller until gro_flush_all). */
void gro_add(gro_state *g, const uint8_t *frame, size_t len);
void gro_flush_all(gro_state *g);
