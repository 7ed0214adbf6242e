/*
 * Wire spelling of messages for each --wire mode and knob. Messages are built
 * with canonical camelCase keys through the setters here, which spell each
 * value for the current request; the keys are spelled last, so the store
 * never needs to know which variant it serves. Every choice of the random
 * mode (and the either-or choices of the knobs) is drawn from the request's
 * own generator, seeded from --wire-seed and the request's number.
 */
#include "wire.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct {
	enum wire_base base;
	unsigned knobs;
	uint64_t seed;
	uint64_t requests; /* API requests begun, under lock */
	pthread_mutex_t lock;
} cfg = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The request this thread is answering, or NULL: canonical spelling. */
static _Thread_local struct wire_req *cur;

static const char *const thread_status_names[] = {"UNSPECIFIED", "PENDING", "RUNNING",  "PAUSED",
                                                  "COMPLETED",   "FAILED",  "CANCELLED"};
static const char *const step_status_names[] = {"UNSPECIFIED", "PENDING", "RUNNING", "PAUSED",
                                                "COMPLETED",   "FAILED",  "SKIPPED", "CANCELLED"};
static const char *const event_type_names[] = {"UNSPECIFIED",  "SNAPSHOT",      "STATUS",
                                               "STEP_STARTED", "STEP_FINISHED", "YIELD"};
static const char *const step_part_names[] = {"UNSPECIFIED", "INPUT", "OUTPUT"};
static const char *const script_status_names[] = {"UNSPECIFIED", "CREATED",  "DRAFT",
                                                  "ACTIVE",      "DISABLED", "ARCHIVED"};
static const char *const version_status_names[] = {
    "UNSPECIFIED", "DRAFT", "COMPILING", "COMPILED", "ACTIVE", "SUPERSEDED", "FAILED"};

static const struct {
	const char *prefix;
	const char *const *names;
	int n;
} enums[] = {
    [ENUM_THREAD_STATUS] = {"THREAD_STATUS_", thread_status_names, 7},
    [ENUM_STEP_STATUS] = {"STEP_STATUS_", step_status_names, 8},
    [ENUM_EVENT_TYPE] = {"THREAD_EVENT_TYPE_", event_type_names, 6},
    [ENUM_STEP_PART] = {"STEP_PART_", step_part_names, 3},
    [ENUM_SCRIPT_STATUS] = {"SCRIPT_STATUS_", script_status_names, 6},
    [ENUM_VERSION_STATUS] = {"VERSION_STATUS_", version_status_names, 7},
};

/* Keys no client knows; each is a string, a number, an object or a bool. */
static const char *const unknown_names[] = {"requestId",       "traceId",        "serverTimeMs",
                                            "debugInfo",       "etag",           "kind",
                                            "deprecated_flag", "x_emulator_note"};
#define NUNKNOWN (sizeof(unknown_names) / sizeof(unknown_names[0]))

/* ---- configuration and the per-request generator ---- */

int
wire_configure(const char *spec, char *err, size_t errlen)
{
	static const char *const bases[] = {"canonical", "snake", "wrapped",
	                                    "array",     "sse",   "random"};
	static const char *const knobs[] = {"siblings", "minimal",     "intenums", "unknownenums",
	                                    "nulls",    "unknownkeys", "mixedcase"};
	const char *p = spec;
	int base = -1;
	unsigned set = 0;

	for (;;) {
		size_t n = strcspn(p, ",");
		int found = 0;

		for (int i = 0; i < 6 && !found; i++) {
			if (strlen(bases[i]) == n && strncmp(p, bases[i], n) == 0) {
				if (base >= 0) {
					snprintf(err, errlen,
					         "--wire takes one base mode, not '%s'", spec);
					return -1;
				}
				base = i;
				found = 1;
			}
		}
		for (int i = 0; i < 7 && !found; i++) {
			if (strlen(knobs[i]) == n && strncmp(p, knobs[i], n) == 0) {
				set |= 1u << i;
				found = 1;
			}
		}
		if (!found) {
			snprintf(err, errlen,
			         "--wire is a base mode (canonical, snake, wrapped, array, sse, "
			         "random) and knobs (siblings, minimal, intenums, unknownenums, "
			         "nulls, unknownkeys, mixedcase), not '%.*s'",
			         (int)n, p);
			return -1;
		}
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	cfg.base = base < 0 ? WIRE_CANONICAL : (enum wire_base)base;
	cfg.knobs = set;
	return 0;
}

void
wire_set_seed(uint64_t seed)
{
	cfg.seed = seed;
}

static uint64_t
splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

void
wire_request_begin(struct wire_req *r)
{
	uint64_t n, state;

	pthread_mutex_lock(&cfg.lock);
	n = cfg.requests++;
	pthread_mutex_unlock(&cfg.lock);
	state = cfg.seed;
	r->rng = splitmix64(&state) ^ n * 0xD1B54A32D192ED03ULL;
	r->on = 1;
	cur = r;
}

void
wire_request_resume(struct wire_req *r)
{
	cur = r->on ? r : NULL;
}

void
wire_request_end(void)
{
	cur = NULL;
}

/* One draw for one choice; 0 with no request current. */
static uint64_t
draw(void)
{
	return cur != NULL ? splitmix64(&cur->rng) : 0;
}

static int
is_random(void)
{
	return cur != NULL && cfg.base == WIRE_RANDOM;
}

static int
knob(unsigned k)
{
	return cur != NULL && (cfg.knobs & k) != 0;
}

static enum wire_base
base(void)
{
	return cur != NULL ? cfg.base : WIRE_CANONICAL;
}

/* ---- enums ---- */

const char *
wire_thread_status_word(int status)
{
	static const char *const words[] = {"unspecified", "pending", "running",  "paused",
	                                    "completed",   "failed",  "cancelled"};

	return status >= 0 && status < 7 ? words[status] : "unknown";
}

int
wire_parse_thread_status(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return TS_UNSPECIFIED;
	v = strtol(s, &end, 10);
	if (*end == '\0')
		return v >= TS_PENDING && v <= TS_CANCELLED ? (int)v : TS_UNSPECIFIED;
	if (strncasecmp(s, "THREAD_STATUS_", 14) == 0)
		s += 14;
	if (strcasecmp(s, "CANCELED") == 0)
		return TS_CANCELLED;
	for (int i = TS_PENDING; i <= TS_CANCELLED; i++)
		if (strcasecmp(s, thread_status_names[i]) == 0)
			return i;
	return TS_UNSPECIFIED;
}

int
wire_thread_status_terminal(int status)
{
	return status == TS_COMPLETED || status == TS_FAILED || status == TS_CANCELLED;
}

enum enum_form { EF_PREFIXED, EF_UPPER, EF_LOWER, EF_PREFIXED_LOWER, EF_TITLE, EF_INTEGER };

/* How an enum field of kind is spelled, and whether CANCELLED is CANCELED. */
static enum enum_form
enum_form(enum enum_kind kind, uint64_t r, int *canceled)
{
	*canceled = 0;
	if (is_random()) {
		*canceled = (int)(r >> 8 & 1);
		return knob(WIRE_INTENUMS) ? EF_INTEGER : (enum enum_form)(r % 6);
	}
	if (knob(WIRE_INTENUMS))
		return EF_INTEGER;
	/* the fixed modes spell script and version statuses as they always did */
	if (kind == ENUM_SCRIPT_STATUS || kind == ENUM_VERSION_STATUS)
		return EF_PREFIXED;
	switch (base()) {
	case WIRE_ARRAY:
		return EF_INTEGER;
	case WIRE_WRAPPED:
		*canceled = 1;
		return EF_UPPER;
	case WIRE_SSE:
		return EF_LOWER;
	default:
		return EF_PREFIXED;
	}
}

/* name (prefixed or not) in form's letter case, into buf of 96 bytes. */
static json_t *
enum_word(const char *prefix, const char *name, enum enum_form form)
{
	char buf[96];
	int with_prefix = form == EF_PREFIXED || form == EF_PREFIXED_LOWER;
	size_t n;

	snprintf(buf, sizeof(buf), "%s%s", with_prefix ? prefix : "", name);
	n = strlen(buf);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (form == EF_LOWER || form == EF_PREFIXED_LOWER || (form == EF_TITLE && i > 0))
			buf[i] = (char)tolower(c);
	}
	return json_string(buf);
}

json_t *
wire_enum(enum enum_kind kind, int value)
{
	int canceled, cancelled;
	enum enum_form form = enum_form(kind, draw(), &canceled);
	const char *name;

	if (kind == ENUM_EVENT_TYPE && value == EV_UNKNOWN_HEARTBEAT)
		return form == EF_INTEGER ? json_integer(value)
		                          : enum_word(enums[kind].prefix, "HEARTBEAT", form);
	if (value < 0 || value >= enums[kind].n)
		value = 0;
	/* words no client knows; thread and step statuses are never unknown */
	if (knob(WIRE_UNKNOWNENUMS) && (kind == ENUM_SCRIPT_STATUS || kind == ENUM_VERSION_STATUS))
		return enum_word(enums[kind].prefix, "ARCHIVED_FOR_TEST", EF_PREFIXED);
	if (form == EF_INTEGER)
		return json_integer(value);
	name = enums[kind].names[value];
	cancelled = (kind == ENUM_THREAD_STATUS && value == TS_CANCELLED) ||
	            (kind == ENUM_STEP_STATUS && value == SS_CANCELLED);
	if (cancelled && canceled)
		name = "CANCELED";
	return enum_word(enums[kind].prefix, name, form);
}

/* ---- setters ---- */

/* A zero value (taking zero): omitted, or present as itself or as null. */
static void
set_zero(json_t *obj, const char *key, json_t *zero, uint64_t r)
{
	int form = is_random() ? (int)(r % 3) : knob(WIRE_NULLS) ? 1 + (int)(r & 1) : 0;

	if (form == 0)
		json_decref(zero);
	else if (form == 1)
		json_object_set_new(obj, key, zero);
	else {
		json_decref(zero);
		json_object_set_new(obj, key, json_null());
	}
}

void
wire_set_str(json_t *obj, const char *key, const char *val)
{
	uint64_t r = draw();

	if (val != NULL && *val != '\0')
		json_object_set_new(obj, key, json_string(val));
	else
		set_zero(obj, key, json_string(""), r);
}

void
wire_set_int(json_t *obj, const char *key, long long val)
{
	uint64_t r = draw();

	if (val != 0)
		json_object_set_new(obj, key, json_integer(val));
	else
		set_zero(obj, key, json_integer(0), r);
}

void
wire_set_i64(json_t *obj, const char *key, int64_t val)
{
	uint64_t r = draw();
	int number = is_random() ? (int)(r >> 4 & 1) : base() == WIRE_WRAPPED;
	char buf[32];
	json_t *v;

	if (number) {
		v = json_integer(val);
	} else {
		snprintf(buf, sizeof(buf), "%lld", (long long)val);
		v = json_string(buf);
	}
	if (val != 0)
		json_object_set_new(obj, key, v);
	else
		set_zero(obj, key, v, r);
}

void
wire_set_bool(json_t *obj, const char *key, int val)
{
	uint64_t r = draw();

	if (val)
		json_object_set_new(obj, key, json_true());
	else
		set_zero(obj, key, json_false(), r);
}

void
wire_set_enum(json_t *obj, const char *key, enum enum_kind kind, int value)
{
	uint64_t r = draw();

	if (value != 0)
		json_object_set_new(obj, key, wire_enum(kind, value));
	else
		set_zero(obj, key, wire_enum(kind, 0), r);
}

/* ---- keys and unknown keys ---- */

/* camel as snake_case into buf (64 bytes). */
static const char *
snake_key(const char *camel, char *buf)
{
	size_t o = 0;

	for (const char *p = camel; *p != '\0' && o < 62; p++) {
		if (isupper((unsigned char)*p)) {
			buf[o++] = '_';
			buf[o++] = (char)tolower((unsigned char)*p);
		} else {
			buf[o++] = *p;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* The nth name of two or more words in an object, as this request spells it. */
static const char *
spell_key(const char *camel, char *buf, int nth)
{
	uint64_t r = draw();
	int snake;

	if (is_random())
		snake = (int)(r & 1);
	else if (knob(WIRE_MIXEDCASE))
		snake = nth & 1;
	else
		snake = base() == WIRE_SNAKE;
	return snake ? snake_key(camel, buf) : camel;
}

/* The value of unknown key i: a string, a number, an object or a bool. */
static json_t *
unknown_value(size_t i, uint64_t r)
{
	char buf[64];

	switch (i) {
	case 0:
		snprintf(buf, sizeof(buf), "req-%016llx", (unsigned long long)r);
		return json_string(buf);
	case 1:
		snprintf(buf, sizeof(buf), "%08llx", (unsigned long long)(r & 0xffffffffu));
		return json_string(buf);
	case 2:
		return json_integer((json_int_t)(r % 1000000));
	case 3:
		return json_pack("{s:s, s:[i,i], s:{s:b}}", "node", "emu-1", "hops", (int)(r % 7),
		                 (int)(r % 11), "flags", "cached", (int)(r & 1));
	case 4:
		snprintf(buf, sizeof(buf), "W/\"%llx\"", (unsigned long long)(r % 65536));
		return json_string(buf);
	case 5:
		return json_string("scriptum#message");
	case 6:
		return json_boolean(r & 1);
	default:
		return json_pack("{s:s}", "note", "added by scriptum-emulator");
	}
}

/* Adds an unknown key to obj when the request says so (always = 1: the
 * knobs that ask for one in every object). */
static void
maybe_unknown(json_t *obj, int always)
{
	uint64_t r = draw();
	size_t i = (size_t)(r >> 8) % NUNKNOWN;

	if (!always && !(is_random() && r % 4 == 0))
		return;
	if (json_object_get(obj, unknown_names[i]) == NULL)
		json_object_set_new(obj, unknown_names[i], unknown_value(i, r >> 16));
}

/* A copy of v with its keys spelled for the request and unknown keys added;
 * takes v. Shared parts (the metadata map) are referenced, never changed. */
static json_t *
spell(json_t *v)
{
	json_t *out;

	if (json_is_array(v)) {
		size_t i;
		json_t *item;

		out = json_array();
		json_array_foreach(v, i, item)
		{
			json_array_append_new(out, spell(json_incref(item)));
		}
	} else if (json_is_object(v)) {
		const char *key;
		json_t *item;
		char buf[64];
		int nth = 0;

		out = json_object();
		json_object_foreach(v, key, item)
		{
			/* metadata is the user's map: its keys are data, not names */
			if (strcmp(key, "metadata") == 0)
				json_object_set(out, key, item);
			else if (strpbrk(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == NULL)
				json_object_set_new(out, key, spell(json_incref(item)));
			else
				json_object_set_new(out, spell_key(key, buf, nth++),
				                    spell(json_incref(item)));
		}
		maybe_unknown(out, knob(WIRE_UNKNOWNKEYS));
	} else {
		return v;
	}
	json_decref(v);
	return out;
}

/* ---- whole messages ---- */

json_t *
wire_unary(json_t *msg, const char *wrapper)
{
	uint64_t r;
	int wrap, siblings;
	json_t *w;

	msg = spell(msg);
	r = draw();
	siblings = knob(WIRE_SIBLINGS) || (is_random() && (r >> 1 & 1));
	wrap = siblings || base() == WIRE_WRAPPED || (is_random() && (r & 1));
	if (!wrap || wrapper == NULL)
		return msg;
	w = json_object();
	json_object_set_new(w, wrapper, msg);
	if (siblings) {
		/* always a string; sometimes a number and an object as well */
		json_object_set_new(w, "requestId", unknown_value(0, r));
		if (r >> 2 & 1)
			json_object_set_new(w, "serverTimeMs", unknown_value(2, r >> 8));
		if (r >> 3 & 1)
			json_object_set_new(w, "debugInfo", unknown_value(3, r >> 16));
	}
	if (knob(WIRE_UNKNOWNKEYS))
		maybe_unknown(w, 1);
	return w;
}

json_t *
wire_unary_action(json_t *thread, int create)
{
	uint64_t r = draw();
	int minimal = knob(WIRE_MINIMAL) || (is_random() && r % 3 == 0);
	json_t *id;

	if (!minimal)
		return wire_unary(thread, "thread");
	if (!create) {
		/* nothing to spell and nothing beside it: {} is the whole answer */
		json_decref(thread);
		return json_object();
	}
	id = json_pack("{s:O}", "threadId", json_object_get(thread, "threadId"));
	json_decref(thread);
	return wire_unary(id, "thread");
}

json_t *
wire_stream_item(json_t *msg, int result)
{
	json_t *item;

	msg = spell(msg);
	if (!result)
		return msg;
	item = json_pack("{s:o}", "result", msg);
	maybe_unknown(item, knob(WIRE_UNKNOWNKEYS));
	return item;
}

enum wire_framing
wire_stream_framing(void)
{
	uint64_t r = draw();

	if (is_random())
		return (enum wire_framing)(r % 4);
	switch (base()) {
	case WIRE_SNAKE:
		return FRAME_NDJSON_BARE;
	case WIRE_ARRAY:
		return FRAME_ARRAY;
	case WIRE_SSE:
		return FRAME_SSE;
	default:
		return FRAME_NDJSON_RESULT;
	}
}

int
wire_heartbeats(void)
{
	return knob(WIRE_UNKNOWNENUMS);
}

json_t *
wire_heartbeat(int64_t at_ms)
{
	json_t *o = json_object();

	wire_set_enum(o, "type", ENUM_EVENT_TYPE, EV_UNKNOWN_HEARTBEAT);
	wire_set_i64(o, "atMs", at_ms);
	return o;
}

char *
wire_dump(json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(v);
	if (text == NULL)
		abort();
	return text;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t
utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

json_t *
wire_text(const char *text, size_t n)
{
	const unsigned char *p = (const unsigned char *)text;
	char *out = malloc(n * 3 + 1);
	size_t o = 0;
	json_t *s;

	if (out == NULL)
		abort();
	for (size_t i = 0; i < n;) {
		size_t len = utf8_seq(p + i, n - i);

		if (len > 0) {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
			continue;
		}
		/* a sequence cut by the end of the text is dropped, not replaced */
		if (p[i] >= 0xc2 && p[i] <= 0xf4 && n - i < 4) {
			size_t k = i + 1;

			while (k < n && (p[k] & 0xc0) == 0x80)
				k++;
			if (k == n)
				break;
		}
		memcpy(out + o, "\xef\xbf\xbd", 3);
		o += 3;
		i++;
	}
	s = json_stringn_nocheck(out, o);
	free(out);
	return s;
}

json_t *
wire_error(int code, const char *message)
{
	return json_pack("{s:i, s:o, s:[]}", "code", code, "message",
	                 wire_text(message, strlen(message)), "details");
}

int
wire_http_status(int code)
{
	switch (code) {
	case 0:
		return 200;
	case 1:
		return 499;
	case 3:
	case 9:
	case 11:
		return 400;
	case 4:
		return 504;
	case 5:
		return 404;
	case 6:
	case 10:
		return 409;
	case 7:
		return 403;
	case 8:
		return 429;
	case 12:
		return 501;
	case 14:
		return 503;
	case 16:
		return 401;
	default:
		return 500;
	}
}
