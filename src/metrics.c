/*
 * metrics: the HTTP listener of metrics_listen and its connections, the Prometheus
 * text exposition of the pools, databases and the process, and /health.
 *
 * It reads the core's lists, pools and statistics and never changes them. Its own
 * sockets are non-blocking and served in the main loop; the only other system calls
 * are reads of /proc/self, which never block. Each connection moves READING ->
 * WRITING -> LINGERING -> closed: the request head is read into a buffer of
 * METRICS_HEAD_MAX bytes, the whole response is built on the heap and written as the
 * socket takes it (at most METRICS_WRITE_CHUNK per wake-up), then the write side is
 * shut and whatever the client still sends is read and dropped until it closes, so
 * that unread input cannot turn the close into a reset that loses the response.
 * At most METRICS_MAX_CONNS connections are open; while that many are, the listeners
 * stop accepting and further clients wait in the kernel's backlog.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "conn_io.h"
#include "core.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "stats.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

#define METRICS_TIMEOUT     (10 * USEC_PER_SEC) /* to send the request; without write progress */
#define METRICS_LINGER      (2 * USEC_PER_SEC)  /* for the client to close after the response */
#define METRICS_LINGER_MAX  (64 * 1024)         /* bytes dropped while lingering */
#define METRICS_WRITE_CHUNK (64 * 1024)         /* bytes written per wake-up */

#define CT_TEXT "text/plain; charset=utf-8"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

/* --- a growable, always NUL-terminated text buffer --- */

struct mbuf {
	char *p;
	size_t len, cap;
};

static void mb_reserve(struct mbuf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 4096;
	if (b->len + n + 1 <= b->cap)
		return;
	while (cap < b->len + n + 1)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void mb_add(struct mbuf *b, const char *s, size_t n)
{
	mb_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void mb_puts(struct mbuf *b, const char *s)
{
	mb_add(b, s, strlen(s));
}

static void mb_printf(struct mbuf *b, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	mb_reserve(b, 64);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		mb_reserve(b, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

/* --- exposition format helpers --- */

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left), 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	uint32_t cp, min;
	size_t len;
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, cp = s[0] & 0x1fu, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, cp = s[0] & 0x0fu, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, cp = s[0] & 0x07u, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A label value: backslash, double quote and newline escaped as the format wants;
 * bytes that are not UTF-8 (the format is UTF-8 text) become U+FFFD. */
static void mb_label_value(struct mbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	while (n > 0) {
		size_t k = utf8_seq_len(p, n);
		if (k == 0) {
			mb_puts(b, "\xef\xbf\xbd");
			k = 1;
		} else if (*p == '\\') {
			mb_puts(b, "\\\\");
		} else if (*p == '"') {
			mb_puts(b, "\\\"");
		} else if (*p == '\n') {
			mb_puts(b, "\\n");
		} else {
			mb_add(b, (const char *)p, k);
		}
		p += k;
		n -= k;
	}
}

static void put_family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* "name{k1="v1",k2="v2"} ": labels is a NULL-terminated list of keys and values. */
static void put_series(struct mbuf *b, const char *name, const char *const *labels)
{
	mb_puts(b, name);
	if (labels && labels[0]) {
		for (size_t i = 0; labels[i]; i += 2) {
			mb_puts(b, i ? "," : "{");
			mb_puts(b, labels[i]);
			mb_puts(b, "=\"");
			mb_label_value(b, labels[i + 1] ? labels[i + 1] : "");
			mb_puts(b, "\"");
		}
		mb_puts(b, "}");
	}
	mb_puts(b, " ");
}

enum unit { UNIT_ONE, UNIT_USEC };

static void put_value(struct mbuf *b, enum unit unit, uint64_t v)
{
	if (unit == UNIT_USEC)
		mb_printf(b, "%" PRIu64 ".%06" PRIu64 "\n", (uint64_t)(v / USEC_PER_SEC),
		          (uint64_t)(v % USEC_PER_SEC));
	else
		mb_printf(b, "%" PRIu64 "\n", v);
}

/* --- the process --- */

static bool count_open_fds(uint64_t *n)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	uint64_t count = 0;
	if (!d)
		return false;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			count++;
	closedir(d);
	*n = count ? count - 1 : 0; /* not the directory's own descriptor */
	return true;
}

static bool read_statm(uint64_t *vsz, uint64_t *rss)
{
	char buf[128];
	unsigned long long pages_v, pages_r;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n;
	long page = sysconf(_SC_PAGESIZE);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || page <= 0)
		return false;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &pages_v, &pages_r) != 2)
		return false;
	*vsz = (uint64_t)pages_v * (uint64_t)page;
	*rss = (uint64_t)pages_r * (uint64_t)page;
	return true;
}

static void gauge1(struct mbuf *b, const char *name, const char *help, enum unit unit, uint64_t v)
{
	put_family(b, name, "gauge", help);
	put_series(b, name, NULL);
	put_value(b, unit, v);
}

static void render_process(struct mbuf *b, struct core *core)
{
	static const char *const version[] = {"version", SLUICE_VERSION, NULL};
	struct rlimit rl;
	struct rusage ru;
	uint64_t fds, vsz, rss;

	gauge1(b, "sluice_up", "Whether sluice is running (always 1).", UNIT_ONE, 1);
	put_family(b, "sluice_info", "gauge", "Version of sluice, in the label.");
	put_series(b, "sluice_info", version);
	put_value(b, UNIT_ONE, 1);
	gauge1(b, "sluice_clients", "Client connections, logging in or logged in.", UNIT_ONE,
	       core->n_clients > 0 ? (uint64_t)core->n_clients : 0);
	gauge1(b, "sluice_paused", "1 while PAUSE holds every database.", UNIT_ONE,
	       core->paused ? 1 : 0);

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		uint64_t usec =
		    (uint64_t)ru.ru_utime.tv_sec * USEC_PER_SEC + (uint64_t)ru.ru_utime.tv_usec +
		    (uint64_t)ru.ru_stime.tv_sec * USEC_PER_SEC + (uint64_t)ru.ru_stime.tv_usec;
		put_family(b, "process_cpu_seconds_total", "counter",
		           "User and system CPU time spent in seconds.");
		put_series(b, "process_cpu_seconds_total", NULL);
		put_value(b, UNIT_USEC, usec);
	}
	if (count_open_fds(&fds))
		gauge1(b, "process_open_fds", "Number of open file descriptors.", UNIT_ONE, fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		gauge1(b, "process_max_fds", "Maximum number of open file descriptors.", UNIT_ONE,
		       rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur);
	if (read_statm(&vsz, &rss)) {
		gauge1(b, "process_virtual_memory_bytes", "Virtual memory size in bytes.", UNIT_ONE,
		       vsz);
		gauge1(b, "process_resident_memory_bytes", "Resident memory size in bytes.",
		       UNIT_ONE, rss);
	}
	if (core->started)
		gauge1(b, "process_start_time_seconds",
		       "Start time of the process since unix epoch in seconds.", UNIT_USEC,
		       core->started);
}

/* --- databases and hosts ---
 * Here and for pools, databases gone from the config on reload (stale) and their pools
 * are left out: a database of the same name may exist again, and two series with the
 * same labels would make the whole scrape fail. */

static uint64_t db_paused(const struct database *db)
{
	return db->paused ? 1 : 0;
}
static uint64_t db_disabled(const struct database *db)
{
	return db->disabled ? 1 : 0;
}
static uint64_t db_servers(const struct database *db)
{
	return db->n_servers > 0 ? (uint64_t)db->n_servers : 0;
}
static uint64_t db_clients(const struct database *db)
{
	return db->n_clients > 0 ? (uint64_t)db->n_clients : 0;
}

static const struct db_metric {
	const char *name;
	const char *help;
	uint64_t (*get)(const struct database *db);
} db_metrics[] = {
    {"sluice_database_paused", "1 while the database is paused (PAUSE db).", db_paused},
    {"sluice_database_disabled", "1 while the database is disabled (DISABLE db).", db_disabled},
    {"sluice_database_server_connections", "Server connections of the database, in any state.",
     db_servers},
    {"sluice_database_client_connections", "Client connections logged in to the database.",
     db_clients},
};

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
	return x < y ? -1 : x > y;
}

static void render_hosts(struct mbuf *b, struct core *core)
{
	/* the databases with a failed server login in some pool, sorted, for bsearch */
	const struct database **down = NULL;
	size_t n_down = 0, cap = 0;
	struct list *it;

	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (!pool->login_error_msg || pool->db->stale)
			continue;
		if (n_down == cap) {
			cap = cap ? cap * 2 : 8;
			down = xrealloc(down, cap * sizeof(*down));
		}
		down[n_down++] = pool->db;
	}
	if (n_down)
		qsort(down, n_down, sizeof(*down), cmp_ptr);

	put_family(b, "sluice_host_up", "gauge",
	           "0 while a pool of the database has a failed server login not yet followed "
	           "by a successful one, else 1.");
	list_for_each(it, &core->databases)
	{
		const struct database *db = list_entry(it, struct database, node);
		if (db->stale)
			continue;
		const char *host =
		    !db->host || !db->host[0] || db->host[0] == '/' ? "unix" : db->host;
		const char *labels[] = {"database", db->name, "host", host, NULL};
		bool is_down = n_down && bsearch(&db, down, n_down, sizeof(*down), cmp_ptr);
		put_series(b, "sluice_host_up", labels);
		put_value(b, UNIT_ONE, is_down ? 0 : 1);
	}
	free(down);
}

static void render_databases(struct mbuf *b, struct core *core)
{
	struct list *it;
	for (size_t i = 0; i < ARRAY_SIZE(db_metrics); i++) {
		put_family(b, db_metrics[i].name, "gauge", db_metrics[i].help);
		list_for_each(it, &core->databases)
		{
			const struct database *db = list_entry(it, struct database, node);
			const char *labels[] = {"database", db->name, NULL};
			if (db->stale)
				continue;
			put_series(b, db_metrics[i].name, labels);
			put_value(b, UNIT_ONE, db_metrics[i].get(db));
		}
	}
	render_hosts(b, core);
}

/* --- pools --- */

static uint64_t nonneg(int n)
{
	return n > 0 ? (uint64_t)n : 0;
}
static uint64_t pool_cl_active(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_active) + nonneg(p->n_idle);
}
static uint64_t pool_cl_waiting(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_waiting);
}
static uint64_t pool_sv_active(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_servers[SV_ACTIVE]);
}
static uint64_t pool_sv_idle(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_servers[SV_IDLE]);
}
static uint64_t pool_sv_used(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_servers[SV_USED]);
}
static uint64_t pool_sv_tested(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_servers[SV_TESTED]);
}
static uint64_t pool_sv_login(const struct pool *p, usec_t now)
{
	(void)now;
	return nonneg(p->n_servers[SV_CONNECTING]) + nonneg(p->n_servers[SV_LOGIN]);
}
static uint64_t pool_maxwait(const struct pool *p, usec_t now)
{
	const struct conn *oldest;
	if (list_empty(&p->waiting))
		return 0;
	oldest = list_entry(p->waiting.next, struct conn, node); /* FIFO */
	return now > oldest->wait_start ? now - oldest->wait_start : 0;
}

/* A per-pool family: a gauge computed by get, or (get NULL) a counter of stats.total. */
struct pool_metric {
	const char *name;
	const char *type;
	const char *help;
	enum unit unit;
	uint64_t (*get)(const struct pool *p, usec_t now);
	size_t off;
};

#define POOL_GAUGE(n, fn, u, h)                                                                    \
	{                                                                                          \
		"sluice_pool_" n, "gauge", h, u, fn, 0                                             \
	}
#define POOL_COUNTER(n, field, u, h)                                                               \
	{                                                                                          \
		"sluice_pool_" n, "counter", h, u, NULL, offsetof(struct stats_counters, field)    \
	}

static const struct pool_metric pool_metrics[] = {
    POOL_GAUGE("cl_active", pool_cl_active, UNIT_ONE,
               "Clients linked to a server connection or idle (not waiting)."),
    POOL_GAUGE("cl_waiting", pool_cl_waiting, UNIT_ONE, "Clients waiting for a server connection."),
    POOL_GAUGE("sv_active", pool_sv_active, UNIT_ONE, "Server connections linked to a client."),
    POOL_GAUGE("sv_idle", pool_sv_idle, UNIT_ONE,
               "Server connections idle and ready for a client."),
    POOL_GAUGE("sv_used", pool_sv_used, UNIT_ONE,
               "Server connections released, waiting for reset."),
    POOL_GAUGE("sv_tested", pool_sv_tested, UNIT_ONE,
               "Server connections running their reset or check query."),
    POOL_GAUGE("sv_login", pool_sv_login, UNIT_ONE, "Server connections connecting or logging in."),
    POOL_GAUGE("maxwait_seconds", pool_maxwait, UNIT_USEC,
               "How long the oldest waiting client has waited, in seconds."),
    POOL_COUNTER("server_assignments_total", server_assignments, UNIT_ONE,
                 "Server connections assigned to clients."),
    POOL_COUNTER("xacts_total", xacts, UNIT_ONE, "Transactions pooled."),
    POOL_COUNTER("queries_total", queries, UNIT_ONE, "Queries pooled."),
    POOL_COUNTER("received_bytes_total", bytes_received, UNIT_ONE, "Bytes received from clients."),
    POOL_COUNTER("sent_bytes_total", bytes_sent, UNIT_ONE, "Bytes sent to clients."),
    POOL_COUNTER("xact_time_seconds_total", xact_time, UNIT_USEC,
                 "Time spent in transactions, in seconds."),
    POOL_COUNTER("query_time_seconds_total", query_time, UNIT_USEC,
                 "Time spent running queries, in seconds."),
    POOL_COUNTER("wait_time_seconds_total", wait_time, UNIT_USEC,
                 "Time clients spent waiting for a server connection, in seconds."),
    POOL_COUNTER("client_parses_total", client_parses, UNIT_ONE, "Parse messages from clients."),
    POOL_COUNTER("server_parses_total", server_parses, UNIT_ONE, "Parse messages sent to servers."),
    POOL_COUNTER("binds_total", binds, UNIT_ONE, "Bind messages from clients."),
    POOL_COUNTER("client_logins_total", client_logins, UNIT_ONE, "Client logins."),
    POOL_COUNTER("server_logins_total", server_logins, UNIT_ONE, "Server connection logins."),
};

/* Summaries: quantiles of the last completed stats_period (NaN when it saw none), with
 * _sum and _count since start from the matching counters, as Prometheus summaries have
 * (a windowed quantile, cumulative sum and count). */
static const struct pool_summary {
	const char *name;
	const char *help;
	enum stats_hist_kind kind;
	size_t sum_off, count_off;
} pool_summaries[] = {
    {"sluice_pool_wait_duration_seconds",
     "Client wait for a server connection: quantiles over the last stats_period.", STATS_WAIT,
     offsetof(struct stats_counters, wait_time),
     offsetof(struct stats_counters, server_assignments)},
    {"sluice_pool_query_duration_seconds", "Query duration: quantiles over the last stats_period.",
     STATS_QUERY, offsetof(struct stats_counters, query_time),
     offsetof(struct stats_counters, queries)},
    {"sluice_pool_xact_duration_seconds",
     "Transaction duration: quantiles over the last stats_period.", STATS_XACT,
     offsetof(struct stats_counters, xact_time), offsetof(struct stats_counters, xacts)},
};

static const struct {
	double q;
	const char *label;
} quantiles[] = {{0.5, "0.5"}, {0.95, "0.95"}, {0.99, "0.99"}};

static uint64_t counter_at(const struct pool *pool, size_t off)
{
	uint64_t v;
	memcpy(&v, (const char *)&pool->stats.total + off, sizeof(v));
	return v;
}

static void render_summary(struct mbuf *b, const struct pool_summary *f, const struct pool *pool)
{
	const struct hist *h = &pool->stats.last[f->kind];
	const char *db = pool->db->name, *user = pool->user ? pool->user->name : "";
	const char *labels[] = {"database", db, "user", user, NULL};
	char name[96];
	for (size_t q = 0; q < ARRAY_SIZE(quantiles); q++) {
		const char *qlabels[] = {"database",         db,  "user", user, "quantile",
		                         quantiles[q].label, NULL};
		put_series(b, f->name, qlabels);
		if (h->count == 0)
			mb_puts(b, "NaN\n");
		else
			put_value(b, UNIT_USEC, hist_quantile(h, quantiles[q].q));
	}
	snprintf(name, sizeof(name), "%s_sum", f->name);
	put_series(b, name, labels);
	put_value(b, UNIT_USEC, counter_at(pool, f->sum_off));
	snprintf(name, sizeof(name), "%s_count", f->name);
	put_series(b, name, labels);
	put_value(b, UNIT_ONE, counter_at(pool, f->count_off));
}

static void render_pools(struct mbuf *b, struct core *core, usec_t now)
{
	struct list *it;
	for (size_t i = 0; i < ARRAY_SIZE(pool_metrics); i++) {
		const struct pool_metric *pm = &pool_metrics[i];
		put_family(b, pm->name, pm->type, pm->help);
		list_for_each(it, &core->pools)
		{
			const struct pool *pool = list_entry(it, struct pool, node);
			const char *labels[] = {"database", pool->db->name, "user",
			                        pool->user ? pool->user->name : "", NULL};
			if (pool->db->stale)
				continue;
			put_series(b, pm->name, labels);
			put_value(b, pm->unit,
			          pm->get ? pm->get(pool, now) : counter_at(pool, pm->off));
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(pool_summaries); i++) {
		put_family(b, pool_summaries[i].name, "summary", pool_summaries[i].help);
		list_for_each(it, &core->pools)
		{
			const struct pool *pool = list_entry(it, struct pool, node);
			if (!pool->db->stale)
				render_summary(b, &pool_summaries[i], pool);
		}
	}
}

void metrics_render(struct core *core, char **out, size_t *len)
{
	struct mbuf b = {0};
	mb_reserve(&b, 16 * 1024);
	render_process(&b, core);
	render_databases(&b, core);
	render_pools(&b, core, now_usec());
	*out = b.p;
	*len = b.len;
}

/* --- HTTP requests --- */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Visible characters of a request target. */
static bool is_target_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* A header field value may hold tabs and anything but other control characters. */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Strips a CR before the LF of a line; false for a CR anywhere else. */
static bool line_end(const char *line, size_t *len)
{
	if (*len > 0 && line[*len - 1] == '\r')
		(*len)--;
	return memchr(line, '\r', *len) == NULL;
}

static bool starts_with_ci(const char *s, size_t n, const char *prefix)
{
	size_t pl = strlen(prefix);
	return n >= pl && strncasecmp(s, prefix, pl) == 0;
}

/* The path of an origin-form ("/p?q") or absolute-form ("http://h/p?q") target of n
 * bytes (not NUL-terminated). */
static bool target_path(const char *t, size_t n, struct metrics_request *req)
{
	size_t skip = 0;
	if (starts_with_ci(t, n, "http://"))
		skip = 7;
	else if (starts_with_ci(t, n, "https://"))
		skip = 8;
	if (skip) {
		const char *slash = memchr(t + skip, '/', n - skip);
		if (!slash) {
			req->path = "/";
			req->path_len = 1;
			return true;
		}
		n -= (size_t)(slash - t);
		t = slash;
	}
	if (n == 0 || t[0] != '/')
		return false;
	req->path = t;
	req->path_len = 0;
	while (req->path_len < n && t[req->path_len] != '?' && t[req->path_len] != '#')
		req->path_len++;
	return true;
}

/* method SP target SP HTTP/1.x */
static bool parse_request_line(const char *line, size_t len, struct metrics_request *req)
{
	size_t i = 0, t0;
	if (!line_end(line, &len))
		return false;
	while (i < len && is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i >= len || line[i] != ' ')
		return false;
	req->method = line;
	req->method_len = i;
	t0 = ++i;
	while (i < len && is_target_char((unsigned char)line[i]))
		i++;
	if (i == t0 || i >= len || line[i] != ' ' || !target_path(line + t0, i - t0, req))
		return false;
	i++;
	if (len - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || line[i + 7] < '0' ||
	    line[i + 7] > '9')
		return false;
	req->minor_version = line[i + 7] - '0';
	return true;
}

/* name ":" value, without obsolete line folding. */
static bool parse_header_line(const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && is_tchar((unsigned char)line[i]))
		i++;
	if (i == 0 || i >= len || line[i] != ':')
		return false;
	for (i++; i < len; i++)
		if (!is_value_char((unsigned char)line[i]))
			return false;
	return true;
}

enum metrics_parse metrics_parse_request(const char *buf, size_t len, struct metrics_request *req)
{
	size_t pos = 0;
	const char *eol;

	memset(req, 0, sizeof(*req));
	if (memchr(buf, '\0', len))
		return METRICS_REQ_BAD;
	/* RFC 9112 2.2: empty lines before the request line are ignored */
	while (pos < len && (buf[pos] == '\r' || buf[pos] == '\n'))
		pos++;
	eol = memchr(buf + pos, '\n', len - pos);
	if (!eol) {
		/* nothing so far may be a control character but a final CR */
		for (size_t i = pos; i < len; i++)
			if ((unsigned char)buf[i] < 0x20 && !(buf[i] == '\r' && i == len - 1))
				return METRICS_REQ_BAD;
		return len >= METRICS_HEAD_MAX ? METRICS_REQ_BAD : METRICS_REQ_INCOMPLETE;
	}
	if (!parse_request_line(buf + pos, (size_t)(eol - (buf + pos)), req))
		return METRICS_REQ_BAD;
	for (pos = (size_t)(eol - buf) + 1;; pos = (size_t)(eol - buf) + 1) {
		size_t n;
		eol = memchr(buf + pos, '\n', len - pos);
		if (!eol)
			return len >= METRICS_HEAD_MAX ? METRICS_REQ_BAD : METRICS_REQ_INCOMPLETE;
		n = (size_t)(eol - (buf + pos));
		if (!line_end(buf + pos, &n))
			return METRICS_REQ_BAD;
		if (n == 0)
			break;
		if (!parse_header_line(buf + pos, n))
			return METRICS_REQ_BAD;
	}
	req->head_len = (size_t)(eol - buf) + 1;
	return METRICS_REQ_OK;
}

/* --- HTTP responses --- */

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

static bool token_is(const char *s, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* Why sluice is not serving, or NULL when it is. */
static const char *health_problem(const struct core *core)
{
	if (core->run_state != RUN_NORMAL)
		return "shutting down";
	if (core->suspended)
		return "suspended";
	if (core->paused)
		return "paused";
	return NULL;
}

int metrics_respond(struct core *core, const struct metrics_request *req, char **out, size_t *len)
{
	struct mbuf b = {0};
	char *rendered = NULL;
	const char *body, *ctype = CT_TEXT, *extra = "";
	size_t body_len = SIZE_MAX; /* SIZE_MAX: strlen(body) */
	bool get = false, head_only = false;
	int status;

	if (req) {
		head_only = token_is(req->method, req->method_len, "HEAD");
		get = head_only || token_is(req->method, req->method_len, "GET");
	}
	if (!req) {
		status = 400;
		body = "Bad Request\n";
	} else if (!token_is(req->path, req->path_len, "/metrics") &&
	           !token_is(req->path, req->path_len, "/health")) {
		status = 404;
		body = "Not Found\n";
	} else if (!get) {
		status = 405;
		body = "Method Not Allowed\n";
		extra = "Allow: GET, HEAD\r\n";
	} else if (token_is(req->path, req->path_len, "/metrics")) {
		status = 200;
		ctype = CT_PROM;
		metrics_render(core, &rendered, &body_len);
		body = rendered;
	} else {
		const char *problem = health_problem(core);
		status = problem ? 503 : 200;
		body = rendered = xasprintf("%s\n", problem ? problem : "OK");
	}
	if (body_len == SIZE_MAX)
		body_len = strlen(body);

	mb_reserve(&b, 256 + (head_only ? 0 : body_len));
	mb_printf(&b,
	          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	          "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
	          status, status_text(status), ctype, body_len, extra);
	if (!head_only)
		mb_add(&b, body, body_len);
	free(rendered);
	*out = b.p;
	*len = b.len;
	return status;
}

/* --- connections --- */

struct metrics {
	struct core *core;
	struct list listeners;
	struct list conns;
	int n_conns;
	uint64_t next_id;
};

struct mlistener {
	struct list node;
	struct metrics *m;
	int fd;
	struct loop_timer retry; /* accepts paused after EMFILE and the like */
	char name[80];
};

enum mconn_state { MC_READING, MC_WRITING, MC_LINGERING };

struct mconn {
	struct list node;
	struct metrics *m;
	int fd;
	/* plain; each read loops until EAGAIN, so a TLS transport's pending input is
	 * drained without the before-sleep hook conn.c needs */
	const struct conn_io *io;
	enum mconn_state state;
	uint64_t id;
	char *head; /* METRICS_HEAD_MAX bytes while reading */
	size_t head_len;
	char *out; /* the response while writing */
	size_t out_len, out_sent;
	size_t dropped; /* bytes read and dropped while lingering */
	struct loop_timer timer;
	char addr[64];
};

static const char *mconn_state_name(enum mconn_state s)
{
	switch (s) {
	case MC_READING:
		return "reading";
	case MC_WRITING:
		return "writing";
	case MC_LINGERING:
		return "lingering";
	}
	return "?";
}

static void update_accepting(struct metrics *m)
{
	struct loop *l = m->core->loop;
	int mask = m->n_conns < METRICS_MAX_CONNS ? LOOP_READ : 0;
	struct list *it;
	list_for_each(it, &m->listeners)
	{
		struct mlistener *ls = list_entry(it, struct mlistener, node);
		if (loop_timer_armed(&ls->retry))
			continue; /* the back-off timer resumes it */
		if (loop_get_mask(l, ls->fd) != mask && !loop_set_mask(l, ls->fd, mask))
			log_error("metrics: cannot change watch on %s: %s", ls->name,
			          strerror(errno));
	}
}

/* The one way out for a connection. now: free at once (not from a callback). */
static void mconn_close(struct mconn *c, const char *why, bool now)
{
	struct metrics *m = c->m;
	struct loop *l = m->core->loop;
	log_debug("M-%llu: %s: closing in state %s: %s", (unsigned long long)c->id, c->addr,
	          mconn_state_name(c->state), why);
	loop_timer_stop(l, &c->timer);
	loop_unwatch(l, c->fd);
	c->io->close(c->fd, NULL);
	list_del(&c->node);
	m->n_conns--;
	free(c->head);
	free(c->out);
	c->head = c->out = NULL;
	if (now)
		free(c);
	else
		loop_defer_free(l, free, c);
	update_accepting(m);
}

static bool mconn_set_mask(struct mconn *c, int mask)
{
	if (loop_set_mask(c->m->core->loop, c->fd, mask))
		return true;
	mconn_close(c, "cannot change the watch", false);
	return false;
}

static void mconn_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	struct mconn *c = arg;
	(void)l;
	(void)t;
	mconn_close(c, c->state == MC_LINGERING ? "done" : "timed out", false);
}

static void mconn_linger(struct mconn *c, int events)
{
	char buf[4096];
	for (;;) {
		ssize_t n = c->io->recv(c->fd, NULL, buf, sizeof(buf));
		if (n > 0) {
			c->dropped += (size_t)n;
			if (c->dropped > METRICS_LINGER_MAX) {
				mconn_close(c, "too much input after the request", false);
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(events & LOOP_ERROR))
			return;
		mconn_close(c, "done", false);
		return;
	}
}

static void mconn_write(struct mconn *c, int events)
{
	struct loop *l = c->m->core->loop;
	size_t budget = METRICS_WRITE_CHUNK;
	bool progress = false;

	while (c->out_sent < c->out_len && budget > 0) {
		size_t want = c->out_len - c->out_sent;
		ssize_t n =
		    c->io->send(c->fd, NULL, c->out + c->out_sent, want < budget ? want : budget);
		if (n > 0) {
			c->out_sent += (size_t)n;
			budget -= (size_t)n;
			progress = true;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(events & LOOP_ERROR))
			break;
		mconn_close(c, n < 0 ? strerror(errno) : "send returned 0", false);
		return;
	}
	if (c->out_sent < c->out_len) {
		/* the socket is full or this wake-up's share is spent */
		if (progress)
			loop_timer_start(l, &c->timer, METRICS_TIMEOUT, 0, mconn_expired, c);
		mconn_set_mask(c, LOOP_WRITE);
		return;
	}
	free(c->out);
	c->out = NULL;
	c->io->shutdown(c->fd, NULL);
	c->state = MC_LINGERING;
	loop_timer_start(l, &c->timer, METRICS_LINGER, 0, mconn_expired, c);
	if (mconn_set_mask(c, LOOP_READ))
		mconn_linger(c, 0);
}

static void mconn_answer(struct mconn *c, const struct metrics_request *req)
{
	int status = metrics_respond(c->m->core, req, &c->out, &c->out_len);
	if (req)
		log_debug("M-%llu: %s: %.*s %.*s: %d, %zu bytes", (unsigned long long)c->id,
		          c->addr, (int)req->method_len, req->method, (int)req->path_len, req->path,
		          status, c->out_len);
	else
		log_debug("M-%llu: %s: malformed request: %d", (unsigned long long)c->id, c->addr,
		          status);
	free(c->head);
	c->head = NULL;
	c->out_sent = 0;
	c->state = MC_WRITING;
	loop_timer_start(c->m->core->loop, &c->timer, METRICS_TIMEOUT, 0, mconn_expired, c);
	if (mconn_set_mask(c, 0))
		mconn_write(c, 0);
}

static void mconn_read(struct mconn *c, int events)
{
	struct metrics_request req;
	for (;;) {
		ssize_t n =
		    c->io->recv(c->fd, NULL, c->head + c->head_len, METRICS_HEAD_MAX - c->head_len);
		if (n > 0) {
			enum metrics_parse r;
			c->head_len += (size_t)n;
			r = metrics_parse_request(c->head, c->head_len, &req);
			if (r == METRICS_REQ_INCOMPLETE)
				continue;
			mconn_answer(c, r == METRICS_REQ_OK ? &req : NULL);
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(events & LOOP_ERROR))
			return;
		if (n == 0 && c->head_len > 0) {
			/* half-closed after an incomplete request: say so, then close */
			mconn_answer(c, NULL);
			return;
		}
		mconn_close(c, n == 0 ? "closed by the client" : strerror(errno), false);
		return;
	}
}

static void mconn_event(struct loop *l, int fd, int events, void *arg)
{
	struct mconn *c = arg;
	(void)l;
	(void)fd;
	switch (c->state) {
	case MC_READING:
		mconn_read(c, events);
		break;
	case MC_WRITING:
		mconn_write(c, events);
		break;
	case MC_LINGERING:
		mconn_linger(c, events);
		break;
	}
}

static void mconn_new(struct metrics *m, int fd, const struct sockaddr_storage *addr)
{
	struct loop *l = m->core->loop;
	struct mconn *c = xcalloc(1, sizeof(*c));
	c->m = m;
	c->fd = fd;
	c->io = &conn_io_plain;
	c->id = ++m->next_id;
	c->state = MC_READING;
	c->head = xmalloc(METRICS_HEAD_MAX);
	conn_addr_str(addr, c->addr, sizeof(c->addr));
	list_add_tail(&m->conns, &c->node);
	m->n_conns++;
	if (!loop_watch(l, fd, LOOP_READ, mconn_event, c)) {
		mconn_close(c, "cannot watch the socket", false);
		return;
	}
	loop_timer_start(l, &c->timer, METRICS_TIMEOUT, 0, mconn_expired, c);
	log_debug("M-%llu: %s: new metrics connection", (unsigned long long)c->id, c->addr);
}

/* --- listening --- */

static void accept_resume(struct loop *l, struct loop_timer *t, void *arg)
{
	struct mlistener *ls = arg;
	(void)l;
	(void)t;
	update_accepting(ls->m);
}

static void accept_ready(struct loop *l, int fd, int events, void *arg)
{
	struct mlistener *ls = arg;
	struct metrics *m = ls->m;
	(void)events;
	while (m->n_conns < METRICS_MAX_CONNS) {
		struct sockaddr_storage addr = {0};
		socklen_t alen = sizeof(addr);
		int cfd =
		    accept4(fd, (struct sockaddr *)&addr, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd >= 0) {
			mconn_new(m, cfd, &addr);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			log_warning("metrics: accept() on %s: %s; pausing accepts for 1 s",
			            ls->name, strerror(errno));
			if (loop_set_mask(l, fd, 0))
				loop_timer_start(l, &ls->retry, USEC_PER_SEC, 0, accept_resume, ls);
		} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		           errno != ECONNABORTED) {
			log_warning("metrics: accept() on %s: %s", ls->name, strerror(errno));
		}
		return;
	}
	update_accepting(m);
}

static bool add_listener(struct metrics *m, const struct addrinfo *ai, bool any)
{
	struct loop *l = m->core->loop;
	int one = 1, fd, backlog = m->core->cfg->listen_backlog;
	char name[80];
	struct mlistener *ls;

	conn_addr_str((const struct sockaddr_storage *)ai->ai_addr, name, sizeof(name));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(fd, backlog > 0 ? backlog : 128) < 0)
		goto fail;
	ls = xcalloc(1, sizeof(*ls));
	ls->m = m;
	ls->fd = fd;
	strlcpy_s(ls->name, name, sizeof(ls->name));
	list_add_tail(&m->listeners, &ls->node);
	if (!loop_watch(l, fd, LOOP_READ, accept_ready, ls)) {
		log_error("metrics: cannot watch %s: %s", name, strerror(errno));
		return false;
	}
	log_info("metrics: listening on http://%s/metrics", name);
	return true;
fail:
	/* "*" on a host without IPv6 still works on IPv4 */
	if (any && ai->ai_family == AF_INET6) {
		log_debug("metrics: no IPv6 listener on %s: %s", name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return true;
	}
	log_error("metrics: cannot listen on %s: %s", name, strerror(errno));
	if (fd >= 0)
		close(fd);
	return false;
}

bool metrics_split_listen(const char *spec, char **host, char **port)
{
	const char *h, *colon, *p;
	size_t hlen, plen;
	unsigned long v;

	*host = *port = NULL;
	if (!spec)
		return false;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb == spec + 1 || rb[1] != ':')
			return false;
		h = spec + 1;
		hlen = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon)
			return false;
		h = spec;
		hlen = (size_t)(colon - spec);
		if (memchr(h, ':', hlen) || memchr(h, '[', hlen) || memchr(h, ']', hlen))
			return false; /* an IPv6 address needs brackets */
	}
	for (size_t i = 0; i < hlen; i++)
		if ((unsigned char)h[i] <= ' ' || h[i] == 0x7f || h[i] == '/')
			return false;
	p = colon + 1;
	plen = strlen(p);
	if (plen == 0 || plen > 5 || strspn(p, "0123456789") != plen)
		return false;
	v = strtoul(p, NULL, 10);
	if (v == 0 || v > 65535)
		return false;
	if (hlen > 0 && !(hlen == 1 && h[0] == '*'))
		*host = xstrndup(h, hlen);
	*port = xstrdup(p);
	return true;
}

bool metrics_open(struct core *core)
{
	const char *spec = core->cfg->metrics_listen;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	struct metrics *m;
	char *host, *port;
	bool ok = true;
	int rc;

	if (!spec || !spec[0] || core->metrics)
		return true;
	if (!metrics_split_listen(spec, &host, &port)) {
		log_error("metrics_listen = %s: expected addr:port, [ipv6addr]:port or *:port",
		          spec);
		return false;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		log_error("metrics_listen = %s: %s", spec, gai_strerror(rc));
		free(host);
		free(port);
		return false;
	}
	m = xcalloc(1, sizeof(*m));
	m->core = core;
	list_init(&m->listeners);
	list_init(&m->conns);
	core->metrics = m;
	for (const struct addrinfo *ai = res; ai && ok; ai = ai->ai_next)
		ok = add_listener(m, ai, host == NULL);
	freeaddrinfo(res);
	free(host);
	free(port);
	if (ok && list_empty(&m->listeners)) {
		log_error("metrics_listen = %s: no address to listen on", spec);
		ok = false;
	}
	if (!ok)
		metrics_close(core);
	return ok;
}

void metrics_close(struct core *core)
{
	struct metrics *m = core->metrics;
	struct loop *l = core->loop;
	struct list *it;
	if (!m)
		return;
	while ((it = list_pop_head(&m->listeners)) != NULL) {
		struct mlistener *ls = list_entry(it, struct mlistener, node);
		loop_timer_stop(l, &ls->retry);
		loop_unwatch(l, ls->fd);
		close(ls->fd);
		free(ls);
	}
	while (!list_empty(&m->conns))
		mconn_close(list_entry(m->conns.next, struct mconn, node), "sluice is exiting",
		            true);
	free(m);
	core->metrics = NULL;
}
