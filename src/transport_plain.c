/*
 * transport_plain: the conn_io of a plain TCP or unix socket. Each entry is the
 * system call itself; it keeps no state (ctx is unused) and never buffers, so it
 * has nothing pending and never wants events of its own. It must stay this thin:
 * anything a transport has to remember belongs in that transport's ctx.
 */
#include <sys/socket.h>
#include <unistd.h>

#include "conn_io.h"

static ssize_t plain_recv(int fd, void *ctx, void *buf, size_t len)
{
	(void)ctx;
	return recv(fd, buf, len, 0);
}

static ssize_t plain_send(int fd, void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	return send(fd, buf, len, MSG_NOSIGNAL);
}

static void plain_shutdown(int fd, void *ctx)
{
	(void)ctx;
	shutdown(fd, SHUT_WR);
}

static void plain_close(int fd, void *ctx)
{
	(void)ctx;
	close(fd);
}

static size_t plain_pending(int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	return 0;
}

static int plain_want(int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	return 0;
}

const struct conn_io conn_io_plain = {
    .name = "plain",
    .recv = plain_recv,
    .send = plain_send,
    .shutdown = plain_shutdown,
    .close = plain_close,
    .pending = plain_pending,
    .want = plain_want,
};
