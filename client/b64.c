/*
 * Base64 decoder (RFC 4648 §4 and §5 alphabets). Result chunks are up to
 * 16 MiB of base64 each, so the common case, four alphabet characters at a
 * time, is one lookup per character into tables that already hold each
 * character's bits in place; anything else (whitespace, padding, a quantum
 * split between feeds, an error) goes through a character-at-a-time path.
 */
#include <errno.h>

#include "b64.h"

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
