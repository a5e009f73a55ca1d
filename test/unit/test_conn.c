/*
 * Unit tests for conn: socket I/O and back-pressure, over socketpairs with a real loop
 * and test hooks in place of the pool's; and its transport table, with a fake
 * transport that counts calls, cuts reads and writes short, refuses with EAGAIN and
 * holds input the way a TLS library holds decrypted bytes.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "core.h"
#include "loop.h"
#include "proto.h"

static int failed_calls;
static const char *failed_reason;
static int input_calls;

static void hook_connected(struct conn *c)
{
	(void)c;
}

static void hook_failed(struct conn *c, const char *reason)
{
	failed_calls++;
	failed_reason = reason;
	conn_close_socket(c);
}

static const struct conn_hooks test_hooks = {.connected = hook_connected, .failed = hook_failed};

static void test_input(struct conn *c)
{
	(void)c;
	input_calls++;
}

static const struct proto_ops test_proto = {.name = "test", .client_input = test_input};

static struct core core;
static int peer_fd;

static struct conn *make_client(void)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	memset(&core, 0, sizeof(core));
	core.loop = loop_new();
	ck_assert_ptr_nonnull(core.loop);
	conn_set_hooks(&test_hooks);
	struct conn *c = conn_new(&core, sv[0], false);
	c->proto = &test_proto;
	ck_assert(conn_watch(c, false));
	peer_fd = sv[1];
	failed_calls = input_calls = 0;
	return c;
}

static void cleanup(struct conn *c)
{
	conn_close_socket(c);
	conn_destroy(c);
	loop_free(core.loop);
	if (peer_fd >= 0)
		close(peer_fd);
}

START_TEST(test_read_reaches_protocol)
{
	struct conn *c = make_client();
	ck_assert_int_eq(write(peer_fd, "hello", 5), 5);
	loop_run_once(core.loop, 100 * USEC_PER_MSEC);
	ck_assert_int_eq(input_calls, 1);
	ck_assert_uint_eq(iobuf_unparsed(c->rbuf), 5);
	cleanup(c);
}
END_TEST

START_TEST(test_peer_close_fails_connection)
{
	struct conn *c = make_client();
	close(peer_fd);
	peer_fd = -1;
	loop_run_once(core.loop, 100 * USEC_PER_MSEC);
	ck_assert_int_eq(failed_calls, 1);
	cleanup(c);
}
END_TEST

/* A side paused by back-pressure still has to notice its peer hanging up, or epoll
 * wakes the loop for it on every pass without anything reading. */
START_TEST(test_paused_side_notices_hangup)
{
	struct conn *c = make_client();
	conn_pause_read(c, true);
	close(peer_fd);
	peer_fd = -1;
	for (int i = 0; i < 3 && !failed_calls; i++)
		loop_run_once(core.loop, 100 * USEC_PER_MSEC);
	ck_assert_int_eq(failed_calls, 1);
	ck_assert_int_eq(input_calls, 0);
	cleanup(c);
}
END_TEST

START_TEST(test_paused_side_is_not_read)
{
	struct conn *c = make_client();
	conn_pause_read(c, true);
	ck_assert_int_eq(write(peer_fd, "x", 1), 1);
	loop_run_once(core.loop, 20 * USEC_PER_MSEC);
	ck_assert_int_eq(input_calls, 0);
	conn_pause_read(c, false);
	loop_run_once(core.loop, 100 * USEC_PER_MSEC);
	ck_assert_int_eq(input_calls, 1);
	cleanup(c);
}
END_TEST

/* --- a fake transport over the same socketpair --- */

struct fake_io {
	int recv_calls, send_calls, close_calls, want_calls;
	size_t send_max;  /* bytes one send may move (0: any) */
	bool send_refuse; /* every other send fails with EAGAIN */
	bool recv_refuse; /* the first recv fails with EAGAIN */
	size_t recv_max;  /* bytes one recv hands out; the rest is held (pending) */
	char held[256];   /* read from the socket, not yet handed out */
	size_t held_len;
	int want;
};

static struct fake_io fake;

static ssize_t fake_recv(int fd, void *ctx, void *buf, size_t len)
{
	ck_assert_ptr_eq(ctx, &fake);
	if (fake.recv_calls++ == 0 && fake.recv_refuse) {
		errno = EAGAIN;
		return -1;
	}
	if (!fake.held_len) {
		ssize_t n = read(fd, fake.held, sizeof(fake.held));
		if (n <= 0)
			return n;
		fake.held_len = (size_t)n;
	}
	size_t n = fake.held_len < len ? fake.held_len : len;
	if (fake.recv_max && n > fake.recv_max)
		n = fake.recv_max;
	memcpy(buf, fake.held, n);
	memmove(fake.held, fake.held + n, fake.held_len - n);
	fake.held_len -= n;
	return (ssize_t)n;
}

static ssize_t fake_send(int fd, void *ctx, const void *buf, size_t len)
{
	ck_assert_ptr_eq(ctx, &fake);
	if (fake.send_refuse && fake.send_calls++ % 2 == 0) {
		errno = EAGAIN;
		return -1;
	}
	if (!fake.send_refuse)
		fake.send_calls++;
	if (fake.send_max && len > fake.send_max)
		len = fake.send_max;
	return write(fd, buf, len);
}

static void fake_shutdown(int fd, void *ctx)
{
	(void)ctx;
	shutdown(fd, SHUT_WR);
}

static void fake_close(int fd, void *ctx)
{
	ck_assert_ptr_eq(ctx, &fake);
	fake.close_calls++;
	close(fd);
}

static size_t fake_pending(int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	return fake.held_len;
}

static int fake_want(int fd, void *ctx)
{
	(void)fd;
	(void)ctx;
	fake.want_calls++;
	return fake.want;
}

static const struct conn_io fake_io = {
    .name = "fake",
    .recv = fake_recv,
    .send = fake_send,
    .shutdown = fake_shutdown,
    .close = fake_close,
    .pending = fake_pending,
    .want = fake_want,
};

static struct conn *make_fake_client(void)
{
	struct conn *c = make_client();
	memset(&fake, 0, sizeof(fake));
	conn_set_io(c, &fake_io, &fake);
	return c;
}

/* Reads what the peer got, waiting on the loop until len bytes have arrived. */
static void expect_peer_gets(const char *want, size_t len)
{
	char got[256] = {0};
	size_t have = 0;
	for (int i = 0; i < 50 && have < len; i++) {
		conn_flush_all();
		loop_run_once(core.loop, 20 * USEC_PER_MSEC);
		ssize_t n = recv(peer_fd, got + have, sizeof(got) - have, MSG_DONTWAIT);
		if (n > 0)
			have += (size_t)n;
	}
	ck_assert_uint_eq(have, len);
	ck_assert_mem_eq(got, want, len);
}

START_TEST(test_reads_go_through_transport)
{
	struct conn *c = make_fake_client();
	fake.recv_refuse = true;
	ck_assert_int_eq(write(peer_fd, "hello", 5), 5);
	loop_run_once(core.loop, 100 * USEC_PER_MSEC); /* refused: nothing read */
	ck_assert_int_eq(fake.recv_calls, 1);
	ck_assert_int_eq(input_calls, 0);
	loop_run_once(core.loop, 100 * USEC_PER_MSEC); /* still readable: read now */
	ck_assert_int_eq(fake.recv_calls, 2);
	ck_assert_int_eq(input_calls, 1);
	ck_assert_uint_eq(iobuf_unparsed(c->rbuf), 5);
	cleanup(c);
	ck_assert_int_eq(fake.close_calls, 1);
}
END_TEST

/* Short and refused writes: every byte still leaves, in order, through the table. */
START_TEST(test_writes_go_through_transport)
{
	struct conn *c = make_fake_client();
	fake.send_max = 3;
	fake.send_refuse = true;
	conn_send(c, "abcdefghij", 10);
	expect_peer_gets("abcdefghij", 10);
	/* 4 short writes of 3 bytes, each after a refusal */
	ck_assert_int_ge(fake.send_calls, 8);
	ck_assert_int_eq(fake.recv_calls, 0);
	cleanup(c);
}
END_TEST

/* Input the transport holds is invisible to epoll: the before-sleep hook reads it. */
START_TEST(test_pending_input_drained_before_sleep)
{
	struct conn *c = make_fake_client();
	fake.recv_max = 2;
	ck_assert_int_eq(write(peer_fd, "hello", 5), 5);
	loop_run_once(core.loop, 100 * USEC_PER_MSEC); /* one event: socket emptied */
	ck_assert_uint_eq(iobuf_unparsed(c->rbuf), 2);
	ck_assert_uint_eq(fake.held_len, 3);
	conn_flush_all(); /* the before-sleep hook, no socket event */
	ck_assert_uint_eq(iobuf_unparsed(c->rbuf), 5);
	ck_assert_uint_eq(fake.held_len, 0);
	ck_assert_int_eq(input_calls, 3);
	cleanup(c);
}
END_TEST

/* A side paused with input held reads it once it resumes. */
START_TEST(test_pending_input_read_on_resume)
{
	struct conn *c = make_fake_client();
	fake.recv_max = 2;
	ck_assert_int_eq(write(peer_fd, "hello", 5), 5);
	loop_run_once(core.loop, 100 * USEC_PER_MSEC);
	conn_pause_read(c, true);
	conn_flush_all();
	ck_assert_uint_eq(iobuf_unparsed(c->rbuf), 2);
	conn_pause_read(c, false);
	conn_flush_all();
	ck_assert_uint_eq(iobuf_unparsed(c->rbuf), 5);
	cleanup(c);
}
END_TEST

/* During a handshake the transport's own wish sets the interest mask. */
START_TEST(test_transport_want_sets_mask)
{
	struct conn *c = make_fake_client();
	fake.want = LOOP_WRITE;
	conn_pause_read(c, false);
	ck_assert_int_gt(fake.want_calls, 0);
	ck_assert_int_eq(loop_get_mask(core.loop, c->fd), LOOP_WRITE);
	fake.want = 0;
	conn_pause_read(c, false);
	ck_assert_int_eq(loop_get_mask(core.loop, c->fd), LOOP_READ);
	cleanup(c);
}
END_TEST

/* The plain transport is the system calls: EAGAIN when empty, EOF after shutdown,
 * nothing pending, no events of its own. */
START_TEST(test_plain_transport)
{
	const struct conn_io *io = &conn_io_plain;
	char buf[8];
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	errno = 0;
	ck_assert_int_eq(io->recv(sv[0], NULL, buf, sizeof(buf)), -1);
	ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
	ck_assert_int_eq(io->send(sv[1], NULL, "abc", 3), 3);
	ck_assert_uint_eq(io->pending(sv[0], NULL), 0);
	ck_assert_int_eq(io->want(sv[0], NULL), 0);
	ck_assert_int_eq(io->recv(sv[0], NULL, buf, sizeof(buf)), 3);
	ck_assert_mem_eq(buf, "abc", 3);
	io->shutdown(sv[1], NULL);
	ck_assert_int_eq(io->recv(sv[0], NULL, buf, sizeof(buf)), 0);
	io->close(sv[1], NULL);
	/* the peer is gone: a send fails with EPIPE instead of raising SIGPIPE */
	ck_assert_int_eq(io->send(sv[0], NULL, "x", 1), -1);
	ck_assert_int_eq(errno, EPIPE);
	io->close(sv[0], NULL);
}
END_TEST

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("io");
	tcase_add_test(tc, test_read_reaches_protocol);
	tcase_add_test(tc, test_peer_close_fails_connection);
	tcase_add_test(tc, test_paused_side_notices_hangup);
	tcase_add_test(tc, test_paused_side_is_not_read);
	suite_add_tcase(s, tc);
	tc = tcase_create("transport");
	tcase_add_test(tc, test_plain_transport);
	tcase_add_test(tc, test_reads_go_through_transport);
	tcase_add_test(tc, test_writes_go_through_transport);
	tcase_add_test(tc, test_pending_input_drained_before_sleep);
	tcase_add_test(tc, test_pending_input_read_on_resume);
	tcase_add_test(tc, test_transport_want_sets_mask);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(conn_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
