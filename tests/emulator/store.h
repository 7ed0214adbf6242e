/*
 * The emulator's state: threads, their runs through the catalog's steps in
 * real time, their events, and the calls of SPEC.md §2.2 on them. Every
 * function takes the store's lock itself; none may be called with it held.
 *
 * Unary calls return 0 and a new JSON body in *out (the canonical message,
 * before wire_unary), or -1 with the error in *e.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"

struct api_err {
	int code; /* gRPC code */
	char msg[512];
};

struct list_query {
	long page_size; /* 0 = default */
	const char *page_token;
	const char *status_filter;
	const char *script_filter;
	int duplicate_ids; /* the duplicateIds fault: repeat ids within and across pages */
};

struct result_query {
	const char *step_path;
	int output_only;
	int metadata_only;
};

/* The store keeps cat, which must outlive it. */
void store_init(const struct catalog *cat, uint64_t unary_limit);
/* Starts the clock, after making the catalog's seed and start threads
 * when with_threads is set. */
void store_start(int with_threads);
/* Stops the clock and ends every watch; the server can then stop. */
void store_shutdown_begin(void);
/* Frees every thread, once nothing serves requests any more. */
void store_shutdown(void);
int store_stopping(void);

int store_create(const json_t *req, json_t **out, struct api_err *e);
int store_get(const char *id, json_t **out, struct api_err *e);
int store_list(const struct list_query *q, json_t **out, struct api_err *e);
int store_cancel(const char *id, json_t **out, struct api_err *e);
int store_resume(const char *id, const json_t *req, json_t **out, struct api_err *e);
int store_result(const char *id, const struct result_query *q, json_t **out, struct api_err *e);
/* dups: the duplicateIds fault, as in list_query */
int store_list_scripts(long page_size, const char *token, int dups, json_t **out,
                       struct api_err *e);
int store_get_script(const char *name, json_t **out, struct api_err *e);
int store_list_versions(const char *name, json_t **out, struct api_err *e);
int store_health(json_t **out);
/* POST /_emulator/seed: {"script", "count", "status", "outputBytes"}. */
int store_seed(const json_t *req, json_t **out, struct api_err *e);

/*
 * Payloads. A payload is a snapshot of bytes that no longer change: a
 * thread's output, or a step's input or output. Reading needs no lock.
 */
struct emu_payload;
void emu_payload_free(struct emu_payload *p);
uint64_t emu_payload_size(const struct emu_payload *p);
/* Copies up to len bytes from offset off; returns how many. */
size_t emu_payload_read(const struct emu_payload *p, uint64_t off, char *buf, size_t len);

/* The output of a thread, for StreamThreadResult and the raw output call.
 * *meta gets {threadId, status, outputTotalBytes}. */
int store_output(const char *id, struct emu_payload **out, json_t **meta, struct api_err *e);

/* StreamStepResult: the steps (one, or all when path is empty) of a thread. */
struct step_stream;
int store_step_stream(const char *id, const char *path, struct step_stream **out,
                      struct api_err *e);
size_t step_stream_count(const struct step_stream *s);
/* The i-th step's meta (new reference), and its payloads (borrowed). */
json_t *step_stream_meta(const struct step_stream *s, size_t i);
const char *step_stream_path(const struct step_stream *s, size_t i);
const struct emu_payload *step_stream_part(const struct step_stream *s, size_t i, int output);
void step_stream_free(struct step_stream *s);

/* WatchThread (path NULL) and WatchStep. */
struct emu_watch;
int store_watch(const char *id, const char *path, struct emu_watch **out, struct api_err *e);
/* The next event (new reference) in *msg: returns 1 with an event, 0 when
 * none came within wait_ms, -1 when the watch is over. */
int emu_watch_next(struct emu_watch *w, json_t **msg, int wait_ms);
void emu_watch_free(struct emu_watch *w);

#endif
