/* The shape proof of an ONNX model: the Python runtime's runtime/backends/onnx_shapes.py and shapes.py, rule for rule
 * and message for message (the shared crafted files hold every runtime to it). Every tensor's shape is worked out
 * from the contract's input shapes with the batch B symbolic: a dimension is a polynomial in B (coefficients kept
 * to 2^120: a proof that needs more refuses the model either way), exact or an upper bound; a Loop must leave what
 * it carries at the shape it came in with; every tensor must grow at most linearly in the batch, within row_limit
 * elements per batch row, and within max(row_limit, the file's largest constant) without it.
 *
 * Everything lives in one arena freed at the end. Names are slices of the file's bytes, numbered through one sorted
 * array (lookups by binary search: O(n log n) for n names, no hash an attacker could flood). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "modelcheck.h"
#include "protobuf.h"

#define MAX_DEPTH 32
#define MAX_RANK 16
#define MAX_VALUES 1024 /* integer tensors whose values the proof follows */
#define MAX_DEG 8       /* a dimension or size of a higher power of the batch is refused as too large */
#define MAX_BATCH 4096
#define INT32_MAX_V 2147483647

typedef __int128 big;
#define BIG_CAP (((big)1) << 120)

/* ---- the arena ---- */
typedef struct block {
  struct block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} block;
typedef struct {
  block *head;
  int oom;
} arena;

static void *alloc(arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!n) n = 16;
  if (!a->head || a->head->cap - a->head->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    block *b = malloc(sizeof *b + cap);
    if (!b) {
      a->oom = 1;
      return NULL;
    }
    b->next = a->head, b->used = 0, b->cap = cap;
    a->head = b;
  }
  void *p = a->head->data + a->head->used;
  a->head->used += n;
  memset(p, 0, n);
  return p;
}

static void arena_free(arena *a) {
  while (a->head) {
    block *next = a->head->next;
    free(a->head);
    a->head = next;
  }
}

/* ---- the graph as a tree (Python: onnx_wire.graph_tree) ---- */
typedef struct graph graph;
typedef struct {
  slice name;
  int known; /* 0: a sparse or twice-defined initializer (no one shape) */
  size_t rank;
  int64_t *dims;
  int64_t dtype;
  int64_t *ints; /* NULL: not a small integer tensor */
  size_t n_ints;
} constant_t;
enum { A_NONE, A_INT, A_INTS, A_TENSOR, A_GRAPH };
typedef struct {
  slice name;
  int kind;
  int64_t i;
  int64_t *ints;
  size_t n_ints;
  constant_t t;
  graph *g;
} attr_t;
typedef struct {
  slice op;
  int default_domain;
  slice *in, *out;
  size_t n_in, n_out;
  attr_t *attrs;
  size_t n_attrs;
} node_t;
struct graph {
  node_t *nodes;
  size_t n_nodes;
  constant_t *inits;
  size_t n_inits;
  slice *inputs, *outputs;
  size_t n_inputs, n_outputs;
};

typedef struct {
  arena a;
  const char *error; /* a malformed file */
  char text[48];     /* an error with a number in it, copied out of the field reader that wrote it */
} reader;

/* The field reader's error, kept by the reader (a message it wrote itself lives in the field reader, on the stack). */
static const char *keep_error(reader *r, const fields *it) {
  if (it->error == it->text) {
    snprintf(r->text, sizeof r->text, "%s", it->text);
    return r->error = r->text;
  }
  return r->error = it->error;
}

static int64_t s64(uint64_t v) { return (int64_t)v; }

/* Every varint of a packed field into out (up to limit of them); returns how many, or -1 when malformed. */
static long packed(reader *r, slice v, int64_t *out, size_t limit) {
  size_t pos = 0, n = 0;
  while (pos < v.n && n < limit) {
    uint64_t x;
    if (!pb_varint(v, &pos, &x, &r->error)) return -1;
    if (out) out[n] = s64(x);
    n++;
  }
  return (long)n;
}

static int slice_is(slice s, const char *t) { return s.n == strlen(t) && !memcmp(s.p, t, s.n); }

static int read_constant(reader *r, slice m, constant_t *c) {
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  size_t n_dims = 0, n_values = 0;
  slice raw = {0};
  int has_raw = 0;
  memset(c, 0, sizeof *c);
  c->dtype = -1;
  while ((rc = pb_next_field(&it, &f)) > 0) { /* counts first */
    if (f.number == 1 && f.wire == 0) n_dims++;
    else if (f.number == 1 && f.wire == 2) {
      long k = packed(r, f.bytes, NULL, SIZE_MAX);
      if (k < 0) return 0;
      n_dims += (size_t)k;
    }
  }
  if (rc < 0) return keep_error(r, &it), 0;
  c->dims = alloc(&r->a, (n_dims ? n_dims : 1) * sizeof *c->dims);
  int64_t *values = alloc(&r->a, (MAX_VALUES + 1) * sizeof *values);
  if (!c->dims || !values) return 0;
  it = (fields){m, 0, NULL, {0}};
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.number == 8 && f.wire == 2) c->name = f.bytes;
    else if (f.number == 1 && f.wire == 0) c->dims[c->rank++] = s64(f.value);
    else if (f.number == 1 && f.wire == 2) c->rank += (size_t)packed(r, f.bytes, c->dims + c->rank, SIZE_MAX);
    else if (f.number == 2 && f.wire == 0) c->dtype = s64(f.value);
    else if ((f.number == 5 || f.number == 7) && n_values <= MAX_VALUES) {
      if (f.wire == 0) values[n_values++] = s64(f.value);
      else if (f.wire == 2) {
        long k = packed(r, f.bytes, values + n_values, MAX_VALUES + 1 - n_values);
        if (k < 0) return 0;
        n_values += (size_t)k;
      }
    } else if (f.number == 9 && f.wire == 2) raw = f.bytes, has_raw = 1;
  }
  if (rc < 0) return keep_error(r, &it), 0;
  c->known = 1;
  big count = 1;
  for (size_t i = 0; i < c->rank && count <= MAX_VALUES; i++) count *= c->dims[i] > 0 ? c->dims[i] : 0;
  if ((c->dtype == 6 || c->dtype == 7) && count <= MAX_VALUES) {
    size_t width = c->dtype == 6 ? 4 : 8, n = (size_t)count;
    if (has_raw && raw.n == n * width) {
      c->ints = values, c->n_ints = n;
      for (size_t i = 0; i < n; i++) {
        if (width == 4) {
          int32_t v;
          memcpy(&v, raw.p + 4 * i, 4);
          values[i] = v;
        } else memcpy(&values[i], raw.p + 8 * i, 8);
      }
    } else if (!has_raw && n_values == n) {
      c->ints = values, c->n_ints = n;
      if (c->dtype == 6) for (size_t i = 0; i < n; i++) values[i] = (int32_t)(uint32_t)(uint64_t)values[i];
    }
  }
  return 1;
}

static graph *read_graph(reader *r, slice m, size_t depth);

static int read_attr(reader *r, slice m, size_t depth, attr_t *a) {
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  size_t n_ints = 0;
  memset(a, 0, sizeof *a);
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.number == 8 && f.wire == 0) n_ints++;
    else if (f.number == 8 && f.wire == 2) {
      long k = packed(r, f.bytes, NULL, SIZE_MAX);
      if (k < 0) return 0;
      n_ints += (size_t)k;
    }
  }
  if (rc < 0) return keep_error(r, &it), 0;
  a->ints = alloc(&r->a, (n_ints ? n_ints : 1) * sizeof *a->ints);
  if (!a->ints) return 0;
  it = (fields){m, 0, NULL, {0}};
  int kind = A_NONE;
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.number == 1 && f.wire == 2) a->name = f.bytes;
    else if (f.number == 3 && f.wire == 0) a->i = s64(f.value), kind = A_INT;
    else if (f.number == 8) {
      kind = A_INTS;
      if (f.wire == 0) a->ints[a->n_ints++] = s64(f.value);
      else if (f.wire == 2) a->n_ints += (size_t)packed(r, f.bytes, a->ints + a->n_ints, SIZE_MAX);
    } else if (f.number == 5 && f.wire == 2) {
      if (!read_constant(r, f.bytes, &a->t)) return 0;
      kind = A_TENSOR;
    } else if (f.number == 6 && f.wire == 2) {
      if (!(a->g = read_graph(r, f.bytes, depth + 1))) return 0;
      kind = A_GRAPH;
    }
  }
  if (rc < 0) return keep_error(r, &it), 0;
  a->kind = kind;
  return 1;
}

static int read_node(reader *r, slice m, size_t depth, node_t *n) {
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  size_t ni = 0, no = 0, na = 0;
  slice domain = {0};
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 1) ni++;
    else if (f.number == 2) no++;
    else if (f.number == 5) na++;
  }
  if (rc < 0) return keep_error(r, &it), 0;
  n->in = alloc(&r->a, (ni ? ni : 1) * sizeof *n->in);
  n->out = alloc(&r->a, (no ? no : 1) * sizeof *n->out);
  n->attrs = alloc(&r->a, (na ? na : 1) * sizeof *n->attrs);
  if (!n->in || !n->out || !n->attrs) return 0;
  it = (fields){m, 0, NULL, {0}};
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 4) n->op = f.bytes;
    else if (f.number == 7) domain = f.bytes;
    else if (f.number == 1) n->in[n->n_in++] = f.bytes;
    else if (f.number == 2) n->out[n->n_out++] = f.bytes;
    else if (f.number == 5 && !read_attr(r, f.bytes, depth, &n->attrs[n->n_attrs++])) return 0;
  }
  if (rc < 0) return keep_error(r, &it), 0;
  n->default_domain = domain.n == 0 || slice_is(domain, "ai.onnx");
  return 1;
}

static int name_of(reader *r, slice m, slice *out) { /* a ValueInfoProto's name: the last one */
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  *out = (slice){0};
  while ((rc = pb_next_field(&it, &f)) > 0)
    if (f.number == 1 && f.wire == 2) *out = f.bytes;
  if (rc < 0) return keep_error(r, &it), 0;
  return 1;
}

static int sparse_name(reader *r, slice m, slice *out, int *found) { /* a sparse initializer's values tensor's name */
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.number != 1 || f.wire != 2) continue;
    fields t = {f.bytes, 0, NULL, {0}};
    field g;
    int q;
    *out = (slice){0};
    while ((q = pb_next_field(&t, &g)) > 0)
      if (g.number == 8 && g.wire == 2) *out = g.bytes;
    if (q < 0) return keep_error(r, &t), 0;
    *found = 1;
  }
  if (rc < 0) return keep_error(r, &it), 0;
  return 1;
}

/* Count the graph fields of message m (field numbers: node 1, initializer 5, sparse 15, input 11, output 12). */
static int count_graph(reader *r, slice m, size_t *nn, size_t *ninit, size_t *nin, size_t *nout) {
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 1) (*nn)++;
    else if (f.number == 5 || f.number == 15) (*ninit)++;
    else if (f.number == 11) (*nin)++;
    else if (f.number == 12) (*nout)++;
  }
  if (rc < 0) return keep_error(r, &it), 0;
  return 1;
}

static int fill_graph(reader *r, slice m, size_t depth, graph *g) {
  fields it = {m, 0, NULL, {0}};
  field f;
  int rc;
  while ((rc = pb_next_field(&it, &f)) > 0) {
    if (f.wire != 2) continue;
    if (f.number == 1) {
      if (!read_node(r, f.bytes, depth, &g->nodes[g->n_nodes++])) return 0;
    } else if (f.number == 5) {
      if (!read_constant(r, f.bytes, &g->inits[g->n_inits++])) return 0;
    } else if (f.number == 15) {
      slice name;
      int found = 0;
      if (!sparse_name(r, f.bytes, &name, &found)) return 0;
      if (found) g->inits[g->n_inits++] = (constant_t){.name = name, .known = 0};
    } else if (f.number == 11) {
      if (!name_of(r, f.bytes, &g->inputs[g->n_inputs++])) return 0;
    } else if (f.number == 12) {
      if (!name_of(r, f.bytes, &g->outputs[g->n_outputs++])) return 0;
    }
  }
  if (rc < 0) return keep_error(r, &it), 0;
  return 1;
}

static int slice_cmp(slice a, slice b) {
  size_t n = a.n < b.n ? a.n : b.n;
  int c = n ? memcmp(a.p, b.p, n) : 0;
  return c ? c : (a.n > b.n) - (a.n < b.n);
}

static int init_cmp(const void *x, const void *y) {
  const constant_t *a = x, *b = y;
  return slice_cmp(a->name, b->name);
}

/* A name defined twice among the initializers has no one shape a proof can take: both become unknown. */
static void mark_twice_defined(graph *g) {
  if (g->n_inits < 2) return;
  qsort(g->inits, g->n_inits, sizeof *g->inits, init_cmp);
  for (size_t i = 1; i < g->n_inits; i++) {
    if (!slice_cmp(g->inits[i].name, g->inits[i - 1].name)) g->inits[i].known = g->inits[i - 1].known = 0;
  }
}

static graph *alloc_graph(reader *r, size_t nn, size_t ninit, size_t nin, size_t nout) {
  graph *g = alloc(&r->a, sizeof *g);
  if (!g) return NULL;
  g->nodes = alloc(&r->a, (nn ? nn : 1) * sizeof *g->nodes);
  g->inits = alloc(&r->a, (ninit ? ninit : 1) * sizeof *g->inits);
  g->inputs = alloc(&r->a, (nin ? nin : 1) * sizeof *g->inputs);
  g->outputs = alloc(&r->a, (nout ? nout : 1) * sizeof *g->outputs);
  return g->nodes && g->inits && g->inputs && g->outputs ? g : NULL;
}

static graph *read_graph(reader *r, slice m, size_t depth) {
  if (depth > MAX_DEPTH) return r->error = "subgraphs nested too deeply", NULL;
  size_t nn = 0, ninit = 0, nin = 0, nout = 0;
  if (!count_graph(r, m, &nn, &ninit, &nin, &nout)) return NULL;
  graph *g = alloc_graph(r, nn, ninit, nin, nout);
  if (!g || !fill_graph(r, m, depth, g)) return NULL;
  mark_twice_defined(g);
  return g;
}

/* The main graph; a graph field given twice is merged, as protobuf merges a singular message field. */
static graph *read_model(reader *r, slice model) {
  fields it = {model, 0, NULL, {0}};
  field f;
  int rc;
  size_t nn = 0, ninit = 0, nin = 0, nout = 0;
  while ((rc = pb_next_field(&it, &f)) > 0)
    if (f.number == 7 && f.wire == 2 && !count_graph(r, f.bytes, &nn, &ninit, &nin, &nout)) return NULL;
  if (rc < 0) return keep_error(r, &it), NULL;
  graph *g = alloc_graph(r, nn, ninit, nin, nout);
  if (!g) return NULL;
  it = (fields){model, 0, NULL, {0}};
  while ((rc = pb_next_field(&it, &f)) > 0)
    if (f.number == 7 && f.wire == 2 && !fill_graph(r, f.bytes, 0, g)) return NULL;
  mark_twice_defined(g);
  return g;
}

/* ---- dimensions: polynomials in the batch ---- */
typedef struct {
  int n; /* coefficients, 1..MAX_DEG+1 */
  int exact;
  big c[MAX_DEG + 1];
} dim;

typedef struct {
  int known;
  size_t rank;
  dim *shape;
  long n_values; /* -1: not followed */
  dim *values;
} tensor;

static big sat(big v) { return v > BIG_CAP ? BIG_CAP : v < -BIG_CAP ? -BIG_CAP : v; }
static big sat_mul(big a, big b) {
  if (!a || !b) return 0;
  big x = a < 0 ? -a : a, y = b < 0 ? -b : b;
  if (x > BIG_CAP / y) return (a < 0) != (b < 0) ? -BIG_CAP : BIG_CAP;
  return sat(a * b);
}
static dim of(big v, int exact) {
  dim d;
  memset(&d, 0, sizeof d);
  d.n = 1, d.c[0] = sat(v), d.exact = exact;
  return d;
}
static void trim(dim *d) {
  while (d->n > 1 && d->c[d->n - 1] == 0) d->n--;
}
static int is_const(const dim *d) { return d->n == 1; }
static int same_c(const dim *a, const dim *b) {
  if (a->n != b->n) return 0;
  for (int i = 0; i < a->n; i++)
    if (a->c[i] != b->c[i]) return 0;
  return 1;
}

typedef struct {
  arena *a;
  s2s_buf *msg;   /* the first problem met */
  int64_t row_limit;
  big largest_constant;
  size_t n_names;
  slice *names;   /* sorted, unique */
  struct checked {
    slice name;
    size_t rank;
    dim *shape;
  } *checked;
  size_t n_checked, cap_checked;
  int failed;     /* out of memory */
  dim *sa, *sb, *sc; /* scratch for the rules (one prover per call: nothing static, any thread may prove) */
  big *b1, *b2, *b3, *b4;
  unsigned char *at;
} prover;
#define SCRATCH (MAX_VALUES + 2 * MAX_RANK + 2)

/* Fail with a message (the "ShapeError"); always returns 0. */
static int fail(prover *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(prover *p, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (!p->msg->len) buf_puts(p->msg, text);
  return 0;
}

static int mul(prover *p, const dim *x, const dim *y, dim *out) {
  if (x->n + y->n - 1 > MAX_DEG + 1) return fail(p, "a size of a power of the batch above %d", MAX_DEG);
  dim r;
  memset(&r, 0, sizeof r);
  r.n = x->n + y->n - 1, r.exact = x->exact && y->exact;
  for (int i = 0; i < x->n; i++)
    for (int j = 0; j < y->n; j++) r.c[i + j] = sat(r.c[i + j] + sat_mul(x->c[i], y->c[j]));
  trim(&r);
  *out = r;
  return 1;
}
static dim add(const dim *x, const dim *y) {
  dim r;
  memset(&r, 0, sizeof r);
  r.n = x->n > y->n ? x->n : y->n, r.exact = x->exact && y->exact;
  for (int i = 0; i < r.n; i++) r.c[i] = sat((i < x->n ? x->c[i] : 0) + (i < y->n ? y->c[i] : 0));
  trim(&r);
  return r;
}
/* An upper bound of both; an exact constant other than 1 is what a broadcast or concatenation gives (or fails). */
static dim at_most(const dim *x, const dim *y) {
  if (x->exact && is_const(x) && x->c[0] != 1) return *x;
  if (y->exact && is_const(y) && y->c[0] != 1) return *y;
  if (same_c(x, y)) {
    dim r = *x;
    r.exact = x->exact && y->exact;
    return r;
  }
  dim r;
  memset(&r, 0, sizeof r);
  r.n = x->n > y->n ? x->n : y->n;
  for (int i = 0; i < r.n; i++) {
    big a = i < x->n ? x->c[i] : 0, b = i < y->n ? y->c[i] : 0;
    r.c[i] = a > b ? a : b;
  }
  trim(&r);
  return r;
}
static big largest(const dim *d) {
  big s = 0, power = 1;
  for (int i = 0; i < d->n; i++) {
    s = sat(s + sat_mul(d->c[i], power));
    power = sat_mul(power, MAX_BATCH);
  }
  return s;
}
static int count(prover *p, const dim *shape, size_t rank, dim *out) {
  dim n = of(1, 1);
  for (size_t i = 0; i < rank; i++)
    if (!mul(p, &n, &shape[i], &n)) return 0;
  *out = n;
  return 1;
}
static dim nonneg(const dim *d) { return is_const(d) && d->c[0] < 0 ? of(0, d->exact) : *d; }

static void big_str(big v, char *out) { /* decimal */
  char tmp[48];
  int n = 0, neg = v < 0;
  unsigned __int128 u = neg ? (unsigned __int128)(-v) : (unsigned __int128)v;
  do tmp[n++] = (char)('0' + (int)(u % 10)), u /= 10;
  while (u);
  int k = 0;
  if (neg) out[k++] = '-';
  while (n) out[k++] = tmp[--n];
  out[k] = 0;
}

static void dim_str(const dim *d, s2s_buf *b) { /* Python's str(Dim): "32·B^2 + 5" */
  int first = 1;
  for (int i = d->n - 1; i >= 0; i--) {
    if (!d->c[i]) continue;
    char num[48];
    big_str(d->c[i], num);
    if (!first) buf_puts(b, " + ");
    first = 0;
    if (i == 0) buf_puts(b, num);
    else {
      if (d->c[i] != 1) buf_printf(b, "%s·", num);
      buf_puts(b, "B");
      if (i > 1) buf_printf(b, "^%d", i);
    }
  }
  if (first) buf_puts(b, "0");
}

/* Python's {name[:60]!r}. */
static void name60(s2s_buf *b, slice name) {
  size_t cut = 0, cps = 0;
  while (cut < name.n && cps < 60) {
    int32_t cp;
    size_t k = utf8_next(name.p + cut, name.n - cut, &cp);
    cut += k ? k : 1;
    cps++;
  }
  py_repr(b, (const char *)name.p, cut);
}

static void op_str(const node_t *n, char *out, size_t size) {
  size_t k = n->op.n < size - 1 ? n->op.n : size - 1;
  memcpy(out, n->op.p, k);
  out[k] = 0;
}

/* A problem naming a tensor: prefix, the name as Python's {name[:60]!r}, suffix. */
static int fail_named(prover *p, const char *prefix, slice name, const char *suffix) {
  if (!p->msg->len) {
    buf_puts(p->msg, prefix);
    name60(p->msg, name);
    buf_puts(p->msg, suffix);
  }
  return 0;
}

/* ---- names ---- */
static int cmp_slice_ptr(const void *x, const void *y) { return slice_cmp(*(const slice *)x, *(const slice *)y); }

static size_t collect_names(const graph *g, slice *out) { /* out NULL: count only */
  size_t n = 0;
#define PUT(s) (out ? (void)(out[n] = (s)) : (void)0, n++)
  for (size_t i = 0; i < g->n_inputs; i++) PUT(g->inputs[i]);
  for (size_t i = 0; i < g->n_outputs; i++) PUT(g->outputs[i]);
  for (size_t i = 0; i < g->n_inits; i++) PUT(g->inits[i].name);
  for (size_t i = 0; i < g->n_nodes; i++) {
    const node_t *nd = &g->nodes[i];
    for (size_t k = 0; k < nd->n_in; k++) PUT(nd->in[k]);
    for (size_t k = 0; k < nd->n_out; k++) PUT(nd->out[k]);
    for (size_t k = 0; k < nd->n_attrs; k++)
      if (nd->attrs[k].kind == A_GRAPH) n += collect_names(nd->attrs[k].g, out ? out + n : NULL);
  }
#undef PUT
  return n;
}

static long name_id(const prover *p, slice name) {
  size_t lo = 0, hi = p->n_names;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = slice_cmp(p->names[mid], name);
    if (!c) return (long)mid;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}

/* ---- tensors ---- */
static tensor *new_tensor(prover *p, size_t rank, long n_values) {
  tensor *t = alloc(p->a, sizeof *t);
  if (!t) return p->failed = 1, NULL;
  t->known = 1, t->rank = rank, t->n_values = n_values;
  t->shape = alloc(p->a, (rank ? rank : 1) * sizeof *t->shape);
  t->values = n_values > 0 ? alloc(p->a, (size_t)n_values * sizeof *t->values) : NULL;
  if (!t->shape || (n_values > 0 && !t->values)) return p->failed = 1, NULL;
  return t;
}
static tensor *unknown_tensor(prover *p) {
  tensor *t = alloc(p->a, sizeof *t);
  if (!t) return p->failed = 1, NULL;
  t->n_values = -1;
  return t;
}
/* A tensor of this shape and, when n_values >= 0, these values (n_values -1: values not followed). */
static tensor *shaped(prover *p, const dim *shape, size_t rank, const dim *values, long n_values) {
  tensor *t = new_tensor(p, rank, n_values);
  if (!t) return NULL;
  if (rank) memcpy(t->shape, shape, rank * sizeof *shape);
  if (n_values > 0) memcpy(t->values, values, (size_t)n_values * sizeof *values);
  return t;
}

static tensor *const_tensor(prover *p, const constant_t *c) {
  if (!c->known || c->rank > MAX_RANK) return unknown_tensor(p);
  for (size_t i = 0; i < c->rank; i++)
    if (c->dims[i] < 0) return unknown_tensor(p);
  dim shape[MAX_RANK];
  big n = 1;
  for (size_t i = 0; i < c->rank; i++) shape[i] = of(c->dims[i], 1), n = sat_mul(n, c->dims[i]);
  if (n > p->largest_constant) p->largest_constant = n;
  tensor *t = shaped(p, shape, c->rank, NULL, -1);
  if (t && c->ints) {
    t->values = alloc(p->a, (c->n_ints ? c->n_ints : 1) * sizeof *t->values);
    if (!t->values) return p->failed = 1, NULL;
    for (size_t i = 0; i < c->n_ints; i++) t->values[i] = of(c->ints[i], 1);
    t->n_values = (long)c->n_ints;
  }
  return t;
}

/* ---- attributes ---- */
static const attr_t *attr(const node_t *n, const char *name) {
  for (size_t i = n->n_attrs; i-- > 0;) /* the last of a name, as ONNX Runtime's map keeps it */
    if (slice_is(n->attrs[i].name, name)) return &n->attrs[i];
  return NULL;
}
static int attr_int(prover *p, const node_t *n, const char *name, int64_t fallback, int64_t *out) {
  const attr_t *a = attr(n, name);
  *out = fallback;
  if (!a) return *out = fallback, 1;
  if (a->kind != A_INT) return fail(p, "an attribute '%s' that is not an integer", name);
  return *out = a->i, 1;
}
/* 1 with *present set (and the list) when the attribute is a list of ints; 0 (failed) when of another kind. */
static int attr_ints(prover *p, const node_t *n, const char *name, const int64_t **list, size_t *len, int *present) {
  const attr_t *a = attr(n, name);
  *present = a != NULL, *list = NULL, *len = 0;
  if (!a) return 1;
  if (a->kind != A_INTS) return fail(p, "an attribute '%s' that is not a list of integers", name);
  *list = a->ints, *len = a->n_ints;
  return 1;
}

static int axis_of(prover *p, big axis, size_t rank, const char *op, size_t *out) {
  big r = (big)rank;
  *out = 0;
  if (!(axis >= -r && axis < r)) {
    char num[48];
    big_str(axis, num);
    return fail(p, "a %s with axis %s of a rank-%zu tensor", op, num, rank);
  }
  *out = (size_t)(((axis % r) + r) % r);
  return 1;
}

/* The values of a tensor the proof follows; 0 (failed) when it cannot compute them. */
static int known(prover *p, const tensor *t, const char *what, const char *op) {
  if (!t || t->n_values < 0) return fail(p, "a %s whose %s the proof cannot compute from constants and input shapes", op, what);
  return 1;
}
/* The values as constants, into out (at most MAX_VALUES + 1 of them). */
static int ints_of(prover *p, const tensor *t, const char *what, const char *op, big *out, size_t *len) {
  if (!known(p, t, what, op)) return 0;
  for (long i = 0; i < t->n_values; i++)
    if (!is_const(&t->values[i])) return fail(p, "a %s whose %s depends on the batch", op, what);
  for (long i = 0; i < t->n_values; i++)
    if (!t->values[i].exact) return fail(p, "a %s whose %s the proof knows only as a bound", op, what);
  *len = (size_t)t->n_values;
  for (long i = 0; i < t->n_values; i++) out[i] = t->values[i].c[0];
  return 1;
}

static int broadcast(prover *p, const tensor *const *ts, size_t k, dim *out, size_t *rank) {
  size_t r = 0;
  for (size_t i = 0; i < k; i++)
    if (ts[i] && ts[i]->rank > r) r = ts[i]->rank;
  for (size_t i = 0; i < r; i++) {
    dim d;
    int have = 0;
    for (size_t j = 0; j < k; j++) {
      if (!ts[j] || ts[j]->rank + i < r) continue;
      const dim *x = &ts[j]->shape[ts[j]->rank - r + i];
      if (is_const(x) && x->c[0] == 1 && x->exact) continue;
      d = have ? at_most(&d, x) : *x;
      have = 1;
    }
    out[i] = have ? d : of(1, 1);
  }
  *rank = r;
  (void)p;
  return 1;
}

static big floor_div(big a, big b) {
  big q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}
static big ceil_div(big a, big b) { return -floor_div(-a, b); }
static big clamp(big v, big lo, big hi) { return v < lo ? lo : v > hi ? hi : v; }

static int slice_length(prover *p, big length, big start, big end, big step, big *out) {
  *out = 0;
  if (step == 0) return fail(p, "a Slice with step 0");
  if (start < 0) start += length;
  if (end < 0) end += length;
  if (step > 0) {
    start = clamp(start, 0, length), end = clamp(end, 0, length);
    big n = ceil_div(end - start, step);
    return *out = n > 0 ? n : 0, 1;
  }
  start = clamp(start, 0, length - 1), end = clamp(end, -1, length - 1);
  big n = ceil_div(start - end, -step);
  return *out = n > 0 ? n : 0, 1;
}

/* ---- the rules: each fills outs[0 .. *n_outs) (at most cap) from the inputs, or fails ---- */
typedef struct {
  prover *p;
  const node_t *n;
  const char *op;
  tensor **ins;
  size_t k;       /* inputs */
  tensor **env;   /* by name id */
  tensor **outs;
  size_t cap, n_outs;
} call;

static int put(call *c, tensor *t) {
  if (!t) return 0;
  if (c->n_outs < c->cap) c->outs[c->n_outs] = t;
  c->n_outs++;
  return 1;
}
#define IN(i) ((i) < c->k ? c->ins[i] : NULL)
#define scratch_a (c->p->sa)
#define scratch_b (c->p->sb)

static int r_same(call *c) { return put(c, shaped(c->p, IN(0)->shape, IN(0)->rank, NULL, -1)); }

static int r_cast(call *c) {
  const tensor *t = IN(0);
  int64_t to;
  if (!attr_int(c->p, c->n, "to", 0, &to)) return 0;
  int keep = (to == 6 || to == 7) && t->n_values >= 0;
  for (long i = 0; keep && i < t->n_values; i++) {
    const dim *v = &t->values[i];
    keep = largest(v) <= INT32_MAX_V && (!is_const(v) || -(big)INT32_MAX_V <= v->c[0]);
  }
  return put(c, shaped(c->p, t->shape, t->rank, t->values, keep ? t->n_values : -1));
}

static int r_elementwise(call *c) {
  size_t rank;
  broadcast(c->p, (const tensor *const *)c->ins, c->k, scratch_a, &rank);
  return put(c, shaped(c->p, scratch_a, rank, NULL, -1));
}

static int r_matmul(call *c) {
  const tensor *x = IN(0), *y = IN(1);
  if (!x->rank || !y->rank) return fail(c->p, "a %s of a scalar", c->op);
  dim xs[MAX_RANK + 1], ys[MAX_RANK + 1];
  size_t xr = 0, yr = 0;
  if (x->rank == 1) xs[xr++] = of(1, 1);
  for (size_t i = 0; i < x->rank; i++) xs[xr++] = x->shape[i];
  for (size_t i = 0; i < y->rank; i++) ys[yr++] = y->shape[i];
  if (y->rank == 1) ys[yr++] = of(1, 1);
  tensor bx = {1, xr - 2, xs, -1, NULL}, by = {1, yr - 2, ys, -1, NULL};
  const tensor *pair[2] = {&bx, &by};
  size_t rank;
  broadcast(c->p, pair, 2, scratch_a, &rank);
  scratch_a[rank++] = xs[xr - 2];
  scratch_a[rank++] = ys[yr - 1];
  if (x->rank == 1) scratch_a[rank - 2] = scratch_a[rank - 1], rank--;
  if (y->rank == 1) rank--;
  return put(c, shaped(c->p, scratch_a, rank, NULL, -1));
}

static int r_gemm(call *c) {
  const tensor *x = IN(0), *y = IN(1);
  if (x->rank != 2 || y->rank != 2) return fail(c->p, "a Gemm of a tensor that is not a matrix");
  int64_t ta, tb;
  if (!attr_int(c->p, c->n, "transA", 0, &ta) || !attr_int(c->p, c->n, "transB", 0, &tb)) return 0;
  dim s[2] = {ta ? x->shape[1] : x->shape[0], tb ? y->shape[0] : y->shape[1]};
  return put(c, shaped(c->p, s, 2, NULL, -1));
}

static int r_gather(call *c) {
  const tensor *data = IN(0), *idx = IN(1);
  if (!data->rank) return fail(c->p, "a Gather from a scalar");
  int64_t a;
  size_t axis;
  if (!attr_int(c->p, c->n, "axis", 0, &a) || !axis_of(c->p, a, data->rank, "Gather", &axis)) return 0;
  size_t rank = 0;
  for (size_t i = 0; i < axis; i++) scratch_a[rank++] = data->shape[i];
  for (size_t i = 0; i < idx->rank; i++) scratch_a[rank++] = idx->shape[i];
  for (size_t i = axis + 1; i < data->rank; i++) scratch_a[rank++] = data->shape[i];
  long nv = -1;
  if (data->rank == 1 && data->n_values >= 0 && idx->n_values >= 0) {
    big size = data->n_values;
    int ok = 1;
    for (long i = 0; ok && i < idx->n_values; i++) {
      const dim *v = &idx->values[i];
      ok = is_const(v) && v->exact && v->c[0] >= -size && v->c[0] < size;
      if (ok) scratch_b[i] = data->values[(size_t)(v->c[0] < 0 ? v->c[0] + size : v->c[0])];
    }
    if (ok) nv = idx->n_values;
  }
  return put(c, shaped(c->p, scratch_a, rank, nv >= 0 ? scratch_b : NULL, nv));
}

static int r_split(call *c) {
  const tensor *x = IN(0);
  int64_t a;
  size_t axis;
  if (!attr_int(c->p, c->n, "axis", 0, &a) || !axis_of(c->p, a, x->rank, "Split", &axis)) return 0;
  size_t count = c->n->n_out;
  big *sizes = c->p->b1;
  size_t n_sizes = 0;
  int have = 0;
  if (c->k > 1 && IN(1)) {
    if (!ints_of(c->p, IN(1), "split sizes", "Split", sizes, &n_sizes)) return 0;
    have = 1;
  } else if (attr(c->n, "split")) {
    const int64_t *list;
    size_t len;
    int present;
    if (!attr_ints(c->p, c->n, "split", &list, &len, &present)) return 0;
    if (len > MAX_VALUES) return fail(c->p, "a Split into %zu outputs with %zu sizes", count, len);
    for (size_t i = 0; i < len; i++) sizes[i] = list[i];
    n_sizes = len, have = 1;
  }
  if (have && n_sizes != count) return fail(c->p, "a Split into %zu outputs with %zu sizes", count, n_sizes);
  const dim *d = &x->shape[axis];
  dim part = *d;
  for (int i = 0; i < d->n; i++) {
    if (d->c[i] % (big)count) part.exact = 0;
    part.c[i] = ceil_div(d->c[i], (big)count);
  }
  trim(&part);
  for (size_t o = 0; o < count; o++) {
    memcpy(scratch_a, x->shape, x->rank * sizeof *scratch_a);
    scratch_a[axis] = have ? of(sizes[o] > 0 ? sizes[o] : 0, 1) : part;
    if (!put(c, shaped(c->p, scratch_a, x->rank, NULL, -1))) return 0;
  }
  return 1;
}

static int r_concat(call *c) {
  const tensor *parts[64];
  size_t np = 0, total_values = 0;
  const tensor *first = NULL;
  for (size_t i = 0; i < c->k; i++) {
    if (!c->ins[i]) continue;
    if (!first) first = c->ins[i];
    np++;
  }
  (void)parts;
  size_t rank = first->rank;
  for (size_t i = 0; i < c->k; i++)
    if (c->ins[i] && c->ins[i]->rank != rank) return fail(c->p, "a Concat of tensors of different ranks");
  int64_t a;
  size_t axis;
  if (!attr_int(c->p, c->n, "axis", 0, &a) || !axis_of(c->p, a, rank, "Concat", &axis)) return 0;
  for (size_t d = 0; d < rank; d++) {
    dim acc = first->shape[d];
    int started = 0;
    for (size_t i = 0; i < c->k; i++) {
      if (!c->ins[i]) continue;
      if (!started) { started = 1; continue; }
      acc = d == axis ? add(&acc, &c->ins[i]->shape[d]) : at_most(&acc, &c->ins[i]->shape[d]);
    }
    scratch_a[d] = acc;
  }
  int values = rank == 1;
  for (size_t i = 0; values && i < c->k; i++) {
    if (!c->ins[i]) continue;
    if (c->ins[i]->n_values < 0) values = 0;
    else total_values += (size_t)c->ins[i]->n_values;
  }
  if (values && total_values > MAX_VALUES) values = 0;
  size_t nv = 0;
  for (size_t i = 0; values && i < c->k; i++)
    if (c->ins[i])
      for (long j = 0; j < c->ins[i]->n_values; j++) scratch_b[nv++] = c->ins[i]->values[j];
  (void)np;
  return put(c, shaped(c->p, scratch_a, rank, values ? scratch_b : NULL, values ? (long)nv : -1));
}

static int all_const_values(const tensor *t) { /* followed, constant and exact */
  if (t->n_values < 0) return 0;
  for (long i = 0; i < t->n_values; i++)
    if (!is_const(&t->values[i]) || !t->values[i].exact) return 0;
  return 1;
}

static int r_slice(call *c) {
  prover *p = c->p;
  const tensor *data = IN(0);
  size_t rank = data->rank;
  for (size_t i = 1; i < c->k; i++) {
    if (c->ins[i] && !all_const_values(c->ins[i])) { /* bounds read from values: never larger than what it slices */
      for (size_t d = 0; d < rank; d++) scratch_a[d] = data->shape[d], scratch_a[d].exact = 0;
      return put(c, shaped(p, scratch_a, rank, NULL, -1));
    }
  }
  big *starts = p->b1, *ends = p->b2, *axes = p->b3, *steps = p->b4;
  size_t ns = 0, ne = 0, na = 0, nt = 0;
  const int64_t *list;
  size_t len;
  int present;
  if (c->k > 1) {
    if (!ints_of(p, IN(1), "starts", "Slice", starts, &ns)) return 0;
  } else {
    if (!attr_ints(p, c->n, "starts", &list, &len, &present)) return 0;
    for (size_t i = 0; i < len && i <= MAX_VALUES; i++) starts[ns++] = list[i];
  }
  if (c->k > 2) {
    if (!ints_of(p, IN(2), "ends", "Slice", ends, &ne)) return 0;
  } else {
    if (!attr_ints(p, c->n, "ends", &list, &len, &present)) return 0;
    for (size_t i = 0; i < len && i <= MAX_VALUES; i++) ends[ne++] = list[i];
  }
  if (c->k > 3 && IN(3)) {
    if (!ints_of(p, IN(3), "axes", "Slice", axes, &na)) return 0;
  } else {
    if (!attr_ints(p, c->n, "axes", &list, &len, &present)) return 0;
    if (present) for (size_t i = 0; i < len && i <= MAX_VALUES; i++) axes[na++] = list[i];
    else for (size_t i = 0; i < ns; i++) axes[na++] = (big)i;
  }
  if (c->k > 4 && IN(4)) {
    if (!ints_of(p, IN(4), "steps", "Slice", steps, &nt)) return 0;
  } else for (size_t i = 0; i < ns; i++) steps[nt++] = 1;
  if (!(ns == ne && ne == na && na == nt)) return fail(p, "a Slice whose starts, ends, axes and steps differ in length");
  memcpy(scratch_a, data->shape, rank * sizeof *scratch_a);
  long nv = data->n_values;
  if (nv >= 0) memcpy(scratch_b, data->values, (size_t)nv * sizeof *scratch_b);
  for (size_t i = 0; i < ns; i++) {
    size_t axis;
    if (!axis_of(p, axes[i], rank, "Slice", &axis)) return 0;
    dim d = scratch_a[axis];
    big start = starts[i], end = ends[i], step = steps[i];
    if (is_const(&d)) {
      big length;
      if (!slice_length(p, d.c[0], start, end, step, &length)) return 0;
      scratch_a[axis] = of(length, d.exact);
      if (rank == 1 && nv >= 0 && d.exact && (big)nv == d.c[0]) {
        big s0 = start < 0 ? start + d.c[0] : start;
        big first = step > 0 ? clamp(s0, 0, d.c[0]) : clamp(s0, 0, d.c[0] - 1);
        dim *picked = p->sc;
        for (big j = 0; j < length; j++) picked[j] = scratch_b[first + j * step];
        memcpy(scratch_b, picked, (size_t)length * sizeof *picked);
        nv = (long)length;
      } else nv = -1;
    } else if (step == 1 && start == 0 && end >= largest(&d)) {
      /* the whole axis, at any batch the runtime runs */
    } else if (step == 1 && start >= 0 && start < end) {
      scratch_a[axis] = of(end - start, 0);
    } else if (step == 1 && start < 0 && end >= largest(&d)) {
      scratch_a[axis] = of(-start, 0);
    } else scratch_a[axis].exact = 0;
  }
  int exact = 1;
  for (size_t d = 0; d < rank; d++) exact = exact && scratch_a[d].exact;
  if (rank != 1 || !exact) nv = -1;
  return put(c, shaped(p, scratch_a, rank, nv >= 0 ? scratch_b : NULL, nv));
}

/* The axes of Squeeze, Unsqueeze and the reductions: an input (constant values) or the attribute; *present 0 when
 * neither is given. */
static int axes_of(call *c, big *out, size_t *len, int *present) {
  if (c->k > 1 && IN(1)) return *present = 1, ints_of(c->p, IN(1), "axes", c->op, out, len);
  const int64_t *list;
  size_t n;
  if (!attr_ints(c->p, c->n, "axes", &list, &n, present)) return 0;
  *len = 0;
  if (n > MAX_VALUES + MAX_RANK) return fail(c->p, "a %s with %zu axes", c->op, n);
  for (size_t i = 0; i < n; i++) out[(*len)++] = list[i];
  return 1;
}

static int r_squeeze(call *c) {
  const tensor *x = IN(0);
  big *ax = c->p->b1;
  size_t n_ax, rank = 0;
  int present, drop[MAX_RANK] = {0};
  if (!axes_of(c, ax, &n_ax, &present)) return 0;
  if (!present) {
    for (size_t i = 0; i < x->rank; i++)
      if (!is_const(&x->shape[i]) || !x->shape[i].exact)
        return fail(c->p, "a Squeeze without axes of a tensor whose dimensions depend on the batch");
    for (size_t i = 0; i < x->rank; i++) drop[i] = x->shape[i].c[0] == 1;
  } else {
    for (size_t i = 0; i < n_ax; i++) {
      size_t a;
      if (!axis_of(c->p, ax[i], x->rank, "Squeeze", &a)) return 0;
      drop[a] = 1;
    }
  }
  for (size_t i = 0; i < x->rank; i++)
    if (!drop[i]) scratch_a[rank++] = x->shape[i];
  int keep_values = x->rank <= 1 && x->n_values == 1;
  return put(c, shaped(c->p, scratch_a, rank, keep_values ? x->values : NULL, keep_values ? 1 : -1));
}

static int r_unsqueeze(call *c) {
  const tensor *x = IN(0);
  big *ax = c->p->b1;
  size_t n_ax;
  int present;
  if (!axes_of(c, ax, &n_ax, &present)) return 0;
  if (!present) return fail(c->p, "an Unsqueeze without axes");
  size_t rank = x->rank + n_ax;
  unsigned char *at = c->p->at;
  memset(at, 0, rank);
  size_t distinct = 0;
  for (size_t i = 0; i < n_ax; i++) {
    size_t a;
    if (!axis_of(c->p, ax[i], rank, "Unsqueeze", &a)) return 0;
    distinct += !at[a];
    at[a] = 1;
  }
  if (distinct != n_ax) return fail(c->p, "an Unsqueeze with an axis given twice");
  size_t next = 0;
  for (size_t i = 0; i < rank; i++) scratch_a[i] = at[i] ? of(1, 1) : x->shape[next++];
  return put(c, shaped(c->p, scratch_a, rank, rank <= 1 ? x->values : NULL, rank <= 1 ? x->n_values : -1));
}

static int r_transpose(call *c) {
  const tensor *x = IN(0);
  const int64_t *list;
  size_t len;
  int present;
  if (!attr_ints(c->p, c->n, "perm", &list, &len, &present)) return 0;
  size_t perm[MAX_RANK];
  int seen[MAX_RANK] = {0};
  if (!present || !len) {
    for (size_t i = 0; i < x->rank; i++) perm[i] = x->rank - 1 - i;
  } else {
    if (len != x->rank) return fail(c->p, "a Transpose whose perm is not a permutation of the axes");
    for (size_t i = 0; i < len; i++) {
      if (list[i] < 0 || (uint64_t)list[i] >= x->rank || seen[list[i]]) return fail(c->p, "a Transpose whose perm is not a permutation of the axes");
      seen[list[i]] = 1, perm[i] = (size_t)list[i];
    }
  }
  for (size_t i = 0; i < x->rank; i++) scratch_a[i] = x->shape[perm[i]];
  return put(c, shaped(c->p, scratch_a, x->rank, NULL, -1));
}

static int divide(prover *p, const dim *total, const dim *by, dim *out) {
  (void)p;
  if (total->exact && by->exact) {
    int k = -1;
    for (int i = 0; i < by->n; i++)
      if (by->c[i]) { k = i; break; }
    int ok = k >= 0;
    for (int i = k + 1; ok && i < by->n; i++) ok = by->c[i] == 0;
    for (int i = 0; ok && i < k && i < total->n; i++) ok = total->c[i] == 0;
    for (int i = k; ok && i < total->n; i++) ok = total->c[i] % by->c[k] == 0;
    if (ok && k < total->n) {
      dim r;
      memset(&r, 0, sizeof r);
      r.exact = 1, r.n = total->n - k;
      for (int i = k; i < total->n; i++) r.c[i - k] = total->c[i] / by->c[k];
      trim(&r);
      return *out = r, 1;
    }
    if (ok && k >= total->n) { /* the total is a lower power than the divisor: only 0 divides it exactly */
      int zero = 1;
      for (int i = 0; i < total->n; i++) zero = zero && total->c[i] == 0;
      if (zero) return *out = of(0, 1), 1;
    }
  }
  *out = *total;
  out->exact = 0;
  return 1;
}

static int r_reshape(call *c) {
  prover *p = c->p;
  const tensor *x = IN(0), *target = IN(1);
  if (!known(p, target, "target shape", "Reshape")) return 0;
  dim total;
  if (!count(p, x->shape, x->rank, &total)) return 0;
  long infer = -1;
  size_t rank = 0;
  for (long i = 0; i < target->n_values; i++) {
    const dim *v = &target->values[i];
    if (is_const(v) && v->c[0] == -1) {
      if (infer >= 0) return fail(p, "a Reshape with two -1s");
      infer = i;
      scratch_a[rank++] = of(1, 1);
    } else if (is_const(v) && v->c[0] == 0) {
      int64_t allowzero;
      if (!attr_int(p, c->n, "allowzero", 0, &allowzero)) return 0;
      if (allowzero) scratch_a[rank++] = *v;
      else {
        if ((size_t)i >= x->rank) return fail(p, "a Reshape that copies an axis its input does not have");
        scratch_a[rank++] = x->shape[i];
      }
    } else if (is_const(v) && v->c[0] < 0) {
      char num[48];
      big_str(v->c[0], num);
      return fail(p, "a Reshape to a negative dimension %s", num);
    } else scratch_a[rank++] = *v;
  }
  if (infer >= 0) {
    dim known_count;
    scratch_a[infer] = of(1, 1);
    if (!count(p, scratch_a, rank, &known_count)) return 0;
    divide(p, &total, &known_count, &scratch_a[infer]);
  }
  return put(c, shaped(p, scratch_a, rank, rank <= 1 ? x->values : NULL, rank <= 1 ? x->n_values : -1));
}

static big py_index(big v, size_t n) { /* Python's clamping of a slice bound */
  big size = (big)n;
  if (v < 0) v += size;
  return clamp(v, 0, size);
}

static int r_shape(call *c) {
  const tensor *x = IN(0);
  int64_t start, end;
  if (!attr_int(c->p, c->n, "start", 0, &start) || !attr_int(c->p, c->n, "end", (int64_t)x->rank, &end)) return 0;
  size_t s = (size_t)py_index(start, x->rank), e = (size_t)py_index(end, x->rank);
  size_t n = e > s ? e - s : 0;
  dim len = of((big)n, 1);
  return put(c, shaped(c->p, &len, 1, x->shape + s, (long)n));
}

static int r_constant_of_shape(call *c) {
  const tensor *size = IN(0);
  if (!known(c->p, size, "size", "ConstantOfShape")) return 0;
  for (long i = 0; i < size->n_values; i++) scratch_a[i] = nonneg(&size->values[i]);
  return put(c, shaped(c->p, scratch_a, (size_t)size->n_values, NULL, -1));
}

static int r_expand(call *c) {
  const tensor *x = IN(0), *size = IN(1);
  if (!known(c->p, size, "size", "Expand")) return 0;
  for (long i = 0; i < size->n_values; i++) scratch_b[i] = nonneg(&size->values[i]);
  tensor t = {1, (size_t)size->n_values, scratch_b, -1, NULL};
  const tensor *pair[2] = {x, &t};
  size_t rank;
  broadcast(c->p, pair, 2, scratch_a, &rank);
  return put(c, shaped(c->p, scratch_a, rank, NULL, -1));
}

static int r_reduce(call *c) {
  const tensor *x = IN(0);
  big *ax = c->p->b1;
  size_t n_ax;
  int present, drop[MAX_RANK] = {0};
  int64_t keep, noop;
  if (!axes_of(c, ax, &n_ax, &present) || !attr_int(c->p, c->n, "keepdims", 1, &keep)) return 0;
  if (!present || !n_ax) {
    if (!attr_int(c->p, c->n, "noop_with_empty_axes", 0, &noop)) return 0;
    if (noop) return put(c, shaped(c->p, x->shape, x->rank, NULL, -1)); /* no axes, given empty or not: the input */
    for (size_t i = 0; i < x->rank; i++) drop[i] = 1;
  } else {
    for (size_t i = 0; i < n_ax; i++) {
      size_t a;
      if (!axis_of(c->p, ax[i], x->rank, c->op, &a)) return 0;
      drop[a] = 1;
    }
  }
  size_t rank = 0;
  for (size_t i = 0; i < x->rank; i++) {
    if (drop[i] && keep) scratch_a[rank++] = of(1, 1);
    else if (!drop[i]) scratch_a[rank++] = x->shape[i];
  }
  return put(c, shaped(c->p, scratch_a, rank, NULL, -1));
}

static int r_argmax(call *c) {
  const tensor *x = IN(0);
  int64_t a, keep;
  size_t axis;
  if (!attr_int(c->p, c->n, "axis", 0, &a) || !axis_of(c->p, a, x->rank, c->op, &axis)) return 0;
  if (!attr_int(c->p, c->n, "keepdims", 1, &keep)) return 0;
  size_t rank = 0;
  for (size_t i = 0; i < x->rank; i++) {
    if (i == axis) {
      if (keep) scratch_a[rank++] = of(1, 1);
    } else scratch_a[rank++] = x->shape[i];
  }
  return put(c, shaped(c->p, scratch_a, rank, NULL, -1));
}

static int r_dynamic_quantize(call *c) {
  return put(c, shaped(c->p, IN(0)->shape, IN(0)->rank, NULL, -1)) && put(c, shaped(c->p, NULL, 0, NULL, -1)) &&
         put(c, shaped(c->p, NULL, 0, NULL, -1));
}

static int r_constant(call *c) {
  const attr_t *v = attr(c->n, "value");
  if (v && v->kind == A_TENSOR) return put(c, const_tensor(c->p, &v->t));
  if (attr(c->n, "value_int")) {
    int64_t x;
    if (!attr_int(c->p, c->n, "value_int", 0, &x)) return 0;
    dim d = of(x, 1);
    return put(c, shaped(c->p, NULL, 0, &d, 1));
  }
  if (attr(c->n, "value_ints")) {
    const int64_t *list;
    size_t len;
    int present;
    if (!attr_ints(c->p, c->n, "value_ints", &list, &len, &present)) return 0;
    dim d = of((big)len, 1);
    if (len > MAX_VALUES) return put(c, shaped(c->p, &d, 1, NULL, -1));
    for (size_t i = 0; i < len; i++) scratch_b[i] = of(list[i], 1);
    return put(c, shaped(c->p, &d, 1, scratch_b, (long)len));
  }
  return fail(c->p, "a Constant of a kind the proof does not read (value, value_int, value_ints)");
}

/* ---- the walk ---- */
static int prove_graph(prover *p, const graph *g, tensor **env, const char *where);

static int keeps_shape(const tensor *first, const tensor *after) {
  if (!first || !after || !first->known || !after->known || first->rank != after->rank) return 0;
  for (size_t i = 0; i < first->rank; i++)
    if (!same_c(&first->shape[i], &after->shape[i]) || !first->shape[i].exact || !after->shape[i].exact) return 0;
  return 1;
}

static int r_loop(call *c) {
  prover *p = c->p;
  const attr_t *b = attr(c->n, "body");
  if (!b || b->kind != A_GRAPH) return fail(p, "a Loop without a body graph");
  const graph *body = b->g;
  size_t carried = c->k > 2 ? c->k - 2 : 0;
  if (body->n_inputs != 2 + carried || body->n_outputs < 1 + carried) {
    return fail(p, "a Loop whose body's inputs and outputs do not match its carried tensors");
  }
  for (size_t i = 0; i < carried; i++)
    if (!c->ins[2 + i]) return fail(p, "a malformed Loop");
  tensor **scope = alloc(p->a, (p->n_names ? p->n_names : 1) * sizeof *scope);
  if (!scope) return p->failed = 1, 0;
  memcpy(scope, c->env, p->n_names * sizeof *scope);
  tensor *scalar = shaped(p, NULL, 0, NULL, -1);
  if (!scalar) return 0;
  scope[name_id(p, body->inputs[0])] = scalar; /* the iteration number */
  scope[name_id(p, body->inputs[1])] = scalar; /* the condition */
  for (size_t i = 0; i < carried; i++) { /* values change from step to step */
    tensor *t = shaped(p, c->ins[2 + i]->shape, c->ins[2 + i]->rank, NULL, -1);
    if (!t) return 0;
    scope[name_id(p, body->inputs[2 + i])] = t;
  }
  if (!prove_graph(p, body, scope, "its Loop body")) return 0;
  for (size_t i = 0; i < carried; i++) {
    const tensor *after = scope[name_id(p, body->outputs[1 + i])];
    if (!keeps_shape(c->ins[2 + i], after)) {
      return fail_named(p, "a Loop whose body changes the shape of the tensor it carries as ", body->inputs[2 + i],
                        " (a loop may not grow what it carries)");
    }
  }
  const tensor *m = IN(0);
  const dim *trips = m && m->n_values > 0 ? &m->values[0] : NULL;
  for (size_t i = 0; i < carried; i++)
    if (!put(c, shaped(p, c->ins[2 + i]->shape, c->ins[2 + i]->rank, NULL, -1))) return 0;
  for (size_t i = 1 + carried; i < body->n_outputs; i++) { /* scan outputs: one slice per iteration */
    const tensor *step = scope[name_id(p, body->outputs[i])];
    if (!trips || !is_const(trips) || !step || !step->known) return fail(p, "a Loop with a scan output whose size the proof cannot bound");
    scratch_a[0] = of(trips->c[0] > 0 ? trips->c[0] : 0, 0);
    memcpy(scratch_a + 1, step->shape, step->rank * sizeof *scratch_a);
    if (!put(c, shaped(p, scratch_a, step->rank + 1, NULL, -1))) return 0;
  }
  return 1;
}

typedef int (*rule_fn)(call *);
static const struct {
  const char *op;
  rule_fn rule;
  size_t needed;
} RULES[] = {
    {"Identity", r_same, 1}, {"Sigmoid", r_same, 1}, {"Tanh", r_same, 1}, {"Not", r_same, 1}, {"Softmax", r_same, 1},
    {"QuantizeLinear", r_same, 1}, {"DequantizeLinear", r_same, 1}, {"Cast", r_cast, 1},
    {"Add", r_elementwise, 2}, {"Sub", r_elementwise, 2}, {"Mul", r_elementwise, 2}, {"Equal", r_elementwise, 2},
    {"Less", r_elementwise, 2}, {"Greater", r_elementwise, 2}, {"And", r_elementwise, 2}, {"Or", r_elementwise, 2},
    {"Where", r_elementwise, 3}, {"MatMul", r_matmul, 2}, {"MatMulInteger", r_matmul, 2}, {"Gemm", r_gemm, 2},
    {"Gather", r_gather, 2}, {"Split", r_split, 1}, {"Concat", r_concat, 1}, {"Slice", r_slice, 1},
    {"Squeeze", r_squeeze, 1}, {"Unsqueeze", r_unsqueeze, 1}, {"Transpose", r_transpose, 1},
    {"Reshape", r_reshape, 2}, {"Shape", r_shape, 1}, {"ConstantOfShape", r_constant_of_shape, 1},
    {"Expand", r_expand, 2}, {"ReduceSum", r_reduce, 1}, {"ReduceMax", r_reduce, 1}, {"ArgMax", r_argmax, 1},
    {"DynamicQuantizeLinear", r_dynamic_quantize, 1}, {"Constant", r_constant, 0}, {"Loop", r_loop, 0},
};

static int check_node(prover *p, const node_t *n, tensor **env, tensor ***outs_out, size_t *n_outs) {
  char op[64];
  op_str(n, op, sizeof op);
  tensor **ins = alloc(p->a, (n->n_in ? n->n_in : 1) * sizeof *ins);
  if (!ins) return p->failed = 1, 0;
  for (size_t i = 0; i < n->n_in; i++) {
    if (!n->in[i].n) continue;
    long id = name_id(p, n->in[i]);
    ins[i] = id >= 0 ? env[id] : NULL;
    if (!ins[i] || !ins[i]->known) {
      char prefix[96];
      snprintf(prefix, sizeof prefix, "a %s reads ", op);
      return fail_named(p, prefix, n->in[i], ", whose shape the proof does not know");
    }
  }
  size_t r = 0, n_rules = sizeof RULES / sizeof *RULES;
  while (r < n_rules && !(n->default_domain && slice_is(n->op, RULES[r].op))) r++;
  if (r == n_rules) return fail(p, "no shape rule for %s", op);
  size_t needed = RULES[r].needed;
  int missing = n->n_in < needed || !n->n_out;
  for (size_t i = 0; !missing && i < needed; i++) missing = !ins[i];
  if (missing) return fail(p, "a %s without the inputs and outputs it needs", op);
  size_t cap = n->n_out;
  call c = {p, n, op, ins, n->n_in, env, alloc(p->a, cap * sizeof(tensor *)), cap, 0};
  if (!c.outs) return p->failed = 1, 0;
  if (!RULES[r].rule(&c)) return 0;
  *outs_out = c.outs;
  *n_outs = c.n_outs < cap ? c.n_outs : cap;
  return 1;
}

static int add_checked(prover *p, slice name, const tensor *t) {
  if (p->n_checked == p->cap_checked) {
    size_t cap = p->cap_checked ? 2 * p->cap_checked : 256;
    struct checked *grown = alloc(p->a, cap * sizeof *grown);
    if (!grown) return p->failed = 1, 0;
    if (p->n_checked) memcpy(grown, p->checked, p->n_checked * sizeof *grown);
    p->checked = grown, p->cap_checked = cap;
  }
  p->checked[p->n_checked++] = (struct checked){name, t->rank, t->shape};
  return 1;
}

/* Prefix the message the walk failed with: "where: message". */
static int prefixed(prover *p, const char *where) {
  if (p->failed || !p->msg->len) return 0;
  s2s_buf b = {0};
  buf_printf(&b, "%s: %s", where, p->msg->data);
  buf_free(p->msg);
  *p->msg = b;
  return 0;
}

static int prove_graph(prover *p, const graph *g, tensor **env, const char *where) {
  for (size_t i = 0; i < g->n_inits; i++) {
    tensor *t = const_tensor(p, &g->inits[i]);
    if (!t) return 0;
    env[name_id(p, g->inits[i].name)] = t;
  }
  for (size_t i = 0; i < g->n_nodes; i++) {
    const node_t *n = &g->nodes[i];
    tensor **outs = NULL;
    size_t n_outs = 0;
    if (!check_node(p, n, env, &outs, &n_outs)) return prefixed(p, where);
    for (size_t k = 0; k < n_outs; k++) {
      tensor *t = outs[k];
      if (t->known && t->rank > MAX_RANK) {
        char op[64];
        op_str(n, op, sizeof op);
        return fail(p, "%s: a %s whose output has %zu dimensions (at most %d)", where, op, t->rank, MAX_RANK);
      }
      if (!n->out[k].n) continue;
      env[name_id(p, n->out[k])] = t;
      if (t->known && !add_checked(p, n->out[k], t)) return 0;
    }
  }
  return 1;
}

/* The bound on every tensor worked out (Python: shapes.SizeCheck), at most 3 problems; -1 on no memory. */
static int size_problems(prover *p, s2s_buf *b) {
  big const_limit = p->row_limit > p->largest_constant ? p->row_limit : p->largest_constant;
  int found = 0;
  char row[48], all[48];
  big_str(p->row_limit, row);
  big_str(const_limit, all);
  for (size_t i = 0; i < p->n_checked && found < 3; i++) {
    dim n;
    const struct checked *t = &p->checked[i];
    int power = 0;
    if (!count(p, t->shape, t->rank, &n)) { /* beyond MAX_DEG: a power of the batch */
      buf_free(p->msg);
      *p->msg = (s2s_buf){0};
      power = 2;
    } else if (n.n > 2) power = 1;
    int over = !power && ((n.n == 2 && n.c[1] > p->row_limit) || n.c[0] > const_limit);
    if (!power && !over) continue;
    buf_puts(b, found++ ? "; " : "");
    buf_puts(b, "holds a tensor (");
    name60(b, t->name);
    buf_puts(b, ") of ");
    if (power == 2) buf_printf(b, "more than B^%d", MAX_DEG);
    else dim_str(&n, b);
    if (power) buf_puts(b, " elements: it grows with a power of the batch (the contract's tensors grow linearly; refused)");
    else buf_printf(b, " elements, more than the bundle's shapes allow (%s per batch row, %s in all without the batch; "
                    "refused)", row, all);
  }
  return found;
}

s2s_status modelcheck_shapes(const unsigned char *data, size_t len, const s2s_spec *inputs, int n_inputs,
                             int64_t row_limit, const char *where, s2s_error *err) {
  reader r = {{0}, NULL, {0}};
  s2s_buf msg = {0}, problems = {0};
  s2s_status st = S2S_OK;
  graph *g = read_model(&r, (slice){data, len});
  if (!g) {
    st = r.a.oom ? s2s_fail(err, S2S_ERR_MEMORY, "%s: out of memory reading the model", where)
                 : s2s_fail(err, S2S_ERR_BUNDLE, "%s: not a valid ONNX model (%s)", where, r.error ? r.error : "?");
    arena_free(&r.a);
    return st;
  }
  prover p = {&r.a, &msg, row_limit, 0, 0, NULL, NULL, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
  p.sa = alloc(&r.a, SCRATCH * sizeof *p.sa), p.sb = alloc(&r.a, SCRATCH * sizeof *p.sb);
  p.sc = alloc(&r.a, SCRATCH * sizeof *p.sc);
  p.b1 = alloc(&r.a, SCRATCH * sizeof *p.b1), p.b2 = alloc(&r.a, SCRATCH * sizeof *p.b2);
  p.b3 = alloc(&r.a, SCRATCH * sizeof *p.b3), p.b4 = alloc(&r.a, SCRATCH * sizeof *p.b4);
  p.at = alloc(&r.a, SCRATCH);
  if (!p.sa || !p.sb || !p.sc || !p.b1 || !p.b2 || !p.b3 || !p.b4 || !p.at) p.failed = 1;
  size_t total = collect_names(g, NULL);
  slice *names = alloc(&r.a, (total ? total : 1) * sizeof *names);
  tensor **env = NULL;
  int found = 0;
  if (names) {
    collect_names(g, names);
    qsort(names, total, sizeof *names, cmp_slice_ptr);
    size_t u = 0;
    for (size_t i = 0; i < total; i++)
      if (!u || slice_cmp(names[u - 1], names[i])) names[u++] = names[i];
    p.names = names, p.n_names = u;
    env = alloc(&r.a, (u ? u : 1) * sizeof *env);
  }
  if (!names || !env) p.failed = 1;
  int ok = !p.failed;
  for (size_t i = 0; ok && i < g->n_inputs; i++) { /* the contract's shapes, the batch symbolic */
    int is_init = 0;
    for (size_t k = 0; k < g->n_inits && !is_init; k++) is_init = !slice_cmp(g->inits[k].name, g->inputs[i]);
    const s2s_spec *spec = NULL;
    for (int k = 0; k < n_inputs && !spec; k++)
      if (slice_is(g->inputs[i], inputs[k].name)) spec = &inputs[k];
    if (is_init && spec) {
      fail_named(&p, "has an initializer ", g->inputs[i], " of the name of a contract input (ONNX Runtime would take "
                 "the caller's value in its place: its shape cannot be proved)");
      ok = 0;
      found = -1;
      break;
    }
    if (is_init) continue; /* an input with a default value the runtime never feeds: the initializer */
    if (!spec) {
      fail_named(&p, "has an input ", g->inputs[i], " the contract does not name (its shape cannot be proved)");
      ok = 0;
      found = -1;
      break;
    }
    dim shape[4];
    for (int d = 0; d < spec->rank; d++) {
      if (spec->shape[d] == -1) shape[d] = of(0, 1), shape[d].n = 2, shape[d].c[1] = 1;
      else shape[d] = of(spec->shape[d], 1);
    }
    tensor *t = shaped(&p, shape, (size_t)spec->rank, NULL, -1);
    if (!t) ok = 0;
    else env[name_id(&p, g->inputs[i])] = t;
  }
  if (ok) ok = prove_graph(&p, g, env, "the main graph");
  if (p.failed || r.a.oom || msg.failed) st = s2s_fail(err, S2S_ERR_MEMORY, "%s: out of memory proving the model's shapes", where);
  else if (found < 0) st = s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s", where, msg.data);
  else if (!ok) st = s2s_fail(err, S2S_ERR_BUNDLE, "%s: cannot prove its shapes: %s (refused: the runtime runs what it can bound)", where, msg.data);
  else {
    found = size_problems(&p, &problems);
    if (problems.failed) st = s2s_fail(err, S2S_ERR_MEMORY, "%s: out of memory proving the model's shapes", where);
    else if (found == 1) st = s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s", where, problems.data);
    else if (found > 1) st = s2s_fail(err, S2S_ERR_BUNDLE, "%s: %d problems: %s", where, found, problems.data);
  }
  buf_free(&msg);
  buf_free(&problems);
  arena_free(&r.a);
  return st;
}
