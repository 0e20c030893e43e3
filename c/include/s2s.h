/* seq2seq-edge C runtime: load a bundle written by `s2s export` and decode with ONNX Runtime's C API.
 *
 * The same decoder as the Python runtime (seq2seq_edge) and the JavaScript one (@seq2seq-edge/runtime): the
 * manifest checked before any model byte reaches ONNX Runtime (format version, fields, vocabularies, every
 * model's inputs and outputs against the bundle contract), each model file's kind, size and sha256, the text
 * policy (NFC, `char` or `space` tokens, reserved ids 0/1/2, unknown symbols an error naming them or the
 * manifest's unknown token), the greedy step loop and the one-call greedy model, batched and single.
 *
 * Every call that can fail returns an s2s_status and, when `err` is not NULL, fills it with the code and a
 * one-line message (the same words as the Python and JavaScript runtimes where they have the same case).
 * Objects are not thread-safe: use one decoder per thread, or a lock. */
#ifndef S2S_H
#define S2S_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define S2S_VERSION "0.1.0"

typedef enum {
  S2S_OK = 0,
  S2S_ERR_INPUT = 1,  /* text that cannot be encoded: unknown symbols, too long, not UTF-8 (InputTextError) */
  S2S_ERR_BUNDLE = 2, /* a bundle that is missing, malformed, tampered with or contradicts its models */
  S2S_ERR_ENGINE = 3, /* ONNX Runtime failed to start or run */
  S2S_ERR_OPTION = 4, /* a bad argument: batch size 0, max_output_len above the trained maximum, NULL ... */
  S2S_ERR_MEMORY = 5  /* an allocation failed */
} s2s_status;

#define S2S_MESSAGE_MAX 1024

typedef struct {
  s2s_status code;
  char message[S2S_MESSAGE_MAX];
} s2s_error;

/* "input", "bundle", ... for a status. */
const char *s2s_status_name(s2s_status code);

/* ---- the manifest and the text policy (no ONNX Runtime needed) ----------------------------------------- */

typedef struct s2s_manifest s2s_manifest;

/* Parse and check manifest.json's bytes (at most 16 MiB); `where` names it in messages. The problems found are
 * listed in the message ("WHERE: 2 problems: a; b"), up to 12. */
s2s_status s2s_manifest_parse(const char *json, size_t len, const char *where, s2s_manifest **out, s2s_error *err);
void s2s_manifest_free(s2s_manifest *m);

size_t s2s_manifest_max_input_tokens(const s2s_manifest *m);
size_t s2s_manifest_max_output_tokens(const s2s_manifest *m);
/* Characters (code points) an input may have before it is refused unread: max_input_tokens * 64 + 1024. */
size_t s2s_manifest_max_input_chars(const s2s_manifest *m);
size_t s2s_manifest_target_vocab_size(const s2s_manifest *m);
/* The string of a target id (NULL when out of range). */
const char *s2s_manifest_target_token(const s2s_manifest *m, int32_t id);

/* Token ids of one UTF-8 input (no start or end marker): valid UTF-8, length before any work, NFC, vocabulary,
 * token limit. `ids` must hold s2s_manifest_max_input_tokens(m) entries; `*n_ids` gets the count. */
s2s_status s2s_manifest_encode_input(const s2s_manifest *m, const char *text, size_t len, int skip_unknown,
                                     int32_t *ids, size_t *n_ids, s2s_error *err);

/* ---- loading a bundle -------------------------------------------------------------------------------- */

typedef struct {
  const char *variant; /* "fp32" (default) or "int8" */
  int one_call;        /* 0 (default): the step loop; 1: the bundle's one-call greedy model (an error if it has
                          none for this variant). From C the step loop is the faster on ONNX Runtime, as from
                          Python (benchmarks/results/native.md) */
  int threads;         /* ONNX Runtime intra-op threads; default 1 */
} s2s_load_options;

void s2s_load_options_init(s2s_load_options *o);

/* Reads the bundle's file `name` (a plain file name the manifest gives) into *data (malloc'd; the caller frees
 * it), refusing anything over `max_bytes` without reading it; returns S2S_OK or fills err. An Android app passes
 * one that reads its assets (AAssetManager), an iOS app one that reads its resources. */
typedef s2s_status (*s2s_read_file_fn)(void *ctx, const char *name, size_t max_bytes, unsigned char **data,
                                       size_t *len, s2s_error *err);

typedef struct s2s_decoder s2s_decoder;

/* Load the bundle in folder `dir`: files are opened without following links and must be regular files. */
s2s_status s2s_load(const char *dir, const s2s_load_options *options, s2s_decoder **out, s2s_error *err);
/* Load through a reader; `source` names the bundle in messages. */
s2s_status s2s_load_with_reader(s2s_read_file_fn read_file, void *ctx, const char *source,
                                const s2s_load_options *options, s2s_decoder **out, s2s_error *err);
void s2s_decoder_free(s2s_decoder *d);

const s2s_manifest *s2s_decoder_manifest(const s2s_decoder *d);
/* "one-call" (the greedy model) or "step-loop" (the encoder, then one step per token). */
const char *s2s_decoder_decode_path(const s2s_decoder *d);
/* The longest output, in tokens, the model was trained to produce. */
size_t s2s_decoder_max_output_len(const s2s_decoder *d);

/* ---- decoding ---------------------------------------------------------------------------------------- */

/* The decode options: the names of the Python runtime's DecodeOptions (greedy decoding only; beam search is in
 * Python). An option out of its bounds fails the call with S2S_ERR_OPTION naming it. */
#define S2S_MAX_BATCH_SIZE 4096
typedef struct {
  size_t batch_size;     /* rows per model call in s2s_decode_batch, 1 .. S2S_MAX_BATCH_SIZE; default 32 */
  size_t max_output_len; /* 0 (default): the trained maximum; else 1 .. that maximum */
  int skip_unknown;      /* drop symbols the model never saw instead of failing */
} s2s_decode_options;

void s2s_decode_options_init(s2s_decode_options *o);

/* One decoded output. token_probs has one entry per token and, when `finished`, one more: the end marker's. */
typedef struct {
  char *text;          /* UTF-8, NUL-terminated */
  size_t n_tokens;
  char **tokens;       /* the output tokens' strings */
  size_t n_probs;
  float *token_probs;
  int finished;        /* 1: the model emitted the end marker; 0: cut at max_output_len */
  double score;        /* sum of log(max(p, 1e-45)) over token_probs */
} s2s_result;

/* Decode one UTF-8 text (NUL-terminated). Free the result with s2s_result_clear. */
s2s_status s2s_decode(s2s_decoder *d, const char *text, const s2s_decode_options *options, s2s_result *out,
                      s2s_error *err);
/* Decode n texts, options->batch_size rows at a time; out[i] for texts[i]. An input that cannot be encoded
 * fails the call before any decoding, naming it ("item 3 of 10 ('x'): ..."); nothing is left in `out`. */
s2s_status s2s_decode_batch(s2s_decoder *d, const char *const *texts, size_t n, const s2s_decode_options *options,
                            s2s_result *out, s2s_error *err);
void s2s_result_clear(s2s_result *r);

#ifdef __cplusplus
}
#endif
#endif /* S2S_H */
