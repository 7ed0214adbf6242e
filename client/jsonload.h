/*
 * Parsing JSON with jansson under a memory budget. A server's answer is
 * capped in bytes, but what jansson builds from those bytes is not: one
 * byte of `[0,0,...]` costs about 12 bytes parsed, one of `[{},{},...]`
 * about 55. jsonload() stops a parse whose parsed form would hold more
 * than its budget, so a hostile answer costs at most the cap plus the
 * budget.
 *
 *	json_t *v;
 *	int rc = jsonload(buf, len, JSON_DECODE_ANY, JSONLOAD_BUDGET(cap), &v, &jerr);
 *	// 0: v is a new reference; -EMSGSIZE: over the budget; -EPROTO: not
 *	// JSON (jerr says why); -ENOMEM
 *
 * The budget counts the bytes jansson holds while it parses (as
 * malloc_usable_size() reports them), in the calling thread only; it
 * works through json_set_alloc_funcs(), which jsonload() sets once for
 * the process (the functions are malloc and free, counted).
 */
#ifndef SCRIPTUM_JSONLOAD_H
#define SCRIPTUM_JSONLOAD_H

#include <stddef.h>

#include <jansson.h>

/*
 * The budget for an answer of at most cap bytes. Real answers cost about
 * 6 times their text parsed, and the largest real ones are far below the
 * caps (a page of 1,000 threads is about 400 KB of text, 2 MiB parsed; a
 * result with 100,000 steps 20 MB, 120 MB parsed); 4 times the cap keeps
 * every one of them and refuses a capped body of tiny values.
 */
#define JSONLOAD_BUDGET(cap) ((cap) > (size_t)-1 / 4 ? (size_t)-1 : 4 * (cap))

/* Parses len bytes of buf as json_loadb(buf, len, flags, jerr) would into
 * *out (a new reference), holding at most budget bytes parsed. */
int jsonload(const char *buf, size_t len, size_t flags, size_t budget, json_t **out,
             json_error_t *jerr);

#endif
