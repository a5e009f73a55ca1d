/*
 * errors: the kinds of error the pooler itself reports, named by what went wrong and
 * never by a protocol's code. The core passes a kind to proto->error_code(), and each
 * protocol module maps it to its own code (PostgreSQL: a SQLSTATE, see pg_errors.c).
 * An error relayed from a server keeps the server's code as an opaque string the core
 * stores and hands back, but never reads: only the protocol module classifies it
 * (proto->login_error_host, proto->login_error_transient).
 *
 * Add a kind for each distinct situation, even when a protocol maps two kinds to the
 * same code: another protocol may tell them apart.
 */
#ifndef SLUICE_ERRORS_H
#define SLUICE_ERRORS_H

enum err_kind {
	ERR_LOGIN_TIMEOUT,         /* client_login_timeout: no login in time */
	ERR_QUERY_WAIT_TIMEOUT,    /* query_wait_timeout: no server became free */
	ERR_TOO_MANY_CONNECTIONS,  /* max_client_conn reached (admission) */
	ERR_OUT_OF_DESCRIPTORS,    /* no descriptor left for a client (listen.c reserve) */
	ERR_SHUTTING_DOWN,         /* the pooler is shutting down */
	ERR_ADMIN_KILLED,          /* KILL or KILL_CLIENT from the console */
	ERR_SERVER_CONNECT_FAILED, /* connect, DNS or descriptor failure towards a server */
	ERR_SERVER_LOGIN_TIMEOUT,  /* server_connect_timeout */
	ERR_SERVER_LOST,           /* the server of a client's session closed */
	ERR_SERVER_FAST_CLOSE,     /* server_fast_close after a config change */
	ERR_NO_MATCHING_SERVER,    /* no host matches target_session_attrs */
	ERR_ADMIN_DENIED,          /* a console command needs the admin role */
	ERR_UNKNOWN_DATABASE,      /* a console command names no known database */
	ERR_BAD_COMMAND,           /* a console command that does not parse */
	ERR_NO_SUCH_OBJECT,        /* a console command names no such client */
	ERR_RELOAD_FAILED,         /* RELOAD rejected the new config */
	ERR_BAD_VALUE,             /* SET with a value the setting refuses */
	ERR_COMMAND_TOO_LONG,      /* a console command over the length limit */
	ERR_KIND_COUNT
};

#endif
