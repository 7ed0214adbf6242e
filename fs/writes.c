/*
 * The writable files of the mount (see fs.h): scripts/<name>/new and
 * versions/<n>/new, threads/<id>/cancel and threads/<id>/resume. Each open
 * file gathers the bytes written into it and does its one action when it
 * is closed:
 *
 *	$ echo '{"title": "Q4"}' > scripts/approval/new	# CreateThread, at close
 *	$ readlink scripts/approval/latest			# the thread it made
 *	../../../threads/thr_5iab2u6rmrlr
 *	$ echo '{"value": "approve"}' > threads/thr_5iab2u6rmrlr/resume
 *	$ echo > threads/thr_x2k/cancel				# anything cancels
 *	$ python3 -c 'f = open("scripts/echo/new", "w"); f.write("{oops"); f.close()'
 *	OSError: [Errno 22] Invalid argument			# close(): not JSON, not sent
 *
 * One open file is one struct wfile, shared by every dup of its descriptor
 * and so by several FUSE worker threads at once. Its state machine:
 *
 *	IDLE --flush with new bytes--> SENDING --success--> DONE
 *	  ^                               |
 *	  +-------------failure-----------+
 *
 * SENDING is entered and left under the lock, and the lock is not held
 * across the validation and the API call in between: writers, truncaters
 * and other flushes wait on the condition variable meanwhile, so the bytes
 * being sent stay put and only one flush ever sends. A flush that waited
 * gets the outcome of the one that sent.
 *
 * The rule for a failed action: the file remembers the failure, and a
 * later flush sends again only when bytes were written (or cut) since that
 * attempt. Without new bytes it returns the same error and sends nothing,
 * so the close of a dup cannot make a second CreateThread out of the same
 * bytes, and every close of the file reports that it has not done its
 * thing. After success, flushes return 0 and do nothing, writes and
 * truncates fail with -EBADF.
 */
#include "fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynbuf.h"
#include "errmap.h"
#include "jsontext.h"

enum wstate {
	W_IDLE,    /* taking bytes; no action done (maybe one failed) */
	W_SENDING, /* one flush is validating and calling the API, unlocked */
	W_DONE,    /* the action succeeded: answer set, no more bytes */
};

struct wfile {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* broadcast when SENDING ends */

	enum write_kind kind;
	char *script; /* owned; "" unless WRITE_NEW */
	char *thread; /* owned; "" unless WRITE_CANCEL or WRITE_RESUME */
	int64_t version;
	bool load_env;

	struct dynbuf data; /* the file, up to FS_INPUT_MAX bytes: its len is the
	                     * size, the end of the furthest byte written */
	bool changed;       /* bytes written or cut since the last attempt */

	enum wstate state;
	int last_rc; /* the last attempt's result (0 or -errno) */

	char *answer; /* owned, NULL until DONE (for new: "<thread id>\n") */
	size_t answer_len;

	/* JSON checked as it is written, while writes come in order from the
	 * start: a write that makes the input impossible fails at once, where
	 * even a program that ignores close() (bash's echo) reports it. */
	struct jsontext *early; /* owned; NULL once writes stop being in order */
	size_t early_at;        /* bytes fed to it */

	/* a write was refused as too big: the input is incomplete, so nothing
	 * may be sent until the file is truncated */
	bool too_big;
};

struct wfile *
wfile_new(const struct wfile_target *t)
{
	struct wfile *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	dynbuf_init(&w->data, FS_INPUT_MAX);
	w->kind = t->kind;
	w->version = t->version;
	w->load_env = t->load_env;
	w->script = strdup(t->script != NULL ? t->script : "");
	w->thread = strdup(t->thread != NULL ? t->thread : "");
	if (w->script == NULL || w->thread == NULL) {
		free(w->script);
		free(w->thread);
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	clk_cond_init(&w->cond);
	/* without it (out of memory) the check waits for the flush */
	if (w->kind != WRITE_CANCEL)
		w->early = jsontext_new(JSONTEXT_CHECK, NULL, NULL);
	return w;
}

void
wfile_free(struct wfile *w)
{
	if (w == NULL)
		return;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->script);
	free(w->thread);
	dynbuf_free(&w->data);
	free(w->answer);
	jsontext_free(w->early);
	free(w);
}

/* Waits until no flush is sending. Under the lock. */
static void
wait_idle(struct wfile *w)
{
	while (w->state == W_SENDING)
		pthread_cond_wait(&w->cond, &w->lock);
}

/* Sets the size to size (<= FS_INPUT_MAX), a hole up to it reading as NUL
 * bytes. Under the lock; 0 or -ENOMEM. */
static int
resize(struct wfile *w, size_t size)
{
	int rc;

	if (size == w->data.len)
		return 0;
	if ((rc = dynbuf_reserve(&w->data, size)) != 0)
		return rc;
	if (size > w->data.len)
		memset(w->data.buf + w->data.len, 0, size - w->data.len);
	dynbuf_setlen(&w->data, size);
	w->changed = true;
	return 0;
}

ssize_t
wfile_write(struct wfile *w, const void *buf, size_t len, off_t off)
{
	size_t at, end;
	int rc;

	if (off < 0)
		return -EINVAL;
	at = (size_t)off;
	if (at > FS_INPUT_MAX || len > FS_INPUT_MAX - at) {
		/* refused whatever the state, and the file is spoiled: what it
		 * holds is only the start of what the writer meant */
		pthread_mutex_lock(&w->lock);
		if (w->state != W_DONE)
			w->too_big = true;
		pthread_mutex_unlock(&w->lock);
		return -EFBIG;
	}
	pthread_mutex_lock(&w->lock);
	wait_idle(w);
	if (w->state == W_DONE) {
		pthread_mutex_unlock(&w->lock);
		return -EBADF;
	}
	if (len == 0) { /* like pwrite(2): no bytes, no change of size */
		pthread_mutex_unlock(&w->lock);
		return 0;
	}
	if (w->early != NULL && at == w->early_at && at == w->data.len) {
		if (jsontext_feed(w->early, buf, len) == -EINVAL) {
			/* the bytes so far can begin no JSON value: refuse these. The
			 * checker has seen them, so from here on the flush checks. */
			jsontext_free(w->early);
			w->early = NULL;
			pthread_mutex_unlock(&w->lock);
			return -EINVAL;
		}
		w->early_at += len;
	} else if (w->early != NULL) {
		jsontext_free(w->early); /* out of order: the flush decides */
		w->early = NULL;
	}
	end = at + len;
	if ((rc = resize(w, end > w->data.len ? end : w->data.len)) != 0) {
		pthread_mutex_unlock(&w->lock);
		return rc;
	}
	memcpy(w->data.buf + at, buf, len);
	w->changed = true;
	pthread_mutex_unlock(&w->lock);
	return (ssize_t)len;
}

/* Shrinking is what O_TRUNC does; growing makes a hole, as ftruncate(2) of
 * a plain file would (NUL bytes: not JSON, so a grown file fails its flush
 * unless it is written over). */
int
wfile_truncate(struct wfile *w, off_t size)
{
	int rc;

	if (size < 0)
		return -EINVAL;
	if ((uint64_t)size > FS_INPUT_MAX)
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	wait_idle(w);
	rc = w->state == W_DONE ? -EBADF : resize(w, (size_t)size);
	if (rc == 0)
		w->too_big = false;
	if (rc == 0 && size == 0 && w->kind != WRITE_CANCEL) {
		/* O_TRUNC: the early check starts again */
		jsontext_free(w->early);
		w->early = jsontext_new(JSONTEXT_CHECK, NULL, NULL);
		w->early_at = 0;
	} else if (rc == 0 && w->early != NULL && (size_t)size != w->early_at) {
		jsontext_free(w->early);
		w->early = NULL;
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Names a call as the API layer does ("CreateThread echo") and fails it
 * before anything is sent, into *e. */
static int
local_failure(struct http_error *e, const char *call, const char *what, int err,
              const char *message)
{
	memset(e, 0, sizeof(*e));
	e->err = err;
	e->grpc_code = -1;
	e->exit_code = errmap_exit_code(err);
	snprintf(e->call, sizeof(e->call), "%s %s", call, what);
	snprintf(e->message, sizeof(e->message), "%s", message);
	return -err;
}

/* Validates and sends. Runs unlocked, in SENDING, so w->data.buf and w->data.len
 * stay as they are. 0 with *out filled (clear it), or -errno with *e. */
static int
act(struct wfile *w, struct api *api, struct model_thread *out, struct http_error *e)
{
	const char *call = w->kind == WRITE_NEW      ? "CreateThread"
	                   : w->kind == WRITE_RESUME ? "ResumeThread"
	                                             : "CancelThread";
	const char *what = w->kind == WRITE_NEW ? w->script : w->thread;
	char why[200], msg[256];

	if (w->kind != WRITE_CANCEL &&
	    jsontext_check(w->data.buf, w->data.len, why, sizeof(why)) != 0) {
		snprintf(msg, sizeof(msg), "the bytes written are not JSON (%s); nothing was sent",
		         why);
		return local_failure(e, call, what, EINVAL, msg);
	}
	/* JSON holds no NUL byte, so buf is the whole text as a C string */
	switch (w->kind) {
	case WRITE_NEW: {
		struct api_create rq = {.script_name = w->script,
		                        .version = w->version,
		                        .input_json = w->data.buf,
		                        .load_env = w->load_env};

		return api_create_thread(api, &rq, out, e);
	}
	case WRITE_RESUME:
		return api_resume_thread(api, w->thread, w->data.buf, out, e);
	case WRITE_CANCEL:
		return api_cancel_thread(api, w->thread, out, e);
	}
	return local_failure(e, "write", what, EINVAL, "unknown kind of file");
}

int
wfile_flush(struct wfile *w, struct api *api, struct errlog *log, struct model_thread *created,
            bool *made)
{
	struct model_thread t = {0};
	struct http_error e;
	char *answer = NULL;
	size_t answer_len = 0;
	int rc;

	if (made != NULL)
		*made = false;
	pthread_mutex_lock(&w->lock);
	wait_idle(w);
	if (w->too_big) {
		pthread_mutex_unlock(&w->lock);
		return -EFBIG;
	}
	if (w->state == W_DONE || w->data.len == 0 || !w->changed) {
		/* done, nothing to send, or nothing new since a failed attempt */
		rc = w->state == W_DONE || w->data.len == 0 ? 0 : w->last_rc;
		pthread_mutex_unlock(&w->lock);
		return rc;
	}
	w->state = W_SENDING;
	w->changed = false;
	pthread_mutex_unlock(&w->lock);

	rc = act(w, api, &t, &e);
	if (rc != 0) {
		errlog_add(log, &e);
	} else if (w->kind == WRITE_NEW) {
		answer_len = strlen(t.thread_id) + 1;
		/* out of memory here: the thread exists all the same, so the
		 * flush still succeeds, and reads give "" */
		if ((answer = malloc(answer_len + 1)) != NULL)
			snprintf(answer, answer_len + 1, "%s\n", t.thread_id);
		else
			answer_len = 0;
	}

	pthread_mutex_lock(&w->lock);
	w->state = rc == 0 ? W_DONE : W_IDLE;
	w->last_rc = rc;
	w->answer = answer;
	w->answer_len = answer_len;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);

	if (rc == 0 && w->kind == WRITE_NEW && created != NULL && made != NULL) {
		*created = t; /* handed over: the caller clears it */
		*made = true;
	} else {
		model_thread_clear(&t);
	}
	return rc;
}

ssize_t
wfile_read(struct wfile *w, void *buf, size_t len, off_t off)
{
	size_t n = 0;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&w->lock);
	if (w->answer != NULL && (size_t)off < w->answer_len) {
		n = w->answer_len - (size_t)off;
		if (n > len)
			n = len;
		memcpy(buf, w->answer + off, n);
	}
	pthread_mutex_unlock(&w->lock);
	return (ssize_t)n;
}
