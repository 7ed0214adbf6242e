/*
 * The current faults, shared by every connection thread under one lock.
 * An error rate applies per request; an error count makes a burst of
 * exactly N errors, after which requests succeed again.
 */
#include "faults.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

static struct {
	pthread_mutex_t lock;
	json_t *body; /* as set, for GET */
	int latency_ms;
	double error_rate;
	long error_count; /* errors left in a burst; -1 = no limit */
	int error_status;
	int error_text;
	int retry_after;
	int64_t cut_after, error_after, stall_after, trickle_after;
	int stall_ms, trickle_ms;
	int page_repeat, page_empty, page_dups;
	char *match;
	unsigned generation;
	uint64_t rng;
} fl = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .error_count = -1,
        .cut_after = -1,
        .error_after = -1,
        .stall_after = -1,
        .trickle_after = -1,
        .rng = 88172645463325252ULL};

static int
get_num(const json_t *body, const char *key, double min, double max, double dflt, double *out,
        char *err, size_t errlen)
{
	const json_t *v = json_object_get(body, key);

	*out = dflt;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_number(v) || json_number_value(v) < min || json_number_value(v) > max) {
		snprintf(err, errlen, "%s must be a number from %g to %g", key, min, max);
		return -1;
	}
	*out = json_number_value(v);
	return 0;
}

static int
get_bool(const json_t *body, const char *key, int *out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(body, key);

	*out = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(err, errlen, "%s must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

int
faults_set(const json_t *body, char *err, size_t errlen)
{
	double latency, rate, count, status, retry, cut, eafter, safter, sms, tafter, tms;
	const json_t *match = json_object_get(body, "match");
	const json_t *text = json_object_get(body, "errorBody");
	const char *known[] = {
	    "latencyMs",       "errorRate",       "errorStatus",       "errorCount",
	    "errorBody",       "retryAfter",      "cutAfterBytes",     "errorAfterBytes",
	    "stallAfterBytes", "stallMs",         "trickleAfterBytes", "trickleMs",
	    "match",           "pageTokenRepeat", "emptyPagesForever", "duplicateIds"};
	int repeat, empty, dups;
	const char *key;
	json_t *val;

	if (body != NULL && !json_is_object(body)) {
		snprintf(err, errlen, "the faults must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)body, key, val)
	{
		size_t i;

		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			snprintf(err, errlen, "unknown fault '%s'", key);
			return -1;
		}
	}
	if (get_num(body, "latencyMs", 0, 600000, 0, &latency, err, errlen) ||
	    get_num(body, "errorRate", 0, 1, 0, &rate, err, errlen) ||
	    get_num(body, "errorCount", 0, 1e9, -1, &count, err, errlen) ||
	    get_num(body, "errorStatus", 400, 599, 503, &status, err, errlen) ||
	    get_num(body, "retryAfter", 0, 3600, 0, &retry, err, errlen) ||
	    get_num(body, "cutAfterBytes", 0, 1e15, -1, &cut, err, errlen) ||
	    get_num(body, "errorAfterBytes", 0, 1e15, -1, &eafter, err, errlen) ||
	    get_num(body, "stallAfterBytes", 0, 1e15, -1, &safter, err, errlen) ||
	    get_num(body, "stallMs", 0, 600000, 0, &sms, err, errlen) ||
	    get_num(body, "trickleAfterBytes", 0, 1e15, -1, &tafter, err, errlen) ||
	    get_num(body, "trickleMs", 1, 60000, 100, &tms, err, errlen) ||
	    get_bool(body, "pageTokenRepeat", &repeat, err, errlen) ||
	    get_bool(body, "emptyPagesForever", &empty, err, errlen) ||
	    get_bool(body, "duplicateIds", &dups, err, errlen))
		return -1;
	if (match != NULL && !json_is_string(match)) {
		snprintf(err, errlen, "match must be a string");
		return -1;
	}
	if (text != NULL &&
	    !(json_is_string(text) && (strcmp(json_string_value(text), "json") == 0 ||
	                               strcmp(json_string_value(text), "text") == 0))) {
		snprintf(err, errlen, "errorBody must be \"json\" or \"text\"");
		return -1;
	}
	/* an error count alone means every request until the burst is over */
	if (count >= 0 && json_object_get(body, "errorRate") == NULL)
		rate = 1;

	pthread_mutex_lock(&fl.lock);
	json_decref(fl.body);
	fl.body = body != NULL ? json_deep_copy(body) : json_object();
	fl.latency_ms = (int)latency;
	fl.error_rate = rate;
	fl.error_count = (long)count;
	fl.error_status = (int)status;
	fl.error_text = text != NULL && strcmp(json_string_value(text), "text") == 0;
	fl.retry_after = (int)retry;
	fl.cut_after = (int64_t)cut;
	fl.error_after = (int64_t)eafter;
	fl.stall_after = (int64_t)safter;
	fl.stall_ms = (int)sms;
	fl.trickle_after = (int64_t)tafter;
	fl.trickle_ms = (int)tms;
	fl.page_repeat = repeat;
	fl.page_empty = empty;
	fl.page_dups = dups;
	free(fl.match);
	fl.match = match != NULL ? xstrdup(json_string_value(match)) : NULL;
	fl.generation++;
	pthread_mutex_unlock(&fl.lock);
	return 0;
}

json_t *
faults_get(void)
{
	json_t *o;

	pthread_mutex_lock(&fl.lock);
	o = fl.body != NULL ? json_deep_copy(fl.body) : json_object();
	pthread_mutex_unlock(&fl.lock);
	return o;
}

void
faults_none(struct faults *out)
{
	memset(out, 0, sizeof(*out));
	out->cut_after = out->error_after = out->stall_after = out->trickle_after = -1;
}

void
faults_for(const char *path, struct faults *out)
{
	faults_none(out);
	pthread_mutex_lock(&fl.lock);
	out->generation = fl.generation;
	if (fl.match != NULL && strstr(path, fl.match) == NULL) {
		pthread_mutex_unlock(&fl.lock);
		return;
	}
	out->latency_ms = fl.latency_ms;
	if (fl.error_rate > 0 && fl.error_count != 0) {
		double r;

		fl.rng ^= fl.rng << 13;
		fl.rng ^= fl.rng >> 7;
		fl.rng ^= fl.rng << 17;
		r = (double)(fl.rng >> 11) / 9007199254740992.0;
		if (r < fl.error_rate) {
			out->error_status = fl.error_status;
			if (fl.error_count > 0)
				fl.error_count--;
		}
	}
	out->error_text = fl.error_text;
	out->retry_after = fl.retry_after;
	out->cut_after = fl.cut_after;
	out->error_after = fl.error_after;
	out->stall_after = fl.stall_after;
	out->stall_ms = fl.stall_ms;
	out->trickle_after = fl.trickle_after;
	out->trickle_ms = fl.trickle_ms;
	out->page_repeat = fl.page_repeat;
	out->page_empty = fl.page_empty;
	out->page_dups = fl.page_dups;
	pthread_mutex_unlock(&fl.lock);
}

unsigned
faults_generation(void)
{
	unsigned g;

	pthread_mutex_lock(&fl.lock);
	g = fl.generation;
	pthread_mutex_unlock(&fl.lock);
	return g;
}

void
faults_reset(void)
{
	pthread_mutex_lock(&fl.lock);
	json_decref(fl.body);
	fl.body = NULL;
	free(fl.match);
	fl.match = NULL;
	pthread_mutex_unlock(&fl.lock);
}
