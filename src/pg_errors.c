/*
 * pg_errors: the PostgreSQL module's answer to the core's error questions. It maps the
 * pooler's own error kinds (errors.h) to SQLSTATEs and classifies the SQLSTATE of a
 * failed server login. The core never reads a SQLSTATE; this is the one place that
 * decides what one means to the pooler.
 */
#include <stdbool.h>
#include <string.h>

#include "errors.h"
#include "pg.h"
#include "util.h"

/* Indexed by kind: the SQLSTATE sluice has always sent in that case (tests check them). */
static const char *const pg_codes[ERR_KIND_COUNT] = {
    [ERR_LOGIN_TIMEOUT] = "08P01",         /* protocol_violation */
    [ERR_QUERY_WAIT_TIMEOUT] = "08P01",    /* protocol_violation */
    [ERR_TOO_MANY_CONNECTIONS] = "53300",  /* too_many_connections */
    [ERR_OUT_OF_DESCRIPTORS] = "53300",    /* too_many_connections */
    [ERR_SHUTTING_DOWN] = "57P01",         /* admin_shutdown */
    [ERR_ADMIN_KILLED] = "57P01",          /* admin_shutdown */
    [ERR_SERVER_CONNECT_FAILED] = "08006", /* connection_failure */
    [ERR_SERVER_LOGIN_TIMEOUT] = "08006",  /* connection_failure */
    [ERR_SERVER_LOST] = "08006",           /* connection_failure */
    [ERR_SERVER_FAST_CLOSE] = "08006",     /* connection_failure */
    [ERR_NO_MATCHING_SERVER] = "08000",    /* connection_exception */
    [ERR_ADMIN_DENIED] = "42501",          /* insufficient_privilege */
    [ERR_UNKNOWN_DATABASE] = "3D000",      /* invalid_catalog_name */
    [ERR_BAD_COMMAND] = "42601",           /* syntax_error */
    [ERR_NO_SUCH_OBJECT] = "42704",        /* undefined_object */
    [ERR_RELOAD_FAILED] = "F0000",         /* config_file_error */
    [ERR_BAD_VALUE] = "22023",             /* invalid_parameter_value */
    [ERR_COMMAND_TOO_LONG] = "54000",      /* program_limit_exceeded */
};

const char *pg_error_code(enum err_kind kind)
{
	/* XX000 internal_error: a kind added without a code here is a bug, not a crash */
	if ((unsigned)kind >= ERR_KIND_COUNT || !pg_codes[kind])
		return "XX000";
	return pg_codes[kind];
}

/*
 * Errors that say the host cannot take connections now: sluice's own connect errors
 * and timeouts (08006), other connection exceptions from the server, and a server that
 * is shutting down, crashed or starting up. Not: bad password, unknown database or
 * user, too many connections, a protocol problem (08P01).
 */
bool pg_login_error_host(const char *sqlstate)
{
	if (!sqlstate)
		return false;
	if (strncmp(sqlstate, "08", 2) == 0)
		return strcmp(sqlstate, "08P01") != 0;
	return strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "57P02") == 0 ||
	       strcmp(sqlstate, "57P03") == 0;
}

/* Failures that a restart or a short outage explains: retried soon, then less often. */
bool pg_login_error_transient(const char *sqlstate)
{
	static const char *const codes[] = {"08000", "08001", "08003", "08006"};
	if (!sqlstate)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		if (strcmp(sqlstate, codes[i]) == 0)
			return true;
	/* 57P01-57P03: shutting down, crashed, starting up; 53xxx: out of resources */
	return strncmp(sqlstate, "57P", 3) == 0 || strncmp(sqlstate, "53", 2) == 0;
}
