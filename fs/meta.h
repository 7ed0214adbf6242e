/*
 * Thread metadata for the mount, from the API and cached: the Thread
 * (GetThread, or an entry of a listing), the result's metadata
 * (GetThreadResult without the output: step summaries, sizes, yields) and
 * step details (GetThreadResult with stepPath). A finished thread's
 * metadata never changes and is kept until the memory budget (mem_cache)
 * lets it go, least recently used first; a running thread's is fetched
 * again once older than running_ttl. Each answer is judged final or fresh
 * by its own status, and one saying the thread finished makes every other
 * answer of it that is not final stale (see doc/SEMANTICS.md,
 * "Freshness"). Concurrent askers of the same missing item share one call.
 *
 * Every accessor copies into the caller's struct (clear it after a
 * success) and returns 0 or -errno (ENOENT for an unknown thread or step;
 * the transport's errors otherwise, each recorded in the errlog).
 */
#ifndef SCRIPTUMFS_META_H
#define SCRIPTUMFS_META_H

#include <stdint.h>

#include "api.h"
#include "fs.h"
#include "model.h"

struct meta;

struct meta *meta_new(struct api *api, struct errlog *log, int64_t ttl_ms, uint64_t max_bytes);
void meta_free(struct meta *m);

int meta_thread(struct meta *m, const char *id, struct model_thread *out);
int meta_result(struct meta *m, const char *id, struct model_result *out);
/* *final (may be NULL) tells whether the step's answer can no longer
 * change: the thread had finished when it came, or the step had completed. */
int meta_step(struct meta *m, const char *id, const char *path, struct model_step_detail *out,
              bool *final);

/*
 * Outputs up to this size come with the result's metadata: the first
 * GetThreadResult of a finished thread asks for its output as well when
 * the last output seen of that script version was this small, and a whole
 * output it carries goes to the on_output function.
 */
#define META_OUTPUT_SMALL ((int64_t)64 << 10)

typedef void meta_output_fn(void *arg, const char *id, const unsigned char *data, size_t len);

/* Sets the taker of outputs that came with a result's metadata (the
 * payload cache). Before any other call. */
void meta_on_output(struct meta *m, meta_output_fn *fn, void *arg);

/* A Thread seen in a listing or an action's answer: kept as if fetched now.
 * One whose status is unspecified (a minimal answer) is not kept. */
void meta_seed(struct meta *m, const struct model_thread *t);

/* Forgets what is cached of a thread that changed (a resume, a cancel, an
 * event seen by a watch), so the next access asks again. */
void meta_invalidate(struct meta *m, const char *id);

struct meta_stats {
	uint64_t calls; /* API calls made */
	uint64_t hits;  /* answers from the cache */
	uint64_t bytes; /* held now */
	uint64_t entries;
	uint64_t evictions;
};
void meta_stats(struct meta *m, struct meta_stats *out);

/*
 * Scripts, versions, the newest thread of a script and the pages of a
 * listing: the calls tree.c needs beside the cached metadata, made here so
 * that tree.c makes none (not cached yet). Each failure but a miss goes to
 * the error log; 0 or -errno.
 */
int meta_script(struct meta *m, const char *name, struct model_script *out);
int meta_versions(struct meta *m, const char *name, struct model_version_list *out);
/* The newest thread of script (*id, free() it), or -ENOENT when it has none. */
int meta_latest(struct meta *m, const char *script, char **id);
/* 0 when script has version n, else -ENOENT (or another -errno). */
int meta_has_version(struct meta *m, const char *script, int64_t n);
struct listing;
int meta_list_threads(struct meta *m, struct listing *l, const struct api_list *q,
                      struct model_thread_list *out);
int meta_list_scripts(struct meta *m, struct listing *l, int page_size,
                      struct model_script_list *out);

#endif
