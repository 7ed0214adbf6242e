/*
 * What config.c (the file and the layers) and config_value.c (values and
 * secret files) share; private to the configuration.
 */
#ifndef SCRIPTUM_CONFIG_INT_H
#define SCRIPTUM_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* A file holding a secret must not be readable by these. */
#define SECRET_READERS (S_IRGRP | S_IROTH)

/* Values end up in HTTP headers, URLs and file names: no control bytes. */
bool config_has_control(const char *s, size_t len);

/* Reads all of fd into a NUL-terminated *out (free() it) of *outlen bytes,
 * refusing more than cap bytes with -EFBIG. */
int config_read_capped(int fd, size_t cap, char **out, size_t *outlen);

/* Opens path read-only and checks it is a regular file: the descriptor, or
 * -errno with a message in err. */
int config_open_regular(const char *path, struct stat *st, char *err, size_t errlen);

/* -EACCES, with a message saying path (what it holds) is readable by group
 * or others and how to mend it. */
int config_refuse_readable(const char *path, const char *what, mode_t mode, char *err,
                           size_t errlen);

#endif
