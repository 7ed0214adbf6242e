/*
 * The emulator's HTTP server: the Scriptum API of SPEC.md §2 and the test
 * control calls under /_emulator/, on one address.
 */
#ifndef SERVER_H
#define SERVER_H

#include <stddef.h>

struct server_opts {
	const char *host;
	int port;          /* 0 = any free port */
	const char *token; /* NULL = no auth */
	const char *tls_cert;
	const char *tls_key;
};

/* Starts serving; *port gets the port bound. 0 or -errno with a message. */
int server_start(const struct server_opts *o, int *port, char *err, size_t errlen);
/* Stops serving; returns once every connection thread has ended. */
void server_stop(void);

#endif
