/*
 * Unit tests for iobuf: the three cursors (sent <= done <= recv <= size) and what each
 * operation does to them and to the bytes, growth, and the free list of default-size
 * buffers. Every test returns its buffers, and the fixture checks that the allocation
 * count is back where it started, so a leak in the free-list bookkeeping shows.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iobuf.h"

#define DEFAULT_SIZE 8192u /* iobuf.c's built-in default */

static size_t base_allocated;

static void setup(void)
{
	size_t free_listed;
	iobuf_set_default_size(DEFAULT_SIZE);
	iobuf_release_free_list();
	iobuf_stats(&base_allocated, &free_listed);
	ck_assert_uint_eq(free_listed, 0);
}

static void teardown(void)
{
	size_t allocated, free_listed;
	iobuf_release_free_list();
	iobuf_stats(&allocated, &free_listed);
	ck_assert_uint_eq(free_listed, 0);
	ck_assert_uint_eq(allocated, base_allocated);
	iobuf_set_default_size(DEFAULT_SIZE);
}

/* The invariant, checked both through iobuf_valid and independently of it. */
#define CHECK_INV(b)                                                                               \
	do {                                                                                       \
		ck_assert_uint_le((b)->sent, (b)->done);                                           \
		ck_assert_uint_le((b)->done, (b)->recv);                                           \
		ck_assert_uint_le((b)->recv, (b)->size);                                           \
		ck_assert(iobuf_valid(b));                                                         \
	} while (0)

/* Simulates a socket read of n bytes landing at recv. */
static void fake_recv(struct iobuf *b, const void *data, uint32_t n)
{
	ck_assert_uint_ge(iobuf_free_space(b), n);
	memcpy(b->data + b->recv, data, n);
	b->recv += n;
}

/* Simulates the writer sending n bytes. */
static void fake_send(struct iobuf *b, uint32_t n)
{
	ck_assert_uint_ge(iobuf_unsent(b), n);
	b->sent += n;
}

static void assert_pending(struct iobuf *b, const char *want)
{
	size_t n = strlen(want);
	ck_assert_uint_eq(iobuf_unsent(b), n);
	ck_assert_msg(memcmp(b->data + b->sent, want, n) == 0, "pending is \"%.*s\", want \"%s\"",
	              (int)n, (const char *)b->data + b->sent, want);
}

static void assert_unparsed(struct iobuf *b, const char *want)
{
	size_t n = strlen(want);
	ck_assert_uint_eq(iobuf_unparsed(b), n);
	ck_assert_ptr_eq(iobuf_parse_ptr(b), b->data + b->done);
	ck_assert_msg(memcmp(iobuf_parse_ptr(b), want, n) == 0, "unparsed is \"%.*s\", want \"%s\"",
	              (int)n, (const char *)iobuf_parse_ptr(b), want);
}

START_TEST(test_get_is_empty)
{
	struct iobuf *b = iobuf_get();
	ck_assert_uint_eq(b->size, DEFAULT_SIZE);
	ck_assert_uint_eq(iobuf_default_size(), DEFAULT_SIZE);
	ck_assert_uint_eq(b->sent, 0);
	ck_assert_uint_eq(b->done, 0);
	ck_assert_uint_eq(b->recv, 0);
	ck_assert(iobuf_empty(b));
	ck_assert_uint_eq(iobuf_free_space(b), DEFAULT_SIZE);
	ck_assert_uint_eq(iobuf_unsent(b), 0);
	ck_assert_uint_eq(iobuf_unparsed(b), 0);
	CHECK_INV(b);
	iobuf_put(b);
	iobuf_put(NULL); /* allowed */
}
END_TEST

START_TEST(test_valid_rejects_broken_cursors)
{
	struct iobuf *b = iobuf_get();
	b->sent = 2, b->done = 1, b->recv = 3;
	ck_assert(!iobuf_valid(b));
	b->sent = 0, b->done = 4, b->recv = 3;
	ck_assert(!iobuf_valid(b));
	b->sent = 0, b->done = 0, b->recv = b->size + 1;
	ck_assert(!iobuf_valid(b));
	b->sent = 1, b->done = 2, b->recv = b->size;
	ck_assert(iobuf_valid(b));
	iobuf_put(b);
}
END_TEST

START_TEST(test_mark_send)
{
	struct iobuf *b = iobuf_get();
	fake_recv(b, "HEADbody!", 9);
	CHECK_INV(b);
	ck_assert(!iobuf_empty(b));
	assert_unparsed(b, "HEADbody!");
	iobuf_mark_send(b, 4);
	CHECK_INV(b);
	assert_pending(b, "HEAD");
	assert_unparsed(b, "body!");
	iobuf_mark_send(b, 5);
	CHECK_INV(b);
	assert_pending(b, "HEADbody!");
	assert_unparsed(b, "");
	fake_send(b, 9);
	CHECK_INV(b);
	ck_assert(iobuf_empty(b));
	iobuf_put(b);
}
END_TEST

/* Nothing pending in front: the swallowed bytes are skipped, not moved. */
START_TEST(test_swallow_nothing_pending)
{
	struct iobuf *b = iobuf_get();
	fake_recv(b, "SWALnext", 8);
	uint8_t *before = b->data;
	iobuf_swallow(b, 4);
	CHECK_INV(b);
	ck_assert_ptr_eq(b->data, before);
	ck_assert_uint_eq(b->sent, 4);
	ck_assert_uint_eq(b->done, 4);
	ck_assert_uint_eq(b->recv, 8);
	assert_pending(b, "");
	assert_unparsed(b, "next");
	/* swallowing the rest leaves the buffer empty */
	iobuf_swallow(b, 4);
	CHECK_INV(b);
	ck_assert(iobuf_empty(b));
	iobuf_put(b);
}
END_TEST

/* Everything already sent, then a swallow: still just a skip. */
START_TEST(test_swallow_after_all_sent)
{
	struct iobuf *b = iobuf_get();
	fake_recv(b, "sentSWALrest", 12);
	iobuf_mark_send(b, 4);
	fake_send(b, 4);
	iobuf_swallow(b, 4);
	CHECK_INV(b);
	ck_assert_uint_eq(b->sent, 8);
	assert_pending(b, "");
	assert_unparsed(b, "rest");
	iobuf_put(b);
}
END_TEST

/*
 * Bytes pending before the swallowed message: they must still go out, and what follows
 * the swallowed message must stay unparsed and intact. Cases: (already sent, pending,
 * swallowed, following).
 */
struct swallow_case {
	const char *sent, *pending, *swallowed, *tail;
};

static const struct swallow_case swallow_cases[] = {
    {"", "P", "S", ""},
    {"", "PENDING", "SWALLOW", "tail"},
    {"", "PP", "SSSSSSSSSSSSSSSS", "t"},
    {"xx", "PPP", "SS", "tailtail"},
    {"xxxxxxxx", "P", "SWALLOWSWALLOW", ""},
    {"x", "PENDINGPENDINGPENDING", "S", "abcdefghijklmnopqrstuvwxyz"},
};

START_TEST(test_swallow_with_pending)
{
	const struct swallow_case *c = &swallow_cases[_i];
	uint32_t ns = (uint32_t)strlen(c->sent), np = (uint32_t)strlen(c->pending);
	uint32_t nw = (uint32_t)strlen(c->swallowed), nt = (uint32_t)strlen(c->tail);
	struct iobuf *b = iobuf_get();
	fake_recv(b, c->sent, ns);
	fake_recv(b, c->pending, np);
	fake_recv(b, c->swallowed, nw);
	fake_recv(b, c->tail, nt);
	iobuf_mark_send(b, ns + np);
	fake_send(b, ns);
	CHECK_INV(b);
	assert_pending(b, c->pending);

	iobuf_swallow(b, nw);
	CHECK_INV(b);
	assert_pending(b, c->pending);
	assert_unparsed(b, c->tail);
	ck_assert_uint_eq(b->recv, ns + np + nt);
	/* the tail can then be forwarded behind the pending bytes */
	iobuf_mark_send(b, nt);
	CHECK_INV(b);
	char *want = malloc(np + nt + 1);
	memcpy(want, c->pending, np);
	memcpy(want + np, c->tail, nt + 1);
	assert_pending(b, want);
	free(want);
	iobuf_put(b);
}
END_TEST

START_TEST(test_compact)
{
	struct iobuf *b = iobuf_get();
	fake_recv(b, "sentPENDunparsed", 16);
	iobuf_mark_send(b, 8);
	fake_send(b, 4);
	iobuf_compact(b);
	CHECK_INV(b);
	ck_assert_uint_eq(b->sent, 0);
	ck_assert_uint_eq(b->done, 4);
	ck_assert_uint_eq(b->recv, 12);
	assert_pending(b, "PEND");
	assert_unparsed(b, "unparsed");
	ck_assert_uint_eq(iobuf_free_space(b), DEFAULT_SIZE - 12);

	/* nothing sent: nothing moves */
	iobuf_compact(b);
	CHECK_INV(b);
	ck_assert_uint_eq(b->done, 4);
	ck_assert_uint_eq(b->recv, 12);
	assert_pending(b, "PEND");

	/* everything sent and swallowed: back to an empty buffer at offset 0 */
	fake_send(b, 4);
	iobuf_swallow(b, 8);
	ck_assert(iobuf_empty(b));
	iobuf_compact(b);
	CHECK_INV(b);
	ck_assert_uint_eq(b->sent, 0);
	ck_assert_uint_eq(b->done, 0);
	ck_assert_uint_eq(b->recv, 0);
	iobuf_put(b);
}
END_TEST

START_TEST(test_reserve_fits)
{
	struct iobuf *b = iobuf_get();
	struct iobuf *orig = b;
	fake_recv(b, "abcdef", 6);
	iobuf_mark_send(b, 2);
	iobuf_reserve(&b, DEFAULT_SIZE - 2);
	ck_assert_ptr_eq(b, orig);
	CHECK_INV(b);
	ck_assert_uint_eq(b->done, 2);
	assert_pending(b, "ab");
	assert_unparsed(b, "cdef");
	iobuf_put(b);
}
END_TEST

/* Room appears once sent bytes are dropped: compaction, no new buffer. */
START_TEST(test_reserve_compacts)
{
	struct iobuf *b = iobuf_get();
	struct iobuf *orig = b;
	size_t alloc0, free0, alloc1, free1;
	iobuf_stats(&alloc0, &free0);
	uint8_t *fill = malloc(DEFAULT_SIZE);
	memset(fill, 'x', DEFAULT_SIZE);
	fake_recv(b, fill, DEFAULT_SIZE - 10);
	iobuf_mark_send(b, DEFAULT_SIZE - 10);
	fake_send(b, DEFAULT_SIZE - 12); /* 2 pending */
	fake_recv(b, "0123456789", 10);  /* full now */
	ck_assert_uint_eq(iobuf_free_space(b), 0);
	iobuf_reserve(&b, 100);
	ck_assert_ptr_eq(b, orig);
	CHECK_INV(b);
	ck_assert_uint_eq(b->sent, 0);
	ck_assert_uint_ge(b->size - b->done, 100);
	assert_pending(b, "xx");
	assert_unparsed(b, "0123456789");
	iobuf_stats(&alloc1, &free1);
	ck_assert_uint_eq(alloc1, alloc0);
	free(fill);
	iobuf_put(b);
}
END_TEST

/* A held message declaring a huge length: the buffer grows only when full, at most
 * doubling, so memory follows the bytes received, and stops at the declared size. */
START_TEST(test_grow_toward_follows_received_bytes)
{
	struct iobuf *b = iobuf_get();
	const uint32_t declared = 0x3fffffffu;
	iobuf_grow_toward(&b, declared); /* empty: room left, nothing to grow */
	ck_assert_uint_eq(b->size, DEFAULT_SIZE);
	uint32_t received = 0;
	for (int round = 0; round < 6; round++) {
		uint32_t n = iobuf_free_space(b);
		uint8_t *fill = calloc(1, n);
		fake_recv(b, fill, n);
		free(fill);
		received += n;
		uint32_t before = b->size;
		iobuf_grow_toward(&b, declared);
		CHECK_INV(b);
		ck_assert_uint_eq(iobuf_unparsed(b), received);
		ck_assert_uint_le(b->size, 2 * before);
		ck_assert_uint_gt(iobuf_free_space(b), 0);
	}
	ck_assert_uint_le(b->size, 2 * received);
	iobuf_grow_toward(&b, received + 10); /* near the end: exactly what is left */
	ck_assert_uint_ge(b->size - b->done, received + 10);
	iobuf_put(b);
}
END_TEST

/* A message bigger than the buffer: grows, keeps the bytes and the cursor distances. */
struct reserve_case {
	uint32_t sent, pending, unparsed, need;
};

static const struct reserve_case reserve_cases[] = {
    {0, 0, 5, DEFAULT_SIZE + 1}, {0, 0, 0, 3 * DEFAULT_SIZE},     {100, 50, 5, DEFAULT_SIZE},
    {0, 7, 4000, DEFAULT_SIZE},  {10, DEFAULT_SIZE - 20, 10, 64}, {0, 0, 1, 1000000},
};

START_TEST(test_reserve_grows)
{
	const struct reserve_case c = reserve_cases[_i];
	struct iobuf *b = iobuf_get();
	uint32_t total = c.sent + c.pending + c.unparsed;
	uint8_t *pattern = malloc(total + 1);
	for (uint32_t i = 0; i < total; i++)
		pattern[i] = (uint8_t)(i * 7 + 3);
	fake_recv(b, pattern, total);
	iobuf_mark_send(b, c.sent + c.pending);
	fake_send(b, c.sent);
	size_t alloc0, free0, alloc1, free1;
	iobuf_stats(&alloc0, &free0);

	iobuf_reserve(&b, c.need);
	CHECK_INV(b);
	ck_assert_uint_gt(b->size, DEFAULT_SIZE);
	ck_assert_uint_ge(b->size - b->done, c.need);
	ck_assert_uint_eq(iobuf_unsent(b), c.pending);
	ck_assert_uint_eq(iobuf_unparsed(b), c.unparsed);
	ck_assert_mem_eq(b->data + b->sent, pattern + c.sent, c.pending + c.unparsed);
	/* the old default-size buffer went back to the free list; the new one is counted */
	iobuf_stats(&alloc1, &free1);
	ck_assert_uint_eq(alloc1, alloc0 + 1);
	ck_assert_uint_eq(free1, free0 + 1);
	ck_assert_ptr_null(b->next_free);

	/* the grown buffer still works: the message fits in one piece at the parse point */
	uint32_t add = c.need - c.unparsed;
	if (c.need > c.unparsed && add <= iobuf_free_space(b)) {
		uint8_t *more = calloc(1, add);
		fake_recv(b, more, add);
		CHECK_INV(b);
		free(more);
	}
	free(pattern);
	iobuf_put(b);
}
END_TEST

START_TEST(test_append_to_null)
{
	struct iobuf *b = NULL;
	size_t alloc0, free0, alloc1, free1;
	iobuf_stats(&alloc0, &free0);
	iobuf_append(&b, "hello", 5);
	ck_assert_ptr_nonnull(b);
	CHECK_INV(b);
	ck_assert_uint_eq(b->size, DEFAULT_SIZE);
	assert_pending(b, "hello");
	assert_unparsed(b, "");
	iobuf_append(&b, ", world", 7);
	CHECK_INV(b);
	assert_pending(b, "hello, world");
	iobuf_stats(&alloc1, &free1);
	ck_assert_uint_eq(alloc1, alloc0 + 1);
	iobuf_put(b);
}
END_TEST

/* Sent bytes make room: appending compacts instead of growing. */
START_TEST(test_append_compacts)
{
	struct iobuf *b = NULL;
	uint8_t *fill = malloc(DEFAULT_SIZE);
	memset(fill, 'f', DEFAULT_SIZE);
	iobuf_append(&b, fill, DEFAULT_SIZE - 3);
	iobuf_append(&b, "abc", 3);
	ck_assert_uint_eq(iobuf_free_space(b), 0);
	struct iobuf *orig = b;
	fake_send(b, DEFAULT_SIZE - 3);
	iobuf_append(&b, "0123456789", 10);
	ck_assert_ptr_eq(b, orig);
	CHECK_INV(b);
	ck_assert_uint_eq(b->sent, 0);
	assert_pending(b, "abc0123456789");
	free(fill);
	iobuf_put(b);
}
END_TEST

/* A full buffer grows; every byte appended comes out in order. */
START_TEST(test_append_grows)
{
	struct iobuf *b = NULL;
	size_t total = 0, chunk = 1000;
	uint8_t buf[1000];
	while (total < 5 * DEFAULT_SIZE) {
		for (size_t i = 0; i < chunk; i++)
			buf[i] = (uint8_t)((total + i) % 251);
		iobuf_append(&b, buf, chunk);
		CHECK_INV(b);
		total += chunk;
		ck_assert_uint_eq(iobuf_unsent(b), total);
		ck_assert_uint_eq(iobuf_unparsed(b), 0);
	}
	ck_assert_uint_ge(b->size, total);
	for (size_t i = 0; i < total; i++)
		ck_assert_uint_eq(b->data[b->sent + i], (uint8_t)(i % 251));
	size_t alloc0, free0, alloc1, free1;
	iobuf_stats(&alloc0, &free0);
	iobuf_put(b); /* grown: freed, not listed */
	iobuf_stats(&alloc1, &free1);
	ck_assert_uint_eq(alloc1, alloc0 - 1);
	ck_assert_uint_eq(free1, free0);
}
END_TEST

START_TEST(test_free_list_reuse)
{
	size_t alloc0, free0, n, f;
	iobuf_stats(&alloc0, &free0);
	ck_assert_uint_eq(free0, 0);

	struct iobuf *a = iobuf_get();
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 1);
	ck_assert_uint_eq(f, 0);

	/* returned with cursors anywhere: handed out again clean */
	fake_recv(a, "leftover", 8);
	iobuf_mark_send(a, 3);
	fake_send(a, 1);
	iobuf_put(a);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 1);
	ck_assert_uint_eq(f, 1);

	struct iobuf *b = iobuf_get();
	ck_assert_ptr_eq(b, a);
	ck_assert_uint_eq(b->size, DEFAULT_SIZE);
	ck_assert_uint_eq(b->sent, 0);
	ck_assert_uint_eq(b->done, 0);
	ck_assert_uint_eq(b->recv, 0);
	ck_assert_ptr_null(b->next_free);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 1);
	ck_assert_uint_eq(f, 0);

	/* two out, two back, two reused (LIFO), none allocated */
	struct iobuf *c = iobuf_get();
	ck_assert_ptr_ne(c, b);
	iobuf_put(b);
	iobuf_put(c);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 2);
	ck_assert_uint_eq(f, 2);
	struct iobuf *d = iobuf_get();
	struct iobuf *e = iobuf_get();
	ck_assert_ptr_eq(d, c);
	ck_assert_ptr_eq(e, b);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 2);
	ck_assert_uint_eq(f, 0);
	iobuf_put(d);
	iobuf_put(e);

	iobuf_release_free_list();
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0);
	ck_assert_uint_eq(f, 0);
}
END_TEST

START_TEST(test_grown_not_free_listed)
{
	size_t alloc0, free0, n, f;
	iobuf_stats(&alloc0, &free0);
	struct iobuf *b = iobuf_get();
	fake_recv(b, "x", 1);
	iobuf_reserve(&b, 2 * DEFAULT_SIZE);
	ck_assert_uint_gt(b->size, DEFAULT_SIZE);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 2); /* the small one is listed, the big one out */
	ck_assert_uint_eq(f, 1);
	iobuf_put(b);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + 1);
	ck_assert_uint_eq(f, 1);
	/* what is handed out next is the default-size one */
	struct iobuf *c = iobuf_get();
	ck_assert_uint_eq(c->size, DEFAULT_SIZE);
	iobuf_put(c);
}
END_TEST

/* The free list is bounded: returning many buffers does not keep them all. */
START_TEST(test_free_list_bounded)
{
	enum { N = 1100 };
	struct iobuf **bufs = malloc(N * sizeof(*bufs));
	size_t alloc0, free0, n, f;
	iobuf_stats(&alloc0, &free0);
	for (int i = 0; i < N; i++)
		bufs[i] = iobuf_get();
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(n, alloc0 + N);
	for (int i = 0; i < N; i++)
		iobuf_put(bufs[i]);
	iobuf_stats(&n, &f);
	ck_assert_uint_lt(f, N);
	ck_assert_uint_ge(f, 1);
	ck_assert_uint_eq(n, alloc0 + f);
	free(bufs);
}
END_TEST

START_TEST(test_set_default_size)
{
	size_t alloc0, free0, n, f;
	iobuf_stats(&alloc0, &free0);
	struct iobuf *old = iobuf_get();
	iobuf_put(iobuf_get()); /* one listed of the old size... */
	ck_assert_ptr_ne(old, NULL);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(f, 1);

	iobuf_set_default_size(256);
	ck_assert_uint_eq(iobuf_default_size(), 256);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(f, 0); /* ...dropped when the size changed */
	ck_assert_uint_eq(n, alloc0 + 1);

	struct iobuf *b = iobuf_get();
	ck_assert_uint_eq(b->size, 256);
	ck_assert_uint_eq(iobuf_free_space(b), 256);
	/* an old-size buffer coming back is freed, not listed */
	iobuf_put(old);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(f, 0);
	ck_assert_uint_eq(n, alloc0 + 1);
	/* a new-size one is listed */
	iobuf_put(b);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(f, 1);
	struct iobuf *c = iobuf_get();
	ck_assert_ptr_eq(c, b);
	/* appending past 256 grows */
	uint8_t data[300];
	memset(data, 'q', sizeof(data));
	iobuf_append(&c, data, sizeof(data));
	CHECK_INV(c);
	ck_assert_uint_ge(c->size, 300);
	ck_assert_uint_eq(iobuf_unsent(c), 300);
	iobuf_put(c);

	/* setting the same size again keeps the list */
	iobuf_put(iobuf_get());
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(f, 1);
	iobuf_set_default_size(256);
	iobuf_stats(&n, &f);
	ck_assert_uint_eq(f, 1);
}
END_TEST

/*
 * Random operations against a model of the two byte strings the buffer holds (pending
 * output and unparsed input), with the invariant checked after every step.
 */
struct model {
	uint8_t *pending, *unparsed;
	size_t n_pending, n_unparsed, cap;
};

static uint32_t rng_state;

static uint32_t rng(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return rng_state >> 8;
}

static void model_check(const struct model *m, struct iobuf *b)
{
	CHECK_INV(b);
	ck_assert_uint_eq(iobuf_unsent(b), m->n_pending);
	ck_assert_uint_eq(iobuf_unparsed(b), m->n_unparsed);
	ck_assert(memcmp(b->data + b->sent, m->pending, m->n_pending) == 0);
	ck_assert(memcmp(b->data + b->done, m->unparsed, m->n_unparsed) == 0);
}

static void model_take(uint8_t *arr, size_t *n, size_t k)
{
	memmove(arr, arr + k, *n - k);
	*n -= k;
}

START_TEST(test_random_ops)
{
	struct model m = {0};
	m.cap = 64 * DEFAULT_SIZE;
	m.pending = malloc(m.cap);
	m.unparsed = malloc(m.cap);
	uint8_t *chunk = malloc(4 * DEFAULT_SIZE);
	struct iobuf *b = iobuf_get();
	rng_state = 12345u + (uint32_t)_i;

	for (int step = 0; step < 4000; step++) {
		uint32_t op = rng() % 7, k;
		switch (op) {
		case 0: /* a read from the socket */
			if (!iobuf_free_space(b))
				iobuf_compact(b);
			k = iobuf_free_space(b) ? rng() % iobuf_free_space(b) + 1 : 0;
			k = k > 3000 ? 3000 : k;
			if (m.n_pending + m.n_unparsed + k > m.cap)
				break;
			for (uint32_t i = 0; i < k; i++)
				chunk[i] = (uint8_t)rng();
			fake_recv(b, chunk, k);
			memcpy(m.unparsed + m.n_unparsed, chunk, k);
			m.n_unparsed += k;
			break;
		case 1: /* forward a message */
			k = m.n_unparsed ? rng() % (uint32_t)m.n_unparsed + 1 : 0;
			iobuf_mark_send(b, k);
			memcpy(m.pending + m.n_pending, m.unparsed, k);
			m.n_pending += k;
			model_take(m.unparsed, &m.n_unparsed, k);
			break;
		case 2: /* swallow a message */
			k = m.n_unparsed ? rng() % (uint32_t)m.n_unparsed + 1 : 0;
			iobuf_swallow(b, k);
			model_take(m.unparsed, &m.n_unparsed, k);
			break;
		case 3: /* the writer sends some */
			k = m.n_pending ? rng() % (uint32_t)m.n_pending + 1 : 0;
			fake_send(b, k);
			model_take(m.pending, &m.n_pending, k);
			break;
		case 4:
			iobuf_compact(b);
			break;
		case 5: /* a large message header was seen */
			k = rng() % (3 * DEFAULT_SIZE) + 1;
			if (m.n_unparsed + m.n_pending + k > m.cap)
				break;
			iobuf_reserve(&b, k);
			ck_assert_uint_ge(b->size - b->done, k);
			break;
		case 6: /* generated output, only where nothing is unparsed (as for wbuf) */
			if (m.n_unparsed)
				break;
			k = rng() % 2000 + 1;
			if (m.n_pending + k > m.cap)
				break;
			for (uint32_t i = 0; i < k; i++)
				chunk[i] = (uint8_t)rng();
			iobuf_append(&b, chunk, k);
			memcpy(m.pending + m.n_pending, chunk, k);
			m.n_pending += k;
			break;
		}
		model_check(&m, b);
	}
	iobuf_put(b);
	free(chunk);
	free(m.pending);
	free(m.unparsed);
}
END_TEST

static Suite *iobuf_suite(void)
{
	Suite *s = suite_create("iobuf");
	TCase *tc = tcase_create("cursors");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_get_is_empty);
	tcase_add_test(tc, test_grow_toward_follows_received_bytes);
	tcase_add_test(tc, test_valid_rejects_broken_cursors);
	tcase_add_test(tc, test_mark_send);
	tcase_add_test(tc, test_swallow_nothing_pending);
	tcase_add_test(tc, test_swallow_after_all_sent);
	tcase_add_loop_test(tc, test_swallow_with_pending, 0,
	                    (int)(sizeof(swallow_cases) / sizeof(swallow_cases[0])));
	tcase_add_test(tc, test_compact);
	tcase_add_test(tc, test_reserve_fits);
	tcase_add_test(tc, test_reserve_compacts);
	tcase_add_loop_test(tc, test_reserve_grows, 0,
	                    (int)(sizeof(reserve_cases) / sizeof(reserve_cases[0])));
	tcase_add_test(tc, test_append_to_null);
	tcase_add_test(tc, test_append_compacts);
	tcase_add_test(tc, test_append_grows);
	tcase_add_loop_test(tc, test_random_ops, 0, 8);
	suite_add_tcase(s, tc);

	TCase *tc2 = tcase_create("free_list");
	tcase_add_checked_fixture(tc2, setup, teardown);
	tcase_add_test(tc2, test_free_list_reuse);
	tcase_add_test(tc2, test_grown_not_free_listed);
	tcase_add_test(tc2, test_free_list_bounded);
	tcase_add_test(tc2, test_set_default_size);
	suite_add_tcase(s, tc2);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(iobuf_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
