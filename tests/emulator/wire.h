/*
 * How the emulator spells messages on the wire. The canonical contract is
 * SPEC.md §2; the other modes serve the variants of §2.6 that a tolerant
 * client must accept:
 *
 *   canonical  camelCase, prefixed enum names, int64 as strings,
 *              unary bodies bare, streams as NDJSON {"result": msg} lines
 *   snake      snake_case names, streams as NDJSON lines of bare messages
 *   wrapped    unary bodies wrapped in one key ({"thread": {...}}), enums
 *              without their prefix (CANCELED for CANCELLED), int64 as numbers
 *   array      streams as one JSON array of bare messages, enums as integers
 *   sse        streams as server-sent events (data: {"result": msg}),
 *              enums lowercase without their prefix
 */
#ifndef WIRE_H
#define WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum wire_mode { WIRE_CANONICAL, WIRE_SNAKE, WIRE_WRAPPED, WIRE_ARRAY, WIRE_SSE };

enum thread_status {
	TS_UNSPECIFIED,
	TS_PENDING,
	TS_RUNNING,
	TS_PAUSED,
	TS_COMPLETED,
	TS_FAILED,
	TS_CANCELLED,
};

enum step_status {
	SS_UNSPECIFIED,
	SS_PENDING,
	SS_RUNNING,
	SS_PAUSED,
	SS_COMPLETED,
	SS_FAILED,
	SS_SKIPPED,
	SS_CANCELLED,
};

enum event_type {
	EV_UNSPECIFIED,
	EV_SNAPSHOT,
	EV_STATUS,
	EV_STEP_STARTED,
	EV_STEP_FINISHED,
	EV_YIELD,
};

enum enum_kind { ENUM_THREAD_STATUS, ENUM_STEP_STATUS, ENUM_EVENT_TYPE, ENUM_STEP_PART };

/* Set once at start-up, before any request is served. */
void wire_set_mode(enum wire_mode mode);
enum wire_mode wire_get_mode(void);
int wire_parse_mode(const char *s, enum wire_mode *out);

/* The lowercase word for a thread status ("running"), for messages. */
const char *wire_thread_status_word(int status);
/* Parses a status the tolerant way (any case, prefix optional, CANCELED, a
 * number); returns TS_UNSPECIFIED when it is not one. */
int wire_parse_thread_status(const char *s);
int wire_thread_status_terminal(int status);

/* An enum value as this mode spells it. New reference. */
json_t *wire_enum(enum enum_kind kind, int value);

/* Setters that omit zero values, as proto3 JSON does. */
void wire_set_str(json_t *obj, const char *key, const char *val);
void wire_set_int(json_t *obj, const char *key, long long val);
void wire_set_i64(json_t *obj, const char *key, int64_t val);
void wire_set_bool(json_t *obj, const char *key, int val);
void wire_set_enum(json_t *obj, const char *key, enum enum_kind kind, int value);

/* A field name as this mode spells it (camelCase in, snake_case out in the
 * snake mode); buf must hold 64 bytes. */
const char *wire_key(const char *camel, char *buf);

/* Renames every key of msg for this mode (metadata maps excepted) and, in
 * the wrapped mode, wraps a unary body in {wrapper: msg}. Takes ownership of
 * msg and returns the body to send. */
json_t *wire_unary(json_t *msg, const char *wrapper);
/* The same renaming for a stream message, without wrapping. */
json_t *wire_message(json_t *msg);

/* A JSON string of n bytes of text that may not be valid UTF-8 (a name from
 * a URL, a payload cut at a limit): a sequence cut at the end is dropped
 * and any other invalid byte becomes U+FFFD. New reference. */
json_t *wire_text(const char *text, size_t n);

/* Compact JSON text of v (taking v); the caller frees it. */
char *wire_dump(json_t *v);

/* An error body {"code", "message", "details": []}. New reference. */
json_t *wire_error(int code, const char *message);

/* The HTTP status grpc-gateway uses for a gRPC code. */
int wire_http_status(int grpc_code);

#endif
