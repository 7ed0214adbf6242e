/*
 * Rendering of a thread directory's small files. Pretty JSON comes from
 * jansson for objects this client builds (their numbers are integers it
 * parsed), and from jsontext for text the API passes through (a thread's
 * input), whose numbers must not go through a double.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "http.h"
#include "jsontext.h"
#include "layout.h"

/* A copy of s plus a newline. */
static int
line(const char *s, char **out, size_t *len)
{
	size_t n = strlen(s);

	if ((*out = malloc(n + 2)) == NULL)
		return -ENOMEM;
	memcpy(*out, s, n);
	(*out)[n] = '\n';
	(*out)[n + 1] = '\0';
	*len = n + 1;
	return 0;
}

/* Takes the reference v: pretty text and a newline. */
static int
pretty(json_t *v, char **out, size_t *len)
{
	char *text;
	int rc;

	if (v == NULL)
		return -ENOMEM;
	text = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(v);
	if (text == NULL)
		return -ENOMEM;
	rc = line(text, out, len);
	free(text);
	return rc;
}

int
layout_status(const struct model_thread *t, char **out, size_t *len)
{
	return line(model_thread_status_word(t->status), out, len);
}

int
layout_step_status(const struct model_step *s, char **out, size_t *len)
{
	return line(model_step_status_word(s->status), out, len);
}

int
layout_thread_json(const struct model_thread *t, char **out, size_t *len)
{
	return pretty(model_thread_json(t), out, len);
}

int
layout_input_json(const struct model_thread *t, char **out, size_t *len)
{
	const char *in = t->input_json != NULL ? t->input_json : "";
	int rc;

	if (in[0] == '\0')
		return line("null", out, len);
	rc = jsontext_render(JSONTEXT_PRETTY, in, strlen(in), out, len, NULL, 0);
	/* not JSON, or absurdly deep: kept as it came */
	if (rc == -EINVAL || rc == -EFBIG)
		return line(in, out, len);
	return rc;
}

static int
set_i64(json_t *o, const char *key, int64_t v)
{
	char buf[32];

	if (v == 0)
		return 0;
	snprintf(buf, sizeof(buf), "%lld", (long long)v);
	return json_object_set_new(o, key, json_string(buf));
}

static int
set_str(json_t *o, const char *key, const char *v)
{
	if (v == NULL || v[0] == '\0')
		return 0;
	return json_object_set_new(o, key, json_string(v));
}

int
layout_summary_json(const struct model_thread *t, const struct model_result *r, char **out,
                    size_t *len)
{
	json_t *o = json_object(), *steps = json_array();
	int bad = o == NULL || steps == NULL;
	int64_t duration = 0;

	if (t->started_at_ms > 0 && t->finished_at_ms >= t->started_at_ms)
		duration = t->finished_at_ms - t->started_at_ms;
	if (!bad) {
		bad |= set_str(o, "threadId", t->thread_id);
		bad |= set_str(o, "scriptName", t->script_name);
		if (t->version != 0)
			bad |= json_object_set_new(o, "version", json_integer(t->version));
		bad |= set_str(o, "status", model_thread_status_name(t->status, t->status_text));
		bad |= set_str(o, "error", t->error);
		bad |= set_i64(o, "createdAtMs", t->created_at_ms);
		bad |= set_i64(o, "startedAtMs", t->started_at_ms);
		bad |= set_i64(o, "finishedAtMs", t->finished_at_ms);
		bad |= set_i64(o, "durationMs", duration);
		if (t->total_steps != 0)
			bad |= json_object_set_new(o, "totalSteps", json_integer(t->total_steps));
		bad |= set_i64(o, "outputTotalBytes", r->output_total_bytes);
		bad |= set_i64(o, "totalYielded", r->total_yielded);
		if (r->yields_truncated)
			bad |= json_object_set_new(o, "yieldsTruncated", json_true());
		for (size_t i = 0; !bad && i < r->n_steps; i++)
			bad |= json_array_append_new(steps, model_step_json(&r->steps[i]));
		bad |= json_object_set(o, "steps", steps);
	}
	json_decref(steps);
	if (bad) {
		json_decref(o);
		return -ENOMEM;
	}
	return pretty(o, out, len);
}

/* A file rendered from one answer: no answer is larger than the body cap,
 * and what is rendered of it (compact JSON, one line a value) no larger
 * than what it was rendered from. */
#define LAYOUT_MAX HTTP_MAX_BODY

static int
sink_put(const char *s, size_t n, void *arg)
{
	return dynbuf_add(arg, s, n);
}

int
layout_yields(const struct model_result *r, char **out, size_t *len)
{
	struct dynbuf k;
	int rc;

	dynbuf_init(&k, LAYOUT_MAX);
	rc = dynbuf_add(&k, "", 0); /* an empty file is "", not NULL */

	for (size_t i = 0; rc == 0 && i < r->n_yielded; i++) {
		const char *y = r->yielded_values[i];
		struct jsontext *j = jsontext_new(JSONTEXT_COMPACT, sink_put, &k);
		size_t mark = k.len;

		if (j == NULL) {
			rc = -ENOMEM;
			break;
		}
		rc = jsontext_feed(j, y, strlen(y));
		if (rc == 0)
			rc = jsontext_finish(j);
		jsontext_free(j);
		if (rc == -EINVAL) {
			/* not JSON: keep it as it came, on one line */
			dynbuf_setlen(&k, mark);
			rc = 0;
			for (const char *p = y; rc == 0 && *p != '\0'; p++)
				rc = sink_put(*p == '\n' || *p == '\r' ? " " : p, 1, &k);
		}
		if (rc == 0)
			rc = sink_put("\n", 1, &k);
	}
	if (rc != 0) {
		dynbuf_free(&k);
		return rc;
	}
	*out = dynbuf_take(&k, len);
	return 0;
}

int
layout_step_json(const struct model_step_detail *d, char **out, size_t *len)
{
	struct model_step_detail meta = *d;

	/* a shallow copy that only hides the inline payloads */
	meta.input_json = "";
	meta.output_json = "";
	meta.input_truncated = false;
	meta.output_truncated = false;
	return pretty(model_step_detail_json(&meta), out, len);
}

int
layout_error(const char *msg, char **out, size_t *len)
{
	if (msg == NULL || msg[0] == '\0') {
		if ((*out = strdup("")) == NULL)
			return -ENOMEM;
		*len = 0;
		return 0;
	}
	return line(msg, out, len);
}
