/*
 * Unit tests for loop: timers (one-shot, repeating, expiry order through the heap,
 * stop and restart, also from inside callbacks), fd watches on pipes, deferred frees
 * and the before-sleep hook. Timeouts are a few milliseconds; the tests only assert
 * what fired and in which order, never how long anything took. Where several timers
 * must expire in the same iteration the test sleeps past all of them before calling
 * loop_run_once, since the loop's clock is read after its wait.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

#define MS        USEC_PER_MSEC
#define MAX_ITERS 2000 /* bound on loop_run_once calls while waiting for something */

static struct loop *new_loop(void)
{
	struct loop *l = loop_new();
	ck_assert_ptr_nonnull(l);
	return l;
}

/* Runs the loop until *counter reaches target; false if it never does. */
static bool run_until(struct loop *l, const int *counter, int target)
{
	for (int i = 0; i < MAX_ITERS && *counter < target; i++)
		loop_run_once(l, 20 * MS);
	return *counter >= target;
}

static void run_iters(struct loop *l, int n, usec_t max_wait)
{
	for (int i = 0; i < n; i++)
		loop_run_once(l, max_wait);
}

static void make_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void write_byte(int fd)
{
	ck_assert_int_eq(write(fd, "x", 1), 1);
}

static void drain(int fd)
{
	char buf[4096];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* --- timers --- */

struct tstate {
	int count;
	struct loop_timer *seen_timer;
	void *seen_arg;
};

static void count_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	struct tstate *s = arg;
	s->count++;
	s->seen_timer = t;
	s->seen_arg = arg;
}

START_TEST(test_timer_one_shot)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	ck_assert(!loop_timer_armed(&t));
	loop_timer_start(l, &t, 2 * MS, 0, count_cb, &s);
	ck_assert(loop_timer_armed(&t));
	ck_assert(run_until(l, &s.count, 1));
	ck_assert_int_eq(s.count, 1);
	ck_assert_ptr_eq(s.seen_timer, &t);
	ck_assert_ptr_eq(s.seen_arg, &s);
	ck_assert(!loop_timer_armed(&t));
	run_iters(l, 5, 3 * MS);
	ck_assert_int_eq(s.count, 1);
	/* a stopped one-shot can be started again */
	loop_timer_start(l, &t, 0, 0, count_cb, &s);
	ck_assert(run_until(l, &s.count, 2));
	run_iters(l, 3, 2 * MS);
	ck_assert_int_eq(s.count, 2);
	loop_free(l);
}
END_TEST

START_TEST(test_timer_not_yet)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	loop_timer_start(l, &t, 60 * USEC_PER_SEC, 0, count_cb, &s);
	run_iters(l, 3, 1 * MS);
	ck_assert_int_eq(s.count, 0);
	ck_assert(loop_timer_armed(&t));
	loop_timer_stop(l, &t);
	ck_assert(!loop_timer_armed(&t));
	loop_timer_stop(l, &t); /* stopping twice is harmless */
	loop_free(l);
}
END_TEST

START_TEST(test_timer_repeating)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	loop_timer_start(l, &t, 1 * MS, 1 * MS, count_cb, &s);
	ck_assert(run_until(l, &s.count, 5));
	ck_assert(loop_timer_armed(&t));
	ck_assert_uint_eq(t.interval, 1 * MS);
	int n = s.count;
	loop_timer_stop(l, &t);
	run_iters(l, 5, 2 * MS);
	ck_assert_int_eq(s.count, n);
	loop_free(l);
}
END_TEST

/* Each expiry of a repeating timer fires it once, even if the loop woke up late. */
START_TEST(test_timer_repeating_once_per_iteration)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	loop_timer_start(l, &t, 1 * MS, 1 * MS, count_cb, &s);
	usleep(20 * 1000);
	loop_run_once(l, 0);
	ck_assert_int_eq(s.count, 1);
	loop_timer_stop(l, &t);
	loop_free(l);
}
END_TEST

static void stop_self_at_3(struct loop *l, struct loop_timer *t, void *arg)
{
	struct tstate *s = arg;
	if (++s->count == 3)
		loop_timer_stop(l, t);
}

START_TEST(test_timer_repeating_stops_itself)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	loop_timer_start(l, &t, 1 * MS, 1 * MS, stop_self_at_3, &s);
	ck_assert(run_until(l, &s.count, 3));
	ck_assert(!loop_timer_armed(&t));
	run_iters(l, 5, 3 * MS);
	ck_assert_int_eq(s.count, 3);
	loop_free(l);
}
END_TEST

/* Fire order recorder: every callback appends its timer's index. */
#define N_ORDER 300

struct order {
	struct loop_timer t[N_ORDER];
	usec_t after[N_ORDER];
	bool stopped[N_ORDER];
	int fired[N_ORDER];
	int seq[N_ORDER];
	int n_seq;
};

static struct order *ord;

static void order_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	int i = (int)(intptr_t)arg;
	ck_assert_ptr_eq(t, &ord->t[i]);
	ord->fired[i]++;
	ck_assert_int_lt(ord->n_seq, N_ORDER);
	ord->seq[ord->n_seq++] = i;
}

/*
 * Many timers with random delays fire in order of expiry; _i selects the seed and,
 * when odd, stops a third of them (from everywhere in the heap) before they fire.
 */
START_TEST(test_timer_order)
{
	struct loop *l = new_loop();
	ord = calloc(1, sizeof(*ord));
	unsigned seed = 1000u + (unsigned)_i;
	int expected = 0;
	for (int i = 0; i < N_ORDER; i++) {
		seed = seed * 1103515245u + 12345u;
		ord->after[i] = (seed >> 8) % (30 * MS);
		if (i % 17 == 0)
			ord->after[i] = ord->after[i / 2]; /* some equal expiries */
		loop_timer_start(l, &ord->t[i], ord->after[i], 0, order_cb, (void *)(intptr_t)i);
	}
	if (_i % 2) {
		for (int i = 0; i < N_ORDER; i += 3) {
			loop_timer_stop(l, &ord->t[i]);
			ord->stopped[i] = true;
		}
	}
	for (int i = 0; i < N_ORDER; i++)
		expected += !ord->stopped[i];
	ck_assert(run_until(l, &ord->n_seq, expected));
	run_iters(l, 3, 1 * MS);
	ck_assert_int_eq(ord->n_seq, expected);
	for (int i = 0; i < N_ORDER; i++) {
		ck_assert_int_eq(ord->fired[i], ord->stopped[i] ? 0 : 1);
		ck_assert(!loop_timer_armed(&ord->t[i]));
	}
	/* all were started at the same loop time, so expiry order is order of delay */
	for (int k = 1; k < ord->n_seq; k++)
		ck_assert_msg(ord->after[ord->seq[k - 1]] <= ord->after[ord->seq[k]],
		              "timer %d (after %llu) fired before timer %d (after %llu)",
		              ord->seq[k - 1], (unsigned long long)ord->after[ord->seq[k - 1]],
		              ord->seq[k], (unsigned long long)ord->after[ord->seq[k]]);
	free(ord);
	ord = NULL;
	loop_free(l);
}
END_TEST

START_TEST(test_timer_stop_top)
{
	struct loop *l = new_loop();
	struct loop_timer a = {0}, b = {0}, c = {0};
	struct tstate sa = {0}, sb = {0}, sc = {0};
	loop_timer_start(l, &a, 1 * MS, 0, count_cb, &sa);
	loop_timer_start(l, &b, 3 * MS, 0, count_cb, &sb);
	loop_timer_start(l, &c, 2 * MS, 0, count_cb, &sc);
	loop_timer_stop(l, &a); /* the earliest, at the top of the heap */
	ck_assert(!loop_timer_armed(&a));
	ck_assert(loop_timer_armed(&b));
	ck_assert(loop_timer_armed(&c));
	ck_assert(run_until(l, &sb.count, 1));
	ck_assert_int_eq(sa.count, 0);
	ck_assert_int_eq(sc.count, 1);
	loop_free(l);
}
END_TEST

/* Timers that all expire in one iteration; A stops two of the others from its callback. */
struct batch {
	struct loop_timer t[5];
	int seq[8];
	int n_seq;
	struct loop *l;
};

static void batch_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	struct batch *b = arg;
	int i = (int)(t - b->t);
	b->seq[b->n_seq++] = i;
	if (i == 0) {
		loop_timer_stop(l, &b->t[1]); /* now at the top of the heap */
		loop_timer_stop(l, &b->t[3]); /* deeper in it */
	}
}

START_TEST(test_timer_stop_from_callback)
{
	struct loop *l = new_loop();
	struct batch b = {0};
	for (int i = 0; i < 5; i++)
		loop_timer_start(l, &b.t[i], (usec_t)i * 1000, 0, batch_cb, &b);
	usleep(10 * 1000); /* past every expiry: one run_timers pass sees them all */
	loop_run_once(l, 0);
	ck_assert_int_eq(b.n_seq, 3);
	ck_assert_int_eq(b.seq[0], 0);
	ck_assert_int_eq(b.seq[1], 2);
	ck_assert_int_eq(b.seq[2], 4);
	run_iters(l, 3, 1 * MS);
	ck_assert_int_eq(b.n_seq, 3);
	for (int i = 0; i < 5; i++)
		ck_assert(!loop_timer_armed(&b.t[i]));
	loop_free(l);
}
END_TEST

static void seq_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	struct batch *b = arg;
	b->seq[b->n_seq++] = (int)(t - b->t);
}

/* Restarting an armed timer moves it (later and earlier); it fires once, at its new place. */
START_TEST(test_timer_restart_moves)
{
	struct loop *l = new_loop();
	struct batch b = {0};
	loop_timer_start(l, &b.t[0], 2 * MS, 0, seq_cb, &b);
	loop_timer_start(l, &b.t[1], 4 * MS, 0, seq_cb, &b);
	loop_timer_start(l, &b.t[2], 8 * MS, 0, seq_cb, &b);
	loop_timer_start(l, &b.t[3], 6 * MS, 0, seq_cb, &b);
	loop_timer_start(l, &b.t[0], 7 * MS, 0, seq_cb, &b); /* the top moves back */
	loop_timer_start(l, &b.t[2], 1 * MS, 0, seq_cb, &b); /* the last moves to the front */
	for (int i = 0; i < 4; i++)
		ck_assert(loop_timer_armed(&b.t[i]));
	usleep(15 * 1000); /* past every expiry */
	loop_run_once(l, 0);
	ck_assert_int_eq(b.n_seq, 4);
	ck_assert_int_eq(b.seq[0], 2);
	ck_assert_int_eq(b.seq[1], 1);
	ck_assert_int_eq(b.seq[2], 3);
	ck_assert_int_eq(b.seq[3], 0);
	run_iters(l, 3, 1 * MS);
	ck_assert_int_eq(b.n_seq, 4); /* nothing fired twice from a stale heap slot */
	for (int i = 0; i < 4; i++)
		ck_assert(!loop_timer_armed(&b.t[i]));
	loop_free(l);
}
END_TEST

/* Restart with a new callback and argument: only the new ones are used. */
START_TEST(test_timer_restart_replaces_callback)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate first = {0}, second = {0};
	loop_timer_start(l, &t, 1 * MS, 1 * MS, stop_self_at_3, &first);
	loop_timer_start(l, &t, 1 * MS, 0, count_cb, &second);
	ck_assert(run_until(l, &second.count, 1));
	run_iters(l, 3, 2 * MS);
	ck_assert_int_eq(first.count, 0);
	ck_assert_int_eq(second.count, 1);
	ck_assert(!loop_timer_armed(&t)); /* the interval was replaced too */
	loop_free(l);
}
END_TEST

static void rearm_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	struct tstate *s = arg;
	if (++s->count < 4)
		loop_timer_start(l, t, 1 * MS, 0, rearm_cb, s);
}

START_TEST(test_timer_rearm_from_own_callback)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	loop_timer_start(l, &t, 1 * MS, 0, rearm_cb, &s);
	ck_assert(run_until(l, &s.count, 4));
	run_iters(l, 3, 2 * MS);
	ck_assert_int_eq(s.count, 4);
	ck_assert(!loop_timer_armed(&t));
	loop_free(l);
}
END_TEST

static void stop_loop_at_3(struct loop *l, struct loop_timer *t, void *arg)
{
	struct tstate *s = arg;
	if (++s->count == 3)
		loop_stop(l);
}

START_TEST(test_loop_run_until_stop)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	struct tstate s = {0};
	loop_timer_start(l, &t, 1 * MS, 1 * MS, stop_loop_at_3, &s);
	loop_run(l);
	ck_assert_int_eq(s.count, 3);
	loop_timer_stop(l, &t);
	loop_free(l);
}
END_TEST

START_TEST(test_loop_now_advances)
{
	struct loop *l = new_loop();
	usec_t t0 = loop_now(l);
	ck_assert_uint_gt(t0, 0);
	usleep(2000);
	ck_assert_uint_eq(loop_now(l), t0); /* cached until the loop reads the clock */
	loop_run_once(l, 0);
	usec_t t1 = loop_now(l);
	ck_assert_uint_gt(t1, t0);
	usleep(2000);
	loop_update_time(l);
	ck_assert_uint_gt(loop_now(l), t1);
	loop_free(l);
}
END_TEST

/* --- fd watches --- */

struct fdstate {
	int count;
	int fd;
	int events;
	void *arg;
	bool drain;
};

static void fd_cb(struct loop *l, int fd, int events, void *arg)
{
	struct fdstate *s = arg;
	s->count++;
	s->fd = fd;
	s->events = events;
	s->arg = arg;
	if (s->drain)
		drain(fd);
}

START_TEST(test_fd_read)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate s = {.drain = true};
	make_pipe(p);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &s));
	ck_assert_int_eq(loop_get_mask(l, p[0]), LOOP_READ);
	loop_run_once(l, 0);
	ck_assert_int_eq(s.count, 0); /* nothing to read yet */
	write_byte(p[1]);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 1);
	ck_assert_int_eq(s.fd, p[0]);
	ck_assert_ptr_eq(s.arg, &s);
	ck_assert(s.events & LOOP_READ);
	ck_assert(!(s.events & LOOP_WRITE));
	ck_assert(!(s.events & LOOP_ERROR));
	loop_run_once(l, 2 * MS);
	ck_assert_int_eq(s.count, 1); /* drained: quiet again */
	write_byte(p[1]);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 2);
	loop_unwatch(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

START_TEST(test_fd_write)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate s = {0};
	make_pipe(p);
	ck_assert(loop_watch(l, p[1], LOOP_WRITE, fd_cb, &s));
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 1);
	ck_assert_int_eq(s.fd, p[1]);
	ck_assert(s.events & LOOP_WRITE);
	ck_assert(!(s.events & LOOP_READ));
	/* fill the pipe: no longer writable */
	char buf[4096];
	memset(buf, 'w', sizeof(buf));
	while (write(p[1], buf, sizeof(buf)) > 0)
		;
	s.count = 0;
	loop_run_once(l, 2 * MS);
	ck_assert_int_eq(s.count, 0);
	drain(p[0]);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 1);
	ck_assert(s.events & LOOP_WRITE);
	loop_unwatch(l, p[1]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

START_TEST(test_fd_set_mask)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate s = {0}; /* does not drain: the fd stays readable */
	make_pipe(p);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &s));
	write_byte(p[1]);
	ck_assert(loop_set_mask(l, p[0], 0));
	ck_assert_int_eq(loop_get_mask(l, p[0]), 0);
	run_iters(l, 3, 2 * MS);
	ck_assert_int_eq(s.count, 0);
	ck_assert(loop_set_mask(l, p[0], LOOP_READ));
	ck_assert(loop_set_mask(l, p[0], LOOP_READ)); /* unchanged: still fine */
	ck_assert_int_eq(loop_get_mask(l, p[0]), LOOP_READ);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 1);
	ck_assert(s.events & LOOP_READ);
	/* level-triggered: still readable, reported again */
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 2);
	/* read and write interest on the write end: only writable is reported */
	struct fdstate w = {0};
	ck_assert(loop_watch(l, p[1], 0, fd_cb, &w));
	run_iters(l, 2, 2 * MS);
	ck_assert_int_eq(w.count, 0);
	ck_assert(loop_set_mask(l, p[1], LOOP_READ | LOOP_WRITE));
	ck_assert_int_eq(loop_get_mask(l, p[1]), LOOP_READ | LOOP_WRITE);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(w.count, 1);
	ck_assert_int_eq(w.events & (LOOP_READ | LOOP_WRITE), LOOP_WRITE);
	/* unknown descriptors */
	ck_assert(!loop_set_mask(l, -1, LOOP_READ));
	ck_assert(!loop_set_mask(l, 100000, LOOP_READ));
	ck_assert_int_eq(loop_get_mask(l, -1), 0);
	ck_assert_int_eq(loop_get_mask(l, 100000), 0);
	loop_unwatch(l, p[0]);
	loop_unwatch(l, p[1]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

START_TEST(test_fd_unwatch)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate s = {0};
	make_pipe(p);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &s));
	write_byte(p[1]);
	loop_unwatch(l, p[0]);
	ck_assert_int_eq(loop_get_mask(l, p[0]), 0);
	ck_assert(!loop_set_mask(l, p[0], LOOP_READ));
	run_iters(l, 3, 2 * MS);
	ck_assert_int_eq(s.count, 0);
	loop_unwatch(l, p[0]);  /* twice: harmless */
	loop_unwatch(l, -1);    /* never watched: harmless */
	loop_unwatch(l, 99999); /* beyond the table: harmless */
	/* watching again after unwatch works */
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &s));
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 1);
	loop_unwatch(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

/* Watching a watched fd again replaces its callback, argument and mask. */
START_TEST(test_fd_watch_replaces)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate a = {0}, b = {0};
	make_pipe(p);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &a));
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &b));
	write_byte(p[1]);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(a.count, 0);
	ck_assert_int_eq(b.count, 1);
	ck_assert_ptr_eq(b.arg, &b);
	ck_assert(loop_watch(l, p[0], 0, fd_cb, &a));
	ck_assert_int_eq(loop_get_mask(l, p[0]), 0);
	run_iters(l, 2, 2 * MS);
	ck_assert_int_eq(a.count, 0);
	ck_assert_int_eq(b.count, 1);
	loop_unwatch(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

/* Closing the write end: the read end reports readable (EOF) and the hang-up. */
START_TEST(test_fd_hangup)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate s = {0};
	make_pipe(p);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &s));
	close(p[1]);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(s.count, 1);
	ck_assert(s.events & LOOP_READ);
	ck_assert(s.events & LOOP_ERROR);
	char c;
	ck_assert_int_eq(read(p[0], &c, 1), 0);
	loop_unwatch(l, p[0]);
	close(p[0]);
	loop_free(l);
}
END_TEST

/* A watched fd numbered past the initial table: the table grows, earlier slots survive. */
START_TEST(test_fd_high_number)
{
	struct loop *l = new_loop();
	int p[2], q[2];
	struct fdstate a = {.drain = true}, b = {.drain = true};
	make_pipe(p);
	make_pipe(q);
	int high = fcntl(q[0], F_DUPFD_CLOEXEC, 300);
	ck_assert_int_ge(high, 300);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &a));
	ck_assert(loop_watch(l, high, LOOP_READ, fd_cb, &b));
	write_byte(p[1]);
	write_byte(q[1]);
	loop_run_once(l, USEC_PER_SEC);
	if (a.count + b.count < 2)
		loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(a.count, 1);
	ck_assert_int_eq(a.fd, p[0]);
	ck_assert_int_eq(b.count, 1);
	ck_assert_int_eq(b.fd, high);
	ck_assert_int_eq(loop_get_mask(l, p[0]), LOOP_READ);
	ck_assert_int_eq(loop_get_mask(l, high), LOOP_READ);
	loop_unwatch(l, p[0]);
	loop_unwatch(l, high);
	close(high);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	loop_free(l);
}
END_TEST

/* Two ready fds whose callbacks unwatch each other: the second event is not dispatched. */
struct pair {
	int fd[2];
	int count[2];
};

static void unwatch_other_cb(struct loop *l, int fd, int events, void *arg)
{
	struct pair *pr = arg;
	int me = fd == pr->fd[0] ? 0 : 1;
	pr->count[me]++;
	loop_unwatch(l, pr->fd[1 - me]);
}

START_TEST(test_fd_unwatch_in_batch)
{
	struct loop *l = new_loop();
	int p[2], q[2];
	struct pair pr = {0};
	make_pipe(p);
	make_pipe(q);
	pr.fd[0] = p[0];
	pr.fd[1] = q[0];
	ck_assert(loop_watch(l, p[0], LOOP_READ, unwatch_other_cb, &pr));
	ck_assert(loop_watch(l, q[0], LOOP_READ, unwatch_other_cb, &pr));
	write_byte(p[1]);
	write_byte(q[1]);
	loop_run_once(l, USEC_PER_SEC);
	ck_assert_int_eq(pr.count[0] + pr.count[1], 1);
	loop_unwatch(l, p[0]);
	loop_unwatch(l, q[0]);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
	loop_free(l);
}
END_TEST

/* --- deferred frees --- */

#define OBJ_MAGIC 0x5151cee5u

struct obj {
	unsigned magic;
	int *freed;
	struct loop *l;
	int chain; /* frees still to defer from this object's own free */
};

static int n_freed;

static struct obj *obj_new(struct loop *l, int chain)
{
	struct obj *o = calloc(1, sizeof(*o));
	o->magic = OBJ_MAGIC;
	o->freed = &n_freed;
	o->l = l;
	o->chain = chain;
	return o;
}

static void obj_free(void *p)
{
	struct obj *o = p;
	ck_assert_uint_eq(o->magic, OBJ_MAGIC);
	if (o->chain)
		loop_defer_free(o->l, obj_free, obj_new(o->l, o->chain - 1));
	(*o->freed)++;
	o->magic = 0;
	free(o);
}

struct defer_state {
	struct obj *obj;
	int fd_calls, timer_calls;
	bool seen_valid;
};

/* The fd callback tears the object down; the timer in the same iteration still uses it. */
static void defer_fd_cb(struct loop *l, int fd, int events, void *arg)
{
	struct defer_state *s = arg;
	s->fd_calls++;
	drain(fd);
	loop_defer_free(l, obj_free, s->obj);
	ck_assert_uint_eq(s->obj->magic, OBJ_MAGIC); /* still there right after */
	ck_assert_int_eq(n_freed, 0);
}

static void defer_timer_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	struct defer_state *s = arg;
	s->timer_calls++;
	s->seen_valid = s->obj->magic == OBJ_MAGIC && n_freed == 0;
}

START_TEST(test_defer_free_after_batch)
{
	struct loop *l = new_loop();
	int p[2];
	struct defer_state s = {0};
	struct loop_timer t = {0};
	n_freed = 0;
	make_pipe(p);
	s.obj = obj_new(l, 0);
	ck_assert(loop_watch(l, p[0], LOOP_READ, defer_fd_cb, &s));
	write_byte(p[1]);
	loop_timer_start(l, &t, 0, 0, defer_timer_cb, &s); /* due in this iteration */
	usleep(1000);
	loop_run_once(l, 0);
	ck_assert_int_eq(s.fd_calls, 1);
	ck_assert_int_eq(s.timer_calls, 1);
	ck_assert(s.seen_valid);
	ck_assert_int_eq(n_freed, 1); /* freed by the end of loop_run_once */
	loop_unwatch(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

/* Two timers in one batch: the first defers, the second still sees the object. */
static void defer_from_timer_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	struct defer_state *s = arg;
	s->timer_calls++;
	loop_defer_free(l, obj_free, s->obj);
	ck_assert_int_eq(n_freed, 0);
}

START_TEST(test_defer_free_between_timers)
{
	struct loop *l = new_loop();
	struct defer_state s = {0};
	struct loop_timer t1 = {0}, t2 = {0};
	n_freed = 0;
	s.obj = obj_new(l, 0);
	loop_timer_start(l, &t1, 0, 0, defer_from_timer_cb, &s);
	loop_timer_start(l, &t2, 1000, 0, defer_timer_cb, &s);
	usleep(3000);
	loop_run_once(l, 0);
	ck_assert_int_eq(s.timer_calls, 2);
	ck_assert(s.seen_valid);
	ck_assert_int_eq(n_freed, 1);
	loop_free(l);
}
END_TEST

/* Frees that defer more frees, past the first array size: all done in the same call. */
static void defer_many_cb(struct loop *l, struct loop_timer *t, void *arg)
{
	for (int i = 0; i < 100; i++)
		loop_defer_free(l, obj_free, obj_new(l, i == 50 ? 100 : 0));
	ck_assert_int_eq(n_freed, 0);
}

START_TEST(test_defer_free_chain)
{
	struct loop *l = new_loop();
	struct loop_timer t = {0};
	n_freed = 0;
	loop_timer_start(l, &t, 0, 0, defer_many_cb, NULL);
	usleep(1000);
	loop_run_once(l, 0);
	ck_assert_int_eq(n_freed, 100 + 100);
	loop_run_once(l, 0);
	ck_assert_int_eq(n_freed, 200);
	loop_free(l);
}
END_TEST

/* Deferred outside any callback: done by the next loop_run_once. */
START_TEST(test_defer_free_outside_loop)
{
	struct loop *l = new_loop();
	n_freed = 0;
	loop_defer_free(l, obj_free, obj_new(l, 0));
	loop_defer_free(l, obj_free, obj_new(l, 1));
	ck_assert_int_eq(n_freed, 0);
	loop_run_once(l, 0);
	ck_assert_int_eq(n_freed, 3);
	loop_free(l);
}
END_TEST

/* loop_run_deferred (used at exit) runs what is pending, chained frees included. */
START_TEST(test_defer_run_deferred_now)
{
	struct loop *l = new_loop();
	n_freed = 0;
	loop_run_deferred(l); /* nothing pending: harmless */
	loop_defer_free(l, obj_free, obj_new(l, 2));
	ck_assert_int_eq(n_freed, 0);
	loop_run_deferred(l);
	ck_assert_int_eq(n_freed, 3);
	loop_run_deferred(l); /* and nothing runs twice */
	ck_assert_int_eq(n_freed, 3);
	loop_free(l);
}
END_TEST

/* --- before-sleep hook --- */

struct hook_state {
	int calls;
	void *arg;
	int write_fd;
	int read_calls_at_hook;
	struct fdstate *reader;
};

static void hook_cb(struct loop *l, void *arg)
{
	struct hook_state *h = arg;
	h->calls++;
	h->arg = arg;
	if (h->reader)
		h->read_calls_at_hook = h->reader->count;
	if (h->write_fd >= 0 && h->calls == 1)
		write_byte(h->write_fd);
}

START_TEST(test_before_sleep_once_per_iteration)
{
	struct loop *l = new_loop();
	struct hook_state h = {.write_fd = -1};
	struct loop_timer t = {0};
	struct tstate s = {0};
	int p[2];
	struct fdstate r = {0}; /* never drained: readable every iteration */
	make_pipe(p);
	write_byte(p[1]);
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &r));
	loop_timer_start(l, &t, 0, 1, count_cb, &s); /* due every iteration */
	loop_set_before_sleep(l, hook_cb, &h);
	for (int i = 1; i <= 5; i++) {
		loop_run_once(l, 0);
		ck_assert_int_eq(h.calls, i);
		ck_assert_int_eq(r.count, i); /* several events, still one hook call */
	}
	ck_assert_ptr_eq(h.arg, &h);
	ck_assert_int_ge(s.count, 1);
	loop_set_before_sleep(l, NULL, NULL);
	run_iters(l, 3, 0);
	ck_assert_int_eq(h.calls, 5);
	loop_timer_stop(l, &t);
	loop_unwatch(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

/*
 * The hook runs before the wait: a byte it writes is seen by the same iteration, which
 * therefore does not sleep out its (long) maximum wait.
 */
START_TEST(test_before_sleep_runs_before_wait)
{
	struct loop *l = new_loop();
	int p[2];
	struct fdstate r = {.drain = true};
	make_pipe(p);
	struct hook_state h = {.write_fd = p[1], .reader = &r};
	ck_assert(loop_watch(l, p[0], LOOP_READ, fd_cb, &r));
	loop_set_before_sleep(l, hook_cb, &h);
	loop_run_once(l, 5 * USEC_PER_SEC);
	ck_assert_int_eq(h.calls, 1);
	ck_assert_int_eq(h.read_calls_at_hook, 0);
	ck_assert_int_eq(r.count, 1);
	loop_run_once(l, 0);
	ck_assert_int_eq(h.calls, 2);
	ck_assert_int_eq(h.read_calls_at_hook, 1);
	loop_unwatch(l, p[0]);
	close(p[0]);
	close(p[1]);
	loop_free(l);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = tcase_create("timers");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_timer_one_shot);
	tcase_add_test(tc, test_timer_not_yet);
	tcase_add_test(tc, test_timer_repeating);
	tcase_add_test(tc, test_timer_repeating_once_per_iteration);
	tcase_add_test(tc, test_timer_repeating_stops_itself);
	tcase_add_loop_test(tc, test_timer_order, 0, 6);
	tcase_add_test(tc, test_timer_stop_top);
	tcase_add_test(tc, test_timer_stop_from_callback);
	tcase_add_test(tc, test_timer_restart_moves);
	tcase_add_test(tc, test_timer_restart_replaces_callback);
	tcase_add_test(tc, test_timer_rearm_from_own_callback);
	tcase_add_test(tc, test_loop_run_until_stop);
	tcase_add_test(tc, test_loop_now_advances);
	suite_add_tcase(s, tc);

	TCase *tc2 = tcase_create("fds");
	tcase_set_timeout(tc2, 30);
	tcase_add_test(tc2, test_fd_read);
	tcase_add_test(tc2, test_fd_write);
	tcase_add_test(tc2, test_fd_set_mask);
	tcase_add_test(tc2, test_fd_unwatch);
	tcase_add_test(tc2, test_fd_watch_replaces);
	tcase_add_test(tc2, test_fd_hangup);
	tcase_add_test(tc2, test_fd_high_number);
	tcase_add_test(tc2, test_fd_unwatch_in_batch);
	suite_add_tcase(s, tc2);

	TCase *tc3 = tcase_create("defer_and_hooks");
	tcase_set_timeout(tc3, 30);
	tcase_add_test(tc3, test_defer_free_after_batch);
	tcase_add_test(tc3, test_defer_free_between_timers);
	tcase_add_test(tc3, test_defer_free_chain);
	tcase_add_test(tc3, test_defer_free_outside_loop);
	tcase_add_test(tc3, test_defer_run_deferred_now);
	tcase_add_test(tc3, test_before_sleep_once_per_iteration);
	tcase_add_test(tc3, test_before_sleep_runs_before_wait);
	suite_add_tcase(s, tc3);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
