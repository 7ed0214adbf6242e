/*
 * The stream parser: every framing of SPEC §2.6, cut at every byte offset
 * (in two, in three, and one byte at a time), giving the same messages;
 * server errors, oversized messages and truncated bodies; big messages
 * parsed without quadratic rescans.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "stream.h"

/* What one run of the parser produced. */
struct result {
	json_t *got; /* owned: the messages, in order */
	int rc;      /* the first non-zero feed, else stream_finish() */
	enum stream_framing framing;
	bool has_status;
	struct errmap_status status;
	json_t *details; /* owned */
	char errstr[256];
	size_t buffered_max;
};

static int
collect(json_t *msg, void *arg)
{
	json_array_append((json_t *)arg, msg);
	return 0;
}

static void
result_clear(struct result *r)
{
	json_decref(r->got);
	json_decref(r->details);
	memset(r, 0, sizeof(*r));
}

/* Feeds in[0..len) in pieces ending at cuts[0..ncuts), then finishes. */
static void
run_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t max, struct result *r)
{
	struct stream *p;
	size_t at = 0;

	memset(r, 0, sizeof(*r));
	r->got = json_array();
	p = stream_new(collect, r->got, max);
	assert_non_null(p);
	for (size_t k = 0; k <= ncuts && r->rc == 0; k++) {
		size_t end = k < ncuts ? cuts[k] : len;

		r->rc = stream_feed(p, in + at, end - at);
		if (stream_buffered(p) > r->buffered_max)
			r->buffered_max = stream_buffered(p);
		at = end;
	}
	if (r->rc == 0)
		r->rc = stream_finish(p);
	else
		assert_int_equal(stream_finish(p), r->rc); /* the error sticks */
	r->framing = stream_framing(p);
	assert_int_equal(stream_count(p), json_array_size(r->got));
	if (stream_error(p) != NULL) {
		r->has_status = true;
		r->status = *stream_error(p);
	}
	r->details = json_incref(stream_error_details(p));
	snprintf(r->errstr, sizeof(r->errstr), "%s", stream_errstr(p));
	stream_free(p);
}

static void
run_whole(const char *in, size_t len, size_t max, struct result *r)
{
	run_cuts(in, len, NULL, 0, max, r);
}

static void
assert_same(const struct result *r, const json_t *want, int want_rc, const char *how)
{
	if (r->rc != want_rc)
		fail_msg("%s: rc %d (%s), want %d", how, r->rc, r->errstr, want_rc);
	if (!json_equal(r->got, want)) {
		char *g = json_dumps(r->got, JSON_COMPACT | JSON_SORT_KEYS);
		char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);

		fail_msg("%s:\n got %s\nwant %s", how, g, w);
	}
}

/*
 * Runs in whole, cut in two at every offset, cut in three at every pair of
 * offsets, and one byte at a time: each must give the messages of
 * want_json (a JSON array) and end with want_rc. Returns the whole run.
 */
static void
check_every_cut(const char *in, size_t len, const char *want_json, int want_rc,
                enum stream_framing framing, struct result *whole)
{
	json_t *want = json_loads(want_json, 0, NULL);
	struct result r;
	char how[64];

	assert_non_null(want);
	run_whole(in, len, 0, whole);
	assert_same(whole, want, want_rc, "whole");
	assert_int_equal(whole->framing, framing);

	for (size_t a = 0; a <= len; a++) {
		run_cuts(in, len, &a, 1, 0, &r);
		snprintf(how, sizeof(how), "cut at %zu", a);
		assert_same(&r, want, want_rc, how);
		assert_int_equal(r.has_status, whole->has_status);
		result_clear(&r);
		for (size_t b = a; b <= len && len <= 400; b++) {
			size_t cuts[2] = {a, b};

			run_cuts(in, len, cuts, 2, 0, &r);
			snprintf(how, sizeof(how), "cut at %zu and %zu", a, b);
			assert_same(&r, want, want_rc, how);
			result_clear(&r);
		}
	}

	size_t *cuts = malloc((len + 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	run_cuts(in, len, cuts, len, 0, &r);
	assert_same(&r, want, want_rc, "byte at a time");
	result_clear(&r);
	free(cuts);
	json_decref(want);
}

static void
check_ok(const char *in, const char *want_json, enum stream_framing framing)
{
	struct result whole;

	check_every_cut(in, strlen(in), want_json, 0, framing, &whole);
	result_clear(&whole);
}

/* The messages every framing below carries. */
#define TWO "[{\"a\":1},{\"b\":\"x\",\"n\":[1,{\"c\":null}]}]"

static void
test_stream_accepts_ndjson_with_result_wrapper(void **state)
{
	(void)state;
	check_ok("{\"result\":{\"a\":1}}\n{\"result\":{\"b\":\"x\",\"n\":[1,{\"c\":null}]}}\n", TWO,
	         STREAM_FRAMING_NDJSON);
}

static void
test_stream_accepts_ndjson_of_bare_messages(void **state)
{
	(void)state;
	check_ok("{\"a\":1}\n{\"b\":\"x\",\"n\":[1,{\"c\":null}]}\n", TWO, STREAM_FRAMING_NDJSON);
	check_ok("{\"a\":1}\r\n{\"b\":\"x\",\"n\":[1,{\"c\":null}]}", TWO, STREAM_FRAMING_NDJSON);
}

static void
test_stream_accepts_objects_without_newlines(void **state)
{
	(void)state;
	check_ok("{\"a\":1}{\"result\":{\"b\":\"x\",\"n\":[1,{\"c\":null}]}}", TWO,
	         STREAM_FRAMING_NDJSON);
	check_ok("\n\n  {\"a\"\n:\n1}  \t{\"b\" : \"x\",\n \"n\":[1,{\"c\":null}]\n}\n\n", TWO,
	         STREAM_FRAMING_NDJSON);
}

static void
test_stream_accepts_json_array(void **state)
{
	(void)state;
	check_ok("[{\"result\":{\"a\":1}},{\"result\":{\"b\":\"x\",\"n\":[1,{\"c\":null}]}}]", TWO,
	         STREAM_FRAMING_ARRAY);
	check_ok("\n[\n  {\"a\":1}\n  ,\n  {\"b\":\"x\",\"n\":[1,{\"c\":null}]}\n]\n", TWO,
	         STREAM_FRAMING_ARRAY);
	check_ok("[]", "[]", STREAM_FRAMING_ARRAY);
	check_ok(" [ \r\n ] \n", "[]", STREAM_FRAMING_ARRAY);
}

static void
test_stream_accepts_sse_with_lf(void **state)
{
	(void)state;
	check_ok("event: message\nid: 1\ndata: {\"result\":{\"a\":1}}\n\n"
	         ": keep-alive\n\n"
	         "data:{\"b\":\"x\",\"n\":[1,{\"c\":null}]}\n\n",
	         TWO, STREAM_FRAMING_SSE);
}

static void
test_stream_accepts_sse_with_crlf(void **state)
{
	(void)state;
	check_ok("event: message\r\nid: 1\r\ndata: {\"result\":{\"a\":1}}\r\n\r\n"
	         ":\r\n\r\n"
	         "retry: 1000\r\ndata:{\"b\":\"x\",\"n\":[1,{\"c\":null}]}\r\n\r\n",
	         TWO, STREAM_FRAMING_SSE);
}

static void
test_stream_accepts_sse_with_bare_cr(void **state)
{
	(void)state;
	check_ok("data: {\"a\":1}\r\rdata: {\"b\":\"x\",\"n\":[1,{\"c\":null}]}\r\r", TWO,
	         STREAM_FRAMING_SSE);
}

static void
test_stream_accepts_sse_message_over_several_data_lines(void **state)
{
	(void)state;
	check_ok("data: {\"a\":\ndata: 1}\n\ndata: {\"b\":\"x\",\ndata:\"n\":[1,\ndata\ndata: "
	         "{\"c\":null}]}\n\n",
	         TWO, STREAM_FRAMING_SSE);
	/* Several messages in one event, and a last event with no blank line. */
	check_ok("id: 7\ndata: {\"a\":1}\ndata: {\"b\":\"x\",\"n\":[1,{\"c\":null}]}", TWO,
	         STREAM_FRAMING_SSE);
}

static void
test_stream_ignores_unknown_sse_fields(void **state)
{
	(void)state;
	check_ok("dataset: {\"not\":\"this\"}\nevents: x\nd: 1\n:data: {}\n"
	         "data: {\"a\":1}\n\n"
	         "data: {\"b\":\"x\",\"n\":[1,{\"c\":null}]}\n\n",
	         TWO, STREAM_FRAMING_SSE);
}

static void
test_stream_handles_braces_quotes_and_backslashes_in_strings(void **state)
{
	const char *in = "{\"result\":{\"s\":\"}{][\\\"}\\\\\",\"t\":\"\\\\\"}}\n"
	                 "[\"not an array stream\"]";
	const char *sse = "data: {\"s\":\"}{][\\\"}\\\\\",\"t\":\"\\\\\"}\n\n"
	                  "data: {\"u\":\"\\u007d\\\"\\\\\\\"{\"}\n\n";
	const char *arr = "[{\"s\":\"]\"},{\"s\":\",[\"},{\"s\":\"\\\\\\\\\"}]";
	struct result r;

	(void)state;
	/* An NDJSON stream may not go on with an array. */
	check_every_cut(in, strlen(in), "[{\"s\":\"}{][\\\"}\\\\\",\"t\":\"\\\\\"}]", -EPROTO,
	                STREAM_FRAMING_NDJSON, &r);
	result_clear(&r);
	check_ok(sse, "[{\"s\":\"}{][\\\"}\\\\\",\"t\":\"\\\\\"},{\"u\":\"}\\\"\\\\\\\"{\"}]",
	         STREAM_FRAMING_SSE);
	check_ok(arr, "[{\"s\":\"]\"},{\"s\":\",[\"},{\"s\":\"\\\\\\\\\"}]", STREAM_FRAMING_ARRAY);
}

static void
test_stream_passes_unknown_fields_through(void **state)
{
	(void)state;
	check_ok("{\"result\":{\"chunk\":{\"chunkIndex\":\"0\",\"data\":\"QQ==\",\"isFinal\":true},"
	         "\"futureField\":{\"x\":[1,2.5,true,null]}}}\n",
	         "[{\"chunk\":{\"chunkIndex\":\"0\",\"data\":\"QQ==\",\"isFinal\":true},"
	         "\"futureField\":{\"x\":[1,2.5,true,null]}}]",
	         STREAM_FRAMING_NDJSON);
	/* "result" beside other keys is not the wrapper. */
	check_ok("{\"result\":1,\"other\":2}", "[{\"result\":1,\"other\":2}]",
	         STREAM_FRAMING_NDJSON);
}

static void
test_stream_delivers_many_messages_from_one_feed(void **state)
{
	const size_t n = 10000;
	char *in = malloc(n * 40);
	size_t len = 0;
	struct result r;

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(in + len, n * 40 - len, "{\"result\":{\"i\":%zu}}\n", i);
	run_whole(in, len, 0, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(json_array_size(r.got), n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(r.got, i), "i")),
		                 i);
	assert_int_equal(r.buffered_max, 0); /* all parsed in place */
	result_clear(&r);
	free(in);
}

static void
test_stream_reports_error_line_with_code_and_message(void **state)
{
	const char *in = "{\"result\":{\"a\":1}}\n"
	                 "{\"error\":{\"code\":5,\"message\":\"thread t-1 was deleted\","
	                 "\"details\":[{\"@type\":\"type.googleapis.com/x\"}]}}\n";
	struct result r;

	(void)state;
	check_every_cut(in, strlen(in), "[{\"a\":1}]", -EREMOTEIO, STREAM_FRAMING_NDJSON, &r);
	assert_true(r.has_status);
	assert_int_equal(r.status.code, 5);
	assert_string_equal(r.status.message, "thread t-1 was deleted");
	assert_int_equal(json_array_size(r.details), 1);
	assert_non_null(strstr(r.errstr, "NOT_FOUND"));
	assert_non_null(strstr(r.errstr, "thread t-1 was deleted"));
	result_clear(&r);
}

static void
test_stream_reports_errors_in_every_framing(void **state)
{
	static const struct {
		const char *in;
		int code;
		const char *msg;
	} cases[] = {
	    /* A string code, as the message of an array. */
	    {"[{\"a\":1},{\"error\":{\"code\":\"UNAVAILABLE\",\"message\":\"bye\"}}]", 14, "bye"},
	    /* grpc-gateway v1. */
	    {"{\"a\":1}{\"error\":{\"grpc_code\":13,\"http_code\":500,\"message\":\"v1\","
	     "\"http_status\":\"Internal Server Error\"}}",
	     13, "v1"},
	    /* Inside the result wrapper. */
	    {"{\"a\":1}\n{\"result\":{\"error\":{\"code\":4,\"message\":\"late\"}}}\n", 4, "late"},
	    /* As SSE data. */
	    {"data: {\"a\":1}\n\ndata: {\"error\":{\"code\":8,\"message\":\"slow down\"}}\n\n", 8,
	     "slow down"},
	    /* As an SSE error event with a bare Status. */
	    {"data: {\"a\":1}\n\nevent: error\ndata: {\"code\":16,\"message\":\"token "
	     "expired\"}\n\n",
	     16, "token expired"},
	    /* With only a string. */
	    {"{\"a\":1}\n{\"error\":\"something broke\"}\n", -1, "something broke"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct result r;
		enum stream_framing f = cases[i].in[0] == '['   ? STREAM_FRAMING_ARRAY
		                        : cases[i].in[0] == 'd' ? STREAM_FRAMING_SSE
		                                                : STREAM_FRAMING_NDJSON;

		check_every_cut(cases[i].in, strlen(cases[i].in), "[{\"a\":1}]", -EREMOTEIO, f, &r);
		assert_true(r.has_status);
		assert_int_equal(r.status.code, cases[i].code);
		assert_string_equal(r.status.message, cases[i].msg);
		result_clear(&r);
	}
}

static void
test_stream_error_stops_the_stream(void **state)
{
	const char *in = "{\"error\":{\"code\":13,\"message\":\"x\"}}\n{\"a\":1}\n";
	struct result r;

	(void)state;
	/* Nothing after the error is delivered, whatever the cuts. */
	check_every_cut(in, strlen(in), "[]", -EREMOTEIO, STREAM_FRAMING_NDJSON, &r);
	result_clear(&r);
}

static void
test_stream_rejects_message_over_the_cap(void **state)
{
	const size_t cap = 1024;
	char in[10000];
	struct result r;
	size_t cuts[100];

	(void)state;
	memcpy(in, "{\"result\":{\"data\":\"", 19);
	memset(in + 19, 'A', sizeof(in) - 19 - 3);
	memcpy(in + sizeof(in) - 3, "\"}}", 3);
	for (size_t i = 0; i < 100; i++)
		cuts[i] = (i + 1) * 99;

	/* In pieces: fails as soon as the buffer would pass the cap. */
	run_cuts(in, sizeof(in), cuts, 100, cap, &r);
	assert_int_equal(r.rc, -EMSGSIZE);
	assert_true(r.buffered_max <= cap + 1); /* and its NUL */
	assert_int_equal(json_array_size(r.got), 0);
	assert_non_null(strstr(r.errstr, "1024"));
	result_clear(&r);

	/* Whole, in one feed: nothing is buffered at all. */
	run_whole(in, sizeof(in), cap, &r);
	assert_int_equal(r.rc, -EMSGSIZE);
	assert_int_equal(r.buffered_max, 0);
	result_clear(&r);
}

/* A message within the byte cap whose parsed form would pass 4 times the
 * cap (a quarter-million empty objects cost about 55 bytes a byte) is
 * refused as too large, not parsed (issue 13, bug 9). */
static void
test_stream_message_too_costly_to_parse_is_emsgsize(void **state)
{
	const size_t cap = (size_t)1 << 20;
	char *in = malloc(cap);
	struct result r;
	size_t n;

	(void)state;
	assert_non_null(in);
	n = (size_t)snprintf(in, cap, "{\"result\":{\"n\":[{}");
	while (n + 8 < cap) {
		memcpy(in + n, ",{}", 3);
		n += 3;
	}
	memcpy(in + n, "]}}\n", 4);
	n += 4;
	run_whole(in, n, cap, &r);
	assert_int_equal(r.rc, -EMSGSIZE);
	assert_int_equal(json_array_size(r.got), 0);
	assert_non_null(strstr(r.errstr, "too large to parse"));
	assert_non_null(strstr(r.errstr, "4194304"));
	result_clear(&r);
	free(in);
}

static void
test_stream_message_exactly_at_cap_is_accepted(void **state)
{
	const size_t cap = 4096;
	char *in = malloc(cap + 1);
	struct result r;
	size_t cuts[3] = {1, 100, 4000};

	(void)state;
	assert_non_null(in);
	memcpy(in, "{\"d\":\"", 6);
	memset(in + 6, 'Q', cap - 8);
	memcpy(in + cap - 2, "\"}", 2);
	run_cuts(in, cap, cuts, 3, cap, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(json_array_size(r.got), 1);
	assert_true(r.buffered_max <= cap + 1); /* and its NUL */
	result_clear(&r);

	/* One byte more is over. */
	memcpy(in, "{\"dd\":\"", 7);
	memset(in + 7, 'Q', cap - 8);
	memcpy(in + cap - 1, "\"}", 2);
	run_cuts(in, cap + 1, cuts, 3, cap, &r);
	assert_int_equal(r.rc, -EMSGSIZE);
	result_clear(&r);
	free(in);
}

static void
test_stream_finish_rejects_unterminated_array(void **state)
{
	struct result r;

	(void)state;
	check_every_cut("[{\"a\":1},{\"b\":\"x\",\"n\":[1,{\"c\":null}]}", 37, TWO, -EPROTO,
	                STREAM_FRAMING_ARRAY, &r);
	assert_non_null(strstr(r.errstr, "]"));
	result_clear(&r);
	check_every_cut("[{\"a\":1},", 9, "[{\"a\":1}]", -EPROTO, STREAM_FRAMING_ARRAY, &r);
	result_clear(&r);
	check_every_cut("  [", 3, "[]", -EPROTO, STREAM_FRAMING_ARRAY, &r);
	result_clear(&r);
}

static void
test_stream_finish_rejects_body_cut_mid_object(void **state)
{
	struct result r;

	(void)state;
	check_every_cut("{\"a\":1}\n{\"b\":\"x}", 16, "[{\"a\":1}]", -EPROTO, STREAM_FRAMING_NDJSON,
	                &r);
	assert_non_null(strstr(r.errstr, "inside a message"));
	result_clear(&r);
	check_every_cut("[{\"a\":1},{\"b\":[", 15, "[{\"a\":1}]", -EPROTO, STREAM_FRAMING_ARRAY,
	                &r);
	result_clear(&r);
	check_every_cut("data: {\"a\":1}\n\ndata: {\"b\":", 26, "[{\"a\":1}]", -EPROTO,
	                STREAM_FRAMING_SSE, &r);
	result_clear(&r);
	/* An SSE event that ends before its message does is an error at once. */
	check_every_cut("data: {\"a\":\n\ndata: {\"b\":1}\n\n", 28, "[]", -EPROTO,
	                STREAM_FRAMING_SSE, &r);
	result_clear(&r);
}

static void
test_stream_accepts_empty_body(void **state)
{
	struct result r;

	(void)state;
	check_every_cut("", 0, "[]", 0, STREAM_FRAMING_UNKNOWN, &r);
	result_clear(&r);
	check_every_cut(" \r\n\n", 4, "[]", 0, STREAM_FRAMING_UNKNOWN, &r);
	result_clear(&r);
}

static void
test_stream_rejects_bad_framing(void **state)
{
	static const char *bad[] = {
	    "hello\n",                  /* not a framing */
	    "{\"a\":1} x",              /* garbage between messages */
	    "{\"a\":1},{\"b\":2}",      /* commas outside an array */
	    "[{\"a\":1}{\"b\":2}]",     /* no comma inside one */
	    "[{\"a\":1},]",             /* a trailing comma */
	    "[,{\"a\":1}]",             /* a leading one */
	    "[{\"a\":1}] {\"b\":2}",    /* something after the array */
	    "[1,2]",                    /* messages are objects */
	    "{\"a\":}\n",               /* not JSON */
	    "{\"a\":1]\n{\"b\":2}\n",   /* mismatched brackets */
	    "data: [{\"a\":1}]\n\n",    /* SSE data must be objects */
	    "data: {\"a\":1} junk\n\n", /* ...and only objects */
	};
	struct result r;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run_whole(bad[i], strlen(bad[i]), 0, &r);
		if (r.rc != -EPROTO)
			fail_msg("\"%s\": rc %d, want -EPROTO", bad[i], r.rc);
		assert_true(strlen(r.errstr) > 0);
		result_clear(&r);
	}
}

static int
refuse_second(json_t *msg, void *arg)
{
	size_t *n = arg;

	(void)msg;
	return ++*n == 2 ? -ECANCELED : 0;
}

static void
test_stream_stops_when_callback_refuses(void **state)
{
	const char *in = "{\"a\":1}{\"b\":2}{\"c\":3}";
	size_t n = 0;
	struct stream *p = stream_new(refuse_second, &n, 0);

	(void)state;
	assert_non_null(p);
	assert_int_equal(stream_feed(p, in, strlen(in)), -ECANCELED);
	assert_int_equal(n, 2);
	assert_int_equal(stream_feed(p, in, strlen(in)), -ECANCELED);
	assert_int_equal(stream_finish(p), -ECANCELED);
	assert_int_equal(n, 2);
	assert_null(stream_error(p));
	stream_free(p);
}

static int
check_chunk(json_t *msg, void *arg)
{
	size_t *len = arg;
	json_t *chunk = json_object_get(msg, "chunk");

	*len += json_string_length(json_object_get(chunk, "data"));
	return 0;
}

/* A 16 MiB chunk fed as a network hands it over, 16 KiB at a time. */
static void
test_stream_parses_16mib_message_in_small_feeds(void **state)
{
	const size_t data = 16 << 20;
	const char *head = "{\"result\":{\"chunk\":{\"chunkIndex\":\"3\",\"data\":\"";
	const char *tail = "\",\"isFinal\":true}}}\n";
	size_t hl = strlen(head), tl = strlen(tail), len = hl + data + tl, got = 0;
	char *in = malloc(len);
	struct stream *p = stream_new(check_chunk, &got, 0);

	(void)state;
	assert_non_null(in);
	assert_non_null(p);
	memcpy(in, head, hl);
	for (size_t i = 0; i < data; i++)
		in[hl + i] = "ABCDEFGHabcdefgh01234567+/"[i % 26];
	memcpy(in + hl + data, tail, tl);
	for (int round = 0; round < 2; round++) {
		for (size_t at = 0; at < len; at += 16384) {
			size_t n = len - at < 16384 ? len - at : 16384;

			assert_int_equal(stream_feed(p, in + at, n), 0);
		}
	}
	assert_int_equal(stream_finish(p), 0);
	assert_int_equal(got, 2 * data);
	/* One buffer, reused, not much bigger than the message. */
	assert_true(stream_buffered(p) >= len && stream_buffered(p) <= 2 * len);
	stream_free(p);
	free(in);
}

/* A string of backslashes with its closing quote far away: linear, not quadratic. */
static void
test_stream_scans_escape_heavy_strings_in_linear_time(void **state)
{
	const size_t n = 8 << 20;
	char *in = malloc(n + 32);
	size_t got = 0, len;
	struct stream *p = stream_new(check_chunk, &got, 0);

	(void)state;
	assert_non_null(in);
	assert_non_null(p);
	len = strlen("{\"chunk\":{\"data\":\"");
	memcpy(in, "{\"chunk\":{\"data\":\"", len);
	for (size_t i = 0; i < n; i += 2) {
		in[len++] = '\\';
		in[len++] = i % 4 ? 'n' : '\\';
	}
	memcpy(in + len, "\"}}", 3);
	len += 3;
	assert_int_equal(stream_feed(p, in, len), 0);
	assert_int_equal(stream_finish(p), 0);
	assert_int_equal(got, n / 2);
	stream_free(p);
	free(in);
}

/* fmt with the big string for its first %s and a prefix of it for its second; caller frees. */
static char *
big_message(const char *fmt, size_t n)
{
	char *big = malloc(n + 1), *out;

	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = "ABCDEFGHabcdefgh01234567+/="[i % 27];
	big[n] = '\0';
	assert_true(asprintf(&out, fmt, big, big) > 0);
	free(big);
	return out;
}

/* The stream gives what jansson alone makes of the message, however it is cut. */
static void
check_big(const char *in, int want_rc)
{
	size_t len = strlen(in);
	json_t *want = json_array();
	json_t *whole = json_loadb(in, len, JSON_ALLOW_NUL, NULL);
	size_t cuts[][3] = {{1, 2, 3}, {len / 3, len / 2, len - 2}, {30, 20000, len - 1}};
	struct result r;

	if (want_rc == 0) {
		json_t *res;

		assert_non_null(whole);
		res = json_object_size(whole) == 1 ? json_object_get(whole, "result") : NULL;
		json_array_append(want, res != NULL ? res : whole);
	}
	run_whole(in, len, 0, &r);
	assert_same(&r, want, want_rc, "whole");
	result_clear(&r);
	for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		run_cuts(in, len, cuts[k], 3, 0, &r);
		assert_same(&r, want, want_rc, "cut");
		result_clear(&r);
	}
	json_decref(whole);
	json_decref(want);
}

static void
test_stream_big_strings_parse_as_jansson_does(void **state)
{
	char *m;

	(void)state;
	/* A chunk, as StreamThreadResult sends it. */
	m = big_message("{\"result\":{\"chunk\":{\"chunkIndex\":\"7\",\"data\":\"%s\",\"isFinal\":"
	                "false,\"x\":\"%.3s\"}}}\n",
	                100000);
	check_big(m, 0);
	free(m);
	/* In an array, nested, beside other strings. */
	m = big_message("{\"a\":[1,{\"b\":[\"s\",\"%s\"]}],\"c\":\"%.20000s\"}", 70000);
	check_big(m, 0);
	free(m);
	/* As a key, where no value can stand in for it. */
	m = big_message("{\"%s\":1,\"k\":\"%.10s\"}", 50000);
	check_big(m, 0);
	free(m);
	/* Not ASCII: left to jansson's UTF-8 checks, whether valid... */
	m = big_message("{\"d\":\"%s\\u00e9\",\"e\":\"%.5s\xc3\xa9\"}", 40000);
	check_big(m, 0);
	free(m);
	m = big_message("{\"d\":\"\xc3\xa9%s\",\"e\":\"%.5s\"}", 40000);
	check_big(m, 0);
	free(m);
	/* ...or not. */
	m = big_message("{\"d\":\"%s\xff\",\"e\":\"%.5s\"}", 40000);
	check_big(m, -EPROTO);
	free(m);
	/* A raw control character is not JSON however long the string. */
	m = big_message("{\"d\":\"%s\x01\",\"e\":\"%.5s\"}", 40000);
	check_big(m, -EPROTO);
	free(m);
	/* ... wherever it is in the string (the checks go 32 bytes at a time) */
	m = big_message("{\"d\":\"%.20001s\x1f%s\",\"e\":1}", 40000);
	check_big(m, -EPROTO);
	free(m);
	m = big_message("{\"d\":\"%.20003s\x80%s\",\"e\":1}", 40000);
	check_big(m, -EPROTO);
	free(m);
	m = big_message("{\"d\":\"%.20005s\xc3\xa9\x7f%s\",\"e\":1}", 40000);
	check_big(m, 0);
	free(m);
	/* A value that looks like the parser's own stand-in. */
	m = big_message("{\"p\":\"\\u0000scriptum:big\",\"d\":\"%s\",\"e\":\"%.5s\"}", 40000);
	check_big(m, 0);
	free(m);
	/* A message that is not JSON around a big string. */
	m = big_message("{\"d\":\"%s\",\"e\":%.5s}", 40000);
	check_big(m, -EPROTO);
	free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stream_accepts_ndjson_with_result_wrapper),
	    cmocka_unit_test(test_stream_accepts_ndjson_of_bare_messages),
	    cmocka_unit_test(test_stream_accepts_objects_without_newlines),
	    cmocka_unit_test(test_stream_accepts_json_array),
	    cmocka_unit_test(test_stream_accepts_sse_with_lf),
	    cmocka_unit_test(test_stream_accepts_sse_with_crlf),
	    cmocka_unit_test(test_stream_accepts_sse_with_bare_cr),
	    cmocka_unit_test(test_stream_accepts_sse_message_over_several_data_lines),
	    cmocka_unit_test(test_stream_ignores_unknown_sse_fields),
	    cmocka_unit_test(test_stream_handles_braces_quotes_and_backslashes_in_strings),
	    cmocka_unit_test(test_stream_passes_unknown_fields_through),
	    cmocka_unit_test(test_stream_delivers_many_messages_from_one_feed),
	    cmocka_unit_test(test_stream_reports_error_line_with_code_and_message),
	    cmocka_unit_test(test_stream_reports_errors_in_every_framing),
	    cmocka_unit_test(test_stream_error_stops_the_stream),
	    cmocka_unit_test(test_stream_rejects_message_over_the_cap),
	    cmocka_unit_test(test_stream_message_exactly_at_cap_is_accepted),
	    cmocka_unit_test(test_stream_message_too_costly_to_parse_is_emsgsize),
	    cmocka_unit_test(test_stream_finish_rejects_unterminated_array),
	    cmocka_unit_test(test_stream_finish_rejects_body_cut_mid_object),
	    cmocka_unit_test(test_stream_accepts_empty_body),
	    cmocka_unit_test(test_stream_rejects_bad_framing),
	    cmocka_unit_test(test_stream_stops_when_callback_refuses),
	    cmocka_unit_test(test_stream_parses_16mib_message_in_small_feeds),
	    cmocka_unit_test(test_stream_scans_escape_heavy_strings_in_linear_time),
	    cmocka_unit_test(test_stream_big_strings_parse_as_jansson_does),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
