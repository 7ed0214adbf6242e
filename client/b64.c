/*
 * Base64 decoder (RFC 4648 §4 and §5 alphabets). Result chunks are up to
 * 16 MiB of base64 each, so the common case, four alphabet characters at a
 * time, is one lookup per character into tables that already hold each
 * character's bits in place; anything else (whitespace, padding, a quantum
 * split between feeds, an error) goes through a character-at-a-time path.
 * On x86-64 CPUs with AVX2, runs of the standard alphabet go 32 characters
 * at a time first (the method of Muła and Lemire, "Faster Base64 Encoding
 * and Decoding using AVX2 Instructions", 2018): a block holding anything
 * else is left to the tables.
 */
#include <errno.h>
#include <stdatomic.h>

#include "b64.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B64_AVX2 1
#include <immintrin.h>
#endif

/* Classes of the slow path, past the 64 values. */
#define PAD 64
#define WS  65
#define BAD 66

#define VAL(c)                                                                      \
	((c) >= 'A' && (c) <= 'Z'                                  ? (c) - 'A'      \
	 : (c) >= 'a' && (c) <= 'z'                                ? (c) - 'a' + 26 \
	 : (c) >= '0' && (c) <= '9'                                ? (c) - '0' + 52 \
	 : (c) == '+' || (c) == '-'                                ? 62             \
	 : (c) == '/' || (c) == '_'                                ? 63             \
	 : (c) == '='                                              ? PAD            \
	 : (c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n' ? WS             \
	                                                           : BAD)

/* Fast tables: the value shifted into its place in the 24-bit group, or a flag bit. */
#define SLOW_BIT    0x80000000u
#define FAST(c, sh) (VAL(c) < 64 ? (uint32_t)VAL(c) << (sh) : SLOW_BIT)
#define F0(c)       FAST(c, 18)
#define F1(c)       FAST(c, 12)
#define F2(c)       FAST(c, 6)
#define F3(c)       FAST(c, 0)
#define CLS(c)      ((unsigned char)VAL(c))
#define R4(f, i)    f(i), f((i) + 1), f((i) + 2), f((i) + 3)
#define R16(f, i)   R4(f, i), R4(f, (i) + 4), R4(f, (i) + 8), R4(f, (i) + 12)
#define R64(f, i)   R16(f, i), R16(f, (i) + 16), R16(f, (i) + 32), R16(f, (i) + 48)
#define R256(f)     R64(f, 0), R64(f, 64), R64(f, 128), R64(f, 192)

static const uint32_t t0[256] = {R256(F0)};
static const uint32_t t1[256] = {R256(F1)};
static const uint32_t t2[256] = {R256(F2)};
static const uint32_t t3[256] = {R256(F3)};
static const unsigned char cls[256] = {R256(CLS)};

#ifdef B64_AVX2
/* Decodes whole blocks of 32 standard-alphabet characters into 24 bytes
 * each while at least 44 characters remain (each store writes 32 bytes, and
 * dst has room for what n characters decode to); stops at the first block
 * holding any other character. Returns the characters consumed. */
__attribute__((target("avx2"))) static size_t
dec_avx2(const unsigned char *s, size_t n, unsigned char *dst)
{
	/* lo and hi: a bit per class of the low and high nibble; a character
	 * of the alphabet has none in common. roll: what to add to a
	 * character to make its value, by its high nibble ('/' apart). */
	const __m256i lut_lo =
	    _mm256_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1A,
	                     0x1B, 0x1B, 0x1B, 0x1A, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	                     0x11, 0x11, 0x13, 0x1A, 0x1B, 0x1B, 0x1B, 0x1A);
	const __m256i lut_hi =
	    _mm256_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
	                     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08,
	                     0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
	const __m256i lut_roll =
	    _mm256_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4,
	                     -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
	const __m256i mask_2f = _mm256_set1_epi8(0x2f);
	/* 6-bit values to 3 bytes a quadruple, packed at the front of each lane */
	const __m256i pack =
	    _mm256_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5,
	                     4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
	const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 4, 5, 6, -1, -1);
	size_t i = 0;

	for (; n - i >= 44; i += 32, dst += 24) {
		__m256i str = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));
		__m256i hi_nib = _mm256_and_si256(_mm256_srli_epi32(str, 4), mask_2f);
		__m256i lo_nib = _mm256_and_si256(str, mask_2f);
		__m256i hi = _mm256_shuffle_epi8(lut_hi, hi_nib);
		__m256i lo = _mm256_shuffle_epi8(lut_lo, lo_nib);
		__m256i roll, out;

		if (!_mm256_testz_si256(lo, hi))
			break;
		roll = _mm256_shuffle_epi8(
		    lut_roll, _mm256_add_epi8(_mm256_cmpeq_epi8(str, mask_2f), hi_nib));
		str = _mm256_add_epi8(str, roll);
		/* 00aaaaaa 00bbbbbb ... to aaaaaabb bbbbcccc ccdddddd */
		out = _mm256_maddubs_epi16(str, _mm256_set1_epi32(0x01400140));
		out = _mm256_madd_epi16(out, _mm256_set1_epi32(0x00011000));
		out = _mm256_shuffle_epi8(out, pack);
		out = _mm256_permutevar8x32_epi32(out, lanes);
		_mm256_storeu_si256((__m256i *)(void *)dst, out);
	}
	return i;
}

/* 1 when the CPU has AVX2, 0 when not, -1 before the first look. */
static atomic_int have_avx2 = -1;

static bool
use_avx2(void)
{
	int v = atomic_load_explicit(&have_avx2, memory_order_relaxed);

	if (v < 0) {
		__builtin_cpu_init();
		v = __builtin_cpu_supports("avx2") ? 1 : 0;
		atomic_store_explicit(&have_avx2, v, memory_order_relaxed);
	}
	return v == 1;
}
#endif

void
b64_dec_init(struct b64_dec *d)
{
	d->acc = 0;
	d->nacc = 0;
	d->npad = 0;
	d->failed = false;
}

int
b64_dec_feed(struct b64_dec *d, const char *src, size_t n, unsigned char *dst, size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0;

	*outlen = 0;
	if (d->failed)
		return -EINVAL;
	while (i < n) {
		if (d->nacc == 0 && d->npad == 0) {
#ifdef B64_AVX2
			if (n - i >= 44 && use_avx2()) {
				size_t used = dec_avx2(s + i, n - i, dst + o);

				i += used;
				o += used / 4 * 3;
			}
#endif
			while (n - i >= 4) {
				uint32_t x = t0[s[i]] | t1[s[i + 1]] | t2[s[i + 2]] | t3[s[i + 3]];

				if (x & SLOW_BIT)
					break;
				dst[o] = (unsigned char)(x >> 16);
				dst[o + 1] = (unsigned char)(x >> 8);
				dst[o + 2] = (unsigned char)x;
				o += 3;
				i += 4;
			}
			if (i == n)
				break;
		}

		unsigned v = cls[s[i++]];
		if (v < 64) {
			if (d->npad > 0)
				goto bad;
			d->acc = d->acc << 6 | v;
			switch (++d->nacc) {
			case 2:
				dst[o++] = (unsigned char)(d->acc >> 4);
				break;
			case 3:
				dst[o++] = (unsigned char)(d->acc >> 2);
				break;
			case 4:
				dst[o++] = (unsigned char)d->acc;
				d->acc = 0;
				d->nacc = 0;
				break;
			}
		} else if (v == PAD) {
			/* "xx==" or "xxx=", or a prefix of that padding. */
			d->npad++;
			if (d->nacc < 2 || d->nacc + d->npad > 4)
				goto bad;
		} else if (v != WS) {
			goto bad;
		}
	}
	*outlen = o;
	return 0;
bad:
	d->failed = true;
	*outlen = o;
	return -EINVAL;
}

int
b64_dec_finish(struct b64_dec *d)
{
	/* One character holds 6 bits: not a byte. */
	if (d->failed || d->nacc == 1)
		return -EINVAL;
	return 0;
}

int
b64_decode(const char *src, size_t n, unsigned char *dst, size_t *outlen)
{
	struct b64_dec d;
	int rc;

	b64_dec_init(&d);
	if ((rc = b64_dec_feed(&d, src, n, dst, outlen)) != 0)
		return rc;
	return b64_dec_finish(&d);
}
