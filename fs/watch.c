/*
 * Watches of threads (see watch.h): one pthread per followed thread runs
 * WatchThread, taking a dropped stream up again, and records each event as
 * a line of the thread's `events` text. Records are looked at under one
 * mutex; the streams and the kernel notifications happen outside it.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "dynbuf.h"
#include "fs.h"
#include "tree.h"
#include "watch.h"

#define FIRST_WAIT_MS 10000 /* how long a reader waits for the first event */
#define RETRY_MIN_MS  250
#define RETRY_MAX_MS  5000

struct watch {
	char *id;
	struct watches *owner;
	pthread_t thread;
	bool started; /* the pthread exists (join it) */
	bool done;    /* ... and has ended */
	struct http_abort *abort;

	struct dynbuf text; /* NDJSON of the events, up to WATCH_MAX_TEXT */
	bool final;         /* the thread ended: the text is complete */
	bool first;         /* the first event (or a failure) has come */
	int err;            /* why the watch could not start, when no event came */
	bool capped;        /* WATCH_MAX_TEXT reached: later events are not kept */
	enum model_thread_status last_status;
	char last_step[128];
	int64_t used_ms;
	struct watch *next;
};

struct watches {
	struct mount *m;
	struct fuse_session *se;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an event came, or a watch ended */
	struct watch *list;
	size_t n;
	bool closing;
};

struct watches *
watches_new(struct mount *m, void *se)
{
	struct watches *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->m = m;
	w->se = se;
	pthread_mutex_init(&w->lock, NULL);
	clk_cond_init(&w->cond);
	return w;
}

static void
watch_destroy(struct watch *x)
{
	http_abort_free(x->abort);
	dynbuf_free(&x->text);
	free(x->id);
	free(x);
}

/* Stops x's stream and waits for its thread. Called without the lock. */
static void
watch_stop(struct watch *x)
{
	http_abort(x->abort);
	if (x->started)
		pthread_join(x->thread, NULL);
}

void
watches_free(struct watches *w)
{
	struct watch *x, *next;

	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->closing = true;
	x = w->list;
	w->list = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; x != NULL; x = next) {
		next = x->next;
		watch_stop(x);
		watch_destroy(x);
	}
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Tells the kernel that what it holds of thread id's changing files is
 * stale. Outside the lock, in the watch's own thread. */
static void
invalidate(struct watches *w, const char *id)
{
	static const uint32_t changing[] = {
	    INO_THR_DIR,    INO_THR_STATUS, INO_THR_THREAD_JSON, INO_THR_SUMMARY_JSON,
	    INO_THR_EVENTS, INO_THR_ERROR,  INO_THR_YIELDS,      INO_THR_STEPS};
	struct rec *r;

	meta_invalidate(w->m->meta, id);
	if (w->se == NULL || (r = recs_get(w->m->recs, REC_THREAD, id)) == NULL)
		return;
	/* an inode the kernel does not hold answers ENOENT: nothing to do */
	if (recs_held(w->m->recs, r))
		for (size_t i = 0; i < sizeof(changing) / sizeof(changing[0]); i++)
			fuse_lowlevel_notify_inval_inode(
			    w->se, ino_make(REC_THREAD, r->slot, changing[i]), 0, 0);
	recs_put(w->m->recs, r);
}

/* Appends one line. Under the lock. */
static void
append(struct watch *x, const char *line)
{
	size_t n = strlen(line);

	if (x->capped || n + 1 > WATCH_MAX_TEXT - x->text.len) {
		if (!x->capped)
			log_msg(LOG_WARNING, "thread %s: events past %zu bytes are not kept", x->id,
			        WATCH_MAX_TEXT);
		x->capped = true;
		return;
	}
	/* the line and its newline, or neither (out of memory: the event is
	 * not kept, as a reader of the file would see no line of it) */
	if (dynbuf_reserve(&x->text, x->text.len + n + 1) != 0)
		return;
	(void)dynbuf_add(&x->text, line, n);
	(void)dynbuf_add(&x->text, "\n", 1);
}

static int
on_event(const struct model_event *ev, void *arg)
{
	struct watch *x = arg;
	struct watches *w = x->owner;
	json_t *v;
	char *line;
	bool same;

	pthread_mutex_lock(&w->lock);
	/* a reconnect's snapshot of what was already recorded */
	same = ev->type == MODEL_EVENT_SNAPSHOT && x->first && ev->has_thread &&
	       ev->thread.status == x->last_status &&
	       strcmp(ev->thread.current_step_path, x->last_step) == 0;
	pthread_mutex_unlock(&w->lock);
	if (same)
		return 0;
	if ((v = model_event_json(ev)) == NULL)
		return -ENOMEM;
	line = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (line == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&w->lock);
	append(x, line);
	x->first = true;
	if (ev->has_thread) {
		x->last_status = ev->thread.status;
		snprintf(x->last_step, sizeof(x->last_step), "%s", ev->thread.current_step_path);
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	free(line);
	invalidate(w, x->id);
	return 0;
}

/* Sleeps ms unless the watch is stopped first. */
static void
nap(struct watch *x, int64_t ms)
{
	while (ms > 0 && !http_aborted(x->abort)) {
		usleep(50000);
		ms -= 50;
	}
}

static void *
run(void *arg)
{
	struct watch *x = arg;
	struct watches *w = x->owner;
	int64_t backoff = RETRY_MIN_MS;
	struct http_error e;
	int rc;

	for (;;) {
		rc = api_watch(w->m->api, x->id, NULL, on_event, x, HTTP_NONE, x->abort, &e);
		if (rc == 0 || rc == -EINTR || http_aborted(x->abort))
			break;
		pthread_mutex_lock(&w->lock);
		if (rc == -ENOENT || (!x->first && (rc == -EACCES || rc == -EINVAL))) {
			/* no such thread (or no right to it): nothing to follow; a
			 * thread gone after its first events (a server that was
			 * replaced) ends the watch too, its text kept as it was */
			if (!x->first)
				x->err = rc;
			pthread_mutex_unlock(&w->lock);
			errlog_add(w->m->errors, &e);
			break;
		}
		pthread_mutex_unlock(&w->lock);
		if (rc != -EPIPE)
			errlog_add(w->m->errors, &e);
		nap(x, backoff);
		backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
	}
	pthread_mutex_lock(&w->lock);
	if (rc == 0)
		x->final = true;
	else if (!x->first && x->err == 0)
		x->err = rc == -EINTR ? -EIO : rc;
	x->first = true;
	x->done = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (rc == 0)
		invalidate(w, x->id);
	return NULL;
}

/* Watches not looked at for a while, beyond the limit first. Under the
 * lock; the ones taken out are returned for stopping outside it. */
static struct watch *
sweep(struct watches *w)
{
	struct watch **p = &w->list, *out = NULL;
	int64_t now = clk_mono_ms();

	while (*p != NULL) {
		struct watch *x = *p;

		if (now - x->used_ms > WATCH_IDLE_MS || (x->done && !x->final)) {
			*p = x->next;
			x->next = out;
			out = x;
			w->n--;
		} else {
			p = &x->next;
		}
	}
	/* still too many: the least recently used goes */
	while (w->n >= WATCH_MAX && w->list != NULL) {
		struct watch **oldest = &w->list;

		for (p = &w->list; *p != NULL; p = &(*p)->next)
			if ((*p)->used_ms < (*oldest)->used_ms)
				oldest = p;
		struct watch *x = *oldest;

		*oldest = x->next;
		x->next = out;
		out = x;
		w->n--;
	}
	return out;
}

/* The watch of id, started if new, after its first event (or failure).
 * Returns it with the lock held, or NULL (and *err) with it released. */
static struct watch *
get(struct watches *w, const char *id, int *err)
{
	struct watch *x, *gone;
	int64_t deadline = clk_mono_ms() + FIRST_WAIT_MS;

	pthread_mutex_lock(&w->lock);
	for (x = w->list; x != NULL; x = x->next)
		if (strcmp(x->id, id) == 0)
			break;
	if (x == NULL) {
		gone = sweep(w);
		if (gone != NULL) {
			pthread_mutex_unlock(&w->lock);
			for (struct watch *g = gone, *next; g != NULL; g = next) {
				next = g->next;
				watch_stop(g);
				watch_destroy(g);
			}
			return get(w, id, err);
		}
		if (w->closing || (x = calloc(1, sizeof(*x))) == NULL ||
		    (x->id = strdup(id)) == NULL || (x->abort = http_abort_new()) == NULL) {
			if (x != NULL)
				watch_destroy(x);
			pthread_mutex_unlock(&w->lock);
			*err = -ENOMEM;
			return NULL;
		}
		x->owner = w;
		dynbuf_init(&x->text, WATCH_MAX_TEXT);
		if (pthread_create(&x->thread, NULL, run, x) != 0) {
			watch_destroy(x);
			pthread_mutex_unlock(&w->lock);
			*err = -EAGAIN;
			return NULL;
		}
		x->started = true;
		x->next = w->list;
		w->list = x;
		w->n++;
	}
	x->used_ms = clk_mono_ms();
	while (!x->first) {
		int64_t left = deadline - clk_mono_ms();

		if (left <= 0) {
			pthread_mutex_unlock(&w->lock);
			*err = -ETIMEDOUT;
			return NULL;
		}
		clk_cond_wait_until(&w->cond, &w->lock, deadline);
	}
	if (x->text.len == 0 && x->err != 0) {
		*err = x->err;
		pthread_mutex_unlock(&w->lock);
		return NULL;
	}
	return x;
}

int
watches_size(struct watches *w, const char *id, uint64_t *size, bool *final)
{
	struct watch *x;
	int err = 0;

	if ((x = get(w, id, &err)) == NULL)
		return err;
	*size = x->text.len;
	*final = x->final;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

ssize_t
watches_read(struct watches *w, const char *id, void *buf, size_t len, uint64_t off)
{
	struct watch *x;
	int err = 0;

	if ((x = get(w, id, &err)) == NULL)
		return err;
	if (off >= x->text.len) {
		len = 0;
	} else {
		if (len > x->text.len - off)
			len = x->text.len - (size_t)off;
		memcpy(buf, x->text.buf + off, len);
	}
	pthread_mutex_unlock(&w->lock);
	return (ssize_t)len;
}

bool
watches_known(struct watches *w, const char *id, uint64_t *size)
{
	bool found = false;

	pthread_mutex_lock(&w->lock);
	for (struct watch *x = w->list; x != NULL; x = x->next)
		if (strcmp(x->id, id) == 0 && x->first && x->err == 0) {
			*size = x->text.len;
			found = true;
			break;
		}
	pthread_mutex_unlock(&w->lock);
	return found;
}
