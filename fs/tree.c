/*
 * The mount's namespace and rules (doc/SEMANTICS.md: Layout, Sizes,
 * Freshness, Writing; doc/ARCHITECTURE.md: Layers), over meta.c
 * (metadata), payload.c (payload bytes), writes.c (new, cancel, resume) and
 * layout.c (the bytes of the small files, shared with `scriptum --save`).
 *
 *	$ ls MOUNT/threads/thr_abc/
 *	cancel  error  events  input.json  output.json  resume  status
 *	steps  summary.json  thread.json
 *	$ cat MOUNT/threads/thr_abc/status
 *	completed
 *
 * A finished thread is immutable: its attributes may be kept by the kernel
 * for FS_TERMINAL_TTL and its pages for good (keep_cache). A running
 * thread's files are read with direct I/O and their attributes kept for
 * running_ttl only, so what a reader sees is never older than that.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "layout.h"
#include "listing.h"
#include "metafiles.h"
#include "tree.h"

#define DIR_MODE   (S_IFDIR | 0555)
#define FILE_MODE  (S_IFREG | 0444)
#define WRITE_MODE (S_IFREG | 0200)
#define LINK_MODE  (S_IFLNK | 0777)

#define SCRIPT_TTL 10.0 /* scripts and versions change rarely */

static const char *const status_dirs[] = {"pending",   "running", "paused",
                                          "completed", "failed",  "cancelled"};

struct name_local {
	const char *name;
	unsigned local;
};

static const struct name_local thread_files[] = {
    {"status", INO_THR_STATUS},
    {"thread.json", INO_THR_THREAD_JSON},
    {"input.json", INO_THR_INPUT_JSON},
    {"output.json", INO_THR_OUTPUT_JSON},
    {"summary.json", INO_THR_SUMMARY_JSON},
    {"yields.ndjson", INO_THR_YIELDS},
    {"error", INO_THR_ERROR},
    {"events", INO_THR_EVENTS},
    {"cancel", INO_THR_CANCEL},
    {"resume", INO_THR_RESUME},
    {"steps", INO_THR_STEPS},
};

static const struct name_local step_files[] = {
    {"status", INO_STEP_STATUS},         {"step.json", INO_STEP_STEP_JSON},
    {"input.json", INO_STEP_INPUT_JSON}, {"output.json", INO_STEP_OUTPUT_JSON},
    {"error", INO_STEP_ERROR},
};

static const struct name_local meta_files[] = {
    {"errors", INO_META_ERRORS},
    {"stats", INO_META_STATS},
    {"config", INO_META_CONFIG},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- attributes ---- */

static void
attr(const struct mount *m, struct stat *st, uint64_t ino, mode_t mode, uint64_t size,
     int64_t time_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = m->opt.uid;
	st->st_gid = m->opt.gid;
	st->st_size = (off_t)size;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	if (time_ms <= 0)
		time_ms = m->started_ms;
	st->st_mtim.tv_sec = st->st_atim.tv_sec = st->st_ctim.tv_sec = time_ms / 1000;
	st->st_mtim.tv_nsec = st->st_atim.tv_nsec = st->st_ctim.tv_nsec =
	    (long)(time_ms % 1000) * 1000000;
}

static double
ttl_for(const struct mount *m, bool final)
{
	return final ? FS_TERMINAL_TTL : (double)m->opt.running_ttl_ms / 1000.0;
}

/* The time a thread's files show: when it last changed. */
static int64_t
thread_time(const struct model_thread *t)
{
	if (t->finished_at_ms > 0)
		return t->finished_at_ms;
	if (t->started_at_ms > 0)
		return t->started_at_ms;
	return t->created_at_ms;
}

static int64_t
step_time(const struct model_step *s)
{
	return s->finished_at_ms > 0 ? s->finished_at_ms : s->started_at_ms;
}

/* ---- what exists ---- */

static bool
has_output(const struct model_thread *t, const struct model_result *r)
{
	return model_thread_terminal(t->status) &&
	       (t->status == MODEL_THREAD_COMPLETED || r->output_total_bytes > 0);
}

/* Whether a thread's directory holds the file local. r may be NULL when
 * the question does not need it. */
static bool
thread_has(const struct model_thread *t, const struct model_result *r, unsigned local)
{
	switch (local) {
	case INO_THR_OUTPUT_JSON:
		return has_output(t, r);
	case INO_THR_YIELDS:
		return r->total_yielded > 0 || r->n_yielded > 0;
	case INO_THR_ERROR:
		return t->error[0] != '\0';
	default:
		return true;
	}
}

static bool
needs_result(unsigned local)
{
	return local == INO_THR_OUTPUT_JSON || local == INO_THR_YIELDS ||
	       local == INO_THR_SUMMARY_JSON;
}

static bool
step_payload(const struct model_step_detail *d, unsigned sub, uint64_t *size)
{
	int64_t n = sub == INO_STEP_INPUT_JSON ? d->input_total_bytes : d->output_total_bytes;

	*size = n > 0 ? (uint64_t)n : 0;
	return n > 0 && model_step_terminal(d->step.status);
}

static bool
step_has(const struct model_step_detail *d, unsigned sub)
{
	uint64_t size;

	switch (sub) {
	case INO_STEP_INPUT_JSON:
	case INO_STEP_OUTPUT_JSON:
		return step_payload(d, sub, &size);
	case INO_STEP_ERROR:
		return d->step.error[0] != '\0';
	default:
		return true;
	}
}

/* ---- small files ---- */

/* The bytes of a thread's small file, and whether they are final. */
static int
render_thread_file(struct mount *m, const char *id, unsigned local, char **out, size_t *len,
                   bool *final)
{
	struct model_thread t;
	struct model_result r;
	int rc;

	if ((rc = meta_thread(m->meta, id, &t)) != 0)
		return rc;
	memset(&r, 0, sizeof(r));
	if (needs_result(local) && (rc = meta_result(m->meta, id, &r)) != 0) {
		model_thread_clear(&t);
		return rc;
	}
	/* final only when every answer the file is made of is */
	*final = model_thread_terminal(t.status) &&
	         (!needs_result(local) || model_thread_terminal(r.status));
	switch (local) {
	case INO_THR_STATUS:
		rc = layout_status(&t, out, len);
		break;
	case INO_THR_THREAD_JSON:
		rc = layout_thread_json(&t, out, len);
		break;
	case INO_THR_INPUT_JSON:
		rc = layout_input_json(&t, out, len);
		break;
	case INO_THR_SUMMARY_JSON:
		rc = layout_summary_json(&t, &r, out, len);
		break;
	case INO_THR_YIELDS:
		rc = thread_has(&t, &r, INO_THR_YIELDS) ? layout_yields(&r, out, len) : -ENOENT;
		break;
	case INO_THR_ERROR:
		rc = t.error[0] ? layout_error(t.error, out, len) : -ENOENT;
		break;
	default:
		rc = -ENOENT;
	}
	model_result_clear(&r);
	model_thread_clear(&t);
	return rc;
}

static int
render_step_file(struct mount *m, const char *id, const char *path, unsigned sub, char **out,
                 size_t *len, bool *final)
{
	struct model_step_detail d;
	int rc;

	if ((rc = meta_step(m->meta, id, path, &d, final)) != 0)
		return rc;
	switch (sub) {
	case INO_STEP_STATUS:
		rc = layout_step_status(&d.step, out, len);
		break;
	case INO_STEP_STEP_JSON:
		rc = layout_step_json(&d, out, len);
		break;
	case INO_STEP_ERROR:
		rc = d.step.error[0] ? layout_error(d.step.error, out, len) : -ENOENT;
		break;
	default:
		rc = -ENOENT;
	}
	model_step_detail_clear(&d);
	return rc;
}

/* ---- names of inodes ---- */

/* A record-based inode's record, or -ENOENT. */
static int
rec_of(struct mount *m, uint64_t ino, enum rec_kind kind, struct rec **out)
{
	if (ino_kind(ino) != kind || (*out = recs_by_ino(m->recs, ino)) == NULL)
		return -ENOENT;
	return 0;
}

/* A step inode's path. */
static int
step_of(struct mount *m, struct rec *r, uint32_t local, char *path, size_t len)
{
	uint32_t i = ino_step_index(local);

	return recs_step_path(m->recs, r, i, path, len) ? 0 : -ENOENT;
}

/* ---- entries ---- */

static void
entry_fixed(struct mount *m, struct tree_entry *e, uint64_t ino, mode_t mode, uint64_t size)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	attr(m, &e->attr, ino, mode, size, 0);
	e->entry_timeout = e->attr_timeout = FS_TERMINAL_TTL;
}

/* An entry inside a record: the kernel's lookup is counted. */
static void
entry_rec(struct mount *m, struct tree_entry *e, struct rec *r, uint32_t local)
{
	e->ino = ino_make(r->kind, r->slot, local);
	e->generation = r->generation;
	e->attr.st_ino = e->ino;
	recs_lookup(m->recs, r);
}

/* Attributes of the thread-record inode local, given its thread. */
static int
thread_attr(struct mount *m, struct rec *r, uint32_t local, struct stat *st, double *timeout)
{
	const char *id = r->name;
	uint64_t ino = ino_make(REC_THREAD, r->slot, local);
	struct model_thread t;
	struct model_result res;
	bool final;
	char *data;
	size_t len;
	int rc;

	if ((rc = meta_thread(m->meta, id, &t)) != 0)
		return rc;
	final = model_thread_terminal(t.status);
	memset(&res, 0, sizeof(res));
	if (!ino_is_step(local) && needs_result(local)) {
		if ((rc = meta_result(m->meta, id, &res)) != 0)
			goto out;
		final = final && model_thread_terminal(res.status);
	}
	*timeout = ttl_for(m, final);
	if (ino_is_step(local)) {
		struct model_step_detail d;
		char path[512];
		unsigned sub = ino_step_sub(local);
		uint64_t size = 0;
		bool step_final;

		if ((rc = step_of(m, r, local, path, sizeof(path))) != 0 ||
		    (rc = meta_step(m->meta, id, path, &d, &step_final)) != 0)
			goto out;
		*timeout = ttl_for(m, step_final);
		if (!step_has(&d, sub)) {
			rc = -ENOENT;
		} else if (sub == INO_STEP_DIR) {
			attr(m, st, ino, DIR_MODE, 0, step_time(&d.step));
		} else if (sub == INO_STEP_INPUT_JSON || sub == INO_STEP_OUTPUT_JSON) {
			step_payload(&d, sub, &size);
			attr(m, st, ino, FILE_MODE, size, step_time(&d.step));
		} else if ((rc = render_step_file(m, id, path, sub, &data, &len, &final)) == 0) {
			attr(m, st, ino, FILE_MODE, len, step_time(&d.step));
			free(data);
		}
		model_step_detail_clear(&d);
		goto out;
	}
	switch (local) {
	case INO_THR_DIR:
	case INO_THR_STEPS:
		attr(m, st, ino, DIR_MODE, 0, thread_time(&t));
		break;
	case INO_THR_CANCEL:
	case INO_THR_RESUME:
		attr(m, st, ino, WRITE_MODE, 0, thread_time(&t));
		break;
	case INO_THR_OUTPUT_JSON:
		if (!has_output(&t, &res))
			rc = -ENOENT;
		else
			attr(m, st, ino, FILE_MODE, (uint64_t)res.output_total_bytes,
			     thread_time(&t));
		break;
	case INO_THR_EVENTS: {
		uint64_t size = 0;
		bool done = final;

		/* a running thread is followed from the first look, so tail -f sees
		 * the size grow; a finished one is asked only when the file is read
		 * (find and ls -l over old threads make no WatchThread calls) */
		if (!final)
			rc = watches_size(m->watches, id, &size, &done);
		else if (!watches_known(m->watches, id, &size))
			*timeout = 0; /* size 0 until read: not to be kept */
		if (rc == 0)
			attr(m, st, ino, FILE_MODE, size, thread_time(&t));
		if (!done)
			*timeout = ttl_for(m, false);
		break;
	}
	case INO_THR_LINK_FROM_SCRIPT:
		attr(m, st, ino, LINK_MODE, strlen("../../../threads/") + strlen(id),
		     thread_time(&t));
		break;
	case INO_THR_LINK_FROM_STATUS:
	case INO_THR_LINK_LATEST:
		attr(m, st, ino, LINK_MODE, strlen("../../threads/") + strlen(id), thread_time(&t));
		break;
	default:
		if ((rc = render_thread_file(m, id, local, &data, &len, &final)) == 0) {
			attr(m, st, ino, FILE_MODE, len, thread_time(&t));
			free(data);
		}
	}
out:
	model_result_clear(&res);
	model_thread_clear(&t);
	return rc;
}

static int
script_attr(struct mount *m, struct rec *r, uint32_t local, struct stat *st, double *timeout)
{
	uint64_t ino = ino_make(REC_SCRIPT, r->slot, local);

	*timeout = SCRIPT_TTL;
	if (local == INO_SCRIPT_NEW || ino_is_version_new(local))
		attr(m, st, ino, WRITE_MODE, 0, 0);
	else if (local == INO_SCRIPT_SCRIPT_JSON)
		attr(m, st, ino, FILE_MODE, 0, 0); /* read with direct I/O: size unknown */
	else
		attr(m, st, ino, DIR_MODE, 0, 0);
	return 0;
}

int
tree_getattr(struct mount *m, uint64_t ino, struct stat *st, double *timeout)
{
	struct rec *r;
	int rc;

	*timeout = FS_TERMINAL_TTL;
	if (ino == INO_ROOT || ino == INO_THREADS || ino == INO_SCRIPTS || ino == INO_BY_STATUS ||
	    ino == INO_META || ino_is_by_status(ino)) {
		attr(m, st, ino, DIR_MODE, 0, 0);
		return 0;
	}
	if (ino == INO_META_ERRORS || ino == INO_META_STATS || ino == INO_META_CONFIG) {
		attr(m, st, ino, FILE_MODE, 0, 0); /* read with direct I/O */
		*timeout = 0;
		return 0;
	}
	if (ino_kind(ino) == REC_THREAD) {
		if ((rc = rec_of(m, ino, REC_THREAD, &r)) != 0)
			return rc;
		rc = thread_attr(m, r, ino_local(ino), st, timeout);
		recs_put(m->recs, r);
		return rc;
	}
	if (ino_kind(ino) == REC_SCRIPT) {
		if ((rc = rec_of(m, ino, REC_SCRIPT, &r)) != 0)
			return rc;
		rc = script_attr(m, r, ino_local(ino), st, timeout);
		recs_put(m->recs, r);
		return rc;
	}
	return -ENOENT;
}

static int
negative(struct tree_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = FS_NEGATIVE_TTL;
	return -ENOENT;
}

/* A record's inode as an entry: its attributes and the lookup. */
static int
rec_entry(struct mount *m, struct rec *r, uint32_t local, struct tree_entry *e)
{
	double timeout;
	int rc;

	memset(e, 0, sizeof(*e));
	if (r->kind == REC_THREAD)
		rc = thread_attr(m, r, local, &e->attr, &timeout);
	else
		rc = script_attr(m, r, local, &e->attr, &timeout);
	if (rc != 0)
		return rc == -ENOENT ? negative(e) : rc;
	e->entry_timeout = e->attr_timeout = timeout;
	entry_rec(m, e, r, local);
	return 0;
}

/* A thread named in a path: it must exist. */
static int
thread_named(struct mount *m, const char *id, struct rec **out)
{
	struct model_thread t;
	int rc;

	if ((rc = meta_thread(m->meta, id, &t)) != 0)
		return rc;
	model_thread_clear(&t);
	if ((*out = recs_get(m->recs, REC_THREAD, id)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
lookup_thread_child(struct mount *m, struct rec *r, uint32_t local, const char *name,
                    struct tree_entry *e)
{
	if (local == INO_THR_DIR) {
		for (size_t i = 0; i < N(thread_files); i++)
			if (strcmp(thread_files[i].name, name) == 0)
				return rec_entry(m, r, thread_files[i].local, e);
		return negative(e);
	}
	if (local == INO_THR_STEPS) {
		struct model_result res;
		bool found = false;
		int rc, idx;

		if ((rc = meta_result(m->meta, r->name, &res)) != 0)
			return rc;
		for (size_t i = 0; i < res.n_steps && !found; i++)
			found = strcmp(res.steps[i].step_path, name) == 0;
		model_result_clear(&res);
		if (!found)
			return negative(e);
		if ((idx = recs_step(m->recs, r, name)) < 0)
			return idx;
		return rec_entry(m, r, ino_step((uint32_t)idx, INO_STEP_DIR), e);
	}
	if (ino_is_step(local) && ino_step_sub(local) == INO_STEP_DIR) {
		for (size_t i = 0; i < N(step_files); i++)
			if (strcmp(step_files[i].name, name) == 0)
				return rec_entry(m, r, local + step_files[i].local, e);
		return negative(e);
	}
	return -ENOTDIR;
}

/* The status a by-status directory stands for. */
static enum model_thread_status
status_of_dir(uint64_t ino)
{
	return (enum model_thread_status)(MODEL_THREAD_PENDING + ino_by_status_index(ino));
}

/* A version directory's name: a decimal number without sign or leading 0. */
static int64_t
version_name(const char *name)
{
	int64_t v = 0;

	if (name[0] < '1' || name[0] > '9' || strlen(name) > 7)
		return -1;
	for (const char *p = name; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v <= INO_MAX_VERSION ? v : -1;
}

static int
lookup_script_child(struct mount *m, struct rec *r, uint32_t local, const char *name,
                    struct tree_entry *e)
{
	static const struct name_local script_files[] = {
	    {"new", INO_SCRIPT_NEW},
	    {"script.json", INO_SCRIPT_SCRIPT_JSON},
	    {"threads", INO_SCRIPT_THREADS},
	    {"versions", INO_SCRIPT_VERSIONS},
	};
	struct rec *t;
	char *id = NULL;
	int rc;

	switch (local) {
	case INO_SCRIPT_DIR:
		if (strcmp(name, "latest") == 0) {
			if ((rc = meta_latest(m->meta, r->name, &id)) != 0)
				return rc == -ENOENT ? negative(e) : rc;
			rc = thread_named(m, id, &t);
			free(id);
			if (rc != 0)
				return rc == -ENOENT ? negative(e) : rc;
			rc = rec_entry(m, t, INO_THR_LINK_LATEST, e);
			/* latest moves: the kernel must ask again each time */
			e->entry_timeout = 0;
			recs_put(m->recs, t);
			return rc;
		}
		for (size_t i = 0; i < N(script_files); i++)
			if (strcmp(script_files[i].name, name) == 0)
				return rec_entry(m, r, script_files[i].local, e);
		return negative(e);
	case INO_SCRIPT_THREADS: {
		struct model_thread th;

		if ((rc = meta_thread(m->meta, name, &th)) != 0)
			return rc == -ENOENT ? negative(e) : rc;
		rc = strcmp(th.script_name, r->name) == 0 ? 0 : -ENOENT;
		model_thread_clear(&th);
		if (rc != 0)
			return negative(e);
		if ((t = recs_get(m->recs, REC_THREAD, name)) == NULL)
			return -ENOMEM;
		rc = rec_entry(m, t, INO_THR_LINK_FROM_SCRIPT, e);
		recs_put(m->recs, t);
		return rc;
	}
	case INO_SCRIPT_VERSIONS: {
		int64_t v = version_name(name);

		if (v < 0)
			return negative(e);
		if ((rc = meta_has_version(m->meta, r->name, v)) != 0)
			return rc == -ENOENT ? negative(e) : rc;
		return rec_entry(m, r, ino_version_dir(v), e);
	}
	default:
		if (ino_is_version_dir(local)) {
			if (strcmp(name, "new") == 0)
				return rec_entry(m, r, local + 1, e);
			return negative(e);
		}
		return -ENOTDIR;
	}
}

int
tree_lookup(struct mount *m, uint64_t parent, const char *name, struct tree_entry *e)
{
	struct rec *r;
	int rc;

	memset(e, 0, sizeof(*e));
	switch (parent) {
	case INO_ROOT:
		if (strcmp(name, "threads") == 0)
			entry_fixed(m, e, INO_THREADS, DIR_MODE, 0);
		else if (strcmp(name, "scripts") == 0)
			entry_fixed(m, e, INO_SCRIPTS, DIR_MODE, 0);
		else if (strcmp(name, "by-status") == 0)
			entry_fixed(m, e, INO_BY_STATUS, DIR_MODE, 0);
		else if (strcmp(name, ".scriptumfs") == 0)
			entry_fixed(m, e, INO_META, DIR_MODE, 0);
		else
			return negative(e);
		return 0;
	case INO_BY_STATUS:
		for (size_t i = 0; i < N(status_dirs); i++)
			if (strcmp(status_dirs[i], name) == 0) {
				entry_fixed(m, e, ino_by_status(i), DIR_MODE, 0);
				return 0;
			}
		return negative(e);
	case INO_META:
		for (size_t i = 0; i < N(meta_files); i++)
			if (strcmp(meta_files[i].name, name) == 0) {
				entry_fixed(m, e, meta_files[i].local, FILE_MODE, 0);
				e->attr_timeout = 0;
				return 0;
			}
		return negative(e);
	case INO_THREADS:
		if ((rc = thread_named(m, name, &r)) != 0)
			return rc == -ENOENT ? negative(e) : rc;
		rc = rec_entry(m, r, INO_THR_DIR, e);
		recs_put(m->recs, r);
		return rc;
	case INO_SCRIPTS: {
		struct model_script s;

		if ((rc = meta_script(m->meta, name, &s)) != 0)
			return rc == -ENOENT ? negative(e) : rc;
		model_script_clear(&s);
		if ((r = recs_get(m->recs, REC_SCRIPT, name)) == NULL)
			return -ENOMEM;
		rc = rec_entry(m, r, INO_SCRIPT_DIR, e);
		recs_put(m->recs, r);
		return rc;
	}
	}
	if (ino_is_by_status(parent)) {
		struct model_thread th;

		if ((rc = meta_thread(m->meta, name, &th)) != 0)
			return rc == -ENOENT ? negative(e) : rc;
		rc = th.status == status_of_dir(parent) ? 0 : -ENOENT;
		model_thread_clear(&th);
		if (rc != 0)
			return negative(e);
		if ((r = recs_get(m->recs, REC_THREAD, name)) == NULL)
			return -ENOMEM;
		rc = rec_entry(m, r, INO_THR_LINK_FROM_STATUS, e);
		/* a thread moves between status directories */
		e->entry_timeout = ttl_for(m, false);
		recs_put(m->recs, r);
		return rc;
	}
	if (ino_kind(parent) == REC_THREAD) {
		if ((rc = rec_of(m, parent, REC_THREAD, &r)) != 0)
			return rc;
		rc = lookup_thread_child(m, r, ino_local(parent), name, e);
		recs_put(m->recs, r);
		return rc;
	}
	if (ino_kind(parent) == REC_SCRIPT) {
		if ((rc = rec_of(m, parent, REC_SCRIPT, &r)) != 0)
			return rc;
		rc = lookup_script_child(m, r, ino_local(parent), name, e);
		recs_put(m->recs, r);
		return rc;
	}
	return -ENOTDIR;
}

int
tree_readlink(struct mount *m, uint64_t ino, char *buf, size_t len)
{
	struct rec *r;
	int rc;

	if ((rc = rec_of(m, ino, REC_THREAD, &r)) != 0)
		return rc;
	switch (ino_local(ino)) {
	case INO_THR_LINK_FROM_SCRIPT:
		snprintf(buf, len, "../../../threads/%s", r->name);
		break;
	case INO_THR_LINK_FROM_STATUS:
	case INO_THR_LINK_LATEST:
		snprintf(buf, len, "../../threads/%s", r->name);
		break;
	default:
		rc = -EINVAL;
	}
	recs_put(m->recs, r);
	return rc;
}

/* ---- open handles ---- */

/* The lists of open files and directories: one mount per process. */
static pthread_mutex_t handles = PTHREAD_MUTEX_INITIALIZER;

#define LINK(head, x)                           \
	do {                                    \
		pthread_mutex_lock(&handles);   \
		(x)->prev = NULL;               \
		(x)->next = (head);             \
		if ((head) != NULL)             \
			(head)->prev = (x);     \
		(head) = (x);                   \
		(x)->linked = true;             \
		pthread_mutex_unlock(&handles); \
	} while (0)

#define UNLINK(head, x)                                      \
	do {                                                 \
		pthread_mutex_lock(&handles);                \
		if ((x)->linked) {                           \
			if ((x)->prev != NULL)               \
				(x)->prev->next = (x)->next; \
			else                                 \
				(head) = (x)->next;          \
			if ((x)->next != NULL)               \
				(x)->next->prev = (x)->prev; \
			(x)->linked = false;                 \
		}                                            \
		pthread_mutex_unlock(&handles);              \
	} while (0)

/* ---- directories ---- */

/* Whether a name from the API can be a directory entry: a hostile or
 * broken answer must not make the kernel refuse a whole listing. */
static bool
usable_name(const char *s)
{
	return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0 && strlen(s) <= 255;
}

enum dir_source {
	SRC_FIXED,          /* filled at opendir */
	SRC_THREADS,        /* threads/: ListThreads */
	SRC_STATUS,         /* by-status/<s>/: ListThreads with statusFilter */
	SRC_SCRIPT_THREADS, /* scripts/<name>/threads/: ListThreads with scriptNameFilter */
	SRC_SCRIPTS,        /* scripts/: ListScripts */
};

struct dent {
	char *name;
	struct tree_entry e;
	struct rec *rec; /* held while the handle is open, NULL for fixed inodes */
};

struct tree_dir {
	pthread_mutex_t lock;
	uint64_t ino;
	struct dent *ents;
	size_t n, cap;
	enum dir_source src;
	bool complete;
	struct listing *listing; /* the listing's pages and bounds; made at the first page */
	unsigned listed;
	enum model_thread_status status;
	char *script;
	struct tree_dir *prev, *next; /* in m->dirs once open */
	bool linked;
};

static int
dir_add(struct tree_dir *d, const char *name, const struct tree_entry *e, struct rec *r)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct dent *ne = realloc(d->ents, cap * sizeof(*ne));

		if (ne == NULL)
			return -ENOMEM;
		d->ents = ne;
		d->cap = cap;
	}
	if ((d->ents[d->n].name = strdup(name)) == NULL)
		return -ENOMEM;
	d->ents[d->n].e = *e;
	d->ents[d->n].rec = r;
	d->n++;
	return 0;
}

static int
dir_add_fixed(struct mount *m, struct tree_dir *d, const char *name, uint64_t ino, mode_t mode)
{
	struct tree_entry e;

	entry_fixed(m, &e, ino, mode, 0);
	return dir_add(d, name, &e, NULL);
}

/* An entry of a record: attributes now, the lookup counted if the kernel
 * takes it (tree_dir_taken). The handle keeps the reference. */
static int
dir_add_rec(struct mount *m, struct tree_dir *d, const char *name, struct rec *r, uint32_t local,
            const struct stat *st, double timeout)
{
	struct tree_entry e;
	int rc;

	memset(&e, 0, sizeof(e));
	e.ino = ino_make(r->kind, r->slot, local);
	e.generation = r->generation;
	e.attr = *st;
	e.attr.st_ino = e.ino;
	e.entry_timeout = e.attr_timeout = timeout;
	if ((rc = dir_add(d, name, &e, r)) != 0)
		recs_put(m->recs, r);
	return rc;
}

/* The same, with attributes worked out by getattr's rules; an entry that
 * turns out not to exist is left out. */
static int
dir_add_rec_attr(struct mount *m, struct tree_dir *d, const char *name, struct rec *r,
                 uint32_t local)
{
	struct stat st;
	double timeout;
	int rc;

	rc = r->kind == REC_THREAD ? thread_attr(m, r, local, &st, &timeout)
	                           : script_attr(m, r, local, &st, &timeout);
	if (rc == -ENOENT)
		return 0;
	if (rc != 0)
		return rc;
	/* the handle's own reference to the record */
	if ((r = recs_by_ino(m->recs, ino_make(r->kind, r->slot, local))) == NULL)
		return -ENOENT;
	return dir_add_rec(m, d, name, r, local, &st, timeout);
}

static int
fill_thread_dir(struct mount *m, struct tree_dir *d, struct rec *r)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < N(thread_files); i++)
		rc = dir_add_rec_attr(m, d, thread_files[i].name, r, thread_files[i].local);
	return rc;
}

static int
path_order(const void *a, const void *b)
{
	return model_step_path_cmp(((const struct model_step *)a)->step_path,
	                           ((const struct model_step *)b)->step_path);
}

static int
fill_steps_dir(struct mount *m, struct tree_dir *d, struct rec *r)
{
	struct model_result res;
	bool final;
	int rc;

	if ((rc = meta_result(m->meta, r->name, &res)) != 0)
		return rc;
	final = model_thread_terminal(res.status);
	qsort(res.steps, res.n_steps, sizeof(res.steps[0]), path_order);
	for (size_t i = 0; rc == 0 && i < res.n_steps; i++) {
		const struct model_step *s = &res.steps[i];
		uint32_t local;
		struct stat st;
		struct rec *held;
		int idx;

		if (!usable_name(s->step_path))
			continue;
		if ((idx = recs_step(m->recs, r, s->step_path)) < 0) {
			rc = idx;
			break;
		}
		local = ino_step((uint32_t)idx, INO_STEP_DIR);
		attr(m, &st, ino_make(REC_THREAD, r->slot, local), DIR_MODE, 0, step_time(s));
		if ((held = recs_by_ino(m->recs, ino_make(REC_THREAD, r->slot, local))) == NULL)
			rc = -ENOENT;
		else
			rc = dir_add_rec(m, d, s->step_path, held, local, &st, ttl_for(m, final));
	}
	model_result_clear(&res);
	return rc;
}

static int
fill_step_dir(struct mount *m, struct tree_dir *d, struct rec *r, uint32_t local)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < N(step_files); i++)
		if (step_files[i].local != INO_STEP_DIR)
			rc = dir_add_rec_attr(m, d, step_files[i].name, r,
			                      local + step_files[i].local);
	return rc;
}

static int
fill_script_dir(struct mount *m, struct tree_dir *d, struct rec *r, uint32_t local)
{
	int rc = 0;

	if (local == INO_SCRIPT_DIR) {
		char *id = NULL;

		rc = dir_add_rec_attr(m, d, "new", r, INO_SCRIPT_NEW);
		if (rc == 0)
			rc = dir_add_rec_attr(m, d, "script.json", r, INO_SCRIPT_SCRIPT_JSON);
		if (rc == 0)
			rc = dir_add_rec_attr(m, d, "threads", r, INO_SCRIPT_THREADS);
		if (rc == 0)
			rc = dir_add_rec_attr(m, d, "versions", r, INO_SCRIPT_VERSIONS);
		if (rc == 0 && (rc = meta_latest(m->meta, r->name, &id)) == 0) {
			struct rec *t = recs_get(m->recs, REC_THREAD, id);
			struct stat st;

			if (t == NULL) {
				rc = -ENOMEM;
			} else {
				attr(m, &st, ino_make(REC_THREAD, t->slot, INO_THR_LINK_LATEST),
				     LINK_MODE, strlen("../../threads/") + strlen(id), 0);
				rc = dir_add_rec(m, d, "latest", t, INO_THR_LINK_LATEST, &st, 0);
			}
			free(id);
		} else if (rc == -ENOENT) {
			rc = 0; /* no thread yet: no latest */
		}
		return rc;
	}
	if (local == INO_SCRIPT_VERSIONS) {
		struct model_version_list l;

		if ((rc = meta_versions(m->meta, r->name, &l)) != 0)
			return rc;
		for (size_t i = 0; rc == 0 && i < l.n_versions; i++) {
			char name[32];
			int64_t v = l.versions[i].version;

			if (v <= 0 || v > INO_MAX_VERSION)
				continue;
			snprintf(name, sizeof(name), "%" PRId64, v);
			rc = dir_add_rec_attr(m, d, name, r, ino_version_dir(v));
		}
		model_version_list_clear(&l);
		return rc;
	}
	if (ino_is_version_dir(local))
		return dir_add_rec_attr(m, d, "new", r, local + 1);
	return -ENOTDIR;
}

int
tree_opendir(struct mount *m, uint64_t ino, struct tree_dir **out)
{
	struct tree_dir *d = calloc(1, sizeof(*d));
	struct rec *r = NULL;
	int rc = 0;

	if (d == NULL)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->ino = ino;
	d->src = SRC_FIXED;
	d->complete = true;
	/* "." and ".." */
	if ((rc = dir_add_fixed(m, d, ".", ino, DIR_MODE)) != 0 ||
	    (rc = dir_add_fixed(m, d, "..", INO_ROOT, DIR_MODE)) != 0)
		goto fail;
	switch (ino) {
	case INO_ROOT:
		if ((rc = dir_add_fixed(m, d, "threads", INO_THREADS, DIR_MODE)) != 0 ||
		    (rc = dir_add_fixed(m, d, "scripts", INO_SCRIPTS, DIR_MODE)) != 0 ||
		    (rc = dir_add_fixed(m, d, "by-status", INO_BY_STATUS, DIR_MODE)) != 0 ||
		    (rc = dir_add_fixed(m, d, ".scriptumfs", INO_META, DIR_MODE)) != 0)
			goto fail;
		break;
	case INO_BY_STATUS:
		for (size_t i = 0; i < N(status_dirs); i++)
			if ((rc = dir_add_fixed(m, d, status_dirs[i], ino_by_status(i),
			                        DIR_MODE)) != 0)
				goto fail;
		break;
	case INO_META:
		for (size_t i = 0; i < N(meta_files); i++)
			if ((rc = dir_add_fixed(m, d, meta_files[i].name, meta_files[i].local,
			                        FILE_MODE)) != 0)
				goto fail;
		for (size_t i = 2; i < d->n; i++)
			d->ents[i].e.attr_timeout = 0;
		break;
	case INO_THREADS:
		d->src = SRC_THREADS;
		d->complete = false;
		break;
	case INO_SCRIPTS:
		d->src = SRC_SCRIPTS;
		d->complete = false;
		break;
	default:
		if (ino_is_by_status(ino)) {
			d->src = SRC_STATUS;
			d->status = status_of_dir(ino);
			d->complete = false;
		} else if (ino_kind(ino) == REC_THREAD) {
			uint32_t local = ino_local(ino);

			if ((rc = rec_of(m, ino, REC_THREAD, &r)) != 0)
				goto fail;
			if (local == INO_THR_DIR)
				rc = fill_thread_dir(m, d, r);
			else if (local == INO_THR_STEPS)
				rc = fill_steps_dir(m, d, r);
			else if (ino_is_step(local) && ino_step_sub(local) == INO_STEP_DIR)
				rc = fill_step_dir(m, d, r, local);
			else
				rc = -ENOTDIR;
		} else if (ino_kind(ino) == REC_SCRIPT) {
			if ((rc = rec_of(m, ino, REC_SCRIPT, &r)) != 0)
				goto fail;
			if (ino_local(ino) == INO_SCRIPT_THREADS) {
				d->src = SRC_SCRIPT_THREADS;
				d->complete = false;
				if ((d->script = strdup(r->name)) == NULL)
					rc = -ENOMEM;
			} else {
				rc = fill_script_dir(m, d, r, ino_local(ino));
			}
		} else {
			rc = -ENOTDIR;
		}
		recs_put(m->recs, r);
		if (rc != 0)
			goto fail;
	}
	LINK(m->dirs, d);
	*out = d;
	return 0;
fail:
	tree_closedir(m, d);
	return rc;
}

void
tree_closedir(struct mount *m, struct tree_dir *d)
{
	if (d == NULL)
		return;
	UNLINK(m->dirs, d);
	for (size_t i = 0; i < d->n; i++) {
		free(d->ents[i].name);
		recs_put(m->recs, d->ents[i].rec);
	}
	free(d->ents);
	listing_free(d->listing);
	free(d->script);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/*
 * The listing behind d (client/listing.h: a repeated page token, pages
 * without a new entry and too many calls are EIO, never a readdir that
 * does not end; each id once). A listing of threads needs at most one
 * page per thread it shows, so list_limit pages (and the empty pages the
 * rules allow) are its ceiling; scripts/ has the listing's own.
 */
static int
dir_listing(struct mount *m, struct tree_dir *d)
{
	size_t pages = (size_t)m->opt.list_limit + LISTING_MAX_EMPTY;

	if (d->listing != NULL)
		return 0;
	if (d->src == SRC_SCRIPTS)
		return listing_new("ListScripts", 0, &d->listing);
	return listing_new("ListThreads", pages, &d->listing);
}

/* The next page of scripts/. */
static int
dir_more_scripts(struct mount *m, struct tree_dir *d)
{
	struct model_script_list l;
	int rc;

	if ((rc = meta_list_scripts(m->meta, d->listing, 1000, &l)) != 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < l.n_scripts; i++) {
		const char *name = l.scripts[i].name;
		struct rec *r;
		struct stat st;

		if (!usable_name(name))
			continue;
		if ((r = recs_get(m->recs, REC_SCRIPT, name)) == NULL) {
			rc = -ENOMEM;
			break;
		}
		attr(m, &st, ino_make(REC_SCRIPT, r->slot, INO_SCRIPT_DIR), DIR_MODE, 0,
		     l.scripts[i].updated_at_ms);
		rc = dir_add_rec(m, d, name, r, INO_SCRIPT_DIR, &st, SCRIPT_TTL);
	}
	d->complete = listing_done(d->listing);
	model_script_list_clear(&l);
	return rc;
}

/* One thread of a listing of threads, as d shows it. */
static int
dir_add_thread(struct mount *m, struct tree_dir *d, const struct model_thread *t)
{
	bool final = model_thread_terminal(t->status);
	uint32_t local;
	struct rec *r;
	struct stat st;

	meta_seed(m->meta, t);
	if ((r = recs_get(m->recs, REC_THREAD, t->thread_id)) == NULL)
		return -ENOMEM;
	d->listed++;
	if (d->src == SRC_THREADS) {
		local = INO_THR_DIR;
		attr(m, &st, ino_make(REC_THREAD, r->slot, local), DIR_MODE, 0, thread_time(t));
	} else {
		const char *up = d->src == SRC_STATUS ? "../../threads/" : "../../../threads/";

		local = d->src == SRC_STATUS ? INO_THR_LINK_FROM_STATUS : INO_THR_LINK_FROM_SCRIPT;
		attr(m, &st, ino_make(REC_THREAD, r->slot, local), LINK_MODE,
		     strlen(up) + strlen(t->thread_id), thread_time(t));
	}
	return dir_add_rec(m, d, t->thread_id, r, local, &st,
	                   d->src == SRC_STATUS ? ttl_for(m, false) : ttl_for(m, final));
}

/* The next page of a listing. */
static int
dir_more(struct mount *m, struct tree_dir *d)
{
	unsigned limit = m->opt.list_limit;
	struct api_list q = {.page_size = 1000};
	struct model_thread_list l;
	int rc;

	if ((rc = dir_listing(m, d)) != 0)
		return rc;
	if (d->src == SRC_SCRIPTS)
		return dir_more_scripts(m, d);
	if (d->src == SRC_STATUS)
		q.status = d->status;
	if (d->src == SRC_SCRIPT_THREADS)
		q.script_name = d->script;
	if (limit - d->listed < 1000)
		q.page_size = (int)(limit - d->listed);
	if ((rc = meta_list_threads(m->meta, d->listing, &q, &l)) != 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < l.n_threads && d->listed < limit; i++)
		if (usable_name(l.threads[i].thread_id))
			rc = dir_add_thread(m, d, &l.threads[i]);
	d->complete = listing_done(d->listing) || d->listed >= limit;
	model_thread_list_clear(&l);
	return rc;
}

int
tree_dir_entry(struct mount *m, struct tree_dir *d, size_t i, const char **name,
               struct tree_entry *e)
{
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	while (i >= d->n && !d->complete && rc == 0)
		rc = dir_more(m, d);
	if (rc == 0 && i >= d->n)
		rc = 1;
	if (rc == 0) {
		*name = d->ents[i].name;
		*e = d->ents[i].e;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void
tree_dir_taken(struct mount *m, struct tree_dir *d, size_t i)
{
	pthread_mutex_lock(&d->lock);
	if (i < d->n && d->ents[i].rec != NULL)
		recs_lookup(m->recs, d->ents[i].rec);
	pthread_mutex_unlock(&d->lock);
}

/* ---- files ---- */

enum file_kind {
	F_BUF,     /* bytes rendered at open */
	F_PAYLOAD, /* a payload, shared with other readers */
	F_WRITE,   /* new, cancel, resume */
	F_EVENTS,  /* a thread's events, as its watch records them */
};

struct tree_file {
	enum file_kind kind;
	char *buf;
	size_t len;
	struct payload *pl;
	atomic_bool cancelled;
	struct wfile *w;
	char *script;                  /* F_WRITE of a new: whose */
	char *thread;                  /* F_WRITE of cancel or resume: whose */
	struct tree_file *prev, *next; /* in m->files once open */
	bool linked;
};

static int
file_buf(struct tree_file *f, char *data, size_t len)
{
	f->kind = F_BUF;
	f->buf = data;
	f->len = len;
	return 0;
}

static int
open_script_json(struct mount *m, const char *name, struct tree_file *f)
{
	struct model_script s;
	char *text;
	json_t *v;
	int rc;

	if ((rc = meta_script(m->meta, name, &s)) != 0)
		return rc;
	v = model_script_json(&s);
	model_script_clear(&s);
	text = v != NULL ? json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(v);
	if (text == NULL)
		return -ENOMEM;
	rc = layout_error(text, &f->buf, &f->len); /* the text and a newline */
	free(text);
	f->kind = F_BUF;
	return rc;
}

static int
open_write(struct tree_file *f, const struct wfile_target *t)
{
	f->kind = F_WRITE;
	if ((f->w = wfile_new(t)) == NULL)
		return -ENOMEM;
	if (t->kind == WRITE_NEW && (f->script = strdup(t->script)) == NULL)
		return -ENOMEM;
	if (t->kind != WRITE_NEW && (f->thread = strdup(t->thread)) == NULL)
		return -ENOMEM;
	return 0;
}

static int
open_thread_file(struct mount *m, struct rec *r, uint32_t local, int flags, struct tree_file *f,
                 struct tree_open_flags *how)
{
	bool writing = (flags & O_ACCMODE) != O_RDONLY;
	bool final = false;
	char *data;
	size_t len;
	int rc;

	if (local == INO_THR_CANCEL || local == INO_THR_RESUME) {
		struct wfile_target t = {.kind =
		                             local == INO_THR_CANCEL ? WRITE_CANCEL : WRITE_RESUME,
		                         .thread = r->name};

		how->direct_io = true;
		return open_write(f, &t);
	}
	if (writing)
		return -EACCES;
	if (ino_is_step(local)) {
		unsigned sub = ino_step_sub(local);
		struct model_step_detail d;
		char path[512];
		uint64_t size;

		if ((rc = step_of(m, r, local, path, sizeof(path))) != 0)
			return rc;
		if (sub == INO_STEP_INPUT_JSON || sub == INO_STEP_OUTPUT_JSON) {
			struct payload_key k = {.thread_id = r->name,
			                        .step_path = path,
			                        .part = sub == INO_STEP_INPUT_JSON
			                                    ? MODEL_PART_INPUT
			                                    : MODEL_PART_OUTPUT};
			const char *inl;
			bool truncated;

			if ((rc = meta_step(m->meta, r->name, path, &d, NULL)) != 0)
				return rc;
			if (!step_payload(&d, sub, &size)) {
				model_step_detail_clear(&d);
				return -ENOENT;
			}
			inl = sub == INO_STEP_INPUT_JSON ? d.input_json : d.output_json;
			truncated =
			    sub == INO_STEP_INPUT_JSON ? d.input_truncated : d.output_truncated;
			if (truncated || strlen(inl) != size)
				inl = NULL;
			rc = payload_open(m->payloads, &k, size, inl, inl != NULL ? size : 0,
			                  &f->pl);
			model_step_detail_clear(&d);
			f->kind = F_PAYLOAD;
			how->keep_cache = true;
			return rc;
		}
		if ((rc = render_step_file(m, r->name, path, sub, &data, &len, &final)) != 0)
			return rc;
		how->keep_cache = final;
		how->direct_io = !final;
		return file_buf(f, data, len);
	}
	if (local == INO_THR_OUTPUT_JSON) {
		struct model_thread t;
		struct model_result res;
		struct payload_key k = {.thread_id = r->name};

		if ((rc = meta_thread(m->meta, r->name, &t)) != 0)
			return rc;
		if ((rc = meta_result(m->meta, r->name, &res)) != 0) {
			model_thread_clear(&t);
			return rc;
		}
		rc = has_output(&t, &res)
		         ? payload_open(m->payloads, &k, (uint64_t)res.output_total_bytes, NULL, 0,
		                        &f->pl)
		         : -ENOENT;
		model_result_clear(&res);
		model_thread_clear(&t);
		f->kind = F_PAYLOAD;
		how->keep_cache = true;
		return rc;
	}
	if (local == INO_THR_EVENTS) {
		uint64_t size;

		/* reads go to the watch, so an open file grows (tail -f) */
		if ((rc = watches_size(m->watches, r->name, &size, &final)) != 0)
			return rc;
		f->kind = F_EVENTS;
		if ((f->thread = strdup(r->name)) == NULL)
			return -ENOMEM;
		how->direct_io = true;
		return 0;
	}
	if (local == INO_THR_DIR || local == INO_THR_STEPS)
		return -EISDIR;
	if ((rc = render_thread_file(m, r->name, local, &data, &len, &final)) != 0)
		return rc;
	how->keep_cache = final;
	how->direct_io = !final;
	return file_buf(f, data, len);
}

int
tree_open(struct mount *m, uint64_t ino, int flags, struct tree_file **out,
          struct tree_open_flags *how)
{
	struct tree_file *f = calloc(1, sizeof(*f));
	bool writing = (flags & O_ACCMODE) != O_RDONLY;
	struct rec *r = NULL;
	char *data;
	size_t len;
	int rc;

	memset(how, 0, sizeof(*how));
	if (f == NULL)
		return -ENOMEM;
	if (ino == INO_META_ERRORS || ino == INO_META_STATS || ino == INO_META_CONFIG) {
		rc = writing ? -EACCES : metafile_render(m, ino, &data, &len);
		if (rc == 0)
			file_buf(f, data, len);
		how->direct_io = true;
	} else if (ino_kind(ino) == REC_THREAD) {
		if ((rc = rec_of(m, ino, REC_THREAD, &r)) == 0)
			rc = open_thread_file(m, r, ino_local(ino), flags, f, how);
	} else if (ino_kind(ino) == REC_SCRIPT) {
		uint32_t local = ino_local(ino);

		if ((rc = rec_of(m, ino, REC_SCRIPT, &r)) != 0) {
			/* rc set */
		} else if (local == INO_SCRIPT_NEW || ino_is_version_new(local)) {
			struct wfile_target t = {
			    .kind = WRITE_NEW,
			    .script = r->name,
			    .version = local == INO_SCRIPT_NEW ? 0 : ino_version_of(local),
			    .load_env = m->opt.load_env};

			how->direct_io = true;
			rc = open_write(f, &t);
		} else if (local == INO_SCRIPT_SCRIPT_JSON) {
			rc = writing ? -EACCES : open_script_json(m, r->name, f);
			how->direct_io = true;
		} else {
			rc = -EISDIR;
		}
	} else {
		rc = -EISDIR;
	}
	recs_put(m->recs, r);
	if (rc != 0) {
		tree_release(m, f);
		return rc;
	}
	LINK(m->files, f);
	*out = f;
	return 0;
}

void
tree_release(struct mount *m, struct tree_file *f)
{
	if (f == NULL)
		return;
	UNLINK(m->files, f);
	if (f->pl != NULL)
		payload_close(f->pl);
	wfile_free(f->w);
	free(f->script);
	free(f->thread);
	free(f->buf);
	free(f);
}

ssize_t
tree_read(struct mount *m, struct tree_file *f, void *buf, size_t len, off_t off,
          struct payload_where *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (off < 0)
		return -EINVAL;
	switch (f->kind) {
	case F_BUF:
		if ((size_t)off >= f->len)
			return 0;
		if (len > f->len - (size_t)off)
			len = f->len - (size_t)off;
		memcpy(buf, f->buf + off, len);
		return (ssize_t)len;
	case F_PAYLOAD:
		return payload_read_at(f->pl, buf, len, (uint64_t)off, &f->cancelled, w);
	case F_WRITE:
		return wfile_read(f->w, buf, len, off);
	case F_EVENTS:
		return watches_read(m->watches, f->thread, buf, len, (uint64_t)off);
	}
	return -EIO;
}

void
tree_interrupt(struct tree_file *f)
{
	atomic_store(&f->cancelled, true);
	if (f->pl != NULL)
		payload_wake(f->pl);
}

ssize_t
tree_write(struct mount *m, struct tree_file *f, const void *buf, size_t len, off_t off)
{
	(void)m;
	if (f->kind != F_WRITE)
		return -EBADF;
	return wfile_write(f->w, buf, len, off);
}

int
tree_flush(struct mount *m, struct tree_file *f)
{
	struct model_thread t;
	bool made = false;
	int rc;

	if (f->kind != F_WRITE)
		return 0;
	memset(&t, 0, sizeof(t));
	rc = wfile_flush(f->w, m->api, m->errors, &t, &made);
	if (made) {
		meta_seed(m->meta, &t);
		model_thread_clear(&t);
	}
	/* a cancel or resume changed the thread: what is cached of it is old */
	if (rc == 0 && f->thread != NULL)
		meta_invalidate(m->meta, f->thread);
	return rc;
}

int
tree_truncate(struct mount *m, struct tree_file *f, off_t size)
{
	(void)m;
	if (f == NULL || f->kind != F_WRITE)
		return 0;
	return wfile_truncate(f->w, size);
}

void
tree_close_all(struct mount *m)
{
	while (m->files != NULL)
		tree_release(m, m->files);
	while (m->dirs != NULL)
		tree_closedir(m, m->dirs);
}
