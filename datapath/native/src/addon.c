/* meshnet_io: the sleeve's hot I/O path as a small Node-API addon.
 *
 * - TAP devices: open by name (IFF_TAP|IFF_NO_PI, optional IFF_VNET_HDR with
 *   checksum/TSO offload), batched non-blocking reads that segment TSO
 *   super-packets, batched writes.
 * - UDP sockets: DF always set (IP_PMTUDISC_DO, never IP-fragmented),
 *   recvmmsg/sendmmsg batches, per-destination path MTU queries.
 * - Readiness: a uv_poll on the fd calls a JS callback on the loop thread;
 *   JS then drains with the batched calls. No threads, no busy polling.
 *
 * Memory safety: every buffer and index passed from JS is checked against
 * the typed array it came from; malformed frames are dropped and counted. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

#include "aead.h"
#include "frames.h"

#define MAX_BATCH 256
#define SCRATCH_LEN (VNET_HDR_LEN + 65536)

enum kind { KIND_TAP = 1, KIND_UDP = 2 };

typedef struct io_handle {
  int kind;
  int fd;
  bool vnet;
  napi_env env;
  uv_poll_t *poll;
  napi_ref callback;
  napi_async_context async;
  /* TAP read state: a super-packet whose segments did not all fit in the
   * caller's buffer stays here until the next read. */
  uint8_t *scratch;
  frame_cursor cursor;
  bool pending;
  /* TAP write state: receive-side coalescing (only with IFF_VNET_HDR). */
  gro_state *gro;
  /* UDP: send runs with UDP_SEGMENT; receive coalesced (UDP_GRO). */
  bool gso;
  bool udp_gro;
  /* Counters, exposed by stats(). */
  double rx_errors, rx_frames, rx_packets, rx_gso, tx_frames, tx_errors, rx_truncated, tx_msgsize, tx_packets, tx_gso;
  double drops[DROP_REASON_COUNT];
} io_handle;

/* ---------- helpers ---------- */

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, NULL, "meshnet_io: Node-API call failed");  \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value m, e, code;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &e);
  napi_create_int32(env, err, &code);
  napi_set_named_property(env, e, "errno", code);
  napi_throw(env, e);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

/* A typed array argument of the wanted type: data pointer and element count. */
static bool get_array(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *count) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return false;
  napi_typedarray_type t;
  size_t len;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, &len, data, &ab, &off) != napi_ok) return false;
  if (t != want) return false;
  *count = len;
  return true;
}

static bool get_u32(napi_env env, napi_value v, uint32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static io_handle *get_handle(napi_env env, napi_value v, int kind) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external) return NULL;
  void *p;
  if (napi_get_value_external(env, v, &p) != napi_ok || !p) return NULL;
  io_handle *h = p;
  if (kind && h->kind != kind) return NULL;
  return h;
}

static void poll_closed(uv_handle_t *p) { free(p); }

static void stop_poll(io_handle *h) {
  if (h->poll) {
    uv_poll_stop(h->poll);
    h->poll->data = NULL;
    uv_close((uv_handle_t *)h->poll, poll_closed);
    h->poll = NULL;
  }
  if (h->callback) {
    napi_delete_reference(h->env, h->callback);
    h->callback = NULL;
  }
  if (h->async) {
    napi_async_destroy(h->env, h->async);
    h->async = NULL;
  }
}

static void close_handle(io_handle *h) {
  stop_poll(h);
  if (h->fd >= 0) {
    close(h->fd);
    h->fd = -1;
  }
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  io_handle *h = data;
  close_handle(h);
  free(h->scratch);
  free(h->gro);
  free(h);
}

static napi_value wrap_handle(napi_env env, io_handle *h) {
  napi_value ext;
  if (napi_create_external(env, h, finalize_handle, NULL, &ext) != napi_ok) {
    close_handle(h);
    free(h->scratch);
    free(h->gro);
    free(h);
    napi_throw_error(env, NULL, "meshnet_io: cannot create handle");
    return NULL;
  }
  return ext;
}

static bool get_ipv4(napi_env env, napi_value v, struct in_addr *out) {
  char buf[64];
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) return false;
  return inet_pton(AF_INET, buf, out) == 1;
}

/* ---------- TAP ---------- */

/* tapOpen(name, vnetHdr, offload, persist) -> handle */
static napi_value tap_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "tapOpen(name, vnetHdr, offload, persist)");
  char name[IFNAMSIZ + 1];
  size_t n;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok || n == 0 || n >= IFNAMSIZ)
    return throw_type(env, "tapOpen: name must be 1-15 characters");
  bool vnet, persist;
  uint32_t offload;
  if (napi_get_value_bool(env, argv[1], &vnet) != napi_ok) return throw_type(env, "tapOpen: vnetHdr must be a boolean");
  if (!get_u32(env, argv[2], &offload)) return throw_type(env, "tapOpen: offload must be a number");
  if (napi_get_value_bool(env, argv[3], &persist) != napi_ok) return throw_type(env, "tapOpen: persist must be a boolean");
  if (offload && !vnet) return throw_type(env, "tapOpen: offload needs vnetHdr");

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, n);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF", e);
  }
  if (vnet) {
    int sz = VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "TUNSETVNETHDRSZ", e);
    }
    /* Only checksum offload and TSO for IPv4 are accepted: those are the
     * frames our segmenter understands; the kernel segments the rest. */
    unsigned int off = offload & (TUN_F_CSUM | TUN_F_TSO4);
    if (off & TUN_F_TSO4) off |= TUN_F_CSUM;
    if (ioctl(fd, TUNSETOFFLOAD, off) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, "TUNSETOFFLOAD", e);
    }
  } else if (ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
    /* A persistent TAP opened with offloads before keeps them: without a
     * virtio-net header we could not tell a super-packet from a frame. */
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETOFFLOAD", e);
  }
  if (ioctl(fd, TUNSETPERSIST, persist ? 1 : 0) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "TUNSETPERSIST", e);
  }
  io_handle *h = calloc(1, sizeof *h);
  uint8_t *scratch = malloc(SCRATCH_LEN);
  gro_state *gro = vnet ? malloc(sizeof *gro) : NULL;
  if (!h || !scratch || (vnet && !gro)) {
    free(h);
    free(scratch);
    free(gro);
    close(fd);
    return throw_errno(env, "tapOpen", ENOMEM);
  }
  h->kind = KIND_TAP;
  h->fd = fd;
  h->vnet = vnet;
  h->env = env;
  h->scratch = scratch;
  h->gro = gro;
  return wrap_handle(env, h);
}

/* Emits as many output frames of the pending cursor as fit. Returns false
 * when the caller's buffer or slot arrays are full. */
static bool emit_pending(io_handle *h, uint8_t *buf, size_t cap, size_t *pos, uint32_t *offs, uint32_t *lens,
                         size_t maxf, size_t *nf, size_t headroom) {
  while (h->pending) {
    size_t need = frame_next_len(&h->cursor);
    if (need == 0) {
      h->pending = false;
      break;
    }
    if (*nf >= maxf) return false;
    size_t start = *pos + headroom;
    if (start > cap || need > cap - start) {
      if (*nf == 0) { /* cannot fit even into an empty buffer */
        h->drops[DROP_TOO_BIG]++;
        h->pending = false;
        break;
      }
      return false;
    }
    size_t w = frame_emit(&h->cursor, buf + start);
    offs[*nf] = (uint32_t)start;
    lens[*nf] = (uint32_t)w;
    (*nf)++;
    *pos = start + w;
    h->rx_frames++;
  }
  return true;
}

/* tapRead(handle, buf, offs, lens, headroom) -> frames placed in buf, or
 * -errno when the device fails (e.g. it was deleted).
 * Frame i is at buf[offs[i] .. offs[i]+lens[i]), with `headroom` free bytes
 * before it. Stops when the device is empty or the buffer/arrays are full. */
static napi_value tap_read(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "tapRead(handle, buf, offs, lens, headroom)");
  io_handle *h = get_handle(env, argv[0], KIND_TAP);
  if (!h) return throw_type(env, "tapRead: bad handle");
  if (h->fd < 0) return throw_errno(env, "tapRead", EBADF);
  uint8_t *buf;
  uint32_t *offs, *lens;
  size_t cap, no, nl;
  uint32_t headroom;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&buf, &cap)) return throw_type(env, "tapRead: buf must be a Buffer");
  if (!get_array(env, argv[2], napi_uint32_array, (void **)&offs, &no)) return throw_type(env, "tapRead: offs must be a Uint32Array");
  if (!get_array(env, argv[3], napi_uint32_array, (void **)&lens, &nl)) return throw_type(env, "tapRead: lens must be a Uint32Array");
  if (!get_u32(env, argv[4], &headroom) || headroom > 4096) return throw_type(env, "tapRead: headroom must be 0-4096");
  if (cap > UINT32_MAX) cap = UINT32_MAX;
  size_t maxf = no < nl ? no : nl;
  size_t nf = 0, pos = 0;

  if (!emit_pending(h, buf, cap, &pos, offs, lens, maxf, &nf, headroom)) return num(env, (double)nf);
  while (nf < maxf) {
    ssize_t r = read(h->fd, h->scratch, SCRATCH_LEN);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (nf > 0) break; /* report the frames we have; the error repeats next time */
      /* The device is gone or broken (EFAULT once deleted, EBADFD, EIO):
       * report it as a negative errno rather than throwing inside a poll
       * callback. */
      h->rx_errors++;
      return num(env, -errno);
    }
    if (r == 0) break;
    h->rx_packets++;
    vnet_hdr vh;
    memset(&vh, 0, sizeof vh);
    uint8_t *frame = h->scratch;
    size_t len = (size_t)r;
    if (h->vnet) {
      if (len < VNET_HDR_LEN) {
        h->drops[DROP_SHORT]++;
        continue;
      }
      vnet_hdr_parse(h->scratch, &vh);
      frame += VNET_HDR_LEN;
      len -= VNET_HDR_LEN;
    }
    int reason = frame_begin(&h->cursor, frame, len, &vh);
    if (reason != DROP_NONE) {
      h->drops[reason]++;
      continue;
    }
    if (h->cursor.gso) h->rx_gso++;
    h->pending = true;
    if (!emit_pending(h, buf, cap, &pos, offs, lens, maxf, &nf, headroom)) break;
  }
  return num(env, (double)nf);
}

/* Writes one frame (or coalesced super-packet) to the device. */
static void tap_sink(void *ctx, struct iovec *iov, int iovcnt, uint32_t frames) {
  io_handle *h = ctx;
  ssize_t w;
  do w = writev(h->fd, iov, iovcnt);
  while (w < 0 && errno == EINTR);
  if (w < 0) {
    h->tx_errors += frames;
    return;
  }
  h->tx_frames += frames;
  h->tx_packets++;
  if (frames > 1) h->tx_gso++;
}

/* Collects coalesced outputs for coalesceFrames. */
typedef struct {
  napi_env env;
  napi_value arr;
  uint32_t n;
} collect_ctx;

static void collect_sink(void *ctx, struct iovec *iov, int iovcnt, uint32_t frames) {
  (void)frames;
  collect_ctx *c = ctx;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) total += iov[i].iov_len;
  void *data;
  napi_value b;
  if (napi_create_buffer(c->env, total, &data, &b) != napi_ok) return;
  size_t pos = 0;
  for (int i = 0; i < iovcnt; i++) {
    memcpy((uint8_t *)data + pos, iov[i].iov_base, iov[i].iov_len);
    pos += iov[i].iov_len;
  }
  napi_set_element(c->env, c->arr, c->n++, b);
}

/* coalesceFrames(buf, offs, lens, count) -> Buffer[]: what tapWrite on an
 * IFF_VNET_HDR device would write (virtio-net header + frame each). */
static napi_value coalesce_frames(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "coalesceFrames(buf, offs, lens, count)");
  uint8_t *buf;
  uint32_t *offs, *lens, count;
  size_t cap, no, nl;
  if (!get_array(env, argv[0], napi_uint8_array, (void **)&buf, &cap)) return throw_type(env, "coalesceFrames: buf must be a Buffer");
  if (!get_array(env, argv[1], napi_uint32_array, (void **)&offs, &no)) return throw_type(env, "coalesceFrames: offs must be a Uint32Array");
  if (!get_array(env, argv[2], napi_uint32_array, (void **)&lens, &nl)) return throw_type(env, "coalesceFrames: lens must be a Uint32Array");
  if (!get_u32(env, argv[3], &count) || count > no || count > nl) return throw_type(env, "coalesceFrames: count exceeds offs/lens");
  gro_state *g = malloc(sizeof *g);
  if (!g) return throw_errno(env, "coalesceFrames", ENOMEM);
  collect_ctx c = {env, NULL, 0};
  napi_create_array(env, &c.arr);
  gro_init(g, collect_sink, &c);
  for (uint32_t i = 0; i < count; i++) {
    size_t o = offs[i], l = lens[i];
    if (o > cap || l > cap - o || l < 14) continue;
    gro_add(g, buf + o, l);
  }
  gro_flush_all(g);
  free(g);
  return c.arr;
}

/* tapWrite(handle, buf, offs, lens, count) -> frames written. Frames that
 * fail are counted as tx errors and skipped. */
static napi_value tap_write(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "tapWrite(handle, buf, offs, lens, count)");
  io_handle *h = get_handle(env, argv[0], KIND_TAP);
  if (!h) return throw_type(env, "tapWrite: bad handle");
  if (h->fd < 0) return throw_errno(env, "tapWrite", EBADF);
  uint8_t *buf;
  uint32_t *offs, *lens, count;
  size_t cap, no, nl;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&buf, &cap)) return throw_type(env, "tapWrite: buf must be a Buffer");
  if (!get_array(env, argv[2], napi_uint32_array, (void **)&offs, &no)) return throw_type(env, "tapWrite: offs must be a Uint32Array");
  if (!get_array(env, argv[3], napi_uint32_array, (void **)&lens, &nl)) return throw_type(env, "tapWrite: lens must be a Uint32Array");
  if (!get_u32(env, argv[4], &count) || count > no || count > nl) return throw_type(env, "tapWrite: count exceeds offs/lens");
  if (h->vnet) gro_init(h->gro, tap_sink, h);
  double before = h->tx_frames;
  for (uint32_t i = 0; i < count; i++) {
    size_t o = offs[i], l = lens[i];
    if (o > cap || l > cap - o || l < 14) {
      h->tx_errors++;
      continue;
    }
    if (h->vnet) {
      gro_add(h->gro, buf + o, l);
      continue;
    }
    struct iovec iov[1] = {{buf + o, l}};
    tap_sink(h, iov, 1, 1);
  }
  if (h->vnet) gro_flush_all(h->gro);
  return num(env, h->tx_frames - before);
}

/* segmentFrame(input, out, offs, lens, headroom) -> frames, or -reason.
 * The TAP read path on one (virtio-net header + frame) input, without a
 * device: lets tests drive the segmenter with arbitrary bytes. */
static napi_value segment_frame(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "segmentFrame(input, out, offs, lens, headroom)");
  uint8_t *in, *out;
  uint32_t *offs, *lens, headroom;
  size_t inlen, cap, no, nl;
  if (!get_array(env, argv[0], napi_uint8_array, (void **)&in, &inlen)) return throw_type(env, "segmentFrame: input must be a Buffer");
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&out, &cap)) return throw_type(env, "segmentFrame: out must be a Buffer");
  if (!get_array(env, argv[2], napi_uint32_array, (void **)&offs, &no)) return throw_type(env, "segmentFrame: offs must be a Uint32Array");
  if (!get_array(env, argv[3], napi_uint32_array, (void **)&lens, &nl)) return throw_type(env, "segmentFrame: lens must be a Uint32Array");
  if (!get_u32(env, argv[4], &headroom) || headroom > 4096) return throw_type(env, "segmentFrame: headroom must be 0-4096");
  if (inlen < VNET_HDR_LEN) return num(env, -DROP_SHORT);
  if (inlen > SCRATCH_LEN) return throw_type(env, "segmentFrame: input larger than a device read");
  /* Work on a private copy, as the device path does (checksums are
   * completed in place). */
  uint8_t *copy = malloc(inlen);
  if (!copy) return throw_errno(env, "segmentFrame", ENOMEM);
  memcpy(copy, in, inlen);
  io_handle h;
  memset(&h, 0, sizeof h);
  vnet_hdr vh;
  vnet_hdr_parse(copy, &vh);
  int reason = frame_begin(&h.cursor, copy + VNET_HDR_LEN, inlen - VNET_HDR_LEN, &vh);
  double result;
  if (reason != DROP_NONE) result = -reason;
  else {
    h.pending = true;
    size_t nf = 0, pos = 0, maxf = no < nl ? no : nl;
    emit_pending(&h, out, cap, &pos, offs, lens, maxf, &nf, headroom);
    result = h.pending ? -DROP_TOO_BIG : (h.drops[DROP_TOO_BIG] ? -DROP_TOO_BIG : (double)nf);
  }
  free(copy);
  return num(env, result);
}

/* ---------- UDP ---------- */

static void set_buf(int fd, int force, int plain, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof bytes) < 0) setsockopt(fd, SOL_SOCKET, plain, &bytes, sizeof bytes);
}

/* udpOpen(ip, port, rcvbuf, sndbuf, flags) -> handle. DF is always set.
 * flags: 1 = send runs of equal-size datagrams as one UDP GSO send
 * (UDP_SEGMENT), 2 = accept coalesced receives (UDP_GRO; slots must then
 * hold 64 KiB). Either silently stays off where the kernel refuses it. */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "udpOpen(ip, port, rcvbuf, sndbuf, flags)");
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  uint32_t port, rcv, snd, flags;
  if (!get_ipv4(env, argv[0], &sa.sin_addr)) return throw_type(env, "udpOpen: ip must be an IPv4 address");
  if (!get_u32(env, argv[1], &port) || port > 65535) return throw_type(env, "udpOpen: port must be 0-65535");
  if (!get_u32(env, argv[2], &rcv) || !get_u32(env, argv[3], &snd)) return throw_type(env, "udpOpen: buffer sizes must be numbers");
  if (!get_u32(env, argv[4], &flags) || flags > 3) return throw_type(env, "udpOpen: flags must be 0-3");
  sa.sin_port = htons((uint16_t)port);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int pmtu = IP_PMTUDISC_DO;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "IP_MTU_DISCOVER", e);
  }
  set_buf(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)(rcv > INT32_MAX ? INT32_MAX : rcv));
  set_buf(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)(snd > INT32_MAX ? INT32_MAX : snd));
  int one = 1;
  bool gro = (flags & 2) && setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof one) == 0;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  io_handle *h = calloc(1, sizeof *h);
  if (!h) {
    close(fd);
    return throw_errno(env, "udpOpen", ENOMEM);
  }
  h->kind = KIND_UDP;
  h->fd = fd;
  h->env = env;
  h->gso = (flags & 1) != 0;
  h->udp_gro = gro;
  return wrap_handle(env, h);
}

/* udpLocalPort(handle) -> the bound port. */
static napi_value udp_local_port(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  io_handle *h = argc ? get_handle(env, argv[0], KIND_UDP) : NULL;
  if (!h || h->fd < 0) return throw_type(env, "udpLocalPort: bad handle");
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  if (getsockname(h->fd, (struct sockaddr *)&sa, &sl) < 0) return throw_errno(env, "getsockname", errno);
  return num(env, ntohs(sa.sin_port));
}

/* The gso_size of a coalesced receive, or 0. */
static int gro_size(struct msghdr *m) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
    if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? v : 0;
    }
  }
  return 0;
}

/* udpRecv(handle, buf, slot, offs, lens, addrs) -> datagrams received, or
 * -errno on a receive error.
 * buf is cut into slots of `slot` bytes, one received message each; a
 * coalesced (UDP_GRO) message yields several datagrams, so offs/lens may
 * have more entries than there are slots. Datagram i is
 * buf[offs[i], offs[i]+lens[i]); addrs[2i] is the sender's IPv4 address as
 * a host-order u32, addrs[2i+1] its port. Messages longer than a slot are
 * dropped and counted (rxTruncated). */
static napi_value udp_recv(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_type(env, "udpRecv(handle, buf, slot, offs, lens, addrs)");
  io_handle *h = get_handle(env, argv[0], KIND_UDP);
  if (!h) return throw_type(env, "udpRecv: bad handle");
  if (h->fd < 0) return throw_errno(env, "udpRecv", EBADF);
  uint8_t *buf;
  uint32_t *offs, *lens, *addrs, slot;
  size_t cap, no, nl, na;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&buf, &cap)) return throw_type(env, "udpRecv: buf must be a Buffer");
  if (!get_u32(env, argv[2], &slot) || slot == 0 || slot > 65536) return throw_type(env, "udpRecv: slot must be 1-65536");
  if (!get_array(env, argv[3], napi_uint32_array, (void **)&offs, &no)) return throw_type(env, "udpRecv: offs must be a Uint32Array");
  if (!get_array(env, argv[4], napi_uint32_array, (void **)&lens, &nl)) return throw_type(env, "udpRecv: lens must be a Uint32Array");
  if (!get_array(env, argv[5], napi_uint32_array, (void **)&addrs, &na)) return throw_type(env, "udpRecv: addrs must be a Uint32Array");
  if (cap > UINT32_MAX) return throw_type(env, "udpRecv: buf larger than 4 GiB");
  size_t slots = cap / slot;
  if (slots > MAX_BATCH) slots = MAX_BATCH;
  size_t ndesc = no;
  if (nl < ndesc) ndesc = nl;
  if (na / 2 < ndesc) ndesc = na / 2;
  /* A coalesced message can carry up to 64 datagrams. */
  size_t per_msg = h->udp_gro ? 64 : 1;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH];
  struct sockaddr_in from[MAX_BATCH];
  char ctrl[MAX_BATCH][CMSG_SPACE(sizeof(int))];
  size_t got = 0, slot_next = 0;
  while (slot_next < slots) {
    size_t want = slots - slot_next;
    if ((ndesc - got) / per_msg < want) want = (ndesc - got) / per_msg;
    if (want == 0) break;
    for (size_t i = 0; i < want; i++) {
      iovs[i].iov_base = buf + (slot_next + i) * slot;
      iovs[i].iov_len = slot;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      if (h->udp_gro) {
        msgs[i].msg_hdr.msg_control = ctrl[i];
        msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
      }
    }
    int r = recvmmsg(h->fd, msgs, (unsigned)want, MSG_DONTWAIT, NULL);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || got > 0) break;
      h->rx_errors++;
      return num(env, -errno);
    }
    if (r == 0) break;
    for (int i = 0; i < r; i++) {
      h->rx_packets++;
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        h->rx_truncated++;
        continue;
      }
      size_t base = (slot_next + (size_t)i) * slot, len = msgs[i].msg_len;
      size_t seg = h->udp_gro ? (size_t)gro_size(&msgs[i].msg_hdr) : 0;
      if (seg == 0 || seg >= len) seg = len;
      uint32_t ip = ntohl(from[i].sin_addr.s_addr), port = ntohs(from[i].sin_port);
      if (len == 0) { /* an empty datagram is still one */
        if (got < ndesc) {
          offs[got] = (uint32_t)base;
          lens[got] = 0;
          addrs[2 * got] = ip;
          addrs[2 * got + 1] = port;
          got++;
        }
        continue;
      }
      for (size_t o = 0; o < len && got < ndesc; o += seg) {
        offs[got] = (uint32_t)(base + o);
        lens[got] = (uint32_t)(len - o < seg ? len - o : seg);
        addrs[2 * got] = ip;
        addrs[2 * got + 1] = port;
        got++;
      }
    }
    slot_next += (size_t)r;
    if ((size_t)r < want) break; /* drained */
  }
  h->rx_frames += (double)got;
  return num(env, (double)got);
}

/* UDP GSO: at most this many datagrams per send, and one IPv4 packet's worth of bytes. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES (65535 - 20 - 8)

/* udpSend(handle, buf, offs, lens, addrs, count, status) -> datagrams
 * consumed. status[i] = 0 when sent, else the errno (EMSGSIZE: larger than
 * the path MTU; the datagram is not sent and not fragmented). Stops early
 * only when the socket buffer is full (EAGAIN); the caller may wait for
 * writability and resend from the returned index. With GSO on, runs of
 * datagrams to one peer with one size (the last may be shorter) go to the
 * kernel as one send. */
static napi_value udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) return throw_type(env, "udpSend(handle, buf, offs, lens, addrs, count, status)");
  io_handle *h = get_handle(env, argv[0], KIND_UDP);
  if (!h) return throw_type(env, "udpSend: bad handle");
  if (h->fd < 0) return throw_errno(env, "udpSend", EBADF);
  uint8_t *buf;
  uint32_t *offs, *lens, *addrs, count;
  int32_t *status;
  size_t cap, no, nl, na, ns;
  if (!get_array(env, argv[1], napi_uint8_array, (void **)&buf, &cap)) return throw_type(env, "udpSend: buf must be a Buffer");
  if (!get_array(env, argv[2], napi_uint32_array, (void **)&offs, &no)) return throw_type(env, "udpSend: offs must be a Uint32Array");
  if (!get_array(env, argv[3], napi_uint32_array, (void **)&lens, &nl)) return throw_type(env, "udpSend: lens must be a Uint32Array");
  if (!get_array(env, argv[4], napi_uint32_array, (void **)&addrs, &na)) return throw_type(env, "udpSend: addrs must be a Uint32Array");
  if (!get_array(env, argv[6], napi_int32_array, (void **)&status, &ns)) return throw_type(env, "udpSend: status must be an Int32Array");
  if (!get_u32(env, argv[5], &count) || count > no || count > nl || count > na / 2 || count > ns)
    return throw_type(env, "udpSend: count exceeds offs/lens/addrs/status");
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iovs[MAX_BATCH];
  struct sockaddr_in to[MAX_BATCH];
  uint32_t first[MAX_BATCH + 1]; /* message m carries datagrams done+first[m] .. done+first[m+1]-1 */
  char ctrl[MAX_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  uint32_t done = 0, solo_until = 0;
  while (done < count) {
    uint32_t n = 0, d = 0;
    while (done + d < count && d < MAX_BATCH) {
      uint32_t i = done + d;
      size_t o = offs[i], l = lens[i];
      if (o > cap || l > cap - o || addrs[2 * i + 1] > 65535) break;
      iovs[d].iov_base = buf + o;
      iovs[d].iov_len = l;
      first[n] = d;
      uint32_t k = 1;
      size_t total = l;
      if (h->gso && l > 0 && i >= solo_until) {
        /* Extend the run: same peer, same size; a shorter one ends it. */
        while (done + d + k < count && d + k < MAX_BATCH && k < GSO_MAX_SEGS) {
          uint32_t j = done + d + k;
          size_t oj = offs[j], lj = lens[j];
          if (oj > cap || lj > cap - oj || lj == 0 || lj > l || addrs[2 * j] != addrs[2 * i] || addrs[2 * j + 1] != addrs[2 * i + 1]) break;
          if (total + lj > GSO_MAX_BYTES) break;
          iovs[d + k].iov_base = buf + oj;
          iovs[d + k].iov_len = lj;
          total += lj;
          k++;
          if (lj < l) break;
        }
      }
      memset(&to[n], 0, sizeof to[n]);
      to[n].sin_family = AF_INET;
      to[n].sin_addr.s_addr = htonl(addrs[2 * i]);
      to[n].sin_port = htons((uint16_t)addrs[2 * i + 1]);
      memset(&msgs[n].msg_hdr, 0, sizeof msgs[n].msg_hdr);
      msgs[n].msg_hdr.msg_iov = &iovs[d];
      msgs[n].msg_hdr.msg_iovlen = k;
      msgs[n].msg_hdr.msg_name = &to[n];
      msgs[n].msg_hdr.msg_namelen = sizeof to[n];
      if (k > 1) {
        msgs[n].msg_hdr.msg_control = ctrl[n];
        msgs[n].msg_hdr.msg_controllen = sizeof ctrl[n];
        struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[n].msg_hdr);
        c->cmsg_level = IPPROTO_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t segsz = (uint16_t)l;
        memcpy(CMSG_DATA(c), &segsz, sizeof segsz);
      }
      d += k;
      n++;
    }
    first[n] = d;
    if (n == 0) { /* datagram `done` is out of bounds */
      status[done] = EINVAL;
      h->tx_errors++;
      done++;
      continue;
    }
    int r = sendmmsg(h->fd, msgs, n, MSG_DONTWAIT);
    if (r < 0) {
      int e = errno;
      if (e == EINTR) continue;
      if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) break;
      uint32_t k = first[1] - first[0];
      if (k > 1 && e != EMSGSIZE) {
        /* The kernel refused the GSO send: EIO when the path has no
         * checksum offload (stop using GSO here), EINVAL when a segment
         * exceeds the path MTU. Resend these one by one, so each gets its
         * own status. */
        if (e == EIO || e == EOPNOTSUPP) h->gso = false;
        solo_until = done + k;
        continue;
      }
      /* The first message failed: note it and go on with the next. */
      for (uint32_t j = 0; j < k; j++) status[done + j] = e;
      if (e == EMSGSIZE) h->tx_msgsize += k;
      else h->tx_errors += k;
      done += k;
      continue;
    }
    for (uint32_t j = 0; j < first[r]; j++) status[done + j] = 0;
    h->tx_frames += first[r];
    h->tx_packets += r;
    done += first[r];
  }
  return num(env, done);
}

/* pathMtu(ip) -> the kernel's current path MTU towards ip (IP_MTU on a
 * connected probe socket: it reflects PMTU learned from ICMP and EMSGSIZE). */
static napi_value path_mtu(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons(6783);
  if (argc < 1 || !get_ipv4(env, argv[0], &sa.sin_addr)) return throw_type(env, "pathMtu: ip must be an IPv4 address");
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int pmtu = IP_PMTUDISC_DO;
  setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "pathMtu connect", e);
  }
  int mtu = 0;
  socklen_t ml = sizeof mtu;
  if (getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &ml) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "IP_MTU", e);
  }
  close(fd);
  return num(env, mtu);
}

/* ---------- readiness ---------- */

static void on_poll(uv_poll_t *p, int status, int events) {
  io_handle *h = p->data;
  if (!h || !h->callback) return;
  napi_env env = h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, args[2], result;
  if (napi_get_reference_value(env, h->callback, &cb) == napi_ok && cb) {
    napi_get_global(env, &recv);
    napi_create_int32(env, status, &args[0]);
    napi_create_int32(env, events, &args[1]);
    if (napi_make_callback(env, h->async, recv, cb, 2, args, &result) == napi_pending_exception) {
      napi_value err;
      napi_get_and_clear_last_exception(env, &err);
      napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

/* pollStart(handle, events, cb): cb(status, events) on the loop thread
 * whenever the fd is readable (1) and/or writable (2). Level-triggered:
 * the callback repeats while data is left unread. */
static napi_value poll_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, "pollStart(handle, events, cb)");
  io_handle *h = get_handle(env, argv[0], 0);
  if (!h) return throw_type(env, "pollStart: bad handle");
  if (h->fd < 0) return throw_errno(env, "pollStart", EBADF);
  uint32_t events;
  if (!get_u32(env, argv[1], &events) || events == 0 || events > 3) return throw_type(env, "pollStart: events must be 1, 2 or 3");
  napi_valuetype t;
  if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) return throw_type(env, "pollStart: cb must be a function");
  if (!h->poll) {
    uv_loop_t *loop;
    CHECK(napi_get_uv_event_loop(env, &loop));
    h->poll = calloc(1, sizeof *h->poll);
    if (!h->poll) return throw_errno(env, "pollStart", ENOMEM);
    int r = uv_poll_init(loop, h->poll, h->fd);
    if (r < 0) {
      free(h->poll);
      h->poll = NULL;
      return throw_errno(env, "uv_poll_init", -r);
    }
    h->poll->data = h;
    napi_value res;
    napi_create_string_utf8(env, "meshnet_io.poll", NAPI_AUTO_LENGTH, &res);
    CHECK(napi_async_init(env, NULL, res, &h->async));
  }
  if (h->callback) napi_delete_reference(env, h->callback);
  CHECK(napi_create_reference(env, argv[2], 1, &h->callback));
  int r = uv_poll_start(h->poll, (int)events, on_poll);
  if (r < 0) return throw_errno(env, "uv_poll_start", -r);
  return NULL;
}

/* pollStop(handle): no more callbacks. */
static napi_value poll_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  io_handle *h = argc ? get_handle(env, argv[0], 0) : NULL;
  if (!h) return throw_type(env, "pollStop: bad handle");
  stop_poll(h);
  return NULL;
}

/* close(handle): stops polling and closes the fd. Idempotent. */
static napi_value close_fn(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  io_handle *h = argc ? get_handle(env, argv[0], 0) : NULL;
  if (!h) return throw_type(env, "close: bad handle");
  close_handle(h);
  h->pending = false;
  return NULL;
}

static void set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_set_named_property(env, obj, name, num(env, v));
}

/* stats(handle) -> counters. */
static napi_value stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  io_handle *h = argc ? get_handle(env, argv[0], 0) : NULL;
  if (!h) return throw_type(env, "stats: bad handle");
  napi_value o, drops;
  CHECK(napi_create_object(env, &o));
  CHECK(napi_create_object(env, &drops));
  set_num(env, o, "rxFrames", h->rx_frames);
  set_num(env, o, "rxPackets", h->rx_packets);
  set_num(env, o, "rxGso", h->rx_gso);
  set_num(env, o, "rxTruncated", h->rx_truncated);
  set_num(env, o, "rxErrors", h->rx_errors);
  set_num(env, o, "txFrames", h->tx_frames);
  set_num(env, o, "txPackets", h->tx_packets);
  set_num(env, o, "txGso", h->tx_gso);
  set_num(env, o, "txErrors", h->tx_errors);
  set_num(env, o, "txMsgSize", h->tx_msgsize);
  for (int i = 1; i < DROP_REASON_COUNT; i++) set_num(env, drops, drop_reason_names[i], h->drops[i]);
  napi_set_named_property(env, o, "drops", drops);
  return o;
}

static napi_value drop_reasons(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value arr;
  CHECK(napi_create_array_with_length(env, DROP_REASON_COUNT, &arr));
  for (uint32_t i = 0; i < DROP_REASON_COUNT; i++) {
    napi_value s;
    napi_create_string_utf8(env, drop_reason_names[i], NAPI_AUTO_LENGTH, &s);
    napi_set_element(env, arr, i, s);
  }
  return arr;
}

/* ---------- AEAD (ChaCha20-Poly1305, see aead.c) ---------- */

static bool get_key(napi_env env, napi_value v, uint8_t **key) {
  size_t n;
  return get_array(env, v, napi_uint8_array, (void **)key, &n) && n == 32;
}

/* aeadSeal(key, prefix, counterLo, counterHi, src, srcOffs, srcLens, dst,
 * dstOffs, count, aad, status) -> items sealed (their counters run on from
 * counterHi:counterLo in order). */
static napi_value aead_seal(napi_env env, napi_callback_info info) {
  size_t argc = 12;
  napi_value argv[12];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 12) return throw_type(env, "aeadSeal(key, prefix, counterLo, counterHi, src, srcOffs, srcLens, dst, dstOffs, count, aad, status)");
  uint8_t *key, *src, *dst;
  uint32_t prefix, lo, hi, *so, *sl, *dof, count, aad;
  int32_t *status;
  size_t scap, dcap, nso, nsl, ndo, nst;
  if (!get_key(env, argv[0], &key)) return throw_type(env, "aeadSeal: key must be 32 bytes");
  if (!get_u32(env, argv[1], &prefix) || !get_u32(env, argv[2], &lo) || !get_u32(env, argv[3], &hi)) return throw_type(env, "aeadSeal: prefix and counter must be u32 numbers");
  if (!get_array(env, argv[4], napi_uint8_array, (void **)&src, &scap)) return throw_type(env, "aeadSeal: src must be a Buffer");
  if (!get_array(env, argv[5], napi_uint32_array, (void **)&so, &nso)) return throw_type(env, "aeadSeal: srcOffs must be a Uint32Array");
  if (!get_array(env, argv[6], napi_uint32_array, (void **)&sl, &nsl)) return throw_type(env, "aeadSeal: srcLens must be a Uint32Array");
  if (!get_array(env, argv[7], napi_uint8_array, (void **)&dst, &dcap)) return throw_type(env, "aeadSeal: dst must be a Buffer");
  if (!get_array(env, argv[8], napi_uint32_array, (void **)&dof, &ndo)) return throw_type(env, "aeadSeal: dstOffs must be a Uint32Array");
  if (!get_u32(env, argv[10], &aad) || aad > 256) return throw_type(env, "aeadSeal: aad must be 0-256");
  if (!get_array(env, argv[11], napi_int32_array, (void **)&status, &nst)) return throw_type(env, "aeadSeal: status must be an Int32Array");
  if (!get_u32(env, argv[9], &count) || count > nso || count > nsl || count > ndo || count > nst) return throw_type(env, "aeadSeal: count exceeds the arrays");
  int r = aead_seal_batch(key, prefix, ((uint64_t)hi << 32) | lo, src, scap, so, sl, dst, dcap, dof, count, aad, status);
  if (r < 0) return throw_type(env, "aeadSeal: ChaCha20-Poly1305 unavailable in this Node's OpenSSL");
  return num(env, r);
}

/* aeadOpen(key, prefix, src, srcOffs, srcLens, dst, dstOffs, count, aad,
 * status, counters) -> items opened; status[i] = plaintext length or -1. */
static napi_value aead_open(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 11) return throw_type(env, "aeadOpen(key, prefix, src, srcOffs, srcLens, dst, dstOffs, count, aad, status, counters)");
  uint8_t *key, *src, *dst;
  uint32_t prefix, *so, *sl, *dof, count, aad, *ctrs;
  int32_t *status;
  size_t scap, dcap, nso, nsl, ndo, nst, nct;
  if (!get_key(env, argv[0], &key)) return throw_type(env, "aeadOpen: key must be 32 bytes");
  if (!get_u32(env, argv[1], &prefix)) return throw_type(env, "aeadOpen: prefix must be a u32 number");
  if (!get_array(env, argv[2], napi_uint8_array, (void **)&src, &scap)) return throw_type(env, "aeadOpen: src must be a Buffer");
  if (!get_array(env, argv[3], napi_uint32_array, (void **)&so, &nso)) return throw_type(env, "aeadOpen: srcOffs must be a Uint32Array");
  if (!get_array(env, argv[4], napi_uint32_array, (void **)&sl, &nsl)) return throw_type(env, "aeadOpen: srcLens must be a Uint32Array");
  if (!get_array(env, argv[5], napi_uint8_array, (void **)&dst, &dcap)) return throw_type(env, "aeadOpen: dst must be a Buffer");
  if (!get_array(env, argv[6], napi_uint32_array, (void **)&dof, &ndo)) return throw_type(env, "aeadOpen: dstOffs must be a Uint32Array");
  if (!get_u32(env, argv[8], &aad) || aad > 256) return throw_type(env, "aeadOpen: aad must be 0-256");
  if (!get_array(env, argv[9], napi_int32_array, (void **)&status, &nst)) return throw_type(env, "aeadOpen: status must be an Int32Array");
  if (!get_array(env, argv[10], napi_uint32_array, (void **)&ctrs, &nct)) return throw_type(env, "aeadOpen: counters must be a Uint32Array");
  if (!get_u32(env, argv[7], &count) || count > nso || count > nsl || count > ndo || count > nst || count > nct / 2) return throw_type(env, "aeadOpen: count exceeds the arrays");
  int r = aead_open_batch(key, prefix, src, scap, so, sl, dst, dcap, dof, count, aad, status, ctrs);
  if (r < 0) return throw_type(env, "aeadOpen: ChaCha20-Poly1305 unavailable in this Node's OpenSSL");
  return num(env, r);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tapOpen", NULL, tap_open, NULL, NULL, NULL, napi_default, NULL},
      {"tapRead", NULL, tap_read, NULL, NULL, NULL, napi_default, NULL},
      {"tapWrite", NULL, tap_write, NULL, NULL, NULL, napi_default, NULL},
      {"coalesceFrames", NULL, coalesce_frames, NULL, NULL, NULL, napi_default, NULL},
      {"segmentFrame", NULL, segment_frame, NULL, NULL, NULL, napi_default, NULL},
      {"udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_default, NULL},
      {"udpLocalPort", NULL, udp_local_port, NULL, NULL, NULL, napi_default, NULL},
      {"udpRecv", NULL, udp_recv, NULL, NULL, NULL, napi_default, NULL},
      {"udpSend", NULL, udp_send, NULL, NULL, NULL, napi_default, NULL},
      {"pathMtu", NULL, path_mtu, NULL, NULL, NULL, napi_default, NULL},
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_default, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_fn, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, stats, NULL, NULL, NULL, napi_default, NULL},
      {"aeadSeal", NULL, aead_seal, NULL, NULL, NULL, napi_default, NULL},
      {"aeadOpen", NULL, aead_open, NULL, NULL, NULL, napi_default, NULL},
      {"dropReasons", NULL, drop_reasons, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
