/*
 * libFuzzer target: JSON as text. Against jansson: what jansson accepts
 * (nesting no deeper than our limit, with no raw NUL, which jansson takes
 * for the end) must be accepted, and what only we accept must be one of
 * the things jansson refuses on purpose (numbers too big for it, unpaired
 * \u surrogates). In every mode one call and two pieces cut at an offset
 * taken from the data agree, and PRETTY output is JSON again whose COMPACT
 * form is the input's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsontext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	char *p;
	size_t len;
	size_t cap;
};

static int
collect(const char *buf, size_t len, void *arg)
{
	struct out *o = arg;

	if (len == 0)
		abort(); /* out is never asked to write nothing */
	if (o->len + len > o->cap) {
		o->cap = (o->len + len) * 2;
		if ((o->p = realloc(o->p, o->cap)) == NULL)
			abort();
	}
	memcpy(o->p + o->len, buf, len);
	o->len += len;
	return 0;
}

/* Feeds data in two pieces cut at `cut` (size: one piece); the verdict, with
 * the output in *o and the error in err. */
static int
run(enum jsontext_mode mode, const uint8_t *data, size_t size, size_t cut, struct out *o,
    char err[128])
{
	struct jsontext *j = jsontext_new(mode, collect, o);
	int rc;

	if (j == NULL)
		abort();
	memset(o, 0, sizeof(*o));
	rc = jsontext_feed(j, data, cut);
	if (rc == 0)
		rc = jsontext_feed(j, data + cut, size - cut);
	if (rc == 0)
		rc = jsontext_finish(j);
	strncpy(err, jsontext_errstr(j), 127);
	err[127] = '\0';
	jsontext_free(j);
	if (mode == JSONTEXT_CHECK && o->len != 0)
		abort();
	if ((rc == 0) != (err[0] == '\0'))
		abort();
	return rc;
}

/* The deepest nesting of text already known to be JSON. */
static size_t
max_depth(const uint8_t *s, size_t n)
{
	size_t d = 0, max = 0;
	int in_str = 0, esc = 0;

	for (size_t i = 0; i < n; i++) {
		if (in_str) {
			if (esc)
				esc = 0;
			else if (s[i] == '\\')
				esc = 1;
			else if (s[i] == '"')
				in_str = 0;
		} else if (s[i] == '"') {
			in_str = 1;
		} else if (s[i] == '[' || s[i] == '{') {
			if (++d > max)
				max = d;
		} else if (s[i] == ']' || s[i] == '}') {
			d--;
		}
	}
	return max;
}

/* jansson refuses these on purpose; RFC 8259 does not. */
static int
jansson_only_limit(const char *text)
{
	return strstr(text, "too big") != NULL || strstr(text, "overflow") != NULL ||
	       strstr(text, "invalid Unicode '") != NULL ||
	       strstr(text, "NUL byte in object key") != NULL;
}

static void
compare_with_jansson(const uint8_t *data, size_t size, int rc)
{
	json_error_t jerr;
	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);

	/* jansson takes a raw NUL byte for the end of the text. */
	if (v != NULL && rc != 0 && max_depth(data, size) <= JSONTEXT_MAX_DEPTH &&
	    memchr(data, '\0', size) == NULL)
		abort();
	if (v == NULL && rc == 0 && !jansson_only_limit(jerr.text))
		abort();
	json_decref(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum jsontext_mode modes[] = {JSONTEXT_CHECK, JSONTEXT_COMPACT,
	                                           JSONTEXT_PRETTY};
	struct out whole[3], split, again;
	char werr[128], serr[128];
	uint32_t h = 2166136261u;
	size_t cut;
	int rc[3], rc2;

	/* FNV-1a of the data picks the cut, so the corpus stays plain JSON. */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 16777619u;
	cut = size > 0 ? h % (size + 1) : 0;

	for (int m = 0; m < 3; m++) {
		rc[m] = run(modes[m], data, size, size, &whole[m], werr);
		rc2 = run(modes[m], data, size, cut, &split, serr);
		if (rc[m] != rc2 || strcmp(werr, serr) != 0)
			abort();
		if (rc[m] == 0 && (whole[m].len != split.len ||
		                   (split.len > 0 && memcmp(whole[m].p, split.p, split.len) != 0)))
			abort();
		if (rc[m] != rc[0])
			abort();
		free(split.p);
	}
	if (rc[0] == 0 && jsontext_check(data, size, NULL, 0) != 0)
		abort();
	compare_with_jansson(data, size, rc[0]);

	if (rc[0] == 0) {
		/* PRETTY is JSON, and compacts to what the input compacts to. */
		if (jsontext_check(whole[2].p, whole[2].len, werr, sizeof(werr)) != 0)
			abort();
		if (run(JSONTEXT_COMPACT, (const uint8_t *)whole[2].p, whole[2].len,
		        whole[2].len / 2, &again, werr) != 0)
			abort();
		if (again.len != whole[1].len || memcmp(again.p, whole[1].p, again.len) != 0)
			abort();
		free(again.p);
		/* And COMPACT prettifies to the same PRETTY. */
		if (run(JSONTEXT_PRETTY, (const uint8_t *)whole[1].p, whole[1].len, 0, &again,
		        werr) != 0)
			abort();
		if (again.len != whole[2].len || memcmp(again.p, whole[2].p, again.len) != 0)
			abort();
		free(again.p);
	}
	for (int m = 0; m < 3; m++)
		free(whole[m].p);
	return 0;
}
