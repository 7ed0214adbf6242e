/*
 * The reaper (see reap.h): a thread that wakes every second, and when the
 * thread records outnumber max_threads by a tenth, asks the kernel to
 * invalidate the entries of the least recently used ones. Invalidation is
 * a notification the kernel may act on at once, so it must not come from
 * a thread serving a request: this one serves none.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <errno.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reap.h"
#include "tree.h"

#define REAP_EVERY_MS 1000
#define REAP_BATCH    4096

struct reaper {
	struct mount *m;
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
};

/* Asks the kernel to let go of the oldest thread records beyond the limit. */
static void
reap(struct reaper *r)
{
	size_t limit = r->m->opt.max_threads, n = recs_count(r->m->recs, REC_THREAD), k;
	char **names;

	if (n <= limit + limit / 10)
		return;
	k = n - limit;
	if (k > REAP_BATCH)
		k = REAP_BATCH;
	if ((names = calloc(k, sizeof(*names))) == NULL)
		return;
	k = recs_oldest(r->m->recs, REC_THREAD, names, k);
	for (size_t i = 0; i < k; i++) {
		/* ENOENT: the kernel had no such entry under threads/ (only a
		 * symlink or a step held it); it goes when those go */
		fuse_lowlevel_notify_inval_entry(r->se, INO_THREADS, names[i], strlen(names[i]));
		free(names[i]);
	}
	free(names);
}

static void *
run(void *arg)
{
	struct reaper *r = arg;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		clk_cond_wait_ms(&r->cond, &r->lock, REAP_EVERY_MS);
		if (r->stop)
			break;
		pthread_mutex_unlock(&r->lock);
		reap(r);
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

struct reaper *
reaper_start(struct mount *m, void *se)
{
	struct reaper *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->m = m;
	r->se = se;
	pthread_mutex_init(&r->lock, NULL);
	clk_cond_init(&r->cond);
	if (pthread_create(&r->thread, NULL, run, r) != 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return NULL;
	}
	return r;
}

void
reaper_stop(struct reaper *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
