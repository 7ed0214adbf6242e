/*
 * The payload layer (fs/payload.c) against the real emulator: each test
 * starts its own scriptum-emulator ($SCRIPTUM_EMULATOR, else
 * build/scriptum-emulator) on a free port with a private cache directory,
 * seeds finished threads through /_emulator/seed, compares what the
 * payloads read with the raw bytes of /_emulator/threads/{id}/output, and
 * counts the API calls made in /_emulator/requests.
 *
 *	make build/tests/test_fs_payload &&
 *	    SCRIPTUM_EMULATOR=build/scriptum-emulator build/tests/test_fs_payload
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "emu.h"
#include "http.h"
#include "payload.h"

#define MIB ((size_t)1 << 20)

struct fx {
	struct emu *emu;
	struct api *a;
	struct payloads *ps;
	char cache[160]; /* the cache directory, inside the emulator's */
};

/* ---- fixture ---- */

static int
start(void **state, const char *const *extra)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct http_options o = {0};

	if (fx == NULL)
		return -1;
	if (emu_start(extra, &fx->emu) != 0) {
		free(fx);
		return -1;
	}
	/* a directory that does not exist yet: payloads_new() makes it */
	snprintf(fx->cache, sizeof(fx->cache), "%s/cache/payloads", emu_dir(fx->emu));
	o.endpoint = emu_url(fx->emu);
	o.deadline_ms = 10000;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	if (api_new(&o, &fx->a, NULL, 0) != 0)
		return -1;
	*state = fx;
	return 0;
}

static int
setup(void **state)
{
	return start(state, NULL);
}

/* An emulator whose unary answers carry at most 1000 bytes of output. */
static int
setup_small_unary(void **state)
{
	static const char *const extra[] = {"--unary-limit", "1000", NULL};

	return start(state, extra);
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	payloads_free(fx->ps);
	api_free(fx->a);
	emu_stop(fx->emu);
	free(fx);
	return 0;
}

/* A manager on the fixture's cache directory. max_chunk: 0 for the
 * server's 2 MiB, 65536 where a fault must fall between chunks. */
static struct payloads *
manager_chunked(struct fx *fx, uint64_t cache_size, int64_t stall_ms, size_t max_chunk)
{
	struct payloads_options o = {.cache_dir = fx->cache,
	                             .cache_size = cache_size,
	                             .stall_ms = stall_ms,
	                             .max_chunk = max_chunk};
	struct payloads *ps = NULL;
	char err[256] = "";
	int rc = payloads_new(fx->a, &o, &ps, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "payloads_new: %s\n", err);
	assert_int_equal(rc, 0);
	return ps;
}

static struct payloads *
manager(struct fx *fx, uint64_t cache_size, int64_t stall_ms)
{
	return manager_chunked(fx, cache_size, stall_ms, 0);
}

/* ---- the emulator's request log ---- */

/* API calls named call (NULL: all) in the emulator's log: at least want
 * within two seconds, then 150 ms more for stragglers. */
static long
calls(struct fx *fx, const char *call, long want)
{
	return emu_calls(fx->emu, call, want, 2000, 150);
}

/* ---- reading ---- */

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Reads pl from the start to its end in pieces of random size (1 to
 * maxpiece), each read whole (a short read only at the end); returns the
 * bytes (free() them). */
static unsigned char *
read_all(struct payload *pl, size_t size, size_t maxpiece, uint64_t seedv)
{
	unsigned char *buf = malloc(size + 1);
	uint64_t s = seedv | 1;
	size_t off = 0;

	assert_non_null(buf);
	while (off < size) {
		size_t want = 1 + (size_t)(rnd(&s) % maxpiece);
		ssize_t n = payload_read(pl, buf + off, want, off, NULL);

		if (n < 0) {
			char err[512];

			payload_error(pl, err, sizeof(err));
			fprintf(stderr, "payload_read at %zu: %zd (%s)\n", off, n, err);
		}
		assert_true(n > 0);
		assert_int_equal((size_t)n, off + want <= size ? want : size - off);
		off += (size_t)n;
	}
	assert_int_equal(payload_read(pl, buf, 16, off, NULL), 0);
	return buf;
}

static struct payload *
open_output(struct payloads *ps, const char *id, size_t size)
{
	struct payload_key k = {.thread_id = id};
	struct payload *pl = NULL;

	assert_int_equal(payload_open(ps, &k, size, NULL, 0, &pl), 0);
	assert_non_null(pl);
	return pl;
}

/* Waits for the downloads to end. A reader has every byte a moment before
 * its download thread has renamed the file and counted it in the cache. */
static void
settle(struct payloads *ps)
{
	struct payloads_stats st;

	for (int i = 0; i < 500; i++) {
		payloads_stats(ps, &st);
		if (st.active == 0)
			return;
		emu_sleep_ms(10);
	}
	fail_msg("a download is still running");
}

/* Opens, reads whole and closes a thread's output, checking the bytes. */
static void
read_and_check(struct payloads *ps, const char *id, const unsigned char *want, size_t size)
{
	struct payload *pl = open_output(ps, id, size);
	unsigned char *got = read_all(pl, size, 200000, size);

	assert_memory_equal(got, want, size);
	free(got);
	payload_close(pl);
	settle(ps);
}

/* Files in the cache directory: how many, how many are ".part", their bytes. */
static void
cache_files(struct fx *fx, int *files, int *parts, uint64_t *bytes)
{
	DIR *d = opendir(fx->cache);
	struct dirent *de;

	*files = *parts = 0;
	*bytes = 0;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[512];
		struct stat st;
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", fx->cache, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		(*files)++;
		*bytes += (uint64_t)st.st_size;
		if (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0)
			(*parts)++;
	}
	closedir(d);
}

/* ---- tests ---- */

static void
test_small_output_comes_from_one_unary_call(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 5000, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	assert_int_equal(size, 5000);
	fx->ps = manager(fx, 64 * MIB, 0);
	emu_forget_requests(fx->emu);

	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, "GetThreadResult", 1), 1);
	assert_int_equal(calls(fx, "StreamThreadResult", 0), 0);
	assert_int_equal(calls(fx, NULL, 1), 1);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 1);
	assert_int_equal(st.downloads_failed, 0);
	assert_int_equal(st.bytes_downloaded, 5000);
	assert_int_equal(st.cache_files, 1);
	assert_int_equal(st.cache_bytes, 5000);
	assert_int_equal(st.active, 0);
	free(raw);
}

static void
test_truncated_unary_answer_falls_back_to_the_stream(void **state)
{
	struct fx *fx = *state;
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 5000, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);
	emu_forget_requests(fx->emu);

	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, NULL, 2), 2);
	assert_int_equal(calls(fx, "GetThreadResult", 1), 1);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	free(raw);
}

static void
test_large_output_read_in_random_pieces_equals_the_raw_bytes(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char *raw, *got;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 20 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	assert_int_equal(size, 20 * MIB);
	fx->ps = manager(fx, 64 * MIB, 0);
	emu_forget_requests(fx->emu);

	pl = open_output(fx->ps, id, size);
	got = read_all(pl, size, 300000, 7);
	assert_memory_equal(got, raw, size);
	payload_close(pl);
	settle(fx->ps);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	assert_int_equal(calls(fx, "GetThreadResult", 0), 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 1);
	assert_int_equal(st.bytes_downloaded, size);
	free(got);
	free(raw);
}

struct reader {
	struct payloads *ps;
	const char *id;
	const unsigned char *want;
	size_t size;
	uint64_t seedv;
	pthread_barrier_t *go;
	bool same;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct payload_key k = {.thread_id = r->id};
	struct payload *pl = NULL;
	unsigned char *buf = malloc(r->size);
	uint64_t s = r->seedv;
	size_t off = 0;

	pthread_barrier_wait(r->go);
	if (buf == NULL || payload_open(r->ps, &k, r->size, NULL, 0, &pl) != 0) {
		free(buf);
		return NULL;
	}
	while (off < r->size) {
		size_t want = 1 + (size_t)(rnd(&s) % 150000);
		ssize_t n = payload_read(pl, buf + off, want, off, NULL);

		if (n <= 0 || (size_t)n != (off + want <= r->size ? want : r->size - off))
			break;
		off += (size_t)n;
	}
	r->same = off == r->size && memcmp(buf, r->want, r->size) == 0;
	payload_close(pl);
	free(buf);
	return NULL;
}

static void
test_eight_concurrent_readers_share_one_download(void **state)
{
	struct fx *fx = *state;
	struct reader rd[8];
	pthread_t th[8];
	pthread_barrier_t go;
	struct payloads_stats st;
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 12 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);
	emu_forget_requests(fx->emu);

	pthread_barrier_init(&go, NULL, 8);
	for (int i = 0; i < 8; i++) {
		rd[i] = (struct reader){fx->ps, id,   raw, size, 0x9e3779b97f4a7c15ULL * (i + 1),
		                        &go,    false};
		assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_true(rd[i].same);
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	assert_int_equal(calls(fx, NULL, 1), 1);
	settle(fx->ps);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 1);
	assert_int_equal(st.bytes_downloaded, size);
	assert_int_equal(st.cache_files, 1);
	free(raw);
}

struct churner {
	struct payloads *ps;
	char (*ids)[128];
	unsigned char **raw;
	size_t *size;
	uint64_t seedv;
	int bad; /* reads that returned wrong bytes or an error */
};

/* Opens one of three payloads at random, reads it all or only some of it,
 * and closes it, over and over: downloads are joined, abandoned half way,
 * finished, evicted and opened again all at once. */
static void *
churner_main(void *arg)
{
	struct churner *c = arg;
	unsigned char *buf = malloc(65536);
	uint64_t s = c->seedv;

	for (int round = 0; round < 25 && buf != NULL; round++) {
		int i = (int)(rnd(&s) % 3);
		struct payload_key k = {.thread_id = c->ids[i]};
		struct payload *pl;
		size_t off = 0, stop = rnd(&s) % 2 ? c->size[i] : (size_t)(rnd(&s) % c->size[i]);

		if (payload_open(c->ps, &k, c->size[i], NULL, 0, &pl) != 0) {
			c->bad++;
			continue;
		}
		while (off < stop) {
			size_t want = 1 + (size_t)(rnd(&s) % 65536);
			ssize_t n = payload_read(pl, buf, want, off, NULL);

			if (n <= 0 || memcmp(buf, c->raw[i] + off, (size_t)n) != 0) {
				c->bad++;
				break;
			}
			off += (size_t)n;
		}
		payload_close(pl);
	}
	free(buf);
	return NULL;
}

static void
test_readers_opening_and_closing_at_random_keep_bytes_and_cache_right(void **state)
{
	struct fx *fx = *state;
	size_t sizes[3] = {5000, 300000, 5 * MIB}, size[3];
	char ids[3][128];
	unsigned char *raw[3];
	struct churner ch[8];
	pthread_t th[8];
	struct payloads_stats st;
	int files, parts;
	uint64_t bytes;

	for (int i = 0; i < 3; i++) {
		emu_seed(fx->emu, "fanout", sizes[i], ids[i], sizeof(ids[i]));
		raw[i] = emu_output(fx->emu, ids[i], &size[i]);
	}
	fx->ps = manager_chunked(fx, 400000, 0, 65536);
	for (int i = 0; i < 8; i++) {
		ch[i] =
		    (struct churner){fx->ps, ids, raw, size, 0x2545f4914f6cdd1dULL * (i + 3), 0};
		assert_int_equal(pthread_create(&th[i], NULL, churner_main, &ch[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ch[i].bad, 0);
	}
	settle(fx->ps);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads_failed, 0);
	assert_true(st.cache_bytes <= 400000);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(parts, 0);
	assert_int_equal((uint64_t)files, st.cache_files);
	assert_int_equal(bytes, st.cache_bytes);
	for (int i = 0; i < 3; i++)
		free(raw[i]);
}

static void
test_read_far_ahead_waits_and_succeeds(void **state)
{
	struct fx *fx = *state;
	struct payload *pl;
	unsigned char *raw, buf[65536];
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 20 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);

	pl = open_output(fx->ps, id, size);
	/* the last bytes first: the read waits for the download to get there */
	assert_int_equal(payload_read(pl, buf, sizeof(buf), size - 1000, NULL), 1000);
	assert_memory_equal(buf, raw + size - 1000, 1000);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), size - 100000, NULL), sizeof(buf));
	assert_memory_equal(buf, raw + size - 100000, sizeof(buf));
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), sizeof(buf));
	assert_memory_equal(buf, raw, sizeof(buf));
	assert_int_equal(payload_read(pl, buf, sizeof(buf), size, NULL), 0);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), size + 5, NULL), 0);
	payload_close(pl);
	free(raw);
}

static void
test_second_open_after_close_is_a_cache_hit_with_no_request(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 6 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);
	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);

	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id, raw, size);
	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, NULL, 0), 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 1);
	assert_int_equal(st.cache_hits, 2);
	assert_int_equal(st.cache_files, 1);
	assert_int_equal(st.cache_bytes, size);
	free(raw);
}

static void
test_cache_survives_a_new_manager_on_the_same_directory(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	unsigned char *raw, *small;
	size_t size, small_size;
	char id[128], id2[128];

	emu_seed(fx->emu, "fanout", 6 * MIB, id, sizeof(id));
	emu_seed(fx->emu, "fanout", 3000, id2, sizeof(id2));
	raw = emu_output(fx->emu, id, &size);
	small = emu_output(fx->emu, id2, &small_size);
	fx->ps = manager(fx, 64 * MIB, 0);
	read_and_check(fx->ps, id, raw, size);
	read_and_check(fx->ps, id2, small, small_size);
	payloads_free(fx->ps);

	fx->ps = manager(fx, 64 * MIB, 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_files, 2);
	assert_int_equal(st.cache_bytes, size + small_size);
	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id, raw, size);
	read_and_check(fx->ps, id2, small, small_size);
	assert_int_equal(calls(fx, NULL, 0), 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 0);
	assert_int_equal(st.cache_hits, 2);
	free(raw);
	free(small);
}

/* Finds the cache file whose name starts with prefix. */
static void
cache_path(struct fx *fx, const char *prefix, char *path, size_t len)
{
	DIR *d = opendir(fx->cache);
	struct dirent *de;

	path[0] = '\0';
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			snprintf(path, len, "%s/%s", fx->cache, de->d_name);
	closedir(d);
	assert_true(path[0] != '\0');
}

static void
test_new_manager_drops_stale_parts_and_files_of_the_wrong_size(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	unsigned char *raw;
	size_t size;
	char id[128], path[512], part[600];
	int files, parts, fd;
	uint64_t bytes;

	emu_seed(fx->emu, "fanout", 100000, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);
	read_and_check(fx->ps, id, raw, size);
	payloads_free(fx->ps);
	fx->ps = NULL;

	/* an earlier run was killed mid-download, and a file lost its tail */
	cache_path(fx, id, path, sizeof(path));
	snprintf(part, sizeof(part), "%s.part", path);
	fd = open(part, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\"i", 3), 3);
	close(fd);
	assert_int_equal(truncate(path, (off_t)size - 1), 0);
	/* and a file that is not the cache's own stays */
	snprintf(part, sizeof(part), "%s/README", fx->cache);
	fd = open(part, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);

	fx->ps = manager(fx, 64 * MIB, 0);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(parts, 0);
	assert_int_equal(files, 2);
	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, "GetThreadResult", 1), 1);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 1);
	assert_int_equal(st.cache_hits, 0);
	assert_int_equal(st.cache_files, 1);
	assert_int_equal(st.cache_bytes, size);
	free(raw);
}

static void
test_eviction_keeps_the_cache_within_its_size(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	unsigned char *raw[6];
	size_t size[6], sizes[6] = {100000, 100000, 100000, 100000, 100000, 500000};
	char id[6][128];
	int files, parts;
	uint64_t bytes;

	for (int i = 0; i < 6; i++) {
		emu_seed(fx->emu, "fanout", sizes[i], id[i], sizeof(id[i]));
		raw[i] = emu_output(fx->emu, id[i], &size[i]);
	}
	fx->ps = manager(fx, 400000, 0);
	for (int i = 0; i < 5; i++)
		read_and_check(fx->ps, id[i], raw[i], size[i]);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_files, 4);
	assert_int_equal(st.cache_bytes, 400000);
	assert_int_equal(st.evictions, 1);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 4);
	assert_true(bytes <= 400000);

	/* the least recently used went: the first is fetched again, the third is not */
	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id[2], raw[2], size[2]);
	assert_int_equal(calls(fx, NULL, 0), 0);
	read_and_check(fx->ps, id[0], raw[0], size[0]);
	assert_int_equal(calls(fx, NULL, 1), 1);

	/* larger than the whole cache: it streams through memory and never
	 * reaches the disk, nor takes the others' place */
	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id[5], raw[5], size[5]);
	assert_int_equal(calls(fx, NULL, 1), 1);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_files, 4);
	assert_true(st.cache_bytes <= 400000);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 4);
	assert_int_equal(parts, 0);
	/* and is fetched again when read again */
	read_and_check(fx->ps, id[5], raw[5], size[5]);
	assert_int_equal(calls(fx, NULL, 2), 2);
	for (int i = 0; i < 6; i++)
		free(raw[i]);
}

/* The bytes of one part of a step, as StreamStepResult gives them. */
struct step_bytes {
	const char *path;
	enum model_step_part part;
	unsigned char *buf;
	size_t len, cap;
	int64_t total;
};

static int
collect_step(const struct model_result_msg *m, void *arg)
{
	struct step_bytes *sb = arg;

	if (m->kind == MODEL_MSG_STEP_META && strcmp(m->step_meta.step.step_path, sb->path) == 0)
		sb->total = sb->part == MODEL_PART_INPUT ? m->step_meta.input_total_bytes
		                                         : m->step_meta.output_total_bytes;
	if (m->kind != MODEL_MSG_STEP_CHUNK || strcmp(m->step_path, sb->path) != 0 ||
	    m->part != sb->part)
		return 0;
	if (sb->len + m->len > sb->cap) {
		sb->cap = (sb->len + m->len) * 2;
		sb->buf = realloc(sb->buf, sb->cap);
		assert_non_null(sb->buf);
	}
	memcpy(sb->buf + sb->len, m->data, m->len);
	sb->len += m->len;
	return 0;
}

static void
test_step_payload_over_64k_comes_from_the_step_stream(void **state)
{
	struct fx *fx = *state;
	struct step_bytes out = {.path = "2", .part = MODEL_PART_OUTPUT};
	struct step_bytes in = {.path = "2", .part = MODEL_PART_INPUT};
	struct payload_key k = {.thread_id = NULL, .step_path = "2"};
	struct payloads_stats st;
	struct payload *pl;
	unsigned char *got;
	char id[128];

	emu_seed(fx->emu, "bigreport", 1000, id, sizeof(id));
	assert_int_equal(api_stream_steps(fx->a, id, "2", 0, collect_step, &out, NULL, NULL), 0);
	assert_int_equal(api_stream_steps(fx->a, id, "2", 0, collect_step, &in, NULL, NULL), 0);
	assert_int_equal(out.total, 200000);
	assert_int_equal(out.len, 200000);
	assert_true(in.len > 0 && in.len < 1000);
	fx->ps = manager(fx, 64 * MIB, 0);
	assert_int_equal(calls(fx, "StreamStepResult", 2),
	                 2); /* logged before they are forgotten */
	emu_forget_requests(fx->emu);

	k.thread_id = id;
	k.part = MODEL_PART_OUTPUT;
	assert_int_equal(payload_open(fx->ps, &k, out.len, NULL, 0, &pl), 0);
	got = read_all(pl, out.len, 50000, 3);
	assert_memory_equal(got, out.buf, out.len);
	free(got);
	payload_close(pl);

	/* the input of the same step is another payload (and stops the stream early) */
	k.part = MODEL_PART_INPUT;
	assert_int_equal(payload_open(fx->ps, &k, in.len, NULL, 0, &pl), 0);
	got = read_all(pl, in.len, 7, 5);
	assert_memory_equal(got, in.buf, in.len);
	free(got);
	payload_close(pl);

	assert_int_equal(calls(fx, "StreamStepResult", 2), 2);
	assert_int_equal(calls(fx, NULL, 2), 2);
	settle(fx->ps);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 2);
	assert_int_equal(st.downloads_failed, 0);
	assert_int_equal(st.cache_files, 2);
	assert_int_equal(st.cache_bytes, out.len + in.len);
	free(out.buf);
	free(in.buf);
}

static void
test_cut_stream_fails_reads_past_the_cut_and_the_next_open_retries(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char *raw, *buf;
	size_t size, off = 0;
	ssize_t n = 0;
	char id[128], err[512];
	int files, parts;
	uint64_t bytes;

	emu_seed(fx->emu, "fanout", 8 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	buf = malloc(size);
	fx->ps = manager_chunked(fx, 64 * MIB, 0, 65536);
	emu_faults(fx->emu, "{\"cutAfterBytes\": 1000000, \"match\": \"/result/stream\"}");

	pl = open_output(fx->ps, id, size);
	while (off < size && (n = payload_read(pl, buf + off, 131072, off, NULL)) > 0) {
		assert_int_equal(n, 131072);
		off += (size_t)n;
	}
	/* never a short end of file: an error, after some good bytes */
	assert_int_equal(n, -EIO);
	assert_true(off > 0 && off < size);
	assert_memory_equal(buf, raw, off);
	assert_int_equal(payload_read(pl, buf, 100, size - 100, NULL), -EIO);
	/* bytes that did arrive can still be read */
	assert_int_equal(payload_read(pl, buf, 100, 0, NULL), 100);
	payload_error(pl, err, sizeof(err));
	assert_non_null(strstr(err, "StreamThreadResult"));
	assert_non_null(strstr(err, id));
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads_failed, 1);
	payload_close(pl);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 0);

	emu_faults(fx->emu, "{}");
	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 2);
	assert_int_equal(st.cache_files, 1);
	free(buf);
	free(raw);
}

struct blocked {
	struct payload *pl;
	uint64_t off;
	atomic_bool cancelled;
	atomic_bool done;
	ssize_t rc;
	int64_t ended_ms;
};

static void *
blocked_main(void *arg)
{
	struct blocked *b = arg;
	unsigned char buf[4096];

	b->rc = payload_read(b->pl, buf, sizeof(buf), b->off, &b->cancelled);
	b->ended_ms = emu_now_ms();
	atomic_store(&b->done, true);
	return NULL;
}

static void
test_cancelled_reader_of_a_stalled_download_returns_eintr_promptly(void **state)
{
	struct fx *fx = *state;
	struct blocked b = {.off = 6 * MIB};
	struct payloads_stats st;
	unsigned char buf[100];
	pthread_t th;
	int64_t t0;
	size_t size = 8 * MIB;
	char id[128];
	int files, parts;
	uint64_t bytes;

	emu_seed(fx->emu, "fanout", size, id, sizeof(id));
	fx->ps = manager_chunked(fx, 64 * MIB, 0, 65536);
	emu_faults(
	    fx->emu,
	    "{\"stallAfterBytes\": 500000, \"stallMs\": 4000, \"match\": \"/result/stream\"}");

	b.pl = open_output(fx->ps, id, size);
	atomic_init(&b.cancelled, false);
	atomic_init(&b.done, false);
	assert_int_equal(payload_read(b.pl, buf, sizeof(buf), 0, NULL), sizeof(buf));
	assert_int_equal(pthread_create(&th, NULL, blocked_main, &b), 0);
	emu_sleep_ms(300);
	assert_false(atomic_load(&b.done));
	/* a wake without the flag changes nothing */
	payload_wake(b.pl);
	emu_sleep_ms(100);
	assert_false(atomic_load(&b.done));

	t0 = emu_now_ms();
	atomic_store(&b.cancelled, true);
	payload_wake(b.pl);
	pthread_join(th, NULL);
	assert_int_equal(b.rc, -EINTR);
	assert_true(b.ended_ms - t0 < 500);

	/* closing the last handle aborts the transfer and drops the partial file */
	t0 = emu_now_ms();
	payload_close(b.pl);
	payloads_free(fx->ps);
	fx->ps = NULL;
	assert_true(emu_now_ms() - t0 < 1000);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 0);

	/* a new manager finds nothing to use, and its open downloads again */
	emu_faults(fx->emu, "{}");
	fx->ps = manager(fx, 64 * MIB, 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_files, 0);
}

static void
test_closing_the_last_handle_of_a_stalled_download_aborts_it(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl, *pl2;
	unsigned char buf[100], *raw;
	size_t size;
	int64_t t0;
	char id[128];
	int files, parts;
	uint64_t bytes;

	emu_seed(fx->emu, "fanout", 8 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager_chunked(fx, 64 * MIB, 0, 65536);
	emu_faults(
	    fx->emu,
	    "{\"stallAfterBytes\": 500000, \"stallMs\": 4000, \"match\": \"/result/stream\"}");

	pl = open_output(fx->ps, id, size);
	pl2 = open_output(fx->ps, id, size);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), sizeof(buf));
	payload_close(pl);
	/* another handle still reads: the download goes on */
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.active, 1);
	t0 = emu_now_ms();
	payload_close(pl2);
	for (int i = 0; i < 100; i++) {
		payloads_stats(fx->ps, &st);
		if (st.active == 0)
			break;
		emu_sleep_ms(10);
	}
	assert_int_equal(st.active, 0);
	assert_true(emu_now_ms() - t0 < 1000);
	assert_int_equal(st.downloads_failed, 0); /* nobody wanted it: not a failure */
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 0);

	/* the next open starts a new download, which completes once the server is well */
	emu_faults(fx->emu, "{}");
	read_and_check(fx->ps, id, raw, size);
	t0 = emu_now_ms();
	payloads_free(fx->ps);
	fx->ps = NULL;
	assert_true(emu_now_ms() - t0 < 1000);
	free(raw);
}

static void
test_payloads_free_aborts_a_stalled_download_promptly(void **state)
{
	struct fx *fx = *state;
	struct payload *pl;
	unsigned char buf[100];
	int64_t t0;
	char id[128];

	emu_seed(fx->emu, "fanout", 8 * MIB, id, sizeof(id));
	fx->ps = manager_chunked(fx, 64 * MIB, 0, 65536);
	emu_faults(
	    fx->emu,
	    "{\"stallAfterBytes\": 500000, \"stallMs\": 4000, \"match\": \"/result/stream\"}");
	pl = open_output(fx->ps, id, 8 * MIB);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), sizeof(buf));
	/* the handle is closed first, as payloads_free() wants; the thread is
	 * maybe still winding down */
	payload_close(pl);
	t0 = emu_now_ms();
	payloads_free(fx->ps);
	fx->ps = NULL;
	assert_true(emu_now_ms() - t0 < 1000);
}

static void
test_download_silent_for_stall_ms_fails(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char buf[100];
	int64_t t0;
	char id[128], err[512];

	emu_seed(fx->emu, "fanout", 8 * MIB, id, sizeof(id));
	fx->ps = manager_chunked(fx, 64 * MIB, 300, 65536);
	emu_faults(
	    fx->emu,
	    "{\"stallAfterBytes\": 500000, \"stallMs\": 5000, \"match\": \"/result/stream\"}");
	pl = open_output(fx->ps, id, 8 * MIB);
	t0 = emu_now_ms();
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 7 * MIB, NULL), -EIO);
	assert_true(emu_now_ms() - t0 < 3000);
	payload_error(pl, err, sizeof(err));
	assert_non_null(strstr(err, "StreamThreadResult"));
	assert_non_null(strstr(err, "no byte for 300 ms"));
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads_failed, 1);
	payload_close(pl);
}

static void
test_wrong_size_fails_reads_with_eio(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char buf[100], *raw;
	size_t size;
	char id[128], big[128], err[512];

	emu_seed(fx->emu, "fanout", 5000, id, sizeof(id));
	emu_seed(fx->emu, "fanout", 6 * MIB, big, sizeof(big));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);

	/* one byte more than the server has (the unary answer is another size,
	 * so the stream is asked, and its meta disagrees) */
	pl = open_output(fx->ps, id, size + 1);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), -EIO);
	payload_error(pl, err, sizeof(err));
	assert_non_null(strstr(err, "5000 bytes where 5001 were expected"));
	payload_close(pl);

	/* one byte less: never the first size-1 bytes passed off as the file */
	pl = open_output(fx->ps, big, 6 * MIB - 1);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), -EIO);
	payload_close(pl);

	/* the right size still works, and nothing wrong stayed in the cache */
	read_and_check(fx->ps, id, raw, size);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads_failed, 2);
	assert_int_equal(st.cache_files, 1);
	assert_int_equal(st.cache_bytes, size);
	free(raw);
}

static void
test_cache_file_of_another_size_is_fetched_again(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 5000, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);
	read_and_check(fx->ps, id, raw, size);
	/* a caller with another idea of the size gets no stale bytes */
	{
		struct payload *pl = open_output(fx->ps, id, size - 10);
		unsigned char buf[10];

		assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), -EIO);
		payload_close(pl);
	}
	read_and_check(fx->ps, id, raw, size);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 3);
	assert_int_equal(st.cache_hits, 0);
	free(raw);
}

static void
test_inline_bytes_need_no_transfer(void **state)
{
	struct fx *fx = *state;
	struct payload_key k = {
	    .thread_id = "thr_nowhere", .step_path = "1", .part = MODEL_PART_OUTPUT};
	struct payloads_stats st;
	struct payload *pl;
	char buf[64], err[256];
	char data[] = "{\"ok\":true}";

	fx->ps = manager(fx, 64 * MIB, 0);
	emu_forget_requests(fx->emu);
	assert_int_equal(payload_open(fx->ps, &k, strlen(data), data, strlen(data), &pl), 0);
	data[2] = 'X'; /* the bytes were copied */
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), 11);
	assert_memory_equal(buf, "{\"ok\":true}", 11);
	assert_int_equal(payload_read(pl, buf, 4, 7, NULL), 4);
	assert_memory_equal(buf, "rue}", 4);
	assert_int_equal(payload_read(pl, buf, 4, 11, NULL), 0);
	payload_error(pl, err, sizeof(err));
	assert_string_equal(err, "");
	payload_close(pl);

	/* bytes that disagree with the size are an error, not a file */
	assert_int_equal(payload_open(fx->ps, &k, 20, data, strlen(data), &pl), 0);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), -EIO);
	payload_close(pl);

	/* an empty payload needs nothing either */
	k.step_path = NULL;
	assert_int_equal(payload_open(fx->ps, &k, 0, NULL, 0, &pl), 0);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), 0);
	payload_close(pl);

	assert_int_equal(calls(fx, NULL, 0), 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 0);
}

static void
test_odd_thread_id_stays_inside_the_cache_directory(void **state)
{
	struct fx *fx = *state;
	struct payload_key k = {.thread_id = "../../x y/\n.."};
	struct payloads_stats st;
	struct payload *pl;
	unsigned char buf[10];
	char err[512];
	int files, parts;
	uint64_t bytes;

	fx->ps = manager(fx, 64 * MIB, 0);
	assert_int_equal(payload_open(fx->ps, &k, 1000, NULL, 0, &pl), 0);
	assert_int_equal(payload_read(pl, buf, sizeof(buf), 0, NULL), -EIO);
	payload_error(pl, err, sizeof(err));
	assert_non_null(strstr(err, "GetThreadResult"));
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads_failed, 1);
	payload_close(pl);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 0);
	/* and nothing was written beside it */
	{
		char path[256];
		struct stat s;

		snprintf(path, sizeof(path), "%s/x y", emu_dir(fx->emu));
		assert_int_not_equal(stat(path, &s), 0);
	}
	assert_int_equal(
	    payload_open(fx->ps, &(struct payload_key){.thread_id = ""}, 5, NULL, 0, &pl), -EINVAL);
}

static void
test_one_cache_directory_serves_one_manager_at_a_time(void **state)
{
	struct fx *fx = *state;
	struct payloads_options o = {.cache_dir = fx->cache, .cache_size = MIB};
	struct payloads *other = NULL;
	char err[256] = "";

	fx->ps = manager(fx, MIB, 0);
	assert_int_equal(payloads_new(fx->a, &o, &other, err, sizeof(err)), -EBUSY);
	assert_null(other);
	assert_non_null(strstr(err, "in use"));
	payloads_free(fx->ps);
	fx->ps = NULL;
	assert_int_equal(payloads_new(fx->a, &o, &other, err, sizeof(err)), 0);
	payloads_free(other);

	o.cache_dir = "";
	assert_int_equal(payloads_new(fx->a, &o, &other, err, sizeof(err)), -EINVAL);
}

/* Bytes that came another way (with the result's metadata): readable at
 * once from memory, then from the file the writer makes; a second put of
 * the key changes nothing; payloads_free() leaves the file written; a put
 * over cache_size keeps nothing. No API call at all. */
static void
test_put_bytes_are_served_without_a_call_and_written_to_the_cache(void **state)
{
	struct fx *fx = *state;
	struct payload_key k = {.thread_id = "thr_put"}, big = {.thread_id = "thr_big"};
	static const char bytes[] = "{\"put\": [1, 2, 3]}\n";
	size_t size = sizeof(bytes) - 1;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char got[64];
	uint64_t cbytes;
	int files, parts;

	fx->ps = manager(fx, 4096, 0);
	assert_int_equal(payloads_put(fx->ps, &k, bytes, size), 0);
	assert_int_equal(payloads_put(fx->ps, &k, "other bytes", 11), 0); /* kept: the first */
	assert_int_equal(payload_open(fx->ps, &k, size, NULL, 0, &pl), 0);
	assert_int_equal(payload_read(pl, got, sizeof(got), 0, NULL), (ssize_t)size);
	assert_memory_equal(got, bytes, size);
	assert_int_equal(payload_read(pl, got, 5, 2, NULL), 5);
	assert_memory_equal(got, bytes + 2, 5);
	payload_close(pl);

	/* the writer has made the file: a new handle reads it */
	for (int i = 0; i < 500; i++) {
		cache_files(fx, &files, &parts, &cbytes);
		if (files == 1)
			break;
		emu_sleep_ms(10);
	}
	assert_int_equal(files, 1);
	assert_int_equal(parts, 0);
	assert_int_equal(cbytes, size);
	assert_int_equal(payload_open(fx->ps, &k, size, NULL, 0, &pl), 0);
	memset(got, 0, sizeof(got));
	assert_int_equal(payload_read(pl, got, sizeof(got), 0, NULL), (ssize_t)size);
	assert_memory_equal(got, bytes, size);
	payload_close(pl);

	{
		unsigned char *large = calloc(1, 5000);

		assert_non_null(large);
		assert_int_equal(payloads_put(fx->ps, &big, large, 5000), 0); /* over cache_size */
		free(large);
	}
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_files, 1);
	assert_int_equal(st.cache_hits, 2);
	assert_int_equal(st.downloads, 0);

	/* queued and not yet written when the manager ends: written all the same */
	k.thread_id = "thr_put2";
	assert_int_equal(payloads_put(fx->ps, &k, bytes, size), 0);
	payloads_free(fx->ps);
	fx->ps = NULL;
	cache_files(fx, &files, &parts, &cbytes);
	assert_int_equal(files, 2);
	assert_int_equal(cbytes, 2 * size);
	assert_int_equal(calls(fx, NULL, 0), 0);
}

/* ---- payloads too large to keep: rings ---- */

/* Reads [from, to) of pl sequentially in pieces of at most 150000 bytes,
 * comparing with want; true when every byte matched. */
static bool
read_range(struct payload *pl, const unsigned char *want, size_t from, size_t to)
{
	unsigned char *buf = malloc(150000);
	bool same = buf != NULL;

	for (size_t off = from; same && off < to;) {
		size_t n = to - off < 150000 ? to - off : 150000;
		ssize_t got = payload_read(pl, buf, n, off, NULL);

		same = got == (ssize_t)n && memcmp(buf, want + off, n) == 0;
		off += n;
	}
	free(buf);
	return same;
}

/* A payload larger than the cache streams through memory: every byte
 * right, no file in the cache directory, and an open closed without a read
 * (the kernel had the pages) costs no request at all. */
static void
test_ring_payload_streams_without_touching_the_disk(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char *raw;
	int files, parts;
	uint64_t bytes;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 24 * MIB + 3, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 4 * MIB, 0);
	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.downloads, 1);
	assert_int_equal(st.bytes_downloaded, size);
	assert_int_equal(st.cache_files, 0);

	emu_forget_requests(fx->emu);
	pl = open_output(fx->ps, id, size);
	payload_close(pl);
	assert_int_equal(calls(fx, NULL, 0), 0);
	free(raw);
}

struct ring_reader {
	struct payload *pl;
	const unsigned char *want;
	size_t size;
	bool same;
};

static void *
ring_reader_main(void *arg)
{
	struct ring_reader *r = arg;

	r->same = read_range(r->pl, r->want, 0, r->size);
	return NULL;
}

/* Readers open at once share one download, however their paces differ:
 * the ring waits for the slowest. */
static void
test_ring_readers_opened_together_share_one_download(void **state)
{
	struct fx *fx = *state;
	struct ring_reader rd[8];
	pthread_t th[8];
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 40 * MIB + 11, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 4 * MIB, 0);
	emu_forget_requests(fx->emu);
	for (int i = 0; i < 8; i++)
		rd[i] = (struct ring_reader){open_output(fx->ps, id, size), raw, size, false};
	for (int i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ring_reader_main, &rd[i]), 0);
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_true(rd[i].same);
		payload_close(rd[i].pl);
	}
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	assert_int_equal(calls(fx, NULL, 1), 1);
	free(raw);
}

/* A reader that goes back past what the ring holds gets the bytes from a
 * download of its own, and they are right. */
static void
test_ring_reader_going_back_gets_a_download_of_its_own(void **state)
{
	struct fx *fx = *state;
	struct payload *pl;
	unsigned char *raw;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 40 * MIB + 1, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 4 * MIB, 0);
	emu_forget_requests(fx->emu);
	pl = open_output(fx->ps, id, size);
	assert_true(read_range(pl, raw, 0, 36 * MIB));
	assert_true(read_range(pl, raw, 0, 2 * MIB)); /* long gone from the ring */
	assert_true(read_range(pl, raw, 2 * MIB, size));
	payload_close(pl);
	assert_int_equal(calls(fx, "StreamThreadResult", 2), 2);
	free(raw);
}

/* A reader that stops reading holds the others back only for a while:
 * then the download goes on without it, and when it reads again it
 * gets its bytes from a download of its own. */
static void
test_ring_idle_reader_does_not_hold_the_others_back(void **state)
{
	struct fx *fx = *state;
	struct payload *idle, *busy;
	unsigned char *raw, b;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 40 * MIB + 5, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 4 * MIB, 0);
	emu_forget_requests(fx->emu);
	idle = open_output(fx->ps, id, size);
	busy = open_output(fx->ps, id, size);
	assert_int_equal(payload_read(idle, &b, 1, 0, NULL), 1);
	assert_int_equal(b, raw[0]);
	assert_true(read_range(busy, raw, 0, size)); /* about 5 s of waiting in it */
	assert_true(read_range(idle, raw, 1, size));
	payload_close(idle);
	payload_close(busy);
	assert_int_equal(calls(fx, "StreamThreadResult", 2), 2);
	free(raw);
}

/* A large payload that fits the cache is written behind its ring: the
 * cache file is whole when the download ends, a reader going back reads it
 * rather than starting a download, and the next open is a cache hit. */
static void
test_ring_payload_that_fits_is_written_behind_and_kept(void **state)
{
	struct fx *fx = *state;
	struct payloads_stats st;
	struct payload *pl;
	unsigned char *raw;
	int files, parts;
	uint64_t bytes;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 40 * MIB + 4097, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	fx->ps = manager(fx, 64 * MIB, 0);
	emu_forget_requests(fx->emu);
	pl = open_output(fx->ps, id, size);
	assert_true(read_range(pl, raw, 0, 36 * MIB));
	assert_true(read_range(pl, raw, 0, 3 * MIB)); /* from the file, not anew */
	assert_true(read_range(pl, raw, 36 * MIB, size));
	payload_close(pl);
	settle(fx->ps);
	assert_int_equal(calls(fx, "StreamThreadResult", 1), 1);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 1);
	assert_int_equal(parts, 0);
	assert_int_equal(bytes, size);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_files, 1);
	assert_int_equal(st.cache_bytes, size);

	emu_forget_requests(fx->emu);
	read_and_check(fx->ps, id, raw, size);
	assert_int_equal(calls(fx, NULL, 0), 0);
	payloads_stats(fx->ps, &st);
	assert_int_equal(st.cache_hits, 1);
	free(raw);
}

/* A cut stream leaves no file behind, and the reads past the cut fail. */
static void
test_ring_payload_cut_short_keeps_no_file(void **state)
{
	struct fx *fx = *state;
	struct payload *pl;
	unsigned char *raw, b;
	int files, parts;
	uint64_t bytes;
	size_t size;
	char id[128];

	emu_seed(fx->emu, "fanout", 40 * MIB, id, sizeof(id));
	raw = emu_output(fx->emu, id, &size);
	emu_faults(fx->emu, "{\"cutAfterBytes\": 30000000, \"match\": \"/result/stream\"}");
	fx->ps = manager_chunked(fx, 64 * MIB, 0, 65536);
	pl = open_output(fx->ps, id, size);
	assert_int_equal(payload_read(pl, &b, 1, size - 1, NULL), -EIO);
	payload_close(pl);
	settle(fx->ps);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(files, 0);
	free(raw);
}

/* Like churner_main, on large payloads, with now and then a read at a
 * random place (backwards past the ring too): handles join, move to new
 * downloads, read files written behind, pin and let go, all at once. */
static void *
ring_churner_main(void *arg)
{
	struct churner *c = arg;
	unsigned char *buf = malloc(65536);
	uint64_t s = c->seedv;

	for (int round = 0; round < 6 && buf != NULL; round++) {
		int i = (int)(rnd(&s) % 2);
		struct payload_key k = {.thread_id = c->ids[i]};
		struct payload *pl;
		size_t off = 0, reads = 40 + (size_t)(rnd(&s) % 300);

		if (payload_open(c->ps, &k, c->size[i], NULL, 0, &pl) != 0) {
			c->bad++;
			continue;
		}
		for (size_t r = 0; r < reads && off < c->size[i]; r++) {
			size_t want = 1 + (size_t)(rnd(&s) % 65536);
			ssize_t n;

			if (rnd(&s) % 16 == 0)
				off = (size_t)(rnd(&s) % c->size[i]);
			n = payload_read(pl, buf, want, off, NULL);
			if (n <= 0 || memcmp(buf, c->raw[i] + off, (size_t)n) != 0) {
				c->bad++;
				break;
			}
			off += (size_t)n;
		}
		payload_close(pl);
	}
	free(buf);
	return NULL;
}

static void
ring_churn(struct fx *fx, uint64_t cache_size)
{
	size_t sizes[2] = {20 * MIB + 1, 40 * MIB + 4095}, size[2];
	char ids[2][128];
	unsigned char *raw[2];
	struct churner ch[6];
	pthread_t th[6];
	struct payloads_stats st;
	int files, parts;
	uint64_t bytes;

	for (int i = 0; i < 2; i++) {
		emu_seed(fx->emu, "fanout", sizes[i], ids[i], sizeof(ids[i]));
		raw[i] = emu_output(fx->emu, ids[i], &size[i]);
	}
	fx->ps = manager_chunked(fx, cache_size, 0, 65536);
	for (int i = 0; i < 6; i++) {
		ch[i] =
		    (struct churner){fx->ps, ids, raw, size, 0x9e3779b97f4a7c15ULL * (i + 7), 0};
		assert_int_equal(pthread_create(&th[i], NULL, ring_churner_main, &ch[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ch[i].bad, 0);
	}
	settle(fx->ps);
	payloads_stats(fx->ps, &st);
	cache_files(fx, &files, &parts, &bytes);
	assert_int_equal(parts, 0);
	assert_int_equal((uint64_t)files, st.cache_files);
	assert_int_equal(bytes, st.cache_bytes);
	assert_true(st.cache_bytes <= cache_size);
	for (int i = 0; i < 2; i++)
		free(raw[i]);
}

static void
test_ring_readers_at_random_places_kept(void **state)
{
	ring_churn(*state, 64 * MIB);
}

static void
test_ring_readers_at_random_places_not_kept(void **state)
{
	ring_churn(*state, MIB);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_small_output_comes_from_one_unary_call),
	    cmocka_unit_test_setup_teardown(test_truncated_unary_answer_falls_back_to_the_stream,
	                                    setup_small_unary, teardown),
	    T(test_large_output_read_in_random_pieces_equals_the_raw_bytes),
	    T(test_eight_concurrent_readers_share_one_download),
	    T(test_readers_opening_and_closing_at_random_keep_bytes_and_cache_right),
	    T(test_read_far_ahead_waits_and_succeeds),
	    T(test_second_open_after_close_is_a_cache_hit_with_no_request),
	    T(test_cache_survives_a_new_manager_on_the_same_directory),
	    T(test_new_manager_drops_stale_parts_and_files_of_the_wrong_size),
	    T(test_eviction_keeps_the_cache_within_its_size),
	    T(test_step_payload_over_64k_comes_from_the_step_stream),
	    T(test_cut_stream_fails_reads_past_the_cut_and_the_next_open_retries),
	    T(test_cancelled_reader_of_a_stalled_download_returns_eintr_promptly),
	    T(test_closing_the_last_handle_of_a_stalled_download_aborts_it),
	    T(test_payloads_free_aborts_a_stalled_download_promptly),
	    T(test_download_silent_for_stall_ms_fails),
	    T(test_wrong_size_fails_reads_with_eio),
	    T(test_cache_file_of_another_size_is_fetched_again),
	    T(test_inline_bytes_need_no_transfer),
	    T(test_odd_thread_id_stays_inside_the_cache_directory),
	    T(test_one_cache_directory_serves_one_manager_at_a_time),
	    T(test_put_bytes_are_served_without_a_call_and_written_to_the_cache),
	    T(test_ring_payload_streams_without_touching_the_disk),
	    T(test_ring_readers_opened_together_share_one_download),
	    T(test_ring_reader_going_back_gets_a_download_of_its_own),
	    T(test_ring_idle_reader_does_not_hold_the_others_back),
	    T(test_ring_payload_that_fits_is_written_behind_and_kept),
	    T(test_ring_payload_cut_short_keeps_no_file),
	    T(test_ring_readers_at_random_places_kept),
	    T(test_ring_readers_at_random_places_not_kept),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
