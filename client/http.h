/*
 * The HTTP transport of libscriptum (libcurl): one client per endpoint,
 * shared by every thread; calls under a deadline, with retries, back-off
 * a stall timeout and a transfer-rate floor; bearer tokens from a static value, a token file or
 * OAuth client credentials; every failure reduced to an errno and a line of
 * text. Nothing here knows the API's calls: the caller gives a method, a
 * path and a body, and gets bytes back.
 *
 *	struct http_options o = {.endpoint = "http://127.0.0.1:8080", .token = tok};
 *	struct http_request rq = {.call = "GetThread", .path = "/v1/scriptum/threads/t1"};
 *	struct http_response resp = {0};
 *	struct http_error e;
 *
 *	if (http_client_new(&o, &c, err, sizeof(err)) != 0) ...
 *	rc = http_do(c, &rq, &resp, &e);	// 0, or -errno with e.message
 *	... resp.body, resp.len ...
 *	http_response_clear(&resp);
 *	http_client_free(c);
 *
 * Nothing prints. No message this module writes holds a token or a secret
 * (http_redact()).
 */
#ifndef SCRIPTUM_HTTP_H
#define SCRIPTUM_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errmap.h"

/* For a deadline or stall time: no limit at all (a watch stream). */
#define HTTP_NONE ((int64_t)-1)

/* Defaults, used where an option or request field is 0. */
#define HTTP_CONNECT_TIMEOUT_MS ((int64_t)10000)
#define HTTP_DEADLINE_MS        ((int64_t)30000)
#define HTTP_STALL_MS           ((int64_t)20000)
#define HTTP_MAX_ATTEMPTS       6
#define HTTP_BACKOFF_BASE_MS    ((int64_t)100)
#define HTTP_BACKOFF_MAX_MS     ((int64_t)5000)
#define HTTP_MAX_BODY           ((size_t)64 << 20)
#define HTTP_MAX_IDLE           16
#define HTTP_TOKEN_MARGIN_MS    ((int64_t)30000)
/* The rate floor: an answer that brings fewer than HTTP_MIN_RATE bytes/s
 * over HTTP_MIN_RATE_WINDOW_MS fails. A real gateway is far faster; a
 * server trickling a byte now and then to keep the stall time quiet is
 * not. */
#define HTTP_MIN_RATE           ((int64_t)1024)
#define HTTP_MIN_RATE_WINDOW_MS ((int64_t)30000)

struct http_client;
struct http_abort;

/*
 * What a client is made from. Strings are borrowed for the duration of
 * http_client_new() only (it copies them). A 0 number means the default.
 */
struct http_options {
	const char *endpoint; /* required: "http://host:port"; paths are appended */
	const char *org_id;   /* sent as x-organization-id when set */
	const char *org_name; /* sent as x-organization-name when set */

	/* Credentials: one of token, token_file, or token_url with client_id
	 * and client_secret or client_secret_file. None: no Authorization. */
	const char *token;      /* static bearer token (secret) */
	const char *token_file; /* re-read when it changes and after a 401 */
	const char *token_url;  /* OAuth 2 client credentials grant */
	const char *client_id;
	const char *client_secret; /* secret */
	const char *client_secret_file;

	const char *ca_file;    /* PEM bundle of a private CA, for https */
	const char *user_agent; /* NULL: "libscriptum" */

	int64_t connect_timeout_ms; /* per connection attempt */
	int64_t deadline_ms;        /* per call, retries and back-off included */
	int64_t stall_ms;           /* an attempt with no byte received for this long fails */
	int max_attempts;           /* attempts per call, first included */
	int64_t backoff_base_ms;    /* back-off before retry n: random in [0, min(max, base*2^n)] */
	int64_t backoff_max_ms;
	size_t max_body;         /* largest buffered response */
	unsigned max_idle;       /* idle connections kept for reuse */
	int64_t token_margin_ms; /* refresh an OAuth token this long before it expires */
	/* An answer bringing fewer than min_rate bytes/s over any
	 * min_rate_window_ms fails with -ETIMEDOUT. 0: the defaults;
	 * min_rate HTTP_NONE: no floor. */
	int64_t min_rate;
	int64_t min_rate_window_ms;
};

/* Fills *o from a resolved configuration: endpoint, credentials, org,
 * ca_file, timeout (as deadline_ms), min_rate and its window (a
 * configured 0 as HTTP_NONE). Other fields are zeroed. The strings
 * are borrowed from cfg, which must outlive the http_client_new() call. */
void http_options_from_config(struct http_options *o, const struct config *cfg);

/*
 * Makes a client. Returns 0 and *out (free it with http_client_free()), or
 * -EINVAL (a missing endpoint, incomplete or conflicting credentials, a
 * header value with a line break) or -ENOMEM, with a message in err.
 * Credentials are not read yet: a bad token_file fails the first call.
 */
int http_client_new(const struct http_options *o, struct http_client **out, char *err,
                    size_t errlen);

/* Closes every connection and frees c. No call may be in progress. NULL is fine. */
void http_client_free(struct http_client *c);

/* Request flags. */
enum {
	/* A POST the caller knows is safe to resend even if the server may
	 * have processed it (e.g. CancelThread). Without it a POST is resent
	 * only when the server cannot have acted on it: no connection, or a
	 * 429/503 answer. GET, HEAD, PUT, DELETE are always resendable. */
	HTTP_IDEMPOTENT = 1u << 0,
	/* One attempt, whatever the failure (a 401 still gets its token refresh). */
	HTTP_NO_RETRY = 1u << 1,
	/* No Authorization header (the health check, /_emulator/ calls). */
	HTTP_NO_AUTH = 1u << 2,
};

/*
 * Called with a successful (2xx) response's body bytes as they arrive, in
 * order; buf is borrowed for the call. Return 0 to go on or a -errno that
 * stops the transfer and is the call's result. Once it has been called,
 * the call is never retried.
 */
typedef int (*http_data_fn)(const void *buf, size_t len, void *arg);

/* One call. Borrowed by http_do() for its duration. */
struct http_request {
	const char *call;   /* "GetThread": names the call in errors; NULL: method and path */
	const char *method; /* NULL: "POST" with a body, else "GET" */
	const char *path;   /* path and query, already percent-encoded (http_escape()) */
	const void *body;   /* NULL: none */
	size_t body_len;
	const char *content_type; /* of the body; NULL: application/json */
	const char *accept;       /* NULL: application/json */
	unsigned flags;           /* HTTP_IDEMPOTENT, HTTP_NO_RETRY, HTTP_NO_AUTH */
	int64_t deadline_ms;      /* 0: the client's; HTTP_NONE: none (and no retry back-off cap) */
	int64_t stall_ms;         /* 0: the client's; HTTP_NONE: may idle forever */
	int64_t min_rate;         /* 0: the client's floor; HTTP_NONE: none (a watch) */
	http_data_fn on_data;     /* set: a 2xx body is streamed here, not buffered */
	void *arg;                /* on_data's */
	size_t max_body;          /* 0: the client's max_body */
	struct http_abort *abort; /* NULL, or a handle another thread may fire */
};

/* What came back. Zero it before the first http_do(); free what it holds
 * with http_response_clear(). */
struct http_response {
	int status;             /* the last attempt's HTTP status, 0 when there was none */
	char *body;             /* owned, NUL-terminated: the buffered 2xx body, or after a
	                         * failure the error body (at most 64 KiB); NULL when streamed */
	size_t len;             /* bytes in body */
	char content_type[128]; /* "" when none */
	uint64_t received;      /* body bytes of the last attempt, streamed or buffered */
	unsigned attempts;      /* requests sent for this call (retries and 401 refresh included) */
};

/* Why a call failed. A plain value: no heap. */
struct http_error {
	int err;                      /* positive errno (0 after success) */
	int http_status;              /* 0 when no response came */
	int grpc_code;                /* the code in the error body, -1 when none */
	int exit_code;                /* the CLI's exit status (scriptum(1), EXIT STATUS) */
	char call[64];                /* the request's call name */
	char message[ERRMAP_MSG_MAX]; /* the API's message, or what failed on the wire */
};

/*
 * Performs a call: attempts, retries and back-off within the deadline.
 * Returns 0 for a 2xx answer (resp holds it), or -errno and *err: from the
 * status and error body (errmap: -ENOENT, -EACCES, -EAGAIN once retries are
 * spent, ...), -ETIMEDOUT (deadline, stall, or below the rate floor: "the
 * transfer fell below R bytes/s (N bytes in the last W s)"), -EIO (no connection, a body
 * cut short, TLS), -EINTR (http_abort()), -EMSGSIZE (an answer too
 * large: a body over max_body, headers over 256 KiB, one header line over
 * curl's 100 KiB; the message says "the server's answer is too large (N
 * bytes, limit M)"), -ENOMEM, or on_data's own error. resp and err may be NULL;
 * resp's previous body is freed first. Thread-safe.
 */
int http_do(struct http_client *c, const struct http_request *rq, struct http_response *resp,
            struct http_error *err);

/* Frees what r holds (not r) and zeroes it. */
void http_response_clear(struct http_response *r);

/*
 * Takes every secret c uses out of msg (a string in a buffer of size
 * bytes), in place: the tokens it has read or fetched (the last few), the
 * OAuth client secret, the organization id. The one redaction of the
 * project (redact.c): every message that may hold the server's text goes
 * through it, and http_do() has already put e->message through it. c may
 * be NULL. Thread-safe.
 */
void http_redact(struct http_client *c, char *msg, size_t size);

/*
 * Sets e's outcome for a failure a layer found itself (e->call is kept):
 * err (a positive errno), http_status (0: no answer behind it), no gRPC
 * code, errmap's exit status for err, and the message. Returns -err, so
 * that `return http_error_set(e, EPROTO, 200, ...)` fails a call in one
 * line. The one filler of a failure for http.c, api.c and listing.c.
 */
int http_error_set(struct http_error *e, int err, int http_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int http_error_vset(struct http_error *e, int err, int http_status, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* Writes "GetThread: <message> (HTTP 404, NOT_FOUND)" into buf; returns
 * what snprintf() returns. */
int http_error_string(const struct http_error *e, char *buf, size_t len);

/*
 * Aborting from another thread. A handle given in http_request.abort;
 * http_abort() makes every call using it end promptly with -EINTR, in a
 * transfer or in a back-off sleep, and every later call at once. One
 * handle may serve several calls, also concurrently.
 */
struct http_abort *http_abort_new(void); /* NULL when out of memory */
void http_abort(struct http_abort *a);   /* any thread, any time, idempotent */
bool http_aborted(struct http_abort *a);
void http_abort_free(struct http_abort *a); /* no call may still use it; NULL is fine */

/* Counters since the client was made. */
struct http_stats {
	uint64_t calls;         /* http_do() calls and OAuth token requests */
	uint64_t attempts;      /* requests sent */
	uint64_t retries;       /* attempts after a back-off */
	uint64_t connects;      /* new connections made */
	uint64_t failures;      /* calls that failed */
	uint64_t received;      /* body bytes */
	uint64_t token_fetches; /* OAuth token requests */
};
void http_client_stats(struct http_client *c, struct http_stats *out);
/* The largest body the client buffers (http_options.max_body). */
size_t http_max_body(const struct http_client *c);

/*
 * Percent-encodes s for one path segment or query value: A-Z a-z 0-9 - . _ ~
 * are kept, every other byte becomes %XX, and so do the dots of "." and ".."
 * (which would otherwise be dot-segments). Writes a NUL-terminated string
 * into out; returns its length, or -ENAMETOOLONG (out then "") when it
 * needs more than outlen bytes.
 */
int http_escape(const char *s, char *out, size_t outlen);

/* The same into a new string (free() it); NULL when out of memory. */
char *http_escape_dup(const char *s);

#endif
