/*
 * Unit tests for metrics: the HTTP request parser (table-driven: complete, incomplete
 * and malformed heads), metrics_listen address splitting, the responses to each kind
 * of request, the exposition text of a hand-built core (label escaping, every sample
 * under a declared family, counters, summaries, host health, maxwait), and the
 * listener in a real loop: a response of several megabytes written to a client with a
 * small receive buffer that reads slowly, and the connection cap.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "core.h"
#include "loop.h"
#include "metrics.h"
#include "pool.h"
#include "stats.h"

/* --- request parser --- */

static const struct parse_case {
	const char *in;
	enum metrics_parse want;
	const char *method, *path;
	int minor;
} parse_cases[] = {
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", METRICS_REQ_OK, "GET", "/metrics", 1},
    {"GET /metrics HTTP/1.0\r\n\r\n", METRICS_REQ_OK, "GET", "/metrics", 0},
    {"GET /health HTTP/1.1\nHost: x\n\n", METRICS_REQ_OK, "GET", "/health", 1},
    {"\r\nGET /health HTTP/1.1\r\n\r\n", METRICS_REQ_OK, "GET", "/health", 1},
    {"GET /metrics?name[]=x HTTP/1.1\r\n\r\n", METRICS_REQ_OK, "GET", "/metrics", 1},
    {"GET /metrics#frag HTTP/1.1\r\n\r\n", METRICS_REQ_OK, "GET", "/metrics", 1},
    {"GET http://h:9127/metrics?x HTTP/1.1\r\n\r\n", METRICS_REQ_OK, "GET", "/metrics", 1},
    {"GET HTTP://h HTTP/1.1\r\n\r\n", METRICS_REQ_OK, "GET", "/", 1},
    {"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", METRICS_REQ_OK, "POST", "/metrics",
     1},
    {"get /x HTTP/1.1\r\nA:\r\nB: \t v\r\n\r\n", METRICS_REQ_OK, "get", "/x", 1},
    /* incomplete */
    {"", METRICS_REQ_INCOMPLETE, NULL, NULL, 0},
    {"GET /met", METRICS_REQ_INCOMPLETE, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r", METRICS_REQ_INCOMPLETE, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\n", METRICS_REQ_INCOMPLETE, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n", METRICS_REQ_INCOMPLETE, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r", METRICS_REQ_INCOMPLETE, NULL, NULL, 0},
    /* malformed */
    {"garbage\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/2.0\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1 \r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET  /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET metrics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET * HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"G(T /metrics HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /a\rb HTTP/1.1\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nA: b\x01\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"GET /metrics HTTP/1.1\r\nA: b\rc\r\n\r\n", METRICS_REQ_BAD, NULL, NULL, 0},
    {"\x16\x03\x01\x02", METRICS_REQ_BAD, NULL, NULL, 0}, /* a TLS hello, not yet a line */
};

START_TEST(test_parse)
{
	const struct parse_case *pc = &parse_cases[_i];
	struct metrics_request req;
	enum metrics_parse r = metrics_parse_request(pc->in, strlen(pc->in), &req);
	ck_assert_msg(r == pc->want, "case %d (%s): got %d, want %d", _i, pc->in, r, pc->want);
	if (r != METRICS_REQ_OK)
		return;
	ck_assert_int_eq(req.method_len, strlen(pc->method));
	ck_assert(memcmp(req.method, pc->method, req.method_len) == 0);
	ck_assert_msg(req.path_len == strlen(pc->path) &&
	                  memcmp(req.path, pc->path, req.path_len) == 0,
	              "case %d: path %.*s", _i, (int)req.path_len, req.path);
	ck_assert_int_eq(req.minor_version, pc->minor);
	ck_assert_uint_le(req.head_len, strlen(pc->in));
	ck_assert(req.head_len >= 2 && pc->in[req.head_len - 1] == '\n');
}
END_TEST

START_TEST(test_parse_nul_byte)
{
	static const char in[] = "GET /metrics HTTP/1.1\r\nA: \0b\r\n\r\n";
	struct metrics_request req;
	ck_assert_int_eq(metrics_parse_request(in, sizeof(in) - 1, &req), METRICS_REQ_BAD);
}
END_TEST

START_TEST(test_parse_head_limit)
{
	char *buf = malloc(METRICS_HEAD_MAX + 16);
	struct metrics_request req;
	size_t n = (size_t)snprintf(buf, 64, "GET /metrics HTTP/1.1\r\nX: ");
	memset(buf + n, 'a', METRICS_HEAD_MAX + 16 - n);
	/* one byte short of the limit: still waiting; at the limit: rejected */
	ck_assert_int_eq(metrics_parse_request(buf, METRICS_HEAD_MAX - 1, &req),
	                 METRICS_REQ_INCOMPLETE);
	ck_assert_int_eq(metrics_parse_request(buf, METRICS_HEAD_MAX, &req), METRICS_REQ_BAD);
	/* a head that ends exactly at the limit is fine */
	memcpy(buf + METRICS_HEAD_MAX - 4, "\r\n\r\n", 4);
	ck_assert_int_eq(metrics_parse_request(buf, METRICS_HEAD_MAX, &req), METRICS_REQ_OK);
	ck_assert_uint_eq(req.head_len, METRICS_HEAD_MAX);
	/* an over-long request line */
	memset(buf, 'a', METRICS_HEAD_MAX);
	memcpy(buf, "GET /", 5);
	ck_assert_int_eq(metrics_parse_request(buf, METRICS_HEAD_MAX, &req), METRICS_REQ_BAD);
	free(buf);
}
END_TEST

/* --- metrics_listen --- */

static const struct split_case {
	const char *in;
	bool ok;
	const char *host, *port; /* host NULL: any address */
} split_cases[] = {
    {"127.0.0.1:9127", true, "127.0.0.1", "9127"},
    {"localhost:80", true, "localhost", "80"},
    {"[::1]:9127", true, "::1", "9127"},
    {"[fe80::1%eth0]:1", true, "fe80::1%eth0", "1"},
    {"*:9127", true, NULL, "9127"},
    {":9127", true, NULL, "9127"},
    {"0.0.0.0:65535", true, "0.0.0.0", "65535"},
    {"9127", false, NULL, NULL},
    {"127.0.0.1", false, NULL, NULL},
    {"127.0.0.1:", false, NULL, NULL},
    {"127.0.0.1:0", false, NULL, NULL},
    {"127.0.0.1:65536", false, NULL, NULL},
    {"127.0.0.1:123456", false, NULL, NULL},
    {"127.0.0.1:12a", false, NULL, NULL},
    {"127.0.0.1:-1", false, NULL, NULL},
    {"::1:9127", false, NULL, NULL},
    {"[::1]9127", false, NULL, NULL},
    {"[::1]", false, NULL, NULL},
    {"[]:9127", false, NULL, NULL},
    {"a b:9127", false, NULL, NULL},
    {"", false, NULL, NULL},
};

START_TEST(test_split_listen)
{
	const struct split_case *sc = &split_cases[_i];
	char *host = (char *)"unset", *port = (char *)"unset";
	bool ok = metrics_split_listen(sc->in, &host, &port);
	ck_assert_msg(ok == sc->ok, "case %s", sc->in);
	if (!ok) {
		ck_assert_ptr_null(host);
		ck_assert_ptr_null(port);
		return;
	}
	if (sc->host)
		ck_assert_str_eq(host, sc->host);
	else
		ck_assert_ptr_null(host);
	ck_assert_str_eq(port, sc->port);
	free(host);
	free(port);
}
END_TEST

/* --- a hand-built core --- */

struct fake {
	struct core core;
	struct config *cfg;
	struct conn waiter;
};

static struct database *fake_db(struct fake *f, const char *name, const char *host)
{
	struct database *db = xcalloc(1, sizeof(*db));
	db->name = xstrdup(name);
	db->host = host ? xstrdup(host) : NULL;
	db->port = 5432;
	list_add_tail(&f->core.databases, &db->node);
	return db;
}

static struct user *fake_user(struct fake *f, const char *name)
{
	struct user *u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	list_add_tail(&f->core.users, &u->node);
	return u;
}

static struct pool *fake_pool(struct fake *f, struct database *db, struct user *u)
{
	struct pool *p = xcalloc(1, sizeof(*p));
	p->core = &f->core;
	p->db = db;
	p->user = u;
	for (int i = 0; i < SV_STATE_COUNT; i++)
		list_init(&p->servers[i]);
	list_init(&p->waiting);
	list_init(&p->active);
	list_init(&p->idle);
	list_add_tail(&f->core.pools, &p->node);
	return p;
}

static void fake_init(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	list_init(&f->core.databases);
	list_init(&f->core.users);
	list_init(&f->core.pools);
	list_init(&f->core.login_clients);
	list_init(&f->core.listeners);
	f->cfg = config_new_defaults();
	f->core.cfg = f->cfg;
	f->core.started = 1700000000ULL * USEC_PER_SEC + 250000;
}

static void fake_free(struct fake *f)
{
	struct list *it;
	while ((it = list_pop_head(&f->core.pools)) != NULL) {
		struct pool *p = list_entry(it, struct pool, node);
		free(p->login_error_msg);
		free(p);
	}
	while ((it = list_pop_head(&f->core.databases)) != NULL) {
		struct database *db = list_entry(it, struct database, node);
		free(db->name);
		free(db->host);
		free(db);
	}
	while ((it = list_pop_head(&f->core.users)) != NULL) {
		struct user *u = list_entry(it, struct user, node);
		free(u->name);
		free(u);
	}
	config_free(f->cfg);
}

/* The two-pool core most rendering tests use. */
static void fake_standard(struct fake *f)
{
	fake_init(f);
	struct database *plain = fake_db(f, "appdb", "10.0.0.7");
	struct database *odd = fake_db(f, "we\"ird\\db\nx", "/var/run/postgresql");
	struct user *alice = fake_user(f, "alice");
	struct user *bad = fake_user(f, "b\xff"
	                                "ad");
	struct pool *p1 = fake_pool(f, plain, alice);
	struct pool *p2 = fake_pool(f, odd, bad);
	plain->paused = true;
	plain->n_servers = 3;
	odd->disabled = true;
	p1->n_active = 2;
	p1->n_idle = 1;
	p1->n_servers[SV_ACTIVE] = 2;
	p1->n_servers[SV_IDLE] = 1;
	p1->n_servers[SV_CONNECTING] = 1;
	p1->n_servers[SV_LOGIN] = 2;
	p1->stats.total.queries = 7;
	p1->stats.total.xacts = 5;
	p1->stats.total.query_time = 1500000; /* 1.5 s */
	p1->stats.total.bytes_received = 12345678901ULL;
	for (int i = 1; i <= 100; i++)
		hist_record(&p1->stats.last[STATS_QUERY], (uint64_t)i * 1000);
	/* a client waiting for 2.5 s */
	p1->n_waiting = 1;
	f->waiter.wait_start = now_usec() - 2500000;
	list_add_tail(&p1->waiting, &f->waiter.node);
	p2->login_error_msg = xstrdup("password authentication failed");
	f->core.n_clients = 4;
	/* appdb again, gone from the config on reload and not yet swept: left out */
	struct database *old = fake_db(f, "appdb", "10.0.0.6");
	old->stale = true;
	struct pool *p3 = fake_pool(f, old, alice);
	p3->stats.total.queries = 1000;
	p3->login_error_msg = xstrdup("old");
}

static char *render(struct fake *f)
{
	char *out = NULL;
	size_t len = 0;
	metrics_render(&f->core, &out, &len);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(strlen(out), len);
	return out;
}

static void assert_contains(const char *text, const char *needle)
{
	ck_assert_msg(strstr(text, needle) != NULL, "missing: %s", needle);
}

START_TEST(test_render_values)
{
	struct fake f;
	fake_standard(&f);
	char *t = render(&f);
	assert_contains(t, "\nsluice_up 1\n");
	assert_contains(t, "\nsluice_clients 4\n");
	assert_contains(t, "\nprocess_start_time_seconds 1700000000.250000\n");
	assert_contains(t, "\nsluice_database_paused{database=\"appdb\"} 1\n");
	assert_contains(t, "\nsluice_database_server_connections{database=\"appdb\"} 3\n");
	assert_contains(t, "\nsluice_database_disabled{database=\"we\\\"ird\\\\db\\nx\"} 1\n");
	assert_contains(t, "\nsluice_host_up{database=\"appdb\",host=\"10.0.0.7\"} 1\n");
	assert_contains(t, "\nsluice_host_up{database=\"we\\\"ird\\\\db\\nx\",host=\"unix\"} 0\n");
	assert_contains(t, "\nsluice_pool_cl_active{database=\"appdb\",user=\"alice\"} 3\n");
	assert_contains(t, "\nsluice_pool_cl_waiting{database=\"appdb\",user=\"alice\"} 1\n");
	assert_contains(t, "\nsluice_pool_sv_login{database=\"appdb\",user=\"alice\"} 3\n");
	assert_contains(t, "\nsluice_pool_queries_total{database=\"appdb\",user=\"alice\"} 7\n");
	assert_contains(t, "\nsluice_pool_query_time_seconds_total{database=\"appdb\","
	                   "user=\"alice\"} 1.500000\n");
	assert_contains(t, "\nsluice_pool_received_bytes_total{database=\"appdb\","
	                   "user=\"alice\"} 12345678901\n");
	/* invalid UTF-8 in a name becomes U+FFFD */
	assert_contains(t, "user=\"b\xef\xbf\xbd"
	                   "ad\"");
	/* maxwait: 2.5 s and a little */
	const char *mw = strstr(t, "\nsluice_pool_maxwait_seconds{database=\"appdb\"");
	ck_assert_ptr_nonnull(mw);
	double v = strtod(strchr(mw, '}') + 1, NULL);
	ck_assert_msg(v >= 2.5 && v < 60, "maxwait %f", v);
	/* summaries: quantiles of last, _sum and _count from the counters; NaN when empty */
	assert_contains(t, "\n# TYPE sluice_pool_query_duration_seconds summary\n");
	assert_contains(t, "\nsluice_pool_query_duration_seconds{database=\"appdb\",user=\"alice\","
	                   "quantile=\"0.99\"} ");
	assert_contains(t, "\nsluice_pool_query_duration_seconds_sum{database=\"appdb\","
	                   "user=\"alice\"} 1.500000\n");
	assert_contains(t, "\nsluice_pool_query_duration_seconds_count{database=\"appdb\","
	                   "user=\"alice\"} 7\n");
	assert_contains(t, "\nsluice_pool_wait_duration_seconds{database=\"appdb\",user=\"alice\","
	                   "quantile=\"0.5\"} NaN\n");
	const char *p50 = strstr(t, "\nsluice_pool_query_duration_seconds{database=\"appdb\","
	                            "user=\"alice\",quantile=\"0.5\"} ");
	ck_assert_ptr_nonnull(p50);
	v = strtod(strchr(p50, '}') + 1, NULL);
	ck_assert_msg(v > 0.045 && v < 0.055, "p50 %f", v);
	free(t);
	fake_free(&f);
}
END_TEST

/* Every sample belongs to the family declared (HELP then TYPE) just before it, no
 * family is declared twice, and the text ends with a newline. */
START_TEST(test_render_structure)
{
	struct fake f;
	fake_standard(&f);
	char *t = render(&f);
	char family[128] = "", type[16] = "";
	char *seen = xstrdup("\n");
	char *all_series = xstrdup("\n");
	int samples = 0;
	ck_assert(t[strlen(t) - 1] == '\n');
	for (char *line = t, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		ck_assert_ptr_nonnull(nl);
		*nl = '\0';
		if (strncmp(line, "# HELP ", 7) == 0) {
			char name[128];
			ck_assert_int_eq(sscanf(line + 7, "%127s", name), 1);
			char key[140];
			snprintf(key, sizeof(key), "\n%s\n", name);
			ck_assert_msg(!strstr(seen, key), "family %s declared twice", name);
			char *grown = xasprintf("%s%s\n", seen, name);
			free(seen);
			seen = grown;
			snprintf(family, sizeof(family), "%s", name);
			type[0] = '\0';
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[128];
			ck_assert_int_eq(sscanf(line + 7, "%127s %15s", name, type), 2);
			ck_assert_str_eq(name, family);
			continue;
		}
		ck_assert_msg(line[0] != '#', "stray comment %s", line);
		ck_assert_msg(type[0], "sample before TYPE: %s", line);
		size_t n = strcspn(line, "{ ");
		char name[128];
		snprintf(name, sizeof(name), "%.*s", (int)n, line);
		bool ok = strcmp(name, family) == 0;
		if (!ok && strcmp(type, "summary") == 0) {
			char s1[140], s2[140];
			snprintf(s1, sizeof(s1), "%s_sum", family);
			snprintf(s2, sizeof(s2), "%s_count", family);
			ok = strcmp(name, s1) == 0 || strcmp(name, s2) == 0;
		}
		ck_assert_msg(ok, "sample %s under family %s", line, family);
		/* no series twice */
		char *series = xasprintf("\n%.*s\n", (int)(strrchr(line, ' ') - line), line);
		ck_assert_msg(!strstr(all_series, series), "series twice: %s", line);
		char *grown_series = xasprintf("%s%s", all_series, series + 1);
		free(all_series);
		all_series = grown_series;
		free(series);
		if (strcmp(type, "counter") == 0)
			ck_assert_msg(strstr(name, "_total") == name + strlen(name) - 6,
			              "counter %s without _total", name);
		/* the value: a number or NaN, nothing after it */
		const char *val = strrchr(line, ' ') + 1;
		char *end;
		strtod(val, &end);
		ck_assert_msg(*end == '\0' && end != val, "bad value in %s", line);
		samples++;
	}
	ck_assert_int_gt(samples, 50);
	free(seen);
	free(all_series);
	free(t);
	fake_free(&f);
}
END_TEST

START_TEST(test_render_empty_core)
{
	struct fake f;
	fake_init(&f);
	f.core.started = 0; /* not known: no sample */
	char *t = render(&f);
	assert_contains(t, "sluice_up 1\n");
	assert_contains(t, "# TYPE sluice_pool_queries_total counter\n");
	ck_assert_ptr_null(strstr(t, "process_start_time_seconds"));
	free(t);
	fake_free(&f);
}
END_TEST

/* --- responses --- */

static int respond(struct fake *f, const char *request, char **out)
{
	struct metrics_request req;
	size_t len;
	int status;
	if (request) {
		ck_assert_int_eq(metrics_parse_request(request, strlen(request), &req),
		                 METRICS_REQ_OK);
		status = metrics_respond(&f->core, &req, out, &len);
	} else {
		status = metrics_respond(&f->core, NULL, out, &len);
	}
	ck_assert_uint_eq(strlen(*out), len);
	/* Content-Length matches what follows the head, except for HEAD */
	const char *body = strstr(*out, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body += 4;
	const char *cl = strstr(*out, "\r\nContent-Length: ");
	ck_assert_ptr_nonnull(cl);
	size_t declared = strtoul(cl + 18, NULL, 10);
	if (!request || strncmp(request, "HEAD ", 5) != 0)
		ck_assert_uint_eq(declared, strlen(body));
	else
		ck_assert_uint_eq(strlen(body), 0);
	assert_contains(*out, "\r\nConnection: close\r\n");
	return status;
}

START_TEST(test_respond)
{
	struct fake f;
	char *out;
	fake_standard(&f);

	ck_assert_int_eq(respond(&f, "GET /metrics HTTP/1.1\r\n\r\n", &out), 200);
	ck_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_contains(out, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
	assert_contains(out, "\r\n\r\n# HELP sluice_up ");
	free(out);

	ck_assert_int_eq(respond(&f, "HEAD /metrics HTTP/1.0\r\n\r\n", &out), 200);
	free(out);

	ck_assert_int_eq(respond(&f, "GET /health HTTP/1.1\r\n\r\n", &out), 200);
	ck_assert(strstr(out, "\r\n\r\nOK\n") && out[strlen(out) - 1] == '\n');
	free(out);

	ck_assert_int_eq(respond(&f, "GET /nope HTTP/1.1\r\n\r\n", &out), 404);
	free(out);
	ck_assert_int_eq(respond(&f, "GET /metricsx HTTP/1.1\r\n\r\n", &out), 404);
	free(out);
	ck_assert_int_eq(respond(&f, "POST /nope HTTP/1.1\r\n\r\n", &out), 404);
	free(out);

	ck_assert_int_eq(respond(&f, "POST /metrics HTTP/1.1\r\n\r\n", &out), 405);
	assert_contains(out, "\r\nAllow: GET, HEAD\r\n");
	free(out);
	ck_assert_int_eq(respond(&f, "get /health HTTP/1.1\r\n\r\n", &out), 405);
	free(out);

	ck_assert_int_eq(respond(&f, NULL, &out), 400);
	ck_assert(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
	free(out);
	fake_free(&f);
}
END_TEST

START_TEST(test_health)
{
	struct fake f;
	char *out;
	fake_standard(&f); /* appdb is paused: per-database pause keeps /health at 200 */

	f.core.paused = true;
	ck_assert_int_eq(respond(&f, "GET /health HTTP/1.1\r\n\r\n", &out), 503);
	ck_assert(strncmp(out, "HTTP/1.1 503 Service Unavailable\r\n", 34) == 0);
	assert_contains(out, "\r\n\r\npaused\n");
	free(out);

	f.core.paused = false;
	f.core.run_state = RUN_WAIT_CLIENTS;
	ck_assert_int_eq(respond(&f, "GET /health HTTP/1.1\r\n\r\n", &out), 503);
	assert_contains(out, "\r\n\r\nshutting down\n");
	free(out);

	/* /metrics still answers while shutting down */
	ck_assert_int_eq(respond(&f, "GET /metrics HTTP/1.1\r\n\r\n", &out), 200);
	free(out);
	fake_free(&f);
}
END_TEST

/* --- the listener in a loop --- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static int connect_to(int port, int rcvbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	ck_assert_int_ge(fd, 0);
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	ck_assert(rc == 0 || errno == EINPROGRESS);
	return fd;
}

static void send_all(int fd, const char *s)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	ck_assert_int_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads what is there now (at most max bytes); -1 at EOF. */
static ssize_t read_some(int fd, char **buf, size_t *len, size_t max)
{
	*buf = xrealloc(*buf, *len + max + 1);
	ssize_t n = recv(fd, *buf + *len, max, 0);
	if (n > 0) {
		*len += (size_t)n;
		(*buf)[*len] = '\0';
		return n;
	}
	if (n == 0)
		return -1;
	ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "recv: %s", strerror(errno));
	return 0;
}

static void open_metrics(struct fake *f, int *port)
{
	*port = free_port();
	free(f->cfg->metrics_listen);
	f->cfg->metrics_listen = xasprintf("127.0.0.1:%d", *port);
	f->core.loop = loop_new();
	ck_assert_ptr_nonnull(f->core.loop);
	ck_assert(metrics_open(&f->core));
	ck_assert_ptr_nonnull(f->core.metrics);
}

static void close_metrics(struct fake *f)
{
	metrics_close(&f->core);
	ck_assert_ptr_null(f->core.metrics);
	loop_run_deferred(f->core.loop);
	loop_free(f->core.loop);
}

START_TEST(test_loop_large_slow_reader)
{
	struct fake f;
	int port;
	fake_standard(&f);
	/* enough pools for a response of several megabytes */
	struct user *u = fake_user(&f, "bulk");
	for (int i = 0; i < 1500; i++) {
		char name[32];
		snprintf(name, sizeof(name), "db%04d", i);
		struct pool *p = fake_pool(&f, fake_db(&f, name, "10.1.1.1"), u);
		p->stats.total.queries = (uint64_t)i;
	}
	open_metrics(&f, &port);
	int fd = connect_to(port, 4096);
	send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	char *buf = NULL;
	size_t len = 0;
	int iters = 0;
	for (;; iters++) {
		ck_assert_int_lt(iters, 200000);
		loop_run_once(f.core.loop, USEC_PER_MSEC);
		/* read a little at a time, so that the server's writes hit EAGAIN */
		ssize_t n = read_some(fd, &buf, &len, 16384);
		if (n < 0)
			break;
	}
	ck_assert_uint_gt(len, 1000000);
	const char *body = strstr(buf, "\r\n\r\n") + 4;
	ck_assert_uint_eq(strtoul(strstr(buf, "Content-Length: ") + 16, NULL, 10),
	                  len - (size_t)(body - buf));
	assert_contains(body,
	                "\nsluice_pool_queries_total{database=\"db1499\",user=\"bulk\"} 1499\n");
	free(buf);
	close(fd);
	close_metrics(&f);
	fake_free(&f);
}
END_TEST

START_TEST(test_loop_connection_cap)
{
	struct fake f;
	int port, fds[METRICS_MAX_CONNS], extra;
	fake_init(&f);
	open_metrics(&f, &port);
	for (int i = 0; i < METRICS_MAX_CONNS; i++)
		fds[i] = connect_to(port, 0);
	for (int i = 0; i < 20; i++)
		loop_run_once(f.core.loop, 5 * USEC_PER_MSEC);
	/* the next one is accepted by the kernel but not served while all slots are taken */
	extra = connect_to(port, 0);
	send_all(extra, "GET /health HTTP/1.0\r\n\r\n");
	char *buf = NULL;
	size_t len = 0;
	for (int i = 0; i < 20; i++) {
		loop_run_once(f.core.loop, 5 * USEC_PER_MSEC);
		ck_assert_int_eq(read_some(extra, &buf, &len, 4096), 0);
	}
	/* one slot frees: it is served */
	close(fds[0]);
	ssize_t n = 0;
	for (int i = 0; i < 400 && n >= 0; i++) {
		loop_run_once(f.core.loop, 5 * USEC_PER_MSEC);
		n = read_some(extra, &buf, &len, 4096);
	}
	ck_assert_int_lt(n, 0);
	ck_assert_ptr_nonnull(buf);
	ck_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	free(buf);
	close(extra);
	/* metrics_close frees the idle connections still open */
	close_metrics(&f);
	for (int i = 1; i < METRICS_MAX_CONNS; i++)
		close(fds[i]);
	fake_free(&f);
}
END_TEST

START_TEST(test_open_errors)
{
	struct fake f;
	int port;
	fake_init(&f);
	f.core.loop = loop_new();
	/* off */
	ck_assert(metrics_open(&f.core));
	ck_assert_ptr_null(f.core.metrics);
	/* malformed */
	free(f.cfg->metrics_listen);
	f.cfg->metrics_listen = xstrdup("127.0.0.1");
	ck_assert(!metrics_open(&f.core));
	ck_assert_ptr_null(f.core.metrics);
	/* in use */
	loop_free(f.core.loop);
	open_metrics(&f, &port);
	struct fake g;
	fake_init(&g);
	g.core.loop = loop_new();
	free(g.cfg->metrics_listen);
	g.cfg->metrics_listen = xstrdup(f.cfg->metrics_listen);
	ck_assert(!metrics_open(&g.core));
	ck_assert_ptr_null(g.core.metrics);
	loop_free(g.core.loop);
	fake_free(&g);
	close_metrics(&f);
	fake_free(&f);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_parse, 0, (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
	tcase_add_test(tc, test_parse_nul_byte);
	tcase_add_test(tc, test_parse_head_limit);
	tcase_add_loop_test(tc, test_split_listen, 0,
	                    (int)(sizeof(split_cases) / sizeof(split_cases[0])));
	suite_add_tcase(s, tc);

	TCase *tc2 = tcase_create("render");
	tcase_add_test(tc2, test_render_values);
	tcase_add_test(tc2, test_render_structure);
	tcase_add_test(tc2, test_render_empty_core);
	tcase_add_test(tc2, test_respond);
	tcase_add_test(tc2, test_health);
	suite_add_tcase(s, tc2);

	TCase *tc3 = tcase_create("loop");
	tcase_set_timeout(tc3, 60);
	tcase_add_test(tc3, test_loop_large_slow_reader);
	tcase_add_test(tc3, test_loop_connection_cap);
	tcase_add_test(tc3, test_open_errors);
	suite_add_tcase(s, tc3);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
