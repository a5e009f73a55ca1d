/*
 * Unit tests for str_escape (util.c): what a client-supplied name looks like in a
 * log line or an error message.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *esc(const char *in)
{
	static char out[256];
	return str_escape(out, sizeof(out), in);
}

START_TEST(test_plain_and_utf8_kept)
{
	ck_assert_str_eq(esc("alice"), "alice");
	ck_assert_str_eq(esc(""), "");
	ck_assert_str_eq(esc("a b\\c\"d"), "a b\\c\"d");
	ck_assert_str_eq(esc("j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x90\x98"),
	                 "j\xc3\xb6rg \xe2\x82\xac \xf0\x9f\x90\x98");
}
END_TEST

START_TEST(test_controls_escaped)
{
	ck_assert_str_eq(esc("a\nb"), "a\\x0ab");
	ck_assert_str_eq(esc("\r\t\x1b[31m\x7f"), "\\x0d\\x09\\x1b[31m\\x7f");
	/* C1 controls are valid UTF-8 but terminals act on them (U+009B is CSI) */
	ck_assert_str_eq(esc("x\xc2\x9by"), "x\\xc2\\x9by");
	ck_assert_str_eq(esc("\xc2\xa0"), "\xc2\xa0"); /* U+00A0 is text */
}
END_TEST

START_TEST(test_invalid_utf8_escaped)
{
	ck_assert_str_eq(esc("\xff"), "\\xff");
	ck_assert_str_eq(esc("a\xc3"), "a\\xc3");        /* cut short at the end */
	ck_assert_str_eq(esc("\xc3("), "\\xc3(");        /* bad continuation */
	ck_assert_str_eq(esc("\xc0\xaf"), "\\xc0\\xaf"); /* overlong '/' */
	ck_assert_str_eq(esc("\xe0\x80\xaf"), "\\xe0\\x80\\xaf");
	ck_assert_str_eq(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80");          /* surrogate */
	ck_assert_str_eq(esc("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
	ck_assert_str_eq(esc("\x80z"), "\\x80z");
}
END_TEST

START_TEST(test_idempotent)
{
	char once[64], twice[64];
	str_escape(once, sizeof(once), "u\n\xff");
	str_escape(twice, sizeof(twice), once);
	ck_assert_str_eq(once, twice);
}
END_TEST

START_TEST(test_truncation_whole_units)
{
	char out[8];
	/* 7 bytes and the terminator fill it exactly */
	ck_assert_str_eq(str_escape(out, sizeof(out), "ab\ncd"), "ab\\x0ac");
	ck_assert_str_eq(str_escape(out, 4, "a\n"), "a");
	ck_assert_str_eq(str_escape(out, 4, "a\xc3\xb6"), "a\xc3\xb6");
	ck_assert_str_eq(str_escape(out, 4, "ab\xc3\xb6"), "ab");
	ck_assert_str_eq(str_escape(out, 1, "abc"), "");
	char big[STR_ESCAPE_SIZE(3)];
	ck_assert_str_eq(str_escape(big, sizeof(big), "\x01\x02\x03"), "\\x01\\x02\\x03");
}
END_TEST

static Suite *escape_suite(void)
{
	Suite *s = suite_create("escape");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_plain_and_utf8_kept);
	tcase_add_test(tc, test_controls_escaped);
	tcase_add_test(tc, test_invalid_utf8_escaped);
	tcase_add_test(tc, test_idempotent);
	tcase_add_test(tc, test_truncation_whole_units);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(escape_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
