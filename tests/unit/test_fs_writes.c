/*
 * The writable files (fs/writes.c) against the real emulator: each test
 * starts its own scriptum-emulator ($SCRIPTUM_EMULATOR, else
 * build/scriptum-emulator) with the demo catalog on a free port, drives a
 * struct wfile as FUSE would (write, truncate, flush, read), and counts the
 * calls that reached the emulator in /_emulator/requests.
 *
 *	make build/tests/test_fs_writes &&
 *	    SCRIPTUM_EMULATOR=build/scriptum-emulator build/tests/test_fs_writes
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"
#include "emu.h"
#include "fs.h"
#include "http.h"

struct fx {
	struct emu *emu;
	struct api *a;
	struct errlog *log;
};

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct http_options o = {0};

	if (fx == NULL)
		return -1;
	if (emu_start(NULL, &fx->emu) != 0) {
		free(fx);
		return -1;
	}
	o.endpoint = emu_url(fx->emu);
	o.deadline_ms = 10000;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	if (api_new(&o, &fx->a, NULL, 0) != 0 || (fx->log = errlog_new(16)) == NULL)
		return -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	api_free(fx->a);
	errlog_free(fx->log);
	emu_stop(fx->emu);
	free(fx);
	return 0;
}

/* How many times the emulator has seen call ("CreateThread"): at least
 * want within a second, then 50 ms more, so that a count above want shows
 * too. */
static long
calls(struct fx *fx, const char *call, long want)
{
	return emu_calls(fx->emu, call, want, 1000, 50);
}

/* The errlog as text (free() it). */
static char *
errors(struct fx *fx)
{
	char *text;
	size_t len;

	assert_int_equal(errlog_render(fx->log, &text, &len), 0);
	return text;
}

/* ---- helpers ---- */

static struct wfile *
new_file(const char *script, int64_t version)
{
	struct wfile_target t = {.kind = WRITE_NEW, .script = script, .version = version};
	struct wfile *w = wfile_new(&t);

	assert_non_null(w);
	return w;
}

static struct wfile *
thread_file(enum write_kind kind, const char *thread)
{
	struct wfile_target t = {.kind = kind, .thread = thread};
	struct wfile *w = wfile_new(&t);

	assert_non_null(w);
	return w;
}

static void
put(struct wfile *w, const char *text, off_t off)
{
	assert_int_equal(wfile_write(w, text, strlen(text), off), (ssize_t)strlen(text));
}

/* Flushes; the flush's result. A thread made is cleared, its id kept in
 * id (when not NULL). */
static int
flush(struct fx *fx, struct wfile *w, bool *made_out, char *id, size_t idlen)
{
	struct model_thread t = {0};
	bool made = true;
	int rc = wfile_flush(w, fx->a, fx->log, &t, &made);

	if (made && id != NULL)
		snprintf(id, idlen, "%s", t.thread_id);
	if (made_out != NULL)
		*made_out = made;
	if (made)
		model_thread_clear(&t);
	return rc;
}

/* A thread of script made through the API, its id in id. */
static void
start_thread(struct fx *fx, const char *script, const char *input, char *id, size_t idlen)
{
	struct api_create rq = {.script_name = script, .input_json = input};
	struct model_thread t;

	assert_int_equal(api_create_thread(fx->a, &rq, &t, NULL), 0);
	snprintf(id, idlen, "%s", t.thread_id);
	model_thread_clear(&t);
}

static enum model_thread_status
status_of(struct fx *fx, const char *id)
{
	struct model_thread t;
	enum model_thread_status s;

	assert_int_equal(api_get_thread(fx->a, id, &t, NULL), 0);
	s = t.status;
	model_thread_clear(&t);
	return s;
}

/* Waits up to 10 s for the thread to be in status s. */
static void
wait_status(struct fx *fx, const char *id, enum model_thread_status s)
{
	for (int i = 0; i < 1000 && status_of(fx, id) != s; i++)
		emu_sleep_ms(10);
	assert_int_equal(status_of(fx, id), s);
}

/* A seeded completed thread of the demo. */
static void
completed_thread(struct fx *fx, char *id, size_t idlen)
{
	struct api_list q = {.page_size = 1, .status = MODEL_THREAD_COMPLETED};
	struct model_thread_list l;

	assert_int_equal(api_list_threads(fx->a, &q, &l, NULL), 0);
	assert_true(l.n_threads >= 1);
	snprintf(id, idlen, "%s", l.threads[0].thread_id);
	model_thread_list_clear(&l);
}

static void
get_thread(struct fx *fx, const char *id, struct model_thread *t)
{
	assert_int_equal(api_get_thread(fx->a, id, t, NULL), 0);
}

/* ---- new ---- */

static void
test_flush_with_nothing_written_sends_nothing(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	char buf[16];
	bool made;

	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_false(made);
	assert_int_equal(wfile_read(w, buf, sizeof(buf), 0), 0);
	assert_int_equal(calls(fx, "CreateThread", 0), 0);
	wfile_free(w);
}

static void
test_write_and_flush_create_one_thread_whose_id_is_read_back(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	struct model_thread t = {0}, got;
	char buf[256], want[256];
	bool made = false;

	put(w, "{\"message\": \"hi\"}\n", 0);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), 0);
	assert_true(made);
	assert_string_equal(t.script_name, "echo");
	assert_true(t.thread_id[0] != '\0');
	assert_int_equal(calls(fx, "CreateThread", 1), 1);

	snprintf(want, sizeof(want), "%s\n", t.thread_id);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(wfile_read(w, buf, sizeof(buf), 0), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
	/* at an offset, and past the end */
	assert_int_equal(wfile_read(w, buf, 2, 1), 2);
	assert_memory_equal(buf, want + 1, 2);
	assert_int_equal(wfile_read(w, buf, sizeof(buf), (off_t)strlen(want)), 0);

	/* the thread has the bytes written as its input */
	get_thread(fx, t.thread_id, &got);
	assert_string_equal(got.input_json, "{\"message\": \"hi\"}\n");
	model_thread_clear(&got);
	model_thread_clear(&t);
	wfile_free(w);
}

static void
test_second_flush_after_success_sends_nothing(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	bool made;

	put(w, "{}", 0);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_true(made);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_false(made);
	/* the file has done its one thing */
	assert_int_equal(wfile_write(w, "{}", 2, 0), -EBADF);
	assert_int_equal(wfile_truncate(w, 0), -EBADF);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_false(made);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	wfile_free(w);
}

/* bash's `echo '{}' > new`: open, dup2 onto stdout, close the first
 * descriptor (a flush with nothing written), write, close stdout. */
static void
test_close_of_a_dup_before_writing_does_not_spend_the_file(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	char id[128] = "", buf[160];
	bool made;

	assert_int_equal(wfile_truncate(w, 0), 0); /* O_TRUNC */
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_false(made);
	put(w, "{}\n", 0);
	assert_int_equal(flush(fx, w, &made, id, sizeof(id)), 0);
	assert_true(made);
	assert_int_equal(wfile_read(w, buf, sizeof(buf), 0), (ssize_t)strlen(id) + 1);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	wfile_free(w);
}

static void
test_new_rejects_invalid_json(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	char *text;
	bool made;

	put(w, "{\"oops", 0);
	assert_int_equal(flush(fx, w, &made, NULL, 0), -EINVAL);
	assert_false(made);
	/* a second close of the same bytes: the same answer, still nothing sent */
	assert_int_equal(flush(fx, w, &made, NULL, 0), -EINVAL);
	assert_int_equal(calls(fx, "CreateThread", 0), 0);
	text = errors(fx);
	assert_non_null(strstr(text, " CreateThread echo: the bytes written are not JSON ("));
	free(text);

	/* put right, it goes */
	assert_int_equal(wfile_truncate(w, 0), 0);
	put(w, "{\"ok\": true}", 0);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_true(made);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	wfile_free(w);
}

/* bash's `echo '{bad' > new` never sees close() fail: the write must */
static void
test_a_write_that_can_begin_no_json_fails_at_once(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	bool made;

	assert_int_equal(wfile_write(w, "{", 1, 0), 1);
	assert_int_equal(wfile_write(w, "bad}", 4, 1), -EINVAL);
	/* what was refused was not kept: the file holds "{" */
	assert_int_equal(flush(fx, w, &made, NULL, 0), -EINVAL);
	assert_false(made);
	/* O_TRUNC starts the check again */
	assert_int_equal(wfile_truncate(w, 0), 0);
	assert_int_equal(wfile_write(w, "{\"a\": 1}\n", 9, 0), 9);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_true(made);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	wfile_free(w);
}

static void
test_new_rejects_whitespace_and_a_hole(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	struct wfile *hole = new_file("echo", 0);

	put(w, "\n", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -EINVAL);
	/* a hole reads as NUL bytes, which are not JSON */
	put(hole, "{}", 4);
	assert_int_equal(flush(fx, hole, NULL, NULL, 0), -EINVAL);
	assert_int_equal(calls(fx, "CreateThread", 0), 0);
	wfile_free(w);
	wfile_free(hole);
}

static void
test_writes_past_16_mib_are_efbig_and_kept_out(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	struct wfile *big = new_file("echo", 0);
	char *huge = malloc(FS_INPUT_MAX + 1);
	struct model_thread t = {0};
	bool made;

	assert_non_null(huge);
	memset(huge, ' ', FS_INPUT_MAX + 1);
	huge[0] = '[';
	huge[FS_INPUT_MAX - 1] = ']';
	/* 16 MiB exactly is taken; one byte more is not */
	assert_int_equal(wfile_write(big, huge, FS_INPUT_MAX, 0), (ssize_t)FS_INPUT_MAX);
	assert_int_equal(wfile_write(big, "x", 1, (off_t)FS_INPUT_MAX), -EFBIG);
	assert_int_equal(wfile_write(w, huge, FS_INPUT_MAX + 1, 0), -EFBIG);
	assert_int_equal(wfile_truncate(w, (off_t)FS_INPUT_MAX + 1), -EFBIG);

	/* a refused write spoils the file: what it holds is only a start */
	assert_int_equal(wfile_truncate(w, 0), 0);
	put(w, "{}", 0);
	assert_int_equal(wfile_write(w, "12345678", 8, (off_t)FS_INPUT_MAX - 4), -EFBIG);
	assert_int_equal(wfile_write(w, "x", 1, (off_t)FS_INPUT_MAX), -EFBIG);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), -EFBIG);
	assert_false(made);
	assert_int_equal(calls(fx, "CreateThread", 0), 0);
	/* truncated and written again, it goes; nothing of the refused bytes is kept */
	assert_int_equal(wfile_truncate(w, 2), 0);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), 0);
	assert_true(made);
	assert_string_equal(t.input_json, "{}");
	model_thread_clear(&t);
	free(huge);
	wfile_free(w);
	wfile_free(big);
}

static void
test_unknown_script_is_enoent_and_logged(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("nosuch", 0);
	char *text;
	bool made;

	put(w, "{}", 0);
	assert_int_equal(flush(fx, w, &made, NULL, 0), -ENOENT);
	assert_false(made);
	text = errors(fx);
	assert_non_null(strstr(text, "Z CreateThread nosuch HTTP 404 NOT_FOUND: "));
	assert_non_null(strstr(text, "nosuch"));
	free(text);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	wfile_free(w);
}

static void
test_failed_create_is_resent_only_after_new_bytes(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("nosuch", 0);

	put(w, "{}", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -ENOENT);
	/* the close of a dup: the same failure, not a second request */
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -ENOENT);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	/* bytes written since: tried again */
	put(w, "{}", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -ENOENT);
	assert_int_equal(calls(fx, "CreateThread", 2), 2);
	/* cut to nothing: nothing to send, and nothing to complain of */
	assert_int_equal(wfile_truncate(w, 0), 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), 0);
	assert_int_equal(calls(fx, "CreateThread", 2), 2);
	wfile_free(w);
}

static void
test_version_n_is_sent(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 2);
	struct wfile *none = new_file("echo", 9);
	struct model_thread t = {0}, got;
	bool made;

	put(w, "{}", 0);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), 0);
	assert_true(made);
	assert_int_equal(t.version, 2);
	get_thread(fx, t.thread_id, &got);
	assert_int_equal(got.version, 2);
	model_thread_clear(&got);
	model_thread_clear(&t);

	put(none, "{}", 0);
	assert_int_equal(flush(fx, none, NULL, NULL, 0), -ENOENT);
	wfile_free(w);
	wfile_free(none);
}

static void
test_load_env_is_sent(void **state)
{
	struct fx *fx = *state;
	struct wfile_target tg = {.kind = WRITE_NEW, .script = "echo", .load_env = true};
	struct wfile *w = wfile_new(&tg);
	bool made;

	/* the emulator takes loadEnv and ignores it: the call succeeds */
	put(w, "{}", 0);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_true(made);
	wfile_free(w);
}

static void
test_writes_at_offsets_assemble(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	struct model_thread t = {0};
	bool made;

	/* {"a": [1, 2], "b": "xyz"} in pieces, out of order, one overwritten */
	put(w, "\"b\": \"xyz\"}", 14);
	put(w, "{\"a\": ", 0);
	put(w, "[9, 9], ", 6);
	put(w, "1", 7);
	put(w, "2", 10);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), 0);
	assert_true(made);
	assert_string_equal(t.input_json, "{\"a\": [1, 2], \"b\": \"xyz\"}");
	model_thread_clear(&t);
	wfile_free(w);
}

static void
test_truncate_to_zero_then_write(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	struct wfile *cut = new_file("echo", 0);
	struct model_thread t = {0};
	bool made;

	put(w, "{\"half\": [1, 2, ", 0); /* could still become JSON */
	assert_int_equal(wfile_truncate(w, 0), 0);
	put(w, "{\"k\": 2}", 0);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), 0);
	assert_string_equal(t.input_json, "{\"k\": 2}");
	model_thread_clear(&t);

	/* shrinking keeps the start */
	put(cut, "{\"k\": 3}  ", 0);
	assert_int_equal(wfile_write(cut, "garbage", 7, 10), -EINVAL); /* refused at once */
	put(cut, "\n\n\n\n\n", 10);
	assert_int_equal(wfile_truncate(cut, 8), 0);
	assert_int_equal(wfile_flush(cut, fx->a, fx->log, &t, &made), 0);
	assert_string_equal(t.input_json, "{\"k\": 3}");
	model_thread_clear(&t);
	assert_int_equal(calls(fx, "CreateThread", 2), 2);
	wfile_free(w);
	wfile_free(cut);
}

struct flusher {
	struct fx *fx;
	struct wfile *w;
	pthread_barrier_t *go;
	int rc;
	bool made;
	char id[128];
};

static void *
flush_thread(void *arg)
{
	struct flusher *f = arg;

	pthread_barrier_wait(f->go);
	f->rc = flush(f->fx, f->w, &f->made, f->id, sizeof(f->id));
	return NULL;
}

/* n threads flush w at once; returns how many made a thread, and checks
 * that each flush returned want. */
static int
flush_together(struct fx *fx, struct wfile *w, int want)
{
	enum { N = 8 };
	struct flusher f[N];
	pthread_t th[N];
	pthread_barrier_t go;
	int made = 0;

	pthread_barrier_init(&go, NULL, N);
	for (int i = 0; i < N; i++) {
		f[i] = (struct flusher){.fx = fx, .w = w, .go = &go};
		assert_int_equal(pthread_create(&th[i], NULL, flush_thread, &f[i]), 0);
	}
	for (int i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (int i = 0; i < N; i++) {
		assert_int_equal(f[i].rc, want);
		made += f[i].made;
	}
	return made;
}

static void
test_concurrent_flushes_create_exactly_one_thread(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	struct wfile *bad = new_file("nosuch", 0);
	char buf[128];

	/* a slow answer, so that every flush comes while the first is out */
	emu_faults(fx->emu, "{\"latencyMs\": 300}");
	put(w, "{\"n\": 1}", 0);
	assert_int_equal(flush_together(fx, w, 0), 1);
	assert_int_equal(calls(fx, "CreateThread", 1), 1);
	assert_true(wfile_read(w, buf, sizeof(buf), 0) > 1);

	/* a failure is shared the same way */
	put(bad, "{}", 0);
	assert_int_equal(flush_together(fx, bad, -ENOENT), 0);
	assert_int_equal(calls(fx, "CreateThread", 2), 2);
	emu_faults(fx->emu, "{}");
	wfile_free(w);
	wfile_free(bad);
}

struct writer {
	struct wfile *w;
	pthread_barrier_t *go;
	ssize_t rc;
};

static void *
write_thread(void *arg)
{
	struct writer *wr = arg;

	pthread_barrier_wait(wr->go);
	wr->rc = wfile_write(wr->w, "{}", 2, 0);
	return NULL;
}

/* A write racing the flush that sends: it lands before (and is sent) or
 * after (-EBADF); it never changes the bytes under the call. */
static void
test_write_during_a_flush_waits_for_its_outcome(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = new_file("echo", 0);
	pthread_barrier_t go;
	struct writer wr = {.w = w, .go = &go};
	struct model_thread t = {0};
	pthread_t th;
	bool made;

	emu_faults(fx->emu, "{\"latencyMs\": 200}");
	put(w, "{}", 0);
	pthread_barrier_init(&go, NULL, 2);
	assert_int_equal(pthread_create(&th, NULL, write_thread, &wr), 0);
	pthread_barrier_wait(&go);
	assert_int_equal(wfile_flush(w, fx->a, fx->log, &t, &made), 0);
	pthread_join(th, NULL);
	pthread_barrier_destroy(&go);
	assert_true(wr.rc == 2 || wr.rc == -EBADF);
	assert_string_equal(t.input_json, "{}");
	model_thread_clear(&t);
	emu_faults(fx->emu, "{}");
	wfile_free(w);
}

/* ---- resume ---- */

static void
test_resume_of_a_paused_approval_thread_with_an_answer(void **state)
{
	struct fx *fx = *state;
	char id[128], buf[16];
	struct wfile *w;
	bool made;

	start_thread(fx, "approval", "{\"title\": \"Q4\"}", id, sizeof(id));
	wait_status(fx, id, MODEL_THREAD_PAUSED);
	w = thread_file(WRITE_RESUME, id);
	put(w, "{\"value\":\"approve\"}\n", 0);
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_false(made); /* no thread was made */
	assert_int_equal(wfile_read(w, buf, sizeof(buf), 0), 0);
	assert_int_equal(wfile_write(w, "{}", 2, 0), -EBADF);
	assert_true(status_of(fx, id) != MODEL_THREAD_PAUSED);
	wait_status(fx, id, MODEL_THREAD_COMPLETED);
	assert_int_equal(calls(fx, "ResumeThread", 1), 1);
	wfile_free(w);
}

static void
test_resume_with_a_wrong_answer_is_einval(void **state)
{
	struct fx *fx = *state;
	char id[128], want[192], *text;
	struct wfile *w;

	start_thread(fx, "approval", "{\"title\": \"Q4\"}", id, sizeof(id));
	wait_status(fx, id, MODEL_THREAD_PAUSED);
	w = thread_file(WRITE_RESUME, id);
	put(w, "{\"value\":\"maybe\"}", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -EINVAL);
	assert_int_equal(status_of(fx, id), MODEL_THREAD_PAUSED);
	text = errors(fx);
	snprintf(want, sizeof(want), "Z ResumeThread %s HTTP 400 INVALID_ARGUMENT: ", id);
	assert_non_null(strstr(text, want));
	free(text);

	/* not JSON at all: refused as it is written, nothing sent */
	wfile_free(w);
	w = thread_file(WRITE_RESUME, id);
	assert_int_equal(wfile_write(w, "approve\n", 8, 0), -EINVAL);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), 0);
	assert_int_equal(calls(fx, "ResumeThread", 1), 1);
	/* written out of order, the check is the flush's */
	wfile_free(w);
	w = thread_file(WRITE_RESUME, id);
	put(w, "prove\n", 2);
	put(w, "ap", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -EINVAL);
	assert_int_equal(calls(fx, "ResumeThread", 1), 1);
	wfile_free(w);
}

static void
test_resume_of_a_completed_thread_is_ebusy(void **state)
{
	struct fx *fx = *state;
	char id[128];
	struct wfile *w;

	completed_thread(fx, id, sizeof(id));
	w = thread_file(WRITE_RESUME, id);
	put(w, "{\"value\":\"approve\"}", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -EBUSY);
	assert_int_equal(status_of(fx, id), MODEL_THREAD_COMPLETED);
	wfile_free(w);
}

/* ---- cancel ---- */

static void
test_cancel_of_a_running_thread(void **state)
{
	struct fx *fx = *state;
	char id[128];
	struct wfile *w;
	bool made;

	start_thread(fx, "nightly", NULL, id, sizeof(id));
	wait_status(fx, id, MODEL_THREAD_RUNNING);
	w = thread_file(WRITE_CANCEL, id);
	put(w, "\n", 0); /* anything at all */
	assert_int_equal(flush(fx, w, &made, NULL, 0), 0);
	assert_false(made);
	assert_int_equal(status_of(fx, id), MODEL_THREAD_CANCELLED);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), 0);
	assert_int_equal(calls(fx, "CancelThread", 1), 1);
	wfile_free(w);
}

static void
test_cancel_with_nothing_written_does_nothing(void **state)
{
	struct fx *fx = *state;
	char id[128];
	struct wfile *w;

	start_thread(fx, "nightly", NULL, id, sizeof(id));
	w = thread_file(WRITE_CANCEL, id);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), 0);
	assert_int_equal(calls(fx, "CancelThread", 0), 0);
	assert_true(status_of(fx, id) != MODEL_THREAD_CANCELLED);
	wfile_free(w);
}

static void
test_cancel_of_a_completed_thread_is_ebusy(void **state)
{
	struct fx *fx = *state;
	char id[128], want[192], *text;
	struct wfile *w;

	completed_thread(fx, id, sizeof(id));
	w = thread_file(WRITE_CANCEL, id);
	put(w, "x", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -EBUSY);
	text = errors(fx);
	snprintf(want, sizeof(want), "Z CancelThread %s HTTP 400 FAILED_PRECONDITION: ", id);
	assert_non_null(strstr(text, want));
	free(text);
	wfile_free(w);
}

static void
test_cancel_of_an_unknown_thread_is_enoent(void **state)
{
	struct fx *fx = *state;
	struct wfile *w = thread_file(WRITE_CANCEL, "thr_nosuch");

	put(w, "x", 0);
	assert_int_equal(flush(fx, w, NULL, NULL, 0), -ENOENT);
	wfile_free(w);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_flush_with_nothing_written_sends_nothing),
	    T(test_write_and_flush_create_one_thread_whose_id_is_read_back),
	    T(test_second_flush_after_success_sends_nothing),
	    T(test_close_of_a_dup_before_writing_does_not_spend_the_file),
	    T(test_new_rejects_invalid_json),
	    T(test_a_write_that_can_begin_no_json_fails_at_once),
	    T(test_new_rejects_whitespace_and_a_hole),
	    T(test_writes_past_16_mib_are_efbig_and_kept_out),
	    T(test_unknown_script_is_enoent_and_logged),
	    T(test_failed_create_is_resent_only_after_new_bytes),
	    T(test_version_n_is_sent),
	    T(test_load_env_is_sent),
	    T(test_writes_at_offsets_assemble),
	    T(test_truncate_to_zero_then_write),
	    T(test_concurrent_flushes_create_exactly_one_thread),
	    T(test_write_during_a_flush_waits_for_its_outcome),
	    T(test_resume_of_a_paused_approval_thread_with_an_answer),
	    T(test_resume_with_a_wrong_answer_is_einval),
	    T(test_resume_of_a_completed_thread_is_ebusy),
	    T(test_cancel_of_a_running_thread),
	    T(test_cancel_with_nothing_written_does_nothing),
	    T(test_cancel_of_a_completed_thread_is_ebusy),
	    T(test_cancel_of_an_unknown_thread_is_enoent),
	};

	log_init(true, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
