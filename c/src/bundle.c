/* Reading a bundle's files: a folder reader that opens only plain names, never follows a link, takes only regular
 * files and reads at most what the manifest allows; and the sha256 every model file is checked against. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle.h"

#ifndef O_CLOEXEC
#define O_CLOEXEC 0
#endif

s2s_status bundle_read_folder(void *ctx, const char *name, size_t max_bytes, unsigned char **data, size_t *len,
                              s2s_error *err) {
  const char *dir = ctx;
  *data = NULL;
  *len = 0;
  if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: '%s' is not a plain file name", dir, name);
  }
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s: %s", dir,
                    errno == ENOENT ? "no such folder" : errno == ENOTDIR ? "not a folder (give the bundle's folder)"
                                                                            : strerror(errno));
  }
  int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  int open_errno = errno;
  close(dfd);
  if (fd < 0) {
    if (open_errno == ELOOP) {
      return s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: is a symbolic link; a bundle's files must be regular files", dir,
                      name);
    }
    if (open_errno == ENOENT && !strcmp(name, "manifest.json")) {
      return s2s_fail(err, S2S_ERR_BUNDLE, "%s: no manifest.json: not a bundle folder (s2s export writes one)", dir);
    }
    return s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: %s", dir, name,
                    open_errno == ENOENT ? "missing (the manifest names it; copy the whole bundle folder)"
                                         : strerror(open_errno));
  }
  struct stat st;
  s2s_status status = S2S_OK;
  if (fstat(fd, &st) != 0) status = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: %s", dir, name, strerror(errno));
  else if (!S_ISREG(st.st_mode)) {
    status = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: is not a regular file; a bundle's files must be regular files",
                      dir, name);
  } else if ((uint64_t)st.st_size > max_bytes) {
    status = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: is %lld bytes, more than the %zu allowed (replaced or corrupted: "
                      "copy the bundle again)", dir, name, (long long)st.st_size, max_bytes);
  }
  unsigned char *buf = NULL;
  size_t got = 0;
  if (status == S2S_OK) {
    buf = malloc((size_t)st.st_size + 1); /* one byte more: a file that grew since fstat shows it */
    if (!buf) status = s2s_fail(err, S2S_ERR_MEMORY, "out of memory reading %s/%s", dir, name);
  }
  while (status == S2S_OK && got <= (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) status = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: %s", dir, name, strerror(errno));
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (status == S2S_OK && got > max_bytes) {
    status = s2s_fail(err, S2S_ERR_BUNDLE, "%s/%s: grew past the %zu bytes allowed while it was read", dir, name,
                      max_bytes);
  }
  if (status != S2S_OK) {
    free(buf);
    return status;
  }
  *data = buf;
  *len = got;
  return S2S_OK;
}

int bundle_sha256_hex(const unsigned char *data, size_t len, char hex[65]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32) return -1;
  for (unsigned i = 0; i < n; i++) {
    static const char digits[] = "0123456789abcdef";
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[64] = '\0';
  return 0;
}
