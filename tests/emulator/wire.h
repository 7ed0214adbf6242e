/*
 * How the emulator spells messages on the wire. The canonical contract is
 * SPEC.md §2; everything else here is a variant of §2.6 that a tolerant
 * client must accept. --wire takes a base mode and any knobs, comma
 * separated ("wrapped,siblings,intenums"). The base modes:
 *
 *   canonical  camelCase, prefixed enum names, int64 as strings,
 *              unary bodies bare, streams as NDJSON {"result": msg} lines
 *   snake      snake_case names, streams as NDJSON lines of bare messages
 *   wrapped    unary bodies wrapped in one key ({"thread": {...}}), enums
 *              without their prefix (CANCELED for CANCELLED), int64 as numbers
 *   array      streams as one JSON array of bare messages, enums as integers
 *   sse        streams as server-sent events (data: {"result": msg}),
 *              enums lowercase without their prefix
 *   random     a spelling per field and per message, drawn from --wire-seed
 *              and the number of the request: name case per field; enum form
 *              per field (prefixed or bare, upper, lower or title case, an
 *              integer; CANCELED for CANCELLED); int64 as string or number;
 *              a zero value omitted, present or null; a unary body bare or
 *              wrapped, with or without siblings; minimal create, cancel and
 *              resume answers; unknown keys in some objects; the framing of
 *              each stream (NDJSON with or without {"result"}, one array, SSE)
 *
 * In the fixed modes the script and version statuses keep their prefixed
 * names (as before these knobs existed); random and the knobs spell them
 * like any enum. The knobs, on top of any base (random included):
 *
 *   siblings      a unary body wrapped in its one key, with unknown keys
 *                 beside the wrapper ({"thread": {...}, "requestId": ...})
 *   minimal       CreateThread answers {"threadId"}; Cancel and Resume {}
 *   intenums      every enum as an integer
 *   unknownenums  script and version statuses as words no client knows
 *                 (SCRIPT_STATUS_ARCHIVED_FOR_TEST), and watch streams with
 *                 extra events of an unknown type (THREAD_EVENT_TYPE_HEARTBEAT)
 *                 after the snapshot and once a second while idle
 *   nulls         zero values present, as their zero value or as null
 *   unknownkeys   unknown keys in every object of every message, in the
 *                 unary wrapper and in the stream's {"result"} wrapper
 *   mixedcase     camelCase and snake_case names alternate in each object
 *
 * Never varied: identity fields (threadId, name, stepPath) are always there;
 * thread and step statuses are always ones the client knows; error bodies
 * and error lines are bare and canonical; the metadata map's keys are data;
 * an empty minimal answer ({}) carries nothing, not even unknown keys; the
 * control calls under /_emulator/ are canonical whatever the mode.
 *
 * Enum integers count from 1 in the order of the API's lists (0 is
 * unspecified): thread and step statuses as SPEC §2.1; event types
 * SNAPSHOT=1 STATUS=2 STEP_STARTED=3 STEP_FINISHED=4 YIELD=5 (the unknown
 * HEARTBEAT is 99); step parts INPUT=1 OUTPUT=2; script statuses CREATED=1
 * DRAFT=2 ACTIVE=3 DISABLED=4 ARCHIVED=5; version statuses DRAFT=1
 * COMPILING=2 COMPILED=3 ACTIVE=4 SUPERSEDED=5 FAILED=6.
 *
 * Unknown keys are drawn from: requestId, traceId, serverTimeMs, debugInfo,
 * etag, kind, deprecated_flag, x_emulator_note.
 */
#ifndef WIRE_H
#define WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum wire_base { WIRE_CANONICAL, WIRE_SNAKE, WIRE_WRAPPED, WIRE_ARRAY, WIRE_SSE, WIRE_RANDOM };

enum wire_knob {
	WIRE_SIBLINGS = 1 << 0,
	WIRE_MINIMAL = 1 << 1,
	WIRE_INTENUMS = 1 << 2,
	WIRE_UNKNOWNENUMS = 1 << 3,
	WIRE_NULLS = 1 << 4,
	WIRE_UNKNOWNKEYS = 1 << 5,
	WIRE_MIXEDCASE = 1 << 6,
};

/* How a stream is framed. */
enum wire_framing {
	FRAME_NDJSON_RESULT, /* lines of {"result": msg} */
	FRAME_NDJSON_BARE,   /* lines of msg */
	FRAME_ARRAY,         /* one JSON array of msg */
	FRAME_SSE,           /* data: {"result": msg} events */
};

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

/* Not in the API: an event type no client knows, for the unknownenums knob. */
#define EV_UNKNOWN_HEARTBEAT 99

enum script_status {
	SCRIPT_UNSPECIFIED,
	SCRIPT_CREATED,
	SCRIPT_DRAFT,
	SCRIPT_ACTIVE,
	SCRIPT_DISABLED,
	SCRIPT_ARCHIVED,
};

enum version_status {
	VERSION_UNSPECIFIED,
	VERSION_DRAFT,
	VERSION_COMPILING,
	VERSION_COMPILED,
	VERSION_ACTIVE,
	VERSION_SUPERSEDED,
	VERSION_FAILED,
};

enum enum_kind {
	ENUM_THREAD_STATUS,
	ENUM_STEP_STATUS,
	ENUM_EVENT_TYPE,
	ENUM_STEP_PART,
	ENUM_SCRIPT_STATUS,
	ENUM_VERSION_STATUS,
};

/* Set once at start-up, before any request is served. wire_configure
 * parses a --wire value ("base,knob,..."; the base defaults to canonical);
 * -1 with a message in err when it is not one. */
int wire_configure(const char *spec, char *err, size_t errlen);
void wire_set_seed(uint64_t seed);

/* The spelling state of one request: every choice of a variant is drawn from
 * it, so a request sequence replays byte for byte from the same seed. The
 * server begins one per API call (numbered in arrival order) and makes it
 * the calling thread's current one; a stream keeps its own copy and resumes
 * it around each read. With none current (control calls) the spelling is
 * canonical. */
struct wire_req {
	uint64_t rng;
	int on;
};
void wire_request_begin(struct wire_req *r);
void wire_request_resume(struct wire_req *r);
void wire_request_end(void);

/* The lowercase word for a thread status ("running"), for messages. */
const char *wire_thread_status_word(int status);
/* Parses a status the tolerant way (any case, prefix optional, CANCELED, a
 * number); returns TS_UNSPECIFIED when it is not one. */
int wire_parse_thread_status(const char *s);
int wire_thread_status_terminal(int status);

/* An enum value as the current request spells it. New reference. */
json_t *wire_enum(enum enum_kind kind, int value);

/* Setters of one field each, spelled for the current request: a zero value
 * is omitted, as proto3 JSON does, unless the mode keeps it (as its zero or
 * null). */
void wire_set_str(json_t *obj, const char *key, const char *val);
void wire_set_int(json_t *obj, const char *key, long long val);
void wire_set_i64(json_t *obj, const char *key, int64_t val);
void wire_set_bool(json_t *obj, const char *key, int val);
void wire_set_enum(json_t *obj, const char *key, enum enum_kind kind, int value);

/* Spells every key of msg (metadata maps excepted) and adds unknown keys,
 * then wraps a unary body in {wrapper: msg} (with siblings) when the mode
 * says so. Takes ownership of msg and returns the body to send. */
json_t *wire_unary(json_t *msg, const char *wrapper);
/* The answer of CreateThread (create set), CancelThread or ResumeThread:
 * the thread as wire_unary sends it, or a minimal answer ({"threadId"} for
 * create, {} for the others). Takes ownership of thread. */
json_t *wire_unary_action(json_t *thread, int create);
/* A stream message (taking msg) spelled as wire_unary does, and wrapped in
 * {"result": msg} when result is set. */
json_t *wire_stream_item(json_t *msg, int result);
/* The framing of a new stream, and whether its watch events come with
 * events of an unknown type; each stream asks once. */
enum wire_framing wire_stream_framing(void);
int wire_heartbeats(void);
/* An event of a type no client knows, at at_ms. New reference. */
json_t *wire_heartbeat(int64_t at_ms);

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
