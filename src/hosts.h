/*
 * hosts: the hosts of one database (host=a,b,c port=...), each host's health and role,
 * and the choice of a host for a new server connection. A host that fails
 * health_check_fails connects or logins in a row is marked down and skipped; while it
 * is down (or known to be the wrong kind of server for target_session_attrs) a probe
 * logs in to it every health_check_period, and health_check_passes good probes in a
 * row bring it back. The choice among usable hosts follows load_balance_hosts.
 *
 * Two layers. The host_set functions are a pure state machine: no sockets, no clock,
 * no logging, so the unit tests drive them directly. The hosts_* functions below them
 * are the pool's side: they pick hosts for pool.c, read how server logins went, launch
 * and end probes through pool_launch_probe() and say what SHOW prints. They never
 * decide anything about pool sizes or wait queues; pool.c calls them at four points
 * (connect, login failed, login done in the protocol module, reload).
 */
#ifndef SLUICE_HOSTS_H
#define SLUICE_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "loop.h"

struct conn;
struct core;
struct database;
struct pool;

enum host_health { HOST_UP = 0, HOST_DOWN };

struct host {
	char *name; /* NULL: the unix socket in unix_socket_dir; "/dir": a unix socket there */
	int port;
	enum host_health health;
	int fails;  /* failed connects, logins or probes in a row */
	int passes; /* good logins or probes in a row while down */
	/* what the last login reported (ParameterStatus): -1 unknown, 0 off, 1 on */
	signed char hot_standby, read_only;
	bool seen;         /* a login has reported them */
	bool mismatch;     /* that login did not suit target_session_attrs */
	uint64_t probe_id; /* the probe connection in flight, 0: none */
};

struct host_set {
	struct host *v;
	size_t n;
	enum lb_mode lb;
	enum tsa_mode tsa;
	size_t rr_next;      /* round-robin cursor (also breaks least-busy ties) */
	long avoid;          /* host the next pick skips if it can (it just failed); -1: none */
	uint64_t refused_id; /* server whose login hosts refused itself (not a host failure) */
	/* pool side, set on first use */
	struct core *core;
	struct database *db;
	const void *probe_user; /* the user of the last good login: probes log in as it */
	struct loop_timer probe_timer;
};

/* What a recorded result changed. */
enum host_event { HOST_EV_NONE = 0, HOST_EV_DOWN, HOST_EV_UP };

/* How a login's role report suits target_session_attrs. */
enum tsa_verdict {
	TSA_ACCEPT = 0, /* use the server */
	TSA_RETRY,      /* close it: another usable host is there to try */
	TSA_REFUSE,     /* close it and fail the waiting clients: no host suits */
};

/* --- the state machine --- */

/* hosts and ports as db_entry has them (already checked by config.c); NULL hosts: one
 * host, the unix socket. default_port applies when ports is NULL. */
struct host_set *host_set_new(const char *hosts, const char *ports, int default_port,
                              enum lb_mode lb, enum tsa_mode tsa);
void host_set_free(struct host_set *hs);
/* Same hosts and ports in the same order. */
bool host_set_same(const struct host_set *a, const struct host_set *b);
/* Takes over the state of every host old also has (same name and port). */
void host_set_carry(struct host_set *fresh, const struct host_set *old);

/* Whether host i is used when the policy has a choice: up, and of the wanted kind. */
bool host_usable(const struct host_set *hs, size_t i);
/* A usable host other than except (-1: any) exists. */
bool host_set_has_usable(const struct host_set *hs, long except);
/*
 * The host for a new server connection. Preference: usable hosts; then hosts that are up
 * (for prefer-standby: a primary; otherwise a role may have changed since the last
 * look); then hosts of the wanted kind that are down; then any. Within the first
 * non-empty group load_balance_hosts decides; busy[i] (servers on host i) is read only
 * for least-busy and may be NULL otherwise. Consumes the avoid hint.
 */
size_t host_pick(struct host_set *hs, const int *busy);

/* A connect, login or probe to host i failed (a failure of the host, not of a user). */
enum host_event host_failed(struct host_set *hs, size_t i, int fail_limit);
/* A login or probe to host i went through. */
enum host_event host_passed(struct host_set *hs, size_t i, int pass_limit);
/* Records what a login to host i reported (-1: not reported) and judges it. */
enum tsa_verdict host_role_seen(struct host_set *hs, size_t i, int hot_standby, int read_only);
/* The role suits mode: 1 yes, 0 no, -1 not enough information (PostgreSQL before 14). */
int tsa_suits(enum tsa_mode mode, int hot_standby, int read_only);
/* Host i needs a probe: down, or of the wrong kind last time. */
bool host_needs_probe(const struct host_set *hs, size_t i);

const char *host_health_name(enum host_health h);
/* "a,b,c" as configured ("" for the unix socket in unix_socket_dir). */
void host_set_format(const struct host_set *hs, char *buf, size_t len);

/* --- the pool's side --- */

/* Index of the host for the pool's next server (see host_pick). */
size_t hosts_pick(struct pool *pool);
/* A connect to one of the pool's hosts is under way. */
void hosts_connecting(struct pool *pool);
/* Connecting to host i failed at once (resolve or connect): err says why. */
void hosts_connect_error(struct pool *pool, size_t i, const char *err);
/*
 * Called first thing by pool_server_login_failed(). Counts the failure against the
 * server's host when the protocol says its code means the host is unusable
 * (proto->login_error_host: connection errors, shutdown, starting up), not when it is
 * about the user or database. Returns true when it has
 * dealt with the server (closed it): a probe, or another usable host can take the
 * waiting clients; false to go on with the normal failure path.
 */
bool hosts_login_failed(struct conn *server, const char *code, const char *msg);
/*
 * Called by the protocol module when a server login is complete, with what the server
 * reported (-1: not reported). Records the host's health and role, ends probes, and
 * applies target_session_attrs. Returns false when the server has been closed.
 */
bool hosts_login_done(struct conn *server, int hot_standby, int read_only);
/* The host a server is connected to, -1 if unknown. */
long hosts_server_host(const struct conn *server);
bool hosts_is_probe(const struct conn *server);
/* "up" or "down" for the server's host (SHOW SERVERS host_health). */
const char *hosts_server_health(const struct conn *server);
/* For reload (pool_apply_config): fresh takes over old's state and probe timer. */
void hosts_carry(struct host_set *fresh, struct host_set *old);
/* For database_changed(): the host list or its ports differ. */
bool hosts_differ(const struct host_set *a, const struct host_set *b);
/* Stops the probe timer and frees (NULL is fine). */
void hosts_free(struct host_set *hs);

#endif
