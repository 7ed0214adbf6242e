/*
 * The UTF-8 decoder (client/utf8.c) against Unicode's table 3-7: every
 * well-formed form from one to four bytes, and each ill-formed one
 * (overlongs, surrogates, past U+10FFFF, lone and missing continuation
 * bytes, a character cut short) refused; utf8_fix replaces what is
 * refused with U+FFFD a byte at a time.
 *
 *	make build/tests/test_utf8 && build/tests/test_utf8
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static size_t
seq(const char *s)
{
	return utf8_seq((const unsigned char *)s, strlen(s));
}

static void
test_well_formed_characters_have_their_length(void **state)
{
	(void)state;
	assert_int_equal(seq("A"), 1);
	assert_int_equal(seq("\x7f"), 1);
	assert_int_equal(seq("\xc2\x80"), 2);         /* U+0080 */
	assert_int_equal(seq("\xdf\xbf"), 2);         /* U+07FF */
	assert_int_equal(seq("\xe0\xa0\x80"), 3);     /* U+0800 */
	assert_int_equal(seq("\xed\x9f\xbf"), 3);     /* U+D7FF, below the surrogates */
	assert_int_equal(seq("\xee\x80\x80"), 3);     /* U+E000, above them */
	assert_int_equal(seq("\xef\xbf\xbd"), 3);     /* U+FFFD */
	assert_int_equal(seq("\xf0\x90\x80\x80"), 4); /* U+10000 */
	assert_int_equal(seq("\xf4\x8f\xbf\xbf"), 4); /* U+10FFFF */
	assert_int_equal(seq("\xc3\xa9tail"), 2);     /* only the first character */
}

static void
test_ill_formed_sequences_are_refused(void **state)
{
	(void)state;
	assert_int_equal(seq("\x80"), 0); /* a lone continuation byte */
	assert_int_equal(seq("\xbf"), 0);
	assert_int_equal(seq("\xc0\x80"), 0);     /* overlong NUL */
	assert_int_equal(seq("\xc1\xbf"), 0);     /* overlong */
	assert_int_equal(seq("\xe0\x80\x80"), 0); /* overlong three-byte */
	assert_int_equal(seq("\xe0\x9f\xbf"), 0);
	assert_int_equal(seq("\xed\xa0\x80"), 0);     /* U+D800, a surrogate */
	assert_int_equal(seq("\xed\xbf\xbf"), 0);     /* U+DFFF */
	assert_int_equal(seq("\xf0\x80\x80\x80"), 0); /* overlong four-byte */
	assert_int_equal(seq("\xf0\x8f\xbf\xbf"), 0);
	assert_int_equal(seq("\xf4\x90\x80\x80"), 0); /* U+110000 */
	assert_int_equal(seq("\xf5\x80\x80\x80"), 0);
	assert_int_equal(seq("\xff"), 0);
	assert_int_equal(seq("\xc3("), 0); /* a continuation byte missing */
	assert_int_equal(seq("\xe2\x82("), 0);
	assert_int_equal(utf8_seq((const unsigned char *)"\xe2\x82\xac", 2), 0); /* cut */
	assert_int_equal(utf8_seq((const unsigned char *)"A", 0), 0);
}

static void
test_lead_gives_the_range_of_the_first_continuation(void **state)
{
	unsigned char lo = 0, hi = 0;

	(void)state;
	assert_int_equal(utf8_lead('a', &lo, &hi), 0);
	assert_int_equal(utf8_lead(0x80, &lo, &hi), -1);
	assert_int_equal(utf8_lead(0xc1, &lo, &hi), -1);
	assert_int_equal(utf8_lead(0xc2, &lo, &hi), 1);
	assert_true(lo == 0x80 && hi == 0xbf);
	assert_int_equal(utf8_lead(0xe0, &lo, &hi), 2);
	assert_true(lo == 0xa0 && hi == 0xbf);
	assert_int_equal(utf8_lead(0xed, &lo, &hi), 2);
	assert_true(lo == 0x80 && hi == 0x9f);
	assert_int_equal(utf8_lead(0xf0, &lo, &hi), 3);
	assert_true(lo == 0x90 && hi == 0xbf);
	assert_int_equal(utf8_lead(0xf4, &lo, &hi), 3);
	assert_true(lo == 0x80 && hi == 0x8f);
	assert_int_equal(utf8_lead(0xf5, &lo, &hi), -1);
}

static void
test_valid_and_fix(void **state)
{
	const char *good = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
	char *fixed;

	(void)state;
	assert_true(utf8_valid(good, strlen(good)));
	assert_true(utf8_valid("", 0));
	assert_false(utf8_valid("ok\xed\xa0\x80", 5));
	assert_false(utf8_valid("\xe2\x82", 2));
	fixed = utf8_fix(good);
	assert_string_equal(fixed, good);
	free(fixed);
	/* each refused byte is one U+FFFD; what follows is kept */
	fixed = utf8_fix("a\xc0\x80z\xe2\x82");
	assert_string_equal(fixed, "a\xef\xbf\xbd\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd");
	free(fixed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_well_formed_characters_have_their_length),
	    cmocka_unit_test(test_ill_formed_sequences_are_refused),
	    cmocka_unit_test(test_lead_gives_the_range_of_the_first_continuation),
	    cmocka_unit_test(test_valid_and_fix),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
