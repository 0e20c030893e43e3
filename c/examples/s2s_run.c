/* s2s-run: decode the lines of standard input with a bundle, one output per line, like `s2s run BUNDLE`.
 *
 *   printf '3\n14\n' | s2s-run BUNDLE [--variant int8] [--one-call] [--batch-size N] [--skip-unknown]
 *
 * Lines are decoded in batches of up to N as they arrive: a batch goes out when it is full, when standard input
 * pauses (a caller that writes one line and waits gets its answer) or when it ends. A line that cannot be encoded
 * stops the run with one message naming it, after the outputs of the lines before it. Exit status 2 for a user
 * error (a bad argument, bundle or line), as `s2s run`; 1 when ONNX Runtime fails or memory runs out. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "s2s.h"

#define USER_ERROR 2

static int usage(void) {
  fprintf(stderr, "usage: s2s-run BUNDLE [--variant fp32|int8] [--one-call] [--batch-size N] [--skip-unknown]\n");
  return USER_ERROR;
}

/* Standard input through our own buffer, so that we know when nothing is left to read without blocking. */
typedef struct {
  char buf[1 << 16];
  size_t start, end;
  int eof, error; /* error: the errno of a failed read */
} line_reader;

enum { LINE_OK, LINE_EOF, LINE_TOO_LONG, LINE_NUL, LINE_ERROR };

/* 1 when a read would block: nothing buffered and no byte waiting on the descriptor. */
static int input_paused(const line_reader *r) {
  if (r->start < r->end || r->eof) return 0;
  struct pollfd p = {STDIN_FILENO, POLLIN, 0};
  return poll(&p, 1, 0) == 0;
}

static int next_byte(line_reader *r) {
  if (r->start == r->end) {
    if (r->eof) return EOF;
    ssize_t n;
    do n = read(STDIN_FILENO, r->buf, sizeof r->buf);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
      r->eof = 1;
      r->error = n < 0 ? errno : 0;
      return n < 0 ? -2 : EOF;
    }
    r->start = 0;
    r->end = (size_t)n;
  }
  return (unsigned char)r->buf[r->start++];
}

/* One line into line[0..max] without its "\n" or "\r\n", reading at most max + 1 bytes of it. */
static int read_line(line_reader *r, char *line, size_t max) {
  size_t len = 0;
  int c, nul = 0;
  while ((c = next_byte(r)) >= 0 && c != '\n') {
    if (len == max) return LINE_TOO_LONG;
    nul |= c == '\0';
    line[len++] = (char)c;
  }
  if (c == -2) return LINE_ERROR;
  if (c == EOF && len == 0) return LINE_EOF;
  if (len && line[len - 1] == '\r') len--;
  line[len] = '\0';
  return nul ? LINE_NUL : LINE_OK;
}

/* Decode lines[0..n) and print them; on an input error, name the line (first_line is the first one's number)
 * after printing the outputs of the lines before it. Returns 0 or an exit status. */
static int flush(s2s_decoder *d, char **lines, size_t n, size_t first_line, const s2s_decode_options *o) {
  if (!n) return 0;
  s2s_result *out = calloc(n, sizeof *out);
  s2s_error err;
  if (!out) return fprintf(stderr, "s2s-run: out of memory\n"), 1;
  s2s_status st = s2s_decode_batch(d, (const char *const *)lines, n, o, out, &err);
  if (st == S2S_ERR_INPUT) { /* find the line: the batch's message counts items, the user counts lines */
    for (size_t i = 0; i < n; i++) {
      s2s_result one;
      if (s2s_decode(d, lines[i], o, &one, &err) != S2S_OK) {
        fprintf(stderr, "s2s-run: line %zu: %s\n", first_line + i, err.message);
        break;
      }
      puts(one.text);
      s2s_result_clear(&one);
    }
  } else if (st == S2S_OK) {
    for (size_t i = 0; i < n; i++) puts(out[i].text);
  } else fprintf(stderr, "s2s-run: %s\n", err.message);
  for (size_t i = 0; i < n; i++) s2s_result_clear(&out[i]);
  free(out);
  fflush(stdout);
  return st == S2S_OK ? 0 : st == S2S_ERR_MEMORY || st == S2S_ERR_ENGINE ? 1 : USER_ERROR;
}

static int parse_args(int argc, char **argv, const char **bundle, s2s_load_options *lo, s2s_decode_options *o) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--variant") && i + 1 < argc) lo->variant = argv[++i];
    else if (!strcmp(argv[i], "--one-call")) lo->one_call = 1;
    else if (!strcmp(argv[i], "--skip-unknown")) o->skip_unknown = 1;
    else if (!strcmp(argv[i], "--batch-size") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 4096) {
        fprintf(stderr, "s2s-run: --batch-size must be an integer from 1 to 4096, got '%s'\n", argv[i]);
        return USER_ERROR;
      }
      o->batch_size = (size_t)v;
    } else if (argv[i][0] == '-' || *bundle) return usage();
    else *bundle = argv[i];
  }
  return *bundle ? 0 : usage();
}

int main(int argc, char **argv) {
  s2s_load_options lo;
  s2s_decode_options o;
  s2s_load_options_init(&lo);
  s2s_decode_options_init(&o);
  const char *bundle = NULL;
  int rc = parse_args(argc, argv, &bundle, &lo, &o);
  if (rc) return rc;
  s2s_decoder *d;
  s2s_error err;
  if (s2s_load(bundle, &lo, &d, &err) != S2S_OK) {
    fprintf(stderr, "s2s-run: %s\n", err.message);
    return err.code == S2S_ERR_MEMORY || err.code == S2S_ERR_ENGINE ? 1 : USER_ERROR;
  }
  /* a line longer than any input the model takes is refused without holding it whole */
  size_t max_line = s2s_manifest_max_input_chars(s2s_decoder_manifest(d)) * 4 + 2;
  char **lines = calloc(o.batch_size, sizeof *lines);
  char *line = malloc(max_line + 1);
  line_reader *in = calloc(1, sizeof *in);
  size_t n = 0, line_no = 0;
  rc = lines && line && in ? 0 : 1;
  int status = LINE_OK;
  while (!rc) {
    if (n && input_paused(in)) { /* answer what has come before waiting for more */
      rc = flush(d, lines, n, line_no - n + 1, &o);
      while (n) free(lines[--n]);
      if (rc) break;
    }
    if ((status = read_line(in, line, max_line)) == LINE_EOF) break;
    line_no++;
    if (status != LINE_OK) { /* the lines before it are decoded first */
      rc = flush(d, lines, n, line_no - n, &o);
      while (n) free(lines[--n]);
      if (rc) break;
      if (status == LINE_TOO_LONG) {
        fprintf(stderr, "s2s-run: line %zu: longer than %zu bytes; the model takes at most %zu tokens\n", line_no,
                max_line, s2s_manifest_max_input_tokens(s2s_decoder_manifest(d)));
      } else if (status == LINE_NUL) fprintf(stderr, "s2s-run: line %zu: has a NUL byte\n", line_no);
      else fprintf(stderr, "s2s-run: cannot read standard input: %s\n", strerror(in->error));
      rc = USER_ERROR;
      break;
    }
    if (!(lines[n] = strdup(line))) rc = 1;
    else if (++n == o.batch_size) {
      rc = flush(d, lines, n, line_no - n + 1, &o);
      while (n) free(lines[--n]);
    }
  }
  if (!rc) rc = flush(d, lines, n, line_no - n + 1, &o);
  while (n) free(lines[--n]);
  free(lines);
  free(line);
  free(in);
  s2s_decoder_free(d);
  return rc;
}
