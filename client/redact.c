/*
 * The secrets in use and their removal from messages (see redact.h).
 *
 * The set is small (a few values of each kind) and a message is short
 * (ERRMAP_MSG_MAX, a log line), so the search is plain: whole values
 * first, then for a random secret every 8-byte window of the message
 * looked up in the secret with memmem() and stretched as far as it
 * matches. Only failures come here, so clarity wins over speed.
 */
#include "redact.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Values kept per kind: a token file or an OAuth endpoint rotates tokens
 * for weeks, and a message may still quote one of the last few. */
#define KEEP 6
/* Shorter values are not secrets worth the false matches. */
#define MIN_SECRET 4
/* The shortest piece of a random secret that is taken out. */
#define MIN_PIECE 8

struct redact {
	pthread_mutex_t lock;
	char *v[REDACT_KINDS][KEEP]; /* owned, wiped when dropped; [0] newest */
};

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

struct redact *
redact_new(void)
{
	struct redact *r = calloc(1, sizeof(*r));

	if (r != NULL)
		pthread_mutex_init(&r->lock, NULL);
	return r;
}

void
redact_free(struct redact *r)
{
	if (r == NULL)
		return;
	for (int k = 0; k < REDACT_KINDS; k++)
		for (int i = 0; i < KEEP; i++)
			wipe_free(r->v[k][i]);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int
redact_add(struct redact *r, enum redact_kind kind, const char *secret)
{
	char **v, *copy;

	if (r == NULL || secret == NULL || strlen(secret) < MIN_SECRET || kind >= REDACT_KINDS)
		return 0;
	v = r->v[kind];
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < KEEP && v[i] != NULL; i++) {
		if (strcmp(v[i], secret) == 0) {
			pthread_mutex_unlock(&r->lock);
			return 0;
		}
	}
	if ((copy = strdup(secret)) == NULL) {
		pthread_mutex_unlock(&r->lock);
		return -ENOMEM;
	}
	wipe_free(v[KEEP - 1]);
	memmove(v + 1, v, (KEEP - 1) * sizeof(*v));
	v[0] = copy;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* Puts the mark in place of the n bytes at msg[at], cutting what no
 * longer fits in size. Returns the offset just past the mark. */
static size_t
replace(char *msg, size_t size, size_t at, size_t n)
{
	static const char mark[] = REDACT_MARK;
	size_t mlen = sizeof(mark) - 1, len = strlen(msg), tail = len - at - n;

	if (at + mlen + 1 > size)
		mlen = size - at - 1;
	if (at + mlen + tail + 1 > size)
		tail = size - at - mlen - 1;
	memmove(msg + at + mlen, msg + at + n, tail);
	memcpy(msg + at, mark, mlen);
	msg[at + mlen + tail] = '\0';
	return at + mlen;
}

/* Every whole occurrence of s. */
static void
take_whole(char *msg, size_t size, const char *s, size_t slen)
{
	size_t off = 0;
	char *p;

	while (off < strlen(msg) && (p = strstr(msg + off, s)) != NULL)
		off = replace(msg, size, (size_t)(p - msg), slen);
}

/* A start of s, MIN_SECRET bytes or longer, that ends at msg[end]. */
static void
take_cut(char *msg, size_t size, size_t end, const char *s, size_t slen)
{
	for (size_t n = end < MIN_PIECE ? end : MIN_PIECE - 1; n >= MIN_SECRET; n--) {
		if (n <= slen && memcmp(msg + end - n, s, n) == 0) {
			replace(msg, size, end - n, n);
			return;
		}
	}
}

/* Collapses runs of marks (a secret taken out in pieces) into one. */
static void
merge_marks(char *msg)
{
	static const char two[] = REDACT_MARK REDACT_MARK;
	size_t mlen = sizeof(REDACT_MARK) - 1;
	char *p;

	while ((p = strstr(msg, two)) != NULL)
		memmove(p + mlen, p + 2 * mlen, strlen(p + 2 * mlen) + 1);
}

/* Every piece of s MIN_PIECE bytes or longer, and a start of s of
 * MIN_SECRET or more where a cut would leave it: at the end of the
 * message, or before the "..." that marks a cut. */
static void
take_pieces(char *msg, size_t size, const char *s, size_t slen)
{
	size_t i = 0, len = strlen(msg);

	while (i + MIN_PIECE <= len) {
		const char *hit = memmem(s, slen, msg + i, MIN_PIECE);
		size_t n = MIN_PIECE;

		if (hit == NULL) {
			i++;
			continue;
		}
		while (msg[i + n] != '\0' && (size_t)(hit - s) + n < slen && msg[i + n] == hit[n])
			n++;
		i = replace(msg, size, i, n);
		len = strlen(msg);
	}
	for (const char *p = msg; (p = strstr(p, "...")) != NULL; p += 3)
		take_cut(msg, size, (size_t)(p - msg), s, slen);
	take_cut(msg, size, strlen(msg), s, slen);
}

void
redact_apply(struct redact *r, char *msg, size_t size)
{
	if (r == NULL || msg == NULL || size == 0)
		return;
	pthread_mutex_lock(&r->lock);
	/* whole values first: a piece of one may be part of another */
	for (int k = 0; k < REDACT_KINDS; k++)
		for (int i = 0; i < KEEP && r->v[k][i] != NULL; i++)
			take_whole(msg, size, r->v[k][i], strlen(r->v[k][i]));
	for (int k = 0; k < REDACT_KINDS; k++) {
		for (int i = 0; i < KEEP && r->v[k][i] != NULL && k != REDACT_ORG_ID; i++) {
			size_t slen = strlen(r->v[k][i]);

			if (slen >= MIN_PIECE)
				take_pieces(msg, size, r->v[k][i], slen);
		}
	}
	pthread_mutex_unlock(&r->lock);
	merge_marks(msg);
}
