/*
 * libFuzzer target: the message model. Any JSON goes through every parser;
 * what parses is rendered, and the rendering must parse again and render
 * to the same JSON (the canonical form is a fixed point), copies must
 * render like their originals, and nothing may crash or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* r1 = render(x) must parse, and render(parse(r1)) must equal r1. Takes r1. */
#define CHECK_FIXED_POINT(type, parse, render, clear, r1)          \
	do {                                                       \
		type again_;                                       \
		json_t *r2_;                                       \
		char err_[MODEL_ERR_MAX];                          \
		if ((r1) == NULL)                                  \
			abort();                                   \
		if (parse((r1), &again_, err_, sizeof(err_)) != 0) \
			abort();                                   \
		r2_ = render(&again_);                             \
		if (r2_ == NULL || !json_equal((r1), r2_))         \
			abort();                                   \
		json_decref(r2_);                                  \
		json_decref(r1);                                   \
		clear(&again_);                                    \
	} while (0)

static void
check_thread(const struct model_thread *t)
{
	struct model_thread copy;
	json_t *a, *b;

	a = model_thread_json(t);
	if (model_thread_copy(&copy, t) != 0)
		abort();
	b = model_thread_json(&copy);
	if (a == NULL || b == NULL || !json_equal(a, b))
		abort();
	json_decref(b);
	model_thread_clear(&copy);
	CHECK_FIXED_POINT(struct model_thread, model_thread_parse, model_thread_json,
	                  model_thread_clear, a);
}

static void
check_step(const struct model_step *s)
{
	struct model_step copy;
	json_t *a, *b;

	a = model_step_json(s);
	if (model_step_copy(&copy, s) != 0)
		abort();
	b = model_step_json(&copy);
	if (a == NULL || b == NULL || !json_equal(a, b))
		abort();
	json_decref(b);
	model_step_clear(&copy);
	CHECK_FIXED_POINT(struct model_step, model_step_parse, model_step_json, model_step_clear,
	                  a);
}

static void
check_detail(const struct model_step_detail *d)
{
	json_t *a = model_step_detail_json(d);

	CHECK_FIXED_POINT(struct model_step_detail, model_step_detail_parse, model_step_detail_json,
	                  model_step_detail_clear, a);
}

static void
check_script(const struct model_script *s)
{
	json_t *a = model_script_json(s);

	CHECK_FIXED_POINT(struct model_script, model_script_parse, model_script_json,
	                  model_script_clear, a);
}

/* A version has no parser of its own: it goes back in a one-entry list. */
static void
check_version(const struct model_version *v)
{
	struct model_version_list l;
	json_t *a = model_version_json(v), *list, *b;

	if (a == NULL)
		abort();
	list = json_pack("{s:[O]}", "versions", a);
	if (list == NULL || model_version_list_parse(list, &l, NULL, 0) != 0 || l.n_versions != 1)
		abort();
	b = model_version_json(&l.versions[0]);
	if (b == NULL || !json_equal(a, b))
		abort();
	json_decref(b);
	json_decref(list);
	json_decref(a);
	model_version_list_clear(&l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	struct model_thread t;
	struct model_step s;
	struct model_step_detail d;
	struct model_result r;
	struct model_thread_list tl;
	struct model_script sc;
	struct model_script_list sl;
	struct model_version_list vl;
	struct model_health h;
	struct model_event e;
	struct model_result_msg m;
	char err[MODEL_ERR_MAX];

	if (v == NULL)
		return 0;

	if (model_thread_parse(v, &t, err, sizeof(err)) == 0)
		check_thread(&t);
	model_thread_clear(&t);

	if (model_step_parse(v, &s, err, sizeof(err)) == 0)
		check_step(&s);
	model_step_clear(&s);

	if (model_step_detail_parse(v, &d, err, sizeof(err)) == 0)
		check_detail(&d);
	model_step_detail_clear(&d);

	if (model_result_parse(v, &r, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < r.n_steps; i++)
			check_step(&r.steps[i]);
		for (size_t i = 0; i < r.n_step_details; i++)
			check_detail(&r.step_details[i]);
		for (size_t i = 0; i < r.n_yielded; i++)
			if (r.yielded_values[i] == NULL)
				abort();
		if ((r.output_data == NULL) != (r.output_len == 0))
			abort();
	}
	model_result_clear(&r);

	if (model_thread_list_parse(v, &tl, err, sizeof(err)) == 0)
		for (size_t i = 0; i < tl.n_threads; i++)
			check_thread(&tl.threads[i]);
	model_thread_list_clear(&tl);

	if (model_script_parse(v, &sc, err, sizeof(err)) == 0)
		check_script(&sc);
	model_script_clear(&sc);

	if (model_script_list_parse(v, &sl, err, sizeof(err)) == 0)
		for (size_t i = 0; i < sl.n_scripts; i++)
			check_script(&sl.scripts[i]);
	model_script_list_clear(&sl);

	if (model_version_list_parse(v, &vl, err, sizeof(err)) == 0)
		for (size_t i = 0; i < vl.n_versions; i++)
			check_version(&vl.versions[i]);
	model_version_list_clear(&vl);

	if (model_health_parse(v, &h, err, sizeof(err)) == 0) {
		json_t *a = model_health_json(&h);

		CHECK_FIXED_POINT(struct model_health, model_health_parse, model_health_json,
		                  model_health_clear, a);
	}
	model_health_clear(&h);

	if (model_event_parse(v, &e, err, sizeof(err)) == 0) {
		json_t *a = model_event_json(&e);

		CHECK_FIXED_POINT(struct model_event, model_event_parse, model_event_json,
		                  model_event_clear, a);
	}
	model_event_clear(&e);

	if (model_result_msg_parse(v, &m, err, sizeof(err)) == 0) {
		if (m.thread_id == NULL || m.step_path == NULL ||
		    m.step_meta.step.step_path == NULL)
			abort();
		if ((m.data == NULL) != (m.len == 0))
			abort();
		if (m.kind == MODEL_MSG_STEP_META)
			check_detail(&m.step_meta);
	}
	model_result_msg_clear(&m);

	json_decref(v);
	return 0;
}
