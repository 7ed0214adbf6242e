/*
 * Incremental parser for server-stream bodies (doc/WIRE.md, Streams).
 * Two layers: an object scanner that finds where each top-level JSON
 * object ends by counting braces and brackets outside strings, keeping its
 * state across feeds so no byte is looked at twice, and a framing layer in
 * front of it (between-message punctuation of NDJSON and arrays, or the
 * line protocol of server-sent events, whose data values go to the scanner).
 *
 * A message is copied at most once: when it lies whole inside one feed it is
 * parsed in place, otherwise its pieces are appended to one buffer, capped
 * at max_msg, that is kept for the next message.
 *
 * jansson reads strings a character at a time (about 100 MB/s), far slower
 * than the network, and a result chunk is one long base64 string. So the
 * scanner notes the longest string without escapes; if it is long and plain
 * ASCII, jansson parses the message with a placeholder in its place and the
 * bytes are then put in with one memcpy (json_stringn_nocheck).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stream.h"
#include "dynbuf.h"
#include "jsonload.h"

enum arr_state {
	ARR_OPEN,  /* before '[' */
	ARR_FIRST, /* after '[': a message or ']' */
	ARR_AFTER, /* after a message: ',' or ']' */
	ARR_NEXT,  /* after ',': a message */
	ARR_DONE,  /* after ']': only whitespace */
};

enum sse_state {
	SSE_LINE_START,
	SSE_FIELD, /* reading a field name */
	SSE_SPACE, /* after "field:", where one space is skipped */
	SSE_VALUE,
	SSE_SKIP, /* a comment or a line whose value does not matter */
};

enum sse_field {
	FIELD_DATA,
	FIELD_EVENT,
	FIELD_OTHER,
};

struct stream {
	stream_msg_fn fn;
	void *arg;
	size_t max_msg;
	enum stream_framing framing;
	size_t count; /* messages delivered */
	size_t fed;   /* bytes fed before the current call, for error positions */

	int failed; /* the latched -errno, 0 while all is well */
	char errstr[256];
	bool has_status;
	struct errmap_status status;
	json_t *details; /* owned: a reference taken from the error message */

	/* The object scanner. */
	size_t depth; /* open braces and brackets; 0 = between messages */
	bool in_str;
	bool esc;          /* the next byte is escaped */
	struct dynbuf msg; /* the partial message, up to max_msg bytes */

	size_t str_off; /* the current string's opening quote, from the message start */
	bool str_bs;    /* ...and whether it has a backslash */
	size_t big_off; /* the message's longest plain string (big_len > 0) */
	size_t big_len;

	enum arr_state arr;

	/* Server-sent events. */
	enum sse_state sse;
	bool cr; /* the last line ended with '\r': a '\n' now is part of it */
	enum sse_field field;
	char name[8]; /* field name so far (flen may exceed it: then not ours) */
	size_t flen;
	char event[8]; /* the current event's type, when short enough to matter */
	size_t elen;
	bool ev_error; /* the current event is "event: error" */
};

static int fail(struct stream *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Latches rc and its explanation; every later call returns rc. */
static int
fail(struct stream *p, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->errstr, sizeof(p->errstr), fmt, ap);
	va_end(ap);
	p->failed = rc;
	return rc;
}

/* A byte for an error message: itself if printable, else \xHH. */
static const char *
show(unsigned char c, char out[8])
{
	if (c >= 0x20 && c < 0x7f)
		snprintf(out, 8, "'%c'", c);
	else
		snprintf(out, 8, "\\x%02x", c);
	return out;
}

struct stream *
stream_new(stream_msg_fn fn, void *arg, size_t max_msg)
{
	struct stream *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->fn = fn;
	p->arg = arg;
	p->max_msg = max_msg != 0 ? max_msg : STREAM_MAX_MSG_DEFAULT;
	dynbuf_init(&p->msg, p->max_msg);
	return p;
}

void
stream_free(struct stream *p)
{
	if (p == NULL)
		return;
	json_decref(p->details);
	dynbuf_free(&p->msg);
	free(p);
}

const char *
stream_errstr(const struct stream *p)
{
	return p->errstr;
}

const struct errmap_status *
stream_error(const struct stream *p)
{
	return p->has_status ? &p->status : NULL;
}

json_t *
stream_error_details(const struct stream *p)
{
	return p->details;
}

enum stream_framing
stream_framing(const struct stream *p)
{
	return p->framing;
}

size_t
stream_count(const struct stream *p)
{
	return p->count;
}

size_t
stream_buffered(const struct stream *p)
{
	return p->msg.cap;
}

/* Appends to the partial message, up to max_msg bytes (dynbuf.h). */
static int
buf_append(struct stream *p, const char *s, size_t n)
{
	int rc = dynbuf_add(&p->msg, s, n);

	if (rc == -EFBIG)
		return fail(p, -EMSGSIZE, "a stream message is larger than the %zu-byte limit",
		            p->max_msg);
	if (rc != 0)
		return fail(p, -ENOMEM, "out of memory buffering a stream message");
	return 0;
}

/* {"error": {...}} or {"error": "..."}, unknown siblings allowed, but no
 * "result" beside it (that is a message). */
static bool
is_error(const json_t *o)
{
	const json_t *e;

	if (!json_is_object(o) || json_object_get(o, "result") != NULL)
		return false;
	e = json_object_get(o, "error");
	return json_is_object(e) || json_is_string(e);
}

static int
remote_error(struct stream *p, json_t *o)
{
	const json_t *e = json_object_get(o, "error");
	json_t *details = json_object_get(json_is_object(e) ? e : o, "details");

	errmap_from_json(o, 0, &p->status);
	p->has_status = true;
	if (details != NULL)
		p->details = json_incref(details);
	if (p->status.code >= 0)
		return fail(p, -EREMOTEIO, "the server ended the stream with %s (%d): %s",
		            errmap_grpc_name(p->status.code), p->status.code, p->status.message);
	return fail(p, -EREMOTEIO, "the server ended the stream with an error: %s",
	            p->status.message);
}

/* Strings shorter than this are left to jansson. */
#define BIG_MIN 16384

/* Stands in for the big string; NUL-led, so no text a person wrote. */
static const char placeholder[] = "\"\\u0000scriptum:big\"";
static const char placeholder_value[] = "\0scriptum:big";

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* plain_ascii() 32 bytes at a time: as signed bytes, those outside
 * 0x20..0x7f are exactly those below 0x20. */
__attribute__((target("avx2"))) static bool
plain_ascii_avx2(const char *s, size_t n, size_t *done)
{
	const __m256i limit = _mm256_set1_epi8(0x20);
	__m256i bad = _mm256_setzero_si256();
	size_t i = 0;

	for (; n - i >= 32; i += 32) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));

		bad = _mm256_or_si256(bad, _mm256_cmpgt_epi8(limit, v));
		if ((i & 4095) == 0 && !_mm256_testz_si256(bad, bad))
			return false;
	}
	*done = i;
	return _mm256_testz_si256(bad, bad);
}
#endif

/* Whether n bytes are all 0x20..0x7f: valid in a JSON string as they are. */
static bool
plain_ascii(const char *s, size_t n)
{
	const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
	uint64_t bad = 0, w;
	size_t i = 0;

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
	if (__builtin_cpu_supports("avx2") && !plain_ascii_avx2(s, n, &i))
		return false;
#endif
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		/* A high bit, or a byte below 0x20 (exact for words without high bits). */
		bad |= (w | ((w - ones * 0x20) & ~w)) & highs;
		if ((i & 4095) == 0 && bad != 0)
			return false;
	}
	for (; i < n; i++)
		bad |= (unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x80;
	return bad == 0;
}

struct ph_find {
	json_t *parent;
	void *iter;   /* when parent is an object */
	size_t index; /* when it is an array */
	int count;
};

static bool
is_placeholder(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) == sizeof(placeholder_value) - 1 &&
	       memcmp(json_string_value(v), placeholder_value, sizeof(placeholder_value) - 1) == 0;
}

static void
ph_walk(json_t *node, struct ph_find *f)
{
	if (json_is_object(node)) {
		for (void *it = json_object_iter(node); it != NULL;
		     it = json_object_iter_next(node, it)) {
			json_t *v = json_object_iter_value(it);

			if (is_placeholder(v)) {
				f->parent = node;
				f->iter = it;
				f->count++;
			} else {
				ph_walk(v, f);
			}
		}
	} else if (json_is_array(node)) {
		for (size_t i = 0; i < json_array_size(node); i++) {
			json_t *v = json_array_get(node, i);

			if (is_placeholder(v)) {
				f->parent = node;
				f->iter = NULL;
				f->index = i;
				f->count++;
			} else {
				ph_walk(v, f);
			}
		}
	}
}

/*
 * The message with its big string (quote at off, len bytes of text) parsed
 * apart; NULL when that does not work out (the caller then parses it all).
 */
static json_t *
parse_split(const char *s, size_t n, size_t off, size_t len, size_t budget)
{
	size_t tail = n - off - len - 2, small = off + sizeof(placeholder) - 1 + tail;
	char stackbuf[4096], *b = small <= sizeof(stackbuf) ? stackbuf : malloc(small);
	struct ph_find f = {0};
	json_t *root, *v;
	int rc;

	if (b == NULL)
		return NULL;
	memcpy(b, s, off);
	memcpy(b + off, placeholder, sizeof(placeholder) - 1);
	memcpy(b + off + sizeof(placeholder) - 1, s + off + len + 2, tail);
	rc = jsonload(b, small, JSON_ALLOW_NUL, budget, &root, NULL);
	if (b != stackbuf)
		free(b);
	if (rc != 0)
		return NULL;
	ph_walk(root, &f);
	/* Not a value (a key), or a hostile look-alike: let jansson do it all. */
	if (f.count != 1 || (v = json_stringn_nocheck(s + off + 1, len)) == NULL) {
		json_decref(root);
		return NULL;
	}
	if (f.iter != NULL)
		json_object_iter_set_new(f.parent, f.iter, v);
	else
		json_array_set_new(f.parent, f.index, v);
	return root;
}

/* One complete message of n bytes: parse, unwrap, deliver. */
static int
deliver(struct stream *p, const char *s, size_t n)
{
	json_error_t jerr;
	json_t *root = NULL, *msg;
	size_t budget = JSONLOAD_BUDGET(p->max_msg);
	int rc;

	if (n > p->max_msg)
		return fail(p, -EMSGSIZE, "a stream message is larger than the %zu-byte limit",
		            p->max_msg);
	if (p->big_len >= BIG_MIN && plain_ascii(s + p->big_off + 1, p->big_len))
		root = parse_split(s, n, p->big_off, p->big_len, budget);
	if (root == NULL && (rc = jsonload(s, n, JSON_ALLOW_NUL, budget, &root, &jerr)) != 0) {
		if (rc == -EMSGSIZE)
			return fail(p, rc,
			            "stream message %zu is too large to parse (%zu bytes of JSON, "
			            "limit %zu bytes in memory)",
			            p->count + 1, n, budget);
		if (rc == -ENOMEM)
			return fail(p, rc, "out of memory");
		return fail(p, -EPROTO, "stream message %zu is not valid JSON: %s (at byte %d)",
		            p->count + 1, jerr.text, jerr.position);
	}
	msg = root;
	/* the wrapper may have unknown siblings ({"result": {...}, "seq": 3}) */
	if (json_is_object(json_object_get(root, "result")))
		msg = json_object_get(root, "result");
	if (p->ev_error || is_error(root))
		rc = remote_error(p, root);
	else if (msg != root && is_error(msg))
		rc = remote_error(p, msg);
	else {
		p->count++;
		rc = p->fn(msg, p->arg);
		if (rc != 0)
			fail(p, rc, "stream message %zu was refused: %s", p->count, strerror(-rc));
	}
	json_decref(root);
	return rc;
}

/* A byte between messages that is not '{'. */
static int
between(struct stream *p, unsigned char c, size_t at)
{
	char b[8];

	if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
		return 0;
	if (p->framing == STREAM_FRAMING_ARRAY) {
		if (p->arr == ARR_OPEN && c == '[') {
			p->arr = ARR_FIRST;
			return 0;
		}
		if ((p->arr == ARR_FIRST || p->arr == ARR_AFTER) && c == ']') {
			p->arr = ARR_DONE;
			return 0;
		}
		if (p->arr == ARR_AFTER && c == ',') {
			p->arr = ARR_NEXT;
			return 0;
		}
		if (p->arr == ARR_DONE)
			return fail(p, -EPROTO,
			            "unexpected %s after the stream's closing ']' (byte %zu)",
			            show(c, b), at);
	}
	return fail(p, -EPROTO, "unexpected %s between stream messages (byte %zu)", show(c, b), at);
}

/*
 * Scans n bytes that continue the object stream (base = their position in
 * the body), delivering each object they complete.
 */
static int
scan(struct stream *p, const char *s, size_t n, size_t base)
{
	size_t i = 0, start = 0;
	size_t q = 0; /* the next '"' at or after i, or n; valid when qok && q >= i */
	bool qok = false;
	int rc;

	while (i < n) {
		if (p->depth == 0) {
			unsigned char c = (unsigned char)s[i];

			if (c == '{' && (p->framing != STREAM_FRAMING_ARRAY ||
			                 p->arr == ARR_FIRST || p->arr == ARR_NEXT)) {
				p->arr = ARR_AFTER;
				p->depth = 1;
				p->big_len = 0;
				start = i++;
			} else if ((rc = between(p, c, base + i)) != 0) {
				return rc;
			} else {
				i++;
			}
			continue;
		}
		if (p->in_str) {
			const char *bs;

			if (p->esc) {
				p->esc = false;
				i++;
				continue;
			}
			/* Strings are most of the bytes (base64 data): skip them with memchr. */
			if (!qok || q < i) {
				const char *qp = memchr(s + i, '"', n - i);
				q = qp != NULL ? (size_t)(qp - s) : n;
				qok = true;
			}
			if ((bs = memchr(s + i, '\\', q - i)) != NULL) {
				i = (size_t)(bs - s) + 1;
				p->esc = true;
				p->str_bs = true;
			} else if (q < n) {
				size_t slen = p->msg.len + q - start - p->str_off - 1;

				if (!p->str_bs && slen > p->big_len) {
					p->big_off = p->str_off;
					p->big_len = slen;
				}
				i = q + 1;
				p->in_str = false;
			} else {
				i = n;
			}
			continue;
		}
		for (; i < n; i++) {
			char c = s[i];

			if (c == '"') {
				p->in_str = true;
				p->str_off = p->msg.len + i - start;
				p->str_bs = false;
				i++;
				break;
			}
			if (c == '{' || c == '[') {
				p->depth++;
			} else if ((c == '}' || c == ']') && --p->depth == 0) {
				i++;
				if (p->msg.len == 0) {
					rc = deliver(p, s + start, i - start);
				} else if ((rc = buf_append(p, s + start, i - start)) == 0) {
					rc = deliver(p, p->msg.buf, p->msg.len);
					dynbuf_reset(&p->msg);
				}
				if (rc != 0)
					return rc;
				break;
			}
		}
	}
	if (p->depth > 0)
		return buf_append(p, s + start, n - start);
	return 0;
}

/* The end of the line of an SSE field. */
static int
sse_line_end(struct stream *p)
{
	int rc = 0;

	if (p->sse == SSE_FIELD || p->sse == SSE_SPACE || p->sse == SSE_VALUE) {
		if (p->field == FIELD_DATA)
			rc = scan(p, "\n", 1, p->fed); /* data lines join with '\n' */
		else if (p->field == FIELD_EVENT)
			p->ev_error = p->elen == 5 && memcmp(p->event, "error", 5) == 0;
	}
	p->sse = SSE_LINE_START;
	return rc;
}

/* A blank line: the event is over, and so must be its data. */
static int
sse_event_end(struct stream *p, size_t at)
{
	p->ev_error = false;
	if (p->depth > 0)
		return fail(p, -EPROTO, "a server-sent event ended inside a message (byte %zu)",
		            at);
	return 0;
}

/* The first '\r' or '\n' in s[i..n), or n. */
static size_t
find_eol(const char *s, size_t i, size_t n)
{
	const char *lf = memchr(s + i, '\n', n - i);
	size_t e = lf != NULL ? (size_t)(lf - s) : n;
	const char *cr = memchr(s + i, '\r', e - i);

	return cr != NULL ? (size_t)(cr - s) : e;
}

static int
sse_feed(struct stream *p, const char *s, size_t n, size_t base)
{
	size_t i = 0, e;
	int rc = 0;

	while (i < n && rc == 0) {
		char c = s[i];

		if (p->cr) {
			p->cr = false;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\r' || c == '\n') {
			if (p->sse == SSE_LINE_START)
				rc = sse_event_end(p, base + i);
			else
				rc = sse_line_end(p);
			p->cr = c == '\r';
			i++;
			continue;
		}
		switch (p->sse) {
		case SSE_LINE_START:
			if (c == ':') {
				p->sse = SSE_SKIP;
				i++;
			} else {
				p->sse = SSE_FIELD;
				p->field = FIELD_OTHER;
				p->flen = 0;
			}
			break;
		case SSE_FIELD:
			if (c == ':') {
				p->sse = SSE_SPACE;
				i++;
				break;
			}
			if (p->flen < sizeof(p->name))
				p->name[p->flen] = c;
			p->flen++;
			i++;
			if (p->flen == 4 && memcmp(p->name, "data", 4) == 0)
				p->field = FIELD_DATA;
			else if (p->flen == 5 && memcmp(p->name, "event", 5) == 0)
				p->field = FIELD_EVENT;
			else
				p->field = FIELD_OTHER;
			if (p->field == FIELD_EVENT)
				p->elen = 0;
			break;
		case SSE_SPACE:
			if (c == ' ')
				i++;
			p->sse = SSE_VALUE;
			break;
		case SSE_VALUE:
			e = find_eol(s, i, n);
			if (p->field == FIELD_DATA) {
				rc = scan(p, s + i, e - i, base + i);
			} else if (p->field == FIELD_EVENT) {
				for (size_t k = i; k < e; k++, p->elen++)
					if (p->elen < sizeof(p->event))
						p->event[p->elen] = s[k];
			}
			i = e;
			break;
		case SSE_SKIP:
			i = find_eol(s, i, n);
			break;
		}
	}
	return rc;
}

int
stream_feed(struct stream *p, const void *buf, size_t len)
{
	const char *s = buf;
	size_t i = 0;
	int rc;

	if (p->failed != 0)
		return p->failed;
	if (p->framing == STREAM_FRAMING_UNKNOWN) {
		char b[8];

		while (i < len && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
			i++;
		if (i == len) {
			p->fed += len;
			return 0;
		}
		switch (s[i]) {
		case '[':
			p->framing = STREAM_FRAMING_ARRAY;
			p->arr = ARR_OPEN;
			break;
		case '{':
			p->framing = STREAM_FRAMING_NDJSON;
			break;
		case 'd': /* data: */
		case 'e': /* event: */
		case 'i': /* id: */
		case 'r': /* retry: */
		case ':': /* a comment */
			p->framing = STREAM_FRAMING_SSE;
			p->sse = SSE_LINE_START;
			break;
		default:
			return fail(p, -EPROTO, "unrecognised stream framing: it starts with %s",
			            show((unsigned char)s[i], b));
		}
	}
	if (p->framing == STREAM_FRAMING_SSE)
		rc = sse_feed(p, s + i, len - i, p->fed + i);
	else
		rc = scan(p, s + i, len - i, p->fed + i);
	p->fed += len;
	return rc;
}

int
stream_finish(struct stream *p)
{
	if (p->failed != 0)
		return p->failed;
	if (p->framing == STREAM_FRAMING_SSE) {
		int rc = sse_line_end(p);

		if (rc != 0)
			return rc;
	}
	if (p->depth > 0)
		return fail(p, -EPROTO, "the stream ended inside a message (%zu bytes of it read)",
		            p->msg.len);
	if (p->framing == STREAM_FRAMING_ARRAY && p->arr != ARR_DONE)
		return fail(p, -EPROTO, "the stream ended before the closing ']' of its array");
	return 0;
}
