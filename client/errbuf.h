/*
 * The caller-supplied error buffer of libscriptum: functions that fail
 * write a human-readable reason there and return -errno, and the caller
 * decides whether to print, log or retry.
 */
#ifndef ERRBUF_H
#define ERRBUF_H

#include <stddef.h>

/* Writes the formatted message into err (when err is not NULL and errlen is
 * not 0) and returns rc, so that `return errbuf_set(err, len, -EINVAL, ...)`
 * fails a call in one line. */
int errbuf_set(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Up to max bytes of s (n bytes) for a one-line message, into out (outsz
 * bytes, NUL-terminated): control bytes become '?', the quote the message
 * puts around it and '\\' are escaped with a '\\', and a cut is made at a
 * character and shown as "...". Text from a server cannot then break the
 * line, end the quote or pass for another value.
 */
void errbuf_excerpt(char *out, size_t outsz, const char *s, size_t n, size_t max, char quote);

#endif
