/*
 * Following a thread to its end (`thread watch`, `thread run`): WatchThread
 * first; if the stream drops, it is taken up again (the server's new
 * snapshot is shown only if something changed); if no stream can be had,
 * GetThread is polled. On a terminal the events are shown as lines under a
 * live progress line redrawn in place; piped, as one line per event, or as
 * NDJSON / YAML documents with -o json / -o yaml. A paused thread is
 * reported with what it waits for and the command that continues it.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define POLL_MS            1000
#define RECONNECT_MIN_MS   250
#define RECONNECT_MAX_MS   5000
#define STREAM_RETRY_POLLS 15 /* while polling, try the stream again this often */

struct follow {
	struct cli *c;
	const char *id;
	FILE *out;
	bool live;    /* a progress line is redrawn on a terminal */
	bool records; /* -o json / yaml: events as documents */

	pthread_mutex_t lock; /* the fields below, and the terminal */
	struct model_thread last;
	bool have_last;
	bool line_shown;     /* the live line is on screen */
	char paused_at[128]; /* the step a pause was reported for */
	bool done;
	pthread_cond_t wake;
};

static void
clear_live(struct follow *f)
{
	if (f->line_shown) {
		fputs("\r\033[K", f->out);
		f->line_shown = false;
	}
}

static void
draw_live(struct follow *f)
{
	const struct model_thread *t = &f->last;
	char elapsed[32] = "";

	if (!f->live || !f->have_last || model_thread_terminal(t->status))
		return;
	if (t->started_at_ms > 0)
		cli_duration(elapsed, sizeof(elapsed), clk_wall_ms() - t->started_at_ms);
	fputs("\r\033[K", f->out);
	fprintf(f->out, "%s", model_thread_status_word(t->status));
	if (t->current_step_path[0] != '\0') {
		fprintf(f->out, "  step %s", t->current_step_path);
		if (t->total_steps > 0)
			fprintf(f->out, " of %" PRId64, t->total_steps);
		if (t->current_step_name[0] != '\0')
			fprintf(f->out, ": %s", t->current_step_name);
	}
	if (elapsed[0] != '\0')
		fprintf(f->out, "  %s", elapsed);
	fflush(f->out);
	f->line_shown = true;
}

/* Redraws the elapsed time once a second while the stream is quiet. */
static void *
ticker(void *arg)
{
	struct follow *f = arg;

	pthread_mutex_lock(&f->lock);
	while (!f->done) {
		clk_cond_wait_ms(&f->wake, &f->lock, 1000);
		if (!f->done)
			draw_live(f);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* A permanent line: "HH:MM:SS  what  detail". */
static void event_line(struct follow *f, int64_t at_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
event_line(struct follow *f, int64_t at_ms, const char *fmt, ...)
{
	time_t t = (time_t)((at_ms > 0 ? at_ms : clk_wall_ms()) / 1000);
	struct tm tm;
	char when[16], text[4096];
	va_list ap;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* an event quotes the server (a step's name, an error), and this
	 * may be stderr */
	api_redact(f->c->api, text, sizeof(text));
	clear_live(f);
	fprintf(f->out, "%s  %s\n", when, text);
}

static void
where(char *buf, size_t len, const struct model_thread *t)
{
	size_t n = 0;

	buf[0] = '\0';
	if (t->current_step_path[0] == '\0')
		return;
	n += snprintf(buf + n, len - n, ", step %s", t->current_step_path);
	if (n < len && t->total_steps > 0)
		n += snprintf(buf + n, len - n, " of %" PRId64, t->total_steps);
	if (n < len && t->current_step_name[0] != '\0')
		snprintf(buf + n, len - n, ": %s", t->current_step_name);
}

/* The JSON literal that answers a pending input of this type with v. */
static void
answer_example(char *buf, size_t len, const struct model_pending *p)
{
	const char *type = p->type[0] != '\0' ? p->type : "string";

	if (p->n_options > 0) {
		json_t *s = json_string(p->options[0]);
		char *text = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;

		snprintf(buf, len, "{\"value\":%s}", text != NULL ? text : "\"\"");
		free(text);
		json_decref(s);
	} else if (strcmp(type, "number") == 0) {
		snprintf(buf, len, "{\"value\":0}");
	} else if (strcmp(type, "boolean") == 0) {
		snprintf(buf, len, "{\"value\":true}");
	} else if (strcmp(type, "string") == 0) {
		snprintf(buf, len, "{\"value\":\"...\"}");
	} else {
		snprintf(buf, len, "{...}");
	}
}

/* What a pause waits for, fetched before the event that shows it is
 * printed, so the report describes the pause as it was. */
struct pause {
	bool report;
	struct model_result r;
	const struct model_step_detail *d; /* in r, or NULL */
};

/* Whether t is a pause not reported yet. Takes the lock. */
static bool
pause_is_new(struct follow *f, const struct model_thread *t)
{
	bool fresh;

	if (t->status != MODEL_THREAD_PAUSED)
		return false;
	pthread_mutex_lock(&f->lock);
	fresh = strcmp(f->paused_at, t->current_step_path[0] ? t->current_step_path : "-") != 0;
	pthread_mutex_unlock(&f->lock);
	return fresh;
}

/* Fetches the paused step's detail. Without the lock: it makes a call. A
 * step that has already moved on (resumed meanwhile) is not reported. */
static void
pause_fetch(struct follow *f, const struct model_thread *t, struct pause *p)
{
	struct api_result_query q = {.step_path = t->current_step_path, .metadata_only = true};
	struct http_error e;

	memset(p, 0, sizeof(*p));
	p->report = true;
	if (t->current_step_path[0] == '\0' || api_get_result(f->c->api, f->id, &q, &p->r, &e) != 0)
		return;
	for (size_t i = 0; i < p->r.n_step_details; i++)
		if (strcmp(p->r.step_details[i].step.step_path, t->current_step_path) == 0)
			p->d = &p->r.step_details[i];
	if (p->d != NULL && !p->d->has_pending && p->d->step.error[0] == '\0' &&
	    p->d->step.status != MODEL_STEP_PAUSED && p->d->step.status != MODEL_STEP_FAILED)
		p->report = false;
}

/* Tells what a paused thread waits for. With the lock held. */
static void
pause_print(struct follow *f, const struct model_thread *t, const struct pause *p)
{
	FILE *to = f->records ? stderr : f->out;
	const struct model_step_detail *d = p->d;
	char step[160], answer[256];

	snprintf(f->paused_at, sizeof(f->paused_at), "%s",
	         t->current_step_path[0] ? t->current_step_path : "-");
	if (!p->report)
		return;
	snprintf(step, sizeof(step), "step %s%s%s%s", t->current_step_path,
	         t->current_step_name[0] ? " (" : "", t->current_step_name,
	         t->current_step_name[0] ? ")" : "");
	clear_live(f);
	if (d != NULL && d->has_pending) {
		fprintf(to, "thread %s is paused at %s: %s\n", f->id, step,
		        d->pending.prompt[0] ? d->pending.prompt : "it waits for input");
		if (d->pending.n_options > 0) {
			fprintf(to, "  options: ");
			for (size_t i = 0; i < d->pending.n_options; i++)
				fprintf(to, "%s%s", i ? ", " : "", d->pending.options[i]);
			fputc('\n', to);
		}
		if (d->pending.type[0] != '\0')
			fprintf(to, "  expects: %s\n", d->pending.type);
		answer_example(answer, sizeof(answer), &d->pending);
		fprintf(to, "  continue with: scriptum thread resume %s --input '%s'\n", f->id,
		        answer);
	} else {
		const char *err = d != NULL && d->step.error[0] ? d->step.error : t->error;

		fprintf(to, "thread %s is paused at %s%s%s\n", f->id, step, err[0] ? ": " : "",
		        err);
		fprintf(to, "  continue with: scriptum thread resume %s\n", f->id);
		fprintf(to, "  (to retry the step; add --input JSON to give it another input)\n");
	}
	fflush(to);
}

/* Whether a new state is worth a line: status or step changed. */
static bool
changed(const struct follow *f, const struct model_thread *t)
{
	return !f->have_last || f->last.status != t->status ||
	       strcmp(f->last.current_step_path, t->current_step_path) != 0;
}

/* Takes the thread's new state. With the lock held. */
static void
update(struct follow *f, const struct model_thread *t)
{
	struct model_thread copy;

	if (model_thread_copy(&copy, t) != 0)
		return;
	model_thread_clear(&f->last);
	f->last = copy;
	f->have_last = true;
	if (t->status != MODEL_THREAD_PAUSED)
		f->paused_at[0] = '\0';
}

static int
on_event(const struct model_event *ev, void *arg)
{
	struct follow *f = arg;
	char loc[256];
	const struct model_step *s = &ev->step;
	struct pause p = {0};
	bool paused = ev->has_thread && pause_is_new(f, &ev->thread);

	if (paused)
		pause_fetch(f, &ev->thread, &p);
	pthread_mutex_lock(&f->lock);
	if (ev->type == MODEL_EVENT_SNAPSHOT && ev->has_thread && !changed(f, &ev->thread)) {
		/* a reconnect's snapshot of what was already shown */
		pthread_mutex_unlock(&f->lock);
		model_result_clear(&p.r);
		return 0;
	}
	if (f->records) {
		json_t *v = model_event_json(ev);

		cli_print_record(f->out, f->c->format, v);
		json_decref(v);
	} else {
		switch (ev->type) {
		case MODEL_EVENT_SNAPSHOT:
			where(loc, sizeof(loc), &ev->thread);
			event_line(f, ev->at_ms, "snapshot  %s%s",
			           model_thread_status_word(ev->thread.status), loc);
			break;
		case MODEL_EVENT_STATUS:
			event_line(f, ev->at_ms, "status  %s",
			           model_thread_status_word(ev->thread.status));
			break;
		case MODEL_EVENT_STEP_STARTED:
			event_line(f, ev->at_ms, "step %s started  %s%s%s%s", s->step_path, s->name,
			           s->primitive[0] ? " (" : "", s->primitive,
			           s->primitive[0] ? ")" : "");
			break;
		case MODEL_EVENT_STEP_FINISHED: {
			char dur[32] = "";

			if (s->duration_ms > 0)
				cli_duration(dur, sizeof(dur), s->duration_ms);
			event_line(f, ev->at_ms, "step %s %s  %s%s%s%s%s", s->step_path,
			           model_step_status_word(s->status), s->name, dur[0] ? "  " : "",
			           dur, s->error[0] ? "  " : "", s->error);
			break;
		}
		case MODEL_EVENT_YIELD: {
			size_t n = strlen(ev->yielded_json);

			event_line(f, ev->at_ms, "yield  %.*s%s", n > 200 ? 200 : (int)n,
			           ev->yielded_json, n > 200 ? "..." : "");
			break;
		}
		default:
			break;
		}
	}
	if (ev->has_thread)
		update(f, &ev->thread);
	if (paused)
		pause_print(f, &ev->thread, &p);
	draw_live(f);
	fflush(f->out);
	pthread_mutex_unlock(&f->lock);
	model_result_clear(&p.r);
	return 0;
}

/* Sleeps ms, or less when a signal came. */
static void
nap(struct cli *c, int64_t ms)
{
	while (ms > 0 && !http_aborted(c->abort)) {
		int64_t step = ms > 100 ? 100 : ms;

		usleep((useconds_t)step * 1000);
		ms -= step;
	}
}

/* Failures after which another try may work. */
static bool
transient(int rc)
{
	return rc == -EIO || rc == -EAGAIN || rc == -ETIMEDOUT || rc == -EPIPE ||
	       rc == -ECONNRESET || rc == -EPROTO;
}

/* One GetThread, shown as a status event when something changed. */
static int
poll_once(struct follow *f, struct http_error *e)
{
	struct model_thread t;
	struct pause p = {0};
	bool paused;
	int rc = api_get_thread(f->c->api, f->id, &t, e);

	if (rc != 0)
		return rc;
	if ((paused = pause_is_new(f, &t)))
		pause_fetch(f, &t, &p);
	pthread_mutex_lock(&f->lock);
	if (changed(f, &t)) {
		struct model_event ev = {.type = f->have_last ? MODEL_EVENT_STATUS
		                                              : MODEL_EVENT_SNAPSHOT,
		                         .at_ms = clk_wall_ms(),
		                         .has_thread = true,
		                         .thread = t,
		                         .yielded_json = ""};
		char loc[256];

		if (f->records) {
			json_t *v = model_event_json(&ev);

			cli_print_record(f->out, f->c->format, v);
			json_decref(v);
		} else {
			where(loc, sizeof(loc), &t);
			event_line(f, ev.at_ms, "%s  %s%s", f->have_last ? "status" : "snapshot",
			           model_thread_status_word(t.status), loc);
		}
		update(f, &t);
		if (paused)
			pause_print(f, &t, &p);
		draw_live(f);
		fflush(f->out);
	}
	pthread_mutex_unlock(&f->lock);
	model_result_clear(&p.r);
	model_thread_clear(&t);
	return 0;
}

static bool
finished(struct follow *f)
{
	bool done;

	pthread_mutex_lock(&f->lock);
	done = f->have_last && model_thread_terminal(f->last.status);
	pthread_mutex_unlock(&f->lock);
	return done;
}

/* Follows by polling until terminal, trying the stream again now and then
 * (unless the server does not have one). Returns 0, 1 (go back to the
 * stream) or -errno with *e. */
static int
poll_until(struct follow *f, bool stream_exists, struct http_error *e)
{
	int64_t failing_since = 0;

	for (int n = 1;; n++) {
		int rc = poll_once(f, e);

		if (rc == 0) {
			failing_since = 0;
			if (finished(f))
				return 0;
		} else if (!transient(rc)) {
			return rc;
		} else if (failing_since == 0) {
			failing_since = clk_mono_ms();
		} else if (clk_mono_ms() - failing_since > f->c->call_timeout_ms) {
			return rc;
		}
		if (stream_exists && n % STREAM_RETRY_POLLS == 0)
			return 1;
		nap(f->c, POLL_MS);
		if (http_aborted(f->c->abort))
			return -EINTR;
	}
}

int
cli_follow(struct cli *c, const char *id, FILE *out, struct model_thread *final)
{
	struct follow f = {.c = c, .id = id, .out = out};
	struct http_error e = {0};
	int64_t backoff = RECONNECT_MIN_MS;
	pthread_t tick;
	bool ticking = false;
	int rc;

	memset(final, 0, sizeof(*final));
	f.records = c->format == CLI_JSON || c->format == CLI_YAML;
	f.live = !f.records && isatty(fileno(out));
	pthread_mutex_init(&f.lock, NULL);
	clk_cond_init(&f.wake);
	if (f.live && pthread_create(&tick, NULL, ticker, &f) == 0)
		ticking = true;
	for (;;) {
		rc = api_watch(c->api, id, NULL, on_event, &f, HTTP_NONE, c->abort, &e);
		if (rc == 0 || finished(&f)) {
			rc = 0;
			break;
		}
		if (rc == -EPIPE) {
			/* the stream dropped after it had started: take it up again */
			nap(c, backoff);
			backoff = backoff * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : backoff * 2;
			if (http_aborted(c->abort)) {
				rc = -EINTR;
				break;
			}
			continue;
		}
		if (rc != -EOPNOTSUPP && !transient(rc))
			break;
		/* no stream to be had: poll */
		rc = poll_until(&f, rc != -EOPNOTSUPP, &e);
		if (rc != 1)
			break;
	}
	pthread_mutex_lock(&f.lock);
	f.done = true;
	pthread_cond_broadcast(&f.wake);
	clear_live(&f);
	pthread_mutex_unlock(&f.lock);
	if (ticking)
		pthread_join(tick, NULL);
	*final = f.last;
	pthread_cond_destroy(&f.wake);
	pthread_mutex_destroy(&f.lock);
	if (rc != 0) {
		model_thread_clear(final);
		return cli_api_error(&e);
	}
	if (!f.records) {
		char dur[32] = "took no time";
		const struct model_thread *t = final;
		char text[4096];

		if (t->started_at_ms > 0 && t->finished_at_ms >= t->started_at_ms)
			cli_duration(dur, sizeof(dur), t->finished_at_ms - t->started_at_ms);
		if (t->status == MODEL_THREAD_COMPLETED)
			snprintf(text, sizeof(text), "thread %s completed in %s", id, dur);
		else
			snprintf(text, sizeof(text), "thread %s %s after %s%s%s", id,
			         model_thread_status_word(t->status), dur, t->error[0] ? ": " : "",
			         t->error);
		api_redact(c->api, text, sizeof(text));
		fprintf(out, "%s\n", text);
		fflush(out);
	}
	return final->status == MODEL_THREAD_COMPLETED ? EXIT_OK : EXIT_THREAD_FAILED;
}
