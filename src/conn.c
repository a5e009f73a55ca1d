/*
 * conn: socket I/O for both sides. Reading fills the input buffer and hands it to
 * the protocol module; forwarding writes a connection's processed input to its peer
 * straight from that buffer; generated output (errors, login replies, reset queries)
 * is queued and written once per loop iteration, always ahead of forwarded bytes.
 * A side whose peer cannot take more is not read until the peer drains.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "proto.h"

static const struct conn_hooks *hooks;
static struct list flush_list = LIST_INIT(flush_list);
/* connections whose transport holds input epoll will not report (conn_io.pending) */
static struct list pending_list = LIST_INIT(pending_list);

static const char *const client_state_names[] = {"login",   "wait_login", "idle",
                                                 "waiting", "active",     "justfree"};
static const char *const server_state_names[] = {"new",  "login",  "idle",           "active",
                                                 "used", "tested", "being_canceled", "justfree"};

const char *client_state_name(enum client_state s)
{
	return (unsigned)s < CL_STATE_COUNT ? client_state_names[s] : "?";
}

const char *server_state_name(enum server_state s)
{
	return (unsigned)s < SV_STATE_COUNT ? server_state_names[s] : "?";
}

void conn_set_hooks(const struct conn_hooks *h)
{
	hooks = h;
}

struct conn *conn_new(struct core *core, int fd, bool is_server)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->core = core;
	c->fd = fd;
	c->is_server = is_server;
	c->id = ++core->next_id;
	c->connect_time = wall_usec();
	c->request_time = loop_now(core->loop);
	c->host_idx = -1;
	list_init(&c->node);
	list_init(&c->flush_node);
	list_init(&c->pending_node);
	list_init(&c->cancels);
	c->io = &conn_io_plain;
	return c;
}

void conn_set_io(struct conn *c, const struct conn_io *io, void *ctx)
{
	c->io = io;
	c->io_ctx = ctx;
}

static bool conn_is_dead(const struct conn *c)
{
	return c->fd < 0;
}

static void conn_update_mask(struct conn *c)
{
	int mask = 0;
	if (conn_is_dead(c))
		return;
	if (!(c->flags & CONN_F_READ_PAUSED))
		mask |= LOOP_READ;
	if (conn_output_pending(c))
		mask |= LOOP_WRITE;
	/* a transport in a handshake waits for its own events, whatever ours are */
	int want = c->io->want(c->fd, c->io_ctx);
	if (want)
		mask = want;
	if (!loop_set_mask(c->core->loop, c->fd, mask))
		log_warning("epoll_ctl(fd %d): %s", c->fd, strerror(errno));
}

bool conn_watch(struct conn *c, bool connecting)
{
	int mask = connecting ? LOOP_WRITE : LOOP_READ;
	return loop_watch(c->core->loop, c->fd, mask, conn_event, c);
}

bool conn_output_pending(const struct conn *c)
{
	if (c->wbuf && iobuf_unsent(c->wbuf))
		return true;
	return c->link && c->link->rbuf && iobuf_unsent(c->link->rbuf);
}

/* Input held inside the transport is never reported by epoll: queue c to be read
 * before the loop sleeps. */
static void note_pending(struct conn *c)
{
	if (conn_is_dead(c) || (c->flags & CONN_F_READ_PAUSED) || !list_empty(&c->pending_node))
		return;
	if (c->io->pending(c->fd, c->io_ctx))
		list_add_tail(&pending_list, &c->pending_node);
}

void conn_pause_read(struct conn *c, bool pause)
{
	if (pause)
		c->flags |= CONN_F_READ_PAUSED;
	else
		c->flags &= ~CONN_F_READ_PAUSED;
	conn_update_mask(c);
	if (!pause)
		note_pending(c);
}

/* Writes [sent, done) of b to fd. Returns false on a hard error. */
static bool write_buf(struct conn *dst, struct iobuf *b)
{
	while (iobuf_unsent(b)) {
		ssize_t n = dst->io->send(dst->fd, dst->io_ctx, b->data + b->sent, iobuf_unsent(b));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (n <= 0)
			return false;
		b->sent += (uint32_t)n;
	}
	if (b->sent == b->recv)
		b->sent = b->done = b->recv = 0;
	return true;
}

/* Flushes dst's own generated output; false when the socket failed (dst closed). */
static bool flush_generated(struct conn *dst)
{
	if (!dst->wbuf || !iobuf_unsent(dst->wbuf))
		return true;
	if (!write_buf(dst, dst->wbuf)) {
		hooks->failed(dst, strerror(errno ? errno : EPIPE));
		return false;
	}
	return true;
}

/* Below this, forwarded bytes queued behind generated ones are copied behind them so
 * both leave in one write. */
#define COALESCE_MAX 4096

static void move_forwarded(struct conn *dst, struct iobuf *b)
{
	iobuf_append(&dst->wbuf, b->data + b->sent, iobuf_unsent(b));
	b->sent = b->done;
	if (list_empty(&dst->flush_node))
		list_add_tail(&flush_list, &dst->flush_node);
}

void conn_send_after_forwarded(struct conn *c, const void *data, size_t len)
{
	struct conn *src = c->link;
	if (conn_is_dead(c))
		return;
	if (src && src->rbuf && iobuf_unsent(src->rbuf))
		move_forwarded(c, src->rbuf);
	if (len)
		conn_send(c, data, len);
}

/* The peer forwarding to c may be waiting for c to drain. */
static bool peer_waits(const struct conn *c)
{
	const struct conn *src = c->link;
	return src && ((src->rbuf && iobuf_unsent(src->rbuf)) || (src->flags & CONN_F_READ_PAUSED));
}

void conn_forward(struct conn *src)
{
	struct conn *dst = src->link;
	struct iobuf *b = src->rbuf;
	bool congested = false;
	if (dst && !conn_is_dead(dst)) {
		if (b && iobuf_unsent(b) && dst->wbuf && iobuf_unsent(dst->wbuf) &&
		    iobuf_unsent(dst->wbuf) + iobuf_unsent(b) <= COALESCE_MAX)
			move_forwarded(dst, b);
		if (!flush_generated(dst))
			return;
		if (b && iobuf_unsent(b) && (!dst->wbuf || !iobuf_unsent(dst->wbuf)) &&
		    !write_buf(dst, b)) {
			hooks->failed(dst, strerror(errno ? errno : EPIPE));
			return;
		}
		/* what src sent that dst has not taken, forwarded or moved into its output */
		congested = (b && iobuf_unsent(b)) || (dst->wbuf && iobuf_unsent(dst->wbuf));
		conn_update_mask(dst);
	}
	/* back-pressure: src waits while dst cannot take what src already sent us */
	if (!conn_is_dead(src) && congested != !!(src->flags & CONN_F_READ_PAUSED))
		conn_pause_read(src, congested);
}

void conn_send(struct conn *c, const void *data, size_t len)
{
	if (conn_is_dead(c))
		return;
	iobuf_append(&c->wbuf, data, len);
	if (list_empty(&c->flush_node))
		list_add_tail(&flush_list, &c->flush_node);
}

static void on_readable(struct conn *c);

/* Reads what transports hold until none holds any, or its reader is paused (it is
 * queued again when it resumes): a connection is never left with input no event
 * will announce. */
static void drain_pending(void)
{
	struct list *item;
	while ((item = list_pop_head(&pending_list)) != NULL) {
		struct conn *c = container_of(item, struct conn, pending_node);
		if (conn_is_dead(c) || (c->flags & CONN_F_READ_PAUSED))
			continue;
		on_readable(c);
		if (!conn_is_dead(c))
			conn_trim_buffers(c);
	}
}

void conn_flush_all(void)
{
	struct list *item;
	drain_pending();
	while ((item = list_pop_head(&flush_list)) != NULL) {
		struct conn *c = container_of(item, struct conn, flush_node);
		if (conn_is_dead(c))
			continue;
		if (!flush_generated(c))
			continue;
		/* a peer's bytes held back behind the generated ones can go now */
		if (peer_waits(c))
			conn_forward(c->link);
		else
			conn_update_mask(c);
		if (!conn_is_dead(c))
			conn_trim_buffers(c);
	}
}

void conn_trim_buffers(struct conn *c)
{
	if (c->rbuf && iobuf_empty(c->rbuf)) {
		iobuf_put(c->rbuf);
		c->rbuf = NULL;
	}
	if (c->wbuf && iobuf_empty(c->wbuf)) {
		iobuf_put(c->wbuf);
		c->wbuf = NULL;
	}
}

/* A console stops reading while its replies back up (pg_admin.c); once they are all
 * out, it reads and runs the commands it holds again. */
static bool console_drained(struct conn *c)
{
	if (!(c->flags & CONN_F_ADMIN) || !(c->flags & CONN_F_READ_PAUSED) ||
	    conn_output_pending(c))
		return false;
	conn_pause_read(c, false);
	c->proto->client_input(c);
	return true;
}

static void on_writable(struct conn *c)
{
	if (!flush_generated(c))
		return;
	if (console_drained(c))
		return;
	struct conn *src = c->link;
	if (peer_waits(c)) {
		conn_forward(src);
		if (conn_is_dead(c) || conn_is_dead(src))
			return;
		if (!src->rbuf || !iobuf_unsent(src->rbuf)) {
			/* what waited behind the congestion can be processed now, and a
			 * decision that waited for the peer to drain can be made */
			if (src->is_server)
				src->proto->server_input(src);
			else
				src->proto->client_input(src);
		}
	}
	if (!conn_is_dead(c))
		conn_update_mask(c);
}

static void on_readable(struct conn *c)
{
	if (!c->rbuf)
		c->rbuf = iobuf_get();
	struct iobuf *b = c->rbuf;
	if (!iobuf_free_space(b))
		iobuf_compact(b);
	if (!iobuf_free_space(b)) {
		/* full of bytes the peer has not taken yet: wait for it to drain */
		conn_pause_read(c, true);
		return;
	}
	ssize_t n = c->io->recv(c->fd, c->io_ctx, b->data + b->recv, iobuf_free_space(b));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		hooks->failed(c, n == 0 ? "closed by peer" : strerror(errno));
		return;
	}
	b->recv += (uint32_t)n;
	if (c->is_server)
		c->proto->server_input(c);
	else
		c->proto->client_input(c);
	note_pending(c);
}

void conn_event(struct loop *l, int fd, int events, void *arg)
{
	struct conn *c = arg;
	(void)l;
	if (conn_is_dead(c) || c->fd != fd)
		return;
	if (c->is_server && c->state == SV_CONNECTING) {
		hooks->connected(c);
		return;
	}
	/* epoll reports hang-ups whatever the mask: a side paused by back-pressure would
	 * otherwise be woken for ever without reading */
	if ((events & LOOP_ERROR) && (c->flags & CONN_F_READ_PAUSED)) {
		hooks->failed(c, "connection reset by peer");
		return;
	}
	if (events & LOOP_WRITE)
		on_writable(c);
	if (!conn_is_dead(c) && (events & LOOP_READ) && !(c->flags & CONN_F_READ_PAUSED))
		on_readable(c);
	/* a connection with nothing buffered holds no buffer: idle clients cost little */
	if (!conn_is_dead(c)) {
		conn_trim_buffers(c);
		if (c->link && !conn_is_dead(c->link))
			conn_trim_buffers(c->link);
	}
}

const char *conn_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	switch (ss->ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%d", ip, conn_addr_port(ss));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%d", ip, conn_addr_port(ss));
		break;
	case AF_UNIX:
		snprintf(buf, len, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
		break;
	default:
		snprintf(buf, len, "unix");
	}
	return buf;
}

int conn_addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

const char *conn_prefix(const struct conn *c, char *buf, size_t len)
{
	char addr[128];
	snprintf(buf, len, "%c-%llu: %s/%s@%s", c->is_server ? 'S' : 'C', (unsigned long long)c->id,
	         c->db_name ? c->db_name : "(nodb)", c->user_name ? c->user_name : "(nouser)",
	         conn_addr_str(&c->addr, addr, sizeof(addr)));
	return buf;
}

void conn_log(const struct conn *c, int level, const char *fmt, ...)
{
	char prefix[256], msg[1024];
	va_list ap;
	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_msg(level, "%s %s", conn_prefix(c, prefix, sizeof(prefix)), msg);
}

void conn_close_socket(struct conn *c)
{
	if (c->fd >= 0) {
		loop_unwatch(c->core->loop, c->fd);
		c->io->close(c->fd, c->io_ctx);
		c->fd = -1;
		c->io_ctx = NULL;
	}
	loop_timer_stop(c->core->loop, &c->timer);
	if (!list_empty(&c->flush_node))
		list_del(&c->flush_node);
	if (!list_empty(&c->pending_node))
		list_del(&c->pending_node);
	iobuf_put(c->rbuf);
	iobuf_put(c->wbuf);
	c->rbuf = c->wbuf = NULL;
}

void conn_destroy(void *arg)
{
	struct conn *c = arg;
	if (c->proto && c->proto->conn_free)
		c->proto->conn_free(c);
	free(c->db_name);
	free(c->user_name);
	free(c);
}
