/*
 * Unit tests for pg_pkt: PostgreSQL message framing, bounded readers and the builders
 * of the messages sluice generates. Every parser input is copied into a heap block of
 * exactly its own size, so a read one byte past the end is an invalid read that
 * valgrind or AddressSanitizer reports. Expected message bytes are written out by hand
 * from the protocol documentation ("Message Formats" in the PostgreSQL manual).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_pkt.h"

/* A heap copy of exactly n bytes (n may be 0: nothing may be read from it at all). */
static uint8_t *dup_exact(const void *p, size_t n)
{
	uint8_t *d = malloc(n);
	if (n) {
		ck_assert_ptr_nonnull(d);
		memcpy(d, p, n);
	}
	return d;
}

/* String literals with embedded NULs: S("a\0b") gives the bytes and their count. */
#define S(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

/* --- pg_get_u32 / pg_put_u32 --- */

START_TEST(test_u32_round_trip)
{
	static const uint32_t values[] = {0,          1,          0xff,       0x100,     0x01020304,
	                                  0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
	uint8_t *b = dup_exact("\0\0\0\0", 4);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		pg_put_u32(b, values[i]);
		ck_assert_uint_eq(pg_get_u32(b), values[i]);
	}
	/* network byte order, most significant byte first */
	pg_put_u32(b, 0x01020304);
	ck_assert_mem_eq(b, "\x01\x02\x03\x04", 4);
	static const uint8_t be[4] = {0xde, 0xad, 0xbe, 0xef};
	ck_assert_uint_eq(pg_get_u32(be), 0xdeadbeefu);
	free(b);
}
END_TEST

/* --- pg_read_header --- */

struct hdr_case {
	const char *name;
	const uint8_t *bytes;
	size_t avail;
	enum pg_hdr_result want;
	uint8_t type;
	uint32_t len;
};

static const struct hdr_case hdr_cases[] = {
    {"empty", S(""), PG_HDR_SHORT, 0, 0},
    {"type only", S("Q"), PG_HDR_SHORT, 0, 0},
    {"2 bytes", S("Q\0"), PG_HDR_SHORT, 0, 0},
    {"3 bytes", S("Q\0\0"), PG_HDR_SHORT, 0, 0},
    {"4 bytes", S("Q\0\0\0"), PG_HDR_SHORT, 0, 0},
    {"len 0", S("Q\0\0\0\0"), PG_HDR_BAD, 0, 0},
    {"len 3", S("Q\0\0\0\x03"), PG_HDR_BAD, 0, 0},
    {"len 4 (empty body)", S("S\0\0\0\x04"), PG_HDR_OK, 'S', 4},
    {"len 5, body not here yet", S("Z\0\0\0\x05"), PG_HDR_OK, 'Z', 5},
    {"len 5 with body", S("Z\0\0\0\x05I"), PG_HDR_OK, 'Z', 5},
    {"more bytes than the message", S("Z\0\0\0\x05IQ\0\0"), PG_HDR_OK, 'Z', 5},
    {"multi-byte length", S("D\x00\x01\x02\x03"), PG_HDR_OK, 'D', 0x00010203},
    {"1 GB - 1 (the limit)", S("d\x3f\xff\xff\xff"), PG_HDR_OK, 'd', 0x3fffffff},
    {"1 GB", S("d\x40\x00\x00\x00"), PG_HDR_BAD, 0, 0},
    {"high bit", S("d\x80\x00\x00\x04"), PG_HDR_BAD, 0, 0},
    {"0xffffffff", S("d\xff\xff\xff\xff"), PG_HDR_BAD, 0, 0},
    {"type byte 0xff", S("\xff\0\0\0\x04"), PG_HDR_OK, 0xff, 4},
};

START_TEST(test_read_header)
{
	const struct hdr_case *c = &hdr_cases[_i];
	uint8_t *buf = dup_exact(c->bytes, c->avail);
	uint8_t type = 0x5a;
	uint32_t len = 0xabcdef;
	enum pg_hdr_result r = pg_read_header(buf, c->avail, &type, &len);
	ck_assert_msg(r == c->want, "%s: got %d, want %d", c->name, (int)r, (int)c->want);
	if (c->want == PG_HDR_OK) {
		ck_assert_msg(type == c->type, "%s: type %u", c->name, type);
		ck_assert_msg(len == c->len, "%s: len %u", c->name, len);
	}
	free(buf);
}
END_TEST

/* --- pg_reader --- */

START_TEST(test_reader_u8)
{
	uint8_t *buf = dup_exact(S("\x01\xfe"));
	struct pg_reader r = pg_reader_init(buf, 2);
	ck_assert_uint_eq(pg_read_u8(&r), 0x01);
	ck_assert_uint_eq(pg_read_u8(&r), 0xfe);
	ck_assert(!r.bad);
	ck_assert_uint_eq(r.left, 0);
	ck_assert_uint_eq(pg_read_u8(&r), 0);
	ck_assert(r.bad);
	ck_assert_ptr_eq(r.p, buf + 2);
	/* stays bad */
	ck_assert_uint_eq(pg_read_u8(&r), 0);
	ck_assert(r.bad);
	free(buf);
}
END_TEST

START_TEST(test_reader_u32)
{
	uint8_t *buf = dup_exact(S("\x00\x03\x00\x00\xaa\xbb"));
	struct pg_reader r = pg_reader_init(buf, 6);
	ck_assert_uint_eq(pg_read_u32(&r), PG_PROTO_V3);
	ck_assert(!r.bad);
	ck_assert_uint_eq(r.left, 2);
	/* only 2 of 4 bytes left */
	ck_assert_uint_eq(pg_read_u32(&r), 0);
	ck_assert(r.bad);
	ck_assert_uint_eq(r.left, 0);
	/* nothing further is readable */
	ck_assert_uint_eq(pg_read_u8(&r), 0);
	ck_assert(r.bad);
	free(buf);
}
END_TEST

/* pg_read_u32 over 0..3 bytes: always bad, never touches the missing bytes. */
START_TEST(test_reader_u32_short)
{
	size_t n = (size_t)_i;
	uint8_t *buf = dup_exact("\x11\x22\x33", n);
	struct pg_reader r = pg_reader_init(buf, n);
	ck_assert_uint_eq(pg_read_u32(&r), 0);
	ck_assert(r.bad);
	ck_assert_uint_eq(r.left, 0);
	free(buf);
}
END_TEST

START_TEST(test_reader_str)
{
	uint8_t *buf = dup_exact(S("abc\0\0de"));
	struct pg_reader r = pg_reader_init(buf, 7);
	const char *s = pg_read_str(&r);
	ck_assert_ptr_eq(s, (const char *)buf);
	ck_assert_str_eq(s, "abc");
	ck_assert_uint_eq(r.left, 3);
	s = pg_read_str(&r);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(r.left, 2);
	ck_assert(!r.bad);
	/* "de" has no terminator inside the message */
	ck_assert_ptr_null(pg_read_str(&r));
	ck_assert(r.bad);
	ck_assert_uint_eq(r.left, 0);
	ck_assert_ptr_null(pg_read_str(&r));
	free(buf);
}
END_TEST

START_TEST(test_reader_str_empty_body)
{
	uint8_t *buf = dup_exact("", 0);
	struct pg_reader r = pg_reader_init(buf, 0);
	ck_assert_ptr_null(pg_read_str(&r));
	ck_assert(r.bad);
	free(buf);
}
END_TEST

/* The bound is the message length, not the next NUL in memory. */
START_TEST(test_reader_str_stops_at_message_end)
{
	uint8_t *buf = dup_exact(S("abc\0"));
	struct pg_reader r = pg_reader_init(buf, 3); /* the NUL belongs to the next message */
	ck_assert_ptr_null(pg_read_str(&r));
	ck_assert(r.bad);
	r = pg_reader_init(buf, 4);
	ck_assert_str_eq(pg_read_str(&r), "abc");
	ck_assert(!r.bad);
	free(buf);
}
END_TEST

START_TEST(test_reader_bytes)
{
	uint8_t *buf = dup_exact(S("12345"));
	struct pg_reader r = pg_reader_init(buf, 5);
	ck_assert_ptr_eq(pg_read_bytes(&r, 0), buf);
	ck_assert(!r.bad);
	ck_assert_ptr_eq(pg_read_bytes(&r, 3), buf);
	ck_assert_ptr_eq(r.p, buf + 3);
	ck_assert_uint_eq(r.left, 2);
	ck_assert_ptr_null(pg_read_bytes(&r, 3));
	ck_assert(r.bad);
	ck_assert_uint_eq(r.left, 0);
	/* a huge count must not wrap the bound check */
	r = pg_reader_init(buf, 5);
	ck_assert_ptr_null(pg_read_bytes(&r, SIZE_MAX));
	ck_assert(r.bad);
	r = pg_reader_init(buf, 5);
	ck_assert_ptr_eq(pg_read_bytes(&r, 5), buf);
	ck_assert(!r.bad);
	ck_assert_uint_eq(r.left, 0);
	free(buf);
}
END_TEST

/* --- pg_parse_startup_params --- */

struct startup_case {
	const char *name;
	const uint8_t *bytes;
	size_t len;
	size_t max;
	bool ok;
	size_t count;
	const char *kv[6]; /* name, value, name, value, ... */
};

static const struct startup_case startup_cases[] = {
    {"two params",
     S("user\0bob\0database\0db1\0\0"),
     8,
     true,
     2,
     {"user", "bob", "database", "db1"}},
    {"only the terminator", S("\0"), 8, true, 0, {NULL}},
    {"empty value",
     S("user\0bob\0application_name\0\0\0"),
     8,
     true,
     2,
     {"user", "bob", "application_name", ""}},
    {"exactly max",
     S("a\0"
       "1\0"
       "b\0"
       "2\0"
       "c\0"
       "3\0\0"),
     3,
     true,
     3,
     {"a", "1", "b", "2", "c", "3"}},
    {"one over max",
     S("a\0"
       "1\0"
       "b\0"
       "2\0"
       "c\0"
       "3\0\0"),
     2,
     false,
     0,
     {NULL}},
    {"max 0 with a param",
     S("a\0"
       "1\0\0"),
     0,
     false,
     0,
     {NULL}},
    {"max 0, no params", S("\0"), 0, true, 0, {NULL}},
    {"empty body", S(""), 8, false, 0, {NULL}},
    {"missing final terminator", S("user\0bob\0"), 8, false, 0, {NULL}},
    {"value missing", S("user\0"), 8, false, 0, {NULL}},
    {"unterminated name", S("user"), 8, false, 0, {NULL}},
    {"unterminated value", S("user\0bo"), 8, false, 0, {NULL}},
    {"unterminated second name", S("user\0bob\0data"), 8, false, 0, {NULL}},
    {"bytes after the terminator", S("user\0bob\0\0x"), 8, false, 0, {NULL}},
    {"two terminators", S("user\0bob\0\0\0"), 8, false, 0, {NULL}},
};

START_TEST(test_startup_params)
{
	const struct startup_case *c = &startup_cases[_i];
	uint8_t *body = dup_exact(c->bytes, c->len);
	struct pg_startup_param *out = calloc(c->max ? c->max : 1, sizeof(*out));
	size_t count = 99;
	bool ok = pg_parse_startup_params(body, c->len, out, c->max, &count);
	ck_assert_msg(ok == c->ok, "%s: got %d", c->name, ok);
	if (c->ok) {
		ck_assert_msg(count == c->count, "%s: count %zu", c->name, count);
		for (size_t i = 0; i < count; i++) {
			ck_assert_str_eq(out[i].name, c->kv[2 * i]);
			ck_assert_str_eq(out[i].value, c->kv[2 * i + 1]);
			/* pointers into the body, not copies */
			ck_assert((const uint8_t *)out[i].name >= body &&
			          (const uint8_t *)out[i].name < body + c->len);
			ck_assert((const uint8_t *)out[i].value > (const uint8_t *)out[i].name &&
			          (const uint8_t *)out[i].value < body + c->len);
		}
	}
	ck_assert(count <= c->max);
	free(out);
	free(body);
}
END_TEST

/* --- pg_parse_error --- */

struct error_case {
	const char *name;
	const uint8_t *bytes;
	size_t len;
	bool ok;
	const char *severity, *sqlstate, *message;
};

static const struct error_case error_cases[] = {
    {"S C M", S("SERROR\0C42P01\0Mrelation \"t\" does not exist\0\0"), true, "ERROR", "42P01",
     "relation \"t\" does not exist"},
    {"S V C M", S("SERROR\0VERROR\0C42601\0Msyntax error\0\0"), true, "ERROR", "42601",
     "syntax error"},
    {"localized S, then V wins", S("SFEHLER\0VFATAL\0C28P01\0MPasswort falsch\0\0"), true, "FATAL",
     "28P01", "Passwort falsch"},
    {"V first, localized S ignored", S("VFATAL\0SFEHLER\0Mm\0\0"), true, "FATAL", NULL, "m"},
    {"only M", S("Mjust a message\0\0"), true, NULL, NULL, "just a message"},
    {"unknown fields skipped", S("SNOTICE\0Ddetail\0Hhint\0P12\0Mmsg\0Wwhere\0\0"), true, "NOTICE",
     NULL, "msg"},
    {"empty message", S("SERROR\0M\0\0"), true, "ERROR", NULL, ""},
    {"missing M", S("SERROR\0C42P01\0\0"), false, NULL, NULL, NULL},
    {"only the terminator", S("\0"), false, NULL, NULL, NULL},
    {"empty body", S(""), false, NULL, NULL, NULL},
    {"field code only", S("S"), false, NULL, NULL, NULL},
    {"truncated value", S("SERROR\0Mrelation"), false, NULL, NULL, NULL},
    {"missing final terminator", S("SERROR\0Mmsg\0"), false, NULL, NULL, NULL},
    {"truncated after code", S("SERROR\0M"), false, NULL, NULL, NULL},
};

static void assert_str_or_null(const char *got, const char *want, const char *what,
                               const char *name)
{
	if (!want) {
		ck_assert_msg(got == NULL, "%s: %s should be NULL, is \"%s\"", name, what, got);
		return;
	}
	ck_assert_msg(got != NULL, "%s: %s is NULL", name, what);
	ck_assert_msg(strcmp(got, want) == 0, "%s: %s is \"%s\", want \"%s\"", name, what, got,
	              want);
}

START_TEST(test_parse_error)
{
	const struct error_case *c = &error_cases[_i];
	uint8_t *body = dup_exact(c->bytes, c->len);
	struct pg_error_fields f;
	memset(&f, 0x5a, sizeof(f));
	bool ok = pg_parse_error(body, c->len, &f);
	ck_assert_msg(ok == c->ok, "%s: got %d", c->name, ok);
	if (c->ok) {
		assert_str_or_null(f.severity, c->severity, "severity", c->name);
		assert_str_or_null(f.sqlstate, c->sqlstate, "sqlstate", c->name);
		assert_str_or_null(f.message, c->message, "message", c->name);
	}
	free(body);
}
END_TEST

/* --- builders --- */

/* Checks that o holds exactly the bytes want[0..n). */
static void assert_out(const struct pg_out *o, const void *want, size_t n)
{
	ck_assert_uint_eq(o->len, n);
	ck_assert_mem_eq(o->data, want, n);
	ck_assert(o->cap >= o->len);
}

START_TEST(test_out_error_bytes)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_error(&o, "FATAL", "28P01", "password authentication failed");
	/* 'E', Int32 length (counts itself, not the type), fields, then a 0 byte */
	static const uint8_t want[] = "E\x00\x00\x00\x3a"
	                              "SFATAL\0"
	                              "VFATAL\0"
	                              "C28P01\0"
	                              "Mpassword authentication failed\0"
	                              "\0";
	size_t n = sizeof(want) - 1;
	ck_assert_uint_eq(n, 1 + 0x3a);
	assert_out(&o, want, n);

	/* and it reads back through the parsers */
	uint8_t type;
	uint32_t len;
	ck_assert(pg_read_header(o.data, o.len, &type, &len) == PG_HDR_OK);
	ck_assert_uint_eq(type, 'E');
	ck_assert_uint_eq(len, o.len - 1);
	struct pg_error_fields f;
	ck_assert(pg_parse_error(o.data + 5, len - 4, &f));
	ck_assert_str_eq(f.severity, "FATAL");
	ck_assert_str_eq(f.sqlstate, "28P01");
	ck_assert_str_eq(f.message, "password authentication failed");
	pg_out_free(&o);
	ck_assert_ptr_null(o.data);
	ck_assert_uint_eq(o.len, 0);
	ck_assert_uint_eq(o.cap, 0);
}
END_TEST

START_TEST(test_out_auth_md5)
{
	struct pg_out o;
	static const uint8_t salt[4] = {0xde, 0xad, 0xbe, 0xef};
	pg_out_init(&o);
	pg_out_auth(&o, 5, salt, sizeof(salt));
	/* AuthenticationMD5Password: 'R', Int32(12), Int32(5), Byte4 salt */
	static const uint8_t want[] = {'R', 0, 0, 0, 12, 0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef};
	assert_out(&o, want, sizeof(want));
	pg_out_free(&o);
}
END_TEST

START_TEST(test_out_auth_ok)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_auth(&o, 0, NULL, 0);
	/* AuthenticationOk: 'R', Int32(8), Int32(0) */
	static const uint8_t want[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
	assert_out(&o, want, sizeof(want));
	pg_out_free(&o);
}
END_TEST

START_TEST(test_out_param_status)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_param_status(&o, "client_encoding", "UTF8");
	/* 'S', Int32 len, String name, String value: 4 + 16 + 5 = 25 */
	static const uint8_t want[] = "S\x00\x00\x00\x19"
	                              "client_encoding\0"
	                              "UTF8\0";
	assert_out(&o, want, sizeof(want) - 1);
	pg_out_free(&o);
}
END_TEST

START_TEST(test_out_ready)
{
	static const char statuses[] = {'I', 'T', 'E'};
	for (size_t i = 0; i < sizeof(statuses); i++) {
		struct pg_out o;
		pg_out_init(&o);
		pg_out_ready(&o, statuses[i]);
		const uint8_t want[] = {'Z', 0, 0, 0, 5, (uint8_t)statuses[i]};
		assert_out(&o, want, sizeof(want));
		pg_out_free(&o);
	}
}
END_TEST

START_TEST(test_out_query)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_query(&o, "SELECT 1");
	static const uint8_t want[] = "Q\x00\x00\x00\x0d"
	                              "SELECT 1\0";
	assert_out(&o, want, sizeof(want) - 1);
	pg_out_free(&o);
}
END_TEST

/* Several messages in one buffer: each length covers its own message only. */
START_TEST(test_out_several_messages)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_query(&o, "x");
	pg_out_param_status(&o, "a", "b");
	pg_out_ready(&o, 'I');
	static const uint8_t want[] = "Q\x00\x00\x00\x06x\0"
	                              "S\x00\x00\x00\x08"
	                              "a\0b\0"
	                              "Z\x00\x00\x00\x05I";
	assert_out(&o, want, sizeof(want) - 1);
	pg_out_free(&o);
}
END_TEST

/* Messages bigger than the first allocation: growth keeps the bytes and the length. */
START_TEST(test_out_growth)
{
	struct pg_out o;
	size_t n = 100000;
	char *sql = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		sql[i] = (char)('a' + i % 26);
	sql[n] = 0;
	pg_out_init(&o);
	pg_out_ready(&o, 'I'); /* something in front, so msg_start is not 0 */
	pg_out_query(&o, sql);
	ck_assert_uint_eq(o.len, 6 + 1 + 4 + n + 1);
	ck_assert_uint_eq(o.data[6], 'Q');
	ck_assert_uint_eq(pg_get_u32(o.data + 7), 4 + n + 1);
	ck_assert_mem_eq(o.data + 11, sql, n + 1);
	ck_assert_mem_eq(o.data, "Z\x00\x00\x00\x05I", 6);
	free(sql);
	pg_out_free(&o);
}
END_TEST

/* A startup packet (untyped) built with pg_out_begin(o, 0) parses back. */
START_TEST(test_startup_round_trip)
{
	static const char *const kv[] = {"user", "alice",   "database", "app", "application_name",
	                                 "",     "options", "-c x=y"};
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 0);
	pg_out_u32(&o, PG_PROTO_V3);
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
		pg_out_str(&o, kv[i]);
	pg_out_u8(&o, 0);
	pg_out_end(&o);

	uint8_t *pkt = dup_exact(o.data, o.len);
	size_t len = o.len;
	pg_out_free(&o);

	/* no type byte: the length is first and counts the whole packet */
	ck_assert_uint_eq(pg_get_u32(pkt), len);
	ck_assert_uint_eq(pg_get_u32(pkt + 4), PG_PROTO_V3);
	struct pg_startup_param params[4];
	size_t count = 0;
	ck_assert(pg_parse_startup_params(pkt + 8, len - 8, params, 4, &count));
	ck_assert_uint_eq(count, 4);
	for (size_t i = 0; i < count; i++) {
		ck_assert_str_eq(params[i].name, kv[2 * i]);
		ck_assert_str_eq(params[i].value, kv[2 * i + 1]);
	}
	/* one slot short of the params present: rejected */
	ck_assert(!pg_parse_startup_params(pkt + 8, len - 8, params, 3, &count));
	free(pkt);
}
END_TEST

/* --- pg_quote_literal --- */

struct quote_case {
	const char *in, *want;
};

static const struct quote_case quote_cases[] = {
    {"", "E''"},
    {"abc", "E'abc'"},
    {"it's", "E'it''s'"},
    {"a\\b", "E'a\\\\b'"},
    {"'", "E''''"},
    {"\\", "E'\\\\'"},
    {"\\'", "E'\\\\'''"},
    {"'; DROP TABLE t; --", "E'''; DROP TABLE t; --'"},
    {"x\\'y''z\\\\", "E'x\\\\''y''''z\\\\\\\\'"},
    {"caf\xc3\xa9 \"q\"", "E'caf\xc3\xa9 \"q\"'"},
};

START_TEST(test_quote_literal)
{
	const struct quote_case *c = &quote_cases[_i];
	struct pg_out o;
	pg_out_init(&o);
	pg_out_bytes(&o, "SET x = ", 8); /* appends after what is there */
	pg_quote_literal(&o, c->in);
	size_t n = strlen(c->want);
	ck_assert_uint_eq(o.len, 8 + n);
	ck_assert_mem_eq(o.data, "SET x = ", 8);
	ck_assert_msg(memcmp(o.data + 8, c->want, n) == 0, "quote of \"%s\": got \"%.*s\"", c->in,
	              (int)n, (const char *)o.data + 8);
	pg_out_free(&o);
}
END_TEST

static Suite *pg_pkt_suite(void)
{
	Suite *s = suite_create("pg_pkt");
	TCase *tc = tcase_create("read");
	tcase_add_test(tc, test_u32_round_trip);
	tcase_add_loop_test(tc, test_read_header, 0,
	                    (int)(sizeof(hdr_cases) / sizeof(hdr_cases[0])));
	tcase_add_test(tc, test_reader_u8);
	tcase_add_test(tc, test_reader_u32);
	tcase_add_loop_test(tc, test_reader_u32_short, 0, 4);
	tcase_add_test(tc, test_reader_str);
	tcase_add_test(tc, test_reader_str_empty_body);
	tcase_add_test(tc, test_reader_str_stops_at_message_end);
	tcase_add_test(tc, test_reader_bytes);
	tcase_add_loop_test(tc, test_startup_params, 0,
	                    (int)(sizeof(startup_cases) / sizeof(startup_cases[0])));
	tcase_add_loop_test(tc, test_parse_error, 0,
	                    (int)(sizeof(error_cases) / sizeof(error_cases[0])));
	suite_add_tcase(s, tc);

	TCase *tc2 = tcase_create("write");
	tcase_add_test(tc2, test_out_error_bytes);
	tcase_add_test(tc2, test_out_auth_md5);
	tcase_add_test(tc2, test_out_auth_ok);
	tcase_add_test(tc2, test_out_param_status);
	tcase_add_test(tc2, test_out_ready);
	tcase_add_test(tc2, test_out_query);
	tcase_add_test(tc2, test_out_several_messages);
	tcase_add_test(tc2, test_out_growth);
	tcase_add_test(tc2, test_startup_round_trip);
	tcase_add_loop_test(tc2, test_quote_literal, 0,
	                    (int)(sizeof(quote_cases) / sizeof(quote_cases[0])));
	suite_add_tcase(s, tc2);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pg_pkt_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
