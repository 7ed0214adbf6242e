/*
 * JSON as text (see jsontext.h): one pass over the bytes with a state
 * machine whose only memory of the document is a bit a nesting level
 * (object or array), so any input size is checked and re-indented in the
 * same few kilobytes. Strings, numbers and literals are copied through as
 * written; only the whitespace between tokens is dropped or rebuilt.
 *
 * Result bodies are mostly long strings (base64 chunks), so the string
 * state scans eight plain ASCII bytes at a time and hands each run on in
 * one piece: a run at least as long as the output buffer goes to out()
 * straight from the caller's memory, anything shorter is batched.
 *
 * Byte offsets in error messages count from 0 over everything fed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "errbuf.h"
#include "jsontext.h"
#include "utf8.h"

/* Output is batched in this much memory; also more than the longest
 * indentation ("\n" and 2 * JSONTEXT_MAX_DEPTH spaces) plus a byte. */
#define OUTBUF 8192

/*
 * jsontext_render() refuses to build more than this. PRETTY can turn one
 * input byte into a newline and 2 * JSONTEXT_MAX_DEPTH spaces of
 * indentation, so a deeply nested input of a few hundred kilobytes could
 * otherwise ask for gigabytes; streaming callers have no such cap, since
 * they hold no more than the output buffer.
 */
#define RENDER_MAX ((size_t)256 << 20)

enum state {
	ST_START,     /* before the top-level value */
	ST_VALUE,     /* after ':', or after ',' in an array */
	ST_ARR_FIRST, /* after '[': a value or ']' */
	ST_OBJ_FIRST, /* after '{': a key or '}' */
	ST_KEY,       /* after ',' in an object */
	ST_COLON,     /* after a key */
	ST_AFTER,     /* after a value in a container: ',' or the closer */
	ST_END,       /* after the top-level value: only whitespace */
	ST_STRING,    /* in a string, at a plain byte or the end */
	ST_ESCAPE,    /* after a backslash */
	ST_HEX,       /* in \uXXXX, hex_left digits to go */
	ST_UTF8,      /* in a multibyte sequence, u8_need bytes to go */
	ST_LITERAL,   /* in true, false or null */
	ST_NUM_START, /* at a number's first byte ('-' or a digit) */
	ST_MINUS,     /* after '-' */
	ST_ZERO,      /* after the integer part "0" */
	ST_INT,       /* in the integer part's digits */
	ST_DOT,       /* after '.' */
	ST_FRAC,      /* in the fraction's digits */
	ST_EXP_MARK,  /* after 'e' or 'E' */
	ST_EXP_SIGN,  /* after the exponent's sign */
	ST_EXP,       /* in the exponent's digits */
};

struct jsontext {
	enum jsontext_mode mode;
	jsontext_out_fn out;
	void *arg;
	bool emitting; /* not CHECK, and there is an out */
	int failed;    /* the latched error, 0 while all is well */
	bool finished;
	char errstr[80];

	size_t base; /* bytes fed before the current call */
	enum state state;
	bool key; /* the string being read is an object key */
	unsigned char hex_left;
	unsigned char u8_need; /* continuation bytes still due */
	unsigned char u8_lo;   /* the range the next one must be in */
	unsigned char u8_hi;
	const char *lit; /* the literal being matched, and how far */
	size_t lit_pos;

	unsigned depth;
	unsigned char is_obj[JSONTEXT_MAX_DEPTH / 8]; /* a bit a level: 1 = object */

	size_t used; /* bytes waiting in obuf */
	char obuf[]; /* OUTBUF bytes when emitting, else none */
};

/* Latches -EINVAL and why, at s[i] of the current feed; every later call
 * returns it. */
static int
fail(struct jsontext *j, size_t i, const char *what)
{
	snprintf(j->errstr, sizeof(j->errstr), "%s at byte %zu", what, j->base + i);
	j->failed = -EINVAL;
	return j->failed;
}

/* An error with no position: the input ended. */
static int
fail_end(struct jsontext *j, const char *what)
{
	snprintf(j->errstr, sizeof(j->errstr), "%s", what);
	j->failed = -EINVAL;
	return j->failed;
}

static int
out_failed(struct jsontext *j, int rc)
{
	snprintf(j->errstr, sizeof(j->errstr), "writing the output failed (error %d)", rc);
	j->failed = rc;
	return rc;
}

static int
flush(struct jsontext *j)
{
	int rc;

	if (j->used == 0)
		return 0;
	rc = j->out(j->obuf, j->used, j->arg);
	j->used = 0;
	return rc != 0 ? out_failed(j, rc) : 0;
}

static int
emit(struct jsontext *j, const void *p, size_t n)
{
	int rc;

	if (!j->emitting || n == 0)
		return 0;
	if (n > OUTBUF - j->used) {
		if ((rc = flush(j)) != 0)
			return rc;
		/* Big runs skip the copy. */
		if (n >= OUTBUF) {
			rc = j->out(p, n, j->arg);
			return rc != 0 ? out_failed(j, rc) : 0;
		}
	}
	memcpy(j->obuf + j->used, p, n);
	j->used += n;
	return 0;
}

static int
emit_byte(struct jsontext *j, char c)
{
	int rc;

	if (!j->emitting)
		return 0;
	if (j->used == OUTBUF && (rc = flush(j)) != 0)
		return rc;
	j->obuf[j->used++] = c;
	return 0;
}

/* PRETTY only: a line break and the indentation of the given level. */
static int
emit_newline(struct jsontext *j, unsigned depth)
{
	size_t n = 1 + 2 * (size_t)depth;
	int rc;

	if (!j->emitting || j->mode != JSONTEXT_PRETTY)
		return 0;
	if (n > OUTBUF - j->used && (rc = flush(j)) != 0)
		return rc;
	j->obuf[j->used] = '\n';
	memset(j->obuf + j->used + 1, ' ', n - 1);
	j->used += n;
	return 0;
}

static bool
top_is_obj(const struct jsontext *j)
{
	unsigned d = j->depth - 1;

	return j->is_obj[d / 8] >> (d % 8) & 1;
}

static void
value_done(struct jsontext *j)
{
	j->state = j->depth > 0 ? ST_AFTER : ST_END;
}

static bool
is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Bytes a string holds as they are: not '"', '\\', a control byte or non-ASCII. */
#define PLAIN(c)  ((c) >= 0x20 && (c) < 0x80 && (c) != '"' && (c) != '\\')
#define R4(f, i)  f(i), f((i) + 1), f((i) + 2), f((i) + 3)
#define R16(f, i) R4(f, i), R4(f, (i) + 4), R4(f, (i) + 8), R4(f, (i) + 12)
#define R64(f, i) R16(f, i), R16(f, (i) + 16), R16(f, (i) + 32), R16(f, (i) + 48)
#define R256(f)   R64(f, 0), R64(f, 64), R64(f, 128), R64(f, 192)
#define ONES      0x0101010101010101ull
#define HIGHS     0x8080808080808080ull

static const bool plain[256] = {R256(PLAIN)};

/* The high bit of each byte of x that is zero, and maybe of some above it:
 * enough to tell whether there is one. */
static uint64_t
zero_bytes(uint64_t x)
{
	return (x - ONES) & ~x & HIGHS;
}

/* The same for bytes below 0x20. */
static uint64_t
control_bytes(uint64_t x)
{
	return (x - 0x20 * ONES) & ~x & HIGHS;
}

/* The end of the run of plain bytes from s[i]: eight at a time while no
 * byte of the eight is special, then one at a time. */
static size_t
plain_run(const unsigned char *s, size_t i, size_t n)
{
	while (n - i >= 8) {
		uint64_t x;

		memcpy(&x, s + i, 8);
		if ((x & HIGHS) | control_bytes(x) | zero_bytes(x ^ ('"' * ONES)) |
		    zero_bytes(x ^ ('\\' * ONES)))
			break;
		i += 8;
	}
	while (i < n && plain[s[i]])
		i++;
	return i;
}

/* Sets up the continuation bytes a UTF-8 lead byte calls for (utf8.h);
 * false if c cannot lead. */
static bool
utf8_start(struct jsontext *j, unsigned char c)
{
	int need = utf8_lead(c, &j->u8_lo, &j->u8_hi);

	if (need <= 0)
		return false;
	j->u8_need = (unsigned char)need;
	return true;
}

/* Reads string bytes from s[*pi] until the closing quote (consumed) or the
 * end of the feed, and emits what it read in one piece. */
static int
scan_string(struct jsontext *j, const unsigned char *s, size_t n, size_t *pi)
{
	size_t i = *pi, start = i;
	unsigned char c;
	int rc = 0;

	while (i < n) {
		switch (j->state) {
		case ST_STRING:
			i = plain_run(s, i, n);
			if (i == n)
				break;
			c = s[i];
			if (c == '"') {
				i++;
				if (j->key)
					j->state = ST_COLON;
				else
					value_done(j);
				goto out;
			}
			if (c == '\\')
				j->state = ST_ESCAPE;
			else if (c < 0x20)
				rc = fail(j, i, "unescaped control character in a string");
			else if (utf8_start(j, c))
				j->state = ST_UTF8;
			else
				rc = fail(j, i, "invalid UTF-8 in a string");
			break;
		case ST_ESCAPE:
			c = s[i];
			if (c == 'u') {
				j->hex_left = 4;
				j->state = ST_HEX;
			} else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' ||
			           c == 'n' || c == 'r' || c == 't') {
				j->state = ST_STRING;
			} else {
				rc = fail(j, i, "invalid escape in a string");
			}
			break;
		case ST_HEX:
			if (!is_hex(s[i]))
				rc = fail(j, i, "expected a hex digit of a \\u escape");
			else if (--j->hex_left == 0)
				j->state = ST_STRING;
			break;
		case ST_UTF8:
			c = s[i];
			if (c < j->u8_lo || c > j->u8_hi) {
				rc = fail(j, i, "invalid UTF-8 in a string");
				break;
			}
			j->u8_lo = 0x80;
			j->u8_hi = 0xbf;
			if (--j->u8_need == 0)
				j->state = ST_STRING;
			break;
		default:
			abort(); /* not a string state: a bug here */
		}
		if (rc != 0)
			return rc;
		if (i < n)
			i++;
	}
out:
	*pi = i;
	return emit(j, s + start, i - start);
}

/* Reads number bytes from s[*pi] until one that cannot continue it (left
 * for the caller) or the end of the feed, and emits what it read. */
static int
scan_number(struct jsontext *j, const unsigned char *s, size_t n, size_t *pi)
{
	size_t i = *pi, start = i;
	unsigned char c;
	int rc;

	for (; i < n; i++) {
		c = s[i];
		switch (j->state) {
		case ST_NUM_START:
			j->state = c == '-' ? ST_MINUS : c == '0' ? ST_ZERO : ST_INT;
			break;
		case ST_MINUS:
			if (!is_digit(c))
				return fail(j, i, "expected a digit");
			j->state = c == '0' ? ST_ZERO : ST_INT;
			break;
		case ST_INT:
		case ST_FRAC:
		case ST_EXP:
			while (i < n && is_digit(s[i]))
				i++;
			if (i == n)
				goto out;
			c = s[i];
			if (j->state == ST_EXP)
				goto done;
			/* What may follow the digits is as after a zero. */
			__attribute__((fallthrough));
		case ST_ZERO:
			if (j->state == ST_ZERO && is_digit(c))
				return fail(j, i, "leading zero in a number");
			if (c == '.' && j->state != ST_FRAC)
				j->state = ST_DOT;
			else if (c == 'e' || c == 'E')
				j->state = ST_EXP_MARK;
			else
				goto done;
			break;
		case ST_DOT:
		case ST_EXP_SIGN:
			if (!is_digit(c))
				return fail(j, i, "expected a digit");
			j->state = j->state == ST_DOT ? ST_FRAC : ST_EXP;
			break;
		case ST_EXP_MARK:
			if (c == '+' || c == '-')
				j->state = ST_EXP_SIGN;
			else if (is_digit(c))
				j->state = ST_EXP;
			else
				return fail(j, i, "expected a digit or a sign");
			break;
		default:
			abort(); /* not a number state: a bug here */
		}
	}
out:
	*pi = i;
	return emit(j, s + start, i - start);
done:
	*pi = i;
	if ((rc = emit(j, s + start, i - start)) != 0)
		return rc;
	value_done(j);
	return 0;
}

static int
scan_literal(struct jsontext *j, const unsigned char *s, size_t n, size_t *pi)
{
	size_t i = *pi;
	char what[32];

	for (; i < n && j->lit[j->lit_pos] != '\0'; i++, j->lit_pos++) {
		if (s[i] != (unsigned char)j->lit[j->lit_pos]) {
			snprintf(what, sizeof(what), "expected %s", j->lit);
			return fail(j, i, what);
		}
	}
	*pi = i;
	if (j->lit[j->lit_pos] != '\0')
		return 0;
	value_done(j);
	return emit(j, j->lit, j->lit_pos);
}

static int
open_container(struct jsontext *j, unsigned char c, size_t i)
{
	unsigned d = j->depth;
	char what[40];

	if (d == JSONTEXT_MAX_DEPTH) {
		snprintf(what, sizeof(what), "nesting deeper than %d", JSONTEXT_MAX_DEPTH);
		return fail(j, i, what);
	}
	if (c == '{')
		j->is_obj[d / 8] |= (unsigned char)(1u << (d % 8));
	else
		j->is_obj[d / 8] &= (unsigned char)~(1u << (d % 8));
	j->depth++;
	j->state = c == '{' ? ST_OBJ_FIRST : ST_ARR_FIRST;
	return emit_byte(j, (char)c);
}

/* A closer; an empty container stays on one line. */
static int
close_container(struct jsontext *j, unsigned char c, bool empty)
{
	int rc;

	j->depth--;
	value_done(j);
	if (!empty && (rc = emit_newline(j, j->depth)) != 0)
		return rc;
	return emit_byte(j, (char)c);
}

/* Starts the value at s[*pi], which must be one (else the error is "expected
 * <what>"); strings and containers consume their first byte, numbers and
 * literals leave it to their scanners. */
static int
start_value(struct jsontext *j, const unsigned char *s, size_t *pi, const char *what)
{
	size_t i = *pi;
	unsigned char c = s[i];

	switch (c) {
	case '{':
	case '[':
		*pi = i + 1;
		return open_container(j, c, i);
	case '"':
		*pi = i + 1;
		j->key = false;
		j->state = ST_STRING;
		return emit_byte(j, '"');
	case 't':
		j->lit = "true";
		break;
	case 'f':
		j->lit = "false";
		break;
	case 'n':
		j->lit = "null";
		break;
	default:
		if (c != '-' && !is_digit(c))
			return fail(j, i, what);
		j->state = ST_NUM_START;
		return 0;
	}
	j->lit_pos = 0;
	j->state = ST_LITERAL;
	return 0;
}

static int
start_key(struct jsontext *j, size_t *pi)
{
	++*pi;
	j->key = true;
	j->state = ST_STRING;
	return emit_byte(j, '"');
}

/* Skips whitespace, then handles one byte of punctuation or the start of a
 * value or key, as the state allows. */
static int
scan_between(struct jsontext *j, const unsigned char *s, size_t n, size_t *pi)
{
	size_t i = *pi;
	unsigned char c;
	int rc;

	while (i < n && is_ws(s[i]))
		i++;
	*pi = i;
	if (i == n)
		return 0;
	c = s[i];
	switch (j->state) {
	case ST_START:
		/* Someone saved it from a Windows editor: say so. */
		if (j->base + i == 0 && c == 0xef)
			return fail(j, i, "expected a value, not a byte order mark,");
		return start_value(j, s, pi, "expected a value");
	case ST_VALUE:
		return start_value(j, s, pi, "expected a value");
	case ST_ARR_FIRST:
		if (c == ']') {
			*pi = i + 1;
			return close_container(j, c, true);
		}
		if ((rc = emit_newline(j, j->depth)) != 0)
			return rc;
		return start_value(j, s, pi, "expected a value or ']'");
	case ST_OBJ_FIRST:
		if (c == '}') {
			*pi = i + 1;
			return close_container(j, c, true);
		}
		if (c != '"')
			return fail(j, i, "expected a string key or '}'");
		if ((rc = emit_newline(j, j->depth)) != 0)
			return rc;
		return start_key(j, pi);
	case ST_KEY:
		if (c != '"')
			return fail(j, i, "expected a string key");
		return start_key(j, pi);
	case ST_COLON:
		if (c != ':')
			return fail(j, i, "expected ':'");
		*pi = i + 1;
		j->state = ST_VALUE;
		return emit(j, ": ", j->mode == JSONTEXT_PRETTY ? 2 : 1);
	case ST_AFTER:
		if (c == ',') {
			*pi = i + 1;
			j->state = top_is_obj(j) ? ST_KEY : ST_VALUE;
			if ((rc = emit_byte(j, ',')) != 0)
				return rc;
			return emit_newline(j, j->depth);
		}
		if (c == (top_is_obj(j) ? '}' : ']')) {
			*pi = i + 1;
			return close_container(j, c, false);
		}
		return fail(j, i, top_is_obj(j) ? "expected ',' or '}'" : "expected ',' or ']'");
	case ST_END:
		return fail(j, i, "extra data after the JSON value");
	default:
		abort(); /* a state inside a token: a bug here */
	}
}

static void
init(struct jsontext *j, enum jsontext_mode mode, jsontext_out_fn out, void *arg)
{
	memset(j, 0, sizeof(*j));
	j->mode = mode;
	j->out = out;
	j->arg = arg;
	j->emitting = mode != JSONTEXT_CHECK && out != NULL;
	j->state = ST_START;
}

struct jsontext *
jsontext_new(enum jsontext_mode mode, jsontext_out_fn out, void *arg)
{
	bool emitting = mode != JSONTEXT_CHECK && out != NULL;
	struct jsontext *j = malloc(sizeof(*j) + (emitting ? OUTBUF : 0));

	if (j == NULL)
		return NULL;
	init(j, mode, out, arg);
	return j;
}

void
jsontext_free(struct jsontext *j)
{
	free(j);
}

int
jsontext_feed(struct jsontext *j, const void *buf, size_t len)
{
	const unsigned char *s = buf;
	size_t i = 0;
	int rc = 0;

	if (j->failed != 0)
		return j->failed;
	if (j->finished)
		return fail_end(j, "input after the end");
	while (i < len && rc == 0) {
		switch (j->state) {
		case ST_STRING:
		case ST_ESCAPE:
		case ST_HEX:
		case ST_UTF8:
			rc = scan_string(j, s, len, &i);
			break;
		case ST_LITERAL:
			rc = scan_literal(j, s, len, &i);
			break;
		case ST_NUM_START:
		case ST_MINUS:
		case ST_ZERO:
		case ST_INT:
		case ST_DOT:
		case ST_FRAC:
		case ST_EXP_MARK:
		case ST_EXP_SIGN:
		case ST_EXP:
			rc = scan_number(j, s, len, &i);
			break;
		default:
			rc = scan_between(j, s, len, &i);
			break;
		}
	}
	j->base += len;
	return rc;
}

int
jsontext_finish(struct jsontext *j)
{
	int rc;

	if (j->failed != 0 || j->finished)
		return j->failed;
	/* Only the end of input ends a top-level number. */
	if (j->state == ST_ZERO || j->state == ST_INT || j->state == ST_FRAC || j->state == ST_EXP)
		value_done(j);
	if (j->state == ST_START)
		return fail_end(j, "empty input");
	if (j->state != ST_END)
		return fail_end(j, "unexpected end of input");
	j->finished = true;
	if (j->mode == JSONTEXT_PRETTY && (rc = emit_byte(j, '\n')) != 0)
		return rc;
	return j->emitting ? flush(j) : 0;
}

const char *
jsontext_errstr(const struct jsontext *j)
{
	return j->errstr;
}

int
jsontext_check(const void *buf, size_t len, char *err, size_t errlen)
{
	struct jsontext j; /* CHECK needs no output buffer, so no allocation */
	int rc;

	init(&j, JSONTEXT_CHECK, NULL, NULL);
	if ((rc = jsontext_feed(&j, buf, len)) == 0)
		rc = jsontext_finish(&j);
	if (rc != 0)
		return errbuf_set(err, errlen, rc, "%s", j.errstr);
	return 0;
}

/* Appends up to RENDER_MAX bytes in all (dynbuf.h). */
static int
render_out(const char *buf, size_t len, void *arg)
{
	return dynbuf_add(arg, buf, len);
}

int
jsontext_render(enum jsontext_mode mode, const void *buf, size_t len, char **out, size_t *outlen,
                char *err, size_t errlen)
{
	struct dynbuf b;
	struct jsontext *j;
	int rc;

	dynbuf_init(&b, RENDER_MAX);
	*out = NULL;
	if (outlen != NULL)
		*outlen = 0;
	if ((j = jsontext_new(mode, render_out, &b)) == NULL)
		return errbuf_set(err, errlen, -ENOMEM, "out of memory");
	if ((rc = jsontext_feed(j, buf, len)) == 0)
		rc = jsontext_finish(j);
	if (rc == 0 && b.buf == NULL)
		rc = dynbuf_add(&b, "", 0); /* CHECK, or an out of nothing: still a string */
	if (rc == -EINVAL)
		errbuf_set(err, errlen, rc, "%s", jsontext_errstr(j));
	else if (rc == -EFBIG)
		errbuf_set(err, errlen, rc, "the rendered JSON is larger than %zu MiB",
		           RENDER_MAX >> 20);
	else if (rc != 0)
		errbuf_set(err, errlen, rc, "out of memory rendering JSON");
	jsontext_free(j);
	if (rc != 0) {
		dynbuf_free(&b);
		return rc;
	}
	*out = dynbuf_take(&b, outlen);
	return 0;
}
