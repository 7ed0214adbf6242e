/*
 * The watches of the mount (fs/watch.c) under concurrency, against the
 * real emulator: readers of a running thread's events, each in its own
 * thread, see one text that only grows and ends final; watches freed while
 * their streams run end at once. Also run under ThreadSanitizer (make tsan).
 *
 *	make build/tests/test_fs_watch &&
 *	    SCRIPTUM_EMULATOR=build/scriptum-emulator build/tests/test_fs_watch
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

#include <cmocka.h>

#include "api.h"
#include "emu.h"
#include "fs.h"
#include "meta.h"
#include "tree.h"
#include "watch.h"

#define N_READERS 4
#define TEXT_MAX  ((size_t)1 << 20)

struct fx {
	struct emu *emu;
	struct mount m;
	struct watches *w;
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct http_options o = {0};

	if (fx == NULL || emu_start(NULL, &fx->emu) != 0) {
		free(fx);
		return -1;
	}
	o.endpoint = emu_url(fx->emu);
	o.deadline_ms = 10000;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	if (api_new(&o, &fx->m.api, NULL, 0) != 0 || (fx->m.errors = errlog_new(16)) == NULL ||
	    (fx->m.meta = meta_new(fx->m.api, fx->m.errors, 1000, 1 << 20)) == NULL ||
	    (fx->w = watches_new(&fx->m, NULL)) == NULL)
		return -1;
	fx->m.watches = fx->w;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	watches_free(fx->w);
	meta_free(fx->m.meta);
	api_free(fx->m.api);
	errlog_free(fx->m.errors);
	emu_stop(fx->emu);
	free(fx);
	return 0;
}

/* Starts a thread of script; its id into id. */
static void
create(struct fx *fx, const char *script, char *id, size_t idlen)
{
	struct api_create rq = {.script_name = script, .input_json = "{}"};
	struct model_thread t;
	struct http_error e;

	if (api_create_thread(fx->m.api, &rq, &t, &e) != 0)
		fail_msg("CreateThread %s: %s", script, e.message);
	snprintf(id, idlen, "%s", t.thread_id);
	model_thread_clear(&t);
}

/* ---- readers of one running thread ---- */

struct reader {
	struct fx *fx;
	const char *id;
	char *text; /* what it read last, whole */
	size_t len;
	int rounds;
	char why[200];
};

/* Reads the whole events text as it is now into r->text. */
static int
read_all(struct reader *r, bool *final)
{
	uint64_t size;
	size_t got = 0;
	ssize_t n;
	int rc;

	if ((rc = watches_size(r->fx->w, r->id, &size, final)) != 0)
		return rc;
	if (size > TEXT_MAX)
		return -EFBIG;
	while (got < size &&
	       (n = watches_read(r->fx->w, r->id, r->text + got, size - got, got)) > 0)
		got += (size_t)n;
	if (got < size)
		return -EIO;
	r->len = got;
	return 0;
}

static void *
reader_thread(void *arg)
{
	struct reader *r = arg;
	char *before = malloc(TEXT_MAX);
	int64_t deadline = emu_now_ms() + 20000;
	size_t before_len = 0;
	bool final = false;
	int rc;

	r->text = malloc(TEXT_MAX);
	if (before == NULL || r->text == NULL) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		free(before);
		return NULL;
	}
	while (!final && emu_now_ms() < deadline) {
		if ((rc = read_all(r, &final)) != 0) {
			snprintf(r->why, sizeof(r->why), "read: %d", rc);
			break;
		}
		if (r->len < before_len || memcmp(r->text, before, before_len) != 0) {
			snprintf(r->why, sizeof(r->why), "the text shrank or changed (%zu -> %zu)",
			         before_len, r->len);
			break;
		}
		memcpy(before, r->text, r->len);
		before_len = r->len;
		r->rounds++;
		emu_sleep_ms(5);
	}
	if (!final && r->why[0] == '\0')
		snprintf(r->why, sizeof(r->why), "not final after 20 s");
	free(before);
	return NULL;
}

/* Each line of text is a JSON object; the last one says the thread completed. */
static void
assert_events_end_completed(const char *text, size_t len)
{
	const char *p = text, *end = text + len, *nl, *last = NULL;
	json_error_t jerr;

	assert_true(len > 0 && text[len - 1] == '\n');
	for (; p < end; p = nl + 1) {
		json_t *v;

		nl = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(nl);
		v = json_loadb(p, (size_t)(nl - p), 0, &jerr);
		if (!json_is_object(v))
			fail_msg("line %.*s is not a JSON object", (int)(nl - p), p);
		json_decref(v);
		last = p;
	}
	if (strstr(last, "COMPLETED") == NULL)
		fail_msg("the last event does not say the thread completed: %s", last);
}

static void
test_concurrent_readers_of_a_running_thread_see_one_growing_text_ending_final(void **state)
{
	struct fx *fx = *state;
	struct reader r[N_READERS];
	pthread_t th[N_READERS];
	char id[64];

	create(fx, "fanout", id, sizeof(id));
	for (int i = 0; i < N_READERS; i++) {
		r[i] = (struct reader){.fx = fx, .id = id};
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &r[i]), 0);
	}
	for (int i = 0; i < N_READERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < N_READERS; i++) {
		if (r[i].why[0] != '\0')
			fail_msg("reader %d: %s", i, r[i].why);
		assert_true(r[i].rounds > 1);
		assert_int_equal(r[i].len, r[0].len);
		assert_memory_equal(r[i].text, r[0].text, r[0].len);
	}
	assert_events_end_completed(r[0].text, r[0].len);
	for (int i = 0; i < N_READERS; i++)
		free(r[i].text);
}

/* ---- freeing while streams run ---- */

static void
test_watches_freed_while_their_streams_run_end_at_once(void **state)
{
	struct fx *fx = *state;
	char id[3][64];
	int64_t t0;

	for (int i = 0; i < 3; i++) {
		uint64_t size = 0;
		bool final = true;

		/* "nightly" runs for minutes: its stream stays open */
		create(fx, "nightly", id[i], sizeof(id[i]));
		assert_int_equal(watches_size(fx->w, id[i], &size, &final), 0);
		assert_false(final);
		assert_true(watches_known(fx->w, id[i], &size));
	}
	t0 = emu_now_ms();
	watches_free(fx->w);
	fx->w = NULL;
	if (emu_now_ms() - t0 > 5000)
		fail_msg("watches_free took %lld ms", (long long)(emu_now_ms() - t0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_readers_of_a_running_thread_see_one_growing_text_ending_final,
	        setup, teardown),
	    cmocka_unit_test_setup_teardown(test_watches_freed_while_their_streams_run_end_at_once,
	                                    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
