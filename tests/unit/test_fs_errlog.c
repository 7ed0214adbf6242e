/*
 * Recent API errors (fs/errlog.c): the ring behind .scriptumfs/errors, its
 * exact text, and the line each error also leaves in the log (stderr in the
 * foreground, which these tests capture).
 *
 *	make build/tests/test_fs_errlog && build/tests/test_fs_errlog
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs.h"

/* An error as the API layer fills it. */
static struct http_error
error_of(const char *call, int http_status, int grpc_code, const char *message)
{
	struct http_error e = {.err = ENOENT, .http_status = http_status, .grpc_code = grpc_code};

	snprintf(e.call, sizeof(e.call), "%s", call);
	snprintf(e.message, sizeof(e.message), "%s", message);
	return e;
}

static char *
render(struct errlog *l)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(errlog_render(l, &text, &len), 0);
	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	return text;
}

/* Checks that line starts with a UTC time between t0 and t1 and a space,
 * and returns what follows. */
static const char *
after_time(const char *line, time_t t0, time_t t1)
{
	struct tm tm = {0};
	const char *rest = strptime(line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	time_t t;

	assert_non_null(rest);
	assert_int_equal(rest - line, 21); /* "2026-11-29T03:50:01Z " */
	t = timegm(&tm);
	assert_true(t >= t0 && t <= t1);
	return rest;
}

/* The n-th line of text (from 0), its newline included, copied into buf;
 * NULL when there are fewer lines. */
static const char *
nth_line(const char *text, int n, char *buf, size_t len)
{
	const char *end;

	for (; n > 0 && text != NULL; n--)
		if ((text = strchr(text, '\n')) != NULL)
			text++;
	if (text == NULL || *text == '\0' || (end = strchr(text, '\n')) == NULL)
		return NULL;
	assert_true((size_t)(end - text) + 2 <= len);
	memcpy(buf, text, (size_t)(end - text) + 1);
	buf[end - text + 1] = '\0';
	return buf;
}

/* ---- stderr, captured ---- */

struct capture {
	int saved;
	FILE *file;
};

static void
capture_start(struct capture *c)
{
	fflush(stderr);
	c->saved = dup(STDERR_FILENO);
	c->file = tmpfile();
	assert_non_null(c->file);
	assert_int_equal(dup2(fileno(c->file), STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr; what was written meanwhile, a new string. */
static char *
capture_end(struct capture *c)
{
	char *text = calloc(1, 65536);
	size_t n;

	fflush(stderr);
	dup2(c->saved, STDERR_FILENO);
	close(c->saved);
	rewind(c->file);
	n = fread(text, 1, 65535, c->file);
	text[n] = '\0';
	fclose(c->file);
	return text;
}

/* ---- the ring ---- */

static void
test_empty_ring_renders_nothing(void **state)
{
	struct errlog *l = errlog_new(8);
	char *text;

	(void)state;
	assert_non_null(l);
	text = render(l);
	assert_string_equal(text, "");
	free(text);
	errlog_free(l);
}

static void
test_render_has_the_exact_format(void **state)
{
	struct errlog *l = errlog_new(8);
	struct http_error e = error_of("GetThread th_1", 404, 5, "thread 'th_1' not found");
	time_t t0 = time(NULL), t1;
	char *text;
	const char *rest;

	(void)state;
	errlog_add(l, &e);
	t1 = time(NULL);
	text = render(l);
	rest = after_time(text, t0, t1);
	assert_string_equal(rest, "GetThread th_1 HTTP 404 NOT_FOUND: thread 'th_1' not found\n");
	free(text);
	errlog_free(l);
}

static void
test_render_leaves_out_what_is_unknown(void **state)
{
	struct errlog *l = errlog_new(8);
	struct http_error no_http = error_of("ListThreads", 0, -1, "connection refused");
	struct http_error no_code = error_of("GetThread th_2", 502, -1, "Bad Gateway");
	struct http_error only_code = error_of("WatchThread th_3", 0, 14, "stream reset");
	time_t t0 = time(NULL), t1;
	char *text, line[256];

	(void)state;
	errlog_add(l, &no_http);
	errlog_add(l, &no_code);
	errlog_add(l, &only_code);
	t1 = time(NULL);
	text = render(l);
	assert_string_equal(after_time(nth_line(text, 0, line, sizeof(line)), t0, t1),
	                    "ListThreads: connection refused\n");
	assert_string_equal(after_time(nth_line(text, 1, line, sizeof(line)), t0, t1),
	                    "GetThread th_2 HTTP 502: Bad Gateway\n");
	assert_string_equal(after_time(nth_line(text, 2, line, sizeof(line)), t0, t1),
	                    "WatchThread th_3 UNAVAILABLE: stream reset\n");
	assert_null(nth_line(text, 3, line, sizeof(line)));
	free(text);
	errlog_free(l);
}

static void
test_ring_keeps_the_last_n_in_order(void **state)
{
	struct errlog *l = errlog_new(3);
	char call[32], *text, *p;
	int n = 0;

	(void)state;
	for (int i = 1; i <= 7; i++) {
		struct http_error e;

		snprintf(call, sizeof(call), "GetThread th_%d", i);
		e = error_of(call, 404, 5, "not found");
		errlog_add(l, &e);
	}
	text = render(l);
	for (p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
		char want[64];

		snprintf(want, sizeof(want), "GetThread th_%d HTTP 404", 5 + n);
		assert_memory_equal(p + 21, want, strlen(want));
		n++;
	}
	assert_int_equal(n, 3);
	free(text);
	errlog_free(l);
}

static void
test_ring_of_zero_keeps_nothing(void **state)
{
	struct errlog *l = errlog_new(0);
	struct http_error e = error_of("GetThread th_1", 404, 5, "not found");
	struct capture c;
	char *text, *logged;

	(void)state;
	assert_non_null(l);
	capture_start(&c);
	errlog_add(l, &e);
	logged = capture_end(&c);
	assert_non_null(strstr(logged, "GetThread th_1")); /* logged all the same */
	text = render(l);
	assert_string_equal(text, "");
	free(text);
	free(logged);
	errlog_free(l);
}

static void
test_a_message_stays_on_one_line(void **state)
{
	struct errlog *l = errlog_new(4);
	struct http_error e = error_of("GetThread th_1", 500, 13, "first\nsecond\rthird");
	char *text;

	(void)state;
	errlog_add(l, &e);
	text = render(l);
	assert_string_equal(text + 21, "GetThread th_1 HTTP 500 INTERNAL: first second third\n");
	free(text);
	errlog_free(l);
}

struct adder {
	struct errlog *l;
	int id;
};

static void *
add_many(void *arg)
{
	struct adder *a = arg;
	char call[32];

	for (int i = 0; i < 200; i++) {
		struct http_error e;

		snprintf(call, sizeof(call), "GetThread t%d_%d", a->id, i);
		e = error_of(call, 503, 14, "unavailable");
		errlog_add(a->l, &e);
	}
	return NULL;
}

static void
test_concurrent_adds_keep_whole_entries(void **state)
{
	struct errlog *l = errlog_new(50);
	struct adder ad[4];
	pthread_t th[4];
	struct capture c;
	char *text, *logged, *p;
	int lines = 0;

	(void)state;
	capture_start(&c);
	for (int i = 0; i < 4; i++) {
		ad[i] = (struct adder){l, i};
		assert_int_equal(pthread_create(&th[i], NULL, add_many, &ad[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	logged = capture_end(&c);
	text = render(l);
	for (p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
		assert_non_null(strstr(p, " HTTP 503 UNAVAILABLE: unavailable\n"));
		lines++;
	}
	assert_int_equal(lines, 50);
	lines = 0;
	for (p = logged; *p != '\0'; p = strchr(p, '\n') + 1) {
		assert_memory_equal(p, "scriptumfs: GetThread t", 23);
		lines++;
	}
	assert_int_equal(lines, 800);
	free(text);
	free(logged);
	errlog_free(l);
}

/* ---- the log ---- */

static void
test_add_logs_one_line_to_stderr_in_the_foreground(void **state)
{
	struct errlog *l = errlog_new(4);
	struct http_error e = error_of("CreateThread nosuch", 404, 5, "script 'nosuch' not found");
	struct capture c;
	char *logged;

	(void)state;
	log_init(true, false);
	capture_start(&c);
	errlog_add(l, &e);
	logged = capture_end(&c);
	assert_string_equal(logged,
	                    "scriptumfs: CreateThread nosuch HTTP 404 NOT_FOUND: script 'nosuch' "
	                    "not found\n");
	free(logged);
	errlog_free(l);
}

static void
test_debug_lines_only_with_debug(void **state)
{
	struct capture c;
	char *logged;

	(void)state;
	log_init(true, false);
	capture_start(&c);
	log_msg(LOG_DEBUG, "lookup %s", "threads");
	log_msg(LOG_INFO, "mounted on %s", "/mnt");
	logged = capture_end(&c);
	assert_string_equal(logged, "scriptumfs: mounted on /mnt\n");
	free(logged);

	log_init(true, true);
	capture_start(&c);
	log_msg(LOG_DEBUG, "lookup %s", "threads");
	logged = capture_end(&c);
	assert_string_equal(logged, "scriptumfs: lookup threads\n");
	free(logged);
	log_init(true, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_ring_renders_nothing),
	    cmocka_unit_test(test_render_has_the_exact_format),
	    cmocka_unit_test(test_render_leaves_out_what_is_unknown),
	    cmocka_unit_test(test_ring_keeps_the_last_n_in_order),
	    cmocka_unit_test(test_ring_of_zero_keeps_nothing),
	    cmocka_unit_test(test_a_message_stays_on_one_line),
	    cmocka_unit_test(test_concurrent_adds_keep_whole_entries),
	    cmocka_unit_test(test_add_logs_one_line_to_stderr_in_the_foreground),
	    cmocka_unit_test(test_debug_lines_only_with_debug),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
