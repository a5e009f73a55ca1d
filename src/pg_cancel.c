/*
 * pg_cancel: forwarding a client's CancelRequest. The client's key is sluice's own;
 * it names the client, whose attached server gets a CancelRequest with the key that
 * server gave us, over a fresh connection. The request stays in flight until the
 * database closes that connection (PostgreSQL does so once it has signalled the
 * backend), and until then the server is kept from any other client (pool.h,
 * struct cancel_ref): a cancel never lands on the next client's query. A request for
 * a client that is not running anything on a server is dropped, as PostgreSQL drops
 * one it cannot match.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn_io.h"
#include "core.h"
#include "log.h"
#include "pg.h"
#include "pool.h"

struct cancel_req {
	struct core *core;
	int fd;
	const struct conn_io *io; /* plain: a server's transport would carry TLS too */
	uint8_t pkt[16];
	size_t sent;
	struct cancel_ref ref; /* holds the target server back while in flight */
	struct loop_timer timer;
};

static void cancel_io(struct loop *l, int fd, int events, void *arg);

static void cancel_free(void *arg)
{
	free(arg);
}

/* settled: nothing more of this request can reach the server (see pool_cancel_end) */
static void cancel_finish(struct cancel_req *cr, const char *why, bool settled)
{
	if (why)
		log_debug("cancel request: %s", why);
	loop_timer_stop(cr->core->loop, &cr->timer);
	loop_unwatch(cr->core->loop, cr->fd);
	cr->io->close(cr->fd, NULL);
	cr->fd = -1;
	pool_cancel_end(&cr->ref, settled);
	loop_defer_free(cr->core->loop, cancel_free, cr);
}

/* Written: wait for the database to close the connection, reading whatever it sends. */
static void cancel_await_close(struct cancel_req *cr)
{
	uint8_t buf[256];
	for (;;) {
		ssize_t n = cr->io->recv(cr->fd, NULL, buf, sizeof(buf));
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/* EOF, or a reset: either way the database is done with the request */
		cancel_finish(cr, n < 0 ? strerror(errno) : NULL, true);
		return;
	}
}

static void cancel_write(struct cancel_req *cr)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(cr->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		cancel_finish(cr, strerror(err ? err : errno), true); /* never arrived whole */
		return;
	}
	while (cr->sent < sizeof(cr->pkt)) {
		ssize_t n =
		    cr->io->send(cr->fd, NULL, cr->pkt + cr->sent, sizeof(cr->pkt) - cr->sent);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			cancel_finish(cr, strerror(errno), true);
			return;
		}
		cr->sent += (size_t)n;
	}
	pool_cancel_forwarded(&cr->ref);
	if (!loop_watch(cr->core->loop, cr->fd, LOOP_READ, cancel_io, cr)) {
		cancel_finish(cr, "cannot watch the cancel connection", false);
		return;
	}
	cancel_await_close(cr);
}

static void cancel_io(struct loop *l, int fd, int events, void *arg)
{
	struct cancel_req *cr = arg;
	(void)l;
	(void)events;
	if (cr->fd != fd)
		return;
	if (cr->ref.forwarded)
		cancel_await_close(cr);
	else
		cancel_write(cr);
}

static void cancel_timeout(struct loop *l, struct loop_timer *t, void *arg)
{
	struct cancel_req *cr = arg;
	(void)l;
	(void)t;
	/* written but unconfirmed: it may still land, so its server is not reused */
	cancel_finish(cr, "timed out", !cr->ref.forwarded);
}

bool pg_handle_cancel(struct conn *c, uint32_t pid, uint32_t key)
{
	struct core *core = c->core;
	struct conn *target = pool_find_client_by_cancel_key(core, pid, key);
	struct sockaddr_storage addr;
	char err[256];
	if (!target || !target->link || target->link->state != SV_ACTIVE) {
		log_debug("cancel request matches no running query");
		return false;
	}
	struct conn *server = target->link;
	int fd = pool_connect_server_addr(server, &addr, err, sizeof(err)); /* its host */
	if (fd < 0) {
		conn_log(server, LOG_LVL_WARNING, "cannot send cancel: %s", err);
		return false;
	}
	struct cancel_req *cr = xcalloc(1, sizeof(*cr));
	cr->core = core;
	cr->fd = fd;
	cr->io = &conn_io_plain;
	pg_put_u32(cr->pkt, 16);
	pg_put_u32(cr->pkt + 4, PG_CANCEL_REQUEST);
	pg_put_u32(cr->pkt + 8, server->cancel_pid);
	pg_put_u32(cr->pkt + 12, server->cancel_key);
	if (!loop_watch(core->loop, fd, LOOP_WRITE, cancel_io, cr)) {
		cr->io->close(fd, NULL);
		free(cr);
		return false;
	}
	pool_cancel_begin(&cr->ref, server, c);
	if (core->cfg->cancel_wait_timeout) /* 0: no limit */
		loop_timer_start(core->loop, &cr->timer, core->cfg->cancel_wait_timeout, 0,
		                 cancel_timeout, cr);
	conn_log(target, LOG_LVL_DEBUG, "forwarding cancel request");
	return true;
}
