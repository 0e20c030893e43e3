/* Shared inside the library: errors, growable strings, the text policy, the parsed manifest. */
#ifndef S2S_INTERNAL_H
#define S2S_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "s2s.h"

#define S2S_PAD_ID 0
#define S2S_START_ID 1
#define S2S_END_ID 2
#define S2S_N_SPECIAL 3
#define S2S_MAX_MANIFEST_BYTES ((size_t)16 << 20)

/* Fill err (if not NULL) with code and a printf-style message; returns code. */
s2s_status s2s_fail(s2s_error *err, s2s_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Prefix an error's message with "PREFIX: " (keeps the code). */
void s2s_error_prefix(s2s_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A growable NUL-terminated byte string; `failed` is set when an allocation failed (appends then do nothing). */
typedef struct {
  char *data;
  size_t len, cap;
  int failed;
} s2s_buf;

void buf_append(s2s_buf *b, const char *s, size_t n);
void buf_puts(s2s_buf *b, const char *s);
void buf_printf(s2s_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void buf_free(s2s_buf *b);

/* ---- text (text.c) ---- */
enum { S2S_TOK_CHAR = 0, S2S_TOK_SPACE = 1 };

/* Decode one UTF-8 code point at s[0..len); returns its byte length (0 when invalid: overlong, surrogate, above
 * U+10FFFF, truncated). */
size_t utf8_next(const unsigned char *s, size_t len, int32_t *cp);
/* Index of the first byte that is not valid UTF-8, or len when it all is. */
size_t utf8_invalid_at(const char *s, size_t len);
size_t utf8_count(const char *s, size_t len);
/* Python's repr() of a UTF-8 string, and describe(): U+XXXX for one code point that does not print. */
void py_repr(s2s_buf *out, const char *s, size_t len);
void describe_symbol(s2s_buf *out, const char *s, size_t len);

typedef struct {
  size_t n;
  char **tokens;
  size_t *lens;
  int tokenization;
  int32_t unknown_id; /* -1: none */
  int32_t *sorted;    /* ids in the order of their tokens' bytes: lookup by binary search */
} s2s_vocab;

/* Build the lookup of a vocabulary whose tokens are set (n, tokens, lens); 0 on success, -1 on no memory. */
int vocab_index(s2s_vocab *v);
/* The id of a token (the smallest, were it twice), or -1. O(log n). */
int32_t vocab_find(const s2s_vocab *v, const char *s, size_t len);
/* An id whose token an earlier id has too, or -1. */
int32_t vocab_duplicate(const s2s_vocab *v);
void vocab_free(s2s_vocab *v);

/* ---- the manifest (manifest.c) ---- */
#define S2S_MAX_SPECS 8
typedef struct {
  char name[32];
  int dtype; /* 0 int32, 1 float32 */
  int rank;
  int64_t shape[4];
} s2s_spec;

typedef struct {
  char *path, *role, *format, *variant;
  char sha256[65];
  uint64_t size_bytes;
  int n_inputs, n_outputs;
  s2s_spec inputs[S2S_MAX_SPECS], outputs[S2S_MAX_SPECS];
  size_t n_ops;
  char **ops; /* the operators the manifest lists (the model's bytes must hold exactly these) */
} s2s_model_entry;

struct s2s_manifest {
  char *where;
  int attention;
  int64_t latent_dim, encoder_time_steps, encoder_output_dim;
  s2s_vocab input, target;
  size_t max_input_tokens, max_output_tokens;
  size_t n_models;
  s2s_model_entry *models;
};

/* The contract's inputs and outputs of a role ("encoder", "decoder_step", "greedy"); returns 0 for an unknown
 * role. */
int manifest_expected_io(const s2s_manifest *m, const char *role, s2s_spec *inputs, int *n_inputs,
                         s2s_spec *outputs, int *n_outputs);
/* The most times any one loop of a `role` model may run (Python's BundleManifest.loop_limit). */
size_t manifest_loop_limit(const s2s_manifest *m, const char *role);
/* The most elements any tensor of the bundle's models may hold per batch row (Python's BundleManifest.row_limit). */
int64_t manifest_row_limit(const s2s_manifest *m);
const s2s_model_entry *manifest_find(const s2s_manifest *m, const char *role, const char *format,
                                     const char *variant);
const char *dtype_name(int dtype);

#endif
