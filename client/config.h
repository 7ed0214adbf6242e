/*
 * Configuration: the effective endpoint, credentials, org and timeout, from
 * the caller's explicit values (CLI flags or mount options), then the
 * environment, then the YAML file; and for each setting, where it came from.
 * The CLI and the filesystem resolve the same way (scriptum-config(5),
 * PRECEDENCE).
 *
 *   profile: staging                # the default profile
 *   profiles:
 *     staging:
 *       endpoint: https://api.dev.dodil.io
 *       token_file: ~/.config/scriptum/staging.token   # or token: "..."
 *       org_id: org_123
 *       org_name: acme
 *       ca_file: /etc/ssl/private-ca.pem
 *       timeout: 30s
 *       min_rate: 1KiB          # bytes/s over min_rate_window; 0: none
 *       min_rate_window: 30s
 *     prod:
 *       endpoint: https://api.dodil.io
 *       token_url: https://id.dodil.io/realms/dodil/protocol/openid-connect/token
 *       client_id: my-service
 *       client_secret_file: ~/.config/scriptum/prod.secret
 *
 * Nothing here prints, and no message this module writes holds a secret.
 */
#ifndef SCRIPTUM_CONFIG_H
#define SCRIPTUM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a resolved value came from. */
enum config_source {
	CONFIG_SRC_UNSET = 0, /* nothing set it */
	CONFIG_SRC_FLAG,      /* struct config_overrides (CLI flag, mount option) */
	CONFIG_SRC_ENV,       /* an environment variable; see config.env_var */
	CONFIG_SRC_FILE,      /* the config file (the selected profile) */
	CONFIG_SRC_DEFAULT,   /* built in: the default file path, the "default" profile */
};

/* The resolved settings, in the order config_render() shows them. The first
 * CONFIG_MIN_RATE_WINDOW + 1 are the keys a profile may hold. */
enum config_field {
	CONFIG_ENDPOINT,
	CONFIG_TOKEN,
	CONFIG_TOKEN_FILE,
	CONFIG_ORG_ID,
	CONFIG_ORG_NAME,
	CONFIG_CA_FILE,
	CONFIG_TOKEN_URL,
	CONFIG_CLIENT_ID,
	CONFIG_CLIENT_SECRET,
	CONFIG_CLIENT_SECRET_FILE,
	CONFIG_TIMEOUT,
	CONFIG_MIN_RATE,
	CONFIG_MIN_RATE_WINDOW,
	CONFIG_PROFILE,
	CONFIG_PATH,
	CONFIG_NFIELDS
};

/* The caller's explicit values; NULL or "" means "not given". Borrowed for
 * the duration of config_resolve() only. A NULL overrides pointer is the same
 * as all fields unset. */
struct config_overrides {
	const char *config_path; /* --config FILE: must exist */
	const char *profile;     /* --profile, -o profile= */
	const char *endpoint;
	const char *token;
	const char *token_file;
	const char *org_id;
	const char *org_name;
	const char *ca_file;
	const char *token_url;
	const char *client_id;
	const char *client_secret;
	const char *client_secret_file;
	const char *timeout;         /* a duration, see config_parse_duration() */
	const char *min_rate;        /* bytes/s, see config_parse_rate() */
	const char *min_rate_window; /* a duration of at least 1s */

	/* How these values are named in provenance ("flag" when NULL); the
	 * mount passes "mount option". */
	const char *label;

	/* Test hooks. env(name, env_arg) replaces getenv(3) when set; home
	 * replaces $HOME (then the password database) when set. */
	const char *(*env)(const char *name, void *env_arg);
	void *env_arg;
	const char *home;
};

/* The effective configuration. Read-only to callers: every string is owned
 * by the struct and freed by config_free(). Secrets (token, client_secret)
 * must not be logged; config_render() shows them as "<set>".
 *
 * Credentials resolve as one group: the highest-precedence source that sets
 * any of token, token_file, token_url, client_id, client_secret,
 * client_secret_file supplies all of them, so SCRIPTUM_TOKEN overrides a
 * profile's token_file or client credentials, and a token_file option
 * overrides a profile's inline token. At most one of token and token_file is
 * set; client credentials come complete (token_url, client_id, and one of
 * client_secret, client_secret_file) and never alongside a static token.
 *
 * There is no default endpoint: endpoint is NULL when nothing sets one and
 * the caller decides (the CLI errors; the emulator tests always set one).
 * Paths (token_file, ca_file, client_secret_file, path) are absolute: "~/"
 * is $HOME, a relative path in the file is relative to the file's directory,
 * and a relative path from a flag or the environment is relative to the
 * working directory at resolve time. */
struct config {
	const char *endpoint;
	const char *token; /* static bearer token: secret */
	const char *token_file;
	const char *org_id;
	const char *org_name;
	const char *ca_file; /* private CA bundle for HTTPS */
	const char *token_url;
	const char *client_id;
	const char *client_secret; /* inline client secret: secret */
	const char *client_secret_file;
	int64_t timeout_ms;         /* > 0 when set; 0: unset, the caller's default applies */
	int64_t min_rate;           /* bytes/s; -1: unset (the default applies); 0: no floor */
	int64_t min_rate_window_ms; /* >= 1000 when set; 0: unset */
	const char *profile;        /* the selected profile, NULL when none */
	const char *path;           /* the config file consulted, NULL when there was none to try */
	bool path_found;            /* path existed and was read */

	enum config_source source[CONFIG_NFIELDS];
	const char *env_var[CONFIG_NFIELDS]; /* for CONFIG_SRC_ENV: the variable */
	const char *flag_label;              /* for CONFIG_SRC_FLAG: "flag" or the caller's label */

	/* Things ignored in the file, one message each ("FILE:LINE: ..."). */
	const char *const *warnings;
	size_t nwarnings;
};

/* Resolves the effective configuration into *out (free it with
 * config_free()). Returns 0, or -errno with a message in err: -EINVAL for bad
 * content (YAML syntax, wrong types, bad durations, conflicting credentials),
 * -ENOENT for a missing explicitly named file or an unknown profile, -EACCES
 * for a file holding a secret that group or others can read, -ENOMEM. */
int config_resolve(const struct config_overrides *ov, struct config **out, char *err,
                   size_t errlen);

/* Frees cfg and everything it owns; NULL is fine. */
void config_free(struct config *cfg);

/* Renders cfg as "key: value (source)" lines, one per field, secrets shown
 * as "<set>" or "<from token_file>", never themselves. Returns a string the
 * caller frees with free(), or NULL when out of memory. */
char *config_render(const struct config *cfg);

/* A source's name ("flag", "env", "file", "default", "unset"). A static
 * string. */
const char *config_source_name(enum config_source s);

/* Parses a duration: a sequence of <number><unit>, unit h, m, s or ms
 * ("30s", "5m", "1h", "1m30s", "250ms", "1.5s"), or a bare number of seconds
 * ("30"). Returns 0 and sets *ms, or -EINVAL for anything else ("", "5x",
 * "-1s", " 5s", overflow). Sub-millisecond parts are truncated. */
int config_parse_duration(const char *s, int64_t *ms);

/* Parses a transfer rate in bytes/s: a whole number with an optional
 * unit, b, k, kb or kib (1024), m, mb or mib (1048576), in any case, and
 * an optional "/s" ("1024", "64KiB", "1MiB/s", "0"). Returns 0 and sets
 * *bps, or -EINVAL for anything else or over a TiB/s. */
int config_parse_rate(const char *s, int64_t *bps);

/* Writes ms (>= 0) as a duration config_parse_duration() reads back
 * ("1m30s", "250ms", "0s") into buf; returns the length it needed, as
 * snprintf() does. */
int config_format_duration(int64_t ms, char *buf, size_t len);

/* Reads a secret (a token_file or client_secret_file) into *out, NUL
 * terminated, surrounding whitespace trimmed; free it with
 * config_secret_free(). Refuses, with a message saying why: a file group or
 * others can read (-EACCES), one that is not a regular file or is empty or
 * holds a control character such as a second line (-EINVAL), one over
 * 64 KiB (-EFBIG); open errors pass through (-ENOENT, -EACCES, ...). */
int config_read_secret(const char *path, char **out, char *err, size_t errlen);

/* Wipes and frees a secret from config_read_secret(); NULL is fine. */
void config_secret_free(char *secret);

#endif
