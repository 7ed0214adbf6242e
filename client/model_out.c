/*
 * The model's messages copied and rendered back in the canonical wire form
 * (see model_int.h), walking the same tables the parser walks; strings
 * that are not valid UTF-8 are mended (U+FFFD) so that jansson takes them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "model.h"
#include "model_int.h"
#include "utf8.h"

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

/* Into a zeroed dst; on failure dst holds what was copied, for model_msg_clear(). */
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
		model_msg_clear(m, dst);
	return rc;
}

int
model_thread_copy(struct model_thread *dst, const struct model_thread *src)
{
	return top_copy(&model_thread_msg, dst, src);
}

int
model_step_copy(struct model_step *dst, const struct model_step *src)
{
	return top_copy(&model_step_msg, dst, src);
}

int
model_step_detail_copy(struct model_step_detail *dst, const struct model_step_detail *src)
{
	return top_copy(&model_detail_msg, dst, src);
}

int
model_result_copy(struct model_result *dst, const struct model_result *src)
{
	return top_copy(&model_result_msg, dst, src);
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
		return put(obj, f->name, jstr(model_enum_name(f->en, v, text, unknown)));
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
	return msg_json(&model_thread_msg, t);
}

json_t *
model_step_json(const struct model_step *s)
{
	return msg_json(&model_step_msg, s);
}

json_t *
model_step_detail_json(const struct model_step_detail *d)
{
	return msg_json(&model_detail_msg, d);
}

json_t *
model_script_json(const struct model_script *s)
{
	return msg_json(&model_script_msg, s);
}

json_t *
model_version_json(const struct model_version *v)
{
	return msg_json(&model_version_msg, v);
}

json_t *
model_health_json(const struct model_health *h)
{
	return msg_json(&model_health_msg, h);
}

json_t *
model_event_json(const struct model_event *e)
{
	return msg_json(&model_event_msg, e);
}
