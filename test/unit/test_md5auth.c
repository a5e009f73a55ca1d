/*
 * Unit tests for md5auth. The expected strings were computed independently with
 * Python's hashlib:
 *   "md5" + md5(password + user).hexdigest()
 *   "md5" + md5(stored[3:] + salt).hexdigest()
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md5auth.h"

static const uint8_t salt1[4] = {0x01, 0x02, 0x03, 0x04};
static const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};

#define ALICE_HASH  "md54a0a68b43b6cd5cf266fa02f196e2371" /* "secret" + "alice" */
#define ALICE_SALT1 "md598a0412b9c31436fc53776e863350083" /* with salt1 */
#define ALICE_SALT2 "md53e1d73ba00a55e8805aa0277d29996c5" /* with salt2 */

START_TEST(test_password_hash)
{
	char out[MD5_PASSWD_LEN + 1];

	ck_assert(md5_password_hash("secret", "alice", out));
	ck_assert_str_eq(out, ALICE_HASH);
	ck_assert(md5_password_hash("", "bob", out));
	ck_assert_str_eq(out, "md59f9d51bc70ef21ca5c14f307980a29d8");
	/* UTF-8 bytes are hashed as they are. */
	ck_assert(md5_password_hash("p\xc3\xa4ssw\xc3\xb6rd", "j\xc3\xb6rg", out));
	ck_assert_str_eq(out, "md517e6006041561eba22e799139448cd69");
}
END_TEST

START_TEST(test_salted_response)
{
	char out[MD5_PASSWD_LEN + 1];
	static const uint8_t zero[4] = {0, 0, 0, 0};
	static const uint8_t odd[4] = {0xff, 0x00, 0x7f, 0x80};

	ck_assert(md5_salted_response(ALICE_HASH, salt1, out));
	ck_assert_str_eq(out, ALICE_SALT1);
	ck_assert(md5_salted_response(ALICE_HASH, salt2, out));
	ck_assert_str_eq(out, ALICE_SALT2);
	ck_assert(md5_salted_response("md59f9d51bc70ef21ca5c14f307980a29d8", zero, out));
	ck_assert_str_eq(out, "md587a08073e3c715a555ed96839b567143");
	ck_assert(md5_salted_response("md517e6006041561eba22e799139448cd69", odd, out));
	ck_assert_str_eq(out, "md538d193a9f16bf4a0b488ae75c1ed43d5");
}
END_TEST

START_TEST(test_salted_response_rejects_non_hash)
{
	char out[MD5_PASSWD_LEN + 1];

	ck_assert(!md5_salted_response("secret", salt1, out));
	ck_assert(!md5_salted_response("md54a0a68b43b6cd5cf266fa02f196e237", salt1, out));
	ck_assert(!md5_salted_response("md54a0a68b43b6cd5cf266fa02f196e23711", salt1, out));
	ck_assert(!md5_salted_response("md54A0A68B43B6CD5CF266FA02F196E2371", salt1, out));
	ck_assert(!md5_salted_response("md54a0a68b43b6cd5cf266fa02f196e237g", salt1, out));
}
END_TEST

START_TEST(test_check_plaintext_secret)
{
	ck_assert(md5_check_response("secret", false, "alice", salt1, ALICE_SALT1));
	ck_assert(md5_check_response("secret", false, "alice", salt2, ALICE_SALT2));
}
END_TEST

START_TEST(test_check_md5_secret)
{
	ck_assert(md5_check_response(ALICE_HASH, true, "alice", salt1, ALICE_SALT1));
	ck_assert(md5_check_response(ALICE_HASH, true, "alice", salt2, ALICE_SALT2));
}
END_TEST

START_TEST(test_check_wrong_password)
{
	/* What a client with the password "Secret" would send. */
	char hash[MD5_PASSWD_LEN + 1], resp[MD5_PASSWD_LEN + 1];

	ck_assert(md5_password_hash("Secret", "alice", hash));
	ck_assert(md5_salted_response(hash, salt1, resp));
	ck_assert(!md5_check_response("secret", false, "alice", salt1, resp));
	ck_assert(!md5_check_response(ALICE_HASH, true, "alice", salt1, resp));
}
END_TEST

START_TEST(test_check_wrong_salt_or_user)
{
	/* A replayed response from another salt fails. */
	ck_assert(!md5_check_response("secret", false, "alice", salt2, ALICE_SALT1));
	ck_assert(!md5_check_response(ALICE_HASH, true, "alice", salt2, ALICE_SALT1));
	/* The user name is part of the hash of a plaintext secret. */
	ck_assert(!md5_check_response("secret", false, "alicf", salt1, ALICE_SALT1));
}
END_TEST

START_TEST(test_check_malformed_response)
{
	char longer[64];

	ck_assert(!md5_check_response("secret", false, "alice", salt1, ""));
	ck_assert(!md5_check_response("secret", false, "alice", salt1,
	                              "md598a0412b9c31436fc53776e86335008"));
	snprintf(longer, sizeof(longer), "%sx", ALICE_SALT1);
	ck_assert(!md5_check_response("secret", false, "alice", salt1, longer));
	/* A stored "hash" that is not one never verifies anything. */
	ck_assert(!md5_check_response("md5short", true, "alice", salt1, ALICE_SALT1));
}
END_TEST

static Suite *md5auth_suite(void)
{
	Suite *s = suite_create("md5auth");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_password_hash);
	tcase_add_test(tc, test_salted_response);
	tcase_add_test(tc, test_salted_response_rejects_non_hash);
	tcase_add_test(tc, test_check_plaintext_secret);
	tcase_add_test(tc, test_check_md5_secret);
	tcase_add_test(tc, test_check_wrong_password);
	tcase_add_test(tc, test_check_wrong_salt_or_user);
	tcase_add_test(tc, test_check_malformed_response);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(md5auth_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
