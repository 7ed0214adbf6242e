/*
 * Redaction: the set of secrets a client uses (its bearer tokens, the
 * OAuth client secret, the organization id) and the one function that
 * takes them out of a message. Every message that may hold text from the
 * server goes through redact_apply() before anyone sees it; the HTTP
 * client owns the set and fills it as it reads or fetches secrets
 * (http_redact() is the way in for everyone else).
 *
 *	struct redact *r = redact_new();
 *	redact_add(r, REDACT_TOKEN, token);
 *	redact_apply(r, msg, sizeof(msg));	// "... Bearer <redacted> ..."
 *	redact_free(r);
 *
 * Thread-safe. Memory is bounded: each kind keeps its newest few values.
 */
#ifndef SCRIPTUM_REDACT_H
#define SCRIPTUM_REDACT_H

#include <stddef.h>

/* What a message says where a secret was. */
#define REDACT_MARK "<redacted>"

/*
 * The kinds of secret. Tokens and client secrets are random: any piece of
 * one 8 bytes or longer is taken out too (a message cut short, or
 * jansson's "near '...'", may hold only a piece), and so is a piece of 4
 * or more at the very end of a message (where a cut leaves it). An
 * organization id is a name, whose pieces are ordinary words: only the
 * whole id is taken out.
 */
enum redact_kind {
	REDACT_TOKEN,
	REDACT_CLIENT_SECRET,
	REDACT_ORG_ID,
	REDACT_KINDS,
};

struct redact;

/* An empty set (free it with redact_free()); NULL when out of memory. */
struct redact *redact_new(void);

/* Wipes every secret and frees r. NULL is fine. */
void redact_free(struct redact *r);

/*
 * Adds a copy of secret (NULL, "" and values under 4 bytes are ignored:
 * they would match everywhere). A value already there is not added
 * twice; past the kind's limit the oldest value is wiped and dropped.
 * 0 or -ENOMEM.
 */
int redact_add(struct redact *r, enum redact_kind kind, const char *secret);

/*
 * Replaces every secret of r in msg (a NUL-terminated string in a buffer
 * of size bytes) with REDACT_MARK, in place; a message that grows past
 * size is cut. r may be NULL (nothing to take out).
 */
void redact_apply(struct redact *r, char *msg, size_t size);

#endif
