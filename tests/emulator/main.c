/*
 * scriptum-emulator: the Scriptum HTTP API on loopback, for tests,
 * benchmarks and the demo.
 *
 *   $ scriptum-emulator --listen 127.0.0.1:0 --seed demo
 *   listening on http://127.0.0.1:41237
 *   $ curl -s http://127.0.0.1:41237/v1/scriptum/threads?pageSize=2 | jq .
 *
 * It runs until SIGINT or SIGTERM, then frees everything and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "faults.h"
#include "server.h"
#include "store.h"
#include "wire.h"

static void
usage(FILE *f)
{
	fprintf(f, "usage: scriptum-emulator [--listen HOST:PORT] [--token T] "
	           "[--seed demo|FILE.yaml]\n"
	           "                         [--wire MODE[,KNOB...]] [--wire-seed N]\n"
	           "                         [--tls-cert FILE --tls-key FILE] "
	           "[--unary-limit BYTES]\n"
	           "  MODE: canonical snake wrapped array sse random\n"
	           "  KNOB: siblings minimal intenums unknownenums nulls unknownkeys mixedcase\n");
}

static int
parse_listen(char *arg, struct server_opts *o)
{
	char *colon = strrchr(arg, ':'), *end;
	long port;

	if (colon == NULL)
		return -1;
	*colon = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		return -1;
	o->host = arg;
	o->port = (int)port;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {{"listen", required_argument, NULL, 'l'},
	                                         {"token", required_argument, NULL, 't'},
	                                         {"seed", required_argument, NULL, 's'},
	                                         {"wire", required_argument, NULL, 'w'},
	                                         {"wire-seed", required_argument, NULL, 'W'},
	                                         {"tls-cert", required_argument, NULL, 'c'},
	                                         {"tls-key", required_argument, NULL, 'k'},
	                                         {"unary-limit", required_argument, NULL, 'u'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	struct server_opts o = {.host = "127.0.0.1", .port = 0};
	const char *seed = NULL;
	unsigned long long unary_limit = 4u << 20, wire_seed;
	struct catalog *cat = NULL;
	char err[512], *end;
	sigset_t sigs;
	int opt, port, sig, rc;

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (parse_listen(optarg, &o) != 0) {
				fprintf(stderr,
				        "scriptum-emulator: --listen wants HOST:PORT, not '%s'\n",
				        optarg);
				return 2;
			}
			break;
		case 't':
			o.token = optarg;
			break;
		case 's':
			seed = optarg;
			break;
		case 'w':
			if (wire_configure(optarg, err, sizeof(err)) != 0) {
				fprintf(stderr, "scriptum-emulator: %s\n", err);
				return 2;
			}
			break;
		case 'W':
			errno = 0;
			wire_seed = strtoull(optarg, &end, 0);
			if (errno != 0 || *end != '\0' || end == optarg || optarg[0] == '-') {
				fprintf(stderr, "scriptum-emulator: --wire-seed wants a number\n");
				return 2;
			}
			wire_set_seed(wire_seed);
			break;
		case 'c':
			o.tls_cert = optarg;
			break;
		case 'k':
			o.tls_key = optarg;
			break;
		case 'u':
			errno = 0;
			unary_limit = strtoull(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || end == optarg) {
				fprintf(stderr, "scriptum-emulator: --unary-limit wants bytes\n");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (o.tls_cert == NULL) != (o.tls_key == NULL)) {
		usage(stderr);
		return 2;
	}

	if (seed == NULL || strcmp(seed, "demo") == 0)
		rc = catalog_load_demo(&cat, err, sizeof(err));
	else
		rc = catalog_load_file(seed, &cat, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "scriptum-emulator: %s\n", err);
		return 1;
	}

	/* signals are taken by sigwait below, not by the server's threads */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	store_init(cat, unary_limit);
	/* without --seed: the demo scripts, but no threads */
	store_start(seed != NULL);
	if (server_start(&o, &port, err, sizeof(err)) != 0) {
		fprintf(stderr, "scriptum-emulator: %s\n", err);
		store_shutdown();
		catalog_free(cat);
		return 1;
	}
	printf("listening on %s://%s:%d\n", o.tls_cert ? "https" : "http", o.host, port);
	fflush(stdout);

	sigwait(&sigs, &sig);
	/* the store first, so that blocked watchers end and connections close */
	store_shutdown_begin();
	server_stop();
	store_shutdown();
	faults_reset();
	catalog_free(cat);
	return 0;
}
