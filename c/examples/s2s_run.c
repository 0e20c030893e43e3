/* s2s-run: decode the lines of standard input with a bundle, one output per line, like `s2s run BUNDLE`.
 *
 *   printf '3\n14\n' | s2s-run BUNDLE [--variant int8] [--one-call] [--batch-size N] [--skip-unknown]
 *
 * Lines are decoded in batches as they arrive (a batch is sent when it is full or standard input ends). A line
 * that cannot be encoded stops the run with one message naming it; the outputs of the lines before it are out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s2s.h"

static int usage(void) {
  fprintf(stderr, "usage: s2s-run BUNDLE [--variant fp32|int8] [--one-call] [--batch-size N] [--skip-unknown]\n");
  return 2;
}

static int fail(const s2s_error *err) {
  fprintf(stderr, "s2s-run: %s\n", err->message);
  return 1;
}

enum { LINE_OK, LINE_EOF, LINE_TOO_LONG, LINE_NUL };

/* One line of `in` into line[0..max] without its "\n" or "\r\n", reading at most max + 1 bytes of it. */
static int read_line(FILE *in, char *line, size_t max) {
  size_t len = 0;
  int c, nul = 0;
  while ((c = getc(in)) != EOF && c != '\n') {
    if (len == max) return LINE_TOO_LONG;
    nul |= c == '\0';
    line[len++] = (char)c;
  }
  if (c == EOF && len == 0) return LINE_EOF;
  if (len && line[len - 1] == '\r') len--;
  line[len] = '\0';
  return nul ? LINE_NUL : LINE_OK;
}

/* Decode lines[0..n) and print them; on an input error, name the line (first_line is the first one's number). */
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
  } else fail(&err);
  for (size_t i = 0; i < n; i++) s2s_result_clear(&out[i]);
  free(out);
  fflush(stdout);
  return st == S2S_OK ? 0 : 1;
}

int main(int argc, char **argv) {
  s2s_load_options lo;
  s2s_decode_options o;
  s2s_load_options_init(&lo);
  s2s_decode_options_init(&o);
  const char *bundle = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--variant") && i + 1 < argc) lo.variant = argv[++i];
    else if (!strcmp(argv[i], "--one-call")) lo.one_call = 1;
    else if (!strcmp(argv[i], "--skip-unknown")) o.skip_unknown = 1;
    else if (!strcmp(argv[i], "--batch-size") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 4096) {
        fprintf(stderr, "s2s-run: --batch-size must be an integer from 1 to 4096, got '%s'\n", argv[i]);
        return 2;
      }
      o.batch_size = (size_t)v;
    } else if (argv[i][0] == '-' || bundle) return usage();
    else bundle = argv[i];
  }
  if (!bundle) return usage();
  s2s_decoder *d;
  s2s_error err;
  if (s2s_load(bundle, &lo, &d, &err) != S2S_OK) return fail(&err);
  /* a line longer than any input the model takes is refused without holding it whole */
  size_t max_line = s2s_manifest_max_input_chars(s2s_decoder_manifest(d)) * 4 + 2;
  char **lines = calloc(o.batch_size, sizeof *lines);
  char *line = malloc(max_line + 1);
  size_t n = 0, line_no = 0;
  int rc = lines && line ? 0 : 1;
  int status;
  while (!rc && (status = read_line(stdin, line, max_line)) != LINE_EOF) {
    line_no++;
    if (status != LINE_OK) { /* the lines before it are decoded first */
      rc = flush(d, lines, n, line_no - n, &o);
      while (n) free(lines[--n]);
      if (rc) break;
    }
    if (status == LINE_TOO_LONG) {
      fprintf(stderr, "s2s-run: line %zu: longer than %zu bytes; the model takes at most %zu tokens\n", line_no,
              max_line, s2s_manifest_max_input_tokens(s2s_decoder_manifest(d)));
      rc = 1;
      break;
    }
    if (status == LINE_NUL) {
      fprintf(stderr, "s2s-run: line %zu: has a NUL byte\n", line_no);
      rc = 1;
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
  s2s_decoder_free(d);
  return rc;
}
