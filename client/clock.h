/*
 * Time, one way for the whole project: milliseconds of the monotonic clock
 * for ages, deadlines and waits (a step of the wall clock never stretches
 * or cuts one), milliseconds of the wall clock only for what is shown or
 * compared with the server's times, and condition variables that wait on
 * the monotonic clock.
 */
#ifndef SCRIPTUM_CLOCK_H
#define SCRIPTUM_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC: for ages and deadlines. */
static inline int64_t
clk_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch (CLOCK_REALTIME): for what is shown, never
 * for a deadline. */
static inline int64_t
clk_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms milliseconds of a clock as a timespec (for clock_nanosleep's
 * TIMER_ABSTIME and the like). */
static inline struct timespec
clk_timespec(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	return ts;
}

/* Initializes c to wait on CLOCK_MONOTONIC (every condition variable of
 * the project is made so). Returns what pthread_cond_init() returns. */
int clk_cond_init(pthread_cond_t *c);

/* Waits on c (made by clk_cond_init) with m held until it is signalled or
 * the monotonic clock reaches deadline_ms (clk_mono_ms() units). Returns
 * 0, or ETIMEDOUT once the deadline has passed. Spurious wake-ups happen,
 * as with any condition: callers loop on their predicate. */
int clk_cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t deadline_ms);

/* The same for at most ms milliseconds from now. */
int clk_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int64_t ms);

#endif
