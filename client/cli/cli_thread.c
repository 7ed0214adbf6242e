/*
 * The commands: `thread create|run|watch|get|list|result|steps|cancel|
 * resume` and `health`. Each turns its flags into API calls and prints the
 * answer in the chosen format; following and saving live in cli_watch.c and
 * cli_save.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dynbuf.h"
#include "listing.h"
#include "jsonload.h"
#include "jsontext.h"

#define INPUT_MAX  ((size_t)16 << 20) /* the mount's limit for `new` too */
#define YAML_MAX   ((size_t)64 << 20) /* output converted to YAML is held whole */
#define STEPS_PAGE 1000

/* Waits until fd has bytes (or its end) to read: 0, or -EINTR once a
 * signal came (a terminal on stdin would otherwise hold Ctrl-C). */
static int
read_wait(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	while (cli_signal == 0)
		if (poll(&p, 1, 100) != 0)
			return 0; /* ready, or an error that read() will report */
	return -EINTR;
}

/* Reads all of fd, at most max bytes (-EFBIG past them); -EINTR after a
 * signal. */
static int
read_fd(int fd, size_t max, char **out, size_t *outlen)
{
	struct dynbuf b;
	char chunk[16384];
	int rc = 0;

	dynbuf_init(&b, max);
	for (;;) {
		ssize_t n;

		if (read_wait(fd) != 0) {
			rc = -EINTR;
			break;
		}
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0 || (rc = dynbuf_add(&b, chunk, (size_t)n)) != 0)
			break;
	}
	if (rc == 0 && b.buf == NULL)
		rc = dynbuf_add(&b, "", 0); /* nothing read: an empty string */
	if (rc != 0) {
		dynbuf_free(&b);
		return rc;
	}
	*out = dynbuf_take(&b, outlen);
	return 0;
}

/*
 * --input: inline JSON, @FILE or @- (stdin), checked as JSON before any
 * call. Returns 0 and *out (free it), or an exit status after a message.
 */
static int
read_input(const char *spec, char **out)
{
	char err[256], *text = NULL;
	size_t len = 0;
	int rc, fd;
	const char *what = "--input";

	if (spec[0] == '@') {
		what = spec[1] == '-' && spec[2] == '\0' ? "standard input" : spec + 1;
		fd = strcmp(spec, "@-") == 0 ? STDIN_FILENO : open(spec + 1, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return cli_fail(EXIT_INVALID, "--input %s: %s", spec, strerror(errno));
		rc = read_fd(fd, INPUT_MAX, &text, &len);
		if (fd != STDIN_FILENO)
			close(fd);
		if (rc == -EINTR && cli_signal != 0)
			return cli_signal_status();
		if (rc == -EFBIG)
			return cli_fail(EXIT_INVALID, "--input %s: larger than %zu MiB", spec,
			                INPUT_MAX >> 20);
		if (rc != 0)
			return cli_fail(EXIT_INVALID, "--input %s: %s", spec, strerror(-rc));
	} else {
		len = strlen(spec);
		if ((text = strdup(spec)) == NULL)
			return cli_fail(EXIT_INTERNAL, "out of memory");
	}
	if (memchr(text, '\0', len) != NULL) {
		free(text);
		return cli_fail(EXIT_INVALID, "%s is not JSON: it holds a NUL byte", what);
	}
	if (jsontext_check(text, len, err, sizeof(err)) != 0) {
		free(text);
		return cli_fail(EXIT_INVALID, "%s is not JSON: %s", what, err);
	}
	*out = text;
	return 0;
}

static int
parse_count(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return cli_fail(EXIT_INVALID,
		                "%s wants a whole number from %" PRId64 " to %" PRId64 ", not '%s'",
		                flag, min, max, s);
	*out = v;
	return 0;
}

static int
print_thread_row(struct cli *c, const struct model_thread *t)
{
	return cli_print_threads(c, t, 1) == 0 ? EXIT_OK : EXIT_INTERNAL;
}

static int
print_single(struct cli *c, const struct model_thread *t)
{
	int rc;

	if (c->format == CLI_JSON || c->format == CLI_YAML) {
		json_t *v = model_thread_json(t);

		rc = cli_print_value(stdout, c->format, v);
		json_decref(v);
		return rc == 0 ? EXIT_OK : EXIT_INTERNAL;
	}
	return print_thread_row(c, t);
}

/*
 * Prints an action's answer (create, cancel, resume). A minimal answer
 * (only the id, or {}: its status unspecified) is completed with GetThread
 * first; when that fails, the id alone is printed and the failure is the
 * exit status, so the id of a thread that was made is never lost.
 */
static int
print_answer(struct cli *c, struct model_thread *t)
{
	struct model_thread full;
	struct http_error e;
	int rc, fetched = EXIT_OK;

	if (t->status == MODEL_THREAD_UNSPECIFIED) {
		if (api_get_thread(c->api, t->thread_id, &full, &e) == 0) {
			model_thread_clear(t);
			*t = full;
		} else {
			fetched = cli_api_error(&e);
		}
	}
	rc = print_single(c, t);
	return fetched != EXIT_OK ? fetched : rc;
}

/* CreateThread from create's and run's flags. */
static int
create(struct cli *c, const struct cli_args *a, struct model_thread *t)
{
	struct api_create rq = {.script_name = a->arg,
	                        .timeout = a->run_timeout,
	                        .metadata = a->metadata,
	                        .n_metadata = a->n_metadata,
	                        .load_env = a->env};
	struct http_error e;
	char *input = NULL;
	int64_t ms;
	int rc;

	if (a->version != NULL &&
	    (rc = parse_count("--version", a->version, 0, INT32_MAX, &rq.version)) != 0)
		return rc;
	if (a->run_timeout != NULL && config_parse_duration(a->run_timeout, &ms) != 0)
		return cli_fail(EXIT_INVALID,
		                "--timeout wants a duration such as 30s, 5m or 1h, "
		                "not '%s'",
		                a->run_timeout);
	if (a->input != NULL && (rc = read_input(a->input, &input)) != 0)
		return rc;
	rq.input_json = input;
	rc = api_create_thread(c->api, &rq, t, &e);
	free(input);
	if (rc != 0)
		return cli_api_error(&e);
	return EXIT_OK;
}

static int
cmd_create(struct cli *c, const struct cli_args *a)
{
	struct model_thread t;
	int rc;

	if ((rc = create(c, a, &t)) != EXIT_OK)
		return rc;
	rc = print_answer(c, &t);
	model_thread_clear(&t);
	return rc;
}

/* The thread's output bytes to stdout, as they arrive. */
static int
on_output(const struct model_result_msg *m, void *arg)
{
	(void)arg;
	if (m->kind != MODEL_MSG_CHUNK || m->len == 0)
		return 0;
	if (fwrite(m->data, 1, m->len, stdout) != m->len)
		return -errno;
	return 0;
}

struct collect {
	char *buf;
	size_t len;
};

static int
on_collect(const struct model_result_msg *m, void *arg)
{
	struct collect *k = arg;
	char *nb;

	if (m->kind != MODEL_MSG_CHUNK || m->len == 0)
		return 0;
	if (k->len + m->len > YAML_MAX)
		return -EFBIG;
	if ((nb = realloc(k->buf, k->len + m->len + 1)) == NULL)
		return -ENOMEM;
	k->buf = nb;
	memcpy(k->buf + k->len, m->data, m->len);
	k->len += m->len;
	k->buf[k->len] = '\0';
	return 0;
}

/* The output of a completed thread on stdout: its bytes, or as YAML. */
static int
print_output(struct cli *c, const char *id)
{
	struct http_error e;
	int rc;

	if (c->format == CLI_YAML) {
		struct collect k = {0};
		json_error_t jerr;
		json_t *v;

		rc = api_stream_result(c->api, id, 0, on_collect, &k, c->abort, &e);
		if (rc == -EFBIG) {
			free(k.buf);
			return cli_fail(EXIT_INVALID,
			                "thread %s: the output is over %zu MiB: too large for -o "
			                "yaml (without -o, it is written as it comes)",
			                id, YAML_MAX >> 20);
		}
		if (rc != 0) {
			free(k.buf);
			return cli_api_error(&e);
		}
		rc = jsonload(k.buf, k.len, JSON_DECODE_ANY, JSONLOAD_BUDGET(YAML_MAX), &v, &jerr);
		free(k.buf);
		if (rc == -EMSGSIZE)
			return cli_fail(EXIT_INVALID,
			                "thread %s: the output would take over %zu MiB parsed: too "
			                "large for -o yaml (without -o, it is written as it comes)",
			                id, JSONLOAD_BUDGET(YAML_MAX) >> 20);
		if (rc != 0)
			return cli_fail(EXIT_INTERNAL, "thread %s: the output is not JSON (%s)", id,
			                rc == -ENOMEM ? "out of memory" : jerr.text);
		rc = cli_print_value(stdout, CLI_YAML, v);
		json_decref(v);
		return rc == 0 ? EXIT_OK : EXIT_INTERNAL;
	}
	rc = api_stream_result(c->api, id, 0, on_output, NULL, c->abort, &e);
	if (rc != 0)
		return cli_api_error(&e);
	return EXIT_OK;
}

/* What `result` says about a thread that has no output to give. */
static int
no_result(const struct model_thread *t)
{
	if (!model_thread_terminal(t->status))
		return cli_fail(EXIT_INVALID,
		                "thread %s is %s: it has no result yet (follow it with: scriptum "
		                "thread watch %s)",
		                t->thread_id, model_thread_status_word(t->status), t->thread_id);
	return cli_fail(EXIT_THREAD_FAILED, "thread %s %s%s%s", t->thread_id,
	                model_thread_status_word(t->status), t->error[0] ? ": " : "", t->error);
}

static int
cmd_run(struct cli *c, const struct cli_args *a)
{
	struct model_thread t, final;
	FILE *events = a->result ? stderr : stdout;
	int rc, status;

	if ((rc = create(c, a, &t)) != EXIT_OK)
		return rc;
	if (c->format == CLI_TABLE || c->format == CLI_WIDE)
		fprintf(events, "thread %s created (%s)\n", t.thread_id, t.script_name);
	status = cli_follow(c, t.thread_id, events, &final);
	if (status != EXIT_OK && status != EXIT_THREAD_FAILED) {
		model_thread_clear(&t);
		return status;
	}
	if (a->save != NULL && (rc = cli_save(c, t.thread_id, a->save)) != EXIT_OK)
		status = rc;
	else if (a->result && status == EXIT_OK && (rc = print_output(c, t.thread_id)) != EXIT_OK)
		status = rc;
	model_thread_clear(&final);
	model_thread_clear(&t);
	return status;
}

static int
cmd_watch(struct cli *c, const struct cli_args *a)
{
	struct model_thread final;
	int status = cli_follow(c, a->arg, stdout, &final);

	model_thread_clear(&final);
	return status;
}

static int
cmd_get(struct cli *c, const struct cli_args *a)
{
	struct model_thread t;
	struct http_error e;
	int rc;

	if (api_get_thread(c->api, a->arg, &t, &e) != 0)
		return cli_api_error(&e);
	rc = cli_print_thread_detail(c, &t);
	model_thread_clear(&t);
	return rc == 0 ? EXIT_OK : EXIT_INTERNAL;
}

/* ListThreads through a listing (client/listing.h): every id once, each
 * page printed as it comes, a server that pages for ever an error. */
static int
cmd_list(struct cli *c, const struct cli_args *a)
{
	struct api_list q = {0};
	struct listing *l;
	struct cli_rows *rows;
	int64_t size = 0;
	int rc, status = EXIT_OK;

	if (a->page_size != NULL &&
	    (rc = parse_count("--page-size", a->page_size, 1, 1000, &size)) != 0)
		return rc;
	q.page_size = (int)size;
	if (a->status != NULL) {
		q.status = model_thread_status_from_text(a->status);
		if (q.status == MODEL_THREAD_UNKNOWN || q.status == MODEL_THREAD_UNSPECIFIED)
			return cli_fail(
			    EXIT_INVALID,
			    "--status wants pending, running, paused, completed, failed "
			    "or cancelled, not '%s'",
			    a->status);
	}
	q.script_name = a->script;
	if (listing_new("ListThreads", 0, &l) != 0)
		return cli_fail(EXIT_INTERNAL, "out of memory");
	rows = cli_rows_new(c);
	do {
		struct model_thread_list page;
		struct http_error e;

		if (listing_threads(l, c->api, &q, &page, &e) != 0) {
			status = cli_api_error(&e);
			break;
		}
		if (page.n_unusable > 0)
			cli_warn("ListThreads: %zu thread%s left out: an id holding a NUL byte",
			         page.n_unusable, page.n_unusable == 1 ? "" : "s");
		rc = cli_rows_add(rows, page.threads, page.n_threads);
		model_thread_list_clear(&page);
		if (rc != 0)
			status = EXIT_INTERNAL;
	} while (status == EXIT_OK && a->all && !listing_done(l));
	if (status == EXIT_OK) {
		if (cli_rows_end(rows) != 0)
			status = EXIT_INTERNAL;
		else if (!listing_done(l))
			cli_warn("more threads exist: use --all or a larger --page-size");
	}
	cli_rows_free(rows);
	listing_free(l);
	return status;
}

static int
cmd_result(struct cli *c, const struct cli_args *a)
{
	struct model_thread t;
	struct http_error e;
	int rc;

	if (a->save != NULL)
		return cli_save(c, a->arg, a->save);
	if (api_get_thread(c->api, a->arg, &t, &e) != 0)
		return cli_api_error(&e);
	if (t.status != MODEL_THREAD_COMPLETED)
		rc = no_result(&t);
	else
		rc = print_output(c, a->arg);
	model_thread_clear(&t);
	return rc;
}

/* ---- steps ---- */

static int
step_order(const void *x, const void *y)
{
	const struct model_step *a = x, *b = y;

	return model_step_path_cmp(a->step_path, b->step_path);
}

static size_t
depth_of(const char *path)
{
	size_t d = 0;

	for (; *path != '\0'; path++)
		d += *path == '.';
	return d;
}

static void
print_steps_table(struct cli *c, const struct model_step *s, size_t n)
{
	static const char *const head[] = {"PATH",     "NAME",    "PRIMITIVE", "TOOL", "STATUS",
	                                   "DURATION", "STARTED", "FINISHED",  "ERROR"};
	bool wide = c->format == CLI_WIDE;
	struct cli_table *tab = cli_table_new(wide ? 9 : 6, head);

	for (size_t i = 0; i < n; i++) {
		char name[320], dur[32], started[32], finished[32];
		const char *row[9];
		size_t d = depth_of(s[i].step_path);

		/* nesting shows as indentation, two spaces a level */
		snprintf(name, sizeof(name), "%*s%s", (int)(d > 16 ? 32 : 2 * d), "", s[i].name);
		if (s[i].duration_ms > 0 || s[i].finished_at_ms > 0)
			cli_duration(dur, sizeof(dur), s[i].duration_ms);
		else
			snprintf(dur, sizeof(dur), "-");
		cli_time(started, sizeof(started), s[i].started_at_ms, true);
		cli_time(finished, sizeof(finished), s[i].finished_at_ms, true);
		row[0] = s[i].step_path;
		row[1] = name;
		row[2] = s[i].primitive[0] ? s[i].primitive : "-";
		row[3] = s[i].tool_name[0] ? s[i].tool_name : "-";
		row[4] = s[i].status == MODEL_STEP_UNKNOWN ? s[i].status_text
		                                           : model_step_status_word(s[i].status);
		row[5] = dur;
		row[6] = started;
		row[7] = finished;
		row[8] = s[i].error[0] ? s[i].error : "-";
		cli_table_add(tab, row);
	}
	cli_table_print(tab, stdout);
	cli_table_free(tab);
}

static void
print_payload(const char *label, const char *text, bool truncated, int64_t total)
{
	if (text[0] == '\0' && total == 0)
		return;
	printf("  %-10s %s", label, text);
	if (truncated)
		printf("  (truncated: %zu of %" PRId64 " bytes)", strlen(text), total);
	putchar('\n');
}

static void
print_detail_block(const struct model_step_detail *d)
{
	const struct model_step *s = &d->step;
	char a[64], b[32];

	printf("Step %s  %s\n", s->step_path, s->name);
	printf("  %-10s %s%s%s\n", "Primitive:", s->primitive[0] ? s->primitive : "-",
	       s->tool_name[0] ? ", tool " : "", s->tool_name);
	printf("  %-10s %s", "Status:",
	       s->status == MODEL_STEP_UNKNOWN ? s->status_text
	                                       : model_step_status_word(s->status));
	if (d->attempt > 1)
		printf(" (attempt %" PRId64 ")", d->attempt);
	putchar('\n');
	if (s->started_at_ms > 0) {
		cli_time(a, sizeof(a), s->started_at_ms, false);
		cli_duration(b, sizeof(b), s->duration_ms);
		printf("  %-10s %s, took %s\n", "Started:", a, b);
	}
	if (d->execution_id[0] != '\0')
		printf("  %-10s %s\n", "Execution:", d->execution_id);
	if (d->logs_url[0] != '\0')
		printf("  %-10s %s\n", "Logs:", d->logs_url);
	print_payload("Input:", d->input_json, d->input_truncated, d->input_total_bytes);
	print_payload("Output:", d->output_json, d->output_truncated, d->output_total_bytes);
	if (s->error[0] != '\0')
		printf("  %-10s %s\n", "Error:", s->error);
	if (d->has_pending) {
		printf("  %-10s %s\n", "Prompt:", d->pending.prompt);
		if (d->pending.n_options > 0) {
			printf("  %-10s ", "Options:");
			for (size_t i = 0; i < d->pending.n_options; i++)
				printf("%s%s", i ? ", " : "", d->pending.options[i]);
			putchar('\n');
		}
		if (d->pending.type[0] != '\0')
			printf("  %-10s %s\n", "Expects:", d->pending.type);
	}
}

/* GetThreadResult for one step: its detail, moved into *out. */
static int
step_detail(struct cli *c, const char *id, const char *path, struct model_step_detail *out)
{
	struct api_result_query q = {.step_path = path, .metadata_only = true};
	struct model_result r;
	struct http_error e;
	int rc = EXIT_NOT_FOUND;

	if (api_get_result(c->api, id, &q, &r, &e) != 0)
		return cli_api_error(&e);
	for (size_t i = 0; i < r.n_step_details; i++)
		if (strcmp(r.step_details[i].step.step_path, path) == 0) {
			*out = r.step_details[i];
			/* moved: the result must not free it */
			memset(&r.step_details[i], 0, sizeof(r.step_details[i]));
			rc = EXIT_OK;
			break;
		}
	model_result_clear(&r);
	if (rc != EXIT_OK)
		return cli_fail(rc, "thread %s has no step %s", id, path);
	return rc;
}

static int
cmd_steps(struct cli *c, const struct cli_args *a)
{
	struct api_result_query q = {.metadata_only = true, .step_path = a->step};
	struct model_result r;
	struct http_error e;
	struct model_step *steps;
	size_t n;
	json_t *arr;
	int status = EXIT_OK;

	if (api_get_result(c->api, a->arg, &q, &r, &e) != 0)
		return cli_api_error(&e);
	steps = r.steps;
	n = r.n_steps;
	if (a->step != NULL) {
		/* only the step asked for, whatever else the server sent */
		size_t k = 0;

		for (size_t i = 0; i < n; i++)
			if (strcmp(steps[i].step_path, a->step) == 0)
				k = i + 1;
		if (k == 0) {
			model_result_clear(&r);
			return cli_fail(EXIT_NOT_FOUND, "thread %s has no step %s", a->arg,
			                a->step);
		}
		steps = &r.steps[k - 1];
		n = 1;
	} else {
		qsort(steps, n, sizeof(*steps), step_order);
	}
	arr = json_array();
	for (size_t i = 0; i < n && status == EXIT_OK; i++) {
		if (!a->detail) {
			if (c->format == CLI_JSON || c->format == CLI_YAML)
				json_array_append_new(arr, model_step_json(&steps[i]));
			continue;
		}
		struct model_step_detail d;

		if ((status = step_detail(c, a->arg, steps[i].step_path, &d)) != EXIT_OK)
			break;
		if (c->format == CLI_JSON || c->format == CLI_YAML) {
			json_array_append_new(arr, model_step_detail_json(&d));
		} else {
			if (i > 0)
				putchar('\n');
			print_detail_block(&d);
		}
		model_step_detail_clear(&d);
	}
	if (status == EXIT_OK) {
		if (c->format == CLI_JSON || c->format == CLI_YAML)
			status =
			    cli_print_value(stdout, c->format, arr) == 0 ? EXIT_OK : EXIT_INTERNAL;
		else if (!a->detail)
			print_steps_table(c, steps, n);
	}
	json_decref(arr);
	model_result_clear(&r);
	return status;
}

static int
cmd_cancel(struct cli *c, const struct cli_args *a)
{
	struct model_thread t;
	struct http_error e;
	int rc;

	if (api_cancel_thread(c->api, a->arg, &t, &e) != 0)
		return cli_api_error(&e);
	rc = print_answer(c, &t);
	model_thread_clear(&t);
	return rc;
}

static int
cmd_resume(struct cli *c, const struct cli_args *a)
{
	struct model_thread t;
	struct http_error e;
	char *input = NULL;
	int rc;

	if (a->input != NULL && (rc = read_input(a->input, &input)) != 0)
		return rc;
	rc = api_resume_thread(c->api, a->arg, input, &t, &e);
	free(input);
	if (rc != 0)
		return cli_api_error(&e);
	rc = print_answer(c, &t);
	model_thread_clear(&t);
	return rc;
}

int
cli_health(struct cli *c)
{
	struct model_health h;
	struct http_error e;
	int rc = 0;

	if (api_health(c->api, &h, &e) != 0)
		return cli_api_error(&e);
	if (c->format == CLI_JSON || c->format == CLI_YAML) {
		json_t *v = model_health_json(&h);

		rc = cli_print_value(stdout, c->format, v);
		json_decref(v);
	} else {
		char up[32];

		cli_duration(up, sizeof(up), h.uptime_seconds * 1000);
		printf("status: %s\nversion: %s\nuptime: %s\n", h.status,
		       h.version[0] ? h.version : "-", up);
	}
	model_health_clear(&h);
	return rc == 0 ? EXIT_OK : EXIT_INTERNAL;
}

int
cli_thread(struct cli *c, const struct cli_args *a)
{
	static const struct {
		const char *name;
		int (*fn)(struct cli *c, const struct cli_args *a);
	} cmds[] = {
	    {"create", cmd_create}, {"run", cmd_run},       {"watch", cmd_watch},
	    {"get", cmd_get},       {"list", cmd_list},     {"result", cmd_result},
	    {"steps", cmd_steps},   {"cancel", cmd_cancel}, {"resume", cmd_resume},
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, a->command) == 0)
			return cmds[i].fn(c, a);
	return cli_fail(EXIT_INVALID, "unknown command 'thread %s'", a->command);
}
