/* What an ONNX model file may be, proved from its bytes before ONNX Runtime sees them: the Python runtime's reader
 * (runtime/backends/onnx_wire.py) and checks (backends.inspect_model, loader.check_model_ops), with the same
 * messages; the shared crafted files (tests/make_crafted.py) hold every runtime to the same verdicts.
 *
 * Every read is bounded by the buffer and nesting by a fixed depth. Names are slices of the file's bytes (compared as
 * bytes, as ONNX Runtime compares them); lookups go through sorted arrays, so a file of n names costs O(n log n). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "modelcheck.h"
#include "protobuf.h"

/* The operators an ONNX model of each role may hold: runtime/manifest.py ALLOWED_OPS (the manifest schema's
 * x-contract.allowed_ops, which tests/test_vectors.c compares with these lists). Sorted. */
static const char *const ONNX_STEP[] = {
    "Add", "Cast", "Concat", "DequantizeLinear", "DynamicQuantizeLinear", "Gather", "Gemm", "Identity", "MatMul",
    "MatMulInteger", "Mul", "QuantizeLinear", "Reshape", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "Sub",
    "Tanh", "Transpose", "Unsqueeze", NULL};
static const char *const ONNX_ENCODER[] = {
    "Add", "And", "Cast", "Concat", "ConstantOfShape", "DequantizeLinear", "DynamicQuantizeLinear", "Equal", "Expand",
    "Gather", "Gemm", "Identity", "Less", "Loop", "MatMul", "MatMulInteger", "Mul", "Not", "QuantizeLinear",
    "ReduceMax", "ReduceSum", "Reshape", "Shape", "Sigmoid", "Slice", "Split", "Squeeze", "Sub", "Tanh", "Transpose",
    "Unsqueeze", "Where", NULL};
static const char *const ONNX_GREEDY[] = {
    "Add", "And", "ArgMax", "Cast", "Concat", "ConstantOfShape", "DequantizeLinear", "DynamicQuantizeLinear", "Equal",
    "Expand", "Gather", "Gemm", "Greater", "Identity", "Less", "Loop", "MatMul", "MatMulInteger", "Mul", "Not", "Or",
    "QuantizeLinear", "ReduceMax", "ReduceSum", "Reshape", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze",
    "Sub", "Tanh", "Transpose", "Unsqueeze", "Where", NULL};

const char *const *modelcheck_allowed_ops(const char *format, const char *role) {
  if (strcmp(format, "onnx") != 0) return NULL;
  if (!strcmp(role, "encoder")) return ONNX_ENCODER;
  if (!strcmp(role, "decoder_step")) return ONNX_STEP;
  if (!strcmp(role, "greedy")) return ONNX_GREEDY;
  return NULL;
}

/* ---- the protobuf wire format (protobuf.h) ---- */
int pb_varint(slice s, size_t *pos, uint64_t *out, const char **error) {
  uint64_t result = 0;
  for (unsigned shift = 0;; shift += 7) {
    if (*pos >= s.n || shift > 63) {
      *error = "truncated varint";
      return 0;
    }
    unsigned char b = s.p[(*pos)++];
    result |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = result;
      return 1;
    }
  }
}

/* The next field of a message: 1, 0 at its end, -1 (it->error set) when malformed. */
int pb_next_field(fields *it, field *f) {
  if (it->error || it->pos >= it->m.n) return it->error ? -1 : 0;
  uint64_t key;
  if (!pb_varint(it->m, &it->pos, &key, &it->error)) return -1;
  f->number = key >> 3;
  f->wire = (int)(key & 7);
  if (f->number == 0) {
    it->error = "field number 0";
    return -1;
  }
  if (key > 0xFFFFFFFFu) { /* protobuf reads a key as 32 bits: a longer one would name another field there */
    it->error = "field key wider than 32 bits";
    return -1;
  }
  size_t width = 0;
  if (f->wire == 0) return pb_varint(it->m, &it->pos, &f->value, &it->error) ? 1 : -1;
  if (f->wire == 1) width = 8;
  else if (f->wire == 5) width = 4;
  else if (f->wire == 2) {
    uint64_t length;
    if (!pb_varint(it->m, &it->pos, &length, &it->error)) return -1;
    if (length > it->m.n - it->pos) {
      it->error = "length-delimited field runs past the end";
      return -1;
    }
    width = (size_t)length;
  } else {
    snprintf(it->text, sizeof it->text, "unsupported wire type %d", f->wire);
    it->error = it->text;
    return -1;
  }
  if (width > it->m.n - it->pos) {
    it->error = "truncated field";
    return -1;
  }
  f->bytes = (slice){it->m.p + it->pos, width};
  it->pos += width;
  return 1;
}

/* ---- what the reader collects ---- */
typedef struct {
  slice name;
  int64_t value;
} constant;

typedef struct {
  slice domain, type;
  size_t first_input, n_inputs, first_output, n_outputs; /* into the names array */
} node_rec;

typedef struct {
  size_t depth, graphs;
  slice m;
} loop_rec;

#define GROW(arr, n, cap)                                                        \
  do {                                                                           \
    if ((n) == (cap)) {                                                          \
      size_t c2 = (cap) ? 2 * (cap) : 16;                                        \
      void *p2 = realloc((arr), c2 * sizeof *(arr));                             \
      if (!p2) return (s)->oom = 1, 0;                                           \
      (arr) = p2;                                                                \
      (cap) = c2;                                                                \
    }                                                                            \
  } while (0)

typedef struct {
  int oom;
  const char *error;
  char error_text[48]; /* a copy of an error whose text lived in a fields iterator */
  int has_ir, graph_seen, training_info;
  size_t stray_graphs;
  slice *externals, *functions, *defs, *any_consts, *main_outputs, *sub_ops, *names, *inputs;
  size_t n_externals, c_externals, n_functions, c_functions, n_defs, c_defs, n_any, c_any, n_outs, c_outs, n_sub,
      c_sub, n_names, c_names, n_inputs, c_inputs;
  slice *op_domains, *op_types;
  size_t n_ops, c_ops, c_types;
  constant *consts;
  size_t n_consts, c_consts;
  node_rec *nodes;
  size_t n_nodes, c_nodes;
  loop_rec *loops;
  size_t n_loops, c_loops;
} summary;

static int push(summary *s, slice **arr, size_t *n, size_t *cap, slice v) {
  GROW(*arr, *n, *cap);
  (*arr)[(*n)++] = v;
  return 1;
}

static int slice_eq(slice a, const char *b) { return a.n == strlen(b) && !memcmp(a.p, b, a.n); }

/* The next code point of a name read as Python reads it (bytes.decode("utf-8", "surrogateescape")): a byte that
 * starts no valid UTF-8 character is U+DC00 + the byte. */
static int32_t next_cp(slice x, size_t *at) {
  int32_t cp;
  size_t k = utf8_next(x.p + *at, x.n - *at, &cp);
  if (!k) {
    cp = 0xDC00 + x.p[*at];
    k = 1;
  }
  *at += k;
  return cp;
}

/* Names in Python's order: by code point. */
static int slice_cmp(const void *x, const void *y) {
  const slice *a = x, *b = y;
  size_t i = 0, j = 0;
  while (i < a->n && j < b->n) {
    int32_t p = next_cp(*a, &i), q = next_cp(*b, &j);
    if (p != q) return p < q ? -1 : 1;
  }
  return (i < a->n) - (j < b->n);
}

/* Keep a malformed message's error (its text may live in the iterator); returns 0. */
static int keep_error(summary *s, const fields *it) {
  snprintf(s->error_text, sizeof s->error_text, "%s", it->error);
  s->error = s->error_text;
  return 0;
}

/* A message's name field: the last one, as protobuf keeps a singular field given twice. */
static int name_of(summary *s, slice msg, uint64_t number, slice *out) {
  fields it = {msg, 0, NULL, {0}};
  field f;
  int r;
  *out = (slice){(const unsigned char *)"", 0};
  while ((r = pb_next_field(&it, &f)) > 0) {
    if (f.number == number && f.wire == 2) *out = f.bytes;
  }
  return r < 0 ? keep_error(s, &it) : 1;
}

static int read_graph(summary *s, slice g, size_t depth);

static int read_tensor(summary *s, slice t, int main) {
  fields it = {t, 0, NULL, {0}};
  field f;
  int r, external = 0, scalar_dims = 1, have_raw = 0, n_values = 0;
  uint64_t data_type = 0, value = 0;
  int have_type = 0;
  slice name = {(const unsigned char *)"", 0}, raw = {0};
  while ((r = pb_next_field(&it, &f)) > 0) {
    if (f.number == 8 && f.wire == 2) name = f.bytes;
    else if (f.number == 13 && f.wire == 2) external = 1;
    else if (f.number == 14 && f.wire == 0 && f.value == 1) external = 1;
    else if (f.number == 1) {
      if (f.wire == 0) scalar_dims &= f.value == 1;
      else scalar_dims &= f.bytes.n == 0 || (f.bytes.n == 1 && f.bytes.p[0] == 1);
    } else if (f.number == 2 && f.wire == 0) {
      data_type = f.value;
      have_type = 1;
    } else if ((f.number == 5 || f.number == 7) && n_values < 2) {
      if (f.wire == 0) {
        value = f.value;
        n_values++;
      } else { /* packed: every varint in it (two are enough to say it is not a scalar) */
        for (size_t pos = 0; pos < f.bytes.n && n_values < 2; n_values++) {
          if (!pb_varint(f.bytes, &pos, &value, &s->error)) return 0;
        }
      }
    } else if (f.number == 9 && f.wire == 2) { /* the last one counts, as protobuf keeps it */
      raw = f.bytes;
      have_raw = 1;
    }
  }
  if (r < 0) return keep_error(s, &it);
  if (main && !(push(s, &s->defs, &s->n_defs, &s->c_defs, name) && push(s, &s->any_consts, &s->n_any, &s->c_any, name))) {
    return 0;
  }
  if (external) return push(s, &s->externals, &s->n_externals, &s->c_externals, name);
  if (!main || !have_type || (data_type != 6 && data_type != 7) || !scalar_dims) return 1;
  size_t width = data_type == 6 ? 4 : 8;
  int64_t v;
  if (have_raw && raw.n == width) {
    uint64_t u = 0;
    for (size_t i = 0; i < width; i++) u |= (uint64_t)raw.p[i] << (8 * i);
    v = width == 4 ? (int64_t)(int32_t)(uint32_t)u : (int64_t)u;
  } else if (!have_raw && n_values == 1) {
    v = (int64_t)value;
  } else return 1;
  GROW(s->consts, s->n_consts, s->c_consts);
  s->consts[s->n_consts++] = (constant){name, v};
  return 1;
}

static int read_sparse(summary *s, slice t, int main) {
  fields it = {t, 0, NULL, {0}};
  field f;
  int r;
  while ((r = pb_next_field(&it, &f)) > 0) {
    if ((f.number == 1 || f.number == 2) && f.wire == 2) {
      if (!read_tensor(s, f.bytes, 0)) return 0;
      if (main && f.number == 1) { /* a sparse initializer is named by its values tensor */
        slice name;
        if (!name_of(s, f.bytes, 8, &name)) return 0;
        if (!push(s, &s->defs, &s->n_defs, &s->c_defs, name)) return 0;
      }
    }
  }
  return r < 0 ? keep_error(s, &it) : 1;
}

/* One attribute; adds the graphs it holds to *graphs. */
static int read_attribute(summary *s, slice a, size_t depth, size_t *graphs) {
  fields it = {a, 0, NULL, {0}};
  field f;
  int r;
  while ((r = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if ((f.number == 5 || f.number == 10) && !read_tensor(s, f.bytes, 0)) return 0;
    if ((f.number == 22 || f.number == 23) && !read_sparse(s, f.bytes, 0)) return 0;
    if (f.number == 6 || f.number == 11) {
      (*graphs)++;
      if (!read_graph(s, f.bytes, depth + 1)) return 0;
    }
  }
  return r < 0 ? keep_error(s, &it) : 1;
}

/* One pass over a node, in field order as the Python reader reads it; its inputs and outputs are gathered aside and
 * then appended to the names array together (an attribute's subgraph adds names of its own on the way). */
static int read_node(summary *s, slice n, size_t depth) {
  fields it = {n, 0, NULL, {0}};
  field f;
  int r, ok = 1;
  slice type = {(const unsigned char *)"", 0}, domain = {(const unsigned char *)"", 0};
  size_t graphs = 0, n_in = 0, c_in = 0, n_out = 0, c_out = 0;
  slice *ins = NULL, *outs = NULL;
  while (ok && (r = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 4) type = f.bytes;
    else if (f.number == 7) domain = f.bytes;
    else if (f.number == 1) ok = push(s, &ins, &n_in, &c_in, f.bytes);
    else if (f.number == 2) ok = push(s, &outs, &n_out, &c_out, f.bytes);
    else if (f.number == 5) ok = read_attribute(s, f.bytes, depth, &graphs);
  }
  if (ok && r < 0) ok = keep_error(s, &it);
  size_t first = s->n_names;
  for (size_t i = 0; ok && i < n_in; i++) ok = push(s, &s->names, &s->n_names, &s->c_names, ins[i]);
  size_t first_out = s->n_names;
  for (size_t i = 0; ok && i < n_out; i++) {
    ok = push(s, &s->names, &s->n_names, &s->c_names, outs[i]);
    if (ok && depth == 0) ok = push(s, &s->main_outputs, &s->n_outs, &s->c_outs, outs[i]);
  }
  free(ins);
  free(outs);
  if (!ok) return 0;
  if (slice_eq(domain, "ai.onnx")) domain = (slice){(const unsigned char *)"", 0};
  GROW(s->op_domains, s->n_ops, s->c_ops);
  GROW(s->op_types, s->n_ops, s->c_types);
  s->op_domains[s->n_ops] = domain;
  s->op_types[s->n_ops++] = type;
  if (depth == 0) {
    GROW(s->nodes, s->n_nodes, s->c_nodes);
    s->nodes[s->n_nodes++] = (node_rec){domain, type, first, n_in, first_out, n_out};
  } else if (!domain.n && !push(s, &s->sub_ops, &s->n_sub, &s->c_sub, type)) return 0;
  if (slice_eq(type, "Loop") && !domain.n) {
    GROW(s->loops, s->n_loops, s->c_loops);
    s->loops[s->n_loops++] = (loop_rec){depth, graphs, n_in ? s->names[first] : (slice){(const unsigned char *)"", 0}};
  } else s->stray_graphs += graphs;
  return 1;
}

static int read_graph(summary *s, slice g, size_t depth) {
  if (depth > 32) return s->error = "subgraphs nested too deeply", 0;
  fields it = {g, 0, NULL, {0}};
  field f;
  int r;
  while ((r = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 5 && !read_tensor(s, f.bytes, depth == 0)) return 0;
    if (f.number == 15 && !read_sparse(s, f.bytes, depth == 0)) return 0;
    if (f.number == 11 && depth == 0) {
      slice name;
      if (!name_of(s, f.bytes, 1, &name) || !push(s, &s->defs, &s->n_defs, &s->c_defs, name) ||
          !push(s, &s->inputs, &s->n_inputs, &s->c_inputs, name)) return 0;
    }
    if (f.number == 1 && !read_node(s, f.bytes, depth)) return 0;
  }
  return r < 0 ? keep_error(s, &it) : 1;
}

static int read_function(summary *s, slice fn) {
  fields it = {fn, 0, NULL, {0}};
  field f;
  int r;
  slice name = {(const unsigned char *)"<unnamed>", 9};
  while ((r = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 1) name = f.bytes;
    else if (f.number == 7 && !read_node(s, f.bytes, 1)) return 0;
    else if (f.number == 11) { /* an attribute's default value */
      size_t graphs = 0;
      if (!read_attribute(s, f.bytes, 1, &graphs)) return 0;
      s->stray_graphs += graphs;
    }
  }
  if (r < 0) return keep_error(s, &it);
  return push(s, &s->functions, &s->n_functions, &s->c_functions, name);
}

static int summarize(summary *s, slice model) {
  fields it = {model, 0, NULL, {0}};
  field f;
  int r;
  while ((r = pb_next_field(&it, &f)) > 0) {
    if (f.number == 1 && f.wire == 0) s->has_ir = 1;
    else if (f.number == 8 && f.wire == 2) { /* an opset: read to be well-formed */
      fields o = {f.bytes, 0, NULL, {0}};
      field g;
      int q;
      while ((q = pb_next_field(&o, &g)) > 0) {
      }
      if (q < 0) return keep_error(s, &o);
    } else if (f.number == 7 && f.wire == 2) {
      s->graph_seen = 1;
      if (!read_graph(s, f.bytes, 0)) return 0;
    } else if (f.number == 25 && f.wire == 2) {
      if (!read_function(s, f.bytes)) return 0;
    } else if (f.number == 20) s->training_info = 1;
  }
  if (r < 0) return keep_error(s, &it);
  if (!s->graph_seen || !s->has_ir) return s->error = "no graph or IR version: not an ONNX model", 0;
  return 1;
}

static void summary_free(summary *s) {
  free(s->externals), free(s->functions), free(s->defs), free(s->any_consts), free(s->main_outputs);
  free(s->sub_ops), free(s->names), free(s->op_domains), free(s->op_types), free(s->consts), free(s->nodes);
  free(s->loops), free(s->inputs);
}

/* ---- lookups: sorted copies, binary search ---- */
/* How many times `key` is in `sorted`: two binary searches. */
static size_t bound(const slice *sorted, size_t n, slice key, int upper) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = slice_cmp(&sorted[mid], &key);
    if (c < 0 || (upper && c == 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static size_t count_of(const slice *sorted, size_t n, slice key) { return bound(sorted, n, key, 1) - bound(sorted, n, key, 0); }

static void list_repr(s2s_buf *b, const slice *items, size_t n, size_t most) {
  buf_puts(b, "[");
  for (size_t i = 0; i < n && i < most; i++) {
    if (i) buf_puts(b, ", ");
    py_repr(b, (const char *)items[i].p, items[i].n);
  }
  buf_puts(b, "]");
}

/* Unique sorted copy of items (in a new array). */
static slice *sorted_unique(const slice *items, size_t n, size_t *out_n) {
  slice *c = malloc((n ? n : 1) * sizeof *c);
  if (!c) return NULL;
  memcpy(c, items, n * sizeof *c);
  qsort(c, n, sizeof *c, slice_cmp);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!k || slice_cmp(&c[k - 1], &c[i])) c[k++] = c[i];
  *out_n = k;
  return c;
}

/* ---- value-sized operators (onnx_wire.value_sized_problems) ---- */
typedef struct {
  slice name;
  size_t node;
} producer;

static int producer_cmp(const void *x, const void *y) {
  const producer *a = x, *b = y;
  int c = slice_cmp(&a->name, &b->name);
  return c ? c : (a->node > b->node) - (a->node < b->node);
}

typedef struct {
  const summary *s;
  producer *producers;
  size_t n_producers;
  slice *defs, *any, *inputs, *outs; /* sorted */
  slice *names;               /* every name a node reads, sorted, once each: memo[i] is names[i]'s answer */
  size_t n_names;
  signed char *memo; /* -1 unknown, 0, 1 */
} sizes;

static const char *const VALUE_SIZED[] = {"Expand", "ConstantOfShape", "Tile", "Range", "Resize", "Upsample", "Pad",
                                          "OneHot", "CenterCropPad", NULL};
static const int VALUE_SIZED_INPUTS[][3] = {{1, -1}, {0, -1}, {1, -1}, {0, 1, 2}, {2, 3, -1}, {1, -1}, {1, -1},
                                            {1, -1}, {1, -1}};
static const char *const SIZE_PASSTHROUGH[] = {"Cast", "Slice", "Concat", "Gather", "Unsqueeze", "Squeeze", "Reshape",
                                               "Identity", NULL};

static int in_list(slice x, const char *const *list) {
  for (; *list; list++)
    if (slice_eq(x, *list)) return 1;
  return 0;
}

static const producer *producer_of(const sizes *z, slice name) {
  size_t lo = 0, hi = z->n_producers;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (slice_cmp(&z->producers[mid].name, &name) <= 0) lo = mid + 1;
    else hi = mid;
  }
  /* the last producer of the name (Python's dict keeps the last) */
  return lo && !slice_cmp(&z->producers[lo - 1].name, &name) ? &z->producers[lo - 1] : NULL;
}

/* Whether `name`'s value is made of constants and the Shapes of the main graph's inputs, through SIZE_PASSTHROUGH
 * operators: the Python reader's `derived`, with its memo per name (a cycle, or a chain deeper than 32, proves
 * nothing). */
static int derived(sizes *z, slice name, int depth) {
  size_t at = bound(z->names, z->n_names, name, 0);
  signed char *m = at < z->n_names && !slice_cmp(&z->names[at], &name) ? &z->memo[at] : NULL;
  if (m && *m >= 0) return *m;
  if (m) *m = 0; /* a cycle proves nothing */
  if (depth > 32) return 0;
  const producer *p = producer_of(z, name);
  int ok;
  if (!p) ok = count_of(z->any, z->s->n_any, name) > 0 && count_of(z->defs, z->s->n_defs, name) == 1;
  else {
    const node_rec *n = &z->s->nodes[p->node];
    if (n->domain.n) ok = 0;
    else if (slice_eq(n->type, "Constant")) ok = 1;
    else if (slice_eq(n->type, "Shape")) { /* only of an input of the main graph, whose shape the contract fixes */
      slice in = n->n_inputs ? z->s->names[n->first_input] : (slice){(const unsigned char *)"", 0};
      ok = n->n_inputs && count_of(z->inputs, z->s->n_inputs, in) > 0 && count_of(z->defs, z->s->n_defs, in) == 1 &&
           !count_of(z->outs, z->s->n_outs, in);
    } else if (!in_list(n->type, SIZE_PASSTHROUGH)) ok = 0;
    else {
      ok = 1;
      for (size_t i = 0; i < n->n_inputs && ok; i++) {
        slice in = z->s->names[n->first_input + i];
        if (in.n) ok = derived(z, in, depth + 1);
      }
    }
  }
  if (m) *m = (signed char)ok;
  return ok;
}

static slice *sorted_copy(const slice *items, size_t n) {
  slice *c = malloc((n ? n : 1) * sizeof *c);
  if (c) {
    memcpy(c, items, n * sizeof *c);
    qsort(c, n, sizeof *c, slice_cmp);
  }
  return c;
}

/* Appends each value-sized problem to b (joined by "; "), counting them in *n. 0 on no memory. */
static int value_sized_problems(const summary *s, s2s_buf *b, size_t *n) {
  size_t n_sub;
  slice *sub = sorted_unique(s->sub_ops, s->n_sub, &n_sub);
  if (!sub) return 0;
  for (size_t i = 0; i < n_sub; i++) {
    if (!in_list(sub[i], VALUE_SIZED)) continue;
    buf_printf(b, "%sholds a %.*s inside a loop (its size would be read from a loop variable; refused)",
               (*n)++ ? "; " : "", (int)sub[i].n, (const char *)sub[i].p);
  }
  free(sub);
  sizes z = {s, NULL, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL};
  size_t outs = 0;
  for (size_t i = 0; i < s->n_nodes; i++) outs += s->nodes[i].n_outputs;
  z.producers = malloc((outs ? outs : 1) * sizeof *z.producers);
  z.defs = sorted_copy(s->defs, s->n_defs);
  z.any = sorted_copy(s->any_consts, s->n_any);
  z.inputs = sorted_copy(s->inputs, s->n_inputs);
  z.outs = sorted_copy(s->main_outputs, s->n_outs);
  z.names = sorted_unique(s->names, s->n_names, &z.n_names);
  z.memo = malloc(z.n_names ? z.n_names : 1);
  int ok = z.producers && z.defs && z.any && z.inputs && z.outs && z.names && z.memo;
  if (ok) {
    for (size_t i = 0; i < s->n_nodes; i++)
      for (size_t k = 0; k < s->nodes[i].n_outputs; k++)
        z.producers[z.n_producers++] = (producer){s->names[s->nodes[i].first_output + k], i};
    qsort(z.producers, z.n_producers, sizeof *z.producers, producer_cmp);
    memset(z.memo, -1, z.n_names);
    for (size_t i = 0; i < s->n_nodes; i++) {
      const node_rec *nd = &s->nodes[i];
      if (nd->domain.n) continue;
      for (int v = 0; VALUE_SIZED[v]; v++) {
        if (!slice_eq(nd->type, VALUE_SIZED[v])) continue;
        int bad = 0;
        for (int k = 0; k < 3 && VALUE_SIZED_INPUTS[v][k] >= 0 && !bad; k++) {
          size_t at = (size_t)VALUE_SIZED_INPUTS[v][k];
          if (at < nd->n_inputs && s->names[nd->first_input + at].n && !derived(&z, s->names[nd->first_input + at], 0)) bad = 1;
        }
        if (bad) {
          buf_printf(b, "%sholds a %.*s whose size is computed from tensor values, not from shapes and constants (it "
                     "could allocate without bound; refused)", (*n)++ ? "; " : "", (int)nd->type.n,
                     (const char *)nd->type.p);
        }
      }
    }
  }
  free(z.producers), free(z.defs), free(z.any), free(z.inputs), free(z.outs), free(z.names), free(z.memo);
  return ok;
}

static int constant_cmp(const void *x, const void *y) { /* by name, then by place: the last of a name is last */
  const constant *a = x, *b = y;
  int c = slice_cmp(&a->name, &b->name);
  return c ? c : (a->name.p > b->name.p) - (a->name.p < b->name.p);
}

/* The last constant named `name` (as a dict keeps it), in constants sorted by constant_cmp. */
static const constant *constant_of(const constant *sorted, size_t n, slice name) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (slice_cmp(&sorted[mid].name, &name) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo && !slice_cmp(&sorted[lo - 1].name, &name) ? &sorted[lo - 1] : NULL;
}

/* ---- the loop bounds (onnx_wire.loop_bounds): 1 and *longest, or 0 with the problem appended ---- */
static int loop_bounds(const summary *s, s2s_buf *b, size_t *n, int64_t *longest, int *any_loop) {
  if (s->stray_graphs) {
    buf_printf(b, "%sholds %zu subgraph(s) outside a Loop (control flow is refused)", (*n)++ ? "; " : "", s->stray_graphs);
    return 0;
  }
  size_t n_defs, n_outs;
  slice *defs = malloc((s->n_defs ? s->n_defs : 1) * sizeof *defs), *outs = malloc((s->n_outs ? s->n_outs : 1) * sizeof *outs);
  if (!defs || !outs) return free(defs), free(outs), -1;
  memcpy(defs, s->defs, s->n_defs * sizeof *defs);
  qsort(defs, n_defs = s->n_defs, sizeof *defs, slice_cmp);
  memcpy(outs, s->main_outputs, s->n_outs * sizeof *outs);
  qsort(outs, n_outs = s->n_outs, sizeof *outs, slice_cmp);
  constant *consts = malloc((s->n_consts ? s->n_consts : 1) * sizeof *consts);
  if (!consts) return free(defs), free(outs), -1;
  memcpy(consts, s->consts, s->n_consts * sizeof *consts);
  qsort(consts, s->n_consts, sizeof *consts, constant_cmp);
  const char *problem = NULL;
  size_t defined = 0;
  slice m = {0};
  for (size_t i = 0; i < s->n_loops && !problem; i++) {
    const loop_rec *l = &s->loops[i];
    m = l->m;
    const constant *c = constant_of(consts, s->n_consts, m);
    if (l->depth) problem = "holds a Loop inside a loop body (nested loops are refused)";
    else if (l->graphs != 1) {
      buf_printf(b, "%sholds a Loop with %zu body graphs", (*n)++ ? "; " : "", l->graphs);
      problem = "";
    } else if (!c || count_of(outs, n_outs, m)) {
      problem = "holds a Loop whose trip count M is not a constant of the main graph (the runtime accepts only loops "
                "with a constant maximum trip count)";
    } else if ((defined = count_of(defs, n_defs, m)) != 1) {
      problem = "defined";
    } else {
      int64_t bound = c->value > 0 ? c->value : 0;
      if (!*any_loop || bound > *longest) *longest = bound;
      *any_loop = 1;
    }
  }
  if (problem && !strcmp(problem, "defined")) {
    size_t cut = 0, cps = 0; /* the name's first 60 code points */
    while (cut < m.n && cps < 60) {
      int32_t cp;
      size_t k = utf8_next(m.p + cut, m.n - cut, &cp);
      cut += k ? k : 1;
      cps++;
    }
    buf_printf(b, "%sholds a Loop whose trip count M (", (*n)++ ? "; " : "");
    py_repr(b, (const char *)m.p, cut);
    buf_printf(b, ") is defined %zu times in the main graph (initializers, sparse initializers, inputs): refused, as "
               "the bound cannot be known", defined);
  } else if (problem && *problem) buf_printf(b, "%s%s", (*n)++ ? "; " : "", problem);
  free(defs), free(outs), free(consts);
  return problem ? 0 : 1;
}

/* The Python runtime's BundleError: "where: problem", or "where: N problems: a; b". */
static s2s_status fail_with(s2s_error *err, const char *where, const s2s_buf *b, size_t n) {
  if (n == 1) return s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s", where, b->data);
  return s2s_fail(err, S2S_ERR_BUNDLE, "%s: %zu problems: %s", where, n, b->data);
}

/* The real operator names (op types of the default domain, and of the others), unique and sorted. */
static slice *real_ops(const summary *s, size_t *n) { return sorted_unique(s->op_types, s->n_ops, n); }

/* Appends "uses operators outside the default ONNX domain: [...]" ("domain:op", sorted, the first 5) when the
 * model has any; 0 on no memory. */
static int foreign_domain_problems(const summary *s, s2s_buf *b, size_t *n) {
  size_t n_foreign = 0;
  slice *qualified = malloc((s->n_ops ? s->n_ops : 1) * sizeof *qualified);
  size_t *spans = malloc((s->n_ops ? s->n_ops : 1) * 2 * sizeof *spans); /* offset, length: names may hold NUL */
  s2s_buf names = {0};
  int ok = qualified && spans;
  for (size_t i = 0; ok && i < s->n_ops; i++) {
    if (!s->op_domains[i].n) continue;
    spans[2 * n_foreign] = names.len;
    buf_append(&names, (const char *)s->op_domains[i].p, s->op_domains[i].n);
    buf_append(&names, ":", 1);
    buf_append(&names, (const char *)s->op_types[i].p, s->op_types[i].n);
    spans[2 * n_foreign + 1] = names.len - spans[2 * n_foreign];
    n_foreign++;
  }
  ok = ok && !names.failed;
  if (ok && n_foreign) { /* the slices point into names only once it has stopped growing */
    for (size_t i = 0; i < n_foreign; i++) {
      qualified[i] = (slice){(const unsigned char *)names.data + spans[2 * i], spans[2 * i + 1]};
    }
    size_t k;
    slice *u = sorted_unique(qualified, n_foreign, &k);
    if (!u) ok = 0;
    else {
      buf_printf(b, "%suses operators outside the default ONNX domain: ", (*n)++ ? "; " : "");
      list_repr(b, u, k, 5);
      free(u);
    }
  }
  free(qualified);
  free(spans);
  buf_free(&names);
  return ok;
}

/* inspect_model: what no bundle model may be (external data, functions, training graphs, loops without a proven
 * bound, sizes read from values, other domains). Sets *longest and *any_loop from the proven bounds; 0 on no
 * memory. */
static int inspect_problems(const summary *s, s2s_buf *b, size_t *n, int64_t *longest, int *any_loop) {
  if (s->n_externals) {
    buf_printf(b, "%srefers to external data for ", (*n)++ ? "; " : "");
    slice shown[3];
    for (size_t i = 0; i < s->n_externals && i < 3; i++) {
      shown[i] = s->externals[i].n ? s->externals[i] : (slice){(const unsigned char *)"<unnamed>", 9};
    }
    list_repr(b, shown, s->n_externals < 3 ? s->n_externals : 3, 3);
    buf_puts(b, "; bundle models must embed their weights (external data is refused)");
  }
  if (s->n_functions) {
    buf_printf(b, "%sdefines model-local functions ", (*n)++ ? "; " : "");
    list_repr(b, s->functions, s->n_functions, 3);
    buf_puts(b, " (refused: the contract has none)");
  }
  if (s->training_info) buf_printf(b, "%sholds training graphs (training_info is refused)", (*n)++ ? "; " : "");
  int bounded = loop_bounds(s, b, n, longest, any_loop);
  if (bounded == 0) *any_loop = 0; /* Python keeps no bounds when one loop is refused */
  return bounded >= 0 && value_sized_problems(s, b, n) && foreign_domain_problems(s, b, n);
}

/* check_model_ops: the loop limit, the operators the role may hold, and the manifest's list; 0 on no memory. */
static int role_problems(const summary *s, const char *format, const char *role, const char *const *ops,
                         size_t n_ops, size_t loop_limit, int64_t longest, int any_loop, s2s_buf *b, size_t *n) {
  size_t n_real, n_allowed = 0;
  slice *real = real_ops(s, &n_real);
  const char *const *allowed = modelcheck_allowed_ops(format, role);
  while (allowed && allowed[n_allowed]) n_allowed++;
  slice *declared = malloc((n_ops ? n_ops : 1) * sizeof *declared);
  slice *declared_unique = NULL;
  size_t n_declared_unique = 0;
  if (declared) {
    for (size_t i = 0; i < n_ops; i++) declared[i] = (slice){(const unsigned char *)ops[i], strlen(ops[i])};
    declared_unique = sorted_unique(declared, n_ops, &n_declared_unique);
  }
  int ok = real && declared && declared_unique;
  if (ok && any_loop && (uint64_t)longest > loop_limit) {
    buf_printf(b, "%shas a loop of up to %lld steps; a %s of this bundle may loop at most %zu times",
               (*n)++ ? "; " : "", (long long)longest, role, loop_limit);
  }
  slice outside[8];
  size_t n_outside = 0, total_outside = 0;
  for (size_t i = 0; ok && i < n_real; i++) {
    int known = 0;
    for (size_t k = 0; k < n_allowed && !known; k++) known = slice_eq(real[i], allowed[k]);
    if (!known && total_outside++ < 8) outside[n_outside++] = real[i];
  }
  if (total_outside) {
    buf_printf(b, "%suses operators a %s may not have: ", (*n)++ ? "; " : "", role);
    list_repr(b, outside, n_outside, 8);
    buf_puts(b, " (allowed: [");
    for (size_t k = 0; k < n_allowed; k++) {
      if (k) buf_puts(b, ", ");
      py_repr(b, allowed[k], strlen(allowed[k]));
    }
    buf_puts(b, "])");
  }
  int same = ok && n_declared_unique == n_real;
  for (size_t i = 0; same && i < n_real; i++) same = !slice_cmp(&real[i], &declared_unique[i]);
  if (ok && !same) {
    qsort(declared, n_ops, sizeof *declared, slice_cmp); /* Python sorts the list, duplicates kept */
    buf_printf(b, "%sits operators ", (*n)++ ? "; " : "");
    list_repr(b, real, n_real, 20);
    buf_puts(b, " differ from the manifest's list ");
    list_repr(b, declared, n_ops, 20);
  }
  free(real);
  free(declared);
  free(declared_unique);
  return ok;
}

s2s_status modelcheck_ops(const unsigned char *data, size_t len, const char *format, const char *role,
                          const char *const *ops, size_t n_ops, size_t loop_limit, const char *where, s2s_error *err) {
  if (strcmp(format, "onnx") != 0) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: unknown model format '%s' (the C library reads ONNX)", where, format);
  }
  summary s;
  memset(&s, 0, sizeof s);
  s2s_status st = S2S_OK;
  if (!summarize(&s, (slice){data, len})) {
    if (s.oom) st = s2s_fail(err, S2S_ERR_MEMORY, "%s: out of memory reading the model", where);
    else st = s2s_fail(err, S2S_ERR_BUNDLE, "%s: not a valid ONNX model (%s)", where, s.error);
    summary_free(&s);
    return st;
  }
  s2s_buf b = {0};
  size_t n = 0; /* problems found: the role's are looked for only when the model is one a bundle may hold */
  int64_t longest = 0;
  int any_loop = 0;
  int ok = inspect_problems(&s, &b, &n, &longest, &any_loop);
  if (ok && !n) ok = role_problems(&s, format, role, ops, n_ops, loop_limit, longest, any_loop, &b, &n);
  if (!ok || b.failed) st = s2s_fail(err, S2S_ERR_MEMORY, "%s: out of memory checking the model", where);
  else if (n) st = fail_with(err, where, &b, n);
  buf_free(&b);
  summary_free(&s);
  return st;
}
