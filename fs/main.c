/*
 * scriptumfs: mount Scriptum's threads and scripts as files.
 *
 *	$ scriptumfs -o profile=staging ~/runs
 *	$ ls ~/runs/threads | head
 *	$ echo '{"n": 1}' > ~/runs/scripts/echo/new && cat ~/runs/scripts/echo/latest/status
 *	$ fusermount3 -u ~/runs
 *
 * This file: the options (fuse_opt), the configuration, the checks made
 * before the daemon detaches (credentials, reachability), and the session.
 * main() unwinds with goto err_outN, as libfuse's examples do.
 */
#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <errno.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "ops.h"
#include "reap.h"
#include "tree.h"

#define SCRIPTUMFS_VERSION "0.1.0"

struct opts {
	char *profile;
	char *endpoint;
	char *token_file;
	char *org_id;
	char *org_name;
	char *config;
	char *list_limit;
	char *cache_dir;
	char *cache_size;
	char *mem_cache;
	char *running_ttl;
	char *timeout;
	char *min_rate;
	char *min_rate_window;
	char *inode_limit;
	char *source; /* the first of two words: a profile name or an endpoint URL */
	int nonopts;
	int load_env;
	int show_version;
};

#define OPT(t, p)                              \
	{                                      \
		t, offsetof(struct opts, p), 1 \
	}

static const struct fuse_opt opt_spec[] = {
    OPT("profile=%s", profile),
    OPT("endpoint=%s", endpoint),
    OPT("token_file=%s", token_file),
    OPT("org_id=%s", org_id),
    OPT("org_name=%s", org_name),
    OPT("config=%s", config),
    OPT("list_limit=%s", list_limit),
    OPT("cache_dir=%s", cache_dir),
    OPT("cache_size=%s", cache_size),
    OPT("mem_cache=%s", mem_cache),
    OPT("running_ttl=%s", running_ttl),
    OPT("timeout=%s", timeout),
    OPT("min_rate=%s", min_rate),
    OPT("min_rate_window=%s", min_rate_window),
    OPT("inode_limit=%s", inode_limit),
    OPT("load_env", load_env),
    OPT("--version", show_version),
    OPT("-V", show_version),
    FUSE_OPT_END,
};

/* Words that are not options: with two, as mount(8) and mount.fuse3 pass
 * them (SOURCE MOUNTPOINT), the first is the source; a lone one is the
 * mount point, left to fuse_parse_cmdline(). */
static int
opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct opts *o = data;

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->nonopts++ == 0) {
		if ((o->source = strdup(arg)) == NULL)
			return -1;
		return 0; /* held back until we know whether another word follows */
	}
	return 1;
}

static void
usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o opt[,opt...]] [SOURCE] MOUNTPOINT\n"
	       "\n"
	       "SOURCE, as mount(8) passes it: a profile name or an endpoint URL\n"
	       "(\"scriptumfs\" means neither: the options and configuration decide).\n"
	       "\n"
	       "scriptumfs options:\n"
	       "    -o profile=NAME        the configuration profile (scriptum-config(5))\n"
	       "    -o endpoint=URL        the API endpoint\n"
	       "    -o token_file=PATH     a file holding the bearer token\n"
	       "    -o org_id=ID           sent as x-organization-id\n"
	       "    -o org_name=NAME       sent as x-organization-name\n"
	       "    -o config=FILE         the configuration file\n"
	       "    -o list_limit=N        threads listed in threads/ and the like (1000)\n"
	       "    -o cache_dir=DIR       the payload cache (~/.cache/scriptumfs/...)\n"
	       "    -o cache_size=BYTES    payload bytes kept on disk (1G)\n"
	       "    -o mem_cache=BYTES     thread metadata kept in memory (64M)\n"
	       "    -o running_ttl=DUR     freshness of a running thread's files (1s)\n"
	       "    -o timeout=DUR         deadline of one API call (30s)\n"
	       "    -o min_rate=BYTES/S    a download slower than this over the window\n"
	       "                           fails (1KiB; 0: no floor)\n"
	       "    -o min_rate_window=DUR the window of min_rate (30s)\n"
	       "    -o inode_limit=N       threads the kernel is let keep before old ones are "
	       "dropped (100000)\n"
	       "    -o load_env            start threads with the tenant's environment\n"
	       "    -o allow_other         let other users in\n"
	       "\n",
	       prog);
}

/* "1G", "512M", "64K", "1000": bytes. */
static int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (end == s || errno != 0 || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10, end++;
		break;
	case 'm':
	case 'M':
		v <<= 20, end++;
		break;
	case 'g':
	case 'G':
		v <<= 30, end++;
		break;
	case 't':
	case 'T':
		v <<= 40, end++;
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* The default cache: one directory per endpoint and org, so two mounts of
 * different services never share thread ids. */
static char *
default_cache_dir(const struct config *cfg)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	/* FNV-1a (hash.h) from a start of its own (one digit short of FNV's
	 * basis since the first release): the names of existing caches
	 * depend on it */
	uint64_t h = 1469598103934665603ull;
	char *dir;
	const char *parts[] = {cfg->endpoint, cfg->org_id ? cfg->org_id : "",
	                       cfg->org_name ? cfg->org_name : ""};

	for (size_t i = 0; i < 3; i++)
		h = hash_fnv1a(h, parts[i], strlen(parts[i]));
	if (xdg != NULL && xdg[0] == '/') {
		if (asprintf(&dir, "%s/scriptumfs/%016" PRIx64, xdg, h) < 0)
			return NULL;
	} else if (asprintf(&dir, "%s/.cache/scriptumfs/%016" PRIx64,
	                    home != NULL && home[0] ? home : "/tmp", h) < 0) {
		return NULL;
	}
	return dir;
}

/* The options into fs_options; 0, or 1 after a message. */
static int
mount_options(const struct opts *o, const struct config *cfg, struct fs_options *fo,
              char **cache_dir)
{
	int64_t ms;

	memset(fo, 0, sizeof(*fo));
	fo->list_limit = FS_LIST_LIMIT;
	fo->running_ttl_ms = FS_RUNNING_TTL_MS;
	fo->mem_cache = FS_MEM_CACHE;
	fo->cache_size = FS_CACHE_SIZE;
	fo->max_threads = FS_MAX_THREADS;
	fo->load_env = o->load_env != 0;
	fo->uid = getuid();
	fo->gid = getgid();
	if (o->list_limit != NULL) {
		uint64_t v;

		if (parse_size(o->list_limit, &v) != 0 || v == 0 || v > 10000000) {
			fprintf(stderr,
			        "scriptumfs: list_limit wants a number of threads, not '%s'\n",
			        o->list_limit);
			return 1;
		}
		fo->list_limit = (unsigned)v;
	}
	if (o->inode_limit != NULL) {
		uint64_t v;

		if (parse_size(o->inode_limit, &v) != 0 || v < 16 || v > 100000000) {
			fprintf(stderr,
			        "scriptumfs: inode_limit wants a number of threads (16 or more), "
			        "not '%s'\n",
			        o->inode_limit);
			return 1;
		}
		fo->max_threads = (unsigned)v;
	}
	if (o->running_ttl != NULL) {
		if (config_parse_duration(o->running_ttl, &ms) != 0) {
			fprintf(stderr,
			        "scriptumfs: running_ttl wants a duration (1s, 500ms), not '%s'\n",
			        o->running_ttl);
			return 1;
		}
		fo->running_ttl_ms = ms;
	}
	if (o->cache_size != NULL && parse_size(o->cache_size, &fo->cache_size) != 0) {
		fprintf(stderr, "scriptumfs: cache_size wants bytes (1G, 512M), not '%s'\n",
		        o->cache_size);
		return 1;
	}
	if (o->mem_cache != NULL && parse_size(o->mem_cache, &fo->mem_cache) != 0) {
		fprintf(stderr, "scriptumfs: mem_cache wants bytes (64M), not '%s'\n",
		        o->mem_cache);
		return 1;
	}
	*cache_dir = o->cache_dir != NULL ? strdup(o->cache_dir) : default_cache_dir(cfg);
	if (*cache_dir == NULL) {
		fprintf(stderr, "scriptumfs: out of memory\n");
		return 1;
	}
	fo->cache_dir = *cache_dir;
	return 0;
}

/* .scriptumfs/config: the configuration (no secrets) and the mount's options. */
static char *
config_text(const struct config *cfg, const struct fs_options *fo)
{
	char *rendered = config_render(cfg), *out = NULL, ttl[32];

	if (rendered == NULL)
		return NULL;
	config_format_duration(fo->running_ttl_ms, ttl, sizeof(ttl));
	if (asprintf(&out,
	             "%slist_limit: %u\nrunning_ttl: %s\ncache_dir: %s\ncache_size: %" PRIu64
	             "\nmem_cache: %" PRIu64 "\ninode_limit: %u\nload_env: %s\n",
	             rendered, fo->list_limit, ttl, fo->cache_dir, fo->cache_size, fo->mem_cache,
	             fo->max_threads, fo->load_env ? "yes" : "no") < 0)
		out = NULL;
	free(rendered);
	return out;
}

/* Credentials and reachability, before the daemon detaches, so that a
 * mount that cannot work fails with the reason instead of hanging later. */
static int
check_service(struct api *api, const char *endpoint)
{
	struct api_list q = {.page_size = 1};
	struct model_thread_list l;
	struct http_error e;
	char msg[1024];

	if (api_list_threads(api, &q, &l, &e) != 0) {
		http_error_string(&e, msg, sizeof(msg));
		api_redact(api, msg, sizeof(msg));
		fprintf(stderr, "scriptumfs: %s: %s\n", endpoint, msg);
		if (e.err == EACCES)
			fprintf(stderr, "scriptumfs: check the token (token_file=, the profile's "
			                "token_file or SCRIPTUM_TOKEN)\n");
		return 1;
	}
	model_thread_list_clear(&l);
	return 0;
}

/* A finished thread's output that came with its result's metadata: kept
 * in the payload cache, so reading output.json makes no call of its own. */
static void
keep_output(void *arg, const char *id, const unsigned char *data, size_t len)
{
	struct payload_key k = {.thread_id = id};

	payloads_put(arg, &k, data, len);
}

/* Frees what the option parser allocated. */
static void
opts_free(struct opts *o)
{
	char **fields[] = {&o->profile,    &o->endpoint,        &o->token_file,  &o->org_id,
	                   &o->org_name,   &o->config,          &o->list_limit,  &o->cache_dir,
	                   &o->cache_size, &o->mem_cache,       &o->running_ttl, &o->timeout,
	                   &o->min_rate,   &o->min_rate_window, &o->inode_limit, &o->source};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

/*
 * Parses the command line into o and cmd. Returns -1 to go on and mount,
 * or the exit status to end with now (0 after --version or --help).
 */
static int
parse_args(struct fuse_args *args, struct opts *o, struct fuse_cmdline_opts *cmd, const char *prog)
{
	if (fuse_opt_parse(args, o, opt_spec, opt_proc) != 0)
		return 1;
	/* a single word was the mount point after all */
	if (o->nonopts == 1) {
		if (fuse_opt_add_arg(args, o->source) != 0)
			return 1;
		free(o->source);
		o->source = NULL;
	}
	/* SOURCE: an endpoint URL or a profile name, unless -o says otherwise */
	if (o->source != NULL && strstr(o->source, "://") != NULL && o->endpoint == NULL)
		o->endpoint = strdup(o->source);
	else if (o->source != NULL && strstr(o->source, "://") == NULL && o->profile == NULL &&
	         strcmp(o->source, "scriptumfs") != 0)
		o->profile = strdup(o->source);
	/* libfuse 3.14's own default is out of its range and warns; a user's
	 * -o max_threads= comes later and wins */
	if (fuse_opt_insert_arg(args, 1, "-omax_threads=64") != 0)
		return 1;
	if (fuse_parse_cmdline(args, cmd) != 0)
		return 1;
	if (o->show_version || cmd->show_version) {
		printf("scriptumfs %s\n", SCRIPTUMFS_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		return 0;
	}
	if (cmd->show_help) {
		usage(prog);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return 0;
	}
	if (cmd->mountpoint == NULL) {
		fprintf(stderr, "usage: %s [-f] [-d] [-o opt[,opt...]] [SOURCE] MOUNTPOINT\n",
		        prog);
		return 1;
	}
	return -1;
}

/* The configuration the mount options, the profile and the environment
 * resolve to, in *out (config_free() it); its warnings printed. */
static int
resolve_config(const struct opts *o, struct config **out)
{
	struct config_overrides ov = {0};
	char err[512];

	ov.label = "mount option";
	ov.profile = o->profile;
	ov.endpoint = o->endpoint;
	ov.token_file = o->token_file;
	ov.org_id = o->org_id;
	ov.org_name = o->org_name;
	ov.config_path = o->config;
	ov.timeout = o->timeout;
	ov.min_rate = o->min_rate;
	ov.min_rate_window = o->min_rate_window;
	if (config_resolve(&ov, out, err, sizeof(err)) != 0) {
		fprintf(stderr, "scriptumfs: %s\n", err);
		return -1;
	}
	for (size_t i = 0; i < (*out)->nwarnings; i++)
		fprintf(stderr, "scriptumfs: %s\n", (*out)->warnings[i]);
	if ((*out)->endpoint == NULL) {
		fprintf(stderr,
		        "scriptumfs: no API endpoint: use -o endpoint=URL, -o profile=NAME, "
		        "or SCRIPTUM_API_ENDPOINT (scriptum-config(5))\n");
		return -1;
	}
	return 0;
}

/* The layers below FUSE, in m: the API client (checked against the
 * service), the error log, the records, the metadata and the payloads.
 * On failure, what was made is left in m for layers_free(). */
static int
layers_new(struct mount *m, const struct config *cfg)
{
	struct http_options ho;
	struct payloads_options po = {0};
	char err[512];

	http_options_from_config(&ho, cfg);
	ho.user_agent = "scriptumfs/" SCRIPTUMFS_VERSION;
	/* every wait must end well before the kernel would give up on us */
	if (ho.deadline_ms == 0)
		ho.deadline_ms = HTTP_DEADLINE_MS;
	if (api_new(&ho, &m->api, err, sizeof(err)) != 0) {
		fprintf(stderr, "scriptumfs: %s\n", err);
		return -1;
	}
	log_redact_with(m->api);
	if (check_service(m->api, cfg->endpoint) != 0)
		return -1;
	if ((m->errors = errlog_new(100)) == NULL || (m->recs = recs_new()) == NULL ||
	    (m->meta = meta_new(m->api, m->errors, m->opt.running_ttl_ms, m->opt.mem_cache)) ==
	        NULL ||
	    (m->config_text = config_text(cfg, &m->opt)) == NULL) {
		fprintf(stderr, "scriptumfs: out of memory\n");
		return -1;
	}
	po.cache_dir = m->opt.cache_dir;
	po.cache_size = m->opt.cache_size;
	po.log = m->errors;
	if (payloads_new(m->api, &po, &m->payloads, err, sizeof(err)) != 0) {
		fprintf(stderr, "scriptumfs: cache_dir %s: %s\n", m->opt.cache_dir, err);
		return -1;
	}
	meta_on_output(m->meta, keep_output, m->payloads);
	m->started_ms = clk_wall_ms();
	return 0;
}

static void
layers_free(struct mount *m)
{
	payloads_free(m->payloads);
	meta_free(m->meta);
	recs_free(m->recs);
	errlog_free(m->errors);
	free(m->config_text);
	log_redact_with(NULL);
	api_free(m->api);
}

/* Serves the mounted session until it is unmounted or signalled; the exit
 * status. */
static int
serve(struct fuse_session *se, struct mount *m, const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *loop;
	struct reaper *reaper;
	int ret;

	/* after the fork of daemonizing: threads do not survive it */
	if ((reaper = reaper_start(m, se)) == NULL)
		log_msg(LOG_WARNING, "cannot start the reaper: the inode table is unbounded");
	if ((loop = fuse_loop_cfg_create()) == NULL) {
		reaper_stop(reaper);
		return 1;
	}
	fuse_loop_cfg_set_clone_fd(loop, cmd->clone_fd);
	/* each blocked read holds a thread: room for many at once */
	fuse_loop_cfg_set_max_threads(loop, cmd->max_threads);
	if (cmd->max_idle_threads != UINT_MAX) /* unset: libfuse's default */
		fuse_loop_cfg_set_idle_threads(loop, cmd->max_idle_threads);
	ret = fuse_session_loop_mt(se, loop);
	/* libfuse reports the signal that ended the loop: a clean end for us */
	ret = ret == 0 || ret == SIGINT || ret == SIGTERM || ret == SIGHUP ? 0 : 1;
	fuse_loop_cfg_destroy(loop);
	reaper_stop(reaper);
	/* the loop has ended: no request is in progress any more */
	tree_close_all(m);
	return ret;
}

int
main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = {0};
	struct fuse_session *se;
	struct opts o = {0};
	struct config *cfg = NULL;
	struct mount m = {0};
	char *cache_dir = NULL;
	int ret;

	if ((ret = parse_args(&args, &o, &cmd, argv[0])) >= 0)
		goto err_out1;
	ret = 1;
	log_init(cmd.foreground, cmd.debug);
	if (resolve_config(&o, &cfg) != 0 || mount_options(&o, cfg, &m.opt, &cache_dir) != 0)
		goto err_out2;
	if (layers_new(&m, cfg) != 0)
		goto err_out3;
	if (fuse_opt_add_arg(&args, "-ofsname=scriptumfs,subtype=scriptumfs,default_permissions") !=
	    0)
		goto err_out3;
	se = fuse_session_new(&args, &scriptumfs_ops, sizeof(scriptumfs_ops), &m);
	if (se == NULL)
		goto err_out3;
	if ((m.watches = watches_new(&m, se)) == NULL)
		goto err_out4;
	if (fuse_set_signal_handlers(se) != 0)
		goto err_out4;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto err_out5;
	fuse_daemonize(cmd.foreground);
	log_msg(LOG_INFO, "mounted %s on %s", cfg->endpoint, cmd.mountpoint);
	ret = serve(se, &m, &cmd);
	log_msg(LOG_INFO, "unmounted %s", cmd.mountpoint);
	fuse_session_unmount(se);
err_out5:
	fuse_remove_signal_handlers(se);
err_out4:
	watches_free(m.watches);
	fuse_session_destroy(se);
err_out3:
	layers_free(&m);
err_out2:
	free(cache_dir);
	config_free(cfg);
err_out1:
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	opts_free(&o);
	return ret;
}
