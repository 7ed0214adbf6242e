/*
 * `--save DIR`: one thread written out as the mount's thread directory
 * (doc/SEMANTICS.md, Layout; scriptum(1), SAVED THREAD DIRECTORY), so a
 * saved run and a mounted one compare with `diff -r`.
 *
 *	DIR/status thread.json input.json summary.json [output.json]
 *	    [yields.ndjson] [error] steps/<path>/{status,step.json,[input.json],
 *	    [output.json],[error]}
 *
 * Payloads are streamed to disk as they arrive, in constant memory. Every
 * file is written under a temporary name in its directory and renamed into
 * place when complete, so an interrupted save never leaves a whole-looking
 * output.json; the old one is removed before the new one is fetched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "layout.h"

#define PROGRESS_EVERY_MS 100

/* A file being written: the temporary's descriptor and names. */
struct tmpfile {
	int fd;
	char tmp[4096];
	char final[4096];
};

struct save {
	struct cli *c;
	const char *id;
	const char *dir;
	char err[4200]; /* a local failure, for the message */
	/* the thread output */
	struct tmpfile out;
	uint64_t written;
	uint64_t total;
	int64_t started_ms;
	int64_t drawn_ms;
	bool bar; /* a progress bar on stderr */
	/* steps */
	struct tmpfile part;
	bool step_final; /* the step in progress has finished: its payloads are saved */
	bool part_open;
	char step_dir[4096];
	size_t nsteps;
};

/* mkdir -p */
static int
make_dirs(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0777) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0777) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int
tmp_open(struct tmpfile *f, const char *dir, const char *name)
{
	snprintf(f->final, sizeof(f->final), "%s/%s", dir, name);
	snprintf(f->tmp, sizeof(f->tmp), "%s/.%s.tmp-XXXXXX", dir, name);
	if ((f->fd = mkostemp(f->tmp, O_CLOEXEC)) < 0)
		return -errno;
	/* like any file the user makes, not mkstemp's 0600 */
	{
		mode_t mask = umask(0);

		umask(mask);
		fchmod(f->fd, 0666 & ~mask);
	}
	return 0;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Closes and renames into place; on failure (rc != 0) removes it. */
static int
tmp_close(struct tmpfile *f, int rc)
{
	if (f->fd < 0)
		return rc;
	if (close(f->fd) != 0 && rc == 0)
		rc = -errno;
	f->fd = -1;
	if (rc == 0 && rename(f->tmp, f->final) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(f->tmp);
	return rc;
}

/* Writes one small file whole. */
static int
put_file(struct save *s, const char *dir, const char *name, char *data, size_t len)
{
	struct tmpfile f;
	int rc;

	if ((rc = tmp_open(&f, dir, name)) == 0)
		rc = tmp_close(&f, write_all(f.fd, data, len));
	free(data);
	if (rc != 0)
		snprintf(s->err, sizeof(s->err), "writing %s/%s: %s", dir, name, strerror(-rc));
	return rc;
}

/* Removes a file that this save will not write (a leftover of an earlier
 * save of a thread that has since changed). */
static int
drop(struct save *s, const char *dir, const char *name)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (unlink(path) != 0 && errno != ENOENT) {
		int rc = -errno;

		if (snprintf(s->err, sizeof(s->err), "removing %s: %s", path, strerror(-rc)) < 0)
			s->err[0] = '\0';
		return rc;
	}
	return 0;
}

/* A rendered small file, or its removal when render made nothing. */
static int
put_or_drop(struct save *s, const char *dir, const char *name, int rendered, char *data, size_t len)
{
	if (rendered != 0) {
		snprintf(s->err, sizeof(s->err), "rendering %s: %s", name, strerror(-rendered));
		return rendered;
	}
	if (len == 0) {
		free(data);
		return drop(s, dir, name);
	}
	return put_file(s, dir, name, data, len);
}

static void
draw_bar(struct save *s, bool last)
{
	int64_t now = clk_mono_ms();
	double secs = (double)(now - s->started_ms) / 1000.0;
	char done[32], total[32], rate[32];
	int width = 30, filled;

	if (!s->bar || (!last && now - s->drawn_ms < PROGRESS_EVERY_MS))
		return;
	s->drawn_ms = now;
	filled = s->total > 0 ? (int)((double)s->written * width / (double)s->total) : width;
	cli_bytes(done, sizeof(done), s->written);
	cli_bytes(total, sizeof(total), s->total);
	cli_bytes(rate, sizeof(rate), secs > 0.05 ? (uint64_t)((double)s->written / secs) : 0);
	fprintf(stderr, "\r\033[K[%.*s%.*s] %3d%%  %s of %s  %s/s", filled,
	        "##############################", width - filled, "..............................",
	        s->total > 0 ? (int)(s->written * 100 / s->total) : 100, done, total, rate);
	if (last)
		fputs("\r\033[K", stderr);
	fflush(stderr);
}

static int
on_output(const struct model_result_msg *m, void *arg)
{
	struct save *s = arg;
	int rc;

	if (m->kind == MODEL_MSG_META) {
		s->total = (uint64_t)m->output_total_bytes;
		return 0;
	}
	if (m->len == 0)
		return 0;
	if ((rc = write_all(s->out.fd, m->data, m->len)) != 0) {
		snprintf(s->err, sizeof(s->err), "writing %s: %s", s->out.tmp, strerror(-rc));
		return rc;
	}
	s->written += m->len;
	draw_bar(s, false);
	return 0;
}

/* A step path as a directory name: it comes from the server, so it must
 * not climb out of steps/. */
static bool
safe_name(const char *p)
{
	return p[0] != '\0' && strchr(p, '/') == NULL && strcmp(p, ".") != 0 &&
	       strcmp(p, "..") != 0 && strlen(p) < 256;
}

static int
step_meta(struct save *s, const struct model_step_detail *d)
{
	char *data;
	size_t len;
	int rc;

	if (!safe_name(d->step.step_path)) {
		snprintf(s->err, sizeof(s->err),
		         "the server sent a step path unfit for a file name");
		return -EPROTO;
	}
	snprintf(s->step_dir, sizeof(s->step_dir), "%s/steps/%s", s->dir, d->step.step_path);
	if ((rc = make_dirs(s->step_dir)) != 0) {
		snprintf(s->err, sizeof(s->err), "creating %s: %s", s->step_dir, strerror(-rc));
		return rc;
	}
	s->nsteps++;
	rc = layout_step_status(&d->step, &data, &len);
	if (rc == 0)
		rc = put_or_drop(s, s->step_dir, "status", 0, data, len);
	if (rc == 0) {
		rc = layout_step_json(d, &data, &len);
		rc = put_or_drop(s, s->step_dir, "step.json", rc, data, rc == 0 ? len : 0);
	}
	if (rc == 0) {
		rc = layout_error(d->step.error, &data, &len);
		rc = put_or_drop(s, s->step_dir, "error", rc, data, rc == 0 ? len : 0);
	}
	/* a step's payloads are saved once it has finished, as the mount shows
	 * them (doc/SEMANTICS.md, "Layout"); those it does not have must not
	 * linger from before */
	s->step_final = model_step_terminal(d->step.status);
	if (rc == 0 && (d->input_total_bytes == 0 || !s->step_final))
		rc = drop(s, s->step_dir, "input.json");
	if (rc == 0 && (d->output_total_bytes == 0 || !s->step_final))
		rc = drop(s, s->step_dir, "output.json");
	return rc;
}

static int
on_step(const struct model_result_msg *m, void *arg)
{
	struct save *s = arg;
	const char *name;
	int rc;

	if (m->kind == MODEL_MSG_STEP_META)
		return step_meta(s, &m->step_meta);
	if (m->kind != MODEL_MSG_STEP_CHUNK || !s->step_final)
		return 0;
	name = m->part == MODEL_PART_INPUT ? "input.json" : "output.json";
	if (!s->part_open) {
		if (m->is_final && m->len == 0)
			return 0; /* an empty part: no file */
		if ((rc = tmp_open(&s->part, s->step_dir, name)) != 0) {
			snprintf(s->err, sizeof(s->err), "creating %s/%s: %s", s->step_dir, name,
			         strerror(-rc));
			return rc;
		}
		s->part_open = true;
	}
	if ((rc = write_all(s->part.fd, m->data, m->len)) != 0) {
		snprintf(s->err, sizeof(s->err), "writing %s: %s", s->part.tmp, strerror(-rc));
		return rc;
	}
	if (m->is_final) {
		s->part_open = false;
		if ((rc = tmp_close(&s->part, 0)) != 0) {
			snprintf(s->err, sizeof(s->err), "writing %s: %s", s->part.final,
			         strerror(-rc));
			return rc;
		}
	}
	return 0;
}

/* A failed call: the API's error, or the local one that stopped it. */
static int
failed(struct save *s, struct http_error *e)
{
	if (cli_signal != 0)
		return cli_signal_status();
	if (s->err[0] != '\0')
		return cli_fail(EXIT_INTERNAL, "saving thread %s: %s", s->id, s->err);
	return cli_api_error(e);
}

static int
save_small(struct save *s, const struct model_thread *t, const struct model_result *r)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = layout_status(t, &data, &len);
	if ((rc = put_or_drop(s, s->dir, "status", rc, data, rc == 0 ? len : 0)) != 0)
		return rc;
	rc = layout_thread_json(t, &data, &len);
	if ((rc = put_or_drop(s, s->dir, "thread.json", rc, data, rc == 0 ? len : 0)) != 0)
		return rc;
	rc = layout_input_json(t, &data, &len);
	if ((rc = put_or_drop(s, s->dir, "input.json", rc, data, rc == 0 ? len : 0)) != 0)
		return rc;
	rc = layout_summary_json(t, r, &data, &len);
	if ((rc = put_or_drop(s, s->dir, "summary.json", rc, data, rc == 0 ? len : 0)) != 0)
		return rc;
	rc = layout_yields(r, &data, &len);
	if ((rc = put_or_drop(s, s->dir, "yields.ndjson", rc, data, rc == 0 ? len : 0)) != 0)
		return rc;
	rc = layout_error(t->error, &data, &len);
	return put_or_drop(s, s->dir, "error", rc, data, rc == 0 ? len : 0);
}

/* Whether the thread directory has an output.json: a finished thread
 * that produced output (a completed one always has, if only empty). */
static bool
has_output(const struct model_thread *t, const struct model_result *r)
{
	return model_thread_terminal(t->status) &&
	       (t->status == MODEL_THREAD_COMPLETED || r->output_total_bytes > 0);
}

int
cli_save(struct cli *c, const char *id, const char *dir)
{
	struct save s = {.c = c, .id = id, .dir = dir, .out = {.fd = -1}, .part = {.fd = -1}};
	struct api_result_query q = {.metadata_only = true};
	struct model_thread t = {0};
	struct model_result r = {0};
	struct http_error e = {0};
	char size[32];
	int rc, status = EXIT_OK;

	if (api_get_thread(c->api, id, &t, &e) != 0)
		return cli_api_error(&e);
	if (api_get_result(c->api, id, &q, &r, &e) != 0) {
		model_thread_clear(&t);
		return cli_api_error(&e);
	}
	if ((rc = make_dirs(dir)) != 0) {
		status = cli_fail(EXIT_INTERNAL, "saving thread %s: creating %s: %s", id, dir,
		                  strerror(-rc));
		goto out;
	}
	/* an output.json from before must not pass for this one's */
	if (drop(&s, dir, "output.json") != 0 || save_small(&s, &t, &r) != 0) {
		status = cli_fail(EXIT_INTERNAL, "saving thread %s: %s", id, s.err);
		goto out;
	}
	if (r.yields_truncated)
		cli_warn("thread %s: yields.ndjson holds the %zu yielded values the API gives of "
		         "%" PRId64,
		         id, r.n_yielded, r.total_yielded);

	snprintf(s.err, sizeof(s.err), "%s/steps", dir);
	if ((rc = make_dirs(s.err)) != 0) {
		status = cli_fail(EXIT_INTERNAL, "saving thread %s: creating %s: %s", id, s.err,
		                  strerror(-rc));
		goto out;
	}
	s.err[0] = '\0';
	if (r.n_steps > 0 &&
	    api_stream_steps(c->api, id, NULL, 0, on_step, &s, c->abort, &e) != 0) {
		if (s.part_open)
			tmp_close(&s.part, -EIO);
		status = failed(&s, &e);
		goto out;
	}

	if (has_output(&t, &r)) {
		if ((rc = tmp_open(&s.out, dir, "output.json")) != 0) {
			status = cli_fail(EXIT_INTERNAL, "saving thread %s: creating %s: %s", id,
			                  s.out.final, strerror(-rc));
			goto out;
		}
		s.bar = c->tty_err;
		s.started_ms = clk_mono_ms();
		s.total = (uint64_t)r.output_total_bytes;
		rc = api_stream_result(c->api, id, 0, on_output, &s, c->abort, &e);
		draw_bar(&s, true);
		if (rc != 0) {
			tmp_close(&s.out, rc);
			status = failed(&s, &e);
			goto out;
		}
		if ((rc = tmp_close(&s.out, 0)) != 0) {
			status = cli_fail(EXIT_INTERNAL, "saving thread %s: writing %s: %s", id,
			                  s.out.final, strerror(-rc));
			goto out;
		}
	} else if (!model_thread_terminal(t.status)) {
		cli_warn("thread %s is %s: saved what is known now (no output.json yet)", id,
		         model_thread_status_word(t.status));
	}
	/* a saved failure is still a failure, as for `result` without --save */
	if (model_thread_terminal(t.status) && t.status != MODEL_THREAD_COMPLETED)
		status = EXIT_THREAD_FAILED;
	cli_bytes(size, sizeof(size), s.written);
	fprintf(stderr, "saved thread %s to %s: %s%s, %zu step%s\n", id, dir,
	        has_output(&t, &r) ? "output " : "no output", has_output(&t, &r) ? size : "",
	        s.nsteps, s.nsteps == 1 ? "" : "s");
out:
	model_result_clear(&r);
	model_thread_clear(&t);
	return status;
}
