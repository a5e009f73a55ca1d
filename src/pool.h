/*
 * pool: databases, users and the pools keyed by (database, user). A pool owns its
 * server connections, one list per state, and the FIFO of clients waiting for one.
 * Leasing hands an idle server to a client (checked first when it idled for
 * server_check_delay) or queues the client and opens servers, one connect at a time,
 * within pool_size (plus the reserve for clients that waited reserve_pool_timeout),
 * max_db_connections and max_user_connections (a pool held back by one of these takes
 * over the idle server of another pool under it, the one idle longest, so none
 * starves); releasing resets a server (through the protocol module) before anyone
 * else gets it. Out of descriptors, a connect leaves the waiters waiting and is tried
 * again when one frees. The janitor keeps min_pool_size, closes idle and old servers
 * and checks idle ones; a failed login marks the pool down and backs off. Every client
 * and server teardown goes through client_close()/server_close() here, once, with a
 * reason.
 */
#ifndef SLUICE_POOL_H
#define SLUICE_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "core.h"
#include "errors.h"
#include "scram.h"
#include "stats.h"

struct host_set;

/* A database as sluice runs it: a [databases] entry (or a "*" instance), copied. */
struct database {
	struct list node;
	char *name;
	char *host; /* NULL or "/dir": unix socket; the first host of a list */
	int port;
	struct host_set *hosts; /* every host with its health (hosts.c) */
	char *dbname;           /* on the server */
	char *force_user;
	char *password;
	int pool_size, min_pool_size, reserve_pool_size, max_db_connections;
	enum pool_mode pool_mode;
	char *connect_query;
	char *startup_params[4][2]; /* client_encoding, datestyle, timezone, application_name */
	const struct proto_ops *proto;
	bool from_fallback;
	bool stale;    /* gone from the config on reload */
	bool paused;   /* PAUSE or KILL db: no server is handed out */
	bool disabled; /* DISABLE db: new clients are refused */
	int n_servers;
	int n_clients;
};

/* A user as sluice runs it: a login name with its limits and SCRAM keys. */
struct user {
	struct list node;
	char *name;
	enum pool_mode pool_mode;
	int pool_size;
	int reserve_pool_size; /* -1: the database's or the global one */
	int max_user_connections;
	/* the [users] entry's own timeouts; 0: the global one applies (pool_*_timeout) */
	usec_t query_timeout, idle_transaction_timeout, transaction_timeout, client_idle_timeout;
	int n_servers;
	/* keys recovered from a client's SCRAM proof, to log in to servers with */
	bool have_scram_keys;
	uint8_t scram_client_key[SCRAM_KEY_LEN];
	uint8_t scram_server_key[SCRAM_KEY_LEN];
};

struct pool {
	struct list node;
	struct core *core;
	struct database *db;
	struct user *user; /* the server-side user */
	struct list servers[SV_STATE_COUNT];
	int n_servers[SV_STATE_COUNT];
	int n_probes;        /* health probes among the connecting servers: never for a waiter */
	usec_t refused_at;   /* the last client refused while the pool was down */
	struct list waiting; /* CL_WAITING and CL_WAIT_LOGIN, FIFO */
	struct list active;  /* CL_ACTIVE */
	struct list idle;    /* CL_IDLE */
	int n_waiting, n_active, n_idle;
	/* cancel requests for this pool's servers: not yet written, and written with the
	 * cancel connection still open (PostgreSQL closes it once it has signalled) */
	int n_cancel_waiting, n_cancel_active;
	void *pstate; /* protocol module's: e.g. the parameters servers report */
	void (*pstate_free)(void *);
	/* Last server login failure, kept until a login succeeds (the pool is "down").
	 * Until login_retry_at new clients get it at once and no server is opened; the
	 * wait after a failure that may heal soon (connect refused, shutting down) starts
	 * short and doubles up to server_login_retry, other failures wait the whole of it.
	 * retry_timer probes in the background when the wait is over. */
	char *login_error_code;
	char *login_error_msg;
	usec_t login_failed_at;
	usec_t login_backoff;
	usec_t login_retry_at;
	struct loop_timer retry_timer;
	struct loop_timer reserve_timer; /* the head waiter reaches reserve_pool_timeout */
	usec_t last_lifetime_close;      /* server_lifetime closes are spread out */
	bool fd_short; /* a server connect found no descriptor; retried when one frees */
	struct stats stats;
};

/* Installs the pool's connect hooks in conn.c; called once at start-up, before any
 * server is connected. */
void pool_init(void);
struct database *database_lookup(struct core *core, const char *name);
struct user *user_lookup(struct core *core, const char *name);
struct pool *pool_get(struct core *core, struct database *db, struct user *user);
enum pool_mode pool_effective_mode(const struct pool *pool);
int pool_effective_size(const struct pool *pool);
int pool_min_size(const struct pool *pool);     /* min_pool_size, at most the pool size */
int pool_reserve_size(const struct pool *pool); /* reserve_pool_size in effect */
int pool_total_servers(const struct pool *pool);

/*
 * Timeouts in effect (usec, 0 = off), as PgBouncer resolves them: a [users] value
 * above 0 replaces the global one, otherwise the global one applies. Read them each
 * time they are needed, so RELOAD and SET take effect for live connections.
 *
 * The server-side ones belong to the pool's user, the one servers log in as (the
 * database's forced user when it has one), as PgBouncer takes them from the server's
 * login user. client_idle_timeout belongs to the client's login user, as in PgBouncer.
 */
usec_t pool_query_timeout(const struct pool *pool);
usec_t pool_idle_transaction_timeout(const struct pool *pool);
usec_t pool_transaction_timeout(const struct pool *pool);
/* For a logged-in client; the global value when it has no pool (console, login). */
usec_t pool_client_idle_timeout(const struct conn *client);

/* max_client_conn in effect: as configured, or less when the descriptor limit must
 * keep room for servers (core->max_client_conn_cap). */
int pool_max_client_conn(const struct core *core);

/* Reconcile databases and users with a new config (reload). */
void pool_apply_config(struct core *core);

/* Client moves: after login the client joins the pool (idle, or waiting for params). */
void pool_client_enter(struct pool *pool, struct conn *client, bool needs_server);
/* Ask for a server; client->link is set and proto->client_linked called when there is one. */
void pool_lease(struct conn *client);
/* Detach the client's server and give it back (reset, or close when dirty). */
void pool_release(struct conn *client);

/* Server moves, called by the protocol module. */
void pool_server_ready(struct conn *server); /* login or reset finished */
/* code: the protocol's, from the server or proto->error_code(); the core never reads it */
void pool_server_login_failed(struct conn *server, const char *code, const char *msg);
/* The health check started through proto->server_check is over. */
void pool_server_checked(struct conn *server, bool ok);
void server_set_state(struct conn *server, enum server_state st);

/* Teardown, the only ways out. reason is logged; it must not contain secrets. */
void client_close(struct conn *client, const char *reason);
void client_fail(struct conn *client, const char *code, const char *msg);
/* The same for one of the pooler's own errors: the protocol picks the code. */
void client_fail_kind(struct conn *client, enum err_kind kind, const char *msg);
void server_close(struct conn *server, const char *reason);

/* Admin console operations. */
bool pool_is_paused(const struct pool *pool);
void pool_wake_database(struct core *core, struct database *db);     /* after RESUME */
void pool_mark_close_needed(struct core *core, struct database *db); /* RECONNECT */
void pool_kill_database(struct core *core, struct database *db);     /* KILL */
void pool_suspend_all(struct core *core, bool suspend);              /* SUSPEND/RESUME */
struct conn *pool_find_client_by_id(struct core *core, uint64_t id);
/* Closes every client waiting for a server with this error (SHUTDOWN WAIT_FOR_SERVERS). */
void pool_fail_waiting(struct core *core, enum err_kind kind, const char *msg);
/* Console clients: counted apart, kept on core->admin_clients. */
void pool_client_enter_admin(struct core *core, struct conn *client);

/* At exit: closes every connection and frees pools, databases and users. */
void pool_free_all(struct core *core);

/* Periodic work. */
void pool_janitor(struct core *core);
/* A descriptor was given back: server connects that found none are tried again. */
void pool_fd_freed(struct core *core);
/* Find the client that owns a cancel key (NULL if none). */
struct conn *pool_find_client_by_cancel_key(struct core *core, uint32_t pid, uint32_t key);

/*
 * A cancel request in flight for a server (the protocol module embeds one). While a
 * server has one, it is never handed to another client: released by its client, it
 * waits as SV_BEING_CANCELED (no reset, no reuse) until the last one ends, so a cancel
 * meant for one client's query cannot land on the next client's.
 */
struct cancel_ref {
	struct list node;    /* on its server's cancels */
	struct conn *server; /* NULL once that server is closed */
	struct pool *pool;
	/* the connection the request came on, closed when the request is over (a client
	 * such as libpq waits for that before it sends its next query); NULL once gone */
	struct list client_node; /* on that connection's cancels */
	struct conn *client;
	bool forwarded; /* written; waiting for the database to close the cancel connection */
};
/* The request from client (or NULL) for server's current query starts (server must be
 * attached). */
void pool_cancel_begin(struct cancel_ref *ref, struct conn *server, struct conn *client);
/* The request is written to the database. */
void pool_cancel_forwarded(struct cancel_ref *ref);
/* The cancel connection is over. settled: nothing of it can reach the server any more
 * (the database closed the connection, or the request was never written); otherwise
 * the server is closed rather than reused, since the cancel might still land. */
void pool_cancel_end(struct cancel_ref *ref, bool settled);

/*
 * Open a new socket to one of the pool's database hosts, the one load_balance_hosts
 * picks (the next ones when that fails at once); connect() is in progress.
 */
int pool_connect_socket(struct pool *pool, struct sockaddr_storage *addr_out, int *host_out,
                        char *err, size_t errlen);
/* Open a new socket to the host a server is connected to (for its cancel requests). */
int pool_connect_server_addr(const struct conn *server, struct sockaddr_storage *addr_out,
                             char *err, size_t errlen);
/* A health probe of host i of the pool's database (hosts.c): a server connection outside
 * the pool's limits that hosts.c closes after its login. NULL if it could not start. */
struct conn *pool_launch_probe(struct pool *pool, size_t host);

#endif
