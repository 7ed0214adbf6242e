/*
 * Error mapping: every HTTP status and gRPC code of SPEC §2.5/§4/§5 to its
 * errno, exit status and retry flag, the code winning over the status, and
 * error bodies of every shape (grpc-gateway v1/v2, Google, proxies' HTML).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "errmap.h"

static const struct {
	int status;
	int code;
	int err;
	int exit_code;
	bool retryable;
} table[] = {
    /* By gRPC code, with the status grpc-gateway v2 gives it. */
    {499, ERRMAP_CANCELLED, EINTR, 1, false},
    {500, ERRMAP_UNKNOWN, EIO, 10, false},
    {400, ERRMAP_INVALID_ARGUMENT, EINVAL, 2, false},
    {504, ERRMAP_DEADLINE_EXCEEDED, ETIMEDOUT, 8, false},
    {404, ERRMAP_NOT_FOUND, ENOENT, 5, false},
    {409, ERRMAP_ALREADY_EXISTS, EEXIST, 6, false},
    {403, ERRMAP_PERMISSION_DENIED, EACCES, 4, false},
    {429, ERRMAP_RESOURCE_EXHAUSTED, EAGAIN, 7, true},
    {400, ERRMAP_FAILED_PRECONDITION, EBUSY, 2, false},
    {409, ERRMAP_ABORTED, EAGAIN, 9, false},
    {400, ERRMAP_OUT_OF_RANGE, EINVAL, 2, false},
    {501, ERRMAP_UNIMPLEMENTED, EOPNOTSUPP, 10, false},
    {500, ERRMAP_INTERNAL, EIO, 10, false},
    {503, ERRMAP_UNAVAILABLE, EAGAIN, 9, true},
    {500, ERRMAP_DATA_LOSS, EIO, 10, false},
    {401, ERRMAP_UNAUTHENTICATED, EACCES, 3, false},
    /* The same codes with no HTTP status at all (a stream's error line). */
    {0, ERRMAP_NOT_FOUND, ENOENT, 5, false},
    {0, ERRMAP_FAILED_PRECONDITION, EBUSY, 2, false},
    {0, ERRMAP_UNAVAILABLE, EAGAIN, 9, true},
    {200, ERRMAP_INTERNAL, EIO, 10, false},
    /* By HTTP status alone (a proxy's answer, no code). */
    {400, -1, EINVAL, 2, false},
    {401, -1, EACCES, 3, false},
    {403, -1, EACCES, 4, false},
    {404, -1, ENOENT, 5, false},
    {405, -1, EOPNOTSUPP, 10, false},
    {408, -1, ETIMEDOUT, 8, false},
    {409, -1, EEXIST, 6, false},
    {412, -1, EBUSY, 2, false},
    {413, -1, EFBIG, 2, false},
    {422, -1, EINVAL, 2, false},
    {429, -1, EAGAIN, 7, true},
    {499, -1, EINTR, 1, false},
    {500, -1, EIO, 10, false},
    {501, -1, EOPNOTSUPP, 10, false},
    {502, -1, EAGAIN, 9, true},
    {503, -1, EAGAIN, 9, true},
    {504, -1, ETIMEDOUT, 8, false},
    {507, -1, EIO, 10, false},
    {302, -1, EIO, 10, false},
    {0, -1, EIO, 10, false},
    /* A code of OK or out of range is no code: the status decides. */
    {404, ERRMAP_OK, ENOENT, 5, false},
    {503, 99, EAGAIN, 9, true},
    /* A proxy's 413 says more than the code behind it. */
    {413, ERRMAP_RESOURCE_EXHAUSTED, EFBIG, 2, false},
};

static void
test_errmap_maps_every_status_and_code(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct errmap m = errmap_map(table[i].status, table[i].code);

		if (m.err != table[i].err || m.exit_code != table[i].exit_code ||
		    m.retryable != table[i].retryable)
			fail_msg("HTTP %d code %d: got errno %d exit %d retry %d, want %d %d %d",
			         table[i].status, table[i].code, m.err, m.exit_code, m.retryable,
			         table[i].err, table[i].exit_code, table[i].retryable);
		assert_int_equal(errmap_retryable(table[i].status, table[i].code),
		                 table[i].retryable);
	}
}

static void
test_errmap_code_wins_over_status(void **state)
{
	struct errmap m;

	(void)state;
	/* grpc-gateway sends FAILED_PRECONDITION as 400. */
	m = errmap_map(400, ERRMAP_FAILED_PRECONDITION);
	assert_int_equal(m.err, EBUSY);
	assert_int_equal(m.exit_code, 2);
	/* ...and ABORTED as 409, which alone would read as "already exists". */
	m = errmap_map(409, ERRMAP_ABORTED);
	assert_int_equal(m.err, EAGAIN);
	/* A 500 whose body says NOT_FOUND is not found. */
	m = errmap_map(500, ERRMAP_NOT_FOUND);
	assert_int_equal(m.err, ENOENT);
	assert_int_equal(m.exit_code, 5);
}

static void
test_errmap_names_codes_both_ways(void **state)
{
	(void)state;
	for (int c = 0; c <= 16; c++)
		assert_int_equal(errmap_grpc_code(errmap_grpc_name(c)), c);
	assert_string_equal(errmap_grpc_name(5), "NOT_FOUND");
	assert_string_equal(errmap_grpc_name(9), "FAILED_PRECONDITION");
	assert_string_equal(errmap_grpc_name(17), "UNKNOWN_CODE");
	assert_string_equal(errmap_grpc_name(-1), "UNKNOWN_CODE");
	assert_int_equal(errmap_grpc_code("not_found"), 5);
	assert_int_equal(errmap_grpc_code("NotFound"), 5);
	assert_int_equal(errmap_grpc_code("CANCELED"), 1);
	assert_int_equal(errmap_grpc_code("Canceled"), 1);
	assert_int_equal(errmap_grpc_code("14"), 14);
	assert_int_equal(errmap_grpc_code("17"), -1);
	assert_int_equal(errmap_grpc_code("5x"), -1);
	assert_int_equal(errmap_grpc_code("NOPE"), -1);
	assert_int_equal(errmap_grpc_code(""), -1);
	assert_int_equal(errmap_grpc_code(NULL), -1);
	assert_int_equal(errmap_grpc_code("A_VERY_LONG_NAME_THAT_IS_NOT_A_CODE_AT_ALL"), -1);
}

static void
parse(const char *body, int status, struct errmap_status *st)
{
	errmap_parse_body(body, strlen(body), status, st);
}

static void
test_errmap_parses_grpc_gateway_v2_body(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("{\"code\":5,\"message\":\"thread t-1 not found\",\"details\":[]}", 404, &st);
	assert_int_equal(st.http_status, 404);
	assert_int_equal(st.code, 5);
	assert_string_equal(st.message, "thread t-1 not found");

	parse("{\"code\":9,\"message\":\"thread is not paused\"}", 400, &st);
	assert_int_equal(st.code, 9);
	assert_int_equal(errmap_map(st.http_status, st.code).err, EBUSY);
	assert_int_equal(errmap_map(st.http_status, st.code).exit_code, 2);
}

static void
test_errmap_parses_code_given_as_a_name(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("{\"code\":\"NOT_FOUND\",\"message\":\"gone\"}", 404, &st);
	assert_int_equal(st.code, 5);
	assert_string_equal(st.message, "gone");
	parse("{\"code\":\"unavailable\",\"message\":\"later\"}", 503, &st);
	assert_int_equal(st.code, 14);
}

static void
test_errmap_parses_grpc_gateway_v1_bodies(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("{\"error\":\"no such thread\",\"code\":5,\"message\":\"no such thread\"}", 404, &st);
	assert_int_equal(st.code, 5);
	assert_string_equal(st.message, "no such thread");

	parse("{\"error\":\"only the error string\",\"code\":3}", 400, &st);
	assert_int_equal(st.code, 3);
	assert_string_equal(st.message, "only the error string");

	parse("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"backend down\","
	      "\"http_status\":\"Service Unavailable\",\"details\":[]}}",
	      0, &st);
	assert_int_equal(st.code, 14);
	assert_int_equal(st.http_status, 503);
	assert_string_equal(st.message, "backend down");
}

static void
test_errmap_parses_stream_error_wrapper(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("{\"error\":{\"code\":13,\"message\":\"boom\",\"details\":[{\"@type\":\"x\"}]}}", 200,
	      &st);
	assert_int_equal(st.code, 13);
	assert_string_equal(st.message, "boom");
}

static void
test_errmap_parses_google_style_body(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("{\"error\":{\"code\":403,\"message\":\"denied\",\"status\":\"PERMISSION_DENIED\"}}",
	      0, &st);
	assert_int_equal(st.code, 7);
	assert_int_equal(st.http_status, 403);
	assert_string_equal(st.message, "denied");
}

static void
test_errmap_keeps_text_of_non_json_body(void **state)
{
	struct errmap_status st;
	struct errmap m;

	(void)state;
	parse("403 UMA authorization rejected\n", 403, &st);
	assert_int_equal(st.code, -1);
	assert_int_equal(st.http_status, 403);
	assert_string_equal(st.message, "403 UMA authorization rejected");
	m = errmap_map(st.http_status, st.code);
	assert_int_equal(m.err, EACCES);
	assert_int_equal(m.exit_code, 4);

	parse("upstream connect error or disconnect/reset before headers", 503, &st);
	assert_int_equal(st.code, -1);
	assert_string_equal(st.message,
	                    "upstream connect error or disconnect/reset before headers");
	assert_true(errmap_map(st.http_status, st.code).retryable);
}

static void
test_errmap_takes_title_of_html_body(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 "
	      "Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
	      502, &st);
	assert_int_equal(st.code, -1);
	assert_string_equal(st.message, "502 Bad Gateway");
	assert_int_equal(errmap_map(st.http_status, st.code).err, EAGAIN);

	parse("<html><body><h1>Service\n  Unavailable</h1><p>try later</p></body></html>", 503,
	      &st);
	assert_string_equal(st.message, "Service Unavailable try later");
}

static void
test_errmap_sanitizes_and_bounds_text(void **state)
{
	struct errmap_status st;
	char big[10000];

	(void)state;
	/* Control characters (and an escape sequence's ESC) become spaces; bad UTF-8 '?'. */
	parse("bad\x1b[31m red\tline\r\nnext \xff\xfe caf\xc3\xa9", 500, &st);
	assert_string_equal(st.message, "bad [31m red line next ?? caf\xc3\xa9");

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	parse(big, 500, &st);
	assert_true(strlen(st.message) <= 200);
	assert_string_equal(st.message + strlen(st.message) - 3, "...");

	/* A JSON message is bounded too, and stays one line. */
	char body[2000];
	int n = snprintf(body, sizeof(body), "{\"code\":13,\"message\":\"line1\\nline2 ");
	memset(body + n, 'y', 1500);
	snprintf(body + n + 1500, sizeof(body) - (size_t)n - 1500, "\"}");
	parse(body, 500, &st);
	assert_int_equal(st.code, 13);
	assert_true(strlen(st.message) < ERRMAP_MSG_MAX);
	assert_memory_equal(st.message, "line1 line2 yyy", 15);
}

static void
test_errmap_fills_a_message_for_empty_bodies(void **state)
{
	struct errmap_status st;

	(void)state;
	errmap_parse_body(NULL, 0, 503, &st);
	assert_int_equal(st.code, -1);
	assert_string_equal(st.message, "Service Unavailable");
	parse("   \n", 418, &st);
	assert_string_equal(st.message, "HTTP 418");
	parse("{\"code\":5}", 404, &st);
	assert_string_equal(st.message, "NOT_FOUND");
	parse("{}", 0, &st);
	assert_string_equal(st.message, "unknown error");
}

static void
test_errmap_shows_unfamiliar_json_bodies(void **state)
{
	struct errmap_status st;

	(void)state;
	parse("{\"detail\":\"rate limited\"}", 429, &st);
	assert_int_equal(st.code, -1);
	assert_string_equal(st.message, "{\"detail\":\"rate limited\"}");
	parse("\"just a string\"", 500, &st);
	assert_string_equal(st.message, "just a string");
	parse("[1,2]", 500, &st);
	assert_string_equal(st.message, "[1,2]");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errmap_maps_every_status_and_code),
	    cmocka_unit_test(test_errmap_code_wins_over_status),
	    cmocka_unit_test(test_errmap_names_codes_both_ways),
	    cmocka_unit_test(test_errmap_parses_grpc_gateway_v2_body),
	    cmocka_unit_test(test_errmap_parses_code_given_as_a_name),
	    cmocka_unit_test(test_errmap_parses_grpc_gateway_v1_bodies),
	    cmocka_unit_test(test_errmap_parses_stream_error_wrapper),
	    cmocka_unit_test(test_errmap_parses_google_style_body),
	    cmocka_unit_test(test_errmap_keeps_text_of_non_json_body),
	    cmocka_unit_test(test_errmap_takes_title_of_html_body),
	    cmocka_unit_test(test_errmap_sanitizes_and_bounds_text),
	    cmocka_unit_test(test_errmap_fills_a_message_for_empty_bodies),
	    cmocka_unit_test(test_errmap_shows_unfamiliar_json_bodies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
