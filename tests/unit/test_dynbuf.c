/*
 * The capped growable buffer (client/dynbuf.c): it grows by doubling, is
 * always NUL-terminated, holds exactly up to its cap and refuses past it
 * without changing what it holds, reserves room for bytes written in place,
 * and hands its bytes over.
 *
 *	make build/tests/test_dynbuf && build/tests/test_dynbuf
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dynbuf.h"

static void
test_appends_grow_and_stay_terminated(void **state)
{
	struct dynbuf b;
	char chunk[1000];

	(void)state;
	dynbuf_init(&b, 1 << 20);
	assert_null(b.buf);
	assert_int_equal(dynbuf_add(&b, "abc", 3), 0);
	assert_int_equal(b.len, 3);
	assert_string_equal(b.buf, "abc");
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 100; i++)
		assert_int_equal(dynbuf_add(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 3 + 100 * sizeof(chunk));
	assert_true(b.cap > b.len);
	assert_int_equal(b.buf[b.len], '\0');
	assert_int_equal(b.buf[b.len - 1], 'x');
	assert_memory_equal(b.buf, "abcxxx", 6);
	dynbuf_free(&b);
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
}

static void
test_the_cap_holds_exactly_and_refuses_past_it(void **state)
{
	struct dynbuf b;
	char big[5000];

	(void)state;
	memset(big, 'y', sizeof(big));
	dynbuf_init(&b, 1000);
	assert_int_equal(dynbuf_add(&b, big, 999), 0);
	assert_int_equal(dynbuf_add(&b, big, 2), -EFBIG); /* nothing appended */
	assert_int_equal(b.len, 999);
	assert_int_equal(dynbuf_add(&b, big, 1), 0); /* exactly the cap */
	assert_int_equal(b.len, 1000);
	assert_int_equal(b.buf[1000], '\0');
	assert_true(b.cap <= 1001); /* never allocated past the cap and its NUL */
	assert_int_equal(dynbuf_add(&b, big, 1), -EFBIG);
	assert_int_equal(dynbuf_reserve(&b, 1001), -EFBIG);
	dynbuf_free(&b);

	/* a single add past the cap, and a huge one that would wrap */
	dynbuf_init(&b, 100);
	assert_int_equal(dynbuf_add(&b, big, sizeof(big)), -EFBIG);
	assert_int_equal(dynbuf_add(&b, big, 10), 0);
	assert_int_equal(dynbuf_add(&b, big, SIZE_MAX), -EFBIG);
	assert_int_equal(b.len, 10);
	dynbuf_free(&b);

	/* a cap of 0 holds nothing */
	dynbuf_init(&b, 0);
	assert_int_equal(dynbuf_add(&b, "a", 1), -EFBIG);
	assert_int_equal(dynbuf_add(&b, "", 0), 0);
	assert_int_equal(b.len, 0);
	dynbuf_free(&b);
}

static void
test_reserve_and_setlen_for_bytes_written_in_place(void **state)
{
	struct dynbuf b;

	(void)state;
	dynbuf_init(&b, 64 * 1024);
	assert_int_equal(dynbuf_reserve(&b, 10000), 0);
	assert_true(b.cap > 10000);
	assert_int_equal(b.len, 0);
	memset(b.buf, 'z', 10000);
	dynbuf_setlen(&b, 10000);
	assert_int_equal(b.len, 10000);
	assert_int_equal(b.buf[10000], '\0');
	dynbuf_setlen(&b, b.cap); /* past the room reserved: refused */
	assert_int_equal(b.len, 10000);
	dynbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.buf, "");
	assert_int_equal(dynbuf_add(&b, "again", 5), 0);
	assert_string_equal(b.buf, "again");
	dynbuf_free(&b);
}

static void
test_take_hands_the_bytes_over(void **state)
{
	struct dynbuf b;
	size_t len = 99;
	char *p;

	(void)state;
	dynbuf_init(&b, 100);
	assert_null(dynbuf_take(&b, &len));
	assert_int_equal(len, 0);
	assert_int_equal(dynbuf_add(&b, "hello", 5), 0);
	p = dynbuf_take(&b, &len);
	assert_string_equal(p, "hello");
	assert_int_equal(len, 5);
	assert_null(b.buf);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 100);
	free(p);
	dynbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_appends_grow_and_stay_terminated),
	    cmocka_unit_test(test_the_cap_holds_exactly_and_refuses_past_it),
	    cmocka_unit_test(test_reserve_and_setlen_for_bytes_written_in_place),
	    cmocka_unit_test(test_take_hands_the_bytes_over),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
