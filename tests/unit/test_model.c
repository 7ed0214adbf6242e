/*
 * The message model: every message parsed from each shape the emulator's
 * --wire variants send (canonical, snake, wrapped, array, sse) to the same
 * structs, every tolerance rule of SPEC §2.6 on its own, the errors that
 * name the field at fault, and the canonical renderers, whose output parses
 * back to what rendered it.
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
#include <jansson.h>

#include "model.h"

/*
 * JSON written with single quotes, which read better inside C strings:
 * every ' becomes ", and \' (written "\\'" in C) becomes \".
 */
static json_t *
js(const char *text)
{
	char *s = strdup(text);
	json_error_t e;
	json_t *v;

	assert_non_null(s);
	for (char *p = s; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	v = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
	if (v == NULL)
		fail_msg("bad test JSON: %s: %s", e.text, s);
	free(s);
	return v;
}

/* Compact text, keys in their order: order is part of what is checked. */
static char *
dump(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	assert_non_null(s);
	return s;
}

/* Takes got (a renderer's answer) and compares it, field order included. */
static void
assert_renders(json_t *got, const char *want_js)
{
	json_t *want = js(want_js);
	char *g, *w;

	assert_non_null(got);
	g = dump(got);
	w = dump(want);
	if (strcmp(g, w) != 0)
		fail_msg("rendered %s\n    wanted %s", g, w);
	free(g);
	free(w);
	json_decref(got);
	json_decref(want);
}

static void
thread_from(const char *text, struct model_thread *t)
{
	json_t *v = js(text);
	char err[MODEL_ERR_MAX];

	if (model_thread_parse(v, t, err, sizeof(err)) != 0)
		fail_msg("parse failed: %s", err);
	json_decref(v);
}

/* Parses with the parser given and expects -EPROTO with exactly msg. */
#define assert_rejects(parse, type, clear, text, msg)                            \
	do {                                                                     \
		json_t *v_ = js(text);                                           \
		type out_;                                                       \
		char err_[MODEL_ERR_MAX];                                        \
		static const type zero_;                                         \
		memset(&out_, 0xa5, sizeof(out_));                               \
		assert_int_equal(parse(v_, &out_, err_, sizeof(err_)), -EPROTO); \
		assert_string_equal(err_, msg);                                  \
		assert_memory_equal(&out_, &zero_, sizeof(out_));                \
		clear(&out_);                                                    \
		json_decref(v_);                                                 \
	} while (0)

#define assert_thread_rejects(text, msg) \
	assert_rejects(model_thread_parse, struct model_thread, model_thread_clear, text, msg)

/* ---- the --wire variants ---- */

/* One thread as each variant of the emulator spells it. */
static const char canonical_thread[] =
    "{'threadId':'th-1','scriptName':'etl','version':3,'status':'THREAD_STATUS_CANCELLED',"
    "'error':'stopped by user','currentStepPath':'1.2','currentStepName':'load',"
    "'totalSteps':5,'inputJson':'{\\'a\\':1}','metadata':{'team':'data','Owner_Name':'ann'},"
    "'createdAtMs':'1700000000000','startedAtMs':'1700000001000',"
    "'finishedAtMs':'1700000002000'}";

static const char *const thread_variants[] = {
    canonical_thread,
    /* snake: names in snake_case; the metadata keys are data and stay */
    "{'thread_id':'th-1','script_name':'etl','version':3,'status':'THREAD_STATUS_CANCELLED',"
    "'error':'stopped by user','current_step_path':'1.2','current_step_name':'load',"
    "'total_steps':5,'input_json':'{\\'a\\':1}','metadata':{'team':'data','Owner_Name':'ann'},"
    "'created_at_ms':'1700000000000','started_at_ms':'1700000001000',"
    "'finished_at_ms':'1700000002000'}",
    /* wrapped: one key around it, enums bare, CANCELED, int64 as numbers */
    "{'thread':{'threadId':'th-1','scriptName':'etl','version':3,'status':'CANCELED',"
    "'error':'stopped by user','currentStepPath':'1.2','currentStepName':'load',"
    "'totalSteps':5,'inputJson':'{\\'a\\':1}','metadata':{'team':'data','Owner_Name':'ann'},"
    "'createdAtMs':1700000000000,'startedAtMs':1700000001000,"
    "'finishedAtMs':1700000002000}}",
    /* array: enums as integers */
    "{'threadId':'th-1','scriptName':'etl','version':3,'status':6,"
    "'error':'stopped by user','currentStepPath':'1.2','currentStepName':'load',"
    "'totalSteps':5,'inputJson':'{\\'a\\':1}','metadata':{'team':'data','Owner_Name':'ann'},"
    "'createdAtMs':'1700000000000','startedAtMs':'1700000001000',"
    "'finishedAtMs':'1700000002000'}",
    /* sse: enums lowercase and bare */
    "{'threadId':'th-1','scriptName':'etl','version':3,'status':'cancelled',"
    "'error':'stopped by user','currentStepPath':'1.2','currentStepName':'load',"
    "'totalSteps':5,'inputJson':'{\\'a\\':1}','metadata':{'team':'data','Owner_Name':'ann'},"
    "'createdAtMs':'1700000000000','startedAtMs':'1700000001000',"
    "'finishedAtMs':'1700000002000'}",
};

static void
assert_canonical_thread(const struct model_thread *t)
{
	assert_string_equal(t->thread_id, "th-1");
	assert_string_equal(t->script_name, "etl");
	assert_int_equal(t->version, 3);
	assert_int_equal(t->status, MODEL_THREAD_CANCELLED);
	assert_string_equal(t->status_text, "");
	assert_string_equal(t->error, "stopped by user");
	assert_string_equal(t->current_step_path, "1.2");
	assert_string_equal(t->current_step_name, "load");
	assert_int_equal(t->total_steps, 5);
	assert_string_equal(t->input_json, "{\"a\":1}");
	assert_int_equal(t->n_metadata, 2);
	assert_string_equal(t->metadata[0].key, "team");
	assert_string_equal(t->metadata[0].value, "data");
	assert_string_equal(t->metadata[1].key, "Owner_Name");
	assert_string_equal(t->metadata[1].value, "ann");
	assert_int_equal(t->created_at_ms, 1700000000000LL);
	assert_int_equal(t->started_at_ms, 1700000001000LL);
	assert_int_equal(t->finished_at_ms, 1700000002000LL);
}

static void
test_thread_parses_every_wire_variant(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(thread_variants) / sizeof(thread_variants[0]); i++) {
		struct model_thread t;

		thread_from(thread_variants[i], &t);
		assert_canonical_thread(&t);
		model_thread_clear(&t);
	}
}

static void
test_thread_accepts_snake_case(void **state)
{
	struct model_thread t;

	(void)state;
	thread_from("{'thread_id':'a','current_step_path':'2','created_at_ms':'7',"
	            "'total_steps':'4'}",
	            &t);
	assert_string_equal(t.thread_id, "a");
	assert_string_equal(t.current_step_path, "2");
	assert_int_equal(t.created_at_ms, 7);
	assert_int_equal(t.total_steps, 4);
	model_thread_clear(&t);

	/* camelCase first; a null camelCase value lets the snake one through */
	thread_from("{'threadId':'camel','thread_id':'snake'}", &t);
	assert_string_equal(t.thread_id, "camel");
	model_thread_clear(&t);
	thread_from("{'threadId':null,'thread_id':'snake'}", &t);
	assert_string_equal(t.thread_id, "snake");
	model_thread_clear(&t);
}

static void
test_wrapped_unary_answer(void **state)
{
	struct model_thread t;
	struct model_health h;
	struct model_thread_list l;
	json_t *v;

	(void)state;
	thread_from("{'thread':{'threadId':'a'}}", &t);
	assert_string_equal(t.thread_id, "a");
	model_thread_clear(&t);
	/* any key that is not a field of the message */
	thread_from("{'result':{'threadId':'b'}}", &t);
	assert_string_equal(t.thread_id, "b");
	model_thread_clear(&t);

	v = js("{'health':{'status':'SERVING','version':'1.0.0','uptimeSeconds':12}}");
	assert_int_equal(model_health_parse(v, &h, NULL, 0), 0);
	assert_string_equal(h.status, "SERVING");
	assert_int_equal(h.uptime_seconds, 12);
	model_health_clear(&h);
	json_decref(v);

	v = js("{'response':{'threads':[{'threadId':'x'}],'nextPageToken':'p2'}}");
	assert_int_equal(model_thread_list_parse(v, &l, NULL, 0), 0);
	assert_int_equal(l.n_threads, 1);
	assert_string_equal(l.threads[0].thread_id, "x");
	assert_string_equal(l.next_page_token, "p2");
	model_thread_list_clear(&l);
	json_decref(v);
}

static void
test_wrapper_is_taken_off_once_and_never_from_own_fields(void **state)
{
	struct model_thread t;
	struct model_event e;
	struct model_step_detail d;
	json_t *v;

	(void)state;
	/* one level only: the inner wrapper is an unknown field of the thread */
	thread_from("{'a':{'b':{'threadId':'deep'}}}", &t);
	assert_string_equal(t.thread_id, "");
	model_thread_clear(&t);
	/* metadata alone is the thread's own map, not a wrapper */
	thread_from("{'metadata':{'k':'v'}}", &t);
	assert_int_equal(t.n_metadata, 1);
	assert_string_equal(t.thread_id, "");
	model_thread_clear(&t);
	/* a wrapper whose value is not an object is just an unknown field */
	thread_from("{'thread':'th-1'}", &t);
	assert_string_equal(t.thread_id, "");
	model_thread_clear(&t);

	/* an event that carries only its thread is an event */
	v = js("{'thread':{'threadId':'t1'}}");
	assert_int_equal(model_event_parse(v, &e, NULL, 0), 0);
	assert_true(e.has_thread);
	assert_string_equal(e.thread.thread_id, "t1");
	model_event_clear(&e);
	json_decref(v);

	/* a detail with only pending_input, in snake_case */
	v = js("{'pending_input':{'prompt':'ok?'}}");
	assert_int_equal(model_step_detail_parse(v, &d, NULL, 0), 0);
	assert_true(d.has_pending);
	assert_string_equal(d.pending.prompt, "ok?");
	model_step_detail_clear(&d);
	json_decref(v);
}

/* ---- enums ---- */

static enum model_thread_status
thread_status_of(const char *status_js, char *text)
{
	char buf[256];
	struct model_thread t;
	enum model_thread_status s;

	snprintf(buf, sizeof(buf), "{'status':%s}", status_js);
	thread_from(buf, &t);
	s = t.status;
	if (text != NULL)
		snprintf(text, MODEL_ENUM_TEXT_MAX, "%s", t.status_text);
	model_thread_clear(&t);
	return s;
}

static void
test_enum_spellings(void **state)
{
	static const struct {
		const char *js;
		enum model_thread_status want;
	} cases[] = {
	    {"'THREAD_STATUS_COMPLETED'", MODEL_THREAD_COMPLETED},
	    {"'COMPLETED'", MODEL_THREAD_COMPLETED},
	    {"'completed'", MODEL_THREAD_COMPLETED},
	    {"'Thread_Status_Completed'", MODEL_THREAD_COMPLETED},
	    {"'thread_status_paused'", MODEL_THREAD_PAUSED},
	    {"4", MODEL_THREAD_COMPLETED},
	    {"'4'", MODEL_THREAD_COMPLETED},
	    {"4.0", MODEL_THREAD_COMPLETED},
	    {"1", MODEL_THREAD_PENDING},
	    {"'RUNNING'", MODEL_THREAD_RUNNING},
	    {"'failed'", MODEL_THREAD_FAILED},
	    {"0", MODEL_THREAD_UNSPECIFIED},
	    {"''", MODEL_THREAD_UNSPECIFIED},
	    {"'THREAD_STATUS_UNSPECIFIED'", MODEL_THREAD_UNSPECIFIED},
	    {"null", MODEL_THREAD_UNSPECIFIED},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (thread_status_of(cases[i].js, NULL) != cases[i].want)
			fail_msg("status %s: got %d, want %d", cases[i].js,
			         thread_status_of(cases[i].js, NULL), cases[i].want);
}

static void
test_enum_canceled_spelling(void **state)
{
	struct model_step s;
	json_t *v;

	(void)state;
	assert_int_equal(thread_status_of("'CANCELED'", NULL), MODEL_THREAD_CANCELLED);
	assert_int_equal(thread_status_of("'canceled'", NULL), MODEL_THREAD_CANCELLED);
	assert_int_equal(thread_status_of("'THREAD_STATUS_CANCELED'", NULL),
	                 MODEL_THREAD_CANCELLED);
	assert_int_equal(thread_status_of("'THREAD_STATUS_CANCELLED'", NULL),
	                 MODEL_THREAD_CANCELLED);
	v = js("{'status':'STEP_STATUS_CANCELED'}");
	assert_int_equal(model_step_parse(v, &s, NULL, 0), 0);
	assert_int_equal(s.status, MODEL_STEP_CANCELLED);
	model_step_clear(&s);
	json_decref(v);
}

static void
test_enum_integers_count_from_one_in_c_order(void **state)
{
	static const enum model_step_status want[] = {
	    MODEL_STEP_UNSPECIFIED, MODEL_STEP_PENDING, MODEL_STEP_RUNNING, MODEL_STEP_PAUSED,
	    MODEL_STEP_COMPLETED,   MODEL_STEP_FAILED,  MODEL_STEP_SKIPPED, MODEL_STEP_CANCELLED,
	};
	char buf[64];

	(void)state;
	for (int i = 0; i < 8; i++) {
		struct model_step s;
		json_t *v;

		snprintf(buf, sizeof(buf), "{'status':%d}", i);
		v = js(buf);
		assert_int_equal(model_step_parse(v, &s, NULL, 0), 0);
		assert_int_equal(s.status, want[i]);
		model_step_clear(&s);
		json_decref(v);
	}
	for (int i = 0; i < 7; i++) {
		snprintf(buf, sizeof(buf), "%d", i);
		assert_int_equal(thread_status_of(buf, NULL), i);
	}
}

static void
test_unknown_status_keeps_text(void **state)
{
	char text[MODEL_ENUM_TEXT_MAX];
	char longname[200];
	struct model_thread t;

	(void)state;
	assert_int_equal(thread_status_of("'THREAD_STATUS_ARCHIVED'", text), MODEL_THREAD_UNKNOWN);
	assert_string_equal(text, "THREAD_STATUS_ARCHIVED");
	assert_int_equal(thread_status_of("99", text), MODEL_THREAD_UNKNOWN);
	assert_string_equal(text, "99");
	assert_int_equal(thread_status_of("-1", text), MODEL_THREAD_UNKNOWN);
	assert_string_equal(text, "-1");
	assert_int_equal(thread_status_of("'7'", text), MODEL_THREAD_UNKNOWN);
	assert_string_equal(text, "7");
	/* a step status is not a thread status */
	assert_int_equal(thread_status_of("'STEP_STATUS_COMPLETED'", text), MODEL_THREAD_UNKNOWN);
	assert_string_equal(text, "STEP_STATUS_COMPLETED");

	/* too long: cut, and marked so that it cannot read as another value */
	memset(longname, '0', 150);
	longname[0] = '\'';
	memcpy(longname + 147, "4x'", 4);
	assert_int_equal(thread_status_of(longname, text), MODEL_THREAD_UNKNOWN);
	assert_int_equal(strlen(text), MODEL_ENUM_TEXT_MAX - 1);
	assert_string_equal(text + MODEL_ENUM_TEXT_MAX - 4, "...");

	/* rendered back as it came */
	thread_from("{'threadId':'a','status':'THREAD_STATUS_ARCHIVED'}", &t);
	assert_renders(model_thread_json(&t), "{'threadId':'a','status':'THREAD_STATUS_ARCHIVED'}");
	assert_string_equal(model_thread_status_name(t.status, t.status_text),
	                    "THREAD_STATUS_ARCHIVED");
	assert_string_equal(model_thread_status_word(t.status), "unknown");
	model_thread_clear(&t);
}

static void
test_unknown_text_is_cut_at_a_character(void **state)
{
	char buf[256], text[MODEL_ENUM_TEXT_MAX];
	size_t o = 0;

	(void)state;
	buf[o++] = '\'';
	for (int i = 0; i < 40; i++) {
		memcpy(buf + o, "\xc3\xa9", 2); /* é */
		o += 2;
	}
	memcpy(buf + o, "'", 2);
	assert_int_equal(thread_status_of(buf, text), MODEL_THREAD_UNKNOWN);
	/* 60 bytes of text leave room for 30 whole characters, then "..." */
	assert_int_equal(strlen(text), 63);
	assert_memory_equal(text + 60, "...", 3);
	assert_int_equal((unsigned char)text[58], 0xc3);
}

static void
test_unknown_event_type_is_kept(void **state)
{
	struct model_event e;
	json_t *v = js("{'type':'THREAD_EVENT_TYPE_HEARTBEAT','atMs':'5'}");

	(void)state;
	assert_int_equal(model_event_parse(v, &e, NULL, 0), 0);
	assert_int_equal(e.type, MODEL_EVENT_UNKNOWN);
	assert_string_equal(e.type_text, "THREAD_EVENT_TYPE_HEARTBEAT");
	assert_int_equal(e.at_ms, 5);
	assert_renders(model_event_json(&e), "{'type':'THREAD_EVENT_TYPE_HEARTBEAT','atMs':'5'}");
	model_event_clear(&e);
	json_decref(v);
}

static void
test_event_type_prefixes_and_integers(void **state)
{
	static const struct {
		const char *js;
		enum model_event_type want;
	} cases[] = {
	    {"'THREAD_EVENT_TYPE_SNAPSHOT'", MODEL_EVENT_SNAPSHOT},
	    {"'snapshot'", MODEL_EVENT_SNAPSHOT},
	    {"'STEP_EVENT_TYPE_STEP_STARTED'", MODEL_EVENT_STEP_STARTED},
	    {"'step_finished'", MODEL_EVENT_STEP_FINISHED},
	    {"2", MODEL_EVENT_STATUS},
	    {"'5'", MODEL_EVENT_YIELD},
	    {"6", MODEL_EVENT_UNKNOWN},
	};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct model_event e;
		json_t *v;

		snprintf(buf, sizeof(buf), "{'type':%s}", cases[i].js);
		v = js(buf);
		assert_int_equal(model_event_parse(v, &e, NULL, 0), 0);
		if (e.type != cases[i].want)
			fail_msg("type %s: got %d", cases[i].js, e.type);
		model_event_clear(&e);
		json_decref(v);
	}
}

/* A structure where an enum belongs is no value at all; a scalar of no
 * enum's spelling is only a value this client does not know. */
static void
test_enum_of_wrong_type_names_field(void **state)
{
	static const struct {
		const char *js, *text;
	} unknown[] = {{"{'threadId':'t','status':true}", "true"},
	               {"{'threadId':'t','status':1.5}", "1.5"}};
	struct model_thread t;

	(void)state;
	assert_thread_rejects("{'status':{}}",
	                      "Thread.status: expected an enum name or number, got an object");
	assert_thread_rejects("{'status':[1]}",
	                      "Thread.status: expected an enum name or number, got an array");
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		json_t *v = js(unknown[i].js);

		assert_int_equal(model_thread_parse(v, &t, NULL, 0), 0);
		assert_int_equal(t.status, MODEL_THREAD_UNKNOWN);
		assert_string_equal(t.status_text, unknown[i].text);
		model_thread_clear(&t);
		json_decref(v);
	}
}

/* ---- scalars ---- */

static void
test_int64_as_string_or_number(void **state)
{
	static const struct {
		const char *js;
		int64_t want;
	} cases[] = {
	    {"'1700000000000'", 1700000000000LL},
	    {"1700000000000", 1700000000000LL},
	    {"1700000000000.0", 1700000000000LL},
	    {"1e3", 1000},
	    {"'-5'", -5},
	    {"-5", -5},
	    {"'0'", 0},
	    {"'007'", 7},
	    {"''", 0}, /* an empty string is a missing value */
	    {"null", 0},
	    {"'9223372036854775807'", INT64_MAX},
	    {"'-9223372036854775808'", INT64_MIN},
	    {"9223372036854775807", INT64_MAX},
	};
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct model_thread t;

		snprintf(buf, sizeof(buf), "{'createdAtMs':%s,'version':%s}", cases[i].js,
		         cases[i].js);
		thread_from(buf, &t);
		if (t.created_at_ms != cases[i].want || t.version != cases[i].want)
			fail_msg("%s: got %lld", cases[i].js, (long long)t.created_at_ms);
		model_thread_clear(&t);
	}
}

static void
test_int64_rejects_what_is_not_an_integer(void **state)
{
	(void)state;
	assert_thread_rejects("{'createdAtMs':'12x'}",
	                      "Thread.createdAtMs: expected an integer, got a string (\"12x\")");
	assert_thread_rejects("{'createdAtMs':' 12'}",
	                      "Thread.createdAtMs: expected an integer, got a string (\" 12\")");
	assert_thread_rejects("{'createdAtMs':'-'}",
	                      "Thread.createdAtMs: expected an integer, got a string (\"-\")");
	assert_thread_rejects("{'createdAtMs':'1.5'}",
	                      "Thread.createdAtMs: expected an integer, got a string (\"1.5\")");
	assert_thread_rejects("{'createdAtMs':1.5}",
	                      "Thread.createdAtMs: expected an integer, got a number (1.5)");
	assert_thread_rejects("{'createdAtMs':'9223372036854775808'}",
	                      "Thread.createdAtMs: integer out of range, got a string "
	                      "(\"9223372036854775808\")");
	assert_thread_rejects("{'createdAtMs':'-9223372036854775809'}",
	                      "Thread.createdAtMs: integer out of range, got a string "
	                      "(\"-9223372036854775809\")");
	assert_thread_rejects("{'createdAtMs':1e30}",
	                      "Thread.createdAtMs: integer out of range, got a number (1e+30)");
	assert_thread_rejects("{'createdAtMs':{}}",
	                      "Thread.createdAtMs: expected an integer, got an object");
	assert_thread_rejects("{'createdAtMs':[1]}",
	                      "Thread.createdAtMs: expected an integer, got an array");
	assert_thread_rejects("{'createdAtMs':true}",
	                      "Thread.createdAtMs: expected an integer, got a boolean (true)");
}

static void
test_bad_field_type_names_field(void **state)
{
	(void)state;
	assert_thread_rejects("{'totalSteps':'12x'}",
	                      "Thread.totalSteps: expected an integer, got a string (\"12x\")");
	/* under the name it was sent with */
	assert_thread_rejects("{'total_steps':'12x'}",
	                      "Thread.total_steps: expected an integer, got a string (\"12x\")");
	assert_thread_rejects("{'threadId':5}",
	                      "Thread.threadId: expected a string, got a number (5)");
	assert_thread_rejects("{'error':{'code':3}}",
	                      "Thread.error: expected a string, got an object");
	assert_thread_rejects("{'thread':{'threadId':[]}}",
	                      "Thread.threadId: expected a string, got an array");
	assert_rejects(
	    model_result_parse, struct model_result, model_result_clear,
	    "{'steps':[{'stepPath':'1'},{'stepPath':'2','status':[]}]}",
	    "ThreadResult.steps[1].status: expected an enum name or number, got an array");
	assert_rejects(model_result_parse, struct model_result, model_result_clear,
	               "{'steps':[{},3]}",
	               "ThreadResult.steps[1]: expected an object, got a number (3)");
	assert_rejects(model_result_parse, struct model_result, model_result_clear, "{'steps':{}}",
	               "ThreadResult.steps: expected an array, got an object");
	assert_rejects(model_event_parse, struct model_event, model_event_clear,
	               "{'thread':{'metadata':{'k':1}}}",
	               "ThreadEvent.thread.metadata[\"k\"]: expected a string, got a number (1)");
	assert_rejects(model_event_parse, struct model_event, model_event_clear, "{'step':'1'}",
	               "ThreadEvent.step: expected an object, got a string (\"1\")");
	assert_rejects(model_step_detail_parse, struct model_step_detail, model_step_detail_clear,
	               "{'pendingInput':{'options':['a',2]}}",
	               "StepDetail.pendingInput.options[1]: expected a string, got a number (2)");
}

static void
test_error_text_is_one_bounded_line(void **state)
{
	char err[16];
	struct model_thread t;
	json_t *v;

	(void)state;
	/* a long, multi-line value is cut and its control bytes hidden */
	assert_thread_rejects("{'scriptName':'x','version':'line one\\nline two and a lot more "
	                      "text than fits in any message'}",
	                      "Thread.version: expected an integer, got a string (\"line "
	                      "one?line two and a lot more text th...\")");
	/* a short buffer gets what fits; no buffer at all is fine too */
	v = js("{'version':'x'}");
	assert_int_equal(model_thread_parse(v, &t, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "Thread.version:");
	assert_int_equal(model_thread_parse(v, &t, NULL, 0), -EPROTO);
	json_decref(v);
}

static void
test_booleans_accept_strings(void **state)
{
	struct model_step_detail d;
	json_t *v = js("{'inputTruncated':true,'outputTruncated':'true','attempt':2}");

	(void)state;
	assert_int_equal(model_step_detail_parse(v, &d, NULL, 0), 0);
	assert_true(d.input_truncated);
	assert_true(d.output_truncated);
	model_step_detail_clear(&d);
	json_decref(v);
	v = js("{'inputTruncated':false,'outputTruncated':'FALSE'}");
	assert_int_equal(model_step_detail_parse(v, &d, NULL, 0), 0);
	assert_false(d.input_truncated);
	assert_false(d.output_truncated);
	model_step_detail_clear(&d);
	json_decref(v);
	assert_rejects(model_step_detail_parse, struct model_step_detail, model_step_detail_clear,
	               "{'inputTruncated':1}",
	               "StepDetail.inputTruncated: expected a boolean, got a number (1)");
	assert_rejects(model_step_detail_parse, struct model_step_detail, model_step_detail_clear,
	               "{'input_truncated':'yes'}",
	               "StepDetail.input_truncated: expected a boolean, got a string (\"yes\")");
}

static void
test_missing_and_null_fields_are_zero(void **state)
{
	struct model_thread t;
	struct model_step_detail d;
	struct model_result r;
	json_t *v;

	(void)state;
	thread_from("{'threadId':null,'metadata':null,'version':null,'status':null,"
	            "'inputJson':null}",
	            &t);
	assert_non_null(t.thread_id);
	assert_string_equal(t.thread_id, "");
	assert_string_equal(t.script_name, "");
	assert_string_equal(t.error, "");
	assert_string_equal(t.current_step_path, "");
	assert_string_equal(t.current_step_name, "");
	assert_string_equal(t.input_json, "");
	assert_null(t.metadata);
	assert_int_equal(t.n_metadata, 0);
	assert_int_equal(t.version, 0);
	assert_int_equal(t.status, MODEL_THREAD_UNSPECIFIED);
	assert_renders(model_thread_json(&t), "{}");
	model_thread_clear(&t);

	v = js("{}");
	assert_int_equal(model_step_detail_parse(v, &d, NULL, 0), 0);
	assert_string_equal(d.step.step_path, "");
	assert_string_equal(d.step.tool_name, "");
	assert_string_equal(d.input_json, "");
	assert_string_equal(d.logs_url, "");
	assert_false(d.has_pending);
	assert_string_equal(d.pending.prompt, "");
	assert_string_equal(d.pending.type, "");
	assert_null(d.pending.options);
	model_step_detail_clear(&d);

	assert_int_equal(model_result_parse(v, &r, NULL, 0), 0);
	assert_string_equal(r.thread_id, "");
	assert_null(r.output_data);
	assert_int_equal(r.output_len, 0);
	assert_null(r.steps);
	assert_null(r.step_details);
	assert_null(r.yielded_values);
	model_result_clear(&r);
	json_decref(v);
}

static void
test_unknown_fields_are_ignored(void **state)
{
	struct model_thread t;

	(void)state;
	thread_from("{'threadId':'a','labels':{'x':[1,2,{}]},'priority':9,'status':'RUNNING',"
	            "'futureFlag':true}",
	            &t);
	assert_string_equal(t.thread_id, "a");
	assert_int_equal(t.status, MODEL_THREAD_RUNNING);
	assert_renders(model_thread_json(&t), "{'threadId':'a','status':'THREAD_STATUS_RUNNING'}");
	model_thread_clear(&t);
}

static void
test_not_an_object_is_rejected(void **state)
{
	struct model_thread t;
	struct model_result_msg m;

	(void)state;
	assert_thread_rejects("[]", "Thread: expected an object, got an array");
	assert_thread_rejects("'th-1'", "Thread: expected an object, got a string (\"th-1\")");
	assert_rejects(model_health_parse, struct model_health, model_health_clear, "null",
	               "Health: expected an object, got null");
	assert_rejects(model_result_msg_parse, struct model_result_msg, model_result_msg_clear, "3",
	               "ResultMessage: expected an object, got a number (3)");
	assert_int_equal(model_thread_parse(NULL, &t, NULL, 0), -EPROTO);
	assert_int_equal(model_result_msg_parse(NULL, &m, NULL, 0), -EPROTO);
}

static void
test_failed_parse_leaves_struct_cleared(void **state)
{
	(void)state;
	/* the failure comes after strings, metadata and arrays were taken */
	assert_thread_rejects("{'threadId':'a','scriptName':'s','inputJson':{'x':1},"
	                      "'metadata':{'k':'v'},'finishedAtMs':'soon'}",
	                      "Thread.finishedAtMs: expected an integer, got a string (\"soon\")");
	assert_rejects(model_result_parse, struct model_result, model_result_clear,
	               "{'threadId':'a','outputData':'aGk=','steps':[{'stepPath':'1'}],"
	               "'stepDetails':[{'stepPath':'1','pendingInput':{'options':['a','b']}},"
	               "{'stepPath':'2','attempt':'x'}],'yieldedValues':['1']}",
	               "ThreadResult.stepDetails[1].attempt: expected an integer, got a string "
	               "(\"x\")");
	assert_rejects(model_result_parse, struct model_result, model_result_clear,
	               "{'yieldedValues':['1',{}],'totalYielded':[]}",
	               "ThreadResult.totalYielded: expected an integer, got an array");
	assert_rejects(model_event_parse, struct model_event, model_event_clear,
	               "{'thread':{'threadId':'t','metadata':{'a':'b'}},'step':{'stepPath':'1'},"
	               "'yieldedJson':{'v':1},'atMs':'x'}",
	               "ThreadEvent.atMs: expected an integer, got a string (\"x\")");
}

/* ---- JSON text and metadata ---- */

static void
test_json_fields_keep_values_sent_in_place_of_text(void **state)
{
	struct model_thread t;
	struct model_event e;
	struct model_result r;
	json_t *v;

	(void)state;
	thread_from("{'inputJson':{'b':[1,2.5,null],'a':'x'}}", &t);
	assert_string_equal(t.input_json, "{\"b\":[1,2.5,null],\"a\":\"x\"}");
	model_thread_clear(&t);
	thread_from("{'inputJson':'{\\'kept\\': \\'as is\\'}'}", &t);
	assert_string_equal(t.input_json, "{\"kept\": \"as is\"}");
	model_thread_clear(&t);
	thread_from("{'inputJson':42}", &t);
	assert_string_equal(t.input_json, "42");
	model_thread_clear(&t);

	v = js("{'type':'THREAD_EVENT_TYPE_YIELD','yieldedJson':[1,'two']}");
	assert_int_equal(model_event_parse(v, &e, NULL, 0), 0);
	assert_int_equal(e.type, MODEL_EVENT_YIELD);
	assert_string_equal(e.yielded_json, "[1,\"two\"]");
	model_event_clear(&e);
	json_decref(v);

	v = js("{'yieldedValues':['{\\'n\\':1}',{'n':2},3,'\\'s\\'',null,true]}");
	assert_int_equal(model_result_parse(v, &r, NULL, 0), 0);
	assert_int_equal(r.n_yielded, 6);
	assert_string_equal(r.yielded_values[0], "{\"n\":1}");
	assert_string_equal(r.yielded_values[1], "{\"n\":2}");
	assert_string_equal(r.yielded_values[2], "3");
	assert_string_equal(r.yielded_values[3], "\"s\"");
	assert_string_equal(r.yielded_values[4], "null");
	assert_string_equal(r.yielded_values[5], "true");
	model_result_clear(&r);
	json_decref(v);

	assert_rejects(model_result_parse, struct model_result, model_result_clear,
	               "{'yieldedValues':'[1]'}",
	               "ThreadResult.yieldedValues: expected an array, got a string (\"[1]\")");
}

static void
test_metadata_kept_in_received_order(void **state)
{
	struct model_thread t;

	(void)state;
	thread_from("{'metadata':{'zeta':'1','alpha':'2','mid':'3','skip':null}}", &t);
	assert_int_equal(t.n_metadata, 3);
	assert_string_equal(t.metadata[0].key, "zeta");
	assert_string_equal(t.metadata[1].key, "alpha");
	assert_string_equal(t.metadata[2].key, "mid");
	assert_string_equal(t.metadata[2].value, "3");
	assert_renders(model_thread_json(&t), "{'metadata':{'zeta':'1','alpha':'2','mid':'3'}}");
	model_thread_clear(&t);

	thread_from("{'metadata':{}}", &t);
	assert_null(t.metadata);
	assert_int_equal(t.n_metadata, 0);
	model_thread_clear(&t);

	assert_thread_rejects("{'metadata':{'a':'1','n':2}}",
	                      "Thread.metadata[\"n\"]: expected a string, got a number (2)");
	assert_thread_rejects("{'metadata':{'a':{}}}",
	                      "Thread.metadata[\"a\"]: expected a string, got an object");
	assert_thread_rejects("{'metadata':['a']}",
	                      "Thread.metadata: expected an object of strings, got an array");
}

/* ---- GetThreadResult ---- */

static const char canonical_result[] =
    "{'threadId':'th-9','status':'THREAD_STATUS_PAUSED','outputData':'eyJvayI6dHJ1ZX0=',"
    "'outputTotalBytes':'11',"
    "'steps':[{'stepPath':'1','name':'fetch','primitive':'execute','toolName':'http',"
    "'status':'STEP_STATUS_COMPLETED','startedAtMs':'10','finishedAtMs':'20',"
    "'durationMs':'10'},"
    "{'stepPath':'2','name':'confirm','primitive':'ask','status':'STEP_STATUS_PAUSED'}],"
    "'stepDetails':[{'stepPath':'2','name':'confirm','primitive':'ask',"
    "'status':'STEP_STATUS_PAUSED','inputJson':'{}','outputJson':'{\\'x\\':1}',"
    "'outputTruncated':true,'inputTotalBytes':'2','outputTotalBytes':'70000',"
    "'executionId':'ex-1','logsUrl':'https://logs/1','attempt':2,"
    "'pendingInput':{'prompt':'Proceed?','options':['yes','no'],'type':'choice'}}],"
    "'yieldedValues':['{\\'n\\':1}','2'],'totalYielded':'5','yieldsTruncated':true}";

static const char *const result_variants[] = {
    canonical_result,
    "{'thread_id':'th-9','status':'THREAD_STATUS_PAUSED','output_data':'eyJvayI6dHJ1ZX0=',"
    "'output_total_bytes':'11',"
    "'steps':[{'step_path':'1','name':'fetch','primitive':'execute','tool_name':'http',"
    "'status':'STEP_STATUS_COMPLETED','started_at_ms':'10','finished_at_ms':'20',"
    "'duration_ms':'10'},"
    "{'step_path':'2','name':'confirm','primitive':'ask','status':'STEP_STATUS_PAUSED'}],"
    "'step_details':[{'step_path':'2','name':'confirm','primitive':'ask',"
    "'status':'STEP_STATUS_PAUSED','input_json':'{}','output_json':'{\\'x\\':1}',"
    "'output_truncated':true,'input_total_bytes':'2','output_total_bytes':'70000',"
    "'execution_id':'ex-1','logs_url':'https://logs/1','attempt':2,"
    "'pending_input':{'prompt':'Proceed?','options':['yes','no'],'type':'choice'}}],"
    "'yielded_values':['{\\'n\\':1}','2'],'total_yielded':'5','yields_truncated':true}",
    "{'result':{'threadId':'th-9','status':'PAUSED','outputData':'eyJvayI6dHJ1ZX0',"
    "'outputTotalBytes':11,"
    "'steps':[{'stepPath':'1','name':'fetch','primitive':'execute','toolName':'http',"
    "'status':'COMPLETED','startedAtMs':10,'finishedAtMs':20,'durationMs':10},"
    "{'stepPath':'2','name':'confirm','primitive':'ask','status':'PAUSED'}],"
    "'stepDetails':[{'stepPath':'2','name':'confirm','primitive':'ask',"
    "'status':'PAUSED','inputJson':'{}','outputJson':'{\\'x\\':1}',"
    "'outputTruncated':true,'inputTotalBytes':2,'outputTotalBytes':70000,"
    "'executionId':'ex-1','logsUrl':'https://logs/1','attempt':2,"
    "'pendingInput':{'prompt':'Proceed?','options':['yes','no'],'type':'choice'}}],"
    "'yieldedValues':['{\\'n\\':1}','2'],'totalYielded':5,'yieldsTruncated':true}}",
    "{'threadId':'th-9','status':3,'outputData':'eyJvayI6dHJ1ZX0=',"
    "'outputTotalBytes':'11',"
    "'steps':[{'stepPath':'1','name':'fetch','primitive':'execute','toolName':'http',"
    "'status':4,'startedAtMs':'10','finishedAtMs':'20','durationMs':'10'},"
    "{'stepPath':'2','name':'confirm','primitive':'ask','status':3}],"
    "'stepDetails':[{'stepPath':'2','name':'confirm','primitive':'ask',"
    "'status':3,'inputJson':'{}','outputJson':'{\\'x\\':1}',"
    "'outputTruncated':true,'inputTotalBytes':'2','outputTotalBytes':'70000',"
    "'executionId':'ex-1','logsUrl':'https://logs/1','attempt':2,"
    "'pendingInput':{'prompt':'Proceed?','options':['yes','no'],'type':'choice'}}],"
    "'yieldedValues':['{\\'n\\':1}','2'],'totalYielded':'5','yieldsTruncated':true}",
    "{'threadId':'th-9','status':'paused','outputData':'eyJvayI6dHJ1ZX0=',"
    "'outputTotalBytes':'11',"
    "'steps':[{'stepPath':'1','name':'fetch','primitive':'execute','toolName':'http',"
    "'status':'completed','startedAtMs':'10','finishedAtMs':'20','durationMs':'10'},"
    "{'stepPath':'2','name':'confirm','primitive':'ask','status':'paused'}],"
    "'stepDetails':[{'stepPath':'2','name':'confirm','primitive':'ask',"
    "'status':'paused','inputJson':'{}','outputJson':'{\\'x\\':1}',"
    "'outputTruncated':true,'inputTotalBytes':'2','outputTotalBytes':'70000',"
    "'executionId':'ex-1','logsUrl':'https://logs/1','attempt':2,"
    "'pendingInput':{'prompt':'Proceed?','options':['yes','no'],'type':'choice'}}],"
    "'yieldedValues':['{\\'n\\':1}','2'],'totalYielded':'5','yieldsTruncated':true}",
};

static void
test_result_parses_every_wire_variant(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(result_variants) / sizeof(result_variants[0]); i++) {
		struct model_result r;
		char err[MODEL_ERR_MAX];
		json_t *v = js(result_variants[i]);
		const struct model_step_detail *d;

		if (model_result_parse(v, &r, err, sizeof(err)) != 0)
			fail_msg("variant %zu: %s", i, err);
		assert_string_equal(r.thread_id, "th-9");
		assert_int_equal(r.status, MODEL_THREAD_PAUSED);
		assert_int_equal(r.output_len, 11);
		assert_memory_equal(r.output_data, "{\"ok\":true}", 11);
		assert_int_equal(r.output_total_bytes, 11);
		assert_false(r.output_truncated);
		assert_int_equal(r.n_steps, 2);
		assert_string_equal(r.steps[0].step_path, "1");
		assert_string_equal(r.steps[0].tool_name, "http");
		assert_int_equal(r.steps[0].status, MODEL_STEP_COMPLETED);
		assert_int_equal(r.steps[0].duration_ms, 10);
		assert_int_equal(r.steps[1].status, MODEL_STEP_PAUSED);
		assert_string_equal(r.steps[1].tool_name, "");
		assert_int_equal(r.n_step_details, 1);
		d = &r.step_details[0];
		assert_string_equal(d->step.step_path, "2");
		assert_int_equal(d->step.status, MODEL_STEP_PAUSED);
		assert_string_equal(d->input_json, "{}");
		assert_string_equal(d->output_json, "{\"x\":1}");
		assert_false(d->input_truncated);
		assert_true(d->output_truncated);
		assert_int_equal(d->input_total_bytes, 2);
		assert_int_equal(d->output_total_bytes, 70000);
		assert_string_equal(d->execution_id, "ex-1");
		assert_string_equal(d->logs_url, "https://logs/1");
		assert_int_equal(d->attempt, 2);
		assert_true(d->has_pending);
		assert_string_equal(d->pending.prompt, "Proceed?");
		assert_int_equal(d->pending.n_options, 2);
		assert_string_equal(d->pending.options[1], "no");
		assert_string_equal(d->pending.type, "choice");
		assert_int_equal(r.n_yielded, 2);
		assert_string_equal(r.yielded_values[0], "{\"n\":1}");
		assert_string_equal(r.yielded_values[1], "2");
		assert_int_equal(r.total_yielded, 5);
		assert_true(r.yields_truncated);
		model_result_clear(&r);
		json_decref(v);
	}
}

static void
test_result_output_data_is_base64(void **state)
{
	struct model_result r;
	json_t *v;

	(void)state;
	/* URL-safe alphabet, no padding: bytes 0xfb 0xff */
	v = js("{'outputData':'-_8','outputTruncated':'true','outputTotalBytes':'5000000'}");
	assert_int_equal(model_result_parse(v, &r, NULL, 0), 0);
	assert_int_equal(r.output_len, 2);
	assert_memory_equal(r.output_data, "\xfb\xff", 2);
	assert_true(r.output_truncated);
	assert_int_equal(r.output_total_bytes, 5000000);
	model_result_clear(&r);
	json_decref(v);

	/* empty output: no bytes, no buffer */
	v = js("{'outputData':''}");
	assert_int_equal(model_result_parse(v, &r, NULL, 0), 0);
	assert_null(r.output_data);
	assert_int_equal(r.output_len, 0);
	model_result_clear(&r);
	json_decref(v);

	assert_rejects(model_result_parse, struct model_result, model_result_clear,
	               "{'outputData':'not base64!'}", "ThreadResult.outputData: invalid base64");
	assert_rejects(model_result_parse, struct model_result, model_result_clear,
	               "{'outputData':[1]}",
	               "ThreadResult.outputData: expected a base64 string, got an array");
}

/* ---- lists, scripts, health ---- */

static void
test_thread_list_parse(void **state)
{
	struct model_thread_list l;
	json_t *v = js("{'threads':[{'threadId':'b','status':'RUNNING'},{'thread_id':'a',"
	               "'status':'THREAD_STATUS_COMPLETED'}],'next_page_token':'tok'}");

	(void)state;
	assert_int_equal(model_thread_list_parse(v, &l, NULL, 0), 0);
	assert_int_equal(l.n_threads, 2);
	assert_string_equal(l.threads[0].thread_id, "b");
	assert_int_equal(l.threads[0].status, MODEL_THREAD_RUNNING);
	assert_string_equal(l.threads[1].thread_id, "a");
	assert_string_equal(l.threads[1].script_name, "");
	assert_string_equal(l.next_page_token, "tok");
	model_thread_list_clear(&l);
	json_decref(v);

	/* the last page: no token, and an empty page */
	v = js("{}");
	assert_int_equal(model_thread_list_parse(v, &l, NULL, 0), 0);
	assert_int_equal(l.n_threads, 0);
	assert_null(l.threads);
	assert_string_equal(l.next_page_token, "");
	model_thread_list_clear(&l);
	json_decref(v);
}

static void
test_script_and_script_list_parse(void **state)
{
	struct model_script s;
	struct model_script_list l;
	json_t *v;

	(void)state;
	v = js("{'script':{'name':'etl','description':'Loads','activeVersion':'3',"
	       "'status':'ACTIVE','createdAtMs':'1','updatedAtMs':2}}");
	assert_int_equal(model_script_parse(v, &s, NULL, 0), 0);
	assert_string_equal(s.name, "etl");
	assert_string_equal(s.description, "Loads");
	assert_int_equal(s.active_version, 3);
	assert_string_equal(s.status, "SCRIPT_STATUS_ACTIVE");
	assert_int_equal(s.updated_at_ms, 2);
	assert_renders(model_script_json(&s),
	               "{'name':'etl','description':'Loads','activeVersion':3,"
	               "'status':'SCRIPT_STATUS_ACTIVE','createdAtMs':'1','updatedAtMs':'2'}");
	model_script_clear(&s);
	json_decref(v);

	v = js("{'scripts':[{'name':'a'},{'name':'b','active_version':1}],'nextPageToken':'n'}");
	assert_int_equal(model_script_list_parse(v, &l, NULL, 0), 0);
	assert_int_equal(l.n_scripts, 2);
	assert_string_equal(l.scripts[1].name, "b");
	assert_int_equal(l.scripts[1].active_version, 1);
	assert_string_equal(l.scripts[0].description, "");
	assert_string_equal(l.next_page_token, "n");
	model_script_list_clear(&l);
	json_decref(v);

	/* a status of any spelling is kept: the full name when known, else as it came */
	v = js("{'scripts':[{'name':'a','status':1},{'name':'b','status':'script_status_draft'},"
	       "{'name':'c','status':99},{'name':'d','status':'PAUSED_BY_OPS'}]}");
	assert_int_equal(model_script_list_parse(v, &l, NULL, 0), 0);
	assert_string_equal(l.scripts[0].status, "SCRIPT_STATUS_CREATED");
	assert_string_equal(l.scripts[1].status, "SCRIPT_STATUS_DRAFT");
	assert_string_equal(l.scripts[2].status, "99");
	assert_string_equal(l.scripts[3].status, "PAUSED_BY_OPS");
	model_script_list_clear(&l);
	json_decref(v);
	assert_rejects(model_script_parse, struct model_script, model_script_clear, "{'status':{}}",
	               "Script.status: expected an enum name or number, got an object");
}

static void
test_version_list_parse(void **state)
{
	struct model_version_list l;
	json_t *v = js("{'versions':[{'version':2,'status':'ACTIVE','createdAtMs':'9'},"
	               "{'version':'1','created_at_ms':8}]}");

	(void)state;
	assert_int_equal(model_version_list_parse(v, &l, NULL, 0), 0);
	assert_int_equal(l.n_versions, 2);
	assert_int_equal(l.versions[0].version, 2);
	assert_string_equal(l.versions[0].status, "VERSION_STATUS_ACTIVE");
	assert_int_equal(l.versions[1].version, 1);
	assert_string_equal(l.versions[1].status, "");
	assert_int_equal(l.versions[1].created_at_ms, 8);
	assert_renders(model_version_json(&l.versions[0]),
	               "{'version':2,'status':'VERSION_STATUS_ACTIVE','createdAtMs':'9'}");
	model_version_list_clear(&l);
	json_decref(v);
	/* {"versions": [...]} is the message itself, never a wrapper */
	assert_rejects(model_version_list_parse, struct model_version_list,
	               model_version_list_clear, "{'versions':{'version':1}}",
	               "VersionList.versions: expected an array, got an object");
}

static void
test_health_parse(void **state)
{
	struct model_health h;
	json_t *v = js("{'status':'SERVING','version':'0.3.1','uptime_seconds':'3600'}");

	(void)state;
	assert_int_equal(model_health_parse(v, &h, NULL, 0), 0);
	assert_string_equal(h.status, "SERVING");
	assert_string_equal(h.version, "0.3.1");
	assert_int_equal(h.uptime_seconds, 3600);
	assert_renders(model_health_json(&h),
	               "{'status':'SERVING','version':'0.3.1','uptimeSeconds':'3600'}");
	model_health_clear(&h);
	json_decref(v);
}

/* ---- events ---- */

static const char *const event_variants[] = {
    "{'type':'THREAD_EVENT_TYPE_STEP_FINISHED','atMs':'1700000000500',"
    "'thread':{'threadId':'th-1','status':'THREAD_STATUS_RUNNING','currentStepPath':'1'},"
    "'step':{'stepPath':'1','status':'STEP_STATUS_SKIPPED','durationMs':'3'}}",
    "{'type':'THREAD_EVENT_TYPE_STEP_FINISHED','at_ms':'1700000000500',"
    "'thread':{'thread_id':'th-1','status':'THREAD_STATUS_RUNNING','current_step_path':'1'},"
    "'step':{'step_path':'1','status':'STEP_STATUS_SKIPPED','duration_ms':'3'}}",
    "{'type':'STEP_FINISHED','atMs':1700000000500,"
    "'thread':{'threadId':'th-1','status':'RUNNING','currentStepPath':'1'},"
    "'step':{'stepPath':'1','status':'SKIPPED','durationMs':3}}",
    "{'type':4,'atMs':'1700000000500',"
    "'thread':{'threadId':'th-1','status':2,'currentStepPath':'1'},"
    "'step':{'stepPath':'1','status':6,'durationMs':'3'}}",
    "{'type':'step_finished','atMs':'1700000000500',"
    "'thread':{'threadId':'th-1','status':'running','currentStepPath':'1'},"
    "'step':{'stepPath':'1','status':'skipped','durationMs':'3'}}",
};

static void
test_event_parses_every_wire_variant(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(event_variants) / sizeof(event_variants[0]); i++) {
		struct model_event e;
		json_t *v = js(event_variants[i]);

		assert_int_equal(model_event_parse(v, &e, NULL, 0), 0);
		assert_int_equal(e.type, MODEL_EVENT_STEP_FINISHED);
		assert_int_equal(e.at_ms, 1700000000500LL);
		assert_true(e.has_thread);
		assert_string_equal(e.thread.thread_id, "th-1");
		assert_int_equal(e.thread.status, MODEL_THREAD_RUNNING);
		assert_true(e.has_step);
		assert_int_equal(e.step.status, MODEL_STEP_SKIPPED);
		assert_int_equal(e.step.duration_ms, 3);
		assert_string_equal(e.yielded_json, "");
		assert_renders(model_event_json(&e), event_variants[0]);
		model_event_clear(&e);
		json_decref(v);
	}
}

static void
test_step_event_has_no_thread(void **state)
{
	struct model_event e;
	json_t *v = js("{'type':'STEP_EVENT_TYPE_STEP_STARTED','step':{'stepPath':'1.2'}}");

	(void)state;
	assert_int_equal(model_event_parse(v, &e, NULL, 0), 0);
	assert_int_equal(e.type, MODEL_EVENT_STEP_STARTED);
	assert_false(e.has_thread);
	/* absent, yet its strings are there to read */
	assert_string_equal(e.thread.thread_id, "");
	assert_true(e.has_step);
	assert_string_equal(e.step.step_path, "1.2");
	assert_renders(model_event_json(&e),
	               "{'type':'THREAD_EVENT_TYPE_STEP_STARTED','step':{'stepPath':'1.2'}}");
	model_event_clear(&e);
	json_decref(v);
}

/* ---- result-stream messages ---- */

static void
msg_from(const char *text, struct model_result_msg *m)
{
	json_t *v = js(text);
	char err[MODEL_ERR_MAX];

	if (model_result_msg_parse(v, m, err, sizeof(err)) != 0)
		fail_msg("%s: %s", text, err);
	json_decref(v);
}

static void
test_result_msg_meta_and_chunks(void **state)
{
	static const char *const metas[] = {
	    "{'meta':{'threadId':'t','status':'THREAD_STATUS_COMPLETED','outputTotalBytes':'4'}}",
	    "{'result':{'meta':{'threadId':'t','status':'COMPLETED','outputTotalBytes':4}}}",
	    "{'meta':{'thread_id':'t','status':4,'output_total_bytes':'4'}}",
	};
	struct model_result_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++) {
		msg_from(metas[i], &m);
		assert_int_equal(m.kind, MODEL_MSG_META);
		assert_string_equal(m.thread_id, "t");
		assert_int_equal(m.status, MODEL_THREAD_COMPLETED);
		assert_int_equal(m.output_total_bytes, 4);
		assert_string_equal(m.step_path, "");
		assert_string_equal(m.step_meta.step.step_path, "");
		assert_null(m.data);
		model_result_msg_clear(&m);
	}

	msg_from("{'chunk':{'chunkIndex':'1','data':'e30=','isFinal':true}}", &m);
	assert_int_equal(m.kind, MODEL_MSG_CHUNK);
	assert_int_equal(m.chunk_index, 1);
	assert_int_equal(m.len, 2);
	assert_memory_equal(m.data, "{}", 2);
	assert_true(m.is_final);
	assert_string_equal(m.thread_id, "");
	model_result_msg_clear(&m);

	/* the first chunk has index 0, omitted; an empty output is one final chunk */
	msg_from("{'chunk':{'isFinal':true}}", &m);
	assert_int_equal(m.kind, MODEL_MSG_CHUNK);
	assert_int_equal(m.chunk_index, 0);
	assert_null(m.data);
	assert_int_equal(m.len, 0);
	assert_true(m.is_final);
	model_result_msg_clear(&m);

	/* URL-safe data, snake_case */
	msg_from("{'chunk':{'chunk_index':2,'data':'-_8','is_final':'false'}}", &m);
	assert_int_equal(m.chunk_index, 2);
	assert_int_equal(m.len, 2);
	assert_memory_equal(m.data, "\xfb\xff", 2);
	assert_false(m.is_final);
	model_result_msg_clear(&m);
}

static void
test_result_msg_step_meta_and_step_chunk(void **state)
{
	static const char *const metas[] = {
	    "{'stepMeta':{'stepPath':'1.10','status':'STEP_STATUS_COMPLETED',"
	    "'outputTotalBytes':'9','attempt':1}}",
	    "{'step_meta':{'step_path':'1.10','status':'completed','output_total_bytes':9,"
	    "'attempt':'1'}}",
	};
	static const char *const chunks[] = {
	    "{'stepChunk':{'stepPath':'1.10','part':'STEP_PART_OUTPUT','chunkIndex':'3',"
	    "'data':'aGk=','isFinal':true}}",
	    "{'step_chunk':{'step_path':'1.10','part':'output','chunk_index':3,'data':'aGk',"
	    "'is_final':true}}",
	    "{'result':{'stepChunk':{'stepPath':'1.10','part':2,'chunkIndex':'3','data':'aGk=',"
	    "'isFinal':true}}}",
	};
	struct model_result_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(metas) / sizeof(metas[0]); i++) {
		msg_from(metas[i], &m);
		assert_int_equal(m.kind, MODEL_MSG_STEP_META);
		assert_string_equal(m.step_meta.step.step_path, "1.10");
		assert_int_equal(m.step_meta.step.status, MODEL_STEP_COMPLETED);
		assert_int_equal(m.step_meta.output_total_bytes, 9);
		assert_int_equal(m.step_meta.attempt, 1);
		assert_string_equal(m.step_meta.input_json, "");
		assert_string_equal(m.step_path, "");
		model_result_msg_clear(&m);
	}
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		msg_from(chunks[i], &m);
		assert_int_equal(m.kind, MODEL_MSG_STEP_CHUNK);
		assert_string_equal(m.step_path, "1.10");
		assert_int_equal(m.part, MODEL_PART_OUTPUT);
		assert_int_equal(m.chunk_index, 3);
		assert_int_equal(m.len, 2);
		assert_memory_equal(m.data, "hi", 2);
		assert_true(m.is_final);
		model_result_msg_clear(&m);
	}
	msg_from("{'stepChunk':{'part':'STEP_PART_INPUT'}}", &m);
	assert_int_equal(m.part, MODEL_PART_INPUT);
	model_result_msg_clear(&m);
	msg_from("{'stepChunk':{'part':'STEP_PART_ERRORS'}}", &m);
	assert_int_equal(m.part, MODEL_PART_UNKNOWN);
	assert_string_equal(model_step_part_name(m.part), "STEP_PART_UNKNOWN");
	model_result_msg_clear(&m);
}

static void
test_result_msg_unknown_member_is_not_an_error(void **state)
{
	struct model_result_msg m;

	(void)state;
	msg_from("{'progress':{'percent':50}}", &m);
	assert_int_equal(m.kind, MODEL_MSG_UNKNOWN);
	assert_string_equal(m.thread_id, "");
	model_result_msg_clear(&m);
	/* a one-key object other than "result" is such a member, not a wrapper */
	msg_from("{'envelope':{'meta':{'threadId':'t'}}}", &m);
	assert_int_equal(m.kind, MODEL_MSG_UNKNOWN);
	model_result_msg_clear(&m);
	msg_from("{}", &m);
	assert_int_equal(m.kind, MODEL_MSG_UNKNOWN);
	model_result_msg_clear(&m);
	msg_from("{'chunk':null}", &m);
	assert_int_equal(m.kind, MODEL_MSG_UNKNOWN);
	model_result_msg_clear(&m);
}

static void
test_result_msg_rejects_bad_members(void **state)
{
	(void)state;
	assert_rejects(model_result_msg_parse, struct model_result_msg, model_result_msg_clear,
	               "{'chunk':{'chunkIndex':'1','data':'***'}}",
	               "ResultMessage.chunk.data: invalid base64");
	assert_rejects(model_result_msg_parse, struct model_result_msg, model_result_msg_clear,
	               "{'result':{'chunk':'e30='}}",
	               "ResultMessage.chunk: expected an object, got a string (\"e30=\")");
	assert_rejects(model_result_msg_parse, struct model_result_msg, model_result_msg_clear,
	               "{'step_meta':{'stepPath':'1','attempt':'two'}}",
	               "ResultMessage.step_meta.attempt: expected an integer, got a string "
	               "(\"two\")");
	assert_rejects(model_result_msg_parse, struct model_result_msg, model_result_msg_clear,
	               "{'stepChunk':{'stepPath':'1','data':'aGk=','chunkIndex':'x'}}",
	               "ResultMessage.stepChunk.chunkIndex: expected an integer, got a string "
	               "(\"x\")");
}

/* ---- rendering ---- */

static void
test_render_thread_is_canonical(void **state)
{
	struct model_thread t;

	(void)state;
	/* snake, unordered, int64 as numbers, bare lowercase enum */
	thread_from("{'finished_at_ms':3,'metadata':{'b':'1','a':'2'},'total_steps':'2',"
	            "'status':'completed','thread_id':'x','version':'4','input_json':{'k':[1]}}",
	            &t);
	assert_renders(model_thread_json(&t),
	               "{'threadId':'x','version':4,'status':'THREAD_STATUS_COMPLETED',"
	               "'totalSteps':2,'inputJson':'{\\'k\\':[1]}','metadata':{'b':'1','a':'2'},"
	               "'finishedAtMs':'3'}");
	model_thread_clear(&t);
}

static void
test_render_step_detail_in_spec_order(void **state)
{
	struct model_step_detail d;
	json_t *v = js("{'pending_input':{'type':'text','prompt':'Name?'},'attempt':'2',"
	               "'logs_url':'L','execution_id':'E','output_total_bytes':'7',"
	               "'input_total_bytes':6,'output_truncated':true,'input_truncated':true,"
	               "'output_json':'1','input_json':'2','duration_ms':9,'finished_at_ms':8,"
	               "'started_at_ms':7,'error':'boom','status':'FAILED','tool_name':'T',"
	               "'primitive':'execute','name':'N','step_path':'3'}");

	(void)state;
	assert_int_equal(model_step_detail_parse(v, &d, NULL, 0), 0);
	assert_renders(model_step_detail_json(&d),
	               "{'stepPath':'3','name':'N','primitive':'execute','toolName':'T',"
	               "'status':'STEP_STATUS_FAILED','error':'boom','startedAtMs':'7',"
	               "'finishedAtMs':'8','durationMs':'9','inputJson':'2','outputJson':'1',"
	               "'inputTruncated':true,'outputTruncated':true,'inputTotalBytes':'6',"
	               "'outputTotalBytes':'7','executionId':'E','logsUrl':'L','attempt':2,"
	               "'pendingInput':{'prompt':'Name?','type':'text'}}");
	assert_renders(model_step_json(&d.step),
	               "{'stepPath':'3','name':'N','primitive':'execute','toolName':'T',"
	               "'status':'STEP_STATUS_FAILED','error':'boom','startedAtMs':'7',"
	               "'finishedAtMs':'8','durationMs':'9'}");
	model_step_detail_clear(&d);
	json_decref(v);
}

static void
test_render_omits_zero_fields(void **state)
{
	struct model_thread t;
	struct model_step_detail d;
	struct model_event e;
	struct model_script s;
	struct model_version ver;
	struct model_health h;

	(void)state;
	memset(&t, 0, sizeof(t));
	memset(&d, 0, sizeof(d));
	memset(&e, 0, sizeof(e));
	memset(&s, 0, sizeof(s));
	memset(&ver, 0, sizeof(ver));
	memset(&h, 0, sizeof(h));
	assert_renders(model_thread_json(&t), "{}");
	assert_renders(model_step_detail_json(&d), "{}");
	assert_renders(model_event_json(&e), "{}");
	assert_renders(model_script_json(&s), "{}");
	assert_renders(model_version_json(&ver), "{}");
	assert_renders(model_health_json(&h), "{}");
	/* a present but empty pendingInput is still there */
	d.has_pending = true;
	assert_renders(model_step_detail_json(&d), "{'pendingInput':{}}");
	/* negative values are values */
	t.created_at_ms = -1;
	t.version = -2;
	assert_renders(model_thread_json(&t), "{'version':-2,'createdAtMs':'-1'}");
}

static void
test_render_survives_caller_built_structs(void **state)
{
	struct model_thread t;
	struct model_kv kv = {"k\xff", "v\xc3"};

	(void)state;
	memset(&t, 0, sizeof(t));
	t.thread_id = "bad\xc3\x28utf8";
	t.status = MODEL_THREAD_UNKNOWN; /* and no text */
	t.metadata = &kv;
	t.n_metadata = 1;
	assert_renders(model_thread_json(&t),
	               "{'threadId':'bad\xef\xbf\xbd(utf8','status':'THREAD_STATUS_UNKNOWN',"
	               "'metadata':{'k\xef\xbf\xbd':'v\xef\xbf\xbd'}}");
	t.status = (enum model_thread_status)42;
	t.metadata = NULL;
	t.n_metadata = 0;
	t.thread_id = NULL;
	assert_renders(model_thread_json(&t), "{'status':'THREAD_STATUS_UNKNOWN'}");
}

/* render(parse(x)) is the canonical form; parsing that renders the same. */
static void
assert_roundtrip(const char *wire, const char *canonical)
{
	struct model_thread t, t2;
	json_t *r1, *r2;
	char err[MODEL_ERR_MAX];

	thread_from(wire, &t);
	r1 = model_thread_json(&t);
	assert_non_null(r1);
	assert_int_equal(model_thread_parse(r1, &t2, err, sizeof(err)), 0);
	r2 = model_thread_json(&t2);
	assert_true(json_equal(r1, r2));
	assert_renders(r2, canonical);
	assert_renders(r1, canonical);
	model_thread_clear(&t);
	model_thread_clear(&t2);
}

static void
test_render_roundtrip_is_canonical(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(thread_variants) / sizeof(thread_variants[0]); i++)
		assert_roundtrip(thread_variants[i], canonical_thread);
	assert_roundtrip("{'status':'THREAD_STATUS_ARCHIVED','version':'0'}",
	                 "{'status':'THREAD_STATUS_ARCHIVED'}");
	assert_roundtrip("{'status':12}", "{'status':'12'}");

	/* the result's parts render as the same canonical parts */
	for (size_t i = 0; i < sizeof(result_variants) / sizeof(result_variants[0]); i++) {
		struct model_result r;
		json_t *v = js(result_variants[i]), *want = js(canonical_result), *got;

		assert_int_equal(model_result_parse(v, &r, NULL, 0), 0);
		for (size_t k = 0; k < r.n_steps; k++) {
			got = model_step_json(&r.steps[k]);
			assert_true(
			    json_equal(got, json_array_get(json_object_get(want, "steps"), k)));
			json_decref(got);
		}
		got = model_step_detail_json(&r.step_details[0]);
		assert_true(
		    json_equal(got, json_array_get(json_object_get(want, "stepDetails"), 0)));
		json_decref(got);
		model_result_clear(&r);
		json_decref(v);
		json_decref(want);
	}
}

/* ---- copies ---- */

static void
test_copy_is_deep(void **state)
{
	struct model_thread t, c;
	struct model_step s, sc;
	json_t *a, *b, *v;

	(void)state;
	thread_from(canonical_thread, &t);
	assert_int_equal(model_thread_copy(&c, &t), 0);
	a = model_thread_json(&t);
	model_thread_clear(&t); /* the copy must not share anything */
	b = model_thread_json(&c);
	assert_true(json_equal(a, b));
	assert_canonical_thread(&c);
	json_decref(a);
	json_decref(b);
	model_thread_clear(&c);

	thread_from("{'status':'THREAD_STATUS_ARCHIVED'}", &t);
	assert_int_equal(model_thread_copy(&c, &t), 0);
	assert_int_equal(c.status, MODEL_THREAD_UNKNOWN);
	assert_string_equal(c.status_text, "THREAD_STATUS_ARCHIVED");
	model_thread_clear(&t);
	model_thread_clear(&c);

	v = js("{'stepPath':'1.2','status':'STEP_STATUS_ODD','error':'e'}");
	assert_int_equal(model_step_parse(v, &s, NULL, 0), 0);
	assert_int_equal(model_step_copy(&sc, &s), 0);
	model_step_clear(&s);
	assert_string_equal(sc.step_path, "1.2");
	assert_string_equal(sc.status_text, "STEP_STATUS_ODD");
	assert_string_equal(sc.error, "e");
	model_step_clear(&sc);
	json_decref(v);
}

static void
test_result_and_detail_copies_are_deep(void **state)
{
	struct model_result r, rc;
	struct model_step_detail dc;
	json_t *v;

	(void)state;
	v = js("{'threadId':'t','status':'THREAD_STATUS_COMPLETED','outputData':'aGk=',"
	       "'outputTotalBytes':'2','steps':[{'stepPath':'1','status':'STEP_STATUS_COMPLETED'}],"
	       "'stepDetails':[{'stepPath':'1','inputJson':'{}','pendingInput':"
	       "{'prompt':'p','options':['a','b'],'type':'string'}}],"
	       "'yieldedValues':['{\\\"i\\\":1}'],'totalYielded':'1'}");
	assert_int_equal(model_result_parse(v, &r, NULL, 0), 0);
	json_decref(v);
	assert_int_equal(model_result_copy(&rc, &r), 0);
	assert_int_equal(model_step_detail_copy(&dc, &r.step_details[0]), 0);
	model_result_clear(&r); /* the copies must not share anything */
	assert_string_equal(rc.thread_id, "t");
	assert_int_equal(rc.output_len, 2);
	assert_memory_equal(rc.output_data, "hi", 2);
	assert_int_equal(rc.n_steps, 1);
	assert_string_equal(rc.steps[0].step_path, "1");
	assert_int_equal(rc.n_yielded, 1);
	assert_string_equal(rc.yielded_values[0], "{\"i\":1}");
	assert_int_equal(rc.total_yielded, 1);
	assert_true(dc.has_pending);
	assert_int_equal(dc.pending.n_options, 2);
	assert_string_equal(dc.pending.options[1], "b");
	assert_string_equal(dc.input_json, "{}");
	model_result_clear(&rc);
	model_step_detail_clear(&dc);
}

/* ---- names, words, user input, paths ---- */

static void
test_status_names_and_words(void **state)
{
	(void)state;
	assert_string_equal(model_thread_status_name(MODEL_THREAD_COMPLETED, NULL),
	                    "THREAD_STATUS_COMPLETED");
	assert_string_equal(model_thread_status_name(MODEL_THREAD_UNSPECIFIED, NULL),
	                    "THREAD_STATUS_UNSPECIFIED");
	assert_string_equal(model_thread_status_name(MODEL_THREAD_UNKNOWN, "X"), "X");
	assert_string_equal(model_thread_status_word(MODEL_THREAD_CANCELLED), "cancelled");
	assert_string_equal(model_thread_status_word(MODEL_THREAD_UNSPECIFIED), "unspecified");
	assert_string_equal(model_thread_status_word(MODEL_THREAD_UNKNOWN), "unknown");
	assert_string_equal(model_step_status_name(MODEL_STEP_SKIPPED, NULL),
	                    "STEP_STATUS_SKIPPED");
	assert_string_equal(model_step_status_name(MODEL_STEP_UNKNOWN, "STEP_STATUS_X"),
	                    "STEP_STATUS_X");
	assert_string_equal(model_step_status_word(MODEL_STEP_SKIPPED), "skipped");
	assert_string_equal(model_step_status_word(MODEL_STEP_UNKNOWN), "unknown");
	assert_string_equal(model_event_type_name(MODEL_EVENT_SNAPSHOT, NULL),
	                    "THREAD_EVENT_TYPE_SNAPSHOT");
	assert_string_equal(model_event_type_name(MODEL_EVENT_UNKNOWN, ""),
	                    "THREAD_EVENT_TYPE_UNKNOWN");
	assert_string_equal(model_step_part_name(MODEL_PART_INPUT), "STEP_PART_INPUT");
	assert_string_equal(model_step_part_name(MODEL_PART_OUTPUT), "STEP_PART_OUTPUT");

	assert_true(model_thread_terminal(MODEL_THREAD_COMPLETED));
	assert_true(model_thread_terminal(MODEL_THREAD_FAILED));
	assert_true(model_thread_terminal(MODEL_THREAD_CANCELLED));
	assert_false(model_thread_terminal(MODEL_THREAD_PAUSED));
	assert_false(model_thread_terminal(MODEL_THREAD_RUNNING));
	assert_false(model_thread_terminal(MODEL_THREAD_UNKNOWN));
	assert_true(model_step_terminal(MODEL_STEP_COMPLETED));
	assert_true(model_step_terminal(MODEL_STEP_SKIPPED));
	assert_true(model_step_terminal(MODEL_STEP_CANCELLED));
	assert_false(model_step_terminal(MODEL_STEP_PAUSED));
	assert_false(model_step_terminal(MODEL_STEP_PENDING));
}

static void
test_status_from_text_takes_what_users_type(void **state)
{
	static const struct {
		const char *in;
		enum model_thread_status want;
	} cases[] = {
	    {"completed", MODEL_THREAD_COMPLETED},
	    {"COMPLETED", MODEL_THREAD_COMPLETED},
	    {"THREAD_STATUS_COMPLETED", MODEL_THREAD_COMPLETED},
	    {"thread_status_running", MODEL_THREAD_RUNNING},
	    {"canceled", MODEL_THREAD_CANCELLED},
	    {"Cancelled", MODEL_THREAD_CANCELLED},
	    {"4", MODEL_THREAD_COMPLETED},
	    {"1", MODEL_THREAD_PENDING},
	    {" paused\n", MODEL_THREAD_PAUSED},
	    {"failed", MODEL_THREAD_FAILED},
	    {"0", MODEL_THREAD_UNKNOWN},
	    {"7", MODEL_THREAD_UNKNOWN},
	    {"unspecified", MODEL_THREAD_UNKNOWN},
	    {"archived", MODEL_THREAD_UNKNOWN},
	    {"complete", MODEL_THREAD_UNKNOWN},
	    {"", MODEL_THREAD_UNKNOWN},
	    {"   ", MODEL_THREAD_UNKNOWN},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (model_thread_status_from_text(cases[i].in) != cases[i].want)
			fail_msg("\"%s\": got %d, want %d", cases[i].in,
			         model_thread_status_from_text(cases[i].in), cases[i].want);
	assert_int_equal(model_thread_status_from_text(NULL), MODEL_THREAD_UNKNOWN);
}

static int
path_qsort_cmp(const void *a, const void *b)
{
	return model_step_path_cmp(*(const char *const *)a, *(const char *const *)b);
}

static void
test_step_path_order(void **state)
{
	const char *paths[] = {"2",   "1.10", "1.2.0", "10", "1",   "1.2",  "1.9",
	                       "1.a", "1.b",  "01",    "9",  "1.0", "1.2.1"};
	static const char *const want[] = {"01",   "1",   "1.0", "1.2", "1.2.0", "1.2.1", "1.9",
	                                   "1.10", "1.a", "1.b", "2",   "9",     "10"};

	(void)state;
	assert_true(model_step_path_cmp("1", "1.2") < 0);
	assert_true(model_step_path_cmp("1.2", "1.10") < 0);
	assert_true(model_step_path_cmp("1.10", "2") < 0);
	assert_true(model_step_path_cmp("2", "1.10") > 0);
	assert_true(model_step_path_cmp("1.9", "1.x") < 0);
	assert_true(model_step_path_cmp("1.x", "1.y") < 0);
	assert_true(model_step_path_cmp("99999999999999999999999", "100000000000000000000000") < 0);
	assert_int_equal(model_step_path_cmp("1.2", "1.2"), 0);
	assert_true(model_step_path_cmp("01", "1") != 0); /* total: equal values still differ */
	assert_int_equal(model_step_path_cmp(NULL, ""), 0);
	qsort(paths, sizeof(paths) / sizeof(paths[0]), sizeof(paths[0]), path_qsort_cmp);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		assert_string_equal(paths[i], want[i]);
}

/* ---- hostile input ---- */

static void
test_hostile_input_is_survived(void **state)
{
	char *deep = malloc(2 * 1000 + 64);
	size_t o = 0;
	json_t *v;
	struct model_thread t;
	struct model_result r;
	struct model_event e;

	(void)state;
	assert_non_null(deep);
	/* inputJson nested a thousand deep is kept as text */
	o += (size_t)snprintf(deep, 64, "{'inputJson':");
	for (int i = 0; i < 1000; i++)
		deep[o++] = '[';
	for (int i = 0; i < 1000; i++)
		deep[o++] = ']';
	snprintf(deep + o, 2 * 1000 + 64 - o, "}");
	thread_from(deep, &t);
	assert_int_equal(strlen(t.input_json), 2000);
	model_thread_clear(&t);
	free(deep);

	/* every field of the wrong type, everywhere */
	v = js("{'threadId':[],'steps':[[]],'stepDetails':'x','yieldedValues':{}}");
	assert_int_equal(model_result_parse(v, &r, NULL, 0), -EPROTO);
	json_decref(v);
	v = js("{'thread':[],'step':[],'type':[]}");
	assert_int_equal(model_event_parse(v, &e, NULL, 0), -EPROTO);
	json_decref(v);

	/* a NUL never cuts a string short (SPEC §9): an id holding one
	 * is refused, free text and enum text keep it as U+FFFD */
	assert_rejects(model_thread_parse, struct model_thread, model_thread_clear,
	               "{'threadId':'a\\u0000b'}",
	               "Thread.threadId: holds a NUL byte (\\u0000), which no id or name may");
	thread_from("{'threadId':'a','status':'RUN\\u0000NING','error':'x\\u0000'}", &t);
	assert_int_equal(t.status, MODEL_THREAD_UNKNOWN);
	assert_string_equal(t.status_text, "RUN\xef\xbf\xbdNING");
	assert_string_equal(t.error, "x\xef\xbf\xbd");
	model_thread_clear(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_thread_parses_every_wire_variant),
	    cmocka_unit_test(test_thread_accepts_snake_case),
	    cmocka_unit_test(test_wrapped_unary_answer),
	    cmocka_unit_test(test_wrapper_is_taken_off_once_and_never_from_own_fields),
	    cmocka_unit_test(test_enum_spellings),
	    cmocka_unit_test(test_enum_canceled_spelling),
	    cmocka_unit_test(test_enum_integers_count_from_one_in_c_order),
	    cmocka_unit_test(test_unknown_status_keeps_text),
	    cmocka_unit_test(test_unknown_text_is_cut_at_a_character),
	    cmocka_unit_test(test_unknown_event_type_is_kept),
	    cmocka_unit_test(test_event_type_prefixes_and_integers),
	    cmocka_unit_test(test_enum_of_wrong_type_names_field),
	    cmocka_unit_test(test_int64_as_string_or_number),
	    cmocka_unit_test(test_int64_rejects_what_is_not_an_integer),
	    cmocka_unit_test(test_bad_field_type_names_field),
	    cmocka_unit_test(test_error_text_is_one_bounded_line),
	    cmocka_unit_test(test_booleans_accept_strings),
	    cmocka_unit_test(test_missing_and_null_fields_are_zero),
	    cmocka_unit_test(test_unknown_fields_are_ignored),
	    cmocka_unit_test(test_not_an_object_is_rejected),
	    cmocka_unit_test(test_failed_parse_leaves_struct_cleared),
	    cmocka_unit_test(test_json_fields_keep_values_sent_in_place_of_text),
	    cmocka_unit_test(test_metadata_kept_in_received_order),
	    cmocka_unit_test(test_result_parses_every_wire_variant),
	    cmocka_unit_test(test_result_output_data_is_base64),
	    cmocka_unit_test(test_thread_list_parse),
	    cmocka_unit_test(test_script_and_script_list_parse),
	    cmocka_unit_test(test_version_list_parse),
	    cmocka_unit_test(test_health_parse),
	    cmocka_unit_test(test_event_parses_every_wire_variant),
	    cmocka_unit_test(test_step_event_has_no_thread),
	    cmocka_unit_test(test_result_msg_meta_and_chunks),
	    cmocka_unit_test(test_result_msg_step_meta_and_step_chunk),
	    cmocka_unit_test(test_result_msg_unknown_member_is_not_an_error),
	    cmocka_unit_test(test_result_msg_rejects_bad_members),
	    cmocka_unit_test(test_render_thread_is_canonical),
	    cmocka_unit_test(test_render_step_detail_in_spec_order),
	    cmocka_unit_test(test_render_omits_zero_fields),
	    cmocka_unit_test(test_render_survives_caller_built_structs),
	    cmocka_unit_test(test_render_roundtrip_is_canonical),
	    cmocka_unit_test(test_copy_is_deep),
	    cmocka_unit_test(test_result_and_detail_copies_are_deep),
	    cmocka_unit_test(test_status_names_and_words),
	    cmocka_unit_test(test_status_from_text_takes_what_users_type),
	    cmocka_unit_test(test_step_path_order),
	    cmocka_unit_test(test_hostile_input_is_survived),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
