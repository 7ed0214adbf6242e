/*
 * The base64 decoder: RFC 4648 vectors, both alphabets, missing padding,
 * whitespace, rejected input, and pieces split at every offset agreeing
 * with one call.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b64.h"

/* A plain reference encoder, so the tests do not trust the code under test. */
static char *
ref_encode(const unsigned char *in, size_t n, int urlsafe, int pad)
{
	const char *std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *a = urlsafe ? url : std;
	char *out = malloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;

	assert_non_null(out);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (left > 1)
			out[o++] = a[v >> 6 & 63];
		else if (pad)
			out[o++] = '=';
		if (left > 2)
			out[o++] = a[v & 63];
		else if (pad)
			out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

/* Decodes s in one call and expects `want` (wantlen bytes). */
static void
assert_decodes(const char *s, const char *want, size_t wantlen)
{
	size_t n = strlen(s), got;
	unsigned char *out = malloc(B64_DECODED_MAX(n) + 1);

	assert_non_null(out);
	if (b64_decode(s, n, out, &got) != 0)
		fail_msg("\"%s\" was rejected", s);
	assert_int_equal(got, wantlen);
	assert_memory_equal(out, want, wantlen);
	free(out);
}

static void
assert_rejected(const char *s, size_t n)
{
	size_t got;
	unsigned char *out = malloc(B64_DECODED_MAX(n) + 1);

	assert_non_null(out);
	if (b64_decode(s, n, out, &got) != -EINVAL)
		fail_msg("\"%.*s\" was accepted", (int)n, s);
	free(out);
}

/* Decodes s in pieces cut at cuts[0..ncuts) and returns the bytes, or NULL if rejected. */
static unsigned char *
decode_cut(const char *s, size_t n, const size_t *cuts, size_t ncuts, size_t *len)
{
	unsigned char *out = malloc(B64_DECODED_MAX(n) + 1);
	struct b64_dec d;
	size_t at = 0, o = 0;

	assert_non_null(out);
	b64_dec_init(&d);
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : n, got;

		if (b64_dec_feed(&d, s + at, end - at, out + o, &got) != 0)
			goto rejected;
		assert_true(got <= B64_DECODED_MAX(end - at));
		o += got;
		at = end;
	}
	if (b64_dec_finish(&d) != 0)
		goto rejected;
	*len = o;
	return out;
rejected:
	free(out);
	return NULL;
}

/* One call, every split in two and one byte at a time must all agree. */
static void
assert_splits_agree(const char *s, const unsigned char *want, size_t wantlen)
{
	size_t n = strlen(s), len;
	unsigned char *out;

	for (size_t cut = 0; cut <= n; cut++) {
		out = decode_cut(s, n, &cut, 1, &len);
		if (out == NULL)
			fail_msg("\"%s\" cut at %zu was rejected", s, cut);
		assert_int_equal(len, wantlen);
		assert_memory_equal(out, want, wantlen);
		free(out);
	}
	size_t *cuts = malloc((n + 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	out = decode_cut(s, n, cuts, n, &len);
	assert_non_null(out);
	assert_int_equal(len, wantlen);
	assert_memory_equal(out, want, wantlen);
	free(out);
	free(cuts);
}

static const struct {
	const char *enc;
	const char *dec;
} rfc4648[] = {
    {"", ""},
    {"Zg==", "f"},
    {"Zm8=", "fo"},
    {"Zm9v", "foo"},
    {"Zm9vYg==", "foob"},
    {"Zm9vYmE=", "fooba"},
    {"Zm9vYmFy", "foobar"},
};

static void
test_b64_decodes_rfc4648_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++)
		assert_decodes(rfc4648[i].enc, rfc4648[i].dec, strlen(rfc4648[i].dec));
}

static void
test_b64_vectors_split_at_every_offset_agree(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++)
		assert_splits_agree(rfc4648[i].enc, (const unsigned char *)rfc4648[i].dec,
		                    strlen(rfc4648[i].dec));
	assert_splits_agree("Zm9v YmFy\r\nZm9v\nYg=\n=", (const unsigned char *)"foobarfoob", 10);
}

static void
test_b64_accepts_missing_padding(void **state)
{
	(void)state;
	assert_decodes("Zg", "f", 1);
	assert_decodes("Zm8", "fo", 2);
	assert_decodes("Zm9vYg", "foob", 4);
	assert_decodes("Zg=", "f", 1); /* half the padding */
	assert_splits_agree("Zm9vYmE", (const unsigned char *)"fooba", 5);
}

static void
test_b64_accepts_url_safe_alphabet(void **state)
{
	const unsigned char bytes[] = {0xfb, 0xff, 0xbf, 0xfe};

	(void)state;
	assert_decodes("+/+/", (const char *)bytes, 3);
	assert_decodes("-_-_", (const char *)bytes, 3);
	assert_decodes("-_-_/g", (const char *)bytes, 4);
	assert_decodes("+_-/_g==", (const char *)bytes, 4);
}

static void
test_b64_skips_whitespace(void **state)
{
	(void)state;
	assert_decodes(" Zm9v\nYmFy\r\n", "foobar", 6);
	assert_decodes("Zm\t9v", "foo", 3);
	assert_decodes("Zg = = \n", "f", 1);
}

static void
test_b64_rejects_invalid_characters(void **state)
{
	(void)state;
	assert_rejected("Zm9v!", 5);
	assert_rejected("Zm*v", 4);
	assert_rejected("Zm9v.YmFy", 9);
	assert_rejected("Zm9\xff", 4);
	assert_rejected("Zm\0v", 4);
	assert_rejected("Zm9v\v", 5); /* vertical tab is not whitespace here */
}

static void
test_b64_rejects_misplaced_padding(void **state)
{
	(void)state;
	assert_rejected("=", 1);
	assert_rejected("Z===", 4);
	assert_rejected("Zm9v=", 5);
	assert_rejected("Zg===", 5);
	assert_rejected("Zm8==", 5);
	assert_rejected("Zg==Zg==", 8); /* nothing after the padding */
	assert_rejected("Zm=9", 4);
}

static void
test_b64_rejects_a_lone_final_character(void **state)
{
	(void)state;
	assert_rejected("Zm9vY", 5);
	assert_rejected("Z", 1);
}

static void
test_b64_stays_failed_after_an_error(void **state)
{
	struct b64_dec d;
	unsigned char out[16];
	size_t got;

	(void)state;
	b64_dec_init(&d);
	assert_int_equal(b64_dec_feed(&d, "Zm!v", 4, out, &got), -EINVAL);
	assert_int_equal(b64_dec_feed(&d, "Zm9v", 4, out, &got), -EINVAL);
	assert_int_equal(got, 0);
	assert_int_equal(b64_dec_finish(&d), -EINVAL);
}

static void
test_b64_large_random_round_trip(void **state)
{
	const size_t n = (3 << 20) + 2;
	unsigned char *raw = malloc(n);
	uint32_t x = 12345;

	(void)state;
	assert_non_null(raw);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		raw[i] = (unsigned char)(x >> 16);
	}
	for (int variant = 0; variant < 2; variant++) {
		char *enc = ref_encode(raw, n, variant, !variant);
		size_t elen = strlen(enc), len;
		unsigned char *out;

		/* One call. */
		out = malloc(B64_DECODED_MAX(elen));
		assert_non_null(out);
		assert_int_equal(b64_decode(enc, elen, out, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(out, raw, n);
		free(out);

		/* Pieces of awkward sizes, as a network hands them over. */
		size_t cuts[4096], nc = 0;
		for (size_t at = 0; nc < 4096;) {
			x = x * 1103515245u + 12345u;
			at += 1 + (x >> 16) % 4097;
			if (at >= elen)
				break;
			cuts[nc++] = at;
		}
		out = decode_cut(enc, elen, cuts, nc, &len);
		assert_non_null(out);
		assert_int_equal(len, n);
		assert_memory_equal(out, raw, n);
		free(out);

		/* In place. */
		assert_int_equal(b64_decode(enc, elen, (unsigned char *)enc, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(enc, raw, n);
		free(enc);
	}
	free(raw);
}

static void
test_b64_round_trips_every_short_length(void **state)
{
	unsigned char raw[64];

	(void)state;
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(raw); n++) {
		for (int pad = 0; pad < 2; pad++) {
			char *enc = ref_encode(raw, n, !pad, pad);

			assert_splits_agree(enc, raw, n);
			free(enc);
		}
	}
}

/*
 * Long runs of the standard alphabet (where the AVX2 blocks work, when
 * the CPU has them) with a URL-safe character, whitespace or a bad
 * character put at a random place: every block boundary and fallback
 * agrees with what the input means, decoded whole, in place and split.
 */
static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
test_b64_long_inputs_with_odd_characters_anywhere(void **state)
{
	uint64_t seed = 0x243f6a8885a308d3ULL;

	(void)state;
	for (int round = 0; round < 400; round++) {
		size_t n = 1 + (size_t)(next_rand(&seed) % 3000);
		unsigned char *raw = malloc(n), *out;
		char *enc, *copy;
		size_t len, at, outlen;
		int kind = (int)(next_rand(&seed) % 4);

		assert_non_null(raw);
		for (size_t i = 0; i < n; i++)
			raw[i] = (unsigned char)next_rand(&seed);
		enc = ref_encode(raw, n, 0, 1);
		len = strlen(enc);
		at = (size_t)(next_rand(&seed) % len);
		copy = malloc(len + 2);
		assert_non_null(copy);
		memcpy(copy, enc, len + 1);
		if (kind == 1 && (copy[at] == '+' || copy[at] == '/')) {
			copy[at] = copy[at] == '+' ? '-' : '_'; /* the same value */
		} else if (kind == 2) {
			memmove(copy + at + 1, copy + at, len - at + 1); /* a newline inside */
			copy[at] = '\n';
			len++;
		} else if (kind == 3) {
			copy[at] = '*';
		}
		/* exactly the room promised, so that a store past it is caught */
		out = malloc(B64_DECODED_MAX(len));
		assert_non_null(out);
		if (kind == 3) {
			assert_int_equal(b64_decode(copy, len, out, &outlen), -EINVAL);
		} else {
			assert_int_equal(b64_decode(copy, len, out, &outlen), 0);
			assert_int_equal(outlen, n);
			assert_memory_equal(out, raw, n);
			{
				size_t cuts[3], got;
				unsigned char *piece;

				for (int c = 0; c < 3; c++) {
					cuts[c] = len * (size_t)(c + 1) / 4 +
					          (size_t)(next_rand(&seed) % 7);
					if (cuts[c] > len)
						cuts[c] = len;
					if (c > 0 && cuts[c] < cuts[c - 1])
						cuts[c] = cuts[c - 1];
				}
				piece = decode_cut(copy, len, cuts, 3, &got);
				assert_non_null(piece);
				assert_int_equal(got, n);
				assert_memory_equal(piece, raw, n);
				free(piece);
			}
			/* in place: dst is the input's own memory */
			assert_int_equal(b64_decode(copy, len, (unsigned char *)copy, &outlen), 0);
			assert_int_equal(outlen, n);
			assert_memory_equal(copy, raw, n);
		}
		free(copy);
		free(enc);
		free(out);
		free(raw);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_b64_decodes_rfc4648_vectors),
	    cmocka_unit_test(test_b64_vectors_split_at_every_offset_agree),
	    cmocka_unit_test(test_b64_accepts_missing_padding),
	    cmocka_unit_test(test_b64_accepts_url_safe_alphabet),
	    cmocka_unit_test(test_b64_skips_whitespace),
	    cmocka_unit_test(test_b64_rejects_invalid_characters),
	    cmocka_unit_test(test_b64_rejects_misplaced_padding),
	    cmocka_unit_test(test_b64_rejects_a_lone_final_character),
	    cmocka_unit_test(test_b64_stays_failed_after_an_error),
	    cmocka_unit_test(test_b64_large_random_round_trip),
	    cmocka_unit_test(test_b64_round_trips_every_short_length),
	    cmocka_unit_test(test_b64_long_inputs_with_odd_characters_anywhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
