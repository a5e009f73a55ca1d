/*
 * loop: the event loop. Watches file descriptors for read/write readiness through
 * epoll, runs one-shot and repeating timers from a min-heap, calls a before-sleep
 * hook once per iteration, and frees objects handed to loop_defer_free() after all
 * events of the iteration have been dispatched (so a callback never sees an object
 * freed by an earlier callback of the same batch). It knows nothing else.
 */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#define LOOP_READ  0x1
#define LOOP_WRITE 0x2
#define LOOP_ERROR 0x4 /* reported only: EPOLLERR/EPOLLHUP */

struct loop;
struct loop_timer;

typedef void (*loop_fd_cb)(struct loop *l, int fd, int events, void *arg);
typedef void (*loop_timer_cb)(struct loop *l, struct loop_timer *t, void *arg);
typedef void (*loop_hook_cb)(struct loop *l, void *arg);

/* Embedded in its owner; zero-initialised means "not armed". */
struct loop_timer {
	usec_t when;
	usec_t interval; /* 0: one-shot */
	size_t heap_idx; /* 0: not in the heap (heap is 1-based) */
	loop_timer_cb cb;
	void *arg;
};

struct loop *loop_new(void) WARN_UNUSED;
void loop_free(struct loop *l);

/* Sets the interest mask (LOOP_READ|LOOP_WRITE). With 0 the fd stays registered and
 * quiet except for hang-ups and errors, which epoll always reports (as LOOP_ERROR). */
bool loop_watch(struct loop *l, int fd, int mask, loop_fd_cb cb, void *arg) WARN_UNUSED;
/* Changes the mask of a watched fd; cheap when unchanged. */
bool loop_set_mask(struct loop *l, int fd, int mask) WARN_UNUSED;
int loop_get_mask(struct loop *l, int fd);
/* Forgets the fd (call before close()). */
void loop_unwatch(struct loop *l, int fd);

void loop_timer_start(struct loop *l, struct loop_timer *t, usec_t after, usec_t interval,
                      loop_timer_cb cb, void *arg);
void loop_timer_stop(struct loop *l, struct loop_timer *t);
static inline bool loop_timer_armed(const struct loop_timer *t)
{
	return t->heap_idx != 0;
}

void loop_set_before_sleep(struct loop *l, loop_hook_cb cb, void *arg);
void loop_defer_free(struct loop *l, void (*fn)(void *), void *obj);
/* Runs the deferred frees now (at exit, outside any callback). */
void loop_run_deferred(struct loop *l);

/* Cached monotonic time of the current iteration. */
usec_t loop_now(const struct loop *l);
void loop_update_time(struct loop *l);

/* Runs one iteration (waits at most max_wait usec, or until the next timer). */
void loop_run_once(struct loop *l, usec_t max_wait);
void loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
