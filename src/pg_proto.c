/*
 * pg_proto: the PostgreSQL module's entry in the protocol table, the teardown of its
 * per-connection state (which wipes anything secret it held, and gives back a
 * descriptor lent from the reserve, see listen.c).
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

const struct proto_ops pg_proto = {
    .name = "postgresql",
    .unix_socket_prefix = ".s.PGSQL.",
    .default_port = 5432,
    .client_accepted = pg_client_accepted,
    .client_input = pg_client_input,
    .client_linked = pg_client_linked,
    .client_error = pg_client_error,
    .error_code = pg_error_code,
    .login_error_host = pg_login_error_host,
    .login_error_transient = pg_login_error_transient,
    .server_connected = pg_server_connected,
    .server_input = pg_server_input,
    .server_clean = pg_server_clean,
    .server_reset = pg_server_reset,
    .server_check = pg_server_check,
    .conn_param = pg_conn_param,
    .prepared_count = pg_prep_count,
    .conn_free = pg_conn_free,
};
