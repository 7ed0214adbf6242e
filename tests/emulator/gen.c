/*
 * Generated outputs. An output of N bytes is, for N >= 24:
 *
 *   {"items":[\n
 *   {"n":1000000000,"v":"<39 letters>"},\n      (K records of 64 bytes)
 *   {"pad":"xxx"}]}\n                            (13 bytes plus the padding)
 *
 * so byte i is a function of (N, seed, i) and a read at any offset costs no
 * more than a read at the start. Smaller outputs are a JSON string or "0".
 */
#include "gen.h"

#include <pthread.h>
#include <string.h>

#define REC_LEN  64
#define HEAD     "{\"items\":[\n"
#define HEAD_LEN 11
#define TAIL_MIN 13 /* {"pad":""}]}\n */
#define LETTERS  "abcdefghijklmnopqrstuvwxyz"

static const char letters2[] = LETTERS LETTERS LETTERS;

static void
gen_record(uint64_t k, uint64_t seed, char *rec)
{
	uint64_t n = 1000000000ULL + k;

	memcpy(rec, "{\"n\":", 5);
	for (int i = 14; i >= 5; i--) {
		rec[i] = (char)('0' + n % 10);
		n /= 10;
	}
	memcpy(rec + 15, ",\"v\":\"", 6);
	memcpy(rec + 21, letters2 + (k + seed) % 26, 39);
	memcpy(rec + 60, "\"},\n", 4);
}

/* Turns record k - 1 into record k. */
static void
gen_next(uint64_t k, uint64_t seed, char *rec)
{
	int i = 14;

	while (rec[i] == '9')
		rec[i--] = '0';
	rec[i]++;
	memcpy(rec + 21, letters2 + (k + seed) % 26, 39);
}

/* Copies the part of region [rstart, rstart + rlen) of `src` that overlaps
 * the window [off, off + len) into buf. */
static void
gen_copy_region(const char *src, uint64_t rstart, uint64_t rlen, uint64_t off, size_t len,
                char *buf)
{
	uint64_t lo = off > rstart ? off : rstart;
	uint64_t hi = off + len < rstart + rlen ? off + len : rstart + rlen;

	if (lo < hi)
		memcpy(buf + (lo - off), src + (lo - rstart), hi - lo);
}

static void
gen_fill_region(char c, uint64_t rstart, uint64_t rlen, uint64_t off, size_t len, char *buf)
{
	uint64_t lo = off > rstart ? off : rstart;
	uint64_t hi = off + len < rstart + rlen ? off + len : rstart + rlen;

	if (lo < hi)
		memset(buf + (lo - off), c, hi - lo);
}

static void
gen_small(uint64_t total, uint64_t off, size_t len, char *buf)
{
	if (total == 1) {
		buf[0] = '0';
		return;
	}
	gen_fill_region('a', 0, total, off, len, buf);
	gen_fill_region('"', 0, 1, off, len, buf);
	gen_fill_region('"', total - 1, 1, off, len, buf);
}

size_t
gen_read(uint64_t total, uint64_t seed, uint64_t off, char *buf, size_t len)
{
	uint64_t nrec, recs_end, pad;
	char rec[REC_LEN];

	if (off >= total)
		return 0;
	if (len > total - off)
		len = (size_t)(total - off);
	if (total < HEAD_LEN + TAIL_MIN) {
		gen_small(total, off, len, buf);
		return len;
	}
	nrec = (total - HEAD_LEN - TAIL_MIN) / REC_LEN;
	recs_end = HEAD_LEN + nrec * REC_LEN;
	pad = total - recs_end - TAIL_MIN;

	gen_copy_region(HEAD, 0, HEAD_LEN, off, len, buf);
	if (off + len > HEAD_LEN && off < recs_end) {
		uint64_t lo = off > HEAD_LEN ? off : HEAD_LEN;
		uint64_t hi = off + len < recs_end ? off + len : recs_end;
		uint64_t k = (lo - HEAD_LEN) / REC_LEN;
		uint64_t pos = HEAD_LEN + k * REC_LEN;

		/* the first record in full, then each next one from its
		 * predecessor: the letters rotate by one, the number counts up */
		gen_record(k, seed, rec);
		for (; pos < hi; k++, pos += REC_LEN) {
			if (pos >= lo && pos + REC_LEN <= hi)
				memcpy(buf + (pos - off), rec, REC_LEN);
			else
				gen_copy_region(rec, pos, REC_LEN, off, len, buf);
			gen_next(k + 1, seed, rec);
		}
	}
	gen_copy_region("{\"pad\":\"", recs_end, 8, off, len, buf);
	gen_fill_region('x', recs_end + 8, pad, off, len, buf);
	gen_copy_region("\"}]}\n", recs_end + 8 + pad, 5, off, len, buf);
	return len;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/* Two output characters for every 12 input bits: one lookup per pair. */
static char b64_pairs[4096][2];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void
b64_init(void)
{
	for (int i = 0; i < 4096; i++) {
		b64_pairs[i][0] = b64_alphabet[i >> 6];
		b64_pairs[i][1] = b64_alphabet[i & 63];
	}
}

size_t
gen_b64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t
gen_b64_encode(const unsigned char *src, size_t n, char *dst)
{
	char *out = dst;
	size_t i = 0;

	pthread_once(&b64_once, b64_init);
	for (; i + 6 <= n; i += 6) {
		uint64_t v = (uint64_t)src[i] << 40 | (uint64_t)src[i + 1] << 32 |
		             (uint64_t)src[i + 2] << 24 | (uint64_t)src[i + 3] << 16 |
		             (uint64_t)src[i + 4] << 8 | src[i + 5];

		memcpy(out, b64_pairs[v >> 36], 2);
		memcpy(out + 2, b64_pairs[(v >> 24) & 0xfff], 2);
		memcpy(out + 4, b64_pairs[(v >> 12) & 0xfff], 2);
		memcpy(out + 6, b64_pairs[v & 0xfff], 2);
		out += 8;
	}
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

		memcpy(out, b64_pairs[v >> 12], 2);
		memcpy(out + 2, b64_pairs[v & 0xfff], 2);
		out += 4;
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;

		memcpy(out, b64_pairs[v >> 12], 2);
		memcpy(out + 2, "==", 2);
		out += 4;
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;

		memcpy(out, b64_pairs[v >> 12], 2);
		out[2] = b64_alphabet[(v >> 6) & 63];
		out[3] = '=';
		out += 4;
	}
	return (size_t)(out - dst);
}
