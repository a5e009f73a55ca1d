/*
 * Unit tests for dns: numeric addresses and unix sockets never reach the resolver;
 * "localhost" is resolved by c-ares (its hosts-file lookup) and cached; an expired
 * answer is served while it is looked up again; a failure is cached for
 * dns_nxdomain_ttl and then asked again; the hooks run from the loop, never inside
 * dns_lookup(). The failure cases use a resolv.conf whose
 * only nameserver is 127.0.0.1 (port 53 closed, or anything answering there does not
 * know ".invalid"), so no test needs the network. Ttls are made to pass by setting
 * them to a millisecond and sleeping past it; nothing asserts how long anything took.
 */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "dns.h"
#include "loop.h"
#include "netutil.h"

#define MS        USEC_PER_MSEC
#define MAX_ITERS 3000 /* loop_run_once calls while waiting for an answer */

static struct core core;
static int n_resolved;
static char last_resolved[256];
static char resolv_path[64];

static void on_resolved(void *arg, const char *host)
{
	(void)arg;
	n_resolved++;
	snprintf(last_resolved, sizeof(last_resolved), "%s", host);
}

static struct dns *setup(const char *resolv_text)
{
	memset(&core, 0, sizeof(core));
	n_resolved = 0;
	last_resolved[0] = '\0';
	core.loop = loop_new();
	ck_assert_ptr_nonnull(core.loop);
	core.cfg = config_new_defaults();
	if (resolv_text) {
		snprintf(resolv_path, sizeof(resolv_path), "/tmp/sluice-test-resolv-XXXXXX");
		int fd = mkstemp(resolv_path);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, resolv_text, strlen(resolv_text)),
		                 (ssize_t)strlen(resolv_text));
		close(fd);
		free(core.cfg->resolv_conf);
		core.cfg->resolv_conf = strdup(resolv_path);
	}
	struct dns_hooks hooks = {.resolved = on_resolved};
	char err[256];
	struct dns *dns = dns_new(&core, &hooks, err, sizeof(err));
	ck_assert_msg(dns != NULL, "dns_new: %s", err);
	return dns;
}

static void teardown(struct dns *dns)
{
	dns_free(dns);
	loop_free(core.loop);
	if (core.cfg->resolv_conf[0])
		unlink(core.cfg->resolv_conf);
	config_free(core.cfg);
}

static void run_until_resolved(int target)
{
	for (int i = 0; i < MAX_ITERS && n_resolved < target; i++)
		loop_run_once(core.loop, 10 * MS);
	ck_assert_int_ge(n_resolved, target);
}

static uint64_t lookups(struct dns *dns)
{
	struct dns_counts c;
	dns_get_counts(dns, &c);
	return c.lookups;
}

static void sleep_past(usec_t usec)
{
	usleep((useconds_t)(usec + 2 * MS));
	loop_update_time(core.loop);
}

START_TEST(test_numeric_and_unix_skip_resolver)
{
	struct dns *dns = setup(NULL);
	struct sockaddr_storage ss;
	char err[256];
	ck_assert_int_eq(
	    dns_resolve_server(dns, "127.0.0.1", 5433, ".s.PGSQL.", "/tmp", &ss, err, sizeof(err)),
	    DNS_OK);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 5433);
	ck_assert_int_eq(
	    dns_resolve_server(dns, "::1", 6000, ".s.PGSQL.", "/tmp", &ss, err, sizeof(err)),
	    DNS_OK);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_int_eq(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 6000);
	ck_assert_int_eq(
	    dns_resolve_server(dns, "/run/pg", 5432, ".s.PGSQL.", "/tmp", &ss, err, sizeof(err)),
	    DNS_OK);
	ck_assert_int_eq(ss.ss_family, AF_UNIX);
	ck_assert_str_eq(((struct sockaddr_un *)&ss)->sun_path, "/run/pg/.s.PGSQL.5432");
	ck_assert_int_eq(
	    dns_resolve_server(dns, NULL, 5432, ".s.PGSQL.", "/sock", &ss, err, sizeof(err)),
	    DNS_OK);
	ck_assert_str_eq(((struct sockaddr_un *)&ss)->sun_path, "/sock/.s.PGSQL.5432");
	struct dns_counts c;
	dns_get_counts(dns, &c);
	ck_assert_int_eq(c.names, 0);
	ck_assert_int_eq(c.lookups, 0);
	teardown(dns);
}
END_TEST

START_TEST(test_localhost_cached)
{
	struct dns *dns = setup(NULL);
	struct sockaddr_storage ss;
	char err[256];
	core.cfg->dns_max_ttl = 3600 * USEC_PER_SEC;
	enum dns_result r =
	    dns_resolve_server(dns, "localhost", 5432, ".s.PGSQL.", "/tmp", &ss, err, sizeof(err));
	ck_assert_msg(r == DNS_OK || r == DNS_PENDING, "localhost: %s", err);
	/* the hook never runs inside dns_lookup, even when c-ares answered at once */
	ck_assert_int_eq(n_resolved, 0);
	run_until_resolved(1);
	ck_assert_str_eq(last_resolved, "localhost");
	r = dns_resolve_server(dns, "LOCALHOST", 5432, ".s.PGSQL.", "/tmp", &ss, err, sizeof(err));
	ck_assert_int_eq(r, DNS_OK);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 5432);
	char ip[64];
	net_ip_str(&ss, ip, sizeof(ip));
	ck_assert_msg(strcmp(ip, "127.0.0.1") == 0 || strcmp(ip, "::1") == 0, "got %s", ip);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(dns_lookup(dns, "localhost", &ss, err, sizeof(err)), DNS_OK);
	ck_assert_int_eq(lookups(dns), 1);
	struct dns_counts c;
	dns_get_counts(dns, &c);
	ck_assert_int_eq(c.names, 1);
	ck_assert_int_eq(c.zones, 0); /* no dot, no zone */
	teardown(dns);
}
END_TEST

START_TEST(test_expired_answer_served_while_refreshed)
{
	struct dns *dns = setup(NULL);
	struct sockaddr_storage ss;
	char err[256];
	core.cfg->dns_max_ttl = 1 * MS;
	(void)dns_lookup(dns, "localhost", &ss, err, sizeof(err));
	run_until_resolved(1);
	ck_assert_int_eq(lookups(dns), 1);
	sleep_past(core.cfg->dns_max_ttl);
	/* expired: still answered at once, from the last answer, and looked up again */
	ck_assert_int_eq(dns_lookup(dns, "localhost", &ss, err, sizeof(err)), DNS_OK);
	ck_assert_int_eq(lookups(dns), 2);
	run_until_resolved(2);
	teardown(dns);
}
END_TEST

static void host_info_cb(void *arg, const struct dns_host_info *h)
{
	*(struct dns_host_info *)arg = *h;
}

START_TEST(test_failure_cached_for_nxdomain_ttl)
{
	struct dns *dns = setup("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
	struct sockaddr_storage ss;
	char err[256];
	const char *name = "nonexistent.invalid";
	core.cfg->dns_nxdomain_ttl = 3600 * USEC_PER_SEC;
	enum dns_result r = dns_lookup(dns, name, &ss, err, sizeof(err));
	ck_assert_msg(r == DNS_PENDING || r == DNS_FAILED, "%s", err);
	if (r == DNS_PENDING) {
		struct dns_counts c;
		dns_get_counts(dns, &c);
		ck_assert_int_eq(c.pending, 1);
	}
	run_until_resolved(1);
	ck_assert_int_eq(dns_lookup(dns, name, &ss, err, sizeof(err)), DNS_FAILED);
	ck_assert_msg(strstr(err, "could not resolve host name") && strstr(err, name), "%s", err);
	ck_assert_int_eq(dns_lookup(dns, name, &ss, err, sizeof(err)), DNS_FAILED);
	ck_assert_int_eq(lookups(dns), 1);
	struct dns_host_info info;
	memset(&info, 0, sizeof(info));
	dns_walk_hosts(dns, host_info_cb, &info);
	ck_assert_str_eq(info.name, name);
	ck_assert_ptr_nonnull(info.error);
	ck_assert_int_eq(info.n_addrs, 0);
	ck_assert_int_gt(info.ttl, 0);
	/* once dns_nxdomain_ttl has passed the name is asked for again */
	core.cfg->dns_nxdomain_ttl = 1 * MS;
	sleep_past(core.cfg->dns_nxdomain_ttl);
	r = dns_lookup(dns, name, &ss, err, sizeof(err));
	ck_assert_int_ne(r, DNS_OK);
	ck_assert_int_eq(lookups(dns), 2);
	run_until_resolved(2);
	teardown(dns);
}
END_TEST

START_TEST(test_missing_resolv_conf)
{
	memset(&core, 0, sizeof(core));
	core.loop = loop_new();
	core.cfg = config_new_defaults();
	free(core.cfg->resolv_conf);
	core.cfg->resolv_conf = strdup("/nonexistent/resolv.conf");
	char err[256];
	struct dns *dns = dns_new(&core, NULL, err, sizeof(err));
	ck_assert_ptr_null(dns);
	ck_assert_msg(strstr(err, "resolv_conf") != NULL, "%s", err);
	loop_free(core.loop);
	config_free(core.cfg);
}
END_TEST

START_TEST(test_no_resolver)
{
	struct sockaddr_storage ss;
	char err[256];
	ck_assert_int_eq(dns_resolve_server(NULL, "db.example", 5432, ".s.PGSQL.", "/tmp", &ss, err,
	                                    sizeof(err)),
	                 DNS_FAILED);
	ck_assert_int_eq(
	    dns_resolve_server(NULL, "10.0.0.1", 5432, ".s.PGSQL.", "/tmp", &ss, err, sizeof(err)),
	    DNS_OK);
}
END_TEST

START_TEST(test_addr_helpers)
{
	struct sockaddr_storage a, b;
	char err[64], buf[64];
	ck_assert_int_eq(net_server_addr("10.1.2.3", 1, "", "", &a, err, sizeof(err)),
	                 NET_ADDR_DONE);
	ck_assert_int_eq(net_server_addr("10.1.2.3", 2, "", "", &b, err, sizeof(err)),
	                 NET_ADDR_DONE);
	ck_assert(net_same_ip(&a, &b)); /* ports differ */
	ck_assert_int_eq(net_server_addr("10.1.2.4", 1, "", "", &b, err, sizeof(err)),
	                 NET_ADDR_DONE);
	ck_assert(!net_same_ip(&a, &b));
	ck_assert_str_eq(net_ip_str(&a, buf, sizeof(buf)), "10.1.2.3");
	ck_assert_int_eq(net_server_addr("db.example", 1, "", "", &b, err, sizeof(err)),
	                 NET_ADDR_NAME);
	ck_assert_int_eq(net_addr_len(&a), sizeof(struct sockaddr_in));
}
END_TEST

static Suite *dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("dns");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_numeric_and_unix_skip_resolver);
	tcase_add_test(tc, test_localhost_cached);
	tcase_add_test(tc, test_expired_answer_served_while_refreshed);
	tcase_add_test(tc, test_failure_cached_for_nxdomain_ttl);
	tcase_add_test(tc, test_missing_resolv_conf);
	tcase_add_test(tc, test_no_resolver);
	tcase_add_test(tc, test_addr_helpers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dns_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
