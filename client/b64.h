/*
 * Base64 decoding, whole or in pieces split anywhere (API bytes fields and
 * the data of result-stream chunks). Accepts the standard and the URL-safe
 * alphabet, with or without padding; skips whitespace; rejects anything else.
 */
#ifndef SCRIPTUM_B64_H
#define SCRIPTUM_B64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room enough for the bytes that n characters decode to. */
#define B64_DECODED_MAX(n) (((n) + 3) / 4 * 3)

/*
 * An incremental decoder. It lives wherever the caller puts it (no heap);
 * the fields are private to b64.c.
 */
struct b64_dec {
	uint32_t acc;  /* bits of the current quantum */
	unsigned nacc; /* characters in it: 0..3 */
	unsigned npad; /* '=' seen; after the first, only '=' and whitespace */
	bool failed;
};

void b64_dec_init(struct b64_dec *d);

/*
 * Decodes n more characters into dst, which must hold B64_DECODED_MAX(n)
 * bytes; *outlen is set to the bytes written. Each byte is written as soon as
 * its bits are in, so nothing is held back for b64_dec_finish(). dst may be
 * the same memory as src (decoding in place). Returns 0, or -EINVAL for a
 * character outside both alphabets or misplaced padding, and from then on.
 */
int b64_dec_feed(struct b64_dec *d, const char *src, size_t n, unsigned char *dst, size_t *outlen);

/* 0 if the input ended on a whole byte, -EINVAL if it was cut short or bad. */
int b64_dec_finish(struct b64_dec *d);

/*
 * Decodes n characters at once into dst (B64_DECODED_MAX(n) bytes).
 * Returns 0 and the length in *outlen, or -EINVAL.
 */
int b64_decode(const char *src, size_t n, unsigned char *dst, size_t *outlen);

#endif
