/*
 * The payload layer of the mount (see payload.h): one download per key at a
 * time, in its own thread, written sequentially into "<cache_dir>/<name>.part"
 * and shared by every open handle of that key. Readers pread() the cache file
 * once the bytes they want are there, and otherwise sleep on the entry's
 * condition variable; nothing is held in memory beyond one stream chunk (or
 * one unary answer, at most API_UNARY_OUTPUT_MAX). A finished download is
 * renamed to "<name>" and kept, least recently used first out, while the
 * complete files add up to no more than cache_size.
 *
 *	$ ls ~/.cache/scriptumfs
 *	thr_5iab2u6rmrlr-3f0c...e1          a thread's output.json
 *	thr_5iab2u6rmrlr_s2_out-9b41...07   the output of its step 2
 *	thr_x2...-77aa...90.part            a download in progress
 *
 * A name is a readable prefix (the thread id and step path with every byte
 * outside [A-Za-z0-9._-] replaced) and the SHA-256 of the full key, so the
 * name is safe whatever the id holds and two keys never share a file.
 *
 * Locking: one mutex (ps->lock) guards the index, the LRU list, the counters
 * and every entry's state; it is never held across a network transfer, only
 * across local file system calls (open, rename, unlink) that keep the index
 * and the directory in step. An entry is either attached (in the index; its
 * file on disk is its own) or detached (failed, abandoned or replaced: its
 * file has been unlinked and it lives on only for its handles and its
 * download thread, freed when the last of them lets go).
 *
 * Bytes that came another way (an output that came with its result's
 * metadata, payloads_put()) make an entry that is complete at once and
 * served from memory, while the writer thread makes its file off the
 * caller's path; then the memory goes.
 */
#include "fs.h"
#include "payload.h"
#include "sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"

#define DIGEST_LEN  SHA256_LEN
#define HEX_LEN     (2 * DIGEST_LEN)
#define PREFIX_MAX  40 /* readable bytes taken from the thread id, and from a step path */
#define NAME_BUF    (2 * PREFIX_MAX + 8 + 1 + HEX_LEN + 1)
#define PART_SUFFIX ".part"
#define PATH_BUF    (NAME_BUF + sizeof(PART_SUFFIX))
#define ERR_MAX     512
#define WHY_MAX     320
/* put bytes waiting for the writer, at most: past this a put is not kept */
#define PUT_PENDING_MAX ((uint64_t)32 << 20)
/* the writer waits for puts to pause this long (or for half of the above)
 * before it makes their files: a `grep -r` sweeping many small outputs is
 * not slowed by file creation competing for the CPU */
#define PUT_QUIET_MS 200
/* A payload larger than RING_BYTES, or than the whole cache, streams
 * through a ring of RING_BYTES in memory; one that fits the cache is
 * written behind it to its cache file with O_DIRECT (so it costs no copy
 * into the page cache), DIRECT_MAX bytes a write. */
#define RING_BYTES   ((uint64_t)16 << 20)
#define DIRECT_MAX   ((uint64_t)1 << 20)
#define DIRECT_ALIGN 4096
/* bytes a ring keeps behind each reader (the kernel's readahead may ask
 * for them out of order), and how long a reader that does not read may
 * hold the download back */
#define RING_SLACK   ((uint64_t)4 << 20)
#define RING_IDLE_MS 5000
/* ... and one that has not read yet: the kernel may serve it from the
 * pages another reader brought in, so that it never asks (long enough for
 * a reader that opened with others to start reading on a loaded machine) */
#define RING_FIRST_MS 2000

/* ---- the manager's state ---- */

enum pstate {
	P_DOWNLOADING, /* the bytes are arriving into <name>.part */
	P_COMPLETE,    /* all size bytes are in the file */
	P_FAILED,      /* the download ended short: bytes below written are good */
};

/* One key: a complete cache file, or a download in progress. Fields are
 * guarded by ps->lock, except those fixed before the download thread starts
 * (digest, name, size, thread_id, step_path, part) and fd, which changes
 * only while no handle and no download thread use the entry. */
struct pentry {
	struct payloads *ps;
	unsigned char digest[DIGEST_LEN];
	char name[NAME_BUF]; /* the complete file's name; ".part" appended while downloading */
	uint64_t size;
	enum pstate state;
	bool attached;       /* in the index, and its file on disk is its own */
	int fd;              /* -1 unless a handle is open or the download runs */
	uint64_t written;    /* bytes of fd that can be read */
	unsigned handles;    /* open payload handles */
	int64_t mtime_ns;    /* for the scan's LRU order only */
	pthread_cond_t cond; /* written, state or a wake changed */
	char error[ERR_MAX]; /* why it failed */

	/* the download, while thread_live */
	bool thread_live;
	bool abandoned; /* nobody wants it any more: stop */
	bool unary;     /* in the GetThreadResult call, which the watchdog cannot abort */
	bool stalled;   /* the watchdog aborted it */
	int64_t last_io_ms;
	struct http_abort *abort; /* owned; freed when the thread ends */
	char *thread_id;          /* owned */
	char *step_path;          /* owned; NULL: the thread's output */
	enum model_step_part part;

	/* a large payload (ringed): the bytes [tail, written) are at
	 * ring[offset % ringcap]; the download starts with the first read (so
	 * an open the kernel serves from its pages costs nothing) and waits for
	 * the slowest of its readers, and for the writer of its file (keep):
	 * [0, durable) are in the file, which becomes the cache file when the
	 * download ends well */
	bool ringed;
	bool started;
	unsigned char *ring;
	uint64_t ringcap;
	uint64_t tail;
	struct payload *readers;
	struct payload_where *pins; /* replies sent from the ring right now */
	bool keep;                  /* written behind to fd's file */
	int dfd;                    /* that file with O_DIRECT; -1: written through fd */
	uint64_t durable;
	bool dfailed; /* writing it failed: not kept */
	bool dstop;   /* the download failed: the writer stops */
	bool dwriter_live;
	pthread_t dwriter;

	/* a put's bytes (payloads_put), served from memory until the writer
	 * has made its file; kept for good if that failed */
	unsigned char *mem;
	bool pending;         /* in the writer's queue or being written */
	struct pentry *wnext; /* the writer's queue */

	struct pentry *hnext;               /* hash chain */
	struct pentry *lru_prev, *lru_next; /* complete, attached, no handle */
	bool in_lru;
	struct pentry *live_prev, *live_next; /* downloads running */
};

struct payloads {
	struct api *api;
	struct errlog *log;
	int dirfd;
	uint64_t cache_size;
	size_t max_chunk;
	int64_t stall_ms;

	pthread_mutex_t lock;
	pthread_cond_t idle; /* a download thread ended */
	pthread_cond_t tick; /* CLOCK_MONOTONIC: the watchdog's sleep, cut short at the end */
	struct pentry **buckets;
	size_t nbuckets, nentries;
	struct pentry *lru_head, *lru_tail; /* head: least recently used */
	struct pentry *live;
	bool closing;
	bool have_watchdog;
	pthread_t watchdog;
	/* the writer of put payloads' files, off the caller's path */
	struct pentry *wq_head, *wq_tail;
	uint64_t wq_bytes;
	int64_t last_put_ms;
	pthread_cond_t wq_cond;
	bool have_writer;
	pthread_t writer;
	struct payloads_stats st;
};

/* A handle: an entry's, or bytes given at open (inline). */
struct payload {
	struct payloads *ps;
	bool inl;            /* the bytes were given at open: no entry */
	struct pentry *e;    /* the entry (ps->lock: a ring's reader may move) */
	unsigned char *data; /* inline bytes (owned) */
	uint64_t size;
	size_t len; /* inline: bytes given; they must be size */
	/* a ringed entry's reader: how far its reads have got (UINT64_MAX:
	 * it holds nothing back) and when it last read */
	struct payload *rnext;
	uint64_t pos;
	int64_t last_ms;
	bool has_read;
};

static const char *
errstr(int err, char *buf, size_t len)
{
	/* the GNU strerror_r (_GNU_SOURCE): thread-safe, returns the text */
	return strerror_r(err, buf, len);
}

/* ---- names ---- */

/* Appends up to PREFIX_MAX bytes of s, each outside [A-Za-z0-9._-] made '_'
 * (and a leading '.' too, so that no name is hidden or a dot-segment). */
static size_t
sanitize(char *out, size_t at, const char *s)
{
	for (size_t i = 0; s[i] != '\0' && i < PREFIX_MAX; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		            (ch == '.' && at > 0);

		out[at++] = keep ? (char)ch : '_';
	}
	return at;
}

/* The digest and the file name of a key. The hash covers the whole key with
 * NUL separators, so no two keys share a name, however long or odd. */
static void
key_name(const struct payload_key *k, bool step, unsigned char digest[DIGEST_LEN],
         char name[NAME_BUF])
{
	static const char hex[] = "0123456789abcdef";
	struct sha256 h;
	size_t at = 0;

	sha256_init(&h);
	sha256_update(&h, "scriptumfs-payload-1", 21); /* with its NUL */
	sha256_update(&h, k->thread_id, strlen(k->thread_id) + 1);
	if (step) {
		char part = k->part == MODEL_PART_INPUT ? 'i' : 'o';

		sha256_update(&h, k->step_path, strlen(k->step_path) + 1);
		sha256_update(&h, &part, 1);
	}
	sha256_final(&h, digest);

	at = sanitize(name, at, k->thread_id);
	if (step) {
		memcpy(name + at, "_s", 2);
		at = sanitize(name, at + 2, k->step_path);
		memcpy(name + at, k->part == MODEL_PART_INPUT ? "_in" : "_out", 4);
		at += strlen(name + at);
	}
	name[at++] = '-';
	for (int i = 0; i < DIGEST_LEN; i++) {
		name[at++] = hex[digest[i] >> 4];
		name[at++] = hex[digest[i] & 15];
	}
	name[at] = '\0';
}

/* Whether k names a payload (*step: one of a step's); 0 or -EINVAL. */
static int
key_check(const struct payload_key *k, bool *step)
{
	if (k == NULL || k->thread_id == NULL || k->thread_id[0] == '\0')
		return -EINVAL;
	*step = k->step_path != NULL && k->step_path[0] != '\0';
	if (*step && k->part != MODEL_PART_INPUT && k->part != MODEL_PART_OUTPUT)
		return -EINVAL;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Whether a directory entry is one of ours: "<prefix>-<64 hex>", with
 * ".part" when it is a download that never finished. */
static bool
parse_name(const char *name, unsigned char digest[DIGEST_LEN], bool *part)
{
	size_t len = strlen(name), sl = strlen(PART_SUFFIX);
	const char *hexs;

	*part = len > sl && strcmp(name + len - sl, PART_SUFFIX) == 0;
	if (*part)
		len -= sl;
	if (len < HEX_LEN + 2 || len >= NAME_BUF || name[0] == '.' ||
	    name[len - HEX_LEN - 1] != '-')
		return false;
	hexs = name + len - HEX_LEN;
	for (int i = 0; i < DIGEST_LEN; i++) {
		int hi = hexval(hexs[2 * i]), lo = hexval(hexs[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		digest[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}

static void
part_name(const struct pentry *e, char *buf)
{
	snprintf(buf, PATH_BUF, "%s%s", e->name, PART_SUFFIX);
}

/* ---- the index, the LRU list, the live list (ps->lock held) ---- */

static size_t
bucket_of(const struct payloads *ps, const unsigned char *digest)
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));
	return (size_t)(h & (ps->nbuckets - 1));
}

static struct pentry **
index_slot(struct payloads *ps, const unsigned char *digest)
{
	struct pentry **pp = &ps->buckets[bucket_of(ps, digest)];

	while (*pp != NULL && memcmp((*pp)->digest, digest, DIGEST_LEN) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

/* Doubles the table; when memory is short the chains just get longer. */
static void
index_grow(struct payloads *ps)
{
	size_t old = ps->nbuckets, n = old * 2;
	struct pentry **nb = calloc(n, sizeof(*nb)), **ob = ps->buckets;

	if (nb == NULL)
		return;
	ps->buckets = nb;
	ps->nbuckets = n;
	for (size_t i = 0; i < old; i++) {
		while (ob[i] != NULL) {
			struct pentry *e = ob[i];
			size_t b = bucket_of(ps, e->digest);

			ob[i] = e->hnext;
			e->hnext = nb[b];
			nb[b] = e;
		}
	}
	free(ob);
}

static void
index_insert(struct payloads *ps, struct pentry *e)
{
	struct pentry **pp;

	if (ps->nentries >= ps->nbuckets)
		index_grow(ps);
	pp = &ps->buckets[bucket_of(ps, e->digest)];
	e->hnext = *pp;
	*pp = e;
	ps->nentries++;
	e->attached = true;
}

static void
index_remove(struct payloads *ps, struct pentry *e)
{
	struct pentry **pp = &ps->buckets[bucket_of(ps, e->digest)];

	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e) {
		*pp = e->hnext;
		ps->nentries--;
	}
	e->hnext = NULL;
	e->attached = false;
}

static void
lru_append(struct payloads *ps, struct pentry *e)
{
	e->lru_prev = ps->lru_tail;
	e->lru_next = NULL;
	if (ps->lru_tail != NULL)
		ps->lru_tail->lru_next = e;
	else
		ps->lru_head = e;
	ps->lru_tail = e;
	e->in_lru = true;
}

static void
lru_remove(struct payloads *ps, struct pentry *e)
{
	if (!e->in_lru)
		return;
	if (e->lru_prev != NULL)
		e->lru_prev->lru_next = e->lru_next;
	else
		ps->lru_head = e->lru_next;
	if (e->lru_next != NULL)
		e->lru_next->lru_prev = e->lru_prev;
	else
		ps->lru_tail = e->lru_prev;
	e->lru_prev = e->lru_next = NULL;
	e->in_lru = false;
}

static void
live_insert(struct payloads *ps, struct pentry *e)
{
	e->live_prev = NULL;
	e->live_next = ps->live;
	if (ps->live != NULL)
		ps->live->live_prev = e;
	ps->live = e;
}

static void
live_remove(struct payloads *ps, struct pentry *e)
{
	if (e->live_prev != NULL)
		e->live_prev->live_next = e->live_next;
	else
		ps->live = e->live_next;
	if (e->live_next != NULL)
		e->live_next->live_prev = e->live_prev;
	e->live_prev = e->live_next = NULL;
}

/* ---- entries ---- */

static struct pentry *
entry_new(struct payloads *ps, const unsigned char *digest, const char *name)
{
	struct pentry *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return NULL;
	e->ps = ps;
	memcpy(e->digest, digest, DIGEST_LEN);
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->fd = -1;
	e->dfd = -1;
	clk_cond_init(&e->cond);
	return e;
}

/* Frees an entry nobody uses any more (no handle, no thread, not in a list). */
static void
entry_free(struct pentry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	if (e->dfd >= 0)
		close(e->dfd);
	http_abort_free(e->abort);
	free(e->mem);
	free(e->ring);
	free(e->thread_id);
	free(e->step_path);
	pthread_cond_destroy(&e->cond);
	free(e);
}

/* Takes an entry out of the index and removes its file, so that the key's
 * next open starts afresh. Handles still open keep reading through their
 * descriptor; a running download goes on into the unlinked file. */
static void
detach(struct payloads *ps, struct pentry *e)
{
	char path[PATH_BUF];

	if (!e->attached)
		return;
	index_remove(ps, e);
	lru_remove(ps, e);
	if (e->state == P_COMPLETE) {
		unlinkat(ps->dirfd, e->name, 0);
		ps->st.cache_bytes -= e->size;
		ps->st.cache_files--;
	} else {
		part_name(e, path);
		unlinkat(ps->dirfd, path, 0);
	}
}

/* Frees e if it is detached and nothing refers to it any more. */
static void
release_if_unused(struct pentry *e)
{
	if (!e->attached && e->handles == 0 && !e->thread_live && !e->pending && e->pins == NULL)
		entry_free(e);
}

/* Deletes least recently used complete files until the rest fit. Only
 * files that no handle has open are on the LRU list. */
static void
trim(struct payloads *ps)
{
	while (ps->st.cache_bytes > ps->cache_size && ps->lru_head != NULL) {
		struct pentry *e = ps->lru_head;

		detach(ps, e);
		ps->st.evictions++;
		entry_free(e);
	}
}

/* Opens a complete file for its first handle; -errno when it is gone or
 * no longer the size it had (someone else touched the cache). */
static int
entry_reopen(struct payloads *ps, struct pentry *e)
{
	struct stat st;
	int fd = openat(ps->dirfd, e->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size) {
		close(fd);
		return -EIO;
	}
	/* the modification time is the LRU order a later run's scan sees; a
	 * minute's precision is enough, and spares a journal write an open */
	if (time(NULL) - st.st_mtim.tv_sec > 60)
		futimens(fd, NULL);
	lru_remove(ps, e);
	e->fd = fd;
	return 0;
}

/* ---- the download thread ---- */

/* Writes all of len bytes at off; 0 or -errno. */
static int
pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	for (size_t done = 0; done < len;) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
	}
	return 0;
}

/* One download's progress, private to its thread. */
struct dl {
	struct pentry *e;
	uint64_t off; /* bytes written */
	bool meta;    /* the payload's size was announced, and it agreed */
	bool done;    /* a step part's final chunk came: the rest is not ours */
	char why[WHY_MAX];
};

static int dl_fail(struct dl *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records why the download cannot go on; the callback's -ECANCELED then
 * ends the stream call (not -EIO, which the API reads as a cut body). */
static int
dl_fail(struct dl *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->why, sizeof(d->why), fmt, ap);
	va_end(ap);
	return -ECANCELED;
}

/* The lowest offset a ring must still hold for its readers (lock held);
 * UINT64_MAX when none holds anything back. */
static uint64_t
ring_floor(const struct pentry *e, int64_t now)
{
	uint64_t floor = UINT64_MAX;

	for (const struct payload_where *w = e->pins; w != NULL; w = w->next)
		if (w->off < floor)
			floor = w->off;
	if (e->keep && !e->dfailed && e->durable < floor)
		floor = e->durable;

	for (const struct payload *h = e->readers; h != NULL; h = h->rnext) {
		uint64_t keep;

		/* one behind the ring reads the file, or starts anew */
		if (h->pos == UINT64_MAX || h->pos < e->tail ||
		    now - h->last_ms >= (h->has_read ? RING_IDLE_MS : RING_FIRST_MS))
			continue;
		keep = h->pos > RING_SLACK ? h->pos - RING_SLACK : 0;
		if (keep < floor)
			floor = keep;
	}
	return floor;
}

/* Appends bytes to a ring, waiting while that would overwrite bytes a
 * reader still needs. The tail moves before the bytes are overwritten, and
 * readers copy under the lock, so none copies bytes being replaced. */
static int
ring_write(struct dl *d, const unsigned char *p, size_t n)
{
	struct pentry *e = d->e;
	struct payloads *ps = e->ps;
	bool abandoned;

	pthread_mutex_lock(&ps->lock);
	while (n > 0 && !e->abandoned) {
		int64_t now = clk_mono_ms();
		uint64_t floor = ring_floor(e, now), at = d->off % e->ringcap, room;
		size_t take;

		if (floor == UINT64_MAX)
			room = n;
		else
			room = floor + e->ringcap > d->off ? floor + e->ringcap - d->off : 0;
		if (room == 0) {
			/* a reader is a ring behind; it is not the server that is
			 * slow, so the watchdog is told all is well */
			e->last_io_ms = now;
			clk_cond_wait_ms(&e->cond, &ps->lock, 100);
			continue;
		}
		take = n;
		if (take > room)
			take = (size_t)room;
		if (take > e->ringcap - at)
			take = (size_t)(e->ringcap - at);
		if (d->off + take > e->ringcap && e->tail < d->off + take - e->ringcap)
			e->tail = d->off + take - e->ringcap;
		pthread_mutex_unlock(&ps->lock);
		memcpy(e->ring + at, p, take);
		pthread_mutex_lock(&ps->lock);
		d->off += take;
		p += take;
		n -= take;
		e->written = d->off;
		e->last_io_ms = clk_mono_ms();
		ps->st.bytes_downloaded += take;
		pthread_cond_broadcast(&e->cond);
	}
	abandoned = e->abandoned;
	pthread_mutex_unlock(&ps->lock);
	return abandoned ? -ECANCELED : 0;
}

/* Appends bytes to the cache file (or the ring) and tells the readers. */
static int
dl_write(struct dl *d, const unsigned char *p, size_t n)
{
	struct pentry *e = d->e;
	struct payloads *ps = e->ps;
	bool abandoned;
	char eb[128];
	int rc;

	if (n > e->size - d->off)
		return dl_fail(d, "more than the %" PRIu64 " bytes expected", e->size);
	if (e->ringed)
		return ring_write(d, p, n);
	if ((rc = pwrite_full(e->fd, p, n, d->off)) != 0)
		return dl_fail(d, "writing the cache file: %s", errstr(-rc, eb, sizeof(eb)));
	d->off += n;
	pthread_mutex_lock(&ps->lock);
	e->written = d->off;
	e->last_io_ms = clk_mono_ms();
	ps->st.bytes_downloaded += n;
	abandoned = e->abandoned;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&ps->lock);
	return abandoned ? -ECANCELED : 0;
}

static int
check_size(struct dl *d, int64_t total)
{
	if (total < 0 || (uint64_t)total != d->e->size)
		return dl_fail(d,
		               "the server has %" PRId64 " bytes where %" PRIu64 " were expected",
		               total, d->e->size);
	d->meta = true;
	return 0;
}

static int
on_result(const struct model_result_msg *m, void *arg)
{
	struct dl *d = arg;

	switch (m->kind) {
	case MODEL_MSG_META:
		return check_size(d, m->output_total_bytes);
	case MODEL_MSG_CHUNK:
		if (!d->meta)
			return dl_fail(d, "a chunk before the meta message");
		return m->len > 0 ? dl_write(d, m->data, m->len) : 0;
	default:
		return 0;
	}
}

/* A step's stream holds its input, then its output: only the wanted part's
 * bytes are written, and once it is whole the stream is left. */
static int
on_step(const struct model_result_msg *m, void *arg)
{
	struct dl *d = arg;
	const struct pentry *e = d->e;
	int rc;

	switch (m->kind) {
	case MODEL_MSG_STEP_META:
		if (strcmp(m->step_meta.step.step_path, e->step_path) != 0)
			return 0;
		return check_size(d, e->part == MODEL_PART_INPUT ? m->step_meta.input_total_bytes
		                                                 : m->step_meta.output_total_bytes);
	case MODEL_MSG_STEP_CHUNK:
		if (strcmp(m->step_path, e->step_path) != 0 || m->part != e->part)
			return 0;
		if (!d->meta)
			return dl_fail(d, "a chunk of step %s before its stepMeta", e->step_path);
		if (m->len > 0 && (rc = dl_write(d, m->data, m->len)) != 0)
			return rc;
		if (m->is_final && d->off == e->size) {
			d->done = true;
			return -ECANCELED;
		}
		return 0;
	default:
		return 0;
	}
}

/* A thread output that fits the unary limit: one GetThreadResult. Returns
 * 0 when the bytes are written, 1 when the answer cannot be used (truncated,
 * or another size) and the stream must be asked, -EIO with why. */
static int
fetch_unary(struct dl *d, struct http_error *he, char *why, size_t len)
{
	struct pentry *e = d->e;
	struct api_result_query q = {.output_only = true};
	struct model_result r;
	int rc;

	rc = api_get_result(e->ps->api, e->thread_id, &q, &r, he);
	if (rc != 0) {
		http_error_string(he, why, len);
		return -EIO;
	}
	if (r.output_truncated || r.output_len != e->size || r.output_data == NULL) {
		model_result_clear(&r);
		return 1;
	}
	rc = dl_write(d, r.output_data, r.output_len);
	model_result_clear(&r);
	if (rc != 0) {
		snprintf(why, len, "%s: %s", he->call, d->why[0] != '\0' ? d->why : "abandoned");
		return -EIO;
	}
	return 0;
}

/* What a stream call's result means for the download: 0, or -EIO with why
 * in the "Call id: message" form of http_error_string(). */
static int
stream_outcome(struct dl *d, int rc, struct http_error *he, char *why, size_t len)
{
	struct pentry *e = d->e;
	bool stalled;

	if (d->done && d->off == e->size)
		return 0;
	if (d->why[0] != '\0') {
		snprintf(why, len, "%s: %s", he->call, d->why);
		return -EIO;
	}
	if (rc == 0) {
		if (d->meta && d->off == e->size)
			return 0;
		if (!d->meta && e->step_path != NULL)
			snprintf(why, len, "%s: the stream held no step %s", he->call,
			         e->step_path);
		else
			snprintf(why, len,
			         "%s: the stream ended after %" PRIu64 " of %" PRIu64 " bytes",
			         he->call, d->off, e->size);
		return -EIO;
	}
	pthread_mutex_lock(&e->ps->lock);
	stalled = e->stalled;
	pthread_mutex_unlock(&e->ps->lock);
	if (rc == -EINTR && stalled)
		snprintf(why, len,
		         "%s: no byte for %" PRId64 " ms (%" PRIu64 " of %" PRIu64 " bytes)",
		         he->call, e->ps->stall_ms, d->off, e->size);
	else
		http_error_string(he, why, len);
	return -EIO;
}

/* Frees the ring of an entry that has become a cache file, once no reply
 * is sent from it (lock held). */
static void
ring_free_if_done(struct pentry *e)
{
	if (!e->ringed && e->ring != NULL && e->pins == NULL) {
		free(e->ring);
		e->ring = NULL;
	}
}

/* The writer of a ring's file: writes what the download has put in the
 * ring, whole aligned blocks with O_DIRECT (the last piece through fd),
 * until all is written, the download fails, or a write fails. */
static void *
dwriter_main(void *arg)
{
	struct pentry *e = arg;
	struct payloads *ps = e->ps;

	pthread_mutex_lock(&ps->lock);
	while (!e->dstop && !e->abandoned && e->durable < e->size) {
		uint64_t at = e->durable % e->ringcap, len = e->written - e->durable;
		bool last;
		int rc;

		if (len > e->ringcap - at)
			len = e->ringcap - at;
		if (len > DIRECT_MAX)
			len = DIRECT_MAX;
		last = e->durable + len == e->size;
		if (!last)
			len -= len % DIRECT_ALIGN;
		if (len == 0) {
			pthread_cond_wait(&e->cond, &ps->lock);
			continue;
		}
		pthread_mutex_unlock(&ps->lock);
		/* the download does not overwrite [durable, ...) meanwhile */
		if (e->dfd >= 0 && len % DIRECT_ALIGN == 0)
			rc = pwrite_full(e->dfd, e->ring + at, len, e->durable);
		else
			rc = pwrite_full(e->fd, e->ring + at, len, e->durable);
		pthread_mutex_lock(&ps->lock);
		if (rc != 0) {
			e->dfailed = true;
		} else {
			e->durable += len;
		}
		pthread_cond_broadcast(&e->cond);
		if (rc != 0)
			break;
	}
	pthread_mutex_unlock(&ps->lock);
	return NULL;
}

/* The end of a download, good or bad: the file becomes the cache file or
 * goes, the readers are told, and the entry is freed if nobody holds it. */
static void
download_end(struct pentry *e, bool ok, const char *why)
{
	struct payloads *ps = e->ps;
	char path[PATH_BUF];

	pthread_mutex_lock(&ps->lock);
	live_remove(ps, e);
	ps->st.active--;
	e->thread_live = false;
	http_abort_free(e->abort); /* no call uses it now, and nobody fires it once !thread_live */
	e->abort = NULL;
	if (e->dfd >= 0) {
		close(e->dfd);
		e->dfd = -1;
	}
	if (ok) {
		if (e->ringed && (!e->keep || e->dfailed || e->durable != e->size)) {
			/* not kept: its readers finish from the ring */
			detach(ps, e);
		} else if (e->attached) {
			part_name(e, path);
			if (renameat(ps->dirfd, path, ps->dirfd, e->name) == 0) {
				e->state = P_COMPLETE;
				ps->st.cache_bytes += e->size;
				ps->st.cache_files++;
				/* a cache file like any other from now on */
				e->ringed = false;
				ring_free_if_done(e);
			} else {
				/* the bytes are good for the open handles, just not kept */
				detach(ps, e);
			}
		}
		e->state = P_COMPLETE;
		e->written = e->size;
	} else {
		detach(ps, e);
		e->state = P_FAILED;
		snprintf(e->error, sizeof(e->error), "%s", why);
		if (!e->abandoned)
			ps->st.downloads_failed++;
	}
	pthread_cond_broadcast(&e->cond);
	if (e->attached && e->handles == 0) {
		/* the last reader left once it had every byte: a cache file now */
		close(e->fd);
		e->fd = -1;
		lru_append(ps, e);
	}
	/* either may free e: it is not touched after this */
	if (e->attached)
		trim(ps);
	else
		release_if_unused(e);
	pthread_cond_broadcast(&ps->idle);
	pthread_mutex_unlock(&ps->lock);
}

/*
 * Records a failed download in the error log, as every failed API call is
 * (a reader that left is no failure). he is the last call's outcome; why
 * says what went wrong, "Call id: message".
 */
static void
download_failed(struct pentry *e, const struct http_error *he, const char *why)
{
	struct payloads *ps = e->ps;
	struct http_error rec = *he;
	size_t cl = strlen(rec.call);
	bool abandoned;

	pthread_mutex_lock(&ps->lock);
	abandoned = e->abandoned;
	pthread_mutex_unlock(&ps->lock);
	if (ps->log == NULL || abandoned)
		return;
	if (cl > 0 && strncmp(why, rec.call, cl) == 0 && strncmp(why + cl, ": ", 2) == 0)
		why += cl + 2;
	snprintf(rec.message, sizeof(rec.message), "%s", why);
	errlog_add(ps->log, &rec);
}

static void *
download_main(void *arg)
{
	struct pentry *e = arg;
	struct payloads *ps = e->ps;
	struct dl d = {.e = e};
	struct http_error he;
	char why[ERR_MAX] = "";
	int rc = 1;

	memset(&he, 0, sizeof(he));
	if (e->step_path == NULL && e->size <= (uint64_t)API_UNARY_OUTPUT_MAX)
		rc = fetch_unary(&d, &he, why, sizeof(why));
	if (rc > 0) {
		pthread_mutex_lock(&ps->lock);
		e->unary = false;
		e->last_io_ms = clk_mono_ms();
		if (e->abandoned)
			rc = -ECANCELED;
		pthread_mutex_unlock(&ps->lock);
	}
	if (rc > 0) {
		if (e->step_path == NULL)
			rc = api_stream_result(ps->api, e->thread_id, ps->max_chunk, on_result, &d,
			                       e->abort, &he);
		else
			rc = api_stream_steps(ps->api, e->thread_id, e->step_path, ps->max_chunk,
			                      on_step, &d, e->abort, &he);
		rc = stream_outcome(&d, rc, &he, why, sizeof(why));
	}
	if (e->dwriter_live) {
		/* the file is whole (or abandoned) before the download ends */
		pthread_mutex_lock(&ps->lock);
		e->dstop = rc != 0;
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&ps->lock);
		pthread_join(e->dwriter, NULL);
		e->dwriter_live = false;
	}
	if (rc != 0)
		download_failed(e, &he, why);
	download_end(e, rc == 0, why);
	return NULL;
}

/* Aborts downloads that have been silent for stall_ms: the stream calls
 * take no stall time of their own, so the manager keeps it. */
static void *
watchdog_main(void *arg)
{
	struct payloads *ps = arg;
	int64_t period = ps->stall_ms / 4;

	if (period < 10)
		period = 10;
	if (period > 1000)
		period = 1000;
	pthread_mutex_lock(&ps->lock);
	while (!ps->closing) {
		int64_t now = clk_mono_ms(), until = now + period;

		for (struct pentry *e = ps->live; e != NULL; e = e->live_next) {
			if (!e->unary && !e->stalled && now - e->last_io_ms >= ps->stall_ms) {
				e->stalled = true;
				http_abort(e->abort);
			}
		}
		clk_cond_wait_until(&ps->tick, &ps->lock, until);
	}
	pthread_mutex_unlock(&ps->lock);
	return NULL;
}

/* Starts e's download thread (ps->lock held); 0 or -ENOMEM. */
static int
download_run(struct payloads *ps, struct pentry *e)
{
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	if (e->keep && !e->dwriter_live) {
		e->dwriter_live = pthread_create(&e->dwriter, NULL, dwriter_main, e) == 0;
		if (!e->dwriter_live)
			e->dfailed = true; /* streamed, just not kept */
	}
	e->thread_live = true;
	e->started = true;
	e->last_io_ms = clk_mono_ms();
	/* detached: whoever drops the last reference frees the entry, and
	 * payloads_free() waits for the count of running downloads */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, download_main, e);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		e->thread_live = false;
		e->started = false;
		return -ENOMEM;
	}
	/* the thread touches the lists only under ps->lock, which we hold */
	live_insert(ps, e);
	ps->st.downloads++;
	ps->st.active++;
	return 0;
}

/* Makes the entry of a key not in the index, with one handle (ps->lock
 * held): a download started now into a ".part" file, or, for a payload too
 * large to keep, a ring whose download starts with the first read. */
static int
download_start(struct payloads *ps, const struct payload_key *k, bool step,
               const unsigned char *digest, const char *name, uint64_t size, struct pentry **out)
{
	struct pentry *e = entry_new(ps, digest, name);
	char path[PATH_BUF];
	int rc;

	if (e == NULL)
		return -ENOMEM;
	e->size = size;
	e->state = P_DOWNLOADING;
	e->part = k->part;
	e->thread_id = strdup(k->thread_id);
	e->step_path = step ? strdup(k->step_path) : NULL;
	e->abort = http_abort_new();
	if (e->thread_id == NULL || (step && e->step_path == NULL) || e->abort == NULL) {
		entry_free(e);
		return -ENOMEM;
	}
	e->unary = !step && size <= (uint64_t)API_UNARY_OUTPUT_MAX;
	e->ringed = size > RING_BYTES || size > ps->cache_size;
	if (e->ringed) {
		e->ringcap = size < RING_BYTES ? size : RING_BYTES;
		if (posix_memalign((void **)&e->ring, DIRECT_ALIGN, e->ringcap) != 0) {
			e->ring = NULL;
			entry_free(e);
			return -ENOMEM;
		}
		if (size <= ps->cache_size) {
			/* kept: written behind the ring, without the page cache
			 * where the file system allows */
			part_name(e, path);
			e->fd = openat(ps->dirfd, path,
			               O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
			if (e->fd >= 0) {
				e->keep = true;
				e->dfd = openat(ps->dirfd, path,
				                O_WRONLY | O_DIRECT | O_CLOEXEC | O_NOFOLLOW);
			}
		}
	} else {
		part_name(e, path);
		e->fd = openat(ps->dirfd, path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		               0600);
		if (e->fd < 0) {
			entry_free(e);
			return -EIO;
		}
		if ((rc = download_run(ps, e)) != 0) {
			unlinkat(ps->dirfd, path, 0);
			entry_free(e);
			return rc;
		}
	}
	e->handles = 1;
	index_insert(ps, e);
	*out = e;
	return 0;
}

/* ---- payloads that came another way, and their writer ---- */

/* Queues a put entry for the writer (ps->lock held). */
static void
writer_enqueue(struct payloads *ps, struct pentry *e)
{
	bool was_empty = ps->wq_head == NULL;

	e->pending = true;
	e->wnext = NULL;
	if (ps->wq_tail != NULL)
		ps->wq_tail->wnext = e;
	else
		ps->wq_head = e;
	ps->wq_tail = e;
	ps->wq_bytes += e->size;
	/* a writer with work waits in short naps already: only an idle one,
	 * or one that must not wait any more, needs waking */
	if (was_empty || ps->wq_bytes >= PUT_PENDING_MAX / 2)
		pthread_cond_signal(&ps->wq_cond);
}

/* Makes e's cache file from its bytes in memory; 0 or -errno, and returns
 * with ps->lock held. The file is unnamed (O_TMPFILE) until it is whole,
 * then linked under its name while the lock shows the entry is still the
 * key's, so no download of the key can meet it. Where the file system has
 * no O_TMPFILE (or /proc is missing), the file is made under the lock. */
static int
writer_write(struct payloads *ps, struct pentry *e)
{
	char proc[64], path[PATH_BUF];
	int fd, rc;

	fd = openat(ps->dirfd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		rc = pwrite_full(fd, e->mem, e->size, 0);
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
		pthread_mutex_lock(&ps->lock);
		if (rc == 0 && e->attached &&
		    linkat(AT_FDCWD, proc, ps->dirfd, e->name, AT_SYMLINK_FOLLOW) != 0)
			rc = -errno;
		close(fd);
		if (rc != -ENOENT)
			return rc;
	} else {
		pthread_mutex_lock(&ps->lock);
	}
	if (!e->attached)
		return 0;
	part_name(e, path);
	fd = openat(ps->dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if ((rc = pwrite_full(fd, e->mem, e->size, 0)) == 0 &&
	    renameat(ps->dirfd, path, ps->dirfd, e->name) != 0)
		rc = -errno;
	if (rc != 0)
		unlinkat(ps->dirfd, path, 0);
	close(fd);
	return rc;
}

/* The writer: makes the files of put payloads, one at a time, in the order
 * they came; at the end it finishes the queue before it returns. */
static void *
writer_main(void *arg)
{
	struct payloads *ps = arg;

	pthread_mutex_lock(&ps->lock);
	for (;;) {
		struct pentry *e = ps->wq_head;
		int rc;

		if (e == NULL) {
			if (ps->closing)
				break;
			pthread_cond_wait(&ps->wq_cond, &ps->lock);
			continue;
		}
		if (!ps->closing && ps->wq_bytes < PUT_PENDING_MAX / 2 &&
		    clk_mono_ms() - ps->last_put_ms < PUT_QUIET_MS) {
			clk_cond_wait_ms(&ps->wq_cond, &ps->lock, 50);
			continue;
		}
		ps->wq_head = e->wnext;
		if (ps->wq_head == NULL)
			ps->wq_tail = NULL;
		pthread_mutex_unlock(&ps->lock);
		rc = writer_write(ps, e); /* returns with the lock held */
		ps->wq_bytes -= e->size;
		e->pending = false;
		if (!e->attached) {
			release_if_unused(e);
		} else if (rc != 0) {
			/* not kept: its handles read on from memory */
			detach(ps, e);
			release_if_unused(e);
		} else if (e->handles == 0) {
			free(e->mem);
			e->mem = NULL;
			lru_append(ps, e);
			trim(ps);
		} else if ((e->fd = openat(ps->dirfd, e->name,
		                           O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) >= 0) {
			/* its open handles read the file from now on */
			free(e->mem);
			e->mem = NULL;
		}
	}
	pthread_mutex_unlock(&ps->lock);
	return NULL;
}

int
payloads_put(struct payloads *ps, const struct payload_key *k, const void *data, size_t len)
{
	unsigned char digest[DIGEST_LEN];
	char name[NAME_BUF];
	struct pentry *e;
	bool step;

	if (key_check(k, &step) != 0)
		return -EINVAL;
	if (len == 0 || len > ps->cache_size || len > PUT_PENDING_MAX)
		return 0; /* not kept, as a download of it would not be */
	key_name(k, step, digest, name);
	if ((e = entry_new(ps, digest, name)) == NULL || (e->mem = malloc(len)) == NULL) {
		if (e != NULL)
			entry_free(e);
		return -ENOMEM;
	}
	memcpy(e->mem, data, len);
	e->size = e->written = len;
	e->state = P_COMPLETE;
	pthread_mutex_lock(&ps->lock);
	/* the writer starts with the first put, not in payloads_new(): a
	 * daemon forks after that, and a thread does not cross a fork */
	if (!ps->have_writer && !ps->closing)
		ps->have_writer = pthread_create(&ps->writer, NULL, writer_main, ps) == 0;
	if (*index_slot(ps, digest) != NULL || ps->closing || !ps->have_writer ||
	    ps->wq_bytes + len > PUT_PENDING_MAX) {
		/* the key is there already, or the writer is behind: not kept */
		pthread_mutex_unlock(&ps->lock);
		entry_free(e);
		return 0;
	}
	index_insert(ps, e);
	ps->st.cache_bytes += len;
	ps->st.cache_files++;
	ps->last_put_ms = clk_mono_ms();
	writer_enqueue(ps, e);
	pthread_mutex_unlock(&ps->lock);
	return 0;
}

/* ---- the manager ---- */

static int
mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	int rc = 0;

	if (p == NULL)
		return -ENOMEM;
	for (char *s = p + 1; *s != '\0' && rc == 0; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			rc = -errno;
		*s = '/';
	}
	if (rc == 0 && mkdir(p, 0700) != 0 && errno != EEXIST)
		rc = -errno;
	free(p);
	return rc;
}

static int
by_mtime(const void *a, const void *b)
{
	const struct pentry *x = *(struct pentry *const *)a, *y = *(struct pentry *const *)b;

	return (x->mtime_ns > y->mtime_ns) - (x->mtime_ns < y->mtime_ns);
}

/* Indexes the complete files an earlier run left (oldest modification
 * first in the LRU order), removes its unfinished ones, and trims. Files
 * that are not ours are left alone. */
static int
scan(struct payloads *ps, char *err, size_t errlen)
{
	struct pentry **found = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd = openat(ps->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char eb[128];

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		int rc = -errno;

		if (fd >= 0)
			close(fd);
		return errbuf_set(err, errlen, rc, "cache directory: %s",
		                  errstr(-rc, eb, sizeof(eb)));
	}
	while ((de = readdir(d)) != NULL) {
		unsigned char digest[DIGEST_LEN];
		struct stat st;
		struct pentry *e;
		bool part;

		if (!parse_name(de->d_name, digest, &part))
			continue;
		if (part) {
			unlinkat(ps->dirfd, de->d_name, 0);
			continue;
		}
		if (fstatat(ps->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct pentry **nf = realloc(found, nc * sizeof(*nf));

			if (nf == NULL)
				break; /* the rest stays unindexed: a cache, not data */
			found = nf;
			cap = nc;
		}
		if ((e = entry_new(ps, digest, de->d_name)) == NULL)
			break;
		e->size = (uint64_t)st.st_size;
		e->written = e->size;
		e->state = P_COMPLETE;
		e->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		found[n++] = e;
	}
	closedir(d);
	if (n > 0)
		qsort(found, n, sizeof(*found), by_mtime);
	for (size_t i = 0; i < n; i++) {
		struct pentry *e = found[i];

		if (*index_slot(ps, e->digest) != NULL) {
			entry_free(e); /* two names for one key: a hand-made copy */
			continue;
		}
		index_insert(ps, e);
		lru_append(ps, e);
		ps->st.cache_bytes += e->size;
		ps->st.cache_files++;
	}
	free(found);
	trim(ps);
	return 0;
}

int
payloads_new(struct api *api, const struct payloads_options *o, struct payloads **out, char *err,
             size_t errlen)
{
	struct payloads *ps;
	char eb[128];
	int rc;

	*out = NULL;
	if (api == NULL || o == NULL || o->cache_dir == NULL || o->cache_dir[0] == '\0')
		return errbuf_set(err, errlen, -EINVAL, "a cache directory is required");
	if ((rc = mkdir_p(o->cache_dir)) != 0)
		return errbuf_set(err, errlen, rc, "%s: %s", o->cache_dir,
		                  errstr(-rc, eb, sizeof(eb)));
	if ((ps = calloc(1, sizeof(*ps))) == NULL ||
	    (ps->buckets = calloc(64, sizeof(*ps->buckets))) == NULL) {
		free(ps);
		return errbuf_set(err, errlen, -ENOMEM, "out of memory");
	}
	ps->nbuckets = 64;
	ps->api = api;
	ps->log = o->log;
	ps->cache_size = o->cache_size;
	ps->max_chunk = o->max_chunk;
	ps->stall_ms = o->stall_ms > 0 ? o->stall_ms : 0;
	ps->dirfd = open(o->cache_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ps->dirfd < 0) {
		rc = -errno;
		free(ps->buckets);
		free(ps);
		return errbuf_set(err, errlen, rc, "%s: %s", o->cache_dir,
		                  errstr(-rc, eb, sizeof(eb)));
	}
	/* two managers on one directory would delete each other's downloads
	 * in their scans and each count the other's files: one at a time */
	if (flock(ps->dirfd, LOCK_EX | LOCK_NB) != 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(ps->dirfd);
		free(ps->buckets);
		free(ps);
		return errbuf_set(err, errlen, rc, "%s: %s", o->cache_dir,
		                  rc == -EBUSY ? "in use by another cache manager"
		                               : errstr(-rc, eb, sizeof(eb)));
	}
	pthread_mutex_init(&ps->lock, NULL);
	clk_cond_init(&ps->idle);
	clk_cond_init(&ps->tick);
	clk_cond_init(&ps->wq_cond);
	if ((rc = scan(ps, err, errlen)) == 0 && ps->stall_ms > 0) {
		rc = -pthread_create(&ps->watchdog, NULL, watchdog_main, ps);
		ps->have_watchdog = rc == 0;
		if (rc != 0)
			errbuf_set(err, errlen, rc, "cannot start a thread");
	}
	if (rc != 0) {
		payloads_free(ps);
		return rc;
	}
	*out = ps;
	return 0;
}

void
payloads_free(struct payloads *ps)
{
	if (ps == NULL)
		return;
	pthread_mutex_lock(&ps->lock);
	ps->closing = true;
	for (struct pentry *e = ps->live; e != NULL; e = e->live_next) {
		e->abandoned = true;
		http_abort(e->abort);
	}
	pthread_cond_broadcast(&ps->tick);
	pthread_cond_broadcast(&ps->wq_cond);
	while (ps->st.active > 0)
		pthread_cond_wait(&ps->idle, &ps->lock);
	pthread_mutex_unlock(&ps->lock);
	if (ps->have_watchdog)
		pthread_join(ps->watchdog, NULL);
	if (ps->have_writer)
		pthread_join(ps->writer, NULL); /* after it has made the queue's files */
	for (size_t i = 0; i < ps->nbuckets; i++) {
		while (ps->buckets[i] != NULL) {
			struct pentry *e = ps->buckets[i];

			ps->buckets[i] = e->hnext;
			entry_free(e);
		}
	}
	free(ps->buckets);
	pthread_cond_destroy(&ps->wq_cond);
	pthread_cond_destroy(&ps->tick);
	pthread_cond_destroy(&ps->idle);
	pthread_mutex_destroy(&ps->lock);
	close(ps->dirfd);
	free(ps);
}

/* ---- handles ---- */

/* Makes pl a handle of e, which has counted it (ps->lock held). A ring's
 * reader holds its start only if nothing has been dropped from it yet:
 * else its first read starts a download of its own anyway. */
static void
reader_add(struct payload *pl, struct pentry *e)
{
	pl->e = e;
	pl->last_ms = clk_mono_ms();
	pl->pos = UINT64_MAX;
	if (!e->ringed)
		return;
	if (e->tail == 0)
		pl->pos = 0;
	pl->rnext = e->readers;
	e->readers = pl;
}

/* The handle pl leaves its entry (ps->lock held); when it was the last,
 * the entry's download stops or its file goes back to the LRU list. */
static void
reader_drop(struct payloads *ps, struct payload *pl)
{
	struct pentry *e = pl->e;

	for (struct payload **pp = &e->readers; *pp != NULL; pp = &(*pp)->rnext) {
		if (*pp == pl) {
			*pp = pl->rnext;
			break;
		}
	}
	pl->e = NULL;
	pthread_cond_broadcast(&e->cond); /* a ring's download may go on */
	if (--e->handles > 0)
		return;
	if (e->thread_live && e->written == e->size) {
		/* every byte is in and the thread is only finishing: let it
		 * keep the file (download_end() does) */
	} else if (e->thread_live) {
		/* nobody reads it any more: stop the transfer, drop the partial
		 * file; the thread frees the entry */
		e->abandoned = true;
		detach(ps, e);
		http_abort(e->abort);
	} else if (e->attached && !e->ringed) {
		if (e->fd >= 0)
			close(e->fd);
		e->fd = -1;
		if (!e->pending) { /* else the writer lists it */
			lru_append(ps, e);
			trim(ps);
		}
	} else {
		/* a ring nobody read, or one whose download has ended */
		detach(ps, e);
		release_if_unused(e);
	}
}

/* A ring's reader wants bytes the ring has dropped (it read backwards, or
 * came late): it moves to another ring of the key, one still at its start
 * or a new one, which the key's next opens share (ps->lock held). Its
 * download starts with the read. */
static int
ring_restart(struct payloads *ps, struct payload *pl)
{
	struct pentry *old = pl->e, *e = *index_slot(ps, old->digest);
	struct payload_key k = {
	    .thread_id = old->thread_id, .step_path = old->step_path, .part = old->part};
	int rc;

	if (e != NULL && e != old && e->ringed && e->tail == 0 && e->size == old->size) {
		e->handles++; /* another reader's restart, still at its start */
	} else {
		if (e != NULL)
			detach(ps, e); /* its readers go on with it */
		rc = download_start(ps, &k, old->step_path != NULL, old->digest, old->name,
		                    old->size, &e);
		if (rc != 0)
			return rc;
	}
	reader_drop(ps, pl);
	reader_add(pl, e);
	return 0;
}

/* Points w at want bytes at off of a ring that holds them, and keeps the
 * download from overwriting them until payload_done() (lock held). */
static void
ring_pin(struct pentry *e, struct payload_where *w, size_t want, uint64_t off)
{
	uint64_t at = off % e->ringcap;
	size_t first = want < e->ringcap - at ? want : (size_t)(e->ringcap - at);

	w->iov[0].iov_base = e->ring + at;
	w->iov[0].iov_len = first;
	w->n = 1;
	if (want > first) {
		w->iov[1].iov_base = e->ring;
		w->iov[1].iov_len = want - first;
		w->n = 2;
	}
	w->ps = e->ps;
	w->e = e;
	w->off = off;
	w->next = e->pins;
	e->pins = w;
}

int
payload_open(struct payloads *ps, const struct payload_key *k, uint64_t size, const void *data,
             size_t len, struct payload **out)
{
	unsigned char digest[DIGEST_LEN];
	char name[NAME_BUF];
	struct payload *pl;
	struct pentry *e;
	bool step;
	int rc = 0;

	*out = NULL;
	if (key_check(k, &step) != 0)
		return -EINVAL;
	if ((pl = calloc(1, sizeof(*pl))) == NULL)
		return -ENOMEM;
	pl->ps = ps;
	pl->size = size;
	/* bytes at hand (or none at all): nothing to fetch or keep */
	if (data != NULL || size == 0) {
		pl->inl = true;
		pl->len = data != NULL ? len : 0;
		if (pl->len > 0 && (pl->data = malloc(pl->len)) == NULL) {
			free(pl);
			return -ENOMEM;
		}
		if (pl->len > 0)
			memcpy(pl->data, data, pl->len);
		*out = pl;
		return 0;
	}
	key_name(k, step, digest, name);

	pthread_mutex_lock(&ps->lock);
	e = *index_slot(ps, digest);
	if (e != NULL && e->size != size) {
		/* the caller knows the exact size: these bytes are not the payload */
		detach(ps, e);
		release_if_unused(e);
		e = NULL;
	}
	if (e != NULL && e->state == P_COMPLETE && e->handles == 0 && e->mem == NULL &&
	    entry_reopen(ps, e) != 0) {
		detach(ps, e);
		release_if_unused(e);
		e = NULL;
	}
	if (e != NULL) {
		e->handles++;
		if (e->state == P_COMPLETE)
			ps->st.cache_hits++;
	} else {
		rc = download_start(ps, k, step, digest, name, size, &e);
	}
	if (rc == 0)
		reader_add(pl, e);
	pthread_mutex_unlock(&ps->lock);
	if (rc != 0) {
		free(pl);
		return rc;
	}
	*out = pl;
	return 0;
}

static ssize_t
pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO; /* the file lost bytes it had: never a short read */
		got += (size_t)r;
	}
	return (ssize_t)got;
}

ssize_t
payload_read(struct payload *pl, void *buf, size_t len, uint64_t off, const atomic_bool *cancelled)
{
	struct payload_where w;
	ssize_t n = payload_read_at(pl, buf, len, off, cancelled, &w);

	if (n > 0 && w.fd >= 0)
		return pread_full(w.fd, buf, (size_t)n, off);
	if (n > 0 && w.n > 0) {
		memcpy(buf, w.iov[0].iov_base, w.iov[0].iov_len);
		if (w.n > 1)
			memcpy((char *)buf + w.iov[0].iov_len, w.iov[1].iov_base, w.iov[1].iov_len);
		payload_done(&w);
	}
	return n;
}

ssize_t
payload_read_at(struct payload *pl, void *buf, size_t len, uint64_t off,
                const atomic_bool *cancelled, struct payload_where *w)
{
	struct payloads *ps = pl->ps;
	struct pentry *e;
	size_t want;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (pl->inl && pl->len != pl->size)
		return -EIO;
	if (off >= pl->size || len == 0)
		return 0;
	want = pl->size - off < len ? (size_t)(pl->size - off) : len;
	if (want > SSIZE_MAX)
		want = SSIZE_MAX;
	if (pl->inl) {
		memcpy(buf, pl->data + off, want);
		return (ssize_t)want;
	}
	pthread_mutex_lock(&ps->lock);
	for (;;) {
		bool from_file = false;
		int rc = 0;

		e = pl->e;
		if (e->ringed) {
			pl->last_ms = clk_mono_ms();
			pl->has_read = true;
			/* behind the ring: from its file if it has one, else anew */
			if (off < e->tail && (!e->keep || e->dfailed))
				rc = ring_restart(ps, pl);
			e = pl->e;
			if (rc == 0 && !e->started)
				rc = download_run(ps, e);
			if (rc != 0) {
				pthread_mutex_unlock(&ps->lock);
				return -EIO;
			}
			from_file = off < e->tail;
			if (pl->pos == UINT64_MAX || off > pl->pos) {
				/* it holds back no byte below this, less the slack */
				pl->pos = off;
				pthread_cond_broadcast(&e->cond);
			}
		}
		if (from_file && e->durable >= off + want) {
			w->fd = e->fd;
			pthread_mutex_unlock(&ps->lock);
			return (ssize_t)want;
		}
		if (!from_file && e->written >= off + want)
			break;
		if (from_file && e->dfailed)
			continue; /* the file will not have them: start anew */
		if (e->state == P_FAILED) {
			pthread_mutex_unlock(&ps->lock);
			return -EIO;
		}
		if (cancelled != NULL && atomic_load(cancelled)) {
			pthread_mutex_unlock(&ps->lock);
			return -EINTR;
		}
		pthread_cond_wait(&e->cond, &ps->lock);
	}
	if (e->ringed) {
		ring_pin(e, w, want, off);
		if (off + want > pl->pos) {
			pl->pos = off + want;
			pthread_cond_broadcast(&e->cond);
		}
	} else if (e->mem != NULL) {
		memcpy(buf, e->mem + off, want);
	} else {
		w->fd = e->fd;
	}
	pthread_mutex_unlock(&ps->lock);
	return (ssize_t)want;
}

void
payload_done(struct payload_where *w)
{
	struct pentry *e = w->e;
	struct payloads *ps = w->ps;

	if (e == NULL)
		return;
	pthread_mutex_lock(&ps->lock);
	for (struct payload_where **pp = &e->pins; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->e = NULL;
	w->n = 0;
	pthread_cond_broadcast(&e->cond); /* the download may go on */
	ring_free_if_done(e);
	release_if_unused(e);
	pthread_mutex_unlock(&ps->lock);
}

void
payload_wake(struct payload *pl)
{
	if (pl == NULL || pl->inl)
		return;
	pthread_mutex_lock(&pl->ps->lock);
	pthread_cond_broadcast(&pl->e->cond);
	pthread_mutex_unlock(&pl->ps->lock);
}

void
payload_error(struct payload *pl, char *buf, size_t len)
{
	if (len == 0)
		return;
	if (pl->inl) {
		if (pl->len != pl->size)
			snprintf(buf, len, "%zu bytes given for a payload of %" PRIu64, pl->len,
			         pl->size);
		else
			buf[0] = '\0';
		return;
	}
	pthread_mutex_lock(&pl->ps->lock);
	snprintf(buf, len, "%s", pl->e->state == P_FAILED ? pl->e->error : "");
	pthread_mutex_unlock(&pl->ps->lock);
}

void
payload_close(struct payload *pl)
{
	struct payloads *ps;

	if (pl == NULL)
		return;
	ps = pl->ps;
	if (!pl->inl) {
		pthread_mutex_lock(&ps->lock);
		reader_drop(ps, pl);
		pthread_mutex_unlock(&ps->lock);
	}
	free(pl->data);
	free(pl);
}

void
payloads_stats(struct payloads *ps, struct payloads_stats *out)
{
	pthread_mutex_lock(&ps->lock);
	*out = ps->st;
	pthread_mutex_unlock(&ps->lock);
}
