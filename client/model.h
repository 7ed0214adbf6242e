/*
 * The API's messages as C structs (doc/WIRE.md, Messages): parsed from
 * whatever shape the gateway sends (doc/WIRE.md, Tolerance: camelCase or
 * snake_case names, a unary answer bare or wrapped in a one-key object,
 * enums with or without their prefix, in any case or as integers, CANCELED
 * for CANCELLED, int64 as a string or a number, missing fields as zero,
 * unknown fields ignored at every level, the wrapper's siblings included;
 * an enum value this client does not know is kept as UNKNOWN with its
 * text, never an error), and rendered back as the canonical wire form
 * (camelCase, int64 as strings, prefixed enum names, zero fields omitted).
 *
 *	struct model_thread t;
 *	if (model_thread_parse(json, &t, err, sizeof(err)) != 0)
 *		...;			// -EPROTO, err says which field
 *	... t.thread_id, t.status ...
 *	model_thread_clear(&t);
 *
 * Every struct owns its strings (NUL-terminated, never NULL after a
 * successful parse: a missing string is ""); *_clear() frees what it holds
 * and zeroes it. A failed parse leaves the struct cleared. A JSON null is a
 * missing field. A field of a type that cannot mean its value (an object
 * where a number belongs, "12x" as an integer) fails the parse with -EPROTO
 * and a message naming the field.
 *
 * A "\u0000" never cuts a string short. An id or name (threadId,
 * scriptName, a script's name, stepPath, currentStepPath, nextPageToken)
 * holding one fails the parse with -EPROTO naming the field, except in a
 * listing (ListThreads, ListScripts), where that entry is left out and
 * counted in n_unusable. In free text (an error, a description, a JSON
 * text, metadata) each NUL becomes U+FFFD.
 */
#ifndef SCRIPTUM_MODEL_H
#define SCRIPTUM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Longest message a parse failure writes (caller's buffer may be shorter). */
#define MODEL_ERR_MAX 256

/* ThreadStatus. Integers on the wire count from 1 in this order (0 unspecified). */
enum model_thread_status {
	MODEL_THREAD_UNSPECIFIED = 0,
	MODEL_THREAD_PENDING,
	MODEL_THREAD_RUNNING,
	MODEL_THREAD_PAUSED,
	MODEL_THREAD_COMPLETED,
	MODEL_THREAD_FAILED,
	MODEL_THREAD_CANCELLED,
	MODEL_THREAD_UNKNOWN, /* a value this client does not know: see status_text */
};

enum model_step_status {
	MODEL_STEP_UNSPECIFIED = 0,
	MODEL_STEP_PENDING,
	MODEL_STEP_RUNNING,
	MODEL_STEP_PAUSED,
	MODEL_STEP_COMPLETED,
	MODEL_STEP_FAILED,
	MODEL_STEP_SKIPPED,
	MODEL_STEP_CANCELLED,
	MODEL_STEP_UNKNOWN,
};

/* ThreadEvent.type (also StepEvent.type). */
enum model_event_type {
	MODEL_EVENT_UNSPECIFIED = 0,
	MODEL_EVENT_SNAPSHOT,
	MODEL_EVENT_STATUS,
	MODEL_EVENT_STEP_STARTED,
	MODEL_EVENT_STEP_FINISHED,
	MODEL_EVENT_YIELD,
	MODEL_EVENT_UNKNOWN, /* to be ignored (doc/WIRE.md, Tolerance) */
};

enum model_step_part {
	MODEL_PART_UNSPECIFIED = 0,
	MODEL_PART_INPUT,
	MODEL_PART_OUTPUT,
	MODEL_PART_UNKNOWN,
};

/* An enum value as it came: the C value, and when it is *_UNKNOWN the
 * wire's own text ("THREAD_STATUS_ARCHIVED", or the integer as text). */
#define MODEL_ENUM_TEXT_MAX 64

/* One metadata entry. */
struct model_kv {
	char *key;
	char *value;
};

/* Thread (doc/WIRE.md, Messages). */
struct model_thread {
	char *thread_id;
	char *script_name;
	int64_t version;
	enum model_thread_status status;
	char status_text[MODEL_ENUM_TEXT_MAX]; /* set when status is UNKNOWN */
	char *error;
	char *current_step_path;
	char *current_step_name;
	int64_t total_steps;
	char *input_json;          /* the text of inputJson ("" when none); an object sent in its
	                            * place is kept as its compact JSON text */
	struct model_kv *metadata; /* in the order received */
	size_t n_metadata;
	int64_t created_at_ms;
	int64_t started_at_ms;
	int64_t finished_at_ms;
};

/* StepSummary, and the summary part of a StepDetail. */
struct model_step {
	char *step_path;
	char *name;
	char *primitive;
	char *tool_name;
	enum model_step_status status;
	char status_text[MODEL_ENUM_TEXT_MAX];
	char *error;
	int64_t started_at_ms;
	int64_t finished_at_ms;
	int64_t duration_ms;
};

/* StepDetail.pendingInput, for a paused ask step. */
struct model_pending {
	char *prompt;
	char **options; /* n_options strings */
	size_t n_options;
	char *type;
};

/* StepDetail (also a stream's stepMeta, where input_json/output_json are ""). */
struct model_step_detail {
	struct model_step step;
	char *input_json;  /* inline, at most 64 KiB: see input_truncated */
	char *output_json; /* inline, at most 64 KiB */
	bool input_truncated;
	bool output_truncated;
	int64_t input_total_bytes;
	int64_t output_total_bytes;
	char *execution_id;
	char *logs_url;
	int64_t attempt;
	bool has_pending; /* pendingInput was present */
	struct model_pending pending;
};

/* GetThreadResult's answer (doc/WIRE.md, Messages and Calls). */
struct model_result {
	char *thread_id;
	enum model_thread_status status;
	char status_text[MODEL_ENUM_TEXT_MAX];
	unsigned char *output_data; /* decoded outputData, output_len bytes (NULL when none);
	                             * useless when output_truncated */
	size_t output_len;
	int64_t output_total_bytes;
	bool output_truncated;
	struct model_step *steps;
	size_t n_steps;
	struct model_step_detail *step_details;
	size_t n_step_details;
	char **yielded_values; /* each the text of one JSON document (a JSON value sent in
	                        * place of a string is kept as its compact text) */
	size_t n_yielded;
	int64_t total_yielded;
	bool yields_truncated;
};

/* ListThreads' answer. */
struct model_thread_list {
	struct model_thread *threads;
	size_t n_threads;
	char *next_page_token; /* "" on the last page */
	size_t n_unusable;     /* entries left out: an id holding a NUL */
};

/* Script (ListScripts' entries, GetScript). status is text: the full name
 * of a known value ("SCRIPT_STATUS_ACTIVE"), else the wire's own text or
 * number ("7"); model_version's status likewise. */
struct model_script {
	char *name;
	char *description;
	int64_t active_version;
	char *status;
	int64_t created_at_ms;
	int64_t updated_at_ms;
};

struct model_script_list {
	struct model_script *scripts;
	size_t n_scripts;
	char *next_page_token;
	size_t n_unusable; /* entries left out: a name holding a NUL */
};

struct model_version {
	int64_t version;
	char *status;
	int64_t created_at_ms;
};

struct model_version_list {
	struct model_version *versions;
	size_t n_versions;
};

/* HealthCheck's answer. */
struct model_health {
	char *status;
	char *version;
	int64_t uptime_seconds;
};

/* ThreadEvent, or a StepEvent (has_thread false, no yield). */
struct model_event {
	enum model_event_type type;
	char type_text[MODEL_ENUM_TEXT_MAX];
	int64_t at_ms;
	bool has_thread;
	struct model_thread thread;
	bool has_step;
	struct model_step step;
	char *yielded_json; /* "" when none */
};

/*
 * One message of StreamThreadResult or StreamStepResult (already unwrapped
 * from {"result": ...} by the stream parser): a oneof. Chunk data is
 * decoded from base64 into data (owned, len bytes; NULL when empty).
 */
enum model_msg_kind {
	MODEL_MSG_UNKNOWN = 0, /* no member this client knows: ignore it */
	MODEL_MSG_META,        /* meta: thread_id, status, output_total_bytes */
	MODEL_MSG_CHUNK,       /* chunk: chunk_index, data, is_final */
	MODEL_MSG_STEP_META,   /* stepMeta: step_meta */
	MODEL_MSG_STEP_CHUNK,  /* stepChunk: step_path, part, chunk_index, data, is_final */
};

struct model_result_msg {
	enum model_msg_kind kind;
	/* MODEL_MSG_META */
	char *thread_id;
	enum model_thread_status status;
	char status_text[MODEL_ENUM_TEXT_MAX];
	int64_t output_total_bytes;
	/* MODEL_MSG_STEP_META */
	struct model_step_detail step_meta;
	/* chunks */
	char *step_path;
	enum model_step_part part;
	int64_t chunk_index;
	unsigned char *data;
	size_t len;
	bool is_final;
};

/*
 * Parsers. Each takes a borrowed JSON value: the message, or a unary answer
 * wrapped in one key, with or without unknown siblings ({"thread": {...}},
 * {"result": {...}, "requestId": "r1"}). Return 0, or -EPROTO with a
 * message in err (the value is not an object, a field has an impossible
 * type or value, bad base64), or -ENOMEM.
 */
int model_thread_parse(const json_t *v, struct model_thread *out, char *err, size_t errlen);
int model_step_parse(const json_t *v, struct model_step *out, char *err, size_t errlen);
int model_step_detail_parse(const json_t *v, struct model_step_detail *out, char *err,
                            size_t errlen);
int model_result_parse(const json_t *v, struct model_result *out, char *err, size_t errlen);
int model_thread_list_parse(const json_t *v, struct model_thread_list *out, char *err,
                            size_t errlen);
int model_script_parse(const json_t *v, struct model_script *out, char *err, size_t errlen);
int model_script_list_parse(const json_t *v, struct model_script_list *out, char *err,
                            size_t errlen);
int model_version_list_parse(const json_t *v, struct model_version_list *out, char *err,
                             size_t errlen);
int model_health_parse(const json_t *v, struct model_health *out, char *err, size_t errlen);
int model_event_parse(const json_t *v, struct model_event *out, char *err, size_t errlen);
int model_result_msg_parse(const json_t *v, struct model_result_msg *out, char *err, size_t errlen);

void model_thread_clear(struct model_thread *t);
void model_step_clear(struct model_step *s);
void model_step_detail_clear(struct model_step_detail *d);
void model_result_clear(struct model_result *r);
void model_thread_list_clear(struct model_thread_list *l);
void model_script_clear(struct model_script *s);
void model_script_list_clear(struct model_script_list *l);
void model_version_list_clear(struct model_version_list *l);
void model_health_clear(struct model_health *h);
void model_event_clear(struct model_event *e);
void model_result_msg_clear(struct model_result_msg *m);

/* Deep copy; 0 or -ENOMEM (dst then cleared). dst must not hold anything. */
int model_thread_copy(struct model_thread *dst, const struct model_thread *src);
int model_step_copy(struct model_step *dst, const struct model_step *src);
int model_step_detail_copy(struct model_step_detail *dst, const struct model_step_detail *src);
int model_result_copy(struct model_result *dst, const struct model_result *src);

/*
 * Canonical renderers: a new JSON object (the caller owns the reference),
 * camelCase, int64 as decimal strings, enums by their full name (an UNKNOWN
 * value by its kept text), zero fields omitted, fields in the order of
 * doc/WIRE.md, Messages. NULL only when out of memory.
 */
json_t *model_thread_json(const struct model_thread *t);
json_t *model_step_json(const struct model_step *s);
json_t *model_step_detail_json(const struct model_step_detail *d); /* includes inline I/O */
json_t *model_script_json(const struct model_script *s);
json_t *model_version_json(const struct model_version *v);
json_t *model_health_json(const struct model_health *h);
json_t *model_event_json(const struct model_event *e);

/* Enum names. *_name(): "THREAD_STATUS_COMPLETED" (the kept text for
 * UNKNOWN, "THREAD_STATUS_UNSPECIFIED" for 0). *_word(): the lowercase
 * word of the mount's status file ("completed"; "unknown" for UNKNOWN,
 * "unspecified" for 0). Static strings, except that an UNKNOWN name is
 * the text argument. */
const char *model_thread_status_name(enum model_thread_status s, const char *text);
const char *model_thread_status_word(enum model_thread_status s);
const char *model_step_status_name(enum model_step_status s, const char *text);
const char *model_step_status_word(enum model_step_status s);
const char *model_event_type_name(enum model_event_type t, const char *text);
const char *model_step_part_name(enum model_step_part p);

/*
 * Parses a status as a user types it ("completed", "COMPLETED",
 * "THREAD_STATUS_COMPLETED", "canceled", "4"): the same tolerance as the
 * wire. Returns the status, or MODEL_THREAD_UNKNOWN.
 */
enum model_thread_status model_thread_status_from_text(const char *s);

/* Completed, failed or cancelled. */
bool model_thread_terminal(enum model_thread_status s);
bool model_step_terminal(enum model_step_status s);

/*
 * Orders step paths by numeric segments: "1" < "1.2" < "1.10" < "2".
 * A segment that is not a number sorts after numbers, by bytes. For qsort
 * through a wrapper, and for the mount's step listing.
 */
int model_step_path_cmp(const char *a, const char *b);

#endif
