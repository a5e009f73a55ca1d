/*
 * core: the one runtime context of the process, passed explicitly to everything
 * that needs it: the loop, the running config and auth file, the databases, users and
 * pools, the clients still logging in, and the process-wide run state.
 */
#ifndef SLUICE_CORE_H
#define SLUICE_CORE_H

#include <stdbool.h>

#include "loop.h"
#include "util.h"

struct config;
struct auth_file;
struct dns;

enum run_state {
	RUN_NORMAL = 0,
	RUN_WAIT_CLIENTS, /* SIGTERM: not accepting, exit when the last client leaves */
	RUN_WAIT_SERVERS, /* SIGINT: not accepting, exit when no query is running */
	RUN_EXIT,
};

struct core {
	struct loop *loop;
	struct config *cfg;
	struct auth_file *auth;
	char *config_path;
	struct list databases;
	struct list users;
	struct list pools;
	struct list login_clients;
	struct list listeners;
	struct loop_timer janitor;
	int n_clients; /* every client connection, logging in or not */
	uint64_t next_id;
	enum run_state run_state;
	bool paused;         /* PAUSE: no server is handed out anywhere */
	bool suspended;      /* SUSPEND: no socket is read */
	usec_t started;      /* wall clock at start */
	usec_t stats_rolled; /* monotonic: when the last stats_period ended */
	void *metrics;       /* the /metrics listener, owned by metrics.c */
	struct dns *dns;     /* host name resolver and cache (dns.c) */
	int exit_code;
	/* set by main: ends the loop once run_state's shutdown condition holds */
	void (*shutdown_check)(struct core *core);
	/* set by main: reload as SIGHUP does; false with the reason when rejected */
	bool (*reload)(struct core *core, char *err, size_t errlen);
	/* console connections, and console commands waiting for a condition */
	struct list admin_clients;
	int n_admin_clients;
	struct list admin_waits;
	void (*admin_poke)(struct core *core); /* set when a command waits */
	/* random at start: the SCRAM salts of users sluice cannot verify (scram_mock_secret) */
	uint8_t scram_mock_key[32];
};

/* Lower layers call this after anything that may let a shutdown finish. */
static inline void core_check_shutdown(struct core *core)
{
	if (core->run_state != RUN_NORMAL && core->shutdown_check)
		core->shutdown_check(core);
}

#endif
