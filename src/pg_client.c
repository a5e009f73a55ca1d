/*
 * pg_client: the client side of the PostgreSQL protocol. Login: startup packet
 * (SSL and GSSENC requests answered 'N', cancel requests handed to pg_cancel),
 * authentication against the auth file (trust, cleartext, md5, SCRAM-SHA-256),
 * then the welcome: the parameters a server of its pool reported, with the client's
 * own values where it set them, and sluice's own cancel key. After login it relays:
 * message headers are read to count queries and catch Terminate, bodies are
 * forwarded as they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "listen.h"
#include "core.h"
#include "log.h"
#include "md5auth.h"
#include "pg.h"
#include "pool.h"
#include "proto.h"

#define MAX_STARTUP_PARAMS 64

static bool prep_applies(const struct conn *c);

void pg_client_error(struct conn *c, const char *sqlstate, const char *msg, bool fatal)
{
	struct pg_out o;
	/* messages quote user, database and parameter names as the client sent them */
	char *text = xmalloc(STR_ESCAPE_SIZE(strlen(msg)));
	str_escape(text, STR_ESCAPE_SIZE(strlen(msg)), msg);
	pg_out_init(&o);
	pg_out_error(&o, fatal ? "FATAL" : "ERROR", sqlstate, text);
	pg_send_out(c, &o);
	pg_out_free(&o);
	free(text);
}

static void login_fail(struct conn *c, const char *sqlstate, const char *fmt, ...)
    PRINTF_LIKE(3, 4);
static void login_fail(struct conn *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->core->cfg->log_pooler_errors)
		conn_log(c, LOG_LVL_WARNING, "pooler error: %s", msg);
	client_fail(c, sqlstate, msg);
}

bool pg_client_header(struct conn *c, uint8_t *type, uint32_t *len)
{
	struct iobuf *b = c->rbuf;
	switch (pg_read_header(iobuf_parse_ptr(b), iobuf_unparsed(b), type, len)) {
	case PG_HDR_SHORT:
		return false;
	case PG_HDR_BAD:
		login_fail(c, "08P01", "invalid message length");
		return false;
	case PG_HDR_OK:
		break;
	}
	if ((uint64_t)*len + 1 > (uint64_t)c->core->cfg->max_packet_size) {
		char msg[128];
		snprintf(msg, sizeof(msg),
		         "message of %u bytes is larger than max_packet_size (%d)", *len + 1,
		         c->core->cfg->max_packet_size);
		login_fail(c, "08P01", "%s", msg);
		return false;
	}
	return true;
}

/* Every authentication failure looks the same to the client; the log says why. */
static void auth_failed(struct conn *c, const char *reason)
{
	char msg[256];
	conn_log(c, LOG_LVL_WARNING, "login failed: %s", reason);
	snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"",
	         c->user_name ? c->user_name : "");
	client_fail(c, "28P01", msg);
}

void pg_client_forget_login(struct pg_client *pc)
{
	struct pg_login *l = pc->login;
	if (!l)
		return;
	if (l->secret) {
		explicit_bzero(l->secret, strlen(l->secret));
		free(l->secret);
	}
	scram_server_clear(&l->scram);
	free(l);
	pc->login = NULL;
}

void pg_client_accepted(struct conn *c)
{
	struct pg_client *pc = xcalloc(1, sizeof(*pc));
	c->pstate = pc;
	pc->phase = PGC_STARTUP;
	pc->login = xcalloc(1, sizeof(*pc->login));
	uint32_t key[2];
	if (!random_bytes(key, sizeof(key))) {
		client_fail(c, "58000", "cannot generate a cancel key");
		return;
	}
	c->cancel_pid = key[0] & 0x7fffffff;
	c->cancel_key = key[1];
}

/* --- the welcome --- */

static void send_welcome(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	struct pg_pool *pp = pg_pool_state(c->pool);
	struct pg_out o;
	pg_params_defaults(&pc->wanted, c->core->cfg, &pp->welcome);
	pg_out_init(&o);
	for (size_t i = 0; i < pp->welcome.n; i++) {
		const char *name = pp->welcome.v[i].name;
		const char *mine = pg_params_get(&pc->wanted, name);
		pg_out_param_status(&o, name, mine ? mine : pp->welcome.v[i].value);
	}
	for (size_t i = 0; i < pc->wanted.n; i++)
		if (!pg_params_get(&pp->welcome, pc->wanted.v[i].name))
			pg_out_param_status(&o, pc->wanted.v[i].name, pc->wanted.v[i].value);
	pg_out_login_done(&o, c);
	pg_send_out(c, &o);
	pg_out_free(&o);
	pc->phase = PGC_READY;
	loop_timer_stop(c->core->loop, &c->timer); /* client_login_timeout */
	pg_client_arm_idle(c);
	if (c->core->cfg->log_connections)
		conn_log(c, LOG_LVL_INFO, "login ok");
}

/* Whether the login asks for a password (or a SCRAM proof) before it is let in. */
static bool auth_checks_password(const struct core *core)
{
	return core->cfg->auth_type != AUTH_ANY && core->cfg->auth_type != AUTH_TRUST;
}

/* The client's database exists and takes connections; otherwise the client is told. */
static bool database_usable(struct conn *c)
{
	struct database *db = database_lookup(c->core, c->db_name);
	if (!db) {
		login_fail(c, "3D000", "no such database: %s", c->db_name);
		return false;
	}
	if (db->disabled) {
		login_fail(c, "57P03", "database \"%s\" is disabled", c->db_name);
		return false;
	}
	return true;
}

static void auth_ok(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	struct core *core = c->core;
	pg_client_forget_login(pc);
	struct pg_out o;
	pg_out_init(&o);
	pg_out_auth(&o, 0, NULL, 0);
	pg_send_out(c, &o);
	pg_out_free(&o);
	if (pc->console) {
		pg_console_welcome(c, false);
		return;
	}
	/* again with trust (checked at startup): cheap, and db below is never NULL */
	if (!database_usable(c))
		return;
	struct database *db = database_lookup(core, c->db_name);
	struct user *su = user_lookup(core, db->force_user ? db->force_user : c->user_name);
	struct pool *pool = pool_get(core, db, su);
	c->pool = pool;
	pool->stats.total.client_logins++;
	if (pg_pool_state(pool)->have_welcome) {
		send_welcome(c);
		pool_client_enter(pool, c, false);
		pg_client_arm_idle(c);
	} else {
		pc->phase = PGC_WELCOME;
		pool_client_enter(pool, c, true);
	}
}

/* --- startup packet --- */

struct startup_info {
	const char *user, *database;
	const char *unsupported[16];
	size_t n_unsupported;
};

static bool take_startup_params(struct conn *c, const uint8_t *body, size_t len,
                                struct startup_info *si)
{
	struct pg_client *pc = pgc(c);
	struct pg_startup_param params[MAX_STARTUP_PARAMS];
	size_t n;
	if (!pg_parse_startup_params(body, len, params, MAX_STARTUP_PARAMS, &n)) {
		login_fail(c, "08P01", "invalid startup packet layout");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = params[i].name, *value = params[i].value;
		const char *canon = pg_param_canonical(c->core->cfg, name);
		if (strcmp(name, "user") == 0)
			si->user = value;
		else if (strcmp(name, "database") == 0)
			si->database = value;
		else if (canon)
			pg_params_set(&pc->wanted, canon, value);
		else if (strcmp(name, "options") == 0 &&
		         !config_list_contains(c->core->cfg->ignore_startup_parameters, name)) {
			char bad[64];
			if (!pg_take_options(&pc->wanted, c->core->cfg, value, bad, sizeof(bad))) {
				login_fail(c, "08P01", "unsupported options startup parameter: %s",
				           bad);
				return false;
			}
		} else if (strncmp(name, "_pq_.", 5) == 0 && si->n_unsupported < 16)
			si->unsupported[si->n_unsupported++] = name;
		else if (strcmp(name, "replication") == 0 && !str_ieq(value, "false") &&
		         strcmp(value, "0") && !str_ieq(value, "off") && !str_ieq(value, "no")) {
			login_fail(c, "08P01", "replication connections are not supported");
			return false;
		} else if (!config_list_contains(c->core->cfg->ignore_startup_parameters, name) &&
		           strcmp(name, "replication") != 0) {
			login_fail(c, "08P01", "unsupported startup parameter: %s", name);
			return false;
		}
	}
	return true;
}

static void negotiate_version(struct conn *c, const struct startup_info *si)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'v');
	pg_out_u32(&o, 0); /* newest minor version sluice speaks: 3.0 */
	pg_out_u32(&o, (uint32_t)si->n_unsupported);
	for (size_t i = 0; i < si->n_unsupported; i++)
		pg_out_str(&o, si->unsupported[i]);
	pg_out_end(&o);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static void start_auth(struct conn *c);
static void start_console_login(struct conn *c);

static void handle_startup(struct conn *c, const uint8_t *pkt, uint32_t len, uint32_t code)
{
	struct core *core = c->core;
	struct startup_info si = {0};
	uint32_t major = code >> 16, minor = code & 0xffff;
	bool on_reserve = listen_reserve_probing(c);
	if (major != 3 && on_reserve) {
		listen_reserve_refuse(c);
		return;
	}
	if (major != 3) {
		login_fail(c, "0A000", "unsupported frontend protocol %u.%u: server supports 3.0",
		           major, minor);
		return;
	}
	if (!take_startup_params(c, pkt + 8, len - 8, &si))
		return;
	if (!si.user || !si.user[0]) {
		login_fail(c, "28000", "no PostgreSQL user name specified in startup packet");
		return;
	}
	if (minor > 0 || si.n_unsupported)
		negotiate_version(c, &si);
	c->user_name = xstrdup(si.user);
	c->db_name = xstrdup(si.database && si.database[0] ? si.database : si.user);
	/* accepted on the descriptor reserve (listen.c): only the console may stay */
	if (on_reserve && !(admin_is_console_db(c->db_name) && listen_reserve_keep(c))) {
		listen_reserve_refuse(c);
		return;
	}
	if (admin_is_console_db(c->db_name)) {
		start_console_login(c);
		return;
	}
	/* console connections count apart: a client storm cannot lock operators out */
	if (core->n_clients - core->n_admin_clients > pool_max_client_conn(core)) {
		login_fail(c, "53300", "no more connections allowed (max_client_conn)");
		return;
	}
	if (core->run_state != RUN_NORMAL) {
		login_fail(c, "57P03", "sluice is shutting down");
		return;
	}
	/* with a password to check, which databases exist is told only to a client that
	 * gave it, as PostgreSQL does (and a fallback "*" entry makes no database for
	 * one that did not) */
	if (!auth_checks_password(core) && !database_usable(c))
		return;
	if (admin_role_of(core, c->user_name) == ADMIN_ROLE_ADMIN)
		c->flags |= CONN_F_ADMIN_USER;
	start_auth(c);
}

/* --- authentication --- */

static void send_auth_request(struct conn *c, uint32_t code, const void *extra, size_t n)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_auth(&o, code, extra, n);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static void start_scram(struct conn *c)
{
	static const char mech[] = SCRAM_MECHANISM "\0"; /* list ends with an empty name */
	send_auth_request(c, 10, mech, sizeof(mech));
	pgc(c)->phase = PGC_SASL_INIT;
}

static void start_auth(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	struct core *core = c->core;
	const struct auth_user *au = core->auth ? auth_file_find(core->auth, c->user_name) : NULL;
	if (au) {
		pc->login->user_known = true;
		pc->login->secret = xstrdup(au->secret);
		pc->login->secret_kind = au->kind;
	}
	switch (core->cfg->auth_type) {
	case AUTH_ANY:
		auth_ok(c);
		return;
	case AUTH_TRUST:
		if (core->auth && !au)
			auth_failed(c, "user not in auth_file");
		else
			auth_ok(c);
		return;
	case AUTH_HBA:
		auth_failed(c, "auth_type hba is not supported");
		return;
	case AUTH_PLAIN:
		send_auth_request(c, 3, NULL, 0);
		pc->phase = PGC_PASSWORD;
		return;
	case AUTH_MD5:
		/* an md5 challenge cannot be checked against a SCRAM secret; an unknown
		 * user gets what most users get, as PostgreSQL follows password_encryption */
		if (au ? au->kind == SECRET_SCRAM
		       : core->auth && 2 * core->auth->n_scram > core->auth->n_users) {
			start_scram(c);
			return;
		}
		if (!random_bytes(pc->login->md5_salt, 4)) {
			auth_failed(c, "no randomness for the md5 salt");
			return;
		}
		send_auth_request(c, 5, pc->login->md5_salt, 4);
		pc->phase = PGC_PASSWORD;
		return;
	case AUTH_SCRAM:
		start_scram(c);
		return;
	}
}

static void start_console_login(struct conn *c)
{
	struct core *core = c->core;
	pgc(c)->console = true;
	if (core->n_admin_clients >= core->cfg->admin_max_client_conn) {
		login_fail(c, "53300", "no more connections allowed (admin_max_client_conn)");
		return;
	}
	if (pg_console_peer_ok(c)) {
		pg_console_welcome(c, true);
		return;
	}
	start_auth(c);
}

static bool check_plain_password(struct conn *c, const char *pw)
{
	struct pg_client *pc = pgc(c);
	char hash[MD5_PASSWD_LEN + 1];
	struct scram_secret have, got;
	switch (pc->login->secret_kind) {
	case SECRET_PLAIN:
		return strlen(pw) == strlen(pc->login->secret) &&
		       mem_equal_ct(pw, pc->login->secret, strlen(pw));
	case SECRET_MD5:
		return md5_password_hash(pw, c->user_name, hash) &&
		       mem_equal_ct(hash, pc->login->secret, MD5_PASSWD_LEN + 1);
	case SECRET_SCRAM:
		return scram_parse_secret(pc->login->secret, &have) &&
		       scram_secret_from_password(pw, have.salt, have.salt_len, have.iterations,
		                                  &got) &&
		       mem_equal_ct(have.stored_key, got.stored_key, SCRAM_KEY_LEN);
	}
	return false;
}

static void handle_password(struct conn *c, const uint8_t *body, uint32_t len)
{
	struct pg_client *pc = pgc(c);
	struct pg_reader r = pg_reader_init(body, len);
	const char *pw = pg_read_str(&r);
	bool ok;
	if (!pw) {
		login_fail(c, "08P01", "invalid password packet");
		return;
	}
	if (!pc->login->user_known)
		ok = false;
	else if (c->core->cfg->auth_type == AUTH_PLAIN)
		ok = check_plain_password(c, pw);
	else
		ok = pc->login->secret_kind != SECRET_SCRAM &&
		     md5_check_response(pc->login->secret, pc->login->secret_kind == SECRET_MD5,
		                        c->user_name, pc->login->md5_salt, pw);
	if (!ok) {
		auth_failed(c, pc->login->user_known ? "wrong password" : "user not in auth_file");
		return;
	}
	auth_ok(c);
}

static bool scram_secret_for_client(struct conn *c, struct scram_secret *sec)
{
	struct pg_client *pc = pgc(c);
	const struct auth_file *af = c->core->auth;
	const uint8_t *key = c->core->scram_mock_key;
	int iterations = af ? af->scram_iterations : SCRAM_DEFAULT_ITERATIONS;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	size_t salt_len;
	if (pc->login->user_known && pc->login->secret_kind == SECRET_SCRAM)
		return scram_parse_secret(pc->login->secret, sec);
	/* a stable salt here too: one that changes per attempt would single these users out */
	if (pc->login->user_known && pc->login->secret_kind == SECRET_PLAIN)
		return scram_mock_salt(key, c->user_name, salt, &salt_len) &&
		       scram_secret_from_password(pc->login->secret, salt, salt_len, iterations,
		                                  sec);
	/* unknown user or md5 secret: the exchange runs on a mock secret and fails at the
	 * proof, so the client cannot tell which users exist, and it costs no PBKDF2 */
	pc->login->user_known = false;
	return scram_mock_secret(key, c->user_name, iterations, sec);
}

static void handle_sasl_init(struct conn *c, const uint8_t *body, uint32_t len)
{
	struct pg_client *pc = pgc(c);
	struct pg_reader r = pg_reader_init(body, len);
	const char *mech = pg_read_str(&r);
	uint32_t dlen = pg_read_u32(&r);
	const uint8_t *data = r.bad || dlen == 0xffffffffu ? NULL : pg_read_bytes(&r, dlen);
	struct scram_secret sec;
	char *reply = NULL;
	if (!mech || !data) {
		login_fail(c, "08P01", "malformed SASLInitialResponse");
		return;
	}
	if (strcmp(mech, SCRAM_MECHANISM) != 0) {
		login_fail(c, "28000", "client selected an invalid SASL authentication mechanism");
		return;
	}
	if (!scram_secret_for_client(c, &sec)) {
		auth_failed(c, "unusable SCRAM secret");
		return;
	}
	if (!scram_server_first(&pc->login->scram, &sec, (const char *)data, dlen, &reply)) {
		explicit_bzero(&sec, sizeof(sec));
		auth_failed(c, "malformed SCRAM client-first-message");
		return;
	}
	explicit_bzero(&sec, sizeof(sec));
	send_auth_request(c, 11, reply, strlen(reply));
	free(reply);
	pc->phase = PGC_SASL_FINAL;
}

static void keep_scram_keys(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	struct scram_secret sec;
	struct database *db = pc->console ? NULL : database_lookup(c->core, c->db_name);
	if (pc->login->secret_kind != SECRET_SCRAM || !pc->login->scram.have_client_key || !db ||
	    db->force_user)
		return;
	if (!scram_parse_secret(pc->login->secret, &sec))
		return;
	struct user *u = user_lookup(c->core, c->user_name);
	memcpy(u->scram_client_key, pc->login->scram.client_key, SCRAM_KEY_LEN);
	memcpy(u->scram_server_key, sec.server_key, SCRAM_KEY_LEN);
	u->have_scram_keys = true;
	explicit_bzero(&sec, sizeof(sec));
}

static void handle_sasl_final(struct conn *c, const uint8_t *body, uint32_t len)
{
	struct pg_client *pc = pgc(c);
	char *reply = NULL;
	bool ok = scram_server_final(&pc->login->scram, (const char *)body, len, &reply);
	if (!ok || !pc->login->user_known) {
		free(reply);
		auth_failed(c, pc->login->user_known ? "wrong password (SCRAM proof)"
		                                     : "user not in auth_file or no SCRAM secret");
		return;
	}
	send_auth_request(c, 12, reply, strlen(reply));
	free(reply);
	keep_scram_keys(c);
	auth_ok(c);
}

/* --- login packet framing --- */

/* Makes sure a whole packet of n bytes is buffered; false when it must wait. */
static bool have_whole(struct conn *c, uint32_t n)
{
	if (iobuf_unparsed(c->rbuf) >= n)
		return true;
	iobuf_grow_toward(&c->rbuf, n);
	return false;
}

static bool login_startup_packet(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	if (iobuf_unparsed(c->rbuf) < 4)
		return false;
	/* judged on its length alone, so a bad one is refused without waiting for more */
	uint32_t len = pg_get_u32(iobuf_parse_ptr(c->rbuf));
	if (len < 8 || len > PG_STARTUP_MAX) {
		login_fail(c, "08P01", "invalid startup packet length");
		return false;
	}
	if (!have_whole(c, len))
		return false;
	uint8_t *pkt = iobuf_parse_ptr(c->rbuf);
	uint32_t code = pg_get_u32(pkt + 4);
	if (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST) {
		if (len != 8 || pc->negotiated_ssl) {
			login_fail(c, "08P01", "invalid encryption request");
			return false;
		}
		pc->negotiated_ssl = true;
		iobuf_swallow(c->rbuf, len);
		conn_send(c, "N", 1);
		return true;
	}
	if (code == PG_CANCEL_REQUEST && listen_reserve_probing(c)) {
		listen_reserve_refuse(c); /* the reserve is for the console */
		return false;
	}
	if (code == PG_CANCEL_REQUEST) {
		uint32_t pid = len == 16 ? pg_get_u32(pkt + 8) : 0;
		uint32_t key = len == 16 ? pg_get_u32(pkt + 12) : 0;
		iobuf_swallow(c->rbuf, len);
		if (len == 16 && pg_handle_cancel(c, pid, key)) {
			/* nothing more is read from it; a hang-up still closes it early */
			conn_pause_read(c, true);
			return false;
		}
		client_close(c, "cancel request");
		return false;
	}
	/* consumed before it is acted on: a login that completes at once goes straight
	 * on to relay whatever the client sent after it */
	uint8_t *copy = xmalloc(len);
	memcpy(copy, pkt, len);
	iobuf_swallow(c->rbuf, len);
	handle_startup(c, copy, len, code);
	free(copy);
	return c->state != CL_JUSTFREE;
}

static bool login_auth_message(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	uint8_t type;
	uint32_t len;
	if (!pg_client_header(c, &type, &len))
		return false;
	if (type != 'p' || len > PG_LOGIN_MSG_MAX) {
		login_fail(c, "08P01", "expected an authentication response");
		return false;
	}
	if (!have_whole(c, len + 1))
		return false;
	uint8_t *body = xmalloc(len);
	memcpy(body, iobuf_parse_ptr(c->rbuf) + 5, len - 4);
	iobuf_swallow(c->rbuf, len + 1);
	if (pc->phase == PGC_PASSWORD)
		handle_password(c, body, len - 4);
	else if (pc->phase == PGC_SASL_INIT)
		handle_sasl_init(c, body, len - 4);
	else
		handle_sasl_final(c, body, len - 4);
	explicit_bzero(body, len - 4);
	free(body);
	return c->state != CL_JUSTFREE;
}

void pg_client_input(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	/* woken because the server took the last of this client's bytes: a release that
	 * waited for them can happen now */
	if (pc->phase == PGC_READY && !pc->console && c->link &&
	    !(c->rbuf && iobuf_unparsed(c->rbuf))) {
		pg_server_release_if_due(c->link);
		return;
	}
	while (c->state != CL_JUSTFREE && c->rbuf && iobuf_unparsed(c->rbuf)) {
		bool more;
		switch (pc->phase) {
		case PGC_STARTUP:
			more = login_startup_packet(c);
			break;
		case PGC_PASSWORD:
		case PGC_SASL_INIT:
		case PGC_SASL_FINAL:
			more = login_auth_message(c);
			break;
		case PGC_WELCOME:
			return; /* what it sends waits for the welcome */
		case PGC_READY:
		default:
			if (pc->console)
				pg_console_input(c);
			else
				pg_client_relay(c);
			return;
		}
		if (!more)
			return;
	}
}

/* --- after login --- */

void pg_client_linked(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	struct conn *s = c->link;
	if (pc->phase == PGC_WELCOME) {
		send_welcome(c);
		/* the server was only needed for its parameters: a client that has asked
		 * for nothing yet does not hold it (PAUSE must not wait for it) */
		if (!c->rbuf || !iobuf_unparsed(c->rbuf)) {
			pool_release(c);
			return;
		}
	}
	pgs(s)->track = prep_applies(c);
	pg_prep_linked(s);
	struct pg_out sql;
	pg_out_init(&sql);
	if (pg_build_param_sets(&pc->wanted, &pgs(s)->params, &pg_pool_state(c->pool)->welcome,
	                        &sql)) {
		pc->applying = true;
		pg_server_internal_query(s, (const char *)sql.data);
		pg_out_free(&sql);
		return;
	}
	pg_out_free(&sql);
	pg_client_relay(c);
}

/* Reads the next message header; false when the caller must stop (incomplete, or the
 * client was closed: a bad length, or Terminate, which is never forwarded). */
static bool next_header(struct conn *c, uint8_t *type, uint32_t *len)
{
	if (!pg_client_header(c, type, len))
		return false;
	if (*type == 'X') {
		client_close(c, "client sent Terminate");
		return false;
	}
	return true;
}

static void client_idle_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	struct conn *c = arg;
	char msg[128];
	(void)l;
	(void)t;
	snprintf(msg, sizeof(msg), "client_idle_timeout: client idle for %.1f s",
	         (double)pool_client_idle_timeout(c) / USEC_PER_SEC);
	conn_log(c, LOG_LVL_INFO, "%s", msg);
	client_fail(c, "08P01", msg);
}

void pg_client_arm_idle(struct conn *c)
{
	usec_t t = pool_client_idle_timeout(c);
	if (t && !pgc(c)->console && (c->state == CL_IDLE || c->state == CL_ACTIVE))
		loop_timer_start(c->core->loop, &c->timer, t, 0, client_idle_expired, c);
}

/* Bookkeeping per client message: replies owed, timing, statistics. */
static void count_client_message(struct conn *c, struct pg_server *ps, uint8_t type)
{
	struct stats_counters *st = &c->pool->stats.total;
	if (type == 'Q' || type == 'S' || type == 'F') {
		usec_t now = loop_now(c->core->loop);
		if (ps->outstanding++ == 0)
			ps->query_start = now;
		if (!ps->in_xact) {
			ps->in_xact = true;
			ps->xact_start = now;
		}
	} else if (type == 'P') {
		st->client_parses++;
		if (!ps->track) /* pg_prep counts the Parses that reach a server */
			st->server_parses++;
	} else if (type == 'B') {
		st->binds++;
	}
	if ((type == 'Q' || type == 'S' || type == 'F') && ps->outstanding == 1)
		pg_server_arm_timeouts(c->link);
	/* replies to these come only after a Sync: the server stays until then */
	if (type == 'S')
		ps->unsynced = false;
	else if (type && strchr("PBDECH", type))
		ps->unsynced = true;
}

/* Whether named prepared statements are tracked for this client (pg_prep.c); a client
 * that has some keeps them even if the setting went to 0. */
static bool prep_applies(const struct conn *c)
{
	return pool_effective_mode(c->pool) != POOL_SESSION &&
	       (c->core->cfg->max_prepared_statements > 0 || pgc(c)->prepared.n > 0);
}

/* One message whose header is at the parse cursor: false when the relay must stop. */
static bool relay_message(struct conn *c, struct pg_server *ps, uint8_t type, uint32_t len)
{
	uint32_t fwd = len + 1;
	if (ps->track) {
		switch (pg_prep_client_msg(c, type, len, &fwd)) {
		case PREP_WAIT:
		case PREP_FAILED:
			return false;
		case PREP_CONSUMED:
			fwd = 0;
			break;
		case PREP_FORWARD:
			break;
		}
	}
	count_client_message(c, ps, type);
	if (!fwd) /* consumed whole by pg_prep */
		c->pool->stats.total.bytes_received += len + 1;
	pgc(c)->pkt_remain = fwd;
	return true;
}

/* Frontend message types of protocol 3.0 after login; anything else is refused here,
 * not sent to a server that would end the session over it. */
static bool known_frontend_type(uint8_t type)
{
	return type && strchr("BCcdDEfFHPQSX", type) != NULL;
}

/* Copy data with no COPY to receive it: what is left of a COPY FROM STDIN the server
 * ended with an error. PostgreSQL ignores such messages outside COPY, so sluice drops
 * them itself instead of asking for a server. */
static bool stray_copy_message(uint8_t type)
{
	return type == 'd' || type == 'c' || type == 'f';
}

/* Client bytes that reached sluice, counted as they are moved (not as declared). */
static void stream_client_rest(struct conn *c, bool forward)
{
	uint32_t n = pg_stream_rest(c->rbuf, &pgc(c)->pkt_remain, forward);
	c->pool->stats.total.bytes_received += n;
}

/* A client holding no server: drop stray copy data, answer what pg_prep can, and lease
 * a server at the first message that needs one. */
static void relay_unlinked(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	uint8_t type;
	uint32_t len;
	while (c->state == CL_IDLE && iobuf_unparsed(c->rbuf)) {
		if (pc->pkt_remain) {
			stream_client_rest(c, false);
			continue;
		}
		/* libpq's PQprepare between transactions must not wait for a server: a
		 * program preparing on one connection while its others hold the pool in
		 * open transactions would wait for itself */
		if (prep_applies(c) && pg_prep_answer_idle(c))
			continue;
		if (!iobuf_unparsed(c->rbuf) || !next_header(c, &type, &len))
			return;
		if (!known_frontend_type(type)) {
			client_fail(c, "08P01", "invalid frontend message type");
			return;
		}
		if (!stray_copy_message(type)) {
			pool_lease(c);
			return;
		}
		pc->pkt_remain = len + 1;
	}
}

void pg_client_relay(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	uint8_t type;
	uint32_t len;
	if (!c->rbuf || c->state == CL_JUSTFREE || pc->applying)
		return;
	if (!c->link) {
		relay_unlinked(c);
		return;
	}
	struct conn *s = c->link;
	struct pg_server *ps = pgs(s);
	loop_timer_stop(c->core->loop, &c->timer); /* client_idle_timeout */
	/* shutting down after running queries: start no new one, and say so */
	if (c->core->run_state == RUN_WAIT_SERVERS && pg_server_clean(s) && !pc->pkt_remain) {
		if (iobuf_unparsed(c->rbuf) && next_header(c, &type, &len))
			client_fail(c, "57P01", "server shutting down");
		return;
	}
	while (iobuf_unparsed(c->rbuf)) {
		if (pc->pkt_remain) {
			stream_client_rest(c, true);
			continue;
		}
		if (!next_header(c, &type, &len))
			break;
		if (!known_frontend_type(type)) {
			client_fail(c, "08P01", "invalid frontend message type");
			return;
		}
		if (!relay_message(c, ps, type, len))
			break;
	}
	if (c->state == CL_JUSTFREE)
		return;
	if (ps->track)
		pg_prep_send_made_up(s);
	conn_forward(c);
	/* a release that waited for the end of this client's message */
	if (c->state != CL_JUSTFREE && c->link == s)
		pg_server_release_if_due(s);
}
