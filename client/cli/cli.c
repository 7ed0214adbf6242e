/*
 * scriptum: the command line for Scriptum threads. This file is the entry:
 * the command line (global flags anywhere, each command's own flags),
 * the configuration, signals, and the exit status; the commands live in
 * cli_thread.c.
 *
 *	$ scriptum thread run echo --input '{"n": 1}' --result
 *	{"n": 1}
 *	$ scriptum thread list --status failed -o json | jq -r '.[].threadId'
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"

#define CLI_VERSION "0.1.0"

/* After SIGINT/SIGTERM, the seconds the command has to end by itself. */
#define CLI_SIGNAL_GRACE_S 2

atomic_int cli_signal;

/* For the life of the process: the signal thread may fire it at any time. */
static struct http_abort *abort_handle;

/* Whose secrets every message on stderr is cleaned of; set once connected. */
static struct api *secrets;

static const char usage_text[] =
    "usage: scriptum [global flags] thread <command> [flags] [args]\n"
    "       scriptum [global flags] health\n"
    "\n"
    "commands:\n"
    "  thread create <script>   start a thread   [--input JSON|@FILE|@-] [--version N] [--env]\n"
    "                           [--timeout DURATION] [--metadata KEY=VALUE]...\n"
    "  thread run <script>      start and follow [create's flags] [--result] [--save DIR]\n"
    "  thread watch <id>        follow until it finishes\n"
    "  thread get <id>          show a thread\n"
    "  thread list              recent threads   [--script NAME] [--status STATUS]\n"
    "                           [--page-size N] [--all]\n"
    "  thread result <id>       the output       [--save DIR]\n"
    "  thread steps <id>        the steps        [--step PATH] [--detail]\n"
    "  thread cancel <id>       cancel a thread\n"
    "  thread resume <id>       resume a paused thread [--input JSON|@FILE|@-]\n"
    "  health                   the server's status (no credentials needed)\n"
    "\n"
    "global flags:\n"
    "  -o, --output table|json|yaml|wide   --api-endpoint URL   --token TOKEN\n"
    "  --token-file FILE   --org-id ID   --org-name NAME   --profile NAME   --config FILE\n"
    "  --timeout DURATION (per call; after create/run it is the run's timeout: then use\n"
    "  --call-timeout)   --min-rate BYTES/S (1KiB; 0: none)   --min-rate-window DURATION\n"
    "  (30s)   -h, --help   --version\n"
    "\n"
    "See scriptum(1) and scriptum-config(5).\n";

/* One line on stderr, redacted: a message may quote the server. */
static void
say(const char *fmt, va_list ap)
{
	char line[4096];

	vsnprintf(line, sizeof(line), fmt, ap);
	api_redact(secrets, line, sizeof(line));
	fflush(stdout);
	fprintf(stderr, "scriptum: %s\n", line);
}

int
cli_fail(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return status;
}

void
cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}

int
cli_signal_status(void)
{
	if (cli_signal == SIGINT)
		return EXIT_SIGINT;
	if (cli_signal == SIGTERM)
		return EXIT_SIGTERM;
	return 0;
}

int
cli_api_error(const struct http_error *e)
{
	char buf[1024];

	/* after a signal every call fails at once (-EINTR): the signal is
	 * the reason, whatever the call in progress made of it */
	if (cli_signal != 0)
		return cli_signal_status();
	http_error_string(e, buf, sizeof(buf));
	return cli_fail(e->exit_code != 0 ? e->exit_code : EXIT_INTERNAL, "%s", buf);
}

/* ---- signals ---- */

static void *
signal_thread(void *unused)
{
	sigset_t set;
	int sig;

	(void)unused;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigwait(&set, &sig) == 0) {
		struct timespec grace = {CLI_SIGNAL_GRACE_S, 0};

		cli_signal = sig;
		http_abort(abort_handle);
		/* what does not see the abort (a write to a full pipe) gets
		 * a grace period; a second signal ends the process at once */
		sigtimedwait(&set, NULL, &grace);
		_exit(cli_signal_status());
	}
	return NULL;
}

/*
 * SIGINT and SIGTERM are taken by a thread of their own, which fires the
 * abort handle every call uses (api_set_abort()): a transfer, a back-off
 * wait, a poll's nap all end at once, and the code interrupted cleans up
 * and exits 130 or 143. No signal handler runs: nothing async-unsafe.
 */
static int
signals_start(void)
{
	sigset_t set;
	pthread_t t;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	if (pthread_create(&t, NULL, signal_thread, NULL) != 0)
		return -1;
	pthread_detach(t);
	return 0;
}

/* ---- the command line ---- */

enum flag_id {
	F_OUTPUT,
	F_ENDPOINT,
	F_TOKEN,
	F_TOKEN_FILE,
	F_ORG_ID,
	F_ORG_NAME,
	F_PROFILE,
	F_CONFIG,
	F_TIMEOUT,
	F_CALL_TIMEOUT,
	F_MIN_RATE,
	F_MIN_RATE_WINDOW,
	F_HELP,
	F_PROG_VERSION,
	/* command flags */
	F_INPUT,
	F_VERSION,
	F_ENV,
	F_RUN_TIMEOUT,
	F_METADATA,
	F_RESULT,
	F_SAVE,
	F_SCRIPT,
	F_STATUS,
	F_PAGE_SIZE,
	F_ALL,
	F_STEP,
	F_DETAIL,
};

struct flag {
	const char *name;
	char letter;
	bool has_arg;
	enum flag_id id;
	const char *commands; /* " create run " for a command flag; NULL: global */
};

static const struct flag flags[] = {
    {"output", 'o', true, F_OUTPUT, NULL},
    {"api-endpoint", 0, true, F_ENDPOINT, NULL},
    {"token", 0, true, F_TOKEN, NULL},
    {"token-file", 0, true, F_TOKEN_FILE, NULL},
    {"org-id", 0, true, F_ORG_ID, NULL},
    {"org", 0, true, F_ORG_ID, NULL},
    {"org-name", 0, true, F_ORG_NAME, NULL},
    {"profile", 0, true, F_PROFILE, NULL},
    {"config", 0, true, F_CONFIG, NULL},
    {"call-timeout", 0, true, F_CALL_TIMEOUT, NULL},
    {"min-rate", 0, true, F_MIN_RATE, NULL},
    {"min-rate-window", 0, true, F_MIN_RATE_WINDOW, NULL},
    {"help", 'h', false, F_HELP, NULL},
    /* after create/run these two mean the run's; elsewhere the global ones */
    {"timeout", 0, true, F_RUN_TIMEOUT, " create run "},
    {"version", 0, true, F_VERSION, " create run "},
    {"timeout", 0, true, F_TIMEOUT, NULL},
    {"version", 0, false, F_PROG_VERSION, NULL},
    {"input", 0, true, F_INPUT, " create run resume "},
    {"env", 0, false, F_ENV, " create run "},
    {"metadata", 0, true, F_METADATA, " create run "},
    {"result", 0, false, F_RESULT, " run "},
    {"save", 0, true, F_SAVE, " run result "},
    {"script", 0, true, F_SCRIPT, " list "},
    {"status", 0, true, F_STATUS, " list "},
    {"page-size", 0, true, F_PAGE_SIZE, " list "},
    {"all", 0, false, F_ALL, " list "},
    {"step", 0, true, F_STEP, " steps "},
    {"detail", 0, false, F_DETAIL, " steps "},
};

struct globals {
	const char *output;
	char *token_copy; /* --token's value, moved out of argv (owned) */
	struct config_overrides ov;
	bool help;
	bool version;
};

static bool
for_command(const struct flag *f, const char *command)
{
	char word[32];

	if (f->commands == NULL)
		return true;
	if (command == NULL)
		return false;
	snprintf(word, sizeof(word), " %s ", command);
	return strstr(f->commands, word) != NULL;
}

/* The flag called name (or letter), as it applies after command. */
static const struct flag *
find_flag(const char *name, size_t namelen, char letter, const char *command)
{
	const struct flag *generic = NULL;

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		const struct flag *f = &flags[i];
		bool match = letter != 0 ? f->letter == letter
		                         : strlen(f->name) == namelen &&
		                               strncmp(f->name, name, namelen) == 0;

		if (!match)
			continue;
		if (f->commands != NULL && for_command(f, command))
			return f; /* a command's own flag wins */
		if (f->commands == NULL && generic == NULL)
			generic = f;
	}
	return generic;
}

static int
set_flag(const struct flag *f, const char *value, struct globals *g, struct cli_args *a)
{
	switch (f->id) {
	case F_OUTPUT:
		g->output = value;
		break;
	case F_ENDPOINT:
		g->ov.endpoint = value;
		break;
	case F_TOKEN:
		g->ov.token = value;
		break;
	case F_TOKEN_FILE:
		g->ov.token_file = value;
		break;
	case F_ORG_ID:
		g->ov.org_id = value;
		break;
	case F_ORG_NAME:
		g->ov.org_name = value;
		break;
	case F_PROFILE:
		g->ov.profile = value;
		break;
	case F_CONFIG:
		g->ov.config_path = value;
		break;
	case F_TIMEOUT:
	case F_CALL_TIMEOUT:
		g->ov.timeout = value;
		break;
	case F_MIN_RATE:
		g->ov.min_rate = value;
		break;
	case F_MIN_RATE_WINDOW:
		g->ov.min_rate_window = value;
		break;
	case F_HELP:
		g->help = true;
		break;
	case F_PROG_VERSION:
		g->version = true;
		break;
	case F_INPUT:
		a->input = value;
		break;
	case F_VERSION:
		a->version = value;
		break;
	case F_ENV:
		a->env = true;
		break;
	case F_RUN_TIMEOUT:
		a->run_timeout = value;
		break;
	case F_METADATA: {
		const char *eq = strchr(value, '=');

		if (eq == NULL || eq == value)
			return cli_fail(EXIT_INVALID, "--metadata wants KEY=VALUE, not '%s'",
			                value);
		if (a->n_metadata == CLI_MAX_METADATA)
			return cli_fail(EXIT_INVALID, "at most %d --metadata entries",
			                CLI_MAX_METADATA);
		/* the key is cut out of argv in place: argv is ours */
		a->metadata[a->n_metadata].key = (char *)value;
		*(char *)eq = '\0';
		a->metadata[a->n_metadata].value = (char *)eq + 1;
		a->n_metadata++;
		break;
	}
	case F_RESULT:
		a->result = true;
		break;
	case F_SAVE:
		a->save = value;
		break;
	case F_SCRIPT:
		a->script = value;
		break;
	case F_STATUS:
		a->status = value;
		break;
	case F_PAGE_SIZE:
		a->page_size = value;
		break;
	case F_ALL:
		a->all = true;
		break;
	case F_STEP:
		a->step = value;
		break;
	case F_DETAIL:
		a->detail = true;
		break;
	}
	return 0;
}

static const char *const commands[] = {"create", "run",   "watch",  "get",    "list",
                                       "result", "steps", "cancel", "resume", NULL};

static bool
known_command(const char *s)
{
	for (int i = 0; commands[i] != NULL; i++)
		if (strcmp(commands[i], s) == 0)
			return true;
	return false;
}

/* Hides a token given on the command line from ps(1): the value is copied
 * and argv's bytes overwritten. */
static char *
hide(char *value)
{
	char *copy = strdup(value);

	if (copy == NULL) {
		fputs("scriptum: out of memory\n", stderr);
		exit(EXIT_INTERNAL);
	}
	memset(value, 'x', strlen(value));
	return copy;
}

/*
 * Parses argv into g and a. Words: "thread" then a command and its
 * argument, or "health", or "help". Returns 0 or an exit status.
 */
static int
parse(int argc, char **argv, struct globals *g, struct cli_args *a, const char **group)
{
	const char *words[4];
	size_t nwords = 0;
	bool only_words = false;

	for (int i = 1; i < argc; i++) {
		char *s = argv[i];
		const struct flag *f;
		const char *value = NULL;
		const char *command = nwords >= 2 ? words[1] : NULL;
		int rc;

		if (only_words || s[0] != '-' || s[1] == '\0') {
			if (nwords == sizeof(words) / sizeof(words[0]))
				return cli_fail(EXIT_INVALID, "unexpected argument '%s'", s);
			words[nwords++] = s;
			if (nwords == 2 && strcmp(words[0], "thread") == 0)
				a->command = s;
			continue;
		}
		if (strcmp(s, "--") == 0) {
			only_words = true;
			continue;
		}
		if (s[1] == '-') {
			const char *name = s + 2, *eq = strchr(name, '=');
			size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);

			f = find_flag(name, n, 0, command);
			if (f == NULL)
				return cli_fail(EXIT_INVALID,
				                "unknown flag --%.*s (see scriptum --help)", (int)n,
				                name);
			if (eq != NULL) {
				if (!f->has_arg)
					return cli_fail(EXIT_INVALID, "--%s takes no value",
					                f->name);
				value = eq + 1;
			}
		} else {
			f = find_flag(NULL, 0, s[1], command);
			if (f == NULL)
				return cli_fail(EXIT_INVALID,
				                "unknown flag %s (see scriptum --help)", s);
			if (s[2] != '\0') {
				if (!f->has_arg)
					return cli_fail(EXIT_INVALID, "-%c takes no value",
					                f->letter);
				value = s[2] == '=' ? s + 3 : s + 2;
			}
		}
		if (f->commands != NULL && !for_command(f, command))
			return cli_fail(EXIT_INVALID, "--%s is not a flag of this command",
			                f->name);
		if (f->has_arg && value == NULL) {
			if (i + 1 >= argc)
				return cli_fail(EXIT_INVALID, "--%s needs a value", f->name);
			value = argv[++i];
		}
		if (f->id == F_TOKEN) {
			free(g->token_copy);
			value = g->token_copy = hide((char *)value);
		}
		if ((rc = set_flag(f, value, g, a)) != 0)
			return rc;
	}
	*group = nwords > 0 ? words[0] : NULL;
	if (g->help || g->version || *group == NULL || strcmp(*group, "help") == 0)
		return 0;
	if (strcmp(*group, "health") == 0) {
		if (nwords > 1)
			return cli_fail(EXIT_INVALID, "health takes no argument");
		a->command = "health";
		return 0;
	}
	if (strcmp(*group, "thread") != 0)
		return cli_fail(EXIT_INVALID, "unknown command '%s' (see scriptum --help)", *group);
	if (a->command == NULL)
		return cli_fail(EXIT_INVALID, "thread: which command? (see scriptum --help)");
	if (!known_command(a->command))
		return cli_fail(EXIT_INVALID, "unknown command 'thread %s' (see scriptum --help)",
		                a->command);
	if (strcmp(a->command, "list") == 0) {
		if (nwords > 2)
			return cli_fail(EXIT_INVALID, "thread list takes no argument");
		return 0;
	}
	if (nwords < 3)
		return cli_fail(EXIT_INVALID, "thread %s: which %s?", a->command,
		                strcmp(a->command, "create") == 0 || strcmp(a->command, "run") == 0
		                    ? "script"
		                    : "thread");
	if (nwords > 3)
		return cli_fail(EXIT_INVALID, "thread %s: unexpected argument '%s'", a->command,
		                words[3]);
	a->arg = words[2];
	return 0;
}

static int
parse_format(const char *s, enum cli_format *f)
{
	if (s == NULL || strcmp(s, "table") == 0)
		*f = CLI_TABLE;
	else if (strcmp(s, "json") == 0)
		*f = CLI_JSON;
	else if (strcmp(s, "yaml") == 0)
		*f = CLI_YAML;
	else if (strcmp(s, "wide") == 0)
		*f = CLI_WIDE;
	else
		return cli_fail(EXIT_INVALID, "-o wants table, json, yaml or wide, not '%s'", s);
	return 0;
}

/* The client from the resolved configuration. */
static int
connect_api(struct cli *c, struct globals *g)
{
	struct config *cfg = NULL;
	struct http_options o;
	char err[512];
	int rc;

	if (config_resolve(&g->ov, &cfg, err, sizeof(err)) != 0)
		return cli_fail(EXIT_INVALID, "%s", err);
	for (size_t i = 0; i < cfg->nwarnings; i++)
		cli_warn("%s", cfg->warnings[i]);
	if (cfg->endpoint == NULL) {
		config_free(cfg);
		return cli_fail(EXIT_INVALID,
		                "no API endpoint: use --api-endpoint, SCRIPTUM_API_ENDPOINT or a "
		                "profile's endpoint (scriptum-config(5))");
	}
	http_options_from_config(&o, cfg);
	o.user_agent = "scriptum/" CLI_VERSION;
	if (o.deadline_ms == 0)
		o.deadline_ms = HTTP_DEADLINE_MS;
	/* a stream has no deadline, but need not wait in silence longer than a call */
	if (o.deadline_ms < HTTP_STALL_MS)
		o.stall_ms = o.deadline_ms;
	c->call_timeout_ms = o.deadline_ms;
	rc = api_new(&o, &c->api, err, sizeof(err));
	config_free(cfg);
	if (rc != 0)
		return cli_fail(EXIT_INVALID, "%s", err);
	api_set_abort(c->api, c->abort);
	secrets = c->api;
	return 0;
}

int
main(int argc, char **argv)
{
	struct globals g = {0};
	struct cli_args a = {0};
	struct cli c = {0};
	const char *group = NULL;
	int rc;

	if ((rc = parse(argc, argv, &g, &a, &group)) != 0)
		return rc;
	if (g.version) {
		printf("scriptum %s\n", CLI_VERSION);
		return 0;
	}
	if (g.help || group == NULL || strcmp(group, "help") == 0) {
		fputs(usage_text, group == NULL && !g.help ? stderr : stdout);
		return group == NULL && !g.help ? EXIT_INVALID : 0;
	}
	if ((rc = parse_format(g.output, &c.format)) != 0)
		return rc;
	c.tty_out = isatty(STDOUT_FILENO);
	c.tty_err = isatty(STDERR_FILENO);
	if ((c.abort = abort_handle = http_abort_new()) == NULL)
		return cli_fail(EXIT_INTERNAL, "out of memory");
	if (signals_start() != 0)
		return cli_fail(EXIT_INTERNAL, "cannot set up signal handling");
	rc = connect_api(&c, &g);
	free(g.token_copy);
	if (rc != 0)
		return rc;
	if (strcmp(a.command, "health") == 0)
		rc = cli_health(&c);
	else
		rc = cli_thread(&c, &a);
	if (fflush(stdout) != 0 && rc == 0)
		rc = cli_fail(EXIT_INTERNAL, "writing the output: %s", strerror(errno));
	/* a command that ended on its own after a signal was still interrupted */
	if (cli_signal != 0)
		rc = cli_signal_status();
	secrets = NULL;
	api_free(c.api);
	/* the signal thread may still hold the abort handle: it is left to exit() */
	return rc;
}
