/*
 * Recent API errors (see fs.h): a fixed ring of the last `keep` failures,
 * read as .scriptumfs/errors, each also sent to the log; and the log
 * itself, stderr in the foreground and syslog when detached.
 *
 *	$ cat MOUNT/.scriptumfs/errors
 *	2026-11-29T03:50:01Z GetThread th_1 HTTP 404 NOT_FOUND: thread 'th_1' not found
 *	2026-11-29T03:51:12Z CreateThread nosuch HTTP 404 NOT_FOUND: script 'nosuch' not found
 *
 * The ring is preallocated, so recording an error never allocates and never
 * fails. What is recorded is copied from struct http_error, and every
 * entry and log line goes through the API's redaction (api_redact())
 * once more here: a message may be made outside the API from the
 * server's text, and no secret may reach the log or the errors file.
 */
#include "fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "errmap.h"

#define TIME_LEN 32 /* "2026-11-29T03:50:01Z" and room to spare */

struct errlog_entry {
	time_t when;
	int http_status;
	int grpc_code;
	char call[sizeof(((struct http_error *)0)->call)];
	char message[ERRMAP_MSG_MAX];
};

struct errlog {
	pthread_mutex_t lock;
	unsigned keep;  /* slots in ring */
	uint64_t added; /* errors recorded since errlog_new(); the next slot is added % keep */
	struct errlog_entry *ring;
};

/* Set once by log_init(), before any thread that logs is started. */
static bool log_foreground = true;
static bool log_debug;
static struct api *log_secrets;

/* ---- the log ---- */

void
log_init(bool foreground, bool debug)
{
	log_foreground = foreground;
	log_debug = debug;
	if (!foreground)
		openlog("scriptumfs", LOG_PID, LOG_DAEMON);
}

void
log_redact_with(struct api *api)
{
	log_secrets = api;
}

void
log_msg(int priority, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (LOG_PRI(priority) == LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	api_redact(log_secrets, line, sizeof(line));
	if (log_foreground)
		fprintf(stderr, "scriptumfs: %s\n", line); /* one call: lines never interleave */
	else
		syslog(priority, "%s", line);
}

/* ---- the ring ---- */

struct errlog *
errlog_new(unsigned keep)
{
	struct errlog *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	if (keep > 0 && (l->ring = calloc(keep, sizeof(*l->ring))) == NULL) {
		free(l);
		return NULL;
	}
	l->keep = keep;
	pthread_mutex_init(&l->lock, NULL);
	return l;
}

void
errlog_free(struct errlog *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->ring);
	free(l);
}

/* Copies src into dst (dstlen bytes) as one line: a control byte that
 * slipped into a message would otherwise split an entry in two. */
static void
copy_line(char *dst, size_t dstlen, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < dstlen && src[i] != '\0'; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? ' ' : src[i];
	dst[i] = '\0';
}

/* " HTTP 404 NOT_FOUND" (either part only when known) into buf. */
static void
status_text(char *buf, size_t len, int http_status, int grpc_code)
{
	size_t used = 0;

	buf[0] = '\0';
	if (http_status != 0)
		used = (size_t)snprintf(buf, len, " HTTP %d", http_status);
	if (grpc_code >= 0 && used < len)
		snprintf(buf + used, len - used, " %s", errmap_grpc_name(grpc_code));
}

void
errlog_add(struct errlog *l, const struct http_error *e)
{
	struct errlog_entry ent = {.when = time(NULL)};
	char status[48];

	ent.http_status = e->http_status;
	ent.grpc_code = e->grpc_code;
	copy_line(ent.call, sizeof(ent.call), e->call);
	copy_line(ent.message, sizeof(ent.message), e->message);
	api_redact(log_secrets, ent.call, sizeof(ent.call));
	api_redact(log_secrets, ent.message, sizeof(ent.message));
	status_text(status, sizeof(status), ent.http_status, ent.grpc_code);
	log_msg(LOG_WARNING, "%s%s: %s", ent.call, status, ent.message);
	if (l == NULL || l->keep == 0)
		return;
	pthread_mutex_lock(&l->lock);
	l->ring[l->added % l->keep] = ent;
	l->added++;
	pthread_mutex_unlock(&l->lock);
}

/* Appends one entry's line to buf, which has room for it (see errlog_render). */
static size_t
render_entry(char *buf, size_t room, const struct errlog_entry *ent)
{
	char when[TIME_LEN], status[48];
	struct tm tm;

	if (gmtime_r(&ent->when, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)ent->when);
	status_text(status, sizeof(status), ent->http_status, ent->grpc_code);
	return (size_t)snprintf(buf, room, "%s %s%s: %s\n", when, ent->call, status, ent->message);
}

/* Longest line render_entry() can write, its NUL included. */
#define ENTRY_LINE_MAX \
	(TIME_LEN + 1 + sizeof(((struct errlog_entry *)0)->call) + 48 + 2 + ERRMAP_MSG_MAX + 1)

int
errlog_render(struct errlog *l, char **out, size_t *len)
{
	size_t n, used = 0;
	uint64_t first;
	char *buf;

	*out = NULL;
	*len = 0;
	pthread_mutex_lock(&l->lock);
	n = l->added < l->keep ? (size_t)l->added : l->keep;
	first = l->added - n;
	/* a bounded worst case, so that the lock is taken once */
	if ((buf = malloc(n * ENTRY_LINE_MAX + 1)) == NULL) {
		pthread_mutex_unlock(&l->lock);
		return -ENOMEM;
	}
	buf[0] = '\0';
	for (uint64_t i = first; i < l->added; i++)
		used += render_entry(buf + used, ENTRY_LINE_MAX, &l->ring[i % l->keep]);
	pthread_mutex_unlock(&l->lock);
	*out = buf;
	*len = used;
	return 0;
}
