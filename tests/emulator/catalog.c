/*
 * Script catalog loading. The YAML is read with libyaml's document API and
 * walked into step definitions; each script's steps are then flattened into
 * the plan a run follows, with paths "1", "2", "2.0.0", "2.0.1", "2.1.0" ...
 * (an iterate's children are numbered iteration.child under it).
 */
#include "catalog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yaml.h>

#include "xalloc.h"

extern unsigned char demo_yaml[];
extern unsigned int demo_yaml_len;

struct loader {
	yaml_document_t doc;
	const char *name;
	char *err;
	size_t errlen;
	int failed;
};

static void
ld_fail(struct loader *ld, const yaml_node_t *at, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (ld->failed)
		return;
	ld->failed = 1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (at != NULL)
		snprintf(ld->err, ld->errlen, "%s:%zu: %s", ld->name, at->start_mark.line + 1, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", ld->name, msg);
}

static yaml_node_t *
ld_get(struct loader *ld, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(&ld->doc, p->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(&ld->doc, p->value);
	}
	return NULL;
}

static char *
ld_str(struct loader *ld, yaml_node_t *map, const char *key, const char *dflt)
{
	yaml_node_t *n = ld_get(ld, map, key);

	if (n == NULL)
		return dflt != NULL ? xstrdup(dflt) : NULL;
	if (n->type != YAML_SCALAR_NODE) {
		ld_fail(ld, n, "'%s' must be a string", key);
		return NULL;
	}
	return xstrdup((const char *)n->data.scalar.value);
}

static long long
ld_int(struct loader *ld, yaml_node_t *map, const char *key, long long dflt)
{
	yaml_node_t *n = ld_get(ld, map, key);
	char *end;
	long long v;

	if (n == NULL)
		return dflt;
	if (n->type != YAML_SCALAR_NODE) {
		ld_fail(ld, n, "'%s' must be a number", key);
		return dflt;
	}
	errno = 0;
	v = strtoll((const char *)n->data.scalar.value, &end, 10);
	if (errno != 0 || *end != '\0' || end == (char *)n->data.scalar.value || v < 0) {
		ld_fail(ld, n, "'%s' must be a non-negative integer, not '%s'", key,
		        n->data.scalar.value);
		return dflt;
	}
	return v;
}

static yaml_node_t *
ld_seq(struct loader *ld, yaml_node_t *map, const char *key, size_t *n)
{
	yaml_node_t *s = ld_get(ld, map, key);

	*n = 0;
	if (s == NULL)
		return NULL;
	if (s->type != YAML_SEQUENCE_NODE) {
		ld_fail(ld, s, "'%s' must be a list", key);
		return NULL;
	}
	*n = (size_t)(s->data.sequence.items.top - s->data.sequence.items.start);
	return s;
}

static yaml_node_t *
ld_item(struct loader *ld, yaml_node_t *seq, size_t i)
{
	return yaml_document_get_node(&ld->doc, seq->data.sequence.items.start[i]);
}

static void
step_def_clear(struct step_def *d)
{
	free(d->name);
	free(d->primitive);
	free(d->tool);
	free(d->fail);
	free(d->prompt);
	free(d->type);
	for (size_t i = 0; i < d->noptions; i++)
		free(d->options[i]);
	free(d->options);
	for (size_t i = 0; i < d->nchildren; i++)
		step_def_clear(&d->children[i]);
	free(d->children);
}

static void ld_steps(struct loader *ld, yaml_node_t *map, struct step_def **out, size_t *n);

static void
ld_step(struct loader *ld, yaml_node_t *node, struct step_def *d)
{
	yaml_node_t *opts;
	char *on_error;
	size_t n;

	if (node->type != YAML_MAPPING_NODE) {
		ld_fail(ld, node, "a step must be a mapping");
		return;
	}
	d->name = ld_str(ld, node, "name", NULL);
	if (d->name == NULL)
		ld_fail(ld, node, "a step needs a name");
	d->primitive = ld_str(ld, node, "primitive", "execute");
	d->tool = ld_str(ld, node, "tool", NULL);
	d->fail = ld_str(ld, node, "fail", NULL);
	d->fail_attempts = (int)ld_int(ld, node, "fail_attempts", 0);
	on_error = ld_str(ld, node, "on_error", NULL);
	d->fatal = on_error != NULL && strcmp(on_error, "fail") == 0;
	free(on_error);
	d->duration_ms = (int)ld_int(ld, node, "duration_ms", 50);
	d->count = (int)ld_int(ld, node, "count", 1);
	d->yields = (int)ld_int(ld, node, "yields", 0);
	d->output_bytes = (uint64_t)ld_int(ld, node, "output_bytes", 0);
	d->prompt = ld_str(ld, node, "prompt", NULL);
	d->type = ld_str(ld, node, "type", NULL);
	opts = ld_seq(ld, node, "options", &n);
	if (opts != NULL && n > 0) {
		d->options = xcalloc(n, sizeof(*d->options));
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *o = ld_item(ld, opts, i);

			if (o->type != YAML_SCALAR_NODE) {
				ld_fail(ld, o, "options must be strings");
				d->options[i] = xstrdup("");
			} else {
				d->options[i] = xstrdup((const char *)o->data.scalar.value);
			}
		}
		d->noptions = n;
	}
	if (strcmp(d->primitive, "ask") == 0 && d->type == NULL)
		d->type = xstrdup("string");
	ld_steps(ld, node, &d->children, &d->nchildren);
	if (strcmp(d->primitive, "iterate") == 0 && d->nchildren == 0)
		ld_fail(ld, node, "iterate step '%s' has no steps", d->name ? d->name : "?");
}

static void
ld_steps(struct loader *ld, yaml_node_t *map, struct step_def **out, size_t *n)
{
	yaml_node_t *seq = ld_seq(ld, map, "steps", n);

	*out = NULL;
	if (seq == NULL || *n == 0)
		return;
	*out = xcalloc(*n, sizeof(**out));
	for (size_t i = 0; i < *n; i++)
		ld_step(ld, ld_item(ld, seq, i), &(*out)[i]);
}

struct plan_builder {
	struct plan_step *v;
	size_t n, cap;
};

static size_t
plan_add(struct plan_builder *pb, const char *path, const struct step_def *d)
{
	if (pb->n == pb->cap) {
		pb->cap = pb->cap ? pb->cap * 2 : 16;
		pb->v = xreallocarray(pb->v, pb->cap, sizeof(*pb->v));
	}
	memset(&pb->v[pb->n], 0, sizeof(pb->v[pb->n]));
	snprintf(pb->v[pb->n].path, sizeof(pb->v[pb->n].path), "%s", path);
	pb->v[pb->n].def = d;
	pb->v[pb->n].last = pb->n;
	return pb->n++;
}

/* Appends the plan of defs under prefix; -1 when paths get too deep. */
static int
plan_build(struct plan_builder *pb, const char *prefix, const struct step_def *defs, size_t n,
           int base)
{
	char path[64];
	int len;

	for (size_t i = 0; i < n; i++) {
		const struct step_def *d = &defs[i];
		size_t self;

		if (prefix[0] != '\0')
			len = snprintf(path, sizeof(path), "%s.%d", prefix, (int)i + base);
		else
			len = snprintf(path, sizeof(path), "%d", (int)i + base);
		if (len < 0 || (size_t)len >= sizeof(path))
			return -1;
		self = plan_add(pb, path, d);
		if (d->nchildren == 0)
			continue;
		pb->v[self].container = 1;
		for (int it = 0; it < d->count; it++) {
			char ipath[64];

			len = snprintf(ipath, sizeof(ipath), "%s.%d", path, it);
			if (len < 0 || (size_t)len >= sizeof(ipath) ||
			    plan_build(pb, ipath, d->children, d->nchildren, 0) != 0)
				return -1;
		}
		pb->v[self].last = pb->n - 1;
	}
	return 0;
}

static void
ld_script(struct loader *ld, yaml_node_t *node, struct script *s)
{
	struct plan_builder pb = {0};
	char *output;

	if (node->type != YAML_MAPPING_NODE) {
		ld_fail(ld, node, "a script must be a mapping");
		return;
	}
	s->name = ld_str(ld, node, "name", NULL);
	if (s->name == NULL || s->name[0] == '\0')
		ld_fail(ld, node, "a script needs a name");
	s->description = ld_str(ld, node, "description", "");
	s->nversions = (int)ld_int(ld, node, "versions", 1);
	if (s->nversions < 1)
		ld_fail(ld, node, "versions must be at least 1");
	s->active_version = (int)ld_int(ld, node, "active_version", s->nversions);
	if (s->active_version < 1 || s->active_version > s->nversions)
		ld_fail(ld, node, "active_version must be between 1 and versions");
	ld_steps(ld, node, &s->steps, &s->nsteps);
	if (s->nsteps == 0)
		ld_fail(ld, node, "script '%s' has no steps", s->name ? s->name : "?");
	s->output_bytes = (uint64_t)ld_int(ld, node, "output_bytes", 0);
	output = ld_str(ld, node, "output", s->output_bytes ? "generated" : "echo");
	if (output != NULL && strcmp(output, "echo") == 0)
		s->output = OUTPUT_ECHO;
	else if (output != NULL && strcmp(output, "none") == 0)
		s->output = OUTPUT_NONE;
	else if (output != NULL && strcmp(output, "generated") == 0)
		s->output = OUTPUT_GENERATED;
	else
		ld_fail(ld, node, "output must be echo, generated or none");
	free(output);
	if (plan_build(&pb, "", s->steps, s->nsteps, 1) != 0)
		ld_fail(ld, node, "script '%s' nests its steps too deeply",
		        s->name ? s->name : "?");
	if (pb.n > 100000)
		ld_fail(ld, node, "script '%s' has more than 100000 steps",
		        s->name ? s->name : "?");
	s->plan = pb.v;
	s->nplan = pb.n;
}

static void
ld_seeds(struct loader *ld, yaml_node_t *root, const char *key, struct seed_def **out, size_t *n)
{
	yaml_node_t *seq = ld_seq(ld, root, key, n);

	*out = NULL;
	if (seq == NULL || *n == 0)
		return;
	*out = xcalloc(*n, sizeof(**out));
	for (size_t i = 0; i < *n; i++) {
		yaml_node_t *node = ld_item(ld, seq, i);
		struct seed_def *sd = &(*out)[i];

		sd->script = ld_str(ld, node, "script", NULL);
		if (sd->script == NULL)
			ld_fail(ld, node, "a %s entry needs a script", key);
		sd->count = (int)ld_int(ld, node, "count", 1);
		sd->status = ld_str(ld, node, "status", NULL);
		sd->input = ld_str(ld, node, "input", NULL);
		sd->has_output_bytes = ld_get(ld, node, "output_bytes") != NULL;
		sd->output_bytes = (uint64_t)ld_int(ld, node, "output_bytes", 0);
	}
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
catalog_load(const char *text, size_t len, const char *name, struct catalog **out, char *err,
             size_t errlen)
{
	struct loader ld = {.name = name, .err = err, .errlen = errlen};
	yaml_parser_t parser;
	yaml_node_t *root, *seq;
	struct catalog *cat;
	size_t n;

	*out = NULL;
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err, errlen, "%s: cannot initialise the YAML parser", name);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &ld.doc)) {
		snprintf(err, errlen, "%s:%zu: %s", name, parser.problem_mark.line + 1,
		         parser.problem ? parser.problem : "invalid YAML");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	yaml_parser_delete(&parser);

	cat = xcalloc(1, sizeof(*cat));
	root = yaml_document_get_root_node(&ld.doc);
	if (root == NULL || root->type != YAML_MAPPING_NODE) {
		ld_fail(&ld, root, "the catalog must be a mapping with a 'scripts' list");
	} else {
		seq = ld_seq(&ld, root, "scripts", &n);
		if (n == 0)
			ld_fail(&ld, root, "the catalog has no scripts");
		cat->scripts = n ? xcalloc(n, sizeof(*cat->scripts)) : NULL;
		cat->nscripts = n;
		for (size_t i = 0; i < n && !ld.failed; i++) {
			ld_script(&ld, ld_item(&ld, seq, i), &cat->scripts[i]);
			cat->scripts[i].created_ms = now_ms() - (int64_t)(n - i) * 86400000;
			for (size_t j = 0; j < i && !ld.failed; j++)
				if (strcmp(cat->scripts[j].name, cat->scripts[i].name) == 0)
					ld_fail(&ld, NULL, "script '%s' is defined twice",
					        cat->scripts[i].name);
		}
		ld_seeds(&ld, root, "seed", &cat->seeds, &cat->nseeds);
		ld_seeds(&ld, root, "start", &cat->starts, &cat->nstarts);
		for (size_t i = 0; i < cat->nseeds + cat->nstarts && !ld.failed; i++) {
			struct seed_def *sd =
			    i < cat->nseeds ? &cat->seeds[i] : &cat->starts[i - cat->nseeds];

			if (catalog_find(cat, sd->script) == NULL)
				ld_fail(&ld, NULL, "seed names unknown script '%s'", sd->script);
		}
	}
	yaml_document_delete(&ld.doc);
	if (ld.failed) {
		catalog_free(cat);
		return -EINVAL;
	}
	*out = cat;
	return 0;
}

int
catalog_load_file(const char *path, struct catalog **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, cap = 0, got;
	int rc;

	*out = NULL;
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	do {
		if (len + 65536 > cap) {
			cap = cap ? cap * 2 : 131072;
			if (cap > 64u << 20) {
				snprintf(err, errlen, "%s: catalog larger than 64 MiB", path);
				free(text);
				fclose(f);
				return -EFBIG;
			}
			text = xrealloc(text, cap);
		}
		got = fread(text + len, 1, cap - len, f);
		len += got;
	} while (got > 0);
	fclose(f);
	rc = catalog_load(text, len, path, out, err, errlen);
	free(text);
	return rc;
}

int
catalog_load_demo(struct catalog **out, char *err, size_t errlen)
{
	return catalog_load((const char *)demo_yaml, demo_yaml_len, "demo catalog", out, err,
	                    errlen);
}

void
catalog_free(struct catalog *cat)
{
	if (cat == NULL)
		return;
	for (size_t i = 0; i < cat->nscripts; i++) {
		struct script *s = &cat->scripts[i];

		free(s->name);
		free(s->description);
		for (size_t j = 0; j < s->nsteps; j++)
			step_def_clear(&s->steps[j]);
		free(s->steps);
		free(s->plan);
	}
	free(cat->scripts);
	for (size_t i = 0; i < cat->nseeds + cat->nstarts; i++) {
		struct seed_def *sd =
		    i < cat->nseeds ? &cat->seeds[i] : &cat->starts[i - cat->nseeds];

		free(sd->script);
		free(sd->status);
		free(sd->input);
	}
	free(cat->seeds);
	free(cat->starts);
	free(cat);
}

const struct script *
catalog_find(const struct catalog *cat, const char *name)
{
	for (size_t i = 0; i < cat->nscripts; i++)
		if (cat->scripts[i].name != NULL && strcmp(cat->scripts[i].name, name) == 0)
			return &cat->scripts[i];
	return NULL;
}
