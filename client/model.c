/*
 * The API's messages (doc/WIRE.md, Messages) parsed from every shape the
 * wire may take (doc/WIRE.md, Tolerance) and rendered back in the
 * canonical wire form. Each message is described once, as a table of its
 * fields (wire name, kind, where it lives in the C struct), and one set of
 * table walkers parses and clears them all (here), copies and renders them
 * (model_out.c), so that each tolerance rule is written once for every
 * message; the enums' spellings are model_enum.c's (model_int.h holds
 * what the three share).
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
#include "model_int.h"

/* The walkers store enums through an int. */
_Static_assert(sizeof(enum model_thread_status) == sizeof(int), "enum size");
_Static_assert(sizeof(enum model_step_status) == sizeof(int), "enum size");
_Static_assert(sizeof(enum model_event_type) == sizeof(int), "enum size");
_Static_assert(sizeof(enum model_step_part) == sizeof(int), "enum size");

/* ---- message tables ---- */

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
#define FPART(T, name, m)                                                         \
	{                                                                         \
		name, K_ENUM, offsetof(T, m), NO_AUX, NULL, &model_step_part_enum \
	}

/* The order of doc/WIRE.md, Messages, which the renderers keep. P is ""
 * or "step." (the summary inside a StepDetail). */
#define STEP_FIELDS(T, P)                                                                    \
	FID(T, "stepPath", P step_path), FLD(T, "name", K_STR, P name),                      \
	    FLD(T, "primitive", K_STR, P primitive), FLD(T, "toolName", K_STR, P tool_name), \
	    FENUM(T, "status", P status, P status_text, &model_step_status_enum),            \
	    FLD(T, "error", K_STR, P error), FLD(T, "startedAtMs", K_I64, P started_at_ms),  \
	    FLD(T, "finishedAtMs", K_I64, P finished_at_ms),                                 \
	    FLD(T, "durationMs", K_I64, P duration_ms)

static const struct field step_fields[] = {STEP_FIELDS(struct model_step, )};
const struct msg model_step_msg = {"StepSummary", step_fields, NFIELDS(step_fields),
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
const struct msg model_detail_msg = {"StepDetail", detail_fields, NFIELDS(detail_fields),
                                     sizeof(struct model_step_detail)};

#define T struct model_thread
static const struct field thread_fields[] = {
    FID(T, "threadId", thread_id),
    FID(T, "scriptName", script_name),
    FLD(T, "version", K_INT, version),
    FENUM(T, "status", status, status_text, &model_thread_status_enum),
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
const struct msg model_thread_msg = {"Thread", thread_fields, NFIELDS(thread_fields),
                                     sizeof(struct model_thread)};

#define R struct model_result
static const struct field result_fields[] = {
    FID(R, "threadId", thread_id),
    FENUM(R, "status", status, status_text, &model_thread_status_enum),
    FAUX(R, "outputData", K_BYTES, output_data, output_len, NULL),
    FLD(R, "outputTotalBytes", K_I64, output_total_bytes),
    FLD(R, "outputTruncated", K_BOOL, output_truncated),
    FAUX(R, "steps", K_ARRAY, steps, n_steps, &model_step_msg),
    FAUX(R, "stepDetails", K_ARRAY, step_details, n_step_details, &model_detail_msg),
    FAUX(R, "yieldedValues", K_JSONS, yielded_values, n_yielded, NULL),
    FLD(R, "totalYielded", K_I64, total_yielded),
    FLD(R, "yieldsTruncated", K_BOOL, yields_truncated),
};
#undef R
const struct msg model_result_msg = {"ThreadResult", result_fields, NFIELDS(result_fields),
                                     sizeof(struct model_result)};

static const struct field thread_list_fields[] = {
    FLIST(struct model_thread_list, "threads", threads, n_threads, &model_thread_msg),
    FID(struct model_thread_list, "nextPageToken", next_page_token),
};
static const struct msg thread_list_msg = {"ThreadList", thread_list_fields,
                                           NFIELDS(thread_list_fields),
                                           sizeof(struct model_thread_list)};

static const struct field script_fields[] = {
    FID(struct model_script, "name", name),
    FLD(struct model_script, "description", K_STR, description),
    FLD(struct model_script, "activeVersion", K_INT, active_version),
    FETEXT(struct model_script, "status", status, &model_script_status_enum),
    FLD(struct model_script, "createdAtMs", K_I64, created_at_ms),
    FLD(struct model_script, "updatedAtMs", K_I64, updated_at_ms),
};
const struct msg model_script_msg = {"Script", script_fields, NFIELDS(script_fields),
                                     sizeof(struct model_script)};

static const struct field script_list_fields[] = {
    FLIST(struct model_script_list, "scripts", scripts, n_scripts, &model_script_msg),
    FID(struct model_script_list, "nextPageToken", next_page_token),
};
static const struct msg script_list_msg = {"ScriptList", script_list_fields,
                                           NFIELDS(script_list_fields),
                                           sizeof(struct model_script_list)};

static const struct field version_fields[] = {
    FLD(struct model_version, "version", K_INT, version),
    FETEXT(struct model_version, "status", status, &model_version_status_enum),
    FLD(struct model_version, "createdAtMs", K_I64, created_at_ms),
};
const struct msg model_version_msg = {"ScriptVersion", version_fields, NFIELDS(version_fields),
                                      sizeof(struct model_version)};

static const struct field version_list_fields[] = {
    FAUX(struct model_version_list, "versions", K_ARRAY, versions, n_versions, &model_version_msg),
};
static const struct msg version_list_msg = {"VersionList", version_list_fields,
                                            NFIELDS(version_list_fields),
                                            sizeof(struct model_version_list)};

static const struct field health_fields[] = {
    FLD(struct model_health, "status", K_STR, status),
    FLD(struct model_health, "version", K_STR, version),
    FLD(struct model_health, "uptimeSeconds", K_I64, uptime_seconds),
};
const struct msg model_health_msg = {"Health", health_fields, NFIELDS(health_fields),
                                     sizeof(struct model_health)};

#define E struct model_event
static const struct field event_fields[] = {
    FENUM(E, "type", type, type_text, &model_event_type_enum),
    FLD(E, "atMs", K_I64, at_ms),
    FAUX(E, "thread", K_OBJ, thread, has_thread, &model_thread_msg),
    FAUX(E, "step", K_OBJ, step, has_step, &model_step_msg),
    FLD(E, "yieldedJson", K_JSON, yielded_json),
};
#undef E
const struct msg model_event_msg = {"ThreadEvent", event_fields, NFIELDS(event_fields),
                                    sizeof(struct model_event)};

/* The members of a result-stream message, each a table over the one struct. */
#define M struct model_result_msg
static const struct field meta_fields[] = {
    FID(M, "threadId", thread_id),
    FENUM(M, "status", status, status_text, &model_thread_status_enum),
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
    FENUM(M, "status", status, status_text, &model_thread_status_enum),
    FLD(M, "outputTotalBytes", K_I64, output_total_bytes),
    {"stepMeta", K_OBJ, offsetof(M, step_meta), NO_AUX, &model_detail_msg, NULL},
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

/* ---- clearing ---- */

static void
strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Frees what the struct at base holds and zeroes it. */
void
model_msg_clear(const struct msg *m, void *base)
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
			model_msg_clear(f->sub, AT(base, f->off, char));
			break;
		case K_ARRAY: {
			char *a = *AT(base, f->off, char *);
			size_t n = *AT(base, f->aux, size_t);

			for (size_t k = 0; k < n; k++)
				model_msg_clear(f->sub, a + k * f->sub->size);
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
	model_msg_clear(&model_thread_msg, t);
}

void
model_step_clear(struct model_step *s)
{
	model_msg_clear(&model_step_msg, s);
}

void
model_step_detail_clear(struct model_step_detail *d)
{
	model_msg_clear(&model_detail_msg, d);
}

void
model_result_clear(struct model_result *r)
{
	model_msg_clear(&model_result_msg, r);
}

void
model_thread_list_clear(struct model_thread_list *l)
{
	model_msg_clear(&thread_list_msg, l);
}

void
model_script_clear(struct model_script *s)
{
	model_msg_clear(&model_script_msg, s);
}

void
model_script_list_clear(struct model_script_list *l)
{
	model_msg_clear(&script_list_msg, l);
}

void
model_version_list_clear(struct model_version_list *l)
{
	model_msg_clear(&version_list_msg, l);
}

void
model_health_clear(struct model_health *h)
{
	model_msg_clear(&model_health_msg, h);
}

void
model_event_clear(struct model_event *e)
{
	model_msg_clear(&model_event_msg, e);
}

void
model_result_msg_clear(struct model_result_msg *m)
{
	model_msg_clear(&rmsg_msg, m);
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
		rc = model_i64_from_text(json_string_value(v), json_string_length(v), out);
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
		*out = model_enum_from_text(e, t, text);
		free(t);
		return 0;
	}
	if (json_is_integer(v)) {
		*out = model_enum_from_int(e, json_integer_value(v), text);
		return 0;
	}
	if (json_is_real(v) && real_to_i64(json_real_value(v), &n) == 0) {
		*out = model_enum_from_int(e, n, text);
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
			model_msg_clear(sub, slot);
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
 * failure base holds what was parsed so far, for model_msg_clear(). */
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
		model_msg_clear(m, out);
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
	return top_parse(&model_thread_msg, v, out, err, errlen);
}

int
model_step_parse(const json_t *v, struct model_step *out, char *err, size_t errlen)
{
	return top_parse(&model_step_msg, v, out, err, errlen);
}

int
model_step_detail_parse(const json_t *v, struct model_step_detail *out, char *err, size_t errlen)
{
	return top_parse(&model_detail_msg, v, out, err, errlen);
}

int
model_result_parse(const json_t *v, struct model_result *out, char *err, size_t errlen)
{
	return top_parse(&model_result_msg, v, out, err, errlen);
}

int
model_thread_list_parse(const json_t *v, struct model_thread_list *out, char *err, size_t errlen)
{
	return top_parse_counted(&thread_list_msg, v, out, err, errlen, &out->n_unusable);
}

int
model_script_parse(const json_t *v, struct model_script *out, char *err, size_t errlen)
{
	return top_parse(&model_script_msg, v, out, err, errlen);
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
	return top_parse(&model_health_msg, v, out, err, errlen);
}

int
model_event_parse(const json_t *v, struct model_event *out, char *err, size_t errlen)
{
	return top_parse(&model_event_msg, v, out, err, errlen);
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
	    {"stepMeta", MODEL_MSG_STEP_META, &model_detail_msg,
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
		model_msg_clear(&rmsg_msg, out);
	return rc;
}
