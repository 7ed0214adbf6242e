/*
 * The emulator's HTTP side (libmicrohttpd, a thread per connection): routing
 * of /v1/scriptum/... and /_emulator/..., auth, fault injection, the request
 * log, and the four streams, framed for the --wire mode.
 *
 * A stream is produced message by message into a pending buffer that the
 * content callback drains; the callback may block (a watch waiting for its
 * next event), which the thread-per-connection model allows. While it waits
 * it polls the socket, so a client that hangs up frees its thread.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "faults.h"
#include "gen.h"
#include "store.h"
#include "wire.h"
#include "xalloc.h"

#define BODY_CAP      (80u << 20) /* request bodies: inputs up to 64 MiB, escaped */
#define BLOCK_SIZE    (256u << 10)
#define CHUNK_DEFAULT (2u << 20)
#define CHUNK_MIN     (64u << 10)
#define CHUNK_MAX     (16u << 20)
#define LOG_CAP       4096
#define WATCH_WAIT_MS 250

struct req {
	char *body;
	size_t len, cap;
	int too_large;
	int status;
	const char *call;
	char method[8];
	char path[256];
	char org_id[128];
	char org_name[128];
};

struct log_entry {
	const char *call;
	char method[8];
	char path[256];
	int status;
	char org_id[128];
	char org_name[128];
};

static struct {
	struct MHD_Daemon *mhd;
	char *token;
	pthread_mutex_t lock; /* token and the request log */
	struct log_entry *log;
	size_t log_n; /* entries ever logged */
	json_t *by_call;
	char *cert, *key; /* PEM, kept while the daemon runs */
} sv = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- small helpers ---- */

static int64_t
clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s into a new string; '+' is a space when plus is set.
 * Returns NULL for a malformed escape or an encoded NUL. */
static char *
pct_decode(const char *s, size_t n, int plus)
{
	char *out = xmalloc(n + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0 ||
			    (s[i + 1] == '0' && s[i + 2] == '0')) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else if (plus && s[i] == '+') {
			*o++ = ' ';
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

/* A query parameter by either of its names, decoded; NULL when absent.
 * Sets *bad for a malformed value. The caller frees the result. */
static char *
query_arg(struct MHD_Connection *c, const char *camel, const char *snake, int *bad)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, camel);
	char *d;

	if (v == NULL && snake != NULL)
		v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, snake);
	if (v == NULL)
		return NULL;
	d = pct_decode(v, strlen(v), 1);
	if (d == NULL)
		*bad = 1;
	return d;
}

static int
parse_bool(const char *s)
{
	return s != NULL && (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0);
}

static size_t
keep_url(void *cls, struct MHD_Connection *c, char *url)
{
	/* paths and query values are decoded per segment, here, not by MHD */
	(void)cls;
	(void)c;
	return strlen(url);
}

/* ---- unary responses ---- */

static enum MHD_Result
send_body(struct MHD_Connection *c, struct req *r, int status, const char *type, char *body,
          size_t len, int retry_after)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;
	char ra[16];

	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%d", retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	r->status = status;
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Sends body (taking it) with a status. */
static enum MHD_Result
send_json(struct MHD_Connection *c, struct req *r, int status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	size_t len = strlen(text);

	json_decref(body);
	text = xrealloc(text, len + 2);
	text[len++] = '\n';
	return send_body(c, r, status, "application/json", text, len, 0);
}

static enum MHD_Result
send_error(struct MHD_Connection *c, struct req *r, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return send_json(c, r, wire_http_status(code), wire_error(code, msg));
}

static int
grpc_code_for(int status)
{
	switch (status) {
	case 400:
		return 3;
	case 401:
		return 16;
	case 403:
		return 7;
	case 404:
		return 5;
	case 409:
		return 6;
	case 429:
		return 8;
	case 501:
		return 12;
	case 502:
	case 503:
		return 14;
	case 504:
		return 4;
	default:
		return 13;
	}
}

static enum MHD_Result
send_fault(struct MHD_Connection *c, struct req *r, const struct faults *f)
{
	char *text;

	if (f->error_text) {
		/* what a proxy in front of the gateway answers */
		if (asprintf(&text,
		             "<html><body><h1>%d</h1>upstream error (injected)</body></html>\n",
		             f->error_status) < 0)
			abort();
		return send_body(c, r, f->error_status, "text/html", text, strlen(text),
		                 f->retry_after);
	}
	text = wire_dump(wire_error(grpc_code_for(f->error_status), "injected fault"));
	return send_body(c, r, f->error_status, "application/json", text, strlen(text),
	                 f->retry_after);
}

/* ---- streams ---- */

enum stream_kind { STREAM_RESULT, STREAM_STEPS, STREAM_WATCH, STREAM_RAW };

struct stream {
	enum stream_kind kind;
	struct faults f;
	struct MHD_Connection *conn;
	char *buf;
	size_t len, pos, cap;
	uint64_t sent;
	int nmsg;
	enum wire_framing framing;
	struct wire_req wr; /* the spelling state of the request, continued */
	int idle;           /* watch waits in a row with no event */
	int ended;
	int stalled;
	int errored;
	size_t max_chunk;
	/* result and raw */
	struct emu_payload *payload;
	json_t *meta;
	uint64_t off;
	int chunk_index;
	int started;
	/* steps */
	struct step_stream *steps;
	size_t step;
	int part; /* 0 meta, 1 input, 2 output */
	/* watch */
	struct emu_watch *watch;
	unsigned char *raw; /* scratch for one chunk */
};

static void
sb_reserve(struct stream *s, size_t more)
{
	if (s->len + more <= s->cap)
		return;
	while (s->len + more > s->cap)
		s->cap = s->cap ? s->cap * 2 : 65536;
	s->buf = xrealloc(s->buf, s->cap);
}

static void
sb_put(struct stream *s, const char *p, size_t n)
{
	sb_reserve(s, n);
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void
sb_puts(struct stream *s, const char *p)
{
	sb_put(s, p, strlen(p));
}

static int
wraps_result(const struct stream *s)
{
	return s->framing == FRAME_NDJSON_RESULT || s->framing == FRAME_SSE;
}

static void
frame_begin(struct stream *s)
{
	switch (s->framing) {
	case FRAME_ARRAY:
		sb_puts(s, s->nmsg == 0 ? "[" : ",\n");
		break;
	case FRAME_SSE:
		sb_puts(s, "data: ");
		break;
	default:
		break;
	}
	s->nmsg++;
}

static void
frame_end(struct stream *s)
{
	switch (s->framing) {
	case FRAME_ARRAY:
		break;
	case FRAME_SSE:
		sb_puts(s, "\n\n");
		break;
	default:
		sb_puts(s, "\n");
	}
}

static void
frame_close(struct stream *s)
{
	if (s->framing == FRAME_ARRAY)
		sb_puts(s, s->nmsg == 0 ? "[]\n" : "]\n");
	s->ended = 1;
}

/* Appends a message (taking it), spelled and framed. */
static void
put_message(struct stream *s, json_t *msg)
{
	char *text = wire_dump(wire_stream_item(msg, wraps_result(s)));

	frame_begin(s);
	sb_puts(s, text);
	frame_end(s);
	free(text);
}

/* An error line is never wrapped nor spelled: it must read as an error. */
static void
put_error(struct stream *s, int code, const char *message)
{
	char *text = wire_dump(json_pack("{s:o}", "error", wire_error(code, message)));

	frame_begin(s);
	sb_puts(s, text);
	frame_end(s);
	free(text);
	frame_close(s);
}

/* Where a chunk's base64 goes in its spelled message: the message is spelled
 * whole, small, and the data is written in place of this string. */
#define DATA_MARK "@@scriptum-emulator-chunk-data@@"

/* Appends {"<kind>": {<fields>, "chunkIndex", "data", "isFinal"}} for the
 * next chunk of p at *off (taking fields); returns whether it was the final
 * one. */
static int
put_chunk(struct stream *s, const char *kind, json_t *fields, const struct emu_payload *p,
          uint64_t *off, int *index)
{
	uint64_t size = emu_payload_size(p);
	size_t n = size - *off > s->max_chunk ? s->max_chunk : (size_t)(size - *off);
	int final = *off + n == size;
	char *text, *mark;

	wire_set_int(fields, "chunkIndex", *index);
	if (n > 0)
		json_object_set_new(fields, "data", json_string(DATA_MARK));
	else
		wire_set_str(fields, "data", "");
	wire_set_bool(fields, "isFinal", final);
	text = wire_dump(wire_stream_item(json_pack("{s:o}", kind, fields), wraps_result(s)));
	mark = n > 0 ? strstr(text, "\"" DATA_MARK "\"") : NULL;
	frame_begin(s);
	if (mark != NULL) {
		sb_put(s, text, (size_t)(mark - text) + 1);
		emu_payload_read(p, *off, (char *)s->raw, n);
		sb_reserve(s, gen_b64_len(n));
		s->len += gen_b64_encode(s->raw, n, s->buf + s->len);
		sb_puts(s, mark + 1 + strlen(DATA_MARK));
	} else {
		sb_puts(s, text);
	}
	frame_end(s);
	free(text);
	*off += n;
	(*index)++;
	return final;
}

/* Is the client gone? */
static int
client_gone(struct stream *s)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct pollfd pfd;

	if (ci == NULL)
		return 0;
	pfd.fd = ci->connect_fd;
	pfd.events = POLLRDHUP;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

static void
produce_result(struct stream *s)
{
	if (!s->started) {
		s->started = 1;
		put_message(s, json_pack("{s:O}", "meta", s->meta));
	} else if (s->chunk_index >= 0) {
		if (put_chunk(s, "chunk", json_object(), s->payload, &s->off, &s->chunk_index))
			s->chunk_index = -1;
	} else {
		frame_close(s);
	}
}

static void
produce_steps(struct stream *s)
{
	const struct emu_payload *p;
	json_t *fields;

	if (s->step == step_stream_count(s->steps)) {
		frame_close(s);
		return;
	}
	if (s->part == 0) {
		put_message(s, json_pack("{s:o}", "stepMeta", step_stream_meta(s->steps, s->step)));
		s->part = 1;
		s->off = 0;
		s->chunk_index = 0;
		return;
	}
	p = step_stream_part(s->steps, s->step, s->part == 2);
	fields = json_object();
	wire_set_str(fields, "stepPath", step_stream_path(s->steps, s->step));
	wire_set_enum(fields, "part", ENUM_STEP_PART, s->part);
	if (put_chunk(s, "stepChunk", fields, p, &s->off, &s->chunk_index)) {
		s->off = 0;
		s->chunk_index = 0;
		if (++s->part == 3) {
			s->part = 0;
			s->step++;
		}
	}
}

/* Returns -1 when the client has gone. */
static int
produce_watch(struct stream *s)
{
	for (;;) {
		json_t *msg = NULL;
		int rc = emu_watch_next(s->watch, &msg, WATCH_WAIT_MS);

		if (rc > 0) {
			put_message(s, msg);
			/* an event of an unknown type after the snapshot */
			if (s->nmsg == 1 && wire_heartbeats())
				put_message(s, wire_heartbeat(clock_ms()));
			s->idle = 0;
			return 0;
		}
		if (rc < 0) {
			frame_close(s);
			return 0;
		}
		if (client_gone(s))
			return -1;
		/* and one for each second without an event */
		if (++s->idle % (1000 / WATCH_WAIT_MS) == 0 && wire_heartbeats()) {
			put_message(s, wire_heartbeat(clock_ms()));
			return 0;
		}
	}
}

static void
produce_raw(struct stream *s)
{
	size_t n;

	sb_reserve(s, s->max_chunk);
	n = emu_payload_read(s->payload, s->off, s->buf + s->len, s->max_chunk);
	s->len += n;
	s->off += n;
	if (s->off >= emu_payload_size(s->payload))
		s->ended = 1;
}

/* Waits out a stall fault: until it ends, the faults change, or the
 * client or the emulator goes. */
static int
stall(struct stream *s)
{
	struct timespec ts = {0, 20 * 1000000};

	for (int waited = 0; waited < s->f.stall_ms; waited += 20) {
		if (faults_generation() != s->f.generation || store_stopping())
			return 0;
		if (client_gone(s))
			return -1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Waits one trickle interval. 0 to send one more byte, 1 when the
 * faults changed (the trickle is over), -1 when the client went. A
 * trickle is bounded by the stream: its bytes run out, or its client. */
static int
trickle_wait(struct stream *s)
{
	struct timespec ts = {0, 20 * 1000000};

	for (int waited = 0; waited < s->f.trickle_ms; waited += 20) {
		if (faults_generation() != s->f.generation || store_stopping())
			return 1;
		if (client_gone(s))
			return -1;
		if (s->f.trickle_ms - waited < 20)
			ts.tv_nsec = (long)(s->f.trickle_ms - waited) * 1000000;
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Fills out with the next bytes of the stream; the reader of MHD. */
static ssize_t
stream_fill(struct stream *s, char *out, size_t max)
{
	size_t n;

	while (s->pos == s->len) {
		s->pos = s->len = 0;
		if (s->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (store_stopping())
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (s->f.error_after >= 0 && s->sent >= (uint64_t)s->f.error_after && !s->errored) {
			s->errored = 1;
			put_error(s, 14, "stream aborted (injected fault)");
			continue;
		}
		switch (s->kind) {
		case STREAM_RESULT:
			produce_result(s);
			break;
		case STREAM_STEPS:
			produce_steps(s);
			break;
		case STREAM_WATCH:
			if (produce_watch(s) < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			break;
		case STREAM_RAW:
			produce_raw(s);
			break;
		}
	}
	n = s->len - s->pos;
	if (n > max)
		n = max;
	if (s->f.cut_after >= 0) {
		if (s->sent >= (uint64_t)s->f.cut_after)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (s->sent + n > (uint64_t)s->f.cut_after)
			n = (size_t)((uint64_t)s->f.cut_after - s->sent);
	}
	if (s->f.stall_after >= 0 && !s->stalled) {
		if (s->sent >= (uint64_t)s->f.stall_after) {
			s->stalled = 1;
			if (stall(s) < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
		} else if (s->sent + n > (uint64_t)s->f.stall_after) {
			n = (size_t)((uint64_t)s->f.stall_after - s->sent);
		}
	}
	if (s->f.trickle_after >= 0) {
		if (s->sent >= (uint64_t)s->f.trickle_after) {
			int w = trickle_wait(s);

			if (w < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			if (w == 0)
				n = 1;
			else
				s->f.trickle_after = -1;
		} else if (s->sent + n > (uint64_t)s->f.trickle_after) {
			n = (size_t)((uint64_t)s->f.trickle_after - s->sent);
		}
	}
	memcpy(out, s->buf + s->pos, n);
	s->pos += n;
	s->sent += n;
	return (ssize_t)n;
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;
	ssize_t n;

	(void)pos;
	/* the request's spelling goes on, in the thread of the connection */
	wire_request_resume(&s->wr);
	n = stream_fill(s, out, max);
	wire_request_end();
	return n;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;

	emu_payload_free(s->payload);
	json_decref(s->meta);
	step_stream_free(s->steps);
	emu_watch_free(s->watch);
	free(s->raw);
	free(s->buf);
	free(s);
}

static enum MHD_Result
send_stream(struct MHD_Connection *c, struct req *r, struct stream *s, uint64_t size)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	const char *type = s->kind == STREAM_RAW     ? "application/octet-stream"
	                   : s->framing == FRAME_SSE ? "text/event-stream"
	                                             : "application/json";

	s->conn = c;
	if (s->kind != STREAM_WATCH && s->kind != STREAM_RAW)
		s->raw = xmalloc(s->max_chunk);
	resp = MHD_create_response_from_callback(size, BLOCK_SIZE, stream_read, s, stream_free);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	r->status = 200;
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static struct stream *
stream_new(enum stream_kind kind, const struct faults *f)
{
	struct stream *s = xcalloc(1, sizeof(*s));

	s->kind = kind;
	s->f = *f;
	s->max_chunk = CHUNK_DEFAULT;
	s->framing = kind == STREAM_RAW ? FRAME_NDJSON_BARE : wire_stream_framing();
	return s;
}

/* ---- the API ---- */

static int
parse_chunk_size(struct MHD_Connection *c, size_t *out, int *bad)
{
	char *v = query_arg(c, "maxChunkBytes", "max_chunk_bytes", bad), *end;
	long long n;

	*out = CHUNK_DEFAULT;
	if (v == NULL)
		return *bad ? -1 : 0;
	n = strtoll(v, &end, 10);
	if (*end != '\0' || end == v || n < 0) {
		free(v);
		return -1;
	}
	free(v);
	if (n == 0)
		n = CHUNK_DEFAULT;
	*out = n < CHUNK_MIN ? CHUNK_MIN : n > CHUNK_MAX ? CHUNK_MAX : (size_t)n;
	return 0;
}

static json_t *
parse_body(struct req *r, struct api_err *e)
{
	json_error_t jerr;
	json_t *doc;

	if (r->len == 0)
		return json_object();
	doc = json_loadb(r->body, r->len, 0, &jerr);
	if (doc == NULL) {
		e->code = 3;
		snprintf(e->msg, sizeof(e->msg), "the request body is not valid JSON: %s",
		         jerr.text);
	} else if (!json_is_object(doc)) {
		json_decref(doc);
		doc = NULL;
		e->code = 3;
		snprintf(e->msg, sizeof(e->msg), "the request body must be a JSON object");
	}
	return doc;
}

/* The route of an API path: its call name and its decoded segments. */
struct route {
	const char *call;
	int nseg;
	char *seg[8];
	int is_post;
};

static void
route_free(struct route *rt)
{
	for (int i = 0; i < rt->nseg; i++)
		free(rt->seg[i]);
}

/* Splits and decodes "/a/b/c"; -1 for too many or malformed segments. */
static int
split_path(const char *path, struct route *rt)
{
	const char *p = path;

	rt->nseg = 0;
	while (*p == '/') {
		const char *q = strchr(p + 1, '/');
		size_t n = q ? (size_t)(q - p - 1) : strlen(p + 1);

		if (rt->nseg == 8)
			return -1;
		rt->seg[rt->nseg] = pct_decode(p + 1, n, 0);
		if (rt->seg[rt->nseg] == NULL)
			return -1;
		rt->nseg++;
		p += n + 1;
	}
	return 0;
}

static int
seg_is(const struct route *rt, int i, const char *s)
{
	return i < rt->nseg && strcmp(rt->seg[i], s) == 0;
}

/* Names the call for path (under /v1/scriptum) and method; NULL when none.
 * *wrong_method is set when the path exists for another method. */
static const char *
route_call(const struct route *rt, int post, int *wrong_method)
{
	const char *get = NULL, *postc = NULL;

	if (rt->nseg == 1 && seg_is(rt, 0, "health"))
		get = "HealthCheck";
	else if (rt->nseg == 1 && seg_is(rt, 0, "threads"))
		get = "ListThreads", postc = "CreateThread";
	else if (rt->nseg == 2 && seg_is(rt, 0, "threads"))
		get = "GetThread";
	else if (rt->nseg == 3 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "cancel"))
		postc = "CancelThread";
	else if (rt->nseg == 3 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "resume"))
		postc = "ResumeThread";
	else if (rt->nseg == 3 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "watch"))
		get = "WatchThread";
	else if (rt->nseg == 3 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "result"))
		get = "GetThreadResult";
	else if (rt->nseg == 4 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "result") &&
	         seg_is(rt, 3, "stream"))
		get = "StreamThreadResult";
	else if (rt->nseg == 4 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "steps") &&
	         seg_is(rt, 3, "stream"))
		get = "StreamStepResult";
	else if (rt->nseg == 5 && seg_is(rt, 0, "threads") && seg_is(rt, 2, "steps") &&
	         seg_is(rt, 4, "watch"))
		get = "WatchStep";
	else if (rt->nseg == 1 && seg_is(rt, 0, "scripts"))
		get = "ListScripts";
	else if (rt->nseg == 2 && seg_is(rt, 0, "scripts"))
		get = "GetScript";
	else if (rt->nseg == 3 && seg_is(rt, 0, "scripts") && seg_is(rt, 2, "versions"))
		get = "ListScriptVersions";
	*wrong_method = (post ? postc : get) == NULL && (get != NULL || postc != NULL);
	return post ? postc : get;
}

/* 1 for POST, 0 for GET, -1 for any other method. */
static int
method_kind(const char *method)
{
	if (strcmp(method, "POST") == 0)
		return 1;
	return strcmp(method, "GET") == 0 ? 0 : -1;
}

static int
authorized(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	int ok;

	pthread_mutex_lock(&sv.lock);
	ok = sv.token == NULL ||
	     (h != NULL && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, sv.token) == 0);
	pthread_mutex_unlock(&sv.lock);
	return ok;
}

static enum MHD_Result
reply(struct MHD_Connection *c, struct req *r, int rc, json_t *out, const struct api_err *e,
      const char *wrapper)
{
	if (rc != 0)
		return send_error(c, r, e->code, "%s", e->msg);
	return send_json(c, r, 200, wire_unary(out, wrapper));
}

/* The listing faults' tokens: pageTokenRepeat's one token, and
 * emptyPagesForever's, a prefix and a counter (so the emulator holds
 * nothing per page however long a client pages). */
#define REPEAT_TOKEN "f.repeat"
#define EMPTY_TOKEN  "f.empty."

static unsigned empty_pages; /* emptyPagesForever's counter; wraps */
static pthread_mutex_t empty_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * pageTokenRepeat and emptyPagesForever before a listing is made: their
 * token. Repeat's names the first page again (*tok cleared); empty's is
 * answered here with an empty page (*out set, 1 returned).
 */
static int
list_faults_before(const struct faults *f, char **tok, const char *key, json_t **out)
{
	if (*tok == NULL)
		return 0;
	if (f->page_repeat && strcmp(*tok, REPEAT_TOKEN) == 0) {
		free(*tok);
		*tok = NULL;
		return 0;
	}
	if (f->page_empty && strncmp(*tok, EMPTY_TOKEN, strlen(EMPTY_TOKEN)) == 0) {
		*out = json_object();
		json_object_set_new(*out, key, json_array());
		return 1;
	}
	return 0;
}

/* ... and after: the next page's token is theirs. */
static void
list_faults_after(const struct faults *f, json_t *out)
{
	char tok[48];

	if (f->page_repeat) {
		wire_set_str(out, "nextPageToken", REPEAT_TOKEN);
	} else if (f->page_empty) {
		pthread_mutex_lock(&empty_lock);
		snprintf(tok, sizeof(tok), EMPTY_TOKEN "%u", ++empty_pages);
		pthread_mutex_unlock(&empty_lock);
		wire_set_str(out, "nextPageToken", tok);
	}
}

/* ListThreads with the query of c, under the listing faults of f. */
static int
list_threads(struct MHD_Connection *c, const struct faults *f, json_t **out, struct api_err *e)
{
	int bad = 0, rc;
	char *size = query_arg(c, "pageSize", "page_size", &bad);
	char *tok = query_arg(c, "pageToken", "page_token", &bad);
	char *status = query_arg(c, "statusFilter", "status_filter", &bad);
	char *script = query_arg(c, "scriptNameFilter", "script_name_filter", &bad);
	struct list_query q = {0, NULL, status, script, f->page_dups};
	char *end = NULL;

	if (size != NULL)
		q.page_size = strtol(size, &end, 10);
	if (bad || (size != NULL && (*end != '\0' || end == size))) {
		rc = -1, e->code = 3, snprintf(e->msg, sizeof(e->msg), "malformed query");
	} else if (list_faults_before(f, &tok, "threads", out)) {
		rc = 0;
		list_faults_after(f, *out);
	} else {
		q.page_token = tok;
		if ((rc = store_list(&q, out, e)) == 0)
			list_faults_after(f, *out);
	}
	free(size);
	free(tok);
	free(status);
	free(script);
	return rc;
}

/* ListScripts with the query of c, under the listing faults of f. */
static int
list_scripts(struct MHD_Connection *c, const struct faults *f, json_t **out, struct api_err *e)
{
	int bad = 0, rc;
	char *size = query_arg(c, "pageSize", "page_size", &bad);
	char *tok = query_arg(c, "pageToken", "page_token", &bad);
	char *end = NULL;
	long n = size ? strtol(size, &end, 10) : 0;

	if (bad || (size != NULL && (*end != '\0' || end == size))) {
		rc = -1, e->code = 3, snprintf(e->msg, sizeof(e->msg), "malformed query");
	} else if (list_faults_before(f, &tok, "scripts", out)) {
		rc = 0;
		list_faults_after(f, *out);
	} else if ((rc = store_list_scripts(n, tok, f->page_dups, out, e)) == 0) {
		list_faults_after(f, *out);
	}
	free(size);
	free(tok);
	return rc;
}

/* The answer of CreateThread (create set), CancelThread or ResumeThread. */
static enum MHD_Result
reply_action(struct MHD_Connection *c, struct req *r, int rc, json_t *out, const struct api_err *e,
             int create)
{
	if (rc != 0)
		return send_error(c, r, e->code, "%s", e->msg);
	return send_json(c, r, 200, wire_unary_action(out, create));
}

/* The four streams: their spelling continues the request's (wr). */
static enum MHD_Result
serve_stream(struct MHD_Connection *c, struct req *r, const char *call, const struct route *rt,
             const struct faults *f, const struct wire_req *wr)
{
	struct api_err e = {0};
	struct stream *s;
	char *path_q = NULL;
	int bad = 0, rc;

	if (strcmp(call, "WatchThread") == 0 || strcmp(call, "WatchStep") == 0) {
		s = stream_new(STREAM_WATCH, f);
		rc = store_watch(rt->seg[1], call[5] == 'S' ? rt->seg[3] : NULL, &s->watch, &e);
	} else {
		s = stream_new(call[6] == 'T' ? STREAM_RESULT : STREAM_STEPS, f);
		if (parse_chunk_size(c, &s->max_chunk, &bad) != 0) {
			rc = -1, e.code = 3;
			snprintf(e.msg, sizeof(e.msg), "maxChunkBytes must be a number of bytes");
		} else if (s->kind == STREAM_RESULT) {
			rc = store_output(rt->seg[1], &s->payload, &s->meta, &e);
		} else {
			path_q = query_arg(c, "stepPath", "step_path", &bad);
			rc = bad ? -1 : store_step_stream(rt->seg[1], path_q, &s->steps, &e);
			if (bad)
				e.code = 3, snprintf(e.msg, sizeof(e.msg), "malformed stepPath");
		}
		free(path_q);
	}
	if (rc != 0) {
		stream_free(s);
		return send_error(c, r, e.code, "%s", e.msg);
	}
	s->wr = *wr;
	return send_stream(c, r, s, MHD_SIZE_UNKNOWN);
}

static enum MHD_Result
serve_call(struct MHD_Connection *c, struct req *r, const char *path, const struct wire_req *wr)
{
	struct route rt = {0};
	struct api_err e = {0};
	struct faults f;
	json_t *out = NULL, *body = NULL;
	const char *call;
	int wrong = 0, bad = 0, rc;
	enum MHD_Result ret;

	if (split_path(path, &rt) != 0) {
		route_free(&rt);
		return send_error(c, r, 3, "malformed path '%.200s'", path);
	}
	call = route_call(&rt, method_kind(r->method) == 1, &wrong);
	if (call != NULL && method_kind(r->method) < 0) {
		call = NULL;
		wrong = 1;
	}
	r->call = call;
	if (call == NULL) {
		route_free(&rt);
		if (wrong)
			return send_error(c, r, 12, "%s is not allowed on /v1/scriptum%.200s",
			                  r->method, path);
		return send_error(c, r, 5, "no such call: %s /v1/scriptum%.200s", r->method, path);
	}

	faults_for(path, &f);
	if (f.latency_ms > 0) {
		struct timespec ts = {f.latency_ms / 1000, (long)(f.latency_ms % 1000) * 1000000};

		nanosleep(&ts, NULL);
	}
	if (f.error_status != 0) {
		route_free(&rt);
		return send_fault(c, r, &f);
	}
	if (strcmp(call, "HealthCheck") != 0 && !authorized(c)) {
		route_free(&rt);
		return send_error(c, r, 16, "missing or invalid bearer token");
	}
	if (r->too_large) {
		route_free(&rt);
		return send_json(
		    c, r, 413, wire_error(11, "the request body is larger than the 80 MiB limit"));
	}

	if (strcmp(call, "HealthCheck") == 0) {
		rc = store_health(&out);
		ret = reply(c, r, rc, out, &e, "health");
	} else if (strcmp(call, "CreateThread") == 0 || strcmp(call, "ResumeThread") == 0 ||
	           strcmp(call, "CancelThread") == 0) {
		body = parse_body(r, &e);
		if (body == NULL)
			rc = -1;
		else if (call[0] == 'C' && call[1] == 'r')
			rc = store_create(body, &out, &e);
		else if (call[0] == 'R')
			rc = store_resume(rt.seg[1], body, &out, &e);
		else
			rc = store_cancel(rt.seg[1], &out, &e);
		json_decref(body);
		ret = reply_action(c, r, rc, out, &e, call[1] == 'r');
	} else if (strcmp(call, "GetThread") == 0) {
		rc = store_get(rt.seg[1], &out, &e);
		ret = reply(c, r, rc, out, &e, "thread");
	} else if (strcmp(call, "ListThreads") == 0) {
		rc = list_threads(c, &f, &out, &e);
		ret = reply(c, r, rc, out, &e, "response");
	} else if (strcmp(call, "GetThreadResult") == 0) {
		char *path_q = query_arg(c, "stepPath", "step_path", &bad);
		char *oo = query_arg(c, "outputOnly", "output_only", &bad);
		char *mo = query_arg(c, "metadataOnly", "metadata_only", &bad);
		struct result_query q = {path_q, parse_bool(oo), parse_bool(mo)};

		if (bad)
			rc = -1, e.code = 3, snprintf(e.msg, sizeof(e.msg), "malformed query");
		else
			rc = store_result(rt.seg[1], &q, &out, &e);
		free(path_q);
		free(oo);
		free(mo);
		ret = reply(c, r, rc, out, &e, "result");
	} else if (strcmp(call, "StreamThreadResult") == 0 ||
	           strcmp(call, "StreamStepResult") == 0 || strcmp(call, "WatchThread") == 0 ||
	           strcmp(call, "WatchStep") == 0) {
		ret = serve_stream(c, r, call, &rt, &f, wr);
	} else if (strcmp(call, "ListScripts") == 0) {
		rc = list_scripts(c, &f, &out, &e);
		ret = reply(c, r, rc, out, &e, "response");
	} else if (strcmp(call, "GetScript") == 0) {
		rc = store_get_script(rt.seg[1], &out, &e);
		ret = reply(c, r, rc, out, &e, "script");
	} else {
		rc = store_list_versions(rt.seg[1], &out, &e);
		ret = reply(c, r, rc, out, &e, "response");
	}
	route_free(&rt);
	return ret;
}

/* An API call, spelled as its own request of the wire mode. */
static enum MHD_Result
serve_api(struct MHD_Connection *c, struct req *r, const char *path)
{
	struct wire_req wr;
	enum MHD_Result ret;

	wire_request_begin(&wr);
	ret = serve_call(c, r, path, &wr);
	wire_request_end();
	return ret;
}

/* ---- /_emulator/ ---- */

static json_t *
log_json(void)
{
	json_t *recent = json_array(), *o;
	size_t first;

	pthread_mutex_lock(&sv.lock);
	first = sv.log_n > LOG_CAP ? sv.log_n - LOG_CAP : 0;
	for (size_t i = first; i < sv.log_n; i++) {
		const struct log_entry *le = &sv.log[i % LOG_CAP];
		json_t *item =
		    json_pack("{s:s, s:s, s:s, s:i}", "call", le->call ? le->call : "", "method",
		              le->method, "path", le->path, "status", le->status);

		wire_set_str(item, "orgId", le->org_id);
		wire_set_str(item, "orgName", le->org_name);
		json_array_append_new(recent, item);
	}
	o = json_pack("{s:I, s:O, s:o}", "total", (json_int_t)sv.log_n, "byCall", sv.by_call,
	              "recent", recent);
	pthread_mutex_unlock(&sv.lock);
	return o;
}

static void
log_request(const struct req *r)
{
	struct log_entry *le;
	json_t *n;

	if (r->call == NULL && strncmp(r->path, "/v1/", 4) != 0)
		return;
	pthread_mutex_lock(&sv.lock);
	le = &sv.log[sv.log_n++ % LOG_CAP];
	le->call = r->call;
	memcpy(le->method, r->method, sizeof(le->method));
	memcpy(le->path, r->path, sizeof(le->path));
	memcpy(le->org_id, r->org_id, sizeof(le->org_id));
	memcpy(le->org_name, r->org_name, sizeof(le->org_name));
	le->status = r->status;
	if (r->call != NULL) {
		n = json_object_get(sv.by_call, r->call);
		json_object_set_new(sv.by_call, r->call,
		                    json_integer(n ? json_integer_value(n) + 1 : 1));
	}
	pthread_mutex_unlock(&sv.lock);
}

static enum MHD_Result
serve_control(struct MHD_Connection *c, struct req *r, const char *path)
{
	struct api_err e = {0};
	json_t *out = NULL, *body;
	int post = strcmp(r->method, "POST") == 0;
	int rc;

	if (strcmp(path, "/seed") == 0 && post) {
		body = parse_body(r, &e);
		rc = body ? store_seed(body, &out, &e) : -1;
		json_decref(body);
		/* control answers are not API messages: no wire variant */
		if (rc != 0)
			return send_error(c, r, e.code, "%s", e.msg);
		return send_json(c, r, 200, out);
	}
	if (strcmp(path, "/faults") == 0 && post) {
		char err[256];

		body = r->len ? parse_body(r, &e) : json_object();
		if (body == NULL)
			return send_error(c, r, 3, "%s", e.msg);
		rc = faults_set(body, err, sizeof(err));
		json_decref(body);
		if (rc != 0)
			return send_error(c, r, 3, "%s", err);
		return send_json(c, r, 200, faults_get());
	}
	if (strcmp(path, "/faults") == 0)
		return send_json(c, r, 200, faults_get());
	if (strcmp(path, "/requests") == 0 && strcmp(r->method, "DELETE") == 0) {
		pthread_mutex_lock(&sv.lock);
		sv.log_n = 0;
		json_object_clear(sv.by_call);
		pthread_mutex_unlock(&sv.lock);
		return send_json(c, r, 200, json_object());
	}
	if (strcmp(path, "/requests") == 0)
		return send_json(c, r, 200, log_json());
	if (strcmp(path, "/token") == 0 && post) {
		const json_t *tok;

		body = parse_body(r, &e);
		if (body == NULL)
			return send_error(c, r, 3, "%s", e.msg);
		tok = json_object_get(body, "token");
		if (tok != NULL && !json_is_string(tok)) {
			json_decref(body);
			return send_error(c, r, 3, "token must be a string");
		}
		pthread_mutex_lock(&sv.lock);
		free(sv.token);
		sv.token = tok && json_string_length(tok) ? xstrdup(json_string_value(tok)) : NULL;
		pthread_mutex_unlock(&sv.lock);
		json_decref(body);
		return send_json(c, r, 200, json_object());
	}
	return send_error(c, r, 5, "no such control call: %s /_emulator%.200s", r->method, path);
}

static enum MHD_Result
serve_raw_output(struct MHD_Connection *c, struct req *r, const char *path)
{
	struct route rt = {0};
	struct api_err e = {0};
	struct faults none;
	struct stream *s;
	int rc;

	if (split_path(path, &rt) != 0 || rt.nseg != 3 || !seg_is(&rt, 0, "threads") ||
	    !seg_is(&rt, 2, "output")) {
		route_free(&rt);
		return send_error(c, r, 5, "no such control call: %.200s", path);
	}
	faults_none(&none);
	s = stream_new(STREAM_RAW, &none);
	s->max_chunk = 1u << 20;
	rc = store_output(rt.seg[1], &s->payload, &s->meta, &e);
	route_free(&rt);
	if (rc != 0) {
		stream_free(s);
		return send_error(c, r, e.code, "%s", e.msg);
	}
	return send_stream(c, r, s, emu_payload_size(s->payload));
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
       const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct req *r = *con_cls;
	const char *h;

	(void)cls;
	(void)version;
	if (r == NULL) {
		r = xcalloc(1, sizeof(*r));
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-organization-id");
		snprintf(r->org_id, sizeof(r->org_id), "%s", h ? h : "");
		h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-organization-name");
		snprintf(r->org_name, sizeof(r->org_name), "%s", h ? h : "");
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->len + *upload_size > BODY_CAP) {
			r->too_large = 1;
		} else {
			if (r->len + *upload_size > r->cap) {
				r->cap = (r->len + *upload_size) * 2;
				if (r->cap > BODY_CAP)
					r->cap = BODY_CAP;
				r->body = xrealloc(r->body, r->cap);
			}
			memcpy(r->body + r->len, upload, *upload_size);
			r->len += *upload_size;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (strncmp(url, "/v1/scriptum/", 13) == 0)
		return serve_api(c, r, url + 12);
	if (strncmp(url, "/_emulator/threads/", 19) == 0 && strcmp(method, "GET") == 0)
		return serve_raw_output(c, r, url + 10);
	if (strncmp(url, "/_emulator/", 11) == 0)
		return serve_control(c, r, url + 10);
	return send_error(c, r, 5, "no such path: %.200s", url);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)t;
	if (r == NULL)
		return;
	log_request(r);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

static char *
read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || n > (1 << 20)) {
		snprintf(err, errlen, "%s: not a PEM file of a sensible size", path);
		fclose(f);
		return NULL;
	}
	buf = xmalloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

int
server_start(const struct server_opts *o, int *port, char *err, size_t errlen)
{
	unsigned flags =
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG;
	struct sockaddr_in sa;
	const union MHD_DaemonInfo *di;
	char *cert = NULL, *key = NULL;

	sv.log = xcalloc(LOG_CAP, sizeof(*sv.log));
	sv.by_call = json_object();
	sv.token = o->token != NULL && o->token[0] ? xstrdup(o->token) : NULL;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)o->port);
	if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1) {
		snprintf(err, errlen, "--listen: '%s' is not an IPv4 address", o->host);
		return -EINVAL;
	}
	if (o->tls_cert != NULL) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			snprintf(err, errlen, "this libmicrohttpd was built without TLS");
			return -ENOTSUP;
		}
		cert = read_file(o->tls_cert, err, errlen);
		key = cert ? read_file(o->tls_key, err, errlen) : NULL;
		if (key == NULL) {
			free(cert);
			return -EINVAL;
		}
		flags |= MHD_USE_TLS;
	}
	{
		struct MHD_OptionItem opts[] = {
		    {MHD_OPTION_SOCK_ADDR, 0, &sa},
		    {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)completed, NULL},
		    {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)keep_url, NULL},
		    {MHD_OPTION_CONNECTION_LIMIT, 1024, NULL},
		    {MHD_OPTION_CONNECTION_TIMEOUT, 300, NULL},
		    {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 1 << 20, NULL},
		    {MHD_OPTION_LISTEN_BACKLOG_SIZE, 256, NULL},
		    {cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert},
		    {MHD_OPTION_HTTPS_MEM_KEY, 0, key},
		    {MHD_OPTION_END, 0, NULL},
		};

		sv.mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_ARRAY,
		                          opts, MHD_OPTION_END);
	}
	sv.cert = cert;
	sv.key = key;
	if (sv.mhd == NULL) {
		snprintf(err, errlen, "cannot listen on %s:%d", o->host, o->port);
		return -EADDRINUSE;
	}
	di = MHD_get_daemon_info(sv.mhd, MHD_DAEMON_INFO_BIND_PORT);
	*port = di != NULL ? di->port : o->port;
	return 0;
}

void
server_stop(void)
{
	if (sv.mhd != NULL)
		MHD_stop_daemon(sv.mhd);
	sv.mhd = NULL;
	json_decref(sv.by_call);
	sv.by_call = NULL;
	free(sv.log);
	sv.log = NULL;
	free(sv.token);
	sv.token = NULL;
	free(sv.cert);
	free(sv.key);
	sv.cert = sv.key = NULL;
}
