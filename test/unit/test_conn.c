/*
 * Unit tests for conn: socket I/O and back-pressure, over socketpairs with a real loop
 * and test hooks in place of the pool's.
 */
#include <check.h>
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

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("io");
	tcase_add_test(tc, test_read_reaches_protocol);
	tcase_add_test(tc, test_peer_close_fails_connection);
	tcase_add_test(tc, test_paused_side_notices_hangup);
	tcase_add_test(tc, test_paused_side_is_not_read);
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
