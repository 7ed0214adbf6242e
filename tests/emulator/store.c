/*
 * Threads in memory. Each thread follows its script's plan in real time: a
 * clock thread wakes at the next due step, advances every thread that is due
 * and broadcasts, so watchers see each event as it happens. Threads are
 * never freed before shutdown, so a pointer to one stays valid, and fields
 * that never change after creation (id, script, input, and the output once
 * the thread is terminal) are read without the lock.
 *
 * ListThreads pages newest first. A page token names the creation sequence
 * number of the last thread returned, so threads created between pages land
 * before the first page and never shift later ones.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "wire.h"
#include "xalloc.h"

#define INLINE_CAP        65536 /* step payloads inline in StepDetail */
#define YIELDS_INLINE     100   /* yielded values inline in GetThreadResult */
#define PENDING_MS        30    /* how long a new thread stays pending */
#define DEFAULT_PAGE_SIZE 50
#define MAX_PAGE_SIZE     1000

struct step_run {
	uint8_t status;
	uint8_t attempt;
	int64_t started;
	int64_t finished;
	char *error;
	char *input;  /* an override given on resume, or NULL */
	char *answer; /* an ask step's answer */
};

struct event {
	uint8_t type;
	uint8_t status; /* the thread's status as of the event */
	int32_t cur;    /* the thread's current step as of the event */
	int32_t step;   /* step events: the plan index */
	int64_t at;
	struct step_run run; /* step events: the step as it was (error owned) */
	char *error;         /* the thread's error as it was, owned */
};

struct thread {
	char id[32];
	size_t seq; /* creation order, from 1 */
	const struct script *script;
	int version;
	int status;
	char *error;
	int cur; /* plan index of the current step, -1 for none */
	char *input;
	size_t input_len;
	json_t *metadata;
	char *timeout;
	char *callback_url;
	int load_env;
	int64_t created, started, finished;
	struct step_run *steps; /* script->nplan */
	int64_t due;            /* when the clock next acts, 0 = never */
	enum output_kind out_kind;
	uint64_t out_bytes;
	uint64_t seed;
	int nyields;
	struct event *ev;
	size_t nev, evcap;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed; /* broadcast on every event */
	pthread_cond_t tick;    /* wakes the clock */
	const struct catalog *cat;
	uint64_t unary_limit;
	int64_t started_ms;
	struct thread **v; /* by seq - 1 */
	size_t n, cap;
	struct thread **hash; /* open addressing by id */
	size_t hcap;
	uint64_t rng;
	pthread_t clock;
	int clock_running;
	int stop;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .changed = PTHREAD_COND_INITIALIZER,
        .tick = PTHREAD_COND_INITIALIZER};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
api_fail(struct api_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t
rng_next(void)
{
	/* xorshift64*; under the lock */
	st.rng ^= st.rng >> 12;
	st.rng ^= st.rng << 25;
	st.rng ^= st.rng >> 27;
	return st.rng * 2685821657736338717ULL;
}

static uint64_t
hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct thread *
find_locked(const char *id)
{
	size_t i;

	if (st.hcap == 0)
		return NULL;
	for (i = hash_id(id) & (st.hcap - 1); st.hash[i] != NULL; i = (i + 1) & (st.hcap - 1))
		if (strcmp(st.hash[i]->id, id) == 0)
			return st.hash[i];
	return NULL;
}

static void
hash_insert(struct thread *t)
{
	size_t i;

	if ((st.n + 1) * 2 > st.hcap) {
		struct thread **old = st.hash;
		size_t ocap = st.hcap;

		st.hcap = st.hcap ? st.hcap * 2 : 1024;
		st.hash = xcalloc(st.hcap, sizeof(*st.hash));
		for (size_t j = 0; j < ocap; j++) {
			if (old[j] == NULL)
				continue;
			for (i = hash_id(old[j]->id) & (st.hcap - 1); st.hash[i] != NULL;
			     i = (i + 1) & (st.hcap - 1))
				;
			st.hash[i] = old[j];
		}
		free(old);
	}
	for (i = hash_id(t->id) & (st.hcap - 1); st.hash[i] != NULL; i = (i + 1) & (st.hcap - 1))
		;
	st.hash[i] = t;
}

/* A new thread of script s in status pending, registered; under the lock. */
static struct thread *
thread_new(const struct script *s, int version, const char *input, size_t input_len)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	struct thread *t = xcalloc(1, sizeof(*t));

	do {
		uint64_t r = rng_next();

		memcpy(t->id, "thr_", 4);
		for (int i = 0; i < 12; i++, r /= 36)
			t->id[4 + i] = alnum[r % 36];
		t->id[16] = '\0';
	} while (find_locked(t->id) != NULL);
	t->script = s;
	t->version = version;
	t->status = TS_PENDING;
	t->cur = -1;
	t->input = xstrndup(input, input_len);
	t->input_len = input_len;
	t->steps = xcalloc(s->nplan, sizeof(*t->steps));
	for (size_t i = 0; i < s->nplan; i++)
		t->steps[i].status = SS_PENDING;
	t->seed = rng_next();
	t->out_kind = OUTPUT_NONE;
	t->created = now_ms();
	if (st.n > 0 && t->created < st.v[st.n - 1]->created)
		t->created = st.v[st.n - 1]->created;
	if (st.n == st.cap) {
		st.cap = st.cap ? st.cap * 2 : 1024;
		st.v = xreallocarray(st.v, st.cap, sizeof(*st.v));
	}
	hash_insert(t);
	st.v[st.n++] = t;
	t->seq = st.n;
	return t;
}

static void
thread_free(struct thread *t)
{
	for (size_t i = 0; i < t->script->nplan; i++) {
		free(t->steps[i].error);
		free(t->steps[i].input);
		free(t->steps[i].answer);
	}
	free(t->steps);
	free(t->error);
	free(t->input);
	json_decref(t->metadata);
	free(t->timeout);
	free(t->callback_url);
	for (size_t i = 0; i < t->nev; i++) {
		free(t->ev[i].run.error);
		free(t->ev[i].error);
	}
	free(t->ev);
	free(t);
}

static void
set_error(char **slot, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(*slot);
	*slot = xstrdup(buf);
}

static void
event_add(struct thread *t, int type, int step, int64_t at)
{
	struct event *ev;

	if (t->nev == t->evcap) {
		t->evcap = t->evcap ? t->evcap * 2 : 16;
		t->ev = xreallocarray(t->ev, t->evcap, sizeof(*t->ev));
	}
	ev = &t->ev[t->nev++];
	ev->type = (uint8_t)type;
	ev->status = (uint8_t)t->status;
	ev->cur = t->cur;
	ev->step = step;
	ev->at = at;
	memset(&ev->run, 0, sizeof(ev->run));
	if (type == EV_STEP_STARTED || type == EV_STEP_FINISHED) {
		ev->run = t->steps[step];
		ev->run.error = t->steps[step].error ? xstrdup(t->steps[step].error) : NULL;
		ev->run.input = ev->run.answer = NULL;
	}
	ev->error = t->error != NULL ? xstrdup(t->error) : NULL;
	pthread_cond_broadcast(&st.changed);
}

/* ---- the run: how a thread moves through its plan (under the lock) ---- */

static void step_begin(struct thread *t, size_t i, int64_t now);

/* Puts t in a terminal status, with its output and its unfinished steps. */
static void
thread_close(struct thread *t, int status, int64_t now)
{
	t->status = status;
	t->finished = now;
	t->due = 0;
	if (status == TS_COMPLETED) {
		t->out_kind = t->script->output;
		t->out_bytes = t->script->output == OUTPUT_ECHO        ? t->input_len
		               : t->script->output == OUTPUT_GENERATED ? t->script->output_bytes
		                                                       : 0;
	}
	/* the steps that will now never run */
	for (size_t i = 0; i < t->script->nplan; i++) {
		struct step_run *r = &t->steps[i];

		if (r->status == SS_PENDING)
			r->status = status == TS_CANCELLED ? SS_CANCELLED : SS_SKIPPED;
		else if (r->status == SS_RUNNING || r->status == SS_PAUSED) {
			r->status = status == TS_FAILED ? SS_FAILED : SS_CANCELLED;
			r->finished = now;
		}
	}
	if (status != TS_FAILED)
		t->cur = -1;
}

static void
thread_finish(struct thread *t, int status, int64_t now)
{
	thread_close(t, status, now);
	event_add(t, EV_STATUS, -1, now);
}

/* Step i finished well: close the containers it ends, move on. */
static void
step_complete(struct thread *t, size_t i, int64_t now)
{
	const struct plan_step *plan = t->script->plan;

	t->steps[i].status = SS_COMPLETED;
	t->steps[i].finished = now;
	event_add(t, EV_STEP_FINISHED, (int)i, now);
	for (size_t c = i; c-- > 0;) {
		if (plan[c].container && plan[c].last == i) {
			t->steps[c].status = SS_COMPLETED;
			t->steps[c].finished = now;
			event_add(t, EV_STEP_FINISHED, (int)c, now);
		}
	}
	if (i + 1 < t->script->nplan)
		step_begin(t, i + 1, now);
	else
		thread_finish(t, TS_COMPLETED, now);
}

static void
step_begin(struct thread *t, size_t i, int64_t now)
{
	const struct plan_step *ps = &t->script->plan[i];
	struct step_run *r = &t->steps[i];

	r->status = SS_RUNNING;
	r->attempt++;
	r->started = now;
	r->finished = 0;
	free(r->error); /* a new attempt */
	r->error = NULL;
	t->cur = (int)i;
	event_add(t, EV_STEP_STARTED, (int)i, now);
	if (ps->container) {
		step_begin(t, i + 1, now);
		return;
	}
	t->due = now + ps->def->duration_ms;
	if (t->due <= now)
		t->due = now + 1;
}

/* The running leaf step's time is up. */
static void
step_end(struct thread *t, int64_t now)
{
	size_t i = (size_t)t->cur;
	const struct step_def *d = t->script->plan[i].def;
	struct step_run *r = &t->steps[i];

	t->due = 0;
	if (d->fail != NULL && (d->fail_attempts == 0 || r->attempt <= d->fail_attempts)) {
		r->status = SS_FAILED;
		r->finished = now;
		set_error(&r->error, "%s", d->fail);
		event_add(t, EV_STEP_FINISHED, (int)i, now);
		set_error(&t->error, "step %s (%s) failed: %s", t->script->plan[i].path, d->name,
		          d->fail);
		if (d->fatal) {
			thread_finish(t, TS_FAILED, now);
		} else {
			t->status = TS_PAUSED;
			event_add(t, EV_STATUS, -1, now);
		}
		return;
	}
	if (strcmp(d->primitive, "ask") == 0) {
		r->status = SS_PAUSED;
		t->status = TS_PAUSED;
		event_add(t, EV_STATUS, -1, now);
		return;
	}
	for (int y = 0; y < d->yields; y++) {
		t->nyields++;
		event_add(t, EV_YIELD, t->nyields - 1, now);
	}
	step_complete(t, i, now);
}

static void
thread_advance(struct thread *t, int64_t now)
{
	if (t->status == TS_PENDING) {
		t->status = TS_RUNNING;
		t->started = now;
		event_add(t, EV_STATUS, -1, now);
		step_begin(t, 0, now);
	} else if (t->status == TS_RUNNING && t->cur >= 0) {
		step_end(t, now);
	} else {
		t->due = 0;
	}
}

static void *
clock_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&st.lock);
	while (!st.stop) {
		int64_t now = now_ms(), next = now + 200;
		struct timespec ts;

		/* live threads are the newest ones; seeded ones are never due */
		for (size_t i = st.n; i-- > 0;) {
			struct thread *t = st.v[i];

			while (t->due != 0 && t->due <= now)
				thread_advance(t, now);
			if (t->due != 0 && t->due < next)
				next = t->due;
		}
		ts.tv_sec = next / 1000;
		ts.tv_nsec = (long)(next % 1000) * 1000000;
		pthread_cond_timedwait(&st.tick, &st.lock, &ts);
	}
	pthread_mutex_unlock(&st.lock);
	return NULL;
}

/* A thread is done at once with the given terminal status (seeding). */
static void
thread_settle(struct thread *t, int status)
{
	const struct script *s = t->script;
	size_t stop_at = s->nplan, i;
	int64_t at;

	if (status == TS_FAILED) {
		stop_at = s->nplan - 1;
		for (i = 0; i < s->nplan; i++) {
			if (s->plan[i].def->fail != NULL && !s->plan[i].container) {
				stop_at = i;
				break;
			}
		}
		while (stop_at > 0 && s->plan[stop_at].container)
			stop_at--;
	} else if (status == TS_CANCELLED) {
		stop_at = s->nplan / 2;
	}
	t->started = t->created + 5;
	at = t->started;
	for (i = 0; i < s->nplan && i < stop_at; i++) {
		struct step_run *r = &t->steps[i];

		r->attempt = 1;
		r->status = SS_COMPLETED;
		r->started = at;
		if (!s->plan[i].container)
			at += s->plan[i].def->duration_ms;
		r->finished = at;
		t->nyields += s->plan[i].def->yields;
	}
	/* containers end with their last child */
	for (i = 0; i < stop_at && i < s->nplan; i++)
		if (s->plan[i].container)
			t->steps[i].finished =
			    t->steps[s->plan[i].last < stop_at ? s->plan[i].last : i].finished;
	if (stop_at < s->nplan) {
		struct step_run *r = &t->steps[stop_at];
		const struct step_def *d = s->plan[stop_at].def;

		r->attempt = 1;
		r->started = at;
		at += d->duration_ms / 2;
		r->finished = at;
		if (status == TS_FAILED) {
			r->status = SS_FAILED;
			set_error(&r->error, "%s",
			          d->fail ? d->fail : "the tool exited with status 1");
			set_error(&t->error, "step %s (%s) failed: %s", s->plan[stop_at].path,
			          d->name, r->error);
		} else {
			r->status = SS_RUNNING;
		}
		t->cur = (int)stop_at;
		/* running containers around it end with it */
		for (i = 0; i < stop_at; i++)
			if (s->plan[i].container && s->plan[i].last >= stop_at)
				t->steps[i].status = SS_RUNNING;
	}
	thread_close(t, status, at); /* a seeded thread has no history to replay */
}

/* ---- rendering (under the lock) ---- */

static void
render_times(json_t *o, int64_t started, int64_t finished)
{
	wire_set_i64(o, "startedAtMs", started);
	wire_set_i64(o, "finishedAtMs", finished);
}

static json_t *
render_thread_as(const struct thread *t, int status, int cur, const char *error)
{
	json_t *o = json_object();

	wire_set_str(o, "threadId", t->id);
	wire_set_str(o, "scriptName", t->script->name);
	wire_set_int(o, "version", t->version);
	wire_set_enum(o, "status", ENUM_THREAD_STATUS, status);
	if (status == TS_PAUSED || status == TS_FAILED)
		wire_set_str(o, "error", error);
	if (cur >= 0) {
		wire_set_str(o, "currentStepPath", t->script->plan[cur].path);
		wire_set_str(o, "currentStepName", t->script->plan[cur].def->name);
	}
	wire_set_int(o, "totalSteps", (long long)t->script->nplan);
	wire_set_str(o, "inputJson", t->input);
	if (t->metadata != NULL && json_object_size(t->metadata) > 0)
		json_object_set(o, "metadata", t->metadata);
	wire_set_i64(o, "createdAtMs", t->created);
	render_times(o, t->started, wire_thread_status_terminal(status) ? t->finished : 0);
	return o;
}

static json_t *
render_thread(const struct thread *t)
{
	return render_thread_as(t, t->status, t->cur, t->error);
}

/* Step i as run r says it is (now, or as of an event). */
static json_t *
render_step_as(const struct thread *t, size_t i, const struct step_run *r)
{
	const struct plan_step *ps = &t->script->plan[i];
	json_t *o = json_object();

	wire_set_str(o, "stepPath", ps->path);
	wire_set_str(o, "name", ps->def->name);
	wire_set_str(o, "primitive", ps->def->primitive);
	wire_set_str(o, "toolName", ps->def->tool);
	wire_set_enum(o, "status", ENUM_STEP_STATUS, r->status);
	wire_set_str(o, "error", r->error);
	render_times(o, r->started, r->finished);
	if (r->finished != 0)
		wire_set_i64(o, "durationMs", r->finished - r->started);
	return o;
}

static json_t *
render_step(const struct thread *t, size_t i)
{
	return render_step_as(t, i, &t->steps[i]);
}

/* ---- payloads ---- */

struct emu_payload {
	char *data; /* owned, or NULL for generated bytes */
	uint64_t size;
	uint64_t seed;
};

static struct emu_payload *
emu_payload_bytes(const char *data, size_t len)
{
	struct emu_payload *p = xcalloc(1, sizeof(*p));

	p->data = xmalloc(len + 1);
	memcpy(p->data, data, len);
	p->data[len] = '\0';
	p->size = len;
	return p;
}

static struct emu_payload *
emu_payload_generated(uint64_t size, uint64_t seed)
{
	struct emu_payload *p = xcalloc(1, sizeof(*p));

	p->size = size;
	p->seed = seed;
	return p;
}

void
emu_payload_free(struct emu_payload *p)
{
	if (p == NULL)
		return;
	free(p->data);
	free(p);
}

uint64_t
emu_payload_size(const struct emu_payload *p)
{
	return p->size;
}

size_t
emu_payload_read(const struct emu_payload *p, uint64_t off, char *buf, size_t len)
{
	if (off >= p->size)
		return 0;
	if (len > p->size - off)
		len = (size_t)(p->size - off);
	if (p->data != NULL)
		memcpy(buf, p->data + off, len);
	else
		gen_read(p->size, p->seed, off, buf, len);
	return len;
}

static struct emu_payload *
thread_output(const struct thread *t)
{
	if (t->out_kind == OUTPUT_ECHO)
		return emu_payload_bytes(t->input, t->input_len);
	return emu_payload_generated(t->out_kind == OUTPUT_GENERATED ? t->out_bytes : 0, t->seed);
}

/* A step's input or output as it stands now. */
static struct emu_payload *
step_payload(const struct thread *t, size_t i, int output)
{
	const struct plan_step *ps = &t->script->plan[i];
	const struct step_run *r = &t->steps[i];
	char buf[256];

	if (!output) {
		if (r->input != NULL)
			return emu_payload_bytes(r->input, strlen(r->input));
		if (r->status == SS_PENDING)
			return emu_payload_bytes("", 0);
		if (i == 0)
			return emu_payload_bytes(t->input, t->input_len);
		snprintf(buf, sizeof(buf), "{\"step\":\"%s\",\"attempt\":%d}", ps->path,
		         r->attempt);
		return emu_payload_bytes(buf, strlen(buf));
	}
	if (r->status != SS_COMPLETED)
		return emu_payload_bytes("", 0);
	if (r->answer != NULL)
		return emu_payload_bytes(r->answer, strlen(r->answer));
	if (ps->def->output_bytes > 0)
		return emu_payload_generated(ps->def->output_bytes, t->seed ^ (i + 1));
	snprintf(buf, sizeof(buf), "{\"step\":\"%s\",\"ok\":true}", ps->path);
	return emu_payload_bytes(buf, strlen(buf));
}

static json_t *
render_step_detail(const struct thread *t, size_t i, int with_payloads)
{
	const struct step_def *d = t->script->plan[i].def;
	const struct step_run *r = &t->steps[i];
	json_t *o = render_step(t, i);
	char buf[128];

	for (int output = 0; output < 2; output++) {
		struct emu_payload *p = step_payload(t, i, output);
		uint64_t size = emu_payload_size(p);

		if (with_payloads && size > 0) {
			size_t n = size > INLINE_CAP ? INLINE_CAP : (size_t)size;
			char *text = xmalloc(n + 1);

			emu_payload_read(p, 0, text, n);
			json_object_set_new(o, output ? "outputJson" : "inputJson",
			                    wire_text(text, n));
			free(text);
		}
		wire_set_bool(o, output ? "outputTruncated" : "inputTruncated", size > INLINE_CAP);
		wire_set_i64(o, output ? "outputTotalBytes" : "inputTotalBytes", (int64_t)size);
		emu_payload_free(p);
	}
	if (r->attempt > 0) {
		snprintf(buf, sizeof(buf), "exec_%s_%s_%d", t->id + 4, t->script->plan[i].path,
		         r->attempt);
		wire_set_str(o, "executionId", buf);
		snprintf(buf, sizeof(buf), "https://logs.scriptum.invalid/%s/%s", t->id,
		         t->script->plan[i].path);
		wire_set_str(o, "logsUrl", buf);
	}
	wire_set_int(o, "attempt", r->attempt);
	if (r->status == SS_PAUSED && strcmp(d->primitive, "ask") == 0) {
		json_t *pi = json_object(), *opts = json_array();

		wire_set_str(pi, "prompt", d->prompt);
		for (size_t k = 0; k < d->noptions; k++)
			json_array_append_new(opts, json_string(d->options[k]));
		if (d->noptions > 0)
			json_object_set_new(pi, "options", opts);
		else
			json_decref(opts);
		wire_set_str(pi, "type", d->type);
		json_object_set_new(o, "pendingInput", pi);
	}
	return o;
}

/* ---- lifecycle ---- */

void
store_init(const struct catalog *cat, uint64_t unary_limit)
{
	st.cat = cat;
	st.unary_limit = unary_limit;
	st.rng = (uint64_t)now_ms() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid();
	if (st.rng == 0)
		st.rng = 1;
}

static const char *
input_or(const char *input, const char *dflt)
{
	return input != NULL ? input : dflt;
}

void
store_start(int with_threads)
{
	int64_t now = now_ms();

	pthread_mutex_lock(&st.lock);
	st.started_ms = now;
	for (size_t i = 0; with_threads && i < st.cat->nseeds; i++) {
		const struct seed_def *sd = &st.cat->seeds[i];
		const struct script *s = catalog_find(st.cat, sd->script);

		for (int k = 0; k < sd->count; k++) {
			char input[128];
			const char *in;
			struct thread *t;

			snprintf(input, sizeof(input), "{\"seeded\":true,\"n\":%d}", k);
			in = input_or(sd->input, input);
			t = thread_new(s, s->active_version, in, strlen(in));
			t->created -=
			    (int64_t)(st.cat->nseeds - i) * 60000 + (sd->count - k) * 1000;
			thread_settle(t, wire_parse_thread_status(sd->status));
			if (t->out_kind != OUTPUT_NONE && sd->has_output_bytes) {
				t->out_kind = OUTPUT_GENERATED;
				t->out_bytes = sd->output_bytes;
			}
		}
	}
	for (size_t i = 0; with_threads && i < st.cat->nstarts; i++) {
		const struct seed_def *sd = &st.cat->starts[i];
		const struct script *s = catalog_find(st.cat, sd->script);

		for (int k = 0; k < sd->count; k++) {
			const char *in = input_or(sd->input, "{}");
			struct thread *t = thread_new(s, s->active_version, in, strlen(in));

			t->due = now + PENDING_MS;
		}
	}
	if (pthread_create(&st.clock, NULL, clock_main, NULL) == 0)
		st.clock_running = 1;
	pthread_mutex_unlock(&st.lock);
}

void
store_shutdown_begin(void)
{
	pthread_mutex_lock(&st.lock);
	st.stop = 1;
	pthread_cond_broadcast(&st.tick);
	pthread_cond_broadcast(&st.changed);
	pthread_mutex_unlock(&st.lock);
	if (st.clock_running)
		pthread_join(st.clock, NULL);
	st.clock_running = 0;
}

void
store_shutdown(void)
{
	store_shutdown_begin();
	for (size_t i = 0; i < st.n; i++)
		thread_free(st.v[i]);
	free(st.v);
	free(st.hash);
	st.v = NULL;
	st.hash = NULL;
	st.n = st.cap = st.hcap = 0;
}

int
store_stopping(void)
{
	int stop;

	pthread_mutex_lock(&st.lock);
	stop = st.stop;
	pthread_mutex_unlock(&st.lock);
	return stop;
}

/* ---- request fields: camelCase or snake_case, as proto3 JSON parsers do ---- */

static json_t *
req_get(const json_t *req, const char *camel, const char *snake)
{
	json_t *v = json_object_get(req, camel);

	return v != NULL ? v : json_object_get(req, snake);
}

static int
req_int(const json_t *v, long long *out)
{
	char *end;

	if (v == NULL || json_is_null(v)) {
		*out = 0;
		return 0;
	}
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		errno = 0;
		*out = strtoll(json_string_value(v), &end, 10);
		if (errno == 0 && *end == '\0' && end != json_string_value(v))
			return 0;
	}
	return -1;
}

static int
valid_json(const char *text, size_t len, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &jerr);

	if (doc == NULL) {
		snprintf(why, whylen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
		return 0;
	}
	json_decref(doc);
	return 1;
}

/* ---- the calls ---- */

int
store_create(const json_t *req, json_t **out, struct api_err *e)
{
	const json_t *name = req_get(req, "scriptName", "script_name");
	const json_t *input = req_get(req, "inputJson", "input_json");
	const json_t *md = json_object_get(req, "metadata");
	const json_t *v;
	const struct script *s;
	struct thread *t;
	long long version;
	char why[256];
	const char *key;
	json_t *val;

	if (!json_is_object(req))
		return api_fail(e, 3, "the request body must be a JSON object");
	if (!json_is_string(name) || json_string_length(name) == 0)
		return api_fail(e, 3, "scriptName is required");
	if (req_int(json_object_get(req, "version"), &version) != 0 || version < 0)
		return api_fail(e, 3, "version must be a non-negative integer");
	if (input != NULL && !json_is_string(input) && !json_is_null(input))
		return api_fail(e, 3, "inputJson must be a string holding JSON");
	if (json_is_string(input) && json_string_length(input) > 0 &&
	    !valid_json(json_string_value(input), json_string_length(input), why, sizeof(why)))
		return api_fail(e, 3, "inputJson is not valid JSON: %s", why);
	if (md != NULL && !json_is_null(md)) {
		if (!json_is_object(md))
			return api_fail(e, 3, "metadata must be an object of strings");
		json_object_foreach((json_t *)md, key, val)
		{
			if (!json_is_string(val))
				return api_fail(e, 3, "metadata value '%s' must be a string", key);
		}
	}
	s = catalog_find(st.cat, json_string_value(name));
	if (s == NULL)
		return api_fail(e, 5, "script '%s' not found", json_string_value(name));
	if (version > s->nversions)
		return api_fail(e, 5, "script '%s' has no version %lld (it has 1 to %d)", s->name,
		                version, s->nversions);

	pthread_mutex_lock(&st.lock);
	t = thread_new(s, version ? (int)version : s->active_version,
	               json_is_string(input) ? json_string_value(input) : "",
	               json_is_string(input) ? json_string_length(input) : 0);
	if (md != NULL && json_is_object(md))
		t->metadata = json_deep_copy(md);
	v = json_object_get(req, "timeout");
	if (json_is_string(v))
		t->timeout = xstrdup(json_string_value(v));
	v = req_get(req, "callbackUrl", "callback_url");
	if (json_is_string(v))
		t->callback_url = xstrdup(json_string_value(v));
	t->load_env = json_is_true(req_get(req, "loadEnv", "load_env"));
	t->due = t->created + PENDING_MS;
	pthread_cond_broadcast(&st.tick);
	*out = render_thread(t);
	pthread_mutex_unlock(&st.lock);
	return 0;
}

static struct thread *
lookup(const char *id, struct api_err *e)
{
	struct thread *t = find_locked(id);

	if (t == NULL)
		api_fail(e, 5, "thread '%s' not found", id);
	return t;
}

int
store_get(const char *id, json_t **out, struct api_err *e)
{
	struct thread *t;

	pthread_mutex_lock(&st.lock);
	t = lookup(id, e);
	if (t != NULL)
		*out = render_thread(t);
	pthread_mutex_unlock(&st.lock);
	return t != NULL ? 0 : -1;
}

/* Page tokens: "p1." and the sequence number in hex, so that a token is
 * opaque to clients but checkable here. */
static void
token_make(size_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "p1.%zx", seq);
}

static int
token_parse(const char *tok, size_t limit, size_t *seq)
{
	char *end;
	unsigned long long v;

	if (strncmp(tok, "p1.", 3) != 0 || tok[3] == '\0')
		return -1;
	errno = 0;
	v = strtoull(tok + 3, &end, 16);
	if (errno != 0 || *end != '\0' || v == 0 || v > limit)
		return -1;
	*seq = (size_t)v;
	return 0;
}

static int
page_size(long requested, struct api_err *e)
{
	if (requested < 0)
		return api_fail(e, 3, "pageSize must not be negative");
	if (requested == 0)
		return DEFAULT_PAGE_SIZE;
	return requested > MAX_PAGE_SIZE ? MAX_PAGE_SIZE : (int)requested;
}

static int
list_match(const struct thread *t, int status, const char *script)
{
	return (status == TS_UNSPECIFIED || t->status == status) &&
	       (script == NULL || script[0] == '\0' || strcmp(t->script->name, script) == 0);
}

int
store_list(const struct list_query *q, json_t **out, struct api_err *e)
{
	int status = TS_UNSPECIFIED, size = page_size(q->page_size, e), found = 0;
	size_t start, last = 0;
	json_t *list, *body;
	char tok[32];

	if (size < 0)
		return -1;
	if (q->status_filter != NULL && q->status_filter[0] != '\0') {
		status = wire_parse_thread_status(q->status_filter);
		if (status == TS_UNSPECIFIED)
			return api_fail(e, 3, "unknown statusFilter '%s'", q->status_filter);
	}
	pthread_mutex_lock(&st.lock);
	start = st.n;
	if (q->page_token != NULL && q->page_token[0] != '\0') {
		if (token_parse(q->page_token, st.n, &start) != 0) {
			pthread_mutex_unlock(&st.lock);
			return api_fail(e, 3, "invalid pageToken '%.64s'", q->page_token);
		}
		start--; /* the token names the last thread already returned */
	}
	list = json_array();
	body = json_object();
	for (size_t i = start; i-- > 0;) {
		const struct thread *t = st.v[i];

		if (!list_match(t, status, q->script_filter))
			continue;
		if (found == size) {
			/* another thread matches: there is a next page */
			token_make(last, tok, sizeof(tok));
			wire_set_str(body, "nextPageToken", tok);
			break;
		}
		json_array_append_new(list, render_thread(t));
		found++;
		last = t->seq;
	}
	/* duplicateIds: the page's first thread again at its end, and the
	 * previous page's last one (the token's) ahead of it; a page grows by
	 * two at most, and every page still moves on */
	if (q->duplicate_ids && found > 0) {
		json_array_append_new(list, json_deep_copy(json_array_get(list, 0)));
		if (start < st.n && q->page_token != NULL && q->page_token[0] != '\0')
			json_array_insert_new(list, 0, render_thread(st.v[start]));
	}
	pthread_mutex_unlock(&st.lock);
	if (json_object_get(body, "nextPageToken") == NULL)
		wire_set_str(body, "nextPageToken", ""); /* the last page */
	json_object_set_new(body, "threads", list);
	*out = body;
	return 0;
}

int
store_cancel(const char *id, json_t **out, struct api_err *e)
{
	struct thread *t;
	int rc = 0;

	pthread_mutex_lock(&st.lock);
	t = lookup(id, e);
	if (t == NULL) {
		rc = -1;
	} else if (wire_thread_status_terminal(t->status)) {
		rc = api_fail(e, 9, "thread '%s' is %s and cannot be cancelled", id,
		              wire_thread_status_word(t->status));
	} else {
		thread_finish(t, TS_CANCELLED, now_ms());
		*out = render_thread(t);
	}
	pthread_mutex_unlock(&st.lock);
	return rc;
}

/* Does the answer fit the ask step's pending input? */
static int
answer_fits(const struct step_def *d, const char *text, size_t len, struct api_err *e)
{
	json_error_t jerr;
	json_t *doc = json_loadb(text, len, JSON_DECODE_ANY, &jerr), *value;
	const char *type = d->type != NULL ? d->type : "string";
	int ok;

	if (doc == NULL)
		return api_fail(e, 3, "stepInputOverrideJson is not valid JSON: %s", jerr.text);
	value = json_is_object(doc) && json_object_get(doc, "value") ? json_object_get(doc, "value")
	                                                             : doc;
	if (strcmp(type, "string") == 0)
		ok = json_is_string(value);
	else if (strcmp(type, "number") == 0)
		ok = json_is_number(value);
	else if (strcmp(type, "boolean") == 0)
		ok = json_is_boolean(value);
	else
		ok = json_is_object(doc);
	if (!ok) {
		json_decref(doc);
		return api_fail(e, 3, "the answer must be of type %s", type);
	}
	if (d->noptions > 0) {
		ok = 0;
		for (size_t i = 0; i < d->noptions && json_is_string(value); i++)
			ok |= strcmp(d->options[i], json_string_value(value)) == 0;
		if (!ok) {
			char opts[256] = "";

			for (size_t i = 0; i < d->noptions; i++)
				snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), "%s%s",
				         i ? ", " : "", d->options[i]);
			json_decref(doc);
			return api_fail(e, 3, "the answer must be one of: %s", opts);
		}
	}
	json_decref(doc);
	return 0;
}

int
store_resume(const char *id, const json_t *req, json_t **out, struct api_err *e)
{
	const json_t *ov = req_get(req, "stepInputOverrideJson", "step_input_override_json");
	const char *text = json_is_string(ov) ? json_string_value(ov) : "";
	size_t len = json_is_string(ov) ? json_string_length(ov) : 0;
	struct thread *t;
	struct step_run *r;
	int64_t now = now_ms();
	int rc = -1;

	if (!json_is_object(req))
		return api_fail(e, 3, "the request body must be a JSON object");
	if (ov != NULL && !json_is_string(ov) && !json_is_null(ov))
		return api_fail(e, 3, "stepInputOverrideJson must be a string holding JSON");
	pthread_mutex_lock(&st.lock);
	t = lookup(id, e);
	if (t == NULL)
		goto out;
	if (t->status != TS_PAUSED) {
		api_fail(e, 9, "thread '%s' is %s, not paused", id,
		         wire_thread_status_word(t->status));
		goto out;
	}
	r = &t->steps[t->cur];
	if (r->status == SS_PAUSED) {
		/* an ask step: the answer must fit its pending input */
		if (len == 0) {
			api_fail(e, 3, "step %s is waiting for an answer in stepInputOverrideJson",
			         t->script->plan[t->cur].path);
			goto out;
		}
		if (answer_fits(t->script->plan[t->cur].def, text, len, e) != 0)
			goto out;
		r->answer = xstrndup(text, len);
		t->status = TS_RUNNING;
		event_add(t, EV_STATUS, -1, now);
		step_complete(t, (size_t)t->cur, now);
	} else {
		/* paused on an unhandled error: run the step again */
		char why[256];

		if (len > 0 && !valid_json(text, len, why, sizeof(why))) {
			api_fail(e, 3, "stepInputOverrideJson is not valid JSON: %s", why);
			goto out;
		}
		if (len > 0) {
			free(r->input);
			r->input = xstrndup(text, len);
		}
		free(t->error);
		t->error = NULL;
		t->status = TS_RUNNING;
		event_add(t, EV_STATUS, -1, now);
		step_begin(t, (size_t)t->cur, now);
	}
	pthread_cond_broadcast(&st.tick);
	*out = render_thread(t);
	rc = 0;
out:
	pthread_mutex_unlock(&st.lock);
	return rc;
}

static int
find_step(const struct thread *t, const char *path)
{
	for (size_t i = 0; i < t->script->nplan; i++)
		if (strcmp(t->script->plan[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* The thread id and, when path is not empty, the plan index of its step
 * path in *step (-1 for none); NULL with the error set when either is
 * unknown. Under the lock. */
static struct thread *
lookup_step(const char *id, const char *path, int *step, struct api_err *e)
{
	struct thread *t = lookup(id, e);

	*step = -1;
	if (t != NULL && path != NULL && path[0] != '\0') {
		*step = find_step(t, path);
		if (*step < 0) {
			api_fail(e, 5, "thread '%s' has no step '%s'", id, path);
			return NULL;
		}
	}
	return t;
}

int
store_result(const char *id, const struct result_query *q, json_t **out, struct api_err *e)
{
	struct thread *t;
	json_t *o, *steps, *details, *yields;
	int only;

	pthread_mutex_lock(&st.lock);
	t = lookup_step(id, q->step_path, &only, e);
	if (t == NULL) {
		pthread_mutex_unlock(&st.lock);
		return -1;
	}
	o = json_object();
	wire_set_str(o, "threadId", t->id);
	wire_set_enum(o, "status", ENUM_THREAD_STATUS, t->status);
	if (t->out_kind != OUTPUT_NONE) {
		struct emu_payload *p = thread_output(t);
		uint64_t size = emu_payload_size(p);
		size_t n = size > st.unary_limit ? (size_t)st.unary_limit : (size_t)size;

		if (!q->metadata_only && n > 0) {
			/* past the limit this is only a prefix, flagged truncated */
			unsigned char *raw = xmalloc(n);
			char *b64 = xmalloc(gen_b64_len(n) + 1);

			emu_payload_read(p, 0, (char *)raw, n);
			b64[gen_b64_encode(raw, n, b64)] = '\0';
			json_object_set_new(o, "outputData", json_string_nocheck(b64));
			free(raw);
			free(b64);
		}
		wire_set_i64(o, "outputTotalBytes", (int64_t)size);
		wire_set_bool(o, "outputTruncated", size > st.unary_limit);
		emu_payload_free(p);
	}
	if (!q->output_only) {
		steps = json_array();
		details = json_array();
		for (size_t i = 0; i < t->script->nplan; i++) {
			if (only >= 0 && (size_t)only != i)
				continue;
			json_array_append_new(steps, render_step(t, i));
			if (only >= 0)
				json_array_append_new(details, render_step_detail(t, i, 1));
		}
		json_object_set_new(o, "steps", steps);
		if (only >= 0)
			json_object_set_new(o, "stepDetails", details);
		else
			json_decref(details);
	}
	yields = json_array();
	for (int y = 0; y < t->nyields && y < YIELDS_INLINE; y++) {
		char buf[96];

		snprintf(buf, sizeof(buf), "{\"seq\":%d,\"value\":\"item-%d\"}", y, y);
		json_array_append_new(yields, json_string(buf));
	}
	if (json_array_size(yields) > 0)
		json_object_set_new(o, "yieldedValues", yields);
	else
		json_decref(yields);
	wire_set_i64(o, "totalYielded", t->nyields);
	wire_set_bool(o, "yieldsTruncated", t->nyields > YIELDS_INLINE);
	pthread_mutex_unlock(&st.lock);
	*out = o;
	return 0;
}

static json_t *
render_script(const struct script *s)
{
	json_t *o = json_object();

	wire_set_str(o, "name", s->name);
	wire_set_str(o, "description", s->description);
	wire_set_int(o, "activeVersion", s->active_version);
	wire_set_enum(o, "status", ENUM_SCRIPT_STATUS, SCRIPT_ACTIVE);
	wire_set_i64(o, "createdAtMs", s->created_ms);
	wire_set_i64(o, "updatedAtMs", s->created_ms + (int64_t)s->nversions * 3600000);
	return o;
}

int
store_list_scripts(long requested, const char *token, int dups, json_t **out, struct api_err *e)
{
	int size = page_size(requested, e);
	size_t start = 0;
	json_t *list, *body;
	char tok[32];

	if (size < 0)
		return -1;
	if (token != NULL && token[0] != '\0') {
		if (token_parse(token, st.cat->nscripts, &start) != 0)
			return api_fail(e, 3, "invalid pageToken '%.64s'", token);
	}
	list = json_array();
	body = json_object();
	for (size_t i = start; i < st.cat->nscripts; i++) {
		if (json_array_size(list) == (size_t)size) {
			token_make(i, tok, sizeof(tok));
			wire_set_str(body, "nextPageToken", tok);
			break;
		}
		json_array_append_new(list, render_script(&st.cat->scripts[i]));
	}
	/* duplicateIds, as in store_list */
	if (dups && json_array_size(list) > 0) {
		json_array_append_new(list, json_deep_copy(json_array_get(list, 0)));
		if (start > 0)
			json_array_insert_new(list, 0, render_script(&st.cat->scripts[start - 1]));
	}
	if (json_object_get(body, "nextPageToken") == NULL)
		wire_set_str(body, "nextPageToken", ""); /* the last page */
	json_object_set_new(body, "scripts", list);
	*out = body;
	return 0;
}

int
store_get_script(const char *name, json_t **out, struct api_err *e)
{
	const struct script *s = catalog_find(st.cat, name);

	if (s == NULL)
		return api_fail(e, 5, "script '%s' not found", name);
	*out = render_script(s);
	return 0;
}

int
store_list_versions(const char *name, json_t **out, struct api_err *e)
{
	const struct script *s = catalog_find(st.cat, name);
	json_t *list;

	if (s == NULL)
		return api_fail(e, 5, "script '%s' not found", name);
	list = json_array();
	for (int v = s->nversions; v >= 1; v--) {
		json_t *o = json_object();

		wire_set_int(o, "version", v);
		wire_set_enum(o, "status", ENUM_VERSION_STATUS,
		              v == s->active_version ? VERSION_ACTIVE : VERSION_SUPERSEDED);
		wire_set_i64(o, "createdAtMs", s->created_ms + (int64_t)v * 3600000);
		json_array_append_new(list, o);
	}
	*out = json_pack("{s:o}", "versions", list);
	return 0;
}

int
store_health(json_t **out)
{
	json_t *o = json_object();

	wire_set_str(o, "status", "SERVING");
	wire_set_str(o, "version", "scriptum-emulator 0.1.0");
	wire_set_i64(o, "uptimeSeconds", (now_ms() - st.started_ms) / 1000);
	*out = o;
	return 0;
}

int
store_seed(const json_t *req, json_t **out, struct api_err *e)
{
	const json_t *name = json_object_get(req, "script");
	const json_t *ob = req_get(req, "outputBytes", "output_bytes");
	const json_t *in = json_object_get(req, "input");
	const struct script *s;
	long long count, obytes = 0;
	int status = TS_COMPLETED;
	json_t *ids;

	if (!json_is_object(req))
		return api_fail(e, 3, "the request body must be a JSON object");
	if (!json_is_string(name))
		return api_fail(e, 3, "script is required");
	s = catalog_find(st.cat, json_string_value(name));
	if (s == NULL)
		return api_fail(e, 5, "script '%s' not found", json_string_value(name));
	if (req_int(json_object_get(req, "count"), &count) != 0 || count < 0 || count > 1000000)
		return api_fail(e, 3, "count must be between 0 and 1000000");
	if (json_object_get(req, "count") == NULL)
		count = 1;
	if (json_is_string(json_object_get(req, "status"))) {
		status =
		    wire_parse_thread_status(json_string_value(json_object_get(req, "status")));
		if (!wire_thread_status_terminal(status))
			return api_fail(e, 3, "status must be completed, failed or cancelled");
	}
	if (ob != NULL && (req_int(ob, &obytes) != 0 || obytes < 0))
		return api_fail(e, 3, "outputBytes must be a non-negative integer");
	if (in != NULL &&
	    (!json_is_string(in) ||
	     !valid_json(json_string_value(in), json_string_length(in), e->msg, sizeof(e->msg))))
		return api_fail(e, 3, "input must be a string holding JSON");

	ids = json_array();
	pthread_mutex_lock(&st.lock);
	for (long long k = 0; k < count; k++) {
		char input[128];
		struct thread *t;

		snprintf(input, sizeof(input), "{\"seeded\":true,\"n\":%lld}", k);
		if (in != NULL)
			t = thread_new(s, s->active_version, json_string_value(in),
			               json_string_length(in));
		else
			t = thread_new(s, s->active_version, input, strlen(input));
		thread_settle(t, status);
		if (t->out_kind != OUTPUT_NONE && ob != NULL) {
			t->out_kind = OUTPUT_GENERATED;
			t->out_bytes = (uint64_t)obytes;
		}
		json_array_append_new(ids, json_string(t->id));
	}
	pthread_mutex_unlock(&st.lock);
	*out = json_pack("{s:o}", "threadIds", ids);
	return 0;
}

int
store_output(const char *id, struct emu_payload **out, json_t **meta, struct api_err *e)
{
	struct thread *t;
	int rc = 0;

	pthread_mutex_lock(&st.lock);
	t = lookup(id, e);
	if (t == NULL) {
		rc = -1;
	} else if (!wire_thread_status_terminal(t->status)) {
		rc = api_fail(e, 9, "thread '%s' is %s; its output exists once it is finished", id,
		              wire_thread_status_word(t->status));
	} else {
		*out = thread_output(t);
		*meta = json_object();
		wire_set_str(*meta, "threadId", t->id);
		wire_set_enum(*meta, "status", ENUM_THREAD_STATUS, t->status);
		wire_set_i64(*meta, "outputTotalBytes", (int64_t)emu_payload_size(*out));
	}
	pthread_mutex_unlock(&st.lock);
	return rc;
}

struct step_stream {
	size_t n;
	json_t **meta;
	char (*path)[64];
	struct emu_payload **parts; /* 2 per step: input, output */
};

int
store_step_stream(const char *id, const char *path, struct step_stream **out, struct api_err *e)
{
	struct step_stream *s;
	struct thread *t;
	int only = -1;

	pthread_mutex_lock(&st.lock);
	t = lookup_step(id, path, &only, e);
	if (t == NULL) {
		pthread_mutex_unlock(&st.lock);
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->n = only >= 0 ? 1 : t->script->nplan;
	s->meta = xcalloc(s->n, sizeof(*s->meta));
	s->path = xcalloc(s->n, sizeof(*s->path));
	s->parts = xcalloc(s->n * 2, sizeof(*s->parts));
	for (size_t k = 0; k < s->n; k++) {
		size_t i = only >= 0 ? (size_t)only : k;

		s->meta[k] = render_step_detail(t, i, 0);
		memcpy(s->path[k], t->script->plan[i].path, sizeof(s->path[k]));
		s->parts[2 * k] = step_payload(t, i, 0);
		s->parts[2 * k + 1] = step_payload(t, i, 1);
	}
	pthread_mutex_unlock(&st.lock);
	*out = s;
	return 0;
}

size_t
step_stream_count(const struct step_stream *s)
{
	return s->n;
}

json_t *
step_stream_meta(const struct step_stream *s, size_t i)
{
	return json_incref(s->meta[i]);
}

const char *
step_stream_path(const struct step_stream *s, size_t i)
{
	return s->path[i];
}

const struct emu_payload *
step_stream_part(const struct step_stream *s, size_t i, int output)
{
	return s->parts[2 * i + (output ? 1 : 0)];
}

void
step_stream_free(struct step_stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		json_decref(s->meta[i]);
		emu_payload_free(s->parts[2 * i]);
		emu_payload_free(s->parts[2 * i + 1]);
	}
	free(s->meta);
	free(s->path);
	free(s->parts);
	free(s);
}

struct emu_watch {
	struct thread *t;
	int step;         /* WatchStep: the plan index; -1 for WatchThread */
	size_t next;      /* the next event to send */
	json_t *snapshot; /* taken with the cursor, sent first; NULL once sent */
	int over;
	int over_after_snapshot;
};

static int
step_settled(int status)
{
	return status == SS_COMPLETED || status == SS_SKIPPED || status == SS_CANCELLED;
}

static json_t *
render_event(const struct emu_watch *w, int type, const struct event *ev, int64_t at)
{
	const struct thread *t = w->t;
	json_t *o = json_object();

	wire_set_enum(o, "type", ENUM_EVENT_TYPE, type);
	wire_set_i64(o, "atMs", at);
	if (w->step >= 0) {
		json_object_set_new(o, "step",
		                    ev != NULL ? render_step_as(t, (size_t)w->step, &ev->run)
		                               : render_step(t, (size_t)w->step));
		return o;
	}
	json_object_set_new(o, "thread",
	                    ev != NULL ? render_thread_as(t, ev->status, ev->cur, ev->error)
	                               : render_thread(t));
	if (ev != NULL && (type == EV_STEP_STARTED || type == EV_STEP_FINISHED))
		json_object_set_new(o, "step", render_step_as(t, (size_t)ev->step, &ev->run));
	if (ev != NULL && type == EV_YIELD) {
		char buf[96];

		snprintf(buf, sizeof(buf), "{\"seq\":%d,\"value\":\"item-%d\"}", ev->step,
		         ev->step);
		wire_set_str(o, "yieldedJson", buf);
	}
	return o;
}

int
store_watch(const char *id, const char *path, struct emu_watch **out, struct api_err *e)
{
	struct emu_watch *w;
	struct thread *t;
	int step = -1;

	if (path != NULL && path[0] == '\0')
		return api_fail(e, 5, "thread '%s' has no step ''", id);
	pthread_mutex_lock(&st.lock);
	t = lookup_step(id, path, &step, e);
	if (t == NULL) {
		pthread_mutex_unlock(&st.lock);
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	w->t = t;
	w->step = step;
	w->next = t->nev;
	/* the snapshot and the cursor are taken together, so that no event is
	 * both in the snapshot and after it */
	w->snapshot = render_event(w, EV_SNAPSHOT, NULL, now_ms());
	if (wire_thread_status_terminal(t->status) ||
	    (w->step >= 0 && step_settled(t->steps[w->step].status)))
		w->over_after_snapshot = 1;
	pthread_mutex_unlock(&st.lock);
	*out = w;
	return 0;
}

int
emu_watch_next(struct emu_watch *w, json_t **msg, int wait_ms)
{
	struct thread *t = w->t;
	struct timespec ts;
	int rc = 0;

	pthread_mutex_lock(&st.lock);
	if (w->over || st.stop) {
		rc = -1;
		goto out;
	}
	if (w->snapshot != NULL) {
		*msg = w->snapshot;
		w->snapshot = NULL;
		w->over = w->over_after_snapshot;
		rc = 1;
		goto out;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	for (;;) {
		while (w->next < t->nev) {
			const struct event *ev = &t->ev[w->next++];

			if (w->step >= 0 && ev->step != w->step)
				continue;
			if (w->step >= 0 && ev->type != EV_STEP_STARTED &&
			    ev->type != EV_STEP_FINISHED)
				continue;
			*msg = render_event(w, ev->type, ev, ev->at);
			if ((ev->type == EV_STATUS && wire_thread_status_terminal(ev->status)) ||
			    (w->step >= 0 && ev->type == EV_STEP_FINISHED &&
			     step_settled(t->steps[w->step].status)))
				w->over = 1;
			rc = 1;
			goto out;
		}
		if (w->step >= 0 && wire_thread_status_terminal(t->status)) {
			w->over = 1;
			rc = -1;
			goto out;
		}
		if (st.stop || pthread_cond_timedwait(&st.changed, &st.lock, &ts) == ETIMEDOUT)
			break;
	}
	rc = st.stop ? -1 : 0;
out:
	pthread_mutex_unlock(&st.lock);
	return rc;
}

void
emu_watch_free(struct emu_watch *w)
{
	if (w == NULL)
		return;
	json_decref(w->snapshot);
	free(w);
}
