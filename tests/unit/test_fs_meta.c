/*
 * The metadata layer (fs/meta.c) under concurrency, against the real
 * emulator: askers of one missing item share one call, and many threads
 * asking, seeding and invalidating at random over a small memory budget
 * always get answers about the thread they asked for. Also run under
 * ThreadSanitizer (make tsan).
 *
 *	make build/tests/test_fs_meta &&
 *	    SCRIPTUM_EMULATOR=build/scriptum-emulator build/tests/test_fs_meta
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
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

#define N_IDS     12
#define N_WORKERS 6

struct fx {
	struct emu *emu;
	struct api *a;
	struct errlog *log;
	struct meta *m;
	char ids[N_IDS][64];
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
	if (api_new(&o, &fx->a, NULL, 0) != 0 || (fx->log = errlog_new(16)) == NULL)
		return -1;
	for (int i = 0; i < N_IDS; i++)
		emu_seed(fx->emu, i % 2 ? "fanout" : "echo", 100 + 50 * (size_t)i, fx->ids[i],
		         sizeof(fx->ids[i]));
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	meta_free(fx->m);
	api_free(fx->a);
	errlog_free(fx->log);
	emu_stop(fx->emu);
	free(fx);
	return 0;
}

/* ---- askers of one missing item share one call ---- */

struct asker {
	struct fx *fx;
	pthread_barrier_t *start;
	int rc;
	char got[64];
};

static void *
ask_thread(void *arg)
{
	struct asker *k = arg;
	struct model_thread t;

	pthread_barrier_wait(k->start);
	k->rc = meta_thread(k->fx->m, k->fx->ids[0], &t);
	if (k->rc == 0) {
		snprintf(k->got, sizeof(k->got), "%s", t.thread_id);
		model_thread_clear(&t);
	}
	return NULL;
}

static void
test_concurrent_askers_of_one_thread_share_one_get_thread(void **state)
{
	struct fx *fx = *state;
	struct asker k[N_WORKERS];
	pthread_t th[N_WORKERS];
	pthread_barrier_t start;

	fx->m = meta_new(fx->a, fx->log, 1000, (uint64_t)1 << 20);
	assert_non_null(fx->m);
	emu_forget_requests(fx->emu);
	/* a slow answer, so that every asker comes while the first waits */
	emu_faults(fx->emu, "{\"latencyMs\": 300}");
	pthread_barrier_init(&start, NULL, N_WORKERS);
	for (int i = 0; i < N_WORKERS; i++) {
		k[i] = (struct asker){.fx = fx, .start = &start};
		assert_int_equal(pthread_create(&th[i], NULL, ask_thread, &k[i]), 0);
	}
	for (int i = 0; i < N_WORKERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(k[i].rc, 0);
		assert_string_equal(k[i].got, fx->ids[0]);
	}
	pthread_barrier_destroy(&start);
	emu_faults(fx->emu, "{}");
	assert_int_equal(emu_calls(fx->emu, "GetThread", 1, 2000, 200), 1);
}

/* ---- random churn ---- */

struct churner {
	struct fx *fx;
	unsigned seed;
	int ops;
	atomic_int *wrong; /* answers about another thread, or a failed call */
	char why[200];
};

static void churn_wrong(struct churner *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
churn_wrong(struct churner *c, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(c->wrong, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
	}
}

/* One random operation on thread id. */
static void
churn_one(struct churner *c, const char *id, unsigned what)
{
	struct model_thread t;
	struct model_result r;
	struct model_step_detail d;
	bool final;
	int rc;

	switch (what % 8) {
	case 0:
	case 1:
		if ((rc = meta_thread(c->fx->m, id, &t)) != 0)
			return churn_wrong(c, "meta_thread(%s): %d", id, rc);
		if (strcmp(t.thread_id, id) != 0 || t.status != MODEL_THREAD_COMPLETED)
			churn_wrong(c, "meta_thread(%s) gave %s, status %d", id, t.thread_id,
			            (int)t.status);
		/* seeding what was just read is what a listing does */
		meta_seed(c->fx->m, &t);
		model_thread_clear(&t);
		return;
	case 2:
	case 3:
		if ((rc = meta_result(c->fx->m, id, &r)) != 0)
			return churn_wrong(c, "meta_result(%s): %d", id, rc);
		if (strcmp(r.thread_id, id) != 0 || r.n_steps == 0)
			churn_wrong(c, "meta_result(%s) gave %s with %zu steps", id, r.thread_id,
			            r.n_steps);
		model_result_clear(&r);
		return;
	case 4:
	case 5:
		if ((rc = meta_step(c->fx->m, id, "1", &d, &final)) != 0)
			return churn_wrong(c, "meta_step(%s, 1): %d", id, rc);
		if (strcmp(d.step.step_path, "1") != 0 || !final)
			churn_wrong(c, "meta_step(%s, 1) gave step %s, final %d", id,
			            d.step.step_path, final);
		model_step_detail_clear(&d);
		return;
	case 6:
		meta_invalidate(c->fx->m, id);
		return;
	default:
		if ((rc = meta_step(c->fx->m, id, "99", &d, NULL)) != -ENOENT) {
			if (rc == 0)
				model_step_detail_clear(&d);
			churn_wrong(c, "meta_step(%s, 99): %d, not -ENOENT", id, rc);
		}
	}
}

static void *
churn_thread(void *arg)
{
	struct churner *c = arg;

	for (int i = 0; i < c->ops; i++) {
		unsigned r = (unsigned)rand_r(&c->seed);

		churn_one(c, c->fx->ids[r % N_IDS], r / N_IDS);
	}
	return NULL;
}

/* A budget of a few answers: entries come and go while others read them. */
static void
test_random_churn_over_a_small_budget_answers_about_the_thread_asked(void **state)
{
	struct fx *fx = *state;
	struct churner c[N_WORKERS];
	pthread_t th[N_WORKERS];
	struct meta_stats st;
	atomic_int wrong = 0;

	fx->m = meta_new(fx->a, fx->log, 50, 16 << 10);
	assert_non_null(fx->m);
	for (int i = 0; i < N_WORKERS; i++) {
		c[i] = (struct churner){
		    .fx = fx, .seed = 7u + (unsigned)i, .ops = 150, .wrong = &wrong};
		assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &c[i]), 0);
	}
	for (int i = 0; i < N_WORKERS; i++) {
		pthread_join(th[i], NULL);
		if (c[i].why[0] != '\0')
			print_error("worker %d: %s\n", i, c[i].why);
	}
	assert_int_equal(atomic_load(&wrong), 0);
	meta_stats(fx->m, &st);
	assert_true(st.calls > 0);
	assert_true(st.hits > 0);
	assert_true(st.evictions > 0);
	assert_true(st.bytes <= 16 << 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_concurrent_askers_of_one_thread_share_one_get_thread, setup, teardown),
	    cmocka_unit_test_setup_teardown(
	        test_random_churn_over_a_small_budget_answers_about_the_thread_asked, setup,
	        teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
