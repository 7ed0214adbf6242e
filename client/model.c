/*
 * The API's messages (doc/WIRE.md, Messages) parsed from every shape the
 * wire may take (doc/WIRE.md, Tolerance) and rendered back in the
 * canonical wire form. Each message is described once, as a table of its
 * fields (wire name, kind, where it lives in the C struct), and one set of
 * table walkers parses, renders, copies and clears them all, so that each
 * tolerance rule is written once for every message.
 * Nesting follows the tables, never the input, so hostile JSON cannot make
 * the walkers recurse deeper than the message types themselves.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "b64.h"
#include "errbuf.h"
#include "model.h"
#include "utf8.h"

/* The walkers store enums through an int. */
_Static_assert(sizeof(enum model_thread_status) == sizeof(int), "enum size");
_Static_assert(sizeof(enum model_step_status) == sizeof(int), "enum size");
_Static_assert(sizeof(enum model_event_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum model_step_part) == sizeof(int), "enum size");

/* ---- enums ---- */

struct enum_info {
	const char *const *names; /* full names by C value, [0] = ..._UNSPECIFIED */
	int n;                    /* values with a name; n itself is the UNKNOWN value */
	int cancelled;            /* the value "CANCELED" means, or 0 */
	const char *prefixes[3];  /* stripped when present; [0] is the canonical one */
};

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

static const struct enum_info thread_status_enum = {
    thread_status_names, MODEL_THREAD_UNKNOWN, MODEL_THREAD_CANCELLED, {"THREAD_STATUS_"}};
static const struct enum_info step_status_enum = {
    step_status_names, MODEL_STEP_UNKNOWN, MODEL_STEP_CANCELLED, {"STEP_STATUS_"}};
/* A StepEvent's type may carry its own prefix. */
static const struct enum_info event_type_enum = {
    event_type_names, MODEL_EVENT_UNKNOWN, 0, {"THREAD_EVENT_TYPE_", "STEP_EVENT_TYPE_"}};
static const struct enum_info step_part_enum = {
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
static const struct enum_info script_status_enum = {script_status_names, 6, 0, {"SCRIPT_STATUS_"}};
static const struct enum_info version_status_enum = {
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
static int
i64_from_text(const char *s, size_t n, int64_t *out)
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
static int
enum_from_int(const struct enum_info *e, int64_t v, char *text)
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
static int
enum_from_text(const struct enum_info *e, const char *s, char *text)
{
	const char *bare = s;
	size_t n = strlen(s);
	int64_t v;
	int rc;

	if (n == 0)
		return 0;
	rc = i64_from_text(s, n, &v);
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
static const char *
enum_name(const struct enum_info *e, int v, const char *text, const char *unknown)
{
	if (v >= 0 && v < e->n)
		return e->names[v];
	return text != NULL && *text != '\0' ? text : unknown;
}

const char *
model_thread_status_name(enum model_thread_status s, const char *text)
{
	return enum_name(&thread_status_enum, (int)s, text, "THREAD_STATUS_UNKNOWN");
}

const char *
model_step_status_name(enum model_step_status s, const char *text)
{
	return enum_name(&step_status_enum, (int)s, text, "STEP_STATUS_UNKNOWN");
}

const char *
model_event_type_name(enum model_event_type t, const char *text)
{
	return enum_name(&event_type_enum, (int)t, text, "THREAD_EVENT_TYPE_UNKNOWN");
}

const char *
model_step_part_name(enum model_step_part p)
{
	return enum_name(&step_part_enum, (int)p, NULL, "STEP_PART_UNKNOWN");
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
	v = enum_from_text(&thread_status_enum, buf, NULL);
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

/* ---- message tables ---- */

enum kind {
	K_STR,   /* char *: a JSON string; with en, an enum kept as its text (a name, a
	          * prefixed name or an integer, the full name when known) */
	K_JSON,  /* char *: a string holding JSON, or a JSON value kept as its text */
	K_INT,   /* int64_t: rendered as a JSON number */
	K_I64,   /* int64_t: rendered as a decimal string */
	K_BOOL,  /* bool */
	K_ENUM,  /* an enum stored as int; aux: its char[MODEL_ENUM_TEXT_MAX] text */
	K_BYTES, /* unsigned char *: base64 on the wire; aux: the size_t length */
	K_META,  /* struct model_kv *: an object of strings; aux: the size_t count */
	K_STRS,  /* char **: an array of strings; aux: the size_t count */
	K_JSONS, /* char **: an array of K_JSON values; aux: the size_t count */
	K_OBJ,   /* a nested struct (sub); aux: its bool "present" flag */
	K_ARRAY, /* an array of structs (sub); aux: the size_t count */
};

#define NO_AUX ((size_t)-1)

struct msg;

struct field {
	const char *name; /* canonical wire name (camelCase) */
	enum kind kind;
	size_t off;
	size_t aux; /* NO_AUX when the kind's companion member is absent */
	const struct msg *sub;
	const struct enum_info *en;
	unsigned flags; /* F_ID, F_LISTING */
};

/*
 * Strings and NUL (doc/WIRE.md, Identity: a NUL never truncates an id).
 * jansson keeps a string's length, and a "\u0000" in it would cut a C
 * string short: "nul\u0000id" would become "nul", another thread. So:
 *  - F_ID: a string that names something (an id, a script's name, a
 *    step's path, a page token). Holding a NUL it is unusable: the parse
 *    fails with -EPROTO naming the field.
 *  - F_LISTING: an array of entries (threads, scripts) where an entry
 *    with an unusable id is left out, counted in n_unusable, and the rest
 *    of the listing stands: one bad entry must not hide the others.
 *  - every other string is free text (an error, a description, a JSON
 *    text): each NUL becomes U+FFFD, so the text keeps its length in
 *    characters and is never silently cut.
 */
#define F_ID      1u
#define F_LISTING 2u

struct msg {
	const char *name; /* for error messages */
	const struct field *fields;
	size_t n;
	size_t size;
};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))
#define FLD(T, name, kind, m)                                  \
	{                                                      \
		name, kind, offsetof(T, m), NO_AUX, NULL, NULL \
	}
#define FAUX(T, name, kind, m, aux, sub)                                \
	{                                                               \
		name, kind, offsetof(T, m), offsetof(T, aux), sub, NULL \
	}
#define FENUM(T, name, m, text, en)                                       \
	{                                                                 \
		name, K_ENUM, offsetof(T, m), offsetof(T, text), NULL, en \
	}
#define FETEXT(T, name, m, en)                                \
	{                                                     \
		name, K_STR, offsetof(T, m), NO_AUX, NULL, en \
	}
#define FID(T, name, m)                                               \
	{                                                             \
		name, K_STR, offsetof(T, m), NO_AUX, NULL, NULL, F_ID \
	}
#define FLIST(T, name, m, aux, sub)                                                   \
	{                                                                             \
		name, K_ARRAY, offsetof(T, m), offsetof(T, aux), sub, NULL, F_LISTING \
	}
#define FPART(T, name, m)                                                   \
	{                                                                   \
		name, K_ENUM, offsetof(T, m), NO_AUX, NULL, &step_part_enum \
	}

/* The order of doc/WIRE.md, Messages, which the renderers keep. P is ""
 * or "step." (the summary inside a StepDetail). */
#define STEP_FIELDS(T, P)                                                                    \
	FID(T, "stepPath", P step_path), FLD(T, "name", K_STR, P name),                      \
	    FLD(T, "primitive", K_STR, P primitive), FLD(T, "toolName", K_STR, P tool_name), \
	    FENUM(T, "status", P status, P status_text, &step_status_enum),                  \
	    FLD(T, "error", K_STR, P error), FLD(T, "startedAtMs", K_I64, P started_at_ms),  \
	    FLD(T, "finishedAtMs", K_I64, P finished_at_ms),                                 \
	    FLD(T, "durationMs", K_I64, P duration_ms)

static const struct field step_fields[] = {STEP_FIELDS(struct model_step, )};
static const struct msg step_msg = {"StepSummary", step_fields, NFIELDS(step_fields),
                                    sizeof(struct model_step)};

static const struct field pending_fields[] = {
    FLD(struct model_pending, "prompt", K_STR, prompt),
    FAUX(struct model_pending, "options", K_STRS, options, n_options, NULL),
    FLD(struct model_pending, "type", K_STR, type),
};
static const struct msg pending_msg = {"PendingInput", pending_fields, NFIELDS(pending_fields),
                                       sizeof(struct model_pending)};

#define D struct model_step_detail
static const struct field detail_fields[] = {
    STEP_FIELDS(D, step.),
    FLD(D, "inputJson", K_JSON, input_json),
    FLD(D, "outputJson", K_JSON, output_json),
    FLD(D, "inputTruncated", K_BOOL, input_truncated),
    FLD(D, "outputTruncated", K_BOOL, output_truncated),
    FLD(D, "inputTotalBytes", K_I64, input_total_bytes),
    FLD(D, "outputTotalBytes", K_I64, output_total_bytes),
    FLD(D, "executionId", K_STR, execution_id),
    FLD(D, "logsUrl", K_STR, logs_url),
    FLD(D, "attempt", K_INT, attempt),
    FAUX(D, "pendingInput", K_OBJ, pending, has_pending, &pending_msg),
};
#undef D
static const struct msg detail_msg = {"StepDetail", detail_fields, NFIELDS(detail_fields),
                                      sizeof(struct model_step_detail)};

#define T struct model_thread
static const struct field thread_fields[] = {
    FID(T, "threadId", thread_id),
    FID(T, "scriptName", script_name),
    FLD(T, "version", K_INT, version),
    FENUM(T, "status", status, status_text, &thread_status_enum),
    FLD(T, "error", K_STR, error),
    FID(T, "currentStepPath", current_step_path),
    FLD(T, "currentStepName", K_STR, current_step_name),
    FLD(T, "totalSteps", K_INT, total_steps),
    FLD(T, "inputJson", K_JSON, input_json),
    FAUX(T, "metadata", K_META, metadata, n_metadata, NULL),
    FLD(T, "createdAtMs", K_I64, created_at_ms),
    FLD(T, "startedAtMs", K_I64, started_at_ms),
    FLD(T, "finishedAtMs", K_I64, finished_at_ms),
};
#undef T
static const struct msg thread_msg = {"Thread", thread_fields, NFIELDS(thread_fields),
                                      sizeof(struct model_thread)};

#define R struct model_result
static const struct field result_fields[] = {
    FID(R, "threadId", thread_id),
    FENUM(R, "status", status, status_text, &thread_status_enum),
    FAUX(R, "outputData", K_BYTES, output_data, output_len, NULL),
    FLD(R, "outputTotalBytes", K_I64, output_total_bytes),
    FLD(R, "outputTruncated", K_BOOL, output_truncated),
    FAUX(R, "steps", K_ARRAY, steps, n_steps, &step_msg),
    FAUX(R, "stepDetails", K_ARRAY, step_details, n_step_details, &detail_msg),
    FAUX(R, "yieldedValues", K_JSONS, yielded_values, n_yielded, NULL),
    FLD(R, "totalYielded", K_I64, total_yielded),
    FLD(R, "yieldsTruncated", K_BOOL, yields_truncated),
};
#undef R
static const struct msg result_msg = {"ThreadResult", result_fields, NFIELDS(result_fields),
                                      sizeof(struct model_result)};

static const struct field thread_list_fields[] = {
    FLIST(struct model_thread_list, "threads", threads, n_threads, &thread_msg),
    FID(struct model_thread_list, "nextPageToken", next_page_token),
};
static const struct msg thread_list_msg = {"ThreadList", thread_list_fields,
                                           NFIELDS(thread_list_fields),
                                           sizeof(struct model_thread_list)};

static const struct field script_fields[] = {
    FID(struct model_script, "name", name),
    FLD(struct model_script, "description", K_STR, description),
    FLD(struct model_script, "activeVersion", K_INT, active_version),
    FETEXT(struct model_script, "status", status, &script_status_enum),
    FLD(struct model_script, "createdAtMs", K_I64, created_at_ms),
    FLD(struct model_script, "updatedAtMs", K_I64, updated_at_ms),
};
static const struct msg script_msg = {"Script", script_fields, NFIELDS(script_fields),
                                      sizeof(struct model_script)};

static const struct field script_list_fields[] = {
    FLIST(struct model_script_list, "scripts", scripts, n_scripts, &script_msg),
    FID(struct model_script_list, "nextPageToken", next_page_token),
};
static const struct msg script_list_msg = {"ScriptList", script_list_fields,
                                           NFIELDS(script_list_fields),
                                           sizeof(struct model_script_list)};

static const struct field version_fields[] = {
    FLD(struct model_version, "version", K_INT, version),
    FETEXT(struct model_version, "status", status, &version_status_enum),
    FLD(struct model_version, "createdAtMs", K_I64, created_at_ms),
};
static const struct msg version_msg = {"ScriptVersion", version_fields, NFIELDS(version_fields),
                                       sizeof(struct model_version)};

static const struct field version_list_fields[] = {
    FAUX(struct model_version_list, "versions", K_ARRAY, versions, n_versions, &version_msg),
};
static const struct msg version_list_msg = {"VersionList", version_list_fields,
                                            NFIELDS(version_list_fields),
                                            sizeof(struct model_version_list)};

static const struct field health_fields[] = {
    FLD(struct model_health, "status", K_STR, status),
    FLD(struct model_health, "version", K_STR, version),
    FLD(struct model_health, "uptimeSeconds", K_I64, uptime_seconds),
};
static const struct msg health_msg = {"Health", health_fields, NFIELDS(health_fields),
                                      sizeof(struct model_health)};

#define E struct model_event
static const struct field event_fields[] = {
    FENUM(E, "type", type, type_text, &event_type_enum),
    FLD(E, "atMs", K_I64, at_ms),
    FAUX(E, "thread", K_OBJ, thread, has_thread, &thread_msg),
    FAUX(E, "step", K_OBJ, step, has_step, &step_msg),
    FLD(E, "yieldedJson", K_JSON, yielded_json),
};
#undef E
static const struct msg event_msg = {"ThreadEvent", event_fields, NFIELDS(event_fields),
                                     sizeof(struct model_event)};

/* The members of a result-stream message, each a table over the one struct. */
#define M struct model_result_msg
static const struct field meta_fields[] = {
    FID(M, "threadId", thread_id),
    FENUM(M, "status", status, status_text, &thread_status_enum),
    FLD(M, "outputTotalBytes", K_I64, output_total_bytes),
};
static const struct field chunk_fields[] = {
    FLD(M, "chunkIndex", K_I64, chunk_index),
    FAUX(M, "data", K_BYTES, data, len, NULL),
    FLD(M, "isFinal", K_BOOL, is_final),
};
static const struct field step_chunk_fields[] = {
    FID(M, "stepPath", step_path),
    FPART(M, "part", part),
    FLD(M, "chunkIndex", K_I64, chunk_index),
    FAUX(M, "data", K_BYTES, data, len, NULL),
    FLD(M, "isFinal", K_BOOL, is_final),
};
/* Every member at once: what a message holds, whichever kind it is. */
static const struct field rmsg_fields[] = {
    FID(M, "threadId", thread_id),
    FENUM(M, "status", status, status_text, &thread_status_enum),
    FLD(M, "outputTotalBytes", K_I64, output_total_bytes),
    {"stepMeta", K_OBJ, offsetof(M, step_meta), NO_AUX, &detail_msg, NULL},
    FID(M, "stepPath", step_path),
    FPART(M, "part", part),
    FLD(M, "chunkIndex", K_I64, chunk_index),
    FAUX(M, "data", K_BYTES, data, len, NULL),
    FLD(M, "isFinal", K_BOOL, is_final),
};
#undef M
static const struct msg meta_msg = {"ResultMessage.meta", meta_fields, NFIELDS(meta_fields),
                                    sizeof(struct model_result_msg)};
static const struct msg chunk_msg = {"ResultMessage.chunk", chunk_fields, NFIELDS(chunk_fields),
                                     sizeof(struct model_result_msg)};
static const struct msg step_chunk_msg = {"ResultMessage.stepChunk", step_chunk_fields,
                                          NFIELDS(step_chunk_fields),
                                          sizeof(struct model_result_msg)};
static const struct msg rmsg_msg = {"ResultMessage", rmsg_fields, NFIELDS(rmsg_fields),
                                    sizeof(struct model_result_msg)};

#define AT(base, off, type)  ((type *)(void *)((char *)(base) + (off)))
#define CAT(base, off, type) ((type const *)(const void *)((const char *)(base) + (off)))

/* ---- clearing ---- */

static void
strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Frees what the struct at base holds and zeroes it. */
static void
msg_clear(const struct msg *m, void *base)
{
	for (size_t i = 0; i < m->n; i++) {
		const struct field *f = &m->fields[i];

		switch (f->kind) {
		case K_STR:
		case K_JSON:
			free(*AT(base, f->off, char *));
			break;
		case K_BYTES:
			free(*AT(base, f->off, unsigned char *));
			break;
		case K_META: {
			struct model_kv *kv = *AT(base, f->off, struct model_kv *);
			size_t n = *AT(base, f->aux, size_t);

			for (size_t k = 0; k < n; k++) {
				free(kv[k].key);
				free(kv[k].value);
			}
			free(kv);
			break;
		}
		case K_STRS:
		case K_JSONS:
			strs_free(*AT(base, f->off, char **), *AT(base, f->aux, size_t));
			break;
		case K_OBJ:
			msg_clear(f->sub, AT(base, f->off, char));
			break;
		case K_ARRAY: {
			char *a = *AT(base, f->off, char *);
			size_t n = *AT(base, f->aux, size_t);

			for (size_t k = 0; k < n; k++)
				msg_clear(f->sub, a + k * f->sub->size);
			free(a);
			break;
		}
		case K_INT:
		case K_I64:
		case K_BOOL:
		case K_ENUM:
			break;
		}
	}
	memset(base, 0, m->size);
}

void
model_thread_clear(struct model_thread *t)
{
	msg_clear(&thread_msg, t);
}

void
model_step_clear(struct model_step *s)
{
	msg_clear(&step_msg, s);
}

void
model_step_detail_clear(struct model_step_detail *d)
{
	msg_clear(&detail_msg, d);
}

void
model_result_clear(struct model_result *r)
{
	msg_clear(&result_msg, r);
}

void
model_thread_list_clear(struct model_thread_list *l)
{
	msg_clear(&thread_list_msg, l);
}

void
model_script_clear(struct model_script *s)
{
	msg_clear(&script_msg, s);
}

void
model_script_list_clear(struct model_script_list *l)
{
	msg_clear(&script_list_msg, l);
}

void
model_version_list_clear(struct model_version_list *l)
{
	msg_clear(&version_list_msg, l);
}

void
model_health_clear(struct model_health *h)
{
	msg_clear(&health_msg, h);
}

void
model_event_clear(struct model_event *e)
{
	msg_clear(&event_msg, e);
}

void
model_result_msg_clear(struct model_result_msg *m)
{
	msg_clear(&rmsg_msg, m);
}

/* ---- parsing ---- */

/* Where a parse is, for its error message: "ThreadResult.steps[2].status". */
struct ctx {
	char *err;
	size_t errlen;
	char path[192];
	size_t plen;
	bool bad_id;     /* the -EPROTO is an F_ID holding a NUL */
	size_t unusable; /* F_LISTING entries left out */
};

static size_t path_push(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends to the path; returns the length to restore with path_pop(). */
static size_t
path_push(struct ctx *c, const char *fmt, ...)
{
	size_t old = c->plen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(c->path + old, sizeof(c->path) - old, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->plen = old + (size_t)n < sizeof(c->path) ? old + (size_t)n : sizeof(c->path) - 1;
	return old;
}

static void
path_pop(struct ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(struct ctx *c, const char *fmt, ...)
{
	char msg[MODEL_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return errbuf_set(c->err, c->errlen, -EPROTO, "%s: %s", c->path, msg);
}

static int
oom(struct ctx *c)
{
	return errbuf_set(c->err, c->errlen, -ENOMEM, "%s: out of memory", c->path);
}

/* "a string (\"12x\")", "an object": what a value is, for a message. */
static const char *
describe(const json_t *v, char *buf, size_t n)
{
	char ex[80];

	switch (json_typeof(v)) {
	case JSON_STRING:
		errbuf_excerpt(ex, sizeof(ex), json_string_value(v), json_string_length(v), 40,
		               '"');
		snprintf(buf, n, "a string (\"%s\")", ex);
		break;
	case JSON_INTEGER:
		snprintf(buf, n, "a number (%" JSON_INTEGER_FORMAT ")", json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, n, "a number (%g)", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, n, "a boolean (true)");
		break;
	case JSON_FALSE:
		snprintf(buf, n, "a boolean (false)");
		break;
	case JSON_NULL:
		snprintf(buf, n, "null");
		break;
	case JSON_OBJECT:
		snprintf(buf, n, "an object");
		break;
	case JSON_ARRAY:
		snprintf(buf, n, "an array");
		break;
	}
	return buf;
}

static int
expected(struct ctx *c, const char *what, const json_t *v)
{
	char d[128];

	return fail(c, "expected %s, got %s", what, describe(v, d, sizeof(d)));
}

/* "createdAtMs" -> "created_at_ms". */
static void
camel_to_snake(const char *camel, char *out, size_t outsz)
{
	size_t o = 0;

	for (; *camel != '\0' && o + 2 < outsz; camel++) {
		if (isupper((unsigned char)*camel)) {
			out[o++] = '_';
			out[o++] = (char)tolower((unsigned char)*camel);
		} else {
			out[o++] = *camel;
		}
	}
	out[o] = '\0';
}

/*
 * A field by its camelCase name, else by its snake_case one; NULL when
 * absent or null. key receives the name it was found under (64 bytes).
 */
static const json_t *
field_get(const json_t *obj, const char *camel, char *key)
{
	const json_t *v = json_object_get(obj, camel);

	snprintf(key, 64, "%s", camel);
	if (v == NULL || json_is_null(v)) {
		camel_to_snake(camel, key, 64);
		v = json_object_get(obj, key);
	}
	return json_is_null(v) ? NULL : v;
}

static bool
own_field(const struct msg *m, const char *key)
{
	char snake[64];

	for (size_t i = 0; i < m->n; i++) {
		camel_to_snake(m->fields[i].name, snake, sizeof(snake));
		if (strcmp(key, m->fields[i].name) == 0 || strcmp(key, snake) == 0)
			return true;
	}
	return false;
}

/* How many of the message's own fields the object has (checking at most
 * MAX_OWN_SCAN keys: an answer of a million unknown keys costs no more). */
#define MAX_OWN_SCAN 256

static size_t
own_fields(const struct msg *m, const json_t *obj)
{
	const char *key;
	json_t *item;
	size_t n = 0, seen = 0;

	json_object_foreach((json_t *)obj, key, item)
	{
		if (++seen > MAX_OWN_SCAN)
			break;
		if (own_field(m, key))
			n++;
	}
	return n;
}

/*
 * A unary answer wrapped in one key ({"thread": {...}}, {"result": {...}}),
 * with or without unknown siblings ({"thread": {...}, "requestId": "r1"}):
 * the object inside: the member object holding more of the message's own
 * fields than the answer itself does (the most, of several), or the only
 * member object of an answer holding none. Else the answer is the message.
 */
static const json_t *
unwrap(const struct msg *m, const json_t *v)
{
	const json_t *best = NULL;
	size_t best_n = 0, objects = 0, seen = 0, top_n = own_fields(m, v);
	const char *key;
	json_t *inner;

	json_object_foreach((json_t *)v, key, inner)
	{
		size_t n;

		if (++seen > MAX_OWN_SCAN)
			break;
		if (!json_is_object(inner))
			continue;
		objects++;
		n = own_fields(m, inner);
		if (best == NULL || n > best_n) {
			best = inner;
			best_n = n;
		}
	}
	if (best != NULL && (best_n > top_n || (top_n == 0 && objects == 1)))
		return best;
	return v;
}

/* A JSON real that is a whole number (1e3, 4.0): 0, -EINVAL or -ERANGE. */
static int
real_to_i64(double x, int64_t *out)
{
	/* 2^63 is exact as a double; NaN fails both comparisons */
	if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
		return -ERANGE;
	if ((double)(int64_t)x != x)
		return -EINVAL;
	*out = (int64_t)x;
	return 0;
}

/*
 * int64 as a JSON integer, an integral real, or a decimal string. "" is
 * zero: a missing value rather than a wrong one, as a gateway that prints
 * every field might well send it.
 */
static int
parse_i64(struct ctx *c, const json_t *v, int64_t *out)
{
	char d[128];

	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		int rc = real_to_i64(json_real_value(v), out);

		if (rc == -ERANGE)
			return fail(c, "integer out of range, got %s", describe(v, d, sizeof(d)));
		if (rc != 0)
			return expected(c, "an integer", v);
		return 0;
	}
	if (json_is_string(v)) {
		int rc;

		if (json_string_length(v) == 0) {
			*out = 0;
			return 0;
		}
		rc = i64_from_text(json_string_value(v), json_string_length(v), out);
		if (rc == -ERANGE)
			return fail(c, "integer out of range, got %s", describe(v, d, sizeof(d)));
		if (rc != 0)
			return expected(c, "an integer", v);
		return 0;
	}
	return expected(c, "an integer", v);
}

static int
parse_bool(struct ctx *c, const json_t *v, bool *out)
{
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return 0;
	}
	if (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0) {
		*out = true;
		return 0;
	}
	if (json_is_string(v) && strcasecmp(json_string_value(v), "false") == 0) {
		*out = false;
		return 0;
	}
	return expected(c, "a boolean", v);
}

static int parse_enum(struct ctx *c, const struct enum_info *e, const json_t *v, int *out,
                      char *text);

/* An enum kept as text (K_STR with en): its full name when known, "" for
 * unspecified, else the wire's text or number as it came. */
static char *text_dup(const char *s, size_t n);

static int
parse_enum_text(struct ctx *c, const struct enum_info *e, const json_t *v, char **out)
{
	char text[MODEL_ENUM_TEXT_MAX] = "";
	int val, rc;

	if ((rc = parse_enum(c, e, v, &val, text)) != 0)
		return rc;
	free(*out);
	*out = strdup(val == e->n ? text : val == 0 ? "" : e->names[val]);
	return *out == NULL ? oom(c) : 0;
}

static int
parse_enum(struct ctx *c, const struct enum_info *e, const json_t *v, int *out, char *text)
{
	int64_t n;

	if (json_is_string(v)) {
		/* "RUN\u0000NING" is no RUNNING: unknown, its text kept whole */
		char *t = text_dup(json_string_value(v), json_string_length(v));

		if (t == NULL)
			return oom(c);
		*out = enum_from_text(e, t, text);
		free(t);
		return 0;
	}
	if (json_is_integer(v)) {
		*out = enum_from_int(e, json_integer_value(v), text);
		return 0;
	}
	if (json_is_real(v) && real_to_i64(json_real_value(v), &n) == 0) {
		*out = enum_from_int(e, n, text);
		return 0;
	}
	/* a value of no enum's spelling (1.5, true) is still only a value
	 * this client does not know; a structure is no value at all */
	if (json_is_object(v) || json_is_array(v))
		return expected(c, "an enum name or number", v);
	if (text != NULL) {
		if (json_is_real(v))
			snprintf(text, MODEL_ENUM_TEXT_MAX, "%g", json_real_value(v));
		else
			snprintf(text, MODEL_ENUM_TEXT_MAX, "%s",
			         json_is_true(v) ? "true" : "false");
	}
	*out = e->n;
	return 0;
}

/* The n bytes of s as a C string, each NUL as U+FFFD (free text; see
 * F_ID). NULL only when out of memory. */
static char *
text_dup(const char *s, size_t n)
{
	static const char fffd[] = "\xef\xbf\xbd";
	size_t nuls = 0, o = 0;
	char *out;

	for (size_t i = 0; i < n; i++)
		nuls += s[i] == '\0';
	if ((out = malloc(n + 2 * nuls + 1)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\0') {
			memcpy(out + o, fffd, 3);
			o += 3;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* A string holding JSON as its text; any other JSON value as its compact
 * text. NULL only when out of memory. */
static char *
json_text(const json_t *v)
{
	if (json_is_string(v))
		return text_dup(json_string_value(v), json_string_length(v));
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int
parse_bytes(struct ctx *c, const json_t *v, unsigned char **out, size_t *len)
{
	size_t n;
	unsigned char *buf;

	if (!json_is_string(v))
		return expected(c, "a base64 string", v);
	n = json_string_length(v);
	if (n == 0)
		return 0;
	buf = malloc(B64_DECODED_MAX(n));
	if (buf == NULL)
		return oom(c);
	if (b64_decode(json_string_value(v), n, buf, len) != 0) {
		free(buf);
		*len = 0;
		return fail(c, "invalid base64");
	}
	if (*len == 0) {
		free(buf);
		return 0;
	}
	*out = buf;
	return 0;
}

static int
parse_meta(struct ctx *c, const json_t *v, struct model_kv **out, size_t *n)
{
	const char *key;
	json_t *item;

	if (!json_is_object(v))
		return expected(c, "an object of strings", v);
	if (json_object_size(v) == 0)
		return 0;
	*out = calloc(json_object_size(v), sizeof(**out));
	if (*out == NULL)
		return oom(c);
	json_object_foreach((json_t *)v, key, item)
	{
		struct model_kv *kv;

		if (json_is_null(item))
			continue;
		if (!json_is_string(item)) {
			char ex[80];

			errbuf_excerpt(ex, sizeof(ex), key, strlen(key), 40, '"');
			path_push(c, "[\"%s\"]", ex);
			return expected(c, "a string", item);
		}
		kv = &(*out)[(*n)++];
		kv->key = strdup(key);
		kv->value = text_dup(json_string_value(item), json_string_length(item));
		if (kv->key == NULL || kv->value == NULL)
			return oom(c);
	}
	if (*n == 0) {
		free(*out);
		*out = NULL;
	}
	return 0;
}

static int
parse_strs(struct ctx *c, const json_t *v, char ***out, size_t *n, bool any_json)
{
	size_t i;
	json_t *item;

	if (!json_is_array(v))
		return expected(c, any_json ? "an array" : "an array of strings", v);
	if (json_array_size(v) == 0)
		return 0;
	*out = calloc(json_array_size(v), sizeof(**out));
	if (*out == NULL)
		return oom(c);
	json_array_foreach(v, i, item)
	{
		if (!any_json && !json_is_string(item)) {
			path_push(c, "[%zu]", i);
			return expected(c, "a string", item);
		}
		(*out)[(*n)++] = json_text(item);
		if ((*out)[i] == NULL)
			return oom(c);
	}
	return 0;
}

static int msg_parse(const struct msg *m, const json_t *obj, void *base, struct ctx *c);

static int
parse_array(struct ctx *c, const struct msg *sub, const json_t *v, char **out, size_t *n,
            bool listing)
{
	size_t i, left_out = 0;
	json_t *item;

	if (!json_is_array(v))
		return expected(c, "an array", v);
	if (json_array_size(v) == 0)
		return 0;
	*out = calloc(json_array_size(v), sub->size);
	if (*out == NULL)
		return oom(c);
	/* Counted before filling, so that a failure half-way frees what is in. */
	*n = json_array_size(v);
	json_array_foreach(v, i, item)
	{
		size_t old = path_push(c, "[%zu]", i);
		int rc;

		char *slot = *out + (i - left_out) * sub->size;

		if (!json_is_object(item))
			return expected(c, "an object", item);
		rc = msg_parse(sub, item, slot, c);
		if (rc == -EPROTO && c->bad_id && listing) {
			/* an entry nothing can name: left out, the rest stand */
			msg_clear(sub, slot);
			memset(slot, 0, sub->size);
			c->bad_id = false;
			c->unusable++;
			left_out++;
			rc = 0;
		}
		if (rc != 0)
			return rc;
		path_pop(c, old);
	}
	*n -= left_out;
	if (*n == 0) {
		free(*out);
		*out = NULL;
	}
	if (left_out > 0 && c->err != NULL && c->errlen > 0)
		c->err[0] = '\0';
	return 0;
}

/*
 * One field from v (NULL: absent). An absent field leaves the member as it
 * is (zero in a fresh struct), except that a NULL string becomes "".
 */
static int
field_parse(const struct field *f, const json_t *v, void *base, struct ctx *c)
{
	char **s;

	switch (f->kind) {
	case K_STR:
	case K_JSON:
		s = AT(base, f->off, char *);
		if (v == NULL) {
			if (*s == NULL && (*s = strdup("")) == NULL)
				return oom(c);
			return 0;
		}
		if (f->kind == K_STR && f->en != NULL)
			return parse_enum_text(c, f->en, v, s);
		if (f->kind == K_STR && !json_is_string(v))
			return expected(c, "a string", v);
		if ((f->flags & F_ID) &&
		    memchr(json_string_value(v), '\0', json_string_length(v)) != NULL) {
			c->bad_id = true;
			return fail(c, "holds a NUL byte (\\u0000), which no id or name may");
		}
		free(*s);
		if ((*s = json_text(v)) == NULL)
			return oom(c);
		return 0;
	case K_INT:
	case K_I64:
		return v == NULL ? 0 : parse_i64(c, v, AT(base, f->off, int64_t));
	case K_BOOL:
		return v == NULL ? 0 : parse_bool(c, v, AT(base, f->off, bool));
	case K_ENUM:
		if (v == NULL)
			return 0;
		return parse_enum(c, f->en, v, AT(base, f->off, int),
		                  f->aux == NO_AUX ? NULL : AT(base, f->aux, char));
	case K_BYTES:
		if (v == NULL)
			return 0;
		return parse_bytes(c, v, AT(base, f->off, unsigned char *),
		                   AT(base, f->aux, size_t));
	case K_META:
		if (v == NULL)
			return 0;
		return parse_meta(c, v, AT(base, f->off, struct model_kv *),
		                  AT(base, f->aux, size_t));
	case K_STRS:
	case K_JSONS:
		if (v == NULL)
			return 0;
		return parse_strs(c, v, AT(base, f->off, char **), AT(base, f->aux, size_t),
		                  f->kind == K_JSONS);
	case K_OBJ:
		if (v != NULL && !json_is_object(v))
			return expected(c, "an object", v);
		if (v != NULL && f->aux != NO_AUX)
			*AT(base, f->aux, bool) = true;
		return msg_parse(f->sub, v, AT(base, f->off, char), c);
	case K_ARRAY:
		if (v == NULL)
			return 0;
		return parse_array(c, f->sub, v, AT(base, f->off, char *), AT(base, f->aux, size_t),
		                   (f->flags & F_LISTING) != 0);
	}
	return 0;
}

/* Every field of m from the object obj (NULL: all absent) into base. On
 * failure base holds what was parsed so far, for msg_clear(). */
static int
msg_parse(const struct msg *m, const json_t *obj, void *base, struct ctx *c)
{
	for (size_t i = 0; i < m->n; i++) {
		char key[64];
		const json_t *v = obj != NULL ? field_get(obj, m->fields[i].name, key) : NULL;
		size_t old = v != NULL ? path_push(c, ".%s", key) : c->plen;
		int rc = field_parse(&m->fields[i], v, base, c);

		if (rc != 0)
			return rc;
		path_pop(c, old);
	}
	return 0;
}

static void
ctx_init(struct ctx *c, const char *name, char *err, size_t errlen)
{
	c->err = err;
	c->errlen = errlen;
	c->plen = 0;
	c->path[0] = '\0';
	c->bad_id = false;
	c->unusable = 0;
	path_push(c, "%s", name);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
}

/* A whole message: cleared first, cleared again when it fails.
 * *unusable (may be NULL): the entries of a listing left out. */
static int
top_parse_counted(const struct msg *m, const json_t *v, void *out, char *err, size_t errlen,
                  size_t *unusable)
{
	struct ctx c;
	int rc;

	memset(out, 0, m->size);
	ctx_init(&c, m->name, err, errlen);
	if (v == NULL)
		return fail(&c, "expected an object, got nothing");
	if (!json_is_object(v))
		return expected(&c, "an object", v);
	rc = msg_parse(m, unwrap(m, v), out, &c);
	if (rc != 0)
		msg_clear(m, out);
	else if (unusable != NULL)
		*unusable = c.unusable;
	return rc;
}

static int
top_parse(const struct msg *m, const json_t *v, void *out, char *err, size_t errlen)
{
	return top_parse_counted(m, v, out, err, errlen, NULL);
}

int
model_thread_parse(const json_t *v, struct model_thread *out, char *err, size_t errlen)
{
	return top_parse(&thread_msg, v, out, err, errlen);
}

int
model_step_parse(const json_t *v, struct model_step *out, char *err, size_t errlen)
{
	return top_parse(&step_msg, v, out, err, errlen);
}

int
model_step_detail_parse(const json_t *v, struct model_step_detail *out, char *err, size_t errlen)
{
	return top_parse(&detail_msg, v, out, err, errlen);
}

int
model_result_parse(const json_t *v, struct model_result *out, char *err, size_t errlen)
{
	return top_parse(&result_msg, v, out, err, errlen);
}

int
model_thread_list_parse(const json_t *v, struct model_thread_list *out, char *err, size_t errlen)
{
	return top_parse_counted(&thread_list_msg, v, out, err, errlen, &out->n_unusable);
}

int
model_script_parse(const json_t *v, struct model_script *out, char *err, size_t errlen)
{
	return top_parse(&script_msg, v, out, err, errlen);
}

int
model_script_list_parse(const json_t *v, struct model_script_list *out, char *err, size_t errlen)
{
	return top_parse_counted(&script_list_msg, v, out, err, errlen, &out->n_unusable);
}

int
model_version_list_parse(const json_t *v, struct model_version_list *out, char *err, size_t errlen)
{
	return top_parse(&version_list_msg, v, out, err, errlen);
}

int
model_health_parse(const json_t *v, struct model_health *out, char *err, size_t errlen)
{
	return top_parse(&health_msg, v, out, err, errlen);
}

int
model_event_parse(const json_t *v, struct model_event *out, char *err, size_t errlen)
{
	return top_parse(&event_msg, v, out, err, errlen);
}

/*
 * Only a "result" wrapper is taken off here: any other one-key object is
 * exactly how a oneof member this client does not know looks, and that
 * must come out as MODEL_MSG_UNKNOWN, not be read as a message.
 */
int
model_result_msg_parse(const json_t *v, struct model_result_msg *out, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum model_msg_kind kind;
		const struct msg *m;
		size_t off;
	} members[] = {
	    {"meta", MODEL_MSG_META, &meta_msg, 0},
	    {"chunk", MODEL_MSG_CHUNK, &chunk_msg, 0},
	    {"stepMeta", MODEL_MSG_STEP_META, &detail_msg,
	     offsetof(struct model_result_msg, step_meta)},
	    {"stepChunk", MODEL_MSG_STEP_CHUNK, &step_chunk_msg, 0},
	};
	const json_t *inner;
	struct ctx c;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	ctx_init(&c, rmsg_msg.name, err, errlen);
	if (v == NULL)
		return fail(&c, "expected an object, got nothing");
	if (!json_is_object(v))
		return expected(&c, "an object", v);
	inner = json_object_get(v, "result");
	if (json_is_object(inner))
		v = inner;
	for (size_t i = 0; i < NFIELDS(members); i++) {
		char key[64];
		const json_t *mv = field_get(v, members[i].name, key);
		size_t old;

		if (mv == NULL)
			continue;
		old = path_push(&c, ".%s", key);
		if (!json_is_object(mv)) {
			rc = expected(&c, "an object", mv);
			break;
		}
		out->kind = members[i].kind;
		rc = msg_parse(members[i].m, mv, AT(out, members[i].off, char), &c);
		path_pop(&c, old);
		break;
	}
	/* The other members' strings, "" rather than NULL. */
	if (rc == 0)
		rc = msg_parse(&rmsg_msg, NULL, out, &c);
	if (rc != 0)
		msg_clear(&rmsg_msg, out);
	return rc;
}

/* ---- copying ---- */

static int
strs_copy(char ***dst, char *const *src, size_t n)
{
	if (n == 0 || src == NULL)
		return 0;
	*dst = calloc(n, sizeof(**dst));
	if (*dst == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (src[i] != NULL && ((*dst)[i] = strdup(src[i])) == NULL)
			return -ENOMEM;
	return 0;
}

static int msg_copy(const struct msg *m, void *dst, const void *src);

/* Into a zeroed dst; on failure dst holds what was copied, for msg_clear(). */
static int
field_copy(const struct field *f, void *dst, const void *src)
{
	switch (f->kind) {
	case K_STR:
	case K_JSON: {
		const char *s = *CAT(src, f->off, char *);

		if (s != NULL && (*AT(dst, f->off, char *) = strdup(s)) == NULL)
			return -ENOMEM;
		return 0;
	}
	case K_INT:
	case K_I64:
		*AT(dst, f->off, int64_t) = *CAT(src, f->off, int64_t);
		return 0;
	case K_BOOL:
		*AT(dst, f->off, bool) = *CAT(src, f->off, bool);
		return 0;
	case K_ENUM:
		*AT(dst, f->off, int) = *CAT(src, f->off, int);
		if (f->aux != NO_AUX)
			memcpy(AT(dst, f->aux, char), CAT(src, f->aux, char), MODEL_ENUM_TEXT_MAX);
		return 0;
	case K_BYTES: {
		const unsigned char *b = *CAT(src, f->off, unsigned char *);
		size_t n = *CAT(src, f->aux, size_t);
		unsigned char *copy;

		if (b == NULL || n == 0)
			return 0;
		if ((copy = malloc(n)) == NULL)
			return -ENOMEM;
		memcpy(copy, b, n);
		*AT(dst, f->off, unsigned char *) = copy;
		*AT(dst, f->aux, size_t) = n;
		return 0;
	}
	case K_META: {
		const struct model_kv *kv = *CAT(src, f->off, struct model_kv *);
		size_t n = *CAT(src, f->aux, size_t);
		struct model_kv *out;

		if (kv == NULL || n == 0)
			return 0;
		if ((out = calloc(n, sizeof(*out))) == NULL)
			return -ENOMEM;
		*AT(dst, f->off, struct model_kv *) = out;
		*AT(dst, f->aux, size_t) = n;
		for (size_t i = 0; i < n; i++) {
			if (kv[i].key != NULL && (out[i].key = strdup(kv[i].key)) == NULL)
				return -ENOMEM;
			if (kv[i].value != NULL && (out[i].value = strdup(kv[i].value)) == NULL)
				return -ENOMEM;
		}
		return 0;
	}
	case K_STRS:
	case K_JSONS: {
		char *const *v = *CAT(src, f->off, char **);
		size_t n = *CAT(src, f->aux, size_t);

		if (v == NULL || n == 0)
			return 0;
		*AT(dst, f->aux, size_t) = n;
		return strs_copy(AT(dst, f->off, char **), v, n);
	}
	case K_OBJ:
		if (f->aux != NO_AUX)
			*AT(dst, f->aux, bool) = *CAT(src, f->aux, bool);
		return msg_copy(f->sub, AT(dst, f->off, char), CAT(src, f->off, char));
	case K_ARRAY: {
		const char *a = *CAT(src, f->off, char *);
		size_t n = *CAT(src, f->aux, size_t);
		char *out;

		if (a == NULL || n == 0)
			return 0;
		if ((out = calloc(n, f->sub->size)) == NULL)
			return -ENOMEM;
		*AT(dst, f->off, char *) = out;
		*AT(dst, f->aux, size_t) = n;
		for (size_t i = 0; i < n; i++) {
			int rc = msg_copy(f->sub, out + i * f->sub->size, a + i * f->sub->size);

			if (rc != 0)
				return rc;
		}
		return 0;
	}
	}
	return 0;
}

static int
msg_copy(const struct msg *m, void *dst, const void *src)
{
	for (size_t i = 0; i < m->n; i++) {
		int rc = field_copy(&m->fields[i], dst, src);

		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
top_copy(const struct msg *m, void *dst, const void *src)
{
	int rc;

	memset(dst, 0, m->size);
	rc = msg_copy(m, dst, src);
	if (rc != 0)
		msg_clear(m, dst);
	return rc;
}

int
model_thread_copy(struct model_thread *dst, const struct model_thread *src)
{
	return top_copy(&thread_msg, dst, src);
}

int
model_step_copy(struct model_step *dst, const struct model_step *src)
{
	return top_copy(&step_msg, dst, src);
}

int
model_step_detail_copy(struct model_step_detail *dst, const struct model_step_detail *src)
{
	return top_copy(&detail_msg, dst, src);
}

int
model_result_copy(struct model_result *dst, const struct model_result *src)
{
	return top_copy(&result_msg, dst, src);
}

/* ---- rendering ---- */

static json_t *
jstr(const char *s)
{
	char *fixed;
	json_t *v;

	if (utf8_valid(s, strlen(s)))
		return json_string_nocheck(s);
	if ((fixed = utf8_fix(s)) == NULL)
		return NULL;
	v = json_string_nocheck(fixed);
	free(fixed);
	return v;
}

/* Sets key (taking val); -1 when out of memory (val NULL included). */
static int
put(json_t *obj, const char *key, json_t *val)
{
	char *fixed;
	int rc;

	if (val == NULL)
		return -1;
	if (utf8_valid(key, strlen(key)))
		return json_object_set_new_nocheck(obj, key, val);
	if ((fixed = utf8_fix(key)) == NULL) {
		json_decref(val);
		return -1;
	}
	rc = json_object_set_new_nocheck(obj, fixed, val);
	free(fixed);
	return rc;
}

static json_t *
i64_json(int64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return json_string(buf);
}

static json_t *msg_json(const struct msg *m, const void *base);

/* A field at its non-zero value; 0, or -1 when out of memory. The kinds
 * that only GetThreadResult and the stream messages hold (bytes, yields,
 * arrays of structs) have no renderer and are never met here. */
static int
field_json(json_t *obj, const struct field *f, const void *base)
{
	switch (f->kind) {
	case K_STR:
	case K_JSON: {
		const char *s = *CAT(base, f->off, char *);

		return s == NULL || *s == '\0' ? 0 : put(obj, f->name, jstr(s));
	}
	case K_INT: {
		int64_t v = *CAT(base, f->off, int64_t);

		return v == 0 ? 0 : put(obj, f->name, json_integer(v));
	}
	case K_I64: {
		int64_t v = *CAT(base, f->off, int64_t);

		return v == 0 ? 0 : put(obj, f->name, i64_json(v));
	}
	case K_BOOL:
		return *CAT(base, f->off, bool) ? put(obj, f->name, json_true()) : 0;
	case K_ENUM: {
		int v = *CAT(base, f->off, int);
		const char *text = f->aux == NO_AUX ? NULL : CAT(base, f->aux, char);
		char unknown[MODEL_ENUM_TEXT_MAX];

		if (v == 0)
			return 0;
		snprintf(unknown, sizeof(unknown), "%sUNKNOWN", f->en->prefixes[0]);
		return put(obj, f->name, jstr(enum_name(f->en, v, text, unknown)));
	}
	case K_META: {
		const struct model_kv *kv = *CAT(base, f->off, struct model_kv *);
		size_t n = *CAT(base, f->aux, size_t);
		json_t *m;

		if (kv == NULL || n == 0)
			return 0;
		if ((m = json_object()) == NULL)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (put(m, kv[i].key != NULL ? kv[i].key : "",
			        jstr(kv[i].value != NULL ? kv[i].value : "")) != 0) {
				json_decref(m);
				return -1;
			}
		}
		return put(obj, f->name, m);
	}
	case K_STRS: {
		char *const *v = *CAT(base, f->off, char **);
		size_t n = *CAT(base, f->aux, size_t);
		json_t *a;

		if (v == NULL || n == 0)
			return 0;
		if ((a = json_array()) == NULL)
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (json_array_append_new(a, jstr(v[i] != NULL ? v[i] : "")) != 0) {
				json_decref(a);
				return -1;
			}
		}
		return put(obj, f->name, a);
	}
	case K_OBJ:
		if (f->aux != NO_AUX && !*CAT(base, f->aux, bool))
			return 0;
		return put(obj, f->name, msg_json(f->sub, CAT(base, f->off, char)));
	case K_BYTES:
	case K_JSONS:
	case K_ARRAY:
		break;
	}
	return 0;
}

static json_t *
msg_json(const struct msg *m, const void *base)
{
	json_t *obj = json_object();

	if (obj == NULL)
		return NULL;
	for (size_t i = 0; i < m->n; i++) {
		if (field_json(obj, &m->fields[i], base) != 0) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

json_t *
model_thread_json(const struct model_thread *t)
{
	return msg_json(&thread_msg, t);
}

json_t *
model_step_json(const struct model_step *s)
{
	return msg_json(&step_msg, s);
}

json_t *
model_step_detail_json(const struct model_step_detail *d)
{
	return msg_json(&detail_msg, d);
}

json_t *
model_script_json(const struct model_script *s)
{
	return msg_json(&script_msg, s);
}

json_t *
model_version_json(const struct model_version *v)
{
	return msg_json(&version_msg, v);
}

json_t *
model_health_json(const struct model_health *h)
{
	return msg_json(&health_msg, h);
}

json_t *
model_event_json(const struct model_event *e)
{
	return msg_json(&event_msg, e);
}
