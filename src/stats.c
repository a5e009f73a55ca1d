/*
 * stats: the arithmetic behind SHOW STATS, SHOW POOLS, log_stats and /metrics. It owns
 * the histogram bucket layout, the period roll-over and the averages, and must never
 * do I/O, log, allocate or look at a connection: callers bump the counters in
 * struct stats_counters themselves and hand latencies to stats_record().
 *
 * Histogram layout (log-linear, HIST_SUB = 16 sub-buckets per power of two):
 *   bucket 0..31 hold the values 0..31 exactly;
 *   from there on, bucket k*16 + s (k >= 1, s = 0..15) holds the values whose top five
 *   bits are 16 + s, with (k - 1) bits below them: [(16 + s) << (k - 1), (17 + s) << (k - 1)).
 * So a bucket is at most 1/16 as wide as its lower bound, and the last regular bucket
 * ends at 2^(HIST_POWERS + 3) usec; anything larger is counted in the last bucket.
 */
#include "stats.h"

#include <string.h>

/* log2(HIST_SUB): a value of power k >= 1 keeps this many bits below its leading one. */
#define HIST_SUB_BITS 4
_Static_assert(HIST_SUB == 1 << HIST_SUB_BITS, "HIST_SUB must be 1 << HIST_SUB_BITS");

unsigned hist_bucket_of(uint64_t usec)
{
	unsigned log2v, k;

	if (usec < 2 * HIST_SUB)
		return (unsigned)usec;
	log2v = 63u - (unsigned)__builtin_clzll(usec); /* >= HIST_SUB_BITS + 1 */
	k = log2v - (HIST_SUB_BITS - 1);               /* >= 2 */
	if (k >= HIST_POWERS)
		return HIST_BUCKETS - 1;
	return k * HIST_SUB + (unsigned)(usec >> (k - 1)) - HIST_SUB;
}

void hist_bucket_range(unsigned b, uint64_t *lo, uint64_t *hi)
{
	unsigned k, s;

	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	k = b / HIST_SUB;
	s = b % HIST_SUB;
	if (k == 0) {
		*lo = *hi = b;
		return;
	}
	*lo = (uint64_t)(HIST_SUB + s) << (k - 1);
	*hi = b == HIST_BUCKETS - 1 ? UINT64_MAX : *lo + ((uint64_t)1 << (k - 1)) - 1;
}

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

static void bucket_add(uint32_t *bucket, uint64_t n)
{
	uint64_t sum = *bucket + n;
	*bucket = sum > UINT32_MAX ? UINT32_MAX : (uint32_t)sum;
}

void hist_record(struct hist *h, uint64_t usec)
{
	bucket_add(&h->buckets[hist_bucket_of(usec)], 1);
	if (h->count == 0 || usec < h->min)
		h->min = usec;
	if (h->count == 0 || usec > h->max)
		h->max = usec;
	h->count++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		bucket_add(&dst->buckets[b], src->buckets[b]);
	if (dst->count == 0 || src->min < dst->min)
		dst->min = src->min;
	if (dst->count == 0 || src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
}

/*
 * The rank is taken against the sum of the buckets rather than count, so a bucket that
 * saturated (4 billion values in one period) cannot leave ranks no bucket reaches. The
 * first and last ranks are min and max exactly; any other rank is the midpoint of its
 * bucket clamped to [min, max] (in the open-ended last bucket that is max). Every step
 * is monotonic in q, so the result is too.
 */
uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t total = 0, rank, seen = 0, lo, hi, v;
	double x;
	unsigned b;

	if (h->count == 0)
		return 0;
	for (b = 0; b < HIST_BUCKETS; b++)
		total += h->buckets[b];
	x = q * (double)total;
	if (!(x > 1.0)) /* also NaN */
		return h->min;
	if (x > (double)(total - 1))
		return h->max;
	rank = (uint64_t)x; /* ceil(x), without libm */
	if ((double)rank < x)
		rank++;
	for (b = 0; b < HIST_BUCKETS; b++) {
		seen += h->buckets[b];
		if (seen >= rank)
			break;
	}
	hist_bucket_range(b, &lo, &hi);
	v = lo + (hi - lo) / 2;
	if (v < h->min)
		return h->min;
	if (v > h->max)
		return h->max;
	return v;
}

void stats_init(struct stats *s, usec_t now)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < STATS_HIST_KINDS; i++) {
		hist_reset(&s->cur[i]);
		hist_reset(&s->last[i]);
	}
	s->period_began = now;
}

void stats_record(struct stats *s, enum stats_hist_kind kind, uint64_t usec)
{
	if ((unsigned)kind < STATS_HIST_KINDS)
		hist_record(&s->cur[kind], usec);
}

void stats_roll_period(struct stats *s, usec_t now)
{
	s->prev_start = s->period_start;
	s->period_start = s->total;
	s->last_elapsed = now > s->period_began ? now - s->period_began : 0;
	stats_compute_averages(&s->prev_start, &s->period_start, s->last_elapsed, &s->last_avg);
	for (unsigned i = 0; i < STATS_HIST_KINDS; i++) {
		s->last[i] = s->cur[i];
		hist_reset(&s->cur[i]);
	}
	s->period_began = now;
}

/* to - from, or 0 if the counter went backwards (a pool left the sum between snapshots). */
static uint64_t delta(uint64_t from, uint64_t to)
{
	return to > from ? to - from : 0;
}

/*
 * floor(n * 1000000 / elapsed), saturating at UINT64_MAX. Multiplies first while that
 * cannot overflow (n below 1.8e13); otherwise divides first, which stays exact as long
 * as the remainder times a million fits, that is for any period under 213 days.
 */
static uint64_t per_second(uint64_t n, usec_t elapsed)
{
	uint64_t q, r, whole, part;

	if (elapsed == 0)
		return 0;
	if (n <= UINT64_MAX / USEC_PER_SEC)
		return n * USEC_PER_SEC / elapsed;
	q = n / elapsed;
	r = n % elapsed;
	if (q > UINT64_MAX / USEC_PER_SEC)
		return UINT64_MAX;
	whole = q * USEC_PER_SEC;
	if (r <= UINT64_MAX / USEC_PER_SEC)
		part = r * USEC_PER_SEC / elapsed;
	else
		part = r / (elapsed / USEC_PER_SEC); /* elapsed > r > 1.8e13 here */
	return whole > UINT64_MAX - part ? UINT64_MAX : whole + part;
}

static uint64_t per_item(uint64_t total, uint64_t items)
{
	return items == 0 ? 0 : total / items;
}

void stats_compute_averages(const struct stats_counters *from, const struct stats_counters *to,
                            usec_t elapsed, struct stats_averages *out)
{
	uint64_t assignments = delta(from->server_assignments, to->server_assignments);
	uint64_t xacts = delta(from->xacts, to->xacts);
	uint64_t queries = delta(from->queries, to->queries);

	memset(out, 0, sizeof(*out));
	if (elapsed == 0)
		return;
	out->server_assignments = per_second(assignments, elapsed);
	out->xacts = per_second(xacts, elapsed);
	out->queries = per_second(queries, elapsed);
	out->bytes_received = per_second(delta(from->bytes_received, to->bytes_received), elapsed);
	out->bytes_sent = per_second(delta(from->bytes_sent, to->bytes_sent), elapsed);
	out->xact_time = per_item(delta(from->xact_time, to->xact_time), xacts);
	out->query_time = per_item(delta(from->query_time, to->query_time), queries);
	out->wait_time = per_item(delta(from->wait_time, to->wait_time), assignments);
	out->client_parses = per_second(delta(from->client_parses, to->client_parses), elapsed);
	out->server_parses = per_second(delta(from->server_parses, to->server_parses), elapsed);
	out->binds = per_second(delta(from->binds, to->binds), elapsed);
	out->client_logins = per_second(delta(from->client_logins, to->client_logins), elapsed);
}

void stats_counters_add(struct stats_counters *dst, const struct stats_counters *src)
{
	dst->server_assignments += src->server_assignments;
	dst->xacts += src->xacts;
	dst->queries += src->queries;
	dst->bytes_received += src->bytes_received;
	dst->bytes_sent += src->bytes_sent;
	dst->xact_time += src->xact_time;
	dst->query_time += src->query_time;
	dst->wait_time += src->wait_time;
	dst->client_parses += src->client_parses;
	dst->server_parses += src->server_parses;
	dst->binds += src->binds;
	dst->client_logins += src->client_logins;
	dst->server_logins += src->server_logins;
}
