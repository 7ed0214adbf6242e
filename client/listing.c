/*
 * Listings under bounds: the page tokens and the ids a listing has seen,
 * each in a hash set whose bytes are counted against LISTING_MAX_BYTES,
 * and the count of calls and of pages in a row without a new entry.
 * Every way a server can make a listing go on for ever ends here as a
 * protocol error naming the call and the rule it broke.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "hash.h"
#include "listing.h"

/* What a string held in a set costs: its bytes, and malloc's overhead. */
#define STR_COST(len) ((len) + 1 + 16)

struct slot {
	uint64_t hash;
	char *s; /* owned; NULL: free slot */
};

/* An open-addressing set of strings, at most half full. */
struct strset {
	struct slot *v;
	size_t cap; /* 0 or a power of two */
	size_t n;
};

struct listing {
	const char *call;
	uint64_t seed; /* per listing, so a server cannot aim ids at one bucket */
	size_t max_pages;
	size_t pages;
	size_t empty_run; /* pages in a row with no new entry */
	size_t bytes;     /* what both sets hold */
	struct strset ids, tokens;
	char *token; /* the next page's; NULL for the first */
	bool done;
	int failed;            /* 0, or -EPROTO once a bound was broken */
	struct http_error why; /* ... and the error, given again */
};

/* The seeded hash of len bytes at s (hash.h). */
static uint64_t
hash_of(uint64_t seed, const char *s, size_t len)
{
	return hash_mix(hash_fnv1a(HASH_FNV_BASIS ^ seed, s, len));
}

/* The slot of s: its own, or the free one where it would go. */
static struct slot *
strset_find(const struct strset *set, uint64_t h, const char *s)
{
	size_t mask = set->cap - 1;

	/* bounded: the set is never full */
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *sl = &set->v[i];

		if (sl->s == NULL || (sl->hash == h && strcmp(sl->s, s) == 0))
			return sl;
	}
}

/* Doubles the table; *bytes grows by what it adds. 0 or -ENOMEM. */
static int
strset_grow(struct strset *set, size_t *bytes)
{
	size_t cap = set->cap ? set->cap * 2 : 64;
	struct strset big = {calloc(cap, sizeof(struct slot)), cap, set->n};

	if (big.v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++)
		if (set->v[i].s != NULL)
			*strset_find(&big, set->v[i].hash, set->v[i].s) = set->v[i];
	*bytes += (cap - set->cap) * sizeof(struct slot);
	free(set->v);
	*set = big;
	return 0;
}

static void
strset_clear(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->v[i].s);
	free(set->v);
	memset(set, 0, sizeof(*set));
}

int
listing_new(const char *call, size_t max_pages, struct listing **out)
{
	static atomic_uint counter; /* listings may start in several threads at once */
	struct listing *l = calloc(1, sizeof(*l));
	struct timespec ts;

	*out = NULL;
	if (l == NULL)
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	l->call = call;
	l->seed = hash_of((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30), (const char *)&l,
	                  sizeof(l)) ^
	          (atomic_fetch_add(&counter, 1) + 1);
	l->max_pages =
	    max_pages == 0 || max_pages > LISTING_MAX_PAGES ? LISTING_MAX_PAGES : max_pages;
	*out = l;
	return 0;
}

void
listing_free(struct listing *l)
{
	if (l == NULL)
		return;
	strset_clear(&l->ids);
	strset_clear(&l->tokens);
	free(l->token);
	free(l);
}

bool
listing_done(const struct listing *l)
{
	return l->done;
}

size_t
listing_pages(const struct listing *l)
{
	return l->pages;
}

static int lfail(struct listing *l, struct http_error *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Breaks off the listing for good: -EPROTO, with e filled and kept. */
static int
lfail(struct listing *l, struct http_error *e, const char *fmt, ...)
{
	va_list ap;

	memset(e, 0, sizeof(*e));
	snprintf(e->call, sizeof(e->call), "%s", l->call);
	va_start(ap, fmt);
	http_error_vset(e, EPROTO, 0, fmt, ap);
	va_end(ap);
	l->why = *e;
	l->failed = -EPROTO;
	l->done = true;
	return -EPROTO;
}

/* Fills e for a failure to allocate (the listing may be asked again). */
static void
nomem(const struct listing *l, struct http_error *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->call, sizeof(e->call), "%s", l->call);
	http_error_set(e, ENOMEM, 0, "out of memory");
}

/*
 * Adds s to set under the listing's byte ceiling: 1 when it is new, 0
 * when the set has it, -EPROTO (what = "ids", "page tokens") when the
 * listing would hold too much, -ENOMEM.
 */
static int
listing_add(struct listing *l, struct strset *set, const char *s, const char *what,
            struct http_error *e)
{
	size_t len = strlen(s);
	uint64_t h = hash_of(l->seed, s, len);
	struct slot *sl;
	int rc;

	if (set->cap != 0 && (sl = strset_find(set, h, s))->s != NULL)
		return 0;
	if (l->bytes + STR_COST(len) + (set->n + 1) * 2 * sizeof(*sl) > LISTING_MAX_BYTES)
		return lfail(l, e, "the listing would hold more than %zu MiB of %s (page %zu)",
		             LISTING_MAX_BYTES >> 20, what, l->pages);
	if ((set->n + 1) * 2 > set->cap && (rc = strset_grow(set, &l->bytes)) != 0)
		return rc;
	sl = strset_find(set, h, s);
	if ((sl->s = strdup(s)) == NULL)
		return -ENOMEM;
	sl->hash = h;
	set->n++;
	l->bytes += STR_COST(len);
	return 1;
}

/* Before a call: a failed listing fails again, a done one gives nothing. */
static int
listing_begin(struct listing *l, struct http_error *e)
{
	if (l->failed != 0) {
		*e = l->why;
		return l->failed;
	}
	return 0;
}

/*
 * After a page that brought fresh new entries and named next (NULL or ""
 * on the last page): the bounds, in the order that names the plainest
 * cause. 0 or -EPROTO/-ENOMEM.
 */
static int
listing_end_page(struct listing *l, const char *next, size_t fresh, struct http_error *e)
{
	char ex[64];
	size_t len;
	int rc;

	l->pages++;
	l->empty_run = fresh > 0 ? 0 : l->empty_run + 1;
	free(l->token);
	l->token = NULL;
	if (next == NULL || next[0] == '\0') {
		l->done = true;
		return 0;
	}
	errbuf_excerpt(ex, sizeof(ex), next, strlen(next), 40, '\'');
	if ((len = strlen(next)) > LISTING_TOKEN_MAX)
		return lfail(l, e, "page %zu gave a page token of %zu bytes (limit %d): '%s'",
		             l->pages, len, LISTING_TOKEN_MAX, ex);
	if ((rc = listing_add(l, &l->tokens, next, "page tokens", e)) < 0)
		return rc;
	if (rc == 0)
		return lfail(l, e,
		             "page %zu repeated the page token '%s' of an earlier page: "
		             "the listing would never end",
		             l->pages, ex);
	if (l->empty_run >= LISTING_MAX_EMPTY)
		return lfail(
		    l, e,
		    "%zu pages in a row brought no new entry (empty pages or repeated ids): "
		    "the listing would never end",
		    l->empty_run);
	if (l->pages >= l->max_pages)
		return lfail(l, e, "more than %zu pages: the listing would never end",
		             l->max_pages);
	if ((l->token = strdup(next)) == NULL)
		return -ENOMEM;
	return 0;
}

/*
 * What a page of ListThreads or ListScripts leaves: of its *n entries of
 * size bytes each, those whose key (a char * at key_off) is new to the
 * listing, moved to the front in the server's order (*n becomes their
 * count), the others cleared; then the page's bounds. 0, or -errno with e
 * filled and every entry cleared (*n is 0).
 */
static int
page_keep(struct listing *l, void *entries, size_t *n, size_t size, size_t key_off,
          void (*clear)(void *), const char *what, const char *next, struct http_error *e)
{
	char *base = entries;
	size_t keep = 0;
	int rc = 0;

	for (size_t i = 0; i < *n; i++) {
		char *ent = base + i * size;

		if (rc >= 0)
			rc = listing_add(l, &l->ids, *(char **)(void *)(ent + key_off), what, e);
		if (rc == 1) {
			if (keep != i)
				memcpy(base + keep * size, ent, size);
			keep++;
		} else {
			clear(ent);
		}
	}
	if (rc >= 0)
		rc = listing_end_page(l, next, keep, e);
	if (rc == -ENOMEM)
		nomem(l, e);
	if (rc < 0) {
		for (size_t i = 0; i < keep; i++)
			clear(base + i * size);
		keep = 0;
	}
	*n = keep;
	return rc < 0 ? rc : 0;
}

static void
clear_thread(void *t)
{
	model_thread_clear(t);
}

static void
clear_script(void *s)
{
	model_script_clear(s);
}

int
listing_threads(struct listing *l, struct api *a, const struct api_list *q,
                struct model_thread_list *out, struct http_error *e)
{
	struct api_list pq = *q;
	struct http_error local;
	int rc;

	if (e == NULL)
		e = &local;
	memset(out, 0, sizeof(*out));
	if ((rc = listing_begin(l, e)) != 0 || l->done)
		return rc;
	pq.page_token = l->token;
	if ((rc = api_list_threads(a, &pq, out, e)) != 0)
		return rc;
	rc = page_keep(l, out->threads, &out->n_threads, sizeof(*out->threads),
	               offsetof(struct model_thread, thread_id), clear_thread, "ids",
	               out->next_page_token, e);
	if (rc != 0)
		model_thread_list_clear(out);
	return rc;
}

int
listing_scripts(struct listing *l, struct api *a, int page_size, struct model_script_list *out,
                struct http_error *e)
{
	struct http_error local;
	int rc;

	if (e == NULL)
		e = &local;
	memset(out, 0, sizeof(*out));
	if ((rc = listing_begin(l, e)) != 0 || l->done)
		return rc;
	if ((rc = api_list_scripts(a, page_size, l->token, out, e)) != 0)
		return rc;
	rc = page_keep(l, out->scripts, &out->n_scripts, sizeof(*out->scripts),
	               offsetof(struct model_script, name), clear_script, "names",
	               out->next_page_token, e);
	if (rc != 0)
		model_script_list_clear(out);
	return rc;
}
