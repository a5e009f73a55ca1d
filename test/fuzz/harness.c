/*
 * harness: sluice's core in-process, with fake clients and a fake PostgreSQL on unix
 * sockets (see harness.h). It only uses the interfaces main.c uses to run sluice
 * (config_load, auth_file_load, loop, dns_new, listen_open_all, pool_free_all), so the
 * code under test is the production code path, not a copy of it.
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth_file.h"
#include "config.h"
#include "conn.h"
#include "core.h"
#include "dns.h"
#include "iobuf.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "pg_pkt.h"
#include "pool.h"
#include "proto.h"

#define H_PG_PORT      5999 /* the fake PostgreSQL */
#define H_SLUICE_PORT  6999 /* sluice's own unix listener */
#define H_MAX_EP       16
#define H_QUIET_ROUNDS 4   /* rounds without any movement before h_pump stops */
#define H_MAX_ROUNDS   400 /* bounds a pump whatever the peers do */

/* One socket end the harness plays: a client of sluice, or a server sluice connected to. */
struct ep {
	int fd; /* -1: slot free */
	bool server;
	bool started;   /* server: the startup packet was answered */
	char txn;       /* server: transaction status for ReadyForQuery */
	size_t raw_pos; /* server in a RAW mode: next raw byte to send; SIZE_MAX: not armed */
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	size_t received;
	char nonce[80]; /* server: the client nonce of sluice's SCRAM client-first */
};

static struct core hcore;
static struct ep eps[H_MAX_EP];
static char dir[64];
static char cfg_path[128], auth_path[128], pg_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int pg_listen_fd = -1;
static enum h_server_mode srv_mode;
static uint8_t *raw;
static bool log_stderr;
static size_t raw_len;

/* auth_file users: a SCRAM secret (password app-password), md5 (admin-password) and plain */
static const char auth_text[] =
    "\"admin\" \"md502a96f16648b183922f4dae550c2bf9c\"\n"
    "\"app\" \"SCRAM-SHA-256$4096:c2x1aWNlLWV4YW1wbGUtMQ==$pGVY2ccPdhn//tjg9fd+i2CE2vU6ZcVvqcbk3tbF"
    "FL4=:6351QWzOroYIEhP5DHurpmawDzImCIbcwwjNTrXE02g=\"\n"
    "\"stats\" \"stats-password\"\n";

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		fatal("harness: cannot write %s", path);
}

static void write_config(void)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "[databases]\n"
	         "db1 = host=%s port=%d dbname=db1\n"
	         "dbpw = host=%s port=%d dbname=dbpw user=stats password=secretpw\n"
	         "dbq = host=%s port=%d dbname=dbq connect_query='SELECT 1' "
	         "application_name=fuzz\n"
	         "* = host=%s port=%d\n"
	         "[users]\n"
	         "sess = pool_mode=session\n"
	         "[sluice]\n"
	         "listen_addr =\n"
	         "listen_port = %d\n"
	         "unix_socket_dir = %s\n"
	         "auth_type = any\n"
	         "auth_file = %s\n"
	         "admin_users = admin\n"
	         "stats_users = stats\n"
	         "logfile = /dev/null\n"
	         "pool_mode = transaction\n"
	         "default_pool_size = 2\n"
	         "server_login_retry = 0\n"
	         "track_extra_parameters = IntervalStyle, search_path\n"
	         "ignore_startup_parameters = extra_float_digits\n",
	         dir, H_PG_PORT, dir, H_PG_PORT, dir, H_PG_PORT, dir, H_PG_PORT, H_SLUICE_PORT, dir,
	         auth_path);
	write_file(cfg_path, text);
}

static void cleanup(void)
{
	unlink(pg_path);
	unlink(cfg_path);
	unlink(auth_path);
	rmdir(dir);
}

static bool no_reload(struct core *core, char *err, size_t errlen)
{
	(void)core;
	snprintf(err, errlen, "no RELOAD while fuzzing");
	return false;
}

static void before_sleep(struct loop *l, void *arg)
{
	(void)l;
	(void)arg;
	conn_flush_all();
}

static void open_pg_listener(void)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(pg_path, sizeof(pg_path), "%s/.s.PGSQL.%d", dir, H_PG_PORT);
	strlcpy_s(un.sun_path, pg_path, sizeof(un.sun_path));
	pg_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pg_listen_fd < 0 || bind(pg_listen_fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
	    listen(pg_listen_fd, 64) < 0)
		fatal("harness: fake server socket: %s", strerror(errno));
}

static void load_config(void)
{
	char err[1024];
	config_free(hcore.cfg);
	hcore.cfg = config_load(cfg_path, err, sizeof(err), NULL);
	if (!hcore.cfg)
		fatal("harness: config: %s", err);
}

static void setup(void)
{
	char err[1024];
	/* SLUICE_FUZZ_LOG=1 shows sluice's log on stderr, to see what an input does */
	log_stderr = getenv("SLUICE_FUZZ_LOG") != NULL;
	struct log_target lt = {.logfile = "/dev/null", .use_stderr = log_stderr};
	strlcpy_s(dir, "/tmp/sluice-fuzz-XXXXXX", sizeof(dir));
	if (!mkdtemp(dir))
		fatal("harness: mkdtemp: %s", strerror(errno));
	snprintf(cfg_path, sizeof(cfg_path), "%s/sluice.ini", dir);
	snprintf(auth_path, sizeof(auth_path), "%s/users.txt", dir);
	atexit(cleanup);
	write_config();
	write_file(auth_path, auth_text);
	/* every log line is formatted (client strings reach the log), and thrown away */
	if (!log_setup(&lt))
		fatal("harness: log_setup");
	log_set_level(LOG_LVL_DEBUG);
	memset(&hcore, 0, sizeof(hcore));
	list_init(&hcore.databases);
	list_init(&hcore.users);
	list_init(&hcore.pools);
	list_init(&hcore.login_clients);
	list_init(&hcore.listeners);
	list_init(&hcore.admin_clients);
	list_init(&hcore.admin_waits);
	hcore.config_path = xstrdup(cfg_path);
	hcore.reload = no_reload;
	hcore.started = wall_usec();
	load_config();
	hcore.auth = auth_file_load(auth_path, err, sizeof(err));
	if (!hcore.auth)
		fatal("harness: auth_file: %s", err);
	iobuf_set_default_size((uint32_t)hcore.cfg->pkt_buf);
	hcore.loop = loop_new();
	if (!hcore.loop)
		fatal("harness: loop_new");
	pool_init();
	static const struct dns_hooks no_hooks = {0};
	hcore.dns = dns_new(&hcore, &no_hooks, err, sizeof(err));
	if (!hcore.dns)
		fatal("harness: dns: %s", err);
	open_pg_listener();
	if (!listen_open_all(&hcore, proto_by_name(hcore.cfg->listen_protocol)))
		fatal("harness: cannot listen in %s", dir);
	loop_set_before_sleep(hcore.loop, before_sleep, NULL);
	for (int i = 0; i < H_MAX_EP; i++)
		eps[i].fd = -1;
}

struct core *h_core(void)
{
	if (!hcore.loop)
		setup();
	return &hcore;
}

/* --- endpoints --- */

static void buf_add(uint8_t **b, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (!n)
		return;
	if (*len + n > *cap) {
		*cap = (*len + n) * 2 + 256;
		*b = xrealloc(*b, *cap);
	}
	memcpy(*b + *len, p, n);
	*len += n;
}

static int ep_new(int fd, bool server)
{
	for (int i = 0; i < H_MAX_EP; i++) {
		if (eps[i].fd >= 0)
			continue;
		struct ep *e = &eps[i];
		free(e->in);
		free(e->out);
		memset(e, 0, sizeof(*e));
		e->fd = fd;
		e->server = server;
		e->txn = 'I';
		e->raw_pos = SIZE_MAX;
		return i;
	}
	close(fd);
	return -1;
}

static void ep_close(struct ep *e)
{
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	free(e->in);
	free(e->out);
	e->in = e->out = NULL;
	e->in_len = e->in_cap = e->out_len = e->out_off = e->out_cap = 0;
}

static void ep_send(struct ep *e, const void *p, size_t n)
{
	buf_add(&e->out, &e->out_len, &e->out_cap, p, n);
}

/* Writes what is queued; true when bytes moved. */
static bool ep_flush(struct ep *e)
{
	bool moved = false;
	while (e->fd >= 0 && e->out_off < e->out_len) {
		ssize_t n = send(e->fd, e->out + e->out_off, e->out_len - e->out_off, MSG_NOSIGNAL);
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				ep_close(e);
			break;
		}
		e->out_off += (size_t)n;
		moved = true;
	}
	if (e->out_off == e->out_len)
		e->out_off = e->out_len = 0;
	return moved;
}

/* Reads what arrived; true when bytes moved (or the peer closed). */
static bool ep_read(struct ep *e)
{
	uint8_t buf[65536];
	bool moved = false;
	while (e->fd >= 0) {
		ssize_t n = recv(e->fd, buf, sizeof(buf), 0);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			ep_close(e);
			return true;
		}
		e->received += (size_t)n;
		if (e->server)
			buf_add(&e->in, &e->in_len, &e->in_cap, buf, (size_t)n);
		moved = true;
	}
	return moved;
}

/* --- the fake PostgreSQL --- */

static void msg(struct ep *e, uint8_t type, const void *body, size_t len)
{
	uint8_t hdr[5];
	hdr[0] = type;
	pg_put_u32(hdr + 1, (uint32_t)len + 4);
	ep_send(e, hdr, 5);
	ep_send(e, body, len);
}

static void msg_param(struct ep *e, const char *name, const char *value)
{
	uint8_t body[256];
	size_t a = strlen(name) + 1, b = strlen(value) + 1;
	memcpy(body, name, a);
	memcpy(body + a, value, b);
	msg(e, 'S', body, a + b);
}

static void msg_ready(struct ep *e)
{
	msg(e, 'Z', &e->txn, 1);
}

static void canned_login(struct ep *e)
{
	static const uint8_t auth_ok[4] = {0, 0, 0, 0};
	static const uint8_t key[8] = {0, 0, 0x12, 0x34, 0, 0, 0x56, 0x78};
	msg(e, 'R', auth_ok, 4);
	msg_param(e, "server_version", "15.0");
	msg_param(e, "client_encoding", "UTF8");
	msg_param(e, "DateStyle", "ISO, MDY");
	msg_param(e, "IntervalStyle", "postgres");
	msg_param(e, "TimeZone", "UTC");
	msg_param(e, "standard_conforming_strings", "on");
	msg_param(e, "application_name", "");
	msg_param(e, "in_hot_standby", "off");
	msg(e, 'K', key, 8);
	msg_ready(e);
}

static bool starts_with_ci(const char *s, size_t len, const char *word)
{
	size_t n = strlen(word);
	return len >= n && strncasecmp(s, word, n) == 0;
}

/* A simple Query: a CommandComplete named after its first word, and the status. */
static void canned_query(struct ep *e, const uint8_t *body, size_t len)
{
	const char *q = (const char *)body;
	char tag[32];
	size_t n = 0;
	while (n < len && n < 20 && body[n] > ' ')
		n++;
	if (starts_with_ci(q, len, "BEGIN") || starts_with_ci(q, len, "START"))
		e->txn = 'T';
	else if (starts_with_ci(q, len, "COMMIT") || starts_with_ci(q, len, "ROLLBACK") ||
	         starts_with_ci(q, len, "END"))
		e->txn = 'I';
	if (starts_with_ci(q, len, "SELECT"))
		snprintf(tag, sizeof(tag), "SELECT 1");
	else
		snprintf(tag, sizeof(tag), "%.*s", (int)n, q);
	if (n == 0)
		msg(e, 'I', NULL, 0);
	else
		msg(e, 'C', tag, strlen(tag) + 1);
	msg_ready(e);
}

static void canned_reply(struct ep *e, uint8_t type, const uint8_t *body, size_t len)
{
	static const uint8_t null_value[4] = {0xff, 0xff, 0xff, 0xff};
	switch (type) {
	case 'Q':
		canned_query(e, body, len);
		break;
	case 'P':
		msg(e, '1', NULL, 0);
		break;
	case 'B':
		msg(e, '2', NULL, 0);
		break;
	case 'D':
		msg(e, 'n', NULL, 0);
		break;
	case 'E':
		msg(e, 'C', "SELECT 1", 9);
		break;
	case 'C':
		msg(e, '3', NULL, 0);
		break;
	case 'S':
		msg_ready(e);
		break;
	case 'F':
		msg(e, 'V', null_value, 4);
		msg_ready(e);
		break;
	case 'X':
		ep_close(e);
		break;
	default: /* H, CopyData and anything else: no answer */
		break;
	}
}

/* sluice's SCRAM client-first ("n,,n=,r=NONCE") in a PasswordMessage: keeps the nonce */
static void note_nonce(struct ep *e, const uint8_t *body, size_t len)
{
	const uint8_t *r = memmem(body, len, ",r=", 3);
	if (!r)
		return;
	size_t n = 0;
	r += 3;
	while (r + n < body + len && r[n] > ' ' && r[n] != ',' && n + 1 < sizeof(e->nonce))
		n++;
	memcpy(e->nonce, r, n);
	e->nonce[n] = 0;
}

/* Sends raw bytes with "r=@" standing for "r=" and sluice's nonce, so the fuzzer can get
 * past the nonce check of a SCRAM server-first-message it cannot know in advance. The
 * nonce overwrites the bytes from the '@' on, so message lengths stay right when the
 * placeholder is as long as the nonce (24 characters: "r=@@@...@"). */
static void send_raw(struct ep *e, const uint8_t *p, size_t n)
{
	uint8_t *copy = xmalloc(n ? n : 1);
	uint8_t *at, *q = copy;
	size_t left = n, nl = strlen(e->nonce);
	memcpy(copy, p, n);
	while (nl && (at = memmem(q, left, "r=@", 3)) != NULL) {
		size_t room = left - (size_t)(at + 2 - q);
		memcpy(at + 2, e->nonce, nl < room ? nl : room);
		left -= (size_t)(at + 2 - q);
		q = at + 2;
	}
	ep_send(e, copy, n);
	free(copy);
}

/* The RAW modes: the next chunk of raw bytes, once the previous one has gone out. */
static bool raw_next(struct ep *e)
{
	if (e->raw_pos >= raw_len || e->out_len)
		return false;
	const uint8_t *start = raw + e->raw_pos;
	const uint8_t *end = memmem(start, raw_len - e->raw_pos, H_SPLIT, H_SPLIT_LEN);
	size_t n = end ? (size_t)(end - start) : raw_len - e->raw_pos;
	if (!e->nonce[0] && memmem(start, n, "r=@", 3))
		return false; /* waits for sluice's client-first */
	send_raw(e, start, n);
	if (log_stderr)
		fprintf(stderr, "harness: server %d sends %zu raw bytes\n", (int)(e - eps), n);
	e->raw_pos += n + (end ? H_SPLIT_LEN : 0);
	return true;
}

/* Answers every whole message received; true when it answered something. */
static bool server_work(struct ep *e)
{
	size_t off = 0;
	bool did = false;
	while (e->fd >= 0 && e->in) {
		uint8_t *p = e->in + off;
		size_t avail = e->in_len - off;
		uint8_t type = 0;
		size_t hdr = e->started ? 5 : 4;
		if (avail < hdr)
			break;
		uint32_t len = pg_get_u32(p + hdr - 4);
		if (len < 4 || len > (1u << 24)) {
			ep_close(e);
			break;
		}
		if (avail < len + hdr - 4)
			break;
		if (e->started)
			type = p[0];
		off += len + hdr - 4;
		did = true;
		if (log_stderr)
			fprintf(stderr, "harness: server %d got '%c' (%u bytes)\n", (int)(e - eps),
			        type ? type : '0', len);
		if (type == 'p')
			note_nonce(e, p + 5, len - 4);
		if (!e->started) {
			e->started = true;
			if (srv_mode == H_SERVER_RAW_LOGIN)
				e->raw_pos = 0;
			else
				canned_login(e);
		} else if (srv_mode == H_SERVER_RAW_REPLY && e->raw_pos == SIZE_MAX &&
		           (type == 'Q' || type == 'S')) {
			e->raw_pos = 0; /* this one is answered by the raw bytes */
		} else if (e->raw_pos == SIZE_MAX || e->raw_pos >= raw_len) {
			canned_reply(e, type, p + 5, len - 4);
		}
	}
	if (e->fd >= 0 && off) {
		memmove(e->in, e->in + off, e->in_len - off);
		e->in_len -= off;
	}
	return did;
}

static bool accept_servers(void)
{
	bool moved = false;
	int fd;
	while ((fd = accept4(pg_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		ep_new(fd, true);
		moved = true;
	}
	return moved;
}

/* --- the loop --- */

void h_pump(void)
{
	int quiet = 0;
	for (int round = 0; round < H_MAX_ROUNDS && quiet < H_QUIET_ROUNDS; round++) {
		bool moved = accept_servers();
		for (int i = 0; i < H_MAX_EP; i++) {
			struct ep *e = &eps[i];
			if (e->fd < 0)
				continue;
			moved |= ep_read(e);
			if (e->server && e->fd >= 0) {
				moved |= server_work(e);
				moved |= raw_next(e);
			}
			moved |= ep_flush(e);
		}
		loop_run_once(hcore.loop, 0);
		quiet = moved ? 0 : quiet + 1;
	}
}

/* --- clients --- */

int h_client(void)
{
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d", dir, H_SLUICE_PORT);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fatal("harness: socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0 && errno != EINPROGRESS &&
	    errno != EAGAIN)
		fatal("harness: connect to sluice: %s", strerror(errno));
	return ep_new(fd, false);
}

void h_client_send(int client, const void *data, size_t len)
{
	if (client >= 0 && eps[client].fd >= 0)
		ep_send(&eps[client], data, len);
}

void h_client_startup(int client, const char *user, const char *db)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 0);
	pg_out_u32(&o, PG_PROTO_V3);
	pg_out_str(&o, "user");
	pg_out_str(&o, user);
	pg_out_str(&o, "database");
	pg_out_str(&o, db);
	pg_out_u8(&o, 0);
	pg_out_end(&o);
	h_client_send(client, o.data, o.len);
	pg_out_free(&o);
}

void h_client_query(int client, const char *sql)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_query(&o, sql);
	h_client_send(client, o.data, o.len);
	pg_out_free(&o);
}

size_t h_client_received(int client)
{
	if (client < 0)
		return 0;
	size_t n = eps[client].received;
	eps[client].received = 0;
	return n;
}

void h_client_send_chunks(int client, const uint8_t *data, size_t len)
{
	while (len) {
		const uint8_t *end = memmem(data, len, H_SPLIT, H_SPLIT_LEN);
		size_t n = end ? (size_t)(end - data) : len;
		h_client_send(client, data, n);
		h_pump();
		if (!end)
			break;
		data += n + H_SPLIT_LEN;
		len -= n + H_SPLIT_LEN;
	}
}

/* --- per input --- */

void h_server_mode(enum h_server_mode mode)
{
	srv_mode = mode;
}

void h_server_raw(const uint8_t *data, size_t len)
{
	free(raw);
	raw = xmalloc(len ? len : 1);
	memcpy(raw, data, len);
	raw_len = len;
}

void h_begin(void)
{
	h_core();
	/* a console command of the previous input (SET, PAUSE, ...) is not this one's */
	load_config();
	srv_mode = H_SERVER_CANNED;
	raw_len = 0;
}

/* Everything of sluice's closes and is freed; then the harness's own ends. */
static void close_all(void)
{
	pool_free_all(&hcore);
	loop_run_deferred(hcore.loop);
	for (int i = 0; i < H_MAX_EP; i++)
		ep_close(&eps[i]);
}

void h_end(void)
{
	close_all();
	/* clients still in the listen backlog: sluice accepts them and sees them gone */
	h_pump();
	close_all();
	/* SHUTDOWN, SUSPEND and PAUSE from the console: back to a running process */
	if (hcore.run_state != RUN_NORMAL) {
		hcore.run_state = RUN_NORMAL;
		if (!listen_open_all(&hcore, proto_by_name(hcore.cfg->listen_protocol)))
			fatal("harness: cannot listen again");
	}
	if (hcore.suspended) {
		hcore.suspended = false;
		listen_pause_all(&hcore, false);
	}
	hcore.paused = false;
	free(raw);
	raw = NULL;
	raw_len = 0;
	iobuf_release_free_list();
}
