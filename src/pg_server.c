/*
 * pg_server: the server side of the PostgreSQL protocol. Login with the entry's
 * password or the auth file's secret (cleartext, md5, SCRAM-SHA-256, including the
 * keys a client's SCRAM proof gave us); keeping the parameters the server reports and
 * its cancel key; relaying replies to the attached client while watching
 * ReadyForQuery; and sluice's own queries (connect_query, parameter SETs, the reset
 * query), whose replies are swallowed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core.h"
#include "hosts.h"
#include "log.h"
#include "md5auth.h"
#include "pg.h"
#include "pool.h"
#include "proto.h"

#define SERVER_WHOLE_MSG_MAX (1u << 20)

void pg_server_connected(struct conn *s)
{
	struct pg_server *ps = xcalloc(1, sizeof(*ps));
	const struct database *db = s->pool->db;
	s->pstate = ps;
	ps->phase = PGS_LOGIN;
	ps->txn_status = 'I';
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 0);
	pg_out_u32(&o, PG_PROTO_V3);
	pg_out_str(&o, "user");
	pg_out_str(&o, s->pool->user->name);
	pg_out_str(&o, "database");
	pg_out_str(&o, db->dbname);
	for (int i = 0; i < 4; i++) {
		if (!db->startup_params[i][1])
			continue;
		pg_out_str(&o, db->startup_params[i][0]);
		pg_out_str(&o, db->startup_params[i][1]);
	}
	pg_out_u8(&o, 0);
	pg_out_end(&o);
	pg_send_out(s, &o);
	pg_out_free(&o);
}

/* --- credentials for the server login --- */

struct server_cred {
	const char *plain;
	const char *md5;
	bool scram_keys;
};

static struct server_cred server_credentials(const struct conn *s)
{
	struct server_cred cr = {0};
	const struct pool *pool = s->pool;
	if (pool->db->password && pool->db->password[0]) {
		cr.plain = pool->db->password;
		return cr;
	}
	const struct auth_user *au =
	    s->core->auth ? auth_file_find(s->core->auth, pool->user->name) : NULL;
	if (au && au->kind == SECRET_PLAIN)
		cr.plain = au->secret;
	else if (au && au->kind == SECRET_MD5)
		cr.md5 = au->secret;
	else if (au && au->kind == SECRET_SCRAM)
		cr.scram_keys = pool->user->have_scram_keys;
	return cr;
}

static void login_failed(struct conn *s, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void login_failed(struct conn *s, const char *fmt, ...)
{
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pool_server_login_failed(s, "08P01", msg);
}

static void send_password(struct conn *s, const void *data, size_t len, bool add_nul)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'p');
	pg_out_bytes(&o, data, len);
	if (add_nul)
		pg_out_u8(&o, 0);
	pg_out_end(&o);
	pg_send_out(s, &o);
	explicit_bzero(o.data, o.len);
	pg_out_free(&o);
}

static void auth_md5(struct conn *s, struct pg_reader *r, const struct server_cred *cr)
{
	const uint8_t *salt = pg_read_bytes(r, 4);
	char hash[MD5_PASSWD_LEN + 1], resp[MD5_PASSWD_LEN + 1];
	const char *stored = cr->md5;
	if (!salt) {
		login_failed(s, "malformed md5 request from server");
		return;
	}
	if (cr->plain) {
		if (!md5_password_hash(cr->plain, s->pool->user->name, hash)) {
			login_failed(s, "md5 failed");
			return;
		}
		stored = hash;
	}
	if (!stored || !md5_salted_response(stored, salt, resp)) {
		login_failed(s, "no password available for server login of user \"%s\"",
		             s->pool->user->name);
		return;
	}
	send_password(s, resp, strlen(resp), true);
	explicit_bzero(hash, sizeof(hash));
}

static void auth_sasl_start(struct conn *s, struct pg_reader *r, const struct server_cred *cr)
{
	struct pg_server *ps = pgs(s);
	const struct user *u = s->pool->user;
	bool offered = false;
	for (const char *m = pg_read_str(r); m && m[0]; m = pg_read_str(r))
		offered |= strcmp(m, SCRAM_MECHANISM) == 0;
	if (!offered) {
		login_failed(s, "server offers no supported SASL mechanism");
		return;
	}
	if (!cr->plain && !cr->scram_keys) {
		login_failed(s, "no password available for SCRAM login of user \"%s\"", u->name);
		return;
	}
	ps->scram.password = cr->plain;
	ps->scram.use_keys = !cr->plain;
	if (ps->scram.use_keys) {
		memcpy(ps->scram.client_key, u->scram_client_key, SCRAM_KEY_LEN);
		memcpy(ps->scram.server_key, u->scram_server_key, SCRAM_KEY_LEN);
	}
	char *first = NULL;
	if (!scram_client_first(&ps->scram, &first)) {
		login_failed(s, "SCRAM client-first failed");
		return;
	}
	ps->scram_started = true;
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'p');
	pg_out_str(&o, SCRAM_MECHANISM);
	pg_out_u32(&o, (uint32_t)strlen(first));
	pg_out_bytes(&o, first, strlen(first));
	pg_out_end(&o);
	pg_send_out(s, &o);
	pg_out_free(&o);
	free(first);
}

static void auth_sasl_continue(struct conn *s, struct pg_reader *r)
{
	struct pg_server *ps = pgs(s);
	char *final = NULL;
	if (!ps->scram_started ||
	    !scram_client_final(&ps->scram, (const char *)r->p, r->left, &final)) {
		login_failed(s, "SCRAM exchange with the server failed");
		return;
	}
	send_password(s, final, strlen(final), false);
	free(final);
}

static void handle_auth_request(struct conn *s, const uint8_t *body, uint32_t len)
{
	struct pg_reader r = pg_reader_init(body, len);
	uint32_t code = pg_read_u32(&r);
	struct server_cred cr = server_credentials(s);
	switch (code) {
	case 0:
		return;
	case 3:
		if (!cr.plain)
			login_failed(s,
			             "no cleartext password available for server login of "
			             "user \"%s\"",
			             s->pool->user->name);
		else
			send_password(s, cr.plain, strlen(cr.plain), true);
		return;
	case 5:
		auth_md5(s, &r, &cr);
		return;
	case 10:
		auth_sasl_start(s, &r, &cr);
		return;
	case 11:
		auth_sasl_continue(s, &r);
		return;
	case 12:
		if (!pgs(s)->scram_started ||
		    !scram_client_verify(&pgs(s)->scram, (const char *)r.p, r.left))
			login_failed(s, "server's SCRAM signature did not verify");
		return;
	default:
		login_failed(s, "unsupported server authentication method %u", code);
	}
}

/* --- whole messages from the server --- */

static void take_param_status(struct conn *s, const uint8_t *body, uint32_t len)
{
	struct pg_reader r = pg_reader_init(body, len);
	const char *name = pg_read_str(&r);
	const char *value = pg_read_str(&r);
	if (!name || !value)
		return;
	pg_params_set(&pgs(s)->params, name, value);
	/* a SET by the client itself: from now on that is the value it wants */
	struct conn *c = s->link;
	const char *canon = pg_param_canonical(s->core->cfg, name);
	if (c && canon && !pgs(s)->internal)
		pg_params_set(&pgc(c)->wanted, canon, value);
}

static bool login_host_check(struct conn *s);

static void login_complete(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	struct pg_pool *pp = pg_pool_state(s->pool);
	scram_client_clear(&ps->scram);
	if (!login_host_check(s)) /* a health probe, or target_session_attrs refused it */
		return;
	if (!pp->have_welcome) {
		for (size_t i = 0; i < ps->params.n; i++)
			pg_params_set(&pp->welcome, ps->params.v[i].name, ps->params.v[i].value);
		pp->have_welcome = true;
	}
	conn_log(s, LOG_LVL_DEBUG, "login ok");
	s->pool->stats.total.server_logins++;
	const char *cq = s->pool->db->connect_query;
	if (cq && cq[0]) {
		ps->phase = PGS_CONNECT_QUERY;
		pg_server_internal_query(s, cq);
		return;
	}
	ps->phase = PGS_READY;
	pool_server_ready(s);
}

static void handle_login_msg(struct conn *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct pg_error_fields ef;
	struct pg_reader r = pg_reader_init(body, len);
	switch (type) {
	case 'R':
		handle_auth_request(s, body, len);
		break;
	case 'S':
		take_param_status(s, body, len);
		break;
	case 'K':
		s->cancel_pid = pg_read_u32(&r);
		s->cancel_key = pg_read_u32(&r);
		break;
	case 'E':
		if (pg_parse_error(body, len, &ef))
			pool_server_login_failed(s, ef.sqlstate ? ef.sqlstate : "08P01",
			                         ef.message);
		else
			login_failed(s, "malformed error from server during login");
		break;
	case 'Z':
		login_complete(s);
		break;
	case 'N':
	case 'v':
		break;
	default:
		login_failed(s, "unexpected message '%c' from server during login", type);
	}
}

/* --- sluice's own queries --- */

void pg_server_internal_query(struct conn *s, const char *sql)
{
	struct pg_server *ps = pgs(s);
	struct pg_out o;
	pg_out_init(&o);
	pg_out_query(&o, sql);
	pg_send_out(s, &o);
	pg_out_free(&o);
	ps->internal++;
	ps->internal_failed = false;
}

static void check_done(struct conn *s);

static void internal_done(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	if (ps->phase == PGS_CHECK) {
		check_done(s);
		return;
	}
	if (ps->phase == PGS_CONNECT_QUERY || ps->phase == PGS_RESET) {
		bool reset = ps->phase == PGS_RESET;
		ps->phase = PGS_READY;
		if (reset) /* RESET ALL or DISCARD ALL put every parameter back */
			pg_params_forget_unreported(&ps->params);
		if (ps->internal_failed) {
			conn_log(s, LOG_LVL_WARNING, "%s failed: %s",
			         reset ? "server_reset_query" : "connect_query",
			         ps->internal_error ? ps->internal_error : "?");
			server_close(s, reset ? "reset failed" : "connect_query failed");
			return;
		}
		pool_server_ready(s);
		return;
	}
	struct conn *c = s->link;
	if (!c || !pgc(c)->applying)
		return;
	pgc(c)->applying = false;
	if (ps->internal_failed) {
		/* what sluice recorded of unreported parameters may not have happened */
		s->flags |= CONN_F_CLOSE_NEEDED;
		/* the client's startup values were invalid: as PostgreSQL, refuse them */
		client_fail(c, ps->internal_code[0] ? ps->internal_code : "22023",
		            ps->internal_error ? ps->internal_error : "invalid parameter value");
		return;
	}
	pg_client_relay(c);
}

static void internal_msg(struct conn *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	struct pg_error_fields ef;
	if (type == 'S') {
		take_param_status(s, body, len);
	} else if (type == 'C') {
		pg_prep_command_done(s, body, len); /* a DISCARD ALL reset */
	} else if (type == 'E' && !ps->internal_failed) {
		ps->internal_failed = true;
		free(ps->internal_error);
		ps->internal_error = NULL;
		ps->internal_code[0] = 0;
		if (pg_parse_error(body, len, &ef)) {
			ps->internal_error = xstrdup(ef.message);
			if (ef.sqlstate)
				strlcpy_s(ps->internal_code, ef.sqlstate,
				          sizeof(ps->internal_code));
		}
	} else if (type == 'Z' && len >= 1) {
		ps->txn_status = (char)body[0];
		if (--ps->internal == 0)
			internal_done(s);
	}
}

/* --- the read loop --- */

static bool message_needed_whole(const struct conn *s, uint8_t type)
{
	const struct pg_server *ps = pgs(s);
	bool linked = s->link != NULL;
	if (ps->phase == PGS_LOGIN || ps->internal || !linked)
		return type != 'D' && type != 'T' && type != 'd';
	/* CommandComplete only matters where a SET can outlive its client; ParseComplete
	 * and CloseComplete may be sluice's own, to swallow, and an ErrorResponse may be
	 * replaced by sluice's */
	return type == 'Z' || type == 'S' ||
	       (type == 'C' && pool_effective_mode(s->pool) != POOL_SESSION) ||
	       (ps->track && (type == '1' || type == '3' || type == 'E'));
}

/* --- query_timeout, idle_transaction_timeout, transaction_timeout --- */

static const char *server_timeout_due(const struct conn *s, usec_t now, char *msg, size_t len)
{
	const struct pg_server *ps = pgs(s);
	usec_t qt = pool_query_timeout(s->pool), tt = pool_transaction_timeout(s->pool);
	usec_t it = pool_idle_transaction_timeout(s->pool);
	if (ps->outstanding && qt && now - ps->query_start >= qt) {
		snprintf(msg, len, "query_timeout: query ran longer than %.1f s",
		         (double)qt / USEC_PER_SEC);
		return "57014";
	}
	if (ps->in_xact && tt && now - ps->xact_start >= tt) {
		snprintf(msg, len, "transaction_timeout: transaction ran longer than %.1f s",
		         (double)tt / USEC_PER_SEC);
		return "25P04";
	}
	if (!ps->outstanding && ps->txn_status != 'I' && it && now - ps->idle_since >= it) {
		snprintf(msg, len, "idle_transaction_timeout: idle in transaction for %.1f s",
		         (double)it / USEC_PER_SEC);
		return "25P03";
	}
	return NULL;
}

static void server_timeout_fired(struct loop *l, struct loop_timer *t, void *arg)
{
	struct conn *s = arg;
	char msg[160];
	(void)t;
	if (s->state != SV_ACTIVE || !s->link)
		return;
	const char *code = server_timeout_due(s, loop_now(l), msg, sizeof(msg));
	if (!code) {
		pg_server_arm_timeouts(s);
		return;
	}
	conn_log(s->link, LOG_LVL_INFO, "%s", msg);
	/* the server is mid-query or mid-transaction: it is closed with its client */
	client_fail(s->link, code, msg);
}

static void earliest(usec_t *deadline, usec_t at)
{
	if (!*deadline || at < *deadline)
		*deadline = at;
}

void pg_server_arm_timeouts(struct conn *s)
{
	const struct pg_server *ps = pgs(s);
	struct loop *l = s->core->loop;
	usec_t qt = pool_query_timeout(s->pool), tt = pool_transaction_timeout(s->pool);
	usec_t it = pool_idle_transaction_timeout(s->pool);
	usec_t deadline = 0, now = loop_now(l);
	if (!qt && !tt && !it)
		return;
	if (ps->outstanding && qt)
		earliest(&deadline, ps->query_start + qt);
	if (ps->in_xact && tt)
		earliest(&deadline, ps->xact_start + tt);
	if (!ps->outstanding && ps->txn_status != 'I' && it)
		earliest(&deadline, ps->idle_since + it);
	if (!deadline)
		loop_timer_stop(l, &s->timer);
	else
		loop_timer_start(l, &s->timer, deadline > now ? deadline - now : 1, 0,
		                 server_timeout_fired, s);
}

/* A ReadyForQuery relayed: a query is over, and a transaction too on status I. */
static void count_ready(struct conn *s, struct pg_server *ps)
{
	struct stats *st = &s->pool->stats;
	usec_t now = loop_now(s->core->loop);
	if (ps->outstanding > 0) {
		ps->outstanding--;
		st->total.queries++;
		st->total.query_time += now - ps->query_start;
		stats_record(st, STATS_QUERY, now - ps->query_start);
		ps->query_start = now; /* a pipelined one runs from here */
	}
	if (ps->txn_status == 'I' && ps->in_xact) {
		ps->in_xact = false;
		st->total.xacts++;
		st->total.xact_time += now - ps->xact_start;
		stats_record(st, STATS_XACT, now - ps->xact_start);
	}
	ps->idle_since = now;
	pg_server_arm_timeouts(s);
	if (!ps->outstanding && s->link)
		pg_client_arm_idle(s->link);
}

/*
 * Transaction pooling: the server goes back once every request the client sent has
 * been answered and no transaction is open. Statement pooling also refuses to let a
 * transaction block start.
 */
static void decide_release(struct conn *s, struct pg_server *ps)
{
	enum pool_mode mode = pool_effective_mode(s->pool);
	if (mode == POOL_SESSION || ps->outstanding || ps->unsynced)
		return;
	if (ps->txn_status == 'I') {
		ps->release_pending = true;
		return;
	}
	if (mode == POOL_STATEMENT)
		ps->statement_violation = true;
}

/* After the replies are on their way: hand the server back, or refuse the client. */
static void finish_release(struct conn *s, struct pg_server *ps)
{
	struct conn *c = s->link;
	if (ps->statement_violation) {
		ps->statement_violation = false;
		client_fail(c, "08P01",
		            "transaction blocks are not allowed in statement pooling mode");
		return;
	}
	if (ps->outstanding || ps->unsynced) {
		ps->release_pending = false; /* it sent more meanwhile: keep serving it */
		return;
	}
	/* the client has not taken every reply yet (some may wait in its own output) */
	if (!ps->release_pending || (s->rbuf && iobuf_unsent(s->rbuf)) ||
	    (c->wbuf && iobuf_unsent(c->wbuf)))
		return;
	/* nor is it between two messages with all it sent delivered: the rest of a
	 * message (a CopyData still streaming after a failed COPY) or bytes the server has
	 * not taken yet would reach the next client's server. The client's relay releases
	 * once its message is through. */
	if (pgc(c)->pkt_remain || (c->rbuf && iobuf_unsent(c->rbuf)))
		return;
	ps->release_pending = false;
	pool_release(c);
	pg_client_arm_idle(c);
	/* what the client pipelined after its last Sync needs a server of its own */
	if (c->state != CL_JUSTFREE && c->rbuf && iobuf_unparsed(c->rbuf))
		pg_client_relay(c);
}

void pg_server_release_if_due(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	if (s->state != SV_JUSTFREE && s->link && (ps->release_pending || ps->statement_violation))
		finish_release(s, ps);
}

static void relay_msg(struct conn *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	if (type == 'S') {
		take_param_status(s, body, len);
	} else if (type == 'C') {
		/* a SET or RESET the next client must not inherit (tracked parameters are
		 * put back for each client anyway) */
		if ((len >= 4 && memcmp(body, "SET", 3) == 0 && (body[3] == 0 || body[3] == ' ')) ||
		    (len >= 6 && memcmp(body, "RESET", 5) == 0))
			ps->session_changed = true;
		if (ps->track)
			pg_prep_command_done(s, body, len);
	} else if (type == 'Z' && len >= 1) {
		ps->txn_status = (char)body[0];
		count_ready(s, ps);
		decide_release(s, ps);
		core_check_shutdown(s->core);
	}
}

/* A message arriving while nobody is attached and nothing of ours runs. */
static void idle_msg(struct conn *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct pg_error_fields ef;
	if (type == 'S') {
		take_param_status(s, body, len);
	} else if (type == 'E') {
		bool ok = pg_parse_error(body, len, &ef);
		conn_log(s, LOG_LVL_INFO, "server error while idle: %s",
		         ok ? ef.message : "(malformed)");
		server_close(s, "error while idle");
	} else if (type != 'N' && type != 'A') {
		server_close(s, "unexpected message while idle");
	}
}

static void dispatch_whole(struct conn *s, uint8_t type, const uint8_t *body, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	if (ps->phase == PGS_LOGIN)
		handle_login_msg(s, type, body, len);
	else if (ps->internal)
		internal_msg(s, type, body, len);
	else if (s->link)
		relay_msg(s, type, body, len);
	else
		idle_msg(s, type, body, len);
}

void pg_server_input(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	while (s->state != SV_JUSTFREE && s->rbuf && iobuf_unparsed(s->rbuf)) {
		struct iobuf *b = s->rbuf;
		bool forward = s->link && !ps->internal && ps->phase == PGS_READY;
		if (ps->pkt_remain) {
			uint32_t n = pg_stream_rest(b, &ps->pkt_remain, forward);
			if (forward)
				s->pool->stats.total.bytes_sent += n;
			continue;
		}
		if (forward && ps->track)
			pg_prep_send_made_up(s);
		uint8_t type;
		uint32_t len;
		enum pg_hdr_result h =
		    pg_read_header(iobuf_parse_ptr(b), iobuf_unparsed(b), &type, &len);
		if (h == PG_HDR_SHORT)
			break;
		if (h == PG_HDR_BAD) {
			server_close(s, "invalid message length from server");
			return;
		}
		bool whole = message_needed_whole(s, type) && len + 1 <= SERVER_WHOLE_MSG_MAX;
		if (whole && iobuf_unparsed(b) < len + 1) {
			iobuf_grow_toward(&s->rbuf, len + 1);
			break;
		}
		bool swallow = forward && ps->track && pg_prep_server_reply(s, type);
		if (!whole) {
			ps->pkt_remain = len + 1;
			continue;
		}
		dispatch_whole(s, type, iobuf_parse_ptr(b) + 5, len - 4);
		if (s->state == SV_JUSTFREE)
			return;
		/* the relay decision is made on the state before the message was handled;
		 * a ReadyForQuery that opened a transaction in statement mode is replaced
		 * by the error the client gets */
		if (forward && s->rbuf == b && !ps->statement_violation && !swallow) {
			iobuf_mark_send(b, len + 1);
			s->pool->stats.total.bytes_sent += len + 1;
		} else if (s->rbuf == b)
			iobuf_swallow(b, len + 1);
	}
	if (s->state != SV_JUSTFREE && s->link) {
		if (ps->track)
			pg_prep_send_made_up(s);
		conn_forward(s);
		pg_server_release_if_due(s);
	}
}

bool pg_server_clean(const struct conn *s)
{
	const struct pg_server *ps = pgs(s);
	const struct conn *c = s->link;
	/* the attached client is between two messages, all it sent delivered */
	if (c && (pgc(c)->pkt_remain || (c->rbuf && iobuf_unsent(c->rbuf))))
		return false;
	return ps && ps->phase == PGS_READY && !ps->internal && !ps->outstanding &&
	       ps->txn_status == 'I' && !ps->pkt_remain && !ps->queue.n && !ps->skipping;
}

bool pg_server_reset(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	const struct config *cfg = s->core->cfg;
	const char *q = cfg->server_reset_query;
	bool session = pool_effective_mode(s->pool) == POOL_SESSION;
	if (!session && !cfg->server_reset_query_always) {
		/* transaction pooling keeps sessions warm, but not a SET another client made,
		 * nor its SQL PREPARE, nor a DEALLOCATE that may have hit sluice's own */
		if (ps->sql_prepared)
			q = ps->session_changed ? "RESET ALL; DEALLOCATE ALL" : "DEALLOCATE ALL";
		else
			q = ps->session_changed ? "RESET ALL" : NULL;
	}
	ps->session_changed = false;
	ps->sql_prepared = false;
	if (!q || !q[0])
		return false;
	ps->phase = PGS_RESET;
	pg_server_internal_query(s, q);
	return true;
}

/* --- server_check_query --- */

void pg_server_check(struct conn *s)
{
	pgs(s)->phase = PGS_CHECK;
	/* "" sends an empty query, answered by EmptyQueryResponse */
	pg_server_internal_query(s, s->core->cfg->server_check_query);
}

static void check_done(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	ps->phase = PGS_READY;
	if (ps->internal_failed)
		conn_log(s, LOG_LVL_WARNING, "server_check_query failed: %s",
		         ps->internal_error ? ps->internal_error : "?");
	pool_server_checked(s, !ps->internal_failed && ps->txn_status == 'I');
}

/* --- host health and target_session_attrs after login --- */

/* A boolean GUC the server reported (PostgreSQL 14+ reports these two): -1 if not. */
static int reported_bool(const struct conn *s, const char *name)
{
	const char *v = pg_params_get(&pgs(s)->params, name);
	if (!v)
		return -1;
	return strcmp(v, "on") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0;
}

/*
 * Tells hosts.c what the server is, as libpq judges target_session_attrs: from the
 * in_hot_standby and default_transaction_read_only the server reported at login.
 * False when hosts.c closed the server (a probe, or not the kind of server wanted).
 */
static bool login_host_check(struct conn *s)
{
	return hosts_login_done(s, reported_bool(s, "in_hot_standby"),
	                        reported_bool(s, "default_transaction_read_only"));
}
