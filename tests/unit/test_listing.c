/*
 * Listings (client/listing.c) against the emulator and its listing faults:
 * a repeated page token is -EPROTO at the second call, pages without a new
 * entry are after LISTING_MAX_EMPTY in a row, a listing past its ceiling of
 * calls is too, a failed listing stays failed without another call, a
 * failed call does not fail the listing, and ids repeated within and
 * across pages are given once; listings start in several threads at once
 * (ThreadSanitizer runs this file).
 *
 *	make build/tests/test_listing && build/tests/test_listing
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

#include "emu.h"
#include "listing.h"

#define NSEED 5
#define CAP   256 /* ids a test holds: the demo's threads and the seeded */

struct fx {
	struct emu *emu;
	struct api *a;
	struct listing *l;
	char ids[CAP][64]; /* every thread, newest first, as ListThreads gives them */
	size_t n;
	struct http_error e;
};

/* fx->ids: one page of every thread, before any fault. */
static int
all_ids(struct fx *fx)
{
	struct api_list q = {.page_size = 1000};
	struct model_thread_list l;

	if (api_list_threads(fx->a, &q, &l, NULL) != 0)
		return -1;
	for (size_t i = 0; i < l.n_threads && fx->n < CAP; i++)
		snprintf(fx->ids[fx->n++], sizeof(fx->ids[0]), "%s", l.threads[i].thread_id);
	model_thread_list_clear(&l);
	return fx->n > NSEED && fx->n < CAP ? 0 : -1;
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct http_options o = {0};
	char err[256];

	if (fx == NULL || emu_start(NULL, &fx->emu) != 0)
		return -1;
	*state = fx;
	o.endpoint = emu_url(fx->emu);
	o.deadline_ms = 10000;
	o.max_attempts = 1;
	if (api_new(&o, &fx->a, err, sizeof(err)) != 0) {
		fprintf(stderr, "api_new: %s\n", err);
		return -1;
	}
	for (int i = 0; i < NSEED; i++) {
		char id[64];

		emu_seed(fx->emu, "echo", 10, id, sizeof(id));
	}
	return all_ids(fx);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	int rc;

	listing_free(fx->l);
	api_free(fx->a);
	rc = emu_stop(fx->emu);
	free(fx);
	return rc;
}

static void
assert_message_has(const struct http_error *e, const char *needle)
{
	if (strstr(e->message, needle) == NULL)
		fail_msg("message '%s' lacks '%s'", e->message, needle);
}

/* One page of ListThreads, page_size per page; its ids appended to got. */
static int
page(struct fx *fx, int page_size, char got[][64], size_t *n, size_t cap)
{
	struct api_list q = {.page_size = page_size};
	struct model_thread_list l;
	int rc = listing_threads(fx->l, fx->a, &q, &l, &fx->e);

	for (size_t i = 0; rc == 0 && i < l.n_threads; i++) {
		assert_true(*n < cap);
		snprintf(got[(*n)++], 64, "%s", l.threads[i].thread_id);
	}
	if (rc == 0)
		model_thread_list_clear(&l);
	return rc;
}

static void
test_pages_to_the_end_giving_every_id_once(void **state)
{
	struct fx *fx = *state;
	char got[CAP][64];
	size_t n = 0;

	assert_int_equal(listing_new("ListThreads", 0, &fx->l), 0);
	for (int i = 0; i < 100 && !listing_done(fx->l); i++)
		assert_int_equal(page(fx, 7, got, &n, CAP), 0);
	assert_true(listing_done(fx->l));
	assert_int_equal(listing_pages(fx->l), (fx->n + 6) / 7);
	assert_int_equal(n, fx->n);
	for (size_t i = 0; i < fx->n; i++)
		assert_string_equal(got[i], fx->ids[i]);
}

static void
test_repeated_page_token_is_eproto_at_the_second_call(void **state)
{
	struct fx *fx = *state;
	char got[CAP][64];
	size_t n = 0;

	emu_faults(fx->emu, "{\"pageTokenRepeat\": true}");
	emu_forget_requests(fx->emu);
	assert_int_equal(listing_new("ListThreads", 0, &fx->l), 0);
	assert_int_equal(page(fx, 2, got, &n, CAP), 0);
	assert_int_equal(n, 2);
	assert_int_equal(page(fx, 2, got, &n, CAP), -EPROTO);
	assert_int_equal(n, 2); /* the second page's ids were the first's */
	assert_string_equal(fx->e.call, "ListThreads");
	assert_int_equal(fx->e.exit_code, 10);
	assert_message_has(&fx->e, "repeated the page token 'f.repeat'");
	assert_true(listing_done(fx->l));
	/* failed for good, and without another call */
	memset(&fx->e, 0, sizeof(fx->e));
	assert_int_equal(page(fx, 2, got, &n, CAP), -EPROTO);
	assert_message_has(&fx->e, "f.repeat");
	assert_int_equal(emu_calls(fx->emu, "ListThreads", 2, 2000, 100), 2);
}

static void
test_empty_pages_for_ever_are_eproto_after_the_bound(void **state)
{
	struct fx *fx = *state;
	char got[CAP][64];
	size_t n = 0;
	int rc = 0, calls = 0;

	emu_faults(fx->emu, "{\"emptyPagesForever\": true}");
	assert_int_equal(listing_new("ListThreads", 0, &fx->l), 0);
	while (rc == 0 && calls < 1000) {
		rc = page(fx, 1000, got, &n, CAP);
		calls++;
	}
	assert_int_equal(rc, -EPROTO);
	assert_int_equal(calls, 1 + LISTING_MAX_EMPTY);
	assert_int_equal(n, fx->n);
	assert_message_has(&fx->e, "empty pages");
}

static void
test_a_listing_past_its_ceiling_of_calls_is_eproto(void **state)
{
	struct fx *fx = *state;
	char got[CAP][64];
	size_t n = 0;

	assert_int_equal(listing_new("ListThreads", 3, &fx->l), 0);
	assert_int_equal(page(fx, 1, got, &n, CAP), 0);
	assert_int_equal(page(fx, 1, got, &n, CAP), 0);
	assert_int_equal(page(fx, 1, got, &n, CAP), -EPROTO);
	assert_message_has(&fx->e, "more than 3 pages");
}

static void
test_duplicate_ids_within_and_across_pages_are_given_once(void **state)
{
	struct fx *fx = *state;
	char got[CAP][64];
	size_t n = 0;

	emu_faults(fx->emu, "{\"duplicateIds\": true}");
	assert_int_equal(listing_new("ListThreads", 0, &fx->l), 0);
	for (int i = 0; i < 100 && !listing_done(fx->l); i++)
		assert_int_equal(page(fx, 7, got, &n, CAP), 0);
	assert_true(listing_done(fx->l));
	assert_int_equal(n, fx->n);
	for (size_t i = 0; i < fx->n; i++)
		assert_string_equal(got[i], fx->ids[i]);
}

static void
test_a_failed_call_leaves_the_listing_to_be_asked_again(void **state)
{
	struct fx *fx = *state;
	char got[CAP][64];
	size_t n = 0;

	assert_int_equal(listing_new("ListThreads", 0, &fx->l), 0);
	assert_int_equal(page(fx, 3, got, &n, CAP), 0);
	emu_faults(fx->emu, "{\"errorCount\": 1, \"errorStatus\": 500}");
	assert_true(page(fx, 3, got, &n, CAP) < 0);
	assert_false(listing_done(fx->l));
	assert_int_equal(page(fx, 1000, got, &n, CAP), 0);
	assert_true(listing_done(fx->l));
	assert_int_equal(n, fx->n);
	assert_string_equal(got[3], fx->ids[3]);
}

static void
test_scripts_repeated_token_and_names(void **state)
{
	struct fx *fx = *state;
	struct model_script_list l;
	size_t first;

	emu_faults(fx->emu, "{\"pageTokenRepeat\": true, \"duplicateIds\": true}");
	assert_int_equal(listing_new("ListScripts", 0, &fx->l), 0);
	assert_int_equal(listing_scripts(fx->l, fx->a, 2, &l, &fx->e), 0);
	/* the page repeats its first name at its end */
	assert_int_equal(l.n_scripts, 2);
	assert_string_not_equal(l.scripts[0].name, l.scripts[1].name);
	first = l.n_scripts;
	model_script_list_clear(&l);
	assert_int_equal(listing_scripts(fx->l, fx->a, 2, &l, &fx->e), -EPROTO);
	assert_string_equal(fx->e.call, "ListScripts");
	assert_message_has(&fx->e, "repeated");
	assert_int_equal(first, 2);
}

/* Each of four threads starts and frees listings, as the daemon's workers
 * do when several directories are read at once. */
static void *
start_listings(void *arg)
{
	int *failed = arg;

	for (int i = 0; i < 2000; i++) {
		struct listing *l;

		if (listing_new("ListThreads", 0, &l) != 0) {
			(*failed)++;
			continue;
		}
		listing_free(l);
	}
	return NULL;
}

static void
test_listings_start_in_several_threads_at_once(void **state)
{
	pthread_t t[4];
	int failed[4] = {0};

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, start_listings, &failed[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(failed[i], 0);
	}
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_pages_to_the_end_giving_every_id_once),
	    T(test_repeated_page_token_is_eproto_at_the_second_call),
	    T(test_empty_pages_for_ever_are_eproto_after_the_bound),
	    T(test_a_listing_past_its_ceiling_of_calls_is_eproto),
	    T(test_duplicate_ids_within_and_across_pages_are_given_once),
	    T(test_a_failed_call_leaves_the_listing_to_be_asked_again),
	    T(test_scripts_repeated_token_and_names),
	    cmocka_unit_test(test_listings_start_in_several_threads_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
