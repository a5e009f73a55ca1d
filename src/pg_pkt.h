/*
 * pg_pkt: PostgreSQL wire framing. Reading: bounds-checked cursors over one message
 * body (every read says whether it stayed inside the message). Writing: building
 * messages sluice generates into a growable byte array. Pure functions, no I/O, so
 * the unit tests and the fuzz targets can drive them directly.
 */
#ifndef SLUICE_PG_PKT_H
#define SLUICE_PG_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define PG_PROTO_V3       0x00030000u
#define PG_SSL_REQUEST    80877103u
#define PG_GSSENC_REQUEST 80877104u
#define PG_CANCEL_REQUEST 80877102u
#define PG_STARTUP_MAX    10000u      /* as PostgreSQL: a larger startup packet is invalid */
#define PG_LOGIN_MSG_MAX  65536u      /* auth messages during login */
#define PG_MSG_MAX        0x3fffffffu /* 1 GB, PostgreSQL's own bound on a message */

static inline uint32_t pg_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void pg_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A typed message header at the start of buf: type byte and length (incl. itself). */
enum pg_hdr_result { PG_HDR_OK, PG_HDR_SHORT, PG_HDR_BAD };
enum pg_hdr_result pg_read_header(const uint8_t *buf, size_t avail, uint8_t *type, uint32_t *len);

/* A read cursor over one message body. */
struct pg_reader {
	const uint8_t *p;
	size_t left;
	bool bad; /* set by any read that would pass the end */
};
static inline struct pg_reader pg_reader_init(const uint8_t *p, size_t len)
{
	struct pg_reader r = {p, len, false};
	return r;
}
uint8_t pg_read_u8(struct pg_reader *r);
uint32_t pg_read_u32(struct pg_reader *r);
/* A NUL-terminated string inside the body; NULL (and bad) if unterminated. */
const char *pg_read_str(struct pg_reader *r);
/* n raw bytes; NULL (and bad) if fewer remain. */
const uint8_t *pg_read_bytes(struct pg_reader *r, size_t n);

/* Startup packet (after the 4-byte length and 4-byte code): name/value pairs. */
struct pg_startup_param {
	const char *name;
	const char *value;
};
/* Parses pairs into out (at most max); false when malformed or too many. */
bool pg_parse_startup_params(const uint8_t *body, size_t len, struct pg_startup_param *out,
                             size_t max, size_t *count);

/* Fields of an ErrorResponse/NoticeResponse: pointers into the body. */
struct pg_error_fields {
	const char *severity;
	const char *sqlstate;
	const char *message;
};
bool pg_parse_error(const uint8_t *body, size_t len, struct pg_error_fields *out);

/* A growable buffer for building outgoing messages. */
struct pg_out {
	uint8_t *data;
	size_t len, cap;
	size_t msg_start;
};
void pg_out_init(struct pg_out *o);
void pg_out_free(struct pg_out *o);
void pg_out_begin(struct pg_out *o, uint8_t type); /* type 0: untyped (startup) */
void pg_out_u8(struct pg_out *o, uint8_t v);
void pg_out_u32(struct pg_out *o, uint32_t v);
void pg_out_bytes(struct pg_out *o, const void *p, size_t n);
void pg_out_str(struct pg_out *o, const char *s); /* with its NUL */
void pg_out_end(struct pg_out *o);                /* fills in the length */

/* Whole messages sluice sends. */
void pg_out_error(struct pg_out *o, const char *severity, const char *sqlstate, const char *msg);
void pg_out_auth(struct pg_out *o, uint32_t code, const void *extra, size_t extra_len);
void pg_out_param_status(struct pg_out *o, const char *name, const char *value);
void pg_out_ready(struct pg_out *o, char status);
void pg_out_query(struct pg_out *o, const char *sql);

/* Appends s as an SQL string literal that is safe whatever standard_conforming_strings. */
void pg_quote_literal(struct pg_out *o, const char *s);

#endif
