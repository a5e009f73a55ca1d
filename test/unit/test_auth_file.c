/*
 * Unit tests for auth_file: the userlist format, its error messages (which must
 * never show a secret), lookups, and loading from disk.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth_file.h"

#define MD5_SECRET "md54a0a68b43b6cd5cf266fa02f196e2371"
#define SCRAM_SECRET                                                                               \
	"SCRAM-SHA-256$4096:oL6tNjIkwiU2xmvQmLJcBQ==$cri/"                                         \
	"+Z392skSLooYPQ2aiQ1IYs+OyR8DYvgFudpiEk0=:"                                                \
	"UK6Pu2jTWIt1xX59eCMGguFK8PlzEHlq8cU/qRUjfNQ="

static struct auth_file *parse_str(const char *text, char *err, size_t errlen)
{
	return auth_file_parse(text, strlen(text), "users.txt", err, errlen);
}

static void assert_user(const struct auth_file *af, const char *name, const char *secret,
                        enum secret_kind kind)
{
	const struct auth_user *u = auth_file_find(af, name);

	ck_assert_msg(u != NULL, "user %s not found", name);
	ck_assert_str_eq(u->name, name);
	ck_assert_str_eq(u->secret, secret);
	ck_assert_int_eq(u->kind, kind);
}

START_TEST(test_valid_file)
{
	static const char text[] = "; PgBouncer style comment\n"
	                           "# another comment\n"
	                           "\n"
	                           "   \t\n"
	                           "\"plain\" \"pa ss\"\n"
	                           "\"md5user\"\t\"" MD5_SECRET "\"\n"
	                           "  \"scram\" \"" SCRAM_SECRET "\" \"extra\" field\n"
	                           "\"say \"\"hi\"\"\" \"a\"\"b\"\"\"\"\"\r\n"
	                           "\"trust\" \"\"\n"
	                           "\"last\" \"no newline at end\"";
	char err[256] = "";
	struct auth_file *af = parse_str(text, err, sizeof(err));

	ck_assert_msg(af != NULL, "%s", err);
	ck_assert_uint_eq(af->n_users, 6);
	assert_user(af, "plain", "pa ss", SECRET_PLAIN);
	assert_user(af, "md5user", MD5_SECRET, SECRET_MD5);
	assert_user(af, "scram", SCRAM_SECRET, SECRET_SCRAM);
	assert_user(af, "say \"hi\"", "a\"b\"\"", SECRET_PLAIN);
	assert_user(af, "trust", "", SECRET_PLAIN);
	assert_user(af, "last", "no newline at end", SECRET_PLAIN);
	ck_assert_uint_eq(auth_file_find(af, "scram")->line, 7);
	auth_file_free(af);
}
END_TEST

START_TEST(test_lookup_miss)
{
	char err[256];
	struct auth_file *af = parse_str("\"bob\" \"x\"\n\"alice\" \"y\"\n", err, sizeof(err));

	ck_assert_ptr_nonnull(af);
	ck_assert_ptr_null(auth_file_find(af, "carol"));
	ck_assert_ptr_null(auth_file_find(af, "Alice"));
	ck_assert_ptr_null(auth_file_find(af, "alic"));
	ck_assert_ptr_null(auth_file_find(af, "alice "));
	ck_assert_ptr_null(auth_file_find(af, ""));
	ck_assert_ptr_null(auth_file_find(NULL, "alice"));
	assert_user(af, "alice", "y", SECRET_PLAIN);
	auth_file_free(af);
}
END_TEST

START_TEST(test_empty_file)
{
	char err[256];
	struct auth_file *af = parse_str("", err, sizeof(err));

	ck_assert_ptr_nonnull(af);
	ck_assert_uint_eq(af->n_users, 0);
	ck_assert_ptr_null(auth_file_find(af, "alice"));
	auth_file_free(af);
	auth_file_free(NULL);
}
END_TEST

START_TEST(test_many_users)
{
	char *text = malloc(1000 * 40), *p = text, err[256], name[32];
	struct auth_file *af;

	/* Written in a scrambled order so the lookup depends on the sort. */
	for (unsigned i = 0; i < 1000; i++)
		p += sprintf(p, "\"user%u\" \"pw%u\"\n", (i * 7919) % 1000, i);
	af = auth_file_parse(text, (size_t)(p - text), "big", err, sizeof(err));
	ck_assert_msg(af != NULL, "%s", err);
	ck_assert_uint_eq(af->n_users, 1000);
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "user%u", i);
		ck_assert_ptr_nonnull(auth_file_find(af, name));
	}
	ck_assert_ptr_null(auth_file_find(af, "user1000"));
	auth_file_free(af);
	free(text);
}
END_TEST

/* Each bad file, the exact message, and no trace of "topsecret" in it. */
static const struct {
	const char *text;
	size_t len;
	const char *err;
} bad_files[] = {
#define F(t, e)                                                                                    \
	{                                                                                          \
		t, sizeof(t) - 1, e                                                                \
	}
    F("\"alice\" \"topsecret", "users.txt:1: unterminated quote in secret"),
    F("\"alice\" \"topsecret\n\"", "users.txt:1: unterminated quote in secret"),
    F("\"alice\" \"top\"\"secret", "users.txt:1: unterminated quote in secret"),
    F("# ok\n\n\"alice", "users.txt:3: unterminated quote in user name"),
    F("\"al\"\"ice\" ", "users.txt:1: missing secret"),
    F("\"bob\" \"x\"\n\"alice\"\r\n", "users.txt:2: missing secret"),
    F("\"alice\"", "users.txt:1: missing secret"),
    F("alice \"topsecret\"", "users.txt:1: expected a quoted user name"),
    F("'alice' 'topsecret'", "users.txt:1: expected a quoted user name"),
    F("\"alice\" topsecret", "users.txt:1: expected a quoted secret after the user name"),
    F("\"alice\"topsecret", "users.txt:1: expected a quoted secret after the user name"),
    F("\"\" \"topsecret\"", "users.txt:1: empty user name"),
    F("\"alice\" \"top\0secret\"", "users.txt:1: NUL byte in line"),
    F("\"alice\" \"topsecret\"\n\"bob\" \"x\"\n\"alice\" \"topsecret2\"\n",
      "users.txt:3: duplicate user (first on line 1)"),
    F("\"alice\" \"SCRAM-SHA-256$0:c2FsdA==$topsecret\"",
      "users.txt:1: malformed SCRAM-SHA-256 secret"),
    F("\"alice\" \"" SCRAM_SECRET "x\"", "users.txt:1: malformed SCRAM-SHA-256 secret"),
#undef F
};

START_TEST(test_malformed)
{
	char err[256] = "";
	struct auth_file *af =
	    auth_file_parse(bad_files[_i].text, bad_files[_i].len, "users.txt", err, sizeof(err));

	ck_assert_ptr_null(af);
	ck_assert_str_eq(err, bad_files[_i].err);
	ck_assert_ptr_null(strstr(err, "topsecret"));
}
END_TEST

START_TEST(test_error_buffer_small)
{
	char err[8];

	ck_assert_ptr_null(parse_str("\"alice\"", err, sizeof(err)));
	ck_assert_str_eq(err, "users.t");
	ck_assert_ptr_null(parse_str("\"alice\"", NULL, 0));
}
END_TEST

START_TEST(test_secret_kind_of)
{
	ck_assert_int_eq(secret_kind_of(""), SECRET_PLAIN);
	ck_assert_int_eq(secret_kind_of("secret"), SECRET_PLAIN);
	ck_assert_int_eq(secret_kind_of(MD5_SECRET), SECRET_MD5);
	/* PostgreSQL only takes lower-case hex of the right length as a hash. */
	ck_assert_int_eq(secret_kind_of("md54A0A68B43B6CD5CF266FA02F196E2371"), SECRET_PLAIN);
	ck_assert_int_eq(secret_kind_of("md54a0a68b43b6cd5cf266fa02f196e237"), SECRET_PLAIN);
	ck_assert_int_eq(secret_kind_of("md54a0a68b43b6cd5cf266fa02f196e2371a"), SECRET_PLAIN);
	ck_assert_int_eq(secret_kind_of(SCRAM_SECRET), SECRET_SCRAM);
	ck_assert_int_eq(secret_kind_of("SCRAM-SHA-256$4096:abc"), SECRET_PLAIN);
}
END_TEST

/* Writes text to a fresh temporary file; returns its malloc'd path. */
static char *temp_file(const char *text)
{
	char *path = strdup("/tmp/sluice-test-userlist-XXXXXX");
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(test_load_file)
{
	char err[512] = "", *path = temp_file("\"alice\" \"" SCRAM_SECRET "\"\n\"bob\" \"x\"\n");
	struct auth_file *af = auth_file_load(path, err, sizeof(err));

	ck_assert_msg(af != NULL, "%s", err);
	assert_user(af, "alice", SCRAM_SECRET, SECRET_SCRAM);
	assert_user(af, "bob", "x", SECRET_PLAIN);
	auth_file_free(af);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_load_large_file)
{
	/* Bigger than the first read buffer, to cover growing it. */
	size_t n = 5000;
	char *text = malloc(n * 32 + 1), *p = text, *path, err[512] = "";
	struct auth_file *af;

	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "\"u%zu\" \"secret-%zu\"\n", i, i);
	path = temp_file(text);
	af = auth_file_load(path, err, sizeof(err));
	ck_assert_msg(af != NULL, "%s", err);
	ck_assert_uint_eq(af->n_users, n);
	assert_user(af, "u4999", "secret-4999", SECRET_PLAIN);
	auth_file_free(af);
	unlink(path);
	free(path);
	free(text);
}
END_TEST

START_TEST(test_load_bad_file_names_path)
{
	char err[512] = "", *path = temp_file("\"ok\" \"x\"\n\"alice\" \"topsecret\n");
	char expect[512];

	ck_assert_ptr_null(auth_file_load(path, err, sizeof(err)));
	snprintf(expect, sizeof(expect), "%s:2: unterminated quote in secret", path);
	ck_assert_str_eq(err, expect);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_missing_file)
{
	char err[512] = "";

	ck_assert_ptr_null(auth_file_load("/nonexistent/sluice/userlist.txt", err, sizeof(err)));
	ck_assert_str_eq(err, "/nonexistent/sluice/userlist.txt: No such file or directory");
	ck_assert_ptr_null(auth_file_load("/tmp", err, sizeof(err)));
	ck_assert_str_eq(err, "/tmp: Is a directory");
}
END_TEST

static Suite *auth_file_suite(void)
{
	Suite *s = suite_create("auth_file");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_valid_file);
	tcase_add_test(tc, test_lookup_miss);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_many_users);
	tcase_add_loop_test(tc, test_malformed, 0, (int)(sizeof(bad_files) / sizeof(bad_files[0])));
	tcase_add_test(tc, test_error_buffer_small);
	tcase_add_test(tc, test_secret_kind_of);
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_load_large_file);
	tcase_add_test(tc, test_load_bad_file_names_path);
	tcase_add_test(tc, test_missing_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_file_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
