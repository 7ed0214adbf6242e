/*
 * API errors mapped to errno and CLI exit status (doc/WIRE.md, Errors;
 * doc/SEMANTICS.md, Errors; scriptum(1), EXIT STATUS), and error bodies of
 * every shape a gateway or a proxy sends reduced to a code and one
 * printable line.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errmap.h"
#include "utf8.h"

/* How much of a non-JSON body becomes the message: enough to recognise it. */
#define EXCERPT_MAX 200
/* How far into an HTML page to look for text. */
#define HTML_SCAN_MAX 65536

struct code_map {
	const char *name; /* canonical name */
	int err;
	int exit_code;
	bool retryable;
};

/*
 * By gRPC code. The exit statuses are the dodil CLI's (2..10); for the codes
 * it does not list:
 *   FAILED_PRECONDITION, OUT_OF_RANGE -> 2: the request is wrong for the
 *     thread's current state or range; retrying as-is will not help.
 *   UNIMPLEMENTED, UNKNOWN, DATA_LOSS -> 10: nothing the user can fix.
 *   ABORTED -> EAGAIN, 9: a conflict the caller may retry later, like
 *     UNAVAILABLE, but not resent automatically (only 429/502/503 and
 *     RESOURCE_EXHAUSTED/UNAVAILABLE are: doc/SEMANTICS.md, Errors).
 *   CANCELLED -> EINTR, 1: the generic failure status.
 */
static const struct code_map codes[] = {
    [ERRMAP_OK] = {"OK", EIO, EXIT_INTERNAL, false},
    [ERRMAP_CANCELLED] = {"CANCELLED", EINTR, EXIT_THREAD_FAILED, false},
    [ERRMAP_UNKNOWN] = {"UNKNOWN", EIO, EXIT_INTERNAL, false},
    [ERRMAP_INVALID_ARGUMENT] = {"INVALID_ARGUMENT", EINVAL, EXIT_INVALID, false},
    [ERRMAP_DEADLINE_EXCEEDED] = {"DEADLINE_EXCEEDED", ETIMEDOUT, EXIT_DEADLINE, false},
    [ERRMAP_NOT_FOUND] = {"NOT_FOUND", ENOENT, EXIT_NOT_FOUND, false},
    [ERRMAP_ALREADY_EXISTS] = {"ALREADY_EXISTS", EEXIST, EXIT_EXISTS, false},
    [ERRMAP_PERMISSION_DENIED] = {"PERMISSION_DENIED", EACCES, EXIT_DENIED, false},
    [ERRMAP_RESOURCE_EXHAUSTED] = {"RESOURCE_EXHAUSTED", EAGAIN, EXIT_EXHAUSTED, true},
    [ERRMAP_FAILED_PRECONDITION] = {"FAILED_PRECONDITION", EBUSY, EXIT_INVALID, false},
    [ERRMAP_ABORTED] = {"ABORTED", EAGAIN, EXIT_UNAVAILABLE, false},
    [ERRMAP_OUT_OF_RANGE] = {"OUT_OF_RANGE", EINVAL, EXIT_INVALID, false},
    [ERRMAP_UNIMPLEMENTED] = {"UNIMPLEMENTED", EOPNOTSUPP, EXIT_INTERNAL, false},
    [ERRMAP_INTERNAL] = {"INTERNAL", EIO, EXIT_INTERNAL, false},
    [ERRMAP_UNAVAILABLE] = {"UNAVAILABLE", EAGAIN, EXIT_UNAVAILABLE, true},
    [ERRMAP_DATA_LOSS] = {"DATA_LOSS", EIO, EXIT_INTERNAL, false},
    [ERRMAP_UNAUTHENTICATED] = {"UNAUTHENTICATED", EACCES, EXIT_UNAUTHENTICATED, false},
};

#define NCODES ((int)(sizeof(codes) / sizeof(codes[0])))

struct status_map {
	int status;
	const char *reason;
	int err;
	int exit_code;
	bool retryable;
};

/* By HTTP status, when the body carries no gRPC code (a proxy's answer). */
static const struct status_map statuses[] = {
    {400, "Bad Request", EINVAL, EXIT_INVALID, false},
    {401, "Unauthorized", EACCES, EXIT_UNAUTHENTICATED, false},
    {403, "Forbidden", EACCES, EXIT_DENIED, false},
    {404, "Not Found", ENOENT, EXIT_NOT_FOUND, false},
    {405, "Method Not Allowed", EOPNOTSUPP, EXIT_INTERNAL, false},
    {408, "Request Timeout", ETIMEDOUT, EXIT_DEADLINE, false},
    {409, "Conflict", EEXIST, EXIT_EXISTS, false},
    {412, "Precondition Failed", EBUSY, EXIT_INVALID,
     false}, /* grpc-gateway v1's FAILED_PRECONDITION */
    {413, "Payload Too Large", EFBIG, EXIT_INVALID, false},
    {429, "Too Many Requests", EAGAIN, EXIT_EXHAUSTED, true},
    {499, "Client Closed Request", EINTR, EXIT_THREAD_FAILED, false},
    {500, "Internal Server Error", EIO, EXIT_INTERNAL, false},
    {501, "Not Implemented", EOPNOTSUPP, EXIT_INTERNAL, false},
    {502, "Bad Gateway", EAGAIN, EXIT_UNAVAILABLE, true},
    {503, "Service Unavailable", EAGAIN, EXIT_UNAVAILABLE, true},
    {504, "Gateway Timeout", ETIMEDOUT, EXIT_DEADLINE, false},
};

static const struct status_map *
status_find(int status)
{
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].status == status)
			return &statuses[i];
	return NULL;
}

struct errmap
errmap_map(int http_status, int grpc_code)
{
	struct errmap m;
	const struct status_map *s = status_find(http_status);

	/* 413 comes from a proxy and says more than any code could. */
	if (grpc_code > 0 && grpc_code < NCODES && http_status != 413) {
		m.err = codes[grpc_code].err;
		m.exit_code = codes[grpc_code].exit_code;
		m.retryable = codes[grpc_code].retryable;
	} else if (s != NULL) {
		m.err = s->err;
		m.exit_code = s->exit_code;
		m.retryable = s->retryable;
	} else if (http_status >= 400 && http_status < 500) {
		m.err = EINVAL;
		m.exit_code = EXIT_INVALID;
		m.retryable = false;
	} else {
		/* Other 5xx, or an error with neither status nor code. */
		m.err = EIO;
		m.exit_code = EXIT_INTERNAL;
		m.retryable = false;
	}
	return m;
}

bool
errmap_retryable(int http_status, int grpc_code)
{
	return errmap_map(http_status, grpc_code).retryable;
}

const char *
errmap_grpc_name(int code)
{
	if (code < 0 || code >= NCODES)
		return "UNKNOWN_CODE";
	return codes[code].name;
}

/* Lowercase, without '_', '-' and spaces: "NOT_FOUND" and "NotFound" agree. */
static void
name_fold(const char *s, char *out, size_t outsz)
{
	size_t n = 0;

	for (; *s != '\0' && n + 1 < outsz; s++) {
		if (*s == '_' || *s == '-' || *s == ' ')
			continue;
		out[n++] = (char)tolower((unsigned char)*s);
	}
	out[n] = '\0';
}

int
errmap_grpc_code(const char *name)
{
	char want[32], have[32];

	if (name == NULL || *name == '\0')
		return -1;
	if (isdigit((unsigned char)name[0])) {
		char *end;
		long v = strtol(name, &end, 10);

		return *end == '\0' && v < NCODES ? (int)v : -1;
	}
	if (strlen(name) >= sizeof(want))
		return -1;
	name_fold(name, want, sizeof(want));
	if (strcmp(want, "canceled") == 0)
		return ERRMAP_CANCELLED;
	for (int i = 0; i < NCODES; i++) {
		name_fold(codes[i].name, have, sizeof(have));
		if (strcmp(want, have) == 0)
			return i;
	}
	return -1;
}

/*
 * A bounded output line. Whitespace and control characters collapse to one
 * space, bytes that are not valid UTF-8 (and C1 controls, which terminals
 * obey) become '?', and what does not fit is cut at a character with "...".
 */
struct line {
	char *buf;
	size_t cap; /* bytes usable for text, "..." and NUL excluded */
	size_t len;
	bool space; /* a space is owed before the next character */
	bool full;
};

static void
line_init(struct line *l, char *buf, size_t bufsz, size_t limit)
{
	l->buf = buf;
	l->cap = (limit < bufsz ? limit : bufsz) - 4;
	l->len = 0;
	l->space = false;
	l->full = false;
	buf[0] = '\0';
}

static void
line_put(struct line *l, const char *s, size_t n)
{
	size_t need = n + (l->space ? 1 : 0);

	if (l->full)
		return;
	if (l->len + need > l->cap) {
		l->full = true;
		memcpy(l->buf + l->len, "...", 4);
		l->len += 3;
		return;
	}
	if (l->space)
		l->buf[l->len++] = ' ';
	l->space = false;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

/* Length of the valid, printable UTF-8 sequence at s (n bytes left), or 0:
 * a valid character that is not a C1 control (U+0080..U+009F). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len = utf8_seq(s, n);

	if (len < 2 || (s[0] == 0xc2 && s[1] < 0xa0))
		return 0;
	return len;
}

static void
line_text(struct line *l, const char *text, size_t n)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;

	while (i < n && !l->full) {
		size_t u;

		if (s[i] <= 0x20 || s[i] == 0x7f) {
			if (l->len > 0)
				l->space = true;
			i++;
		} else if (s[i] < 0x80) {
			line_put(l, (const char *)s + i, 1);
			i++;
		} else if ((u = utf8_len(s + i, n - i)) > 0) {
			line_put(l, (const char *)s + i, u);
			i += u;
		} else {
			line_put(l, "?", 1);
			i++;
		}
	}
}

static const char *
memcasestr(const char *hay, size_t n, const char *needle)
{
	size_t m = strlen(needle);

	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp(hay + i, needle, m) == 0)
			return hay + i;
	return NULL;
}

/* A proxy's page: its <title> if it has one, else its text without tags. */
static void
line_excerpt(struct line *l, const char *body, size_t len)
{
	size_t i = 0;

	while (i < len && isspace((unsigned char)body[i]))
		i++;
	if (i == len || body[i] != '<') {
		line_text(l, body + i, len - i);
		return;
	}
	if (len > HTML_SCAN_MAX)
		len = HTML_SCAN_MAX;
	const char *t = memcasestr(body, len, "<title");
	if (t != NULL) {
		const char *gt = memchr(t, '>', (size_t)(body + len - t));
		if (gt != NULL) {
			const char *end = memcasestr(gt, (size_t)(body + len - gt), "</title");
			size_t tl = (size_t)((end != NULL ? end : body + len) - gt - 1);

			line_text(l, gt + 1, tl);
			if (l->len > 0)
				return;
		}
	}
	bool tag = false;
	size_t run = i;
	for (; i < len && !l->full; i++) {
		if (!tag && body[i] == '<') {
			line_text(l, body + run, i - run);
			l->space = l->len > 0;
			tag = true;
		} else if (tag && body[i] == '>') {
			tag = false;
			run = i + 1;
		}
	}
	if (!tag)
		line_text(l, body + run, i - run);
}

/* The message when the body said nothing usable. */
static void
fallback_message(struct errmap_status *out)
{
	const struct status_map *s = status_find(out->http_status);

	if (out->code > 0 && out->code < NCODES)
		snprintf(out->message, sizeof(out->message), "%s", codes[out->code].name);
	else if (s != NULL)
		snprintf(out->message, sizeof(out->message), "%s", s->reason);
	else if (out->http_status != 0)
		snprintf(out->message, sizeof(out->message), "HTTP %d", out->http_status);
	else
		snprintf(out->message, sizeof(out->message), "unknown error");
}

/* A gRPC code given as an integer or a name; -1 otherwise. */
static int
code_value(const json_t *v)
{
	if (json_is_integer(v)) {
		json_int_t c = json_integer_value(v);
		return c >= 0 && c < NCODES ? (int)c : -1;
	}
	if (json_is_string(v))
		return errmap_grpc_code(json_string_value(v));
	return -1;
}

static void
set_message(struct errmap_status *out, const char *s, size_t n)
{
	struct line l;

	line_init(&l, out->message, sizeof(out->message), sizeof(out->message));
	line_text(&l, s, n);
}

void
errmap_from_json(const json_t *body, int http_status, struct errmap_status *out)
{
	const json_t *e = body, *wrap, *v;

	out->http_status = http_status;
	out->code = -1;
	out->message[0] = '\0';
	if (json_is_string(body)) {
		set_message(out, json_string_value(body), json_string_length(body));
		goto done;
	}
	if (!json_is_object(body))
		goto done;

	wrap = json_object_get(body, "error");
	if (json_is_object(wrap))
		e = wrap;

	/* grpc_code (v1) beats code, which beats Google's status name. */
	out->code = code_value(json_object_get(e, "grpc_code"));
	v = json_object_get(e, "code");
	if (out->code < 0)
		out->code = code_value(v);
	if (out->code < 0)
		out->code = code_value(json_object_get(e, "status"));
	if (out->code < 0 && e != body)
		out->code = code_value(json_object_get(body, "code"));

	if (out->http_status == 0) {
		const json_t *h = json_object_get(e, "http_code");
		if (json_is_integer(h))
			out->http_status = (int)json_integer_value(h);
		else if (json_is_integer(v) && json_integer_value(v) >= 100 &&
		         json_integer_value(v) < 600)
			out->http_status = (int)json_integer_value(v);
	}

	if (json_is_string(v = json_object_get(e, "message")) ||
	    json_is_string(v = json_object_get(body, "message")) || json_is_string(v = wrap)) {
		set_message(out, json_string_value(v), json_string_length(v));
	} else if (out->code < 0) {
		/* Some other object: show it rather than nothing. */
		char *dump = json_dumps(body, JSON_COMPACT);
		if (dump != NULL && strcmp(dump, "{}") != 0) {
			struct line l;
			line_init(&l, out->message, sizeof(out->message), EXCERPT_MAX);
			line_text(&l, dump, strlen(dump));
		}
		free(dump);
	}
done:
	if (out->message[0] == '\0')
		fallback_message(out);
}

void
errmap_parse_body(const void *body, size_t len, int http_status, struct errmap_status *out)
{
	json_t *root = NULL;

	if (len > 0)
		root = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (json_is_object(root) || json_is_string(root)) {
		errmap_from_json(root, http_status, out);
		json_decref(root);
		return;
	}
	json_decref(root);

	struct line l;
	out->http_status = http_status;
	out->code = -1;
	line_init(&l, out->message, sizeof(out->message), EXCERPT_MAX);
	if (len > 0)
		line_excerpt(&l, body, len);
	if (out->message[0] == '\0')
		fallback_message(out);
}

int
errmap_exit_code(int err)
{
	switch (err) {
	case EINTR:
		return EXIT_THREAD_FAILED;
	case EINVAL:
	case ENAMETOOLONG: /* an argument too long to send */
		return EXIT_INVALID;
	case EACCES:
		return EXIT_UNAUTHENTICATED;
	case ENOENT:
		return EXIT_NOT_FOUND;
	case EEXIST:
		return EXIT_EXISTS;
	case EAGAIN:
		return EXIT_EXHAUSTED;
	case ETIMEDOUT:
		return EXIT_DEADLINE;
	case EIO:
	case EPIPE:
		return EXIT_UNAVAILABLE;
	default:
		return EXIT_INTERNAL;
	}
}
