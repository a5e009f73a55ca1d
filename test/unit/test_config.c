/*
 * test_config: unit tests for src/config.c. Each test writes its ini files into a
 * fresh temporary directory, loads them, and checks the resulting struct config or
 * the exact "file:line:" of the error. Warnings are collected so tests can assert on
 * them too.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "pool.h"
#include "proto.h"

/* ---- fixture: a temporary directory, collected warnings ---- */

static char tmpdir[64];
static char old_cwd[PATH_MAX];
#define PBUF 512 /* test paths: tmpdir is short */
static char err[1024];

#define MAX_WARN 32
static char warnings[MAX_WARN][1024];
static int n_warnings;

static void collect_warning(const char *msg)
{
	if (n_warnings < MAX_WARN)
		snprintf(warnings[n_warnings++], sizeof(warnings[0]), "%s", msg);
}

/* Warnings other than the auth_file one that most minimal test files trigger. */
static int other_warnings(void)
{
	int n = 0;
	for (int i = 0; i < n_warnings; i++)
		if (!strstr(warnings[i], "auth_file is not set"))
			n++;
	return n;
}

static const char *find_warning(const char *needle)
{
	for (int i = 0; i < n_warnings; i++)
		if (strstr(warnings[i], needle))
			return warnings[i];
	return NULL;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-test-config-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	ck_assert_ptr_nonnull(getcwd(old_cwd, sizeof(old_cwd)));
	n_warnings = 0;
	err[0] = '\0';
}

static void teardown(void)
{
	ck_assert_int_eq(chdir(old_cwd), 0);
	nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes a file of the given name in tmpdir; returns its path (static per slot). */
static const char *write_named(const char *name, const char *text)
{
	static char paths[16][PBUF];
	static int slot;
	char *path = paths[slot++ % 16];
	snprintf(path, PBUF, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fwrite(text, 1, strlen(text), f), strlen(text));
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

/* Writes text to a new mkstemp file in tmpdir; returns its path. */
static const char *write_tmp(const char *text)
{
	static char paths[8][PBUF];
	static int slot;
	char *path = paths[slot++ % 8];
	snprintf(path, PBUF, "%s/cfg-XXXXXX.ini", tmpdir);
	int fd = mkstemps(path, 4);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(close(fd), 0);
	return path;
}

static struct config *load_ok(const char *text)
{
	struct config *cfg = config_load(write_tmp(text), err, sizeof(err), collect_warning);
	ck_assert_msg(cfg != NULL, "load failed: %s", err);
	return cfg;
}

/* Loads text expecting failure; the error must start with "<file>:<line>: ". */
static void load_fails_at(const char *text, int line, const char *needle)
{
	const char *path = write_tmp(text);
	char prefix[PBUF + 32];
	struct config *cfg = config_load(path, err, sizeof(err), collect_warning);
	ck_assert_msg(cfg == NULL, "loaded but should fail: %s", text);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' lacks prefix '%s'",
	              err, prefix);
	ck_assert_msg(strstr(err, needle), "error '%s' lacks '%s'", err, needle);
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
	struct config *cfg = config_new_defaults();
	ck_assert_str_eq(cfg->listen_addr, "");
	ck_assert_int_eq(cfg->listen_port, 6432);
	ck_assert_str_eq(cfg->unix_socket_dir, "/tmp");
	ck_assert_int_eq(cfg->unix_socket_mode, 0777);
	ck_assert_int_eq(cfg->listen_backlog, 128);
	ck_assert(!cfg->so_reuseport);
	ck_assert_int_eq(cfg->auth_type, AUTH_MD5);
	ck_assert_str_eq(cfg->auth_file, "");
	ck_assert_int_eq(cfg->pool_mode, POOL_SESSION);
	ck_assert_int_eq(cfg->default_pool_size, 20);
	ck_assert_int_eq(cfg->max_client_conn, 100);
	ck_assert_uint_eq(cfg->reserve_pool_timeout, 5 * USEC_PER_SEC);
	ck_assert_str_eq(cfg->server_reset_query, "DISCARD ALL");
	ck_assert_str_eq(cfg->server_check_query, "");
	ck_assert_uint_eq(cfg->server_check_delay, 30 * USEC_PER_SEC);
	ck_assert(!cfg->server_round_robin);
	ck_assert(!cfg->server_fast_close);
	ck_assert_int_eq(cfg->server_connect_concurrency, 1);
	ck_assert_int_eq(cfg->pkt_buf, 4096);
	ck_assert_uint_eq(cfg->server_connect_timeout, 15 * USEC_PER_SEC);
	ck_assert_uint_eq(cfg->server_login_retry, 15 * USEC_PER_SEC);
	ck_assert_uint_eq(cfg->server_idle_timeout, 600 * USEC_PER_SEC);
	ck_assert_uint_eq(cfg->server_lifetime, 3600 * USEC_PER_SEC);
	ck_assert_uint_eq(cfg->query_timeout, 0);
	ck_assert_uint_eq(cfg->query_wait_timeout, 120 * USEC_PER_SEC);
	ck_assert_uint_eq(cfg->client_login_timeout, 60 * USEC_PER_SEC);
	ck_assert(cfg->tcp_keepalive);
	ck_assert_str_eq(cfg->syslog_ident, "sluice");
	ck_assert_str_eq(cfg->syslog_facility, "daemon");
	ck_assert(cfg->log_connections && cfg->log_disconnections && cfg->log_pooler_errors);
	ck_assert_uint_eq(cfg->stats_period, 60 * USEC_PER_SEC);
	ck_assert_int_eq(cfg->n_dbs, 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_empty_file_gives_defaults)
{
	struct config *cfg = load_ok("");
	ck_assert_int_eq(cfg->listen_port, 6432);
	ck_assert_int_eq(cfg->n_files, 1);
	config_free(cfg);
}
END_TEST

/* ---- a full valid file ---- */

START_TEST(test_pgbouncer_section_all_types)
{
	struct config *cfg = load_ok("; comment\n"
	                             "# another\n"
	                             "[pgbouncer]\n"
	                             "listen_addr = 127.0.0.1, ::1\n"
	                             "listen_port = 7432\n"
	                             "unix_socket_mode = 0700\n"
	                             "so_reuseport = yes\n"
	                             "auth_type = scram-sha-256\n"
	                             "auth_file = /etc/sluice/userlist.txt\n"
	                             "pool_mode = transaction\n"
	                             "default_pool_size = 7\n"
	                             "reserve_pool_timeout = 0.5\n"
	                             "server_lifetime = 2min\n"
	                             "query_wait_timeout = 250ms\n"
	                             "tcp_keepalive = off\n"
	                             "server_check_query = <empty>\n"
	                             "server_round_robin = 1\n"
	                             "server_fast_close = on\n"
	                             "server_connect_concurrency = 4\n"
	                             "admin_users = admin, root\n");
	ck_assert_str_eq(cfg->listen_addr, "127.0.0.1, ::1");
	ck_assert_int_eq(cfg->listen_port, 7432);
	ck_assert_int_eq(cfg->unix_socket_mode, 0700);
	ck_assert(cfg->so_reuseport);
	ck_assert_int_eq(cfg->auth_type, AUTH_SCRAM);
	ck_assert_str_eq(cfg->auth_file, "/etc/sluice/userlist.txt");
	ck_assert_int_eq(cfg->pool_mode, POOL_TRANSACTION);
	ck_assert_int_eq(cfg->default_pool_size, 7);
	ck_assert_uint_eq(cfg->reserve_pool_timeout, 500000);
	ck_assert_uint_eq(cfg->server_lifetime, 120 * USEC_PER_SEC);
	ck_assert_uint_eq(cfg->query_wait_timeout, 250000);
	ck_assert(!cfg->tcp_keepalive);
	ck_assert_str_eq(cfg->server_check_query, "");
	ck_assert(cfg->server_round_robin);
	ck_assert(cfg->server_fast_close);
	ck_assert_int_eq(cfg->server_connect_concurrency, 4);
	ck_assert(config_list_contains(cfg->admin_users, "root"));
	ck_assert_int_eq(n_warnings, 0);
	ck_assert_str_eq(cfg->files[0] + strlen(cfg->files[0]) - 4, ".ini");
	config_free(cfg);
}
END_TEST

START_TEST(test_sluice_section_and_case)
{
	struct config *cfg = load_ok("[SLUICE]\nLISTEN_PORT = 7000\nPool_Mode = Statement\n");
	ck_assert_int_eq(cfg->listen_port, 7000);
	ck_assert_int_eq(cfg->pool_mode, POOL_STATEMENT);
	config_free(cfg);
}
END_TEST

START_TEST(test_later_value_wins)
{
	struct config *cfg =
	    load_ok("[sluice]\nlisten_port = 7000\n[pgbouncer]\nlisten_port = 7001\n");
	ck_assert_int_eq(cfg->listen_port, 7001);
	config_free(cfg);
}
END_TEST

/* ---- per-type parsing, table driven ---- */

static const struct {
	const char *text;
	bool ok, value;
} bool_cases[] = {
    {"1", true, true},    {"0", true, false},       {"yes", true, true},  {"no", true, false},
    {"on", true, true},   {"off", true, false},     {"true", true, true}, {"false", true, false},
    {"TRUE", true, true}, {"Off", true, false},     {"2", false, false},  {"y", false, false},
    {"", false, false},   {"enable", false, false},
};

START_TEST(test_bool_values)
{
	char text[128];
	snprintf(text, sizeof(text), "[sluice]\n\nso_reuseport = %s\n", bool_cases[_i].text);
	if (bool_cases[_i].ok) {
		struct config *cfg = load_ok(text);
		ck_assert_int_eq(cfg->so_reuseport, bool_cases[_i].value);
		config_free(cfg);
	} else {
		load_fails_at(text, 3, "invalid value for so_reuseport: not a boolean");
	}
}
END_TEST

static const struct {
	const char *text;
	bool ok;
	usec_t usec;
} time_cases[] = {
    {"0", true, 0},
    {"5", true, 5000000},
    {"0.5", true, 500000},
    {"1.25", true, 1250000},
    {".5", true, 500000},
    {"0.000001", true, 1},
    {"0.0000001", true, 0},
    {"10us", true, 10},
    {"250ms", true, 250000},
    {"3s", true, 3000000},
    {"3 s", true, 3000000},
    {"2min", true, 120000000},
    {"1.5h", true, 5400000000ULL},
    {"1d", true, 86400000000ULL},
    {"abc", false, 0},
    {"1x", false, 0},
    {"-1", false, 0},
    {"1e3", false, 0},
    {"", false, 0},
    {".", false, 0},
    {"5 m", false, 0},
    {"99999999999999999999", false, 0},
    {"999999999999d", false, 0},
};

START_TEST(test_time_values)
{
	char text[128];
	snprintf(text, sizeof(text), "[sluice]\nquery_timeout = %s\n", time_cases[_i].text);
	if (time_cases[_i].ok) {
		struct config *cfg = load_ok(text);
		ck_assert_uint_eq(cfg->query_timeout, time_cases[_i].usec);
		config_free(cfg);
	} else {
		load_fails_at(text, 2, "invalid value for query_timeout");
	}
}
END_TEST

static const struct {
	const char *line;
	const char *needle;
} bad_values[] = {
    {"listen_port = abc", "invalid value for listen_port: not an integer ('abc')"},
    {"listen_port = 12abc", "not an integer"},
    {"listen_port = ", "not an integer"},
    {"listen_port = 0", "must be between 1 and 65535"},
    {"listen_port = 65536", "must be between 1 and 65535"},
    {"listen_port = 99999999999999999999999", "out of range"},
    {"listen_port = 6432 ; a comment", "not an integer"},
    {"default_pool_size = 0", "must be at least 1"},
    {"max_client_conn = -5", "must be at least 1"},
    {"server_connect_concurrency = 0", "must be at least 1"},
    {"server_round_robin = maybe", "not a boolean"},
    {"pkt_buf = 512", "must be between 1024 and"},
    {"unix_socket_mode = 0778", "not an octal number"},
    {"unix_socket_mode = 017777", "must be between 0 and 07777"},
    {"pool_mode = foo", "expected session, transaction or statement"},
    {"auth_type = bogus", "expected any, trust, plain, md5"},
    {"auth_type = cert", "cert is not supported"},
    {"auth_type = pam", "pam is not supported"},
    {"auth_type = peer", "peer is not supported"},
    {"stats_period = 0", "must be at least 1 s"},
    {"verbose = 11", "must be between 0 and 10"},
    {"client_tls_sslmode = require", "not supported, sluice does not support TLS"},
    {"server_tls_sslmode = verify-full", "not supported"},
    {"disable_pqexec = 1", "not supported"},
};

START_TEST(test_bad_values)
{
	char text[256];
	snprintf(text, sizeof(text), "; leading comment\n[pgbouncer]\n%s\n", bad_values[_i].line);
	load_fails_at(text, 3, bad_values[_i].needle);
}
END_TEST

START_TEST(test_octal_and_auth_types)
{
	static const char *auth[] = {"any", "trust", "plain", "md5", "scram-sha-256", "hba"};
	static const enum auth_type want[] = {AUTH_ANY, AUTH_TRUST, AUTH_PLAIN,
	                                      AUTH_MD5, AUTH_SCRAM, AUTH_HBA};
	char text[128];
	for (size_t i = 0; i < sizeof(auth) / sizeof(auth[0]); i++) {
		snprintf(text, sizeof(text), "[sluice]\nauth_type=%s\nunix_socket_mode=%s\n",
		         auth[i], i % 2 ? "755" : "0755");
		struct config *cfg = load_ok(text);
		ck_assert_int_eq(cfg->auth_type, want[i]);
		ck_assert_str_eq(auth_type_name(cfg->auth_type), auth[i]);
		ck_assert_int_eq(cfg->unix_socket_mode, 0755);
		config_free(cfg);
	}
	ck_assert_ptr_nonnull(find_warning("auth_type = hba is not supported"));
}
END_TEST

/* ---- [databases] and [users] ---- */

START_TEST(test_databases)
{
	struct config *cfg =
	    load_ok("[databases]\n"
	            "foodb =\n"
	            "bardb = host=localhost dbname=bazdb\n"
	            "forcedb = host=10.0.0.1,10.0.0.2 port=6000 user=baz password='p w''d' "
	            "client_encoding=UNICODE datestyle=ISO connect_query='SELECT 1 ; SELECT 2'\n"
	            "sized = pool_size=50 reserve_pool=10 min_pool_size=2 max_db_connections=80 "
	            "pool_mode=transaction timezone=UTC application_name=app auth_user=au\n"
	            "\"Foo Bar\" = dbname='x'   host = h\n"
	            "\"a\"\"b\" = password=''\n"
	            "* = host=fallback\n");
	ck_assert_int_eq(cfg->n_dbs, 7);
	const struct db_entry *db = config_find_db(cfg, "foodb");
	ck_assert_ptr_nonnull(db);
	ck_assert_ptr_null(db->host);
	ck_assert_int_eq(db->port, 5432);
	ck_assert_ptr_null(db->dbname);
	ck_assert_int_eq(db->pool_size, -1);
	ck_assert_int_eq(db->pool_mode, POOL_MODE_UNSET);
	ck_assert_int_eq(db->line, 2);

	db = config_find_db(cfg, "bardb");
	ck_assert_str_eq(db->host, "localhost");
	ck_assert_str_eq(db->dbname, "bazdb");

	db = config_find_db(cfg, "forcedb");
	ck_assert_str_eq(db->host, "10.0.0.1,10.0.0.2");
	ck_assert_int_eq(db->port, 6000);
	ck_assert_str_eq(db->user, "baz");
	ck_assert_str_eq(db->password, "p w'd");
	ck_assert_str_eq(db->client_encoding, "UNICODE");
	ck_assert_str_eq(db->datestyle, "ISO");
	ck_assert_str_eq(db->connect_query, "SELECT 1 ; SELECT 2");

	db = config_find_db(cfg, "sized");
	ck_assert_int_eq(db->pool_size, 50);
	ck_assert_int_eq(db->reserve_pool_size, 10);
	ck_assert_int_eq(db->min_pool_size, 2);
	ck_assert_int_eq(db->max_db_connections, 80);
	ck_assert_int_eq(db->pool_mode, POOL_TRANSACTION);
	ck_assert_str_eq(db->timezone, "UTC");
	ck_assert_str_eq(db->application_name, "app");
	ck_assert_str_eq(db->auth_user, "au");

	db = config_find_db(cfg, "Foo Bar");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->dbname, "x");
	ck_assert_str_eq(db->host, "h");
	db = config_find_db(cfg, "a\"b");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->password, "");

	ck_assert_ptr_nonnull(config_find_db(cfg, "*"));
	ck_assert_ptr_null(config_find_db(cfg, "FOODB")); /* names are case-sensitive */
	ck_assert_int_eq(other_warnings(), 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_db_duplicate_and_reserved)
{
	struct config *cfg = load_ok("[databases]\n"
	                             "a = host=one\n"
	                             "pgbouncer = host=x\n"
	                             "a = host=two\n");
	ck_assert_int_eq(cfg->n_dbs, 1);
	ck_assert_str_eq(config_find_db(cfg, "a")->host, "two");
	ck_assert_int_eq(config_find_db(cfg, "a")->line, 4);
	ck_assert_ptr_null(config_find_db(cfg, "pgbouncer"));
	const char *w = find_warning("database 'a' is defined again");
	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(strstr(w, ":4: "));
	ck_assert_ptr_nonnull(strstr(w, ":2);"));
	ck_assert_ptr_nonnull(find_warning(":3: database name 'pgbouncer' is reserved"));
	config_free(cfg);
}
END_TEST

START_TEST(test_db_host_lists)
{
	struct config *cfg = load_ok(
	    "[databases]\n"
	    "one = host=h\n"
	    "two = host=a,b port=6000 load_balance_hosts=least-busy\n"
	    "three = host='a, b ,c' port='6001, 6002,6003' target_session_attrs=read-write\n"
	    "four = host=/tmp,/var/run LOAD_BALANCE_HOSTS=Disable "
	    "target_session_attrs=PREFER-STANDBY\n"
	    "five = target_session_attrs=primary\n"
	    "six = target_session_attrs=read-only load_balance_hosts=round-robin\n"
	    "seven = target_session_attrs=standby port=7000 target_session_attrs=any\n");
	const struct db_entry *db = config_find_db(cfg, "one");
	ck_assert_int_eq(db->port, 5432);
	ck_assert_ptr_null(db->ports);
	ck_assert_int_eq(db->load_balance_hosts, LB_ROUND_ROBIN);
	ck_assert_int_eq(db->target_session_attrs, TSA_ANY);
	db = config_find_db(cfg, "two");
	ck_assert_str_eq(db->host, "a,b");
	ck_assert_int_eq(db->port, 6000);
	ck_assert_str_eq(db->ports, "6000");
	ck_assert_int_eq(db->load_balance_hosts, LB_LEAST_BUSY);
	db = config_find_db(cfg, "three");
	ck_assert_str_eq(db->host, "a, b ,c");
	ck_assert_int_eq(db->port, 6001);
	ck_assert_str_eq(db->ports, "6001, 6002,6003");
	ck_assert_int_eq(db->target_session_attrs, TSA_READ_WRITE);
	db = config_find_db(cfg, "four");
	ck_assert_int_eq(db->load_balance_hosts, LB_DISABLE);
	ck_assert_int_eq(db->target_session_attrs, TSA_PREFER_STANDBY);
	ck_assert_int_eq(config_find_db(cfg, "five")->target_session_attrs, TSA_PRIMARY);
	ck_assert_int_eq(config_find_db(cfg, "six")->target_session_attrs, TSA_READ_ONLY);
	ck_assert_int_eq(config_find_db(cfg, "seven")->target_session_attrs, TSA_ANY);
	ck_assert_int_eq(config_find_db(cfg, "seven")->port, 7000);
	ck_assert_int_eq(other_warnings(), 0);
	ck_assert_str_eq(lb_mode_name(LB_LEAST_BUSY), "least-busy");
	ck_assert_str_eq(tsa_mode_name(TSA_PREFER_STANDBY), "prefer-standby");
	config_free(cfg);
}
END_TEST

START_TEST(test_health_settings)
{
	struct config *cfg = load_ok("[sluice]\nhealth_check_fails = 1\nhealth_check_passes = 4\n"
	                             "health_check_period = 250ms\n");
	ck_assert_int_eq(cfg->health_check_fails, 1);
	ck_assert_int_eq(cfg->health_check_passes, 4);
	ck_assert_int_eq(cfg->health_check_period, 250000);
	config_free(cfg);
	cfg = config_new_defaults();
	ck_assert_int_eq(cfg->health_check_fails, 3);
	ck_assert_int_eq(cfg->health_check_passes, 2);
	ck_assert_int_eq(cfg->health_check_period, 5 * USEC_PER_SEC);
	config_free(cfg);
	load_fails_at("[sluice]\nhealth_check_fails = 0\n", 2,
	              "invalid value for health_check_fails: must be at least 1");
	load_fails_at("[sluice]\n\nhealth_check_passes = -1\n", 3, "must be at least 1");
}
END_TEST

/* protocol= and listen_protocol name a module that proto_by_name() finds; mysql is
 * reserved and refused at load with the line. */
START_TEST(test_protocols)
{
	struct config *cfg = load_ok("[databases]\na = host=h\nb = protocol=PostgreSQL\n");
	ck_assert_str_eq(config_find_db(cfg, "a")->protocol, "postgresql");
	ck_assert_str_eq(config_find_db(cfg, "b")->protocol, "postgresql");
	ck_assert_str_eq(cfg->listen_protocol, "postgresql");
	const struct proto_ops *pg = proto_by_name(config_find_db(cfg, "a")->protocol);
	ck_assert_ptr_nonnull(pg);
	ck_assert_int_eq(pg->default_port, 5432);
	ck_assert_ptr_eq(proto_by_name(cfg->listen_protocol), pg);
	ck_assert_ptr_null(proto_by_name("mysql"));
	ck_assert_ptr_null(proto_by_name(NULL));
	config_free(cfg);
	load_fails_at("[sluice]\nlisten_port = 7000\nlisten_protocol = mysql\n", 3,
	              "invalid value for listen_protocol: protocol mysql is not supported yet");
	load_fails_at("[sluice]\nlisten_protocol = http\n", 2, "expected postgresql");
}
END_TEST

START_TEST(test_db_unknown_and_ignored_params)
{
	struct config *cfg = load_ok("[databases]\na = host=h frobnicate=1 server_lifetime=10\n");
	ck_assert_str_eq(config_find_db(cfg, "a")->host, "h");
	ck_assert_ptr_nonnull(find_warning(":2: database 'a': unknown parameter 'frobnicate'"));
	ck_assert_ptr_nonnull(
	    find_warning(":2: database 'a': parameter 'server_lifetime' is not supported"));
	config_free(cfg);
}
END_TEST

static const struct {
	const char *value;
	const char *needle;
} bad_db[] = {
    {"host='unterminated",
     "database 'd': malformed value: unterminated quote in the value of 'host'"},
    {"host=x port", "malformed value: expected key=value at offset 7"},
    {"host=x =y", "expected key=value at offset 7"},
    {"host=", "missing value for 'host'"},
    {"host=x port=", "missing value for 'port'"},
    {"host='a'b", "text right after the closing quote of 'host'"},
    {"port=abc", "database 'd': invalid value for port: not an integer ('abc')"},
    {"port=70000", "must be between 1 and 65535"},
    {"host=a,b port=5432,x", "database 'd': invalid value for port: not an integer ('x')"},
    {"host=a,b port=5432,0", "invalid value for port: must be between 1 and 65535 ('0')"},
    {"host=a,b port=5432,,5433", "empty element in the port list"},
    {"host=a,b port=5432,", "empty element in the port list"},
    {"host=a,b,c port=5432,5433", "2 ports given for 3 hosts"},
    {"port=5432,5433", "2 ports given for 1 hosts"},
    {"host=a,,b", "database 'd': empty element in the host list"},
    {"host='a, ,b'", "empty element in the host list"},
    {"host=a,", "empty element in the host list"},
    {"host=,a", "empty element in the host list"},
    {"load_balance_hosts=random",
     "invalid value for load_balance_hosts: expected round-robin, least-busy or disable"},
    {"target_session_attrs=rw", "invalid value for target_session_attrs: expected any, "
                                "read-write, read-only, primary, standby or prefer-standby"},
    {"pool_mode=foo", "invalid value for pool_mode: expected session"},
    {"pool_size=-1", "invalid value for pool_size: must be at least 0"},
    {"protocol=mysql",
     "database 'd': invalid value for protocol: protocol mysql is not supported yet"},
    {"protocol=pg", "invalid value for protocol: expected postgresql ('pg')"},
};

START_TEST(test_bad_db_entries)
{
	char text[256];
	snprintf(text, sizeof(text), "[databases]\nok = host=h\nd = %s\n", bad_db[_i].value);
	load_fails_at(text, 3, bad_db[_i].needle);
}
END_TEST

START_TEST(test_password_never_echoed)
{
	load_fails_at("[databases]\nd = password='hunter2 host=x\n", 2, "unterminated quote");
	ck_assert_ptr_null(strstr(err, "hunter2"));
	load_fails_at("[databases]\nd = password=hunter2 oops\n", 2, "expected key=value");
	ck_assert_ptr_null(strstr(err, "hunter2"));
	ck_assert_ptr_null(strstr(err, "oops"));
}
END_TEST

START_TEST(test_bad_db_names)
{
	load_fails_at("[databases]\n\"abc = host=x\n", 2, "unterminated quoted name");
	load_fails_at("[databases]\n\"a\"b = host=x\n", 2, "text after the closing quote");
	load_fails_at("[databases]\n = host=x\n", 2, "missing name");
}
END_TEST

START_TEST(test_users)
{
	struct config *cfg =
	    load_ok("[users]\n"
	            "alice = pool_mode=transaction pool_size=5 max_user_connections=10\n"
	            "bob =\n"
	            "carol = reserve_pool_size=5 max_user_client_connections=3 bogus=1\n");
	ck_assert_int_eq(cfg->n_users, 3);
	const struct user_entry *u = config_find_user(cfg, "alice");
	ck_assert_int_eq(u->pool_mode, POOL_TRANSACTION);
	ck_assert_int_eq(u->pool_size, 5);
	ck_assert_int_eq(u->max_user_connections, 10);
	u = config_find_user(cfg, "bob");
	ck_assert_int_eq(u->pool_mode, POOL_MODE_UNSET);
	ck_assert_int_eq(u->pool_size, -1);
	ck_assert_int_eq(u->max_user_connections, -1);
	ck_assert_int_eq(u->reserve_pool_size, -1);
	ck_assert_uint_eq(u->query_timeout, 0);
	ck_assert_uint_eq(u->idle_transaction_timeout, 0);
	ck_assert_uint_eq(u->transaction_timeout, 0);
	ck_assert_uint_eq(u->client_idle_timeout, 0);
	ck_assert_ptr_null(config_find_user(cfg, "dave"));
	ck_assert_int_eq(config_find_user(cfg, "carol")->reserve_pool_size, 5);
	ck_assert_ptr_null(find_warning("reserve_pool_size"));
	ck_assert_ptr_nonnull(find_warning(
	    ":4: user 'carol': parameter 'max_user_client_connections' is not supported"));
	ck_assert_ptr_nonnull(find_warning(":4: user 'carol': unknown parameter 'bogus'"));
	config_free(cfg);

	load_fails_at("[users]\nalice = pool_size=many\n", 2,
	              "user 'alice': invalid value for pool_size: not an integer");
}
END_TEST

START_TEST(test_user_timeouts)
{
	struct config *cfg =
	    load_ok("[pgbouncer]\nquery_timeout = 30\n"
	            "[users]\n"
	            "alice = query_timeout=1.5 idle_transaction_timeout=250ms "
	            "transaction_timeout='2 min' client_idle_timeout=1h\n"
	            "bob = QUERY_TIMEOUT=7 client_idle_timeout=0\n"
	            "carol = transaction_timeout=500us idle_transaction_timeout=1d\n");
	const struct user_entry *u = config_find_user(cfg, "alice");
	ck_assert_uint_eq(u->query_timeout, 1500 * USEC_PER_MSEC);
	ck_assert_uint_eq(u->idle_transaction_timeout, 250 * USEC_PER_MSEC);
	ck_assert_uint_eq(u->transaction_timeout, 120 * USEC_PER_SEC);
	ck_assert_uint_eq(u->client_idle_timeout, 3600 * USEC_PER_SEC);
	u = config_find_user(cfg, "bob");
	ck_assert_uint_eq(u->query_timeout, 7 * USEC_PER_SEC); /* keys are case-insensitive */
	ck_assert_uint_eq(u->client_idle_timeout, 0);
	ck_assert_uint_eq(u->idle_transaction_timeout, 0);
	u = config_find_user(cfg, "carol");
	ck_assert_uint_eq(u->transaction_timeout, 500);
	ck_assert_uint_eq(u->idle_transaction_timeout, 86400 * USEC_PER_SEC);
	/* the entry does not touch the global value */
	ck_assert_uint_eq(cfg->query_timeout, 30 * USEC_PER_SEC);
	ck_assert_int_eq(other_warnings(), 0);
	config_free(cfg);
}
END_TEST

static const struct {
	const char *value;
	const char *needle;
} bad_user[] = {
    {"query_timeout=abc",
     "user 'u': invalid value for query_timeout: not a time (seconds, or a number with us, "
     "ms, s, min, h or d) ('abc')"},
    {"idle_transaction_timeout=-1", "invalid value for idle_transaction_timeout: not a time"},
    {"transaction_timeout=5 parsecs", "malformed value: expected key=value"},
    {"transaction_timeout=5parsecs", "invalid value for transaction_timeout: not a time"},
    {"client_idle_timeout=", "missing value for 'client_idle_timeout'"},
    {"client_idle_timeout=99999999999999999999", "invalid value for client_idle_timeout"},
    {"query_timeout=1e3", "invalid value for query_timeout: not a time"},
};

START_TEST(test_bad_user_timeouts)
{
	char text[256];
	snprintf(text, sizeof(text), "[users]\nok = query_timeout=1\nu = %s\n", bad_user[_i].value);
	load_fails_at(text, 3, bad_user[_i].needle);
}
END_TEST

/*
 * The pool accessors over a hand-built core: a [users] value above 0 replaces the
 * global one, and RELOAD (pool_apply_config with a new config) and SET reach users
 * that already exist.
 */
START_TEST(test_pool_timeout_accessors)
{
	struct config *cfg = load_ok("[pgbouncer]\n"
	                             "query_timeout = 10\n"
	                             "client_idle_timeout = 60\n"
	                             "[users]\n"
	                             "alice = query_timeout=2 idle_transaction_timeout=3 "
	                             "transaction_timeout=4 client_idle_timeout=5\n"
	                             "bob = query_timeout=0\n"
	                             "forced = client_idle_timeout=7\n");
	struct core core = {.cfg = cfg};
	list_init(&core.databases);
	list_init(&core.users);
	list_init(&core.pools);
	list_init(&core.login_clients);
	list_init(&core.admin_clients); /* for pool_free_all */
	struct user *alice = user_lookup(&core, "alice"), *bob = user_lookup(&core, "bob");
	struct user *dave = user_lookup(&core, "dave"), *forced = user_lookup(&core, "forced");
	struct pool pa = {.core = &core, .user = alice}, pb = {.core = &core, .user = bob};
	struct pool pd = {.core = &core, .user = dave}, pf = {.core = &core, .user = forced};

	ck_assert_uint_eq(pool_query_timeout(&pa), 2 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_idle_transaction_timeout(&pa), 3 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_transaction_timeout(&pa), 4 * USEC_PER_SEC);
	/* 0 in the entry, or no entry: the global value */
	ck_assert_uint_eq(pool_query_timeout(&pb), 10 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_idle_transaction_timeout(&pb), 0);
	ck_assert_uint_eq(pool_query_timeout(&pd), 10 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_transaction_timeout(&pd), 0);

	/* client_idle_timeout follows the client's login user, also in a forced-user pool */
	struct conn ca = {.core = &core, .pool = &pa, .user_name = "alice"};
	struct conn cd = {.core = &core, .pool = &pd, .user_name = "dave"};
	struct conn cf_alice = {.core = &core, .pool = &pf, .user_name = "alice"};
	struct conn cf_dave = {.core = &core, .pool = &pf, .user_name = "dave"};
	struct conn nopool = {.core = &core, .user_name = "alice"};
	ck_assert_uint_eq(pool_client_idle_timeout(&ca), 5 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&cd), 60 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&cf_alice), 5 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&cf_dave), 60 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&nopool), 5 * USEC_PER_SEC);
	/* while the forced user's own value serves servers' timeouts of that pool */
	ck_assert_uint_eq(pool_query_timeout(&pf), 10 * USEC_PER_SEC);

	/* SET of a global reaches users without their own value at once */
	ck_assert(config_set(cfg, "query_timeout", "20", err, sizeof(err)));
	ck_assert_uint_eq(pool_query_timeout(&pb), 20 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_query_timeout(&pa), 2 * USEC_PER_SEC);

	/* RELOAD: changed, removed and added entries reach the live users */
	struct config *cfg2 = load_ok("[pgbouncer]\n"
	                              "idle_transaction_timeout = 30\n"
	                              "[users]\n"
	                              "alice = query_timeout=1min\n"
	                              "dave = transaction_timeout=0.25 client_idle_timeout=9\n");
	core.cfg = cfg2;
	pool_apply_config(&core);
	ck_assert_uint_eq(pool_query_timeout(&pa), 60 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_idle_transaction_timeout(&pa), 30 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_transaction_timeout(&pa), 0);
	ck_assert_uint_eq(pool_client_idle_timeout(&ca), 0);
	ck_assert_uint_eq(pool_transaction_timeout(&pd), 250 * USEC_PER_MSEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&cd), 9 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&cf_dave), 9 * USEC_PER_SEC);
	ck_assert_uint_eq(pool_client_idle_timeout(&cf_alice), 0);

	pool_free_all(&core);
	config_free(cfg);
	config_free(cfg2);
}
END_TEST

/* ---- syntax, sections, unknown keys ---- */

START_TEST(test_syntax_errors)
{
	load_fails_at("[sluice]\nlisten_port = 1\njunk line\n", 3,
	              "syntax error: expected [section] or key = value");
	load_fails_at("[sluice]\n[databases\na = host=x\n", 2, "unterminated section header");
	load_fails_at("[sluice]\n= 5\n", 2, "missing setting name");
	load_fails_at("[sluice]\n%includ foo\n", 2, "unknown directive '%includ'");
	load_fails_at("[sluice]\n%include\n", 2, "%include needs a file name");
	/* The first error wins, whichever kind it is. */
	load_fails_at("[sluice]\nnot a pair\nlisten_port = x\n", 2, "syntax error");
	load_fails_at("[sluice]\nlisten_port = x\nnot a pair\n", 2, "invalid value");
}
END_TEST

START_TEST(test_unknown_key_warns_and_loads)
{
	struct config *cfg = load_ok("[sluice]\nlisten_port = 7000\nfrobnicate = 1\n"
	                             "client_tls_key_file = /x.key\nclient_tls_sslmode = prefer\n");
	ck_assert_int_eq(cfg->listen_port, 7000);
	const char *w = find_warning("unknown setting 'frobnicate'");
	ck_assert_ptr_nonnull(w);
	char want[PBUF + 64];
	snprintf(want, sizeof(want), "%s:3: unknown setting 'frobnicate'", cfg->files[0]);
	ck_assert_str_eq(w, want);
	ck_assert_ptr_nonnull(find_warning(":4: setting 'client_tls_key_file' is not supported"));
	ck_assert_ptr_nonnull(find_warning(":5: setting 'client_tls_sslmode' is not supported"));
	config_free(cfg);
}
END_TEST

START_TEST(test_unknown_sections)
{
	struct config *cfg = load_ok("key_before = 1\n"
	                             "[peers]\n1 = host=/tmp/p1\n"
	                             "[other]\nlisten_port = 1\n"
	                             "[sluice]\nlisten_port = 7000\n");
	ck_assert_int_eq(cfg->listen_port, 7000);
	ck_assert_ptr_nonnull(find_warning(":1: 'key_before' is outside any section"));
	ck_assert_ptr_nonnull(find_warning(":2: section [peers] is not supported"));
	ck_assert_ptr_nonnull(find_warning(":4: unknown section [other], ignored"));
	ck_assert_int_eq(other_warnings(), 3);
	config_free(cfg);
}
END_TEST

START_TEST(test_inih_quirks)
{
	/* Indented lines are not continuations, ';' and '#' later in a line are data,
	 * CRLF line ends and a BOM are accepted. */
	struct config *cfg = load_ok("\xEF\xBB\xBF[sluice]\r\n"
	                             "  listen_port = 7000\r\n"
	                             "\tdefault_pool_size = 5\r\n"
	                             "    server_reset_query = DISCARD ALL; -- # x\r\n"
	                             "[databases]\r\n"
	                             "  a = host=h\r\n"
	                             "  b = host=i\r\n");
	ck_assert_int_eq(cfg->listen_port, 7000);
	ck_assert_int_eq(cfg->default_pool_size, 5);
	ck_assert_str_eq(cfg->server_reset_query, "DISCARD ALL; -- # x");
	ck_assert_int_eq(cfg->n_dbs, 2);
	ck_assert_str_eq(config_find_db(cfg, "b")->host, "i");
	config_free(cfg);
}
END_TEST

START_TEST(test_nul_byte)
{
	const char text[] = "[sluice]\nlisten_port = 7\0000\n";
	const char *path = write_named("nul.ini", "");
	FILE *f = fopen(path, "w");
	ck_assert_int_eq(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	fclose(f);
	ck_assert_ptr_null(config_load(path, err, sizeof(err), NULL));
	ck_assert_ptr_nonnull(strstr(err, "nul.ini:2: NUL byte"));
}
END_TEST

/* ---- long lines ---- */

START_TEST(test_long_line)
{
	char name[481], text[700];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(text, sizeof(text), "[databases]\nlong = host=h dbname=%s port=5433\n", name);
	ck_assert_int_gt(strlen(text), 500);
	struct config *cfg = load_ok(text);
	const struct db_entry *db = config_find_db(cfg, "long");
	ck_assert_str_eq(db->dbname, name);
	ck_assert_int_eq(db->port, 5433);
	config_free(cfg);
}
END_TEST

START_TEST(test_too_long_line)
{
	size_t n = 40000;
	char *text = malloc(n + 64);
	int off = snprintf(text, n + 64, "[databases]\nx = dbname=");
	memset(text + off, 'y', n);
	strcpy(text + off + n, "\nz = host=z\n");
	load_fails_at(text, 2, "line too long");
	free(text);
}
END_TEST

/* ---- %include ---- */

START_TEST(test_include_nested_and_lines)
{
	const char *c = write_named("c.ini", "[databases]\ncdb = host=c\n");
	char b_text[PBUF + 64], a_text[PBUF + 64];
	snprintf(b_text, sizeof(b_text), "[sluice]\ndefault_pool_size = 3\n%%include %s\n", c);
	const char *b = write_named("b.ini", b_text);
	snprintf(a_text, sizeof(a_text),
	         "[sluice]\nlisten_port = 7000\n  %%include %s  \nafter = host=a\n"
	         "[sluice]\nmax_client_conn = 9\n",
	         b);
	struct config *cfg = load_ok(a_text);
	ck_assert_int_eq(cfg->listen_port, 7000);
	ck_assert_int_eq(cfg->default_pool_size, 3);
	ck_assert_int_eq(cfg->max_client_conn, 9);
	const struct db_entry *db = config_find_db(cfg, "cdb");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->file, c);
	ck_assert_int_eq(db->line, 2);
	/* back in the including file, the section is still the one c.ini left open */
	db = config_find_db(cfg, "after");
	ck_assert_ptr_nonnull(db);
	ck_assert_str_eq(db->file, cfg->files[0]);
	ck_assert_int_eq(db->line, 4);
	ck_assert_int_eq(cfg->n_files, 3);
	ck_assert_int_eq(other_warnings(), 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_include_error_location)
{
	const char *inc = write_named("inc.ini", "[sluice]\n\nlisten_port = nope\n");
	char text[PBUF + 64], want[PBUF + 64];
	snprintf(text, sizeof(text), "[sluice]\n%%include %s\n", inc);
	ck_assert_ptr_null(config_load(write_tmp(text), err, sizeof(err), NULL));
	snprintf(want, sizeof(want), "%s:3: invalid value for listen_port", inc);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got '%s'", err);

	/* a syntax error inside an include is placed by the line map */
	inc = write_named("inc2.ini", "[sluice]\nlisten_port = 7000\nbroken\n");
	snprintf(text, sizeof(text), "; x\n%%include %s\n", inc);
	ck_assert_ptr_null(config_load(write_tmp(text), err, sizeof(err), NULL));
	snprintf(want, sizeof(want), "%s:3: syntax error", inc);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got '%s'", err);
}
END_TEST

START_TEST(test_include_relative_to_cwd)
{
	char sub[PBUF];
	snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	write_named("sub/inner.ini", "[sluice]\nlisten_port = 7100\n");
	/* relative to the working directory (PgBouncer's rule), not to the including file */
	write_named("sub/outer.ini", "%include sub/inner.ini\n");
	ck_assert_int_eq(chdir(tmpdir), 0);
	struct config *cfg = config_load("sub/outer.ini", err, sizeof(err), NULL);
	ck_assert_msg(cfg != NULL, "%s", err);
	ck_assert_int_eq(cfg->listen_port, 7100);
	config_free(cfg);

	write_named("sub/outer2.ini", "%include inner.ini\n");
	ck_assert_ptr_null(config_load("sub/outer2.ini", err, sizeof(err), NULL));
	ck_assert_str_eq(err,
	                 "sub/outer2.ini:1: cannot open 'inner.ini': No such file or directory");
}
END_TEST

START_TEST(test_include_missing)
{
	load_fails_at("[sluice]\n\n%include /nonexistent/sluice-x.ini\n", 3,
	              "cannot open '/nonexistent/sluice-x.ini': No such file or directory");
}
END_TEST

START_TEST(test_include_loop)
{
	char a_path[PBUF], text[PBUF + 32];
	snprintf(a_path, sizeof(a_path), "%s/a.ini", tmpdir);
	snprintf(text, sizeof(text), "[sluice]\n%%include %s\n", a_path);
	const char *b = write_named("b.ini", text);
	snprintf(text, sizeof(text), "; a\n%%include %s\n", b);
	write_named("a.ini", text);
	ck_assert_ptr_null(config_load(a_path, err, sizeof(err), NULL));
	char want[PBUF + 64];
	snprintf(want, sizeof(want), "%s:2: %%include loop: '%s' is already being read", b, a_path);
	ck_assert_str_eq(err, want);

	/* including oneself */
	snprintf(text, sizeof(text), "%%include %s/self.ini\n", tmpdir);
	const char *self = write_named("self.ini", text);
	ck_assert_ptr_null(config_load(self, err, sizeof(err), NULL));
	ck_assert_ptr_nonnull(strstr(err, "include loop"));
}
END_TEST

START_TEST(test_include_twice_is_fine)
{
	const char *inc = write_named("twice.ini", "[databases]\nx = host=h\n");
	char text[2 * PBUF + 64];
	snprintf(text, sizeof(text), "%%include %s\n%%include %s\n", inc, inc);
	struct config *cfg = load_ok(text);
	ck_assert_int_eq(cfg->n_dbs, 1);
	ck_assert_int_eq(cfg->n_files, 2);
	config_free(cfg);
}
END_TEST

START_TEST(test_include_with_bom)
{
	/* inih skips a BOM only at the start of the whole stream; each file may have one */
	const char *inc = write_named("bom.ini", "\xEF\xBB\xBF[sluice]\nlisten_port = 7200\n");
	char text[PBUF + 64];
	snprintf(text, sizeof(text), "[databases]\n%%include %s\n", inc);
	struct config *cfg = load_ok(text);
	ck_assert_int_eq(cfg->listen_port, 7200);
	ck_assert_int_eq(other_warnings(), 0);
	config_free(cfg);
}
END_TEST

START_TEST(test_include_depth_limit)
{
	char name[32], text[PBUF + 32];
	for (int i = 0; i < 12; i++) {
		snprintf(name, sizeof(name), "d%d.ini", i);
		snprintf(text, sizeof(text), "%%include %s/d%d.ini\n", tmpdir, i + 1);
		write_named(name, i == 11 ? "" : text);
	}
	snprintf(text, sizeof(text), "%s/d0.ini", tmpdir);
	ck_assert_ptr_null(config_load(text, err, sizeof(err), NULL));
	ck_assert_ptr_nonnull(strstr(err, "d9.ini:1: %include nested too deeply"));
}
END_TEST

START_TEST(test_missing_main_file)
{
	char path[PBUF];
	snprintf(path, sizeof(path), "%s/none.ini", tmpdir);
	ck_assert_ptr_null(config_load(path, err, sizeof(err), NULL));
	char want[PBUF + 64];
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	ck_assert_str_eq(err, want);
}
END_TEST

/* ---- validation ---- */

START_TEST(test_nothing_to_listen_on)
{
	const char *path = write_tmp("[sluice]\nlisten_addr =\nunix_socket_dir =\n");
	ck_assert_ptr_null(config_load(path, err, sizeof(err), NULL));
	ck_assert_ptr_nonnull(strstr(err, "nothing to listen on"));
	ck_assert_int_eq(strncmp(err, path, strlen(path)), 0);
}
END_TEST

START_TEST(test_auth_file_warning)
{
	struct config *cfg = load_ok("[sluice]\nauth_type = md5\n");
	ck_assert_ptr_nonnull(find_warning("auth_file is not set"));
	config_free(cfg);
}
END_TEST

/* ---- SET and SHOW CONFIG ---- */

START_TEST(test_config_set)
{
	struct config *cfg = config_new_defaults();
	ck_assert(config_set(cfg, "default_pool_size", "50", err, sizeof(err)));
	ck_assert_int_eq(cfg->default_pool_size, 50);
	ck_assert(config_set(cfg, "QUERY_TIMEOUT", "1.5", err, sizeof(err)));
	ck_assert_uint_eq(cfg->query_timeout, 1500000);
	ck_assert(config_set(cfg, "server_reset_query", "DEALLOCATE ALL", err, sizeof(err)));
	ck_assert_str_eq(cfg->server_reset_query, "DEALLOCATE ALL");
	ck_assert(config_set(cfg, "pool_mode", "transaction", err, sizeof(err)));
	ck_assert_int_eq(cfg->pool_mode, POOL_TRANSACTION);

	ck_assert(!config_set(cfg, "default_pool_size", "abc", err, sizeof(err)));
	ck_assert_str_eq(err, "invalid value for default_pool_size: not an integer ('abc')");
	ck_assert_int_eq(cfg->default_pool_size, 50);
	ck_assert(!config_set(cfg, "default_pool_size", "0", err, sizeof(err)));
	ck_assert_int_eq(cfg->default_pool_size, 50);
	ck_assert(!config_set(cfg, "pool_mode", "bogus", err, sizeof(err)));
	ck_assert_int_eq(cfg->pool_mode, POOL_TRANSACTION);

	ck_assert(!config_set(cfg, "listen_port", "7000", err, sizeof(err)));
	ck_assert_str_eq(err, "setting 'listen_port' needs a restart to change");
	ck_assert_int_eq(cfg->listen_port, 6432);
	ck_assert(!config_set(cfg, "nope", "1", err, sizeof(err)));
	ck_assert_str_eq(err, "unknown setting 'nope'");
	ck_assert(!config_set(cfg, "auth_query", "x", err, sizeof(err)));
	ck_assert_str_eq(err, "setting 'auth_query' is not supported by sluice");
	config_free(cfg);
}
END_TEST

START_TEST(test_setting_get_lists_all)
{
	struct config *cfg = config_new_defaults();
	struct config_setting_view v;
	size_t n = config_setting_count();
	ck_assert_int_ge(n, 50);
	for (size_t i = 0; i < n; i++) {
		ck_assert(config_setting_get(cfg, i, &v));
		/* with defaults, every value equals its default */
		ck_assert_msg(strcmp(v.value, v.def) == 0, "%s: '%s' vs '%s'", v.key, v.value,
		              v.def);
		for (size_t j = 0; j < i; j++) {
			struct config_setting_view w;
			ck_assert(config_setting_get(cfg, j, &w));
			ck_assert_str_ne(w.key, v.key);
		}
		/* each default, written back through SET, is accepted or needs a restart */
		bool ok = config_set(cfg, v.key, v.def, err, sizeof(err));
		ck_assert_msg(ok == v.changeable, "%s: %s", v.key, err);
	}
	ck_assert(!config_setting_get(cfg, n, &v));
	config_free(cfg);
}
END_TEST

static const char *show(const struct config *cfg, const char *key, bool *changeable)
{
	static struct config_setting_view v;
	for (size_t i = 0; config_setting_get(cfg, i, &v); i++) {
		if (strcmp(v.key, key) == 0) {
			if (changeable)
				*changeable = v.changeable;
			return v.value;
		}
	}
	return NULL;
}

START_TEST(test_setting_get_formats)
{
	struct config *cfg =
	    load_ok("[sluice]\nunix_socket_mode = 700\nreserve_pool_timeout = 1500ms\n"
	            "server_lifetime = 0.000001\nauth_type = trust\nsyslog = on\n"
	            "pool_mode = statement\n");
	bool changeable;
	ck_assert_str_eq(show(cfg, "unix_socket_mode", &changeable), "0700");
	ck_assert(!changeable);
	ck_assert_str_eq(show(cfg, "reserve_pool_timeout", &changeable), "1.5");
	ck_assert(changeable);
	ck_assert_str_eq(show(cfg, "server_lifetime", NULL), "0.000001");
	ck_assert_str_eq(show(cfg, "server_idle_timeout", NULL), "600");
	ck_assert_str_eq(show(cfg, "auth_type", NULL), "trust");
	ck_assert_str_eq(show(cfg, "syslog", NULL), "1");
	ck_assert_str_eq(show(cfg, "tcp_keepalive", NULL), "1");
	ck_assert_str_eq(show(cfg, "pool_mode", NULL), "statement");
	ck_assert_str_eq(show(cfg, "listen_port", NULL), "6432");
	ck_assert_str_eq(show(cfg, "server_reset_query", NULL), "DISCARD ALL");

	struct config_setting_view v;
	for (size_t i = 0; config_setting_get(cfg, i, &v); i++) {
		if (strcmp(v.key, "unix_socket_mode") == 0)
			ck_assert_str_eq(v.def, "0777");
		if (strcmp(v.key, "reserve_pool_timeout") == 0)
			ck_assert_str_eq(v.def, "5");
	}
	config_free(cfg);
}
END_TEST

START_TEST(test_carry_restart_settings)
{
	struct config *old = config_new_defaults();
	struct config *new = load_ok("[sluice]\nlisten_port = 7000\nunix_socket_dir = /run/x\n"
	                             "default_pool_size = 9\n");
	n_warnings = 0;
	config_carry_restart_settings(new, old, collect_warning);
	ck_assert_int_eq(new->listen_port, 6432);
	ck_assert_str_eq(new->unix_socket_dir, "/tmp");
	ck_assert_int_eq(new->default_pool_size, 9);
	ck_assert_int_eq(n_warnings, 2);
	ck_assert_ptr_nonnull(find_warning("listen_port changed from '6432' to '7000' but needs a "
	                                   "restart; keeping '6432'"));
	config_free(old);
	config_free(new);
}
END_TEST

START_TEST(test_list_contains)
{
	ck_assert(config_list_contains("a, b ,c", "a"));
	ck_assert(config_list_contains("a, b ,c", "b"));
	ck_assert(config_list_contains("a, b ,c", "c"));
	ck_assert(!config_list_contains("a, b ,c", "ab"));
	ck_assert(!config_list_contains("alice", "ali"));
	ck_assert(!config_list_contains("", "a"));
	ck_assert(!config_list_contains(NULL, "a"));
	ck_assert(!config_list_contains("a,,b", ""));
	ck_assert(!config_list_contains("Admin", "admin"));
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(pool_mode_name(POOL_SESSION), "session");
	ck_assert_str_eq(pool_mode_name(POOL_TRANSACTION), "transaction");
	ck_assert_str_eq(pool_mode_name(POOL_STATEMENT), "statement");
	ck_assert_str_eq(pool_mode_name(POOL_MODE_UNSET), "unset");
	ck_assert_str_eq(auth_type_name(AUTH_SCRAM), "scram-sha-256");
	ck_assert_str_eq(auth_type_name(AUTH_ANY), "any");
}
END_TEST

/* ---- the shipped example and doc stay in step with the table ---- */

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

START_TEST(test_example_and_doc_cover_table)
{
	/* make check-unit runs from the top of the tree; elsewhere there is nothing to check */
	char *ini = slurp("etc/sluice.ini"), *doc = slurp("doc/config.md");
	if (!ini || !doc) {
		free(ini);
		free(doc);
		return;
	}
	struct config *cfg = config_load("etc/sluice.ini", err, sizeof(err), collect_warning);
	ck_assert_msg(cfg != NULL, "%s", err);
	ck_assert_msg(n_warnings == 0, "example warns: %s", warnings[0]);
	struct config_setting_view v;
	char want[600];
	for (size_t i = 0; config_setting_get(cfg, i, &v); i++) {
		snprintf(want, sizeof(want), "\n;%s =%s%s\n", v.key, v.def[0] ? " " : "", v.def);
		bool commented = strstr(ini, want) != NULL;
		snprintf(want, sizeof(want), "\n%s = ", v.key);
		ck_assert_msg(commented || strstr(ini, want), "etc/sluice.ini lacks ;%s = %s",
		              v.key, v.def);
		snprintf(want, sizeof(want), "| `%s` | %s | %s |", v.key,
		         v.def[0] ? v.def : "(empty)", v.changeable ? "yes" : "restart");
		ck_assert_msg(strstr(doc, want), "doc/config.md lacks a row starting '%s'", want);
	}
	config_free(cfg);
	free(ini);
	free(doc);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file_gives_defaults);
	tcase_add_test(tc, test_pgbouncer_section_all_types);
	tcase_add_test(tc, test_sluice_section_and_case);
	tcase_add_test(tc, test_later_value_wins);
	tcase_add_loop_test(tc, test_bool_values, 0, sizeof(bool_cases) / sizeof(bool_cases[0]));
	tcase_add_loop_test(tc, test_time_values, 0, sizeof(time_cases) / sizeof(time_cases[0]));
	tcase_add_loop_test(tc, test_bad_values, 0, sizeof(bad_values) / sizeof(bad_values[0]));
	tcase_add_test(tc, test_octal_and_auth_types);
	tcase_add_test(tc, test_databases);
	tcase_add_test(tc, test_db_duplicate_and_reserved);
	tcase_add_test(tc, test_db_unknown_and_ignored_params);
	tcase_add_test(tc, test_db_host_lists);
	tcase_add_test(tc, test_health_settings);
	tcase_add_test(tc, test_protocols);
	tcase_add_loop_test(tc, test_bad_db_entries, 0, sizeof(bad_db) / sizeof(bad_db[0]));
	tcase_add_test(tc, test_password_never_echoed);
	tcase_add_test(tc, test_bad_db_names);
	tcase_add_test(tc, test_users);
	tcase_add_test(tc, test_user_timeouts);
	tcase_add_loop_test(tc, test_bad_user_timeouts, 0, sizeof(bad_user) / sizeof(bad_user[0]));
	tcase_add_test(tc, test_pool_timeout_accessors);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_unknown_key_warns_and_loads);
	tcase_add_test(tc, test_unknown_sections);
	tcase_add_test(tc, test_inih_quirks);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_too_long_line);
	tcase_add_test(tc, test_include_nested_and_lines);
	tcase_add_test(tc, test_include_error_location);
	tcase_add_test(tc, test_include_relative_to_cwd);
	tcase_add_test(tc, test_include_missing);
	tcase_add_test(tc, test_include_loop);
	tcase_add_test(tc, test_include_twice_is_fine);
	tcase_add_test(tc, test_include_with_bom);
	tcase_add_test(tc, test_include_depth_limit);
	tcase_add_test(tc, test_missing_main_file);
	tcase_add_test(tc, test_nothing_to_listen_on);
	tcase_add_test(tc, test_auth_file_warning);
	suite_add_tcase(s, tc);

	TCase *tc2 = tcase_create("runtime");
	tcase_add_checked_fixture(tc2, setup, teardown);
	tcase_add_test(tc2, test_config_set);
	tcase_add_test(tc2, test_setting_get_lists_all);
	tcase_add_test(tc2, test_setting_get_formats);
	tcase_add_test(tc2, test_carry_restart_settings);
	tcase_add_test(tc2, test_list_contains);
	tcase_add_test(tc2, test_names);
	tcase_add_test(tc2, test_example_and_doc_cover_table);
	suite_add_tcase(s, tc2);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
