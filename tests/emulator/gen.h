/*
 * Deterministic payloads: generated JSON outputs of any size, readable at any
 * offset without holding the whole, and a fast base64 encoder for the chunks
 * that carry them.
 */
#ifndef GEN_H
#define GEN_H

#include <stddef.h>
#include <stdint.h>

/* Writes bytes [off, off + len) of the generated output of `total` bytes
 * made from `seed` into buf; returns how many were written (less than len
 * only at the end). The output is valid JSON for every total except 0. */
size_t gen_read(uint64_t total, uint64_t seed, uint64_t off, char *buf, size_t len);

/* Encoded length of n bytes, with padding. */
size_t gen_b64_len(size_t n);

/* Encodes n bytes of src into dst, which holds gen_b64_len(n) bytes; returns
 * that length. No terminating NUL is written. */
size_t gen_b64_encode(const unsigned char *src, size_t n, char *dst);

#endif
