/*
 * A scriptum-emulator for a unit test: started on a free loopback port with
 * the demo catalog and the test's own arguments, in a private temporary
 * directory; its URL; its /_emulator/ control calls; stopped with a check
 * that it exited cleanly (the ASan+UBSan build must stay clean). The binary
 * is $SCRIPTUM_EMULATOR, else build/scriptum-emulator.
 *
 *	static const char *const extra[] = {"--unary-limit", "1000", NULL};
 *	struct emu *em;
 *
 *	if (emu_start(extra, &em) != 0)	// in a setup: the test errs
 *		return -1;
 *	o.endpoint = emu_url(em);
 *	emu_seed(em, "fanout", 5000, id, sizeof(id));
 *	emu_faults(em, "{\"errorCount\": 1}");
 *	assert_int_equal(emu_calls(em, "GetThreadResult", 1, 1000, 50), 1);
 *	emu_stop(em);			// in the teardown
 *
 * The control calls fail the running test (cmocka) on any answer but 200,
 * as every caller would.
 */
#ifndef TESTS_EMU_H
#define TESTS_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct emu;

/* Helpers of every test: a monotonic clock in ms, and a sleep. */
int64_t emu_now_ms(void);
void emu_sleep_ms(int ms);

/* Whether $SCRIPTUM_EMULATOR names an emulator; a test that wants one to be
 * given, and not the default path, skip()s without. */
bool emu_configured(void);

/* Starts the emulator with extra arguments (NULL-terminated, or NULL) after
 * --listen 127.0.0.1:0 --seed demo, and waits for its "listening on URL"
 * line. Returns 0 and *out (emu_stop() it), or -errno; a start that failed
 * shows the emulator's stderr. */
int emu_start(const char *const *extra, struct emu **out);

/* "http://127.0.0.1:PORT" (https with --tls-cert); valid until emu_stop(). */
const char *emu_url(const struct emu *em);

/* Its private directory, free for the test's own files (a token file, a
 * cache); removed with everything in it by emu_stop(). */
const char *emu_dir(const struct emu *em);

/* Stops it (SIGTERM; SIGKILL after 3 s), removes its directory and frees
 * em; NULL is fine. 0 when it exited with status 0; else -EIO, and its
 * stderr (a sanitizer's report, say) is copied to ours. */
int emu_stop(struct emu *em);

/* A control call, e.g. ("POST", "/_emulator/token", "{...}"); body NULL:
 * none. Returns the parsed answer (json_decref() it). */
json_t *emu_ctl(struct emu *em, const char *method, const char *path, const char *body);

/* Sets the fault injection (POST /_emulator/faults); "{}": none. */
void emu_faults(struct emu *em, const char *json);

/* Seeds one finished thread of script with output_bytes of output; its id
 * goes into id. */
void emu_seed(struct emu *em, const char *script, size_t output_bytes, char *id, size_t idlen);

/* The thread's output as the emulator holds it (free() it), *len bytes. */
unsigned char *emu_output(struct emu *em, const char *id, size_t *len);

/* API requests the emulator has logged under call ("CreateThread"), or all
 * of them (call NULL). It logs a request once its connection is done with
 * it, a moment after the answer: waits up to wait_ms for at least want;
 * then, with settle_ms, waits that much more and counts again, so that a
 * count above want shows too. */
long emu_calls(struct emu *em, const char *call, long want, int wait_ms, int settle_ms);

/* Clears the request log, once it has stopped growing. */
void emu_forget_requests(struct emu *em);

#endif
