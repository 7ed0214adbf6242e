/*
 * The UTF-8 decoder (see utf8.h).
 */
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

int
utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	int need;

	if (c < 0x80)
		return 0;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3;
	else
		return -1; /* a continuation byte, an overlong C0/C1, or past F4 */
	*lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
	*hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
	return need;
}

size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char lo, hi;
	int need;

	if (n == 0 || (need = utf8_lead(s[0], &lo, &hi)) < 0)
		return 0;
	if ((size_t)need >= n)
		return 0;
	for (int i = 1; i <= need; i++) {
		if (s[i] < lo || s[i] > hi)
			return 0;
		lo = 0x80, hi = 0xbf;
	}
	return (size_t)need + 1;
}

bool
utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0, len; i < n; i += len)
		if ((len = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
			return false;
	return true;
}

char *
utf8_fix(const char *s)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n * 3 + 1);

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq((const unsigned char *)s + i, n - i);

		if (len == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, len);
		o += len;
		i += len;
	}
	out[o] = '\0';
	return out;
}
