/*
 * The HTTP transport (libcurl): a pool of connections, the transfer loop
 * with its deadline, stall timeout and abort, retries with back-off, and
 * the one place where a failed call becomes an errno. Bearer tokens come
 * from auth.c (http_int.h holds what the two share).
 *
 * Connections. A client keeps idle slots, each an easy handle with a multi
 * handle of its own. A call takes a slot under the pool lock, runs its
 * transfer with no lock held, and gives the slot back; its connection stays
 * in the slot's multi, so the next call that takes the slot reuses it
 * (slots are reused last-in first-out: the warmest first). DNS answers and
 * TLS sessions are shared between slots through a CURLSH; the connection
 * cache is not, because curl documents a shared connection cache as unsafe
 * between concurrent threads (KNOWN_BUGS, "A shared connection cache is not
 * thread-safe"). A slot per thread in flight gives the same reuse.
 *
 * The transfer loop. Each attempt is driven with curl_multi_perform() and
 * curl_multi_poll(), so the loop checks the deadline and the stall time to
 * the millisecond, and http_abort() ends it at once with
 * curl_multi_wakeup(). CURLOPT_TIMEOUT_MS is set from the remaining
 * deadline as well, as a second guard.
 *
 * The rate floor is curl's CURLOPT_LOW_SPEED_LIMIT/_TIME, measured here
 * rather than set on the handle: curl counts the time its write callback
 * blocks as the server's, and a reader may block it for as long as it
 * likes (the mount's ring waits for a slow reader, a pipe for a pager).
 * So the loop keeps its own clock of the server's time, the reader's
 * time left out, as it does for the stall time.
 *
 * Retries. 429 and 503 mean the server did not act on the request, and so
 * does a failure to connect: those are resent for any method. 502, 504 and
 * a connection lost before the answer may hide a processed request: those
 * are resent only for idempotent calls (GET, or a POST the caller marks
 * HTTP_IDEMPOTENT). Nothing is resent once body bytes reached the caller.
 * Back-off is exponential with full jitter, at least Retry-After, and never
 * past the deadline: a wait that would end after it ends the call instead.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "b64.h"
#include "clock.h"
#include "config.h"
#include "dynbuf.h"
#include "errbuf.h"
#include "errmap.h"
#include "http.h"
#include "http_int.h"
#include "redact.h"

/* An error body is only read for its message: a proxy's page past this is noise. */
#define ERROR_BODY_MAX ((size_t)64 << 10)
/* All of an answer's header lines: real ones need a few KiB, and curl
 * keeps every header line for curl_easy_header(), so they cost memory. */
#define HEADERS_MAX ((size_t)256 << 10)
/* The longest a poll waits between checks when nothing else bounds it. */
#define POLL_MAX_MS 1000
/* A receive buffer large enough for streams of hundreds of MiB/s. */
#define RECV_BUFFER (128L << 10)
/* The rate floor's window is judged every window / RATE_SLICES. */
#define RATE_SLICES 8

/* One reusable transfer context: the easy handle and the multi that holds
 * its connections. Owned by the pool while idle, by one call while taken. */
struct slot {
	CURL *easy;
	CURLM *multi;
	struct slot *next;
};

/* The rate floor of one attempt: the bytes received at each of the last
 * RATE_SLICES + 1 ticks of the server's clock (the reader's time left
 * out), a tick every window / RATE_SLICES from the answer's first byte. */
struct rate {
	int64_t floor;  /* bytes/s; 0: none */
	int64_t window; /* ms */
	int64_t next;   /* the server's clock at the next tick; 0: not started */
	uint64_t at[RATE_SLICES + 1];
	unsigned ticks;
	uint64_t moved; /* when it fell below: the bytes of the last window */
};

/* One attempt's transfer state, shared with curl's callbacks. */
struct xfer {
	CURL *easy;
	const struct http_request *rq;
	size_t cap_ok;      /* cap on a buffered 2xx body */
	struct dynbuf body; /* buffered body (2xx, up to cap_ok) or the start of an
	                     * error body (ERROR_BODY_MAX); owned until handed over */
	long status;        /* known at the first body byte */
	bool streaming;     /* a 2xx body going to rq->on_data */
	bool delivered;     /* on_data has had bytes: no retry */
	bool responded;     /* a response header arrived */
	int cb_err;         /* why a write callback stopped the transfer */
	size_t too_big;     /* with -EMSGSIZE: the bytes seen when it stopped */
	size_t limit;       /* with -EMSGSIZE: the cap they passed */
	bool in_headers;    /* with -EMSGSIZE: the cap was that of the headers */
	size_t head_len;    /* header bytes received */
	bool stalled;       /* the loop gave up for lack of bytes */
	int64_t last_io;    /* monotonic ms of the last byte received or sent */
	int64_t reader_ms;  /* spent in rq->on_data: not the server's time */
	bool slow;          /* the loop gave up: below the rate floor */
	struct rate rate;
	uint64_t bytes;  /* body bytes received */
	CURLcode result; /* curl's verdict */
	char errbuf[CURL_ERROR_SIZE];
};

/* What an attempt's failure allows. */
struct verdict {
	bool retry_safe;        /* the retry rules allow resending */
	bool unauthorized;      /* a 401: refresh the token and retry once */
	int64_t retry_after_ms; /* the server's Retry-After */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void
global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A uniform random number in [0, n], for jitter; n >= 0. */
static uint64_t
jitter(uint64_t n)
{
	static _Thread_local uint64_t state;

	if (state == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		        (uint64_t)(uintptr_t)&ts ^ 0x9e3779b97f4a7c15ULL;
	}
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return n == UINT64_MAX ? state : state % (n + 1);
}

void
http_wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

bool
http_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void
error_init(struct http_error *e, const struct http_request *rq, const char *method)
{
	memset(e, 0, sizeof(*e));
	e->grpc_code = -1;
	if (rq->call != NULL)
		snprintf(e->call, sizeof(e->call), "%s", rq->call);
	else
		snprintf(e->call, sizeof(e->call), "%s %s", method, rq->path ? rq->path : "");
}

/* ---- percent-encoding ---- */

static bool
unreserved(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int
http_escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	/* "." and ".." would be dot-segments, removed from the path by curl */
	bool dots = strcmp(s, ".") == 0 || strcmp(s, "..") == 0;
	size_t n = 0;

	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;
		size_t need = unreserved(ch) && !dots ? 1 : 3;

		if (n + need + 1 > outlen) {
			if (outlen > 0)
				out[0] = '\0';
			return -ENAMETOOLONG;
		}
		if (need == 1) {
			out[n++] = (char)ch;
		} else {
			out[n++] = '%';
			out[n++] = hex[ch >> 4];
			out[n++] = hex[ch & 15];
		}
	}
	if (outlen == 0)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return (int)n;
}

char *
http_escape_dup(const char *s)
{
	size_t size = strlen(s) * 3 + 1;
	char *out = malloc(size);

	if (out != NULL && http_escape(s, out, size) < 0) {
		free(out);
		out = NULL;
	}
	return out;
}

/* ---- the connection pool ---- */

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
	struct http_client *c = arg;

	(void)h;
	(void)access;
	pthread_mutex_lock(&c->share_lock[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *arg)
{
	struct http_client *c = arg;

	(void)h;
	pthread_mutex_unlock(&c->share_lock[data]);
}

static void
slot_free(struct slot *s)
{
	if (s == NULL)
		return;
	if (s->easy != NULL)
		curl_easy_cleanup(s->easy);
	if (s->multi != NULL)
		curl_multi_cleanup(s->multi);
	free(s);
}

/* Takes the warmest idle slot, or makes one. NULL when out of memory. */
static struct slot *
pool_take(struct http_client *c)
{
	struct slot *s;

	pthread_mutex_lock(&c->pool_lock);
	s = c->idle;
	if (s != NULL) {
		c->idle = s->next;
		c->nidle--;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (s != NULL)
		return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	s->easy = curl_easy_init();
	s->multi = curl_multi_init();
	if (s->easy == NULL || s->multi == NULL) {
		slot_free(s);
		return NULL;
	}
	return s;
}

/* Gives a slot back, keeping its connection, or closes it when the pool is full. */
static void
pool_give(struct http_client *c, struct slot *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&c->pool_lock);
	if (c->nidle < c->max_idle) {
		s->next = c->idle;
		c->idle = s;
		c->nidle++;
		s = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	slot_free(s);
}

/* ---- the client ---- */

void
http_options_from_config(struct http_options *o, const struct config *cfg)
{
	memset(o, 0, sizeof(*o));
	o->endpoint = cfg->endpoint;
	o->org_id = cfg->org_id;
	o->org_name = cfg->org_name;
	o->token = cfg->token;
	o->token_file = cfg->token_file;
	o->token_url = cfg->token_url;
	o->client_id = cfg->client_id;
	o->client_secret = cfg->client_secret;
	o->client_secret_file = cfg->client_secret_file;
	o->ca_file = cfg->ca_file;
	o->deadline_ms = cfg->timeout_ms;
	/* configured 0: no floor; unset: the default */
	if (cfg->min_rate == 0)
		o->min_rate = HTTP_NONE;
	else if (cfg->min_rate > 0)
		o->min_rate = cfg->min_rate;
	o->min_rate_window_ms = cfg->min_rate_window_ms;
}

bool
http_opt_set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* A copy of s, or of NULL; false when out of memory. */
bool
http_opt_dup(const char *s, char **out)
{
	*out = NULL;
	if (!http_opt_set(s))
		return true;
	*out = strdup(s);
	return *out != NULL;
}

void
http_client_free(struct http_client *c)
{
	struct slot *s, *next;

	if (c == NULL)
		return;
	for (s = c->idle; s != NULL; s = next) {
		next = s->next;
		slot_free(s);
	}
	if (c->share != NULL)
		curl_share_cleanup(c->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_lock[i]);
	pthread_mutex_destroy(&c->pool_lock);
	auth_free(&c->auth);
	redact_free(c->redact);
	free(c->endpoint);
	free(c->org_id_hdr);
	free(c->org_name_hdr);
	free(c->ca_file);
	free(c->user_agent);
	free(c);
}

/* "name: value" for a header the caller configured; value must be one line. */
static int
header_line(const char *name, const char *value, char **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!http_opt_set(value))
		return 0;
	if (http_has_control(value))
		return errbuf_set(err, errlen, -EINVAL, "%s holds a control character", name);
	if (asprintf(out, "%s: %s", name, value) < 0) {
		*out = NULL;
		return errbuf_set(err, errlen, -ENOMEM, "out of memory");
	}
	return 0;
}

int
http_client_new(const struct http_options *o, struct http_client **out, char *err, size_t errlen)
{
	struct http_client *c;
	size_t n;
	int rc;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return errbuf_set(err, errlen, -ENOMEM, "libcurl: %s",
		                  curl_easy_strerror(global_rc));
	if (!http_opt_set(o->endpoint))
		return errbuf_set(err, errlen, -EINVAL, "no endpoint");
	if ((strncmp(o->endpoint, "http://", 7) != 0 && strncmp(o->endpoint, "https://", 8) != 0) ||
	    http_has_control(o->endpoint))
		return errbuf_set(err, errlen, -EINVAL,
		                  "the endpoint must be an http:// or https:// URL");
	if (http_opt_set(o->ca_file) && access(o->ca_file, R_OK) != 0)
		return errbuf_set(err, errlen, -errno, "ca_file %s: %s", o->ca_file,
		                  strerror(errno));

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return errbuf_set(err, errlen, -ENOMEM, "out of memory");
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_lock[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	rc = -ENOMEM;
	if ((c->redact = c->auth.redact = redact_new()) == NULL ||
	    redact_add(c->redact, REDACT_ORG_ID, o->org_id) != 0) {
		errbuf_set(err, errlen, rc, "out of memory");
		goto fail;
	}
	rc = auth_init(&c->auth, o, err, errlen);
	if (rc != 0)
		goto fail;

	c->connect_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : HTTP_CONNECT_TIMEOUT_MS;
	c->deadline_ms = o->deadline_ms > 0 ? o->deadline_ms : HTTP_DEADLINE_MS;
	c->stall_ms = o->stall_ms > 0 ? o->stall_ms : HTTP_STALL_MS;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : HTTP_MAX_ATTEMPTS;
	c->backoff_base_ms = o->backoff_base_ms > 0 ? o->backoff_base_ms : HTTP_BACKOFF_BASE_MS;
	c->backoff_max_ms = o->backoff_max_ms > 0 ? o->backoff_max_ms : HTTP_BACKOFF_MAX_MS;
	c->max_body = o->max_body > 0 ? o->max_body : HTTP_MAX_BODY;
	c->max_idle = o->max_idle > 0 ? o->max_idle : HTTP_MAX_IDLE;
	c->margin_ms = o->token_margin_ms > 0 ? o->token_margin_ms : HTTP_TOKEN_MARGIN_MS;
	c->min_rate = o->min_rate == HTTP_NONE ? 0 : o->min_rate > 0 ? o->min_rate : HTTP_MIN_RATE;
	c->rate_window_ms =
	    o->min_rate_window_ms > 0 ? o->min_rate_window_ms : HTTP_MIN_RATE_WINDOW_MS;

	rc = -ENOMEM;
	if (!http_opt_dup(o->endpoint, &c->endpoint) || !http_opt_dup(o->ca_file, &c->ca_file) ||
	    !http_opt_dup(http_opt_set(o->user_agent) ? o->user_agent : "libscriptum",
	                  &c->user_agent)) {
		errbuf_set(err, errlen, rc, "out of memory");
		goto fail;
	}
	n = strlen(c->endpoint);
	while (n > 0 && c->endpoint[n - 1] == '/')
		c->endpoint[--n] = '\0';
	rc = header_line("x-organization-id", o->org_id, &c->org_id_hdr, err, errlen);
	if (rc == 0)
		rc = header_line("x-organization-name", o->org_name, &c->org_name_hdr, err, errlen);
	if (rc != 0)
		goto fail;

	rc = -ENOMEM;
	c->share = curl_share_init();
	if (c->share == NULL || curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION)) {
		errbuf_set(err, errlen, rc, "libcurl: cannot make a share handle");
		goto fail;
	}
	*out = c;
	return 0;
fail:
	http_client_free(c);
	return rc;
}

void
http_client_stats(struct http_client *c, struct http_stats *out)
{
	out->calls = atomic_load(&c->n_calls);
	out->attempts = atomic_load(&c->n_attempts);
	out->retries = atomic_load(&c->n_retries);
	out->connects = atomic_load(&c->n_connects);
	out->failures = atomic_load(&c->n_failures);
	out->received = atomic_load(&c->n_received);
	out->token_fetches = atomic_load(&c->n_token_fetches);
}

size_t
http_max_body(const struct http_client *c)
{
	return c->max_body;
}

void
http_response_clear(struct http_response *r)
{
	if (r == NULL)
		return;
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- one attempt ---- */

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	(void)ptr;
	x->responded = true;
	x->last_io = clk_mono_ms();
	x->head_len += n;
	if (x->head_len > HEADERS_MAX) {
		x->cb_err = -EMSGSIZE;
		x->too_big = x->head_len;
		x->limit = HEADERS_MAX;
		x->in_headers = true;
		return 0;
	}
	return n;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	int rc;

	if (x->status == 0) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		x->streaming = x->rq->on_data != NULL && x->status / 100 == 2;
		if (x->body.buf == NULL) /* the first body bytes: their cap */
			dynbuf_init(&x->body, x->status / 100 == 2 ? x->cap_ok : ERROR_BODY_MAX);
	}
	x->last_io = clk_mono_ms();
	x->bytes += n;
	if (x->streaming) {
		int64_t t0 = x->last_io;

		rc = x->rq->on_data(ptr, n, x->rq->arg);

		/* time spent in the reader is not the server stalling, nor
		 * the server being slow */
		x->last_io = clk_mono_ms();
		x->reader_ms += x->last_io - t0;
		if (rc != 0) {
			x->cb_err = rc < 0 ? rc : -EIO;
			return 0;
		}
		x->delivered = true;
		return n;
	}
	if (x->status / 100 != 2) {
		/* keep the start of an error body; the rest only costs memory */
		size_t room = x->body.max - x->body.len;

		(void)dynbuf_add(&x->body, ptr, n < room ? n : room);
		return n;
	}
	if ((rc = dynbuf_add(&x->body, ptr, n)) != 0) {
		x->cb_err = rc == -ENOMEM ? -ENOMEM : -EMSGSIZE;
		x->too_big = x->body.len + n;
		x->limit = x->cap_ok;
		return 0;
	}
	return n;
}

/*
 * The rate floor at monotonic time now: true when the last window brought
 * fewer than floor * window bytes (r->moved says how many). Otherwise
 * lowers *wait to the next tick. Starts at the answer's first byte: the
 * wait for it is the stall time's and the deadline's.
 */
static bool
rate_below(struct xfer *x, int64_t now, int64_t *wait)
{
	struct rate *r = &x->rate;
	int64_t clock = now - x->reader_ms, slice = r->window / RATE_SLICES;
	uint64_t got = x->bytes + x->head_len;

	if (r->floor <= 0 || !x->responded)
		return false;
	if (slice < 1)
		slice = 1;
	if (r->next == 0) {
		r->at[0] = got;
		r->ticks = 1;
		r->next = clock + slice;
	}
	for (; clock >= r->next; r->next += slice) {
		uint64_t then;

		r->at[r->ticks % (RATE_SLICES + 1)] = got;
		then = r->at[(r->ticks + 1) % (RATE_SLICES + 1)];
		r->ticks++;
		if (r->ticks <= RATE_SLICES)
			continue;
		/* a full window: from the oldest tick kept to this one */
		r->moved = got - then;
		if ((double)r->moved * 1000.0 < (double)r->floor * (double)(slice * RATE_SLICES))
			return true;
	}
	if (r->next - clock < *wait)
		*wait = r->next - clock;
	return false;
}

/* Runs the attempt's transfer to its end, or until abort, stall or
 * deadline, or below the rate floor (deadline 0: none; stall 0: none;
 * x->rate.floor 0: none): 0 with x->result, or -EINTR,
 * -ETIMEDOUT, -EIO. */
static int
transfer(struct slot *s, struct xfer *x, int64_t deadline, int64_t stall, struct http_abort *ab)
{
	struct abort_waiter w = {s->multi, NULL};
	int rc = 0, running = 1, left;
	curl_off_t sent = 0, last_sent = 0;
	CURLMsg *m;

	x->result = CURLE_OK;
	if (curl_multi_add_handle(s->multi, s->easy) != CURLM_OK)
		return -EIO;
	http_abort_register(ab, &w);
	x->last_io = clk_mono_ms();
	for (;;) {
		int64_t now, wait = POLL_MAX_MS;

		if (curl_multi_perform(s->multi, &running) != CURLM_OK) {
			rc = -EIO;
			break;
		}
		if (running == 0)
			break;
		if (http_aborted(ab)) {
			rc = -EINTR;
			break;
		}
		now = clk_mono_ms();
		if (stall > 0) {
			/* a large body going up is not a stall either */
			curl_easy_getinfo(s->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
			if (sent != last_sent) {
				last_sent = sent;
				x->last_io = now;
			}
			if (now - x->last_io >= stall) {
				x->stalled = true;
				rc = -ETIMEDOUT;
				break;
			}
			if (x->last_io + stall - now < wait)
				wait = x->last_io + stall - now;
		}
		if (rate_below(x, now, &wait)) {
			x->slow = true;
			rc = -ETIMEDOUT;
			break;
		}
		if (deadline > 0) {
			if (now >= deadline) {
				rc = -ETIMEDOUT;
				break;
			}
			if (deadline - now < wait)
				wait = deadline - now;
		}
		if (curl_multi_poll(s->multi, NULL, 0, (int)wait, NULL) != CURLM_OK) {
			rc = -EIO;
			break;
		}
	}
	while ((m = curl_multi_info_read(s->multi, &left)) != NULL)
		if (m->msg == CURLMSG_DONE)
			x->result = m->data.result;
	curl_multi_remove_handle(s->multi, s->easy);
	http_abort_unregister(ab, &w);
	return rc;
}

static bool
method_idempotent(const char *m)
{
	return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
	       strcmp(m, "DELETE") == 0 || strcmp(m, "OPTIONS") == 0;
}

/* Whether a curl failure may be cured by trying again. */
static bool
transient(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

static int
curl_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return EINVAL;
	case CURLE_FILESIZE_EXCEEDED:
		return EMSGSIZE;
	case CURLE_ABORTED_BY_CALLBACK:
		return EINTR;
	default:
		return EIO;
	}
}

static struct curl_slist *
add_header(struct curl_slist *l, const char *h, bool *ok)
{
	struct curl_slist *n;

	if (!*ok || h == NULL)
		return l;
	n = curl_slist_append(l, h);
	if (n == NULL) {
		*ok = false;
		return l;
	}
	return n;
}

/* The request's headers; *auth_hdr gets the Authorization line (wipe it). */
static struct curl_slist *
make_headers(struct http_client *c, const struct http_request *rq, const char *token,
             char **auth_hdr)
{
	struct curl_slist *l = NULL;
	char accept[160], ctype[160];
	bool ok = true;

	*auth_hdr = NULL;
	if (token != NULL && asprintf(auth_hdr, "Authorization: Bearer %s", token) < 0) {
		*auth_hdr = NULL;
		return NULL;
	}
	snprintf(accept, sizeof(accept), "Accept: %s",
	         rq->accept ? rq->accept : "application/json");
	snprintf(ctype, sizeof(ctype), "Content-Type: %s",
	         rq->content_type ? rq->content_type : "application/json");
	l = add_header(l, *auth_hdr, &ok);
	l = add_header(l, c->org_id_hdr, &ok);
	l = add_header(l, c->org_name_hdr, &ok);
	l = add_header(l, accept, &ok);
	if (rq->body != NULL)
		l = add_header(l, ctype, &ok);
	/* no 100-continue round trip before a large body */
	l = add_header(l, "Expect:", &ok);
	if (!ok) {
		curl_slist_free_all(l);
		return NULL;
	}
	return l;
}

static void
setup_easy(struct http_client *c, CURL *h, struct xfer *x, const char *url, const char *method,
           struct curl_slist *hdrs, int64_t deadline)
{
	const struct http_request *rq = x->rq;
	int64_t connect = c->connect_ms;

	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, RECV_BUFFER);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	if (c->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	if (rq->body != NULL || strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body != NULL ? rq->body : "");
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	if (deadline > 0) {
		int64_t left = deadline - clk_mono_ms();

		if (left < 1)
			left = 1;
		if (connect > left)
			connect = left;
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
	}
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect);
}

/*
 * An answer over a cap: EMSGSIZE (exit status 10, as any answer the
 * client cannot take), never ENOMEM, which would blame this machine.
 * n is the size when known (Content-Length), else the bytes seen so far.
 */
static int
too_large(struct http_error *e, const struct xfer *x, curl_off_t announced)
{
	if (x->in_headers)
		return http_fail(e, EMSGSIZE,
		                 "the server's answer is too large (at least %zu bytes of headers, "
		                 "limit %zu)",
		                 x->too_big, x->limit);
	if (announced > 0 && (uint64_t)announced > x->limit)
		return http_fail(e, EMSGSIZE,
		                 "the server's answer is too large (%lld bytes, limit %zu)",
		                 (long long)announced, x->limit);
	return http_fail(e, EMSGSIZE,
	                 "the server's answer is too large (at least %zu bytes, limit %zu)",
	                 x->too_big, x->limit);
}

/* Below the rate floor: ETIMEDOUT (exit status 8), naming the floor and
 * the bytes the last window brought. */
static int
too_slow(struct http_error *e, const struct rate *r)
{
	bool secs = r->window % 1000 == 0;

	return http_fail(e, ETIMEDOUT,
	                 "the transfer fell below %lld bytes/s (%llu bytes in the last %lld %s)",
	                 (long long)r->floor, (unsigned long long)r->moved,
	                 (long long)(secs ? r->window / 1000 : r->window), secs ? "s" : "ms");
}

/* Whether curl gave up on a header line longer than it takes (7.88 says
 * "out of memory" with no text; 8.x "Too large response headers"): a
 * failure before any body byte, or one whose text says so. */
static bool
header_too_large(const struct xfer *x)
{
	if (x->result == CURLE_OUT_OF_MEMORY && x->bytes == 0)
		return true;
	return strstr(x->errbuf, "oo large response header") != NULL ||
	       strstr(x->errbuf, "bytes header (max") != NULL;
}

/* The failure of an HTTP answer that is not 2xx, from its status and body. */
static int
fail_status(struct http_error *e, int status, const char *body, size_t len)
{
	struct errmap_status st;
	struct errmap m;

	errmap_parse_body(body, len, status, &st);
	m = errmap_map(status, st.code);
	e->err = m.err;
	e->http_status = status;
	e->grpc_code = st.code;
	e->exit_code = m.exit_code;
	snprintf(e->message, sizeof(e->message), "%s", st.message);
	return -m.err;
}

/*
 * One request. Returns 0 for a 2xx answer, else -errno with e filled and
 * *v saying what the retry rules allow. resp gets the status, content type
 * and the body (a buffered 2xx body, or the error body).
 */
static int
attempt(struct http_client *c, struct slot *s, const char *url, const struct http_request *rq,
        const char *method, const char *token, int64_t deadline, int64_t stall,
        struct http_response *resp, struct http_error *e, struct verdict *v)
{
	struct xfer x;
	struct curl_slist *hdrs;
	char *auth_hdr = NULL, *ctype = NULL;
	bool idempotent = method_idempotent(method) || (rq->flags & HTTP_IDEMPOTENT);
	curl_off_t pretransfer = 0, retry_after = 0, announced = -1;
	long connects = 0;
	int rc;

	memset(v, 0, sizeof(*v));
	memset(&x, 0, sizeof(x));
	x.easy = s->easy;
	x.rq = rq;
	x.cap_ok = rq->max_body > 0 ? rq->max_body : c->max_body;
	x.rate.floor = rq->min_rate == HTTP_NONE ? 0
	               : rq->min_rate > 0        ? rq->min_rate
	                                         : c->min_rate;
	x.rate.window = c->rate_window_ms;
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
	resp->status = 0;
	resp->received = 0;
	resp->content_type[0] = '\0';

	hdrs = make_headers(c, rq, token, &auth_hdr);
	if (hdrs == NULL) {
		http_wipe_free(auth_hdr);
		return http_fail(e, ENOMEM, "out of memory");
	}
	setup_easy(c, s->easy, &x, url, method, hdrs, deadline);
	atomic_fetch_add(&c->n_attempts, 1);
	resp->attempts++;
	rc = transfer(s, &x, deadline, stall, rq->abort);

	curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
	atomic_fetch_add(&c->n_connects, (uint64_t)connects);
	atomic_fetch_add(&c->n_received, x.bytes);
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &x.status);
	curl_easy_getinfo(s->easy, CURLINFO_CONTENT_TYPE, &ctype);
	curl_easy_getinfo(s->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
	curl_easy_getinfo(s->easy, CURLINFO_RETRY_AFTER, &retry_after);
	curl_easy_getinfo(s->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
	resp->status = (int)x.status;
	resp->received = x.bytes;
	if (ctype != NULL)
		snprintf(resp->content_type, sizeof(resp->content_type), "%s", ctype);
	/* the handle must keep no pointer to x or to what is freed here */
	curl_easy_reset(s->easy);
	curl_slist_free_all(hdrs);
	http_wipe_free(auth_hdr);

	if (rc == -EINTR) {
		rc = http_fail(e, EINTR, "aborted");
	} else if (rc == -ETIMEDOUT && x.stalled) {
		rc = http_fail(e, ETIMEDOUT, "no data from the server for %lld ms",
		               (long long)stall);
	} else if (rc == -ETIMEDOUT && x.slow) {
		rc = too_slow(e, &x.rate);
	} else if (rc == -ETIMEDOUT) {
		rc = http_fail(e, ETIMEDOUT, "no answer within the deadline");
	} else if (rc != 0) {
		rc = http_fail(e, EIO, "libcurl's transfer loop failed");
	} else if (x.cb_err == -EMSGSIZE && x.limit > 0) {
		rc = too_large(e, &x, announced);
	} else if (x.result != CURLE_OK && header_too_large(&x)) {
		rc = http_fail(e, EMSGSIZE,
		               "the server's answer is too large (a header of more than %d bytes, "
		               "limit %d)",
		               CURL_MAX_HTTP_HEADER, CURL_MAX_HTTP_HEADER);
	} else if (x.cb_err != 0) {
		rc = http_fail(e, -x.cb_err, "the reader stopped the transfer: %s",
		               strerror(-x.cb_err));
	} else if (x.result != CURLE_OK) {
		/* a name that does not resolve is more often a typo than a
		 * hiccup: not transient, so not resent */
		bool unsent = x.result == CURLE_COULDNT_CONNECT ||
		              (x.result == CURLE_OPERATION_TIMEDOUT && pretransfer == 0);

		if (x.result == CURLE_OPERATION_TIMEDOUT && deadline > 0 &&
		    clk_mono_ms() >= deadline)
			rc = http_fail(e, ETIMEDOUT, "no answer within the deadline");
		else
			rc = http_fail(e, curl_errno(x.result), "%s",
			               x.errbuf[0] ? x.errbuf : curl_easy_strerror(x.result));
		v->retry_safe = !x.delivered && transient(x.result) && (unsent || idempotent);
	} else if (x.status / 100 == 2) {
		if (rq->on_data == NULL) {
			if (x.body.buf == NULL && dynbuf_add(&x.body, "", 0) != 0)
				return http_fail(e, ENOMEM, "out of memory");
			resp->body = dynbuf_take(&x.body, &resp->len);
		}
		return 0;
	} else {
		int st = (int)x.status;

		rc = fail_status(e, st, x.body.buf, x.body.len);
		v->unauthorized = st == 401;
		v->retry_safe =
		    st == 429 || st == 503 ||
		    (idempotent && (st == 502 || st == 504 || errmap_retryable(st, e->grpc_code)));
		v->retry_after_ms = (int64_t)retry_after * 1000;
	}
	/* an error body stays with the response, for the caller's details;
	 * part of a 2xx body is no answer at all */
	if (x.status / 100 != 2 && x.status != 0)
		resp->body = dynbuf_take(&x.body, &resp->len);
	else
		dynbuf_free(&x.body);
	return rc;
}

/* ---- calls ---- */

/* Back-off before retry n (0-based): full jitter over an exponential cap. */
static int64_t
backoff(struct http_client *c, int n)
{
	int64_t cap = c->backoff_base_ms;

	for (int i = 0; i < n && cap < c->backoff_max_ms; i++)
		cap *= 2;
	if (cap > c->backoff_max_ms)
		cap = c->backoff_max_ms;
	return (int64_t)jitter((uint64_t)cap);
}

/* A call to an absolute URL: attempts, 401 refresh, retries. */
int
http_call_run(struct http_client *c, const char *url, const struct http_request *rq, bool use_auth,
              struct http_response *resp, struct http_error *e)
{
	const char *method = rq->method ? rq->method : rq->body ? "POST" : "GET";
	int64_t dl = rq->deadline_ms != 0 ? rq->deadline_ms : c->deadline_ms;
	int64_t deadline = dl == HTTP_NONE ? 0 : clk_mono_ms() + dl;
	int64_t stall = rq->stall_ms != 0 ? rq->stall_ms : c->stall_ms;
	bool refreshable = c->auth.kind == AUTH_FILE || c->auth.kind == AUTH_OAUTH;
	bool refreshed = false;
	unsigned gen = 0, refused_gen = 0;
	struct slot *s = NULL;
	char *token = NULL;
	int rc = 0, retries = 0;

	if (stall == HTTP_NONE)
		stall = 0;
	use_auth = use_auth && c->auth.kind != AUTH_NONE && !(rq->flags & HTTP_NO_AUTH);
	error_init(e, rq, method);
	atomic_fetch_add(&c->n_calls, 1);
	for (;;) {
		struct verdict v;
		int64_t wait;

		if (http_aborted(rq->abort)) {
			rc = http_fail(e, EINTR, "aborted");
			break;
		}
		if (deadline > 0 && clk_mono_ms() >= deadline) {
			if (rc == 0)
				rc = http_fail(e, ETIMEDOUT, "no answer within the deadline");
			break;
		}
		if (use_auth) {
			int arc;

			http_wipe_free(token);
			arc = auth_get(c, deadline, rq->abort, &token, &gen, e);
			if (arc != 0) {
				rc = arc;
				break;
			}
			/* the token was re-read after a 401 and has not changed:
			 * the 401 (still in e) stands */
			if (refreshed && gen == refused_gen && rc != 0)
				break;
		}
		if (s == NULL && (s = pool_take(c)) == NULL) {
			rc = http_fail(e, ENOMEM, "out of memory");
			break;
		}
		rc = attempt(c, s, url, rq, method, token, deadline, stall, resp, e, &v);
		if (rc == 0)
			break;
		if (v.unauthorized && use_auth && refreshable && !refreshed) {
			refreshed = true;
			refused_gen = gen;
			auth_invalidate(c, gen);
			continue;
		}
		if (!v.retry_safe || (rq->flags & HTTP_NO_RETRY) || retries + 1 >= c->max_attempts)
			break;
		wait = backoff(c, retries);
		if (v.retry_after_ms > wait)
			wait = v.retry_after_ms;
		if (deadline > 0 && clk_mono_ms() + wait >= deadline)
			break;
		if (http_abort_sleep(rq->abort, wait) != 0) {
			rc = http_fail(e, EINTR, "aborted");
			break;
		}
		retries++;
		atomic_fetch_add(&c->n_retries, 1);
	}
	pool_give(c, s);
	if (rc != 0) {
		atomic_fetch_add(&c->n_failures, 1);
		http_redact(c, e->message, sizeof(e->message));
	}
	http_wipe_free(token);
	return rc;
}

int
http_do(struct http_client *c, const struct http_request *rq, struct http_response *resp,
        struct http_error *err)
{
	struct http_response own = {0};
	struct http_error ignored;
	char *url;
	int rc;

	if (err == NULL)
		err = &ignored;
	if (resp == NULL)
		resp = &own;
	else
		http_response_clear(resp);
	if (rq->path == NULL || rq->path[0] != '/' || http_has_control(rq->path)) {
		error_init(err, rq, rq->method ? rq->method : "GET");
		return http_fail(err, EINVAL, "the path must start with '/' and be one line");
	}
	if (asprintf(&url, "%s%s", c->endpoint, rq->path) < 0) {
		error_init(err, rq, rq->method ? rq->method : "GET");
		return http_fail(err, ENOMEM, "out of memory");
	}
	rc = http_call_run(c, url, rq, true, resp, err);
	free(url);
	http_response_clear(&own);
	return rc;
}
