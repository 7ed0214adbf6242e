/*
 * The abort handle of calls and streams (see http.h): firing it wakes every
 * transfer registered with it (curl_multi_wakeup) and every back-off sleep
 * on it, so that a signal or a closed file ends a call at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "http_int.h"

struct http_abort *
http_abort_new(void)
{
	struct http_abort *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	atomic_init(&a->fired, false);
	pthread_mutex_init(&a->lock, NULL);
	clk_cond_init(&a->cond);
	return a;
}

void
http_abort(struct http_abort *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	atomic_store(&a->fired, true);
	for (struct abort_waiter *w = a->waiters; w != NULL; w = w->next)
		curl_multi_wakeup(w->multi);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

bool
http_aborted(struct http_abort *a)
{
	return a != NULL && atomic_load(&a->fired);
}

void
http_abort_free(struct http_abort *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

void
http_abort_register(struct http_abort *a, struct abort_waiter *w)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	w->next = a->waiters;
	a->waiters = w;
	pthread_mutex_unlock(&a->lock);
}

void
http_abort_unregister(struct http_abort *a, struct abort_waiter *w)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	for (struct abort_waiter **pp = &a->waiters; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&a->lock);
}

/* Sleeps ms, or less when a fires: then -EINTR. */
int
http_abort_sleep(struct http_abort *a, int64_t ms)
{
	int64_t until = clk_mono_ms() + ms;

	if (a == NULL) {
		struct timespec ts = clk_timespec(until);

		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
		return 0;
	}
	pthread_mutex_lock(&a->lock);
	while (!atomic_load(&a->fired) && clk_mono_ms() < until)
		clk_cond_wait_until(&a->cond, &a->lock, until);
	pthread_mutex_unlock(&a->lock);
	return atomic_load(&a->fired) ? -EINTR : 0;
}
