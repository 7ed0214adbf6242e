/*
 * scriptumfs: the pieces of the filesystem and how they meet. Layers, each
 * knowing only the one below (STYLE.md):
 *
 *	ops.c      FUSE low-level operations: requests in, replies out; no HTTP
 *	tree.c     the namespace: what each inode is, its attributes, its
 *	           directory entries, its bytes (doc/SEMANTICS.md)
 *	ino.c      inode numbers: thread and script records, lookup counts
 *	meta.c     thread metadata from the API, cached (terminal: for good,
 *	           bounded by mem_cache; running: fresh within running_ttl)
 *	payload.c  output and step payloads: shared downloads, disk cache
 *	writes.c   the writable files: new, cancel, resume
 *	watch.c    running threads followed, events recorded, the kernel's
 *	           cache invalidated when they change
 *	errlog.c   recent API errors for .scriptumfs/errors and the log
 *	client/    libscriptum: API calls, model, transport
 */
#ifndef SCRIPTUMFS_FS_H
#define SCRIPTUMFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "api.h"
#include "clock.h"
#include "hash.h"
#include "model.h"

/* A name's bucket among n (hash.h), for the tables of ino.c and meta.c. */
static inline unsigned
fs_hash(const char *s, unsigned n)
{
	return (unsigned)(hash_str(0, s) % n);
}

/* Options of the mount (scriptumfs(1), OPTIONS); 0 means the default. */
struct fs_options {
	unsigned list_limit;    /* threads listed in threads/ and the like; 1000 */
	int64_t running_ttl_ms; /* freshness of a running thread's files; 1000 */
	uint64_t mem_cache;     /* bytes of thread metadata kept; 64 MiB */
	const char *cache_dir;  /* payload cache; $XDG_CACHE_HOME/scriptumfs or ~/.cache/... */
	uint64_t cache_size;    /* bytes of payloads kept on disk; 1 GiB */
	bool load_env;          /* CreateThread with loadEnv */
	uid_t uid;              /* owner of every file */
	gid_t gid;
	unsigned max_threads; /* thread records before old ones are let go; 100000 */
};

#define FS_LIST_LIMIT     1000u
#define FS_RUNNING_TTL_MS ((int64_t)1000)
#define FS_MEM_CACHE      ((uint64_t)64 << 20)
#define FS_CACHE_SIZE     ((uint64_t)1 << 30)
#define FS_MAX_THREADS    100000u
#define FS_NEGATIVE_TTL   1.0    /* seconds an unknown name stays unknown */
#define FS_TERMINAL_TTL   3600.0 /* seconds the kernel may keep a finished thread's attrs */
#define FS_INPUT_MAX      ((size_t)16 << 20) /* bytes written into new/resume */

/* ---- errlog.c: recent API errors ---- */

struct errlog;

/* A ring of the last `keep` errors. NULL only when out of memory. */
struct errlog *errlog_new(unsigned keep);
void errlog_free(struct errlog *l);

/* Records a failed call (also sent to the log: syslog or stderr, as
 * log_init() chose). Thread-safe. */
void errlog_add(struct errlog *l, const struct http_error *e);

/* The ring as text, oldest first, one line each:
 * "2026-11-29T03:50:01Z GetThread th_1 HTTP 404 NOT_FOUND: thread 'th_1' not found\n".
 * A new string (free() it) in *out; 0 or -ENOMEM. */
int errlog_render(struct errlog *l, char **out, size_t *len);

/* Logging: syslog when detached, stderr in the foreground. */
void log_init(bool foreground, bool debug);
void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whose secrets every log line and errlog entry is cleaned of
 * (api_redact()): set once api exists, before any thread logs; NULL
 * before api is freed. Borrowed. */
void log_redact_with(struct api *api);

/* ---- writes.c: new, cancel, resume ---- */

enum write_kind {
	WRITE_NEW,    /* scripts/<name>/new, versions/<n>/new: CreateThread */
	WRITE_CANCEL, /* threads/<id>/cancel: CancelThread */
	WRITE_RESUME, /* threads/<id>/resume: ResumeThread */
};

/*
 * One open writable file. Bytes written are kept (at most FS_INPUT_MAX:
 * more is -EFBIG); the action happens once per open file, at the first
 * flush that comes after bytes were written (a flush with nothing written,
 * as bash's dup2 makes, does nothing), and its result is that flush's
 * result, so close() reports it. After the action, further writes fail
 * with -EBADF (the file has done its one thing), and reads give the
 * answer: for new, the thread id and a newline.
 */
struct wfile;

struct wfile_target {
	enum write_kind kind;
	const char *script; /* WRITE_NEW */
	int64_t version;    /* WRITE_NEW: 0 = active */
	const char *thread; /* WRITE_CANCEL, WRITE_RESUME */
	bool load_env;      /* WRITE_NEW */
};

/* The strings of t are copied. NULL when out of memory. */
struct wfile *wfile_new(const struct wfile_target *t);
void wfile_free(struct wfile *w);

/* write(2) at off: 0..len bytes taken, or -EFBIG past FS_INPUT_MAX, or
 * -EBADF after the action was done, or -EINVAL (new and resume) when the
 * bytes written so far, in order from the start, can begin no JSON value.
 * Writes may come at any offset (a hole reads as NUL bytes, which is not
 * JSON; out-of-order writes are checked at the flush only). */
ssize_t wfile_write(struct wfile *w, const void *buf, size_t len, off_t off);

/* O_TRUNC / truncate(2) to size (only 0 or shrinking before the action). */
int wfile_truncate(struct wfile *w, off_t size);

/*
 * flush(2): after a write refused as too big, -EFBIG and nothing sent
 * (until a truncate). When bytes were written and no action was done yet: validate
 * (new and resume: the bytes must be JSON, else -EINVAL and nothing is
 * sent; cancel: anything), then call the API. 0, or -errno of the failure
 * (errmap: -EINVAL, -EBUSY for a thread not in a state that allows it,
 * -ENOENT, -EACCES, -EAGAIN, -ETIMEDOUT, -EIO ...), the API's message in
 * the errlog. Otherwise 0 and nothing happens. For new, on success
 * *created is filled (the thread; the caller clears it) and *made set.
 */
int wfile_flush(struct wfile *w, struct api *api, struct errlog *log, struct model_thread *created,
                bool *made);

/* read(2) of the same open file: the answer of the action ("<thread id>\n"
 * for new; "" before it, and for cancel and resume). */
ssize_t wfile_read(struct wfile *w, void *buf, size_t len, off_t off);

#endif
