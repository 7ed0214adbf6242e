/*
 * JSON as text: a strict RFC 8259 checker and a re-indenter that work on the
 * bytes, in pieces split anywhere, without turning numbers into doubles or
 * integers (so 1.10 stays 1.10 and 123456789012345678901234567890 stays
 * itself, which a jansson round trip would not do). Used to validate what a
 * user types or writes into a `new` file before anything is sent, and to
 * render the mount's and the CLI's pretty files (input.json, yields).
 *
 *	struct jsontext *j = jsontext_new(JSONTEXT_PRETTY, out_fn, ctx);
 *	while ((n = read(fd, buf, sizeof(buf))) > 0)
 *		if ((rc = jsontext_feed(j, buf, n)) != 0)
 *			break;
 *	if (rc == 0)
 *		rc = jsontext_finish(j);	// -EINVAL: jsontext_errstr(j)
 *	jsontext_free(j);
 *
 * Accepted: exactly one JSON value (any type, as RFC 8259 allows) with
 * optional whitespace around it; strings must be valid UTF-8 (no overlongs,
 * no surrogates encoded in UTF-8, no bytes below 0x20 unescaped); escapes
 * as the RFC lists (\u escapes are not checked for pairing, as the RFC
 * allows); nesting at most JSONTEXT_MAX_DEPTH. A UTF-8 BOM is rejected.
 */
#ifndef SCRIPTUM_JSONTEXT_H
#define SCRIPTUM_JSONTEXT_H

#include <stddef.h>

#define JSONTEXT_MAX_DEPTH 512

enum jsontext_mode {
	JSONTEXT_CHECK,   /* validate only; out is not called */
	JSONTEXT_COMPACT, /* the value with all insignificant whitespace removed */
	JSONTEXT_PRETTY,  /* two-space indent, "key": value, one element a line,
	                   * empty {} and [] kept on one line, a final newline */
};

/* Receives output bytes in order; return 0, or a -errno that stops (and is
 * returned by the jsontext_feed()/jsontext_finish() that called it). buf is
 * borrowed for the call. */
typedef int (*jsontext_out_fn)(const char *buf, size_t len, void *arg);

struct jsontext;

/* NULL only when out of memory. Memory held is O(depth), never O(input). */
struct jsontext *jsontext_new(enum jsontext_mode mode, jsontext_out_fn out, void *arg);
void jsontext_free(struct jsontext *j);

/* Feeds len more bytes. 0, -EINVAL (not JSON; see jsontext_errstr()), or
 * the out callback's error. Sticky: after an error every call returns it. */
int jsontext_feed(struct jsontext *j, const void *buf, size_t len);

/* End of input: 0 if it held exactly one complete value, else -EINVAL
 * (empty input, or cut short), or an earlier error. */
int jsontext_finish(struct jsontext *j);

/* Why it is not JSON, with the byte offset, one line: "expected ',' or '}'
 * at byte 17". "" while no error. Owned by j. */
const char *jsontext_errstr(const struct jsontext *j);

/*
 * Whole-buffer conveniences. jsontext_check(): 0 or -EINVAL with the reason
 * in err. jsontext_render(): a new NUL-terminated string (free() it) in
 * *out, its length in *outlen (may be NULL); 0, -EINVAL, -ENOMEM, or -EFBIG
 * when the result would pass 256 MiB.
 */
int jsontext_check(const void *buf, size_t len, char *err, size_t errlen);
int jsontext_render(enum jsontext_mode mode, const void *buf, size_t len, char **out,
                    size_t *outlen, char *err, size_t errlen);

#endif
