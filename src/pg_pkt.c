/*
 * pg_pkt: framing and message building for the PostgreSQL protocol. Every read is
 * bounded by the message's own length; nothing here trusts a length field further
 * than the bytes actually present.
 */
#include "pg_pkt.h"

#include <stdlib.h>
#include <string.h>

enum pg_hdr_result pg_read_header(const uint8_t *buf, size_t avail, uint8_t *type, uint32_t *len)
{
	if (avail < 5)
		return PG_HDR_SHORT;
	*type = buf[0];
	*len = pg_get_u32(buf + 1);
	if (*len < 4 || *len > PG_MSG_MAX)
		return PG_HDR_BAD;
	return PG_HDR_OK;
}

uint8_t pg_read_u8(struct pg_reader *r)
{
	if (r->left < 1) {
		r->bad = true;
		return 0;
	}
	r->left--;
	return *r->p++;
}

uint32_t pg_read_u32(struct pg_reader *r)
{
	if (r->left < 4) {
		r->bad = true;
		r->left = 0;
		return 0;
	}
	uint32_t v = pg_get_u32(r->p);
	r->p += 4;
	r->left -= 4;
	return v;
}

const char *pg_read_str(struct pg_reader *r)
{
	const uint8_t *nul = r->left ? memchr(r->p, 0, r->left) : NULL;
	if (!nul) {
		r->bad = true;
		r->left = 0;
		return NULL;
	}
	const char *s = (const char *)r->p;
	size_t n = (size_t)(nul - r->p) + 1;
	r->p += n;
	r->left -= n;
	return s;
}

const uint8_t *pg_read_bytes(struct pg_reader *r, size_t n)
{
	if (r->left < n) {
		r->bad = true;
		r->left = 0;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

bool pg_parse_startup_params(const uint8_t *body, size_t len, struct pg_startup_param *out,
                             size_t max, size_t *count)
{
	struct pg_reader r = pg_reader_init(body, len);
	*count = 0;
	for (;;) {
		const char *name = pg_read_str(&r);
		if (!name)
			return false;
		if (!name[0])
			return r.left == 0; /* the terminating empty name ends the list */
		const char *value = pg_read_str(&r);
		if (!value || *count == max)
			return false;
		out[*count].name = name;
		out[*count].value = value;
		(*count)++;
	}
}

bool pg_parse_error(const uint8_t *body, size_t len, struct pg_error_fields *out)
{
	struct pg_reader r = pg_reader_init(body, len);
	memset(out, 0, sizeof(*out));
	for (;;) {
		uint8_t code = pg_read_u8(&r);
		if (r.bad)
			return false;
		if (code == 0)
			break;
		const char *v = pg_read_str(&r);
		if (!v)
			return false;
		if (code == 'S' && !out->severity)
			out->severity = v;
		else if (code == 'V')
			out->severity = v; /* non-localized severity wins */
		else if (code == 'C')
			out->sqlstate = v;
		else if (code == 'M')
			out->message = v;
	}
	return out->message != NULL;
}

void pg_out_init(struct pg_out *o)
{
	memset(o, 0, sizeof(*o));
}

void pg_out_free(struct pg_out *o)
{
	free(o->data);
	pg_out_init(o);
}

static void out_need(struct pg_out *o, size_t n)
{
	if (o->len + n <= o->cap)
		return;
	size_t cap = o->cap ? o->cap : 256;
	while (cap < o->len + n)
		cap *= 2;
	o->data = xrealloc(o->data, cap);
	o->cap = cap;
}

void pg_out_bytes(struct pg_out *o, const void *p, size_t n)
{
	if (!n)
		return; /* p may be NULL then */
	out_need(o, n);
	memcpy(o->data + o->len, p, n);
	o->len += n;
}

void pg_out_u8(struct pg_out *o, uint8_t v)
{
	pg_out_bytes(o, &v, 1);
}

void pg_out_u32(struct pg_out *o, uint32_t v)
{
	uint8_t b[4];
	pg_put_u32(b, v);
	pg_out_bytes(o, b, 4);
}

void pg_out_str(struct pg_out *o, const char *s)
{
	pg_out_bytes(o, s, strlen(s) + 1);
}

void pg_out_begin(struct pg_out *o, uint8_t type)
{
	if (type)
		pg_out_u8(o, type);
	o->msg_start = o->len;
	pg_out_u32(o, 0);
}

void pg_out_end(struct pg_out *o)
{
	pg_put_u32(o->data + o->msg_start, (uint32_t)(o->len - o->msg_start));
}

void pg_out_error(struct pg_out *o, const char *severity, const char *sqlstate, const char *msg)
{
	pg_out_begin(o, 'E');
	pg_out_u8(o, 'S');
	pg_out_str(o, severity);
	pg_out_u8(o, 'V');
	pg_out_str(o, severity);
	pg_out_u8(o, 'C');
	pg_out_str(o, sqlstate);
	pg_out_u8(o, 'M');
	pg_out_str(o, msg);
	pg_out_u8(o, 0);
	pg_out_end(o);
}

void pg_out_auth(struct pg_out *o, uint32_t code, const void *extra, size_t extra_len)
{
	pg_out_begin(o, 'R');
	pg_out_u32(o, code);
	if (extra_len)
		pg_out_bytes(o, extra, extra_len);
	pg_out_end(o);
}

void pg_out_param_status(struct pg_out *o, const char *name, const char *value)
{
	pg_out_begin(o, 'S');
	pg_out_str(o, name);
	pg_out_str(o, value);
	pg_out_end(o);
}

void pg_out_ready(struct pg_out *o, char status)
{
	pg_out_begin(o, 'Z');
	pg_out_u8(o, (uint8_t)status);
	pg_out_end(o);
}

void pg_out_query(struct pg_out *o, const char *sql)
{
	pg_out_begin(o, 'Q');
	pg_out_str(o, sql);
	pg_out_end(o);
}

void pg_quote_literal(struct pg_out *o, const char *s)
{
	/* E'' treats backslashes the same whatever standard_conforming_strings says */
	pg_out_bytes(o, "E'", 2);
	for (; *s; s++) {
		if (*s == '\'' || *s == '\\')
			pg_out_u8(o, (uint8_t)*s);
		pg_out_u8(o, (uint8_t)*s);
	}
	pg_out_u8(o, '\'');
}
