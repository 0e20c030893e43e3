/* Errors and growable strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

const char *s2s_status_name(s2s_status code) {
  switch (code) {
    case S2S_OK: return "ok";
    case S2S_ERR_INPUT: return "input";
    case S2S_ERR_BUNDLE: return "bundle";
    case S2S_ERR_ENGINE: return "engine";
    case S2S_ERR_OPTION: return "option";
    case S2S_ERR_MEMORY: return "memory";
  }
  return "unknown";
}

s2s_status s2s_fail(s2s_error *err, s2s_status code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

void s2s_error_prefix(s2s_error *err, const char *fmt, ...) {
  if (!err) return;
  char head[S2S_MESSAGE_MAX], old[S2S_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(head, sizeof head, fmt, ap);
  va_end(ap);
  memcpy(old, err->message, sizeof old);
  snprintf(err->message, sizeof err->message, "%.500s: %.*s", head, (int)(sizeof old - 504), old);
}

static void buf_reserve(s2s_buf *b, size_t extra) {
  if (b->failed) return;
  if (b->len + extra + 1 <= b->cap) return;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + extra + 1) cap *= 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->failed = 1;
    return;
  }
  b->data = p;
  b->cap = cap;
}

void buf_append(s2s_buf *b, const char *s, size_t n) {
  buf_reserve(b, n);
  if (b->failed) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void buf_puts(s2s_buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_printf(s2s_buf *b, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    buf_append(b, small, (size_t)n);
    return;
  }
  buf_reserve(b, (size_t)n);
  if (b->failed) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void buf_free(s2s_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}
