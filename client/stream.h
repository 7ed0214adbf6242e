/*
 * Server-stream bodies parsed incrementally: bytes go in as they arrive,
 * each complete message comes out as a JSON value. Every framing of
 * doc/WIRE.md, Streams, is accepted and detected from the first byte:
 * NDJSON (or plain concatenated objects) with or without the
 * {"result": ...} wrapper, one JSON array of messages, and server-sent
 * events (data: lines).
 *
 *	struct stream *p = stream_new(on_msg, ctx, 0);
 *	while ((n = read_some(buf)) > 0)
 *		if ((rc = stream_feed(p, buf, n)) != 0)
 *			break;		// stream_errstr(p) says why
 *	if (rc == 0)
 *		rc = stream_finish(p);	// framing complete?
 *	stream_free(p);
 *
 * An {"error": {...}} message ends the stream with -EREMOTEIO; the server's
 * code and message are then in stream_error(p). Whether the stream carried
 * its final message (isFinal) is the caller's business, not this module's.
 */
#ifndef SCRIPTUM_STREAM_H
#define SCRIPTUM_STREAM_H

#include <stddef.h>

#include <jansson.h>

#include "errmap.h"

/* Largest single message, by default (a 16 MiB chunk is ~22 MiB of JSON). */
#define STREAM_MAX_MSG_DEFAULT ((size_t)64 << 20)

struct stream;

enum stream_framing {
	STREAM_FRAMING_UNKNOWN, /* nothing but whitespace seen yet */
	STREAM_FRAMING_NDJSON,  /* objects one after another, newlines or not */
	STREAM_FRAMING_ARRAY,   /* [msg, msg, ...] */
	STREAM_FRAMING_SSE,     /* server-sent events */
};

/*
 * Called once per message, in order. msg is borrowed: it lives until the
 * callback returns (json_incref it to keep it). Already unwrapped from
 * {"result": ...}. Return 0 to go on, or a -errno that stops the stream
 * and is returned by the stream_feed() that made the call.
 */
typedef int (*stream_msg_fn)(json_t *msg, void *arg);

/*
 * A parser that hands messages to fn(msg, arg). max_msg bounds the bytes of
 * any one message (0 = STREAM_MAX_MSG_DEFAULT); it is also the most memory
 * the parser holds. Returns NULL only when out of memory. Free with
 * stream_free().
 */
struct stream *stream_new(stream_msg_fn fn, void *arg, size_t max_msg);
void stream_free(struct stream *p);

/*
 * Parses len more bytes of the body, calling fn for each message they
 * complete. Returns 0, or: -EPROTO (bad framing or JSON), -EMSGSIZE (a
 * message over max_msg), -EREMOTEIO (the server sent an error),
 * -ENOMEM, or the callback's own -errno. After an error every later call
 * returns the same error.
 */
int stream_feed(struct stream *p, const void *buf, size_t len);

/*
 * At the end of the body: 0 if it ended between messages (and after the
 * closing ']' of an array), -EPROTO if it was cut inside a message or an
 * array, or the error an earlier call returned.
 */
int stream_finish(struct stream *p);

/* Why the last call failed, one line; "" when nothing failed. Owned by p. */
const char *stream_errstr(const struct stream *p);

/* The server's error after -EREMOTEIO, else NULL. Owned by p. */
const struct errmap_status *stream_error(const struct stream *p);

/* The error's "details" (borrowed, owned by p), or NULL. */
json_t *stream_error_details(const struct stream *p);

/* The framing detected so far. */
enum stream_framing stream_framing(const struct stream *p);

/* Messages delivered so far. */
size_t stream_count(const struct stream *p);

/* Bytes of memory held for partial messages (at most max_msg and a NUL). */
size_t stream_buffered(const struct stream *p);

#endif
