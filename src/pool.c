/*
 * pool: who gets which server. Databases and users are created on first use from the
 * config; pools from (database, user). Servers sit on the list of their state; the
 * wait queue is FIFO. A server is handed out only after the protocol module says it
 * is clean and has run its reset. Closing a client or a server happens here, once,
 * and wakes whoever can make progress because of it.
 */
#include "pool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dns.h"
#include "hosts.h"
#include "iobuf.h"
#include "listen.h"
#include "log.h"
#include "netutil.h"
#include "proto.h"

static void pool_launch_servers(struct pool *pool);
static void limits_wake(struct pool *pool);
static void serve_waiters(struct pool *pool);
static void pool_fast_close(struct pool *pool);
static void link_pair(struct conn *client, struct conn *server);
static void server_reset_or_ready(struct conn *server);
static void client_drop_cancels(struct conn *c);
static void admin_poke(struct core *core)
{
	if (core->admin_poke)
		core->admin_poke(core);
}

/* --- databases and users --- */

static void database_fill(struct database *db, const struct db_entry *e, const char *name,
                          const struct config *cfg)
{
	db->host = e->host ? xstrdup(e->host) : NULL;
	db->port = e->port > 0 ? e->port : db->proto->default_port;
	db->hosts = host_set_new(e->host, e->ports, db->port, e->load_balance_hosts,
	                         e->target_session_attrs);
	db->dbname = xstrdup(e->dbname && strcmp(e->name, "*") ? e->dbname : name);
	db->force_user = e->user ? xstrdup(e->user) : NULL;
	db->password = e->password ? xstrdup(e->password) : NULL;
	db->pool_size = e->pool_size;
	db->min_pool_size = e->min_pool_size;
	db->reserve_pool_size = e->reserve_pool_size;
	db->max_db_connections =
	    e->max_db_connections >= 0 ? e->max_db_connections : cfg->max_db_connections;
	db->pool_mode = e->pool_mode;
	db->connect_query = e->connect_query ? xstrdup(e->connect_query) : NULL;
	const char *params[4][2] = {{"client_encoding", e->client_encoding},
	                            {"DateStyle", e->datestyle},
	                            {"TimeZone", e->timezone},
	                            {"application_name", e->application_name}};
	for (int i = 0; i < 4; i++) {
		db->startup_params[i][0] = xstrdup(params[i][0]);
		db->startup_params[i][1] = params[i][1] ? xstrdup(params[i][1]) : NULL;
	}
}

static void database_clear(struct database *db)
{
	free(db->host);
	hosts_free(db->hosts);
	free(db->dbname);
	free(db->force_user);
	if (db->password) {
		explicit_bzero(db->password, strlen(db->password));
		free(db->password);
	}
	free(db->connect_query);
	for (int i = 0; i < 4; i++) {
		free(db->startup_params[i][0]);
		free(db->startup_params[i][1]);
	}
}

struct database *database_lookup(struct core *core, const char *name)
{
	struct list *it;
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		if (!db->stale && strcmp(db->name, name) == 0)
			return db;
	}
	const struct db_entry *e = config_find_db(core->cfg, name);
	bool fallback = false;
	if (!e) {
		e = config_find_db(core->cfg, "*");
		fallback = true;
	}
	if (!e)
		return NULL;
	const struct proto_ops *proto = proto_by_name(e->protocol);
	if (!proto) { /* the config refuses a protocol without a module: cannot happen */
		log_warning("database %s: no module for protocol %s", name, e->protocol);
		return NULL;
	}
	struct database *db = xcalloc(1, sizeof(*db));
	db->name = xstrdup(name);
	db->proto = proto;
	db->from_fallback = fallback;
	database_fill(db, e, name, core->cfg);
	list_add_tail(&core->databases, &db->node);
	return db;
}

static void user_fill(struct user *u, const struct config *cfg)
{
	const struct user_entry *e = config_find_user(cfg, u->name);
	u->pool_mode = e ? e->pool_mode : POOL_MODE_UNSET;
	u->pool_size = e ? e->pool_size : -1;
	u->reserve_pool_size = e ? e->reserve_pool_size : -1;
	u->max_user_connections =
	    e && e->max_user_connections >= 0 ? e->max_user_connections : cfg->max_user_connections;
	u->query_timeout = e ? e->query_timeout : 0;
	u->idle_transaction_timeout = e ? e->idle_transaction_timeout : 0;
	u->transaction_timeout = e ? e->transaction_timeout : 0;
	u->client_idle_timeout = e ? e->client_idle_timeout : 0;
}

struct user *user_lookup(struct core *core, const char *name)
{
	struct list *it;
	list_for_each(it, &core->users)
	{
		struct user *u = list_entry(it, struct user, node);
		if (strcmp(u->name, name) == 0)
			return u;
	}
	struct user *u = xcalloc(1, sizeof(*u));
	u->name = xstrdup(name);
	user_fill(u, core->cfg);
	list_add_tail(&core->users, &u->node);
	return u;
}

/* Connection parameters changed: servers made with the old ones close when released. */
static bool database_changed(const struct database *db, const struct database *fresh)
{
#define DIFF(a, b) (((a) == NULL) != ((b) == NULL) || ((a) && strcmp((a), (b))))
	return DIFF(db->host, fresh->host) || db->port != fresh->port ||
	       hosts_differ(db->hosts, fresh->hosts) || DIFF(db->dbname, fresh->dbname) ||
	       DIFF(db->force_user, fresh->force_user) || DIFF(db->password, fresh->password);
#undef DIFF
}

static void mark_db_servers_close(struct core *core, struct database *db)
{
	struct list *it, *s;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (pool->db != db)
			continue;
		for (int st = 0; st < SV_STATE_COUNT; st++)
			list_for_each(s, &pool->servers[st]) list_entry(s, struct conn, node)
			    ->flags |= CONN_F_CLOSE_NEEDED;
		while (!list_empty(&pool->servers[SV_IDLE]))
			server_close(list_entry(pool->servers[SV_IDLE].next, struct conn, node),
			             "database changed by reload");
		pool_fast_close(pool);
	}
}

void pool_apply_config(struct core *core)
{
	struct list *it;
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		const struct db_entry *e = config_find_db(core->cfg, db->name);
		if (!e && db->from_fallback)
			e = config_find_db(core->cfg, "*");
		/* a database keeps its protocol: one that changes is removed and made anew */
		if (!e || proto_by_name(e->protocol) != db->proto) {
			db->stale = true;
			mark_db_servers_close(core, db);
			continue;
		}
		struct database fresh = {.proto = db->proto};
		database_fill(&fresh, e, db->name, core->cfg);
		if (database_changed(db, &fresh))
			mark_db_servers_close(core, db);
		hosts_carry(fresh.hosts, db->hosts); /* health of the hosts that stay */
		database_clear(db);
		fresh.node = db->node;
		fresh.name = db->name;
		fresh.n_servers = db->n_servers;
		fresh.n_clients = db->n_clients;
		/* what the console and the fallback entry decided is not the file's to undo */
		fresh.from_fallback = db->from_fallback;
		fresh.paused = db->paused;
		fresh.disabled = db->disabled;
		*db = fresh;
	}
	list_for_each(it, &core->users) user_fill(list_entry(it, struct user, node), core->cfg);
}

int pool_max_client_conn(const struct core *core)
{
	int cap = core->max_client_conn_cap;
	return cap > 0 && cap < core->cfg->max_client_conn ? cap : core->cfg->max_client_conn;
}

/* --- pools --- */

struct pool *pool_get(struct core *core, struct database *db, struct user *user)
{
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (p->db == db && p->user == user)
			return p;
	}
	struct pool *p = xcalloc(1, sizeof(*p));
	p->core = core;
	stats_init(&p->stats, loop_now(core->loop));
	p->db = db;
	p->user = user;
	for (int i = 0; i < SV_STATE_COUNT; i++)
		list_init(&p->servers[i]);
	list_init(&p->waiting);
	list_init(&p->active);
	list_init(&p->idle);
	list_add_tail(&core->pools, &p->node);
	return p;
}

enum pool_mode pool_effective_mode(const struct pool *pool)
{
	/* the user's setting wins over the database's, the database's over the global */
	if (pool->user->pool_mode != POOL_MODE_UNSET)
		return pool->user->pool_mode;
	if (pool->db->pool_mode != POOL_MODE_UNSET)
		return pool->db->pool_mode;
	return pool->core->cfg->pool_mode;
}

/* As PgBouncer: the [users] entry's, else the database's, else default_pool_size. */
int pool_effective_size(const struct pool *pool)
{
	if (pool->user->pool_size >= 0)
		return pool->user->pool_size;
	if (pool->db->pool_size >= 0)
		return pool->db->pool_size;
	return pool->core->cfg->default_pool_size;
}

int pool_min_size(const struct pool *pool)
{
	int min =
	    pool->db->min_pool_size >= 0 ? pool->db->min_pool_size : pool->core->cfg->min_pool_size;
	int size = pool_effective_size(pool);
	return min < size ? min : size;
}

/* As PgBouncer: the [users] entry's, else the database's, else the global one. */
int pool_reserve_size(const struct pool *pool)
{
	if (pool->user->reserve_pool_size >= 0)
		return pool->user->reserve_pool_size;
	if (pool->db->reserve_pool_size >= 0)
		return pool->db->reserve_pool_size;
	return pool->core->cfg->reserve_pool_size;
}

/* A user's own timeout when set, else the global one: PgBouncer's override rule. */
static usec_t user_or_global(usec_t user_value, usec_t global_value)
{
	return user_value > 0 ? user_value : global_value;
}

usec_t pool_query_timeout(const struct pool *pool)
{
	return user_or_global(pool->user->query_timeout, pool->core->cfg->query_timeout);
}

usec_t pool_idle_transaction_timeout(const struct pool *pool)
{
	return user_or_global(pool->user->idle_transaction_timeout,
	                      pool->core->cfg->idle_transaction_timeout);
}

usec_t pool_transaction_timeout(const struct pool *pool)
{
	return user_or_global(pool->user->transaction_timeout,
	                      pool->core->cfg->transaction_timeout);
}

usec_t pool_client_idle_timeout(const struct conn *client)
{
	const struct config *cfg = client->core->cfg;
	const struct user *u = client->pool ? client->pool->user : NULL;
	if (!client->user_name)
		return cfg->client_idle_timeout;
	/* the pool's user is the login user unless the database forces one */
	if (u && strcmp(u->name, client->user_name) == 0)
		return user_or_global(u->client_idle_timeout, cfg->client_idle_timeout);
	const struct user_entry *e = config_find_user(cfg, client->user_name);
	return user_or_global(e ? e->client_idle_timeout : 0, cfg->client_idle_timeout);
}

int pool_total_servers(const struct pool *pool)
{
	int n = 0;
	for (int i = 0; i < SV_JUSTFREE; i++)
		n += pool->n_servers[i];
	return n;
}

/* Moves s to the list of st; request_time (the idle clock) is left alone. */
static void server_move(struct conn *s, enum server_state st)
{
	struct pool *pool = s->pool;
	if (s->state != SV_JUSTFREE && !list_empty(&s->node)) {
		list_del(&s->node);
		pool->n_servers[s->state]--;
	}
	log_noise("S-%llu: %s -> %s", (unsigned long long)s->id, server_state_name(s->state),
	          server_state_name(st));
	s->state = st;
	if (st == SV_JUSTFREE)
		return;
	/* idle servers are taken from the head: most recently used first, so the rest can
	 * age out, or least recently used first with server_round_robin */
	if (st == SV_IDLE && !s->core->cfg->server_round_robin)
		list_add_head(&pool->servers[st], &s->node);
	else
		list_add_tail(&pool->servers[st], &s->node);
	pool->n_servers[st]++;
}

void server_set_state(struct conn *s, enum server_state st)
{
	server_move(s, st);
	if (st != SV_JUSTFREE)
		s->request_time = loop_now(s->core->loop);
}

static void client_set_state(struct conn *c, enum client_state st)
{
	struct pool *pool = c->pool;
	if (!list_empty(&c->node)) {
		list_del(&c->node);
		if (pool) {
			if (c->state == CL_WAITING || c->state == CL_WAIT_LOGIN)
				pool->n_waiting--;
			else if (c->state == CL_ACTIVE)
				pool->n_active--;
			else if (c->state == CL_IDLE)
				pool->n_idle--;
		}
	}
	c->state = st;
	if (st == CL_JUSTFREE)
		return;
	if (!pool) {
		list_add_tail(&c->core->login_clients, &c->node);
		return;
	}
	if (st == CL_WAITING || st == CL_WAIT_LOGIN) {
		list_add_tail(&pool->waiting, &c->node);
		pool->n_waiting++;
	} else if (st == CL_ACTIVE) {
		list_add_tail(&pool->active, &c->node);
		pool->n_active++;
	} else {
		list_add_tail(&pool->idle, &c->node);
		pool->n_idle++;
	}
}

/* --- wait queue and leasing --- */

static void query_wait_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	struct conn *c = arg;
	char msg[160];
	(void)l;
	(void)t;
	snprintf(msg, sizeof(msg),
	         "query_wait_timeout: no server connection became free within %.1f s",
	         (double)c->core->cfg->query_wait_timeout / USEC_PER_SEC);
	client_fail_kind(c, ERR_QUERY_WAIT_TIMEOUT, msg);
}

static bool login_backoff_active(const struct pool *pool)
{
	return pool->login_error_msg && loop_now(pool->core->loop) < pool->login_retry_at;
}

void pool_client_enter(struct pool *pool, struct conn *client, bool needs_server)
{
	client->pool = pool;
	pool->db->n_clients++;
	/* leave the login list and join the pool's */
	list_del(&client->node);
	client->state = CL_LOGIN;
	client_set_state(client, CL_IDLE);
	if (needs_server) {
		client_set_state(client, CL_WAIT_LOGIN);
		pool_lease(client);
	}
}

bool pool_is_paused(const struct pool *pool)
{
	const struct core *core = pool->core;
	return core->paused || core->suspended || pool->db->paused;
}

/* Waiters that no server on its way (connecting, logging in, being reset or checked)
 * will serve. */
/* Connects and logins in flight for the pool itself (health probes live apart). */
static int connects_in_flight(const struct pool *pool)
{
	return pool->n_servers[SV_CONNECTING] + pool->n_servers[SV_LOGIN] - pool->n_probes;
}

static int unmet_demand(const struct pool *pool)
{
	return pool->n_waiting - (connects_in_flight(pool) + pool->n_servers[SV_USED] +
	                          pool->n_servers[SV_TESTED] + pool->n_servers[SV_BEING_CANCELED]);
}

/* --- health checks (server_check_query) --- */

/*
 * A server is known alive when it was last used (request_time, set as it went idle)
 * or when its last check passed. Servers never wait in a queue, so for them
 * wait_start holds the latter.
 */
static bool server_needs_check(const struct conn *s, usec_t now)
{
	usec_t alive = s->request_time > s->wait_start ? s->request_time : s->wait_start;
	return now - alive >= s->core->cfg->server_check_delay;
}

static void server_check_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	struct conn *s = arg;
	struct pool *pool = s->pool;
	(void)l;
	(void)t;
	/* a host that stopped answering counts against it, as a failed connect does */
	if (s->host_idx >= 0)
		hosts_connect_error(pool, (size_t)s->host_idx, "server_check_query got no answer");
	server_close(s, "server_check_query got no answer within server_connect_timeout");
	serve_waiters(pool);
	pool_launch_servers(pool);
}

/* Idle -> tested while server_check_query runs; the idle clock keeps counting. */
static void server_start_check(struct conn *s)
{
	const struct config *cfg = s->core->cfg;
	conn_log(s, LOG_LVL_DEBUG, "checking: %s",
	         cfg->server_check_query[0] ? cfg->server_check_query : "(empty query)");
	server_move(s, SV_TESTED);
	if (cfg->server_connect_timeout)
		loop_timer_start(s->core->loop, &s->timer, cfg->server_connect_timeout, 0,
		                 server_check_expired, s);
	s->proto->server_check(s);
}

/* The idle server to hand out next, starting checks on the stale ones it passes for
 * as many waiters as nothing else will serve. NULL when none is ready. */
static struct conn *pick_idle(struct pool *pool)
{
	usec_t now = loop_now(pool->core->loop);
	struct list *it;
	/* a check moves its server off the list (and may close others): walk again */
restart:
	list_for_each(it, &pool->servers[SV_IDLE])
	{
		struct conn *s = list_entry(it, struct conn, node);
		if (!server_needs_check(s, now))
			return s;
		if (unmet_demand(pool) > 0) {
			server_start_check(s);
			goto restart;
		}
	}
	return NULL;
}

/* FIFO: idle servers go to the longest waiters. */
static void serve_waiters(struct pool *pool)
{
	struct conn *s;
	if (pool_is_paused(pool))
		return;
	while (!list_empty(&pool->waiting) && (s = pick_idle(pool)) != NULL)
		link_pair(list_entry(pool->waiting.next, struct conn, node), s);
}

void pool_lease(struct conn *client)
{
	struct pool *pool = client->pool;
	struct core *core = client->core;
	if (client->link)
		return;
	loop_timer_stop(core->loop, &client->timer); /* client_idle_timeout ends here */
	/* the shutdown waits for running queries only: none starts (PgBouncer's words) */
	if (core->run_state == RUN_WAIT_SERVERS) {
		client_fail_kind(client, ERR_SHUTTING_DOWN, "server shutting down");
		return;
	}
	bool first = client->state != CL_WAIT_LOGIN && client->state != CL_WAITING;
	if (first)
		client_set_state(client, CL_WAITING);
	/* a DBA goes ahead of the application's queue (admin_pool_size) */
	if (first && (client->flags & CONN_F_ADMIN_USER)) {
		list_del(&client->node);
		list_add_head(&pool->waiting, &client->node);
	}
	client->wait_start = loop_now(core->loop);
	serve_waiters(pool);
	if (client->link || client->state == CL_JUSTFREE)
		return;
	if (login_backoff_active(pool)) {
		pool->refused_at = client->wait_start; /* keeps the background probe going */
		client_fail(client, pool->login_error_code, pool->login_error_msg);
		return;
	}
	if (core->cfg->query_wait_timeout)
		loop_timer_start(core->loop, &client->timer, core->cfg->query_wait_timeout, 0,
		                 query_wait_expired, client);
	pool_launch_servers(pool);
}

static void link_pair(struct conn *client, struct conn *server)
{
	struct pool *pool = client->pool;
	/* a login's link only fetches the server's parameters and is given back at once
	 * unless a request already waits: counted then, else with the request's own link */
	bool counted =
	    client->state != CL_WAIT_LOGIN || (client->rbuf && iobuf_unparsed(client->rbuf));
	loop_timer_stop(client->core->loop, &client->timer);
	client->link = server;
	server->link = client;
	client_set_state(client, CL_ACTIVE);
	server_set_state(server, SV_ACTIVE);
	usec_t waited = loop_now(client->core->loop) - client->wait_start;
	pool->stats.total.wait_time += waited;
	if (counted)
		pool->stats.total.server_assignments++;
	stats_record(&pool->stats, STATS_WAIT, waited);
	client->proto->client_linked(client);
}

void pool_release(struct conn *client)
{
	struct conn *server = client->link;
	if (!server)
		return;
	/* judged while still linked: a client leaving in the middle of a message left
	 * the server with part of one */
	bool clean = server->proto->server_clean(server);
	/* replies the client did not take (it left without reading them) are its own:
	 * written later, they would reach the server's next client */
	if (server->rbuf)
		iobuf_drop_unsent(server->rbuf);
	client->link = NULL;
	server->link = NULL;
	loop_timer_stop(client->core->loop, &server->timer); /* its client's timeouts */
	if (client->state == CL_ACTIVE)
		client_set_state(client, CL_IDLE);
	if ((server->flags & CONN_F_CLOSE_NEEDED) || !clean) {
		server_close(server, (server->flags & CONN_F_CLOSE_NEEDED)
		                         ? "close needed"
		                         : "released while not idle");
		return;
	}
	/* not even the reset may run: the cancel could still interrupt it */
	if (!list_empty(&server->cancels)) {
		server_set_state(server, SV_BEING_CANCELED);
		return;
	}
	server_reset_or_ready(server);
}

/* A clean server with no client: reset it for the next one, or hand it on. */
static void server_reset_or_ready(struct conn *server)
{
	server_set_state(server, SV_USED);
	if (server->proto->server_reset(server)) {
		server_set_state(server, SV_TESTED);
		return;
	}
	pool_server_ready(server);
}

/* --- cancel requests in flight --- */

void pool_cancel_begin(struct cancel_ref *ref, struct conn *server, struct conn *client)
{
	ref->server = server;
	ref->pool = server->pool;
	ref->client = client;
	ref->forwarded = false;
	list_add_tail(&server->cancels, &ref->node);
	list_init(&ref->client_node);
	if (client)
		list_add_tail(&client->cancels, &ref->client_node);
	ref->pool->n_cancel_waiting++;
}

void pool_cancel_forwarded(struct cancel_ref *ref)
{
	if (ref->forwarded)
		return;
	ref->forwarded = true;
	ref->pool->n_cancel_waiting--;
	ref->pool->n_cancel_active++;
}

void pool_cancel_end(struct cancel_ref *ref, bool settled)
{
	struct conn *server = ref->server;
	struct conn *client = ref->client;
	if (ref->forwarded)
		ref->pool->n_cancel_active--;
	else
		ref->pool->n_cancel_waiting--;
	admin_poke(ref->pool->core);
	if (client) {
		list_del(&ref->client_node);
		ref->client = NULL;
		client_close(client, "cancel request done");
	}
	if (!server)
		return;
	list_del(&ref->node);
	ref->server = NULL;
	if (!settled) {
		/* whether it will still hit is unknown: nobody else may run on this server */
		if (server->state == SV_BEING_CANCELED)
			server_close(server, "cancel request not confirmed by the server");
		else
			server->flags |= CONN_F_CLOSE_NEEDED;
		return;
	}
	if (server->state == SV_BEING_CANCELED && list_empty(&server->cancels))
		server_reset_or_ready(server);
}

/* The server is going away: its cancels in flight no longer hold anything back. */
static void server_drop_cancels(struct conn *s)
{
	struct list *it, *tmp;
	list_for_each_safe(it, tmp, &s->cancels)
	{
		struct cancel_ref *ref = list_entry(it, struct cancel_ref, node);
		list_del(&ref->node);
		ref->server = NULL;
	}
}

/* The requesting connection is going away: its cancels go on without it. */
static void client_drop_cancels(struct conn *c)
{
	struct list *it, *tmp;
	list_for_each_safe(it, tmp, &c->cancels)
	{
		struct cancel_ref *ref = list_entry(it, struct cancel_ref, client_node);
		list_del(&ref->client_node);
		ref->client = NULL;
	}
}

/*
 * server_lifetime: true when s has lived long enough and closing it now keeps the
 * pool's closings at least server_lifetime / pool size apart (PgBouncer's rule), so
 * a pool opened at once does not reconnect all at once. The caller closes s.
 */
static bool lifetime_close_due(struct conn *s)
{
	struct pool *pool = s->pool;
	usec_t lifetime = s->core->cfg->server_lifetime;
	usec_t now = loop_now(s->core->loop);
	if (!lifetime || wall_usec() - s->connect_time < lifetime)
		return false;
	int size = pool_effective_size(pool);
	usec_t gap = size > 0 ? lifetime / (usec_t)size : 0;
	if (pool->last_lifetime_close && now - pool->last_lifetime_close < gap)
		return false;
	pool->last_lifetime_close = now;
	return true;
}

/* A server login worked: the pool is up again. */
static void login_succeeded(struct pool *pool)
{
	pool->login_backoff = 0;
	pool->login_retry_at = 0;
	loop_timer_stop(pool->core->loop, &pool->retry_timer);
	if (!pool->login_error_msg)
		return;
	log_info("%s/%s: server login works again", pool->db->name, pool->user->name);
	free(pool->login_error_code);
	free(pool->login_error_msg);
	pool->login_error_code = pool->login_error_msg = NULL;
}

/* Login, reset or check done: the server goes to the head waiter, or idle. checked:
 * only a check ran, so the idle clock (request_time) goes on from before it. */
static void server_available(struct conn *server, bool checked)
{
	struct pool *pool = server->pool;
	struct core *core = server->core;
	usec_t used = server->request_time;
	loop_timer_stop(core->loop, &server->timer);
	if (server->state == SV_LOGIN)
		login_succeeded(pool);
	if (server->flags & CONN_F_CLOSE_NEEDED) {
		server_close(server, "close needed");
		return;
	}
	if (lifetime_close_due(server)) {
		server_close(server, "server_lifetime");
		return;
	}
	/* an idle server must hear the peer's FIN at once */
	if (server->flags & CONN_F_READ_PAUSED)
		conn_pause_read(server, false);
	if (core->run_state == RUN_WAIT_SERVERS) {
		server_set_state(server, SV_IDLE);
		core_check_shutdown(core);
		return;
	}
	if (!list_empty(&pool->waiting) && !pool_is_paused(pool)) {
		link_pair(list_entry(pool->waiting.next, struct conn, node), server);
		if (server->state != SV_JUSTFREE)
			pool_launch_servers(pool);
		return;
	}
	/* the reserve (or a pool made smaller) shrinks back once nobody waits */
	if (pool_total_servers(pool) > pool_effective_size(pool)) {
		server_close(server, "pool above its size, nobody waiting");
		return;
	}
	server_set_state(server, SV_IDLE);
	if (checked)
		server->request_time = used;
	conn_trim_buffers(server);
	pool_launch_servers(pool); /* min_pool_size */
	limits_wake(pool);         /* another pool may take it over */
	admin_poke(core);
}

void pool_server_ready(struct conn *server)
{
	server_available(server, false);
}

void pool_server_checked(struct conn *server, bool ok)
{
	struct pool *pool = server->pool;
	loop_timer_stop(server->core->loop, &server->timer);
	if (!ok) {
		/* whoever waited for this server gets another one, not an error */
		server_close(server, "server_check_query failed");
		serve_waiters(pool);
		pool_launch_servers(pool);
		return;
	}
	server->wait_start = loop_now(server->core->loop);
	server_available(server, true);
}

#define LOGIN_BACKOFF_FIRST (100 * USEC_PER_MSEC)
#define LOGIN_PROBE_MAX     USEC_PER_SEC

static void login_retry_due(struct loop *l, struct loop_timer *t, void *arg);

/* The protocol's code for one of the pooler's own errors: kept as the pool's login
 * error and relayed like a server's own. */
static const char *pool_err(const struct pool *pool, enum err_kind kind)
{
	return pool->db->proto->error_code(kind);
}

/*
 * The pool is down: remember the error, decide when the next login may be tried and
 * give the error to every waiter now (they would get the same after a wait).
 */
static void pool_login_failed(struct pool *pool, const char *code, const char *msg)
{
	struct core *core = pool->core;
	usec_t now = loop_now(core->loop);
	usec_t retry = core->cfg->server_login_retry;
	free(pool->login_error_code);
	free(pool->login_error_msg);
	pool->login_error_code = xstrdup(code);
	pool->login_error_msg = xstrdup(msg);
	pool->login_failed_at = now;
	if (!pool->db->proto->login_error_transient(code)) {
		pool->login_backoff = retry;
		pool->login_retry_at = now + retry;
	} else if (now >= pool->login_retry_at) {
		/* (an attempt started before the last failure does not count twice) */
		pool->login_backoff =
		    pool->login_backoff ? 2 * pool->login_backoff : LOGIN_BACKOFF_FIRST;
		if (pool->login_backoff > retry)
			pool->login_backoff = retry;
		pool->login_retry_at = now + pool->login_backoff;
	}
	/* the refusals may back off up to server_login_retry, but a transient outage is
	 * probed at least every LOGIN_PROBE_MAX, so the pool serves within about that once
	 * the server is back */
	usec_t probe = pool->login_retry_at > now ? pool->login_retry_at - now : 0;
	if (pool->db->proto->login_error_transient(code) && probe > LOGIN_PROBE_MAX)
		probe = LOGIN_PROBE_MAX;
	if (probe)
		loop_timer_start(core->loop, &pool->retry_timer, probe, 0, login_retry_due, pool);
	while (!list_empty(&pool->waiting)) {
		struct conn *c = list_entry(pool->waiting.next, struct conn, node);
		client_fail(c, code, msg);
	}
}

void pool_server_login_failed(struct conn *server, const char *code, const char *msg)
{
	struct pool *pool = server->pool;
	if (hosts_login_failed(server, code, msg)) /* a probe, or another host takes over */
		return;
	char *kept = xstrdup(code), *text = xstrdup(msg); /* msg may live in server */
	conn_log(server, LOG_LVL_WARNING, "server login failed: %s", msg);
	/* the error first, so that closing the server does not open another one */
	pool_login_failed(pool, kept, text);
	server_close(server, "login failed");
	free(kept);
	free(text);
}

/* --- opening server connections --- */

/* The head waiter has waited reserve_pool_timeout: the reserve may open. */
static bool reserve_open(const struct pool *pool)
{
	usec_t timeout = pool->core->cfg->reserve_pool_timeout;
	if (!timeout || pool_reserve_size(pool) <= 0 || list_empty(&pool->waiting))
		return false;
	const struct conn *head = list_entry(pool->waiting.next, struct conn, node);
	return loop_now(pool->core->loop) - head->wait_start >= timeout;
}

static void reserve_due(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	pool_launch_servers(arg);
}

/* The pool is full for its waiters: look again when the head one may use the reserve. */
static void arm_reserve_timer(struct pool *pool)
{
	usec_t timeout = pool->core->cfg->reserve_pool_timeout;
	struct loop *l = pool->core->loop;
	if (!timeout || pool_reserve_size(pool) <= 0 || list_empty(&pool->waiting) ||
	    loop_timer_armed(&pool->reserve_timer))
		return;
	const struct conn *head = list_entry(pool->waiting.next, struct conn, node);
	usec_t at = head->wait_start + timeout, now = loop_now(l);
	/* past due and still full (reserve used up, or a database/user limit): the next
	 * release or close launches; a timer now would only spin */
	if (at <= now)
		return;
	loop_timer_start(l, &pool->reserve_timer, at - now, 0, reserve_due, pool);
}

/* What keeps a pool from opening a server: nothing, its own size, or a limit it
 * shares with other pools (which may give up an idle server for it). */
enum server_limit { LIMIT_NONE, LIMIT_POOL, LIMIT_DB, LIMIT_USER };

/* for_waiters: a waiter needs the server (admin_pool_size and the reserve may apply);
 * otherwise it is for min_pool_size or a probe. */
static enum server_limit server_limit_hit(const struct pool *pool, bool for_waiters)
{
	const struct database *db = pool->db;
	const struct user *u = pool->user;
	/* a DBA at the head of the queue may use admin_pool_size servers beyond the limits */
	int extra = 0;
	if (for_waiters && !list_empty(&pool->waiting) &&
	    (list_entry(pool->waiting.next, struct conn, node)->flags & CONN_F_ADMIN_USER))
		extra = pool->core->cfg->admin_pool_size;
	int size = pool_effective_size(pool) + extra;
	if (for_waiters && reserve_open(pool))
		size += pool_reserve_size(pool);
	if (pool_total_servers(pool) >= size)
		return LIMIT_POOL;
	if (db->max_db_connections > 0 && db->n_servers >= db->max_db_connections + extra)
		return LIMIT_DB;
	if (u->max_user_connections > 0 && u->n_servers >= u->max_user_connections + extra)
		return LIMIT_USER;
	return LIMIT_NONE;
}

static bool server_limits_allow(const struct pool *pool, bool for_waiters)
{
	return server_limit_hit(pool, for_waiters) == LIMIT_NONE;
}

/*
 * A waiting pool is held back by max_db_connections or max_user_connections while
 * other pools under the same limit keep idle servers: close the one idle longest, so
 * the limit cannot starve a pool (PgBouncer's evict_connection). false: none to close.
 */
static bool evict_idle_server(struct pool *pool, enum server_limit limit)
{
	struct conn *oldest = NULL;
	struct list *it, *s;
	list_for_each(it, &pool->core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (p == pool || (limit == LIMIT_DB ? p->db != pool->db : p->user != pool->user))
			continue;
		list_for_each(s, &p->servers[SV_IDLE])
		{
			struct conn *sv = list_entry(s, struct conn, node);
			if (!oldest || sv->request_time < oldest->request_time)
				oldest = sv;
		}
	}
	if (!oldest)
		return false;
	server_close(oldest, limit == LIMIT_DB
	                         ? "evicted: max_db_connections, another pool waits"
	                         : "evicted: max_user_connections, another pool waits");
	return true;
}

static void server_connect_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	struct conn *s = arg;
	(void)l;
	(void)t;
	pool_server_login_failed(s, pool_err(s->pool, ERR_SERVER_LOGIN_TIMEOUT),
	                         "server login timed out (server_connect_timeout)");
}

/* pool_connect_socket(): no socket yet, the host name is being looked up */
#define CONNECT_PENDING (-2)
/* no socket: sluice is out of descriptors (EMFILE/ENFILE) */
#define CONNECT_NO_FD (-3)

static void fd_short_begin(struct pool *pool, const char *err);
static void fd_short_end(struct pool *pool);

/* A server connection around a connecting socket, counted in its pool; NULL (and the
 * socket closed) when the loop cannot watch it. */
static struct conn *new_server_conn(struct pool *pool, int fd, const struct sockaddr_storage *addr,
                                    int host)
{
	struct conn *s = conn_new(pool->core, fd, true);
	s->host_idx = host;
	s->proto = pool->db->proto;
	s->pool = pool;
	s->addr = *addr;
	s->db_name = xstrdup(pool->db->name);
	s->user_name = xstrdup(pool->user->name);
	s->state = SV_JUSTFREE; /* not on any list yet */
	server_set_state(s, SV_CONNECTING);
	pool->db->n_servers++;
	pool->user->n_servers++;
	if (!conn_watch(s, true)) {
		server_close(s, "cannot watch socket");
		return NULL;
	}
	return s;
}

/*
 * false: stop launching, because the connect failed (the waiters are told why) or a host
 * name lookup runs (the dns hooks wake the pool through pool_wake_database when it ends).
 */
static bool launch_one(struct pool *pool)
{
	struct core *core = pool->core;
	struct sockaddr_storage addr;
	char err[256];
	int host = -1;
	int fd = pool_connect_socket(pool, &addr, &host, err, sizeof(err));
	if (fd == CONNECT_PENDING)
		return false;
	if (fd == CONNECT_NO_FD) {
		fd_short_begin(pool, err); /* the waiters wait: see fd_short_begin */
		return false;
	}
	if (fd < 0) {
		log_warning("%s/%s: cannot connect to server: %s", pool->db->name, pool->user->name,
		            err);
		goto fail;
	}
	struct conn *s = new_server_conn(pool, fd, &addr, host);
	if (!s) {
		snprintf(err, sizeof(err), "cannot watch socket");
		goto fail;
	}
	fd_short_end(pool);
	if (core->cfg->server_connect_timeout) /* 0: no limit */
		loop_timer_start(core->loop, &s->timer, core->cfg->server_connect_timeout, 0,
		                 server_connect_expired, s);
	conn_log(s, LOG_LVL_DEBUG, "connecting");
	return true;
fail:;
	/* every waiter would get the same answer: give it now, with the cause */
	char msg[400];
	snprintf(msg, sizeof(msg), "server connection failed for database %s: %s", pool->db->name,
	         err);
	pool_login_failed(pool, pool_err(pool, ERR_SERVER_CONNECT_FAILED),
	                  msg); /* down: back off, and tell the waiters */
	return false;
}

/*
 * min_pool_size is kept for a pool that has clients, and, as PgBouncer does, for a
 * database's forced-user pool even without any (the janitor creates that pool).
 */
static bool pool_below_min(const struct pool *pool)
{
	return pool->core->run_state == RUN_NORMAL && !pool->db->stale && !pool_is_paused(pool) &&
	       (pool->n_waiting + pool->n_active + pool->n_idle > 0 || pool->db->force_user) &&
	       pool_total_servers(pool) < pool_min_size(pool);
}

/*
 * Opens servers for the waiters nothing else will serve, and up to min_pool_size;
 * at most server_connect_concurrency connects and logins at a time (PgBouncer: one),
 * so a burst of clients does not become a burst of logins. Each login that completes
 * comes back here for the next.
 */
static void pool_launch_servers(struct pool *pool)
{
	struct core *core = pool->core;
	if (core->run_state != RUN_NORMAL && core->run_state != RUN_WAIT_CLIENTS)
		return;
	for (;;) {
		bool for_waiters = unmet_demand(pool) > 0;
		if (!for_waiters && !pool_below_min(pool))
			return;
		if (connects_in_flight(pool) >= core->cfg->server_connect_concurrency ||
		    login_backoff_active(pool))
			return;
		enum server_limit hit = server_limit_hit(pool, for_waiters);
		if (hit != LIMIT_NONE) {
			if (for_waiters && hit != LIMIT_POOL && evict_idle_server(pool, hit))
				continue;
			if (for_waiters)
				arm_reserve_timer(pool);
			return;
		}
		if (for_waiters && pool_total_servers(pool) >= pool_effective_size(pool) &&
		    reserve_open(pool))
			conn_log(list_entry(pool->waiting.next, struct conn, node), LOG_LVL_WARNING,
			         "taking connection from reserve_pool");
		if (!launch_one(pool))
			return;
	}
}

/* --- out of descriptors --- */

/*
 * A server connect that finds sluice out of descriptors is no server failure: the
 * pool is not marked down and its waiters keep waiting, for a server that frees up or
 * until query_wait_timeout. The connect is tried again once a descriptor is given
 * back (pool_fd_freed, after any connection closes) and by the janitor. Admission
 * keeps descriptors back for servers (max_client_conn is capped against the limit at
 * start-up), so this is the exception: the episode is logged once per pool.
 */
static void fd_short_begin(struct pool *pool, const char *err)
{
	struct core *core = pool->core;
	core->fd_short = true;
	if (pool->fd_short)
		return;
	pool->fd_short = true;
	log_warning("%s/%s: cannot open a server connection: %s; %d waiting clients keep "
	            "waiting until a descriptor is free",
	            pool->db->name, pool->user->name, err, pool->n_waiting);
}

static void fd_short_end(struct pool *pool)
{
	if (!pool->fd_short)
		return;
	pool->fd_short = false;
	log_info("%s/%s: server connections can be opened again", pool->db->name, pool->user->name);
}

static void fd_retry_due(struct loop *l, struct loop_timer *t, void *arg)
{
	struct core *core = arg;
	struct list *it;
	(void)l;
	(void)t;
	core->fd_short = false;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (!pool->fd_short)
			continue;
		if (unmet_demand(pool) <= 0 && !pool_below_min(pool)) {
			fd_short_end(pool); /* nobody needs the server any more */
			continue;
		}
		pool_launch_servers(pool); /* sets core->fd_short again if still short */
	}
}

void pool_fd_freed(struct core *core)
{
	/* once per loop iteration, however many connections close in it */
	if (core->fd_short && !loop_timer_armed(&core->fd_retry))
		loop_timer_start(core->loop, &core->fd_retry, 0, 0, fd_retry_due, core);
}

/* --- limits shared by pools --- */

static bool shares_limits(const struct pool *pool)
{
	return pool->db->max_db_connections > 0 || pool->user->max_user_connections > 0;
}

static void limits_retry_due(struct loop *l, struct loop_timer *t, void *arg)
{
	struct core *core = arg;
	struct list *it;
	(void)l;
	(void)t;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (shares_limits(pool) && unmet_demand(pool) > 0)
			pool_launch_servers(pool); /* may take over an idle server (evict) */
	}
}

/*
 * A server of a pool under max_db_connections or max_user_connections went idle or
 * closed: pools waiting under the same limit may open one now (taking the idle one
 * over), rather than at the janitor's next pass. Once per loop pass, after the
 * callback that freed it, so no launch runs inside another's teardown.
 */
static void limits_wake(struct pool *pool)
{
	struct core *core = pool->core;
	if (shares_limits(pool) && !loop_timer_armed(&core->limits_retry))
		loop_timer_start(core->loop, &core->limits_retry, 0, 0, limits_retry_due, core);
}

/* server_login_retry is over for a down pool: try one login in the background, for
 * a pool that someone uses or keeps warm. */
static void login_retry_due(struct loop *l, struct loop_timer *t, void *arg)
{
	struct pool *pool = arg;
	(void)l;
	(void)t;
	if (!pool->login_error_msg || pool->db->stale || pool->core->run_state != RUN_NORMAL ||
	    pool_is_paused(pool))
		return;
	/* probed for a pool someone uses, keeps warm, or was refused to lately */
	usec_t now = loop_now(pool->core->loop);
	if (pool->n_waiting + pool->n_active + pool->n_idle == 0 &&
	    !(pool->db->force_user && pool_min_size(pool) > 0) &&
	    now - pool->refused_at > pool->core->cfg->server_login_retry)
		return;
	if (connects_in_flight(pool) > 0 || !server_limits_allow(pool, false))
		return;
	log_debug("%s/%s: probing the server", pool->db->name, pool->user->name);
	(void)launch_one(pool);
}

static void server_connected(struct conn *s)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == EINPROGRESS)
		return;
	if (err) {
		char msg[256];
		char addr[128];
		snprintf(msg, sizeof(msg), "server connection failed: %s (%s)", strerror(err),
		         conn_addr_str(&s->addr, addr, sizeof(addr)));
		pool_server_login_failed(s, pool_err(s->pool, ERR_SERVER_CONNECT_FAILED), msg);
		return;
	}
	len = sizeof(s->local_addr);
	getsockname(s->fd, (struct sockaddr *)&s->local_addr, &len);
	server_set_state(s, SV_LOGIN);
	if (!loop_set_mask(s->core->loop, s->fd, LOOP_READ)) {
		server_close(s, "cannot watch socket");
		return;
	}
	s->proto->server_connected(s);
}

/* A non-blocking socket with connect() to addr under way; -1 with err, or
 * CONNECT_NO_FD when sluice is out of descriptors. */
static int connect_addr(const struct config *cfg, const struct sockaddr_storage *addr, char *err,
                        size_t errlen)
{
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return e == EMFILE || e == ENFILE ? CONNECT_NO_FD : -1;
	}
	if (addr->ss_family != AF_UNIX)
		net_tune_tcp(fd, cfg);
	if (connect(fd, (const struct sockaddr *)addr, net_addr_len(addr)) < 0 &&
	    errno != EINPROGRESS) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Host i of the pool's database: resolve, connect, and tell hosts.c how it went. */
static int connect_host(struct pool *pool, size_t i, struct sockaddr_storage *addr, char *err,
                        size_t errlen)
{
	const struct database *db = pool->db;
	const struct config *cfg = pool->core->cfg;
	const struct host *h = &db->hosts->v[i];
	switch (dns_resolve_server(pool->core->dns, h->name, h->port, db->proto->unix_socket_prefix,
	                           cfg->unix_socket_dir, addr, err, errlen)) {
	case DNS_OK:
		break;
	case DNS_PENDING:
		return CONNECT_PENDING;
	case DNS_FAILED:
		hosts_connect_error(pool, i, err);
		return -1;
	}
	int fd = connect_addr(cfg, addr, err, errlen);
	if (fd == CONNECT_NO_FD)
		return fd; /* sluice's shortage: nothing against the host */
	if (fd < 0)
		hosts_connect_error(pool, i, err);
	else
		hosts_connecting(pool);
	return fd;
}

int pool_connect_socket(struct pool *pool, struct sockaddr_storage *addr, int *host, char *err,
                        size_t errlen)
{
	int fd = -1;
	/* a host that fails at once counts against it and the next pick avoids it */
	for (size_t tries = 0; fd == -1 && tries < pool->db->hosts->n; tries++) {
		size_t i = hosts_pick(pool);
		fd = connect_host(pool, i, addr, err, errlen);
		*host = (int)i;
	}
	return fd;
}

int pool_connect_server_addr(const struct conn *server, struct sockaddr_storage *addr, char *err,
                             size_t errlen)
{
	*addr = server->addr;
	return connect_addr(server->core->cfg, addr, err, errlen);
}

struct conn *pool_launch_probe(struct pool *pool, size_t host)
{
	struct core *core = pool->core;
	struct sockaddr_storage addr;
	char err[256];
	int fd = connect_host(pool, host, &addr, err, sizeof(err));
	if (fd < 0)
		return NULL;
	/* as launch_one, outside the pool's limits: it lives for one login */
	struct conn *s = new_server_conn(pool, fd, &addr, (int)host);
	if (!s)
		return NULL;
	s->flags |= CONN_F_PROBE;
	pool->n_probes++;
	usec_t limit = core->cfg->server_connect_timeout;
	loop_timer_start(core->loop, &s->timer, limit ? limit : core->cfg->health_check_period, 0,
	                 server_connect_expired, s);
	return s;
}

/* --- teardown --- */

void client_fail(struct conn *client, const char *code, const char *msg)
{
	if (client->state == CL_JUSTFREE)
		return;
	client->proto->client_error(client, code, msg, true);
	conn_flush_all();
	client_close(client, msg);
}

void client_fail_kind(struct conn *client, enum err_kind kind, const char *msg)
{
	client_fail(client, client->proto->error_code(kind), msg);
}

void client_close(struct conn *c, const char *reason)
{
	struct core *core = c->core;
	if (c->state == CL_JUSTFREE)
		return;
	if (core->cfg->log_disconnections && c->state != CL_LOGIN)
		conn_log(c, LOG_LVL_INFO, "closing because: %s", reason);
	else
		conn_log(c, LOG_LVL_DEBUG, "closing because: %s", reason);
	if (c->link)
		pool_release(c);
	client_drop_cancels(c);
	loop_timer_stop(core->loop, &c->timer);
	if (c->flags & CONN_F_ADMIN) {
		list_del(&c->node);
		core->n_admin_clients--;
	}
	client_set_state(c, CL_JUSTFREE);
	if (c->pool)
		c->pool->db->n_clients--;
	core->n_clients--;
	conn_close_socket(c);
	listen_reserve_return(c); /* a descriptor lent from the reserve is free again now */
	pool_fd_freed(core);
	loop_defer_free(core->loop, conn_destroy, c);
	core_check_shutdown(core);
}

void server_close(struct conn *s, const char *reason)
{
	struct pool *pool = s->pool;
	struct core *core = s->core;
	if (s->state == SV_JUSTFREE)
		return;
	conn_log(s, s->state == SV_IDLE || s->state == SV_TESTED ? LOG_LVL_DEBUG : LOG_LVL_INFO,
	         "closing because: %s", reason);
	struct conn *client = s->link;
	if (client) {
		client->link = NULL;
		s->link = NULL;
		/* the client's session lived on this server: it cannot go on without it */
		client_fail_kind(client, ERR_SERVER_LOST,
		                 "server conn crashed? server closed the connection");
	}
	server_drop_cancels(s);
	server_set_state(s, SV_JUSTFREE);
	pool->db->n_servers--;
	pool->user->n_servers--;
	if (s->flags & CONN_F_PROBE)
		pool->n_probes--;
	conn_close_socket(s);
	loop_defer_free(core->loop, conn_destroy, s);
	pool_fd_freed(core);
	limits_wake(pool);
	if (!list_empty(&pool->waiting))
		pool_launch_servers(pool);
	admin_poke(core);
	core_check_shutdown(core);
}

static void conn_failed(struct conn *c, const char *reason)
{
	char msg[256];
	if (!c->is_server) {
		client_close(c, reason);
		return;
	}
	if (c->state == SV_CONNECTING || c->state == SV_LOGIN) {
		snprintf(msg, sizeof(msg), "server connection failed: %s", reason);
		pool_server_login_failed(c, pool_err(c->pool, ERR_SERVER_CONNECT_FAILED), msg);
		return;
	}
	server_close(c, reason);
}

static const struct conn_hooks pool_conn_hooks = {
    .connected = server_connected,
    .failed = conn_failed,
};

void pool_init(void)
{
	conn_set_hooks(&pool_conn_hooks);
}

/* --- periodic work and lookups --- */

/*
 * Idle servers: server_idle_timeout (never below min_pool_size), server_lifetime
 * (spread out, see lifetime_close_due), and servers beyond the pool size (the reserve,
 * or a pool made smaller by RELOAD) that nobody waits for.
 */
static void pool_evict_idle(struct pool *pool)
{
	const struct config *cfg = pool->core->cfg;
	usec_t now = loop_now(pool->core->loop);
	struct list *it;
	int keep = pool_min_size(pool);
	struct conn *oldest;
	/* a close may close other servers too (a PAUSE finishing): walk again after each */
restart:
	oldest = NULL;
	list_for_each(it, &pool->servers[SV_IDLE])
	{
		struct conn *s = list_entry(it, struct conn, node);
		usec_t idle = now - s->request_time;
		if (cfg->server_idle_timeout && idle > cfg->server_idle_timeout &&
		    pool_total_servers(pool) > keep) {
			server_close(s, "server_idle_timeout");
			goto restart;
		}
		if (pool_total_servers(pool) > pool_effective_size(pool)) {
			server_close(s, "pool above its size, nobody waiting");
			goto restart;
		}
		if (!oldest || s->connect_time < oldest->connect_time)
			oldest = s;
	}
	/* oldest first: the younger ones wait for their turn */
	if (oldest && lifetime_close_due(oldest))
		server_close(oldest, "server_lifetime");
}

/* server_check_query on the servers idle for server_check_delay, in the background. */
static void pool_check_idle(struct pool *pool)
{
	usec_t now = loop_now(pool->core->loop);
	struct list *it;
	if (!pool->core->cfg->server_check_delay || pool->core->run_state != RUN_NORMAL ||
	    pool_is_paused(pool))
		return;
restart: /* as in pick_idle */
	list_for_each(it, &pool->servers[SV_IDLE])
	{
		struct conn *s = list_entry(it, struct conn, node);
		if (server_needs_check(s, now)) {
			server_start_check(s);
			goto restart;
		}
	}
}

/*
 * server_fast_close (session pooling): a server marked close_needed is closed as soon
 * as it is between transactions, with its client, instead of at the session's end.
 */
static void pool_fast_close(struct pool *pool)
{
	struct list *it;
	if (!pool->core->cfg->server_fast_close || pool_effective_mode(pool) != POOL_SESSION)
		return;
	/* each close may close others (client_fail flushes output): walk again after it,
	 * at most as many times as there were active servers */
	for (int n = pool->n_servers[SV_ACTIVE]; n > 0; n--) {
		struct conn *due = NULL;
		list_for_each(it, &pool->servers[SV_ACTIVE])
		{
			struct conn *s = list_entry(it, struct conn, node);
			if ((s->flags & CONN_F_CLOSE_NEEDED) && s->link &&
			    s->proto->server_clean(s)) {
				due = s;
				break;
			}
		}
		if (!due)
			return;
		/* the client's session ends with the server: it is told why */
		client_fail_kind(due->link, ERR_SERVER_FAST_CLOSE,
		                 "server connection closed: the database's configuration changed "
		                 "(server_fast_close)");
	}
}

/* As PgBouncer: a database with a forced user and a min_pool_size gets its pool at
 * once, so that min_pool_size is kept before any client comes. */
static void create_forced_user_pools(struct core *core)
{
	const struct config *cfg = core->cfg;
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *e = cfg->dbs[i];
		int min = e->min_pool_size >= 0 ? e->min_pool_size : cfg->min_pool_size;
		if (!e->user || min <= 0 || strcmp(e->name, "*") == 0)
			continue;
		struct database *db = database_lookup(core, e->name);
		if (db && db->force_user)
			pool_get(core, db, user_lookup(core, db->force_user));
	}
}

void pool_janitor(struct core *core)
{
	struct list *it;
	if (core->run_state == RUN_NORMAL)
		create_forced_user_pools(core);
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		pool_evict_idle(pool);
		pool_check_idle(pool);
		pool_fast_close(pool);
		/* min_pool_size, and waiters held back by a backoff or by a database/user
		 * limit that another pool's closing servers may have lifted */
		pool_launch_servers(pool);
	}
}

typedef bool (*client_match)(const struct conn *c, const void *arg);

static struct conn *find_in(struct list *head, client_match match, const void *arg)
{
	struct list *it;
	list_for_each(it, head)
	{
		struct conn *c = list_entry(it, struct conn, node);
		if (match(c, arg))
			return c;
	}
	return NULL;
}

/* The first pooled client (waiting, active or idle) that matches. */
static struct conn *find_pooled_client(struct core *core, client_match match, const void *arg)
{
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[] = {&pool->active, &pool->waiting, &pool->idle};
		for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
			struct conn *c = find_in(lists[i], match, arg);
			if (c)
				return c;
		}
	}
	return NULL;
}

static bool match_cancel_key(const struct conn *c, const void *arg)
{
	const uint32_t *k = arg;
	return c->cancel_pid == k[0] && c->cancel_key == k[1];
}

struct conn *pool_find_client_by_cancel_key(struct core *core, uint32_t pid, uint32_t key)
{
	const uint32_t k[2] = {pid, key};
	return find_pooled_client(core, match_cancel_key, k);
}

/* --- admin console operations --- */

void pool_client_enter_admin(struct core *core, struct conn *client)
{
	list_del(&client->node);
	client->flags |= CONN_F_ADMIN;
	client->state = CL_ACTIVE;
	list_add_tail(&core->admin_clients, &client->node);
	core->n_admin_clients++;
}

void pool_wake_database(struct core *core, struct database *db)
{
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (pool->db != db || list_empty(&pool->waiting))
			continue;
		serve_waiters(pool);
		pool_launch_servers(pool);
	}
}

void pool_mark_close_needed(struct core *core, struct database *db)
{
	mark_db_servers_close(core, db);
}

void pool_fail_waiting(struct core *core, enum err_kind kind, const char *msg)
{
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		while (!list_empty(&pool->waiting))
			client_fail_kind(list_entry(pool->waiting.next, struct conn, node), kind,
			                 msg);
	}
}

void pool_kill_database(struct core *core, struct database *db)
{
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (pool->db != db)
			continue;
		struct list *lists[] = {&pool->waiting, &pool->active, &pool->idle};
		for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
			while (!list_empty(lists[i]))
				client_fail_kind(list_entry(lists[i]->next, struct conn, node),
				                 ERR_ADMIN_KILLED,
				                 "database killed by admin (KILL)");
		for (int st = 0; st < SV_JUSTFREE; st++)
			while (!list_empty(&pool->servers[st]))
				server_close(list_entry(pool->servers[st].next, struct conn, node),
				             "killed by admin");
	}
}

static void suspend_list(struct list *head, bool suspend)
{
	struct list *it;
	list_for_each(it, head)
	{
		struct conn *c = list_entry(it, struct conn, node);
		conn_pause_read(c, suspend);
	}
}

void pool_suspend_all(struct core *core, bool suspend)
{
	struct list *it;
	suspend_list(&core->login_clients, suspend);
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		suspend_list(&pool->waiting, suspend);
		suspend_list(&pool->active, suspend);
		suspend_list(&pool->idle, suspend);
		for (int st = 0; st < SV_JUSTFREE; st++)
			suspend_list(&pool->servers[st], suspend);
		if (!suspend)
			serve_waiters(pool);
	}
}

static bool match_id(const struct conn *c, const void *arg)
{
	return c->id == *(const uint64_t *)arg;
}

struct conn *pool_find_client_by_id(struct core *core, uint64_t id)
{
	struct conn *c = find_in(&core->login_clients, match_id, &id);
	if (!c)
		c = find_in(&core->admin_clients, match_id, &id);
	return c ? c : find_pooled_client(core, match_id, &id);
}

/* --- exit --- */

static void close_list(struct list *head, bool servers)
{
	while (!list_empty(head)) {
		struct conn *c = list_entry(head->next, struct conn, node);
		if (servers)
			server_close(c, "shutting down");
		else
			client_close(c, "shutting down");
	}
}

void pool_free_all(struct core *core)
{
	struct list *it;
	close_list(&core->login_clients, false);
	close_list(&core->admin_clients, false);
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		close_list(&pool->waiting, false);
		close_list(&pool->active, false);
		close_list(&pool->idle, false);
		for (int st = 0; st < SV_JUSTFREE; st++)
			close_list(&pool->servers[st], true);
	}
	loop_timer_stop(core->loop, &core->fd_retry);
	loop_timer_stop(core->loop, &core->limits_retry);
	while ((it = list_pop_head(&core->pools)) != NULL) {
		struct pool *pool = list_entry(it, struct pool, node);
		if (pool->pstate_free)
			pool->pstate_free(pool->pstate);
		loop_timer_stop(core->loop, &pool->retry_timer);
		loop_timer_stop(core->loop, &pool->reserve_timer);
		free(pool->login_error_code);
		free(pool->login_error_msg);
		free(pool);
	}
	while ((it = list_pop_head(&core->databases)) != NULL) {
		struct database *db = list_entry(it, struct database, node);
		database_clear(db);
		free(db->name);
		free(db);
	}
	while ((it = list_pop_head(&core->users)) != NULL) {
		struct user *u = list_entry(it, struct user, node);
		free(u->name);
		explicit_bzero(u, sizeof(*u));
		free(u);
	}
}
