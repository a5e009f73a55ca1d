/*
 * pg_proto: the PostgreSQL module's entry in the protocol table, the teardown of its
 * per-connection state (which wipes anything secret it held), and the gate for
 * clients accepted on the descriptor reserve (listen.c): their startup packet must
 * name the admin console, or they are refused before the login goes any further.
 */
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "listen.h"
#include "pg.h"
#include "pool.h"
#include "proto.h"

static void pg_conn_free(struct conn *c)
{
	listen_reserve_return(c);
	if (!c->pstate)
		return;
	if (c->is_server) {
		struct pg_server *ps = pgs(c);
		scram_client_clear(&ps->scram);
		pg_params_free(&ps->params);
		free(ps->internal_error);
		pg_prep_server_free(ps);
	} else {
		struct pg_client *pc = pgc(c);
		if (pc->console)
			admin_forget(c->core, c);
		pg_client_forget_login(pc);
		pg_params_free(&pc->wanted);
		pg_prep_client_free(pc);
	}
	free(c->pstate);
	c->pstate = NULL;
}

static const char *pg_conn_param(const struct conn *c, const char *name)
{
	if (!c->pstate)
		return NULL;
	if (c->is_server)
		return pg_params_get(&pgs(c)->params, name);
	return pg_params_get(&pgc(c)->wanted, name);
}

/* A client on a reserved descriptor whose startup packet is in: true when it names
 * the console (or cannot be judged yet: encryption requests ahead of it are answered by
 * pg_client, a malformed packet is refused there). */
static bool reserve_admits(struct conn *c)
{
	const uint8_t *p = iobuf_parse_ptr(c->rbuf);
	size_t n = iobuf_unparsed(c->rbuf);
	struct pg_startup_param params[64];
	size_t np;
	while (n >= 8) {
		uint32_t len = pg_get_u32(p), code = pg_get_u32(p + 4);
		if (len < 8 || len > PG_STARTUP_MAX || n < len)
			return true;
		if ((code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST) && len == 8) {
			p += 8;
			n -= 8;
			continue;
		}
		if (code >> 16 != 3) /* a cancel request or an old protocol: not the console */
			return false;
		if (!pg_parse_startup_params(p + 8, len - 8, params, ARRAY_SIZE(params), &np))
			return true;
		const char *user = NULL, *db = NULL;
		for (size_t i = 0; i < np; i++) {
			if (strcmp(params[i].name, "user") == 0)
				user = params[i].value;
			else if (strcmp(params[i].name, "database") == 0)
				db = params[i].value;
		}
		if (!db || !db[0])
			db = user;
		return db && admin_is_console_db(db) && listen_reserve_keep(c);
	}
	return true;
}

static void pg_client_input_gated(struct conn *c)
{
	if (pgc(c)->phase == PGC_STARTUP && listen_reserve_probing(c) && !reserve_admits(c)) {
		listen_reserve_refuse(c);
		return;
	}
	pg_client_input(c);
}

const struct proto_ops pg_proto = {
    .name = "postgresql",
    .unix_socket_prefix = ".s.PGSQL.",
    .default_port = 5432,
    .client_accepted = pg_client_accepted,
    .client_input = pg_client_input_gated,
    .client_linked = pg_client_linked,
    .client_error = pg_client_error,
    .server_connected = pg_server_connected,
    .server_input = pg_server_input,
    .server_clean = pg_server_clean,
    .server_reset = pg_server_reset,
    .server_check = pg_server_check,
    .conn_param = pg_conn_param,
    .prepared_count = pg_prep_count,
    .conn_free = pg_conn_free,
};
