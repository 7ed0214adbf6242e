/*
 * What the CLI prints: aligned tables, human times and sizes, and the API's
 * objects as JSON or as YAML (emitted with libyaml from the same JSON
 * values, so both formats always carry the same data).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <yaml.h>

#include "cli.h"

void
cli_duration(char *buf, size_t len, int64_t ms)
{
	int64_t s = ms / 1000;

	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(buf, len, "%" PRId64 "ms", ms);
	else if (s < 60)
		snprintf(buf, len, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m%" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h%" PRId64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%" PRId64 "h", s / 86400, s % 86400 / 3600);
}

void
cli_age(char *buf, size_t len, int64_t at_ms, int64_t now_ms)
{
	int64_t s = (now_ms - at_ms) / 1000;

	if (at_ms <= 0)
		snprintf(buf, len, "-");
	else if (s < 5)
		snprintf(buf, len, "just now");
	else if (s < 60)
		snprintf(buf, len, "%" PRId64 "s ago", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m ago", s / 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h ago", s / 3600);
	else
		snprintf(buf, len, "%" PRId64 "d ago", s / 86400);
}

void
cli_time(char *buf, size_t len, int64_t at_ms, bool iso)
{
	time_t t = (time_t)(at_ms / 1000);
	struct tm tm;

	if (at_ms <= 0 || gmtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S UTC", &tm);
}

void
cli_bytes(char *buf, size_t len, uint64_t n)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* ---- tables ---- */

struct cli_table {
	size_t ncols;
	size_t *width;
	char **cells; /* rows * ncols, the header row first */
	size_t rows;
	size_t cap;
};

static void *
xalloc(size_t n)
{
	void *p = calloc(1, n);

	if (p == NULL) {
		fputs("scriptum: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s != NULL ? s : "");

	if (p == NULL) {
		fputs("scriptum: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	return p;
}

struct cli_table *
cli_table_new(size_t ncols, const char *const *headers)
{
	struct cli_table *t = xalloc(sizeof(*t));

	t->ncols = ncols;
	t->width = xalloc(ncols * sizeof(*t->width));
	cli_table_add(t, headers);
	return t;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t
width_of(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* A cell on one line: control characters (a newline in an error) become
 * spaces, so rows stay rows. */
static char *
cell_text(const char *s)
{
	char *c = xstrdup(s);

	for (char *p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return c;
}

void
cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (t->rows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));

		if (nc == NULL) {
			fputs("scriptum: out of memory\n", stderr);
			exit(EXIT_INTERNAL);
		}
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = cell_text(cells[i]);
		size_t w = width_of(c);

		t->cells[t->rows * t->ncols + i] = c;
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->rows++;
}

/* Prints the rows added since the last print and forgets them; the widths
 * stay, so a table printed a page at a time keeps its columns (a later
 * page's wider cells widen its own rows only). */
void
cli_table_print(struct cli_table *t, FILE *out)
{
	for (size_t r = 0; r < t->rows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			char *c = t->cells[r * t->ncols + i];

			fputs(c, out);
			if (i + 1 < t->ncols)
				fprintf(out, "%*s", (int)(t->width[i] - width_of(c) + 2), "");
			free(c);
		}
		fputc('\n', out);
	}
	t->rows = 0;
}

void
cli_table_free(struct cli_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->width);
	free(t);
}

/* ---- JSON and YAML ---- */

static int
emit(yaml_emitter_t *em, yaml_event_t *ev)
{
	return yaml_emitter_emit(em, ev) ? 0 : -EIO;
}

static int
emit_scalar(yaml_emitter_t *em, const char *s, size_t len, bool plain_ok)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(
	    &ev, NULL, (yaml_char_t *)YAML_STR_TAG, (yaml_char_t *)s, (int)len, plain_ok, !plain_ok,
	    plain_ok ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
	return emit(em, &ev);
}

/* A JSON value as YAML nodes. Strings that would read back as something
 * else ("true", "12", "null") are quoted by libyaml's implicit rules being
 * off for them: they are emitted quoted. */
static int
emit_value(yaml_emitter_t *em, const json_t *v, int depth)
{
	yaml_event_t ev;
	char buf[64];
	int rc = 0;

	if (depth > 256)
		return -ELOOP;
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *val;

		yaml_mapping_start_event_initialize(&ev, NULL, (yaml_char_t *)YAML_MAP_TAG, 1,
		                                    YAML_BLOCK_MAPPING_STYLE);
		if ((rc = emit(em, &ev)) != 0)
			return rc;
		json_object_foreach((json_t *)v, key, val)
		{
			if ((rc = emit_scalar(em, key, strlen(key), true)) != 0 ||
			    (rc = emit_value(em, val, depth + 1)) != 0)
				return rc;
		}
		yaml_mapping_end_event_initialize(&ev);
		return emit(em, &ev);
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *val;

		yaml_sequence_start_event_initialize(&ev, NULL, (yaml_char_t *)YAML_SEQ_TAG, 1,
		                                     YAML_BLOCK_SEQUENCE_STYLE);
		if ((rc = emit(em, &ev)) != 0)
			return rc;
		json_array_foreach(v, i, val)
		{
			if ((rc = emit_value(em, val, depth + 1)) != 0)
				return rc;
		}
		yaml_sequence_end_event_initialize(&ev);
		return emit(em, &ev);
	}
	case JSON_STRING: {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		/* plain only when it cannot be mistaken for another type */
		bool plain =
		    n > 0 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		                       "0123456789_./-") == n;
		static const char *const special[] = {"true", "false", "null", "yes", "no",
		                                      "on",   "off",   "y",    "n",   "~"};

		for (size_t i = 0; plain && i < sizeof(special) / sizeof(special[0]); i++)
			if (strcasecmp(s, special[i]) == 0)
				plain = false;
		if (plain && strspn(s, "0123456789.-+eE") == n)
			plain = false;
		if (plain && (s[0] == '-' || s[0] == '.'))
			plain = false;
		return emit_scalar(em, s, n, plain);
	}
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, sizeof(buf), "true");
		break;
	case JSON_FALSE:
		snprintf(buf, sizeof(buf), "false");
		break;
	case JSON_NULL:
		snprintf(buf, sizeof(buf), "null");
		break;
	}
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)buf, (int)strlen(buf), 1, 0,
	                             YAML_PLAIN_SCALAR_STYLE);
	return emit(em, &ev);
}

static int
write_out(void *data, unsigned char *buf, size_t size)
{
	return fwrite(buf, 1, size, data) == size;
}

/* One YAML document holding v. */
static int
yaml_document(FILE *out, json_t *v)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	int rc;

	if (!yaml_emitter_initialize(&em))
		return -ENOMEM;
	yaml_emitter_set_output(&em, write_out, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	rc = emit(&em, &ev);
	if (rc == 0) {
		yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0);
		rc = emit(&em, &ev);
	}
	if (rc == 0)
		rc = emit_value(&em, v, 0);
	if (rc == 0) {
		yaml_document_end_event_initialize(&ev, 1);
		rc = emit(&em, &ev);
	}
	if (rc == 0) {
		yaml_stream_end_event_initialize(&ev);
		rc = emit(&em, &ev);
	}
	yaml_emitter_delete(&em);
	return rc;
}

int
cli_print_value(FILE *out, enum cli_format f, json_t *v)
{
	if (v == NULL)
		return -ENOMEM;
	if (f == CLI_YAML)
		return yaml_document(out, v);
	if (json_dumpf(v, out, JSON_INDENT(2) | JSON_ENCODE_ANY) != 0)
		return -EIO;
	fputc('\n', out);
	return 0;
}

int
cli_print_record(FILE *out, enum cli_format f, json_t *v)
{
	if (v == NULL)
		return -ENOMEM;
	if (f == CLI_YAML) {
		int rc = yaml_document(out, v);

		fflush(out);
		return rc;
	}
	if (json_dumpf(v, out, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
		return -EIO;
	fputc('\n', out);
	fflush(out);
	return 0;
}

/* ---- threads ---- */

static void
steps_cell(char *buf, size_t len, const struct model_thread *t)
{
	if (t->total_steps <= 0)
		snprintf(buf, len, "-");
	else if (t->current_step_path[0] != '\0' && !model_thread_terminal(t->status))
		snprintf(buf, len, "%s/%" PRId64, t->current_step_path, t->total_steps);
	else
		snprintf(buf, len, "%" PRId64, t->total_steps);
}

static void
duration_cell(char *buf, size_t len, const struct model_thread *t, int64_t now)
{
	if (t->started_at_ms <= 0)
		snprintf(buf, len, "-");
	else
		cli_duration(buf, len,
		             (t->finished_at_ms > 0 ? t->finished_at_ms : now) - t->started_at_ms);
}

static const char *
status_word(const struct model_thread *t)
{
	return t->status == MODEL_THREAD_UNKNOWN ? t->status_text
	                                         : model_thread_status_word(t->status);
}

/* Rows of threads as they come: a table (table, wide), or one JSON array
 * or YAML sequence written element by element, so a listing of any length
 * is printed in memory of one page. */
struct cli_rows {
	struct cli *c;
	struct cli_table *tab; /* table, wide */
	yaml_emitter_t em;     /* yaml */
	bool em_open;
	size_t n; /* elements so far */
};

static const char *const thread_head[] = {"ID",  "SCRIPT",   "VERSION",      "STATUS",  "STEPS",
                                          "AGE", "DURATION", "CURRENT-STEP", "CREATED", "ERROR"};

struct cli_rows *
cli_rows_new(struct cli *c)
{
	struct cli_rows *r = xalloc(sizeof(*r));
	yaml_event_t ev;

	r->c = c;
	if (c->format == CLI_TABLE || c->format == CLI_WIDE)
		r->tab = cli_table_new(c->format == CLI_WIDE ? 10 : 7, thread_head);
	if (c->format != CLI_YAML)
		return r;
	if (!yaml_emitter_initialize(&r->em)) {
		fputs("scriptum: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	r->em_open = true;
	yaml_emitter_set_output(&r->em, write_out, stdout);
	yaml_emitter_set_unicode(&r->em, 1);
	yaml_emitter_set_width(&r->em, -1);
	/* the events of yaml_document() of an array, its elements to come */
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	emit(&r->em, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 0);
	emit(&r->em, &ev);
	yaml_sequence_start_event_initialize(&ev, NULL, (yaml_char_t *)YAML_SEQ_TAG, 1,
	                                     YAML_BLOCK_SEQUENCE_STYLE);
	emit(&r->em, &ev);
	return r;
}

/* One element of the JSON array, as json_dumpf of the array would write
 * it: indented by one level, after "[" or ",". */
static int
json_element(struct cli_rows *r, json_t *v)
{
	char *text = v != NULL ? json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;

	if (text == NULL)
		return -ENOMEM;
	fputs(r->n == 0 ? "[\n  " : ",\n  ", stdout);
	/* a newline in JSON text is only ever between tokens: each line is
	 * written whole, the next one indented */
	for (const char *p = text, *nl; *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL) {
			fputs(p, stdout);
			break;
		}
		fwrite(p, 1, (size_t)(nl - p) + 1, stdout);
		fputs("  ", stdout);
	}
	free(text);
	return 0;
}

static void
table_row(struct cli_table *tab, const struct model_thread *t, int64_t now)
{
	char version[24], steps[64], age[32], dur[32], created[32];
	const char *row[10];

	snprintf(version, sizeof(version), "%" PRId64, t->version);
	steps_cell(steps, sizeof(steps), t);
	cli_age(age, sizeof(age), t->created_at_ms, now);
	duration_cell(dur, sizeof(dur), t, now);
	cli_time(created, sizeof(created), t->created_at_ms, true);
	row[0] = t->thread_id;
	row[1] = t->script_name;
	row[2] = t->version != 0 ? version : "-";
	row[3] = status_word(t);
	row[4] = steps;
	row[5] = age;
	row[6] = dur;
	row[7] = t->current_step_name[0] != '\0' ? t->current_step_name : "-";
	row[8] = created;
	row[9] = t->error[0] != '\0' ? t->error : "-";
	cli_table_add(tab, row);
}

int
cli_rows_add(struct cli_rows *r, const struct model_thread *t, size_t n)
{
	int64_t now = clk_wall_ms();
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++, r->n++) {
		json_t *v;

		if (r->tab != NULL) {
			table_row(r->tab, &t[i], now);
			continue;
		}
		v = model_thread_json(&t[i]);
		if (r->c->format == CLI_YAML)
			rc = v != NULL ? emit_value(&r->em, v, 1) : -ENOMEM;
		else
			rc = json_element(r, v);
		json_decref(v);
	}
	if (r->tab != NULL && n > 0)
		cli_table_print(r->tab, stdout);
	if (r->em_open)
		yaml_emitter_flush(&r->em);
	fflush(stdout);
	return rc;
}

int
cli_rows_end(struct cli_rows *r)
{
	yaml_event_t ev;
	int rc = 0;

	if (r->tab != NULL) {
		cli_table_print(r->tab, stdout); /* the header, when no row came */
	} else if (r->c->format == CLI_YAML) {
		yaml_sequence_end_event_initialize(&ev);
		rc = emit(&r->em, &ev);
		if (rc == 0) {
			yaml_document_end_event_initialize(&ev, 1);
			rc = emit(&r->em, &ev);
		}
		if (rc == 0) {
			yaml_stream_end_event_initialize(&ev);
			rc = emit(&r->em, &ev);
		}
	} else {
		fputs(r->n == 0 ? "[]\n" : "\n]\n", stdout);
	}
	if (fflush(stdout) != 0)
		rc = -EIO;
	return rc;
}

void
cli_rows_free(struct cli_rows *r)
{
	if (r == NULL)
		return;
	cli_table_free(r->tab);
	if (r->em_open)
		yaml_emitter_delete(&r->em);
	free(r);
}

int
cli_print_threads(struct cli *c, const struct model_thread *t, size_t n)
{
	struct cli_rows *r = cli_rows_new(c);
	int rc = cli_rows_add(r, t, n);

	if (rc == 0)
		rc = cli_rows_end(r);
	cli_rows_free(r);
	return rc;
}

/* Text on one line, at most max bytes (cut on a UTF-8 boundary) and "...". */
static void
excerpt(char *buf, size_t len, const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (max > len - 4)
		max = len - 4;
	if (n <= max) {
		snprintf(buf, len, "%s", s);
	} else {
		i = max;
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--;
		snprintf(buf, len, "%.*s...", (int)i, s);
	}
	for (char *p = buf; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

int
cli_print_thread_detail(struct cli *c, const struct model_thread *t)
{
	char a[64], b[64], text[512];
	int64_t now = clk_wall_ms();

	if (c->format == CLI_JSON || c->format == CLI_YAML) {
		json_t *v = model_thread_json(t);
		int rc = cli_print_value(stdout, c->format, v);

		json_decref(v);
		return rc;
	}
	printf("ID:        %s\n", t->thread_id);
	if (t->version != 0)
		printf("Script:    %s (version %" PRId64 ")\n", t->script_name, t->version);
	else
		printf("Script:    %s\n", t->script_name);
	printf("Status:    %s\n", status_word(t));
	if (t->total_steps > 0 || t->current_step_path[0] != '\0') {
		printf("Step:      ");
		if (t->current_step_path[0] != '\0' && t->total_steps > 0)
			printf("%s of %" PRId64, t->current_step_path, t->total_steps);
		else if (t->current_step_path[0] != '\0')
			printf("%s", t->current_step_path);
		else
			printf("%" PRId64 " steps", t->total_steps);
		if (t->current_step_name[0] != '\0')
			printf(": %s", t->current_step_name);
		putchar('\n');
	}
	cli_time(a, sizeof(a), t->created_at_ms, false);
	cli_age(b, sizeof(b), t->created_at_ms, now);
	printf("Created:   %s (%s)\n", a, b);
	if (t->started_at_ms > 0) {
		cli_time(a, sizeof(a), t->started_at_ms, false);
		printf("Started:   %s\n", a);
	}
	if (t->finished_at_ms > 0) {
		cli_time(a, sizeof(a), t->finished_at_ms, false);
		cli_duration(b, sizeof(b),
		             t->started_at_ms > 0 ? t->finished_at_ms - t->started_at_ms : 0);
		printf("Finished:  %s (took %s)\n", a, b);
	} else if (t->started_at_ms > 0) {
		cli_duration(b, sizeof(b), now - t->started_at_ms);
		printf("Running:   %s\n", b);
	}
	if (t->error[0] != '\0')
		printf("Error:     %s\n", t->error);
	for (size_t i = 0; i < t->n_metadata; i++)
		printf("%s%s=%s\n", i == 0 ? "Metadata:  " : "           ", t->metadata[i].key,
		       t->metadata[i].value);
	if (t->input_json[0] != '\0') {
		excerpt(text, sizeof(text), t->input_json, c->format == CLI_WIDE ? 500 : 200);
		printf("Input:     %s\n", text);
	}
	return 0;
}
