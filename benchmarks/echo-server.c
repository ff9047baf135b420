/*
 * The client's ceiling: a trivial server speaking the guest agent's framing (one JSON request
 * per line in, one reply line out) that does no real work. Replies are canned:
 *   guest-sync        {"return": <id copied from the request>}
 *   guest-file-open   {"return": 1}
 *   guest-file-read   {"return": {"count": N, "buf-b64": "AAAA...", "eof": false}}  (N = "count")
 *   guest-file-write  {"return": {"count": <decoded length of buf-b64>, "eof": false}}
 *   anything else     {"return": {}}
 * Replies for all complete lines of one read() leave in one writev(), so the server is never
 * the slower side. Usage: echo-server <socket path>. One client at a time, like qemu-ga.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_READ_COUNT (48u * 1024 * 1024)
#define MAX_IOV 512

static char *b64_as;        /* MAX_READ_COUNT bytes of zeros as base64: all 'A' */
static char *out;           /* small replies, packed */
static size_t out_cap = 1 << 20, out_len;
static struct iovec iov[MAX_IOV];
static int niov;

static int write_all(int fd) {
  struct iovec *v = iov;
  int n = niov;
  while (n > 0) {
    ssize_t w = writev(fd, v, n > 1024 ? 1024 : n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    while (n > 0 && (size_t)w >= v->iov_len) { w -= v->iov_len; v++; n--; }
    if (n > 0) { v->iov_base = (char *)v->iov_base + w; v->iov_len -= w; }
  }
  niov = 0; out_len = 0;
  return 0;
}

/* Appends small text to the packed buffer, as its own iovec (merged with the previous when adjacent). */
static int emit(int fd, const char *s, size_t len) {
  if (out_len + len > out_cap || niov >= MAX_IOV - 2) { if (write_all(fd) < 0) return -1; }
  memcpy(out + out_len, s, len);
  if (niov > 0 && (char *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == out + out_len) iov[niov - 1].iov_len += len;
  else { iov[niov].iov_base = out + out_len; iov[niov].iov_len = len; niov++; }
  out_len += len;
  return 0;
}

static long long number_after(const char *line, size_t len, const char *key) {
  const char *p = memmem(line, len, key, strlen(key));
  if (!p) return -1;
  p += strlen(key);
  while (p < line + len && (*p == ' ' || *p == ':')) p++;
  return strtoll(p, NULL, 10);
}

static int answer(int fd, const char *line, size_t len) {
  char small[256];
  if (memmem(line, len, "guest-sync", 10)) {
    const char *p = memmem(line, len, "\"id\"", 4);
    const char *q = p ? p + 4 : line + len;
    while (q < line + len && (*q == ' ' || *q == ':')) q++;
    const char *e = q;
    while (e < line + len && *e != '}' && *e != ',' && *e != ' ') e++;
    int n = snprintf(small, sizeof small, "{\"return\": %.*s}\n", (int)(e - q), q);
    return emit(fd, small, n);
  }
  if (memmem(line, len, "guest-file-open", 15)) return emit(fd, "{\"return\": 1}\n", 14);
  if (memmem(line, len, "guest-file-read", 15)) {
    long long count = number_after(line, len, "\"count\"");
    if (count < 0) count = 4096;
    if ((unsigned long long)count > MAX_READ_COUNT) count = MAX_READ_COUNT;
    int n = snprintf(small, sizeof small, "{\"return\": {\"count\": %lld, \"buf-b64\": \"", count);
    if (emit(fd, small, n) < 0) return -1;
    iov[niov].iov_base = b64_as; iov[niov].iov_len = (size_t)(count + 2) / 3 * 4; niov++;
    return emit(fd, "\", \"eof\": false}}\n", 18);
  }
  if (memmem(line, len, "guest-file-write", 16)) {
    const char *p = memmem(line, len, "\"buf-b64\"", 9);
    long long count = 0;
    if (p) {
      const char *q = memchr(p + 9, '"', line + len - (p + 9));
      const char *e = q ? memchr(q + 1, '"', line + len - (q + 1)) : NULL;
      if (q && e) {
        size_t b = (size_t)(e - q - 1);
        count = (long long)(b / 4 * 3);
        if (b >= 1 && e[-1] == '=') count--;
        if (b >= 2 && e[-2] == '=') count--;
      }
    }
    int n = snprintf(small, sizeof small, "{\"return\": {\"count\": %lld, \"eof\": false}}\n", count);
    return emit(fd, small, n);
  }
  return emit(fd, "{\"return\": {}}\n", 15);
}

static void serve(int fd) {
  /* Big enough for a 48 MiB write request, touched once: no page faults while serving. */
  static char *buf;
  static size_t cap = 80u << 20;
  size_t have = 0;
  if (!buf) { buf = malloc(cap); if (!buf) abort(); memset(buf, 0, cap); }
  for (;;) {
    if (have == cap) { cap *= 2; buf = realloc(buf, cap); if (!buf) abort(); }
    ssize_t r = read(fd, buf + have, cap - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    size_t scan_from = have;
    have += (size_t)r;
    size_t start = 0;
    char *nl;
    while ((nl = memchr(buf + scan_from, '\n', have - scan_from)) != NULL) {
      size_t end = (size_t)(nl - buf);
      if (answer(fd, buf + start, end - start) < 0) goto done;
      start = scan_from = end + 1;
    }
    if (niov > 0 && write_all(fd) < 0) break;
    if (start > 0) { memmove(buf, buf + start, have - start); have -= start; }
  }
done:
  niov = 0; out_len = 0;
  close(fd);
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: %s SOCKET\n", argv[0]); return 2; }
  signal(SIGPIPE, SIG_IGN);
  size_t b64_len = (MAX_READ_COUNT + 2) / 3 * 4;
  b64_as = malloc(b64_len);
  out = malloc(out_cap);
  if (!b64_as || !out) return 1;
  memset(b64_as, 'A', b64_len);
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen(argv[1]) >= sizeof addr.sun_path) { fprintf(stderr, "socket path too long\n"); return 2; }
  strcpy(addr.sun_path, argv[1]);
  unlink(argv[1]);
  if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(s, 1) < 0) { perror("echo-server"); return 1; }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) { if (errno == EINTR) continue; perror("accept"); return 1; }
    serve(c);
  }
}
