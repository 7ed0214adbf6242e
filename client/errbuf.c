/*
 * The caller-supplied error buffer (see errbuf.h).
 */
#include "errbuf.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

int
errbuf_set(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void
errbuf_excerpt(char *out, size_t outsz, const char *s, size_t n, size_t max, char quote)
{
	size_t o = 0, i;
	bool cut = n > max;

	if (outsz == 0)
		return;
	if (cut) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	for (i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 0x20 || ch == 0x7f)
			out[o++] = '?';
		else if (ch == (unsigned char)quote || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else
			out[o++] = (char)ch;
	}
	if (cut && o + 4 <= outsz)
		for (int k = 0; k < 3; k++)
			out[o++] = '.';
	out[o] = '\0';
}
