/*
 * What the parts of the model share (model.c: the message tables, clearing
 * and parsing; model_enum.c: enums and step paths; model_out.c: copying
 * and rendering): the description of a message as a table of its fields,
 * the tables themselves, and the enum helpers. Private to client/model*.c.
 */
#ifndef SCRIPTUM_MODEL_INT_H
#define SCRIPTUM_MODEL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* ---- enums (model_enum.c) ---- */

struct enum_info {
	const char *const *names; /* full names by C value, [0] = ..._UNSPECIFIED */
	int n;                    /* values with a name; n itself is the UNKNOWN value */
	int cancelled;            /* the value "CANCELED" means, or 0 */
	const char *prefixes[3];  /* stripped when present; [0] is the canonical one */
};

extern const struct enum_info model_thread_status_enum, model_step_status_enum,
    model_event_type_enum, model_script_status_enum, model_version_status_enum,
    model_step_part_enum;

/* An enum from the wire's integer v: its C value (e->n, UNKNOWN, when out
 * of range), with the text kept in text (MODEL_ENUM_TEXT_MAX) when not a
 * known name. */
int model_enum_from_int(const struct enum_info *e, int64_t v, char *text);
/* The same from a name in any of the wire's spellings. */
int model_enum_from_text(const struct enum_info *e, const char *s, char *text);
/* The canonical name of value v, or text when v is UNKNOWN and text is
 * set, else unknown. */
const char *model_enum_name(const struct enum_info *e, int v, const char *text,
                            const char *unknown);
/* A decimal integer of n bytes at s, all of them; 0 or -1. */
int model_i64_from_text(const char *s, size_t n, int64_t *out);

/* ---- message tables (model.c) ---- */

enum kind {
	K_STR,   /* char *: a JSON string; with en, an enum kept as its text (a name, a
	          * prefixed name or an integer, the full name when known) */
	K_JSON,  /* char *: a string holding JSON, or a JSON value kept as its text */
	K_INT,   /* int64_t: rendered as a JSON number */
	K_I64,   /* int64_t: rendered as a decimal string */
	K_BOOL,  /* bool */
	K_ENUM,  /* an enum stored as int; aux: its char[MODEL_ENUM_TEXT_MAX] text */
	K_BYTES, /* unsigned char *: base64 on the wire; aux: the size_t length */
	K_META,  /* struct model_kv *: an object of strings; aux: the size_t count */
	K_STRS,  /* char **: an array of strings; aux: the size_t count */
	K_JSONS, /* char **: an array of K_JSON values; aux: the size_t count */
	K_OBJ,   /* a nested struct (sub); aux: its bool "present" flag */
	K_ARRAY, /* an array of structs (sub); aux: the size_t count */
};

#define NO_AUX ((size_t)-1)

struct msg;

struct field {
	const char *name; /* canonical wire name (camelCase) */
	enum kind kind;
	size_t off;
	size_t aux; /* NO_AUX when the kind's companion member is absent */
	const struct msg *sub;
	const struct enum_info *en;
	unsigned flags; /* F_ID, F_LISTING */
};

/*
 * Strings and NUL (doc/WIRE.md, Identity: a NUL never truncates an id).
 * jansson keeps a string's length, and a "\u0000" in it would cut a C
 * string short: "nul\u0000id" would become "nul", another thread. So:
 *  - F_ID: a string that names something (an id, a script's name, a
 *    step's path, a page token). Holding a NUL it is unusable: the parse
 *    fails with -EPROTO naming the field.
 *  - F_LISTING: an array of entries (threads, scripts) where an entry
 *    with an unusable id is left out, counted in n_unusable, and the rest
 *    of the listing stands: one bad entry must not hide the others.
 *  - every other string is free text (an error, a description, a JSON
 *    text): each NUL becomes U+FFFD, so the text keeps its length in
 *    characters and is never silently cut.
 */
#define F_ID      1u
#define F_LISTING 2u

struct msg {
	const char *name; /* for error messages */
	const struct field *fields;
	size_t n;
	size_t size;
};

#define AT(base, off, type)  ((type *)(void *)((char *)(base) + (off)))
#define CAT(base, off, type) ((type const *)(const void *)((const char *)(base) + (off)))

extern const struct msg model_detail_msg, model_event_msg, model_health_msg, model_result_msg,
    model_script_msg, model_step_msg, model_thread_msg, model_version_msg;

/* Frees what the walkers allocated in base, a struct of message m. */
void model_msg_clear(const struct msg *m, void *base);

#endif
