/*
 * admin: parses console commands and carries out the control ones. PAUSE, KILL,
 * RECONNECT and friends act on the pools through pool.h; the SHOW tables live in
 * admin_show.c. Commands that must wait for servers to be released are parked on
 * core->admin_waits and completed by admin_check_waiting().
 */
#include "admin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "conn.h"
#include "core.h"
#include "listen.h"
#include "log.h"
#include "pool.h"
#include "proto.h"

enum wait_kind { WAIT_PAUSE, WAIT_CLOSE };

struct admin_wait {
	struct list node;
	struct conn *c;
	const struct admin_writer *w;
	enum wait_kind kind;
	char *db; /* NULL: every database */
};

bool admin_is_console_db(const char *dbname)
{
	return strcmp(dbname, "pgbouncer") == 0 || strcmp(dbname, "sluice") == 0;
}

enum admin_role admin_role_of(const struct core *core, const char *user)
{
	if (config_list_contains(core->cfg->admin_users, user))
		return ADMIN_ROLE_ADMIN;
	if (config_list_contains(core->cfg->stats_users, user))
		return ADMIN_ROLE_STATS;
	return ADMIN_ROLE_NONE;
}

/* --- command words --- */

#define MAX_WORDS 8

struct command {
	char *words[MAX_WORDS];
	size_t n;
	char *rest_after_first; /* for SET: everything after the first word */
};

/* Splits into words; double quotes keep a name with spaces or capitals together. */
static bool split_words(char *s, struct command *cmd)
{
	cmd->n = 0;
	while (*s) {
		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		if (cmd->n == MAX_WORDS)
			return false;
		if (cmd->n == 1)
			cmd->rest_after_first = s;
		if (*s == '"') {
			char *end = strchr(s + 1, '"');
			if (!end)
				return false;
			*end = '\0';
			cmd->words[cmd->n++] = s + 1;
			s = end + 1;
			continue;
		}
		cmd->words[cmd->n++] = s;
		while (*s && !isspace((unsigned char)*s))
			s++;
		if (*s)
			*s++ = '\0';
	}
	return true;
}

/* Trims blanks and trailing semicolons; false if another statement follows. */
static bool one_statement(char *sql)
{
	size_t len = strlen(sql);
	while (len && (isspace((unsigned char)sql[len - 1]) || sql[len - 1] == ';'))
		sql[--len] = '\0';
	return strchr(sql, ';') == NULL;
}

static void finish(struct conn *c, const struct admin_writer *w, const char *tag)
{
	w->complete(c, tag);
	w->ready(c);
}

static void fail(struct conn *c, const struct admin_writer *w, enum err_kind kind, const char *msg)
{
	w->error(c, kind, msg);
	w->ready(c);
}

/* --- helpers over databases and pools --- */

static struct database *find_db(struct core *core, const char *name)
{
	struct list *it;
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		if (!db->stale && strcmp(db->name, name) == 0)
			return db;
	}
	return database_lookup(core, name);
}

static bool pool_matches(const struct pool *pool, const char *db)
{
	return !db || strcmp(pool->db->name, db) == 0;
}

static bool waits_done(struct core *core, const struct admin_wait *aw)
{
	struct list *it, *s;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (!pool_matches(pool, aw->db))
			continue;
		if (aw->kind == WAIT_PAUSE) {
			if (pool->n_servers[SV_ACTIVE] || pool->n_servers[SV_TESTED] ||
			    pool->n_servers[SV_USED] || pool->n_servers[SV_BEING_CANCELED])
				return false;
			continue;
		}
		for (int st = 0; st < SV_JUSTFREE; st++)
			list_for_each(
			    s, &pool->servers[st]) if (list_entry(s, struct conn, node)->flags &
			                               CONN_F_CLOSE_NEEDED) return false;
	}
	return true;
}

static void close_idle_servers(struct core *core, const char *db)
{
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (!pool_matches(pool, db))
			continue;
		while (!list_empty(&pool->servers[SV_IDLE]))
			server_close(list_entry(pool->servers[SV_IDLE].next, struct conn, node),
			             "paused by admin");
	}
}

static void wait_free(struct admin_wait *aw)
{
	list_del(&aw->node);
	free(aw->db);
	free(aw);
}

/* Completes one waiting command whose condition holds; false when none does. */
static bool complete_one(struct core *core)
{
	struct list *it;
	list_for_each(it, &core->admin_waits)
	{
		struct admin_wait *aw = list_entry(it, struct admin_wait, node);
		if (!waits_done(core, aw))
			continue;
		struct conn *c = aw->c;
		const struct admin_writer *w = aw->w;
		enum wait_kind kind = aw->kind;
		char *db = aw->db;
		aw->db = NULL;
		wait_free(aw);
		if (kind == WAIT_PAUSE)
			close_idle_servers(core, db); /* PgBouncer: PAUSE disconnects servers */
		free(db);
		finish(c, w, kind == WAIT_PAUSE ? "PAUSE" : "WAIT_CLOSE");
		return true;
	}
	return false;
}

void admin_check_waiting(struct core *core)
{
	static bool running;
	/* closing servers below pokes us again: the outer call sees to it */
	if (running)
		return;
	running = true;
	while (complete_one(core))
		;
	running = false;
	if (list_empty(&core->admin_waits))
		core->admin_poke = NULL;
}

static void park(struct core *core, struct conn *c, const struct admin_writer *w,
                 enum wait_kind kind, const char *db)
{
	struct admin_wait *aw = xcalloc(1, sizeof(*aw));
	aw->c = c;
	aw->w = w;
	aw->kind = kind;
	aw->db = db ? xstrdup(db) : NULL;
	list_add_tail(&core->admin_waits, &aw->node);
	core->admin_poke = admin_check_waiting;
	admin_check_waiting(core);
}

void admin_forget(struct core *core, struct conn *c)
{
	struct list *it, *tmp;
	list_for_each_safe(it, tmp, &core->admin_waits)
	{
		struct admin_wait *aw = list_entry(it, struct admin_wait, node);
		if (aw->c == c)
			wait_free(aw);
	}
}

/* --- control commands --- */

typedef void (*db_action)(struct core *core, struct database *db);

/* Applies action to one named database, or to all; false if the name is unknown. */
static bool for_dbs(struct core *core, const char *name, db_action action)
{
	struct list *it;
	if (name) {
		struct database *db = find_db(core, name);
		if (!db)
			return false;
		action(core, db);
		return true;
	}
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		if (!db->stale)
			action(core, db);
	}
	return true;
}

static void act_resume(struct core *core, struct database *db)
{
	db->paused = false;
	pool_wake_database(core, db);
}

static void act_reconnect(struct core *core, struct database *db)
{
	pool_mark_close_needed(core, db);
}

static void act_kill(struct core *core, struct database *db)
{
	db->paused = true;
	pool_kill_database(core, db);
}

static void act_pause(struct core *core, struct database *db)
{
	(void)core;
	db->paused = true;
}

static bool need_admin(struct conn *c, enum admin_role role, const struct admin_writer *w)
{
	if (role == ADMIN_ROLE_ADMIN)
		return true;
	fail(c, w, ERR_ADMIN_DENIED, "admin access needed");
	return false;
}

static void no_such_db(struct conn *c, const struct admin_writer *w, const char *name)
{
	char msg[300];
	snprintf(msg, sizeof(msg), "no such database: %s", name);
	fail(c, w, ERR_UNKNOWN_DATABASE, msg);
}

static void cmd_pause(struct core *core, struct conn *c, const struct admin_writer *w,
                      const char *db)
{
	if (!db)
		admin_pause_all(core);
	else if (!for_dbs(core, db, act_pause)) {
		no_such_db(c, w, db);
		return;
	}
	park(core, c, w, WAIT_PAUSE, db);
}

void admin_pause_all(struct core *core)
{
	core->paused = true;
	(void)for_dbs(core, NULL, act_pause);
}

void admin_resume_all(struct core *core)
{
	if (core->suspended) {
		core->suspended = false;
		pool_suspend_all(core, false);
		listen_pause_all(core, false);
	}
	core->paused = false;
	(void)for_dbs(core, NULL, act_resume);
}

static void cmd_resume(struct core *core, struct conn *c, const struct admin_writer *w,
                       const char *db)
{
	if (!db) {
		admin_resume_all(core);
	} else if (!for_dbs(core, db, act_resume)) {
		no_such_db(c, w, db);
		return;
	}
	finish(c, w, "RESUME");
}

static void cmd_set_db_flag(struct core *core, struct conn *c, const struct admin_writer *w,
                            const char *db, bool disable)
{
	struct database *d = db ? find_db(core, db) : NULL;
	if (!d) {
		if (db)
			no_such_db(c, w, db);
		else
			fail(c, w, ERR_BAD_COMMAND,
			     disable ? "DISABLE needs a database name"
			             : "ENABLE needs a database name");
		return;
	}
	d->disabled = disable;
	finish(c, w, disable ? "DISABLE" : "ENABLE");
}

static void cmd_kill_client(struct core *core, struct conn *c, const struct admin_writer *w,
                            const char *arg)
{
	char *end = NULL;
	unsigned long long id = arg ? strtoull(arg, &end, 10) : 0;
	if (!arg || !*arg || *end) {
		fail(c, w, ERR_BAD_COMMAND,
		     "KILL_CLIENT needs a client id (SHOW CLIENTS, column id)");
		return;
	}
	struct conn *victim = pool_find_client_by_id(core, id);
	if (!victim || victim == c) {
		fail(c, w, ERR_NO_SUCH_OBJECT, "no such client");
		return;
	}
	client_fail_kind(victim, ERR_ADMIN_KILLED, "connection killed by admin (KILL_CLIENT)");
	finish(c, w, "KILL_CLIENT");
}

static void cmd_shutdown(struct core *core, struct conn *c, const struct admin_writer *w,
                         const char *how)
{
	enum run_state st = RUN_EXIT;
	if (how && str_ieq(how, "WAIT_FOR_SERVERS"))
		st = RUN_WAIT_SERVERS;
	else if (how && str_ieq(how, "WAIT_FOR_CLIENTS"))
		st = RUN_WAIT_CLIENTS;
	else if (how) {
		fail(c, w, ERR_BAD_COMMAND, "SHUTDOWN takes WAIT_FOR_SERVERS or WAIT_FOR_CLIENTS");
		return;
	}
	finish(c, w, "SHUTDOWN");
	conn_flush_all();
	admin_begin_shutdown(core, st, "SHUTDOWN from the admin console");
}

/* The listeners stay open until the process exits, so an operator can still log in
 * to the console and watch the drain; other logins are refused (pg_client.c). */
void admin_begin_shutdown(struct core *core, int st, const char *why)
{
	log_info("%s", why);
	if (core->run_state == RUN_NORMAL || st == RUN_EXIT)
		core->run_state = (enum run_state)st;
	if (core->run_state == RUN_WAIT_SERVERS)
		pool_fail_waiting(core, ERR_SHUTTING_DOWN, "server shutting down");
	core_check_shutdown(core);
}

static void cmd_reload(struct core *core, struct conn *c, const struct admin_writer *w)
{
	char err[1024], msg[1100];
	if (!core->reload(core, err, sizeof(err))) {
		snprintf(msg, sizeof(msg), "RELOAD failed, the running config is kept: %s", err);
		fail(c, w, ERR_RELOAD_FAILED, msg);
		return;
	}
	finish(c, w, "RELOAD");
}

static void cmd_suspend(struct core *core, struct conn *c, const struct admin_writer *w)
{
	core->suspended = true;
	conn_flush_all();
	pool_suspend_all(core, true);
	listen_pause_all(core, true);
	finish(c, w, "SUSPEND");
}

/* SET key = value (the value may be quoted with single quotes). */
static void cmd_set(struct core *core, struct conn *c, const struct admin_writer *w, char *rest)
{
	char err[512];
	char *eq = rest ? strchr(rest, '=') : NULL;
	if (!eq) {
		fail(c, w, ERR_BAD_COMMAND, "usage: SET key = value");
		return;
	}
	*eq = '\0';
	char *key = rest, *val = eq + 1;
	while (isspace((unsigned char)*key))
		key++;
	for (char *e = key + strlen(key); e > key && isspace((unsigned char)e[-1]);)
		*--e = '\0';
	while (isspace((unsigned char)*val))
		val++;
	size_t vl = strlen(val);
	while (vl && isspace((unsigned char)val[vl - 1]))
		val[--vl] = '\0';
	if (vl >= 2 && val[0] == '\'' && val[vl - 1] == '\'') {
		val[vl - 1] = '\0';
		val++;
	}
	if (!config_set(core->cfg, key, val, err, sizeof(err))) {
		fail(c, w, ERR_BAD_VALUE, err);
		return;
	}
	pool_apply_config(core);
	log_set_level(LOG_LVL_INFO + core->cfg->verbose);
	finish(c, w, "SET");
}

static const char *arg(const struct command *cmd, size_t i)
{
	return i < cmd->n ? cmd->words[i] : NULL;
}

static bool run_control(struct core *core, struct conn *c, enum admin_role role,
                        const struct admin_writer *w, struct command *cmd)
{
	const char *verb = cmd->words[0];
	const char *a1 = arg(cmd, 1);
	static const struct {
		const char *verb;
		size_t min_args, max_args;
	} verbs[] = {
	    {"PAUSE", 0, 1},     {"RESUME", 0, 1}, {"DISABLE", 1, 1},     {"ENABLE", 1, 1},
	    {"RECONNECT", 0, 1}, {"KILL", 0, 1},   {"KILL_CLIENT", 1, 1}, {"SUSPEND", 0, 0},
	    {"SHUTDOWN", 0, 1},  {"RELOAD", 0, 0}, {"WAIT_CLOSE", 0, 1},  {"SET", 1, MAX_WORDS},
	};
	size_t i;
	for (i = 0; i < ARRAY_SIZE(verbs); i++)
		if (str_ieq(verb, verbs[i].verb))
			break;
	if (i == ARRAY_SIZE(verbs) || cmd->n - 1 < verbs[i].min_args ||
	    cmd->n - 1 > verbs[i].max_args)
		return false; /* reported as an invalid command */
	if (!need_admin(c, role, w))
		return true;
	if (str_ieq(verb, "PAUSE"))
		cmd_pause(core, c, w, a1);
	else if (str_ieq(verb, "RESUME"))
		cmd_resume(core, c, w, a1);
	else if (str_ieq(verb, "DISABLE") || str_ieq(verb, "ENABLE"))
		cmd_set_db_flag(core, c, w, a1, str_ieq(verb, "DISABLE"));
	else if (str_ieq(verb, "RECONNECT")) {
		if (!for_dbs(core, a1, act_reconnect))
			no_such_db(c, w, a1);
		else
			finish(c, w, "RECONNECT");
	} else if (str_ieq(verb, "KILL")) {
		if (!a1)
			core->paused = true;
		if (!for_dbs(core, a1, act_kill))
			no_such_db(c, w, a1);
		else
			finish(c, w, "KILL");
	} else if (str_ieq(verb, "KILL_CLIENT"))
		cmd_kill_client(core, c, w, a1);
	else if (str_ieq(verb, "SUSPEND"))
		cmd_suspend(core, c, w);
	else if (str_ieq(verb, "SHUTDOWN"))
		cmd_shutdown(core, c, w, a1);
	else if (str_ieq(verb, "RELOAD"))
		cmd_reload(core, c, w);
	else if (str_ieq(verb, "WAIT_CLOSE")) {
		if (a1 && !find_db(core, a1))
			no_such_db(c, w, a1);
		else
			park(core, c, w, WAIT_CLOSE, a1);
	} else
		cmd_set(core, c, w, cmd->rest_after_first);
	return true;
}

void admin_execute(struct core *core, struct conn *c, enum admin_role role,
                   const struct admin_writer *w, const char *sql)
{
	char buf[2048];
	struct command cmd = {0};
	char msg[2200];
	if (strlen(sql) >= sizeof(buf)) {
		fail(c, w, ERR_COMMAND_TOO_LONG, "command too long");
		return;
	}
	strlcpy_s(buf, sql, sizeof(buf));
	if (!one_statement(buf)) {
		fail(c, w, ERR_BAD_COMMAND, "the console runs one command per query");
		return;
	}
	char whole[sizeof(buf)];
	memcpy(whole, buf, sizeof(buf)); /* split_words cuts buf into words */
	if (!split_words(buf, &cmd)) {
		fail(c, w, ERR_BAD_COMMAND, "cannot parse the command; see SHOW HELP");
		return;
	}
	if (cmd.n == 0) {
		w->complete(c, NULL); /* empty query */
		w->ready(c);
		return;
	}
	const char *verb = cmd.words[0];
	if ((str_ieq(verb, "SHOW") || str_ieq(verb, "SELECT")) && cmd.n == 2) {
		if (str_ieq(cmd.words[1], "HELP")) {
			admin_show_help(c, w);
			finish(c, w, "SHOW");
			return;
		}
		if (admin_show(core, c, role, w, cmd.words[1])) {
			w->ready(c);
			return;
		}
	} else {
		if (cmd.rest_after_first)
			cmd.rest_after_first = whole + (cmd.rest_after_first - buf);
		if (run_control(core, c, role, w, &cmd))
			return;
	}
	snprintf(msg, sizeof(msg), "invalid command '%s', use SHOW HELP;", sql);
	fail(c, w, ERR_BAD_COMMAND, msg);
}

/* --- statistics period --- */

static void log_db_stats(struct core *core, struct database *db)
{
	struct stats_counters from = {0}, to = {0};
	struct stats_averages avg;
	usec_t elapsed = 0;
	struct list *it;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (pool->db != db)
			continue;
		stats_counters_add(&from, &pool->stats.prev_start);
		stats_counters_add(&to, &pool->stats.period_start);
		elapsed = pool->stats.last_elapsed;
	}
	stats_compute_averages(&from, &to, elapsed, &avg);
	log_info("stats: %s: %llu xacts/s, %llu queries/s, %llu client parses/s, %llu binds/s, "
	         "in %llu B/s, out %llu B/s, xact %llu us, query %llu us, wait %llu us",
	         db->name, (unsigned long long)avg.xacts, (unsigned long long)avg.queries,
	         (unsigned long long)avg.client_parses, (unsigned long long)avg.binds,
	         (unsigned long long)avg.bytes_received, (unsigned long long)avg.bytes_sent,
	         (unsigned long long)avg.xact_time, (unsigned long long)avg.query_time,
	         (unsigned long long)avg.wait_time);
}

void admin_stats_period(struct core *core)
{
	struct list *it;
	usec_t now = loop_now(core->loop);
	list_for_each(it, &core->pools)
	    stats_roll_period(&list_entry(it, struct pool, node)->stats, now);
	if (!core->cfg->log_stats)
		return;
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		if (!db->stale)
			log_db_stats(core, db);
	}
}
