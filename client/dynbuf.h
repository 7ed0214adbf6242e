/*
 * A growable byte buffer with a cap, in the manner of curl's dynbuf: every
 * buffer that grows with what the server or a user sends is one of these,
 * so that none grows past the bound its owner chose. The bytes are always
 * followed by a NUL (not counted in len), so text in one can be used as a
 * string.
 */
#ifndef SCRIPTUM_DYNBUF_H
#define SCRIPTUM_DYNBUF_H

#include <stddef.h>

struct dynbuf {
	char *buf;  /* len bytes and a NUL; NULL until the first byte */
	size_t len; /* bytes held */
	size_t cap; /* bytes allocated (len + 1 at least, once allocated) */
	size_t max; /* the most bytes it may hold */
};

/* An empty buffer that may hold up to max bytes. Allocates nothing. */
void dynbuf_init(struct dynbuf *b, size_t max);

/* Appends n bytes: 0, -EFBIG when len + n would pass max (nothing is
 * appended), or -ENOMEM (nothing is appended). */
int dynbuf_add(struct dynbuf *b, const void *p, size_t n);

/* Makes room for n bytes in all (and the NUL after them) without changing
 * len: 0, -EFBIG past max, or -ENOMEM. Bytes past len are not set. */
int dynbuf_reserve(struct dynbuf *b, size_t n);

/* Sets len to n (<= the room reserved): for bytes written in place. */
void dynbuf_setlen(struct dynbuf *b, size_t n);

/* Empties it, keeping its memory for reuse. */
void dynbuf_reset(struct dynbuf *b);

/* Hands the bytes to the caller (free() them; NULL when there were none,
 * with *len 0) and leaves the buffer empty. */
char *dynbuf_take(struct dynbuf *b, size_t *len);

/* Frees what it holds and leaves it empty (its max is kept). */
void dynbuf_free(struct dynbuf *b);

#endif
