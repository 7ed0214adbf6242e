/*
 * What the transport's files share, in the manner of libfuse's fuse_i.h:
 * http.c (the transport), auth.c (its bearer tokens), http_abort.c (the
 * abort handle) and http_error.c (failures): the client's struct, the
 * token source, the abort handle, and the few internals each calls in the
 * others. Private to those files.
 */
#ifndef SCRIPTUM_HTTP_INT_H
#define SCRIPTUM_HTTP_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"
#include "redact.h"

/* A token endpoint's answer. */
#define TOKEN_BODY_MAX ((size_t)64 << 10)

struct slot;

enum auth_kind { AUTH_NONE, AUTH_STATIC, AUTH_FILE, AUTH_OAUTH };

/* Where bearer tokens come from. Everything under lock. */
struct auth {
	enum auth_kind kind;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an OAuth fetch ended */
	char *token;         /* the current token (secret), NULL until first read */
	unsigned gen;        /* bumped whenever token changes */
	bool stale;          /* a 401 said so: re-read or re-fetch before use */

	/* AUTH_FILE: the file, and what it looked like when last read. */
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;

	/* AUTH_OAUTH */
	char *token_url;
	char *client_id;
	char *client_secret; /* secret; NULL when read from secret_file */
	char *secret_file;
	int64_t refresh_at; /* monotonic ms; 0: no expiry known, used until a 401 */
	int64_t expires_at; /* monotonic ms; 0: unknown */
	bool fetching;      /* one thread fetches, the others wait or use the old token */

	struct redact *redact; /* the client's: every token read or fetched goes in */
};

struct http_client {
	char *endpoint; /* without a trailing '/' */
	char *org_id_hdr;
	char *org_name_hdr;
	char *ca_file;
	char *user_agent;
	int64_t connect_ms;
	int64_t deadline_ms;
	int64_t stall_ms;
	int max_attempts;
	int64_t backoff_base_ms;
	int64_t backoff_max_ms;
	size_t max_body;
	unsigned max_idle;
	int64_t margin_ms;
	int64_t min_rate; /* bytes/s; 0: no floor */
	int64_t rate_window_ms;

	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];

	pthread_mutex_t pool_lock;
	struct slot *idle; /* a stack */
	unsigned nidle;

	struct auth auth;
	struct redact *redact; /* owned: every secret in use, for http_redact() */

	_Atomic uint64_t n_calls;
	_Atomic uint64_t n_attempts;
	_Atomic uint64_t n_retries;
	_Atomic uint64_t n_connects;
	_Atomic uint64_t n_failures;
	_Atomic uint64_t n_received;
	_Atomic uint64_t n_token_fetches;
};

/* A call in a transfer, registered with its abort handle so that
 * http_abort() can wake its poll. Lives on the caller's stack. */
struct abort_waiter {
	CURLM *multi;
	struct abort_waiter *next;
};

struct http_abort {
	atomic_bool fired;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* wakes back-off sleeps */
	struct abort_waiter *waiters;
};

/* ---- http_abort.c, for http.c ---- */

/* A transfer's multi, woken when a fires; unregistered when it ends. */
void http_abort_register(struct http_abort *a, struct abort_waiter *w);
void http_abort_unregister(struct http_abort *a, struct abort_waiter *w);
/* Sleeps ms, or less when a fires: then -EINTR. */
int http_abort_sleep(struct http_abort *a, int64_t ms);

/* ---- http.c and http_error.c, for auth.c ---- */

/* A failure with no HTTP answer behind it (or none that matters). */
int http_fail(struct http_error *e, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Frees s after overwriting it (it may hold a secret); NULL is fine. */
void http_wipe_free(char *s);

/* Whether s holds a control byte (it would end up in a header). */
bool http_has_control(const char *s);

/* Whether an option is given (not NULL, not empty); a copy of one, or of
 * NULL (false when out of memory). */
bool http_opt_set(const char *s);
bool http_opt_dup(const char *s, char **out);

/* A call to an absolute URL: attempts, 401 refresh (with use_auth),
 * retries, as http_do() makes them. */
int http_call_run(struct http_client *c, const char *url, const struct http_request *rq,
                  bool use_auth, struct http_response *resp, struct http_error *e);

/* ---- auth.c, for http.c ---- */

/* Sets a up from the options (a->redact already set): a static token, a
 * token file, or OAuth client credentials; 0 or -errno with a message. */
int auth_init(struct auth *a, const struct http_options *o, char *err, size_t errlen);
void auth_free(struct auth *a);

/* A token for the next attempt: *tok (http_wipe_free() it) and its
 * generation, fetched or read again as needed before deadline. */
int auth_get(struct http_client *c, int64_t deadline, struct http_abort *ab, char **tok,
             unsigned *gen, struct http_error *e);

/* A 401 answered a request made with token generation gen: the next
 * auth_get() reads or fetches again. */
void auth_invalidate(struct http_client *c, unsigned gen);

#endif
