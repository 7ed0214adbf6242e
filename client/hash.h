/*
 * The project's one hash: FNV-1a over 64 bits, with a finalizer that
 * spreads it over every bit (MurmurHash3's fmix64) for tables indexed by
 * its low bits. Not for anything an attacker may choose to collide unless
 * seeded (listing.c seeds it per listing).
 */
#ifndef SCRIPTUM_HASH_H
#define SCRIPTUM_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define HASH_FNV_BASIS 14695981039346656037ULL
#define HASH_FNV_PRIME 1099511628211ULL

/* FNV-1a of the n bytes at p, continuing from h (HASH_FNV_BASIS to
 * start). */
static inline uint64_t
hash_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * HASH_FNV_PRIME;
	return h;
}

/* h with its bits mixed (every input bit reaches every output bit). */
static inline uint64_t
hash_mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	return h ^ (h >> 33);
}

/* The mixed hash of a NUL-terminated string, from seed. */
static inline uint64_t
hash_str(uint64_t seed, const char *s)
{
	return hash_mix(hash_fnv1a(HASH_FNV_BASIS ^ seed, s, strlen(s)));
}

#endif
