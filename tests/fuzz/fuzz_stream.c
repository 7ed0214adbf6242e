/*
 * libFuzzer target: the stream parser. Any input, fed whole or cut in two at
 * a point the input chooses, must give the same messages and the same
 * verdict, within the parser's cap, without a crash or a leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	char *text; /* the messages, dumped one after the other */
	size_t len;
};

static int
collect(json_t *msg, void *arg)
{
	struct seen *s = arg;
	char *t = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	size_t n = t ? strlen(t) : 0;

	s->text = realloc(s->text, s->len + n + 1);
	if (s->text == NULL)
		abort();
	memcpy(s->text + s->len, t ? t : "", n);
	s->len += n;
	s->text[s->len++] = '\n';
	free(t);
	return 0;
}

static int
run(const uint8_t *data, size_t size, size_t cut, struct seen *s)
{
	struct stream *p = stream_new(collect, s, 1 << 16);
	int rc;

	if (p == NULL)
		abort();
	rc = stream_feed(p, data, cut);
	if (rc == 0)
		rc = stream_feed(p, data + cut, size - cut);
	if (rc == 0)
		rc = stream_finish(p);
	if (stream_buffered(p) > (1 << 16) + 1)
		abort();
	stream_free(p);
	return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen whole = {0}, split = {0};
	size_t cut;
	int a, b;

	if (size < 1)
		return 0;
	cut = data[0] % size;
	a = run(data + 1, size - 1, 0, &whole);
	b = run(data + 1, size - 1, cut > size - 1 ? size - 1 : cut, &split);
	if (a != b || whole.len != split.len ||
	    (whole.len > 0 && memcmp(whole.text, split.text, whole.len) != 0))
		abort();
	free(whole.text);
	free(split.text);
	return 0;
}
