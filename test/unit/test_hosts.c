/*
 * test_hosts: unit tests for the state machine half of src/hosts.c: host lists, the
 * choice of a host under each load_balance_hosts policy, health (down after
 * health_check_fails failures in a row, up after health_check_passes good checks) and
 * target_session_attrs judged from what a login reported.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "hosts.h"

static struct host_set *three(enum lb_mode lb, enum tsa_mode tsa)
{
	return host_set_new("a,b,c", "5001,5002,5003", 5432, lb, tsa);
}

START_TEST(test_parse_lists)
{
	struct host_set *hs = host_set_new("a, b ,c", "6000", 5432, LB_ROUND_ROBIN, TSA_ANY);
	ck_assert_uint_eq(hs->n, 3);
	ck_assert_str_eq(hs->v[0].name, "a");
	ck_assert_str_eq(hs->v[1].name, "b");
	ck_assert_str_eq(hs->v[2].name, "c");
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(hs->v[i].port, 6000);
		ck_assert_int_eq(hs->v[i].health, HOST_UP);
		ck_assert_int_eq(hs->v[i].hot_standby, -1);
	}
	char buf[64];
	host_set_format(hs, buf, sizeof(buf));
	ck_assert_str_eq(buf, "a,b,c");
	host_set_free(hs);

	hs = three(LB_ROUND_ROBIN, TSA_ANY);
	ck_assert_int_eq(hs->v[0].port, 5001);
	ck_assert_int_eq(hs->v[2].port, 5003);
	host_set_free(hs);

	hs = host_set_new(NULL, NULL, 5432, LB_ROUND_ROBIN, TSA_ANY);
	ck_assert_uint_eq(hs->n, 1);
	ck_assert_ptr_null(hs->v[0].name);
	ck_assert_int_eq(hs->v[0].port, 5432);
	host_set_format(hs, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	host_set_free(hs);
}
END_TEST

START_TEST(test_same_and_carry)
{
	struct host_set *a = three(LB_ROUND_ROBIN, TSA_ANY);
	struct host_set *b = three(LB_DISABLE, TSA_ANY);
	struct host_set *c = host_set_new("a,b,c", "5001,5002,5004", 5432, LB_ROUND_ROBIN, TSA_ANY);
	struct host_set *d = host_set_new("c,x", "5003,5009", 5432, LB_ROUND_ROBIN, TSA_READ_WRITE);
	ck_assert(host_set_same(a, b)); /* the policy is not part of the list */
	ck_assert(!host_set_same(a, c));
	ck_assert(!host_set_same(a, d));
	ck_assert(host_set_same(NULL, NULL));
	ck_assert(!host_set_same(a, NULL));

	ck_assert_int_eq(host_failed(a, 2, 1), HOST_EV_DOWN);
	ck_assert_int_eq(host_role_seen(a, 2, 1, 1), TSA_ACCEPT); /* any */
	host_set_carry(d, a);
	ck_assert_int_eq(d->v[0].health, HOST_DOWN); /* c:5003 keeps its state */
	ck_assert_int_eq(d->v[0].hot_standby, 1);
	ck_assert(d->v[0].mismatch); /* judged again: a standby is not read-write */
	ck_assert_int_eq(d->v[1].health, HOST_UP);
	ck_assert(!d->v[1].mismatch);
	host_set_free(a);
	host_set_free(b);
	host_set_free(c);
	host_set_free(d);
}
END_TEST

static void pick_seq(struct host_set *hs, const int *busy, const size_t *want, size_t n)
{
	for (size_t k = 0; k < n; k++)
		ck_assert_uint_eq(host_pick(hs, busy), want[k]);
}

START_TEST(test_round_robin)
{
	struct host_set *hs = three(LB_ROUND_ROBIN, TSA_ANY);
	pick_seq(hs, NULL, (size_t[]){0, 1, 2, 0, 1}, 5);
	/* a host that is down is skipped */
	host_failed(hs, 0, 1);
	pick_seq(hs, NULL, (size_t[]){2, 1, 2, 1}, 4);
	host_set_free(hs);
}
END_TEST

START_TEST(test_disable_stays_on_first)
{
	struct host_set *hs = three(LB_DISABLE, TSA_ANY);
	pick_seq(hs, NULL, (size_t[]){0, 0, 0}, 3);
	host_failed(hs, 0, 1);
	pick_seq(hs, NULL, (size_t[]){1, 1}, 2);
	/* back to the first once it is up again */
	host_passed(hs, 0, 1);
	pick_seq(hs, NULL, (size_t[]){0, 0}, 2);
	host_set_free(hs);
}
END_TEST

START_TEST(test_least_busy)
{
	struct host_set *hs = three(LB_LEAST_BUSY, TSA_ANY);
	int busy[3] = {4, 1, 2};
	ck_assert_uint_eq(host_pick(hs, busy), 1);
	busy[1] = 5;
	ck_assert_uint_eq(host_pick(hs, busy), 2);
	/* ties go round */
	busy[0] = busy[1] = busy[2] = 3;
	size_t first = host_pick(hs, busy);
	ck_assert_uint_ne(host_pick(hs, busy), first);
	/* the least busy host is down: the next least busy one */
	busy[0] = 0;
	busy[1] = 1;
	busy[2] = 9;
	host_failed(hs, 0, 1);
	ck_assert_uint_eq(host_pick(hs, busy), 1);
	host_set_free(hs);
}
END_TEST

START_TEST(test_health_thresholds)
{
	struct host_set *hs = three(LB_ROUND_ROBIN, TSA_ANY);
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_NONE);
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_NONE);
	/* a success in between starts the count again */
	ck_assert_int_eq(host_passed(hs, 1, 2), HOST_EV_NONE);
	ck_assert_int_eq(hs->v[1].fails, 0);
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_NONE);
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_NONE);
	ck_assert(host_usable(hs, 1));
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_DOWN);
	ck_assert(!host_usable(hs, 1));
	ck_assert(host_needs_probe(hs, 1));
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_NONE); /* already down */
	/* passes must be consecutive too */
	ck_assert_int_eq(host_passed(hs, 1, 2), HOST_EV_NONE);
	ck_assert_int_eq(host_failed(hs, 1, 3), HOST_EV_NONE);
	ck_assert_int_eq(host_passed(hs, 1, 2), HOST_EV_NONE);
	ck_assert_int_eq(host_health_name(hs->v[1].health)[0], 'd');
	ck_assert_int_eq(host_passed(hs, 1, 2), HOST_EV_UP);
	ck_assert(host_usable(hs, 1));
	ck_assert(!host_needs_probe(hs, 1));
	ck_assert_str_eq(host_health_name(hs->v[1].health), "up");
	host_set_free(hs);
}
END_TEST

START_TEST(test_all_down_still_tries)
{
	struct host_set *hs = three(LB_ROUND_ROBIN, TSA_ANY);
	for (size_t i = 0; i < 3; i++)
		host_failed(hs, i, 1);
	ck_assert(!host_set_has_usable(hs, -1));
	/* every host in turn: a connection that works is a check that passes */
	pick_seq(hs, NULL, (size_t[]){0, 1, 2, 0}, 4);
	host_set_free(hs);
}
END_TEST

START_TEST(test_avoid_after_failure)
{
	struct host_set *hs = three(LB_DISABLE, TSA_ANY);
	hs->avoid = 0;
	ck_assert_uint_eq(host_pick(hs, NULL), 1);
	ck_assert_uint_eq(host_pick(hs, NULL), 0); /* a hint for one pick only */
	/* the only host: the hint cannot be honoured */
	struct host_set *one = host_set_new("x", NULL, 5432, LB_DISABLE, TSA_ANY);
	one->avoid = 0;
	ck_assert_uint_eq(host_pick(one, NULL), 0);
	host_set_free(one);
	host_set_free(hs);
}
END_TEST

static const struct {
	enum tsa_mode mode;
	int hot_standby, read_only;
	int want;
} tsa_cases[] = {
    {TSA_ANY, -1, -1, 1},
    {TSA_ANY, 1, 1, 1},
    {TSA_READ_WRITE, 0, 0, 1},
    {TSA_READ_WRITE, 1, 0, 0},
    {TSA_READ_WRITE, 0, 1, 0},
    {TSA_READ_WRITE, -1, -1, -1},
    {TSA_READ_WRITE, -1, 1, 0},
    {TSA_READ_ONLY, 0, 0, 0},
    {TSA_READ_ONLY, 1, 0, 1},
    {TSA_READ_ONLY, 0, 1, 1},
    {TSA_READ_ONLY, -1, 0, -1},
    {TSA_PRIMARY, 0, 1, 1}, /* a read-only primary is still a primary */
    {TSA_PRIMARY, 1, 1, 0},
    {TSA_PRIMARY, -1, 0, -1},
    {TSA_STANDBY, 1, 1, 1},
    {TSA_STANDBY, 0, 1, 0},
    {TSA_PREFER_STANDBY, 1, 1, 1},
    {TSA_PREFER_STANDBY, 0, 0, 0},
};

START_TEST(test_tsa_suits)
{
	ck_assert_int_eq(
	    tsa_suits(tsa_cases[_i].mode, tsa_cases[_i].hot_standby, tsa_cases[_i].read_only),
	    tsa_cases[_i].want);
}
END_TEST

START_TEST(test_read_write_follows_promotion)
{
	/* a primary (0) and a standby (1) */
	struct host_set *hs = host_set_new("p,s", NULL, 5432, LB_ROUND_ROBIN, TSA_READ_WRITE);
	ck_assert_uint_eq(host_pick(hs, NULL), 0);
	ck_assert_int_eq(host_role_seen(hs, 0, 0, 0), TSA_ACCEPT);
	ck_assert_uint_eq(host_pick(hs, NULL), 1);
	/* the standby is closed and another host tried */
	ck_assert_int_eq(host_role_seen(hs, 1, 1, 1), TSA_RETRY);
	ck_assert(hs->v[1].mismatch);
	ck_assert(host_needs_probe(hs, 1));
	pick_seq(hs, NULL, (size_t[]){0, 0, 0}, 3);
	/* the primary goes away: nothing suits, the standby is the host to look at */
	host_failed(hs, 0, 1);
	ck_assert_uint_eq(host_pick(hs, NULL), 1);
	ck_assert_int_eq(host_role_seen(hs, 1, 1, 1), TSA_REFUSE);
	/* promoted: writes go there */
	ck_assert_uint_eq(host_pick(hs, NULL), 1);
	ck_assert_int_eq(host_role_seen(hs, 1, 0, 0), TSA_ACCEPT);
	ck_assert(!hs->v[1].mismatch);
	ck_assert(host_usable(hs, 1));
	pick_seq(hs, NULL, (size_t[]){1, 1}, 2);
	host_set_free(hs);
}
END_TEST

START_TEST(test_prefer_standby)
{
	struct host_set *hs = host_set_new("p,s", NULL, 5432, LB_DISABLE, TSA_PREFER_STANDBY);
	/* the primary is first in the list, but a standby may be there */
	ck_assert_uint_eq(host_pick(hs, NULL), 0);
	ck_assert_int_eq(host_role_seen(hs, 0, 0, 0), TSA_RETRY);
	ck_assert_uint_eq(host_pick(hs, NULL), 1);
	ck_assert_int_eq(host_role_seen(hs, 1, 1, 1), TSA_ACCEPT);
	pick_seq(hs, NULL, (size_t[]){1, 1}, 2);
	/* the standby is down: the primary is taken */
	host_failed(hs, 1, 1);
	ck_assert_uint_eq(host_pick(hs, NULL), 0);
	ck_assert_int_eq(host_role_seen(hs, 0, 0, 0), TSA_ACCEPT);
	host_set_free(hs);
}
END_TEST

START_TEST(test_standby_none_suits)
{
	struct host_set *hs = host_set_new("p", NULL, 5432, LB_ROUND_ROBIN, TSA_STANDBY);
	ck_assert_int_eq(host_role_seen(hs, 0, 0, 0), TSA_REFUSE);
	/* a server before PostgreSQL 14 reports neither: not enough to say yes */
	ck_assert_int_eq(host_role_seen(hs, 0, -1, -1), TSA_REFUSE);
	host_set_free(hs);
}
END_TEST

static Suite *hosts_suite(void)
{
	Suite *s = suite_create("hosts");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_parse_lists);
	tcase_add_test(tc, test_same_and_carry);
	tcase_add_test(tc, test_round_robin);
	tcase_add_test(tc, test_disable_stays_on_first);
	tcase_add_test(tc, test_least_busy);
	tcase_add_test(tc, test_health_thresholds);
	tcase_add_test(tc, test_all_down_still_tries);
	tcase_add_test(tc, test_avoid_after_failure);
	tcase_add_loop_test(tc, test_tsa_suits, 0, sizeof(tsa_cases) / sizeof(tsa_cases[0]));
	tcase_add_test(tc, test_read_write_follows_promotion);
	tcase_add_test(tc, test_prefer_standby);
	tcase_add_test(tc, test_standby_none_suits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hosts_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
