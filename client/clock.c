/*
 * Condition variables on the monotonic clock (see clock.h).
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "clock.h"

int
clk_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	int rc;

	if ((rc = pthread_condattr_init(&ca)) != 0)
		return rc;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

int
clk_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms)
{
	struct timespec ts = clk_timespec(deadline_ms > 0 ? deadline_ms : 0);

	return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT ? ETIMEDOUT : 0;
}

int
clk_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms)
{
	return clk_cond_wait_until(c, m, clk_mono_ms() + (ms > 0 ? ms : 0));
}
