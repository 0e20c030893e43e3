/* A bundle's files: the folder reader behind s2s_load, and sha256. */
#ifndef S2S_BUNDLE_H
#define S2S_BUNDLE_H

#include "internal.h"

/* s2s_read_file_fn for a folder: ctx is the folder's path (a NUL-terminated string). */
s2s_status bundle_read_folder(void *ctx, const char *name, size_t max_bytes, unsigned char **data, size_t *len,
                              s2s_error *err);
/* Lowercase hex sha256 of data; 0 on success. */
int bundle_sha256_hex(const unsigned char *data, size_t len, char hex[65]);

#endif
