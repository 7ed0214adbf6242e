/*
 * The small files of a thread directory (doc/SEMANTICS.md, Layout),
 * rendered from the API's answers: the one place that decides their bytes,
 * so a thread saved by `scriptum thread result --save` and the same thread
 * in the mount compare equal with `diff -r`. Payloads (output.json, a
 * step's input.json and output.json) are not here: they are the API's
 * bytes, streamed.
 *
 * Each function makes a new buffer in *out (free() it; NUL-terminated for
 * convenience), its length in *len, and returns 0 or -ENOMEM.
 */
#ifndef SCRIPTUM_LAYOUT_H
#define SCRIPTUM_LAYOUT_H

#include <stddef.h>

#include "model.h"

/* "completed\n": the lowercase status word and a newline. */
int layout_status(const struct model_thread *t, char **out, size_t *len);
int layout_step_status(const struct model_step *s, char **out, size_t *len);

/* The Thread, canonical, pretty (two-space indent), and a newline. */
int layout_thread_json(const struct model_thread *t, char **out, size_t *len);

/* The thread's input, pretty-printed with numbers and strings as sent, and
 * a newline; "null\n" when there is none. Input that is not JSON (the API's
 * fault), or whose pretty form would pass 256 MiB, is kept as it came, with
 * a newline. */
int layout_input_json(const struct model_thread *t, char **out, size_t *len);

/* The summary: the thread's status, timings and sizes, the step summaries
 * and the yield count, pretty. r is GetThreadResult's answer (metadata). */
int layout_summary_json(const struct model_thread *t, const struct model_result *r, char **out,
                        size_t *len);

/* One yielded value a line, compact; "" (len 0) when there are none. */
int layout_yields(const struct model_result *r, char **out, size_t *len);

/* A step's StepDetail without its inline input and output, pretty. */
int layout_step_json(const struct model_step_detail *d, char **out, size_t *len);

/* An error message and a newline ("" when msg is empty). */
int layout_error(const char *msg, char **out, size_t *len);

#endif
