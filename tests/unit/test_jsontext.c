/*
 * JSON as text: what the checker accepts and rejects (RFC 8259, strict
 * UTF-8, nesting), the re-indented output against what Python's
 * json.dumps(indent=2, ensure_ascii=False) writes, numbers and escapes kept
 * as written, every input cut at every offset giving the same output and
 * verdict, and output that streams out in bounded pieces.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsontext.h"

/* Collects output; can be told to fail on its nth call. */
struct sink {
	char *p;
	size_t len;
	size_t cap;
	int calls;
	int fail_on; /* 1-based call that returns fail_rc; 0 = never */
	int fail_rc;
};

static int
sink_out(const char *buf, size_t len, void *arg)
{
	struct sink *k = arg;

	k->calls++;
	if (k->fail_on != 0 && k->calls >= k->fail_on)
		return k->fail_rc;
	assert_true(len > 0);
	if (k->len + len + 1 > k->cap) {
		k->cap = (k->len + len + 1) * 2;
		k->p = realloc(k->p, k->cap);
		assert_non_null(k->p);
	}
	memcpy(k->p + k->len, buf, len);
	k->len += len;
	k->p[k->len] = '\0';
	return 0;
}

/* What one run produced. */
struct run {
	int rc; /* the first non-zero feed, else jsontext_finish() */
	struct sink out;
	char errstr[128];
};

static void
run_clear(struct run *r)
{
	free(r->out.p);
	memset(r, 0, sizeof(*r));
}

/* Feeds in[0..n) in pieces ending at cuts[0..ncuts), then finishes. */
static void
run_cuts(enum jsontext_mode mode, const char *in, size_t n, const size_t *cuts, size_t ncuts,
         struct run *r)
{
	struct jsontext *j;
	size_t at = 0;

	memset(r, 0, sizeof(*r));
	j = jsontext_new(mode, sink_out, &r->out);
	assert_non_null(j);
	for (size_t k = 0; k <= ncuts && r->rc == 0; k++) {
		size_t end = k < ncuts ? cuts[k] : n;

		r->rc = jsontext_feed(j, in + at, end - at);
		at = end;
	}
	if (r->rc == 0)
		r->rc = jsontext_finish(j);
	snprintf(r->errstr, sizeof(r->errstr), "%s", jsontext_errstr(j));
	if (r->rc == 0)
		assert_string_equal(r->errstr, "");
	jsontext_free(j);
}

static void
run_whole(enum jsontext_mode mode, const char *in, size_t n, struct run *r)
{
	run_cuts(mode, in, n, NULL, 0, r);
}

static void
assert_renders(enum jsontext_mode mode, const char *in, const char *want)
{
	struct run r;

	run_whole(mode, in, strlen(in), &r);
	if (r.rc != 0)
		fail_msg("\"%s\" was rejected: %s", in, r.errstr);
	assert_string_equal(r.out.len > 0 ? r.out.p : "", want);
	run_clear(&r);
}

static void
assert_accepted_n(const char *in, size_t n)
{
	char err[128] = "";

	if (jsontext_check(in, n, err, sizeof(err)) != 0)
		fail_msg("\"%.*s\" was rejected: %s", (int)n, in, err);
}

static void
assert_accepted(const char *in)
{
	assert_accepted_n(in, strlen(in));
}

/* Rejected with an error message that contains `want`. */
static void
assert_rejected_n(const char *in, size_t n, const char *want)
{
	char err[128] = "";

	if (jsontext_check(in, n, err, sizeof(err)) != -EINVAL)
		fail_msg("\"%.*s\" was accepted", (int)n, in);
	if (strstr(err, want) == NULL)
		fail_msg("\"%.*s\": error \"%s\" does not say \"%s\"", (int)n, in, err, want);
}

static void
assert_rejected(const char *in, const char *want)
{
	assert_rejected_n(in, strlen(in), want);
}

static void
test_jsontext_accepts_every_type_at_top_level(void **state)
{
	static const char *const ok[] = {
	    "null",
	    "true",
	    "false",
	    "0",
	    "-0",
	    "42",
	    "-1.5e+10",
	    "2E-3",
	    "0.25",
	    "\"\"",
	    "\"text\"",
	    "[]",
	    "{}",
	    "[1,\"a\",null]",
	    "{\"a\":{\"b\":[]}}",
	    " \t\r\n1\n ",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		assert_accepted(ok[i]);
}

static void
test_jsontext_rejects_empty_input(void **state)
{
	(void)state;
	assert_rejected("", "empty input");
	assert_rejected(" \n\t\r", "empty input");
}

static void
test_jsontext_rejects_a_byte_order_mark(void **state)
{
	(void)state;
	assert_rejected("\xef\xbb\xbf{}", "byte order mark, at byte 0");
	assert_rejected("\xef\xbb\xbf\"x\"", "byte order mark");
	assert_rejected(" \xef\xbb\xbf{}", "expected a value at byte 1");
}

static void
test_jsontext_rejects_trailing_commas(void **state)
{
	(void)state;
	assert_rejected("[1,]", "expected a value at byte 3");
	assert_rejected("{\"a\":1,}", "expected a string key at byte 7");
	assert_rejected("[,]", "expected a value or ']' at byte 1");
	assert_rejected("[1,,2]", "expected a value at byte 3");
	assert_rejected("1,", "extra data after the JSON value at byte 1");
}

static void
test_jsontext_rejects_leading_zeros(void **state)
{
	(void)state;
	assert_rejected("01", "leading zero in a number at byte 1");
	assert_rejected("[-00]", "leading zero in a number at byte 3");
	assert_rejected("00.5", "leading zero");
	assert_accepted("0");
	assert_accepted("0.01");
	assert_accepted("-0e0");
}

static void
test_jsontext_rejects_malformed_numbers(void **state)
{
	static const char *const bad[] = {
	    "-",  "1.",   ".5",    "+1",   "1e",  "1e+",   "1.e5",
	    "-a", "0x10", "1.5.2", "1ee2", "--1", "1e2.5",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejected(bad[i], "");
	assert_rejected("-a", "expected a digit at byte 1");
	assert_rejected("1.x", "expected a digit at byte 2");
	assert_rejected("1ex", "expected a digit or a sign at byte 2");
	assert_rejected("[1.]", "expected a digit at byte 3");
	assert_rejected("1.", "unexpected end of input");
}

static void
test_jsontext_rejects_single_quotes(void **state)
{
	(void)state;
	assert_rejected("'a'", "expected a value at byte 0");
	assert_rejected("{'a':1}", "expected a string key or '}' at byte 1");
	assert_rejected("[\"a']", "unexpected end of input");
}

static void
test_jsontext_rejects_nan_and_infinity(void **state)
{
	(void)state;
	assert_rejected("NaN", "expected a value at byte 0");
	assert_rejected("nan", "expected null at byte 1");
	assert_rejected("Infinity", "expected a value at byte 0");
	assert_rejected("-Infinity", "expected a digit at byte 1");
	assert_rejected("[1,NaN]", "expected a value at byte 3");
}

static void
test_jsontext_rejects_bad_literals(void **state)
{
	(void)state;
	assert_rejected("True", "expected a value at byte 0");
	assert_rejected("tru", "unexpected end of input");
	assert_rejected("truex", "extra data after the JSON value at byte 4");
	assert_rejected("[nul]", "expected null at byte 4");
	assert_rejected("fals e", "expected false at byte 4");
}

static void
test_jsontext_rejects_bare_control_characters(void **state)
{
	(void)state;
	assert_rejected("\"a\nb\"", "unescaped control character in a string at byte 2");
	assert_rejected("\"\t\"", "unescaped control character");
	assert_rejected_n("\"\0\"", 3, "unescaped control character in a string at byte 1");
	assert_rejected("[\"\x1f\"]", "unescaped control character");
	assert_accepted("\"\x7f\""); /* DEL is not a control character to the RFC */
	assert_accepted("\"\\n\\t\\u0000\\u001f\"");
}

static void
test_jsontext_rejects_invalid_escapes(void **state)
{
	static const char *const bad[] = {
	    "\"\\x\"", "\"\\a\"", "\"\\'\"", "\"\\0\"", "\"\\U0041\"", "\"\\ \"", "\"\\\xc3\xa9\"",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_rejected(bad[i], "invalid escape in a string at byte 2");
	assert_accepted("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"");
	assert_rejected("\"\\", "unexpected end of input");
}

static void
test_jsontext_rejects_bad_unicode_escape_hex(void **state)
{
	(void)state;
	assert_rejected("\"\\u12g4\"", "expected a hex digit of a \\u escape at byte 5");
	assert_rejected("\"\\u00\"", "expected a hex digit of a \\u escape at byte 5");
	assert_rejected("\"\\uZZZZ\"", "at byte 3");
	assert_rejected("\"\\u123", "unexpected end of input");
	assert_accepted("\"\\u00e9\\uABCD\\uabcd\"");
	/* Pairing is not checked, as the RFC allows. */
	assert_accepted("\"\\ud800\"");
	assert_accepted("\"\\udc00\\ud800\"");
}

static void
test_jsontext_accepts_valid_utf8(void **state)
{
	(void)state;
	assert_accepted("\"\xc2\x80\"");         /* U+0080 */
	assert_accepted("\"\xdf\xbf\"");         /* U+07FF */
	assert_accepted("\"\xe0\xa0\x80\"");     /* U+0800 */
	assert_accepted("\"\xed\x9f\xbf\"");     /* U+D7FF */
	assert_accepted("\"\xee\x80\x80\"");     /* U+E000 */
	assert_accepted("\"\xef\xbf\xbf\"");     /* U+FFFF */
	assert_accepted("\"\xf0\x90\x80\x80\""); /* U+10000 */
	assert_accepted("\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF */
	assert_accepted("{\"cl\xc3\xa9\":\"\xe2\x98\x83\"}");
}

static void
test_jsontext_rejects_overlong_utf8(void **state)
{
	(void)state;
	assert_rejected("\"\xc0\xaf\"", "invalid UTF-8 in a string at byte 1");
	assert_rejected("\"\xc1\xbf\"", "invalid UTF-8 in a string at byte 1");
	assert_rejected("\"\xe0\x80\xaf\"", "invalid UTF-8 in a string at byte 2");
	assert_rejected("\"\xe0\x9f\xbf\"", "invalid UTF-8 in a string at byte 2");
	assert_rejected("\"\xf0\x80\x80\xaf\"", "invalid UTF-8 in a string at byte 2");
	assert_rejected("\"\xf0\x8f\xbf\xbf\"", "invalid UTF-8 in a string at byte 2");
}

static void
test_jsontext_rejects_surrogates_in_utf8(void **state)
{
	(void)state;
	assert_rejected("\"\xed\xa0\x80\"", "invalid UTF-8 in a string at byte 2"); /* U+D800 */
	assert_rejected("\"\xed\xbf\xbf\"", "invalid UTF-8 in a string at byte 2"); /* U+DFFF */
	assert_rejected("\"\xed\xa0\xbd\xed\xb8\x80\"", "invalid UTF-8");           /* CESU-8 */
}

static void
test_jsontext_rejects_utf8_past_u10ffff(void **state)
{
	(void)state;
	assert_rejected("\"\xf4\x90\x80\x80\"", "invalid UTF-8 in a string at byte 2");
	assert_rejected("\"\xf5\x80\x80\x80\"", "invalid UTF-8 in a string at byte 1");
	assert_rejected("\"\xff\"", "invalid UTF-8 in a string at byte 1");
	assert_rejected("\"\xfe\"", "invalid UTF-8 in a string at byte 1");
}

static void
test_jsontext_rejects_stray_and_truncated_utf8(void **state)
{
	(void)state;
	assert_rejected("\"\x80\"", "invalid UTF-8 in a string at byte 1");
	assert_rejected("\"a\xbf\"", "invalid UTF-8 in a string at byte 2");
	assert_rejected("\"\xc3\"", "invalid UTF-8 in a string at byte 2");
	assert_rejected("\"\xe2\x98\"", "invalid UTF-8 in a string at byte 3");
	assert_rejected("\"\xf0\x9f\x98\"", "invalid UTF-8 in a string at byte 4");
	assert_rejected("\"\xe2\x98"
	                "a\"",
	                "invalid UTF-8 in a string at byte 3");
	assert_rejected("\"\xc3", "unexpected end of input");
	assert_rejected("\xc3\xa9", "expected a value at byte 0"); /* outside a string */
}

/* n levels of '[' or '{"a":', a 0 in the middle, and the closers. */
static char *
nested(size_t n, int objects)
{
	char *s = malloc(n * 5 + 2 + n + 1), *p = s;

	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		if (objects) {
			memcpy(p, "{\"a\":", 5);
			p += 5;
		} else {
			*p++ = '[';
		}
	}
	*p++ = '0';
	for (size_t i = 0; i < n; i++)
		*p++ = objects ? '}' : ']';
	*p = '\0';
	return s;
}

static void
test_jsontext_accepts_nesting_of_512(void **state)
{
	char *s, needle[2 * JSONTEXT_MAX_DEPTH + 16] = "\n";
	struct run r;

	(void)state;
	for (int objects = 0; objects < 2; objects++) {
		s = nested(JSONTEXT_MAX_DEPTH, objects);
		assert_accepted(s);
		run_whole(JSONTEXT_PRETTY, s, strlen(s), &r);
		assert_int_equal(r.rc, 0);
		/* The innermost value sits 512 levels in. */
		memset(needle + 1, ' ', 2 * JSONTEXT_MAX_DEPTH);
		snprintf(needle + 1 + 2 * JSONTEXT_MAX_DEPTH,
		         sizeof(needle) - 1 - 2 * JSONTEXT_MAX_DEPTH, "%s",
		         objects ? "\"a\": 0\n" : "0\n");
		assert_non_null(strstr(r.out.p, needle));
		assert_int_equal(r.out.p[r.out.len - 2], objects ? '}' : ']');
		run_clear(&r);
		free(s);
	}
}

static void
test_jsontext_rejects_nesting_over_512(void **state)
{
	char *s, *wide;

	(void)state;
	s = nested(JSONTEXT_MAX_DEPTH + 1, 0);
	assert_rejected(s, "nesting deeper than 512 at byte 512");
	free(s);
	s = nested(JSONTEXT_MAX_DEPTH + 1, 1);
	assert_rejected(s, "nesting deeper than 512 at byte 2560");
	free(s);
	/* Depth is what is open at once, not how many containers there are. */
	s = nested(JSONTEXT_MAX_DEPTH - 1, 0);
	wide = malloc(3 * strlen(s) + 5);
	assert_non_null(wide);
	snprintf(wide, 3 * strlen(s) + 5, "[%s,%s,%s]", s, s, s);
	assert_accepted(wide);
	free(wide);
	free(s);
}

static void
test_jsontext_keeps_numbers_verbatim(void **state)
{
	static const char *in = "[123456789012345678901234567890, 1.10, -0.0, 1E+02, 1e-7, "
	                        "-98765432109876543210.000000000000000000001e-999]";

	(void)state;
	assert_renders(JSONTEXT_COMPACT, in,
	               "[123456789012345678901234567890,1.10,-0.0,1E+02,1e-7,"
	               "-98765432109876543210.000000000000000000001e-999]");
	assert_renders(JSONTEXT_PRETTY, in,
	               "[\n  123456789012345678901234567890,\n  1.10,\n  -0.0,\n  1E+02,\n"
	               "  1e-7,\n  -98765432109876543210.000000000000000000001e-999\n]\n");
	assert_renders(JSONTEXT_PRETTY, "1.10", "1.10\n");
	assert_renders(JSONTEXT_COMPACT, " 1.10 ", "1.10");
	assert_renders(JSONTEXT_PRETTY, "123456789012345678901234567890",
	               "123456789012345678901234567890\n");
}

static void
test_jsontext_keeps_escapes_as_written(void **state)
{
	static const char *in = "{ \"\\u00e9\\/\" : \"\\ud83d\\ude00 \\\" \\\\ \\t \xc3\xa9\" }";

	(void)state;
	assert_renders(JSONTEXT_COMPACT, in,
	               "{\"\\u00e9\\/\":\"\\ud83d\\ude00 \\\" \\\\ \\t \xc3\xa9\"}");
	assert_renders(JSONTEXT_PRETTY, in,
	               "{\n  \"\\u00e9\\/\": \"\\ud83d\\ude00 \\\" \\\\ \\t \xc3\xa9\"\n}\n");
}

static void
test_jsontext_pretty_indents_nested_objects_and_arrays(void **state)
{
	(void)state;
	assert_renders(JSONTEXT_PRETTY, "{\"a\":{\"b\":[1,{\"c\":null}]},\"d\":\"e\"}",
	               "{\n"
	               "  \"a\": {\n"
	               "    \"b\": [\n"
	               "      1,\n"
	               "      {\n"
	               "        \"c\": null\n"
	               "      }\n"
	               "    ]\n"
	               "  },\n"
	               "  \"d\": \"e\"\n"
	               "}\n");
	assert_renders(JSONTEXT_PRETTY, "[[1,2],[3]]",
	               "[\n  [\n    1,\n    2\n  ],\n  [\n    3\n  ]\n]\n");
}

static void
test_jsontext_pretty_keeps_empty_containers_on_one_line(void **state)
{
	(void)state;
	assert_renders(JSONTEXT_PRETTY, "[ ]", "[]\n");
	assert_renders(JSONTEXT_PRETTY, "{\n}", "{}\n");
	assert_renders(JSONTEXT_PRETTY, "{\"a\": [ ], \"b\": { } , \"c\":[{}]}",
	               "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    {}\n  ]\n}\n");
	assert_renders(JSONTEXT_COMPACT, "[ [ ] , { } ]", "[[],{}]");
}

static void
test_jsontext_compact_drops_all_insignificant_whitespace(void **state)
{
	(void)state;
	assert_renders(JSONTEXT_COMPACT, " {\n\t\"a b\" :\r\n [ 1 , true , \" x \" ] } \n",
	               "{\"a b\":[1,true,\" x \"]}");
	assert_renders(JSONTEXT_COMPACT, "\"s\"", "\"s\"");
	assert_renders(JSONTEXT_CHECK, "[1, 2]", "");
}

/* Generated with: print(json.dumps(json.loads(in), indent=2, ensure_ascii=False)) */
static const struct {
	const char *in;
	const char *want;
} python_cases[] = {
    {"null", "null\n"},
    {" true ", "true\n"},
    {"\"héllo wörld ☃ 😀\"", "\"héllo wörld ☃ 😀\"\n"},
    {"[]", "[]\n"},
    {"{}", "{}\n"},
    {"[1,2,3]", "[\n  1,\n  2,\n  3\n]\n"},
    {"{\"a\":1,\"b\":[true,false,null]}",
     "{\n  \"a\": 1,\n  \"b\": [\n    true,\n    false,\n    null\n  ]\n}\n"},
    {"[[],{},[[]],{\"x\":{}}]", "[\n  [],\n  {},\n  [\n    []\n  ],\n  {\n    \"x\": {}\n  }\n]\n"},
    {"{\"nested\":{\"deeper\":{\"deepest\":[1,{\"k\":\"v\"}]}}}",
     "{\n  \"nested\": {\n    \"deeper\": {\n      \"deepest\": [\n        1,\n        {\n"
     "          \"k\": \"v\"\n        }\n      ]\n    }\n  }\n}\n"},
    {"  [ -0.5 , 12 , -3 , 0.25 , 0 ]  ", "[\n  -0.5,\n  12,\n  -3,\n  0.25,\n  0\n]\n"},
    {"{\"a\\\"b\":\"c\\\\d\\n\",\"\":\"\"}", "{\n  \"a\\\"b\": \"c\\\\d\\n\",\n  \"\": \"\"\n}\n"},
    {"[{\"id\":1,\"tags\":[\"x\",\"y\"]},{\"id\":2,\"tags\":[]}]",
     "[\n  {\n    \"id\": 1,\n    \"tags\": [\n      \"x\",\n      \"y\"\n    ]\n  },\n  {\n"
     "    \"id\": 2,\n    \"tags\": []\n  }\n]\n"},
    {"{\"k\":[{\"a\":[[1],[2,[3]]]}]}",
     "{\n  \"k\": [\n    {\n      \"a\": [\n        [\n          1\n        ],\n        [\n"
     "          2,\n          [\n            3\n          ]\n        ]\n      ]\n    }\n  ]\n}\n"},
};

static void
test_jsontext_pretty_matches_python_json_dumps(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(python_cases) / sizeof(python_cases[0]); i++)
		assert_renders(JSONTEXT_PRETTY, python_cases[i].in, python_cases[i].want);
}

/* Valid and invalid, with every kind of token to cut inside. */
static const char *const split_inputs[] = {
    "{\"a\": [1, -2.5e+3, true, false, null, \"x\\\"y\\u00e9\"], \"b\": {}, \"c\": []}",
    " \"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80\" ",
    "[0, -0, 10, 1.10, 123456789012345678901234567890, 1E5, 2e-3]",
    "12345",
    "-0.5e-7",
    "[[[{\"k\":[[]]}]]]",
    "{\"a\":1,}",
    "[1 2]",
    "\"\xe2\x98\"",
    "\"\xf0\x9f\x98",
    "\"\xed\xa0\x80\"",
    "\"\\u12x4\"",
    "[01]",
    "truth",
    "nul",
    "{\"a\" 1}",
    "[1] x",
    "1.",
    "",
    "  ",
};

static void
assert_same_run(const struct run *a, const struct run *b, const char *in, size_t cut)
{
	if (a->rc != b->rc || strcmp(a->errstr, b->errstr) != 0)
		fail_msg("\"%s\" cut at %zu: %d \"%s\", whole: %d \"%s\"", in, cut, b->rc,
		         b->errstr, a->rc, a->errstr);
	if (a->rc == 0) {
		assert_int_equal(a->out.len, b->out.len);
		assert_memory_equal(a->out.p, b->out.p, a->out.len);
	}
}

static void
test_jsontext_splits_at_every_offset_agree(void **state)
{
	static const enum jsontext_mode modes[] = {JSONTEXT_CHECK, JSONTEXT_COMPACT,
	                                           JSONTEXT_PRETTY};

	(void)state;
	for (size_t m = 0; m < 3; m++) {
		for (size_t i = 0; i < sizeof(split_inputs) / sizeof(split_inputs[0]); i++) {
			const char *in = split_inputs[i];
			size_t n = strlen(in);
			size_t *cuts = malloc((n + 1) * sizeof(*cuts));
			struct run whole, r;

			assert_non_null(cuts);
			run_whole(modes[m], in, n, &whole);
			for (size_t cut = 0; cut <= n; cut++) {
				run_cuts(modes[m], in, n, &cut, 1, &r);
				assert_same_run(&whole, &r, in, cut);
				run_clear(&r);
			}
			for (size_t k = 0; k < n; k++)
				cuts[k] = k + 1;
			run_cuts(modes[m], in, n, cuts, n, &r);
			assert_same_run(&whole, &r, in, SIZE_MAX);
			run_clear(&r);
			run_clear(&whole);
			free(cuts);
		}
	}
}

static void
test_jsontext_out_error_stops_and_is_returned(void **state)
{
	size_t n = 100000;
	char *big = malloc(n);
	struct sink k = {.fail_on = 1, .fail_rc = -EIO};
	struct jsontext *j;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', n);
	big[0] = '"';
	big[n - 1] = '"';

	/* During a feed. */
	j = jsontext_new(JSONTEXT_COMPACT, sink_out, &k);
	assert_non_null(j);
	assert_int_equal(jsontext_feed(j, big, n), -EIO);
	assert_int_equal(k.calls, 1);
	assert_int_equal(jsontext_feed(j, "1", 1), -EIO);
	assert_int_equal(jsontext_finish(j), -EIO);
	assert_int_equal(k.calls, 1);
	assert_string_not_equal(jsontext_errstr(j), "");
	jsontext_free(j);

	/* In the final flush. */
	k.calls = 0;
	j = jsontext_new(JSONTEXT_PRETTY, sink_out, &k);
	assert_non_null(j);
	assert_int_equal(jsontext_feed(j, "[1]", 3), 0);
	assert_int_equal(k.calls, 0);
	assert_int_equal(jsontext_finish(j), -EIO);
	assert_int_equal(jsontext_finish(j), -EIO);
	assert_int_equal(k.calls, 1);
	jsontext_free(j);
	free(big);
}

static void
test_jsontext_error_message_names_the_offset(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
	    {"{\"a\":1 \"b\":2}", "expected ',' or '}' at byte 7"},
	    {"[1 2]", "expected ',' or ']' at byte 3"},
	    {"{\"a\" 1}", "expected ':' at byte 5"},
	    {"{1:2}", "expected a string key or '}' at byte 1"},
	    {"\"\xff\"", "invalid UTF-8 in a string at byte 1"},
	    {"1 2", "extra data after the JSON value at byte 2"},
	    {"[1]x", "extra data after the JSON value at byte 3"},
	    {"[1,2", "unexpected end of input"},
	    {"{\"a\":", "unexpected end of input"},
	    {"", "empty input"},
	    {"[}", "expected a value or ']' at byte 1"},
	    {"{]", "expected a string key or '}' at byte 1"},
	    {"[1}", "expected ',' or ']' at byte 2"},
	    {"{\"a\":1]", "expected ',' or '}' at byte 6"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;

		run_whole(JSONTEXT_PRETTY, cases[i].in, strlen(cases[i].in), &r);
		assert_int_equal(r.rc, -EINVAL);
		assert_string_equal(r.errstr, cases[i].want);
		run_clear(&r);
	}
}

static void
test_jsontext_errors_are_sticky(void **state)
{
	struct jsontext *j = jsontext_new(JSONTEXT_CHECK, NULL, NULL);

	(void)state;
	assert_non_null(j);
	assert_string_equal(jsontext_errstr(j), "");
	assert_int_equal(jsontext_feed(j, "[1,]", 4), -EINVAL);
	assert_string_equal(jsontext_errstr(j), "expected a value at byte 3");
	assert_int_equal(jsontext_feed(j, "[]", 2), -EINVAL);
	assert_int_equal(jsontext_finish(j), -EINVAL);
	assert_string_equal(jsontext_errstr(j), "expected a value at byte 3");
	jsontext_free(j);
}

static void
test_jsontext_input_after_finish_is_an_error(void **state)
{
	struct jsontext *j = jsontext_new(JSONTEXT_CHECK, NULL, NULL);

	(void)state;
	assert_non_null(j);
	assert_int_equal(jsontext_feed(j, "1", 1), 0);
	assert_int_equal(jsontext_finish(j), 0);
	assert_int_equal(jsontext_finish(j), 0);
	assert_int_equal(jsontext_feed(j, " ", 1), -EINVAL);
	jsontext_free(j);
}

static void
test_jsontext_check_fills_the_error_buffer(void **state)
{
	char err[64] = "untouched";

	(void)state;
	assert_int_equal(jsontext_check("{}", 2, err, sizeof(err)), 0);
	assert_int_equal(jsontext_check("[1,]", 4, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "expected a value at byte 3");
	assert_int_equal(jsontext_check("[1,]", 4, NULL, 0), -EINVAL);
	assert_int_equal(jsontext_check("[1,]", 4, err, 9), -EINVAL);
	assert_string_equal(err, "expected");
}

static void
test_jsontext_render_returns_a_string(void **state)
{
	char err[64] = "", *out;
	size_t len;

	(void)state;
	assert_int_equal(
	    jsontext_render(JSONTEXT_COMPACT, " [ 1 , \"a\" ] ", 13, &out, &len, err, sizeof(err)),
	    0);
	assert_string_equal(out, "[1,\"a\"]");
	assert_int_equal(len, 7);
	free(out);
	assert_int_equal(jsontext_render(JSONTEXT_PRETTY, "{}", 2, &out, NULL, err, sizeof(err)),
	                 0);
	assert_string_equal(out, "{}\n");
	free(out);
	assert_int_equal(jsontext_render(JSONTEXT_CHECK, "{}", 2, &out, &len, err, sizeof(err)), 0);
	assert_string_equal(out, "");
	assert_int_equal(len, 0);
	free(out);
	assert_int_equal(
	    jsontext_render(JSONTEXT_PRETTY, "{\"a\" 1}", 7, &out, &len, err, sizeof(err)),
	    -EINVAL);
	assert_null(out);
	assert_string_equal(err, "expected ':' at byte 5");
}

static void
test_jsontext_render_caps_its_output(void **state)
{
	/* 511 levels deep, each 0 on a line of 1022 spaces: over 256 MiB from 600 KB. */
	size_t depth = 511, zeros = 300000, n = depth * 2 + zeros * 2;
	char *in = malloc(n + 1), *p = in, *out, err[80];
	size_t len;

	(void)state;
	assert_non_null(in);
	memset(p, '[', depth);
	p += depth;
	for (size_t i = 0; i < zeros; i++) {
		*p++ = '0';
		*p++ = ',';
	}
	p[-1] = ']';
	memset(p, ']', depth - 1);
	p += depth - 1;
	*p = '\0';
	assert_int_equal((size_t)(p - in), n - 1);
	assert_int_equal(jsontext_render(JSONTEXT_PRETTY, in, n - 1, &out, &len, err, sizeof(err)),
	                 -EFBIG);
	assert_null(out);
	assert_non_null(strstr(err, "256 MiB"));
	assert_int_equal(jsontext_render(JSONTEXT_COMPACT, in, n - 1, &out, &len, err, sizeof(err)),
	                 0);
	assert_int_equal(len, n - 1);
	free(out);
	free(in);
}

static void
test_jsontext_streams_output_in_bounded_pieces(void **state)
{
	/* An array of 10000 strings of 100 bytes, fed 4 KiB at a time. */
	size_t count = 10000, n = 1 + count * 103, fed = 0;
	char *in = malloc(n + 1), *p = in;
	struct sink k = {0};
	struct jsontext *j;

	(void)state;
	assert_non_null(in);
	*p++ = '[';
	for (size_t i = 0; i < count; i++) {
		*p++ = '"';
		memset(p, 'a' + i % 26, 100);
		p += 100;
		*p++ = '"';
		*p++ = i + 1 < count ? ',' : ']';
	}
	j = jsontext_new(JSONTEXT_COMPACT, sink_out, &k);
	assert_non_null(j);
	while (fed < n) {
		size_t piece = n - fed < 4096 ? n - fed : 4096;

		assert_int_equal(jsontext_feed(j, in + fed, piece), 0);
		fed += piece;
		/* Compact output of compact input is the input: at most a buffer behind. */
		assert_true(k.len + 16384 >= fed);
		if (k.len > 0)
			assert_memory_equal(k.p, in, k.len);
	}
	assert_int_equal(jsontext_finish(j), 0);
	assert_int_equal(k.len, n);
	assert_memory_equal(k.p, in, n);
	jsontext_free(j);
	free(k.p);
	free(in);
}

/* A small random JSON writer for round trips: `loose` gets whitespace
 * everywhere it may go, `tight` none. */
struct gen {
	uint32_t x;
	char *loose, *tight;
	size_t nl, nt, cap;
};

static uint32_t
gen_rand(struct gen *g)
{
	g->x = g->x * 1103515245u + 12345u;
	return g->x >> 16;
}

static void
gen_put(struct gen *g, const char *s, int tight_too)
{
	size_t n = strlen(s);

	assert_true(g->nl + n < g->cap && g->nt + n < g->cap);
	memcpy(g->loose + g->nl, s, n);
	g->nl += n;
	if (tight_too) {
		memcpy(g->tight + g->nt, s, n);
		g->nt += n;
	}
}

static void
gen_ws(struct gen *g)
{
	static const char *const ws[] = {"", " ", "\n", "\t", "\r\n  ", ""};

	gen_put(g, ws[gen_rand(g) % 6], 0);
}

static void
gen_value(struct gen *g, int depth)
{
	static const char *const scalars[] = {
	    "0",
	    "-1",
	    "3.25",
	    "1e400",
	    "-0.0E-0",
	    "true",
	    "false",
	    "null",
	    "\"\"",
	    "\"abc\"",
	    "\"\\u00e9\\n\"",
	    "\"\xc3\xa9\xe2\x98\x83\"",
	    "12345678901234567890123",
	    "\"a long string with spaces, commas, [brackets]\"",
	};
	uint32_t r = gen_rand(g) % 10;

	gen_ws(g);
	if (depth > 6 || r < 6) {
		gen_put(g, scalars[gen_rand(g) % (sizeof(scalars) / sizeof(scalars[0]))], 1);
	} else {
		int obj = r < 8;
		uint32_t n = gen_rand(g) % 5;

		gen_put(g, obj ? "{" : "[", 1);
		for (uint32_t i = 0; i < n; i++) {
			if (i > 0)
				gen_put(g, ",", 1);
			if (obj) {
				gen_ws(g);
				gen_put(g, i % 2 ? "\"k\"" : "\"key \\\"q\\\"\"", 1);
				gen_ws(g);
				gen_put(g, ":", 1);
			}
			gen_value(g, depth + 1);
		}
		gen_ws(g);
		gen_put(g, obj ? "}" : "]", 1);
	}
	gen_ws(g);
}

static void
test_jsontext_random_documents_round_trip(void **state)
{
	struct gen g = {.x = 4242, .cap = 1 << 20};

	(void)state;
	g.loose = malloc(g.cap);
	g.tight = malloc(g.cap);
	assert_non_null(g.loose);
	assert_non_null(g.tight);
	for (int round = 0; round < 300; round++) {
		struct run compact, pretty, again;

		g.nl = g.nt = 0;
		gen_value(&g, 0);
		run_whole(JSONTEXT_COMPACT, g.loose, g.nl, &compact);
		assert_int_equal(compact.rc, 0);
		assert_int_equal(compact.out.len, g.nt);
		assert_memory_equal(compact.out.p, g.tight, g.nt);
		run_whole(JSONTEXT_PRETTY, g.loose, g.nl, &pretty);
		assert_int_equal(pretty.rc, 0);
		run_whole(JSONTEXT_COMPACT, pretty.out.p, pretty.out.len, &again);
		assert_int_equal(again.rc, 0);
		assert_int_equal(again.out.len, g.nt);
		assert_memory_equal(again.out.p, g.tight, g.nt);
		run_clear(&compact);
		run_clear(&pretty);
		run_clear(&again);
	}
	free(g.loose);
	free(g.tight);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jsontext_accepts_every_type_at_top_level),
	    cmocka_unit_test(test_jsontext_rejects_empty_input),
	    cmocka_unit_test(test_jsontext_rejects_a_byte_order_mark),
	    cmocka_unit_test(test_jsontext_rejects_trailing_commas),
	    cmocka_unit_test(test_jsontext_rejects_leading_zeros),
	    cmocka_unit_test(test_jsontext_rejects_malformed_numbers),
	    cmocka_unit_test(test_jsontext_rejects_single_quotes),
	    cmocka_unit_test(test_jsontext_rejects_nan_and_infinity),
	    cmocka_unit_test(test_jsontext_rejects_bad_literals),
	    cmocka_unit_test(test_jsontext_rejects_bare_control_characters),
	    cmocka_unit_test(test_jsontext_rejects_invalid_escapes),
	    cmocka_unit_test(test_jsontext_rejects_bad_unicode_escape_hex),
	    cmocka_unit_test(test_jsontext_accepts_valid_utf8),
	    cmocka_unit_test(test_jsontext_rejects_overlong_utf8),
	    cmocka_unit_test(test_jsontext_rejects_surrogates_in_utf8),
	    cmocka_unit_test(test_jsontext_rejects_utf8_past_u10ffff),
	    cmocka_unit_test(test_jsontext_rejects_stray_and_truncated_utf8),
	    cmocka_unit_test(test_jsontext_accepts_nesting_of_512),
	    cmocka_unit_test(test_jsontext_rejects_nesting_over_512),
	    cmocka_unit_test(test_jsontext_keeps_numbers_verbatim),
	    cmocka_unit_test(test_jsontext_keeps_escapes_as_written),
	    cmocka_unit_test(test_jsontext_pretty_indents_nested_objects_and_arrays),
	    cmocka_unit_test(test_jsontext_pretty_keeps_empty_containers_on_one_line),
	    cmocka_unit_test(test_jsontext_compact_drops_all_insignificant_whitespace),
	    cmocka_unit_test(test_jsontext_pretty_matches_python_json_dumps),
	    cmocka_unit_test(test_jsontext_splits_at_every_offset_agree),
	    cmocka_unit_test(test_jsontext_out_error_stops_and_is_returned),
	    cmocka_unit_test(test_jsontext_error_message_names_the_offset),
	    cmocka_unit_test(test_jsontext_errors_are_sticky),
	    cmocka_unit_test(test_jsontext_input_after_finish_is_an_error),
	    cmocka_unit_test(test_jsontext_check_fills_the_error_buffer),
	    cmocka_unit_test(test_jsontext_render_returns_a_string),
	    cmocka_unit_test(test_jsontext_render_caps_its_output),
	    cmocka_unit_test(test_jsontext_streams_output_in_bounded_pieces),
	    cmocka_unit_test(test_jsontext_random_documents_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
