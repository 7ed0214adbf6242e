/*
 * A listing: ListThreads or ListScripts paged to its end, under bounds
 * that hold whatever the server answers (doc/WIRE.md, Bounds;
 * doc/SEMANTICS.md, Listings). The CLI and the mount page through one of
 * these, so the rules live here once:
 *
 *	struct listing *l;
 *	struct model_thread_list page;
 *
 *	if (listing_new("ListThreads", 0, &l) != 0) ...
 *	while (!listing_done(l)) {
 *		if (listing_threads(l, api, &q, &page, &e) != 0)
 *			break;			// e names ListThreads and why
 *		... page.threads, each id new to this listing ...
 *		model_thread_list_clear(&page);
 *	}
 *	listing_free(l);
 *
 * A page token seen before in the listing, LISTING_MAX_EMPTY pages in a
 * row that bring nothing new, more calls than the listing's ceiling, or
 * more than LISTING_MAX_BYTES of ids and tokens held are -EPROTO (the
 * server breaks the protocol: exit status 10, EIO in the mount), and the
 * listing stays failed. A failed call is not: the same page may be asked
 * again. Not thread-safe: one user at a time (the mount holds a lock).
 */
#ifndef SCRIPTUM_LISTING_H
#define SCRIPTUM_LISTING_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"

/*
 * The bounds. 10,000 calls: at the API's 1000 a page, 10 million entries,
 * more than any listing here shows (list_limit's maximum), and at the
 * server's default of 50, half a million; a listing past it is a server
 * paging for ever. 50 empty pages in a row: a server may answer an empty
 * page while it scans for a filter, but not for ever. 64 MiB of ids and
 * tokens: about a million entries, so a listing costs a bounded amount of
 * memory however many pages it has. A token over 1 KiB cannot be a
 * cursor, and it would not fit the request's URL once escaped.
 */
#define LISTING_MAX_PAGES 10000
#define LISTING_MAX_EMPTY 50
#define LISTING_MAX_BYTES ((size_t)64 << 20)
#define LISTING_TOKEN_MAX 1024

struct listing;

/* A listing of call ("ListThreads", "ListScripts": a static string), of at
 * most max_pages calls (0: LISTING_MAX_PAGES, and never more). 0 or
 * -ENOMEM. */
int listing_new(const char *call, size_t max_pages, struct listing **out);
void listing_free(struct listing *l); /* NULL is fine */

/* Whether the last page has come (or the listing failed). */
bool listing_done(const struct listing *l);

/* Calls made so far. */
size_t listing_pages(const struct listing *l);

/*
 * The next page of ListThreads with q's filters (q->page_token is ignored:
 * the listing keeps the token). *out holds only the entries whose id this
 * listing has not given before, in the server's order; the caller clears
 * it. 0 or -errno with *e filled (e may be NULL); a listing already done
 * fails with -EPROTO again for a failed one, else gives an empty page.
 */
int listing_threads(struct listing *l, struct api *a, const struct api_list *q,
                    struct model_thread_list *out, struct http_error *e);
/* The same for ListScripts, by name. */
int listing_scripts(struct listing *l, struct api *a, int page_size, struct model_script_list *out,
                    struct http_error *e);

#endif
