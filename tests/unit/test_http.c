/*
 * The HTTP transport against the real emulator: each test starts its own
 * scriptum-emulator ($SCRIPTUM_EMULATOR, else build/scriptum-emulator) on a
 * free port, sets faults through /_emulator/, and stops it with SIGTERM.
 * OAuth tests add a token endpoint served in-process (libmicrohttpd); the
 * HTTPS test makes a CA and a certificate with the openssl command.
 *
 *	make build/tests/test_http && ./build/tests/test_http
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>

#include "emu.h"
#include "http.h"
#include "stream.h"

#define TOKEN_A "tok-A-5e1f9c"
#define TOKEN_B "tok-B-77d02a"
#define SECRET  "cs-S3CRET/+ x&y"

struct fx {
	struct emu *emu;       /* its directory holds the test's own files */
	struct http_client *c; /* the client under test, default options */
};

/* Options for a test client: short back-off so retries cost little. */
static struct http_options
opts(const struct fx *fx)
{
	struct http_options o = {0};

	o.endpoint = emu_url(fx->emu);
	o.deadline_ms = 5000;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	return o;
}

static struct http_client *
client(const struct http_options *o)
{
	struct http_client *c = NULL;
	char err[256] = "";
	int rc = http_client_new(o, &c, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "http_client_new: %s\n", err);
	assert_int_equal(rc, 0);
	return c;
}

static int
start(void **state, const char *const *extra)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct http_options o;

	if (fx == NULL)
		return -1;
	if (emu_start(extra, &fx->emu) != 0) {
		free(fx);
		return -1;
	}
	o = opts(fx);
	if (http_client_new(&o, &fx->c, NULL, 0) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int
setup(void **state)
{
	return start(state, NULL);
}

static int
setup_token(void **state)
{
	static const char *const extra[] = {"--token", TOKEN_A, NULL};

	return start(state, extra);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	http_client_free(fx->c);
	emu_stop(fx->emu);
	free(fx);
	return 0;
}

/* API requests the emulator has logged (faults and errors included): at
 * least want within a second. */
static long
requests_seen(struct fx *fx, long want)
{
	return emu_calls(fx->emu, NULL, want, 1000, 0);
}

static int
get(struct http_client *c, const char *call, const char *path, struct http_response *r,
    struct http_error *e)
{
	struct http_request rq = {.call = call, .path = path};

	return http_do(c, &rq, r, e);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

/* ---- plain calls ---- */

static void
test_get_buffers_the_json_body(void **state)
{
	struct fx *fx = *state;
	struct http_response r = {0};
	struct http_error e;
	json_t *j;

	assert_int_equal(get(fx->c, "ListThreads", "/v1/scriptum/threads?pageSize=2", &r, &e), 0);
	assert_int_equal(e.err, 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.attempts, 1);
	assert_string_equal(r.content_type, "application/json");
	assert_int_equal(r.body[r.len], '\0');
	assert_int_equal(r.received, r.len);
	j = json_loadb(r.body, r.len, 0, NULL);
	assert_non_null(j);
	assert_true(json_array_size(json_object_get(j, "threads")) == 2);
	json_decref(j);

	/* the health check needs no token; an empty request struct reuses r */
	assert_int_equal(get(fx->c, "HealthCheck", "/v1/scriptum/health", &r, &e), 0);
	assert_non_null(strstr(r.body, "status"));
	http_response_clear(&r);
	assert_null(r.body);
}

static void
test_post_sends_the_json_body(void **state)
{
	struct fx *fx = *state;
	const char *body = "{\"scriptName\": \"echo\", \"inputJson\": \"{\\\"n\\\": 7}\"}";
	struct http_request rq = {.call = "CreateThread", .path = "/v1/scriptum/threads"};
	struct http_response r = {0};
	struct http_error e;
	char path[256], id[128];
	json_t *j;

	rq.body = body;
	rq.body_len = strlen(body);
	assert_int_equal(http_do(fx->c, &rq, &r, &e), 0);
	j = json_loadb(r.body, r.len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "scriptName")), "echo");
	assert_string_equal(json_string_value(json_object_get(j, "inputJson")), "{\"n\": 7}");
	assert_true(http_escape(json_string_value(json_object_get(j, "threadId")), id, sizeof(id)) >
	            0);
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/scriptum/threads/%s", id);
	assert_int_equal(get(fx->c, "GetThread", path, &r, &e), 0);
	assert_non_null(strstr(r.body, id));
	http_response_clear(&r);
}

static void
test_org_headers_are_sent(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_client *c;
	struct http_response r = {0};
	json_t *log, *last;

	o.org_id = "org_123";
	o.org_name = "acme corp";
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(requests_seen(fx, 1), 1);
	log = emu_ctl(fx->emu, "GET", "/_emulator/requests", NULL);
	last = json_array_get(json_object_get(log, "recent"), 0);
	assert_string_equal(json_string_value(json_object_get(last, "orgId")), "org_123");
	assert_string_equal(json_string_value(json_object_get(last, "orgName")), "acme corp");
	json_decref(log);
	http_response_clear(&r);
	http_client_free(c);
}

static void
test_connection_is_reused_across_calls(void **state)
{
	struct fx *fx = *state;
	struct http_response r = {0};
	struct http_stats st;

	for (int i = 0; i < 20; i++)
		assert_int_equal(
		    get(fx->c, "ListThreads", "/v1/scriptum/threads?pageSize=1", &r, NULL), 0);
	http_response_clear(&r);
	http_client_stats(fx->c, &st);
	assert_int_equal(st.calls, 20);
	assert_int_equal(st.attempts, 20);
	assert_int_equal(st.connects, 1);
	assert_int_equal(st.failures, 0);
}

struct worker {
	struct http_client *c;
	atomic_int *failures;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	struct http_response r = {0};
	struct http_error e;

	for (int i = 0; i < 20; i++) {
		const char *path =
		    i % 2 ? "/v1/scriptum/threads?pageSize=3" : "/v1/scriptum/scripts";

		if (get(w->c, "List", path, &r, &e) != 0 || r.status != 200 || r.len == 0 ||
		    r.body[0] != '{')
			atomic_fetch_add(w->failures, 1);
	}
	http_response_clear(&r);
	return NULL;
}

static void
test_threads_share_one_client(void **state)
{
	struct fx *fx = *state;
	pthread_t t[8];
	struct worker w[8];
	atomic_int failures = 0;
	struct http_stats st;

	for (int i = 0; i < 8; i++) {
		w[i].c = fx->c;
		w[i].failures = &failures;
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&failures), 0);
	http_client_stats(fx->c, &st);
	assert_int_equal(st.calls, 160);
	assert_int_equal(st.failures, 0);
	/* at most one connection per thread in flight, each reused */
	assert_true(st.connects >= 1 && st.connects <= 8);
}

/* ---- retries ---- */

static void
test_503_burst_is_absorbed_by_retries(void **state)
{
	struct fx *fx = *state;
	struct http_response r = {0};
	struct http_stats st;

	emu_faults(fx->emu, "{\"errorCount\": 3}");
	assert_int_equal(get(fx->c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.attempts, 4);
	http_client_stats(fx->c, &st);
	assert_int_equal(st.retries, 3);
	assert_int_equal(requests_seen(fx, 4), 4);
	http_response_clear(&r);
}

static void
test_retry_after_is_honoured(void **state)
{
	struct fx *fx = *state;
	struct http_response r = {0};
	int64_t t0;

	emu_faults(fx->emu, "{\"errorCount\": 1, \"retryAfter\": 1}");
	t0 = emu_now_ms();
	assert_int_equal(get(fx->c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_true(emu_now_ms() - t0 >= 950);
	assert_int_equal(r.attempts, 2);
	http_response_clear(&r);
}

static void
test_unavailable_past_the_deadline_is_eagain(void **state)
{
	struct fx *fx = *state;
	struct http_request rq = {.call = "ListScripts", .path = "/v1/scriptum/scripts"};
	struct http_response r = {0};
	struct http_error e;
	int64_t t0;

	emu_faults(fx->emu, "{\"errorRate\": 1, \"errorStatus\": 429}");
	rq.deadline_ms = 600;
	t0 = emu_now_ms();
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EAGAIN);
	assert_true(emu_now_ms() - t0 < 1500);
	assert_true(r.attempts >= 2);
	assert_int_equal(e.err, EAGAIN);
	assert_int_equal(e.http_status, 429);
	assert_int_equal(e.grpc_code, ERRMAP_RESOURCE_EXHAUSTED);
	assert_int_equal(e.exit_code, 7);
	assert_string_equal(e.call, "ListScripts");
	assert_non_null(strstr(e.message, "injected fault"));

	/* a 503 was not processed either: a POST is resent too */
	emu_faults(fx->emu, "{\"errorRate\": 1, \"errorStatus\": 503, \"retryAfter\": 1}");
	rq.call = "CreateThread";
	rq.path = "/v1/scriptum/threads";
	rq.body = "{\"scriptName\": \"echo\"}";
	rq.body_len = strlen(rq.body);
	rq.deadline_ms = 1500;
	t0 = emu_now_ms();
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EAGAIN);
	assert_int_equal(r.attempts, 2);
	assert_int_equal(e.http_status, 503);
	/* Retry-After 1 s fits once in 1.5 s, not twice: it gives up at once */
	assert_true(emu_now_ms() - t0 < 1450);
	http_response_clear(&r);
}

static void
test_post_is_not_resent_after_502_unless_idempotent(void **state)
{
	struct fx *fx = *state;
	struct http_request rq = {.call = "CancelThread", .path = "/v1/scriptum/threads/x/cancel"};
	struct http_response r = {0};
	struct http_error e;
	char id[64], path[128];

	emu_seed(fx->emu, "fanout", 10, id, sizeof(id));
	snprintf(path, sizeof(path), "/v1/scriptum/threads/%s/cancel", id);
	rq.path = path;
	rq.body = "{}";
	rq.body_len = 2;
	emu_faults(fx->emu, "{\"errorCount\": 1, \"errorStatus\": 502}");
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EAGAIN);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(e.http_status, 502);

	emu_faults(fx->emu, "{\"errorCount\": 1, \"errorStatus\": 502}");
	rq.flags = HTTP_IDEMPOTENT;
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EBUSY); /* already finished */
	assert_int_equal(r.attempts, 2);

	/* and HTTP_NO_RETRY stops even a GET */
	emu_faults(fx->emu, "{\"errorCount\": 1}");
	rq.flags = HTTP_NO_RETRY;
	rq.body = NULL;
	rq.path = "/v1/scriptum/scripts";
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EAGAIN);
	assert_int_equal(r.attempts, 1);
	http_response_clear(&r);
}

/* ---- errors ---- */

static void
test_not_found_keeps_the_server_message(void **state)
{
	struct fx *fx = *state;
	struct http_response r = {0};
	struct http_error e;
	char text[512];

	assert_int_equal(get(fx->c, "GetThread", "/v1/scriptum/threads/nope", &r, &e), -ENOENT);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(e.err, ENOENT);
	assert_int_equal(e.http_status, 404);
	assert_int_equal(e.grpc_code, ERRMAP_NOT_FOUND);
	assert_int_equal(e.exit_code, 5);
	assert_string_equal(e.call, "GetThread");
	assert_string_equal(e.message, "thread 'nope' not found");
	/* the error body stays for the caller */
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "\"code\""));
	http_error_string(&e, text, sizeof(text));
	assert_string_equal(text, "GetThread: thread 'nope' not found (HTTP 404, NOT_FOUND)");
	http_response_clear(&r);
}

static void
test_non_json_error_body_is_mapped_by_status(void **state)
{
	struct fx *fx = *state;
	struct http_response r = {0};
	struct http_error e;

	emu_faults(fx->emu, "{\"errorRate\": 1, \"errorStatus\": 403, \"errorBody\": \"text\"}");
	assert_int_equal(get(fx->c, "ListScripts", "/v1/scriptum/scripts", &r, &e), -EACCES);
	assert_int_equal(e.http_status, 403);
	assert_int_equal(e.grpc_code, -1);
	assert_true(e.message[0] != '\0');
	assert_null(strchr(e.message, '\n'));

	emu_faults(fx->emu, "{\"errorRate\": 1, \"errorStatus\": 500, \"errorBody\": \"text\"}");
	assert_int_equal(get(fx->c, "ListScripts", "/v1/scriptum/scripts", &r, &e), -EIO);
	assert_int_equal(r.attempts, 1);
	http_response_clear(&r);
}

static void
test_wrong_token_is_eacces_and_never_shown(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_error e;
	struct http_client *c;
	char text[1024];

	o.token = "tok-WRONG-93ab";
	c = client(&o);
	assert_int_equal(get(c, "GetThread", "/v1/scriptum/threads/x", &r, &e), -EACCES);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(e.http_status, 401);
	assert_int_equal(e.exit_code, 3);
	http_error_string(&e, text, sizeof(text));
	assert_null(strstr(text, "tok-WRONG"));
	http_client_free(c);

	/* no token at all */
	assert_int_equal(get(fx->c, "GetThread", "/v1/scriptum/threads/x", &r, &e), -EACCES);
	http_response_clear(&r);
}

static void
test_deadline_exceeded_is_etimedout(void **state)
{
	struct fx *fx = *state;
	struct http_request rq = {.call = "ListScripts", .path = "/v1/scriptum/scripts"};
	struct http_response r = {0};
	struct http_error e;
	int64_t t0, dt;

	emu_faults(fx->emu, "{\"latencyMs\": 1000}");
	rq.deadline_ms = 250;
	t0 = emu_now_ms();
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -ETIMEDOUT);
	dt = emu_now_ms() - t0;
	assert_true(dt >= 240 && dt < 700);
	assert_int_equal(e.exit_code, 8);
	assert_int_equal(e.http_status, 0);
	http_response_clear(&r);
}

/* ---- streams ---- */

struct sink {
	struct stream *parser; /* NULL: just count */
	size_t bytes;
	int stop_with; /* return this from the first call */
};

static int
sink_data(const void *buf, size_t len, void *arg)
{
	struct sink *s = arg;

	s->bytes += len;
	if (s->stop_with != 0)
		return s->stop_with;
	return s->parser != NULL ? stream_feed(s->parser, buf, len) : 0;
}

static int
count_msg(json_t *msg, void *arg)
{
	(void)msg;
	(*(int *)arg)++;
	return 0;
}

static void
stream_req(struct http_request *rq, char *path, size_t len, const char *id, struct sink *s)
{
	snprintf(path, len, "/v1/scriptum/threads/%s/result/stream?maxChunkBytes=65536", id);
	memset(rq, 0, sizeof(*rq));
	rq->call = "StreamThreadResult";
	rq->path = path;
	rq->on_data = sink_data;
	rq->arg = s;
}

static void
test_stream_goes_to_the_callback(void **state)
{
	struct fx *fx = *state;
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	char id[64], path[256];
	int msgs = 0;

	emu_seed(fx->emu, "fanout", 300000, id, sizeof(id));
	s.parser = stream_new(count_msg, &msgs, 0);
	stream_req(&rq, path, sizeof(path), id, &s);
	rq.deadline_ms = HTTP_NONE;
	assert_int_equal(http_do(fx->c, &rq, &r, &e), 0);
	assert_int_equal(stream_finish(s.parser), 0);
	assert_true(msgs >= 1 + 5); /* meta, then 300000 bytes in 64 KiB chunks */
	assert_null(r.body);
	assert_int_equal(r.received, s.bytes);
	assert_string_equal(r.content_type, "application/json");
	stream_free(s.parser);

	/* an error line ends the parser, and the callback's error is the call's */
	emu_faults(fx->emu, "{\"errorAfterBytes\": 1000, \"match\": \"/result/stream\"}");
	memset(&s, 0, sizeof(s));
	s.parser = stream_new(count_msg, &msgs, 0);
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EREMOTEIO);
	assert_int_equal(r.attempts, 1);
	stream_free(s.parser);
	http_response_clear(&r);
}

static void
test_callback_error_stops_the_transfer(void **state)
{
	struct fx *fx = *state;
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {.stop_with = -ECANCELED};
	char id[64], path[256];

	emu_seed(fx->emu, "fanout", 300000, id, sizeof(id));
	stream_req(&rq, path, sizeof(path), id, &s);
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -ECANCELED);
	assert_int_equal(r.attempts, 1);
	assert_int_equal(e.err, ECANCELED);
	http_response_clear(&r);
}

static void
test_stalled_stream_is_aborted_after_the_stall_time(void **state)
{
	struct fx *fx = *state;
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	char id[64], path[256];
	int64_t t0, dt;

	emu_seed(fx->emu, "fanout", 100000, id, sizeof(id));
	emu_faults(fx->emu,
	           "{\"stallAfterBytes\": 0, \"stallMs\": 5000, \"match\": \"/result/stream\"}");
	stream_req(&rq, path, sizeof(path), id, &s);
	rq.deadline_ms = HTTP_NONE;
	rq.stall_ms = 300;
	t0 = emu_now_ms();
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -ETIMEDOUT);
	dt = emu_now_ms() - t0;
	assert_true(dt >= 290 && dt < 1000);
	assert_non_null(strstr(e.message, "no data"));
	assert_int_equal(s.bytes, 0);
	http_response_clear(&r);
}

/* ---- the rate floor ---- */

/* A client of fx's emulator with a floor of 64 KiB/s over 1 s. */
static struct http_client *
floor_client(const struct fx *fx)
{
	struct http_options o = opts(fx);

	o.min_rate = 65536;
	o.min_rate_window_ms = 1000;
	return client(&o);
}

static void
test_a_trickling_stream_fails_below_the_rate_floor(void **state)
{
	struct fx *fx = *state;
	struct http_client *c = floor_client(fx);
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	char id[64], path[256];
	int64_t t0, dt;

	emu_seed(fx->emu, "fanout", 300000, id, sizeof(id));
	/* a byte every 50 ms: never silent for the stall time */
	emu_faults(fx->emu, "{\"trickleAfterBytes\": 1000, \"trickleMs\": 50, "
	                    "\"match\": \"/result/stream\"}");
	stream_req(&rq, path, sizeof(path), id, &s);
	rq.deadline_ms = HTTP_NONE;
	rq.stall_ms = 5000;
	t0 = emu_now_ms();
	assert_int_equal(http_do(c, &rq, &r, &e), -ETIMEDOUT);
	dt = emu_now_ms() - t0;
	assert_true(dt >= 900 && dt < 3000);
	assert_int_equal(e.err, ETIMEDOUT);
	assert_int_equal(e.exit_code, 8);
	assert_non_null(strstr(e.message, "the transfer fell below 65536 bytes/s ("));
	assert_non_null(strstr(e.message, " bytes in the last 1 s)"));
	assert_true(s.bytes >= 1000 && s.bytes < 1100);
	assert_int_equal(r.attempts, 1);
	http_response_clear(&r);
	http_client_free(c);
}

static void
test_no_floor_for_a_request_that_asks_for_none(void **state)
{
	struct fx *fx = *state;
	struct http_client *c = floor_client(fx);
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	char id[64], path[256];

	/* some 400 bytes past the first 1000, at 200 bytes/s */
	emu_seed(fx->emu, "fanout", 1000, id, sizeof(id));
	emu_faults(fx->emu, "{\"trickleAfterBytes\": 1000, \"trickleMs\": 5, "
	                    "\"match\": \"/result/stream\"}");
	stream_req(&rq, path, sizeof(path), id, &s);
	rq.min_rate = HTTP_NONE;
	assert_int_equal(http_do(c, &rq, &r, &e), 0);
	assert_true(s.bytes > 1000);
	http_response_clear(&r);
	http_client_free(c);
}

/* A reader slower than the floor: 200 ms a call, as the mount's ring
 * waits for a slow reader, or a pipe for a pager. */
static int
slow_reader(const void *buf, size_t len, void *arg)
{
	struct timespec ts = {0, 200000000};

	nanosleep(&ts, NULL);
	return sink_data(buf, len, arg);
}

static void
test_a_slow_reader_is_not_the_server_below_the_floor(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_client *c;
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	char id[64], path[256];

	o.min_rate = 4 << 20;
	o.min_rate_window_ms = 1000;
	c = client(&o);
	emu_seed(fx->emu, "fanout", 1 << 20, id, sizeof(id));
	stream_req(&rq, path, sizeof(path), id, &s);
	rq.on_data = slow_reader;
	assert_int_equal(http_do(c, &rq, &r, &e), 0);
	assert_true(s.bytes > 1 << 20);
	http_response_clear(&r);
	http_client_free(c);
}

static void
test_a_configured_0_is_no_floor_and_unset_the_default(void **state)
{
	struct config cfg = {.endpoint = "http://127.0.0.1:1", .min_rate = 0};
	struct http_options o;

	(void)state;
	http_options_from_config(&o, &cfg);
	assert_int_equal(o.min_rate, HTTP_NONE);
	cfg.min_rate = -1;
	cfg.min_rate_window_ms = 2000;
	http_options_from_config(&o, &cfg);
	assert_int_equal(o.min_rate, 0);
	assert_int_equal(o.min_rate_window_ms, 2000);
	cfg.min_rate = 65536;
	http_options_from_config(&o, &cfg);
	assert_int_equal(o.min_rate, 65536);
}

static void
test_cut_stream_is_an_error(void **state)
{
	struct fx *fx = *state;
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	char id[64], path[256];

	emu_seed(fx->emu, "fanout", 300000, id, sizeof(id));
	emu_faults(fx->emu, "{\"cutAfterBytes\": 1000, \"match\": \"/result/stream\"}");
	stream_req(&rq, path, sizeof(path), id, &s);
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EIO);
	assert_int_equal(r.attempts, 1); /* bytes reached the reader: never resent */
	assert_true(s.bytes > 0 && s.bytes <= 1000);
	assert_int_equal(e.http_status, 0);

	/* buffered, the same cut is resent (nothing was delivered), and fails again */
	rq.on_data = NULL;
	rq.deadline_ms = 2000;
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EIO);
	assert_true(r.attempts >= 2);
	assert_null(r.body);
	http_response_clear(&r);
}

static void
test_buffered_body_over_the_cap_is_emsgsize(void **state)
{
	struct fx *fx = *state;
	struct http_request rq = {.call = "ListThreads", .path = "/v1/scriptum/threads"};
	struct http_response r = {0};
	struct http_error e;

	rq.max_body = 100;
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EMSGSIZE);
	assert_int_equal(r.attempts, 1);
	assert_null(r.body);
	http_response_clear(&r);
}

/* ---- abort ---- */

struct aborter {
	struct http_abort *a;
	int after_ms;
	int64_t fired_at;
};

static void *
aborter_run(void *arg)
{
	struct aborter *ab = arg;

	emu_sleep_ms(ab->after_ms);
	ab->fired_at = emu_now_ms();
	http_abort(ab->a);
	return NULL;
}

static void
test_abort_ends_a_stalled_transfer_at_once(void **state)
{
	struct fx *fx = *state;
	struct http_request rq;
	struct http_response r = {0};
	struct http_error e;
	struct sink s = {0};
	struct aborter ab = {http_abort_new(), 200, 0};
	char id[64], path[256];
	pthread_t t;
	int64_t done;

	emu_seed(fx->emu, "fanout", 100000, id, sizeof(id));
	emu_faults(fx->emu,
	           "{\"stallAfterBytes\": 0, \"stallMs\": 5000, \"match\": \"/result/stream\"}");
	stream_req(&rq, path, sizeof(path), id, &s);
	rq.deadline_ms = HTTP_NONE;
	rq.stall_ms = HTTP_NONE;
	rq.abort = ab.a;
	assert_int_equal(pthread_create(&t, NULL, aborter_run, &ab), 0);
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EINTR);
	done = emu_now_ms();
	pthread_join(t, NULL);
	assert_true(done - ab.fired_at < 100);
	assert_int_equal(e.exit_code, 1);

	/* a fired handle fails later calls at once */
	assert_true(http_aborted(ab.a));
	rq.on_data = NULL;
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EINTR);
	assert_int_equal(r.attempts, 0);
	http_abort_free(ab.a);
	http_response_clear(&r);
}

static void
test_abort_interrupts_the_back_off(void **state)
{
	struct fx *fx = *state;
	struct http_request rq = {.call = "ListScripts", .path = "/v1/scriptum/scripts"};
	struct http_response r = {0};
	struct http_error e;
	struct aborter ab = {http_abort_new(), 200, 0};
	pthread_t t;
	int64_t done;

	emu_faults(fx->emu, "{\"errorRate\": 1, \"retryAfter\": 5}");
	rq.abort = ab.a;
	rq.deadline_ms = 10000;
	assert_int_equal(pthread_create(&t, NULL, aborter_run, &ab), 0);
	assert_int_equal(http_do(fx->c, &rq, &r, &e), -EINTR);
	done = emu_now_ms();
	pthread_join(t, NULL);
	assert_true(done - ab.fired_at < 100);
	assert_int_equal(r.attempts, 1);
	http_abort_free(ab.a);
	http_response_clear(&r);
}

/* ---- no server ---- */

static void
test_dead_server_is_eio_within_the_deadline(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	struct http_options o = opts(fx);
	struct http_request rq = {.call = "GetThread", .path = "/v1/scriptum/threads/x"};
	struct http_response r = {0};
	struct http_error e;
	struct http_client *c;
	char url[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int64_t t0, dt;

	/* a port that was free a moment ago, with nothing listening */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	o.endpoint = url;
	c = client(&o);
	rq.deadline_ms = 1000;
	t0 = emu_now_ms();
	assert_int_equal(http_do(c, &rq, &r, &e), -EIO);
	dt = emu_now_ms() - t0;
	assert_true(dt < 1100);
	assert_true(r.attempts >= 2); /* refused connections are retried */
	assert_int_equal(e.exit_code, 9);
	assert_true(e.message[0] != '\0');
	http_client_free(c);
	(void)fx;
	http_response_clear(&r);
}

/* ---- token file ---- */

static void
test_token_file_change_is_picked_up(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_client *c;
	char path[128], tmp[128];

	snprintf(path, sizeof(path), "%s/token", emu_dir(fx->emu));
	snprintf(tmp, sizeof(tmp), "%s/token.new", emu_dir(fx->emu));
	write_file(path, TOKEN_A "\n", 0600);
	o.token_file = path;
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);

	/* rotated on the server, then replaced on disk (a new inode) */
	json_decref(emu_ctl(fx->emu, "POST", "/_emulator/token", "{\"token\": \"" TOKEN_B "\"}"));
	write_file(tmp, TOKEN_B "\n", 0600);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(r.attempts, 1);
	http_response_clear(&r);
	http_client_free(c);
}

static void
test_token_file_is_reread_after_a_401(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_error e;
	struct http_client *c;
	struct stat st;
	struct timespec times[2];
	char path[128], text[1024];
	int fd;

	snprintf(path, sizeof(path), "%s/token", emu_dir(fx->emu));
	write_file(path, TOKEN_A, 0600);
	o.token_file = path;
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);

	/* rotated on the server only: the 401 re-reads the same file, and gives up */
	json_decref(emu_ctl(fx->emu, "POST", "/_emulator/token", "{\"token\": \"" TOKEN_B "\"}"));
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, &e), -EACCES);
	assert_int_equal(r.attempts, 1);
	http_error_string(&e, text, sizeof(text));
	assert_null(strstr(text, TOKEN_A));
	assert_null(strstr(text, TOKEN_B));

	/* rewritten in place with the same size and mtime: only the 401 tells */
	assert_int_equal(stat(path, &st), 0);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, TOKEN_B, strlen(TOKEN_B), 0), (ssize_t)strlen(TOKEN_B));
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	assert_int_equal(futimens(fd, times), 0);
	close(fd);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, &e), 0);
	assert_int_equal(r.attempts, 2);
	http_response_clear(&r);
	http_client_free(c);
}

static void
test_token_file_others_can_read_is_refused(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_error e;
	struct http_client *c;
	char path[128];

	snprintf(path, sizeof(path), "%s/token", emu_dir(fx->emu));
	write_file(path, TOKEN_A, 0644);
	o.token_file = path;
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, &e), -EACCES);
	assert_int_equal(r.attempts, 0);
	assert_non_null(strstr(e.message, "token_file"));
	assert_null(strstr(e.message, TOKEN_A));
	http_response_clear(&r);
	http_client_free(c);
}

/* ---- OAuth client credentials ---- */

/* A token endpoint in this process. */
struct tokensrv {
	struct MHD_Daemon *d;
	char url[80];
	pthread_mutex_t lock;
	char token[512];
	int expires_in; /* -1: not in the answer */
	int status;     /* 200, or an OAuth error */
	int requests;
	int bad_requests; /* without the expected form */
};

struct upload {
	char buf[2048];
	size_t len;
};

static enum MHD_Result
token_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
              const char *version, const char *data, size_t *size, void **con_cls)
{
	struct tokensrv *ts = cls;
	struct upload *u = *con_cls;
	struct MHD_Response *resp;
	char body[1024];
	enum MHD_Result ret;
	int status;

	(void)url;
	(void)version;
	if (u == NULL) {
		u = calloc(1, sizeof(*u));
		*con_cls = u;
		return u != NULL ? MHD_YES : MHD_NO;
	}
	if (*size > 0) {
		size_t n =
		    *size < sizeof(u->buf) - 1 - u->len ? *size : sizeof(u->buf) - 1 - u->len;

		memcpy(u->buf + u->len, data, n);
		u->len += n;
		*size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&ts->lock);
	ts->requests++;
	if (strcmp(method, "POST") != 0 ||
	    strcmp(u->buf, "grant_type=client_credentials&client_id=svc%20one&client_secret="
	                   "cs-S3CRET%2F%2B%20x%26y") != 0)
		ts->bad_requests++;
	status = ts->status;
	if (status != 200)
		/* echoing the form, as a careless endpoint might */
		snprintf(body, sizeof(body),
		         "{\"error\": \"invalid_client\", \"error_description\": \"client "
		         "authentication failed for %.500s\"}",
		         u->buf);
	else if (ts->expires_in >= 0)
		snprintf(
		    body, sizeof(body),
		    "{\"access_token\": \"%s\", \"token_type\": \"Bearer\", \"expires_in\": %d}",
		    ts->token, ts->expires_in);
	else
		snprintf(body, sizeof(body),
		         "{\"access_token\": \"%s\", \"token_type\": \"Bearer\"}", ts->token);
	pthread_mutex_unlock(&ts->lock);
	resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void
token_done(void *cls, struct MHD_Connection *conn, void **con_cls,
           enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)conn;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

static void
tokensrv_start(struct tokensrv *ts, const char *token, int expires_in)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *di;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pthread_mutex_init(&ts->lock, NULL);
	snprintf(ts->token, sizeof(ts->token), "%s", token);
	ts->expires_in = expires_in;
	ts->status = 200;
	ts->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
	                         NULL, NULL, token_handler, ts, MHD_OPTION_SOCK_ADDR, &sa,
	                         MHD_OPTION_NOTIFY_COMPLETED, token_done, NULL, MHD_OPTION_END);
	assert_non_null(ts->d);
	di = MHD_get_daemon_info(ts->d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(ts->url, sizeof(ts->url), "http://127.0.0.1:%u/realms/x/token", di->port);
}

static void
tokensrv_stop(struct tokensrv *ts)
{
	MHD_stop_daemon(ts->d);
	pthread_mutex_destroy(&ts->lock);
}

static void
tokensrv_set(struct tokensrv *ts, const char *token, int expires_in, int status)
{
	pthread_mutex_lock(&ts->lock);
	snprintf(ts->token, sizeof(ts->token), "%s", token);
	ts->expires_in = expires_in;
	ts->status = status;
	pthread_mutex_unlock(&ts->lock);
}

static int
tokensrv_requests(struct tokensrv *ts)
{
	int n;

	pthread_mutex_lock(&ts->lock);
	n = ts->requests;
	pthread_mutex_unlock(&ts->lock);
	return n;
}

static void
set_server_token(struct fx *fx, const char *token)
{
	char body[600];

	snprintf(body, sizeof(body), "{\"token\": \"%s\"}", token);
	json_decref(emu_ctl(fx->emu, "POST", "/_emulator/token", body));
}

static void
test_oauth_token_is_cached_and_refreshed_after_a_401(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_client *c;
	struct tokensrv ts = {0};
	struct http_stats st;

	tokensrv_start(&ts, "oa-1", 3600);
	set_server_token(fx, "oa-1");
	o.token_url = ts.url;
	o.client_id = "svc one";
	o.client_secret = SECRET;
	c = client(&o);
	for (int i = 0; i < 3; i++)
		assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(tokensrv_requests(&ts), 1);
	assert_int_equal(ts.bad_requests, 0);

	/* the server stops accepting it: the 401 fetches a new one, once */
	tokensrv_set(&ts, "oa-2", 3600, 200);
	set_server_token(fx, "oa-2");
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(r.attempts, 2);
	assert_int_equal(tokensrv_requests(&ts), 2);
	http_client_stats(c, &st);
	assert_int_equal(st.token_fetches, 2);
	http_response_clear(&r);
	http_client_free(c);
	tokensrv_stop(&ts);
}

static void
test_oauth_token_is_refreshed_before_it_expires(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_client *c;
	struct tokensrv ts = {0};

	/* valid 1 s: refreshed after half of it (the margin never takes more) */
	tokensrv_start(&ts, "oa-short", 1);
	set_server_token(fx, "oa-short");
	o.token_url = ts.url;
	o.client_id = "svc one";
	o.client_secret = SECRET;
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(tokensrv_requests(&ts), 1);
	emu_sleep_ms(600);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(tokensrv_requests(&ts), 2);
	assert_int_equal(r.attempts, 1); /* no 401 needed */
	http_response_clear(&r);
	http_client_free(c);
	tokensrv_stop(&ts);
}

struct oauth_worker {
	struct http_client *c;
	atomic_int *failures;
};

static void *
oauth_worker_run(void *arg)
{
	struct oauth_worker *w = arg;
	struct http_response r = {0};

	for (int i = 0; i < 5; i++)
		if (get(w->c, "ListScripts", "/v1/scriptum/scripts", &r, NULL) != 0)
			atomic_fetch_add(w->failures, 1);
	http_response_clear(&r);
	return NULL;
}

static void
test_oauth_threads_wait_for_one_fetch(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_client *c;
	struct tokensrv ts = {0};
	struct oauth_worker w[8];
	pthread_t t[8];
	atomic_int failures = 0;

	tokensrv_start(&ts, "oa-shared", 3600);
	set_server_token(fx, "oa-shared");
	o.token_url = ts.url;
	o.client_id = "svc one";
	o.client_secret = SECRET;
	c = client(&o);
	for (int i = 0; i < 8; i++) {
		w[i].c = c;
		w[i].failures = &failures;
		assert_int_equal(pthread_create(&t[i], NULL, oauth_worker_run, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&failures), 0);
	assert_int_equal(tokensrv_requests(&ts), 1);
	http_client_free(c);
	tokensrv_stop(&ts);
}

static void
b64url(const char *in, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = strlen(in), o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)in[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
}

static void
test_oauth_expiry_from_the_jwt_exp_claim(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_client *c;
	struct tokensrv ts = {0};
	char claims[128], hdr[64], payload[256], jwt[400];

	/* no expires_in; the JWT says it lasts an hour: fetched once */
	snprintf(claims, sizeof(claims), "{\"sub\":\"svc\",\"exp\":%lld}",
	         (long long)time(NULL) + 3600);
	b64url("{\"alg\":\"none\"}", hdr);
	b64url(claims, payload);
	snprintf(jwt, sizeof(jwt), "%s.%s.c2ln", hdr, payload);
	tokensrv_start(&ts, jwt, -1);
	set_server_token(fx, jwt);
	o.token_url = ts.url;
	o.client_id = "svc one";
	o.client_secret = SECRET;
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(tokensrv_requests(&ts), 1);
	http_client_free(c);

	/* a JWT that has expired is fetched again for every call */
	snprintf(claims, sizeof(claims), "{\"sub\":\"svc\",\"exp\":%lld}",
	         (long long)time(NULL) - 10);
	b64url(claims, payload);
	snprintf(jwt, sizeof(jwt), "%s.%s.c2ln", hdr, payload);
	tokensrv_set(&ts, jwt, -1, 200);
	set_server_token(fx, jwt);
	c = client(&o);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, NULL), 0);
	assert_int_equal(tokensrv_requests(&ts), 3);
	http_response_clear(&r);
	http_client_free(c);
	tokensrv_stop(&ts);
}

static void
test_oauth_rejected_credentials_are_eacces_without_the_secret(void **state)
{
	struct fx *fx = *state;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_error e;
	struct http_client *c;
	struct tokensrv ts = {0};
	char path[128], text[1024];

	tokensrv_start(&ts, "unused", 60);
	tokensrv_set(&ts, "unused", 60, 401);
	snprintf(path, sizeof(path), "%s/secret", emu_dir(fx->emu));
	write_file(path, SECRET "\n", 0600);
	o.token_url = ts.url;
	o.client_id = "svc one";
	o.client_secret_file = path;
	c = client(&o);
	assert_int_equal(get(c, "GetThread", "/v1/scriptum/threads/x", &r, &e), -EACCES);
	assert_int_equal(e.exit_code, 3);
	assert_string_equal(e.call, "GetThread");
	http_error_string(&e, text, sizeof(text));
	assert_non_null(strstr(text, "token endpoint: invalid_client"));
	assert_null(strstr(text, "S3CRET"));
	assert_int_equal(ts.bad_requests, 0); /* the form was right, secret from the file */
	http_response_clear(&r);
	http_client_free(c);
	tokensrv_stop(&ts);
}

/* ---- HTTPS ---- */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void
test_https_with_a_private_ca(void **state)
{
	struct fx *fx = *state;
	struct emu *tls = NULL;
	struct http_options o = opts(fx);
	struct http_response r = {0};
	struct http_error e;
	struct http_client *c;
	char ca[128], cert[128], key[128], url[256];
	const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
	const char *d = emu_dir(fx->emu);

	snprintf(ca, sizeof(ca), "%s/ca.pem", d);
	snprintf(cert, sizeof(cert), "%s/srv.pem", d);
	snprintf(key, sizeof(key), "%s/srv.key", d);
	if (sh("(cd %s && printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > "
	       "ext && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
	       "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && "
	       "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
	       "-keyout srv.key -out srv.csr -subj /CN=127.0.0.1 && "
	       "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
	       "-out srv.pem -days 2 -extfile ext) >/dev/null 2>&1",
	       d) != 0 ||
	    emu_start(extra, &tls) != 0) {
		skip();
		return;
	}
	assert_int_equal(strncmp(emu_url(tls), "https://", 8), 0);
	snprintf(url, sizeof(url), "%s", emu_url(tls));
	o.endpoint = url;
	o.ca_file = ca;
	c = client(&o);
	assert_int_equal(get(c, "HealthCheck", "/v1/scriptum/health", &r, &e), 0);
	assert_int_equal(get(c, "ListScripts", "/v1/scriptum/scripts", &r, &e), 0);
	http_client_free(c);

	/* without the CA the certificate is refused, and that is not retried */
	o.ca_file = NULL;
	c = client(&o);
	assert_int_equal(get(c, "HealthCheck", "/v1/scriptum/health", &r, &e), -EIO);
	assert_int_equal(r.attempts, 1);
	assert_non_null(strstr(e.message, "certificate"));
	http_client_free(c);
	http_response_clear(&r);
	emu_stop(tls);
}

/* ---- no server needed ---- */

static void
test_escape_keeps_unreserved_and_encodes_the_rest(void **state)
{
	char out[128], small[8];
	char *dup;

	(void)state;
	assert_int_equal(http_escape("AZaz09-._~", out, sizeof(out)), 10);
	assert_string_equal(out, "AZaz09-._~");
	assert_int_equal(http_escape("thr 1/\xc3\xa4?&=%+#", out, sizeof(out)), 34);
	assert_string_equal(out, "thr%201%2F%C3%A4%3F%26%3D%25%2B%23");
	assert_int_equal(http_escape("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(http_escape("../..", out, sizeof(out)), 7);
	assert_string_equal(out, "..%2F..");
	/* a whole segment of dots would be a dot-segment: those dots are encoded */
	assert_int_equal(http_escape("..", out, sizeof(out)), 6);
	assert_string_equal(out, "%2E%2E");
	assert_int_equal(http_escape(".", out, sizeof(out)), 3);
	assert_string_equal(out, "%2E");
	assert_int_equal(http_escape("...", out, sizeof(out)), 3);
	assert_int_equal(http_escape("a b c d", small, sizeof(small)), -ENAMETOOLONG);
	assert_string_equal(small, "");
	assert_int_equal(http_escape("1.2.0", small, sizeof(small)), 5);
	dup = http_escape_dup("1.2 x");
	assert_string_equal(dup, "1.2%20x");
	free(dup);
}

static void
test_bad_options_are_rejected(void **state)
{
	struct http_options o = {.endpoint = "http://127.0.0.1:1"};
	struct http_client *c = NULL;
	char err[256];

	(void)state;
	o.token = "t";
	o.token_file = "/nonexistent";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "token_file"));
	o.token_file = NULL;
	o.token = "two words";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	assert_null(strstr(err, "two words"));
	o.token = NULL;
	o.token_url = "http://127.0.0.1:1/token";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.client_id = "id";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.client_secret = "s";
	o.client_secret_file = "/f";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.client_secret_file = NULL;
	o.org_name = "evil\r\nX-Injected: 1";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.org_name = NULL;
	o.endpoint = "ftp://127.0.0.1";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.endpoint = NULL;
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -EINVAL);
	o.endpoint = "http://127.0.0.1:1/";
	o.ca_file = "/nonexistent/ca.pem";
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), -ENOENT);
	o.ca_file = NULL;
	assert_int_equal(http_client_new(&o, &c, err, sizeof(err)), 0);
	http_client_free(c);
}

#define T(name)  cmocka_unit_test_setup_teardown(name, setup, teardown)
#define TA(name) cmocka_unit_test_setup_teardown(name, setup_token, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_keeps_unreserved_and_encodes_the_rest),
	    cmocka_unit_test(test_bad_options_are_rejected),
	    T(test_get_buffers_the_json_body),
	    T(test_post_sends_the_json_body),
	    T(test_org_headers_are_sent),
	    T(test_connection_is_reused_across_calls),
	    T(test_threads_share_one_client),
	    T(test_503_burst_is_absorbed_by_retries),
	    T(test_retry_after_is_honoured),
	    T(test_unavailable_past_the_deadline_is_eagain),
	    T(test_post_is_not_resent_after_502_unless_idempotent),
	    T(test_not_found_keeps_the_server_message),
	    T(test_non_json_error_body_is_mapped_by_status),
	    TA(test_wrong_token_is_eacces_and_never_shown),
	    T(test_deadline_exceeded_is_etimedout),
	    T(test_stream_goes_to_the_callback),
	    T(test_callback_error_stops_the_transfer),
	    T(test_stalled_stream_is_aborted_after_the_stall_time),
	    T(test_a_trickling_stream_fails_below_the_rate_floor),
	    T(test_no_floor_for_a_request_that_asks_for_none),
	    T(test_a_slow_reader_is_not_the_server_below_the_floor),
	    cmocka_unit_test(test_a_configured_0_is_no_floor_and_unset_the_default),
	    T(test_cut_stream_is_an_error),
	    T(test_buffered_body_over_the_cap_is_emsgsize),
	    T(test_abort_ends_a_stalled_transfer_at_once),
	    T(test_abort_interrupts_the_back_off),
	    T(test_dead_server_is_eio_within_the_deadline),
	    TA(test_token_file_change_is_picked_up),
	    TA(test_token_file_is_reread_after_a_401),
	    TA(test_token_file_others_can_read_is_refused),
	    TA(test_oauth_token_is_cached_and_refreshed_after_a_401),
	    TA(test_oauth_token_is_refreshed_before_it_expires),
	    TA(test_oauth_threads_wait_for_one_fetch),
	    TA(test_oauth_expiry_from_the_jwt_exp_claim),
	    TA(test_oauth_rejected_credentials_are_eacces_without_the_secret),
	    T(test_https_with_a_private_ca),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
