/*
 * The emulator's generated outputs: exact sizes, valid JSON, and reads at any
 * offset that agree with one read from the start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "gen.h"

static char *
gen_whole(uint64_t total, uint64_t seed)
{
	char *buf = malloc(total + 1);

	assert_non_null(buf);
	assert_int_equal(gen_read(total, seed, 0, buf, total), total);
	buf[total] = '\0';
	return buf;
}

static void
test_gen_is_valid_json_of_exact_size(void **state)
{
	(void)state;
	for (uint64_t n = 1; n < 700; n++) {
		char *buf = gen_whole(n, n * 7);
		json_error_t err;
		json_t *doc = json_loadb(buf, n, JSON_DECODE_ANY, &err);

		if (doc == NULL)
			fail_msg("size %llu: %s", (unsigned long long)n, err.text);
		json_decref(doc);
		free(buf);
	}
}

static void
test_gen_reads_at_any_offset_agree(void **state)
{
	const uint64_t total = 5000;
	char *whole = gen_whole(total, 3);
	char part[300];

	(void)state;
	for (uint64_t off = 0; off < total; off += 37) {
		for (size_t len = 1; len < sizeof(part); len += 61) {
			size_t want = off + len > total ? total - off : len;

			assert_int_equal(gen_read(total, 3, off, part, len), want);
			assert_memory_equal(part, whole + off, want);
		}
	}
	assert_int_equal(gen_read(total, 3, total, part, 10), 0);
	free(whole);
}

static void
test_gen_seed_changes_content(void **state)
{
	char *a = gen_whole(1000, 1);
	char *b = gen_whole(1000, 2);

	(void)state;
	assert_memory_not_equal(a, b, 1000);
	free(a);
	free(b);
}

static void
test_b64_encodes_rfc4648_vectors(void **state)
{
	static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
	                                  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	char buf[16];

	(void)state;
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		size_t n = strlen(in[i]);

		assert_int_equal(gen_b64_len(n), strlen(out[i]));
		assert_int_equal(gen_b64_encode((const unsigned char *)in[i], n, buf),
		                 strlen(out[i]));
		assert_memory_equal(buf, out[i], strlen(out[i]));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_gen_is_valid_json_of_exact_size),
	    cmocka_unit_test(test_gen_reads_at_any_offset_agree),
	    cmocka_unit_test(test_gen_seed_changes_content),
	    cmocka_unit_test(test_b64_encodes_rfc4648_vectors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
