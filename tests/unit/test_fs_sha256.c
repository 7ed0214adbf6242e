/*
 * SHA-256 (fs/sha256.c) against the test vectors of FIPS 180-4 (NIST's
 * examples: "abc", the 448- and 896-bit messages, a million 'a') and the
 * empty message, whole and fed in pieces of every size.
 *
 *	make build/tests/test_fs_sha256 && build/tests/test_fs_sha256
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sha256.h"

static void
hex(const unsigned char d[SHA256_LEN], char out[2 * SHA256_LEN + 1])
{
	for (int i = 0; i < SHA256_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The digest of len bytes at p, fed in pieces of piece bytes (0: whole). */
static void
digest_of(const void *p, size_t len, size_t piece, char out[2 * SHA256_LEN + 1])
{
	struct sha256 s;
	unsigned char d[SHA256_LEN];
	const unsigned char *b = p;

	sha256_init(&s);
	if (piece == 0) {
		sha256_update(&s, b, len);
	} else {
		for (size_t at = 0; at < len; at += piece)
			sha256_update(&s, b + at, len - at < piece ? len - at : piece);
	}
	sha256_final(&s, d);
	hex(d, out);
}

static const struct {
	const char *msg;
	const char *want;
} vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopq"
     "klmnopqrlmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static void
test_fips_180_4_vectors_whole_and_in_pieces(void **state)
{
	char got[2 * SHA256_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		size_t len = strlen(vectors[i].msg);

		for (size_t piece = 0; piece <= 65; piece++) {
			digest_of(vectors[i].msg, len, piece, got);
			assert_string_equal(got, vectors[i].want);
		}
	}
}

static void
test_a_million_a(void **state)
{
	char *m = malloc(1000000), got[2 * SHA256_LEN + 1];

	(void)state;
	assert_non_null(m);
	memset(m, 'a', 1000000);
	digest_of(m, 1000000, 0, got);
	assert_string_equal(got,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	digest_of(m, 1000000, 4093, got);
	assert_string_equal(got,
	                    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(m);
}

/* Lengths around the padding's edges (55, 56, 63, 64 bytes in the last
 * block) give the same digest whole or a byte at a time. */
static void
test_padding_edges_agree_whole_and_bytewise(void **state)
{
	unsigned char m[200];
	char whole[2 * SHA256_LEN + 1], bytes[2 * SHA256_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(m); i++)
		m[i] = (unsigned char)(i * 7 + 1);
	for (size_t len = 0; len <= sizeof(m); len++) {
		digest_of(m, len, 0, whole);
		digest_of(m, len, 1, bytes);
		assert_string_equal(whole, bytes);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fips_180_4_vectors_whole_and_in_pieces),
	    cmocka_unit_test(test_a_million_a),
	    cmocka_unit_test(test_padding_edges_agree_whole_and_bytewise),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
