/*
 * admin: the SQL admin console (SHOW and control commands), protocol-neutral. A
 * protocol module hands it one command string and a result writer; the console
 * answers through the writer (columns, rows, notices, a completion tag or an error)
 * and never sees a byte of any wire protocol. A command that must wait (PAUSE,
 * WAIT_CLOSE, SHUTDOWN WAIT_*) keeps the writer and completes it later.
 */
#ifndef SLUICE_ADMIN_H
#define SLUICE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

struct core;
struct conn;

enum admin_col_type { ACOL_TEXT, ACOL_INT4, ACOL_INT8, ACOL_BOOL, ACOL_NUMERIC };

struct admin_col {
	const char *name;
	enum admin_col_type type;
};

/* Implemented by a protocol module for one console connection. */
struct admin_writer {
	void (*columns)(struct conn *c, const struct admin_col *cols, size_t n);
	void (*row)(struct conn *c, const char *const *values, size_t n); /* NULL = SQL NULL */
	void (*notice)(struct conn *c, const char *msg);
	void (*complete)(struct conn *c, const char *tag);
	void (*error)(struct conn *c, enum err_kind kind, const char *msg); /* code: the writer's */
	/* the command is over: the connection may take the next one */
	void (*ready)(struct conn *c);
};

enum admin_role { ADMIN_ROLE_NONE = 0, ADMIN_ROLE_STATS, ADMIN_ROLE_ADMIN };

/* Is this database name the console's? */
bool admin_is_console_db(const char *dbname);
/* The role of a user on the console, from admin_users and stats_users. */
enum admin_role admin_role_of(const struct core *core, const char *user);

/* Runs one command. Completes through w now, or later for waiting commands. */
void admin_execute(struct core *core, struct conn *c, enum admin_role role,
                   const struct admin_writer *w, const char *sql);
/* A console connection is going away: forget its waiting command. */
void admin_forget(struct core *core, struct conn *c);
/* Completes waiting commands whose condition holds (called on release and by the janitor). */
void admin_check_waiting(struct core *core);
/* The operations console commands and signals share (SIGTERM, SIGINT, SIGQUIT: the
 * three SHUTDOWN forms; SIGUSR1: PAUSE; SIGUSR2: RESUME). */
void admin_begin_shutdown(struct core *core, int run_state, const char *why);
void admin_pause_all(struct core *core);
void admin_resume_all(struct core *core);

/* Statistics housekeeping every stats_period: roll the pools, write log_stats lines. */
void admin_stats_period(struct core *core);

/* The SHOW tables (admin_show.c); false when name is not one. */
bool admin_show(struct core *core, struct conn *c, enum admin_role role,
                const struct admin_writer *w, const char *name);
void admin_show_help(struct conn *c, const struct admin_writer *w);

#endif
