/*
 * The capped growable buffer (see dynbuf.h): doubling from 256 bytes, never
 * past max bytes and the NUL.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"

#define DYNBUF_MIN 256

void
dynbuf_init(struct dynbuf *b, size_t max)
{
	b->buf = NULL;
	b->len = b->cap = 0;
	b->max = max < SIZE_MAX ? max : SIZE_MAX - 1; /* max + 1 must not wrap */
}

int
dynbuf_reserve(struct dynbuf *b, size_t n)
{
	size_t want;
	char *nb;

	if (n > b->max)
		return -EFBIG;
	if (n < b->cap)
		return 0;
	want = b->cap < DYNBUF_MIN ? DYNBUF_MIN : b->cap;
	while (want <= n && want <= b->max / 2)
		want *= 2;
	if (want <= n)
		want = b->max + 1; /* which holds n: checked above */
	if ((nb = realloc(b->buf, want)) == NULL)
		return -ENOMEM;
	b->buf = nb;
	b->cap = want;
	return 0;
}

int
dynbuf_add(struct dynbuf *b, const void *p, size_t n)
{
	int rc;

	if (n > b->max - b->len)
		return -EFBIG;
	if ((rc = dynbuf_reserve(b, b->len + n)) != 0)
		return rc;
	if (n > 0)
		memcpy(b->buf + b->len, p, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return 0;
}

void
dynbuf_setlen(struct dynbuf *b, size_t n)
{
	if (b->buf == NULL || n >= b->cap)
		return; /* not reserved: a caller's bug, refused */
	b->len = n;
	b->buf[n] = '\0';
}

void
dynbuf_reset(struct dynbuf *b)
{
	b->len = 0;
	if (b->buf != NULL)
		b->buf[0] = '\0';
}

char *
dynbuf_take(struct dynbuf *b, size_t *len)
{
	char *p = b->buf;

	if (len != NULL)
		*len = b->len;
	b->buf = NULL;
	b->len = b->cap = 0;
	return p;
}

void
dynbuf_free(struct dynbuf *b)
{
	free(b->buf);
	b->buf = NULL;
	b->len = b->cap = 0;
}
