/*
 * Payload bytes for the mount: a finished thread's output.json, a step's
 * input.json and output.json. Each payload is downloaded at most once at a
 * time, into a file of the disk cache, and every reader of it shares that
 * download: a read is answered as soon as its bytes are on disk, and a read
 * far ahead waits for them rather than starting another transfer. Memory
 * stays bounded whatever the size; finished payloads stay on disk (LRU,
 * cache_size) so a second read never touches the network.
 *
 *	struct payload *pl;
 *	payload_open(ps, &key, size, NULL, 0, &pl);	// joins a download or starts one
 *	n = payload_read(pl, buf, 65536, off, &cancelled);	// blocks for bytes, or -EIO
 *	payload_close(pl);
 *
 * Only immutable payloads come here (those of terminal threads, or of
 * finished steps): their bytes never change, so a complete cache file is
 * good for ever.
 */
#ifndef SCRIPTUMFS_PAYLOAD_H
#define SCRIPTUMFS_PAYLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "api.h"
#include "model.h"

/* Which payload. Strings borrowed for the call. */
struct payload_key {
	const char *thread_id;
	const char *step_path;     /* NULL: the thread's output */
	enum model_step_part part; /* for a step: MODEL_PART_INPUT or MODEL_PART_OUTPUT */
};

struct payloads_options {
	const char *cache_dir; /* created if missing (mode 0700); required */
	uint64_t cache_size;   /* bytes of finished payloads kept; 0: keep none after close */
	size_t max_chunk;      /* maxChunkBytes asked of the stream calls; 0: server default */
	int64_t stall_ms;      /* a download silent this long fails; 0: transport default */
	struct errlog *log;    /* where failed downloads are recorded; NULL: nowhere */
};

struct payloads;
struct payload;
struct errlog;

/*
 * The manager. api is borrowed and must outlive it. Cache files found in
 * cache_dir from an earlier run are used again when complete (and trimmed
 * to cache_size). Returns 0, or -errno with a message in err.
 */
int payloads_new(struct api *api, const struct payloads_options *o, struct payloads **out,
                 char *err, size_t errlen);

/* Aborts every download, waits for them to end, frees everything. No
 * payload may still be open. */
void payloads_free(struct payloads *ps);

/*
 * Opens the payload named by k, whose exact size the caller knows (from
 * outputTotalBytes / *TotalBytes). If data is not NULL it holds all the
 * bytes already (an inline, untruncated step payload; len == size) and no
 * transfer happens. Otherwise the bytes come from the cache, or from a
 * download started now (or joined, if one is running): a thread output
 * that fits the unary limit (API_UNARY_OUTPUT_MAX) with one GetThreadResult
 * call, anything larger from StreamThreadResult or StreamStepResult. Never
 * blocks on the network. Returns 0 and *out, or -ENOMEM / -EIO (cache
 * directory trouble).
 */
int payload_open(struct payloads *ps, const struct payload_key *k, uint64_t size, const void *data,
                 size_t len, struct payload **out);

/*
 * Reads up to len bytes at off. Blocks until they have arrived (or the
 * end), the download fails, or *cancelled becomes true (checked each time
 * the reader is woken: see payload_wake()). Returns the bytes read (0 only
 * at or past the end), or -EIO when the download failed or the payload's
 * bytes disagreed with its size (never a short file), -EINTR when
 * cancelled. A failed download is retried by the next payload_open() of
 * the same key once every handle of the failed one is closed.
 */
ssize_t payload_read(struct payload *pl, void *buf, size_t len, uint64_t off,
                     const atomic_bool *cancelled);

/*
 * Keeps bytes of a payload that came some other way (an output that came
 * with the result's metadata): a complete cache file is written for k
 * unless one exists, a download of k runs, or size is past cache_size.
 * The next payload_open() of k is then a cache hit. Returns 0, or -errno
 * when the cache file could not be written (nothing is kept).
 */
int payloads_put(struct payloads *ps, const struct payload_key *k, const void *data, size_t len);

/* Where a read's bytes are when they were not copied into its buffer. */
struct payload_where {
	int fd;              /* >= 0: in this file, at the offset read */
	struct iovec iov[2]; /* n > 0: in memory here, unchanged until payload_done() */
	int n;
	/* private */
	struct payloads *ps;
	void *e;
	uint64_t off;
	struct payload_where *next;
};

/*
 * As payload_read(), but copying nothing it need not: bytes in a cache
 * file are left there (w->fd, good while the handle is open, for a reply
 * spliced from the file), bytes of a payload streaming through memory are
 * pointed at (w->iov, held until payload_done()); only others are copied
 * into buf (w->fd is -1 and w->n 0). The return value is the byte count in
 * any case.
 */
ssize_t payload_read_at(struct payload *pl, void *buf, size_t len, uint64_t off,
                        const atomic_bool *cancelled, struct payload_where *w);

/* Lets go of the memory a payload_read_at() pointed at. Any thread, and
 * the handle may have been closed meanwhile (the reply went out, and the
 * kernel may release the file at once). */
void payload_done(struct payload_where *w);

/* Wakes every reader waiting on pl so they look at their cancelled flag
 * (for a FUSE interrupt). Any thread. */
void payload_wake(struct payload *pl);

/* Why the download failed ("StreamThreadResult th_1: ..."), "" if it did
 * not. Copied into buf. */
void payload_error(struct payload *pl, char *buf, size_t len);

/*
 * Closes a handle. When the last handle of an unfinished download closes,
 * the download is aborted and its partial file removed (an interrupted
 * `cat` stops the transfer).
 */
void payload_close(struct payload *pl);

struct payloads_stats {
	uint64_t downloads; /* transfers started */
	uint64_t downloads_failed;
	uint64_t bytes_downloaded;
	uint64_t cache_hits;  /* opens served from a complete cache file */
	uint64_t cache_bytes; /* bytes of complete files in the cache */
	uint64_t cache_files;
	uint64_t evictions;
	unsigned active; /* downloads running now */
};
void payloads_stats(struct payloads *ps, struct payloads_stats *out);

#endif
