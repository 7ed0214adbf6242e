/*
 * Configuration: three layers (the caller's explicit values, the environment,
 * one profile of the YAML file) merged field by field, credentials as one
 * group, with where each value came from. The file is read whole (capped)
 * and parsed with libyaml's document API; a file holding an inline secret
 * must not be readable by group or others, nor may a token_file.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "config.h"
#include "config_int.h"
#include "errbuf.h"

#define NSETTINGS     (CONFIG_MIN_RATE_WINDOW + 1)
#define FILE_MAX      (1024 * 1024) /* a config file past this is a mistake */
#define DEFAULT_LABEL "flag"
#define DURATION_HINT "use e.g. 30s, 5m, 1h30m, 250ms"
#define RATE_HINT     "use e.g. 1024, 64KiB, 1MiB/s, or 0 for no floor"

static const char *const field_names[CONFIG_NFIELDS] = {
    "endpoint", "token",     "token_file",      "org_id",        "org_name",
    "ca_file",  "token_url", "client_id",       "client_secret", "client_secret_file",
    "timeout",  "min_rate",  "min_rate_window", "profile",       "config",
};

static const enum config_field cred_fields[] = {
    CONFIG_TOKEN,     CONFIG_TOKEN_FILE,    CONFIG_TOKEN_URL,
    CONFIG_CLIENT_ID, CONFIG_CLIENT_SECRET, CONFIG_CLIENT_SECRET_FILE,
};

/* One profile of the file, as parsed. */
struct profile {
	char *name;
	size_t line;
	char *v[NSETTINGS];
	size_t vline[NSETTINGS];
};

/* The file, as parsed. */
struct file {
	const char *path; /* borrowed */
	bool found;
	mode_t mode;
	char *profile; /* the top-level profile: */
	size_t profile_line;
	struct profile *profiles;
	size_t nprofiles;
	const char *secret_key; /* the first inline secret's key, if any */
	size_t secret_line;
};

/* Warning messages, grown as the file is parsed. */
struct warnings {
	char **v;
	size_t n;
};

/* One source of values, highest precedence first. Values are borrowed. */
struct layer {
	enum config_source src;
	const char *v[NSETTINGS];
	const char *env_var[NSETTINGS];
	size_t line[NSETTINGS]; /* file layer: where each value was */
	const char *base_dir;   /* relative paths are relative to this */
};

static int
no_memory(char *err, size_t errlen)
{
	return errbuf_set(err, errlen, -ENOMEM, "out of memory");
}

const char *
config_source_name(enum config_source s)
{
	switch (s) {
	case CONFIG_SRC_FLAG:
		return "flag";
	case CONFIG_SRC_ENV:
		return "env";
	case CONFIG_SRC_FILE:
		return "file";
	case CONFIG_SRC_DEFAULT:
		return "default";
	case CONFIG_SRC_UNSET:
		break;
	}
	return "unset";
}

static bool
is_path_field(int f)
{
	return f == CONFIG_TOKEN_FILE || f == CONFIG_CA_FILE || f == CONFIG_CLIENT_SECRET_FILE;
}

/* ---- parsing the file ---- */

static int warn(struct warnings *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a warning; returns 0 or -ENOMEM. */
static int
warn(struct warnings *w, const char *fmt, ...)
{
	va_list ap;
	char **v, *msg;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	v = realloc(w->v, (w->n + 1) * sizeof(*v));
	if (v == NULL) {
		free(msg);
		return -ENOMEM;
	}
	w->v = v;
	w->v[w->n++] = msg;
	return 0;
}

static void
warnings_free(struct warnings *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->v[i]);
	free(w->v);
	w->v = NULL;
	w->n = 0;
}

static void
file_free(struct file *f)
{
	for (size_t i = 0; i < f->nprofiles; i++) {
		struct profile *p = &f->profiles[i];

		free(p->name);
		for (int k = 0; k < NSETTINGS; k++) {
			if (p->v[k] != NULL && (k == CONFIG_TOKEN || k == CONFIG_CLIENT_SECRET))
				explicit_bzero(p->v[k], strlen(p->v[k]));
			free(p->v[k]);
		}
	}
	free(f->profiles);
	free(f->profile);
	memset(f, 0, sizeof(*f));
}

static size_t
line_of(const yaml_node_t *n)
{
	return n->start_mark.line + 1;
}

static const char *
node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	default:
		return "a string";
	}
}

static bool
node_is_null(const yaml_node_t *n)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	const char *v = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE)
		return false;
	if (n->data.scalar.length == 0)
		return true;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
		if (strcmp(v, nulls[i]) == 0)
			return true;
	return false;
}

/* Copies a scalar value for key into *out (NULL for a null or empty value).
 * The value is not quoted in any message: it may be a secret. */
static int
scalar_dup(const struct file *f, const yaml_node_t *n, const char *key, char **out, char *err,
           size_t errlen)
{
	*out = NULL;
	if (n->type != YAML_SCALAR_NODE)
		return errbuf_set(err, errlen, -EINVAL, "%s:%zu: %s: expected a string, found %s",
		                  f->path, line_of(n), key, node_kind(n));
	if (node_is_null(n))
		return 0;
	if (config_has_control((const char *)n->data.scalar.value, n->data.scalar.length))
		return errbuf_set(err, errlen, -EINVAL, "%s:%zu: %s: holds a control character",
		                  f->path, line_of(n), key);
	*out = strndup((const char *)n->data.scalar.value, n->data.scalar.length);
	if (*out == NULL)
		return no_memory(err, errlen);
	return 0;
}

/* A key is shown in a warning only if it looks like a key name (letters,
 * '_' and '-'; tokens nearly always hold digits), so that a secret pasted in
 * the wrong place is not echoed. */
static const char *
shown_key(const yaml_node_t *k)
{
	const char *s = (const char *)k->data.scalar.value;
	size_t len = k->data.scalar.length;

	if (len == 0 || len > 32 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-") != len)
		return NULL;
	return s;
}

static int
setting_index(const yaml_node_t *k)
{
	for (int i = 0; i < NSETTINGS; i++)
		if (strcmp((const char *)k->data.scalar.value, field_names[i]) == 0)
			return i;
	return -1;
}

static int
warn_unknown(struct warnings *w, const struct file *f, const yaml_node_t *k, const char *where)
{
	const char *name = shown_key(k);

	if (name != NULL)
		return warn(w, "%s:%zu: unknown key \"%s\"%s ignored", f->path, line_of(k), name,
		            where);
	return warn(w, "%s:%zu: an unknown key%s ignored", f->path, line_of(k), where);
}

static int
check_key(const struct file *f, const yaml_node_t *k, char *err, size_t errlen)
{
	if (k->type != YAML_SCALAR_NODE)
		return errbuf_set(err, errlen, -EINVAL, "%s:%zu: expected a key name, found %s",
		                  f->path, line_of(k), node_kind(k));
	return 0;
}

static int
parse_profile(struct file *f, yaml_document_t *doc, const yaml_node_t *k, const yaml_node_t *v,
              struct warnings *w, char *err, size_t errlen)
{
	struct profile *p, *grown;
	char where[64];
	int rc;

	rc = check_key(f, k, err, errlen);
	if (rc < 0)
		return rc;
	if (node_is_null(k) ||
	    config_has_control((const char *)k->data.scalar.value, k->data.scalar.length))
		return errbuf_set(err, errlen, -EINVAL, "%s:%zu: a profile needs a printable name",
		                  f->path, line_of(k));
	for (size_t i = 0; i < f->nprofiles; i++)
		if (strcmp(f->profiles[i].name, (const char *)k->data.scalar.value) == 0)
			return errbuf_set(
			    err, errlen, -EINVAL,
			    "%s:%zu: profile \"%s\" is defined twice (first at line %zu)", f->path,
			    line_of(k), f->profiles[i].name, f->profiles[i].line);
	if (v->type != YAML_MAPPING_NODE && !node_is_null(v))
		return errbuf_set(
		    err, errlen, -EINVAL,
		    "%s:%zu: profile \"%s\": expected a mapping of settings, found %s", f->path,
		    line_of(v), (const char *)k->data.scalar.value, node_kind(v));

	grown = realloc(f->profiles, (f->nprofiles + 1) * sizeof(*grown));
	if (grown == NULL)
		return no_memory(err, errlen);
	f->profiles = grown;
	p = &f->profiles[f->nprofiles];
	memset(p, 0, sizeof(*p));
	p->name = strndup((const char *)k->data.scalar.value, k->data.scalar.length);
	if (p->name == NULL)
		return no_memory(err, errlen);
	p->line = line_of(k);
	f->nprofiles++;
	if (v->type != YAML_MAPPING_NODE)
		return 0;

	snprintf(where, sizeof(where), " in profile \"%.40s\"", p->name);
	for (yaml_node_pair_t *pair = v->data.mapping.pairs.start; pair < v->data.mapping.pairs.top;
	     pair++) {
		yaml_node_t *pk = yaml_document_get_node(doc, pair->key);
		yaml_node_t *pv = yaml_document_get_node(doc, pair->value);
		int i;

		rc = check_key(f, pk, err, errlen);
		if (rc < 0)
			return rc;
		i = setting_index(pk);
		if (i < 0) {
			if (warn_unknown(w, f, pk, where) < 0)
				return no_memory(err, errlen);
			continue;
		}
		if (p->vline[i] != 0)
			return errbuf_set(
			    err, errlen, -EINVAL,
			    "%s:%zu: %s is set twice in profile \"%s\" (first at line %zu)",
			    f->path, line_of(pk), field_names[i], p->name, p->vline[i]);
		p->vline[i] = line_of(pk);
		rc = scalar_dup(f, pv, field_names[i], &p->v[i], err, errlen);
		if (rc < 0)
			return rc;
		if (p->v[i] != NULL && (i == CONFIG_TOKEN || i == CONFIG_CLIENT_SECRET) &&
		    f->secret_key == NULL) {
			f->secret_key = field_names[i];
			f->secret_line = line_of(pk);
		}
	}
	return 0;
}

static int
parse_root(struct file *f, yaml_document_t *doc, const yaml_node_t *root, struct warnings *w,
           char *err, size_t errlen)
{
	size_t profiles_line = 0;
	int rc;

	if (root == NULL || node_is_null(root))
		return 0;
	if (root->type != YAML_MAPPING_NODE)
		return errbuf_set(err, errlen, -EINVAL,
		                  "%s:%zu: expected a mapping (profile:, profiles:), found %s",
		                  f->path, line_of(root), node_kind(root));
	for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
	     pair < root->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(doc, pair->value);
		const char *key;

		rc = check_key(f, k, err, errlen);
		if (rc < 0)
			return rc;
		key = (const char *)k->data.scalar.value;
		if (strcmp(key, "profile") == 0) {
			if (f->profile_line != 0)
				return errbuf_set(
				    err, errlen, -EINVAL,
				    "%s:%zu: profile is set twice (first at line %zu)", f->path,
				    line_of(k), f->profile_line);
			f->profile_line = line_of(k);
			rc = scalar_dup(f, v, "profile", &f->profile, err, errlen);
			if (rc < 0)
				return rc;
		} else if (strcmp(key, "profiles") == 0) {
			if (profiles_line != 0)
				return errbuf_set(
				    err, errlen, -EINVAL,
				    "%s:%zu: profiles is set twice (first at line %zu)", f->path,
				    line_of(k), profiles_line);
			profiles_line = line_of(k);
			if (node_is_null(v))
				continue;
			if (v->type != YAML_MAPPING_NODE)
				return errbuf_set(err, errlen, -EINVAL,
				                  "%s:%zu: profiles: expected a mapping of profile "
				                  "names, found %s",
				                  f->path, line_of(v), node_kind(v));
			for (yaml_node_pair_t *pp = v->data.mapping.pairs.start;
			     pp < v->data.mapping.pairs.top; pp++) {
				rc = parse_profile(f, doc, yaml_document_get_node(doc, pp->key),
				                   yaml_document_get_node(doc, pp->value), w, err,
				                   errlen);
				if (rc < 0)
					return rc;
			}
		} else if (setting_index(k) >= 0) {
			if (warn(w,
			         "%s:%zu: %s at the top level ignored; settings go under "
			         "profiles.<name>",
			         f->path, line_of(k), key) < 0)
				return no_memory(err, errlen);
		} else if (warn_unknown(w, f, k, "") < 0) {
			return no_memory(err, errlen);
		}
	}
	return 0;
}

static int
parse_yaml(struct file *f, const char *buf, size_t len, struct warnings *w, char *err,
           size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int rc;

	if (!yaml_parser_initialize(&parser))
		return no_memory(err, errlen);
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR)
			rc = no_memory(err, errlen);
		else if (parser.context != NULL)
			rc = errbuf_set(err, errlen, -EINVAL,
			                "%s:%zu: YAML syntax error: %s (%s at line %zu)", f->path,
			                parser.problem_mark.line + 1,
			                parser.problem != NULL ? parser.problem : "unreadable",
			                parser.context, parser.context_mark.line + 1);
		else
			rc = errbuf_set(err, errlen, -EINVAL, "%s:%zu: YAML syntax error: %s",
			                f->path, parser.problem_mark.line + 1,
			                parser.problem != NULL ? parser.problem : "unreadable");
		yaml_parser_delete(&parser);
		return rc;
	}
	rc = parse_root(f, &doc, yaml_document_get_root_node(&doc), w, err, errlen);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

/* Loads and parses f->path. A missing file is an error only if explicit. */
static int
file_load(struct file *f, bool explicit, struct warnings *w, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t len;
	int fd, rc;

	fd = config_open_regular(f->path, &st, err, errlen);
	if (fd == -ENOENT && explicit)
		return errbuf_set(err, errlen, fd, "%s: no such config file", f->path);
	if ((fd == -ENOENT || fd == -ENOTDIR) && !explicit) {
		if (err != NULL && errlen > 0)
			err[0] = '\0';
		return 0;
	}
	if (fd < 0)
		return fd;
	rc = config_read_capped(fd, FILE_MAX, &buf, &len);
	close(fd);
	if (rc == -EFBIG)
		return errbuf_set(err, errlen, -EINVAL, "%s: larger than %d MiB", f->path,
		                  FILE_MAX / (1024 * 1024));
	if (rc < 0)
		return errbuf_set(err, errlen, rc, "%s: %s", f->path, strerror(-rc));
	f->found = true;
	f->mode = st.st_mode;
	rc = parse_yaml(f, buf, len, w, err, errlen);
	explicit_bzero(buf, len);
	free(buf);
	if (rc < 0)
		return rc;
	if (f->secret_key != NULL && (f->mode & SECRET_READERS)) {
		char what[64];

		snprintf(what, sizeof(what), "holds a %s (line %zu)", f->secret_key,
		         f->secret_line);
		return config_refuse_readable(f->path, what, f->mode, err, errlen);
	}
	return 0;
}

static struct profile *
file_find(const struct file *f, const char *name)
{
	for (size_t i = 0; i < f->nprofiles; i++)
		if (strcmp(f->profiles[i].name, name) == 0)
			return &f->profiles[i];
	return NULL;
}

/* ---- resolving ---- */

static const char *
env_get(const struct config_overrides *ov, const char *name)
{
	const char *v = ov != NULL && ov->env != NULL ? ov->env(name, ov->env_arg) : getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static const char *
nonempty(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/* The home directory: the override, $HOME, then the password database.
 * Returns NULL if there is none; *buf holds what must be freed. */
static const char *
find_home(const struct config_overrides *ov, char **buf)
{
	struct passwd pw, *res = NULL;
	const char *h;
	long size;

	*buf = NULL;
	if (ov != NULL && nonempty(ov->home) != NULL)
		return ov->home;
	h = env_get(ov, "HOME");
	if (h != NULL)
		return h;
	size = sysconf(_SC_GETPW_R_SIZE_MAX);
	if (size <= 0)
		size = 16384;
	*buf = malloc((size_t)size);
	if (*buf == NULL)
		return NULL;
	if (getpwuid_r(getuid(), &pw, *buf, (size_t)size, &res) != 0 || res == NULL ||
	    nonempty(pw.pw_dir) == NULL)
		return NULL;
	return pw.pw_dir;
}

/* Makes path absolute: "~" and "~/..." from home, a relative path from
 * base_dir (or the working directory when base_dir is NULL). */
static int
expand_path(const char *path, const char *home, const char *base_dir, char **out, const char *what,
            char *err, size_t errlen)
{
	char *cwd = NULL;
	int n;

	*out = NULL;
	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
		if (home == NULL)
			return errbuf_set(
			    err, errlen, -EINVAL,
			    "%s: cannot expand ~: no home directory ($HOME is not set)", what);
		n = asprintf(out, "%s%s", home, path + 1);
	} else if (path[0] == '/') {
		n = (*out = strdup(path)) != NULL ? 0 : -1;
	} else {
		if (base_dir == NULL)
			base_dir = cwd = getcwd(NULL, 0);
		if (base_dir == NULL)
			n = (*out = strdup(path)) != NULL ? 0 : -1;
		else
			n = asprintf(out, "%s/%s", base_dir, path);
		free(cwd);
	}
	if (n < 0) {
		*out = NULL;
		return no_memory(err, errlen);
	}
	return 0;
}

static void
cfg_set(struct config *c, int f, char *v)
{
	const char **slot[] = {
	    &c->endpoint, &c->token,     &c->token_file, &c->org_id,        &c->org_name,
	    &c->ca_file,  &c->token_url, &c->client_id,  &c->client_secret, &c->client_secret_file,
	};

	if (f < (int)(sizeof(slot) / sizeof(slot[0])))
		*slot[f] = v;
}

/* Names a layer in a message. */
static void
layer_name(const struct layer *l, const struct config *c, char *buf, size_t len)
{
	switch (l->src) {
	case CONFIG_SRC_FLAG:
		snprintf(buf, len, "the %ss", c->flag_label);
		break;
	case CONFIG_SRC_ENV:
		snprintf(buf, len, "the environment");
		break;
	default:
		snprintf(buf, len, "%s, profile \"%s\"", c->path, c->profile);
		break;
	}
}

/* Names where one value came from in a message. */
static void
origin_name(const struct layer *l, const struct config *c, int f, char *buf, size_t len)
{
	switch (l->src) {
	case CONFIG_SRC_FLAG:
		snprintf(buf, len, "%s %s", field_names[f], c->flag_label);
		break;
	case CONFIG_SRC_ENV:
		snprintf(buf, len, "%s", l->env_var[f]);
		break;
	default:
		snprintf(buf, len, "%s:%zu: %s", c->path, l->line[f], field_names[f]);
		break;
	}
}

/* The credential group must make sense within the one layer it comes from. */
static int
check_credentials(const struct layer *l, const struct config *c, char *err, size_t errlen)
{
	const char *const *v = l->v;
	bool oauth = v[CONFIG_TOKEN_URL] || v[CONFIG_CLIENT_ID] || v[CONFIG_CLIENT_SECRET] ||
	             v[CONFIG_CLIENT_SECRET_FILE];
	char where[PATH_MAX + 128];

	layer_name(l, c, where, sizeof(where));
	if (v[CONFIG_TOKEN] && v[CONFIG_TOKEN_FILE])
		return errbuf_set(err, errlen, -EINVAL, "%s: set token or token_file, not both",
		                  where);
	if ((v[CONFIG_TOKEN] || v[CONFIG_TOKEN_FILE]) && oauth)
		return errbuf_set(err, errlen, -EINVAL,
		                  "%s: set a token or client credentials (token_url, client_id, "
		                  "client_secret_file), not both",
		                  where);
	if (!oauth)
		return 0;
	if (v[CONFIG_CLIENT_SECRET] && v[CONFIG_CLIENT_SECRET_FILE])
		return errbuf_set(err, errlen, -EINVAL,
		                  "%s: set client_secret or client_secret_file, not both", where);
	if (!v[CONFIG_TOKEN_URL] || !v[CONFIG_CLIENT_ID] ||
	    !(v[CONFIG_CLIENT_SECRET] || v[CONFIG_CLIENT_SECRET_FILE]))
		return errbuf_set(err, errlen, -EINVAL,
		                  "%s: client credentials need token_url, client_id and "
		                  "client_secret_file (missing %s)",
		                  where,
		                  !v[CONFIG_TOKEN_URL]   ? "token_url"
		                  : !v[CONFIG_CLIENT_ID] ? "client_id"
		                                         : "client_secret_file");
	return 0;
}

/* Sets c->profile from the first of: the override, SCRIPTUM_PROFILE, the
 * file's profile:, a profile named "default". */
static int
select_profile(const struct config_overrides *ov, struct config *c, const struct file *f,
               struct profile **out, char *err, size_t errlen)
{
	const char *name = NULL, *env = env_get(ov, "SCRIPTUM_PROFILE");
	enum config_source src = CONFIG_SRC_UNSET;
	char *list = NULL;
	size_t listlen = 0;
	FILE *m;
	int rc;

	*out = NULL;
	if (ov != NULL && nonempty(ov->profile) != NULL) {
		name = ov->profile;
		src = CONFIG_SRC_FLAG;
	} else if (env != NULL) {
		name = env;
		src = CONFIG_SRC_ENV;
		c->env_var[CONFIG_PROFILE] = "SCRIPTUM_PROFILE";
	} else if (f->profile != NULL) {
		name = f->profile;
		src = CONFIG_SRC_FILE;
	} else if (file_find(f, "default") != NULL) {
		name = "default";
		src = CONFIG_SRC_DEFAULT;
	}
	if (name == NULL)
		return 0;
	c->source[CONFIG_PROFILE] = src;
	c->profile = strdup(name);
	if (c->profile == NULL)
		return no_memory(err, errlen);
	*out = file_find(f, name);
	if (*out != NULL)
		return 0;

	if (!f->found)
		return errbuf_set(err, errlen, -ENOENT,
		                  "profile \"%s\" (%s) not found: no config file %s", name,
		                  src == CONFIG_SRC_ENV    ? "SCRIPTUM_PROFILE"
		                  : src == CONFIG_SRC_FLAG ? c->flag_label
		                                           : config_source_name(src),
		                  c->path != NULL ? c->path : "(no home directory)");
	m = open_memstream(&list, &listlen);
	if (m == NULL)
		return no_memory(err, errlen);
	for (size_t i = 0; i < f->nprofiles; i++)
		fprintf(m, "%s%s", i > 0 ? ", " : "", f->profiles[i].name);
	if (f->nprofiles == 0)
		fputs("none", m);
	if (fclose(m) != 0) {
		free(list);
		return no_memory(err, errlen);
	}
	if (src == CONFIG_SRC_FILE)
		rc = errbuf_set(err, errlen, -ENOENT,
		                "%s:%zu: profile \"%s\" is not defined; profiles: %s", c->path,
		                f->profile_line, name, list);
	else
		rc = errbuf_set(err, errlen, -ENOENT,
		                "profile \"%s\" (%s) not found in %s; profiles: %s", name,
		                src == CONFIG_SRC_ENV    ? "SCRIPTUM_PROFILE"
		                : src == CONFIG_SRC_FLAG ? c->flag_label
		                                         : config_source_name(src),
		                c->path, list);
	free(list);
	return rc;
}

/* Chooses the config file: the override, $SCRIPTUM_CONFIG (both explicit),
 * else $XDG_CONFIG_HOME/scriptum/config.yaml if it exists, else
 * ~/.config/scriptum/config.yaml. */
static int
select_file(const struct config_overrides *ov, struct config *c, const char *home, bool *explicit,
            char *err, size_t errlen)
{
	const char *named = ov != NULL ? nonempty(ov->config_path) : NULL;
	const char *xdg = env_get(ov, "XDG_CONFIG_HOME");
	char *path = NULL;
	int rc;

	*explicit = true;
	if (named != NULL) {
		c->source[CONFIG_PATH] = CONFIG_SRC_FLAG;
	} else if ((named = env_get(ov, "SCRIPTUM_CONFIG")) != NULL) {
		c->source[CONFIG_PATH] = CONFIG_SRC_ENV;
		c->env_var[CONFIG_PATH] = "SCRIPTUM_CONFIG";
	}
	if (named != NULL) {
		rc = expand_path(named, home, NULL, &path, "config", err, errlen);
		if (rc < 0)
			return rc;
		c->path = path;
		return 0;
	}

	*explicit = false;
	c->source[CONFIG_PATH] = CONFIG_SRC_DEFAULT;
	if (xdg != NULL && xdg[0] == '/') {
		struct stat st;

		if (asprintf(&path, "%s/scriptum/config.yaml", xdg) < 0)
			return no_memory(err, errlen);
		if (home == NULL || stat(path, &st) == 0) {
			c->path = path;
			return 0;
		}
		free(path);
	}
	if (home == NULL)
		return 0; /* nowhere to look: no file */
	if (asprintf(&path, "%s/.config/scriptum/config.yaml", home) < 0)
		return no_memory(err, errlen);
	c->path = path;
	return 0;
}

/* Fills the three layers. The file layer's values are borrowed from p. */
static void
fill_layers(const struct config_overrides *ov, const struct profile *p, struct layer l[3],
            const char *file_dir)
{
	static const char *const env_names[NSETTINGS] = {
	    [CONFIG_ENDPOINT] = "SCRIPTUM_API_ENDPOINT",
	    [CONFIG_ORG_ID] = "SCRIPTUM_ORG_ID",
	    [CONFIG_ORG_NAME] = "SCRIPTUM_ORG_NAME",
	    [CONFIG_MIN_RATE] = "SCRIPTUM_MIN_RATE",
	    [CONFIG_MIN_RATE_WINDOW] = "SCRIPTUM_MIN_RATE_WINDOW",
	};

	memset(l, 0, 3 * sizeof(*l));
	l[0].src = CONFIG_SRC_FLAG;
	l[1].src = CONFIG_SRC_ENV;
	l[2].src = CONFIG_SRC_FILE;
	l[2].base_dir = file_dir;
	if (ov != NULL) {
		const char *const fv[NSETTINGS] = {
		    ov->endpoint,        ov->token,
		    ov->token_file,      ov->org_id,
		    ov->org_name,        ov->ca_file,
		    ov->token_url,       ov->client_id,
		    ov->client_secret,   ov->client_secret_file,
		    ov->timeout,         ov->min_rate,
		    ov->min_rate_window,
		};

		for (int i = 0; i < NSETTINGS; i++)
			l[0].v[i] = nonempty(fv[i]);
	}
	for (int i = 0; i < NSETTINGS; i++) {
		if (env_names[i] != NULL) {
			l[1].v[i] = env_get(ov, env_names[i]);
			l[1].env_var[i] = env_names[i];
		}
	}
	/* Both name the same token; the product's own variable wins. */
	l[1].env_var[CONFIG_TOKEN] = "SCRIPTUM_TOKEN";
	l[1].v[CONFIG_TOKEN] = env_get(ov, "SCRIPTUM_TOKEN");
	if (l[1].v[CONFIG_TOKEN] == NULL) {
		l[1].env_var[CONFIG_TOKEN] = "DODIL_TOKEN";
		l[1].v[CONFIG_TOKEN] = env_get(ov, "DODIL_TOKEN");
	}
	if (p != NULL) {
		for (int i = 0; i < NSETTINGS; i++) {
			l[2].v[i] = p->v[i];
			l[2].line[i] = p->vline[i];
		}
	}
}

/* Takes field f from layer l into c. */
static int
take(struct config *c, const struct layer *l, int f, const char *home, char *err, size_t errlen)
{
	const char *v = l->v[f];
	char where[PATH_MAX + 128];
	char *copy;
	int rc;

	if (v == NULL)
		return 0;
	origin_name(l, c, f, where, sizeof(where));
	if (config_has_control(v, strlen(v)))
		return errbuf_set(err, errlen, -EINVAL, "%s: holds a control character", where);
	c->source[f] = l->src;
	c->env_var[f] = l->env_var[f];
	if (f == CONFIG_TIMEOUT) {
		if (config_parse_duration(v, &c->timeout_ms) < 0)
			return errbuf_set(err, errlen, -EINVAL,
			                  "%s: \"%.40s\" is not a duration; %s", where, v,
			                  DURATION_HINT);
		if (c->timeout_ms == 0)
			return errbuf_set(err, errlen, -EINVAL, "%s: must be more than 0", where);
		return 0;
	}
	if (f == CONFIG_MIN_RATE) {
		if (config_parse_rate(v, &c->min_rate) < 0)
			return errbuf_set(err, errlen, -EINVAL,
			                  "%s: \"%.40s\" is not a rate in bytes/s; %s", where, v,
			                  RATE_HINT);
		return 0;
	}
	if (f == CONFIG_MIN_RATE_WINDOW) {
		if (config_parse_duration(v, &c->min_rate_window_ms) < 0)
			return errbuf_set(err, errlen, -EINVAL,
			                  "%s: \"%.40s\" is not a duration; %s", where, v,
			                  DURATION_HINT);
		if (c->min_rate_window_ms < 1000)
			return errbuf_set(err, errlen, -EINVAL, "%s: must be at least 1s", where);
		return 0;
	}
	if (is_path_field(f)) {
		rc = expand_path(v, home, l->base_dir, &copy, where, err, errlen);
		if (rc < 0)
			return rc;
	} else if ((copy = strdup(v)) == NULL) {
		return no_memory(err, errlen);
	}
	cfg_set(c, f, copy);
	return 0;
}

static int
resolve(const struct config_overrides *ov, struct config *c, struct file *f, struct warnings *w,
        char *err, size_t errlen)
{
	struct profile *p;
	struct layer l[3];
	const struct layer *cred = NULL;
	char *homebuf = NULL, *file_dir = NULL, *slash;
	const char *home;
	bool explicit;
	int rc;

	home = find_home(ov, &homebuf);
	rc = select_file(ov, c, home, &explicit, err, errlen);
	if (rc < 0)
		goto out;
	if (c->path != NULL) {
		f->path = c->path;
		rc = file_load(f, explicit, w, err, errlen);
		if (rc < 0)
			goto out;
		c->path_found = f->found;
	}
	rc = select_profile(ov, c, f, &p, err, errlen);
	if (rc < 0)
		goto out;

	if (c->path != NULL && (file_dir = strdup(c->path)) == NULL) {
		rc = no_memory(err, errlen);
		goto out;
	}
	if (file_dir != NULL && (slash = strrchr(file_dir, '/')) != NULL)
		*(slash == file_dir ? slash + 1 : slash) = '\0';
	fill_layers(ov, p, l, file_dir);

	for (int i = 0; i < NSETTINGS; i++) {
		bool is_cred = false;

		for (size_t k = 0; k < sizeof(cred_fields) / sizeof(cred_fields[0]); k++)
			is_cred |= (int)cred_fields[k] == i;
		if (is_cred)
			continue;
		for (int j = 0; j < 3; j++) {
			if (l[j].v[i] != NULL) {
				rc = take(c, &l[j], i, home, err, errlen);
				if (rc < 0)
					goto out;
				break;
			}
		}
	}
	for (int j = 0; j < 3 && cred == NULL; j++)
		for (size_t k = 0; k < sizeof(cred_fields) / sizeof(cred_fields[0]); k++)
			if (l[j].v[cred_fields[k]] != NULL)
				cred = &l[j];
	if (cred != NULL) {
		rc = check_credentials(cred, c, err, errlen);
		if (rc < 0)
			goto out;
		for (size_t k = 0; k < sizeof(cred_fields) / sizeof(cred_fields[0]); k++) {
			rc = take(c, cred, cred_fields[k], home, err, errlen);
			if (rc < 0)
				goto out;
		}
	}
	rc = 0;
out:
	free(file_dir);
	free(homebuf);
	return rc;
}

int
config_resolve(const struct config_overrides *ov, struct config **out, char *err, size_t errlen)
{
	struct config *c;
	struct file f;
	struct warnings w = {0};
	const char *label = ov != NULL ? nonempty(ov->label) : NULL;
	int rc;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&f, 0, sizeof(f));
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return no_memory(err, errlen);
	c->min_rate = -1;
	c->flag_label = strdup(label != NULL ? label : DEFAULT_LABEL);
	if (c->flag_label == NULL) {
		free(c);
		return no_memory(err, errlen);
	}
	rc = resolve(ov, c, &f, &w, err, errlen);
	file_free(&f);
	c->warnings = (const char *const *)w.v;
	c->nwarnings = w.n;
	if (rc < 0) {
		config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void
free_secret(const char *s)
{
	if (s != NULL)
		explicit_bzero((char *)s, strlen(s));
	free((char *)s);
}

void
config_free(struct config *c)
{
	struct warnings w;

	if (c == NULL)
		return;
	free((char *)c->endpoint);
	free_secret(c->token);
	free((char *)c->token_file);
	free((char *)c->org_id);
	free((char *)c->org_name);
	free((char *)c->ca_file);
	free((char *)c->token_url);
	free((char *)c->client_id);
	free_secret(c->client_secret);
	free((char *)c->client_secret_file);
	free((char *)c->profile);
	free((char *)c->path);
	free((char *)c->flag_label);
	w.v = (char **)c->warnings;
	w.n = c->nwarnings;
	warnings_free(&w);
	free(c);
}

/* ---- rendering ---- */

static void
render_source(FILE *m, const struct config *c, int f)
{
	switch (c->source[f]) {
	case CONFIG_SRC_FLAG:
		fprintf(m, " (%s)", c->flag_label);
		break;
	case CONFIG_SRC_ENV:
		fprintf(m, " (env %s)", c->env_var[f] != NULL ? c->env_var[f] : "?");
		break;
	case CONFIG_SRC_FILE:
		if (f == CONFIG_PROFILE)
			fputs(" (file)", m);
		else
			fprintf(m, " (file, profile %s)", c->profile);
		break;
	case CONFIG_SRC_DEFAULT:
		fputs(" (default)", m);
		break;
	case CONFIG_SRC_UNSET:
		break;
	}
}

char *
config_render(const struct config *c)
{
	const char *values[] = {
	    c->endpoint, c->token,     c->token_file, c->org_id,        c->org_name,
	    c->ca_file,  c->token_url, c->client_id,  c->client_secret, c->client_secret_file,
	};
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	if (m == NULL)
		return NULL;
	for (int f = 0; f < CONFIG_NFIELDS; f++) {
		const char *v = f < (int)(sizeof(values) / sizeof(values[0])) ? values[f] : NULL;
		char dur[64];

		if (f == CONFIG_TIMEOUT && c->timeout_ms > 0) {
			config_format_duration(c->timeout_ms, dur, sizeof(dur));
			v = dur;
		} else if (f == CONFIG_MIN_RATE && c->min_rate >= 0) {
			snprintf(dur, sizeof(dur), "%lld", (long long)c->min_rate);
			v = dur;
		} else if (f == CONFIG_MIN_RATE_WINDOW && c->min_rate_window_ms > 0) {
			config_format_duration(c->min_rate_window_ms, dur, sizeof(dur));
			v = dur;
		} else if (f == CONFIG_PROFILE) {
			v = c->profile;
		} else if (f == CONFIG_PATH) {
			v = c->path;
		}
		if (f == CONFIG_TOKEN && v == NULL && c->token_file != NULL)
			v = "<from token_file>";
		else if (f == CONFIG_TOKEN && v == NULL && c->client_id != NULL)
			v = "<from client credentials>";
		else if (f == CONFIG_CLIENT_SECRET && v == NULL && c->client_secret_file != NULL)
			v = "<from client_secret_file>";
		else if ((f == CONFIG_TOKEN || f == CONFIG_CLIENT_SECRET) && v != NULL)
			v = "<set>";

		fprintf(m, "%s: %s", field_names[f], v != NULL ? v : "(unset)");
		if (v != NULL && c->source[f] != CONFIG_SRC_UNSET)
			render_source(m, c, f);
		if (f == CONFIG_PATH && c->path != NULL && !c->path_found)
			fputs(" (not found)", m);
		fputc('\n', m);
	}
	if (fclose(m) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
