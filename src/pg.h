/*
 * pg: private state of the PostgreSQL protocol module, shared by its files
 * (pg_client.c: client login and relay; pg_server.c: server login, relay and reset;
 * pg_params.c: tracked session parameters; pg_cancel.c: cancel requests). Nothing
 * outside the pg_ files includes this.
 */
#ifndef SLUICE_PG_H
#define SLUICE_PG_H

#include <stdbool.h>
#include <stdint.h>

#include "auth_file.h"
#include "conn.h"
#include "errors.h"
#include "pg_pkt.h"
#include "proto.h"
#include "scram.h"

/* The module's entry in the protocol registry (proto.c), defined in pg_proto.c. */
extern const struct proto_ops pg_proto;

/* name/value pairs: what a server reports, what a client asked for */
struct pg_param {
	char *name;
	char *value;
	bool set_by_us; /* on a server: a parameter it does not report, as sluice set it */
};
struct pg_params {
	struct pg_param *v;
	size_t n, cap;
};
const char *pg_params_get(const struct pg_params *p, const char *name);
/* true when the value changed */
bool pg_params_set(struct pg_params *p, const char *name, const char *value);
void pg_params_free(struct pg_params *p);
void pg_params_del(struct pg_params *p, const char *name);
struct config;
/* The canonical spelling of a parameter that follows a client from server to server
 * (the built-in five and track_extra_parameters; case-insensitive), or NULL. */
const char *pg_param_canonical(const struct config *cfg, const char *name);

/* pg_prep.c: protocol-level prepared statements across servers */
struct pg_cstmt;
struct pg_sstmt;
struct pg_qent;
struct pg_cmap { /* a client's statement names */
	struct pg_cstmt **b;
	uint32_t nb, n;
};
struct pg_scache { /* what a server has prepared, with its LRU list */
	struct pg_sstmt **b;
	uint32_t nb, n;
	struct list lru;
};
struct pg_queue { /* client messages whose replies the server still owes, in order */
	struct pg_qent *v;
	uint32_t head, n, cap;
};

enum pgc_phase {
	PGC_STARTUP,    /* waiting for the startup packet */
	PGC_PASSWORD,   /* sent a cleartext/md5 request */
	PGC_SASL_INIT,  /* sent AuthenticationSASL */
	PGC_SASL_FINAL, /* sent SASLContinue */
	PGC_WELCOME,    /* authenticated, welcome waits for a server's parameters */
	PGC_READY,      /* logged in */
};

/* What only the login needs; freed (and wiped) once the client is in, so an idle
 * client costs little. */
struct pg_login {
	uint8_t md5_salt[4];
	char *secret; /* copy of the auth_file secret */
	enum secret_kind secret_kind;
	bool user_known;
	struct scram_server scram;
};

struct pg_client {
	enum pgc_phase phase;
	bool negotiated_ssl;
	struct pg_login *login;  /* NULL after login */
	struct pg_params wanted; /* tracked parameters as the client wants them */
	uint32_t pkt_remain;     /* bytes of a message still to forward (to the server it
	                          * holds) or, holding none, to discard */
	bool applying;           /* a SET of its parameters runs on the server */
	struct pg_cmap prepared; /* named statements, when pg_prep is on */
	/* admin console */
	bool console;
	bool console_busy;    /* a command is running: later ones wait */
	bool console_skip;    /* skipping extended-protocol messages up to Sync */
	bool console_looping; /* pg_console_input is on the stack: it takes the next one */
	int console_role;     /* enum admin_role */
};

enum pgs_phase {
	PGS_LOGIN, /* startup sent, authenticating */
	PGS_CONNECT_QUERY,
	PGS_READY, /* idle or relaying */
	PGS_RESET, /* server_reset_query running */
	PGS_CHECK, /* server_check_query running */
};

struct pg_server {
	enum pgs_phase phase;
	struct scram_client scram;
	bool scram_started;
	struct pg_params params; /* as the server last reported them */
	uint32_t pkt_remain;
	char txn_status; /* status of the last ReadyForQuery */
	int outstanding; /* client Query/Sync not yet answered by ReadyForQuery */
	int internal;    /* sluice's own queries whose replies are swallowed */
	bool internal_failed;
	char *internal_error; /* first error message of an internal query */
	char internal_code[6];
	bool in_xact;             /* a transaction is running (for xact_time) */
	bool unsynced;            /* extended-protocol messages sent since the last Sync */
	bool release_pending;     /* transaction pooling: back to the pool once flushed */
	bool statement_violation; /* statement pooling: the client opened a transaction */
	bool session_changed;     /* a SET/RESET ran: reset before the next client */
	usec_t query_start, xact_start;
	usec_t idle_since; /* the last ReadyForQuery, for idle_transaction_timeout */
	bool track;        /* pg_prep runs for the attached client */
	bool skipping;     /* an error made the server skip messages up to the next Sync */
	struct pg_scache prepared;
	struct pg_queue queue;
	/* an extended-protocol DEALLOCATE of a client's statement, sent as a no-op: the
	 * client name the unnamed statement, then a portal, would deallocate */
	char *dealloc_unnamed;
	char *dealloc_portal, *dealloc_portal_target;
	bool sql_prepared; /* a client ran SQL PREPARE or DEALLOCATE: DEALLOCATE ALL after it */
};

/* Per-pool: the parameters the first server reported, for welcoming clients. */
struct pg_pool {
	struct pg_params welcome;
	bool have_welcome;
};

static inline struct pg_client *pgc(const struct conn *c)
{
	return c->pstate;
}
static inline struct pg_server *pgs(const struct conn *c)
{
	return c->pstate;
}
struct pg_pool *pg_pool_state(struct pool *pool);

/* Moves the rest of a message that is being streamed, forwarded or swallowed; returns
 * how many bytes it moved. */
static inline uint32_t pg_stream_rest(struct iobuf *b, uint32_t *remain, bool forward)
{
	uint32_t n = iobuf_unparsed(b) < *remain ? iobuf_unparsed(b) : *remain;
	if (forward)
		iobuf_mark_send(b, n);
	else
		iobuf_swallow(b, n);
	*remain -= n;
	return n;
}

/* The end of a client's login: sluice's cancel key for it, then ReadyForQuery. */
void pg_out_login_done(struct pg_out *o, const struct conn *c);

/* Sends a built message buffer to a connection and resets it. */
void pg_send_out(struct conn *c, struct pg_out *o);

/* pg_errors.c: the SQLSTATE of each of the pooler's own errors, and what a login
 * failure's SQLSTATE says (see proto.h) */
const char *pg_error_code(enum err_kind kind);
bool pg_login_error_host(const char *sqlstate);
bool pg_login_error_transient(const char *sqlstate);

/* pg_client.c */
void pg_client_accepted(struct conn *c);
/* Wipes and frees the login state; NULL is fine. */
void pg_client_forget_login(struct pg_client *pc);
void pg_client_input(struct conn *c);
void pg_client_linked(struct conn *c);
void pg_client_error(struct conn *c, const char *sqlstate, const char *msg, bool fatal);
void pg_client_relay(struct conn *c);
/* The header of the next client message; false when incomplete, or when the length is
 * invalid (the client is then closed with an error). */
bool pg_client_header(struct conn *c, uint8_t *type, uint32_t *len);
/* client_idle_timeout: starts counting once the client has nothing outstanding. */
void pg_client_arm_idle(struct conn *c);

/* pg_server.c */
void pg_server_connected(struct conn *s);
void pg_server_input(struct conn *s);
bool pg_server_clean(const struct conn *s);
bool pg_server_reset(struct conn *s);
void pg_server_check(struct conn *s);
/* Transaction pooling: hands the server back if a release is due and the attached
 * client is at a message boundary with everything it sent delivered. */
void pg_server_release_if_due(struct conn *s);
/* Re-arms the server's timer for query, transaction and idle-in-transaction timeouts. */
void pg_server_arm_timeouts(struct conn *s);
/* Runs sql on the server as sluice's own query; replies are swallowed. */
void pg_server_internal_query(struct conn *s, const char *sql);
/* Client parameters differing from the server's: a query that sets them, or false.
 * reported: what servers of the pool report (the welcome); have is updated for the
 * parameters servers do not report. */
bool pg_build_param_sets(const struct pg_params *wanted, struct pg_params *have,
                         const struct pg_params *reported, struct pg_out *sql);
/* The startup 'options' parameter (libpq's options, PGOPTIONS): -c settings of tracked
 * parameters become wanted, ignored ones are dropped; false (with the offending word
 * in bad) for anything else, which sluice could not keep per client. */
bool pg_take_options(struct pg_params *wanted, const struct config *cfg, const char *opts,
                     char *bad, size_t badlen);
/* Fills in, for every tracked parameter the client did not send, the pool's default
 * (so a value another client set is put back for it). */
void pg_params_defaults(struct pg_params *wanted, const struct config *cfg,
                        const struct pg_params *reported);
/* After RESET ALL / DISCARD ALL: what sluice set of unreported parameters is gone. */
void pg_params_forget_unreported(struct pg_params *have);

/* pg_prep.c */
enum pg_prep_result {
	PREP_FORWARD,  /* forward the next *fwd bytes as they are */
	PREP_CONSUMED, /* the message was handled (swallowed or sent rewritten) */
	PREP_WAIT,     /* more of the message must arrive first */
	PREP_FAILED,   /* the client was closed */
};
/* A client message on a server with tracking on; its header is at the parse cursor. */
enum pg_prep_result pg_prep_client_msg(struct conn *c, uint8_t type, uint32_t len, uint32_t *fwd);
/* A client between transactions whose buffered messages up to a Sync only prepare
 * (or close) statements some server has already accepted: answered here, no server
 * needed. False when the client needs a server. */
bool pg_prep_answer_idle(struct conn *c);
/* A reply header from the server: true when sluice swallows that message. */
bool pg_prep_server_reply(struct conn *s, uint8_t type);
/* A server given to a client: what the last client left in its unnamed statement and
 * portals is not this one's. */
void pg_prep_linked(struct conn *s);
/* Sends the replies sluice makes up that have reached the head of the queue. */
void pg_prep_send_made_up(struct conn *s);
/* A CommandComplete: DEALLOCATE ALL and DISCARD ALL forget statements. */
void pg_prep_command_done(struct conn *s, const uint8_t *tag, uint32_t len);
void pg_prep_client_free(struct pg_client *pc);
void pg_prep_server_free(struct pg_server *ps);
unsigned pg_prep_count(const struct conn *c);

/* pg_admin.c */
bool pg_console_peer_ok(const struct conn *c);
void pg_console_welcome(struct conn *c, bool peer);
void pg_console_input(struct conn *c);

/* pg_cancel.c */
/* True when the request is forwarded: c is then closed once the cancel is over. */
bool pg_handle_cancel(struct conn *c, uint32_t pid, uint32_t key);

#endif
