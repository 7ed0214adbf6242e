/*
 * API errors: one place that turns an HTTP status and a gRPC code into an
 * errno (for the filesystem) and an exit status (for the CLI), and a parser
 * for whatever a failed call put in its body (a gRPC Status in any of the
 * gateway's shapes, or a proxy's HTML/text page).
 */
#ifndef SCRIPTUM_ERRMAP_H
#define SCRIPTUM_ERRMAP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The CLI's exit statuses (scriptum(1), EXIT STATUS), which errmap gives
 * for each failure. */
enum exit_status {
	EXIT_OK = 0,
	EXIT_THREAD_FAILED = 1,
	EXIT_INVALID = 2,
	EXIT_UNAUTHENTICATED = 3,
	EXIT_DENIED = 4,
	EXIT_NOT_FOUND = 5,
	EXIT_EXISTS = 6,
	EXIT_EXHAUSTED = 7,
	EXIT_DEADLINE = 8,
	EXIT_UNAVAILABLE = 9,
	EXIT_INTERNAL = 10,
	EXIT_SIGINT = 130,
	EXIT_SIGTERM = 143,
};

/* gRPC status codes (google.rpc.Code). */
enum errmap_grpc {
	ERRMAP_OK = 0,
	ERRMAP_CANCELLED = 1,
	ERRMAP_UNKNOWN = 2,
	ERRMAP_INVALID_ARGUMENT = 3,
	ERRMAP_DEADLINE_EXCEEDED = 4,
	ERRMAP_NOT_FOUND = 5,
	ERRMAP_ALREADY_EXISTS = 6,
	ERRMAP_PERMISSION_DENIED = 7,
	ERRMAP_RESOURCE_EXHAUSTED = 8,
	ERRMAP_FAILED_PRECONDITION = 9,
	ERRMAP_ABORTED = 10,
	ERRMAP_OUT_OF_RANGE = 11,
	ERRMAP_UNIMPLEMENTED = 12,
	ERRMAP_INTERNAL = 13,
	ERRMAP_UNAVAILABLE = 14,
	ERRMAP_DATA_LOSS = 15,
	ERRMAP_UNAUTHENTICATED = 16,
};

/* Longest message kept from an error body, NUL included. */
#define ERRMAP_MSG_MAX 512

/* What an error body said. A plain value: no heap, copy freely. */
struct errmap_status {
	int http_status;              /* as given by the caller, else from the body, else 0 */
	int code;                     /* gRPC code, -1 when the body has none */
	char message[ERRMAP_MSG_MAX]; /* one sanitized line, never empty */
};

/* The consequences of an error. */
struct errmap {
	int err;        /* positive errno: ENOENT, EACCES, ... */
	int exit_code;  /* the CLI's exit status: an enum exit_status */
	bool retryable; /* the transport may resend after a back-off */
};

/*
 * Maps a failed call. The gRPC code wins when it is a real error code
 * (1..16); otherwise (-1 = absent, 0, or out of range) the HTTP status
 * decides. http_status may be 0 (no HTTP status, e.g. a stream's error line).
 */
struct errmap errmap_map(int http_status, int grpc_code);

/* Whether the transport retries this failure (429/502/503, RESOURCE_EXHAUSTED, UNAVAILABLE). */
bool errmap_retryable(int http_status, int grpc_code);

/*
 * Parses an error body of len bytes (not NUL-terminated, may be NULL when
 * len is 0) into *out. Never fails: a body that is not JSON becomes a short
 * excerpt of its text, an empty one the status's reason phrase.
 */
void errmap_parse_body(const void *body, size_t len, int http_status, struct errmap_status *out);

/*
 * The same from an already parsed JSON value (borrowed): a Status
 * {"code","message"}, a wrapper {"error": Status}, grpc-gateway v1's
 * {"error": "...", "code"} or {"error": {"grpc_code", "message"}}, or
 * Google's {"error": {"code": 404, "status": "NOT_FOUND"}}.
 */
void errmap_from_json(const json_t *body, int http_status, struct errmap_status *out);

/*
 * The CLI's exit status (scriptum(1), EXIT STATUS) for a failure known
 * only by its errno (no HTTP answer): a timeout, a dead server, an
 * interrupt, a reply that could not be parsed. err is positive.
 */
int errmap_exit_code(int err);

/* "NOT_FOUND" for 5; "UNKNOWN_CODE" for anything out of range. Static string. */
const char *errmap_grpc_name(int code);

/*
 * The code for a name, ignoring case and underscores ("NOT_FOUND",
 * "not_found", Go's "NotFound", "CANCELED"), or a decimal string ("5").
 * -1 when unknown.
 */
int errmap_grpc_code(const char *name);

#endif
