/*
 * A failed call's description (struct http_error, see http.h): the one
 * filler of a failure for http.c, auth.c, api.c and listing.c, its one-line
 * rendering, and the way to the redaction of messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "errmap.h"
#include "http_int.h"
#include "redact.h"

int
http_error_vset(struct http_error *e, int err, int http_status, const char *fmt, va_list ap)
{
	e->err = err;
	e->http_status = http_status;
	e->grpc_code = -1;
	e->exit_code = errmap_exit_code(err);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	return -err;
}

int
http_error_set(struct http_error *e, int err, int http_status, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = http_error_vset(e, err, http_status, fmt, ap);
	va_end(ap);
	return rc;
}

int
http_fail(struct http_error *e, int err, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = http_error_vset(e, err, 0, fmt, ap);
	va_end(ap);
	return rc;
}

void
http_redact(struct http_client *c, char *msg, size_t size)
{
	if (c != NULL)
		redact_apply(c->redact, msg, size);
}

int
http_error_string(const struct http_error *e, char *buf, size_t len)
{
	if (e->http_status != 0 && e->grpc_code >= 0)
		return snprintf(buf, len, "%s: %s (HTTP %d, %s)", e->call, e->message,
		                e->http_status, errmap_grpc_name(e->grpc_code));
	if (e->http_status != 0)
		return snprintf(buf, len, "%s: %s (HTTP %d)", e->call, e->message, e->http_status);
	return snprintf(buf, len, "%s: %s", e->call, e->message);
}
