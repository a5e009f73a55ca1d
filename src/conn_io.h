/*
 * conn_io: the transport under a connection, one small table of functions chosen per
 * socket (plain now; TLS next). conn.c, the cancel path and the metrics endpoint read
 * and write only through it, so no state machine above branches on the transport.
 * A transport moves bytes between a socket and the caller's memory; it never parses
 * them and never touches the loop: it reports what it needs through `pending` and
 * `want`, and the caller arranges the events.
 *
 * What a TLS transport needs from its callers, and gets:
 * - `pending`: bytes already decrypted inside the library are invisible to epoll;
 *   conn.c drains a connection that reports them before the loop sleeps
 *   (conn_flush_all), and again when a paused side resumes reading.
 * - `want`: during a handshake (or a renegotiation) a read may need the socket to be
 *   writable and a write readable; a non-zero `want` replaces the interest mask
 *   conn_update_mask would compute.
 * - buffers that move: conn.c retries a short or refused write from the same cursor
 *   but the buffer may have been compacted (iobuf_compact) or grown in between, so
 *   OpenSSL must run with SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER (and
 *   SSL_MODE_ENABLE_PARTIAL_WRITE, since conn.c advances by what was written).
 * - a retry after EAGAIN is made with at least the bytes of the refused call.
 */
#ifndef SLUICE_CONN_IO_H
#define SLUICE_CONN_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct conn_io {
	const char *name;
	/* As recv(2)/send(2): > 0 bytes moved, 0 end of stream (recv only), -1 with errno
	 * (EAGAIN/EWOULDBLOCK: try again on the next event; EINTR: at once). send never
	 * raises SIGPIPE. ctx is the transport's per-connection state (NULL for plain). */
	ssize_t (*recv)(int fd, void *ctx, void *buf, size_t len);
	ssize_t (*send)(int fd, void *ctx, const void *buf, size_t len);
	/* Ends the write side (TLS: close_notify first); the fd stays open. */
	void (*shutdown)(int fd, void *ctx);
	/* Releases ctx and closes fd. The caller has already unwatched fd. */
	void (*close)(int fd, void *ctx);
	/* Bytes the transport holds that recv would return without the socket being
	 * readable; the caller must drain them before sleeping. */
	size_t (*pending)(int fd, void *ctx);
	/* LOOP_READ/LOOP_WRITE the transport itself is waiting for (a handshake), or 0
	 * when the caller's own interest applies. */
	int (*want)(int fd, void *ctx);
};

/* Plain sockets: recv/send(MSG_NOSIGNAL)/shutdown(SHUT_WR)/close, nothing pending. */
extern const struct conn_io conn_io_plain;

#endif
