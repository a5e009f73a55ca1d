/*
 * fuzz_pg_pkt: pg_pkt.c's readers on raw bytes: message headers over a stream, the
 * bounds-checked body cursor, startup parameters and ErrorResponse fields. Every
 * read must stay inside the buffer it was given (ASan sees the exact end: the input
 * is copied into a buffer of its own size).
 *
 * Input: one byte choosing the reader, then its bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg_pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Walks the buffer as a stream of typed messages, as the relay does. */
static void headers(const uint8_t *p, size_t n)
{
	uint8_t type;
	uint32_t len;
	while (pg_read_header(p, n, &type, &len) == PG_HDR_OK) {
		if (len + 1 > n)
			break;
		struct pg_error_fields ef;
		if (type == 'E' || type == 'N')
			(void)pg_parse_error(p + 5, len - 4, &ef);
		p += len + 1;
		n -= len + 1;
	}
}

/* A body read field by field, the selector bits choosing each field's kind. */
static void cursor(const uint8_t *p, size_t n)
{
	if (n < 1)
		return;
	uint8_t plan = p[0];
	struct pg_reader r = pg_reader_init(p + 1, n - 1);
	for (int i = 0; i < 16 && !r.bad; i++) {
		switch ((plan >> (i % 4 * 2)) & 3) {
		case 0:
			(void)pg_read_u8(&r);
			break;
		case 1:
			(void)pg_read_u32(&r);
			break;
		case 2: {
			const char *s = pg_read_str(&r);
			if (s && strlen(s) > n)
				abort(); /* a string must end inside the body */
			break;
		}
		default: {
			uint32_t len = pg_read_u32(&r);
			(void)pg_read_bytes(&r, len);
		}
		}
	}
}

static void startup(const uint8_t *p, size_t n)
{
	struct pg_startup_param params[64];
	size_t count;
	if (pg_parse_startup_params(p, n, params, 64, &count))
		for (size_t i = 0; i < count; i++)
			if (!params[i].name || !params[i].value)
				abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = size - 1;
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, data + 1, n);
	switch (data[0] % 4) {
	case 0:
		headers(copy, n);
		break;
	case 1:
		cursor(copy, n);
		break;
	case 2:
		startup(copy, n);
		break;
	default: {
		struct pg_error_fields ef;
		(void)pg_parse_error(copy, n, &ef);
	}
	}
	free(copy);
	return 0;
}
