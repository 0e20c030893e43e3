/* The text policy, as in the Python runtime (runtime/text.py, preprocessing.py) and the JavaScript one
 * (js/src/text.js): UTF-8 in, NFC (utf8proc), `char` or `space` tokens, ids 0/1/2 reserved, limits checked
 * before any work, unknown symbols an error naming them the way Python's repr() would. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "internal.h"

size_t utf8_next(const unsigned char *s, size_t len, int32_t *cp) {
  if (!len) return 0;
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = (int32_t)c;
    return 1;
  }
  size_t n;
  int32_t v, min;
  if ((c & 0xE0) == 0xC0) n = 2, v = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, v = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 4, v = c & 0x07, min = 0x10000;
  else return 0;
  if (len < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
  *cp = v;
  return n;
}

size_t utf8_invalid_at(const char *s, size_t len) {
  size_t i = 0;
  int32_t cp;
  while (i < len) {
    size_t n = utf8_next((const unsigned char *)s + i, len - i, &cp);
    if (!n) return i;
    i += n;
  }
  return len;
}

size_t utf8_count(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
  return n;
}

/* Python's str.isspace(): what str.split() splits on. */
static int py_space(int32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Python's str.isprintable() for one code point: false for the categories Cc Cf Cs Co Cn Zl Zp Zs, but the space. */
static int py_printable(int32_t c) {
  if (c == ' ') return 1;
  switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
      return 0;
    default:
      return 1;
  }
}

void py_repr(s2s_buf *out, const char *s, size_t len) {
  int has_single = memchr(s, '\'', len) != NULL, has_double = memchr(s, '"', len) != NULL;
  char quote = has_single && !has_double ? '"' : '\'';
  buf_append(out, &quote, 1);
  size_t i = 0;
  while (i < len) {
    int32_t c;
    size_t n = utf8_next((const unsigned char *)s + i, len - i, &c);
    if (!n) { /* not reached for checked text; a byte outside UTF-8 shows as Python shows it (surrogateescape) */
      buf_printf(out, "\\udc%02x", (unsigned char)s[i]);
      i++;
      continue;
    }
    if (c == '\\' || c == quote) {
      buf_append(out, "\\", 1);
      buf_append(out, s + i, 1);
    } else if (c == '\n') buf_puts(out, "\\n");
    else if (c == '\r') buf_puts(out, "\\r");
    else if (c == '\t') buf_puts(out, "\\t");
    else if (!py_printable(c)) {
      if (c < 0x100) buf_printf(out, "\\x%02x", (unsigned)c);
      else if (c < 0x10000) buf_printf(out, "\\u%04x", (unsigned)c);
      else buf_printf(out, "\\U%08x", (unsigned)c);
    } else buf_append(out, s + i, n);
    i += n;
  }
  buf_append(out, &quote, 1);
}

void describe_symbol(s2s_buf *out, const char *s, size_t len) {
  int32_t c;
  size_t n = utf8_next((const unsigned char *)s, len, &c);
  if (n && n == len && !py_printable(c)) buf_printf(out, "U+%04X", (unsigned)c);
  else py_repr(out, s, len);
}

/* ---- vocabulary lookup: ids sorted by their token's bytes, binary search (no hash an input can flood) ---- */
static int bytes_cmp(const char *a, size_t la, const char *b, size_t lb) {
  int c = memcmp(a, b, la < lb ? la : lb);
  return c ? c : (la > lb) - (la < lb);
}

typedef struct {
  const char *s;
  size_t len;
  int32_t id;
} token_ref;

static int ref_cmp(const void *x, const void *y) {
  const token_ref *a = x, *b = y;
  int c = bytes_cmp(a->s, a->len, b->s, b->len);
  return c ? c : (a->id > b->id) - (a->id < b->id);
}

int vocab_index(s2s_vocab *v) { /* no shared state: loads may run in parallel threads */
  token_ref *refs = malloc((v->n ? v->n : 1) * sizeof *refs);
  v->sorted = malloc((v->n ? v->n : 1) * sizeof *v->sorted);
  if (!refs || !v->sorted) {
    free(refs);
    return -1;
  }
  for (size_t i = 0; i < v->n; i++) refs[i] = (token_ref){v->tokens[i], v->lens[i], (int32_t)i};
  qsort(refs, v->n, sizeof *refs, ref_cmp);
  for (size_t i = 0; i < v->n; i++) v->sorted[i] = refs[i].id;
  free(refs);
  return 0;
}

int32_t vocab_duplicate(const s2s_vocab *v) {
  for (size_t i = 1; i < v->n; i++) {
    int32_t a = v->sorted[i - 1], b = v->sorted[i];
    if (!bytes_cmp(v->tokens[a], v->lens[a], v->tokens[b], v->lens[b])) return b;
  }
  return -1;
}

int32_t vocab_find(const s2s_vocab *v, const char *s, size_t len) {
  size_t lo = 0, hi = v->n;
  while (lo < hi) { /* the first id whose token is >= s; equal tokens: the smallest id first */
    size_t mid = lo + (hi - lo) / 2;
    int32_t id = v->sorted[mid];
    if (bytes_cmp(v->tokens[id], v->lens[id], s, len) < 0) lo = mid + 1;
    else hi = mid;
  }
  if (lo < v->n) {
    int32_t id = v->sorted[lo];
    if (!bytes_cmp(v->tokens[id], v->lens[id], s, len)) return id;
  }
  return -1;
}

void vocab_free(s2s_vocab *v) {
  for (size_t i = 0; i < v->n; i++) free(v->tokens[i]);
  free(v->tokens);
  free(v->lens);
  free(v->sorted);
  memset(v, 0, sizeof *v);
}

/* ---- encoding one input ---- */
typedef struct {
  const char *s;
  size_t len;
} span;

/* The next token of `text` from *pos, or 0 at the end. */
static int next_token(const char *text, size_t len, size_t *pos, int tokenization, span *tok) {
  int32_t c;
  if (tokenization == S2S_TOK_CHAR) {
    if (*pos >= len) return 0;
    size_t n = utf8_next((const unsigned char *)text + *pos, len - *pos, &c);
    tok->s = text + *pos;
    tok->len = n;
    *pos += n;
    return 1;
  }
  size_t i = *pos, n;
  while (i < len && (n = utf8_next((const unsigned char *)text + i, len - i, &c)) && py_space(c)) i += n;
  if (i >= len) return 0;
  size_t start = i;
  while (i < len && (n = utf8_next((const unsigned char *)text + i, len - i, &c)) && !py_space(c)) i += n;
  tok->s = text + start;
  tok->len = i - start;
  *pos = i;
  return 1;
}

static int only_space_or_tab(span t) { return t.len == 1 && (t.s[0] == ' ' || t.s[0] == '\t'); }

static int contains(const char *hay, size_t n, char c) { return memchr(hay, c, n) != NULL; }

static s2s_status unknown_error(const char *text, size_t len, const span *unknown, size_t n_unknown,
                                s2s_error *err) {
  s2s_buf msg = {0};
  buf_printf(&msg, "input has %zu symbol(s) the model never saw: ", n_unknown);
  for (size_t i = 0; i < n_unknown && i < 10; i++) {
    if (i) buf_puts(&msg, ", ");
    describe_symbol(&msg, unknown[i].s, unknown[i].len);
  }
  if (n_unknown > 10) buf_puts(&msg, " ...");
  size_t a = 0, b = len;
  while (a < b && (text[a] == ' ' || text[a] == '\t')) a++;
  while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t')) b--;
  int around = 1;
  for (size_t i = 0; i < n_unknown && around; i++) {
    around = only_space_or_tab(unknown[i]) && !contains(text + a, b - a, unknown[i].s[0]);
  }
  if (around) buf_puts(&msg, "; it is whitespace around the text, which the model's inputs never had: strip it");
  s2s_status st = msg.failed ? s2s_fail(err, S2S_ERR_MEMORY, "out of memory")
                             : s2s_fail(err, S2S_ERR_INPUT, "%s", msg.data);
  buf_free(&msg);
  return st;
}

typedef struct {
  span tok;
  size_t at; /* order of appearance */
} unknown_symbol;

static int unknown_cmp(const void *x, const void *y) {
  const unknown_symbol *a = x, *b = y;
  int c = bytes_cmp(a->tok.s, a->tok.len, b->tok.s, b->tok.len);
  return c ? c : (a->at > b->at) - (a->at < b->at);
}

static int appearance_cmp(const void *x, const void *y) {
  const unknown_symbol *a = x, *b = y;
  return (a->at > b->at) - (a->at < b->at);
}

/* The distinct symbols of list[0..n) in order of first appearance, in place; returns how many. O(n log n). */
static size_t distinct_in_order(unknown_symbol *list, size_t n) {
  qsort(list, n, sizeof *list, unknown_cmp);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!k || bytes_cmp(list[k - 1].tok.s, list[k - 1].tok.len, list[i].tok.s, list[i].tok.len)) list[k++] = list[i];
  }
  qsort(list, k, sizeof *list, appearance_cmp);
  return k;
}

static s2s_status encode_normalized(const s2s_manifest *m, const char *text, size_t len, int skip_unknown,
                                    int32_t *ids, size_t *n_ids, s2s_error *err) {
  const s2s_vocab *v = &m->input;
  unknown_symbol *unknown = NULL;
  span tok;
  size_t n_unknown = 0, count = 0, pos = 0;
  while (next_token(text, len, &pos, v->tokenization, &tok)) {
    int32_t id = vocab_find(v, tok.s, tok.len);
    if (id < S2S_N_SPECIAL) { /* not in the vocabulary, or a reserved token */
      if (v->unknown_id < 0) {
        if (!unknown && !(unknown = malloc((len + 1) * sizeof *unknown))) { /* at most one per byte */
          return s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
        }
        unknown[n_unknown].tok = tok;
        unknown[n_unknown].at = n_unknown;
        n_unknown++;
        continue;
      }
      id = v->unknown_id;
    }
    if (count < m->max_input_tokens) ids[count] = id;
    count++;
  }
  s2s_status st = S2S_OK;
  if (n_unknown && !skip_unknown) {
    n_unknown = distinct_in_order(unknown, n_unknown);
    span *shown = malloc(n_unknown * sizeof *shown);
    if (!shown) st = s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
    else {
      for (size_t i = 0; i < n_unknown; i++) shown[i] = unknown[i].tok;
      st = unknown_error(text, len, shown, n_unknown, err);
      free(shown);
    }
  } else if (count > m->max_input_tokens) {
    st = s2s_fail(err, S2S_ERR_INPUT, "input is %zu tokens long; the model takes at most %zu", count,
                  m->max_input_tokens);
  }
  free(unknown);
  if (st == S2S_OK) *n_ids = count;
  return st;
}

s2s_status s2s_manifest_encode_input(const s2s_manifest *m, const char *text, size_t len, int skip_unknown,
                                     int32_t *ids, size_t *n_ids, s2s_error *err) {
  if (!m || (!text && len) || !ids || !n_ids) return s2s_fail(err, S2S_ERR_OPTION, "NULL argument");
  *n_ids = 0;
  if (!len) return S2S_OK;
  size_t bad = utf8_invalid_at(text, len);
  if (bad < len) {
    return s2s_fail(err, S2S_ERR_INPUT, "not valid UTF-8: byte 0x%02X at column %zu", (unsigned char)text[bad],
                    utf8_count(text, bad) + 1);
  }
  size_t chars = utf8_count(text, len);
  if (chars > s2s_manifest_max_input_chars(m)) {
    return s2s_fail(err, S2S_ERR_INPUT, "input is %zu characters long; the model takes at most %zu tokens", chars,
                    m->max_input_tokens);
  }
  utf8proc_uint8_t *nfc = NULL;
  utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)len, &nfc,
                                    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
  if (n < 0) {
    return s2s_fail(err, n == UTF8PROC_ERROR_NOMEM ? S2S_ERR_MEMORY : S2S_ERR_INPUT, "cannot normalize the input: %s",
                    utf8proc_errmsg(n));
  }
  s2s_status st = encode_normalized(m, (const char *)nfc, (size_t)n, skip_unknown, ids, n_ids, err);
  free(nfc);
  return st;
}
