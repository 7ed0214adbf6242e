/*
 * UTF-8, decoded one way for the whole project (Unicode's table 3-7: no
 * overlong forms, no surrogates, nothing past U+10FFFF): the checker of
 * JSON text, the excerpts of error bodies and the rendering of strings all
 * use these.
 */
#ifndef SCRIPTUM_UTF8_H
#define SCRIPTUM_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* For a byte c at the start of a character: how many continuation bytes
 * follow (1 to 3), with the range the first of them must lie in set in
 * *lo..*hi (each later one is 0x80..0xbf); 0 for an ASCII byte; -1 for a
 * byte that cannot start a character. */
int utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi);

/* The length (1 to 4) of the valid character at s, of which n bytes are
 * at hand; 0 when it is invalid or cut short. */
size_t utf8_seq(const unsigned char *s, size_t n);

/* Whether the n bytes at s are all valid UTF-8. */
bool utf8_valid(const char *s, size_t n);

/* A copy of the NUL-terminated s in which every byte that does not begin
 * a valid character became U+FFFD; free() it. NULL when out of memory. */
char *utf8_fix(const char *s);

#endif
