/*
 * Inode numbers and the records behind them: numbers name their file, a
 * record lives exactly as long as the kernel or a request holds it, step
 * numbers stay put, and the oldest unused records can be named.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ino.h"

static void
test_numbers_carry_kind_slot_and_file(void **state)
{
	uint64_t ino = ino_make(REC_THREAD, 12345, ino_step(7, INO_STEP_OUTPUT_JSON));

	(void)state;
	assert_int_equal(ino_kind(ino), REC_THREAD);
	assert_int_equal(ino_slot(ino), 12345);
	assert_int_equal(ino_local(ino), ino_step(7, INO_STEP_OUTPUT_JSON));
	/* fixed inodes are below every record's */
	assert_true(INO_FIXED_END < ino_make(REC_THREAD, 1, INO_THR_DIR));
	assert_true(ino_make(REC_SCRIPT, 1, INO_SCRIPT_DIR) !=
	            ino_make(REC_THREAD, 1, INO_THR_DIR));
}

/* The helpers of ino.h give back what they were made from, and the kinds
 * of number never overlap. */
static void
test_step_version_and_status_numbers_round_trip(void **state)
{
	(void)state;
	for (uint32_t i = 0; i < 1000; i += 7) {
		for (unsigned sub = INO_STEP_DIR; sub <= INO_STEP_ERROR; sub++) {
			uint32_t local = ino_step(i, sub);

			assert_true(ino_is_step(local));
			assert_int_equal(ino_step_index(local), i);
			assert_int_equal(ino_step_sub(local), sub);
		}
	}
	assert_false(ino_is_step(INO_THR_STEPS));
	assert_false(ino_is_step(INO_THR_LINK_LATEST));
	assert_true(ino_step(INO_MAX_STEPS - 1, INO_STEP_ERROR) <= INO_LOCAL_MAX);
	for (int64_t n = 1; n < 500; n += 3) {
		assert_true(ino_is_version_dir(ino_version_dir(n)));
		assert_false(ino_is_version_new(ino_version_dir(n)));
		assert_true(ino_is_version_new(ino_version_dir(n) + 1));
		assert_int_equal(ino_version_of(ino_version_dir(n)), n);
		assert_int_equal(ino_version_of(ino_version_dir(n) + 1), n);
	}
	assert_false(ino_is_version_dir(INO_SCRIPT_VERSIONS));
	for (unsigned i = 0; i < INO_BY_STATUS_N; i++) {
		assert_true(ino_is_by_status(ino_by_status(i)));
		assert_int_equal(ino_by_status_index(ino_by_status(i)), i);
	}
	assert_false(ino_is_by_status(INO_BY_STATUS));
	assert_false(ino_is_by_status(INO_META));
}

static void
test_a_record_lives_while_held_and_goes_after_forget(void **state)
{
	struct recs *r = recs_new();
	struct rec *a, *b;
	uint64_t ino;

	(void)state;
	a = recs_get(r, REC_THREAD, "thr_a");
	assert_non_null(a);
	ino = ino_make(REC_THREAD, a->slot, INO_THR_STATUS);
	recs_lookup(r, a); /* the kernel got an entry */
	recs_put(r, a);    /* the request is done */
	assert_int_equal(recs_count(r, REC_THREAD), 1);
	b = recs_by_ino(r, ino);
	assert_ptr_equal(a, b);
	assert_string_equal(b->name, "thr_a");
	recs_put(r, b);
	/* the same name is the same record */
	b = recs_get(r, REC_THREAD, "thr_a");
	assert_ptr_equal(a, b);
	recs_put(r, b);
	recs_forget(r, ino, 1);
	assert_int_equal(recs_count(r, REC_THREAD), 0);
	assert_null(recs_by_ino(r, ino));
	recs_free(r);
}

static void
test_a_record_nobody_holds_goes_at_once_and_its_slot_is_reused(void **state)
{
	struct recs *r = recs_new();
	struct rec *a, *b;
	uint32_t slot;
	uint64_t gen;

	(void)state;
	a = recs_get(r, REC_THREAD, "thr_a");
	slot = a->slot;
	gen = a->generation;
	recs_put(r, a);
	assert_int_equal(recs_count(r, REC_THREAD), 0);
	b = recs_get(r, REC_THREAD, "thr_b");
	assert_int_equal(b->slot, slot);
	/* a reused slot is told apart by its generation */
	assert_true(b->generation != gen);
	recs_put(r, b);
	recs_free(r);
}

static void
test_forgets_add_up_over_every_inode_of_a_record(void **state)
{
	struct recs *r = recs_new();
	struct rec *a = recs_get(r, REC_THREAD, "thr_a");
	uint64_t dir = ino_make(REC_THREAD, a->slot, INO_THR_DIR);
	uint64_t status = ino_make(REC_THREAD, a->slot, INO_THR_STATUS);

	(void)state;
	recs_lookup(r, a);
	recs_lookup(r, a);
	recs_lookup(r, a);
	recs_put(r, a);
	recs_forget(r, dir, 1);
	recs_forget(r, status, 1);
	assert_int_equal(recs_count(r, REC_THREAD), 1);
	recs_forget(r, status, 5); /* more than held: clamps, never wraps */
	assert_int_equal(recs_count(r, REC_THREAD), 0);
	/* a forget of a slot no longer in use is ignored */
	recs_forget(r, dir, 1);
	recs_forget(r, ino_make(7, 1, 0), 1);
	recs_free(r);
}

static void
test_step_numbers_are_stable_as_steps_are_added(void **state)
{
	struct recs *r = recs_new();
	struct rec *a = recs_get(r, REC_THREAD, "thr_a");
	char path[32];

	(void)state;
	assert_int_equal(recs_step(r, a, "2"), 0);
	assert_int_equal(recs_step(r, a, "1"), 1);
	assert_int_equal(recs_step(r, a, "2.0.1"), 2);
	assert_int_equal(recs_step(r, a, "1"), 1);
	assert_true(recs_step_path(r, a, 2, path, sizeof(path)));
	assert_string_equal(path, "2.0.1");
	assert_false(recs_step_path(r, a, 3, path, sizeof(path)));
	assert_false(recs_step_path(r, a, 2, path, 3)); /* does not fit */
	recs_put(r, a);
	recs_free(r);
}

static void
test_oldest_names_only_unused_records_least_recent_first(void **state)
{
	struct recs *r = recs_new();
	struct rec *busy;
	char *names[4] = {0};
	size_t n;

	(void)state;
	for (int i = 0; i < 5; i++) {
		char id[16];
		struct rec *x;

		snprintf(id, sizeof(id), "thr_%d", i);
		x = recs_get(r, REC_THREAD, id);
		recs_lookup(r, x);
		recs_put(r, x);
		usleep(2000);
	}
	busy = recs_get(r, REC_THREAD, "thr_0"); /* in use: never named; now newest */
	n = recs_oldest(r, REC_THREAD, names, 3);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "thr_1");
	assert_string_equal(names[1], "thr_2");
	assert_string_equal(names[2], "thr_3");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	recs_put(r, busy);
	assert_int_equal(recs_count(r, REC_SCRIPT), 0);
	recs_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numbers_carry_kind_slot_and_file),
	    cmocka_unit_test(test_step_version_and_status_numbers_round_trip),
	    cmocka_unit_test(test_a_record_lives_while_held_and_goes_after_forget),
	    cmocka_unit_test(test_a_record_nobody_holds_goes_at_once_and_its_slot_is_reused),
	    cmocka_unit_test(test_forgets_add_up_over_every_inode_of_a_record),
	    cmocka_unit_test(test_step_numbers_are_stable_as_steps_are_added),
	    cmocka_unit_test(test_oldest_names_only_unused_records_least_recent_first),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
