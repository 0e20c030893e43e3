/* manifest.json: parsed with cJSON, checked field by field with the bounds of the manifest's JSON Schema
 * (js/src/manifest.schema.json, written by runtime/schema.py) and the rules that relate the fields
 * (runtime/manifest.py), then kept as the few typed fields a decode loop needs. Every problem is reported. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_PROBLEMS 12
#define MAX_VOCAB 262144
#define MAX_TOKEN_CHARS 256
#define MAX_MODELS 64

static const char *const SPECIAL[S2S_N_SPECIAL] = {"<s2s pad>", "<s2s start>", "<s2s end>"};

typedef struct {
  s2s_buf list;
  int n;
} problems;

static void problem(problems *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void problem(problems *p, const char *fmt, ...) {
  p->n++;
  if (p->n > MAX_PROBLEMS) return;
  char one[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(one, sizeof one, fmt, ap);
  va_end(ap);
  if (p->list.len) buf_puts(&p->list, "; ");
  buf_puts(&p->list, one);
}

const char *dtype_name(int dtype) { return dtype == 0 ? "int32" : "float32"; }

/* An object's member (keys given twice were refused before: see duplicate_keys). */
static cJSON *member(problems *p, const cJSON *obj, const char *path, const char *key, int required) {
  cJSON *found = NULL;
  for (cJSON *c = obj ? obj->child : NULL; c && !found; c = c->next) {
    if (c->string && strcmp(c->string, key) == 0) found = c;
  }
  if (!found && required) problem(p, "%s: '%s' is a required property", path, key);
  return found;
}

static int key_cmp(const void *a, const void *b) {
  return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* Refuse a key given twice in any object of the document (JSON readers disagree on which one wins). O(n log n). */
static void duplicate_keys(problems *p, const cJSON *node, int depth) {
  if (!node || p->n) return;
  size_t n = 0;
  for (const cJSON *c = node->child; c; c = c->next) n++;
  if (cJSON_IsObject(node) && n > 1) {
    const cJSON **keys = malloc(n * sizeof *keys);
    if (!keys) {
      problem(p, "out of memory");
      return;
    }
    size_t k = 0;
    for (const cJSON *c = node->child; c; c = c->next) keys[k++] = c;
    qsort(keys, n, sizeof *keys, key_cmp);
    for (size_t i = 1; i < n && !p->n; i++) {
      if (!strcmp(keys[i - 1]->string, keys[i]->string)) {
        s2s_buf shown = {0};
        py_repr(&shown, keys[i]->string, strlen(keys[i]->string));
        problem(p, "the key %s appears twice in one object%s", shown.data ? shown.data : "?",
                depth ? "" : " (the manifest's top level)");
        buf_free(&shown);
      }
    }
    free(keys);
  }
  for (const cJSON *c = node->child; c && !p->n; c = c->next) duplicate_keys(p, c, depth + 1);
}

/* A "\u0000" escape outside another escape: cJSON would end the string there and the rest would go unseen. */
static int escaped_nul(const char *json, size_t len) {
  for (size_t i = 0; i + 1 < len; i++) {
    if (json[i] != '\\') continue;
    if (json[i + 1] == 'u' && i + 5 < len && !memcmp(json + i + 2, "0000", 4)) return 1;
    i++; /* skip the escaped character, so "\\\\u0000" is a backslash and text */
  }
  return 0;
}

/* An optional object whose values are all strings (versions, runtimes_tested). */
static void string_map(problems *p, const cJSON *v, const char *path) {
  if (!v) return;
  if (!cJSON_IsObject(v)) {
    problem(p, "%s: must be an object", path);
    return;
  }
  for (const cJSON *c = v->child; c; c = c->next) {
    if (!cJSON_IsString(c)) {
      problem(p, "%s/%s: must be a string", path, c->string);
      return;
    }
  }
}

/* An integer in [lo, hi], or -1 with a problem. */
static int64_t integer(problems *p, const cJSON *v, const char *path, int64_t lo, int64_t hi) {
  if (!v) return -1;
  double d = v->valuedouble;
  /* range first: converting a double outside int64_t's range is undefined behaviour */
  if (!cJSON_IsNumber(v) || !(d >= -9.0e18 && d <= 9.0e18) || d != (double)(int64_t)d) {
    problem(p, "%s: must be an integer", path);
    return -1;
  }
  if (d < (double)lo || d > (double)hi) {
    problem(p, "%s: must be between %lld and %lld, got %lld", path, (long long)lo, (long long)hi, (long long)d);
    return -1;
  }
  return (int64_t)d;
}

static const char *string(problems *p, const cJSON *v, const char *path) {
  if (!v) return NULL;
  if (!cJSON_IsString(v) || !v->valuestring) {
    problem(p, "%s: must be a string", path);
    return NULL;
  }
  return v->valuestring;
}

static int tokenization(problems *p, const cJSON *v, const char *path) {
  const char *s = string(p, v, path);
  if (!s) return -1;
  if (strcmp(s, "char") == 0) return S2S_TOK_CHAR;
  if (strcmp(s, "space") == 0) return S2S_TOK_SPACE;
  problem(p, "%s: must be one of char, space", path);
  return -1;
}

static void read_vocab(problems *p, const cJSON *side, const char *name, s2s_vocab *v, size_t *max_tokens) {
  char path[64];
  snprintf(path, sizeof path, "/preprocessing/%s", name);
  if (!cJSON_IsObject(side)) {
    if (side) problem(p, "%s: must be an object", path);
    return;
  }
  char at[96];
  snprintf(at, sizeof at, "%s/max_tokens", path);
  int64_t mt = integer(p, member(p, side, path, "max_tokens", 1), at, 1, 4096);
  if (mt > 0) *max_tokens = (size_t)mt;
  snprintf(at, sizeof at, "%s/tokenization", path);
  v->tokenization = tokenization(p, member(p, side, path, "tokenization", 1), at);
  const cJSON *vocab = member(p, side, path, "vocabulary", 1);
  snprintf(at, sizeof at, "%s/vocabulary", path);
  if (!vocab) return;
  int n = cJSON_IsArray(vocab) ? cJSON_GetArraySize(vocab) : -1;
  if (n < 4 || n > MAX_VOCAB) {
    problem(p, "%s: must be an array of 4 to %d strings", at, MAX_VOCAB);
    return;
  }
  v->tokens = calloc((size_t)n, sizeof *v->tokens);
  v->lens = calloc((size_t)n, sizeof *v->lens);
  if (!v->tokens || !v->lens) {
    problem(p, "out of memory");
    return;
  }
  v->n = (size_t)n;
  int i = 0, bad = 0;
  for (const cJSON *t = vocab->child; t; t = t->next, i++) {
    const char *s = cJSON_IsString(t) ? t->valuestring : NULL;
    size_t len = s ? strlen(s) : 0;
    if (!s || !len || utf8_invalid_at(s, len) < len || utf8_count(s, len) > MAX_TOKEN_CHARS ||
        (i < S2S_N_SPECIAL && strcmp(s, SPECIAL[i]) != 0)) {
      if (!bad++) {
        problem(p, "%s/%d: %s", at, i,
                i < S2S_N_SPECIAL ? "the first three entries must be '<s2s pad>', '<s2s start>', '<s2s end>'"
                                  : "must be a string of 1 to 256 characters of valid UTF-8");
      }
      s = "";
      len = 0;
    }
    v->tokens[i] = malloc(len + 1);
    if (!v->tokens[i]) {
      problem(p, "out of memory");
      return;
    }
    memcpy(v->tokens[i], s, len + 1);
    v->lens[i] = len;
  }
  if (bad) return;
  if (vocab_index(v) != 0) {
    problem(p, "out of memory");
    return;
  }
  int32_t dupe = vocab_duplicate(v);
  if (dupe >= 0) {
    s2s_buf shown = {0};
    py_repr(&shown, v->tokens[dupe], v->lens[dupe]);
    problem(p, "%s.vocabulary has duplicate entries: %s", name, shown.data ? shown.data : "?");
    buf_free(&shown);
  }
}

static void read_preprocessing(problems *p, const cJSON *prep, s2s_manifest *m) {
  if (!cJSON_IsObject(prep)) {
    if (prep) problem(p, "/preprocessing: must be an object");
    return;
  }
  const char *norm = string(p, member(p, prep, "/preprocessing", "normalization", 1), "/preprocessing/normalization");
  if (norm && strcmp(norm, "NFC") != 0) problem(p, "/preprocessing/normalization: must be 'NFC'");
  const cJSON *special = member(p, prep, "/preprocessing", "special_tokens", 0);
  if (special) {
    if (!cJSON_IsObject(special)) problem(p, "/preprocessing/special_tokens: must be an object");
    static const char *const names[S2S_N_SPECIAL] = {"pad", "start", "end"};
    for (int i = 0; special && cJSON_IsObject(special) && i < S2S_N_SPECIAL; i++) {
      const cJSON *t = member(p, special, "/preprocessing/special_tokens", names[i], 0);
      if (!t) continue;
      const cJSON *id = member(p, t, "/preprocessing/special_tokens", "id", 1);
      const cJSON *text = member(p, t, "/preprocessing/special_tokens", "text", 1);
      if ((id && !(cJSON_IsNumber(id) && id->valuedouble == i)) ||
          (text && !(cJSON_IsString(text) && !strcmp(text->valuestring, SPECIAL[i])))) {
        problem(p, "/preprocessing/special_tokens/%s: must be {\"id\": %d, \"text\": \"%s\"}", names[i], i,
                SPECIAL[i]);
      }
    }
  }
  const cJSON *in = member(p, prep, "/preprocessing", "input", 1);
  const cJSON *target = member(p, prep, "/preprocessing", "target", 1);
  read_vocab(p, in, "input", &m->input, &m->max_input_tokens);
  read_vocab(p, target, "target", &m->target, &m->max_output_tokens);
  if (target && member(p, target, "/preprocessing/target", "unknown_token", 0)) {
    problem(p, "/preprocessing/target: must not have an unknown_token");
  }
  m->input.unknown_id = -1;
  m->target.unknown_id = -1;
  const cJSON *unk = in ? member(p, in, "/preprocessing/input", "unknown_token", 0) : NULL;
  const char *u = string(p, unk, "/preprocessing/input/unknown_token");
  if (u && m->input.sorted) {
    int32_t id = vocab_find(&m->input, u, strlen(u));
    if (id < 0) {
      s2s_buf shown = {0};
      py_repr(&shown, u, strlen(u));
      problem(p, "input.unknown_token %s is not an entry of input.vocabulary", shown.data ? shown.data : "?");
      buf_free(&shown);
    } else if (id < S2S_N_SPECIAL) {
      problem(p, "/preprocessing/input/unknown_token: must not be a reserved token");
    } else m->input.unknown_id = id;
  }
}

static void read_model_section(problems *p, const cJSON *model, s2s_manifest *m) {
  if (!cJSON_IsObject(model)) {
    if (model) problem(p, "/model: must be an object");
    return;
  }
  const cJSON *arch = member(p, model, "/model", "architecture", 0);
  const char *a = arch ? string(p, arch, "/model/architecture") : "lstm-encoder-decoder";
  if (a && strcmp(a, "lstm-attention") == 0) m->attention = 1;
  else if (a && strcmp(a, "lstm-encoder-decoder") != 0) {
    problem(p, "/model/architecture: must be one of lstm-encoder-decoder, lstm-attention");
  }
  m->latent_dim = integer(p, member(p, model, "/model", "latent_dim", 1), "/model/latent_dim", 1, 16384);
  m->encoder_time_steps =
      integer(p, member(p, model, "/model", "encoder_time_steps", 1), "/model/encoder_time_steps", 1, 4096);
  const cJSON *dim = member(p, model, "/model", "encoder_output_dim", 0);
  if (m->attention && !dim) problem(p, "/model: 'encoder_output_dim' is a required property");
  if (!m->attention && dim) problem(p, "/model: encoder_output_dim belongs to lstm-attention models only");
  m->encoder_output_dim = dim ? integer(p, dim, "/model/encoder_output_dim", 1, 16384) : 0;
}

static void read_specs(problems *p, const cJSON *list, const char *path, s2s_spec *specs, int *n) {
  *n = 0;
  if (!list) return;
  if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) > S2S_MAX_SPECS) {
    problem(p, "%s: must be an array of at most %d tensors", path, S2S_MAX_SPECS);
    return;
  }
  for (const cJSON *t = list->child; t; t = t->next) {
    char at[160];
    snprintf(at, sizeof at, "%s/%d", path, *n);
    s2s_spec *s = &specs[(*n)++];
    const char *name = string(p, member(p, t, at, "name", 1), at);
    const char *dtype = string(p, member(p, t, at, "dtype", 1), at);
    const cJSON *shape = member(p, t, at, "shape", 1);
    if (!name || !dtype || !shape) return;
    if (strlen(name) >= sizeof s->name) {
      problem(p, "%s/name: not a name of the bundle contract", at);
      return;
    }
    strcpy(s->name, name);
    s->dtype = strcmp(dtype, "int32") == 0 ? 0 : strcmp(dtype, "float32") == 0 ? 1 : -1;
    if (s->dtype < 0) problem(p, "%s/dtype: must be int32 or float32", at);
    int rank = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
    if (rank < 0 || rank > 4) {
      problem(p, "%s/shape: must be an array of at most 4 dimensions", at);
      return;
    }
    s->rank = rank;
    int k = 0;
    for (const cJSON *d = shape->child; d; d = d->next) s->shape[k++] = integer(p, d, at, -1, 2147483648LL);
  }
}

static int spec_cmp(const void *a, const void *b) {
  return strcmp(((const s2s_spec *)a)->name, ((const s2s_spec *)b)->name);
}

/* "[name:dtype[d, d], ...]" sorted by name, as the JavaScript runtime's formatSpecs. */
static void format_specs(s2s_buf *out, const s2s_spec *specs, int n) {
  s2s_spec sorted[S2S_MAX_SPECS];
  memcpy(sorted, specs, (size_t)n * sizeof *specs);
  qsort(sorted, (size_t)n, sizeof *sorted, spec_cmp);
  buf_puts(out, "[");
  for (int i = 0; i < n; i++) {
    buf_printf(out, "%s%s:%s[", i ? ", " : "", sorted[i].name, sorted[i].dtype < 0 ? "?" : dtype_name(sorted[i].dtype));
    for (int k = 0; k < sorted[i].rank; k++) buf_printf(out, "%s%lld", k ? ", " : "", (long long)sorted[i].shape[k]);
    buf_puts(out, "]");
  }
  buf_puts(out, "]");
}

/* The same tensors, compared field by field (never through their printed form, which a name could forge). */
static int same_specs(const s2s_spec *a, int na, const s2s_spec *b, int nb) {
  if (na != nb) return 0;
  s2s_spec x[S2S_MAX_SPECS], y[S2S_MAX_SPECS];
  memcpy(x, a, (size_t)na * sizeof *a);
  memcpy(y, b, (size_t)nb * sizeof *b);
  qsort(x, (size_t)na, sizeof *x, spec_cmp);
  qsort(y, (size_t)nb, sizeof *y, spec_cmp);
  for (int i = 0; i < na; i++) {
    if (strcmp(x[i].name, y[i].name) || x[i].dtype != y[i].dtype || x[i].rank != y[i].rank) return 0;
    for (int k = 0; k < x[i].rank; k++) {
      if (x[i].shape[k] != y[i].shape[k]) return 0;
    }
  }
  return 1;
}

static void spec(s2s_spec *s, const char *name, int dtype, int rank, int64_t d0, int64_t d1, int64_t d2) {
  memset(s, 0, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", name);
  s->dtype = dtype;
  s->rank = rank;
  s->shape[0] = d0;
  s->shape[1] = d1;
  s->shape[2] = d2;
}

int manifest_expected_io(const s2s_manifest *m, const char *role, s2s_spec *in, int *n_in, s2s_spec *out,
                         int *n_out) {
  int64_t T = m->encoder_time_steps, L = m->latent_dim, E = m->encoder_output_dim;
  *n_in = *n_out = 0;
  if (strcmp(role, "greedy") == 0) {
    int64_t w = (int64_t)m->max_output_tokens + 1;
    spec(&in[(*n_in)++], "input_ids", 0, 2, -1, T, 0);
    spec(&out[(*n_out)++], "output_ids", 0, 2, -1, w, 0);
    spec(&out[(*n_out)++], "output_probs", 1, 2, -1, w, 0);
    return 1;
  }
  if (strcmp(role, "encoder") == 0) {
    spec(&in[(*n_in)++], "input_ids", 0, 2, -1, T, 0);
    spec(&out[(*n_out)++], "state_h", 1, 2, -1, L, 0);
    spec(&out[(*n_out)++], "state_c", 1, 2, -1, L, 0);
    if (m->attention) {
      spec(&out[(*n_out)++], "encoder_outputs", 1, 3, -1, T, E);
      spec(&out[(*n_out)++], "encoder_mask", 1, 2, -1, T, 0);
    }
    return 1;
  }
  if (strcmp(role, "decoder_step") == 0) {
    spec(&in[(*n_in)++], "prev_token", 0, 1, -1, 0, 0);
    spec(&in[(*n_in)++], "state_h", 1, 2, -1, L, 0);
    spec(&in[(*n_in)++], "state_c", 1, 2, -1, L, 0);
    if (m->attention) {
      spec(&in[(*n_in)++], "encoder_outputs", 1, 3, -1, T, E);
      spec(&in[(*n_in)++], "encoder_mask", 1, 2, -1, T, 0);
    }
    spec(&out[(*n_out)++], "probs", 1, 2, -1, (int64_t)m->target.n, 0);
    spec(&out[(*n_out)++], "next_state_h", 1, 2, -1, L, 0);
    spec(&out[(*n_out)++], "next_state_c", 1, 2, -1, L, 0);
    return 1;
  }
  return 0;
}

/* A model file's name: what the schema allows ([A-Za-z0-9][A-Za-z0-9._-]{0,127}), so never a path. */
static int plain_name(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return 0;
  }
  return 1;
}

static char *copy(const char *s) {
  char *d = malloc(strlen(s) + 1);
  if (d) strcpy(d, s);
  return d;
}

static void read_model_entry(problems *p, const cJSON *e, int i, s2s_manifest *m) {
  char at[64];
  snprintf(at, sizeof at, "/models/%d", i);
  s2s_model_entry *x = &m->models[i];
  if (!cJSON_IsObject(e)) {
    problem(p, "%s: must be an object", at);
    return;
  }
  char sub[96];
  const char *role = string(p, member(p, e, at, "role", 1), at);
  const char *format = string(p, member(p, e, at, "format", 1), at);
  const char *variant = string(p, member(p, e, at, "variant", 1), at);
  const char *path = string(p, member(p, e, at, "path", 1), at);
  const char *sha = string(p, member(p, e, at, "sha256", 1), at);
  snprintf(sub, sizeof sub, "%s/size_bytes", at);
  int64_t size = integer(p, member(p, e, at, "size_bytes", 1), sub, 1, 1073741824);
  snprintf(sub, sizeof sub, "%s/inputs", at);
  read_specs(p, member(p, e, at, "inputs", 1), sub, x->inputs, &x->n_inputs);
  snprintf(sub, sizeof sub, "%s/outputs", at);
  read_specs(p, member(p, e, at, "outputs", 1), sub, x->outputs, &x->n_outputs);
  snprintf(sub, sizeof sub, "%s/opset", at);
  integer(p, member(p, e, at, "opset", 0), sub, 1, 10000);
  snprintf(sub, sizeof sub, "%s/ir_version", at);
  integer(p, member(p, e, at, "ir_version", 0), sub, 1, 10000);
  string(p, member(p, e, at, "signature", 0), at);
  const cJSON *ops = member(p, e, at, "ops", 0);
  if (ops) {
    int ok = cJSON_IsArray(ops) && cJSON_GetArraySize(ops) <= 256;
    for (const cJSON *o = ok ? ops->child : NULL; o && ok; o = o->next) {
      ok = cJSON_IsString(o) && o->valuestring[0] && strlen(o->valuestring) <= 64;
    }
    if (!ok) problem(p, "%s/ops: must be an array of at most 256 operator names (1 to 64 characters)", at);
    size_t n = ok ? (size_t)cJSON_GetArraySize(ops) : 0;
    x->ops = n ? calloc(n, sizeof *x->ops) : NULL;
    for (const cJSON *o = x->ops ? ops->child : NULL; o; o = o->next) {
      if (!(x->ops[x->n_ops] = strdup(o->valuestring))) break;
      x->n_ops++;
    }
    if (n && x->n_ops != n) problem(p, "%s/ops: out of memory", at);
  }
  if (!role || !format || !variant || !path || !sha) return;
  if (!role[0]) problem(p, "%s/role: must not be empty", at);
  if (strcmp(format, "onnx") && strcmp(format, "tflite")) problem(p, "%s/format: must be one of tflite, onnx", at);
  else if (strcmp(variant, "fp32") && strcmp(variant, "int8") && (strcmp(variant, "fp16") || !strcmp(format, "onnx"))) {
    problem(p, "%s/variant: must be one of %s", at, strcmp(format, "onnx") ? "fp32, fp16, int8" : "fp32, int8");
  }
  if (!plain_name(path)) problem(p, "%s/path: must be a plain file name ([A-Za-z0-9][A-Za-z0-9._-]{0,127})", at);
  size_t hex = 0;
  while (sha[hex] && ((sha[hex] >= '0' && sha[hex] <= '9') || (sha[hex] >= 'a' && sha[hex] <= 'f'))) hex++;
  if (hex != 64 || sha[64]) problem(p, "%s/sha256: must be 64 lowercase hex digits", at);
  else memcpy(x->sha256, sha, 65);
  x->size_bytes = size > 0 ? (uint64_t)size : 0;
  x->role = copy(role);
  x->format = copy(format);
  x->variant = copy(variant);
  x->path = copy(path);
  if (!x->role || !x->format || !x->variant || !x->path) problem(p, "out of memory");
}

static void check_contract(problems *p, s2s_manifest *m) {
  for (size_t i = 0; i < m->n_models; i++) {
    const s2s_model_entry *x = &m->models[i];
    if (!x->role || !x->format || !x->variant) continue;
    for (size_t j = 0; j < i; j++) {
      const s2s_model_entry *y = &m->models[j];
      if (y->role && !strcmp(x->role, y->role) && !strcmp(x->format, y->format) && !strcmp(x->variant, y->variant)) {
        problem(p, "models[%zu] ('%s'): a second %s/%s/%s model", i, x->path, x->role, x->format, x->variant);
      }
    }
    s2s_spec in[S2S_MAX_SPECS], out[S2S_MAX_SPECS];
    int n_in, n_out;
    if (!manifest_expected_io(m, x->role, in, &n_in, out, &n_out)) continue; /* a role this runtime does not use */
    for (int kind = 0; kind < 2; kind++) {
      const s2s_spec *have = kind ? x->outputs : x->inputs;
      int n_have = kind ? x->n_outputs : x->n_inputs;
      if (same_specs(have, n_have, kind ? out : in, kind ? n_out : n_in)) continue;
      s2s_buf got = {0}, want = {0};
      format_specs(&got, have, n_have);
      format_specs(&want, kind ? out : in, kind ? n_out : n_in);
      if (got.data && want.data) {
        problem(p, "models[%zu] ('%s'): %s %s contradict the contract %s", i, x->path, kind ? "outputs" : "inputs",
                got.data, want.data);
      }
      buf_free(&got);
      buf_free(&want);
    }
  }
}

static void read_manifest(problems *p, const cJSON *d, s2s_manifest *m) {
  const char *format = string(p, member(p, d, "", "format", 1), "/format");
  if (format && strcmp(format, "seq2seq-edge-bundle") != 0) problem(p, "/format: must be 'seq2seq-edge-bundle'");
  const cJSON *version = member(p, d, "", "version", 1);
  if (version && !(cJSON_IsNumber(version) && version->valuedouble == 1)) {
    if (format && strcmp(format, "seq2seq-edge-bundle") == 0) {
      char *v = cJSON_PrintUnformatted(version);
      problem(p, "manifest format version %s is not supported by this runtime (it reads version 1); upgrade the "
              "seq2seq-edge C library or re-export the bundle", v ? v : "?");
      free(v);
      return;
    }
    problem(p, "/version: must be 1");
  }
  string_map(p, member(p, d, "", "versions", 0), "/versions");
  string_map(p, member(p, d, "", "runtimes_tested", 0), "/runtimes_tested");
  const cJSON *provenance = member(p, d, "", "provenance", 0);
  if (provenance && !cJSON_IsObject(provenance)) problem(p, "/provenance: must be an object");
  read_preprocessing(p, member(p, d, "", "preprocessing", 1), m);
  read_model_section(p, member(p, d, "", "model", 1), m);
  if (p->n) return; /* the relations below need every field */
  if (m->encoder_time_steps < (int64_t)m->max_input_tokens) {
    problem(p, "model.encoder_time_steps (%lld) is below input.max_tokens (%zu)", (long long)m->encoder_time_steps,
            m->max_input_tokens);
  }
  const cJSON *models = member(p, d, "", "models", 1);
  int n = cJSON_IsArray(models) ? cJSON_GetArraySize(models) : -1;
  if (n < 1 || n > MAX_MODELS) {
    if (models) problem(p, "/models: must be an array of 1 to %d models", MAX_MODELS);
    return;
  }
  m->models = calloc((size_t)n, sizeof *m->models);
  if (!m->models) {
    problem(p, "out of memory");
    return;
  }
  m->n_models = (size_t)n;
  int i = 0;
  for (const cJSON *e = models->child; e; e = e->next) read_model_entry(p, e, i++, m);
  if (!p->n) check_contract(p, m);
}

s2s_status s2s_manifest_parse(const char *json, size_t len, const char *where, s2s_manifest **out,
                              s2s_error *err) {
  if (!json || !out) return s2s_fail(err, S2S_ERR_OPTION, "NULL argument");
  *out = NULL;
  if (!where) where = "manifest.json";
  if (len > S2S_MAX_MANIFEST_BYTES) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: manifest is %zu bytes, more than the %zu allowed", where, len,
                    S2S_MAX_MANIFEST_BYTES);
  }
  if (utf8_invalid_at(json, len) < len) return s2s_fail(err, S2S_ERR_BUNDLE, "%s: manifest is not valid UTF-8", where);
  if (len >= 3 && !memcmp(json, "\xEF\xBB\xBF", 3)) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: manifest starts with a byte order mark (JSON has none)", where);
  }
  if (memchr(json, '\0', len) || escaped_nul(json, len)) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: manifest has a NUL character; no field of a bundle may hold one", where);
  }
  const char *end = NULL;
  cJSON *d = cJSON_ParseWithLengthOpts(json, len, &end, 0);
  if (!d) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: manifest is not valid JSON (at byte %zu)", where,
                    end ? (size_t)(end - json) : (size_t)0);
  }
  while (end && end < json + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
  s2s_manifest *m = calloc(1, sizeof *m);
  problems p = {{0}, 0};
  if (!m || !(m->where = copy(where))) problem(&p, "out of memory");
  else if (end != json + len) problem(&p, "manifest is not valid JSON (text after the object at byte %zu)",
                                      (size_t)(end - json));
  else if (!cJSON_IsObject(d)) problem(&p, "manifest must be a JSON object");
  else {
    duplicate_keys(&p, d, 0);
    if (!p.n) read_manifest(&p, d, m);
  }
  cJSON_Delete(d);
  if (p.n || p.list.failed) {
    s2s_status st = p.list.failed ? s2s_fail(err, S2S_ERR_MEMORY, "out of memory")
                    : p.n == 1    ? s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s", where, p.list.data)
                                  : s2s_fail(err, S2S_ERR_BUNDLE, "%s: %d problems: %s%s", where, p.n, p.list.data,
                                             p.n > MAX_PROBLEMS ? "; ..." : "");
    buf_free(&p.list);
    s2s_manifest_free(m);
    return st;
  }
  *out = m;
  return S2S_OK;
}

void s2s_manifest_free(s2s_manifest *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_models; i++) {
    free(m->models[i].path);
    free(m->models[i].role);
    free(m->models[i].format);
    free(m->models[i].variant);
    for (size_t k = 0; k < m->models[i].n_ops; k++) free(m->models[i].ops[k]);
    free(m->models[i].ops);
  }
  free(m->models);
  vocab_free(&m->input);
  vocab_free(&m->target);
  free(m->where);
  free(m);
}

size_t manifest_loop_limit(const s2s_manifest *m, const char *role) {
  if (!strcmp(role, "encoder")) return (size_t)m->encoder_time_steps;
  if (!strcmp(role, "greedy")) {
    size_t steps = (size_t)m->encoder_time_steps, out = m->max_output_tokens + 1;
    return steps > out ? steps : out;
  }
  return 0;
}

int64_t manifest_row_limit(const s2s_manifest *m) {
  int64_t longest = m->encoder_time_steps > (int64_t)m->max_output_tokens + 1 ? m->encoder_time_steps
                                                                             : (int64_t)m->max_output_tokens + 1;
  int64_t widest = m->latent_dim;
  if (m->encoder_output_dim > widest) widest = m->encoder_output_dim;
  if ((int64_t)m->target.n > widest) widest = (int64_t)m->target.n;
  if ((int64_t)m->input.n > widest) widest = (int64_t)m->input.n;
  return 4 * longest * widest;
}

const s2s_model_entry *manifest_find(const s2s_manifest *m, const char *role, const char *format,
                                     const char *variant) {
  for (size_t i = 0; i < m->n_models; i++) {
    const s2s_model_entry *x = &m->models[i];
    if (!strcmp(x->role, role) && !strcmp(x->format, format) && !strcmp(x->variant, variant)) return x;
  }
  return NULL;
}

size_t s2s_manifest_max_input_tokens(const s2s_manifest *m) { return m->max_input_tokens; }
size_t s2s_manifest_max_output_tokens(const s2s_manifest *m) { return m->max_output_tokens; }
size_t s2s_manifest_max_input_chars(const s2s_manifest *m) { return m->max_input_tokens * 64 + 1024; }
size_t s2s_manifest_target_vocab_size(const s2s_manifest *m) { return m->target.n; }

const char *s2s_manifest_target_token(const s2s_manifest *m, int32_t id) {
  return id >= 0 && (size_t)id < m->target.n ? m->target.tokens[id] : NULL;
}
