/*
 * The files of .scriptumfs/: errors (the recent failed calls, errlog.c),
 * stats (counters of every layer, and the heap in use) and config (the
 * resolved configuration, without secrets); rendered when opened.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metafiles.h"
#include "tree.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* The sanitizers' runtime's count of the bytes allocated now, as its
 * <sanitizer/allocator_interface.h> declares it (a header gcc does not
 * install). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* The bytes the daemon's heap holds in use now (what a leak would grow,
 * unlike RSS, which also counts what the allocator keeps): the sanitizer's
 * own count under ASan or TSan, else glibc's. */
static size_t
heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#endif
}

static int
render_stats(struct mount *m, char **out, size_t *len)
{
	struct http_stats hs;
	struct meta_stats ms;
	struct payloads_stats ps;
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (f == NULL)
		return -ENOMEM;
	http_client_stats(api_http(m->api), &hs);
	meta_stats(m->meta, &ms);
	payloads_stats(m->payloads, &ps);
	fprintf(f, "uptime_seconds %" PRId64 "\n", (clk_wall_ms() - m->started_ms) / 1000);
	fprintf(f, "fuse_requests %" PRIuFAST64 "\n", atomic_load(&m->requests));
	fprintf(f, "thread_records %zu\n", recs_count(m->recs, REC_THREAD));
	fprintf(f, "script_records %zu\n", recs_count(m->recs, REC_SCRIPT));
	fprintf(f, "http_calls %" PRIu64 "\n", hs.calls);
	fprintf(f, "http_attempts %" PRIu64 "\n", hs.attempts);
	fprintf(f, "http_retries %" PRIu64 "\n", hs.retries);
	fprintf(f, "http_failures %" PRIu64 "\n", hs.failures);
	fprintf(f, "http_connects %" PRIu64 "\n", hs.connects);
	fprintf(f, "http_bytes_received %" PRIu64 "\n", hs.received);
	fprintf(f, "meta_calls %" PRIu64 "\n", ms.calls);
	fprintf(f, "meta_hits %" PRIu64 "\n", ms.hits);
	fprintf(f, "meta_entries %" PRIu64 "\n", ms.entries);
	fprintf(f, "meta_bytes %" PRIu64 "\n", ms.bytes);
	fprintf(f, "meta_evictions %" PRIu64 "\n", ms.evictions);
	fprintf(f, "payload_downloads %" PRIu64 "\n", ps.downloads);
	fprintf(f, "payload_downloads_failed %" PRIu64 "\n", ps.downloads_failed);
	fprintf(f, "payload_downloads_active %u\n", ps.active);
	fprintf(f, "payload_bytes_downloaded %" PRIu64 "\n", ps.bytes_downloaded);
	fprintf(f, "payload_cache_hits %" PRIu64 "\n", ps.cache_hits);
	fprintf(f, "payload_cache_files %" PRIu64 "\n", ps.cache_files);
	fprintf(f, "payload_cache_bytes %" PRIu64 "\n", ps.cache_bytes);
	fprintf(f, "payload_cache_evictions %" PRIu64 "\n", ps.evictions);
	fprintf(f, "heap_bytes %zu\n", heap_in_use());
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}

int
metafile_render(struct mount *m, uint64_t ino, char **out, size_t *len)
{
	switch (ino) {
	case INO_META_ERRORS:
		return errlog_render(m->errors, out, len);
	case INO_META_STATS:
		return render_stats(m, out, len);
	case INO_META_CONFIG:
		*len = strlen(m->config_text);
		return (*out = strdup(m->config_text)) != NULL ? 0 : -ENOMEM;
	}
	return -ENOENT;
}
