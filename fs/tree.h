/*
 * The namespace of the mount and its rules (doc/SEMANTICS.md, Layout to
 * Writing): what each inode is, its attributes, the entries of each
 * directory, and what an open file reads. ops.c turns FUSE requests into
 * these calls; nothing here knows FUSE's reply functions, and nothing here
 * speaks HTTP (meta.c, payload.c and writes.c do, through libscriptum).
 */
#ifndef SCRIPTUMFS_TREE_H
#define SCRIPTUMFS_TREE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fs.h"
#include "ino.h"
#include "meta.h"
#include "payload.h"
#include "watch.h"

struct config;
struct tree_file;
struct tree_dir;

/* The mount: everything a request may need. Made by main.c. */
struct mount {
	struct fs_options opt;
	struct api *api;
	struct meta *meta;
	struct recs *recs;
	struct payloads *payloads;
	struct errlog *errors;
	struct watches *watches;
	char *config_text;  /* .scriptumfs/config: the resolved configuration, no secrets */
	int64_t started_ms; /* wall clock */
	atomic_uint_fast64_t requests;
	struct tree_file *files; /* open files and directories, for tree_close_all() */
	struct tree_dir *dirs;
};

/* An entry to reply with: the inode, its attributes, how long the kernel
 * may keep them. ino 0: a negative entry (the name does not exist). */
struct tree_entry {
	uint64_t ino;
	uint64_t generation;
	struct stat attr;
	double entry_timeout;
	double attr_timeout;
};

/*
 * Looks name up in parent. 0 and *e (a lookup the kernel now holds: the
 * record's count is taken), or -ENOENT (e->entry_timeout says how long the
 * kernel may remember that), or another -errno (the API failed).
 */
int tree_lookup(struct mount *m, uint64_t parent, const char *name, struct tree_entry *e);

/* Attributes of ino; *timeout for how long they may be kept. */
int tree_getattr(struct mount *m, uint64_t ino, struct stat *st, double *timeout);

/* A symlink's target, NUL-terminated in buf. */
int tree_readlink(struct mount *m, uint64_t ino, char *buf, size_t len);

/* ---- directories ---- */

struct tree_dir;

/* Opens a directory for reading: listings are fetched as the reader gets
 * to them (threads/ page by page) and kept in the handle, so offsets stay
 * stable. */
int tree_opendir(struct mount *m, uint64_t ino, struct tree_dir **out);
void tree_closedir(struct mount *m, struct tree_dir *d);

/*
 * Entry number i of d (0 and 1 are "." and ".."). 0 and *name (owned by
 * d) and *e (attributes; with plus, a lookup is taken when the caller
 * calls tree_dir_taken()), 1 at the end, or -errno.
 */
int tree_dir_entry(struct mount *m, struct tree_dir *d, size_t i, const char **name,
                   struct tree_entry *e);

/* The kernel got entry i with its attributes (readdirplus): count it. */
void tree_dir_taken(struct mount *m, struct tree_dir *d, size_t i);

/* ---- files ---- */

struct tree_file;

/* How an open file is to be treated by the kernel. */
struct tree_open_flags {
	bool direct_io;  /* always ask: the content may change */
	bool keep_cache; /* the content never changes: keep the page cache */
	bool nonseekable;
};

int tree_open(struct mount *m, uint64_t ino, int flags, struct tree_file **out,
              struct tree_open_flags *how);
void tree_release(struct mount *m, struct tree_file *f);

/* Reads at off into buf: bytes read (short only at the end) or -errno.
 * *cancelled may be set from another thread (a FUSE interrupt) with
 * tree_interrupt() waking the reader. A payload's bytes may be left where
 * they are instead (see payload_read_at()): in a cache file (w->fd >= 0) or
 * in memory (w->n > 0, held until payload_done(w), which needs f no more:
 * once the reply is out the kernel may release the file). */
ssize_t tree_read(struct mount *m, struct tree_file *f, void *buf, size_t len, off_t off,
                  struct payload_where *w);
void tree_interrupt(struct tree_file *f);

ssize_t tree_write(struct mount *m, struct tree_file *f, const void *buf, size_t len, off_t off);
int tree_flush(struct mount *m, struct tree_file *f);
int tree_truncate(struct mount *m, struct tree_file *f, off_t size);

/* Closes every file and directory still open: after the session ends, the
 * kernel sends no release for what was open when it was cut off. */
void tree_close_all(struct mount *m);

#endif
