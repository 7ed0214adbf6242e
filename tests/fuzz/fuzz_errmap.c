/*
 * libFuzzer target: error bodies from the network. Whatever the body, the
 * message is one bounded, printable line and the mapping is an errno.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct errmap_status st;
	struct errmap m;
	int status;

	if (size < 2)
		return 0;
	status = 400 + data[0] % 200;
	errmap_parse_body(data + 1, size - 1, status, &st);
	if (strlen(st.message) >= sizeof(st.message) || strchr(st.message, '\n') != NULL)
		abort();
	m = errmap_map(status, st.code);
	if (m.err <= 0)
		abort();
	return 0;
}
