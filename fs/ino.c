/*
 * Thread and script records behind the inode numbers (see ino.h): a slot
 * table per kind for number -> record, a hash for name -> record, and the
 * lookup counts that decide when a record goes. One mutex guards it all;
 * nothing here blocks or calls out.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "ino.h"

#define NBUCKETS  4096
#define MAX_SLOTS (1u << 31)

struct table {
	struct rec **slot; /* by slot number; slot 0 unused */
	uint32_t nslot;
	uint32_t cap;
	uint32_t *free; /* reusable slot numbers */
	uint32_t nfree;
	uint32_t capfree;
	size_t count;
	struct rec *bucket[NBUCKETS];
};

struct recs {
	pthread_mutex_t lock;
	uint64_t generation;
	struct table t[3]; /* by enum rec_kind */
};

struct recs *
recs_new(void)
{
	struct recs *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	for (int k = 0; k < 3; k++)
		r->t[k].nslot = 1;
	return r;
}

static void
rec_destroy(struct rec *rec)
{
	for (size_t i = 0; i < rec->nsteps; i++)
		free(rec->steps[i]);
	free(rec->steps);
	free(rec->name);
	free(rec);
}

void
recs_free(struct recs *r)
{
	if (r == NULL)
		return;
	for (int k = 0; k < 3; k++) {
		for (uint32_t i = 1; i < r->t[k].nslot; i++)
			if (r->t[k].slot[i] != NULL)
				rec_destroy(r->t[k].slot[i]);
		free(r->t[k].slot);
		free(r->t[k].free);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct table *
table(struct recs *r, unsigned kind)
{
	return kind == REC_THREAD || kind == REC_SCRIPT ? &r->t[kind] : NULL;
}

/* A free slot number, or 0 when none can be had. */
static uint32_t
slot_take(struct table *t)
{
	if (t->nfree > 0)
		return t->free[--t->nfree];
	if (t->nslot >= t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 1024;
		struct rec **ns;

		if (t->cap >= MAX_SLOTS / 2 || (ns = realloc(t->slot, cap * sizeof(*ns))) == NULL)
			return 0;
		memset(ns + t->cap, 0, (cap - t->cap) * sizeof(*ns));
		t->slot = ns;
		t->cap = cap;
	}
	return t->nslot++;
}

/* Unlinks and frees a record nobody holds. */
static void
release(struct recs *r, struct rec *rec)
{
	struct table *t = table(r, rec->kind);
	struct rec **p = &t->bucket[fs_hash(rec->name, NBUCKETS)];

	while (*p != rec)
		p = &(*p)->next;
	*p = rec->next;
	t->slot[rec->slot] = NULL;
	if (t->nfree == t->capfree) {
		uint32_t cap = t->capfree ? t->capfree * 2 : 1024;
		uint32_t *nf = realloc(t->free, cap * sizeof(*nf));

		if (nf != NULL) {
			t->free = nf;
			t->capfree = cap;
		}
	}
	/* a slot that cannot be remembered is simply never reused */
	if (t->nfree < t->capfree)
		t->free[t->nfree++] = rec->slot;
	t->count--;
	rec_destroy(rec);
}

static void
maybe_release(struct recs *r, struct rec *rec)
{
	if (rec->nlookup == 0 && rec->refs == 0)
		release(r, rec);
}

struct rec *
recs_get(struct recs *r, enum rec_kind kind, const char *name)
{
	struct table *t = table(r, kind);
	unsigned h = fs_hash(name, NBUCKETS);
	struct rec *rec;

	pthread_mutex_lock(&r->lock);
	for (rec = t->bucket[h]; rec != NULL; rec = rec->next)
		if (strcmp(rec->name, name) == 0)
			break;
	if (rec == NULL) {
		uint32_t slot;

		rec = calloc(1, sizeof(*rec));
		if (rec == NULL || (rec->name = strdup(name)) == NULL ||
		    (slot = slot_take(t)) == 0) {
			if (rec != NULL)
				free(rec->name);
			free(rec);
			pthread_mutex_unlock(&r->lock);
			return NULL;
		}
		rec->kind = kind;
		rec->slot = slot;
		rec->generation = ++r->generation;
		rec->next = t->bucket[h];
		t->bucket[h] = rec;
		t->slot[slot] = rec;
		t->count++;
	}
	rec->refs++;
	rec->used_ms = clk_mono_ms();
	pthread_mutex_unlock(&r->lock);
	return rec;
}

struct rec *
recs_by_ino(struct recs *r, uint64_t ino)
{
	struct table *t = table(r, ino_kind(ino));
	uint32_t slot = ino_slot(ino);
	struct rec *rec = NULL;

	if (t == NULL)
		return NULL;
	pthread_mutex_lock(&r->lock);
	if (slot > 0 && slot < t->nslot && (rec = t->slot[slot]) != NULL) {
		rec->refs++;
		rec->used_ms = clk_mono_ms();
	}
	pthread_mutex_unlock(&r->lock);
	return rec;
}

void
recs_put(struct recs *r, struct rec *rec)
{
	if (rec == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	rec->refs--;
	maybe_release(r, rec);
	pthread_mutex_unlock(&r->lock);
}

void
recs_lookup(struct recs *r, struct rec *rec)
{
	pthread_mutex_lock(&r->lock);
	rec->nlookup++;
	pthread_mutex_unlock(&r->lock);
}

void
recs_forget(struct recs *r, uint64_t ino, uint64_t n)
{
	struct table *t = table(r, ino_kind(ino));
	uint32_t slot = ino_slot(ino);
	struct rec *rec;

	if (t == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	if (slot > 0 && slot < t->nslot && (rec = t->slot[slot]) != NULL) {
		rec->nlookup = n < rec->nlookup ? rec->nlookup - n : 0;
		maybe_release(r, rec);
	}
	pthread_mutex_unlock(&r->lock);
}

bool
recs_held(struct recs *r, struct rec *rec)
{
	bool held;

	pthread_mutex_lock(&r->lock);
	held = rec->nlookup > 0;
	pthread_mutex_unlock(&r->lock);
	return held;
}

int
recs_step(struct recs *r, struct rec *rec, const char *path)
{
	int rc = -ENOSPC;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < rec->nsteps; i++)
		if (strcmp(rec->steps[i], path) == 0) {
			rc = (int)i;
			goto out;
		}
	if (rec->nsteps >= INO_MAX_STEPS)
		goto out;
	if (rec->nsteps == rec->capsteps) {
		size_t cap = rec->capsteps ? rec->capsteps * 2 : 16;
		char **ns = realloc(rec->steps, cap * sizeof(*ns));

		if (ns == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		rec->steps = ns;
		rec->capsteps = cap;
	}
	if ((rec->steps[rec->nsteps] = strdup(path)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = (int)rec->nsteps++;
out:
	pthread_mutex_unlock(&r->lock);
	return rc;
}

bool
recs_step_path(struct recs *r, struct rec *rec, uint32_t i, char *buf, size_t len)
{
	bool ok = false;

	pthread_mutex_lock(&r->lock);
	if (i < rec->nsteps && strlen(rec->steps[i]) < len) {
		memcpy(buf, rec->steps[i], strlen(rec->steps[i]) + 1);
		ok = true;
	}
	pthread_mutex_unlock(&r->lock);
	return ok;
}

size_t
recs_count(struct recs *r, enum rec_kind kind)
{
	size_t n;

	pthread_mutex_lock(&r->lock);
	n = table(r, kind)->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

size_t
recs_oldest(struct recs *r, enum rec_kind kind, char **names, size_t n)
{
	struct table *t = table(r, kind);
	struct rec **pick;
	size_t got = 0;

	if (n == 0 || (pick = calloc(n, sizeof(*pick))) == NULL)
		return 0;
	pthread_mutex_lock(&r->lock);
	/* keep the n least recently used, by insertion into a sorted array */
	for (uint32_t s = 1; s < t->nslot; s++) {
		struct rec *rec = t->slot[s];
		size_t i;

		if (rec == NULL || rec->refs > 0)
			continue;
		if (got == n && rec->used_ms >= pick[n - 1]->used_ms)
			continue;
		i = got < n ? got++ : n - 1;
		while (i > 0 && pick[i - 1]->used_ms > rec->used_ms) {
			pick[i] = pick[i - 1];
			i--;
		}
		pick[i] = rec;
	}
	for (size_t i = 0; i < got; i++)
		names[i] = strdup(pick[i]->name);
	pthread_mutex_unlock(&r->lock);
	free(pick);
	/* a failed strdup leaves a hole: compact */
	size_t k = 0;
	for (size_t i = 0; i < got; i++)
		if (names[i] != NULL)
			names[k++] = names[i];
	return k;
}
