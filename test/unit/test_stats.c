/*
 * Unit tests for stats: the histogram bucket layout (contiguous, exact below 2 * HIST_SUB,
 * at most 1/HIST_SUB wide), quantiles (exact for one value, within 1/HIST_SUB of the true
 * order statistic, monotonic and inside [min, max] on random data), merging, the
 * PgBouncer-style averages with their integer edge cases, and the period roll.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* A small deterministic generator (xorshift64*), so failures can be replayed. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* A value spread evenly over the powers of two below 2^max_bits (0 included). */
static uint64_t rng_log_uniform(uint64_t *state, unsigned max_bits)
{
	unsigned bits = (unsigned)(rng_next(state) % (max_bits + 1));
	if (bits == 0)
		return 0;
	return rng_next(state) & ((bits == 64 ? 0 : (uint64_t)1 << bits) - 1);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The order statistic hist_quantile approximates: the ceil(q * n)-th smallest. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
	double x = q * (double)n;
	size_t rank = (size_t)x;
	if ((double)rank < x)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static void assert_within(uint64_t got, uint64_t want, const char *what)
{
	uint64_t diff = got > want ? got - want : want - got;
	ck_assert_msg(diff <= want / HIST_SUB, "%s: got %llu, want %llu (+-%llu)", what,
	              (unsigned long long)got, (unsigned long long)want,
	              (unsigned long long)(want / HIST_SUB));
}

static void assert_hist_eq(const struct hist *a, const struct hist *b)
{
	ck_assert_uint_eq(a->count, b->count);
	ck_assert_uint_eq(a->min, b->min);
	ck_assert_uint_eq(a->max, b->max);
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		ck_assert_msg(a->buckets[i] == b->buckets[i], "bucket %u: %u != %u", i,
		              a->buckets[i], b->buckets[i]);
}

static void assert_hist_empty(const struct hist *h)
{
	ck_assert_uint_eq(h->count, 0);
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		ck_assert_uint_eq(h->buckets[i], 0);
	ck_assert_uint_eq(hist_quantile(h, 0.5), 0);
	ck_assert_uint_eq(hist_quantile(h, 1.0), 0);
}

/* ---- bucket layout ---- */

START_TEST(test_buckets_exact_below_2sub)
{
	for (uint64_t v = 0; v < 2 * HIST_SUB; v++) {
		uint64_t lo, hi;
		ck_assert_uint_eq(hist_bucket_of(v), v);
		hist_bucket_range((unsigned)v, &lo, &hi);
		ck_assert_uint_eq(lo, v);
		ck_assert_uint_eq(hi, v);
	}
	ck_assert_uint_eq(hist_bucket_of(HIST_SUB - 1), HIST_SUB - 1);
	ck_assert_uint_eq(hist_bucket_of(HIST_SUB), HIST_SUB);
	/* 32..33 share a bucket of width 2, then 34..35 */
	ck_assert_uint_eq(hist_bucket_of(32), 32);
	ck_assert_uint_eq(hist_bucket_of(33), 32);
	ck_assert_uint_eq(hist_bucket_of(34), 33);
}
END_TEST

/* The buckets tile 0..UINT64_MAX without gaps, each at most 1/HIST_SUB of its lower bound. */
START_TEST(test_buckets_contiguous)
{
	uint64_t lo, hi, prev_hi;

	hist_bucket_range(0, &lo, &prev_hi);
	ck_assert_uint_eq(lo, 0);
	for (unsigned b = 1; b < HIST_BUCKETS; b++) {
		hist_bucket_range(b, &lo, &hi);
		ck_assert_msg(lo == prev_hi + 1, "bucket %u starts at %llu after %llu", b,
		              (unsigned long long)lo, (unsigned long long)prev_hi);
		ck_assert_uint_ge(hi, lo);
		if (b < HIST_BUCKETS - 1)
			ck_assert_uint_le(hi - lo + 1, lo / HIST_SUB > 1 ? lo / HIST_SUB : 1);
		ck_assert_uint_eq(hist_bucket_of(lo), b);
		ck_assert_uint_eq(hist_bucket_of(hi), b);
		prev_hi = hi;
	}
	ck_assert_uint_eq(prev_hi, UINT64_MAX);
	/* the regular range reaches 2^(HIST_POWERS + 3) */
	ck_assert_uint_eq(hist_bucket_of(((uint64_t)1 << (HIST_POWERS + 3)) - 1), HIST_BUCKETS - 1);
	ck_assert_uint_eq(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
	ck_assert_uint_lt(hist_bucket_of((uint64_t)1 << HIST_POWERS), HIST_BUCKETS - 1);
}
END_TEST

START_TEST(test_buckets_random_values)
{
	uint64_t state = 0x9E3779B97F4A7C15ULL;
	for (int i = 0; i < 100000; i++) {
		uint64_t v = rng_log_uniform(&state, 64), lo, hi;
		unsigned b = hist_bucket_of(v);
		ck_assert_uint_lt(b, HIST_BUCKETS);
		hist_bucket_range(b, &lo, &hi);
		ck_assert_uint_le(lo, v);
		ck_assert_uint_le(v, hi);
	}
}
END_TEST

/* ---- quantiles ---- */

static const uint64_t single_values[] = {
    0,
    1,
    2,
    HIST_SUB - 1,
    HIST_SUB,
    2 * HIST_SUB - 1,
    2 * HIST_SUB,
    33,
    1000,
    4999,
    5000,
    123456789,
    (uint64_t)1 << HIST_POWERS,
    ((uint64_t)1 << (HIST_POWERS + 3)) + 12345,
    UINT64_MAX / 2,
    UINT64_MAX,
};
static const double quantiles[] = {0.0001, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0};

START_TEST(test_single_value)
{
	uint64_t v = single_values[_i];
	struct hist h;

	hist_reset(&h);
	hist_record(&h, v);
	ck_assert_uint_eq(h.count, 1);
	ck_assert_uint_eq(h.min, v);
	ck_assert_uint_eq(h.max, v);
	for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
		ck_assert_uint_eq(hist_quantile(&h, quantiles[i]), v);
	/* the same value many times: still exact */
	for (int i = 0; i < 999; i++)
		hist_record(&h, v);
	for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
		ck_assert_uint_eq(hist_quantile(&h, quantiles[i]), v);
}
END_TEST

START_TEST(test_uniform)
{
	struct hist h;

	hist_reset(&h);
	for (uint64_t v = 1; v <= 10000; v++)
		hist_record(&h, v);
	ck_assert_uint_eq(h.count, 10000);
	ck_assert_uint_eq(h.min, 1);
	ck_assert_uint_eq(h.max, 10000);
	assert_within(hist_quantile(&h, 0.5), 5000, "p50");
	assert_within(hist_quantile(&h, 0.95), 9500, "p95");
	assert_within(hist_quantile(&h, 0.99), 9900, "p99");
	ck_assert_uint_eq(hist_quantile(&h, 1.0), 10000);
	ck_assert_uint_eq(hist_quantile(&h, 0.0001), 1);
	/* below 2 * HIST_SUB every value has its own bucket */
	ck_assert_uint_eq(hist_quantile(&h, 0.002), 20);
}
END_TEST

/* Small values, the boundaries and a huge one: each lands where it should. */
START_TEST(test_edge_values)
{
	struct hist h;
	uint64_t huge = UINT64_MAX / 2;

	hist_reset(&h);
	hist_record(&h, 0);
	hist_record(&h, 1);
	hist_record(&h, HIST_SUB - 1);
	hist_record(&h, HIST_SUB);
	hist_record(&h, huge);
	ck_assert_uint_eq(h.count, 5);
	ck_assert_uint_eq(h.min, 0);
	ck_assert_uint_eq(h.max, huge);
	ck_assert_uint_eq(h.buckets[0], 1);
	ck_assert_uint_eq(h.buckets[1], 1);
	ck_assert_uint_eq(h.buckets[HIST_SUB - 1], 1);
	ck_assert_uint_eq(h.buckets[HIST_SUB], 1);
	ck_assert_uint_eq(h.buckets[HIST_BUCKETS - 1], 1);
	/* ranks 1..5 are ceil(q * 5) */
	ck_assert_uint_eq(hist_quantile(&h, 0.1), 0);
	ck_assert_uint_eq(hist_quantile(&h, 0.3), 1);
	ck_assert_uint_eq(hist_quantile(&h, 0.5), HIST_SUB - 1);
	ck_assert_uint_eq(hist_quantile(&h, 0.7), HIST_SUB);
	ck_assert_uint_eq(hist_quantile(&h, 0.9), huge);
	ck_assert_uint_eq(hist_quantile(&h, 1.0), huge);
	/* out-of-contract q stays defined */
	ck_assert_uint_eq(hist_quantile(&h, 0.0), 0);
	ck_assert_uint_eq(hist_quantile(&h, 2.0), huge);
}
END_TEST

/* Two values beyond the regular range share the last bucket; max keeps the real value. */
START_TEST(test_overflow_bucket)
{
	struct hist h;
	uint64_t a = (uint64_t)1 << 45, b = (uint64_t)1 << 50;

	hist_reset(&h);
	for (int i = 0; i < 10; i++)
		hist_record(&h, a);
	hist_record(&h, b);
	ck_assert_uint_eq(h.buckets[HIST_BUCKETS - 1], 11);
	ck_assert_uint_eq(h.max, b);
	/* the first rank is min; past it the last bucket knows no better than max */
	ck_assert_uint_eq(hist_quantile(&h, 0.05), a);
	ck_assert_uint_eq(hist_quantile(&h, 0.5), b);
	ck_assert_uint_eq(hist_quantile(&h, 1.0), b);
	for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++) {
		uint64_t v = hist_quantile(&h, quantiles[i]);
		ck_assert_uint_ge(v, a);
		ck_assert_uint_le(v, b);
	}
}
END_TEST

#define RANDOM_N 20000

/* Random data below the overflow bucket: within 1/HIST_SUB of the true order statistic. */
START_TEST(test_random_accuracy)
{
	uint64_t state = 0x1234567ULL + (uint64_t)_i * 0x9E3779B97F4A7C15ULL;
	uint64_t *vals = malloc(RANDOM_N * sizeof(*vals));
	struct hist h;

	ck_assert_ptr_nonnull(vals);
	hist_reset(&h);
	for (size_t i = 0; i < RANDOM_N; i++) {
		/* half spread over all powers, half clustered like real latencies */
		vals[i] = i % 2 ? rng_log_uniform(&state, HIST_POWERS + 2)
		                : 200 + rng_next(&state) % 5000;
		hist_record(&h, vals[i]);
	}
	qsort(vals, RANDOM_N, sizeof(*vals), cmp_u64);
	ck_assert_uint_eq(h.min, vals[0]);
	ck_assert_uint_eq(h.max, vals[RANDOM_N - 1]);
	for (int i = 1; i <= 1000; i++) {
		double q = i / 1000.0;
		char what[32];
		snprintf(what, sizeof(what), "q=%.3f", q);
		assert_within(hist_quantile(&h, q), exact_quantile(vals, RANDOM_N, q), what);
	}
	free(vals);
}
END_TEST

/* Any data, overflow bucket included: monotonic in q and inside [min, max]. */
START_TEST(test_random_monotonic)
{
	uint64_t state = 0xC0FFEEULL + (uint64_t)_i * 0x2545F4914F6CDD1DULL;
	unsigned n = 1 + (unsigned)(rng_next(&state) % 5000);
	struct hist h;
	uint64_t prev = 0;

	hist_reset(&h);
	for (unsigned i = 0; i < n; i++)
		hist_record(&h, rng_log_uniform(&state, 64));
	for (int i = 1; i <= 2000; i++) {
		uint64_t v = hist_quantile(&h, i / 2000.0);
		ck_assert_uint_ge(v, h.min);
		ck_assert_uint_le(v, h.max);
		ck_assert_msg(v >= prev, "q=%d/2000: %llu after %llu", i, (unsigned long long)v,
		              (unsigned long long)prev);
		prev = v;
	}
	ck_assert_uint_eq(prev, h.max);
}
END_TEST

START_TEST(test_merge)
{
	uint64_t state = 0xABCDEFULL + (uint64_t)_i;
	struct hist a, b, both, empty, copy;

	hist_reset(&a);
	hist_reset(&b);
	hist_reset(&both);
	hist_reset(&empty);
	for (int i = 0; i < 3000; i++) {
		uint64_t v = rng_log_uniform(&state, 40);
		hist_record(i % 3 ? &a : &b, v);
		hist_record(&both, v);
	}
	/* merging into an empty histogram copies */
	copy = empty;
	hist_merge(&copy, &a);
	assert_hist_eq(&copy, &a);
	/* merging an empty one changes nothing */
	hist_merge(&copy, &empty);
	assert_hist_eq(&copy, &a);
	hist_merge(&copy, &b);
	assert_hist_eq(&copy, &both);
	for (size_t i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++)
		ck_assert_uint_eq(hist_quantile(&copy, quantiles[i]),
		                  hist_quantile(&both, quantiles[i]));
}
END_TEST

START_TEST(test_reset)
{
	struct hist h;

	hist_reset(&h);
	assert_hist_empty(&h);
	for (uint64_t v = 0; v < 1000; v += 7)
		hist_record(&h, v * v);
	ck_assert_uint_gt(h.count, 0);
	hist_reset(&h);
	assert_hist_empty(&h);
	/* min and max start over */
	hist_record(&h, 42);
	ck_assert_uint_eq(h.min, 42);
	ck_assert_uint_eq(h.max, 42);
}
END_TEST

/* ---- averages ---- */

static void set_counters(struct stats_counters *c, uint64_t base)
{
	c->server_assignments = base;
	c->xacts = base;
	c->queries = base;
	c->bytes_received = base;
	c->bytes_sent = base;
	c->xact_time = base;
	c->query_time = base;
	c->wait_time = base;
	c->client_parses = base;
	c->server_parses = base;
	c->binds = base;
	c->client_logins = base;
	c->server_logins = base;
}

/* Adds the deltas the averages tests expect over two seconds. */
static void add_traffic(struct stats_counters *c)
{
	c->server_assignments += 200;  /* 100/s */
	c->xacts += 100;               /* 50/s */
	c->queries += 400;             /* 200/s */
	c->bytes_received += 2000000;  /* 1000000/s */
	c->bytes_sent += 3;            /* 1.5/s, truncated to 1 */
	c->xact_time += 100 * 1500;    /* 1500 per xact */
	c->query_time += 400 * 250;    /* 250 per query */
	c->wait_time += 200 * 30 + 99; /* 30.495 per assignment, truncated to 30 */
	c->client_parses += 20;        /* 10/s */
	c->server_parses += 10;        /* 5/s */
	c->binds += 40;                /* 20/s */
	c->client_logins += 6;         /* 3/s */
	c->server_logins += 4;
}

static void assert_traffic_averages(const struct stats_averages *a)
{
	ck_assert_uint_eq(a->server_assignments, 100);
	ck_assert_uint_eq(a->xacts, 50);
	ck_assert_uint_eq(a->queries, 200);
	ck_assert_uint_eq(a->bytes_received, 1000000);
	ck_assert_uint_eq(a->bytes_sent, 1);
	ck_assert_uint_eq(a->xact_time, 1500);
	ck_assert_uint_eq(a->query_time, 250);
	ck_assert_uint_eq(a->wait_time, 30);
	ck_assert_uint_eq(a->client_parses, 10);
	ck_assert_uint_eq(a->server_parses, 5);
	ck_assert_uint_eq(a->binds, 20);
	ck_assert_uint_eq(a->client_logins, 3);
}

static void assert_zero_averages(const struct stats_averages *a)
{
	struct stats_averages zero;
	memset(&zero, 0, sizeof(zero));
	ck_assert_mem_eq(a, &zero, sizeof(zero));
}

static const uint64_t bases[] = {0, 12345, (uint64_t)1 << 40, UINT64_MAX - 10000000};

START_TEST(test_averages_known)
{
	struct stats_counters from, to;
	struct stats_averages avg;

	memset(&from, 0, sizeof(from));
	set_counters(&from, bases[_i]);
	to = from;
	add_traffic(&to);
	memset(&avg, 0xff, sizeof(avg));
	stats_compute_averages(&from, &to, 2 * USEC_PER_SEC, &avg);
	assert_traffic_averages(&avg);
}
END_TEST

START_TEST(test_averages_zero_elapsed)
{
	struct stats_counters from, to;
	struct stats_averages avg;

	memset(&from, 0, sizeof(from));
	to = from;
	add_traffic(&to);
	memset(&avg, 0xff, sizeof(avg));
	stats_compute_averages(&from, &to, 0, &avg);
	assert_zero_averages(&avg);
}
END_TEST

/* Time spent but no transactions, queries or assignments: the per-item averages are 0. */
START_TEST(test_averages_zero_divisors)
{
	struct stats_counters from, to;
	struct stats_averages avg;

	memset(&from, 0, sizeof(from));
	to = from;
	to.xact_time = 5000;
	to.query_time = 7000;
	to.wait_time = 9000;
	to.bytes_sent = 4000;
	stats_compute_averages(&from, &to, USEC_PER_SEC, &avg);
	ck_assert_uint_eq(avg.xact_time, 0);
	ck_assert_uint_eq(avg.query_time, 0);
	ck_assert_uint_eq(avg.wait_time, 0);
	ck_assert_uint_eq(avg.bytes_sent, 4000);
	ck_assert_uint_eq(avg.xacts, 0);

	/* no traffic at all */
	stats_compute_averages(&from, &from, USEC_PER_SEC, &avg);
	assert_zero_averages(&avg);
	/* a counter that went backwards counts as no traffic */
	stats_compute_averages(&to, &from, USEC_PER_SEC, &avg);
	assert_zero_averages(&avg);
}
END_TEST

START_TEST(test_averages_big)
{
	struct stats_counters from, to;
	struct stats_averages avg;
	usec_t long_period = 300ULL * 86400 * USEC_PER_SEC; /* 300 days */
	long double want;

	memset(&from, 0, sizeof(from));
	memset(&to, 0, sizeof(to));
	/* 10^18 bytes in 2 s: too big to multiply by a million first, exact anyway */
	to.bytes_received = 1000000000000000000ULL;
	to.bytes_sent = UINT64_MAX;
	to.xacts = 3;
	to.xact_time = UINT64_MAX;
	stats_compute_averages(&from, &to, 2 * USEC_PER_SEC, &avg);
	ck_assert_uint_eq(avg.bytes_received, 500000000000000000ULL);
	ck_assert_uint_eq(avg.bytes_sent, UINT64_MAX / 2);
	ck_assert_uint_eq(avg.xact_time, UINT64_MAX / 3);
	ck_assert_uint_eq(avg.xacts, 1);

	/* faster than a uint64 can say: saturates */
	stats_compute_averages(&from, &to, 1, &avg);
	ck_assert_uint_eq(avg.bytes_sent, UINT64_MAX);
	ck_assert_uint_eq(avg.bytes_received, UINT64_MAX);
	ck_assert_uint_eq(avg.xacts, 3000000);

	/* a very long period with a huge delta: close to exact */
	stats_compute_averages(&from, &to, long_period, &avg);
	want = (long double)UINT64_MAX * 1000000.0L / (long double)long_period;
	ck_assert_msg(avg.bytes_sent > (uint64_t)(want * 0.99999L) &&
	                  avg.bytes_sent < (uint64_t)(want * 1.00001L),
	              "%llu vs %Lf", (unsigned long long)avg.bytes_sent, want);
}
END_TEST

START_TEST(test_counters_add)
{
	struct stats_counters a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	set_counters(&a, 5);
	set_counters(&b, 7);
	stats_counters_add(&a, &b);
	stats_counters_add(&a, &b);
	ck_assert_uint_eq(a.server_assignments, 19);
	ck_assert_uint_eq(a.xacts, 19);
	ck_assert_uint_eq(a.queries, 19);
	ck_assert_uint_eq(a.bytes_received, 19);
	ck_assert_uint_eq(a.bytes_sent, 19);
	ck_assert_uint_eq(a.xact_time, 19);
	ck_assert_uint_eq(a.query_time, 19);
	ck_assert_uint_eq(a.wait_time, 19);
	ck_assert_uint_eq(a.client_parses, 19);
	ck_assert_uint_eq(a.server_parses, 19);
	ck_assert_uint_eq(a.binds, 19);
	ck_assert_uint_eq(a.client_logins, 19);
	ck_assert_uint_eq(a.server_logins, 19);
}
END_TEST

/* ---- the period roll ---- */

START_TEST(test_roll)
{
	static struct stats s; /* about 28 KiB: keep it off the stack */
	const usec_t t0 = 1000 * USEC_PER_SEC;
	struct stats_counters after_first;

	stats_init(&s, t0);
	ck_assert_uint_eq(s.period_began, t0);
	for (int k = 0; k < STATS_HIST_KINDS; k++) {
		assert_hist_empty(&s.cur[k]);
		assert_hist_empty(&s.last[k]);
	}

	/* first period: 2 s of traffic */
	add_traffic(&s.total);
	for (uint64_t v = 1; v <= 100; v++) {
		stats_record(&s, STATS_XACT, 1500);
		stats_record(&s, STATS_QUERY, v);
	}
	stats_record(&s, STATS_WAIT, 30);
	stats_roll_period(&s, t0 + 2 * USEC_PER_SEC);
	after_first = s.total;

	ck_assert_uint_eq(s.last_elapsed, 2 * USEC_PER_SEC);
	ck_assert_uint_eq(s.period_began, t0 + 2 * USEC_PER_SEC);
	assert_traffic_averages(&s.last_avg);
	ck_assert_mem_eq(&s.period_start, &s.total, sizeof(s.total));
	ck_assert_uint_eq(s.prev_start.xacts, 0);
	ck_assert_uint_eq(s.last[STATS_XACT].count, 100);
	ck_assert_uint_eq(hist_quantile(&s.last[STATS_XACT], 0.5), 1500);
	ck_assert_uint_eq(s.last[STATS_QUERY].count, 100);
	ck_assert_uint_eq(s.last[STATS_QUERY].min, 1);
	ck_assert_uint_eq(s.last[STATS_QUERY].max, 100);
	assert_within(hist_quantile(&s.last[STATS_QUERY], 0.9), 90, "query p90");
	ck_assert_uint_eq(s.last[STATS_WAIT].count, 1);
	ck_assert_uint_eq(hist_quantile(&s.last[STATS_WAIT], 0.99), 30);
	for (int k = 0; k < STATS_HIST_KINDS; k++)
		assert_hist_empty(&s.cur[k]);

	/* second period: 5 s of nothing */
	stats_roll_period(&s, t0 + 7 * USEC_PER_SEC);
	ck_assert_uint_eq(s.last_elapsed, 5 * USEC_PER_SEC);
	assert_zero_averages(&s.last_avg);
	ck_assert_mem_eq(&s.prev_start, &after_first, sizeof(after_first));
	ck_assert_mem_eq(&s.period_start, &after_first, sizeof(after_first));
	for (int k = 0; k < STATS_HIST_KINDS; k++) {
		assert_hist_empty(&s.cur[k]);
		assert_hist_empty(&s.last[k]);
	}

	/* third period: traffic again, only its own delta counts */
	add_traffic(&s.total);
	stats_record(&s, STATS_QUERY, 777);
	stats_roll_period(&s, t0 + 9 * USEC_PER_SEC);
	assert_traffic_averages(&s.last_avg);
	ck_assert_mem_eq(&s.prev_start, &after_first, sizeof(after_first));
	ck_assert_uint_eq(s.last[STATS_QUERY].count, 1);
	ck_assert_uint_eq(hist_quantile(&s.last[STATS_QUERY], 0.5), 777);
	assert_hist_empty(&s.last[STATS_XACT]);

	/* a clock that did not move: elapsed 0, averages 0 */
	add_traffic(&s.total);
	stats_roll_period(&s, t0 + 9 * USEC_PER_SEC);
	ck_assert_uint_eq(s.last_elapsed, 0);
	assert_zero_averages(&s.last_avg);
}
END_TEST

/* A database's averages: the sums of its pools' snapshots give the same rates. */
START_TEST(test_database_sum)
{
	static struct stats p1, p2;
	struct stats_counters from, to;
	struct stats_averages avg;

	stats_init(&p1, 0);
	stats_init(&p2, 0);
	add_traffic(&p1.total);
	stats_roll_period(&p1, 2 * USEC_PER_SEC);
	stats_roll_period(&p2, 2 * USEC_PER_SEC);
	memset(&from, 0, sizeof(from));
	memset(&to, 0, sizeof(to));
	stats_counters_add(&from, &p1.prev_start);
	stats_counters_add(&from, &p2.prev_start);
	stats_counters_add(&to, &p1.period_start);
	stats_counters_add(&to, &p2.period_start);
	stats_compute_averages(&from, &to, p1.last_elapsed, &avg);
	assert_traffic_averages(&avg);
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");

	TCase *tc = tcase_create("hist");
	tcase_add_test(tc, test_buckets_exact_below_2sub);
	tcase_add_test(tc, test_buckets_contiguous);
	tcase_add_test(tc, test_buckets_random_values);
	tcase_add_loop_test(tc, test_single_value, 0,
	                    (int)(sizeof(single_values) / sizeof(single_values[0])));
	tcase_add_test(tc, test_uniform);
	tcase_add_test(tc, test_edge_values);
	tcase_add_test(tc, test_overflow_bucket);
	tcase_add_loop_test(tc, test_random_accuracy, 0, 6);
	tcase_add_loop_test(tc, test_random_monotonic, 0, 20);
	tcase_add_loop_test(tc, test_merge, 0, 4);
	tcase_add_test(tc, test_reset);
	suite_add_tcase(s, tc);

	TCase *tc2 = tcase_create("averages");
	tcase_add_loop_test(tc2, test_averages_known, 0, (int)(sizeof(bases) / sizeof(bases[0])));
	tcase_add_test(tc2, test_averages_zero_elapsed);
	tcase_add_test(tc2, test_averages_zero_divisors);
	tcase_add_test(tc2, test_averages_big);
	tcase_add_test(tc2, test_counters_add);
	suite_add_tcase(s, tc2);

	TCase *tc3 = tcase_create("roll");
	tcase_add_test(tc3, test_roll);
	tcase_add_test(tc3, test_database_sum);
	suite_add_tcase(s, tc3);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(stats_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
