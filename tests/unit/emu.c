/*
 * A scriptum-emulator for a unit test (see emu.h): a child process on a
 * free loopback port, its stderr in a file of its private directory, and
 * an HTTP client of its own for the /_emulator/ control calls, so that the
 * counters of the clients under test stay theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "emu.h"
#include "http.h"

#define EMU_DEFAULT_BIN "build/scriptum-emulator"
#define EMU_MAX_ARGV    32                  /* the emulator's own five included */
#define EMU_MAX_BODY    ((size_t)128 << 20) /* a seeded thread's output, read back whole */
#define EMU_START_MS    20000               /* for the "listening on" line */

struct emu {
	pid_t pid;
	int out; /* its stdout, kept open so that it never gets SIGPIPE */
	struct http_client *ctl;
	char url[256];
	char dir[128]; /* private; removed by emu_stop() */
	char log[160]; /* its stderr, inside dir */
};

int64_t
emu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
emu_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Copies the emulator's stderr to ours. */
static void
emu_show_log(const struct emu *em)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(em->log, "r");

	if (f == NULL)
		return;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stderr);
	fclose(f);
}

static int
emu_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Frees em and what it holds once the process is gone. */
static void
emu_free(struct emu *em)
{
	http_client_free(em->ctl);
	if (em->out >= 0)
		close(em->out);
	nftw(em->dir, emu_remove, 8, FTW_DEPTH | FTW_PHYS);
	free(em);
}

/* Forks and execs bin with argv, its stdout a pipe to em->out and its
 * stderr em->log. 0 or -errno. */
static int
emu_spawn(struct emu *em, const char *bin, const char *const *argv)
{
	int pfd[2], rc;

	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -errno;
	if ((em->pid = fork()) < 0) {
		rc = -errno;
		em->pid = 0;
		close(pfd[0]);
		close(pfd[1]);
		return rc;
	}
	if (em->pid == 0) {
		int log = open(em->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(pfd[1], STDOUT_FILENO);
		if (log >= 0)
			dup2(log, STDERR_FILENO);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	em->out = pfd[0];
	return 0;
}

/* Reads the first line of its stdout into line (NUL-terminated, no
 * newline); it is "listening on URL" once the emulator serves. */
static void
emu_first_line(struct emu *em, char *line, size_t len)
{
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = {em->out, POLLIN, 0};

		if (poll(&p, 1, EMU_START_MS) <= 0 || read(em->out, line + n, 1) <= 0 ||
		    line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
}

bool
emu_configured(void)
{
	const char *bin = getenv("SCRIPTUM_EMULATOR");

	return bin != NULL && bin[0] != '\0';
}

int
emu_start(const char *const *extra, struct emu **out)
{
	const char *bin = emu_configured() ? getenv("SCRIPTUM_EMULATOR") : EMU_DEFAULT_BIN;
	const char *argv[EMU_MAX_ARGV + 1] = {bin, "--listen", "127.0.0.1:0", "--seed", "demo"};
	struct http_options o = {0};
	struct emu *em;
	char line[256];
	size_t argc = 5;
	int rc;

	for (; extra != NULL && *extra != NULL; extra++) {
		if (argc == EMU_MAX_ARGV)
			return -E2BIG;
		argv[argc++] = *extra;
	}
	if ((em = calloc(1, sizeof(*em))) == NULL)
		return -ENOMEM;
	em->out = -1;
	snprintf(em->dir, sizeof(em->dir), "/tmp/%s.XXXXXX", program_invocation_short_name);
	if (mkdtemp(em->dir) == NULL) {
		rc = -errno;
		free(em);
		return rc;
	}
	snprintf(em->log, sizeof(em->log), "%s/emulator.log", em->dir);
	if ((rc = emu_spawn(em, bin, argv)) != 0) {
		emu_free(em);
		return rc;
	}
	emu_first_line(em, line, sizeof(line));
	if (strncmp(line, "listening on ", 13) != 0) {
		kill(em->pid, SIGKILL);
		waitpid(em->pid, NULL, 0);
		fprintf(stderr, "emulator %s did not start: '%s'\n", bin, line);
		emu_show_log(em);
		emu_free(em);
		return -EIO;
	}
	snprintf(em->url, sizeof(em->url), "%s", line + 13);
	o.endpoint = em->url;
	o.deadline_ms = 10000;
	o.backoff_base_ms = 20;
	o.backoff_max_ms = 200;
	if ((rc = http_client_new(&o, &em->ctl, NULL, 0)) != 0) {
		emu_stop(em);
		return rc;
	}
	*out = em;
	return 0;
}

const char *
emu_url(const struct emu *em)
{
	return em->url;
}

const char *
emu_dir(const struct emu *em)
{
	return em->dir;
}

int
emu_stop(struct emu *em)
{
	int status = 0, rc = 0;

	if (em == NULL)
		return 0;
	kill(em->pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(em->pid, &status, WNOHANG) == em->pid)
			goto out;
		emu_sleep_ms(10);
	}
	kill(em->pid, SIGKILL);
	waitpid(em->pid, &status, 0);
out:
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "emulator exited with status %#x; its stderr:\n", status);
		emu_show_log(em);
		rc = -EIO;
	}
	emu_free(em);
	return rc;
}

/* A control call with a buffered answer; returns the body (free() it). */
static char *
emu_ctl_raw(struct emu *em, const char *method, const char *path, const char *body, size_t *len)
{
	struct http_request rq = {.call = "control", .method = method, .path = path};
	struct http_response r = {0};
	struct http_error e;
	char *text;

	rq.flags = HTTP_NO_AUTH;
	rq.max_body = EMU_MAX_BODY;
	if (body != NULL) {
		rq.body = body;
		rq.body_len = strlen(body);
	}
	if (http_do(em->ctl, &rq, &r, &e) != 0)
		fprintf(stderr, "%s %s: %s\n", method, path, e.message);
	assert_int_equal(r.status, 200);
	text = r.body;
	*len = r.len;
	r.body = NULL;
	http_response_clear(&r);
	return text;
}

json_t *
emu_ctl(struct emu *em, const char *method, const char *path, const char *body)
{
	size_t len;
	char *text = emu_ctl_raw(em, method, path, body, &len);
	json_t *j = json_loadb(text, len, 0, NULL);

	assert_non_null(j);
	free(text);
	return j;
}

void
emu_faults(struct emu *em, const char *json)
{
	json_decref(emu_ctl(em, "POST", "/_emulator/faults", json));
}

void
emu_seed(struct emu *em, const char *script, size_t output_bytes, char *id, size_t idlen)
{
	char body[200];
	json_t *j;

	snprintf(body, sizeof(body),
	         "{\"script\": \"%s\", \"count\": 1, \"status\": \"completed\", "
	         "\"outputBytes\": %zu}",
	         script, output_bytes);
	j = emu_ctl(em, "POST", "/_emulator/seed", body);
	snprintf(id, idlen, "%s",
	         json_string_value(json_array_get(json_object_get(j, "threadIds"), 0)));
	json_decref(j);
	assert_true(id[0] != '\0');
}

unsigned char *
emu_output(struct emu *em, const char *id, size_t *len)
{
	char path[256];

	snprintf(path, sizeof(path), "/_emulator/threads/%s/output", id);
	return (unsigned char *)emu_ctl_raw(em, "GET", path, NULL, len);
}

/* What the request log counts now: under call, or in all (NULL). */
static long
emu_count(struct emu *em, const char *call)
{
	json_t *j = emu_ctl(em, "GET", "/_emulator/requests", NULL);
	json_t *n = call != NULL ? json_object_get(json_object_get(j, "byCall"), call)
	                         : json_object_get(j, "total");
	long v = (long)json_integer_value(n);

	json_decref(j);
	return v;
}

long
emu_calls(struct emu *em, const char *call, long want, int wait_ms, int settle_ms)
{
	long n;

	for (int waited = 0;; waited += 10) {
		n = emu_count(em, call);
		if (n >= want || waited + 10 >= wait_ms)
			break;
		emu_sleep_ms(10);
	}
	if (settle_ms > 0 && n >= want) {
		emu_sleep_ms(settle_ms);
		n = emu_count(em, call);
	}
	return n;
}

void
emu_forget_requests(struct emu *em)
{
	long n = emu_count(em, NULL), m;

	for (int i = 0; i < 100; i++) {
		emu_sleep_ms(100);
		if ((m = emu_count(em, NULL)) == n)
			break;
		n = m;
	}
	json_decref(emu_ctl(em, "DELETE", "/_emulator/requests", NULL));
}
