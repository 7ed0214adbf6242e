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
	INO_BY_STATUS_FIRST, /* by-status/<status>: + (status - 1), six of them */
	INO_META = INO_BY_STATUS_FIRST + 6,
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
	T_DIR = 0,
	T_STATUS,
	T_THREAD_JSON,
	T_INPUT_JSON,
	T_OUTPUT_JSON,
	T_SUMMARY_JSON,
	T_YIELDS,
	T_ERROR,
	T_EVENTS,
	T_CANCEL,
	T_RESUME,
	T_STEPS,
	T_LINK_FROM_SCRIPT = 16, /* scripts/<name>/threads/<id> */
	T_LINK_FROM_STATUS,      /* by-status/<status>/<id> */
	T_LINK_LATEST,           /* scripts/<name>/latest, when this is the newest */
	T_STEP_BASE = 32,        /* step i: T_STEP_BASE + i * 8 + one of S_* */
};

/* Files of a step, within its slot of eight. */
enum {
	S_DIR = 0,
	S_STATUS,
	S_STEP_JSON,
	S_INPUT_JSON,
	S_OUTPUT_JSON,
	S_ERROR,
};

/* Files of a script record. Version n: S_VERSION_BASE + 2n (its directory)
 * and + 1 (its new). */
enum {
	SC_DIR = 0,
	SC_NEW,
	SC_SCRIPT_JSON,
	SC_THREADS,
	SC_LATEST,
	SC_VERSIONS,
	SC_VERSION_BASE = 8,
};

#define INO_LOCAL_BITS  24
#define INO_LOCAL_MAX   ((1u << INO_LOCAL_BITS) - 1)
#define INO_MAX_STEPS   ((INO_LOCAL_MAX - T_STEP_BASE) / 8)
#define INO_MAX_VERSION ((INO_LOCAL_MAX - SC_VERSION_BASE) / 2)

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
