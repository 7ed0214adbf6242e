/*
 * The API's calls over the HTTP transport: paths and bodies out, model
 * structs in. Streams run through the incremental parser (stream.c) and are
 * checked here for what makes them complete: a result stream's chunks in
 * order, adding up to the announced size, ending with a final chunk; a watch
 * ending after a terminal status. Anything less is an error with a message
 * saying how far the stream got.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "errbuf.h"
#include "jsonload.h"
#include "stream.h"

struct api {
	struct http_client *http;
	struct http_abort *abort; /* borrowed: for calls given none (api_set_abort) */
};

int
api_new(const struct http_options *o, struct api **out, char *err, size_t errlen)
{
	struct api *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (a == NULL)
		return -ENOMEM;
	if ((rc = http_client_new(o, &a->http, err, errlen)) != 0) {
		free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void
api_free(struct api *a)
{
	if (a == NULL)
		return;
	http_client_free(a->http);
	free(a);
}

void
api_set_abort(struct api *a, struct http_abort *abort)
{
	a->abort = abort;
}

struct http_client *
api_http(struct api *a)
{
	return a->http;
}

void
api_redact(struct api *a, char *msg, size_t size)
{
	http_redact(a != NULL ? a->http : NULL, msg, size);
}

/* A public call's result, its message redacted: this layer's messages
 * quote the server too (an id, jansson's "near '...'", an error line). */
static int
redacted(struct api *a, int rc, struct http_error *e)
{
	if (rc != 0 && e != NULL) {
		http_redact(a->http, e->message, sizeof(e->message));
		http_redact(a->http, e->call, sizeof(e->call));
	}
	return rc;
}

/* ---- errors ---- */

/* Names a call and its object for messages ("GetThread th_123") in buf,
 * and starts *e afresh with that name. */
static void
call_name(char *buf, size_t len, const char *call, const char *what, struct http_error *e)
{
	if (what != NULL && what[0] != '\0')
		snprintf(buf, len, "%s %s", call, what);
	else
		snprintf(buf, len, "%s", call);
	memset(e, 0, sizeof(*e));
	e->grpc_code = -1;
	snprintf(e->call, sizeof(e->call), "%s", buf);
}

/* ---- identity ---- */

/* An id from an answer, fit for a one-line message in double quotes. */
static void
id_excerpt(char *out, size_t outsz, const char *id)
{
	errbuf_excerpt(out, outsz, id, strlen(id), 40, '"');
}

/*
 * Whether an answer is about the object asked for (doc/SEMANTICS.md,
 * "Answers of unknown shape"): got is the id the answer names ("" when it
 * names none). An answer naming another object is -EPROTO; one naming
 * none is -EPROTO too when required, else it is taken as about asked.
 */
static int
check_identity(struct http_error *e, const char *field, const char *asked, const char *got,
               bool required)
{
	char ex[64];

	if (got[0] == '\0' && !required)
		return 0;
	if (got[0] == '\0')
		return http_error_set(e, EPROTO, 200, "the answer has no %s", field);
	if (asked != NULL && strcmp(asked, got) != 0) {
		id_excerpt(ex, sizeof(ex), got);
		return http_error_set(e, EPROTO, 200,
		                      "the answer is about %s \"%s\", not the one asked for", field,
		                      ex);
	}
	return 0;
}

/* check_identity() of a parsed thread; clears it on a mismatch. */
static int
thread_identity(struct http_error *e, const char *asked, struct model_thread *t, bool required)
{
	int rc = check_identity(e, "threadId", asked, t->thread_id, required);

	if (rc != 0)
		model_thread_clear(t);
	return rc;
}

/*
 * A minimal answer of an action (CancelThread or ResumeThread answering {}
 * or only some fields) names no thread: it is taken as about the one
 * asked, its id filled in. Its status is then MODEL_THREAD_UNSPECIFIED,
 * which tells the caller to ask GetThread if it needs more.
 */
static int
action_answer(struct http_error *e, const char *id, struct model_thread *t)
{
	int rc = thread_identity(e, id, t, false);

	if (rc == 0 && t->thread_id[0] == '\0') {
		free(t->thread_id);
		if ((t->thread_id = strdup(id)) == NULL) {
			model_thread_clear(t);
			return http_error_set(e, ENOMEM, 0, "out of memory");
		}
	}
	return rc;
}

/* ---- unary calls ---- */

/* Sends one request and parses its answer as JSON into *out (a new
 * reference). body is a JSON value to send (borrowed) or NULL. */
static int
unary(struct api *a, const char *call, const char *method, const char *path, const json_t *body,
      unsigned flags, json_t **out, struct http_error *e)
{
	struct http_request rq = {
	    .call = call, .method = method, .path = path, .flags = flags, .abort = a->abort};
	struct http_response resp = {0};
	json_error_t jerr;
	char *text = NULL;
	size_t budget;
	int rc;

	*out = NULL;
	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT)) == NULL) {
			snprintf(e->call, sizeof(e->call), "%s", call);
			return http_error_set(e, ENOMEM, 0, "out of memory");
		}
		rq.body = text;
		rq.body_len = strlen(text);
	}
	rc = http_do(a->http, &rq, &resp, e);
	free(text);
	if (rc != 0) {
		http_response_clear(&resp);
		return rc;
	}
	budget = JSONLOAD_BUDGET(http_max_body(a->http));
	rc = jsonload(resp.body, resp.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, budget, out, &jerr);
	if (rc == -EMSGSIZE)
		rc = http_error_set(e, EMSGSIZE, resp.status,
		                    "the server's answer is too large to parse (%zu bytes of JSON, "
		                    "limit %zu bytes in memory)",
		                    resp.len, budget);
	else if (rc == -ENOMEM)
		rc = http_error_set(e, ENOMEM, resp.status, "out of memory");
	else if (rc != 0)
		rc =
		    http_error_set(e, EPROTO, resp.status, "the answer is not JSON (%s at byte %d)",
		                   jerr.text, jerr.position);
	http_response_clear(&resp);
	return rc;
}

typedef int (*parse_fn)(const json_t *v, void *out, char *err, size_t errlen);

/* A unary call whose answer one model parser reads. */
static int
unary_parse(struct api *a, const char *call, const char *method, const char *path,
            const json_t *body, unsigned flags, parse_fn parse, void *out, struct http_error *e)
{
	struct http_error local;
	char err[MODEL_ERR_MAX];
	json_t *v;
	int rc;

	if (e == NULL)
		e = &local;
	memset(e, 0, sizeof(*e));
	snprintf(e->call, sizeof(e->call), "%s", call);
	if ((rc = unary(a, call, method, path, body, flags, &v, e)) != 0)
		return redacted(a, rc, e);
	rc = parse(v, out, err, sizeof(err));
	json_decref(v);
	if (rc == -ENOMEM)
		return http_error_set(e, ENOMEM, 200, "out of memory");
	if (rc != 0)
		return redacted(a, http_error_set(e, EPROTO, 200, "unexpected answer: %s", err), e);
	return 0;
}

/* The model's parsers, typed for unary_parse(). */
#define PARSER(name, type)                                                            \
	static int parse_##name(const json_t *v, void *out, char *err, size_t errlen) \
	{                                                                             \
		return model_##name##_parse(v, (type *)out, err, errlen);             \
	}
PARSER(thread, struct model_thread)
PARSER(thread_list, struct model_thread_list)
PARSER(result, struct model_result)
PARSER(script, struct model_script)
PARSER(script_list, struct model_script_list)
PARSER(version_list, struct model_version_list)
PARSER(health, struct model_health)

/* API_PREFIX + "/" + collection + "/" + the escaped name + suffix, into
 * buf; what names the object in a message ("thread id", "script name"). */
static int
object_path(char *buf, size_t len, const char *collection, const char *what, const char *name,
            const char *suffix, struct http_error *e)
{
	char esc[1024];

	if (name == NULL || name[0] == '\0')
		return http_error_set(e, EINVAL, 0, "a %s is required", what);
	if (http_escape(name, esc, sizeof(esc)) < 0)
		return http_error_set(e, EINVAL, 0, "the %s is too long", what);
	snprintf(buf, len, API_PREFIX "/%s/%s%s", collection, esc, suffix);
	return 0;
}

static int
thread_path(char *buf, size_t len, const char *id, const char *suffix, struct http_error *e)
{
	return object_path(buf, len, "threads", "thread id", id, suffix, e);
}

/* A GET of one object's answer (a thread, a script, its versions). */
static int
get_object(struct api *a, const char *call, const char *collection, const char *what,
           const char *name, const char *suffix, parse_fn parse, void *out, struct http_error *e)
{
	struct http_error local;
	char path[1200], named[64];
	int rc;

	if (e == NULL)
		e = &local;
	call_name(named, sizeof(named), call, name, e);
	if ((rc = object_path(path, sizeof(path), collection, what, name, suffix, e)) != 0)
		return rc;
	return unary_parse(a, named, "GET", path, NULL, 0, parse, out, e);
}

int
api_health(struct api *a, struct model_health *out, struct http_error *e)
{
	return unary_parse(a, "HealthCheck", "GET", API_PREFIX "/health", NULL, HTTP_NO_AUTH,
	                   parse_health, out, e);
}

static json_t *
create_body(const struct api_create *rq)
{
	json_t *o = json_object(), *md;
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= json_object_set_new(o, "scriptName", json_string(rq->script_name));
	if (rq->version != 0)
		bad |= json_object_set_new(o, "version", json_integer(rq->version));
	if (rq->input_json != NULL && rq->input_json[0] != '\0')
		bad |= json_object_set_new(o, "inputJson", json_string(rq->input_json));
	if (rq->timeout != NULL && rq->timeout[0] != '\0')
		bad |= json_object_set_new(o, "timeout", json_string(rq->timeout));
	if (rq->n_metadata > 0) {
		md = json_object();
		bad |= json_object_set_new(o, "metadata", md);
		for (size_t i = 0; md != NULL && i < rq->n_metadata; i++)
			bad |= json_object_set_new(md, rq->metadata[i].key,
			                           json_string(rq->metadata[i].value));
	}
	if (rq->callback_url != NULL && rq->callback_url[0] != '\0')
		bad |= json_object_set_new(o, "callbackUrl", json_string(rq->callback_url));
	if (rq->load_env)
		bad |= json_object_set_new(o, "loadEnv", json_true());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int
api_create_thread(struct api *a, const struct api_create *rq, struct model_thread *out,
                  struct http_error *e)
{
	struct http_error local;
	char call[64];
	json_t *body;
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "CreateThread", rq->script_name, e);
	if (rq->script_name == NULL || rq->script_name[0] == '\0')
		return http_error_set(e, EINVAL, 0, "a script name is required");
	if ((body = create_body(rq)) == NULL)
		return http_error_set(e, EINVAL, 0, "the request cannot be encoded (not UTF-8?)");
	rc = unary_parse(a, call, "POST", API_PREFIX "/threads", body, 0, parse_thread, out, e);
	json_decref(body);
	/* the new thread's id must be there; the rest may be left out */
	if (rc == 0)
		rc = thread_identity(e, NULL, out, true);
	return redacted(a, rc, e);
}

int
api_get_thread(struct api *a, const char *id, struct model_thread *out, struct http_error *e)
{
	struct http_error local;
	int rc;

	if (e == NULL)
		e = &local;
	rc = get_object(a, "GetThread", "threads", "thread id", id, "", parse_thread, out, e);
	if (rc == 0)
		rc = thread_identity(e, id, out, true);
	return redacted(a, rc, e);
}

/* Appends "&name=value" (or "?name=value" first), the value escaped; 0,
 * or -ENAMETOOLONG (nothing appended) when it does not fit in len. */
static int
query_add(char *buf, size_t len, const char *name, const char *value, struct http_error *e)
{
	size_t used = strlen(buf);
	char *esc = http_escape_dup(value);
	int n;

	if (esc == NULL)
		return http_error_set(e, ENOMEM, 0, "out of memory escaping the %s query", name);
	n = snprintf(buf + used, len - used, "%c%s=%s", strchr(buf, '?') ? '&' : '?', name, esc);
	free(esc);
	if (n < 0 || (size_t)n >= len - used) {
		/* never a query cut short, or sent without the filter asked for */
		buf[used] = '\0';
		return http_error_set(e, ENAMETOOLONG, 0,
		                      "the %s query is too long for a request (%zu bytes given)",
		                      name, strlen(value));
	}
	return 0;
}

int
api_list_threads(struct api *a, const struct api_list *q, struct model_thread_list *out,
                 struct http_error *e)
{
	/* room for a page token of LISTING_TOKEN_MAX bytes, escaped */
	char path[4096 + 2048] = API_PREFIX "/threads", num[32];
	struct http_error local;
	char call[64];
	int rc = 0;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "ListThreads", NULL, e);
	if (q->page_size > 0) {
		snprintf(num, sizeof(num), "%d", q->page_size);
		rc = query_add(path, sizeof(path), "pageSize", num, e);
	}
	if (rc == 0 && q->page_token != NULL && q->page_token[0] != '\0')
		rc = query_add(path, sizeof(path), "pageToken", q->page_token, e);
	if (rc == 0 && q->status != MODEL_THREAD_UNSPECIFIED && q->status != MODEL_THREAD_UNKNOWN)
		rc = query_add(path, sizeof(path), "statusFilter",
		               model_thread_status_name(q->status, NULL), e);
	if (rc == 0 && q->script_name != NULL && q->script_name[0] != '\0')
		rc = query_add(path, sizeof(path), "scriptNameFilter", q->script_name, e);
	if (rc != 0)
		return rc;
	return unary_parse(a, "ListThreads", "GET", path, NULL, 0, parse_thread_list, out, e);
}

int
api_cancel_thread(struct api *a, const char *id, struct model_thread *out, struct http_error *e)
{
	struct http_error local;
	char path[1200], call[64];
	json_t *body;
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "CancelThread", id, e);
	if ((rc = thread_path(path, sizeof(path), id, "/cancel", e)) != 0)
		return rc;
	body = json_object();
	/* cancelling twice is the same as once */
	rc = unary_parse(a, call, "POST", path, body, HTTP_IDEMPOTENT, parse_thread, out, e);
	json_decref(body);
	if (rc == 0)
		rc = action_answer(e, id, out);
	return redacted(a, rc, e);
}

int
api_resume_thread(struct api *a, const char *id, const char *answer_json, struct model_thread *out,
                  struct http_error *e)
{
	struct http_error local;
	char path[1200], call[64];
	json_t *body;
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "ResumeThread", id, e);
	if ((rc = thread_path(path, sizeof(path), id, "/resume", e)) != 0)
		return rc;
	body = json_object();
	if (answer_json != NULL && answer_json[0] != '\0' &&
	    json_object_set_new(body, "stepInputOverrideJson", json_string(answer_json)) != 0) {
		json_decref(body);
		return http_error_set(e, EINVAL, 0, "the answer cannot be encoded (not UTF-8?)");
	}
	rc = unary_parse(a, call, "POST", path, body, 0, parse_thread, out, e);
	json_decref(body);
	if (rc == 0)
		rc = action_answer(e, id, out);
	return redacted(a, rc, e);
}

/*
 * Asked with stepPath P, stepDetails must hold P's (the callers look it up
 * by path). Entries that are all of other steps are an answer about
 * another step: -EPROTO. None at all is left to the caller (no such step).
 */
static int
details_identity(struct http_error *e, const char *path, const struct model_result *r)
{
	char ex[64];

	if (r->n_step_details == 0)
		return 0;
	for (size_t i = 0; i < r->n_step_details; i++)
		if (strcmp(r->step_details[i].step.step_path, path) == 0)
			return 0;
	id_excerpt(ex, sizeof(ex), r->step_details[0].step.step_path);
	return http_error_set(e, EPROTO, 200,
	                      "the answer is about step \"%s\", not the one asked for", ex);
}

int
api_get_result(struct api *a, const char *id, const struct api_result_query *q,
               struct model_result *out, struct http_error *e)
{
	struct http_error local;
	char path[2400], call[64];
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "GetThreadResult", id, e);
	if ((rc = thread_path(path, sizeof(path), id, "/result", e)) != 0)
		return rc;
	if (q != NULL && q->step_path != NULL && q->step_path[0] != '\0')
		rc = query_add(path, sizeof(path), "stepPath", q->step_path, e);
	if (rc == 0 && q != NULL && q->output_only)
		rc = query_add(path, sizeof(path), "outputOnly", "true", e);
	if (rc == 0 && q != NULL && q->metadata_only)
		rc = query_add(path, sizeof(path), "metadataOnly", "true", e);
	if (rc != 0 || (rc = unary_parse(a, call, "GET", path, NULL, 0, parse_result, out, e)) != 0)
		return rc;
	rc = check_identity(e, "threadId", id, out->thread_id, true);
	if (rc == 0 && q != NULL && q->step_path != NULL && q->step_path[0] != '\0')
		rc = details_identity(e, q->step_path, out);
	if (rc != 0)
		model_result_clear(out);
	return redacted(a, rc, e);
}

int
api_list_scripts(struct api *a, int page_size, const char *page_token,
                 struct model_script_list *out, struct http_error *e)
{
	char path[4096] = API_PREFIX "/scripts", num[32];
	struct http_error local;
	char call[64];
	int rc = 0;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "ListScripts", NULL, e);
	if (page_size > 0) {
		snprintf(num, sizeof(num), "%d", page_size);
		rc = query_add(path, sizeof(path), "pageSize", num, e);
	}
	if (rc == 0 && page_token != NULL && page_token[0] != '\0')
		rc = query_add(path, sizeof(path), "pageToken", page_token, e);
	if (rc != 0)
		return rc;
	return unary_parse(a, "ListScripts", "GET", path, NULL, 0, parse_script_list, out, e);
}

int
api_get_script(struct api *a, const char *name, struct model_script *out, struct http_error *e)
{
	struct http_error local;
	int rc;

	if (e == NULL)
		e = &local;
	rc = get_object(a, "GetScript", "scripts", "script name", name, "", parse_script, out, e);
	if (rc == 0 && (rc = check_identity(e, "name", name, out->name, true)) != 0)
		model_script_clear(out);
	return redacted(a, rc, e);
}

int
api_list_versions(struct api *a, const char *name, struct model_version_list *out,
                  struct http_error *e)
{
	return get_object(a, "ListScriptVersions", "scripts", "script name", name, "/versions",
	                  parse_version_list, out, e);
}

/* ---- streams ---- */

/* What a stream call is doing: the parser's messages go through check()
 * and then to the caller's callback. */
struct sctx {
	const char *thread_id; /* the thread asked about: every message must be of it */
	struct stream *parser;
	int (*check)(struct sctx *s, json_t *msg);
	int (*check_msg)(struct sctx *s, const struct model_result_msg *m); /* result streams */
	api_event_fn event_fn;
	api_result_fn result_fn;
	void *arg;
	int cb_err;     /* the caller's callback stopped the stream with this */
	char why[256];  /* what check() found wrong, with -EPROTO */
	size_t msgs;    /* messages handed on */
	bool terminal;  /* watch: a terminal status was seen */
	bool have_meta; /* result: the meta message came */
	/* result and step streams: progress of the current payload */
	int64_t total;    /* bytes announced */
	int64_t received; /* bytes so far */
	int64_t next_index;
	bool final;
	/* step streams */
	const char *asked_step;    /* the one step asked for; NULL: all */
	char *step_path;           /* the step whose parts are arriving (owned) */
	enum model_step_part part; /* the part in progress */
	int64_t part_total[2];     /* input, output */
	bool part_done[2];
	size_t steps; /* stepMeta messages seen */
};

static int sfail(struct sctx *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
sfail(struct sctx *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return -EPROTO;
}

/* Whether a stream's message (what: "an event") names the thread asked
 * about: 0, or -EPROTO. */
static int
stream_thread(struct sctx *s, const char *what, const char *got)
{
	char ex[64];

	if (strcmp(got, s->thread_id) == 0)
		return 0;
	id_excerpt(ex, sizeof(ex), got);
	return sfail(s, "%s about thread \"%s\", not the one asked for", what, ex);
}

static int
on_message(json_t *msg, void *arg)
{
	struct sctx *s = arg;

	return s->check(s, msg);
}

static int
on_bytes(const void *buf, size_t len, void *arg)
{
	struct sctx *s = arg;

	return stream_feed(s->parser, buf, len);
}

/* A caller's callback result: remembered, so it is not mistaken for a
 * fault of the stream. */
static int
handed(struct sctx *s, int rc)
{
	s->msgs++;
	if (rc != 0)
		s->cb_err = rc;
	return rc;
}

static int
check_event(struct sctx *s, json_t *msg)
{
	struct model_event ev;
	char err[MODEL_ERR_MAX];
	int rc;

	if ((rc = model_event_parse(msg, &ev, err, sizeof(err))) != 0)
		return rc == -ENOMEM ? rc : sfail(s, "a bad event: %s", err);
	if (ev.type == MODEL_EVENT_UNKNOWN || ev.type == MODEL_EVENT_UNSPECIFIED) {
		model_event_clear(&ev);
		return 0;
	}
	if (ev.has_thread && ev.thread.thread_id[0] != '\0' &&
	    (rc = stream_thread(s, "an event", ev.thread.thread_id)) != 0) {
		model_event_clear(&ev);
		return rc;
	}
	if (ev.has_thread && model_thread_terminal(ev.thread.status))
		s->terminal = true;
	rc = handed(s, s->event_fn(&ev, s->arg));
	model_event_clear(&ev);
	return rc;
}

/* Checks one chunk of the payload in progress; sets s->final on the last. */
static int
check_chunk(struct sctx *s, const struct model_result_msg *m, const char *what)
{
	if (s->final)
		return sfail(s, "%s: data after the final chunk", what);
	if (m->chunk_index != s->next_index)
		return sfail(s, "%s: chunk %" PRId64 " arrived where %" PRId64 " was due", what,
		             m->chunk_index, s->next_index);
	s->next_index++;
	if ((int64_t)m->len > s->total - s->received)
		return sfail(s, "%s: more bytes than the %" PRId64 " announced", what, s->total);
	s->received += (int64_t)m->len;
	if (m->is_final) {
		if (s->received != s->total)
			return sfail(
			    s, "%s: the final chunk came after %" PRId64 " of %" PRId64 " bytes",
			    what, s->received, s->total);
		s->final = true;
	}
	return 0;
}

static int
check_result_msg(struct sctx *s, const struct model_result_msg *m)
{
	switch (m->kind) {
	case MODEL_MSG_META:
		if (s->have_meta)
			return sfail(s, "a second meta message");
		if (m->output_total_bytes < 0)
			return sfail(s, "a negative outputTotalBytes");
		if (m->thread_id[0] == '\0')
			return sfail(s, "a meta message naming no thread");
		if (stream_thread(s, "a meta message", m->thread_id) != 0)
			return -EPROTO;
		s->have_meta = true;
		s->total = m->output_total_bytes;
		return 0;
	case MODEL_MSG_CHUNK:
		if (!s->have_meta)
			return sfail(s, "a chunk before the meta message");
		return check_chunk(s, m, "output");
	case MODEL_MSG_STEP_META:
	case MODEL_MSG_STEP_CHUNK:
		return sfail(s, "a step message in a thread result stream");
	case MODEL_MSG_UNKNOWN:
		break;
	}
	return 0;
}

/* Whether the step in progress has both its parts (an empty part may be
 * left out entirely). */
static int
step_complete(struct sctx *s)
{
	if (s->step_path == NULL)
		return 0;
	if (s->part != MODEL_PART_UNSPECIFIED && !s->final)
		return sfail(s, "step %s: its %s ended after %" PRId64 " of %" PRId64 " bytes",
		             s->step_path, s->part == MODEL_PART_INPUT ? "input" : "output",
		             s->received, s->total);
	for (int i = 0; i < 2; i++)
		if (!s->part_done[i] && s->part_total[i] != 0)
			return sfail(s, "step %s: its %s (%" PRId64 " bytes) never came",
			             s->step_path, i == 0 ? "input" : "output", s->part_total[i]);
	return 0;
}

/*
 * Whether a stepMeta is of a step asked for. Asked for step P, a stream is
 * about P alone (doc/WIRE.md, Streams): only a stream of all steps has a
 * stepMeta per step, and a sub-step ("P.1") is a step of its own, with its
 * own stepPath (the emulator sends exactly one step). So a stepMeta of any
 * other path, a sub-step's too, or a second one of P, is -EPROTO, never
 * data.
 */
static int
step_identity(struct sctx *s, const char *path)
{
	char ex[64];

	if (path[0] == '\0')
		return sfail(s, "a stepMeta naming no step");
	if (s->asked_step == NULL)
		return 0;
	id_excerpt(ex, sizeof(ex), path);
	if (strcmp(path, s->asked_step) != 0)
		return sfail(s, "a step stream about step %s, not the one asked for", ex);
	if (s->steps > 0)
		return sfail(s, "a second stepMeta of step %s", ex);
	return 0;
}

static int
check_step_msg(struct sctx *s, const struct model_result_msg *m)
{
	int rc, i;

	switch (m->kind) {
	case MODEL_MSG_STEP_META:
		if ((rc = step_identity(s, m->step_meta.step.step_path)) != 0)
			return rc;
		if ((rc = step_complete(s)) != 0)
			return rc;
		free(s->step_path);
		if ((s->step_path = strdup(m->step_meta.step.step_path)) == NULL)
			return -ENOMEM;
		s->steps++;
		s->part = MODEL_PART_UNSPECIFIED;
		s->part_total[0] = m->step_meta.input_total_bytes;
		s->part_total[1] = m->step_meta.output_total_bytes;
		s->part_done[0] = s->part_done[1] = false;
		s->final = true; /* no part in progress */
		if (s->part_total[0] < 0 || s->part_total[1] < 0)
			return sfail(s, "step %s: a negative size", s->step_path);
		return 0;
	case MODEL_MSG_STEP_CHUNK:
		if (s->step_path == NULL || strcmp(m->step_path, s->step_path) != 0)
			return sfail(s, "a chunk of step %s where step %s was due", m->step_path,
			             s->step_path != NULL ? s->step_path : "(none)");
		if (m->part != MODEL_PART_INPUT && m->part != MODEL_PART_OUTPUT)
			return sfail(s, "step %s: a chunk of an unknown part", m->step_path);
		i = m->part == MODEL_PART_OUTPUT;
		if (m->part != s->part) {
			/* a new part: the previous one is done, and parts go in order */
			if (!s->final || s->part_done[i] || (i == 0 && s->part_done[1]))
				return sfail(s, "step %s: parts out of order", m->step_path);
			s->part = m->part;
			s->total = s->part_total[i];
			s->received = 0;
			s->next_index = 0;
			s->final = false;
		}
		if ((rc = check_chunk(s, m, i == 0 ? "step input" : "step output")) != 0)
			return rc;
		if (s->final)
			s->part_done[i] = true;
		return 0;
	case MODEL_MSG_META:
	case MODEL_MSG_CHUNK:
		return sfail(s, "a thread output message in a step stream");
	case MODEL_MSG_UNKNOWN:
		break;
	}
	return 0;
}

/* A result or step stream's message: parsed, checked by the stream's own
 * rule (s->check_msg), handed on; messages of unknown kinds are skipped. */
static int
check_result(struct sctx *s, json_t *msg)
{
	struct model_result_msg m;
	char err[MODEL_ERR_MAX];
	int rc;

	if ((rc = model_result_msg_parse(msg, &m, err, sizeof(err))) != 0)
		return rc == -ENOMEM ? rc : sfail(s, "a bad message: %s", err);
	if (m.kind != MODEL_MSG_UNKNOWN && (rc = s->check_msg(s, &m)) == 0)
		rc = handed(s, s->result_fn(&m, s->arg));
	model_result_msg_clear(&m);
	return rc;
}

/*
 * Runs one stream call. After the transfer, works out which failure it
 * was: the caller's callback, a malformed message, the server's error line,
 * a cut body, or the transport's own. done() says whether the stream got
 * to its proper end; describe() fills the "how far" part of messages.
 * A watch is exempt from the transfer-rate floor.
 */
static int
run_stream(struct api *a, const char *call, const char *path, int64_t stall_ms, bool watch,
           struct http_abort *abort, struct sctx *s, bool (*done)(struct sctx *s),
           void (*describe)(struct sctx *s, char *buf, size_t len), struct http_error *e)
{
	struct http_request rq = {
	    .call = call,
	    .method = "GET",
	    .path = path,
	    .accept = "application/x-ndjson, application/json, text/event-stream",
	    .on_data = on_bytes,
	    .arg = s,
	    .abort = abort != NULL ? abort : a->abort,
	    .stall_ms = stall_ms,
	    /* a watch is idle between events: no rate to keep */
	    .min_rate = watch ? HTTP_NONE : 0,
	    .deadline_ms = HTTP_NONE, /* a stream lasts as long as it has bytes to give */
	};
	struct http_response resp = {0};
	const struct errmap_status *st;
	char where[160];
	int rc, finish;

	if ((s->parser = stream_new(on_message, s, 0)) == NULL) {
		snprintf(e->call, sizeof(e->call), "%s", call);
		return http_error_set(e, ENOMEM, 0, "out of memory");
	}
	rc = http_do(a->http, &rq, &resp, e);
	/* the last server-sent event may only be complete at the end */
	finish = rc == 0 ? stream_finish(s->parser) : 0;
	describe(s, where, sizeof(where));
	if (rc == 0 && finish == 0) {
		if (!done(s))
			rc = http_error_set(e, EIO, resp.status, "the stream ended early (%s)",
			                    where);
	} else if (rc == 0 && finish == -EPROTO && s->why[0] == '\0') {
		/* the body ended properly, but inside a message */
		rc = http_error_set(e, EIO, resp.status, "the stream was cut inside a message (%s)",
		                    where);
	} else {
		if (rc == 0)
			rc = finish;
		if (rc == -EREMOTEIO && (st = stream_error(s->parser)) != NULL) {
			struct errmap m = errmap_map(0, st->code);
			char said[sizeof(st->message)];

			/* before it is embedded: a cut secret would hide mid-line */
			memcpy(said, st->message, sizeof(said));
			http_redact(a->http, said, sizeof(said));

			e->err = m.err;
			e->http_status = resp.status;
			e->grpc_code = st->code;
			e->exit_code = m.exit_code;
			if (snprintf(e->message, sizeof(e->message), "%s (the server's error, %s)",
			             said, where) < 0)
				e->message[0] = '\0';
			rc = -m.err;
		} else if (s->cb_err == 0 && s->why[0] != '\0') {
			rc = http_error_set(e, EPROTO, resp.status, "%s (%s)", s->why, where);
		} else if (s->cb_err == 0 && stream_errstr(s->parser)[0] != '\0') {
			rc = http_error_set(e, rc == -EMSGSIZE ? EMSGSIZE : EPROTO, resp.status,
			                    "%s (%s)", stream_errstr(s->parser), where);
		} else if (rc == -EIO && s->msgs > 0) {
			char was[sizeof(e->message)];

			memcpy(was, e->message, sizeof(was));
			rc = http_error_set(e, EIO, resp.status, "the stream was cut: %s (%s)", was,
			                    where);
		}
	}
	http_response_clear(&resp);
	stream_free(s->parser);
	s->parser = NULL;
	free(s->step_path);
	s->step_path = NULL;
	return redacted(a, rc, e);
}

static bool
watch_done(struct sctx *s)
{
	return s->terminal;
}

static void
watch_describe(struct sctx *s, char *buf, size_t len)
{
	snprintf(buf, len, "after %zu event%s", s->msgs, s->msgs == 1 ? "" : "s");
}

int
api_watch(struct api *a, const char *id, const char *step_path, api_event_fn fn, void *arg,
          int64_t stall_ms, struct http_abort *abort, struct http_error *e)
{
	struct http_error local;
	struct sctx s = {.thread_id = id, .check = check_event, .event_fn = fn, .arg = arg};
	char path[2400], call[64], esc[1024];
	bool step = step_path != NULL && step_path[0] != '\0';
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), step ? "WatchStep" : "WatchThread", id, e);
	if (!step)
		rc = thread_path(path, sizeof(path), id, "/watch", e);
	else if (http_escape(step_path, esc, sizeof(esc)) < 0)
		rc = http_error_set(e, EINVAL, 0, "the step path is too long");
	else {
		char suffix[1100];

		snprintf(suffix, sizeof(suffix), "/steps/%s/watch", esc);
		rc = thread_path(path, sizeof(path), id, suffix, e);
	}
	if (rc != 0)
		return rc;
	if (step)
		s.terminal = true; /* a step watch ends when the server says so */
	rc = run_stream(a, call, path, stall_ms, true, abort, &s, watch_done, watch_describe, e);
	/* a watch that had started and then stopped short may be taken up again */
	if (rc == -EIO && s.terminal && s.cb_err == 0 && !step) {
		/* cut after the terminal status: nothing was lost */
		memset(e, 0, sizeof(*e));
		rc = 0;
	} else if (rc == -EIO && s.msgs > 0 && s.cb_err == 0) {
		rc = -EPIPE;
		e->err = EPIPE;
		e->exit_code = errmap_exit_code(EPIPE);
	}
	return rc;
}

static bool
result_done(struct sctx *s)
{
	return s->have_meta && s->final;
}

static void
result_describe(struct sctx *s, char *buf, size_t len)
{
	if (s->have_meta)
		snprintf(buf, len, "%" PRId64 " of %" PRId64 " bytes received", s->received,
		         s->total);
	else
		snprintf(buf, len, "no meta message yet");
}

int
api_stream_result(struct api *a, const char *id, size_t max_chunk, api_result_fn fn, void *arg,
                  struct http_abort *abort, struct http_error *e)
{
	struct http_error local;
	struct sctx s = {.thread_id = id,
	                 .check = check_result,
	                 .check_msg = check_result_msg,
	                 .result_fn = fn,
	                 .arg = arg};
	char path[1300], call[64], suffix[64];
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "StreamThreadResult", id, e);
	if (max_chunk > 0)
		snprintf(suffix, sizeof(suffix), "/result/stream?maxChunkBytes=%zu", max_chunk);
	else
		snprintf(suffix, sizeof(suffix), "/result/stream");
	if ((rc = thread_path(path, sizeof(path), id, suffix, e)) != 0)
		return rc;
	return run_stream(a, call, path, 0, false, abort, &s, result_done, result_describe, e);
}

static bool
steps_done(struct sctx *s)
{
	return step_complete(s) == 0;
}

static void
steps_describe(struct sctx *s, char *buf, size_t len)
{
	if (s->step_path == NULL)
		snprintf(buf, len, "no step yet");
	else if (s->part == MODEL_PART_UNSPECIFIED)
		snprintf(buf, len, "at step %s, %zu step%s so far", s->step_path, s->steps,
		         s->steps == 1 ? "" : "s");
	else
		snprintf(buf, len, "at step %s %s, %" PRId64 " of %" PRId64 " bytes", s->step_path,
		         s->part == MODEL_PART_INPUT ? "input" : "output", s->received, s->total);
}

int
api_stream_steps(struct api *a, const char *id, const char *step_path, size_t max_chunk,
                 api_result_fn fn, void *arg, struct http_abort *abort, struct http_error *e)
{
	struct http_error local;
	struct sctx s = {.thread_id = id,
	                 .check = check_result,
	                 .check_msg = check_step_msg,
	                 .result_fn = fn,
	                 .arg = arg,
	                 .final = true};
	char path[2400], call[64], suffix[1200];
	int rc;

	if (e == NULL)
		e = &local;
	call_name(call, sizeof(call), "StreamStepResult", id, e);
	if (step_path != NULL && step_path[0] != '\0')
		s.asked_step = step_path;
	snprintf(suffix, sizeof(suffix), "/steps/stream");
	if ((rc = thread_path(path, sizeof(path), id, suffix, e)) != 0)
		return rc;
	if (step_path != NULL && step_path[0] != '\0')
		rc = query_add(path, sizeof(path), "stepPath", step_path, e);
	if (rc == 0 && max_chunk > 0) {
		char num[32];

		snprintf(num, sizeof(num), "%zu", max_chunk);
		rc = query_add(path, sizeof(path), "maxChunkBytes", num, e);
	}
	if (rc != 0)
		return rc;
	rc = run_stream(a, call, path, 0, false, abort, &s, steps_done, steps_describe, e);
	if (rc == 0 && step_path != NULL && step_path[0] != '\0' && s.steps == 0)
		rc = http_error_set(e, EPROTO, 200, "the stream held no step %s", step_path);
	return rc;
}
