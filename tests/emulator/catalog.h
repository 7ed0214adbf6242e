/*
 * The emulator's script catalog, loaded from YAML (the built-in demo catalog
 * or --seed FILE.yaml). A catalog is immutable once loaded; every thread
 * points into it, so it lives as long as the emulator.
 */
#ifndef CATALOG_H
#define CATALOG_H

#include <stddef.h>
#include <stdint.h>

enum output_kind { OUTPUT_ECHO, OUTPUT_GENERATED, OUTPUT_NONE };

struct step_def {
	char *name;
	char *primitive;
	char *tool;
	char *fail;        /* error message when the step fails, or NULL */
	int fail_attempts; /* attempts that fail; 0 = every attempt */
	int fatal;         /* on_error: fail - the thread fails instead of pausing */
	int duration_ms;
	int count;             /* iterate: iterations of the children */
	int yields;            /* yield: values pushed */
	uint64_t output_bytes; /* generated step output, 0 = a small object */
	char *prompt;          /* ask */
	char *type;            /* ask: string, number, boolean or object */
	char **options;        /* ask */
	size_t noptions;
	struct step_def *children;
	size_t nchildren;
};

/* One step instance of a run, in execution (and numeric path) order. */
struct plan_step {
	char path[64];
	const struct step_def *def;
	size_t last;   /* index of the last descendant; itself for a leaf */
	int container; /* an iterate: running while its children run */
};

struct script {
	char *name;
	char *description;
	int nversions;
	int active_version;
	int64_t created_ms;
	struct step_def *steps;
	size_t nsteps;
	struct plan_step *plan;
	size_t nplan;
	enum output_kind output;
	uint64_t output_bytes;
};

/* Threads to make at start-up: finished ones (status set) or live ones. */
struct seed_def {
	char *script;
	int count;
	char *status; /* NULL for live threads */
	char *input;
	uint64_t output_bytes;
	int has_output_bytes;
};

struct catalog {
	struct script *scripts;
	size_t nscripts;
	struct seed_def *seeds;
	size_t nseeds;
	struct seed_def *starts;
	size_t nstarts;
};

/* Loads a catalog from YAML text; on error fills err and returns -EINVAL. */
int catalog_load(const char *text, size_t len, const char *name, struct catalog **out, char *err,
                 size_t errlen);
int catalog_load_file(const char *path, struct catalog **out, char *err, size_t errlen);
int catalog_load_demo(struct catalog **out, char *err, size_t errlen);
void catalog_free(struct catalog *cat);
const struct script *catalog_find(const struct catalog *cat, const char *name);

#endif
