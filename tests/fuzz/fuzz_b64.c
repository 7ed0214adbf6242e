/*
 * libFuzzer target: the base64 decoder. Decoding at once and in two pieces
 * must agree, and never write past the bound the header promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *a, *b;
	size_t alen = 0, blen1 = 0, blen2 = 0, cut;
	struct b64_dec d;
	int ra, rb;

	if (size < 1)
		return 0;
	cut = data[0] % size;
	data++;
	size--;
	if (cut > size)
		cut = size;
	a = malloc(B64_DECODED_MAX(size) + 8);
	b = malloc(B64_DECODED_MAX(size) + 8);
	if (a == NULL || b == NULL)
		abort();
	ra = b64_decode((const char *)data, size, a, &alen);
	b64_dec_init(&d);
	rb = b64_dec_feed(&d, (const char *)data, cut, b, &blen1);
	if (rb == 0)
		rb = b64_dec_feed(&d, (const char *)data + cut, size - cut, b + blen1, &blen2);
	if (rb == 0)
		rb = b64_dec_finish(&d);
	if ((ra == 0) != (rb == 0))
		abort();
	if (ra == 0 && (alen != blen1 + blen2 || memcmp(a, b, alen) != 0))
		abort();
	free(a);
	free(b);
	return 0;
}
