/*
 * hosts: which of a database's hosts a new server connection goes to, and what sluice
 * knows about each host: up or down (health_check_fails / health_check_passes), and
 * the role its last login reported (in_hot_standby, default_transaction_read_only) as
 * target_session_attrs needs it. The first half is the state machine, pure and unit
 * tested; the second half is its glue to the pool: it reads server results, runs the
 * probe timer of a set with a host to watch, and closes probes and refused servers
 * through pool.c's teardown. It never opens a socket itself (pool.c does, for the host
 * this file names) and never touches a pool's lists or counters.
 */
#include "hosts.h"

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "conn.h"
#include "core.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "util.h"

/* ---- the state machine ------------------------------------------------------------ */

/* Copies the i-th element of a comma separated list, blanks around it removed. */
static char *list_item(const char *list, size_t i)
{
	const char *p = list;
	for (; i > 0 && p; i--) {
		p = strchr(p, ',');
		if (p)
			p++;
	}
	if (!p)
		return NULL;
	size_t len = strcspn(p, ",");
	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	return xstrndup(p, len);
}

static size_t list_len(const char *list)
{
	size_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

struct host_set *host_set_new(const char *hosts, const char *ports, int default_port,
                              enum lb_mode lb, enum tsa_mode tsa)
{
	struct host_set *hs = xcalloc(1, sizeof(*hs));
	hs->n = hosts ? list_len(hosts) : 1;
	hs->v = xcalloc(hs->n, sizeof(*hs->v));
	hs->lb = lb;
	hs->tsa = tsa;
	hs->avoid = -1;
	size_t n_ports = ports ? list_len(ports) : 0;
	for (size_t i = 0; i < hs->n; i++) {
		struct host *h = &hs->v[i];
		h->name = hosts ? list_item(hosts, i) : NULL;
		h->port = default_port;
		if (n_ports) {
			char *p = list_item(ports, n_ports == 1 ? 0 : i % n_ports);
			int port = p ? atoi(p) : 0;
			if (port > 0 && port <= 65535)
				h->port = port;
			free(p);
		}
		h->hot_standby = h->read_only = -1;
	}
	return hs;
}

void host_set_free(struct host_set *hs)
{
	if (!hs)
		return;
	for (size_t i = 0; i < hs->n; i++)
		free(hs->v[i].name);
	free(hs->v);
	free(hs);
}

static bool same_name(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool host_set_same(const struct host_set *a, const struct host_set *b)
{
	if (!a || !b)
		return a == b;
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!same_name(a->v[i].name, b->v[i].name) || a->v[i].port != b->v[i].port)
			return false;
	return true;
}

void host_set_carry(struct host_set *fresh, const struct host_set *old)
{
	for (size_t i = 0; i < fresh->n; i++) {
		struct host *h = &fresh->v[i];
		for (size_t j = 0; j < old->n; j++) {
			const struct host *o = &old->v[j];
			if (!same_name(h->name, o->name) || h->port != o->port)
				continue;
			h->health = o->health;
			h->fails = o->fails;
			h->passes = o->passes;
			h->hot_standby = o->hot_standby;
			h->read_only = o->read_only;
			h->seen = o->seen;
			/* target_session_attrs may have changed: judge the last report again */
			h->mismatch =
			    h->seen && tsa_suits(fresh->tsa, h->hot_standby, h->read_only) != 1;
			h->probe_id = o->probe_id;
			break;
		}
	}
	fresh->rr_next = old->rr_next % fresh->n;
	fresh->refused_id = old->refused_id;
}

bool host_usable(const struct host_set *hs, size_t i)
{
	return hs->v[i].health == HOST_UP && !hs->v[i].mismatch;
}

bool host_set_has_usable(const struct host_set *hs, long except)
{
	for (size_t i = 0; i < hs->n; i++)
		if ((long)i != except && host_usable(hs, i))
			return true;
	return false;
}

/* The preference groups of host_pick, best first. */
static bool in_group(const struct host_set *hs, size_t i, int group)
{
	const struct host *h = &hs->v[i];
	switch (group) {
	case 0:
		return h->health == HOST_UP && !h->mismatch;
	case 1:
		return h->health == HOST_UP;
	case 2:
		return !h->mismatch;
	default:
		return true;
	}
}

size_t host_pick(struct host_set *hs, const int *busy)
{
	long avoid = hs->avoid;
	hs->avoid = -1;
	if (hs->n == 1)
		return 0;
	for (int group = 0; group < 4; group++) {
		long best = -1;
		for (size_t k = 0; k < hs->n; k++) {
			/* disable: list order; the others start at the round-robin cursor */
			size_t i = hs->lb == LB_DISABLE ? k : (hs->rr_next + k) % hs->n;
			if ((long)i == avoid || !in_group(hs, i, group))
				continue;
			if (hs->lb != LB_LEAST_BUSY || !busy) {
				best = (long)i;
				break;
			}
			if (best < 0 || busy[i] < busy[best])
				best = (long)i;
		}
		if (best >= 0) {
			if (hs->lb != LB_DISABLE)
				hs->rr_next = ((size_t)best + 1) % hs->n;
			return (size_t)best;
		}
	}
	return avoid >= 0 && (size_t)avoid < hs->n ? (size_t)avoid : 0;
}

enum host_event host_failed(struct host_set *hs, size_t i, int fail_limit)
{
	struct host *h = &hs->v[i];
	h->passes = 0;
	if (h->fails < INT_MAX)
		h->fails++;
	if (h->health == HOST_UP && h->fails >= fail_limit) {
		h->health = HOST_DOWN;
		return HOST_EV_DOWN;
	}
	return HOST_EV_NONE;
}

enum host_event host_passed(struct host_set *hs, size_t i, int pass_limit)
{
	struct host *h = &hs->v[i];
	h->fails = 0;
	if (h->health == HOST_UP)
		return HOST_EV_NONE;
	if (++h->passes >= pass_limit) {
		h->health = HOST_UP;
		h->passes = 0;
		return HOST_EV_UP;
	}
	return HOST_EV_NONE;
}

/* As libpq judges a server for each target_session_attrs value (PostgreSQL 14+ reports
 * both parameters at login). */
int tsa_suits(enum tsa_mode mode, int hot_standby, int read_only)
{
	switch (mode) {
	case TSA_ANY:
		return 1;
	case TSA_READ_WRITE:
		if (hot_standby == 1 || read_only == 1)
			return 0;
		return hot_standby == 0 && read_only == 0 ? 1 : -1;
	case TSA_READ_ONLY:
		if (hot_standby == 1 || read_only == 1)
			return 1;
		return hot_standby == 0 && read_only == 0 ? 0 : -1;
	case TSA_PRIMARY:
		return hot_standby < 0 ? -1 : hot_standby == 0;
	case TSA_STANDBY:
	case TSA_PREFER_STANDBY:
		return hot_standby < 0 ? -1 : hot_standby == 1;
	}
	return -1;
}

enum tsa_verdict host_role_seen(struct host_set *hs, size_t i, int hot_standby, int read_only)
{
	struct host *h = &hs->v[i];
	h->hot_standby = (signed char)hot_standby;
	h->read_only = (signed char)read_only;
	h->seen = true;
	h->mismatch = tsa_suits(hs->tsa, hot_standby, read_only) != 1;
	if (!h->mismatch)
		return TSA_ACCEPT;
	if (host_set_has_usable(hs, (long)i))
		return TSA_RETRY;
	/* prefer-standby takes a primary when no standby is there, as libpq does */
	return hs->tsa == TSA_PREFER_STANDBY ? TSA_ACCEPT : TSA_REFUSE;
}

bool host_needs_probe(const struct host_set *hs, size_t i)
{
	return hs->v[i].health == HOST_DOWN || hs->v[i].mismatch;
}

const char *host_health_name(enum host_health h)
{
	return h == HOST_DOWN ? "down" : "up";
}

void host_set_format(const struct host_set *hs, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; hs && i < hs->n && used < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s", i ? "," : "",
		                 hs->v[i].name ? hs->v[i].name : "");
		if (w < 0)
			break;
		used += (size_t)w;
	}
}

/* ---- the pool's side ---------------------------------------------------------------- */

static void host_label(const struct host_set *hs, size_t i, char *buf, size_t len)
{
	const struct host *h = &hs->v[i];
	snprintf(buf, len, "%s:%d", h->name && h->name[0] ? h->name : "unix", h->port);
}

static long probe_host(const struct host_set *hs, uint64_t id)
{
	for (size_t i = 0; id && i < hs->n; i++)
		if (hs->v[i].probe_id == id)
			return (long)i;
	return -1;
}

static void bind_set(struct pool *pool)
{
	struct host_set *hs = pool->db->hosts;
	hs->core = pool->core;
	hs->db = pool->db;
}

/* Servers of the database on each host, every pool and state together. */
static void count_busy(const struct host_set *hs, int *busy)
{
	struct list *it, *s;
	list_for_each(it, &hs->core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (p->db != hs->db)
			continue;
		for (int st = 0; st < SV_JUSTFREE; st++)
			list_for_each(s, &p->servers[st])
			{
				long i = hosts_server_host(list_entry(s, struct conn, node));
				if (i >= 0)
					busy[i]++;
			}
	}
}

size_t hosts_pick(struct pool *pool)
{
	struct host_set *hs = pool->db->hosts;
	bind_set(pool);
	if (hs->n == 1)
		return 0;
	if (hs->lb != LB_LEAST_BUSY)
		return host_pick(hs, NULL);
	int *busy = xcalloc(hs->n, sizeof(*busy));
	count_busy(hs, busy);
	size_t i = host_pick(hs, busy);
	free(busy);
	return i;
}

static void probe_tick(struct loop *l, struct loop_timer *t, void *arg);

/* Probes run only where there is a choice: a single host is tried whatever its state. */
static void arm_probes(struct host_set *hs)
{
	usec_t period = hs->core ? hs->core->cfg->health_check_period : 0;
	if (!period || hs->n < 2 || loop_timer_armed(&hs->probe_timer))
		return;
	loop_timer_start(hs->core->loop, &hs->probe_timer, period, period, probe_tick, hs);
}

static void note_failure(struct host_set *hs, size_t i, const char *why)
{
	const struct config *cfg = hs->core->cfg;
	char label[300];
	host_label(hs, i, label, sizeof(label));
	if (host_failed(hs, i, cfg->health_check_fails) == HOST_EV_DOWN)
		log_warning("database %s: host %s is down after %d failure%s in a row (last: %s)",
		            hs->db->name, label, hs->v[i].fails, hs->v[i].fails == 1 ? "" : "s",
		            why);
	if (host_needs_probe(hs, i))
		arm_probes(hs);
}

void hosts_connecting(struct pool *pool)
{
	bind_set(pool);
}

void hosts_connect_error(struct pool *pool, size_t i, const char *err)
{
	struct host_set *hs = pool->db->hosts;
	bind_set(pool);
	note_failure(hs, i, err);
	hs->avoid = (long)i;
}

bool hosts_login_failed(struct conn *server, const char *code, const char *msg)
{
	struct host_set *hs = server->pool->db->hosts;
	if (!hs)
		return false;
	bind_set(server->pool);
	if (hs->refused_id && hs->refused_id == server->id) {
		hs->refused_id = 0; /* hosts_login_done refused it: not the host's failure */
		return false;
	}
	long i = probe_host(hs, server->id);
	bool probe = i >= 0;
	if (!probe)
		i = hosts_server_host(server);
	if (i < 0)
		return false;
	bool counts = server->proto->login_error_host(code);
	if (counts)
		note_failure(hs, (size_t)i, msg);
	if (probe) {
		hs->v[i].probe_id = 0;
		conn_log(server, LOG_LVL_DEBUG, "health probe failed: %s", msg);
		server_close(server, "health probe failed");
		return true;
	}
	if (!counts || hs->n < 2 || !host_set_has_usable(hs, i))
		return false;
	hs->avoid = i;
	conn_log(server, LOG_LVL_WARNING, "server login failed: %s; trying another host", msg);
	server_close(server, "login failed, trying another host");
	return true;
}

static const char *onoff(int v)
{
	return v < 0 ? "unknown" : v ? "on" : "off";
}

bool hosts_login_done(struct conn *server, int hot_standby, int read_only)
{
	struct pool *pool = server->pool;
	struct host_set *hs = pool->db->hosts;
	if (!hs)
		return true;
	bind_set(pool);
	long i = probe_host(hs, server->id);
	bool probe = i >= 0;
	if (!probe)
		i = hosts_server_host(server);
	if (i < 0)
		return true;
	struct host *h = &hs->v[i];
	char label[300];
	host_label(hs, (size_t)i, label, sizeof(label));
	hs->probe_user = pool->user;
	int passes = hs->core->cfg->health_check_passes;
	if (host_passed(hs, (size_t)i, passes) == HOST_EV_UP)
		log_info("database %s: host %s is up again after %d good check%s in a row",
		         hs->db->name, label, passes, passes == 1 ? "" : "s");
	bool was_mismatch = h->mismatch;
	enum tsa_verdict v = host_role_seen(hs, (size_t)i, hot_standby, read_only);
	if (h->mismatch && !was_mismatch)
		log_info("database %s: host %s does not suit target_session_attrs=%s "
		         "(in_hot_standby=%s, default_transaction_read_only=%s)",
		         hs->db->name, label, tsa_mode_name(hs->tsa), onoff(hot_standby),
		         onoff(read_only));
	else if (was_mismatch && !h->mismatch)
		log_info("database %s: host %s suits target_session_attrs=%s now", hs->db->name,
		         label, tsa_mode_name(hs->tsa));
	if (host_needs_probe(hs, (size_t)i))
		arm_probes(hs);
	if (probe) {
		h->probe_id = 0;
		server_set_state(server, SV_IDLE); /* closed as an idle server: quietly */
		server_close(server, "health probe done");
		return false;
	}
	if (v == TSA_ACCEPT)
		return true;
	if (v == TSA_RETRY) {
		server_close(server, "target_session_attrs does not match, trying another host");
		return false;
	}
	char msg[200];
	snprintf(msg, sizeof(msg), "no server of database %s matches target_session_attrs=%s",
	         hs->db->name, tsa_mode_name(hs->tsa));
	hs->refused_id = server->id;
	pool_server_login_failed(server, server->proto->error_code(ERR_NO_MATCHING_SERVER), msg);
	return false;
}

long hosts_server_host(const struct conn *server)
{
	const struct host_set *hs = server->pool ? server->pool->db->hosts : NULL;
	if (!hs)
		return -1;
	long i = probe_host(hs, server->id);
	if (i >= 0)
		return i;
	/* recorded at connect: several pools and several addresses share a host, so the
	 * address a server used does not name its host */
	return server->host_idx >= 0 && (size_t)server->host_idx < hs->n ? server->host_idx : -1;
}

bool hosts_is_probe(const struct conn *server)
{
	const struct host_set *hs = server->pool ? server->pool->db->hosts : NULL;
	return hs && probe_host(hs, server->id) >= 0;
}

const char *hosts_server_health(const struct conn *server)
{
	long i = hosts_server_host(server);
	return i < 0 ? "up" : host_health_name(server->pool->db->hosts->v[i].health);
}

/* The probe connection id is still connecting or logging in somewhere. */
static bool probe_alive(const struct host_set *hs, uint64_t id)
{
	struct list *it, *s;
	list_for_each(it, &hs->core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (p->db != hs->db)
			continue;
		for (int st = SV_CONNECTING; st <= SV_LOGIN; st++)
			list_for_each(s,
			              &p->servers[st]) if (list_entry(s, struct conn, node)->id ==
			                                   id) return true;
	}
	return false;
}

/* Probes log in as the user of the last good login, else as any user of a pool. */
static struct pool *probe_pool(const struct host_set *hs)
{
	struct pool *any = NULL;
	struct list *it;
	list_for_each(it, &hs->core->pools)
	{
		struct pool *p = list_entry(it, struct pool, node);
		if (p->db != hs->db)
			continue;
		if ((const void *)p->user == hs->probe_user)
			return p;
		if (!any)
			any = p;
	}
	return any;
}

static void probe_tick(struct loop *l, struct loop_timer *t, void *arg)
{
	struct host_set *hs = arg;
	struct core *core = hs->core;
	usec_t period = core->cfg->health_check_period;
	bool watching = false;
	for (size_t i = 0; i < hs->n && !hs->db->stale; i++) {
		struct host *h = &hs->v[i];
		if (!host_needs_probe(hs, i))
			continue;
		watching = true;
		if (h->probe_id && probe_alive(hs, h->probe_id))
			continue;
		h->probe_id = 0;
		struct pool *pool = probe_pool(hs);
		if (core->run_state != RUN_NORMAL || hs->db->stale || !pool)
			continue;
		struct conn *s = pool_launch_probe(pool, i);
		if (s) {
			h->probe_id = s->id;
			conn_log(s, LOG_LVL_DEBUG, "health probe");
		}
	}
	if (!watching || !period) {
		loop_timer_stop(l, t);
	} else if (t->interval != period) {
		loop_timer_stop(l, t);
		loop_timer_start(l, t, period, period, probe_tick, hs);
	}
}

void hosts_carry(struct host_set *fresh, struct host_set *old)
{
	if (!fresh || !old)
		return;
	host_set_carry(fresh, old);
	fresh->core = old->core;
	fresh->db = old->db;
	fresh->probe_user = old->probe_user;
	for (size_t i = 0; i < fresh->n; i++) {
		if (host_needs_probe(fresh, i)) {
			arm_probes(fresh);
			break;
		}
	}
}

bool hosts_differ(const struct host_set *a, const struct host_set *b)
{
	return !host_set_same(a, b);
}

void hosts_free(struct host_set *hs)
{
	if (!hs)
		return;
	if (hs->core)
		loop_timer_stop(hs->core->loop, &hs->probe_timer);
	host_set_free(hs);
}
