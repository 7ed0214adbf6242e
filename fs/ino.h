/*
 * Inode numbers. The kernel may hold any number of inodes, so nothing is
 * kept per file: a number says what its file is. The mount's fixed
 * directories have small fixed numbers; everything inside one thread (its
 * directory, files, steps, the symlinks that point at it) or one script
 * shares a record, and the number is the record's slot and the file's
 * place in it:
 *
 *	bits 63..56  kind (INO_THREAD, INO_SCRIPT; 0 for the fixed ones)
 *	bits 55..24  the record's slot
 *	bits 23..0   the file within the record (enum ino_local, or a step's)
 *
 * A record lives while the kernel holds a lookup on any of its numbers or
 * a request uses it, so memory follows what the kernel remembers.
 */
#ifndef SCRIPTUMFS_INO_H
#define SCRIPTUMFS_INO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The fixed inodes. */
enum {
	INO_ROOT = 1,
	INO_THREADS,
	INO_SCRIPTS,
	INO_BY_STATUS,
	INO_BY_STATUS_FIRST,                /* by-status/<status>: ino_by_status(), six of them */
	INO_META = INO_BY_STATUS_FIRST + 6, /* 6: INO_BY_STATUS_N */
	INO_META_ERRORS,
	INO_META_STATS,
	INO_META_CONFIG,
	INO_FIXED_END,
};

enum rec_kind {
	REC_THREAD = 1,
	REC_SCRIPT = 2,
};

/* Files of a thread record. */
enum {
	INO_THR_DIR = 0,
	INO_THR_STATUS,
	INO_THR_THREAD_JSON,
	INO_THR_INPUT_JSON,
	INO_THR_OUTPUT_JSON,
	INO_THR_SUMMARY_JSON,
	INO_THR_YIELDS,
	INO_THR_ERROR,
	INO_THR_EVENTS,
	INO_THR_CANCEL,
	INO_THR_RESUME,
	INO_THR_STEPS,
	INO_THR_LINK_FROM_SCRIPT = 16, /* scripts/<name>/threads/<id> */
	INO_THR_LINK_FROM_STATUS,      /* by-status/<status>/<id> */
	INO_THR_LINK_LATEST,           /* scripts/<name>/latest, when this is the newest */
	INO_THR_STEP_BASE = 32,        /* step i: INO_THR_STEP_BASE + i * 8 + one of INO_STEP_* */
};

/* Files of a step, within its slot of eight. */
enum {
	INO_STEP_DIR = 0,
	INO_STEP_STATUS,
	INO_STEP_STEP_JSON,
	INO_STEP_INPUT_JSON,
	INO_STEP_OUTPUT_JSON,
	INO_STEP_ERROR,
};

/* Files of a script record. Version n: INO_SCRIPT_VERSION_BASE + 2n (its directory)
 * and + 1 (its new). */
enum {
	INO_SCRIPT_DIR = 0,
	INO_SCRIPT_NEW,
	INO_SCRIPT_SCRIPT_JSON,
	INO_SCRIPT_THREADS,
	INO_SCRIPT_LATEST,
	INO_SCRIPT_VERSIONS,
	INO_SCRIPT_VERSION_BASE = 8,
};

#define INO_LOCAL_BITS  24
#define INO_LOCAL_MAX   ((1u << INO_LOCAL_BITS) - 1)
#define INO_MAX_STEPS   ((INO_LOCAL_MAX - INO_THR_STEP_BASE) / 8)
#define INO_MAX_VERSION ((INO_LOCAL_MAX - INO_SCRIPT_VERSION_BASE) / 2)

#define INO_BY_STATUS_N 6 /* pending, running, paused, completed, failed, cancelled */

/* The arithmetic of inode numbers lives here and nowhere else. */

/* by-status/<status>/ number i (0: pending ... 5: cancelled). */
static inline uint64_t
ino_by_status(unsigned i)
{
	return INO_BY_STATUS_FIRST + i;
}

static inline bool
ino_is_by_status(uint64_t ino)
{
	return ino >= INO_BY_STATUS_FIRST && ino < INO_BY_STATUS_FIRST + INO_BY_STATUS_N;
}

/* Which of the six (ino_is_by_status(ino) must hold). */
static inline unsigned
ino_by_status_index(uint64_t ino)
{
	return (unsigned)(ino - INO_BY_STATUS_FIRST);
}

/* Within a thread record: file sub (an INO_STEP_*) of step number i. */
static inline uint32_t
ino_step(uint32_t i, unsigned sub)
{
	return INO_THR_STEP_BASE + i * 8 + sub;
}

static inline bool
ino_is_step(uint32_t local)
{
	return local >= INO_THR_STEP_BASE;
}

/* The step number and the file of a step inode (ino_is_step(local)). */
static inline uint32_t
ino_step_index(uint32_t local)
{
	return (local - INO_THR_STEP_BASE) / 8;
}

static inline unsigned
ino_step_sub(uint32_t local)
{
	return (local - INO_THR_STEP_BASE) % 8;
}

/* Within a script record: version n's directory, and its new file. */
static inline uint32_t
ino_version_dir(int64_t n)
{
	return INO_SCRIPT_VERSION_BASE + 2 * (uint32_t)n;
}

static inline bool
ino_is_version_dir(uint32_t local)
{
	return local >= INO_SCRIPT_VERSION_BASE && local % 2 == 0;
}

static inline bool
ino_is_version_new(uint32_t local)
{
	return local >= INO_SCRIPT_VERSION_BASE && local % 2 == 1;
}

/* The version number of a version's directory or new file. */
static inline int64_t
ino_version_of(uint32_t local)
{
	return (int64_t)(local - INO_SCRIPT_VERSION_BASE) / 2;
}

static inline uint64_t
ino_make(enum rec_kind kind, uint32_t slot, uint32_t local)
{
	return (uint64_t)kind << 56 | (uint64_t)slot << INO_LOCAL_BITS | local;
}

static inline unsigned
ino_kind(uint64_t ino)
{
	return (unsigned)(ino >> 56);
}

static inline uint32_t
ino_slot(uint64_t ino)
{
	return (uint32_t)(ino >> INO_LOCAL_BITS);
}

static inline uint32_t
ino_local(uint64_t ino)
{
	return (uint32_t)(ino & INO_LOCAL_MAX);
}

/* A thread or script and what the kernel holds of it. The name is fixed;
 * the step list only grows (a step keeps its number for the record's life). */
struct rec {
	enum rec_kind kind;
	uint32_t slot;
	uint64_t generation; /* for fuse_entry_param.generation: slots are reused */
	char *name;          /* thread id or script name (owned) */
	uint64_t nlookup;    /* the kernel's lookups, over every inode of the record */
	unsigned refs;       /* requests and open files using it */
	int64_t used_ms;     /* last use, for letting old records go */
	char **steps;        /* step paths by number (owned) */
	size_t nsteps;
	size_t capsteps;
	struct rec *next; /* hash chain */
};

struct recs;

struct recs *recs_new(void); /* NULL when out of memory */
void recs_free(struct recs *r);

/* The record named so, made if new, with a reference for the caller
 * (recs_put() it). NULL when out of memory or out of slots. */
struct rec *recs_get(struct recs *r, enum rec_kind kind, const char *name);

/* The record of an inode the kernel holds (or NULL for a slot that is no
 * longer in use), with a reference. */
struct rec *recs_by_ino(struct recs *r, uint64_t ino);

/* Drops the caller's reference. */
void recs_put(struct recs *r, struct rec *rec);

/* The kernel now holds one more lookup of an inode of rec (a reply with
 * an entry was sent). */
void recs_lookup(struct recs *r, struct rec *rec);

/* The kernel forgot n lookups of ino. */
void recs_forget(struct recs *r, uint64_t ino, uint64_t n);

/* Whether the kernel holds a lookup of any inode of rec now. */
bool recs_held(struct recs *r, struct rec *rec);

/* The number of step path within rec (added if new), or -ENOSPC. */
int recs_step(struct recs *r, struct rec *rec, const char *path);

/* The path of step number i of rec (copied into buf), false if none. */
bool recs_step_path(struct recs *r, struct rec *rec, uint32_t i, char *buf, size_t len);

/* How many thread records there are; and up to n thread ids the kernel
 * holds that were used least recently and have no reference, for asking the
 * kernel to let them go (free the strings). */
size_t recs_count(struct recs *r, enum rec_kind kind);
size_t recs_oldest(struct recs *r, enum rec_kind kind, char **names, size_t n);

#endif
