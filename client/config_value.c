/*
 * Configuration values that are not the file: rates ("64KiB/s"),
 * durations ("1h30m"), and secrets read from files (a token_file, a
 * client_secret_file), with the file checks config.c shares (see
 * config_int.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "config_int.h"
#include "errbuf.h"

#define SECRET_MAX (64 * 1024)
#define RATE_MAX   ((int64_t)1 << 40) /* a TiB/s: past any network */

bool
config_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

/* ---- rates ---- */

int
config_parse_rate(const char *s, int64_t *bps)
{
	static const struct {
		const char *suffix;
		int64_t unit;
	} units[] = {{"", 1},       {"b", 1},       {"k", 1024},     {"kb", 1024},
	             {"kib", 1024}, {"m", 1048576}, {"mb", 1048576}, {"mib", 1048576}};
	char suffix[8];
	const char *p = s;
	int64_t n = 0;
	size_t len;

	if (s == NULL || *p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > RATE_MAX)
			return -EINVAL;
		n = n * 10 + (*p - '0');
	}
	len = strlen(p);
	if (len >= 2 && strcmp(p + len - 2, "/s") == 0)
		len -= 2;
	if (len >= sizeof(suffix))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		suffix[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
	suffix[len] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(suffix, units[i].suffix) == 0) {
			if (n > RATE_MAX / units[i].unit)
				return -EINVAL;
			*bps = n * units[i].unit;
			return 0;
		}
	}
	return -EINVAL;
}

/* ---- durations ---- */

int
config_parse_duration(const char *s, int64_t *ms)
{
	const char *p = s;
	int64_t total = 0;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	do {
		int64_t whole = 0, frac = 0, fscale = 1, unit;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++) {
			if (whole > (INT64_MAX - 9) / 10)
				return -EINVAL;
			whole = whole * 10 + (*p - '0');
		}
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			/* Past a microsecond of an hour the digits cannot matter. */
			for (; *p >= '0' && *p <= '9'; p++) {
				if (fscale < 1000000000) {
					frac = frac * 10 + (*p - '0');
					fscale *= 10;
				}
			}
		}
		if (p[0] == 'm' && p[1] == 's') {
			unit = 1;
			p += 2;
		} else if (*p == 's') {
			unit = 1000;
			p++;
		} else if (*p == 'm') {
			unit = 60 * 1000;
			p++;
		} else if (*p == 'h') {
			unit = 3600 * 1000;
			p++;
		} else if (*p == '\0' && p == s + strspn(s, "0123456789.")) {
			unit = 1000; /* the whole string is one bare number: seconds */
		} else {
			return -EINVAL;
		}
		if (whole > (INT64_MAX - unit) / unit)
			return -EINVAL;
		whole = whole * unit + frac * unit / fscale;
		if (whole > INT64_MAX - total)
			return -EINVAL;
		total += whole;
	} while (*p != '\0');
	*ms = total;
	return 0;
}

int
config_format_duration(int64_t ms, char *buf, size_t len)
{
	char tmp[96];
	int n = 0;
	int64_t h, m, s;

	if (ms < 0)
		ms = 0;
	h = ms / 3600000;
	m = ms / 60000 % 60;
	s = ms / 1000 % 60;
	ms %= 1000;
	if (h > 0)
		n += snprintf(tmp + n, sizeof(tmp) - n, "%lldh", (long long)h);
	if (m > 0)
		n += snprintf(tmp + n, sizeof(tmp) - n, "%lldm", (long long)m);
	if (s > 0)
		n += snprintf(tmp + n, sizeof(tmp) - n, "%llds", (long long)s);
	if (ms > 0)
		n += snprintf(tmp + n, sizeof(tmp) - n, "%lldms", (long long)ms);
	if (n == 0)
		n = snprintf(tmp, sizeof(tmp), "0s");
	return snprintf(buf, len, "%s", tmp);
}

/* ---- reading files ---- */

int
config_read_capped(int fd, size_t cap, char **out, size_t *outlen)
{
	size_t len = 0, size = 4096;
	char *buf = malloc(size);

	if (buf == NULL)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len + 1 == size) {
			char *bigger;

			if (len > cap) {
				free(buf);
				return -EFBIG;
			}
			size = size * 2 > cap + 2 ? cap + 2 : size * 2;
			bigger = realloc(buf, size);
			if (bigger == NULL) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
		}
		n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;

			free(buf);
			return rc;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > cap) {
			free(buf);
			return -EFBIG;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

int
config_open_regular(const char *path, struct stat *st, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		int rc = -errno;

		return errbuf_set(err, errlen, rc, "%s: %s", path, strerror(-rc));
	}
	if (fstat(fd, st) < 0) {
		int rc = -errno;

		close(fd);
		return errbuf_set(err, errlen, rc, "%s: %s", path, strerror(-rc));
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return errbuf_set(err, errlen, -EINVAL, "%s: not a regular file", path);
	}
	return fd;
}

int
config_refuse_readable(const char *path, const char *what, mode_t mode, char *err, size_t errlen)
{
	return errbuf_set(
	    err, errlen, -EACCES,
	    "%s: %s but is readable by group or others (mode %04o); run: chmod 600 %s", path, what,
	    (unsigned)(mode & 07777), path);
}

int
config_read_secret(const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t len, start = 0;
	int fd, rc;

	*out = NULL;
	fd = config_open_regular(path, &st, err, errlen);
	if (fd < 0)
		return fd;
	if (st.st_mode & SECRET_READERS) {
		close(fd);
		return config_refuse_readable(path, "holds a secret", st.st_mode, err, errlen);
	}
	rc = config_read_capped(fd, SECRET_MAX, &buf, &len);
	close(fd);
	if (rc == -EFBIG)
		return errbuf_set(err, errlen, rc, "%s: larger than %d KiB; not a secret", path,
		                  SECRET_MAX / 1024);
	if (rc < 0)
		return errbuf_set(err, errlen, rc, "%s: %s", path, strerror(-rc));
	while (len > 0 && strchr(" \t\r\n", buf[len - 1]) != NULL)
		len--;
	while (start < len && strchr(" \t\r\n", buf[start]) != NULL)
		start++;
	rc = 0;
	if (start == len)
		rc = errbuf_set(err, errlen, -EINVAL, "%s: is empty", path);
	else if (config_has_control(buf + start, len - start))
		rc = errbuf_set(err, errlen, -EINVAL,
		                "%s: holds more than one line or a control character", path);
	if (rc < 0) {
		explicit_bzero(buf, len);
		free(buf);
		return rc;
	}
	memmove(buf, buf + start, len - start);
	explicit_bzero(buf + (len - start), start);
	buf[len - start] = '\0';
	*out = buf;
	return 0;
}

void
config_secret_free(char *secret)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}
