/* The protobuf wire format, read with every access bounded by the message (modelcheck.c; used by onnx_shapes.c). */
#ifndef S2S_PROTOBUF_H
#define S2S_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  const unsigned char *p;
  size_t n;
} slice;

typedef struct {
  uint64_t number, value; /* value: wire 0 */
  int wire;
  slice bytes; /* wire 1, 2, 5 */
} field;

typedef struct {
  slice m;
  size_t pos;
  const char *error; /* set when the message is malformed */
  char text[48];     /* an error with a number in it */
} fields;

/* A varint at *pos (kept to 64 bits, as protobuf keeps it); 0 with *error set when truncated. */
int pb_varint(slice s, size_t *pos, uint64_t *out, const char **error);
/* The next field of a message: 1, 0 at its end, -1 (it->error set) when malformed. */
int pb_next_field(fields *it, field *f);

#endif
