/*
 * pg_admin: the admin console over the PostgreSQL protocol. Logs a console client in
 * (normal authentication, or peer credentials on the unix socket for sluice's own OS
 * user), then takes simple Query messages one at a time and hands each to admin.c,
 * writing its answer as RowDescription / DataRow / CommandComplete. The extended
 * protocol is refused, as PgBouncer does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "core.h"
#include "log.h"
#include "pg.h"
#include "pool.h"

static void console_continue_later(struct conn *c);

/* --- the result writer --- */

static uint32_t type_oid(enum admin_col_type t, int16_t *len)
{
	switch (t) {
	case ACOL_INT4:
		*len = 4;
		return 23;
	case ACOL_INT8:
		*len = 8;
		return 20;
	case ACOL_BOOL:
		*len = 1;
		return 16;
	case ACOL_NUMERIC:
		*len = -1;
		return 1700;
	case ACOL_TEXT:
	default:
		*len = -1;
		return 25;
	}
}

static void out_u16(struct pg_out *o, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	pg_out_bytes(o, b, 2);
}

static void w_columns(struct conn *c, const struct admin_col *cols, size_t n)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'T');
	out_u16(&o, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		int16_t len;
		uint32_t oid = type_oid(cols[i].type, &len);
		pg_out_str(&o, cols[i].name);
		pg_out_u32(&o, 0);
		out_u16(&o, 0);
		pg_out_u32(&o, oid);
		out_u16(&o, (uint16_t)len);
		pg_out_u32(&o, 0xffffffffu);
		out_u16(&o, 0);
	}
	pg_out_end(&o);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static void w_row(struct conn *c, const char *const *values, size_t n)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'D');
	out_u16(&o, (uint16_t)n);
	for (size_t i = 0; i < n; i++) {
		if (!values[i]) {
			pg_out_u32(&o, 0xffffffffu);
			continue;
		}
		size_t len = strlen(values[i]);
		pg_out_u32(&o, (uint32_t)len);
		pg_out_bytes(&o, values[i], len);
	}
	pg_out_end(&o);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static void w_notice(struct conn *c, const char *msg)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'N');
	pg_out_u8(&o, 'S');
	pg_out_str(&o, "NOTICE");
	pg_out_u8(&o, 'C');
	pg_out_str(&o, "00000");
	pg_out_u8(&o, 'M');
	pg_out_str(&o, msg);
	pg_out_u8(&o, 0);
	pg_out_end(&o);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static void w_complete(struct conn *c, const char *tag)
{
	struct pg_out o;
	char buf[64];
	pg_out_init(&o);
	if (!tag) {
		pg_out_begin(&o, 'I'); /* EmptyQueryResponse */
	} else {
		/* SHOW answers "SHOW" as PgBouncer does; psql prints the rows either way */
		snprintf(buf, sizeof(buf), "%s", tag);
		pg_out_begin(&o, 'C');
		pg_out_str(&o, buf);
	}
	pg_out_end(&o);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static void w_error(struct conn *c, enum err_kind kind, const char *msg)
{
	pg_client_error(c, pg_error_code(kind), msg, false);
}

static void w_ready(struct conn *c)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_ready(&o, 'I');
	pg_send_out(c, &o);
	pg_out_free(&o);
	pgc(c)->console_busy = false;
	/* a command that waited (PAUSE, WAIT_CLOSE) ended outside the input loop: what is
	 * buffered behind it runs on a later wake-up, never from down here */
	if (!pgc(c)->console_looping)
		console_continue_later(c);
}

static const struct admin_writer pg_admin_writer = {
    .columns = w_columns,
    .row = w_row,
    .notice = w_notice,
    .complete = w_complete,
    .error = w_error,
    .ready = w_ready,
};

/* --- login --- */

/* True when a unix-socket peer runs as sluice's own OS user (PgBouncer's rule). */
bool pg_console_peer_ok(const struct conn *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (c->addr.ss_family != AF_UNIX)
		return false;
	if (strcmp(c->user_name, "pgbouncer") != 0 && strcmp(c->user_name, "sluice") != 0)
		return false;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == geteuid();
}

void pg_console_welcome(struct conn *c, bool peer)
{
	struct pg_client *pc = pgc(c);
	struct core *core = c->core;
	enum admin_role role = peer ? ADMIN_ROLE_ADMIN : admin_role_of(core, c->user_name);
	if (role == ADMIN_ROLE_NONE) {
		conn_log(c, LOG_LVL_WARNING,
		         "console login refused: not in admin_users or stats_users");
		client_fail(c, "42501", "not allowed to connect to the admin console");
		return;
	}
	pc->console_role = role;
	char version[64];
	snprintf(version, sizeof(version), "15.0 (sluice %s)", SLUICE_VERSION);
	const char *app = pg_params_get(&pc->wanted, "application_name");
	const char *params[][2] = {
	    {"server_version", version},
	    {"server_encoding", "UTF8"},
	    {"client_encoding", "UTF8"},
	    {"DateStyle", "ISO, MDY"},
	    {"TimeZone", "UTC"},
	    {"integer_datetimes", "on"},
	    {"standard_conforming_strings", "on"},
	    {"is_superuser", "off"},
	    {"application_name", app ? app : ""},
	};
	struct pg_out o;
	pg_out_init(&o);
	if (peer)
		pg_out_auth(&o, 0, NULL, 0);
	for (size_t i = 0; i < ARRAY_SIZE(params); i++)
		pg_out_param_status(&o, params[i][0], params[i][1]);
	pg_out_login_done(&o, c);
	pg_send_out(c, &o);
	pg_out_free(&o);
	pc->phase = PGC_READY;
	loop_timer_stop(core->loop, &c->timer);
	pool_client_enter_admin(core, c);
	conn_log(c, LOG_LVL_INFO, "console login ok (%s)",
	         role == ADMIN_ROLE_ADMIN ? "admin" : "stats");
}

/* --- commands --- */

static void console_query(struct conn *c, const uint8_t *body, uint32_t len)
{
	struct pg_reader r = pg_reader_init(body, len);
	const char *sql = pg_read_str(&r);
	if (!sql) {
		client_fail(c, "08P01", "invalid Query message");
		return;
	}
	pgc(c)->console_busy = true;
	admin_execute(c->core, c, pgc(c)->console_role, &pg_admin_writer, sql);
}

/* Extended protocol messages: one error, then everything up to Sync is skipped. */
static void console_extended(struct conn *c, uint8_t type)
{
	struct pg_client *pc = pgc(c);
	if (type == 'S') {
		pc->console_skip = false;
		w_ready(c);
		return;
	}
	if (!pc->console_skip) {
		pc->console_skip = true;
		pg_client_error(c, "0A000",
		                "the admin console supports only the simple query protocol", false);
	}
}

/*
 * Commands are taken in a loop, never by recursion, and each wake-up runs at most
 * CONSOLE_BATCH of them: a pipeline of any length leaves other clients their turn.
 * Once CONSOLE_BACKLOG reply bytes wait for the client, no command runs (and the
 * socket is not read) until the client has taken them, so output stays bounded.
 */
#define CONSOLE_BATCH   100
#define CONSOLE_BACKLOG (64 * 1024)

static uint32_t console_backlog(const struct conn *c)
{
	return c->wbuf ? iobuf_unsent(c->wbuf) : 0;
}

/* True while a command may run now: one is buffered and none is running. */
static bool console_can_run(const struct conn *c)
{
	return c->state != CL_JUSTFREE && c->rbuf && iobuf_unparsed(c->rbuf) &&
	       !pgc(c)->console_busy;
}

static void console_continue(struct loop *l, struct loop_timer *t, void *arg)
{
	struct conn *c = arg;
	(void)l;
	(void)t;
	/* the replies so far did not all fit in the socket: wait until they are out
	 * (conn.c gives the console its input again then) */
	if (console_backlog(c) >= CONSOLE_BACKLOG) {
		conn_pause_read(c, true);
		return;
	}
	pg_console_input(c);
}

/* The console's timer is free after login: it carries the rest of a pipeline. */
static void console_continue_later(struct conn *c)
{
	if (console_can_run(c))
		loop_timer_start(c->core->loop, &c->timer, 1, 0, console_continue, c);
}

/* Runs the next buffered message; false when the loop must stop (incomplete, or the
 * client was closed). */
static bool console_message(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	uint8_t type;
	uint32_t len;
	if (!pg_client_header(c, &type, &len))
		return false;
	if (type == 'X') {
		client_close(c, "client sent Terminate");
		return false;
	}
	if (len > PG_LOGIN_MSG_MAX) {
		client_fail(c, "54000", "console command too long");
		return false;
	}
	if (iobuf_unparsed(c->rbuf) < len + 1) {
		iobuf_grow_toward(&c->rbuf, len + 1);
		return false;
	}
	uint8_t *msg = xmalloc(len + 1);
	memcpy(msg, iobuf_parse_ptr(c->rbuf), len + 1);
	iobuf_swallow(c->rbuf, len + 1);
	if (type == 'Q' && !pc->console_skip)
		console_query(c, msg + 5, len - 4);
	else if (type != 'Q')
		console_extended(c, type);
	free(msg);
	return true;
}

void pg_console_input(struct conn *c)
{
	struct pg_client *pc = pgc(c);
	bool bounded = false;
	if (pc->console_looping)
		return; /* the loop below is already taking the messages */
	pc->console_looping = true;
	for (unsigned n = 0; console_can_run(c); n++) {
		if (n == CONSOLE_BATCH || console_backlog(c) >= CONSOLE_BACKLOG) {
			bounded = true;
			break;
		}
		if (!console_message(c))
			break;
	}
	pc->console_looping = false;
	if (c->state == CL_JUSTFREE)
		return;
	if (bounded)
		console_continue_later(c);
	/* reading stopped for a full buffer or a backlog that is gone now */
	if ((c->flags & CONN_F_READ_PAUSED) && console_backlog(c) < CONSOLE_BACKLOG)
		conn_pause_read(c, false);
}
