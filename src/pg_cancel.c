/*
 * pg_cancel: forwarding a client's CancelRequest. The client's key is sluice's own;
 * it names the client, whose attached server gets a CancelRequest with the key that
 * server gave us, over a fresh connection that closes once the request is written.
 * A request for a client that is not running anything on a server is dropped, as
 * PostgreSQL drops one it cannot match.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "log.h"
#include "pg.h"
#include "pool.h"

struct cancel_req {
	struct core *core;
	int fd;
	uint8_t pkt[16];
	size_t sent;
	struct loop_timer timer;
};

static void cancel_free(void *arg)
{
	free(arg);
}

static void cancel_finish(struct cancel_req *cr, const char *why)
{
	if (why)
		log_debug("cancel request: %s", why);
	loop_timer_stop(cr->core->loop, &cr->timer);
	loop_unwatch(cr->core->loop, cr->fd);
	close(cr->fd);
	cr->fd = -1;
	loop_defer_free(cr->core->loop, cancel_free, cr);
}

static void cancel_io(struct loop *l, int fd, int events, void *arg)
{
	struct cancel_req *cr = arg;
	int err = 0;
	socklen_t len = sizeof(err);
	(void)l;
	(void)events;
	if (cr->fd != fd)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		cancel_finish(cr, strerror(err ? err : errno));
		return;
	}
	while (cr->sent < sizeof(cr->pkt)) {
		ssize_t n = send(fd, cr->pkt + cr->sent, sizeof(cr->pkt) - cr->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			cancel_finish(cr, strerror(errno));
			return;
		}
		cr->sent += (size_t)n;
	}
	cancel_finish(cr, NULL);
}

static void cancel_timeout(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	cancel_finish(arg, "timed out");
}

void pg_handle_cancel(struct conn *c, uint32_t pid, uint32_t key)
{
	struct core *core = c->core;
	struct conn *target = pool_find_client_by_cancel_key(core, pid, key);
	struct sockaddr_storage addr;
	char err[256];
	if (!target || !target->link) {
		log_debug("cancel request matches no running query");
		return;
	}
	struct conn *server = target->link;
	int fd = pool_connect_server_addr(server, &addr, err, sizeof(err)); /* its host */
	if (fd < 0) {
		conn_log(server, LOG_LVL_WARNING, "cannot send cancel: %s", err);
		return;
	}
	struct cancel_req *cr = xcalloc(1, sizeof(*cr));
	cr->core = core;
	cr->fd = fd;
	pg_put_u32(cr->pkt, 16);
	pg_put_u32(cr->pkt + 4, PG_CANCEL_REQUEST);
	pg_put_u32(cr->pkt + 8, server->cancel_pid);
	pg_put_u32(cr->pkt + 12, server->cancel_key);
	if (!loop_watch(core->loop, fd, LOOP_WRITE, cancel_io, cr)) {
		close(fd);
		free(cr);
		return;
	}
	if (core->cfg->cancel_wait_timeout) /* 0: no limit */
		loop_timer_start(core->loop, &cr->timer, core->cfg->cancel_wait_timeout, 0,
		                 cancel_timeout, cr);
	conn_log(target, LOG_LVL_DEBUG, "forwarding cancel request");
}
