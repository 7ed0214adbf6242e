/*
 * jansson's parse with a budget of memory (see jsonload.h): the process's
 * jansson allocations go through a counter that is armed, per thread,
 * only while jsonload() parses.
 */
#include "jsonload.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct budget {
	bool armed;
	bool over;   /* an allocation was refused for the budget */
	size_t left; /* bytes the parse may still take */
	size_t used; /* bytes taken and not yet given back */
};

static _Thread_local struct budget budget;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *
counted_malloc(size_t n)
{
	void *p;
	size_t got;

	if (budget.armed && n > budget.left) {
		budget.over = true;
		return NULL;
	}
	if ((p = malloc(n)) == NULL || !budget.armed)
		return p;
	got = malloc_usable_size(p);
	if (got > budget.left) {
		free(p);
		budget.over = true;
		return NULL;
	}
	budget.left -= got;
	budget.used += got;
	return p;
}

/* What a parse frees (a grown buffer, a rehashed table) is given back;
 * what it did not take is none of its business. */
static void
counted_free(void *p)
{
	if (p != NULL && budget.armed) {
		size_t got = malloc_usable_size(p);

		if (got > budget.used)
			got = budget.used;
		budget.used -= got;
		budget.left += got;
	}
	free(p);
}

static void
install(void)
{
	json_set_alloc_funcs(counted_malloc, counted_free);
}

int
jsonload(const char *buf, size_t len, size_t flags, size_t budget_bytes, json_t **out,
         json_error_t *jerr)
{
	json_error_t local;
	bool over;

	pthread_once(&once, install);
	budget = (struct budget){.armed = true, .left = budget_bytes};
	*out = json_loadb(buf != NULL ? buf : "", len, flags, jerr != NULL ? jerr : &local);
	over = budget.over;
	budget = (struct budget){0};
	if (*out != NULL)
		return 0;
	if (over)
		return -EMSGSIZE;
	if (json_error_code(jerr != NULL ? jerr : &local) == json_error_out_of_memory)
		return -ENOMEM;
	return -EPROTO;
}
