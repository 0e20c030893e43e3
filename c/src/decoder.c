/* Loading a bundle into ONNX Runtime sessions (C API) and the greedy decode: the step loop (the encoder, then one
 * decoder step per token) or the bundle's one-call greedy model, as the Python and JavaScript runtimes do. */
#include <math.h>
#include <onnxruntime_c_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle.h"
#include "internal.h"
#include "modelcheck.h"

#define PROB_SLACK 1e-5f /* a probability may exceed 1 by float32 rounding of a softmax, never by more */
#define TINY 1e-45
/* No file can be created under /proc/self: where ONNX Runtime is told external data lives. */
#define NO_EXTERNAL_DATA_FOLDER "/proc/self/seq2seq-edge-no-external-data"

typedef struct {
  OrtSession *session;
  const s2s_model_entry *entry;
  char label[512]; /* "BUNDLE/file.onnx", for messages */
  const char *in_names[S2S_MAX_SPECS], *out_names[S2S_MAX_SPECS];
} model;

struct s2s_decoder {
  const OrtApi *ort;
  OrtEnv *env;
  OrtMemoryInfo *cpu;
  s2s_manifest *manifest;
  model encoder, step, greedy;
  int one_call;
};

/* ---- ONNX Runtime plumbing ---- */
static s2s_status ort_failed(const OrtApi *ort, OrtStatus *st, s2s_error *err, const char *where, const char *what) {
  s2s_status code = s2s_fail(err, S2S_ERR_ENGINE, "%s: %s: %s", where, what, ort->GetErrorMessage(st));
  ort->ReleaseStatus(st);
  return code;
}

#define ORT_TRY(call, where, what)                                  \
  do {                                                              \
    OrtStatus *st_ = (call);                                        \
    if (st_) return ort_failed(d->ort, st_, err, (where), (what)); \
  } while (0)

/* 1 when an ONNX Runtime call succeeded; a failure's status is released. */
static int ort_ok(const OrtApi *ort, OrtStatus *st) {
  if (st) ort->ReleaseStatus(st);
  return !st;
}

/* A tensor's data, or NULL. */
static void *tensor_data(const OrtApi *ort, OrtValue *value) {
  void *data = NULL;
  return ort_ok(ort, ort->GetTensorMutableData(value, &data)) ? data : NULL;
}

static int element_dtype(ONNXTensorElementDataType t) {
  return t == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32 ? 0 : t == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ? 1 : -1;
}

/* The session's real inputs or outputs against the manifest's declaration: names, dtypes, shapes (-1 dynamic). */
static s2s_status check_io(s2s_decoder *d, model *mdl, int outputs, s2s_error *err) {
  const OrtApi *ort = d->ort;
  const s2s_spec *want = outputs ? mdl->entry->outputs : mdl->entry->inputs;
  int n_want = outputs ? mdl->entry->n_outputs : mdl->entry->n_inputs;
  const char *kind = outputs ? "output" : "input";
  size_t n = 0;
  OrtAllocator *alloc;
  ORT_TRY(ort->GetAllocatorWithDefaultOptions(&alloc), mdl->label, "allocator");
  ORT_TRY(outputs ? ort->SessionGetOutputCount(mdl->session, &n) : ort->SessionGetInputCount(mdl->session, &n),
          mdl->label, "reading the model's inputs and outputs");
  int matched = 0;
  s2s_status status = S2S_OK;
  for (size_t i = 0; i < n && status == S2S_OK; i++) {
    char *name = NULL;
    OrtTypeInfo *info = NULL;
    OrtStatus *st = outputs ? ort->SessionGetOutputName(mdl->session, i, alloc, &name)
                            : ort->SessionGetInputName(mdl->session, i, alloc, &name);
    if (!st) st = outputs ? ort->SessionGetOutputTypeInfo(mdl->session, i, &info)
                          : ort->SessionGetInputTypeInfo(mdl->session, i, &info);
    if (st) {
      if (name) alloc->Free(alloc, name);
      status = ort_failed(ort, st, err, mdl->label, "reading the model's inputs and outputs");
      break;
    }
    const s2s_spec *spec = NULL;
    for (int k = 0; k < n_want; k++) spec = !spec && !strcmp(want[k].name, name) ? &want[k] : spec;
    const OrtTensorTypeAndShapeInfo *tensor = NULL;
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    size_t rank = 0;
    int64_t dims[8] = {0};
    if (!(ort_ok(ort, ort->CastTypeInfoToTensorInfo(info, &tensor)) && tensor &&
          ort_ok(ort, ort->GetTensorElementType(tensor, &type)) && ort_ok(ort, ort->GetDimensionsCount(tensor, &rank)) &&
          rank <= 8 && ort_ok(ort, ort->GetDimensions(tensor, dims, rank)))) {
      tensor = NULL;
    }
    if (!spec) {
      status = s2s_fail(err, S2S_ERR_BUNDLE, "%s: the model has the %s '%s' that the manifest does not declare",
                        mdl->label, kind, name);
    } else if (!tensor || element_dtype(type) != spec->dtype) {
      status = s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s '%s' is not %s in the model, as the manifest says", mdl->label,
                        kind, name, dtype_name(spec->dtype));
    } else {
      int same = (int)rank == spec->rank;
      for (size_t k = 0; same && k < rank; k++) same = (dims[k] < 0 ? -1 : dims[k]) == spec->shape[k];
      if (!same) {
        status = s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s '%s' has another shape in the model than in the manifest",
                          mdl->label, kind, name);
      }
      matched++;
    }
    ort->ReleaseTypeInfo(info);
    alloc->Free(alloc, name);
  }
  if (status == S2S_OK && matched != n_want) {
    status = s2s_fail(err, S2S_ERR_BUNDLE, "%s: the model lacks %s(s) the manifest declares", mdl->label, kind);
  }
  return status;
}

/* Run a model; then every declared output must have the contract's shape at this batch and its dtype. */
static s2s_status run(s2s_decoder *d, model *mdl, OrtValue *const *inputs, size_t batch, OrtValue **outputs,
                      s2s_error *err) {
  const s2s_model_entry *e = mdl->entry;
  for (int i = 0; i < e->n_outputs; i++) outputs[i] = NULL;
  OrtStatus *st = d->ort->Run(mdl->session, NULL, mdl->in_names, (const OrtValue *const *)inputs,
                              (size_t)e->n_inputs, mdl->out_names, (size_t)e->n_outputs, outputs);
  if (st) return ort_failed(d->ort, st, err, mdl->label, "ONNX Runtime failed to run the model");
  for (int i = 0; i < e->n_outputs; i++) {
    OrtTensorTypeAndShapeInfo *info = NULL;
    size_t rank = 0;
    int64_t dims[8];
    ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    const OrtApi *ort = d->ort;
    int ok = outputs[i] && ort_ok(ort, ort->GetTensorTypeAndShape(outputs[i], &info)) &&
             ort_ok(ort, ort->GetTensorElementType(info, &type)) && ort_ok(ort, ort->GetDimensionsCount(info, &rank)) &&
             (int)rank == e->outputs[i].rank && rank <= 8 && ort_ok(ort, ort->GetDimensions(info, dims, rank)) &&
             tensor_data(ort, outputs[i]);
    if (info) d->ort->ReleaseTensorTypeAndShapeInfo(info);
    ok = ok && element_dtype(type) == e->outputs[i].dtype;
    for (size_t k = 0; ok && k < rank; k++) {
      ok = dims[k] == (e->outputs[i].shape[k] == -1 ? (int64_t)batch : e->outputs[i].shape[k]);
    }
    if (!ok) {
      for (int k = 0; k < e->n_outputs; k++) {
        if (outputs[k]) d->ort->ReleaseValue(outputs[k]);
        outputs[k] = NULL;
      }
      return s2s_fail(err, S2S_ERR_BUNDLE, "%s: output '%s' came back with another shape or type at batch %zu than "
                      "the manifest gives", mdl->label, e->outputs[i].name, batch);
    }
  }
  return S2S_OK;
}

static void release_all(s2s_decoder *d, OrtValue **values, int n) {
  for (int i = 0; i < n; i++) {
    if (values[i]) d->ort->ReleaseValue(values[i]);
    values[i] = NULL;
  }
}

static s2s_status tensor(s2s_decoder *d, void *data, size_t bytes, const int64_t *shape, size_t rank, int dtype,
                         OrtValue **out, s2s_error *err) {
  *out = NULL;
  ORT_TRY(d->ort->CreateTensorWithDataAsOrtValue(d->cpu, data, bytes, shape, rank,
                                                 dtype ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
                                                       : ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, out),
          "tensor", "ONNX Runtime cannot make an input tensor");
  return S2S_OK;
}

/* One run on zeros at batch 1: a model that loads but cannot run fails here, at load time. */
static s2s_status test_run(s2s_decoder *d, model *mdl, s2s_error *err) {
  const s2s_model_entry *e = mdl->entry;
  OrtValue *in[S2S_MAX_SPECS] = {0}, *out[S2S_MAX_SPECS] = {0};
  void *zeros[S2S_MAX_SPECS] = {0};
  s2s_status status = S2S_OK;
  for (int i = 0; i < e->n_inputs && status == S2S_OK; i++) {
    int64_t shape[4];
    size_t count = 1;
    for (int k = 0; k < e->inputs[i].rank; k++) count *= (size_t)(shape[k] = e->inputs[i].shape[k] < 0 ? 1 : e->inputs[i].shape[k]);
    zeros[i] = calloc(count ? count : 1, 4);
    status = zeros[i] ? tensor(d, zeros[i], count * 4, shape, (size_t)e->inputs[i].rank, e->inputs[i].dtype, &in[i], err)
                      : s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
  }
  if (status == S2S_OK) status = run(d, mdl, in, 1, out, err);
  if (status == S2S_ERR_ENGINE) s2s_error_prefix(err, "the model failed a test run");
  release_all(d, out, e->n_outputs);
  release_all(d, in, e->n_inputs);
  for (int i = 0; i < e->n_inputs; i++) free(zeros[i]);
  return status;
}

/* ---- loading ---- */
static s2s_status read_checked(s2s_read_file_fn read_file, void *ctx, const char *source, const s2s_model_entry *e,
                               unsigned char **data, size_t *len, s2s_error *err) {
  s2s_status st = read_file(ctx, e->path, (size_t)e->size_bytes, data, len, err);
  if (st != S2S_OK) return st;
  char hex[65];
  if (*len != e->size_bytes) {
    st = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: model file is %zu bytes, the manifest says %llu (truncated, replaced "
                  "or corrupted: copy the bundle again)", source, e->path, *len, (unsigned long long)e->size_bytes);
  } else if (bundle_sha256_hex(*data, *len, hex) != 0) {
    st = s2s_fail(err, S2S_ERR_ENGINE, "sha256 is not available (OpenSSL)");
  } else if (strcmp(hex, e->sha256) != 0) {
    st = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: model file's sha256 does not match the manifest (modified or "
                  "corrupted: copy the bundle again)", source, e->path);
  }
  if (st != S2S_OK) {
    free(*data);
    *data = NULL;
  }
  return st;
}

static s2s_status open_session(s2s_decoder *d, model *mdl, const unsigned char *data, size_t len, int threads,
                               s2s_error *err) {
  const OrtApi *ort = d->ort;
  OrtSessionOptions *so = NULL;
  OrtStatus *st = ort->CreateSessionOptions(&so);
  if (!st) st = ort->SetIntraOpNumThreads(so, threads);
  if (!st) st = ort->SetInterOpNumThreads(so, 1);
  if (!st) st = ort->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL);
  /* A model loaded from memory resolves external-data file names against this folder (otherwise against the
   * working directory): one that cannot exist, so a model that refers to any file outside itself fails to load. */
  if (!st) st = ort->AddSessionConfigEntry(so, "session.model_external_initializers_file_folder_path", NO_EXTERNAL_DATA_FOLDER);
  if (!st) st = ort->CreateSessionFromArray(d->env, data, len, so, &mdl->session);
  if (so) ort->ReleaseSessionOptions(so);
  if (st) {
    s2s_status code = s2s_fail(err, S2S_ERR_BUNDLE, "%s: ONNX Runtime cannot load this model: %s", mdl->label,
                               ort->GetErrorMessage(st));
    ort->ReleaseStatus(st);
    return code;
  }
  for (int i = 0; i < mdl->entry->n_inputs; i++) mdl->in_names[i] = mdl->entry->inputs[i].name;
  for (int i = 0; i < mdl->entry->n_outputs; i++) mdl->out_names[i] = mdl->entry->outputs[i].name;
  s2s_status status = check_io(d, mdl, 0, err);
  if (status == S2S_OK) status = check_io(d, mdl, 1, err);
  if (status == S2S_OK) status = test_run(d, mdl, err);
  return status;
}

/* Put the manifest's declared specs in the contract's order, so that inputs and outputs line up by index. */
static void contract_order(s2s_decoder *d, const s2s_model_entry *e, s2s_model_entry *ordered) {
  *ordered = *e;
  manifest_expected_io(d->manifest, e->role, ordered->inputs, &ordered->n_inputs, ordered->outputs,
                       &ordered->n_outputs);
}

void s2s_load_options_init(s2s_load_options *o) {
  o->variant = "fp32";
  o->one_call = 0;
  o->threads = 1;
}

static void variants_held(const s2s_manifest *m, s2s_buf *out) {
  static const char *const order[] = {"fp32", "int8"};
  buf_puts(out, "[");
  int k = 0;
  for (int i = 0; i < 2; i++) {
    if (manifest_find(m, "encoder", "onnx", order[i]) && manifest_find(m, "decoder_step", "onnx", order[i])) {
      buf_printf(out, "%s\"%s\"", k++ ? "," : "", order[i]);
    }
  }
  buf_puts(out, "]");
}

typedef struct {
  s2s_model_entry entries[3]; /* encoder, step, greedy: in the contract's order */
  int n;
} chosen_models;

static s2s_status choose_models(s2s_decoder *d, const char *source, const s2s_load_options *o, chosen_models *c,
                                s2s_error *err) {
  const s2s_model_entry *enc = manifest_find(d->manifest, "encoder", "onnx", o->variant);
  const s2s_model_entry *step = manifest_find(d->manifest, "decoder_step", "onnx", o->variant);
  if (!enc || !step) {
    s2s_buf held = {0};
    variants_held(d->manifest, &held);
    s2s_fail(err, S2S_ERR_BUNDLE, "%s: the bundle has no onnx %s models (it holds onnx variants %s)", source,
             o->variant, held.data ? held.data : "?");
    buf_free(&held);
    return S2S_ERR_BUNDLE;
  }
  const s2s_model_entry *greedy = o->one_call ? manifest_find(d->manifest, "greedy", "onnx", o->variant) : NULL;
  if (o->one_call && !greedy) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: the bundle has no one-call greedy model for onnx %s (re-export it "
                    "with a seq2seq-edge that writes one, or load with one_call = 0)", source, o->variant);
  }
  contract_order(d, enc, &c->entries[0]);
  contract_order(d, step, &c->entries[1]);
  c->n = 2;
  if (greedy) contract_order(d, greedy, &c->entries[c->n++]);
  return S2S_OK;
}

static s2s_status start_onnxruntime(s2s_decoder *d, const char *source, s2s_error *err) {
  const OrtApiBase *base = OrtGetApiBase();
  d->ort = base ? base->GetApi(ORT_API_VERSION) : NULL;
  if (!d->ort) {
    return s2s_fail(err, S2S_ERR_ENGINE, "the ONNX Runtime library does not provide API version %d (this library "
                    "was built against onnxruntime 1.%d: use that release or a newer one)", ORT_API_VERSION,
                    ORT_API_VERSION);
  }
  OrtStatus *st = d->ort->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "seq2seq-edge", &d->env); /* errors come back as our messages */
  if (!st) st = d->ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &d->cpu);
  return st ? ort_failed(d->ort, st, err, source, "ONNX Runtime cannot start") : S2S_OK;
}

/* The manifest, then every model file's size and sha256, then what each model can do (from its bytes), then ONNX
 * Runtime and its sessions. */
static s2s_status load(s2s_decoder *d, s2s_read_file_fn read_file, void *ctx, const char *source,
                       const s2s_load_options *o, chosen_models *c, s2s_error *err) {
  unsigned char *json = NULL;
  size_t len = 0;
  char where[512];
  snprintf(where, sizeof where, "%s/manifest.json", source);
  s2s_status st = read_file(ctx, "manifest.json", S2S_MAX_MANIFEST_BYTES, &json, &len, err);
  if (st != S2S_OK) return st;
  st = s2s_manifest_parse((const char *)json, len, where, &d->manifest, err);
  free(json);
  if (st != S2S_OK) return st;
  if (strcmp(o->variant, "fp32") && strcmp(o->variant, "int8")) {
    return s2s_fail(err, S2S_ERR_OPTION, "variant must be fp32 or int8 (ONNX), got '%s'", o->variant);
  }
  if ((st = choose_models(d, source, o, c, err)) != S2S_OK) return st;
  unsigned char *bytes[3] = {0};
  size_t sizes[3] = {0};
  for (int i = 0; i < c->n && st == S2S_OK; i++) { /* every size and checksum before ONNX Runtime sees a byte */
    st = read_checked(read_file, ctx, source, &c->entries[i], &bytes[i], &sizes[i], err);
  }
  for (int i = 0; i < c->n && st == S2S_OK; i++) { /* what each model can do, proved from its bytes (modelcheck.c) */
    const s2s_model_entry *e = &c->entries[i];
    char label[512];
    snprintf(label, sizeof label, "%s/%s", source, e->path);
    st = modelcheck_ops(bytes[i], sizes[i], e->format, e->role, (const char *const *)e->ops, e->n_ops,
                        manifest_loop_limit(d->manifest, e->role), label, err);
    if (st == S2S_OK) {
      st = modelcheck_shapes(bytes[i], sizes[i], e->inputs, e->n_inputs, manifest_row_limit(d->manifest), label, err);
    }
  }
  if (st == S2S_OK) st = start_onnxruntime(d, source, err); /* only now: nothing above needs it */
  model *models[3] = {&d->encoder, &d->step, &d->greedy};
  for (int i = 0; i < c->n && st == S2S_OK; i++) {
    models[i]->entry = &c->entries[i];
    snprintf(models[i]->label, sizeof models[i]->label, "%s/%s", source, c->entries[i].path);
    st = open_session(d, models[i], bytes[i], sizes[i], o->threads, err);
  }
  for (int i = 0; i < 3; i++) free(bytes[i]);
  d->one_call = c->n == 3;
  return st;
}

/* The decoder owns the ordered model entries it runs (the manifest's copies are in the manifest's order). */
typedef struct {
  s2s_decoder d;
  chosen_models chosen;
} decoder_with_models;

s2s_status s2s_load_with_reader(s2s_read_file_fn read_file, void *ctx, const char *source,
                                const s2s_load_options *options, s2s_decoder **out, s2s_error *err) {
  if (!read_file || !out) return s2s_fail(err, S2S_ERR_OPTION, "NULL argument");
  *out = NULL;
  s2s_load_options o;
  s2s_load_options_init(&o);
  if (options) o = *options;
  if (!o.variant) o.variant = "fp32";
  if (o.threads < 1 || o.threads > 256) return s2s_fail(err, S2S_ERR_OPTION, "threads must be 1..256, got %d", o.threads);
  if (o.one_call < 0 || o.one_call > 1) return s2s_fail(err, S2S_ERR_OPTION, "one_call must be 0 or 1");
  decoder_with_models *dm = calloc(1, sizeof *dm);
  if (!dm) return s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
  s2s_decoder *d = &dm->d;
  s2s_status status = load(d, read_file, ctx, source ? source : "bundle", &o, &dm->chosen, err);
  if (status != S2S_OK) {
    s2s_decoder_free(d);
    return status;
  }
  *out = d;
  return S2S_OK;
}

s2s_status s2s_load(const char *dir, const s2s_load_options *options, s2s_decoder **out, s2s_error *err) {
  if (!dir) return s2s_fail(err, S2S_ERR_OPTION, "NULL argument");
  char source[400];
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') n--; /* "bundle/" names files as "bundle/x" */
  if (n >= sizeof source) return s2s_fail(err, S2S_ERR_OPTION, "the bundle's path is too long");
  memcpy(source, dir, n);
  source[n] = '\0';
  return s2s_load_with_reader(bundle_read_folder, source, source, options, out, err);
}

void s2s_decoder_free(s2s_decoder *d) {
  if (!d) return;
  model *models[3] = {&d->encoder, &d->step, &d->greedy};
  for (int i = 0; i < 3; i++) {
    if (models[i]->session) d->ort->ReleaseSession(models[i]->session);
  }
  if (d->cpu) d->ort->ReleaseMemoryInfo(d->cpu);
  if (d->env) d->ort->ReleaseEnv(d->env); /* d->ort is set whenever one of these is */
  s2s_manifest_free(d->manifest);
  free(d); /* d is the first member of decoder_with_models */
}

const s2s_manifest *s2s_decoder_manifest(const s2s_decoder *d) { return d->manifest; }
const char *s2s_decoder_decode_path(const s2s_decoder *d) { return d->one_call ? "one-call" : "step-loop"; }
size_t s2s_decoder_max_output_len(const s2s_decoder *d) { return d->manifest->max_output_tokens; }

/* ---- decoding ---- */
void s2s_decode_options_init(s2s_decode_options *o) {
  o->batch_size = 32;
  o->max_output_len = 0;
  o->skip_unknown = 0;
}

/* Chosen ids and their probabilities for `rows` inputs, `width` = limit + 1 steps each. */
typedef struct {
  size_t rows, width, steps;
  int32_t *ids;
  float *probs;
} picks;

static s2s_status greedy_steps(s2s_decoder *d, int32_t *input_ids, size_t batch, size_t limit, picks *p,
                               s2s_error *err) {
  size_t T = (size_t)d->manifest->encoder_time_steps, V = d->manifest->target.n;
  int64_t shape[2] = {(int64_t)batch, (int64_t)T};
  OrtValue *ids_value = NULL, *enc[4] = {0}, *step_out[3] = {0}, *feeds[5] = {0};
  int32_t *prev = malloc(batch * sizeof *prev);
  unsigned char *ended = calloc(batch, 1);
  s2s_status st = prev && ended ? tensor(d, input_ids, batch * T * 4, shape, 2, 0, &ids_value, err)
                                : s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
  if (st == S2S_OK) st = run(d, &d->encoder, &ids_value, batch, enc, err);
  int n_enc = d->encoder.entry->n_outputs; /* state_h, state_c[, encoder_outputs, encoder_mask] */
  int64_t prev_shape[1] = {(int64_t)batch};
  for (size_t i = 0; i < batch && prev; i++) prev[i] = S2S_START_ID;
  OrtValue *state_h = enc[0], *state_c = enc[1];
  p->steps = 0;
  for (size_t s = 0; st == S2S_OK && s <= limit; s++) {
    OrtValue *prev_value = NULL;
    st = tensor(d, prev, batch * 4, prev_shape, 1, 0, &prev_value, err);
    if (st != S2S_OK) break;
    feeds[0] = prev_value, feeds[1] = state_h, feeds[2] = state_c;
    for (int k = 2; k < n_enc; k++) feeds[k + 1] = enc[k];
    st = run(d, &d->step, feeds, batch, step_out, err);
    d->ort->ReleaseValue(prev_value);
    if (st != S2S_OK) break;
    const float *probs = tensor_data(d->ort, step_out[0]); /* not NULL: run() checked it */
    int all_ended = 1;
    for (size_t r = 0; r < batch; r++) {
      size_t best = 0;
      float best_p = -INFINITY;
      for (size_t v = 0; v < V; v++) {
        float x = probs[r * V + v];
        if (x != x) { /* NaN: numpy's argmax takes the first NaN */
          best = v;
          break;
        }
        if (x > best_p) best_p = x, best = v; /* the first maximum, as numpy's argmax */
      }
      p->ids[r * p->width + s] = (int32_t)best;
      p->probs[r * p->width + s] = probs[r * V + best];
      prev[r] = (int32_t)best;
      if (best == S2S_END_ID) ended[r] = 1;
      all_ended &= ended[r];
    }
    p->steps = s + 1;
    d->ort->ReleaseValue(step_out[0]);
    if (state_h != enc[0]) d->ort->ReleaseValue(state_h);
    if (state_c != enc[1]) d->ort->ReleaseValue(state_c);
    state_h = step_out[1], state_c = step_out[2];
    step_out[0] = step_out[1] = step_out[2] = NULL;
    if (all_ended) break;
  }
  if (state_h != enc[0]) d->ort->ReleaseValue(state_h);
  if (state_c != enc[1]) d->ort->ReleaseValue(state_c);
  release_all(d, step_out, 3);
  release_all(d, enc, 4);
  if (ids_value) d->ort->ReleaseValue(ids_value);
  free(prev);
  free(ended);
  return st;
}

static s2s_status one_call_steps(s2s_decoder *d, int32_t *input_ids, size_t batch, size_t limit, picks *p,
                                 s2s_error *err) {
  size_t T = (size_t)d->manifest->encoder_time_steps, W = d->manifest->max_output_tokens + 1;
  int64_t shape[2] = {(int64_t)batch, (int64_t)T};
  OrtValue *ids_value = NULL, *out[2] = {0};
  s2s_status st = tensor(d, input_ids, batch * T * 4, shape, 2, 0, &ids_value, err);
  if (st == S2S_OK) st = run(d, &d->greedy, &ids_value, batch, out, err);
  if (st == S2S_OK) {
    const int32_t *ids = tensor_data(d->ort, out[0]); /* not NULL: run() checked it */
    const float *probs = tensor_data(d->ort, out[1]);
    for (size_t r = 0; r < batch && st == S2S_OK; r++) {
      for (size_t s = 0; s <= limit; s++) {
        int32_t id = ids[r * W + s];
        if (id < 0 || (size_t)id >= d->manifest->target.n) {
          st = s2s_fail(err, S2S_ERR_BUNDLE, "%s: the greedy model returned ids outside the target vocabulary",
                        d->greedy.label);
          break;
        }
        p->ids[r * p->width + s] = id;
        p->probs[r * p->width + s] = probs[r * W + s];
      }
    }
    p->steps = limit + 1;
  }
  release_all(d, out, 2);
  if (ids_value) d->ort->ReleaseValue(ids_value);
  return st;
}

/* What no honest model emits: a reserved id other than the end marker among a row's tokens, or a chosen token's
 * probability that is not finite or outside [0, 1]. A row's outputs after its end id are not looked at. */
static s2s_status check_outputs(const picks *p, const char *where, s2s_error *err) {
  for (size_t r = 0; r < p->rows; r++) {
    const int32_t *row = p->ids + r * p->width;
    size_t end = 0;
    while (end < p->steps && row[end] != S2S_END_ID) end++;
    for (size_t i = 0; i < end; i++) {
      if (row[i] == S2S_PAD_ID || row[i] == S2S_START_ID) {
        return s2s_fail(err, S2S_ERR_BUNDLE, "%s: the model chose the reserved id %d at step %zu of item %zu (only "
                        "the end id %d may end an output)", where, row[i], i + 1, r + 1, S2S_END_ID);
      }
    }
    for (size_t i = 0; i <= end && i < p->steps; i++) {
      float x = p->probs[r * p->width + i];
      if (!isfinite(x) || x < 0 || x > 1 + PROB_SLACK) {
        return s2s_fail(err, S2S_ERR_BUNDLE, "%s: the model gave a probability of %g (not a probability in [0, 1])",
                        where, (double)x);
      }
    }
  }
  return S2S_OK;
}

void s2s_result_clear(s2s_result *r) {
  if (!r) return;
  free(r->text);
  free(r->tokens); /* the strings point into one block after the array */
  free(r->token_probs);
  memset(r, 0, sizeof *r);
}

/* A row's result: it ends at its first end id; without one it was cut at `limit` tokens. */
static s2s_status make_result(const s2s_manifest *m, const int32_t *ids, const float *probs, size_t steps,
                              size_t limit, s2s_result *out) {
  memset(out, 0, sizeof *out);
  size_t n = 0;
  while (n < steps && ids[n] != S2S_END_ID) n++;
  out->finished = n < steps;
  out->n_tokens = out->finished ? n : (limit < steps ? limit : steps);
  out->n_probs = out->finished ? n + 1 : out->n_tokens;
  size_t text_len = 0;
  for (size_t i = 0; i < out->n_tokens; i++) text_len += m->target.lens[ids[i]] + 1;
  out->text = malloc(text_len + 1);
  out->tokens = malloc(out->n_tokens * sizeof(char *) + text_len + 1);
  out->token_probs = malloc((out->n_probs ? out->n_probs : 1) * sizeof(float));
  if (!out->text || !out->tokens || !out->token_probs) {
    s2s_result_clear(out);
    return S2S_ERR_MEMORY;
  }
  char *t = out->text, *strings = (char *)(out->tokens + out->n_tokens);
  const char *sep = m->target.tokenization == S2S_TOK_SPACE ? " " : "";
  for (size_t i = 0; i < out->n_tokens; i++) {
    size_t len = m->target.lens[ids[i]];
    if (i && *sep) *t++ = ' ';
    memcpy(t, m->target.tokens[ids[i]], len);
    t += len;
    memcpy(strings, m->target.tokens[ids[i]], len + 1);
    out->tokens[i] = strings;
    strings += len + 1;
  }
  *t = '\0';
  double score = 0;
  for (size_t i = 0; i < out->n_probs; i++) {
    out->token_probs[i] = probs[i];
    score += log((double)probs[i] > TINY ? (double)probs[i] : TINY);
  }
  out->score = score;
  return S2S_OK;
}

/* Decode `rows` encoded inputs into out[0..rows). */
static s2s_status decode_rows(s2s_decoder *d, int32_t *input_ids, size_t rows, size_t limit, s2s_result *out,
                              s2s_error *err) {
  picks p = {rows, limit + 1, 0, calloc(rows * (limit + 1), sizeof(int32_t)), calloc(rows * (limit + 1), sizeof(float))};
  s2s_status st = p.ids && p.probs ? S2S_OK : s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
  if (st == S2S_OK) {
    st = d->one_call ? one_call_steps(d, input_ids, rows, limit, &p, err)
                     : greedy_steps(d, input_ids, rows, limit, &p, err);
  }
  if (st == S2S_OK) st = check_outputs(&p, d->one_call ? d->greedy.label : d->step.label, err);
  for (size_t r = 0; r < rows && st == S2S_OK; r++) {
    if (make_result(d->manifest, p.ids + r * p.width, p.probs + r * p.width, p.steps, limit, &out[r]) != S2S_OK) {
      for (size_t k = 0; k < r; k++) s2s_result_clear(&out[k]);
      st = s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
    }
  }
  free(p.ids);
  free(p.probs);
  return st;
}

static s2s_status check_options(const s2s_decoder *d, const s2s_decode_options *o, size_t *limit, s2s_error *err) {
  size_t max = d->manifest->max_output_tokens;
  if (o->batch_size < 1 || o->batch_size > S2S_MAX_BATCH_SIZE) {
    return s2s_fail(err, S2S_ERR_OPTION, "batch_size must be between 1 and %d, got %zu", S2S_MAX_BATCH_SIZE,
                    o->batch_size);
  }
  if (o->max_output_len > max) {
    return s2s_fail(err, S2S_ERR_OPTION, "max_output_len must be between 1 and the trained maximum %zu, got %zu", max,
                    o->max_output_len);
  }
  *limit = o->max_output_len ? o->max_output_len : max;
  return S2S_OK;
}

/* 'text' for messages, cut at 40 characters: 'abc...' (N characters). */
static void preview(s2s_buf *out, const char *s) {
  size_t len = strlen(s), chars = utf8_count(s, len);
  if (chars <= 40 || utf8_invalid_at(s, len) < len) {
    py_repr(out, s, len > 160 ? 160 : len);
    return;
  }
  size_t cut = 0;
  for (size_t n = 0; n < 40; n++) {
    cut++;
    while (cut < len && ((unsigned char)s[cut] & 0xC0) == 0x80) cut++;
  }
  py_repr(out, s, cut);
  buf_printf(out, "... (%zu characters)", chars);
}

s2s_status s2s_decode_batch(s2s_decoder *d, const char *const *texts, size_t n, const s2s_decode_options *options,
                            s2s_result *out, s2s_error *err) {
  if (!d || (!texts && n) || (!out && n)) return s2s_fail(err, S2S_ERR_OPTION, "NULL argument");
  s2s_decode_options o;
  s2s_decode_options_init(&o);
  if (options) o = *options;
  size_t limit = 0, T = (size_t)d->manifest->encoder_time_steps;
  s2s_status st = check_options(d, &o, &limit, err);
  if (st != S2S_OK) return st;
  memset(out, 0, n * sizeof *out);
  int32_t *encoded = calloc(n * T + 1, sizeof *encoded); /* padded rows; PAD_ID is 0 */
  size_t *lengths = calloc(n + 1, sizeof *lengths), *pending = calloc(n + 1, sizeof *pending);
  if (!encoded || !lengths || !pending) st = s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
  size_t n_pending = 0;
  for (size_t i = 0; i < n && st == S2S_OK; i++) {
    if (!texts[i]) {
      st = s2s_fail(err, S2S_ERR_OPTION, "item %zu of %zu is NULL", i + 1, n);
      break;
    }
    st = s2s_manifest_encode_input(d->manifest, texts[i], strlen(texts[i]), o.skip_unknown, encoded + i * T,
                                   &lengths[i], err);
    if (st == S2S_ERR_INPUT && n > 1) { /* counted from 1, as the CLI counts lines */
      s2s_buf shown = {0};
      preview(&shown, texts[i]);
      s2s_error_prefix(err, "item %zu of %zu (%s)", i + 1, n, shown.data ? shown.data : "?");
      buf_free(&shown);
    }
    if (st == S2S_OK && lengths[i]) pending[n_pending++] = i;
  }
  size_t rows = o.batch_size;
  int32_t *chunk = st == S2S_OK ? calloc((rows < n_pending ? rows : n_pending) * T + 1, sizeof *chunk) : NULL;
  s2s_result *found = st == S2S_OK ? calloc((rows < n_pending ? rows : n_pending) + 1, sizeof *found) : NULL;
  if (st == S2S_OK && (!chunk || !found)) st = s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
  for (size_t start = 0; start < n_pending && st == S2S_OK; start += rows) {
    size_t count = n_pending - start < rows ? n_pending - start : rows;
    for (size_t k = 0; k < count; k++) memcpy(chunk + k * T, encoded + pending[start + k] * T, T * sizeof *chunk);
    st = decode_rows(d, chunk, count, limit, found, err);
    for (size_t k = 0; k < count && st == S2S_OK; k++) out[pending[start + k]] = found[k];
  }
  for (size_t i = 0; i < n && st == S2S_OK; i++) {
    if (!lengths[i]) { /* an empty input decodes to the empty output, finished, with no probabilities */
      out[i].text = calloc(1, 1);
      out[i].tokens = calloc(1, sizeof(char *));
      out[i].token_probs = calloc(1, sizeof(float));
      out[i].finished = 1;
      if (!out[i].text || !out[i].tokens || !out[i].token_probs) st = s2s_fail(err, S2S_ERR_MEMORY, "out of memory");
    }
  }
  if (st != S2S_OK) {
    for (size_t i = 0; i < n; i++) s2s_result_clear(&out[i]);
  }
  free(encoded);
  free(lengths);
  free(pending);
  free(chunk);
  free(found);
  return st;
}

s2s_status s2s_decode(s2s_decoder *d, const char *text, const s2s_decode_options *options, s2s_result *out,
                      s2s_error *err) {
  s2s_decode_options o;
  s2s_decode_options_init(&o);
  if (options) o = *options;
  o.batch_size = 1;
  return s2s_decode_batch(d, &text, 1, &o, out, err);
}
