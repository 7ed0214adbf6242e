/*
 * The metadata cache (see meta.h). One mutex guards the table; no call is
 * made under it. An item being fetched is marked busy, and whoever else
 * wants it waits on the condition variable for that fetch's outcome, so a
 * burst of `ls -l` on one thread makes one call, not one per file.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "listing.h"
#include "meta.h"

#define NBUCKETS 4096
#define NHINTS   256

/* What the outputs of one script version have been like, so a finished
 * thread's result is asked with its output only where that pays. */
enum hint_state {
	HINT_UNKNOWN, /* none seen: ask for the metadata only (a first output
	               * of 1 GiB must not bring 4 MiB along for a stat) */
	HINT_SMALL,   /* the last one seen was within META_OUTPUT_SMALL */
	HINT_BIG,     /* ... was larger: ask for the metadata only */
};

struct hint {
	uint32_t key; /* a hash of "script\0version"; 0: free */
	uint8_t state;
};

/*
 * The state of one cached answer. Each answer is judged by its own status
 * (doc/SEMANTICS.md, "Freshness"): final when it was given for a finished
 * thread (or, for a step, when the step had completed), else fresh for
 * ttl_ms after it came. Another answer saying the thread has finished
 * never makes this one final; it makes it stale (expire_unfinal), so the
 * next access asks again.
 */
struct item {
	bool have;
	bool busy;  /* a fetch is in progress: wait for it */
	bool final; /* the answer can no longer change */
	int err;    /* the last fetch's failure, for those who waited */
	int64_t at;
};

struct sentry {
	char *path;
	struct item it;
	struct model_step_detail d;
};

struct entry {
	char *id;
	unsigned refs; /* calls in progress that use it: not evictable */
	struct entry *next;
	struct entry *older, *newer; /* LRU, newest at m->newest */

	struct item ti; /* the Thread */
	struct model_thread thread;
	struct item ri; /* the result's metadata */
	struct model_result result;

	struct sentry *steps;
	size_t nsteps, capsteps;

	size_t bytes;
};

struct meta {
	struct api *api;
	struct errlog *log;
	int64_t ttl_ms;
	uint64_t max_bytes;
	pthread_mutex_t lock;
	pthread_cond_t done; /* a fetch finished */
	struct entry *bucket[NBUCKETS];
	struct entry *newest, *oldest;
	uint64_t bytes;
	struct meta_stats stats;
	struct hint hints[NHINTS];
	meta_output_fn *on_output;
	void *on_output_arg;
};

struct meta *
meta_new(struct api *api, struct errlog *log, int64_t ttl_ms, uint64_t max_bytes)
{
	struct meta *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->api = api;
	m->log = log;
	m->ttl_ms = ttl_ms;
	m->max_bytes = max_bytes;
	pthread_mutex_init(&m->lock, NULL);
	clk_cond_init(&m->done);
	return m;
}

static void
entry_destroy(struct entry *e)
{
	model_thread_clear(&e->thread);
	model_result_clear(&e->result);
	for (size_t i = 0; i < e->nsteps; i++) {
		free(e->steps[i].path);
		model_step_detail_clear(&e->steps[i].d);
	}
	free(e->steps);
	free(e->id);
	free(e);
}

void
meta_on_output(struct meta *m, meta_output_fn *fn, void *arg)
{
	m->on_output = fn;
	m->on_output_arg = arg;
}

void
meta_free(struct meta *m)
{
	if (m == NULL)
		return;
	for (struct entry *e = m->newest, *next; e != NULL; e = next) {
		next = e->older;
		entry_destroy(e);
	}
	pthread_cond_destroy(&m->done);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---- the table (lock held) ---- */

static void
lru_unlink(struct meta *m, struct entry *e)
{
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		m->newest = e->older;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		m->oldest = e->newer;
	e->newer = e->older = NULL;
}

static void
lru_front(struct meta *m, struct entry *e)
{
	if (m->newest == e)
		return;
	if (e->newer != NULL || e->older != NULL || m->oldest == e)
		lru_unlink(m, e);
	e->older = m->newest;
	if (m->newest != NULL)
		m->newest->newer = e;
	m->newest = e;
	if (m->oldest == NULL)
		m->oldest = e;
}

/* A rough count of the memory an entry holds. */
static size_t
weigh(const struct entry *e)
{
	size_t n = sizeof(*e) + strlen(e->id);

	if (e->ti.have)
		n += 512 + strlen(e->thread.input_json) + strlen(e->thread.error) +
		     e->thread.n_metadata * 64;
	if (e->ri.have) {
		n += 256 + e->result.n_steps * 256 + e->result.output_len;
		for (size_t i = 0; i < e->result.n_yielded; i++)
			n += 16 + strlen(e->result.yielded_values[i]);
	}
	for (size_t i = 0; i < e->nsteps; i++)
		n += 128 + (e->steps[i].it.have ? 512 + strlen(e->steps[i].d.input_json) +
		                                      strlen(e->steps[i].d.output_json)
		                                : 0);
	return n;
}

static void
reweigh(struct meta *m, struct entry *e)
{
	size_t w = weigh(e);

	m->bytes = m->bytes - e->bytes + w;
	e->bytes = w;
}

static bool
busy(const struct entry *e)
{
	if (e->ti.busy || e->ri.busy)
		return true;
	for (size_t i = 0; i < e->nsteps; i++)
		if (e->steps[i].it.busy)
			return true;
	return false;
}

/* Lets the least recently used entries go until the budget holds. */
static void
trim(struct meta *m)
{
	struct entry *e = m->oldest;

	while (m->bytes > m->max_bytes && e != NULL) {
		struct entry *newer = e->newer;

		if (e->refs == 0 && !busy(e)) {
			struct entry **p = &m->bucket[fs_hash(e->id, NBUCKETS)];

			while (*p != e)
				p = &(*p)->next;
			*p = e->next;
			lru_unlink(m, e);
			m->bytes -= e->bytes;
			m->stats.evictions++;
			entry_destroy(e);
		}
		e = newer;
	}
}

/* The entry for id, made if new, with a reference; NULL when out of memory. */
static struct entry *
entry_get(struct meta *m, const char *id)
{
	unsigned h = fs_hash(id, NBUCKETS);
	struct entry *e;

	for (e = m->bucket[h]; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0)
			break;
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return NULL;
		if ((e->id = strdup(id)) == NULL) {
			free(e);
			return NULL;
		}
		e->next = m->bucket[h];
		m->bucket[h] = e;
		reweigh(m, e);
	}
	e->refs++;
	lru_front(m, e);
	return e;
}

static void
entry_put(struct meta *m, struct entry *e)
{
	e->refs--;
	trim(m);
}

/* Whether an answer may be used as it is. */
static bool
fresh(const struct meta *m, const struct item *it)
{
	return it->have && (it->final || clk_mono_ms() - it->at < m->ttl_ms);
}

#define STALE (INT64_MIN / 2)

/*
 * Makes every answer of e that is not final stale (lock held): an answer
 * said the thread finished (or changed), so what was fetched before about
 * it is old, whatever its age. The newest answer wins; a final one is
 * never touched.
 */
static void
expire_unfinal(struct entry *e)
{
	if (!e->ti.final)
		e->ti.at = STALE;
	if (!e->ri.final)
		e->ri.at = STALE;
	for (size_t i = 0; i < e->nsteps; i++)
		if (!e->steps[i].it.final)
			e->steps[i].it.at = STALE;
}

/* Marks a fetched answer as had now (lock held); a finished thread's
 * answer expires what is older and not final. */
static void
item_got(struct entry *e, struct item *it, bool thread_done, bool final)
{
	it->have = true;
	it->final = final;
	it->at = clk_mono_ms();
	if (thread_done)
		expire_unfinal(e);
}

static void
record(struct meta *m, const struct http_error *he)
{
	if (m->log != NULL)
		errlog_add(m->log, he);
}

/* ---- accessors ---- */

/* How one kind of answer is fetched, copied and cleared. */
struct kind {
	size_t item; /* offsets in struct entry */
	size_t value;
	size_t size;
	int (*fetch)(struct meta *m, const char *id, void *value, struct http_error *he);
	int (*copy)(void *dst, const void *src);
	void (*clear)(void *value);
	bool (*done)(const void *value); /* the answer says the thread finished */
};

/*
 * The answer of kind k for id, copied into out: from the cache when fresh,
 * else fetched, by one caller at a time while the others wait for its
 * outcome (a burst of getattrs on one thread makes one call).
 */
static int
cached(struct meta *m, const char *id, const struct kind *k, void *out)
{
	struct http_error he;
	struct entry *e;
	struct item *it;
	void *fetched;
	bool done;
	int rc;

	if ((fetched = calloc(1, k->size)) == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	if ((e = entry_get(m, id)) == NULL) {
		pthread_mutex_unlock(&m->lock);
		free(fetched);
		return -ENOMEM;
	}
	it = (struct item *)((char *)e + k->item);
	for (;;) {
		if (fresh(m, it)) {
			m->stats.hits++;
			rc = k->copy(out, (char *)e + k->value);
			goto out;
		}
		if (!it->busy)
			break;
		pthread_cond_wait(&m->done, &m->lock);
		if (!it->busy && it->err != 0 && !it->have) {
			rc = it->err;
			goto out;
		}
	}
	it->busy = true;
	m->stats.calls++;
	pthread_mutex_unlock(&m->lock);
	rc = k->fetch(m, id, fetched, &he);
	if (rc != 0)
		record(m, &he);
	pthread_mutex_lock(&m->lock);
	it->busy = false;
	it->err = rc;
	if (rc == 0) {
		k->clear((char *)e + k->value);
		memcpy((char *)e + k->value, fetched, k->size); /* moved: fetched keeps nothing */
		memset(fetched, 0, k->size);
		done = k->done((char *)e + k->value);
		item_got(e, it, done, done);
		reweigh(m, e);
		rc = k->copy(out, (char *)e + k->value);
	}
	pthread_cond_broadcast(&m->done);
out:
	entry_put(m, e);
	pthread_mutex_unlock(&m->lock);
	free(fetched);
	return rc;
}

static int
fetch_thread(struct meta *m, const char *id, void *value, struct http_error *he)
{
	return api_get_thread(m->api, id, value, he);
}

/* The hint slot key of a script version ("script\0version"), never 0. */
static uint32_t
hint_key(const struct model_thread *t)
{
	uint64_t h;
	uint32_t k;
	char v[24];

	snprintf(v, sizeof(v), "%" PRId64, (int64_t)t->version);
	/* the name with its NUL, then the version */
	h = hash_fnv1a(HASH_FNV_BASIS, t->script_name, strlen(t->script_name) + 1);
	k = (uint32_t)hash_mix(hash_fnv1a(h, v, strlen(v)));
	return k != 0 ? k : 1;
}

/* Whether the result of id is best asked with its output (lock held): the
 * thread is finished and its script version's last output was small. *key
 * is its hint key (0 when the thread is not known to be finished). */
static bool
want_output(struct meta *m, const char *id, uint32_t *key)
{
	const struct hint *h;
	struct entry *e;

	*key = 0;
	if (m->on_output == NULL)
		return false;
	for (e = m->bucket[fs_hash(id, NBUCKETS)]; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0)
			break;
	if (e == NULL || !e->ti.have || !model_thread_terminal(e->thread.status))
		return false;
	*key = hint_key(&e->thread);
	h = &m->hints[*key % NHINTS];
	return h->key == *key && h->state == HINT_SMALL;
}

/*
 * A result's metadata. For a finished thread whose script version's last
 * output was small the call asks for the output too, and a whole output is
 * handed to on_output: `grep -r` over many small outputs then costs one
 * GetThreadResult a thread, not two. Every finished thread's answer tells
 * the hint of its script version. The cache keeps only the metadata.
 */
static int
fetch_result(struct meta *m, const char *id, void *value, struct http_error *he)
{
	struct api_result_query q = {.metadata_only = true};
	struct model_result *r = value;
	uint32_t key;
	bool whole;
	int rc;

	pthread_mutex_lock(&m->lock);
	whole = want_output(m, id, &key);
	pthread_mutex_unlock(&m->lock);
	q.metadata_only = !whole;
	if ((rc = api_get_result(m->api, id, &q, r, he)) != 0)
		return rc;
	if (key != 0) {
		pthread_mutex_lock(&m->lock);
		m->hints[key % NHINTS].key = key;
		m->hints[key % NHINTS].state =
		    r->output_total_bytes > META_OUTPUT_SMALL ? HINT_BIG : HINT_SMALL;
		pthread_mutex_unlock(&m->lock);
	}
	if (whole && model_thread_terminal(r->status) && !r->output_truncated &&
	    r->output_data != NULL && r->output_total_bytes >= 0 &&
	    r->output_len == (uint64_t)r->output_total_bytes)
		m->on_output(m->on_output_arg, id, r->output_data, r->output_len);
	free(r->output_data);
	r->output_data = NULL;
	r->output_len = 0;
	return 0;
}

static int
copy_thread(void *dst, const void *src)
{
	return model_thread_copy(dst, src);
}

static int
copy_result(void *dst, const void *src)
{
	return model_result_copy(dst, src);
}

static void
clear_thread(void *v)
{
	model_thread_clear(v);
}

static void
clear_result(void *v)
{
	model_result_clear(v);
}

static bool
done_thread(const void *v)
{
	return model_thread_terminal(((const struct model_thread *)v)->status);
}

static bool
done_result(const void *v)
{
	return model_thread_terminal(((const struct model_result *)v)->status);
}

static const struct kind thread_kind = {
    offsetof(struct entry, ti),
    offsetof(struct entry, thread),
    sizeof(struct model_thread),
    fetch_thread,
    copy_thread,
    clear_thread,
    done_thread,
};

static const struct kind result_kind = {
    offsetof(struct entry, ri),
    offsetof(struct entry, result),
    sizeof(struct model_result),
    fetch_result,
    copy_result,
    clear_result,
    done_result,
};

int
meta_thread(struct meta *m, const char *id, struct model_thread *out)
{
	return cached(m, id, &thread_kind, out);
}

int
meta_result(struct meta *m, const char *id, struct model_result *out)
{
	return cached(m, id, &result_kind, out);
}

/* The step slot for path in e, made if new; NULL when out of memory. */
static struct sentry *
step_slot(struct entry *e, const char *path)
{
	for (size_t i = 0; i < e->nsteps; i++)
		if (strcmp(e->steps[i].path, path) == 0)
			return &e->steps[i];
	if (e->nsteps == e->capsteps) {
		size_t cap = e->capsteps ? e->capsteps * 2 : 8;
		struct sentry *ns = realloc(e->steps, cap * sizeof(*ns));

		if (ns == NULL)
			return NULL;
		e->steps = ns;
		e->capsteps = cap;
	}
	memset(&e->steps[e->nsteps], 0, sizeof(e->steps[0]));
	if ((e->steps[e->nsteps].path = strdup(path)) == NULL)
		return NULL;
	return &e->steps[e->nsteps++];
}

int
meta_step(struct meta *m, const char *id, const char *path, struct model_step_detail *out,
          bool *final)
{
	struct api_result_query q = {.step_path = path, .metadata_only = true};
	struct model_result r;
	struct http_error he;
	struct entry *e;
	struct sentry *s;
	int rc;

	pthread_mutex_lock(&m->lock);
	if ((e = entry_get(m, id)) == NULL) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	for (;;) {
		/* the array may move while we wait: look the slot up each time */
		if ((s = step_slot(e, path)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		/* a completed step never changes, even in a running thread */
		if (fresh(m, &s->it)) {
			m->stats.hits++;
			if (final != NULL)
				*final = s->it.final;
			rc = model_step_detail_copy(out, &s->d);
			goto out;
		}
		if (!s->it.busy)
			break;
		pthread_cond_wait(&m->done, &m->lock);
		if ((s = step_slot(e, path)) == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		if (!s->it.busy && s->it.err != 0 && !s->it.have) {
			rc = s->it.err;
			goto out;
		}
	}
	s->it.busy = true;
	m->stats.calls++;
	pthread_mutex_unlock(&m->lock);
	rc = api_get_result(m->api, id, &q, &r, &he);
	if (rc != 0)
		record(m, &he);
	pthread_mutex_lock(&m->lock);
	s = step_slot(e, path); /* cannot fail: it exists */
	s->it.busy = false;
	s->it.err = rc;
	if (rc == 0) {
		size_t i;

		for (i = 0; i < r.n_step_details; i++)
			if (strcmp(r.step_details[i].step.step_path, path) == 0)
				break;
		if (i == r.n_step_details) {
			rc = s->it.err = -ENOENT;
		} else {
			bool done = model_thread_terminal(r.status);

			model_step_detail_clear(&s->d);
			s->d = r.step_details[i];
			memset(&r.step_details[i], 0, sizeof(r.step_details[i]));
			/* a completed step never changes, even in a running thread */
			item_got(e, &s->it, done, done || s->d.step.status == MODEL_STEP_COMPLETED);
			if (final != NULL)
				*final = s->it.final;
			reweigh(m, e);
			rc = model_step_detail_copy(out, &s->d);
		}
		model_result_clear(&r);
	}
	pthread_cond_broadcast(&m->done);
out:
	entry_put(m, e);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void
meta_seed(struct meta *m, const struct model_thread *t)
{
	struct model_thread copy;
	struct entry *e;

	/* a minimal answer (CreateThread's {"threadId"}) tells nothing to show */
	if (t->thread_id[0] == '\0' || t->status == MODEL_THREAD_UNSPECIFIED ||
	    model_thread_copy(&copy, t) != 0)
		return;
	pthread_mutex_lock(&m->lock);
	if ((e = entry_get(m, t->thread_id)) != NULL) {
		/* a final state is never replaced; a busy one is being fetched anyway */
		if (!e->ti.final && !e->ti.busy) {
			bool done = model_thread_terminal(copy.status);

			model_thread_clear(&e->thread);
			e->thread = copy;
			item_got(e, &e->ti, done, done);
			memset(&copy, 0, sizeof(copy));
			reweigh(m, e);
		}
		entry_put(m, e);
	}
	pthread_mutex_unlock(&m->lock);
	model_thread_clear(&copy);
}

void
meta_invalidate(struct meta *m, const char *id)
{
	pthread_mutex_lock(&m->lock);
	for (struct entry *e = m->bucket[fs_hash(id, NBUCKETS)]; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0) {
			expire_unfinal(e);
			break;
		}
	pthread_mutex_unlock(&m->lock);
}

void
meta_stats(struct meta *m, struct meta_stats *out)
{
	size_t n = 0;

	pthread_mutex_lock(&m->lock);
	*out = m->stats;
	out->bytes = m->bytes;
	for (struct entry *e = m->newest; e != NULL; e = e->older)
		n++;
	out->entries = n;
	pthread_mutex_unlock(&m->lock);
}

/* ---- scripts, versions and listings: the calls tree.c makes ---- */

int
meta_script(struct meta *m, const char *name, struct model_script *out)
{
	struct http_error he;
	int rc = api_get_script(m->api, name, out, &he);

	if (rc != 0 && rc != -ENOENT) /* a miss is an answer, not a failure */
		errlog_add(m->log, &he);
	return rc;
}

int
meta_versions(struct meta *m, const char *name, struct model_version_list *out)
{
	struct http_error he;
	int rc = api_list_versions(m->api, name, out, &he);

	if (rc != 0)
		errlog_add(m->log, &he);
	return rc;
}

/* The newest thread of a script, or -ENOENT when it has none. */
int
meta_latest(struct meta *m, const char *script, char **id)
{
	struct api_list q = {.page_size = 1, .script_name = script};
	struct model_thread_list l;
	struct http_error he;
	int rc;

	if ((rc = api_list_threads(m->api, &q, &l, &he)) != 0) {
		errlog_add(m->log, &he);
		return rc;
	}
	if (l.n_threads == 0 || l.threads[0].thread_id[0] == '\0')
		rc = -ENOENT;
	else if ((*id = strdup(l.threads[0].thread_id)) == NULL)
		rc = -ENOMEM;
	else
		meta_seed(m, &l.threads[0]);
	model_thread_list_clear(&l);
	return rc;
}

/* Whether script has version n. */
int
meta_has_version(struct meta *m, const char *script, int64_t n)
{
	struct model_version_list l;
	struct http_error he;
	int rc;

	if ((rc = api_list_versions(m->api, script, &l, &he)) != 0) {
		errlog_add(m->log, &he);
		return rc;
	}
	rc = -ENOENT;
	for (size_t i = 0; i < l.n_versions; i++)
		if (l.versions[i].version == n)
			rc = 0;
	model_version_list_clear(&l);
	return rc;
}

int
meta_list_threads(struct meta *m, struct listing *l, const struct api_list *q,
                  struct model_thread_list *out)
{
	struct http_error he;
	int rc = listing_threads(l, m->api, q, out, &he);

	if (rc != 0)
		errlog_add(m->log, &he);
	return rc;
}

int
meta_list_scripts(struct meta *m, struct listing *l, int page_size, struct model_script_list *out)
{
	struct http_error he;
	int rc = listing_scripts(l, m->api, page_size, out, &he);

	if (rc != 0)
		errlog_add(m->log, &he);
	return rc;
}
