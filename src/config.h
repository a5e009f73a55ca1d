/*
 * config: the settings sluice runs with, read from a pgbouncer.ini-compatible file
 * through inih and one static table of settings. The table is the single place a
 * setting is declared: parsing, validation, defaults, SHOW CONFIG and SET all walk
 * it. Reload parses into a fresh struct config and only a fully valid one replaces
 * the running one; this module never touches pools or sockets.
 */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

enum pool_mode { POOL_MODE_UNSET = -1, POOL_SESSION = 0, POOL_TRANSACTION, POOL_STATEMENT };
/* load_balance_hosts: how a new server connection picks one of a database's hosts. */
enum lb_mode { LB_ROUND_ROBIN = 0, LB_LEAST_BUSY, LB_DISABLE };
/* target_session_attrs: which servers a database accepts, checked after login as libpq. */
enum tsa_mode {
	TSA_ANY = 0,
	TSA_READ_WRITE,
	TSA_READ_ONLY,
	TSA_PRIMARY,
	TSA_STANDBY,
	TSA_PREFER_STANDBY,
};
enum auth_type {
	AUTH_ANY = 0, /* no authentication, any user name accepted */
	AUTH_TRUST,   /* no password; user must exist in auth_file when one is set */
	AUTH_PLAIN,   /* cleartext password */
	AUTH_MD5,     /* md5 challenge (falls back to nothing else) */
	AUTH_SCRAM,   /* scram-sha-256 */
	AUTH_HBA,     /* accepted in the file, refused at login: not supported yet */
};

/*
 * One [databases] entry. Integer fields are -1 when not given (inherit the global),
 * string fields NULL; a value written as '' is kept as "". pool_mode is
 * POOL_MODE_UNSET when not given. A name defined twice keeps the later definition.
 */
struct db_entry {
	char *name;  /* key in [databases]; "*" for the fallback entry */
	char *host;  /* NULL: unix socket in unix_socket_dir, as PgBouncer; "a,b,c": a list */
	int port;    /* default 5432; with a list in ports, its first port */
	char *ports; /* port= as written: one port for every host, or one per host */
	enum lb_mode load_balance_hosts;    /* round-robin when not given */
	enum tsa_mode target_session_attrs; /* any when not given */
	char *dbname;   /* NULL: same as name (for "*": the name the client asked for) */
	char *user;     /* force this server user; NULL: the client's user */
	char *password; /* password for user; NULL: from auth_file */
	int pool_size;
	int min_pool_size;
	int reserve_pool_size;
	int max_db_connections;
	enum pool_mode pool_mode;
	char *connect_query;
	char *client_encoding;
	char *datestyle;
	char *timezone;
	char *application_name;
	char *auth_user;
	/* wire protocol: a static name ("postgresql"), never freed */
	const char *protocol;
	const char *file; /* where it was defined, for messages (points into config) */
	int line;
};

/*
 * One [users] entry; pool_mode is POOL_MODE_UNSET when not given. The timeouts are 0
 * when not given and, as in PgBouncer, a 0 written in the entry means the same: the
 * global setting applies (a user cannot switch a global timeout off).
 */
struct user_entry {
	char *name;
	enum pool_mode pool_mode;
	int pool_size;            /* -1 when not given */
	int reserve_pool_size;    /* -1 when not given */
	int max_user_connections; /* -1 when not given */
	usec_t query_timeout;     /* these four: 0 when not given */
	usec_t idle_transaction_timeout;
	usec_t transaction_timeout;
	usec_t client_idle_timeout;
	const char *file;
	int line;
};

/*
 * Every field is a row of the settings table in config.c, which holds its default.
 * String settings are never NULL: "" means not set.
 */
struct config {
	/* listening */
	char *listen_addr;       /* comma separated list, "*" = all; "" = no TCP (default "") */
	int listen_port;         /* 6432 */
	char *unix_socket_dir;   /* "/tmp"; "" disables */
	int unix_socket_mode;    /* 0777 (octal in file) */
	char *unix_socket_group; /* "" */
	int listen_backlog;      /* 128 */
	bool so_reuseport;       /* false */
	/* what every listener speaks: a static name, "postgresql" */
	const char *listen_protocol;

	/* authentication */
	enum auth_type auth_type;  /* md5 */
	char *auth_file;           /* "" */
	char *admin_users;         /* comma separated; "" */
	char *stats_users;         /* "" */
	int admin_max_client_conn; /* 16: console connections, apart from max_client_conn */
	int admin_pool_size;       /* 1: servers per database kept for admin_users */

	/* pooling */
	enum pool_mode pool_mode;        /* session */
	int default_pool_size;           /* 20 */
	int min_pool_size;               /* 0 */
	int reserve_pool_size;           /* 0 */
	usec_t reserve_pool_timeout;     /* 5 s */
	int max_client_conn;             /* 100 */
	int max_db_connections;          /* 0 = unlimited */
	int max_user_connections;        /* 0 = unlimited */
	char *server_reset_query;        /* "DISCARD ALL" */
	bool server_reset_query_always;  /* false */
	char *server_check_query;        /* "" = empty query (default; "<empty>" in a file is "") */
	usec_t server_check_delay;       /* 30 s */
	bool server_round_robin;         /* false: reuse the most recently used idle server */
	bool server_fast_close;          /* false: close_needed servers wait for their session */
	int server_connect_concurrency;  /* 1: server connects in flight per pool */
	char *ignore_startup_parameters; /* "" */
	int max_prepared_statements;     /* 200: per server, protocol-level; 0: off */
	char *track_extra_parameters;    /* "IntervalStyle": more parameters kept per client */
	int pkt_buf;                     /* 4096, the size of one connection buffer */
	int max_packet_size;             /* largest client message let through */
	int max_held_bytes;              /* largest message held whole for one client */

	/* timeouts (usec; 0 = disabled where that makes sense) */
	usec_t server_connect_timeout;   /* 15 s */
	usec_t server_login_retry;       /* 15 s */
	usec_t server_idle_timeout;      /* 600 s */
	usec_t server_lifetime;          /* 3600 s */
	usec_t query_timeout;            /* 0 */
	usec_t query_wait_timeout;       /* 120 s */
	usec_t client_idle_timeout;      /* 0 */
	usec_t client_login_timeout;     /* 60 s */
	usec_t idle_transaction_timeout; /* 0 */
	usec_t transaction_timeout;      /* 0 */
	usec_t cancel_wait_timeout;      /* 10 s */

	/* health of a database's hosts (host=a,b,c) */
	int health_check_fails;     /* 3: consecutive failed connects that mark a host down */
	int health_check_passes;    /* 2: consecutive good probes that bring it back */
	usec_t health_check_period; /* 5 s: probe interval for a host marked down; 0: no probes */

	/* tcp */
	bool tcp_keepalive;   /* true */
	int tcp_keepcnt;      /* 0 = system default */
	int tcp_keepidle;     /* 0 = system default (seconds) */
	int tcp_keepintvl;    /* 0 = system default (seconds) */
	int tcp_user_timeout; /* ms, 0 = system default */
	int tcp_defer_accept; /* 0 = off; seconds */

	/* process and logging */
	char *logfile;           /* "" */
	bool syslog;             /* false */
	char *syslog_ident;      /* "sluice" */
	char *syslog_facility;   /* "daemon" */
	char *pidfile;           /* "" */
	char *user;              /* -u: drop privileges to this OS user; "" */
	bool log_connections;    /* true */
	bool log_disconnections; /* true */
	bool log_pooler_errors;  /* true */
	int verbose;             /* 0 */
	usec_t stats_period;     /* 60 s */
	bool log_stats;          /* true: one summary line per stats_period */
	char *metrics_listen;    /* "addr:port" for /metrics and /health; "" = off */

	/* dns (host names of [databases] entries, resolved with c-ares) */
	usec_t dns_max_ttl;           /* 15 s: how long an answer is used */
	usec_t dns_nxdomain_ttl;      /* 15 s: how long a failed lookup is remembered */
	usec_t dns_zone_check_period; /* 0 = off: poll zone SOA serials this often */
	char *resolv_conf;            /* "": the system's; read at start only */

	/* [databases] and [users], in file order */
	struct db_entry **dbs;
	size_t n_dbs;
	struct user_entry **users;
	size_t n_users;

	/* every file read (main plus %include), owned here so entries can point at names */
	char **files;
	size_t n_files;
};

/* Flags of a setting in the table. */
#define CF_RELOAD  0x01 /* takes effect on RELOAD / SET */
#define CF_RESTART 0x02 /* needs a restart; a changed value on reload is kept old and warned */
#define CF_SECRET  0x04 /* value never shown (SHOW CONFIG, messages) */

/*
 * Reads path (and its %include files) into a new config. On failure returns NULL and
 * writes "file:line: reason" into err. Unknown keys are warned about through warn_cb
 * (may be NULL) with the same "file:line: unknown setting ..." text and do not fail.
 */
struct config *config_load(const char *path, char *err, size_t errlen,
                           void (*warn_cb)(const char *msg)) WARN_UNUSED;
/* Defaults only (used by tests and as a base). */
struct config *config_new_defaults(void);
void config_free(struct config *cfg);

/* Entry lookup: exact name, else NULL (the caller decides about "*"). */
const struct db_entry *config_find_db(const struct config *cfg, const char *name);
const struct user_entry *config_find_user(const struct config *cfg, const char *name);

/* True when name appears in the comma separated list (admin_users, stats_users, ...). */
bool config_list_contains(const char *list, const char *name);
/* The same, ignoring ASCII case (for parameter names, which PostgreSQL folds). */
bool config_list_contains_ci(const char *list, const char *name);

/* Walks the settings table: for SHOW CONFIG. value/def are formatted as in the file. */
struct config_setting_view {
	const char *key;
	char value[256];
	char def[256];
	bool changeable;
};
size_t config_setting_count(void);
bool config_setting_get(const struct config *cfg, size_t idx, struct config_setting_view *out);

/*
 * SET key = value at run time: validates through the table and updates cfg in place.
 * Returns false with a reason in err (unknown key, bad value, needs restart).
 */
bool config_set(struct config *cfg, const char *key, const char *value, char *err,
                size_t errlen) WARN_UNUSED;

/*
 * For reload: every CF_RESTART setting whose value differs between newcfg and oldcfg
 * gets the old value back in newcfg, and warn_cb (may be NULL) hears about each one.
 */
void config_carry_restart_settings(struct config *newcfg, const struct config *oldcfg,
                                   void (*warn_cb)(const char *msg));

const char *pool_mode_name(enum pool_mode m);
const char *lb_mode_name(enum lb_mode m);
const char *tsa_mode_name(enum tsa_mode m);
const char *auth_type_name(enum auth_type t);

#endif
