/*
 * Unit tests for pg_errors.c: the SQLSTATE each of the pooler's own error kinds maps
 * to (clients and the integration tests depend on these), and how the SQLSTATE of a
 * failed server login is classified.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "pg.h"
#include "proto.h"

START_TEST(test_every_kind_mapped)
{
	static const struct {
		enum err_kind kind;
		const char *code;
	} want[] = {
	    {ERR_LOGIN_TIMEOUT, "08P01"},
	    {ERR_QUERY_WAIT_TIMEOUT, "08P01"},
	    {ERR_TOO_MANY_CONNECTIONS, "53300"},
	    {ERR_OUT_OF_DESCRIPTORS, "53300"},
	    {ERR_SHUTTING_DOWN, "57P01"},
	    {ERR_ADMIN_KILLED, "57P01"},
	    {ERR_SERVER_CONNECT_FAILED, "08006"},
	    {ERR_SERVER_LOGIN_TIMEOUT, "08006"},
	    {ERR_SERVER_LOST, "08006"},
	    {ERR_SERVER_FAST_CLOSE, "08006"},
	    {ERR_NO_MATCHING_SERVER, "08000"},
	    {ERR_ADMIN_DENIED, "42501"},
	    {ERR_UNKNOWN_DATABASE, "3D000"},
	    {ERR_BAD_COMMAND, "42601"},
	    {ERR_NO_SUCH_OBJECT, "42704"},
	    {ERR_RELOAD_FAILED, "F0000"},
	    {ERR_BAD_VALUE, "22023"},
	    {ERR_COMMAND_TOO_LONG, "54000"},
	};
	ck_assert_int_eq(sizeof(want) / sizeof(want[0]), ERR_KIND_COUNT);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_str_eq(pg_error_code(want[i].kind), want[i].code);
	/* the table reached through proto_ops is the same */
	ck_assert_str_eq(pg_proto.error_code(ERR_TOO_MANY_CONNECTIONS), "53300");
}
END_TEST

START_TEST(test_unknown_kind_is_internal_error)
{
	ck_assert_str_eq(pg_error_code(ERR_KIND_COUNT), "XX000");
	ck_assert_str_eq(pg_error_code((enum err_kind) - 1), "XX000");
}
END_TEST

START_TEST(test_host_errors)
{
	ck_assert(pg_proto.login_error_host("08006"));
	ck_assert(pg_proto.login_error_host("08001"));
	ck_assert(pg_proto.login_error_host("08000"));
	ck_assert(pg_proto.login_error_host("57P01"));
	ck_assert(pg_proto.login_error_host("57P03"));
	ck_assert(!pg_proto.login_error_host("08P01")); /* a protocol problem */
	ck_assert(!pg_proto.login_error_host("57P04"));
	ck_assert(!pg_proto.login_error_host("28P01")); /* bad password */
	ck_assert(!pg_proto.login_error_host("3D000")); /* unknown database */
	ck_assert(!pg_proto.login_error_host("53300")); /* too many connections */
	ck_assert(!pg_proto.login_error_host(NULL));
}
END_TEST

START_TEST(test_transient_errors)
{
	ck_assert(pg_proto.login_error_transient("08006"));
	ck_assert(pg_proto.login_error_transient("08003"));
	ck_assert(pg_proto.login_error_transient("57P02"));
	ck_assert(pg_proto.login_error_transient("53300"));
	ck_assert(pg_proto.login_error_transient(NULL)); /* no code: assume an outage */
	ck_assert(!pg_proto.login_error_transient("08P01"));
	ck_assert(!pg_proto.login_error_transient("08004"));
	ck_assert(!pg_proto.login_error_transient("28P01"));
	ck_assert(!pg_proto.login_error_transient("3D000"));
}
END_TEST

static Suite *pg_errors_suite(void)
{
	Suite *s = suite_create("pg_errors");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_every_kind_mapped);
	tcase_add_test(tc, test_unknown_kind_is_internal_error);
	tcase_add_test(tc, test_host_errors);
	tcase_add_test(tc, test_transient_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pg_errors_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
