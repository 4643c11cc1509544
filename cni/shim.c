/*
 * meshnet CNI plugin shim. Runtimes start a CNI plugin for every ADD/DEL/...
 * with almost no environment, so this is a small static C program instead of
 * Node (which alone costs ~70 ms to start). It hands CNI_* and stdin to the
 * meshnet daemon as one HTTP/1.1 request on <runDir>/meshnet.sock and prints
 * the answer; all CNI logic lives in the daemon (router/cni/).
 *
 *   POST /cni  {"env":{"CNI_COMMAND":"ADD",...},"config":"<stdin as a string>"}
 *   200        body = our stdout; header X-Meshnet-Cni-Exit = our exit code
 *
 * Without the daemon (router/cni/offline.ts has the same table): VERSION is
 * always answered here; ADD, CHECK, GC -> error 11; STATUS -> error 50;
 * DEL -> the request is parked in <runDir>/cni-pending/ for the daemon to
 * finish, and succeeds. No dependencies beyond libc.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_IN (1 << 20)
#define MAX_OUT (1 << 20)
#define DEFAULT_RUN_DIR "/run/meshnet"

static const char *const VERSIONS[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define NVERSIONS (sizeof VERSIONS / sizeof VERSIONS[0])
static const char *cni_version = "1.1.0"; /* the config's, when we speak it */
extern char **environ;

typedef struct { char *p; size_t len, cap; } buf;

static void put(buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { fputs("meshnet: out of memory\n", stderr); exit(1); }
    b->p = p; b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

/* A JSON string literal. Bytes >= 0x80 pass through (UTF-8 stays UTF-8). */
static void put_json(buf *b, const char *s, size_t n) {
  char esc[8];
  put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
    else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); put(b, esc, 6); }
    else put(b, (const char *)&s[i], 1);
  }
  put(b, "\"", 1);
}

static int fail(int code, const char *msg, const char *details) {
  buf b = {0};
  char num[16];
  puts_(&b, "{\"cniVersion\":");
  put_json(&b, cni_version, strlen(cni_version));
  snprintf(num, sizeof num, ",\"code\":%d", code);
  puts_(&b, num);
  puts_(&b, ",\"msg\":");
  put_json(&b, msg, strlen(msg));
  if (details && *details) { puts_(&b, ",\"details\":"); put_json(&b, details, strlen(details)); }
  puts_(&b, "}\n");
  fwrite(b.p, 1, b.len, stdout);
  return 1;
}

/* ---- just enough JSON to read two top-level string fields of stdin ---- */
static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}
static const char *skip_str(const char *p, const char *e) { /* p at '"' */
  for (p++; p < e; p++) {
    if (*p == '\\') { p++; continue; }
    if (*p == '"') return p + 1;
  }
  return NULL;
}
static const char *skip_val(const char *p, const char *e) {
  if (p >= e) return NULL;
  if (*p == '"') return skip_str(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    while (p < e) {
      if (*p == '"') { if (!(p = skip_str(p, e))) return NULL; continue; }
      if (*p == '{' || *p == '[') depth++;
      else if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
      p++;
    }
    return NULL;
  }
  const char *start = p; /* a number, true, false or null: never empty */
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
  return p == start ? NULL : p;
}
/* Copy a string value without escapes other than \" \\ \/; 0 on success. */
static int get_str(const char *p, const char *e, char *out, size_t cap) {
  size_t n = 0;
  for (p++; p < e; p++) {
    char c = *p;
    if (c == '"') { out[n] = 0; return 0; }
    if ((unsigned char)c < 0x20) return -1;
    if (c == '\\') {
      if (++p >= e || (*p != '"' && *p != '\\' && *p != '/')) return -1;
      c = *p;
    }
    if (n + 1 >= cap) return -1;
    out[n++] = c;
  }
  return -1;
}
/* Read runDir and cniVersion; 0 when stdin is one well-formed JSON object at the top level. */
static int scan_config(const char *in, size_t len, char *run_dir, size_t rcap, char *ver, size_t vcap) {
  const char *e = in + len, *p = ws(in, e);
  if (p >= e || *p != '{') return -1;
  p = ws(p + 1, e);
  if (p < e && *p == '}') return ws(p + 1, e) == e ? 0 : -1;
  while (p < e && *p == '"') {
    const char *key = p + 1, *q = skip_str(p, e);
    if (!q) return -1;
    size_t klen = (size_t)(q - key - 1);
    p = ws(q, e);
    if (p >= e || *p != ':') return -1;
    p = ws(p + 1, e);
    if (p < e && *p == '"') {
      if (klen == 6 && !memcmp(key, "runDir", 6) && get_str(p, e, run_dir, rcap)) run_dir[0] = 0;
      if (klen == 10 && !memcmp(key, "cniVersion", 10) && get_str(p, e, ver, vcap)) ver[0] = 0;
    }
    if (!(p = skip_val(p, e)) || p == e) return -1;
    p = ws(p, e);
    if (p < e && *p == '}') return ws(p + 1, e) == e ? 0 : -1;
    if (p >= e || *p != ',') return -1;
    p = ws(p + 1, e);
  }
  return -1;
}

/* ---- the request ---- */
static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Has `r` a complete response? Sets body/length/exit code. -1 incomplete, -2 malformed. */
static int parse_response(buf *r, int eof, const char **body, size_t *blen, int *code) {
  char *end = r->p ? strstr(r->p, "\r\n\r\n") : NULL;
  if (!end) return eof ? -2 : -1;
  if (strncmp(r->p, "HTTP/1.", 7) || r->len < 12 || strncmp(r->p + 8, " 200", 4)) return -2;
  long clen = -1;
  int have_code = 0;
  for (char *l = strstr(r->p, "\r\n") + 2; l < end; l = strstr(l, "\r\n") + 2) {
    if (!strncasecmp(l, "x-meshnet-cni-exit:", 19)) { *code = atoi(l + 19); have_code = 1; }
    else if (!strncasecmp(l, "content-length:", 15)) clen = strtol(l + 15, NULL, 10);
  }
  if (!have_code) return -2;
  *body = end + 4;
  size_t have = r->len - (size_t)(end + 4 - r->p);
  if (clen >= 0) {
    if (have < (size_t)clen) return eof ? -2 : -1;
    *blen = (size_t)clen;
    return 0;
  }
  if (!eof) return -1; /* no length: the daemon closes the connection after the body */
  *blen = have;
  return 0;
}

static int talk(const char *sock, const buf *req, buf *resp, int timeout_ms, char *why, size_t wcap) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof sa.sun_path) { snprintf(why, wcap, "socket path %s is too long", sock); return -1; }
  strcpy(sa.sun_path, sock);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) { snprintf(why, wcap, "socket: %s", strerror(errno)); return -1; }
  struct timeval tv = {.tv_sec = 5}; /* bounds connect() and each send() */
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    snprintf(why, wcap, "%s: %s", sock, strerror(errno)); close(fd); return -1;
  }
  for (size_t off = 0; off < req->len;) {
    ssize_t n = send(fd, req->p + off, req->len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) { snprintf(why, wcap, "%s: send: %s", sock, strerror(errno)); close(fd); return -1; }
    off += (size_t)n;
  }
  long long deadline = now_ms() + timeout_ms;
  char chunk[16384];
  for (;;) {
    long long left = deadline - now_ms();
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) { snprintf(why, wcap, "%s: no answer within %d ms", sock, timeout_ms); close(fd); return -1; }
    ssize_t n = pr < 0 ? -1 : read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { snprintf(why, wcap, "%s: read: %s", sock, strerror(errno)); close(fd); return -1; }
    if (n > 0) put(resp, chunk, (size_t)n);
    if (resp->len > MAX_OUT) { snprintf(why, wcap, "%s: answer too large", sock); close(fd); return -1; }
    const char *body; size_t blen; int code;
    int st = parse_response(resp, n == 0, &body, &blen, &code);
    if (st == -1) continue;
    close(fd);
    if (st == -2) { snprintf(why, wcap, "%s: not a meshnet answer", sock); return -1; }
    fwrite(body, 1, blen, stdout);
    return code < 0 || code > 255 ? 1 : code;
  }
}

/* mkdir -p; 0 on success. */
static int mkdirs(char *path, mode_t mode) {
  for (char *s = path + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    int r = mkdir(path, 0755);
    *s = '/';
    if (r && errno != EEXIST) return -1;
  }
  return mkdir(path, mode) && errno != EEXIST ? -1 : 0;
}

/* Park a DEL for the daemon: temp file, fsync, rename, fsync the directory. */
static int park(const char *run_dir, const buf *body, char *why, size_t wcap) {
  char dir[256], tmp[320], path[320];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(dir, sizeof dir, "%s/cni-pending", run_dir);
  if (mkdirs(dir, 0700)) { snprintf(why, wcap, "mkdir %s: %s", dir, strerror(errno)); return -1; }
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  snprintf(path, sizeof path, "%s/del-%013lld-%d-%08lx.json", dir, ms, (int)getpid(), (unsigned long)ts.tv_nsec);
  snprintf(tmp, sizeof tmp, "%s/.tmp-del-%013lld-%d.json", dir, ms, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) { snprintf(why, wcap, "open %s: %s", tmp, strerror(errno)); return -1; }
  size_t off = 0;
  while (off < body->len) {
    ssize_t n = write(fd, body->p + off, body->len - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += (size_t)n;
  }
  int ok = off == body->len && fsync(fd) == 0;
  if (close(fd) || !ok || rename(tmp, path)) {
    snprintf(why, wcap, "write %s: %s", path, strerror(errno)); unlink(tmp); return -1;
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { fsync(dfd); close(dfd); }
  return 0;
}

int main(void) {
  buf in = {0}, body = {0}, req = {0}, resp = {0};
  char chunk[16384], run_dir[200] = DEFAULT_RUN_DIR, ver[32] = "", why[512] = "", msg[1024];
  signal(SIGPIPE, SIG_IGN);
  for (;;) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(5, "cannot read the network config from stdin", strerror(errno));
    if (n == 0) break;
    put(&in, chunk, (size_t)n);
    if (in.len > MAX_IN) return fail(5, "network config on stdin is larger than 1 MiB", "");
  }
  int well_formed = scan_config(in.p ? in.p : "", in.len, run_dir, sizeof run_dir, ver, sizeof ver) == 0;
  for (size_t i = 0; i < NVERSIONS; i++) if (!strcmp(ver, VERSIONS[i])) cni_version = VERSIONS[i];
  const char *cmd = getenv("CNI_COMMAND");
  if (!cmd) cmd = "";

  if (!strcmp(cmd, "VERSION")) {
    printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[", cni_version);
    for (size_t i = 0; i < NVERSIONS; i++) printf("%s\"%s\"", i ? "," : "", VERSIONS[i]);
    puts("]}");
    return 0;
  }
  /* Without a readable config we cannot know which daemon to ask (runDir). */
  if (!well_formed) return fail(6, "network config on stdin is not a well-formed JSON object", "");
  if (run_dir[0] != '/') return fail(7, "network config field \"runDir\" must be an absolute path", run_dir);

  puts_(&body, "{\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (strncmp(*e, "CNI_", 4) || !eq) continue;
    if (!first) puts_(&body, ",");
    first = 0;
    put_json(&body, *e, (size_t)(eq - *e));
    puts_(&body, ":");
    put_json(&body, eq + 1, strlen(eq + 1));
  }
  puts_(&body, "},\"config\":");
  put_json(&body, in.p ? in.p : "", in.len);
  puts_(&body, "}");
  snprintf(msg, sizeof msg,
           "POST /cni HTTP/1.1\r\nHost: meshnet\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\nConnection: close\r\n\r\n", body.len);
  puts_(&req, msg);
  put(&req, body.p, body.len);

  char sock[300];
  snprintf(sock, sizeof sock, "%s/meshnet.sock", run_dir);
  int timeout_ms = !strcmp(cmd, "STATUS") ? 10000 : !strcmp(cmd, "DEL") ? 30000 : 120000;
  int rc = talk(sock, &req, &resp, timeout_ms, why, sizeof why);
  if (rc >= 0) return rc;

  /* The daemon is not there (or not answering): answer by ourselves. */
  snprintf(msg, sizeof msg, "meshnet daemon not reachable: %s", why);
  if (!strcmp(cmd, "DEL")) {
    char pwhy[512];
    if (park(run_dir, &body, pwhy, sizeof pwhy) == 0) return 0;
    snprintf(msg, sizeof msg, "meshnet daemon not reachable (%s) and the DEL could not be parked", why);
    return fail(5, msg, pwhy);
  }
  if (!strcmp(cmd, "STATUS")) return fail(50, msg, "");
  if (!strcmp(cmd, "ADD") || !strcmp(cmd, "CHECK") || !strcmp(cmd, "GC"))
    return fail(11, msg, "start it with \"meshnet launch\"");
  if (!*cmd) return fail(4, "CNI_COMMAND is missing", "");
  snprintf(msg, sizeof msg, "unknown CNI_COMMAND=\"%.64s\"", cmd);
  return fail(4, msg, "");
}
