/*
 * Configuration: precedence (flags, environment, file), profile selection,
 * path expansion, the refusal of secrets others can read, file errors that
 * name the line, durations, and a rendering that never shows a secret. Each
 * test gets its own temporary directory as $HOME and a fake environment.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define TOKEN  "tok-SECRET-4f9a"
#define SECRET "cs-SECRET-77b1"

struct fixture {
	char dir[64];
	const char *env_name[16];
	const char *env_value[16];
	size_t nenv;
	char err[512];
};

static const char *
fake_env(const char *name, void *arg)
{
	struct fixture *fx = arg;

	for (size_t i = 0; i < fx->nenv; i++)
		if (strcmp(fx->env_name[i], name) == 0)
			return fx->env_value[i];
	return NULL;
}

/* Sets (or with NULL, unsets) a variable of the fake environment. Names and
 * values must outlive the test. */
static void
env_set(struct fixture *fx, const char *name, const char *value)
{
	for (size_t i = 0; i < fx->nenv; i++) {
		if (strcmp(fx->env_name[i], name) == 0) {
			fx->env_value[i] = value;
			return;
		}
	}
	assert_true(fx->nenv < 16);
	fx->env_name[fx->nenv] = name;
	fx->env_value[fx->nenv++] = value;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_config.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	env_set(fx, "HOME", fx->dir);
	*state = fx;
	return 0;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	nftw(fx->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* The path of rel under the test directory, in a static buffer per slot. */
static const char *
path_in(struct fixture *fx, const char *rel)
{
	static char buf[8][256];
	static int slot;
	char *p = buf[slot++ % 8];

	snprintf(p, 256, "%s/%s", fx->dir, rel);
	return p;
}

/* Writes text to rel under the test directory (making directories) with
 * mode; returns its path. */
static const char *
write_file(struct fixture *fx, const char *rel, mode_t mode, const char *text)
{
	const char *path = path_in(fx, rel);
	char dir[256];
	FILE *f;

	snprintf(dir, sizeof(dir), "%s", path);
	for (char *s = dir + strlen(fx->dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		mkdir(dir, 0700);
		*s = '/';
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static const char *
write_config(struct fixture *fx, mode_t mode, const char *text)
{
	return write_file(fx, ".config/scriptum/config.yaml", mode, text);
}

static struct config_overrides
overrides(struct fixture *fx)
{
	struct config_overrides ov = {.env = fake_env, .env_arg = fx};

	return ov;
}

static struct config *
resolve_ok(struct fixture *fx, const struct config_overrides *ov)
{
	struct config *c = NULL;
	int rc = config_resolve(ov, &c, fx->err, sizeof(fx->err));

	if (rc != 0)
		fail_msg("config_resolve: %d: %s", rc, fx->err);
	assert_non_null(c);
	return c;
}

/* Resolves expecting failure rc; the message is left in fx->err. */
static void
resolve_fails(struct fixture *fx, const struct config_overrides *ov, int rc)
{
	struct config *c = NULL;
	int got = config_resolve(ov, &c, fx->err, sizeof(fx->err));

	if (got != rc)
		fail_msg("config_resolve: want %d, got %d: %s", rc, got, fx->err);
	assert_null(c);
	assert_true(fx->err[0] != '\0');
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (hay == NULL || strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay ? hay : "(null)", needle);
}

static void
assert_lacks(const char *hay, const char *needle)
{
	if (hay != NULL && strstr(hay, needle) != NULL)
		fail_msg("\"%s\" contains \"%s\"", hay, needle);
}

/* ---- durations ---- */

static void
test_duration_parses_units_and_bare_seconds(void **state)
{
	static const struct {
		const char *text;
		int64_t ms;
	} cases[] = {
	    {"30s", 30000},         {"5m", 300000}, {"1h", 3600000},  {"1m30s", 90000},
	    {"250ms", 250},         {"30", 30000},  {"1.5s", 1500},   {"0.25", 250},
	    {"1h2m3s4ms", 3723004}, {"0", 0},       {"90m", 5400000}, {"1.5h", 5400000},
	};
	int64_t ms;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = -1;
		if (config_parse_duration(cases[i].text, &ms) != 0)
			fail_msg("\"%s\" rejected", cases[i].text);
		if (ms != cases[i].ms)
			fail_msg("\"%s\": want %lld, got %lld", cases[i].text,
			         (long long)cases[i].ms, (long long)ms);
	}
}

static void
test_duration_rejects_garbage(void **state)
{
	static const char *const bad[] = {
	    "",
	    "5x",
	    "-1s",
	    "s",
	    " 5s",
	    "5s ",
	    "1m30",
	    "1.s",
	    ".5s",
	    "1e3",
	    "5 s",
	    "+5s",
	    "5S",
	    "1sms",
	    "ms",
	    "1..5",
	    "9999999999999999999999s",
	    "99999999999999999h",
	};
	int64_t ms = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (config_parse_duration(bad[i], &ms) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	assert_int_equal(config_parse_duration(NULL, &ms), -EINVAL);
	assert_int_equal(ms, 42);
}

static void
test_duration_formats_and_reads_back(void **state)
{
	static const int64_t values[] = {0, 250, 1000, 30000, 90000, 3600000, 3723004, 86400000};
	char buf[64];
	int64_t back;

	(void)state;
	config_format_duration(90000, buf, sizeof(buf));
	assert_string_equal(buf, "1m30s");
	config_format_duration(250, buf, sizeof(buf));
	assert_string_equal(buf, "250ms");
	config_format_duration(0, buf, sizeof(buf));
	assert_string_equal(buf, "0s");
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		config_format_duration(values[i], buf, sizeof(buf));
		assert_int_equal(config_parse_duration(buf, &back), 0);
		assert_int_equal(back, values[i]);
	}
}

/* ---- precedence ---- */

static void
test_nothing_set_leaves_everything_unset(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c = resolve_ok(fx, &ov);

	assert_null(c->endpoint);
	assert_null(c->token);
	assert_null(c->profile);
	assert_int_equal(c->timeout_ms, 0);
	assert_int_equal(c->source[CONFIG_ENDPOINT], CONFIG_SRC_UNSET);
	assert_string_equal(c->path, path_in(fx, ".config/scriptum/config.yaml"));
	assert_int_equal(c->source[CONFIG_PATH], CONFIG_SRC_DEFAULT);
	assert_false(c->path_found);
	config_free(c);
}

static const char all_fields_yaml[] = "profile: p\n"
                                      "profiles:\n"
                                      "  p:\n"
                                      "    endpoint: https://file.example\n"
                                      "    token: file-token\n"
                                      "    org_id: file-org-id\n"
                                      "    org_name: file-org\n"
                                      "    ca_file: /file/ca.pem\n"
                                      "    timeout: 30s\n";

static void
test_flag_beats_env_beats_file_for_each_field(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0600, all_fields_yaml);
	env_set(fx, "SCRIPTUM_API_ENDPOINT", "https://env.example");
	env_set(fx, "SCRIPTUM_TOKEN", "env-token");
	env_set(fx, "SCRIPTUM_ORG_ID", "env-org-id");
	env_set(fx, "SCRIPTUM_ORG_NAME", "env-org");
	ov.endpoint = "https://flag.example";
	ov.token = "flag-token";
	ov.org_id = "flag-org-id";
	ov.org_name = "flag-org";
	ov.ca_file = "/flag/ca.pem";
	ov.timeout = "5m";

	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://flag.example");
	assert_string_equal(c->token, "flag-token");
	assert_string_equal(c->org_id, "flag-org-id");
	assert_string_equal(c->org_name, "flag-org");
	assert_string_equal(c->ca_file, "/flag/ca.pem");
	assert_int_equal(c->timeout_ms, 300000);
	for (int f = CONFIG_ENDPOINT; f <= CONFIG_TIMEOUT; f++)
		if (f != CONFIG_TOKEN_FILE && f < CONFIG_TOKEN_URL)
			assert_int_equal(c->source[f], CONFIG_SRC_FLAG);
	assert_int_equal(c->source[CONFIG_TIMEOUT], CONFIG_SRC_FLAG);
	config_free(c);

	/* Without flags: the environment where it has a variable, else the file. */
	ov = overrides(fx);
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://env.example");
	assert_string_equal(c->token, "env-token");
	assert_string_equal(c->org_id, "env-org-id");
	assert_string_equal(c->org_name, "env-org");
	assert_string_equal(c->ca_file, "/file/ca.pem");
	assert_int_equal(c->timeout_ms, 30000);
	assert_int_equal(c->source[CONFIG_ENDPOINT], CONFIG_SRC_ENV);
	assert_string_equal(c->env_var[CONFIG_ENDPOINT], "SCRIPTUM_API_ENDPOINT");
	assert_string_equal(c->env_var[CONFIG_ORG_ID], "SCRIPTUM_ORG_ID");
	assert_string_equal(c->env_var[CONFIG_ORG_NAME], "SCRIPTUM_ORG_NAME");
	assert_int_equal(c->source[CONFIG_CA_FILE], CONFIG_SRC_FILE);
	assert_int_equal(c->source[CONFIG_TIMEOUT], CONFIG_SRC_FILE);
	config_free(c);

	/* Without either: the file. */
	fx->nenv = 0;
	env_set(fx, "HOME", fx->dir);
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://file.example");
	assert_string_equal(c->token, "file-token");
	assert_string_equal(c->org_id, "file-org-id");
	assert_string_equal(c->org_name, "file-org");
	assert_string_equal(c->profile, "p");
	assert_true(c->path_found);
	for (int f = CONFIG_ENDPOINT; f <= CONFIG_TIMEOUT; f++)
		if (f == CONFIG_TOKEN_FILE || f >= CONFIG_TOKEN_URL)
			continue;
		else
			assert_int_equal(c->source[f], CONFIG_SRC_FILE);
	config_free(c);
}

static void
test_scriptum_token_beats_dodil_token(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	env_set(fx, "DODIL_TOKEN", "dodil");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token, "dodil");
	assert_string_equal(c->env_var[CONFIG_TOKEN], "DODIL_TOKEN");
	config_free(c);

	env_set(fx, "SCRIPTUM_TOKEN", "scriptum");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token, "scriptum");
	assert_string_equal(c->env_var[CONFIG_TOKEN], "SCRIPTUM_TOKEN");
	config_free(c);
}

static void
test_empty_env_variable_counts_as_unset(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	env_set(fx, "SCRIPTUM_TOKEN", "");
	env_set(fx, "DODIL_TOKEN", "dodil");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token, "dodil");
	config_free(c);
}

static void
test_env_token_replaces_profile_token_file(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644,
	             "profile: p\nprofiles:\n  p:\n    token_file: /x/token\n"
	             "    endpoint: https://file.example\n");
	env_set(fx, "SCRIPTUM_TOKEN", "env-token");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token, "env-token");
	assert_null(c->token_file);
	assert_string_equal(c->endpoint, "https://file.example");
	config_free(c);
}

static void
test_flag_token_file_replaces_profile_token(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0600, "profile: p\nprofiles:\n  p:\n    token: " TOKEN "\n");
	ov.token_file = "/run/token";
	c = resolve_ok(fx, &ov);
	assert_null(c->token);
	assert_string_equal(c->token_file, "/run/token");
	assert_int_equal(c->source[CONFIG_TOKEN_FILE], CONFIG_SRC_FLAG);
	config_free(c);
}

static void
test_client_credentials_resolve_as_a_group(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644,
	             "profiles:\n"
	             "  default:\n"
	             "    endpoint: https://api.dodil.io\n"
	             "    token_url: https://id.example/token\n"
	             "    client_id: my-service\n"
	             "    client_secret_file: ~/.config/scriptum/prod.secret\n");
	c = resolve_ok(fx, &ov);
	assert_null(c->token);
	assert_string_equal(c->token_url, "https://id.example/token");
	assert_string_equal(c->client_id, "my-service");
	assert_string_equal(c->client_secret_file, path_in(fx, ".config/scriptum/prod.secret"));
	config_free(c);

	/* A token from the environment wins over the whole group. */
	env_set(fx, "DODIL_TOKEN", "env-token");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token, "env-token");
	assert_null(c->token_url);
	assert_null(c->client_id);
	assert_null(c->client_secret_file);
	config_free(c);
}

static void
test_token_and_token_file_together_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	ov.token = TOKEN;
	ov.token_file = "/run/token";
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "token or token_file");
	assert_lacks(fx->err, TOKEN);
}

static void
test_incomplete_client_credentials_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	write_config(fx, 0600,
	             "profile: prod\nprofiles:\n  prod:\n    client_id: svc\n"
	             "    client_secret: " SECRET "\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "missing token_url");
	assert_contains(fx->err, "profile \"prod\"");
	assert_lacks(fx->err, SECRET);
}

static void
test_token_with_client_credentials_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	ov.token = TOKEN;
	ov.client_id = "svc";
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "not both");
}

/* ---- profiles ---- */

static const char three_profiles_yaml[] = "profile: filedefault\n"
                                          "profiles:\n"
                                          "  default:\n"
                                          "    endpoint: https://default\n"
                                          "  filedefault:\n"
                                          "    endpoint: https://filedefault\n"
                                          "  envprof:\n"
                                          "    endpoint: https://envprof\n"
                                          "  flagprof:\n"
                                          "    endpoint: https://flagprof\n";

static void
test_profile_chosen_by_flag_then_env_then_file_then_default(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644, three_profiles_yaml);
	env_set(fx, "SCRIPTUM_PROFILE", "envprof");
	ov.profile = "flagprof";
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->profile, "flagprof");
	assert_string_equal(c->endpoint, "https://flagprof");
	assert_int_equal(c->source[CONFIG_PROFILE], CONFIG_SRC_FLAG);
	config_free(c);

	ov.profile = NULL;
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://envprof");
	assert_int_equal(c->source[CONFIG_PROFILE], CONFIG_SRC_ENV);
	config_free(c);

	env_set(fx, "SCRIPTUM_PROFILE", NULL);
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://filedefault");
	assert_int_equal(c->source[CONFIG_PROFILE], CONFIG_SRC_FILE);
	config_free(c);

	write_config(fx, 0644, three_profiles_yaml + strlen("profile: filedefault\n"));
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->profile, "default");
	assert_string_equal(c->endpoint, "https://default");
	assert_int_equal(c->source[CONFIG_PROFILE], CONFIG_SRC_DEFAULT);
	config_free(c);
}

static void
test_no_profile_selected_uses_flags_and_env_only(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644, "profiles:\n  staging:\n    endpoint: https://staging\n");
	env_set(fx, "SCRIPTUM_API_ENDPOINT", "https://env");
	ov.org_id = "o1";
	c = resolve_ok(fx, &ov);
	assert_null(c->profile);
	assert_string_equal(c->endpoint, "https://env");
	assert_string_equal(c->org_id, "o1");
	config_free(c);
}

static void
test_unknown_profile_error_lists_profiles(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	write_config(fx, 0644, three_profiles_yaml);
	ov.profile = "stagin";
	resolve_fails(fx, &ov, -ENOENT);
	assert_contains(fx->err, "\"stagin\"");
	assert_contains(fx->err, "default, filedefault, envprof, flagprof");

	ov.profile = NULL;
	env_set(fx, "SCRIPTUM_PROFILE", "nope");
	resolve_fails(fx, &ov, -ENOENT);
	assert_contains(fx->err, "SCRIPTUM_PROFILE");
	assert_contains(fx->err, "flagprof");
}

static void
test_unknown_default_profile_in_file_reports_line(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *path = write_config(fx, 0644, "# comment\nprofile: gone\nprofiles:\n  a: {}\n");
	char want[300];

	resolve_fails(fx, &ov, -ENOENT);
	snprintf(want, sizeof(want), "%s:2:", path);
	assert_contains(fx->err, want);
	assert_contains(fx->err, "profiles: a");
}

static void
test_profile_named_without_a_file_is_enoent(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	ov.profile = "staging";
	resolve_fails(fx, &ov, -ENOENT);
	assert_contains(fx->err, "no config file");
}

/* ---- paths ---- */

static void
test_tilde_expands_to_home(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644,
	             "profile: p\nprofiles:\n  p:\n    token_file: ~/.config/scriptum/s.token\n"
	             "    ca_file: ~/ca.pem\n");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token_file, path_in(fx, ".config/scriptum/s.token"));
	assert_string_equal(c->ca_file, path_in(fx, "ca.pem"));
	config_free(c);

	ov.ca_file = "~/flag-ca.pem"; /* as a mount option, not expanded by a shell */
	ov.home = "/elsewhere";
	ov.config_path = path_in(fx, ".config/scriptum/config.yaml");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->ca_file, "/elsewhere/flag-ca.pem");
	assert_string_equal(c->token_file, "/elsewhere/.config/scriptum/s.token");
	config_free(c);
}

static void
test_tilde_without_home_is_an_error(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c = NULL;
	int rc;

	env_set(fx, "HOME", NULL);
	ov.token_file = "~/t";
	/* With no $HOME the password database is asked; only if it too has
	 * nothing is this an error. Either way no crash and no leak. */
	rc = config_resolve(&ov, &c, fx->err, sizeof(fx->err));
	if (rc == 0) {
		assert_true(c->token_file[0] == '/');
		config_free(c);
	} else {
		assert_int_equal(rc, -EINVAL);
		assert_contains(fx->err, "~");
	}
}

static void
test_relative_path_in_file_is_relative_to_the_file(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644, "profile: p\nprofiles:\n  p:\n    token_file: p.token\n");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token_file, path_in(fx, ".config/scriptum/p.token"));
	config_free(c);
}

static void
test_xdg_config_home_is_honoured(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *xdg = path_in(fx, "xdg");
	struct config *c;

	write_config(fx, 0644, "profile: p\nprofiles:\n  p:\n    endpoint: https://home\n");
	env_set(fx, "XDG_CONFIG_HOME", xdg);
	/* Nothing under $XDG_CONFIG_HOME yet: ~/.config is still read. */
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://home");
	config_free(c);

	write_file(fx, "xdg/scriptum/config.yaml", 0644,
	           "profile: p\nprofiles:\n  p:\n    endpoint: https://xdg\n");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->endpoint, "https://xdg");
	assert_string_equal(c->path, path_in(fx, "xdg/scriptum/config.yaml"));
	config_free(c);
}

static void
test_scriptum_config_names_the_file_and_flag_beats_it(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *env_file = write_file(
	    fx, "env.yaml", 0644, "profile: p\nprofiles:\n  p:\n    org_id: from-env-file\n");
	const char *flag_file = write_file(
	    fx, "flag.yaml", 0644, "profile: p\nprofiles:\n  p:\n    org_id: from-flag-file\n");
	struct config *c;

	env_set(fx, "SCRIPTUM_CONFIG", env_file);
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->org_id, "from-env-file");
	assert_int_equal(c->source[CONFIG_PATH], CONFIG_SRC_ENV);
	config_free(c);

	ov.config_path = flag_file;
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->org_id, "from-flag-file");
	assert_string_equal(c->path, flag_file);
	assert_int_equal(c->source[CONFIG_PATH], CONFIG_SRC_FLAG);
	config_free(c);
}

static void
test_missing_explicit_file_is_enoent(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	ov.config_path = path_in(fx, "nope.yaml");
	resolve_fails(fx, &ov, -ENOENT);
	assert_contains(fx->err, "nope.yaml");

	ov.config_path = NULL;
	env_set(fx, "SCRIPTUM_CONFIG", path_in(fx, "also-nope.yaml"));
	resolve_fails(fx, &ov, -ENOENT);
	assert_contains(fx->err, "also-nope.yaml");
}

static void
test_empty_file_is_an_empty_config(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644, "");
	c = resolve_ok(fx, &ov);
	assert_true(c->path_found);
	assert_null(c->profile);
	assert_int_equal(c->nwarnings, 0);
	config_free(c);

	write_config(fx, 0644, "# only a comment\n");
	c = resolve_ok(fx, &ov);
	assert_null(c->profile);
	config_free(c);
}

/* ---- secrets and permissions ---- */

static void
test_group_readable_file_with_inline_token_refused_until_chmod_600(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *path =
	    write_config(fx, 0644, "profile: p\nprofiles:\n  p:\n    token: " TOKEN "\n");
	struct config *c;
	char want[300];

	resolve_fails(fx, &ov, -EACCES);
	assert_contains(fx->err, "holds a token");
	assert_contains(fx->err, "readable by group or others (mode 0644)");
	snprintf(want, sizeof(want), "run: chmod 600 %s", path);
	assert_contains(fx->err, want);
	assert_lacks(fx->err, TOKEN);

	assert_int_equal(chmod(path, 0640), 0);
	resolve_fails(fx, &ov, -EACCES);

	assert_int_equal(chmod(path, 0600), 0);
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token, TOKEN);
	config_free(c);
}

static void
test_secret_in_an_unused_profile_still_refuses_the_file(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	write_config(fx, 0604,
	             "profile: a\nprofiles:\n  a:\n    endpoint: https://a\n"
	             "  b:\n    token_url: https://id/token\n    client_id: c\n"
	             "    client_secret: " SECRET "\n");
	resolve_fails(fx, &ov, -EACCES);
	assert_contains(fx->err, "holds a client_secret");
	assert_lacks(fx->err, SECRET);
}

static void
test_group_readable_file_without_secrets_accepted(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0644, "profile: p\nprofiles:\n  p:\n    token_file: /x/t\n    token: ~\n");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->token_file, "/x/t");
	assert_null(c->token);
	config_free(c);
}

static void
test_secret_file_refused_when_group_readable(void **state)
{
	struct fixture *fx = *state;
	const char *path = write_file(fx, "t.token", 0644, TOKEN "\n");
	char *secret = (char *)1;
	char want[300];

	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), -EACCES);
	assert_null(secret);
	assert_contains(fx->err, "mode 0644");
	snprintf(want, sizeof(want), "chmod 600 %s", path);
	assert_contains(fx->err, want);
	assert_lacks(fx->err, TOKEN);

	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), -EACCES);
}

static void
test_secret_file_accepted_at_0600_with_newline_trimmed(void **state)
{
	struct fixture *fx = *state;
	const char *path = write_file(fx, "t.token", 0600, TOKEN "\r\n\n");
	char *secret = NULL;

	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), 0);
	assert_string_equal(secret, TOKEN);
	config_secret_free(secret);

	write_file(fx, "t.token", 0400, "  " TOKEN "\t ");
	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), 0);
	assert_string_equal(secret, TOKEN);
	config_secret_free(secret);
	config_secret_free(NULL);
}

static void
test_secret_file_empty_refused(void **state)
{
	struct fixture *fx = *state;
	const char *path = write_file(fx, "t.token", 0600, "");
	char *secret = NULL;

	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), -EINVAL);
	assert_contains(fx->err, "empty");
	write_file(fx, "t.token", 0600, " \n\n");
	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), -EINVAL);
	assert_null(secret);
}

static void
test_secret_file_with_two_lines_refused(void **state)
{
	struct fixture *fx = *state;
	const char *path = write_file(fx, "t.token", 0600, "abc\nX-Evil: 1\n");
	char *secret = NULL;

	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), -EINVAL);
	assert_null(secret);
	assert_lacks(fx->err, "abc");
}

static void
test_secret_file_over_64k_refused(void **state)
{
	struct fixture *fx = *state;
	char *big = malloc(64 * 1024 + 2);
	const char *path;
	char *secret = NULL;

	assert_non_null(big);
	memset(big, 'a', 64 * 1024 + 1);
	big[64 * 1024 + 1] = '\0';
	path = write_file(fx, "t.token", 0600, big);
	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), -EFBIG);
	assert_null(secret);

	big[64 * 1024] = '\0'; /* exactly 64 KiB is fine */
	write_file(fx, "t.token", 0600, big);
	assert_int_equal(config_read_secret(path, &secret, fx->err, sizeof(fx->err)), 0);
	assert_int_equal(strlen(secret), 64 * 1024);
	config_secret_free(secret);
	free(big);
}

static void
test_secret_file_missing_or_not_a_file(void **state)
{
	struct fixture *fx = *state;
	char *secret = NULL;

	assert_int_equal(config_read_secret(path_in(fx, "none"), &secret, fx->err, sizeof(fx->err)),
	                 -ENOENT);
	assert_contains(fx->err, "none");
	assert_int_equal(config_read_secret(fx->dir, &secret, fx->err, sizeof(fx->err)), -EINVAL);
	assert_contains(fx->err, "not a regular file");
}

static void
test_control_character_in_env_token_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	env_set(fx, "SCRIPTUM_TOKEN", "abc\r\nX-Evil: 1");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "SCRIPTUM_TOKEN");
	assert_lacks(fx->err, "abc");
}

/* ---- file errors ---- */

static void
test_syntax_error_reports_file_and_line(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *path = write_config(fx, 0644,
	                                "profile: a\n"
	                                "profiles:\n"
	                                "  a:\n"
	                                "    endpoint: x\n"
	                                "   org_id: y\n");
	char want[300];

	resolve_fails(fx, &ov, -EINVAL);
	snprintf(want, sizeof(want), "%s:5: YAML syntax error", path);
	assert_contains(fx->err, want);

	write_config(fx, 0644, "profiles:\n  a:\n    endpoint: \"unterminated\n    org_id: b\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "line 3");
}

static void
test_list_where_string_expected_reports_line(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *path = write_config(fx, 0600,
	                                "profile: a\n"
	                                "profiles:\n"
	                                "  a:\n"
	                                "    endpoint: https://a\n"
	                                "    token: [" TOKEN ", b]\n");
	char want[300];

	resolve_fails(fx, &ov, -EINVAL);
	snprintf(want, sizeof(want), "%s:5: token: expected a string, found a list", path);
	assert_contains(fx->err, want);
	assert_lacks(fx->err, TOKEN);
}

static void
test_wrong_shapes_report_line(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	write_config(fx, 0644, "profile: a\nprofiles:\n  - a\n  - b\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, ":3: profiles: expected a mapping");

	write_config(fx, 0644, "profiles:\n  a: https://x\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, ":2: profile \"a\": expected a mapping");

	write_config(fx, 0644, "- just\n- a list\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, ":1: expected a mapping");

	write_config(fx, 0644, "profile:\n  nested: map\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, ":2: profile: expected a string, found a mapping");
}

static void
test_duplicate_keys_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	write_config(fx, 0644, "profiles:\n  a:\n    endpoint: x\n    endpoint: y\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, ":4: endpoint is set twice in profile \"a\" (first at line 3)");

	write_config(fx, 0644, "profiles:\n  a: {}\n  a: {}\n");
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, ":3: profile \"a\" is defined twice");
}

static void
test_unknown_keys_are_warnings_not_errors(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;

	write_config(fx, 0600,
	             "colour: blue\n"
	             "endpoint: https://top\n"
	             "profile: a\n"
	             "profiles:\n"
	             "  a:\n"
	             "    endpont: https://typo\n"
	             "    " TOKEN ": 1\n"
	             "    org_id: o\n");
	c = resolve_ok(fx, &ov);
	assert_string_equal(c->org_id, "o");
	assert_null(c->endpoint);
	assert_int_equal(c->nwarnings, 4);
	assert_contains(c->warnings[0], ":1: unknown key \"colour\" ignored");
	assert_contains(c->warnings[1], ":2: endpoint at the top level ignored");
	assert_contains(c->warnings[2], ":6: unknown key \"endpont\" in profile \"a\" ignored");
	assert_contains(c->warnings[3], ":7: an unknown key in profile \"a\" ignored");
	config_free(c);
}

static void
test_bad_timeout_in_file_reports_line(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *path = write_config(fx, 0644, "profile: a\nprofiles:\n  a:\n    timeout: 5x\n");
	char want[300];

	resolve_fails(fx, &ov, -EINVAL);
	snprintf(want, sizeof(want), "%s:4: timeout: \"5x\" is not a duration", path);
	assert_contains(fx->err, want);

	write_config(fx, 0644, "profile: a\nprofiles:\n  a:\n    timeout: 45\n");
	ov.config_path = path;
	{
		struct config *c = resolve_ok(fx, &ov);

		assert_int_equal(c->timeout_ms, 45000);
		config_free(c);
	}
}

static void
test_zero_or_bad_timeout_flag_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	ov.timeout = "0s";
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "more than 0");
	ov.timeout = "-1s";
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "timeout flag");
}

/* ---- the rate floor ---- */

static void
test_rate_parses_units_and_rejects_garbage(void **state)
{
	static const char *const bad[] = {"", "-1", "1.5k", "fast", "64 KiB", "1G", "1KiB/m"};
	int64_t v = -2;

	(void)state;
	assert_int_equal(config_parse_rate("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(config_parse_rate("1024", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(config_parse_rate("64KiB", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(config_parse_rate("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(config_parse_rate("1MiB/s", &v), 0);
	assert_int_equal(v, 1048576);
	assert_int_equal(config_parse_rate("512B/s", &v), 0);
	assert_int_equal(v, 512);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(config_parse_rate(bad[i], &v), -EINVAL);
	assert_int_equal(config_parse_rate("99999999999999999999", &v), -EINVAL);
}

static void
test_min_rate_from_flag_env_file_and_0_kept_apart_from_unset(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;
	char *text;

	c = resolve_ok(fx, &ov);
	assert_int_equal(c->min_rate, -1);
	assert_int_equal(c->min_rate_window_ms, 0);
	config_free(c);

	write_config(fx, 0600,
	             "profile: p\nprofiles:\n  p:\n    min_rate: 4KiB\n    min_rate_window: 10s\n");
	c = resolve_ok(fx, &ov);
	assert_int_equal(c->min_rate, 4096);
	assert_int_equal(c->min_rate_window_ms, 10000);
	assert_int_equal(c->source[CONFIG_MIN_RATE], CONFIG_SRC_FILE);
	text = config_render(c);
	assert_contains(text, "min_rate: 4096 (file, profile p)\n");
	assert_contains(text, "min_rate_window: 10s (file, profile p)\n");
	free(text);
	config_free(c);

	env_set(fx, "SCRIPTUM_MIN_RATE", "0");
	c = resolve_ok(fx, &ov);
	assert_int_equal(c->min_rate, 0); /* no floor, not the default */
	assert_string_equal(c->env_var[CONFIG_MIN_RATE], "SCRIPTUM_MIN_RATE");
	config_free(c);

	ov.min_rate = "1MiB";
	ov.min_rate_window = "2s";
	c = resolve_ok(fx, &ov);
	assert_int_equal(c->min_rate, 1048576);
	assert_int_equal(c->min_rate_window_ms, 2000);
	assert_int_equal(c->source[CONFIG_MIN_RATE_WINDOW], CONFIG_SRC_FLAG);
	config_free(c);
}

static void
test_bad_min_rate_or_window_rejected(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);

	ov.min_rate = "fast";
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "min_rate flag");
	assert_contains(fx->err, "not a rate in bytes/s");
	ov.min_rate = NULL;
	ov.min_rate_window = "500ms";
	resolve_fails(fx, &ov, -EINVAL);
	assert_contains(fx->err, "at least 1s");
}

/* ---- rendering ---- */

static void
test_render_never_shows_the_token(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	struct config *c;
	char *text;

	write_config(fx, 0600,
	             "profile: a\nprofiles:\n  a:\n    endpoint: https://a\n    token: " TOKEN "\n"
	             "  b:\n    token_url: https://id/t\n    client_id: svc\n"
	             "    client_secret: " SECRET "\n"
	             "  c:\n    token_file: ~/c.token\n");
	c = resolve_ok(fx, &ov);
	text = config_render(c);
	assert_non_null(text);
	assert_lacks(text, TOKEN);
	assert_contains(text, "token: <set> (file, profile a)\n");
	assert_contains(text, "endpoint: https://a (file, profile a)\n");
	free(text);
	config_free(c);

	ov.profile = "b";
	c = resolve_ok(fx, &ov);
	text = config_render(c);
	assert_lacks(text, SECRET);
	assert_contains(text, "client_secret: <set> (file, profile b)\n");
	assert_contains(text, "token: <from client credentials>\n");
	free(text);
	config_free(c);

	ov.profile = "c";
	c = resolve_ok(fx, &ov);
	text = config_render(c);
	assert_contains(text, "token: <from token_file>\n");
	free(text);
	config_free(c);

	env_set(fx, "DODIL_TOKEN", TOKEN);
	c = resolve_ok(fx, &ov);
	text = config_render(c);
	assert_lacks(text, TOKEN);
	assert_contains(text, "token: <set> (env DODIL_TOKEN)\n");
	free(text);
	config_free(c);
}

static void
test_render_shows_each_field_with_its_source(void **state)
{
	struct fixture *fx = *state;
	struct config_overrides ov = overrides(fx);
	const char *path = write_config(fx, 0644,
	                                "profiles:\n  default:\n    org_name: acme\n"
	                                "    timeout: 90s\n");
	struct config *c;
	char *text, want[300];

	env_set(fx, "SCRIPTUM_API_ENDPOINT", "https://env");
	ov.org_id = "o1";
	ov.label = "mount option";
	c = resolve_ok(fx, &ov);
	text = config_render(c);
	assert_contains(text, "endpoint: https://env (env SCRIPTUM_API_ENDPOINT)\n");
	assert_contains(text, "org_id: o1 (mount option)\n");
	assert_contains(text, "org_name: acme (file, profile default)\n");
	assert_contains(text, "timeout: 1m30s (file, profile default)\n");
	assert_contains(text, "profile: default (default)\n");
	assert_contains(text, "ca_file: (unset)\n");
	snprintf(want, sizeof(want), "config: %s (default)\n", path);
	assert_contains(text, want);
	free(text);
	config_free(c);

	unlink(path);
	c = resolve_ok(fx, &ov);
	text = config_render(c);
	assert_contains(text, "(default) (not found)\n");
	free(text);
	config_free(c);
}

/* ---- the real environment ---- */

static void
test_real_environment_is_read_by_default(void **state)
{
	static const char *const vars[] = {
	    "SCRIPTUM_API_ENDPOINT", "SCRIPTUM_TOKEN",   "DODIL_TOKEN",     "SCRIPTUM_ORG_ID",
	    "SCRIPTUM_ORG_NAME",     "SCRIPTUM_PROFILE", "SCRIPTUM_CONFIG", "XDG_CONFIG_HOME",
	};
	struct fixture *fx = *state;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	struct config *c;

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	setenv("HOME", fx->dir, 1);
	setenv("SCRIPTUM_API_ENDPOINT", "https://real-env", 1);
	write_config(fx, 0644, "profile: a\nprofiles:\n  a:\n    org_name: real\n");
	c = resolve_ok(fx, NULL);
	assert_string_equal(c->endpoint, "https://real-env");
	assert_string_equal(c->org_name, "real");
	config_free(c);
	unsetenv("SCRIPTUM_API_ENDPOINT");
	if (old_home != NULL)
		setenv("HOME", old_home, 1);
	free(old_home);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_duration_parses_units_and_bare_seconds),
	    cmocka_unit_test(test_duration_rejects_garbage),
	    cmocka_unit_test(test_duration_formats_and_reads_back),
	    T(test_nothing_set_leaves_everything_unset),
	    T(test_flag_beats_env_beats_file_for_each_field),
	    T(test_scriptum_token_beats_dodil_token),
	    T(test_empty_env_variable_counts_as_unset),
	    T(test_env_token_replaces_profile_token_file),
	    T(test_flag_token_file_replaces_profile_token),
	    T(test_client_credentials_resolve_as_a_group),
	    T(test_token_and_token_file_together_rejected),
	    T(test_incomplete_client_credentials_rejected),
	    T(test_token_with_client_credentials_rejected),
	    T(test_profile_chosen_by_flag_then_env_then_file_then_default),
	    T(test_no_profile_selected_uses_flags_and_env_only),
	    T(test_unknown_profile_error_lists_profiles),
	    T(test_unknown_default_profile_in_file_reports_line),
	    T(test_profile_named_without_a_file_is_enoent),
	    T(test_tilde_expands_to_home),
	    T(test_tilde_without_home_is_an_error),
	    T(test_relative_path_in_file_is_relative_to_the_file),
	    T(test_xdg_config_home_is_honoured),
	    T(test_scriptum_config_names_the_file_and_flag_beats_it),
	    T(test_missing_explicit_file_is_enoent),
	    T(test_empty_file_is_an_empty_config),
	    T(test_group_readable_file_with_inline_token_refused_until_chmod_600),
	    T(test_secret_in_an_unused_profile_still_refuses_the_file),
	    T(test_group_readable_file_without_secrets_accepted),
	    T(test_secret_file_refused_when_group_readable),
	    T(test_secret_file_accepted_at_0600_with_newline_trimmed),
	    T(test_secret_file_empty_refused),
	    T(test_secret_file_with_two_lines_refused),
	    T(test_secret_file_over_64k_refused),
	    T(test_secret_file_missing_or_not_a_file),
	    T(test_control_character_in_env_token_rejected),
	    T(test_syntax_error_reports_file_and_line),
	    T(test_list_where_string_expected_reports_line),
	    T(test_wrong_shapes_report_line),
	    T(test_duplicate_keys_rejected),
	    T(test_unknown_keys_are_warnings_not_errors),
	    T(test_bad_timeout_in_file_reports_line),
	    T(test_zero_or_bad_timeout_flag_rejected),
	    T(test_rate_parses_units_and_rejects_garbage),
	    T(test_min_rate_from_flag_env_file_and_0_kept_apart_from_unset),
	    T(test_bad_min_rate_or_window_rejected),
	    T(test_render_never_shows_the_token),
	    T(test_render_shows_each_field_with_its_source),
	    T(test_real_environment_is_read_by_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
