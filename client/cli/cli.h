/*
 * The scriptum CLI's shared pieces: the context every command runs with,
 * and the output, follow (watch) and save modules the commands use. Only
 * client/cli*.c include this; libscriptum knows nothing of it.
 */
#ifndef SCRIPTUM_CLI_H
#define SCRIPTUM_CLI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "api.h"
#include "clock.h"
#include "errmap.h"
#include "model.h"

/* Exit statuses: enum exit_status, in errmap.h. */

enum cli_format {
	CLI_TABLE,
	CLI_JSON,
	CLI_YAML,
	CLI_WIDE,
};

struct cli {
	struct api *api;
	enum cli_format format;
	int64_t call_timeout_ms;
	struct http_abort *abort; /* fired by SIGINT/SIGTERM */
	bool tty_out;             /* stdout is a terminal */
	bool tty_err;             /* stderr is a terminal */
};

/* The signal that fired (0: none); set by the signal thread in cli.c. */
extern atomic_int cli_signal;

/* Reports an API failure: "scriptum: GetThread th_1: not found (HTTP 404,
 * NOT_FOUND)" on stderr; returns the exit status for it. */
int cli_api_error(const struct http_error *e);

/* Prints "scriptum: <message>" on stderr and returns status. */
int cli_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "scriptum: <message>" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The exit status for a caught signal, or 0. */
int cli_signal_status(void);

/* ---- cli_out.c: formats ---- */

/* Writes v (borrowed) to out as JSON (pretty, newline) or YAML (a document). */
int cli_print_value(FILE *out, enum cli_format f, json_t *v);
/* One JSON line (NDJSON) or one YAML document ("---"). */
int cli_print_record(FILE *out, enum cli_format f, json_t *v);

/* "4m ago", "2h ago", "3d ago", "just now"; now_ms: the current time. */
void cli_age(char *buf, size_t len, int64_t at_ms, int64_t now_ms);
/* "850ms", "12s", "1m12s", "2h3m", "4d2h". */
void cli_duration(char *buf, size_t len, int64_t ms);
/* "2026-11-29 03:50:01 UTC"; "-" for 0. iso: "2026-11-29T03:50:01Z". */
void cli_time(char *buf, size_t len, int64_t at_ms, bool iso);
/* "1.0 GiB", "200.0 KiB", "12 B". */
void cli_bytes(char *buf, size_t len, uint64_t n);
/* The time: clk_wall_ms() for what is shown, clk_mono_ms() for what is
 * measured (clock.h). */

/* A table: rows of cells, printed aligned with two spaces between columns. */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers);
void cli_table_add(struct cli_table *t, const char *const *cells); /* copies */
void cli_table_print(struct cli_table *t, FILE *out); /* the rows since the last print */
void cli_table_free(struct cli_table *t);

/* Threads in the chosen format: a table of rows (table/wide) or a JSON
 * array / YAML sequence. */
int cli_print_threads(struct cli *c, const struct model_thread *t, size_t n);

/* The same, printed as they come (a listing's pages): new, add each page
 * (printed at once), end (closes the array), free. Owned by the caller. */
struct cli_rows;
struct cli_rows *cli_rows_new(struct cli *c); /* never NULL */
int cli_rows_add(struct cli_rows *r, const struct model_thread *t, size_t n);
int cli_rows_end(struct cli_rows *r);
void cli_rows_free(struct cli_rows *r); /* NULL is fine */
/* One thread: the detail view (table/wide) or the object. */
int cli_print_thread_detail(struct cli *c, const struct model_thread *t);

/* ---- cli_watch.c: following a thread ---- */

/*
 * Follows a thread until it is terminal, printing events to out (stdout,
 * or stderr when stdout carries a result). Fills *final with the thread's
 * last state (clear it). Returns an exit status: 0 completed, 1 failed or
 * cancelled, else the error's.
 */
int cli_follow(struct cli *c, const char *id, FILE *out, struct model_thread *final);

/* ---- cli_save.c: the thread directory ---- */

/* Writes the thread directory of id into dir. Returns an exit status: 0,
 * 1 when the thread failed or was cancelled (its directory is still saved),
 * or the failure's. */
int cli_save(struct cli *c, const char *id, const char *dir);

/* ---- commands (cli_thread.c) ---- */

#define CLI_MAX_METADATA 64

/* A parsed command line (cli.c). Strings point into argv. */
struct cli_args {
	const char *command; /* "create", "run", ... (after "thread"), or "health" */
	const char *arg;     /* the script name or thread id */
	const char *input;   /* --input: JSON, @FILE, @- */
	const char *version; /* --version N */
	bool env;
	const char *run_timeout; /* --timeout after create/run */
	struct model_kv metadata[CLI_MAX_METADATA];
	size_t n_metadata;
	bool result;
	const char *save;
	const char *script;
	const char *status;
	const char *page_size;
	bool all;
	const char *step;
	bool detail;
};

int cli_thread(struct cli *c, const struct cli_args *a);
int cli_health(struct cli *c);

#endif
