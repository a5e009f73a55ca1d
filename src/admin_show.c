/*
 * admin_show: the SHOW tables of the console. Column names, order and meaning follow
 * PgBouncer 1.25 (shared/compat/pgbouncer-admin-columns.md) so dashboards and
 * exporters keep working; columns only sluice has come after PgBouncer's. Everything
 * here reads the core's lists and writes rows; nothing changes state.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "config.h"
#include "conn.h"
#include "core.h"
#include "dns.h"
#include "hosts.h"
#include "iobuf.h"
#include "netutil.h"
#include "pool.h"
#include "proto.h"
#include "stats.h"

#define MAX_COLS 64

/* --- row building --- */

struct row {
	char *v[MAX_COLS];
	size_t n;
};

static void r_own(struct row *r, char *s)
{
	if (r->n < MAX_COLS)
		r->v[r->n++] = s;
	else
		free(s);
}

static void r_str(struct row *r, const char *s)
{
	r_own(r, s ? xstrdup(s) : NULL);
}

static void r_int(struct row *r, long long x)
{
	r_own(r, xasprintf("%lld", x));
}

static void r_u64(struct row *r, uint64_t x)
{
	r_own(r, xasprintf("%" PRIu64, x));
}

static void r_emit(struct conn *c, const struct admin_writer *w, struct row *r)
{
	w->row(c, (const char *const *)r->v, r->n);
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	r->n = 0;
}

#define COLS(c, w, arr) (w)->columns((c), (arr), ARRAY_SIZE(arr))

static void wall_time_str(usec_t wall, char *buf, size_t len)
{
	time_t t = (time_t)(wall / USEC_PER_SEC);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* A monotonic timestamp of this iteration, as wall-clock text. */
static void mono_time_str(struct core *core, usec_t mono, char *buf, size_t len)
{
	usec_t now = loop_now(core->loop);
	wall_time_str(wall_usec() - (now > mono ? now - mono : 0), buf, len);
}

/* --- percentile columns shared by POOLS and STATS --- */

static const struct admin_col pct_cols[] = {
    {"p50_wait_us", ACOL_INT8},  {"p95_wait_us", ACOL_INT8},  {"p99_wait_us", ACOL_INT8},
    {"p50_query_us", ACOL_INT8}, {"p95_query_us", ACOL_INT8}, {"p99_query_us", ACOL_INT8},
    {"p50_xact_us", ACOL_INT8},  {"p95_xact_us", ACOL_INT8},  {"p99_xact_us", ACOL_INT8},
};

static void r_percentiles(struct row *r, const struct hist h[STATS_HIST_KINDS])
{
	static const double q[] = {0.50, 0.95, 0.99};
	static const enum stats_hist_kind kinds[] = {STATS_WAIT, STATS_QUERY, STATS_XACT};
	for (size_t k = 0; k < ARRAY_SIZE(kinds); k++)
		for (size_t i = 0; i < ARRAY_SIZE(q); i++)
			r_u64(r, hist_quantile(&h[kinds[k]], q[i]));
}

/* Columns of a base table followed by the percentile ones. */
static void columns_with_pct(struct conn *c, const struct admin_writer *w,
                             const struct admin_col *base, size_t n)
{
	struct admin_col all[MAX_COLS];
	memcpy(all, base, n * sizeof(*base));
	memcpy(all + n, pct_cols, sizeof(pct_cols));
	w->columns(c, all, n + ARRAY_SIZE(pct_cols));
}

/* --- SHOW POOLS --- */

static usec_t pool_maxwait(struct core *core, const struct pool *pool)
{
	if (list_empty(&pool->waiting))
		return 0;
	const struct conn *oldest = list_entry(pool->waiting.next, struct conn, node);
	usec_t now = loop_now(core->loop);
	return now > oldest->wait_start ? now - oldest->wait_start : 0;
}

/* load_balance_hosts as PgBouncer shows it; a single host has nothing to balance */
static const char *lb_name(const struct database *db)
{
	return db->hosts && db->hosts->n > 1 ? lb_mode_name(db->hosts->lb) : "disable";
}

static void show_pools(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {
	    {"database", ACOL_TEXT},
	    {"user", ACOL_TEXT},
	    {"cl_active", ACOL_INT4},
	    {"cl_waiting", ACOL_INT4},
	    {"cl_active_cancel_req", ACOL_INT4},
	    {"cl_waiting_cancel_req", ACOL_INT4},
	    {"sv_active", ACOL_INT4},
	    {"sv_active_cancel", ACOL_INT4},
	    {"sv_being_canceled", ACOL_INT4},
	    {"sv_idle", ACOL_INT4},
	    {"sv_used", ACOL_INT4},
	    {"sv_tested", ACOL_INT4},
	    {"sv_login", ACOL_INT4},
	    {"maxwait", ACOL_INT4},
	    {"maxwait_us", ACOL_INT4},
	    {"pool_mode", ACOL_TEXT},
	    {"load_balance_hosts", ACOL_TEXT},
	};
	struct row r = {0};
	struct list *it;
	columns_with_pct(c, w, cols, ARRAY_SIZE(cols));
	list_for_each(it, &core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		usec_t mw = pool_maxwait(core, p);
		r_str(&r, p->db->name);
		r_str(&r, p->user->name);
		r_int(&r, p->n_active + p->n_idle);
		r_int(&r, p->n_waiting);
		r_int(&r, p->n_cancel_active);  /* written, waiting for the server's close */
		r_int(&r, p->n_cancel_waiting); /* not yet written */
		r_int(&r, p->n_servers[SV_ACTIVE]);
		/* sluice's cancel connections are not pool servers: each one open counts */
		r_int(&r, p->n_cancel_active + p->n_cancel_waiting);
		r_int(&r, p->n_servers[SV_BEING_CANCELED]);
		r_int(&r, p->n_servers[SV_IDLE]);
		r_int(&r, p->n_servers[SV_USED]);
		r_int(&r, p->n_servers[SV_TESTED]);
		r_int(&r, p->n_servers[SV_CONNECTING] + p->n_servers[SV_LOGIN]);
		r_int(&r, (long long)(mw / USEC_PER_SEC));
		r_int(&r, (long long)(mw % USEC_PER_SEC));
		r_str(&r, pool_mode_name(pool_effective_mode(p)));
		r_str(&r, lb_name(p->db));
		r_percentiles(&r, p->stats.last);
		r_emit(c, w, &r);
	}
	w->complete(c, "SHOW");
}

/* --- SHOW STATS family --- */

struct db_stats {
	struct stats_counters total, from, to;
	usec_t elapsed;
	struct stats_averages avg;
	struct hist last[STATS_HIST_KINDS];
};

static void gather_db_stats(struct core *core, const struct database *db, struct db_stats *ds)
{
	struct list *it;
	memset(ds, 0, sizeof(*ds));
	for (int k = 0; k < STATS_HIST_KINDS; k++)
		hist_reset(&ds->last[k]);
	list_for_each(it, &core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (db && p->db != db)
			continue;
		stats_counters_add(&ds->total, &p->stats.total);
		stats_counters_add(&ds->from, &p->stats.prev_start);
		stats_counters_add(&ds->to, &p->stats.period_start);
		ds->elapsed = p->stats.last_elapsed;
		for (int k = 0; k < STATS_HIST_KINDS; k++)
			hist_merge(&ds->last[k], &p->stats.last[k]);
	}
	stats_compute_averages(&ds->from, &ds->to, ds->elapsed, &ds->avg);
}

/* The twelve figures in PgBouncer's order, for totals and for averages. */
static void counters_values(const struct stats_counters *t, uint64_t out[12])
{
	uint64_t v[12] = {t->server_assignments, t->xacts,         t->queries,    t->bytes_received,
	                  t->bytes_sent,         t->xact_time,     t->query_time, t->wait_time,
	                  t->client_parses,      t->server_parses, t->binds,      t->client_logins};
	memcpy(out, v, sizeof(v));
}

static void averages_values(const struct stats_averages *a, uint64_t out[12])
{
	uint64_t v[12] = {a->server_assignments, a->xacts,         a->queries,    a->bytes_received,
	                  a->bytes_sent,         a->xact_time,     a->query_time, a->wait_time,
	                  a->client_parses,      a->server_parses, a->binds,      a->client_logins};
	memcpy(out, v, sizeof(v));
}

static const char *const stat_names[12] = {"server_assignment_count",
                                           "xact_count",
                                           "query_count",
                                           "bytes_received",
                                           "bytes_sent",
                                           "xact_time",
                                           "query_time",
                                           "wait_time",
                                           "client_parse_count",
                                           "server_parse_count",
                                           "bind_count",
                                           "client_login_count"};
/* SHOW STATS spells a few of them its own way */
static const char *const stats_total_names[12] = {"total_server_assignment_count",
                                                  "total_xact_count",
                                                  "total_query_count",
                                                  "total_received",
                                                  "total_sent",
                                                  "total_xact_time",
                                                  "total_query_time",
                                                  "total_wait_time",
                                                  "total_client_parse_count",
                                                  "total_server_parse_count",
                                                  "total_bind_count",
                                                  "total_client_login_count"};
static const char *const stats_avg_names[12] = {"avg_server_assignment_count",
                                                "avg_xact_count",
                                                "avg_query_count",
                                                "avg_recv",
                                                "avg_sent",
                                                "avg_xact_time",
                                                "avg_query_time",
                                                "avg_wait_time",
                                                "avg_client_parse_count",
                                                "avg_server_parse_count",
                                                "avg_bind_count",
                                                "avg_client_login_count"};

static void for_each_db(struct core *core, void (*fn)(struct core *, struct database *, void *),
                        void *arg)
{
	struct list *it;
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		if (!db->stale)
			fn(core, db, arg);
	}
}

struct stats_ctx {
	struct conn *c;
	const struct admin_writer *w;
	int which; /* 0: STATS, 1: STATS_TOTALS, 2: STATS_AVERAGES */
};

static void stats_row(struct core *core, struct database *db, void *arg)
{
	struct stats_ctx *sc = arg;
	struct db_stats ds;
	struct row r = {0};
	uint64_t t[12], a[12];
	gather_db_stats(core, db, &ds);
	counters_values(&ds.total, t);
	averages_values(&ds.avg, a);
	r_str(&r, db->name);
	for (int i = 0; i < 12; i++)
		if (sc->which != 2)
			r_u64(&r, t[i]);
	for (int i = 0; i < 12; i++)
		if (sc->which != 1)
			r_u64(&r, a[i]);
	if (sc->which == 0)
		r_percentiles(&r, ds.last);
	r_emit(sc->c, sc->w, &r);
}

static void show_stats(struct core *core, struct conn *c, const struct admin_writer *w, int which)
{
	struct admin_col cols[MAX_COLS];
	size_t n = 0;
	cols[n++] = (struct admin_col){"database", ACOL_TEXT};
	for (int i = 0; i < 12; i++) {
		if (which == 0)
			cols[n++] = (struct admin_col){stats_total_names[i], ACOL_INT8};
		else
			cols[n++] = (struct admin_col){stat_names[i], ACOL_INT8};
	}
	if (which == 0)
		for (int i = 0; i < 12; i++)
			cols[n++] = (struct admin_col){stats_avg_names[i], ACOL_INT8};
	if (which == 0)
		columns_with_pct(c, w, cols, n);
	else
		w->columns(c, cols, n);
	struct stats_ctx sc = {c, w, which};
	for_each_db(core, stats_row, &sc);
	w->complete(c, "SHOW");
}

static void show_totals(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {{"name", ACOL_TEXT}, {"value", ACOL_INT8}};
	struct db_stats ds;
	struct row r = {0};
	uint64_t t[12], a[12];
	COLS(c, w, cols);
	gather_db_stats(core, NULL, &ds);
	counters_values(&ds.total, t);
	averages_values(&ds.avg, a);
	for (int i = 0; i < 12; i++) {
		r_own(&r, xasprintf("total_%s", stat_names[i]));
		r_u64(&r, t[i]);
		r_emit(c, w, &r);
	}
	for (int i = 0; i < 12; i++) {
		r_own(&r, xasprintf("avg_%s", stat_names[i]));
		r_u64(&r, a[i]);
		r_emit(c, w, &r);
	}
	w->complete(c, "SHOW");
}

/* --- SHOW CLIENTS / SERVERS / SOCKETS --- */

static const struct admin_col conn_cols[] = {
    {"type", ACOL_TEXT},
    {"user", ACOL_TEXT},
    {"database", ACOL_TEXT},
    {"replication", ACOL_TEXT},
    {"state", ACOL_TEXT},
    {"addr", ACOL_TEXT},
    {"port", ACOL_INT4},
    {"local_addr", ACOL_TEXT},
    {"local_port", ACOL_INT4},
    {"connect_time", ACOL_TEXT},
    {"request_time", ACOL_TEXT},
    {"wait", ACOL_INT4},
    {"wait_us", ACOL_INT4},
    {"close_needed", ACOL_INT4},
    {"ptr", ACOL_TEXT},
    {"link", ACOL_TEXT},
    {"remote_pid", ACOL_INT4},
    {"tls", ACOL_TEXT},
    {"application_name", ACOL_TEXT},
    {"prepared_statements", ACOL_INT4},
    {"id", ACOL_INT8},
};
static const struct admin_col server_extra_cols[] = {{"host_health", ACOL_TEXT},
                                                     {"state_reason", ACOL_TEXT}};
static const struct admin_col socket_extra_cols[] = {
    {"recv_pos", ACOL_INT4},   {"pkt_pos", ACOL_INT4},     {"pkt_remain", ACOL_INT4},
    {"send_pos", ACOL_INT4},   {"send_remain", ACOL_INT4}, {"pkt_avail", ACOL_INT4},
    {"send_avail", ACOL_INT4},
};

enum conn_table { T_CLIENTS, T_SERVERS, T_SOCKETS, T_ACTIVE_SOCKETS };

static const char *conn_state_text(const struct conn *c)
{
	if (c->is_server) {
		if (c->state == SV_CONNECTING || c->state == SV_LOGIN)
			return "new";
		return server_state_name(c->state);
	}
	if (!list_empty(&c->cancels)) { /* a CancelRequest connection, open until it is over */
		const struct cancel_ref *ref =
		    list_entry(c->cancels.next, struct cancel_ref, client_node);
		return ref->forwarded ? "active_cancel_req" : "waiting_cancel_req";
	}
	switch (c->state) {
	case CL_LOGIN:
		return "login";
	case CL_WAIT_LOGIN:
	case CL_WAITING:
		return "waiting";
	case CL_IDLE:
		return "idle";
	default:
		return "active";
	}
}

static void r_addr(struct row *r, const struct sockaddr_storage *ss)
{
	char buf[128];
	if (ss->ss_family == AF_UNIX) {
		r_str(r, "unix");
		r_int(r, 0);
		return;
	}
	conn_addr_str(ss, buf, sizeof(buf));
	/* conn_addr_str gives "ip:port" or "[ip]:port": keep the address part */
	char *colon = strrchr(buf, ':');
	if (colon)
		*colon = '\0';
	char *a = buf;
	if (a[0] == '[') {
		a++;
		a[strlen(a) - 1] = '\0';
	}
	r_str(r, a);
	r_int(r, conn_addr_port(ss));
}

static const char *server_state_reason(const struct conn *s)
{
	if (s->flags & CONN_F_CLOSE_NEEDED)
		return "close_needed";
	if (hosts_is_probe(s))
		return "health_probe";
	switch (s->state) {
	case SV_ACTIVE:
		return "session"; /* session pooling pins it to its client */
	case SV_TESTED:
		return "reset";
	case SV_BEING_CANCELED:
		return "cancel_in_flight"; /* kept from reuse until its cancel is over */
	case SV_CONNECTING:
	case SV_LOGIN:
		return "login";
	default:
		return "";
	}
}

static void conn_row(struct core *core, struct conn *c, const struct admin_writer *w,
                     struct conn *x, enum conn_table t)
{
	char tbuf[64], ptr[32], link[32];
	struct row r = {0};
	usec_t now = loop_now(core->loop);
	bool waiting = !x->is_server && (x->state == CL_WAITING || x->state == CL_WAIT_LOGIN);
	usec_t waited = waiting && now > x->wait_start ? now - x->wait_start : 0;
	const char *app =
	    x->proto && x->proto->conn_param ? x->proto->conn_param(x, "application_name") : NULL;
	r_str(&r, x->is_server ? "S" : "C");
	r_str(&r, x->user_name);
	r_str(&r, x->db_name);
	r_str(&r, "none");
	r_str(&r, conn_state_text(x));
	r_addr(&r, &x->addr);
	r_addr(&r, &x->local_addr);
	wall_time_str(x->connect_time, tbuf, sizeof(tbuf));
	r_str(&r, tbuf);
	mono_time_str(core, x->request_time, tbuf, sizeof(tbuf));
	r_str(&r, tbuf);
	r_int(&r, (long long)(waited / USEC_PER_SEC));
	r_int(&r, (long long)(waited % USEC_PER_SEC));
	r_int(&r, (x->flags & CONN_F_CLOSE_NEEDED) ? 1 : 0);
	snprintf(ptr, sizeof(ptr), "%p", (void *)x);
	r_str(&r, ptr);
	snprintf(link, sizeof(link), "%p", (void *)x->link);
	r_str(&r, x->link ? link : "");
	r_int(&r, x->is_server ? (long long)x->cancel_pid : 0);
	r_str(&r, "");
	r_str(&r, app ? app : "");
	r_int(&r, x->proto && x->proto->prepared_count ? x->proto->prepared_count(x) : 0);
	r_u64(&r, x->id);
	if (t == T_SERVERS) {
		/* down: its host is marked down, or its pool's last login failed */
		bool down = x->pool && (x->pool->login_error_msg ||
		                        strcmp(hosts_server_health(x), "down") == 0);
		r_str(&r, down ? "down" : "up");
		r_str(&r, server_state_reason(x));
	}
	if (t == T_SOCKETS || t == T_ACTIVE_SOCKETS) {
		const struct iobuf *b = x->rbuf;
		r_int(&r, b ? b->recv : 0);
		r_int(&r, b ? b->done : 0);
		r_int(&r, 0);
		r_int(&r, b ? b->sent : 0);
		r_int(&r, b ? iobuf_unsent(b) : 0);
		r_int(&r, b ? iobuf_unparsed(b) : 0);
		r_int(&r, b ? iobuf_free_space(b) : 0);
	}
	r_emit(c, w, &r);
}

static void conn_rows_in(struct core *core, struct conn *c, const struct admin_writer *w,
                         struct list *head, enum conn_table t)
{
	struct list *it;
	list_for_each(it, head)
	{
		struct conn *x = list_entry(it, struct conn, node);
		if (t == T_ACTIVE_SOCKETS && !x->rbuf && !x->wbuf)
			continue;
		conn_row(core, c, w, x, t);
	}
}

static void show_conns(struct core *core, struct conn *c, const struct admin_writer *w,
                       enum conn_table t)
{
	struct admin_col cols[MAX_COLS];
	size_t n = ARRAY_SIZE(conn_cols);
	struct list *it;
	memcpy(cols, conn_cols, sizeof(conn_cols));
	if (t == T_SERVERS) {
		memcpy(cols + n, server_extra_cols, sizeof(server_extra_cols));
		n += ARRAY_SIZE(server_extra_cols);
	} else if (t != T_CLIENTS) {
		memcpy(cols + n, socket_extra_cols, sizeof(socket_extra_cols));
		n += ARRAY_SIZE(socket_extra_cols);
	}
	w->columns(c, cols, n);
	bool clients = t != T_SERVERS, servers = t != T_CLIENTS;
	if (clients) {
		conn_rows_in(core, c, w, &core->admin_clients, t);
		conn_rows_in(core, c, w, &core->login_clients, t);
	}
	list_for_each(it, &core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (clients) {
			conn_rows_in(core, c, w, &p->active, t);
			conn_rows_in(core, c, w, &p->waiting, t);
			conn_rows_in(core, c, w, &p->idle, t);
		}
		for (int st = 0; servers && st < SV_JUSTFREE; st++)
			conn_rows_in(core, c, w, &p->servers[st], t);
	}
	w->complete(c, "SHOW");
}

/* --- SHOW DATABASES / USERS --- */

static void database_row(struct core *core, struct database *db, void *arg)
{
	struct stats_ctx *sc = arg;
	struct row r = {0};
	const struct config *cfg = core->cfg;
	r_str(&r, db->name);
	r_str(&r, db->host);
	r_int(&r, db->port);
	r_str(&r, db->dbname);
	r_str(&r, db->force_user);
	r_int(&r, db->pool_size >= 0 ? db->pool_size : cfg->default_pool_size);
	r_int(&r, db->min_pool_size >= 0 ? db->min_pool_size : cfg->min_pool_size);
	r_int(&r, db->reserve_pool_size >= 0 ? db->reserve_pool_size : cfg->reserve_pool_size);
	r_int(&r, (long long)(cfg->server_lifetime / USEC_PER_SEC));
	r_str(&r, db->pool_mode != POOL_MODE_UNSET ? pool_mode_name(db->pool_mode) : NULL);
	r_str(&r, lb_name(db));
	r_int(&r, db->max_db_connections);
	r_int(&r, db->n_servers);
	r_int(&r, 0);
	r_int(&r, db->n_clients);
	r_int(&r, db->paused || core->paused);
	r_int(&r, db->disabled);
	r_emit(sc->c, sc->w, &r);
}

static void show_databases(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {
	    {"name", ACOL_TEXT},
	    {"host", ACOL_TEXT},
	    {"port", ACOL_INT4},
	    {"database", ACOL_TEXT},
	    {"force_user", ACOL_TEXT},
	    {"pool_size", ACOL_INT4},
	    {"min_pool_size", ACOL_INT4},
	    {"reserve_pool_size", ACOL_INT4},
	    {"server_lifetime", ACOL_INT4},
	    {"pool_mode", ACOL_TEXT},
	    {"load_balance_hosts", ACOL_TEXT},
	    {"max_connections", ACOL_INT4},
	    {"current_connections", ACOL_INT4},
	    {"max_client_connections", ACOL_INT4},
	    {"current_client_connections", ACOL_INT4},
	    {"paused", ACOL_INT4},
	    {"disabled", ACOL_INT4},
	};
	/* every configured database shows, used or not */
	for (size_t i = 0; i < core->cfg->n_dbs; i++)
		if (strcmp(core->cfg->dbs[i]->name, "*") != 0)
			(void)database_lookup(core, core->cfg->dbs[i]->name);
	COLS(c, w, cols);
	struct stats_ctx sc = {c, w, 0};
	for_each_db(core, database_row, &sc);
	w->complete(c, "SHOW");
}

static void show_users(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {
	    {"name", ACOL_TEXT},
	    {"pool_size", ACOL_INT4},
	    {"reserve_pool_size", ACOL_INT4},
	    {"pool_mode", ACOL_TEXT},
	    {"max_user_connections", ACOL_INT4},
	    {"current_connections", ACOL_INT4},
	    {"max_user_client_connections", ACOL_INT4},
	    {"current_client_connections", ACOL_INT4},
	};
	struct list *it;
	struct row r = {0};
	for (size_t i = 0; i < core->cfg->n_users; i++)
		(void)user_lookup(core, core->cfg->users[i]->name);
	COLS(c, w, cols);
	list_for_each(it, &core->users)
	{
		struct user *u = list_entry(it, struct user, node);
		int clients = 0;
		struct list *p;
		list_for_each(p, &core->pools)
		{
			struct pool *pool = list_entry(p, struct pool, node);
			if (pool->user == u)
				clients += pool->n_active + pool->n_idle + pool->n_waiting;
		}
		r_str(&r, u->name);
		r_int(&r, u->pool_size);
		r_int(&r, 0);
		r_str(&r, u->pool_mode != POOL_MODE_UNSET ? pool_mode_name(u->pool_mode) : NULL);
		r_int(&r, u->max_user_connections);
		r_int(&r, u->n_servers);
		r_int(&r, 0);
		r_int(&r, clients);
		r_emit(c, w, &r);
	}
	w->complete(c, "SHOW");
}

/* --- the small ones --- */

static void show_config(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {{"key", ACOL_TEXT},
	                                        {"value", ACOL_TEXT},
	                                        {"default", ACOL_TEXT},
	                                        {"changeable", ACOL_BOOL}};
	struct config_setting_view v;
	struct row r = {0};
	COLS(c, w, cols);
	for (size_t i = 0; i < config_setting_count(); i++) {
		if (!config_setting_get(core->cfg, i, &v))
			continue;
		r_str(&r, v.key);
		r_str(&r, v.value);
		r_str(&r, v.def);
		r_str(&r, v.changeable ? "yes" : "no");
		r_emit(c, w, &r);
	}
	w->complete(c, "SHOW");
}

static void kv_row(struct conn *c, const struct admin_writer *w, const char *k, long long v)
{
	struct row r = {0};
	r_str(&r, k);
	r_int(&r, v);
	r_emit(c, w, &r);
}

static void show_lists(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {{"list", ACOL_TEXT}, {"items", ACOL_INT4}};
	int dbs = 0, users = 0, pools = 0, used_clients = 0, login = 0, used_servers = 0;
	struct list *it;
	list_for_each(it, &core->databases) dbs++;
	list_for_each(it, &core->users) users++;
	list_for_each(it, &core->login_clients) login++;
	list_for_each(it, &core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		pools++;
		used_clients += p->n_active + p->n_idle + p->n_waiting;
		used_servers += pool_total_servers(p);
	}
	COLS(c, w, cols);
	kv_row(c, w, "databases", dbs);
	kv_row(c, w, "users", users);
	kv_row(c, w, "peers", 0);
	kv_row(c, w, "pools", pools);
	kv_row(c, w, "peer_pools", 0);
	kv_row(c, w, "free_clients", 0);
	kv_row(c, w, "used_clients", used_clients + core->n_admin_clients);
	kv_row(c, w, "login_clients", login);
	kv_row(c, w, "free_servers", 0);
	kv_row(c, w, "used_servers", used_servers);
	struct dns_counts dc;
	dns_get_counts(core->dns, &dc);
	kv_row(c, w, "dns_names", dc.names);
	kv_row(c, w, "dns_zones", dc.zones);
	kv_row(c, w, "dns_queries", dc.queries);
	kv_row(c, w, "dns_pending", dc.pending);
	w->complete(c, "SHOW");
}

static void show_mem(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {{"name", ACOL_TEXT},
	                                        {"size", ACOL_INT4},
	                                        {"used", ACOL_INT4},
	                                        {"free", ACOL_INT4},
	                                        {"memtotal", ACOL_INT8}};
	size_t allocated, free_listed;
	struct row r = {0};
	(void)core;
	iobuf_stats(&allocated, &free_listed);
	COLS(c, w, cols);
	r_str(&r, "iobuf");
	r_int(&r, iobuf_default_size());
	r_int(&r, (long long)(allocated - free_listed));
	r_int(&r, (long long)free_listed);
	r_u64(&r, (uint64_t)allocated * iobuf_default_size());
	r_emit(c, w, &r);
	w->complete(c, "SHOW");
}

static void fd_rows_in(struct conn *c, const struct admin_writer *w, struct list *head)
{
	struct list *it;
	struct row r = {0};
	static const char *const params[] = {"client_encoding", "standard_conforming_strings",
	                                     "DateStyle", "TimeZone"};
	list_for_each(it, head)
	{
		struct conn *x = list_entry(it, struct conn, node);
		char link[32];
		r_int(&r, x->fd);
		r_str(&r, x->is_server ? "server" : "client");
		r_str(&r, x->user_name);
		r_str(&r, x->db_name);
		r_addr(&r, &x->addr);
		r_u64(&r, x->is_server ? 0 : ((uint64_t)x->cancel_pid << 32 | x->cancel_key));
		snprintf(link, sizeof(link), "%d", x->link ? x->link->fd : 0);
		r_str(&r, link);
		for (size_t i = 0; i < ARRAY_SIZE(params); i++)
			r_str(&r, x->proto && x->proto->conn_param
			              ? x->proto->conn_param(x, params[i])
			              : NULL);
		/* never the secrets PgBouncer shows here */
		r_str(&r, NULL);
		r_str(&r, NULL);
		r_str(&r, NULL);
		r_emit(c, w, &r);
	}
}

static void show_fds(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {
	    {"fd", ACOL_INT4},
	    {"task", ACOL_TEXT},
	    {"user", ACOL_TEXT},
	    {"database", ACOL_TEXT},
	    {"addr", ACOL_TEXT},
	    {"port", ACOL_INT4},
	    {"cancel", ACOL_INT8},
	    {"link", ACOL_INT4},
	    {"client_encoding", ACOL_TEXT},
	    {"std_strings", ACOL_TEXT},
	    {"datestyle", ACOL_TEXT},
	    {"timezone", ACOL_TEXT},
	    {"password", ACOL_TEXT},
	    {"scram_client_key", ACOL_TEXT},
	    {"scram_server_key", ACOL_TEXT},
	};
	struct list *it;
	COLS(c, w, cols);
	list_for_each(it, &core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		fd_rows_in(c, w, &p->active);
		fd_rows_in(c, w, &p->idle);
		fd_rows_in(c, w, &p->waiting);
		for (int st = 0; st < SV_JUSTFREE; st++)
			fd_rows_in(c, w, &p->servers[st]);
	}
	w->complete(c, "SHOW");
}

/* --- DNS_HOSTS, DNS_ZONES --- */

struct dns_show {
	struct conn *c;
	const struct admin_writer *w;
};

static void dns_host_row(void *arg, const struct dns_host_info *h)
{
	struct dns_show *ds = arg;
	struct row r = {0};
	size_t len = h->n_addrs * 56 + 1, used = 0;
	char *addrs = xmalloc(len);
	addrs[0] = '\0';
	/* as PgBouncer prints them: "ip:port" or "[ip]:port", the port 0 of the cache */
	for (size_t i = 0; i < h->n_addrs; i++) {
		char ip[64];
		bool v6 = h->addrs[i].ss_family == AF_INET6;
		net_ip_str(&h->addrs[i], ip, sizeof(ip));
		used += (size_t)snprintf(addrs + used, len - used, "%s%s%s%s:0", i ? "," : "",
		                         v6 ? "[" : "", ip, v6 ? "]" : "");
	}
	r_str(&r, h->name);
	r_int(&r, h->ttl);
	r_own(&r, addrs);
	r_emit(ds->c, ds->w, &r);
}

static void show_dns_hosts(struct core *core, struct conn *c, const struct admin_writer *w)
{
	/* exactly PgBouncer's; why a lookup failed is in the log and the clients' error */
	static const struct admin_col cols[] = {
	    {"hostname", ACOL_TEXT}, {"ttl", ACOL_INT8}, {"addrs", ACOL_TEXT}};
	struct dns_show ds = {c, w};
	COLS(c, w, cols);
	dns_walk_hosts(core->dns, dns_host_row, &ds);
	w->complete(c, "SHOW");
}

static void dns_zone_row(void *arg, const char *zone, uint32_t serial, int n_hosts)
{
	struct dns_show *ds = arg;
	struct row r = {0};
	r_str(&r, zone);
	r_int(&r, serial);
	r_int(&r, n_hosts);
	r_emit(ds->c, ds->w, &r);
}

static void show_dns_zones(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {
	    {"zonename", ACOL_TEXT}, {"serial", ACOL_INT8}, {"count", ACOL_INT4}};
	struct dns_show ds = {c, w};
	COLS(c, w, cols);
	dns_walk_zones(core->dns, dns_zone_row, &ds);
	w->complete(c, "SHOW");
}

static void show_version(struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {{"version", ACOL_TEXT}};
	struct row r = {0};
	COLS(c, w, cols);
	/* "PgBouncer x.y.z" first: exporters parse the version with that pattern */
	r_own(&r, xasprintf("PgBouncer 1.25.0 compatible (sluice %s)", SLUICE_VERSION));
	r_emit(c, w, &r);
	w->complete(c, "SHOW");
}

static void show_state(struct core *core, struct conn *c, const struct admin_writer *w)
{
	static const struct admin_col cols[] = {{"key", ACOL_TEXT}, {"value", ACOL_TEXT}};
	const char *kv[3][2] = {
	    {"active",
	     core->run_state == RUN_NORMAL && !core->paused && !core->suspended ? "yes" : "no"},
	    {"paused", core->paused ? "yes" : "no"},
	    {"suspended", core->suspended ? "yes" : "no"},
	};
	struct row r = {0};
	COLS(c, w, cols);
	for (int i = 0; i < 3; i++) {
		r_str(&r, kv[i][0]);
		r_str(&r, kv[i][1]);
		r_emit(c, w, &r);
	}
	w->complete(c, "SHOW");
}

void admin_show_help(struct conn *c, const struct admin_writer *w)
{
	static const char *const lines[] = {
	    "Console usage",
	    "\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION",
	    "\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS",
	    "\tSHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE",
	    "\tSHOW DNS_HOSTS|DNS_ZONES",
	    "\tSET key = arg",
	    "\tRELOAD",
	    "\tPAUSE [<db>]",
	    "\tRESUME [<db>]",
	    "\tDISABLE <db>",
	    "\tENABLE <db>",
	    "\tRECONNECT [<db>]",
	    "\tKILL [<db>]",
	    "\tKILL_CLIENT <client_id>",
	    "\tSUSPEND",
	    "\tSHUTDOWN",
	    "\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS",
	    "\tWAIT_CLOSE [<db>]",
	};
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
		w->notice(c, lines[i]);
}

bool admin_show(struct core *core, struct conn *c, enum admin_role role,
                const struct admin_writer *w, const char *name)
{
	if (str_ieq(name, "POOLS"))
		show_pools(core, c, w);
	else if (str_ieq(name, "STATS"))
		show_stats(core, c, w, 0);
	else if (str_ieq(name, "STATS_TOTALS"))
		show_stats(core, c, w, 1);
	else if (str_ieq(name, "STATS_AVERAGES"))
		show_stats(core, c, w, 2);
	else if (str_ieq(name, "TOTALS"))
		show_totals(core, c, w);
	else if (str_ieq(name, "CLIENTS"))
		show_conns(core, c, w, T_CLIENTS);
	else if (str_ieq(name, "SERVERS"))
		show_conns(core, c, w, T_SERVERS);
	else if (str_ieq(name, "SOCKETS"))
		show_conns(core, c, w, T_SOCKETS);
	else if (str_ieq(name, "ACTIVE_SOCKETS"))
		show_conns(core, c, w, T_ACTIVE_SOCKETS);
	else if (str_ieq(name, "DATABASES"))
		show_databases(core, c, w);
	else if (str_ieq(name, "USERS"))
		show_users(core, c, w);
	else if (str_ieq(name, "CONFIG"))
		show_config(core, c, w);
	else if (str_ieq(name, "LISTS"))
		show_lists(core, c, w);
	else if (str_ieq(name, "MEM"))
		show_mem(core, c, w);
	else if (str_ieq(name, "FDS")) {
		if (role != ADMIN_ROLE_ADMIN)
			w->error(c, ERR_ADMIN_DENIED, "admin access needed");
		else
			show_fds(core, c, w);
	} else if (str_ieq(name, "DNS_HOSTS"))
		show_dns_hosts(core, c, w);
	else if (str_ieq(name, "DNS_ZONES"))
		show_dns_zones(core, c, w);
	else if (str_ieq(name, "VERSION"))
		show_version(c, w);
	else if (str_ieq(name, "STATE"))
		show_state(core, c, w);
	else
		return false;
	return true;
}
