/*
 * Wire spelling of messages for each --wire mode. Messages are built with
 * canonical camelCase keys; the mode is applied last, so the store never
 * needs to know which variant it serves.
 */
#include "wire.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static enum wire_mode mode = WIRE_CANONICAL;

static const char *const thread_status_names[] = {"UNSPECIFIED", "PENDING", "RUNNING",  "PAUSED",
                                                  "COMPLETED",   "FAILED",  "CANCELLED"};
static const char *const step_status_names[] = {"UNSPECIFIED", "PENDING", "RUNNING", "PAUSED",
                                                "COMPLETED",   "FAILED",  "SKIPPED", "CANCELLED"};
static const char *const event_type_names[] = {"UNSPECIFIED",  "SNAPSHOT",      "STATUS",
                                               "STEP_STARTED", "STEP_FINISHED", "YIELD"};
static const char *const step_part_names[] = {"UNSPECIFIED", "INPUT", "OUTPUT"};

static const struct {
	const char *prefix;
	const char *const *names;
	int n;
} enums[] = {
    [ENUM_THREAD_STATUS] = {"THREAD_STATUS_", thread_status_names, 7},
    [ENUM_STEP_STATUS] = {"STEP_STATUS_", step_status_names, 8},
    [ENUM_EVENT_TYPE] = {"THREAD_EVENT_TYPE_", event_type_names, 6},
    [ENUM_STEP_PART] = {"STEP_PART_", step_part_names, 3},
};

void
wire_set_mode(enum wire_mode m)
{
	mode = m;
}

enum wire_mode
wire_get_mode(void)
{
	return mode;
}

int
wire_parse_mode(const char *s, enum wire_mode *out)
{
	static const char *const names[] = {"canonical", "snake", "wrapped", "array", "sse"};

	for (int i = 0; i < 5; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum wire_mode)i;
			return 0;
		}
	}
	return -1;
}

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

json_t *
wire_enum(enum enum_kind kind, int value)
{
	const char *name;
	char buf[64];

	if (value < 0 || value >= enums[kind].n)
		value = 0;
	name = enums[kind].names[value];
	switch (mode) {
	case WIRE_ARRAY:
		return json_integer(value);
	case WIRE_WRAPPED:
		if ((kind == ENUM_THREAD_STATUS && value == TS_CANCELLED) ||
		    (kind == ENUM_STEP_STATUS && value == SS_CANCELLED))
			return json_string("CANCELED");
		return json_string(name);
	case WIRE_SSE:
		for (size_t i = 0; i <= strlen(name); i++)
			buf[i] = (char)tolower((unsigned char)name[i]);
		return json_string(buf);
	default:
		snprintf(buf, sizeof(buf), "%s%s", enums[kind].prefix, name);
		return json_string(buf);
	}
}

void
wire_set_str(json_t *obj, const char *key, const char *val)
{
	if (val != NULL && *val != '\0')
		json_object_set_new(obj, key, json_string(val));
}

void
wire_set_int(json_t *obj, const char *key, long long val)
{
	if (val != 0)
		json_object_set_new(obj, key, json_integer(val));
}

void
wire_set_i64(json_t *obj, const char *key, int64_t val)
{
	char buf[32];

	if (val == 0)
		return;
	if (mode == WIRE_WRAPPED) {
		json_object_set_new(obj, key, json_integer(val));
		return;
	}
	snprintf(buf, sizeof(buf), "%lld", (long long)val);
	json_object_set_new(obj, key, json_string(buf));
}

void
wire_set_bool(json_t *obj, const char *key, int val)
{
	if (val)
		json_object_set_new(obj, key, json_true());
}

void
wire_set_enum(json_t *obj, const char *key, enum enum_kind kind, int value)
{
	if (value != 0)
		json_object_set_new(obj, key, wire_enum(kind, value));
}

const char *
wire_key(const char *camel, char *buf)
{
	size_t o = 0;

	if (mode != WIRE_SNAKE)
		return camel;
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

static json_t *
wire_rename(json_t *v)
{
	if (json_is_array(v)) {
		size_t i;
		json_t *item;

		json_array_foreach(v, i, item)
		{
			json_incref(item);
			json_array_set_new(v, i, wire_rename(item));
		}
		return v;
	}
	if (json_is_object(v)) {
		json_t *out = json_object();
		const char *key;
		json_t *item;
		char buf[64];

		json_object_foreach(v, key, item)
		{
			/* metadata is the user's map: its keys are data, not names */
			if (strcmp(key, "metadata") == 0)
				json_object_set(out, key, item);
			else
				json_object_set_new(out, wire_key(key, buf),
				                    wire_rename(json_incref(item)));
		}
		json_decref(v);
		return out;
	}
	return v;
}

json_t *
wire_message(json_t *msg)
{
	return mode == WIRE_SNAKE ? wire_rename(msg) : msg;
}

json_t *
wire_unary(json_t *msg, const char *wrapper)
{
	msg = wire_message(msg);
	if (mode == WIRE_WRAPPED && wrapper != NULL) {
		json_t *w = json_object();

		json_object_set_new(w, wrapper, msg);
		return w;
	}
	return msg;
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
