/*
 * The model's enums (see model_int.h): every spelling the wire may use for
 * a status or a type (full names, prefixes stripped, integers, the
 * British and American spellings of cancelled), kept as text when
 * unknown; and the order of step paths ("2.10" after "2.9").
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"
#include "model_int.h"

/* ---- enums ---- */

static const char *const thread_status_names[] = {
    "THREAD_STATUS_UNSPECIFIED", "THREAD_STATUS_PENDING",   "THREAD_STATUS_RUNNING",
    "THREAD_STATUS_PAUSED",      "THREAD_STATUS_COMPLETED", "THREAD_STATUS_FAILED",
    "THREAD_STATUS_CANCELLED",
};
static const char *const step_status_names[] = {
    "STEP_STATUS_UNSPECIFIED", "STEP_STATUS_PENDING",   "STEP_STATUS_RUNNING",
    "STEP_STATUS_PAUSED",      "STEP_STATUS_COMPLETED", "STEP_STATUS_FAILED",
    "STEP_STATUS_SKIPPED",     "STEP_STATUS_CANCELLED",
};
static const char *const event_type_names[] = {
    "THREAD_EVENT_TYPE_UNSPECIFIED",  "THREAD_EVENT_TYPE_SNAPSHOT",      "THREAD_EVENT_TYPE_STATUS",
    "THREAD_EVENT_TYPE_STEP_STARTED", "THREAD_EVENT_TYPE_STEP_FINISHED", "THREAD_EVENT_TYPE_YIELD",
};
static const char *const step_part_names[] = {
    "STEP_PART_UNSPECIFIED",
    "STEP_PART_INPUT",
    "STEP_PART_OUTPUT",
};

const struct enum_info model_thread_status_enum = {
    thread_status_names, MODEL_THREAD_UNKNOWN, MODEL_THREAD_CANCELLED, {"THREAD_STATUS_"}};
const struct enum_info model_step_status_enum = {
    step_status_names, MODEL_STEP_UNKNOWN, MODEL_STEP_CANCELLED, {"STEP_STATUS_"}};
/* A StepEvent's type may carry its own prefix. */
const struct enum_info model_event_type_enum = {
    event_type_names, MODEL_EVENT_UNKNOWN, 0, {"THREAD_EVENT_TYPE_", "STEP_EVENT_TYPE_"}};
const struct enum_info model_step_part_enum = {
    step_part_names, MODEL_PART_UNKNOWN, 0, {"STEP_PART_"}};

/*
 * The script and version statuses are kept as text (their canonical full
 * name when known, else the wire's own text or number), since the client
 * acts on none of them. The values and their order are the API
 * documentation's (doc/WIRE.md, Messages); integers count from 1 in that
 * order.
 */
static const char *const script_status_names[] = {
    "SCRIPT_STATUS_UNSPECIFIED", "SCRIPT_STATUS_CREATED",  "SCRIPT_STATUS_DRAFT",
    "SCRIPT_STATUS_ACTIVE",      "SCRIPT_STATUS_DISABLED", "SCRIPT_STATUS_ARCHIVED",
};
static const char *const version_status_names[] = {
    "VERSION_STATUS_UNSPECIFIED", "VERSION_STATUS_DRAFT",  "VERSION_STATUS_COMPILING",
    "VERSION_STATUS_COMPILED",    "VERSION_STATUS_ACTIVE", "VERSION_STATUS_SUPERSEDED",
    "VERSION_STATUS_FAILED",
};
const struct enum_info model_script_status_enum = {script_status_names, 6, 0, {"SCRIPT_STATUS_"}};
const struct enum_info model_version_status_enum = {
    version_status_names, 7, 0, {"VERSION_STATUS_", "SCRIPT_VERSION_STATUS_"}};

_Static_assert(sizeof(thread_status_names) / sizeof(thread_status_names[0]) == MODEL_THREAD_UNKNOWN,
               "thread status names");
_Static_assert(sizeof(step_status_names) / sizeof(step_status_names[0]) == MODEL_STEP_UNKNOWN,
               "step status names");
_Static_assert(sizeof(event_type_names) / sizeof(event_type_names[0]) == MODEL_EVENT_UNKNOWN,
               "event type names");
_Static_assert(sizeof(step_part_names) / sizeof(step_part_names[0]) == MODEL_PART_UNKNOWN,
               "step part names");

/*
 * Keeps an unknown value's wire text. What does not fit is cut at a UTF-8
 * character and marked "...", which also keeps a cut text from reading as
 * a different value (a long run of zeros cut down to "0...04") when it is
 * rendered and parsed again.
 */
static void
text_keep(char *text, const char *s)
{
	size_t n = strlen(s);

	if (n < MODEL_ENUM_TEXT_MAX) {
		memcpy(text, s, n + 1);
		return;
	}
	n = MODEL_ENUM_TEXT_MAX - 4;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(text, s, n);
	memcpy(text + n, "...", 4);
}

/*
 * A decimal integer of exactly n bytes: an optional '-' and digits only.
 * 0, -EINVAL (not an integer) or -ERANGE.
 */
int
model_i64_from_text(const char *s, size_t n, int64_t *out)
{
	bool neg = false;
	uint64_t acc = 0, limit;
	size_t i = 0;

	if (n > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == n)
		return -EINVAL;
	for (size_t k = i; k < n; k++)
		if (s[k] < '0' || s[k] > '9')
			return -EINVAL;
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (acc > (limit - d) / 10)
			return -ERANGE;
		acc = acc * 10 + d;
	}
	if (!neg)
		*out = (int64_t)acc;
	else if (acc == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)acc;
	return 0;
}

/* An enum value given as an integer; text (may be NULL) keeps an unknown one. */
int
model_enum_from_int(const struct enum_info *e, int64_t v, char *text)
{
	if (v >= 0 && v < e->n)
		return (int)v;
	if (text != NULL)
		snprintf(text, MODEL_ENUM_TEXT_MAX, "%" PRId64, v);
	return e->n;
}

/*
 * An enum value given as text: an integer, or a name with or without a
 * prefix, in any case, CANCELED for CANCELLED. "" is unspecified.
 */
int
model_enum_from_text(const struct enum_info *e, const char *s, char *text)
{
	const char *bare = s;
	size_t n = strlen(s);
	int64_t v;
	int rc;

	if (n == 0)
		return 0;
	rc = model_i64_from_text(s, n, &v);
	if (rc == 0 && v >= 0 && v < e->n)
		return (int)v;
	if (rc == 0 || rc == -ERANGE)
		goto unknown;
	for (size_t i = 0; i < 3 && e->prefixes[i] != NULL; i++) {
		size_t pl = strlen(e->prefixes[i]);

		if (strncasecmp(s, e->prefixes[i], pl) == 0) {
			bare = s + pl;
			break;
		}
	}
	if (e->cancelled != 0 && strcasecmp(bare, "CANCELED") == 0)
		return e->cancelled;
	for (int i = 0; i < e->n; i++)
		if (strcasecmp(bare, e->names[i] + strlen(e->prefixes[0])) == 0)
			return i;
unknown:
	if (text != NULL)
		text_keep(text, s);
	return e->n;
}

/* The full name; an UNKNOWN (or out-of-range) value is its kept text. */
const char *
model_enum_name(const struct enum_info *e, int v, const char *text, const char *unknown)
{
	if (v >= 0 && v < e->n)
		return e->names[v];
	return text != NULL && *text != '\0' ? text : unknown;
}

const char *
model_thread_status_name(enum model_thread_status s, const char *text)
{
	return model_enum_name(&model_thread_status_enum, (int)s, text, "THREAD_STATUS_UNKNOWN");
}

const char *
model_step_status_name(enum model_step_status s, const char *text)
{
	return model_enum_name(&model_step_status_enum, (int)s, text, "STEP_STATUS_UNKNOWN");
}

const char *
model_event_type_name(enum model_event_type t, const char *text)
{
	return model_enum_name(&model_event_type_enum, (int)t, text, "THREAD_EVENT_TYPE_UNKNOWN");
}

const char *
model_step_part_name(enum model_step_part p)
{
	return model_enum_name(&model_step_part_enum, (int)p, NULL, "STEP_PART_UNKNOWN");
}

const char *
model_thread_status_word(enum model_thread_status s)
{
	static const char *const words[] = {"unspecified", "pending", "running",  "paused",
	                                    "completed",   "failed",  "cancelled"};

	return (int)s >= 0 && s < MODEL_THREAD_UNKNOWN ? words[s] : "unknown";
}

const char *
model_step_status_word(enum model_step_status s)
{
	static const char *const words[] = {"unspecified", "pending", "running", "paused",
	                                    "completed",   "failed",  "skipped", "cancelled"};

	return (int)s >= 0 && s < MODEL_STEP_UNKNOWN ? words[s] : "unknown";
}

/*
 * What a user types is trimmed first (a status written into a file comes
 * with its newline). Only the six real statuses count: "unspecified" or
 * "0" filter nothing, so they are as unknown as "archived".
 */
enum model_thread_status
model_thread_status_from_text(const char *s)
{
	char buf[MODEL_ENUM_TEXT_MAX];
	size_t n;
	int v;

	if (s == NULL)
		return MODEL_THREAD_UNKNOWN;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return MODEL_THREAD_UNKNOWN;
	memcpy(buf, s, n);
	buf[n] = '\0';
	v = model_enum_from_text(&model_thread_status_enum, buf, NULL);
	return v > 0 && v < MODEL_THREAD_UNKNOWN ? (enum model_thread_status)v
	                                         : MODEL_THREAD_UNKNOWN;
}

bool
model_thread_terminal(enum model_thread_status s)
{
	return s == MODEL_THREAD_COMPLETED || s == MODEL_THREAD_FAILED ||
	       s == MODEL_THREAD_CANCELLED;
}

/* A skipped step is as finished as a completed one: it will never run. */
bool
model_step_terminal(enum model_step_status s)
{
	return s == MODEL_STEP_COMPLETED || s == MODEL_STEP_FAILED || s == MODEL_STEP_SKIPPED ||
	       s == MODEL_STEP_CANCELLED;
}

/* ---- step paths ---- */

static bool
seg_numeric(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static int
sign(int v)
{
	return (v > 0) - (v < 0);
}

/* Numbers by value (of any length, so no overflow), before any other text. */
static int
seg_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	bool anum = seg_numeric(a, an), bnum = seg_numeric(b, bn);
	int r;

	if (anum && bnum) {
		while (an > 1 && *a == '0')
			a++, an--;
		while (bn > 1 && *b == '0')
			b++, bn--;
		if (an != bn)
			return an < bn ? -1 : 1;
		return sign(memcmp(a, b, an));
	}
	if (anum != bnum)
		return anum ? -1 : 1;
	r = memcmp(a, b, an < bn ? an : bn);
	if (r != 0)
		return sign(r);
	return an == bn ? 0 : an < bn ? -1 : 1;
}

/* Paths equal segment by segment ("01" and "1") fall back to bytes, so the
 * order is total and qsort gives the same answer every time. */
int
model_step_path_cmp(const char *a, const char *b)
{
	const char *pa, *pb;

	a = a != NULL ? a : "";
	b = b != NULL ? b : "";
	pa = a;
	pb = b;
	for (;;) {
		size_t an = strcspn(pa, "."), bn = strcspn(pb, ".");
		int r = seg_cmp(pa, an, pb, bn);

		if (r != 0)
			return r;
		pa += an;
		pb += bn;
		if (*pa == '\0' || *pb == '\0') {
			if (*pa != *pb)
				return *pa == '\0' ? -1 : 1;
			break;
		}
		pa++;
		pb++;
	}
	return sign(strcmp(a, b));
}
