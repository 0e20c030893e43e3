/* What an ONNX model file may be, proved from its bytes before ONNX Runtime sees them (modelcheck.c). */
#ifndef S2S_MODELCHECK_H
#define S2S_MODELCHECK_H

#include <stddef.h>

#include "internal.h"
#include "s2s.h"

/* S2S_OK when the model's operators are ones `role` may hold and exactly the manifest's `ops`, and each of its
 * loops is proved to run at most `loop_limit` times; else S2S_ERR_BUNDLE with the Python runtime's message naming
 * `where` (S2S_ERR_MEMORY when an allocation failed). */
s2s_status modelcheck_ops(const unsigned char *data, size_t len, const char *format, const char *role,
                          const char *const *ops, size_t n_ops, size_t loop_limit, const char *where, s2s_error *err);

/* S2S_OK when every tensor's shape of the ONNX model (already accepted by modelcheck_ops) is proved from the
 * contract's `inputs` (-1: the batch) within `row_limit` elements per batch row and linear in the batch, with no
 * Loop changing the shape of what it carries (onnx_shapes.c); else S2S_ERR_BUNDLE with the Python runtime's message. */
s2s_status modelcheck_shapes(const unsigned char *data, size_t len, const s2s_spec *inputs, int n_inputs,
                             int64_t row_limit, const char *where, s2s_error *err);

/* The operators a model of `role` may hold (NULL-terminated, sorted), or NULL for a format or role without any. */
const char *const *modelcheck_allowed_ops(const char *format, const char *role);

#endif
