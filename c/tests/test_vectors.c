/* The C runtime against the shared test vectors ($S2S_FIXTURES/vectors.json, written by tests/make_vectors.py
 * from the Python runtime): every golden input decodes to the same text, tokens and `finished`, with per-token
 * probabilities within 1e-4 (fp32; 0.05 int8), batched and one by one, on every ONNX variant and decode path; every
 * awkward text input gives the same ids or the same error message. Reports every difference; exits 1 if any.
 *
 *   test_vectors [--quick]     (--quick: the digits bundle and the text cases only, for valgrind) */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modelcheck.h"
#include "s2s.h"

static int failures = 0, checks = 0;

#define EXPECT(cond, ...)                  \
  do {                                     \
    checks++;                              \
    if (!(cond)) {                         \
      failures++;                          \
      fprintf(stderr, "FAIL: " __VA_ARGS__); \
      fputc('\n', stderr);                 \
    }                                      \
  } while (0)

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *s = malloc((size_t)n + 1);
  if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
    free(s);
    s = NULL;
  }
  if (s) s[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return s;
}

/* Per-token probabilities agree within `tol`: 1e-4 for fp32 (ONNX Runtime 1.29 here, Python's may be newer); for
 * int8 the kernels ONNX Runtime picks depend on the CPU's instructions (valgrind's CPU: up to 0.033 apart),
 * so 0.05 there. Texts, tokens and `finished` are compared exactly everywhere. */
static void compare(const char *what, size_t i, const cJSON *want, const s2s_result *got, double tol) {
  const char *text = cJSON_GetObjectItem(want, "text")->valuestring;
  EXPECT(!strcmp(text, got->text), "%s item %zu: text '%s', Python '%s'", what, i + 1, got->text, text);
  const cJSON *tokens = cJSON_GetObjectItem(want, "tokens"), *probs = cJSON_GetObjectItem(want, "token_probs");
  EXPECT((size_t)cJSON_GetArraySize(tokens) == got->n_tokens, "%s item %zu: %zu tokens, Python %d", what, i + 1,
         got->n_tokens, cJSON_GetArraySize(tokens));
  for (size_t k = 0; k < got->n_tokens && k < (size_t)cJSON_GetArraySize(tokens); k++) {
    EXPECT(!strcmp(cJSON_GetArrayItem(tokens, (int)k)->valuestring, got->tokens[k]), "%s item %zu token %zu", what,
           i + 1, k + 1);
  }
  EXPECT((size_t)cJSON_GetArraySize(probs) == got->n_probs, "%s item %zu: %zu probabilities, Python %d", what, i + 1,
         got->n_probs, cJSON_GetArraySize(probs));
  double score = 0;
  for (size_t k = 0; k < got->n_probs && k < (size_t)cJSON_GetArraySize(probs); k++) {
    double p = cJSON_GetArrayItem(probs, (int)k)->valuedouble;
    EXPECT(fabs(p - got->token_probs[k]) <= tol, "%s item %zu prob %zu: %g, Python %g", what, i + 1, k + 1,
           (double)got->token_probs[k], p);
    score += log(got->token_probs[k] > 1e-45 ? (double)got->token_probs[k] : 1e-45);
  }
  EXPECT(cJSON_IsTrue(cJSON_GetObjectItem(want, "finished")) == got->finished, "%s item %zu: finished", what, i + 1);
  EXPECT(fabs(score - got->score) <= 1e-3 * (1 + fabs(score)), "%s item %zu: score %g, its probabilities' %g", what, i + 1,
         got->score, score);
}

static void decode_vectors(const char *fixtures, const char *bundle, const cJSON *list) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/bundles/%s", fixtures, bundle);
  const cJSON *v;
  cJSON_ArrayForEach(v, list) {
    const char *variant = cJSON_GetObjectItem(v, "variant")->valuestring;
    const char *path = cJSON_GetObjectItem(v, "decode_path")->valuestring;
    s2s_load_options lo;
    s2s_load_options_init(&lo);
    lo.variant = variant;
    lo.one_call = !strcmp(path, "one-call");
    double tol = strcmp(variant, "int8") ? 1e-4 : 5e-2;
    s2s_decoder *d;
    s2s_error err;
    if (s2s_load(dir, &lo, &d, &err) != S2S_OK) {
      EXPECT(0, "%s %s %s: load: %s", bundle, variant, path, err.message);
      continue;
    }
    EXPECT(!strcmp(s2s_decoder_decode_path(d), path), "%s: decode path %s", bundle, s2s_decoder_decode_path(d));
    const cJSON *inputs = cJSON_GetObjectItem(v, "inputs");
    size_t n = (size_t)cJSON_GetArraySize(inputs);
    const char **texts = calloc(n, sizeof *texts);
    s2s_result *out = calloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++) texts[i] = cJSON_GetArrayItem(inputs, (int)i)->valuestring;
    s2s_decode_options o;
    s2s_decode_options_init(&o);
    o.batch_size = (size_t)cJSON_GetObjectItem(v, "batch_size")->valueint;
    char what[256];
    snprintf(what, sizeof what, "%s %s %s batch", bundle, variant, path);
    if (s2s_decode_batch(d, texts, n, &o, out, &err) != S2S_OK) EXPECT(0, "%s: %s", what, err.message);
    else {
      for (size_t i = 0; i < n; i++) compare(what, i, cJSON_GetArrayItem(cJSON_GetObjectItem(v, "batch"), (int)i), &out[i], tol);
    }
    for (size_t i = 0; i < n; i++) s2s_result_clear(&out[i]);
    snprintf(what, sizeof what, "%s %s %s single", bundle, variant, path);
    for (size_t i = 0; i < n; i++) {
      s2s_result one;
      if (s2s_decode(d, texts[i], NULL, &one, &err) != S2S_OK) EXPECT(0, "%s item %zu: %s", what, i + 1, err.message);
      else compare(what, i, cJSON_GetArrayItem(cJSON_GetObjectItem(v, "single"), (int)i), &one, tol);
      s2s_result_clear(&one);
    }
    printf("%-44s %zu inputs\n", what, n);
    free(texts);
    free(out);
    s2s_decoder_free(d);
  }
}

/* A manifest for a text case: the numbers bundle's, with the case's preprocessing section. */
static s2s_manifest *manifest_with(const cJSON *numbers, const cJSON *prep) {
  cJSON *m = cJSON_Duplicate(numbers, 1);
  cJSON_ReplaceItemInObject(m, "preprocessing", cJSON_Duplicate(prep, 1));
  char *json = cJSON_PrintUnformatted(m);
  s2s_manifest *out = NULL;
  s2s_error err;
  if (s2s_manifest_parse(json, strlen(json), "text-case manifest", &out, &err) != S2S_OK) {
    EXPECT(0, "text-case manifest: %s", err.message);
  }
  free(json);
  cJSON_Delete(m);
  return out;
}

static void text_vectors(const cJSON *numbers, const cJSON *list) {
  const cJSON *policy;
  cJSON_ArrayForEach(policy, list) {
    s2s_manifest *m = manifest_with(numbers, cJSON_GetObjectItem(policy, "preprocessing"));
    if (!m) continue;
    int skip = cJSON_IsTrue(cJSON_GetObjectItem(policy, "skip_unknown"));
    const char *name = cJSON_GetObjectItem(policy, "name")->valuestring;
    size_t cap = s2s_manifest_max_input_tokens(m), n_cases = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(policy, "cases")) {
      const cJSON *input = cJSON_GetObjectItem(c, "input");
      /* cJSON ends a string at an escaped NUL but keeps the bytes after it: utf8_bytes gives the length */
      const char *text = input->valuestring;
      size_t len = (size_t)cJSON_GetObjectItem(c, "utf8_bytes")->valueint;
      size_t n_ids = 0;
      s2s_error err;
      s2s_status st = s2s_manifest_encode_input(m, text, len, skip, ids, &n_ids, &err);
      n_cases++;
      const cJSON *want_ids = cJSON_GetObjectItem(c, "ids"), *want_error = cJSON_GetObjectItem(c, "error");
      if (want_error) {
        EXPECT(st == S2S_ERR_INPUT && !strcmp(err.message, want_error->valuestring),
               "%s, input %s: got %s, Python: %s", name, cJSON_PrintUnformatted(input),
               st == S2S_OK ? "ids" : err.message, want_error->valuestring);
        continue;
      }
      int same = st == S2S_OK && n_ids == (size_t)cJSON_GetArraySize(want_ids);
      for (size_t k = 0; same && k < n_ids; k++) same = ids[k] == cJSON_GetArrayItem(want_ids, (int)k)->valueint;
      EXPECT(same, "%s, input %s: %s", name, cJSON_PrintUnformatted(input), st == S2S_OK ? "other ids" : err.message);
    }
    printf("%-44s %zu inputs\n", name, n_cases);
    free(ids);
    s2s_manifest_free(m);
  }
}

/* Failed loads give their one-line error and leave nothing allocated (valgrind runs this too). */
static void load_errors(const char *fixtures) {
  char dir[1024], want[1400];
  s2s_decoder *d = NULL;
  s2s_error err;
  s2s_load_options lo;
  s2s_load_options_init(&lo);
  snprintf(dir, sizeof dir, "%s/bundles/no-such-bundle", fixtures);
  snprintf(want, sizeof want, "%s: no such folder", dir);
  EXPECT(s2s_load(dir, &lo, &d, &err) == S2S_ERR_BUNDLE && !strcmp(err.message, want) && !d, "missing folder: %s",
         err.message);
  snprintf(dir, sizeof dir, "%s/bundles/digits", fixtures);
  lo.variant = "fp16";
  EXPECT(s2s_load(dir, &lo, &d, &err) == S2S_ERR_OPTION && !d, "fp16 on ONNX: %s", err.message);
  lo.variant = "int8";
  lo.one_call = 1;
  snprintf(want, sizeof want, "%s: the bundle has no one-call greedy model for onnx int8 (re-export it with a "
           "seq2seq-edge that writes one, or load with one_call = 0)", dir);
  EXPECT(s2s_load(dir, &lo, &d, &err) == S2S_ERR_BUNDLE && !strcmp(err.message, want) && !d, "int8 one-call: %s",
         err.message);
  lo.variant = "fp32";
  lo.one_call = 0;
  if (s2s_load(dir, &lo, &d, &err) != S2S_OK) {
    EXPECT(0, "load %s: %s", dir, err.message);
    return;
  }
  s2s_decode_options o;
  s2s_decode_options_init(&o);
  o.max_output_len = s2s_decoder_max_output_len(d) + 1;
  s2s_result r;
  EXPECT(s2s_decode(d, "1", &o, &r, &err) == S2S_ERR_OPTION, "max_output_len above the trained maximum");
  const char *one[1] = {"1"};
  o.max_output_len = 0;
  o.batch_size = S2S_MAX_BATCH_SIZE + 1;
  EXPECT(s2s_decode_batch(d, one, 1, &o, &r, &err) == S2S_ERR_OPTION &&
             !strcmp(err.message, "batch_size must be between 1 and 4096, got 4097"), "batch_size bound: %s", err.message);
  o.batch_size = 32;
  const char *texts[3] = {"1", "x\xc3\xa9", "2"};
  s2s_result out[3];
  o.max_output_len = 0;
  EXPECT(s2s_decode_batch(d, texts, 3, &o, out, &err) == S2S_ERR_INPUT &&
             !strcmp(err.message, "item 2 of 3 ('x\xc3\xa9'): input has 2 symbol(s) the model never saw: 'x', '\xc3\xa9'"),
         "a bad item in a batch: %s", err.message);
  s2s_decoder_free(d);
}

/* One crafted or mutated ONNX model judged from its bytes, as loading judges it: its operators and loops, then its
 * shapes from the case's contract inputs (-1: the batch). */
static s2s_status judge(const char *fixtures, const cJSON *c, s2s_error *err) {
  char path[1024];
  size_t len;
  const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
  snprintf(path, sizeof path, "%s/crafted/%s", fixtures, file);
  char *bytes = slurp(path, &len);
  if (!bytes) {
    snprintf(err->message, sizeof err->message, "cannot read %.900s", path);
    return S2S_ERR_BUNDLE;
  }
  const char *names[256];
  size_t n = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, cJSON_GetObjectItem(c, "ops")) if (n < 256) names[n++] = o->valuestring;
  s2s_status st = modelcheck_ops((const unsigned char *)bytes, len, "onnx", cJSON_GetObjectItem(c, "role")->valuestring,
                                 names, n, (size_t)cJSON_GetObjectItem(c, "loop_limit")->valuedouble, file, err);
  if (st == S2S_OK) {
    s2s_spec specs[S2S_MAX_SPECS];
    int n_specs = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(c, "inputs")) {
      if (n_specs == S2S_MAX_SPECS) break;
      s2s_spec *sp = &specs[n_specs++];
      memset(sp, 0, sizeof *sp);
      snprintf(sp->name, sizeof sp->name, "%s", cJSON_GetObjectItem(t, "name")->valuestring);
      const cJSON *d;
      cJSON_ArrayForEach(d, cJSON_GetObjectItem(t, "shape")) if (sp->rank < 4) sp->shape[sp->rank++] = (int64_t)d->valuedouble;
    }
    st = modelcheck_shapes((const unsigned char *)bytes, len, specs, n_specs,
                           (int64_t)cJSON_GetObjectItem(c, "row_limit")->valuedouble, file, err);
  }
  free(bytes);
  return st;
}

/* Python's verdict on one case: accepted (error null) or this message, cut where this library's messages end. */
static int same_verdict(s2s_status st, const s2s_error *err, const cJSON *error) {
  if (cJSON_IsNull(error)) return st == S2S_OK;
  return st == S2S_ERR_BUNDLE && !strncmp(err->message, error->valuestring, S2S_MESSAGE_MAX - 1);
}

/* The crafted model files of tests/make_crafted.py (attacks, and every model the exporter wrote), and the seeded
 * mutants of the fixture models (tests/mutants.py), judged from their bytes as the Python runtime judges them,
 * message for message (the ONNX ones: this library reads ONNX only). */
static void crafted_models(const char *fixtures) {
  char path[1024];
  size_t len;
  snprintf(path, sizeof path, "%s/crafted/crafted.json", fixtures);
  char *text = slurp(path, &len);
  cJSON *doc = text ? cJSON_ParseWithLength(text, len) : NULL;
  EXPECT(doc != NULL, "cannot read %s (python tests/make_crafted.py %s)", path, fixtures);
  const cJSON *c;
  int refused = 0, accepted = 0, mutants = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases")) {
    if (strcmp(cJSON_GetObjectItem(c, "format")->valuestring, "onnx")) continue;
    const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
    const cJSON *error = cJSON_GetObjectItem(c, "error");
    s2s_error err = {0};
    s2s_status st = judge(fixtures, c, &err);
    const char *expect = cJSON_GetObjectItem(c, "expect")->valuestring; /* the verdict stated by hand */
    EXPECT(cJSON_IsNull(error) == !strcmp(expect, "accepted"), "crafted %s: expected %s", file, expect);
    if (cJSON_IsNull(error)) accepted++;
    else refused++;
    EXPECT(same_verdict(st, &err, error), "crafted %s:\n  got    %s\n  Python %s", file, st == S2S_OK ? "accepted" : err.message,
           cJSON_IsNull(error) ? "accepted" : error->valuestring);
  }
  EXPECT(accepted >= 10 && refused >= 10, "crafted.json: %d accepted and %d refused ONNX cases", accepted, refused);
  printf("%-44s %d refused, %d accepted\n", "crafted ONNX models", refused, accepted);
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "mutants")) {
    if (strcmp(cJSON_GetObjectItem(c, "format")->valuestring, "onnx")) continue;
    const cJSON *error = cJSON_GetObjectItem(c, "error");
    s2s_error err = {0};
    s2s_status st = judge(fixtures, c, &err);
    mutants++;
    EXPECT(same_verdict(st, &err, error), "mutant %s:\n  got    %s\n  Python %s", cJSON_GetObjectItem(c, "file")->valuestring,
           st == S2S_OK ? "accepted" : err.message, cJSON_IsNull(error) ? "accepted" : error->valuestring);
  }
  EXPECT(mutants >= 100, "crafted.json: %d ONNX mutants", mutants);
  printf("%-44s %d, Python's verdicts\n", "mutated ONNX models", mutants);
  cJSON_Delete(doc);
  free(text);
}

/* The operators each role may hold are the Python runtime's (the manifest schema's x-contract.allowed_ops). */
static void allowed_ops_are_the_schemas(void) {
  size_t len;
  char *text = slurp(S2S_SCHEMA_FILE, &len);
  cJSON *schema = text ? cJSON_ParseWithLength(text, len) : NULL;
  EXPECT(schema != NULL, "cannot read %s", S2S_SCHEMA_FILE);
  const cJSON *roles = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(schema, "x-contract"), "allowed_ops"), "onnx"), *role;
  int n_roles = 0;
  cJSON_ArrayForEach(role, roles) {
    n_roles++;
    const char *const *ours = modelcheck_allowed_ops("onnx", role->string);
    int i = 0;
    const cJSON *op;
    cJSON_ArrayForEach(op, role) {
      EXPECT(ours && ours[i] && !strcmp(ours[i], op->valuestring), "allowed %s operator %d: %s, the schema's %s",
             role->string, i, ours && ours[i] ? ours[i] : "(none)", op->valuestring);
      if (ours && ours[i]) i++;
    }
    EXPECT(!ours || !ours[i], "allowed %s operators: more than the schema's", role->string);
  }
  EXPECT(n_roles == 3, "the schema names %d roles' ONNX operators", n_roles);
  cJSON_Delete(schema);
  free(text);
}

int main(int argc, char **argv) {
  int quick = argc > 1 && !strcmp(argv[1], "--quick");
  const char *fixtures = getenv("S2S_FIXTURES");
  if (!fixtures) {
    fprintf(stderr, "set S2S_FIXTURES to the test fixtures folder (python tests/make_fixtures.py DIR, then "
                    "python tests/make_vectors.py DIR)\n");
    return 2;
  }
  char path[1024];
  size_t len;
  snprintf(path, sizeof path, "%s/vectors.json", fixtures);
  char *text = slurp(path, &len);
  cJSON *vectors = text ? cJSON_ParseWithLength(text, len) : NULL;
  snprintf(path, sizeof path, "%s/bundles/numbers/manifest.json", fixtures);
  char *numbers_text = slurp(path, &len);
  cJSON *numbers = numbers_text ? cJSON_ParseWithLength(numbers_text, len) : NULL;
  if (!vectors || !numbers) {
    fprintf(stderr, "cannot read %s/vectors.json and bundles/numbers (python tests/make_vectors.py %s)\n", fixtures,
            fixtures);
    return 2;
  }
  const cJSON *decodes = cJSON_GetObjectItem(vectors, "decodes"), *bundle;
  static const char *const expected[] = {"digits", "numbers", "attention", "embeddings", "ensemble"};
  for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) { /* a vectors file without them must not pass with nothing decoded */
    EXPECT(cJSON_GetArraySize(cJSON_GetObjectItem(decodes, expected[i])) > 0, "vectors.json has no %s decodes",
           expected[i]);
  }
  EXPECT(cJSON_GetArraySize(cJSON_GetObjectItem(vectors, "text")) > 0, "vectors.json has no text cases");
  cJSON_ArrayForEach(bundle, decodes) {
    if (!quick || !strcmp(bundle->string, "digits")) decode_vectors(fixtures, bundle->string, bundle);
  }
  text_vectors(numbers, cJSON_GetObjectItem(vectors, "text"));
  load_errors(fixtures);
  crafted_models(fixtures);
  allowed_ops_are_the_schemas();
  cJSON_Delete(vectors);
  cJSON_Delete(numbers);
  free(text);
  free(numbers_text);
  printf("%d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
