/*
 * loop: epoll-based dispatch. The fd table is indexed by descriptor and grows at run
 * time. Timers live in a binary min-heap keyed by expiry; each timer records its heap
 * slot so stopping one is O(log n). Deferred frees run after a whole batch of events,
 * which is what lets connection teardown happen inside any callback safely.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"

struct fd_slot {
	loop_fd_cb cb;
	void *arg;
	int mask;
	bool used;
};

struct deferred {
	void (*fn)(void *);
	void *obj;
};

struct loop {
	int epfd;
	struct fd_slot *fds;
	size_t n_fds;
	struct loop_timer **heap; /* 1-based */
	size_t heap_len, heap_cap;
	struct deferred *defer;
	size_t n_defer, cap_defer;
	loop_hook_cb before_sleep;
	void *before_sleep_arg;
	usec_t now;
	bool stop;
	struct epoll_event events[256];
};

struct loop *loop_new(void)
{
	struct loop *l = xcalloc(1, sizeof(*l));
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	l->heap_cap = 64;
	l->heap = xcalloc(l->heap_cap, sizeof(*l->heap));
	l->now = now_usec();
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->fds);
	free(l->heap);
	free(l->defer);
	free(l);
}

static struct fd_slot *slot_for(struct loop *l, int fd)
{
	if ((size_t)fd >= l->n_fds) {
		size_t n = l->n_fds ? l->n_fds : 64;
		while (n <= (size_t)fd)
			n *= 2;
		l->fds = xrealloc(l->fds, n * sizeof(*l->fds));
		memset(l->fds + l->n_fds, 0, (n - l->n_fds) * sizeof(*l->fds));
		l->n_fds = n;
	}
	return &l->fds[fd];
}

static uint32_t epoll_bits(int mask)
{
	return ((mask & LOOP_READ) ? EPOLLIN | EPOLLRDHUP : 0) |
	       ((mask & LOOP_WRITE) ? EPOLLOUT : 0);
}

bool loop_watch(struct loop *l, int fd, int mask, loop_fd_cb cb, void *arg)
{
	struct fd_slot *s = slot_for(l, fd);
	struct epoll_event ev = {.events = epoll_bits(mask), .data.fd = fd};
	int op = s->used ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(l->epfd, op, fd, &ev) < 0)
		return false;
	s->cb = cb;
	s->arg = arg;
	s->mask = mask;
	s->used = true;
	return true;
}

bool loop_set_mask(struct loop *l, int fd, int mask)
{
	struct fd_slot *s;
	if (fd < 0 || (size_t)fd >= l->n_fds || !l->fds[fd].used)
		return false;
	s = &l->fds[fd];
	if (s->mask == mask)
		return true;
	struct epoll_event ev = {.events = epoll_bits(mask), .data.fd = fd};
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return false;
	s->mask = mask;
	return true;
}

int loop_get_mask(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->n_fds || !l->fds[fd].used)
		return 0;
	return l->fds[fd].mask;
}

void loop_unwatch(struct loop *l, int fd)
{
	if (fd < 0 || (size_t)fd >= l->n_fds || !l->fds[fd].used)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&l->fds[fd], 0, sizeof(l->fds[fd]));
}

/* --- timers: binary min-heap --- */

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->heap_idx = i;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	while (i > 1 && l->heap[i / 2]->when > t->when) {
		heap_set(l, i, l->heap[i / 2]);
		i /= 2;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	for (;;) {
		size_t c = i * 2;
		if (c > l->heap_len)
			break;
		if (c + 1 <= l->heap_len && l->heap[c + 1]->when < l->heap[c]->when)
			c++;
		if (l->heap[c]->when >= t->when)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	size_t i = t->heap_idx;
	if (!i)
		return;
	struct loop_timer *last = l->heap[l->heap_len--];
	t->heap_idx = 0;
	if (last == t)
		return;
	heap_set(l, i, last);
	heap_up(l, i);
	heap_down(l, last->heap_idx);
}

void loop_timer_start(struct loop *l, struct loop_timer *t, usec_t after, usec_t interval,
                      loop_timer_cb cb, void *arg)
{
	loop_timer_stop(l, t);
	/* never due in the pass that arms it: a timer re-arming itself with 0 must not
	 * keep the loop from ever reaching epoll_wait */
	t->when = l->now + (after ? after : 1);
	t->interval = interval;
	t->cb = cb;
	t->arg = arg;
	if (l->heap_len + 1 >= l->heap_cap) {
		l->heap_cap *= 2;
		l->heap = xrealloc(l->heap, l->heap_cap * sizeof(*l->heap));
	}
	heap_set(l, ++l->heap_len, t);
	heap_up(l, l->heap_len);
}

static void run_timers(struct loop *l)
{
	while (l->heap_len && l->heap[1]->when <= l->now) {
		struct loop_timer *t = l->heap[1];
		loop_timer_stop(l, t);
		if (t->interval)
			loop_timer_start(l, t, t->interval, t->interval, t->cb, t->arg);
		t->cb(l, t, t->arg);
	}
}

/* --- the rest --- */

void loop_set_before_sleep(struct loop *l, loop_hook_cb cb, void *arg)
{
	l->before_sleep = cb;
	l->before_sleep_arg = arg;
}

void loop_defer_free(struct loop *l, void (*fn)(void *), void *obj)
{
	if (l->n_defer == l->cap_defer) {
		l->cap_defer = l->cap_defer ? l->cap_defer * 2 : 64;
		l->defer = xrealloc(l->defer, l->cap_defer * sizeof(*l->defer));
	}
	l->defer[l->n_defer++] = (struct deferred){fn, obj};
}

void loop_run_deferred(struct loop *l)
{
	/* a free may defer more frees; index, don't iterate a snapshot */
	for (size_t i = 0; i < l->n_defer; i++)
		l->defer[i].fn(l->defer[i].obj);
	l->n_defer = 0;
}

usec_t loop_now(const struct loop *l)
{
	return l->now;
}

void loop_update_time(struct loop *l)
{
	l->now = now_usec();
}

static int wait_ms(struct loop *l, usec_t max_wait)
{
	usec_t wait = max_wait;
	if (l->heap_len) {
		usec_t when = l->heap[1]->when;
		usec_t until = when > l->now ? when - l->now : 0;
		if (until < wait)
			wait = until;
	}
	if (wait > 3600 * USEC_PER_SEC)
		wait = 3600 * USEC_PER_SEC; /* keeps the millisecond count inside an int */
	/* round up so a timer is never woken for early and spun on */
	return (int)((wait + 999) / 1000);
}

static void dispatch(struct loop *l, const struct epoll_event *ev)
{
	int fd = ev->data.fd;
	int events = 0;
	if ((size_t)fd >= l->n_fds || !l->fds[fd].used)
		return;
	if (ev->events & (EPOLLIN | EPOLLRDHUP))
		events |= LOOP_READ;
	if (ev->events & EPOLLOUT)
		events |= LOOP_WRITE;
	if (ev->events & (EPOLLERR | EPOLLHUP))
		events |= LOOP_ERROR | LOOP_READ;
	l->fds[fd].cb(l, fd, events, l->fds[fd].arg);
}

void loop_run_once(struct loop *l, usec_t max_wait)
{
	int n;
	if (l->before_sleep)
		l->before_sleep(l, l->before_sleep_arg);
	loop_run_deferred(l);
	n = epoll_wait(l->epfd, l->events, (int)ARRAY_SIZE(l->events), wait_ms(l, max_wait));
	loop_update_time(l);
	if (n < 0 && errno != EINTR)
		log_error("epoll_wait: %s", strerror(errno));
	for (int i = 0; i < n; i++)
		dispatch(l, &l->events[i]);
	run_timers(l);
	loop_run_deferred(l);
}

void loop_run(struct loop *l)
{
	l->stop = false;
	while (!l->stop)
		loop_run_once(l, 60 * USEC_PER_SEC);
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}
