/*
 * SHA-256 (FIPS 180-4), for the names of the payload cache's files: the
 * digest of a payload's full key, so that no two keys share a file however
 * long or odd their ids are. Not for secrets (no constant-time claims).
 */
#ifndef SCRIPTUMFS_SHA256_H
#define SCRIPTUMFS_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed */
	unsigned char buf[64];
	size_t n; /* bytes in buf */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* The digest of everything given to sha256_update since sha256_init. */
void sha256_final(struct sha256 *s, unsigned char out[SHA256_LEN]);

#endif
