/*
 * Fault injection for tests (POST /_emulator/faults): latency, a rate of
 * error responses, streams cut, ended by an error line, stalled or
 * trickled (one byte at a time, slowly), and
 * listings that page for ever or repeat ids. Faults apply to the API
 * (/v1/...), never to the /_emulator/ control calls.
 */
#ifndef FAULTS_H
#define FAULTS_H

#include <stdint.h>

#include <jansson.h>

struct faults {
	int latency_ms;
	int error_status;      /* HTTP status of injected errors; 0 = none */
	int error_text;        /* answer with a body that is not JSON, as a proxy would */
	int retry_after;       /* seconds, sent as Retry-After; 0 = none */
	int64_t cut_after;     /* streams: close the connection after N body bytes; -1 = never */
	int64_t error_after;   /* streams: an {"error"} line after N bytes; -1 = never */
	int64_t stall_after;   /* streams: stop sending after N bytes ... */
	int stall_ms;          /* ... for this long */
	int64_t trickle_after; /* streams: past N body bytes, one byte ... */
	int trickle_ms;        /* ... every this many ms; -1 after = never */
	int page_repeat;       /* listings: nextPageToken always the same token */
	int page_empty;      /* listings: past the first page, empty pages, each with a new token */
	int page_dups;       /* listings: each page repeats ids of its own and of the page before */
	unsigned generation; /* changes whenever faults are set */
};

/* Replaces the faults from a JSON body (an empty body or {} clears them).
 * Returns 0, or -1 with a message for a body that makes no sense. */
int faults_set(const json_t *body, char *err, size_t errlen);
json_t *faults_get(void);
/* No faults at all (what the control calls get). */
void faults_none(struct faults *out);
/* The faults that apply to this request; decides the error rate now. */
void faults_for(const char *path, struct faults *out);
unsigned faults_generation(void);
/* Frees what the faults hold, at shutdown. */
void faults_reset(void);

#endif
