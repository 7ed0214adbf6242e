/*
 * The Scriptum API's calls (doc/WIRE.md, Calls): each a function that
 * builds the request, sends it through the HTTP transport and hands back
 * the answer as model structs. Streams are delivered message by message to
 * a callback, and a stream that ends without its final message, or with an
 * error line, is an error, never a short success.
 *
 *	struct api *a;
 *	struct model_thread t;
 *	struct http_error e;
 *
 *	if (api_new(&opts, &a, err, sizeof(err)) != 0) ...
 *	if (api_get_thread(a, "th_123", &t, &e) != 0)
 *		http_error_string(&e, buf, sizeof(buf));	// "GetThread th_123: ..."
 *	else
 *		model_thread_clear(&t);
 *	api_free(a);
 *
 * Every call returns 0 or -errno with *e filled (e may be NULL): the call's
 * name and the thread in e->call, the API's message in e->message, errno
 * and exit status from errmap. An answer that cannot be parsed is -EPROTO
 * (exit status 10). *out is filled only on success: clear it then, not
 * after a failure. No message holds a secret in use (api_redact()).
 * Thread-safe: one struct api serves every thread.
 */
#ifndef SCRIPTUM_API_H
#define SCRIPTUM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "model.h"

#define API_PREFIX "/v1/scriptum"

/* Unary answers over this many bytes of output are truncated
 * (doc/WIRE.md, Calls). */
#define API_UNARY_OUTPUT_MAX ((int64_t)4 << 20)

struct api;

/* A client for the endpoint in o (copied). 0, or -EINVAL/-ENOMEM with err. */
int api_new(const struct http_options *o, struct api **out, char *err, size_t errlen);
void api_free(struct api *a); /* NULL is fine; no call may be in progress */

/*
 * The abort handle of every call given none (the unary calls, and streams
 * passed a NULL abort): fired, they end with -EINTR, in a transfer or a
 * back-off wait. Borrowed; set it before the first call, and keep it
 * until api_free(). NULL (the default): such calls run to their deadline.
 */
void api_set_abort(struct api *a, struct http_abort *abort);

/* The transport underneath, for its counters. Owned by a. */
struct http_client *api_http(struct api *a);

/* Takes every secret in use out of msg, in place (http_redact()). Every
 * e->message an api_* call returns has been through it already; a message
 * made from the server's text elsewhere must go through it too. */
void api_redact(struct api *a, char *msg, size_t size);

/* CreateThread's request. Strings borrowed for the call; NULL or "" = unset. */
struct api_create {
	const char *script_name; /* required */
	int64_t version;         /* 0: the active version */
	const char *input_json;  /* the input as JSON text (the caller checked it is JSON) */
	const char *timeout;     /* a duration for the run: "5m" */
	const struct model_kv *metadata;
	size_t n_metadata;
	const char *callback_url;
	bool load_env;
};

/* ListThreads' query. NULL/0 = unset (the server's default page size). */
struct api_list {
	int page_size;
	const char *page_token;
	enum model_thread_status status; /* MODEL_THREAD_UNSPECIFIED: any */
	const char *script_name;
};

/* GetThreadResult's query. */
struct api_result_query {
	const char *step_path; /* NULL: none (no stepDetails) */
	bool output_only;
	bool metadata_only;
};

int api_health(struct api *a, struct model_health *out, struct http_error *e);

/* CreateThread is sent once: a failure after the server may have acted on
 * it is not retried (the caller would risk two threads). */
int api_create_thread(struct api *a, const struct api_create *rq, struct model_thread *out,
                      struct http_error *e);
int api_get_thread(struct api *a, const char *id, struct model_thread *out, struct http_error *e);
int api_list_threads(struct api *a, const struct api_list *q, struct model_thread_list *out,
                     struct http_error *e);
int api_cancel_thread(struct api *a, const char *id, struct model_thread *out,
                      struct http_error *e);
/* answer_json: the JSON text for stepInputOverrideJson (NULL: none). */
int api_resume_thread(struct api *a, const char *id, const char *answer_json,
                      struct model_thread *out, struct http_error *e);
int api_get_result(struct api *a, const char *id, const struct api_result_query *q,
                   struct model_result *out, struct http_error *e);

int api_list_scripts(struct api *a, int page_size, const char *page_token,
                     struct model_script_list *out, struct http_error *e);
int api_get_script(struct api *a, const char *name, struct model_script *out, struct http_error *e);
int api_list_versions(struct api *a, const char *name, struct model_version_list *out,
                      struct http_error *e);

/*
 * Streams. Each message is passed to fn, borrowed for the call; fn returns
 * 0 to go on or a -errno that ends the call with that error (e->message
 * then names the errno; the callback's owner knows the rest). abort ends
 * the call from another thread with -EINTR (NULL: api_set_abort()'s).
 * stall_ms: a stream silent for this long fails with -ETIMEDOUT (0: the
 * transport's default; HTTP_NONE: a watch may idle for ever). The result
 * and step streams are held to the transport's rate floor
 * (http_options.min_rate); a watch is not, being idle between events.
 */
typedef int (*api_event_fn)(const struct model_event *ev, void *arg);
typedef int (*api_result_fn)(const struct model_result_msg *m, void *arg);

/*
 * WatchThread (or WatchStep when step_path is set): events until the server
 * closes the stream. 0 when it closed (or was cut) after a terminal status;
 * -EPIPE when, after at least one event, it closed or was cut before one, so
 * the caller may reconnect; a stream that gave no event at all fails as any
 * call does (-EIO, ...), and the caller may poll instead. Events of unknown
 * types are skipped.
 */
int api_watch(struct api *a, const char *id, const char *step_path, api_event_fn fn, void *arg,
              int64_t stall_ms, struct http_abort *abort, struct http_error *e);

/*
 * StreamThreadResult: the meta message, then every chunk in order. The
 * chunks are checked: indexes in sequence, bytes adding up to the meta's
 * outputTotalBytes, a final chunk before the end of the body. Any breach
 * (or a cut body, or an error line) is an error with a message saying how
 * many bytes had arrived. max_chunk: 0 for the server's default.
 */
int api_stream_result(struct api *a, const char *id, size_t max_chunk, api_result_fn fn, void *arg,
                      struct http_abort *abort, struct http_error *e);

/*
 * StreamStepResult for one step (step_path) or all ("" or NULL): per step a
 * stepMeta, then its input chunks, then its output chunks, each part ending
 * with a final chunk and adding up to the meta's *TotalBytes. Asked for one
 * step, the stream is of that step alone, not its sub-steps: a stepMeta of
 * any other path (or a second one) is -EPROTO before any of it is handed on.
 */
int api_stream_steps(struct api *a, const char *id, const char *step_path, size_t max_chunk,
                     api_result_fn fn, void *arg, struct http_abort *abort, struct http_error *e);

#endif
