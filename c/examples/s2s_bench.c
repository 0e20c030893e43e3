/* s2s-bench: per-word latency of the C library, the protocol benchmarks/native.py runs for every runtime.
 *
 *   s2s-bench BUNDLE WORDS_FILE [--one-call] [--variant int8] [--rounds N]
 *
 * Loads the bundle once, decodes each line of WORDS_FILE alone (batch 1), one warm-up round then N timed rounds,
 * and prints one JSON object: the median and 90th percentile milliseconds per word, the load time, the path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s2s.h"

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: s2s-bench BUNDLE WORDS_FILE [--one-call] [--variant int8] [--rounds N]\n");
    return 2;
  }
  s2s_load_options lo;
  s2s_load_options_init(&lo);
  int rounds = 5;
  for (int i = 3; i < argc; i++) {
    if (!strcmp(argv[i], "--one-call")) lo.one_call = 1;
    else if (!strcmp(argv[i], "--variant") && i + 1 < argc) lo.variant = argv[++i];
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
    else return fprintf(stderr, "s2s-bench: unknown argument '%s'\n", argv[i]), 2;
  }
  if (rounds < 1 || rounds > 1000) return fprintf(stderr, "s2s-bench: --rounds must be 1..1000\n"), 2;
  FILE *f = fopen(argv[2], "r");
  if (!f) return fprintf(stderr, "s2s-bench: cannot read %s\n", argv[2]), 2;
  size_t n = 0, cap = 64;
  char **words = malloc(cap * sizeof *words), line[4096];
  while (words && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (n == cap) words = realloc(words, (cap *= 2) * sizeof *words);
    if (words) words[n++] = strdup(line);
  }
  fclose(f);
  if (!words || !n) return fprintf(stderr, "s2s-bench: no words in %s\n", argv[2]), 2;
  s2s_decoder *d;
  s2s_error err;
  double t0 = now_ms();
  if (s2s_load(argv[1], &lo, &d, &err) != S2S_OK) return fprintf(stderr, "s2s-bench: %s\n", err.message), 1;
  double load_ms = now_ms() - t0;
  double *times = malloc((size_t)rounds * n * sizeof *times);
  size_t k = 0;
  for (int r = -1; r < rounds; r++) { /* round -1: warm-up, not timed */
    for (size_t i = 0; i < n; i++) {
      s2s_result res;
      double t = now_ms();
      if (s2s_decode(d, words[i], NULL, &res, &err) != S2S_OK) {
        return fprintf(stderr, "s2s-bench: line %zu: %s\n", i + 1, err.message), 1;
      }
      double dt = now_ms() - t;
      if (r >= 0) times[k++] = dt;
      s2s_result_clear(&res);
    }
  }
  qsort(times, k, sizeof *times, cmp);
  printf("{\"runtime\": \"c\", \"engine\": \"onnxruntime %s (C API)\", \"decode_path\": \"%s\", \"variant\": \"%s\", "
         "\"words\": %zu, \"rounds\": %d, \"ms_per_word_p50\": %.5f, \"ms_per_word_p90\": %.5f, \"load_ms\": %.2f}\n",
         "1.29.0", s2s_decoder_decode_path(d), lo.variant, n, rounds, times[k / 2], times[k * 9 / 10], load_ms);
  s2s_decoder_free(d);
  for (size_t i = 0; i < n; i++) free(words[i]);
  free(words);
  free(times);
  return 0;
}
