/*
 * stats: counters and latency histograms for a pool, and the arithmetic that turns
 * them into what SHOW STATS, SHOW POOLS, log_stats and /metrics print. Totals grow
 * forever; averages and percentiles describe the last completed stats_period.
 * Histograms have a fixed number of log-linear buckets, so memory per pool is
 * bounded whatever the traffic. Pure bookkeeping: no I/O, no logging.
 */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Everything counted, as totals since start (times in microseconds). */
struct stats_counters {
	uint64_t server_assignments; /* a server handed to a client */
	uint64_t xacts;
	uint64_t queries;
	uint64_t bytes_received; /* from clients */
	uint64_t bytes_sent;     /* to clients */
	uint64_t xact_time;
	uint64_t query_time;
	uint64_t wait_time;
	uint64_t client_parses; /* Parse messages from clients */
	uint64_t server_parses; /* Parse messages sent to servers */
	uint64_t binds;
	uint64_t client_logins;
	uint64_t server_logins;
};

/* Averages of one period, as PgBouncer defines them: counts and bytes per second,
 * times per transaction / per query / per waiting client (wait_time is per
 * server assignment). */
struct stats_averages {
	uint64_t server_assignments; /* per second */
	uint64_t xacts;              /* per second */
	uint64_t queries;            /* per second */
	uint64_t bytes_received;     /* per second */
	uint64_t bytes_sent;         /* per second */
	uint64_t xact_time;          /* usec per transaction */
	uint64_t query_time;         /* usec per query */
	uint64_t wait_time;          /* usec per server assignment */
	uint64_t client_parses;      /* per second */
	uint64_t server_parses;      /* per second */
	uint64_t binds;              /* per second */
	uint64_t client_logins;      /* per second */
};

/* Log-linear histogram of microsecond values: HIST_SUB buckets per power of two,
 * values from 0 to 2^HIST_POWERS usec and beyond (up to 2^(HIST_POWERS + 3); larger
 * ones land in the last bucket). Values below 2 * HIST_SUB have a bucket each; any
 * bucket is at most 1/HIST_SUB as wide as its lower bound. */
#define HIST_SUB     16
#define HIST_POWERS  36
#define HIST_BUCKETS (HIST_SUB * HIST_POWERS)

struct hist {
	uint32_t buckets[HIST_BUCKETS];
	uint64_t count;
	uint64_t min, max;
};

void hist_reset(struct hist *h);
void hist_record(struct hist *h, uint64_t usec);
/* Adds src into dst (to combine pools into a database). */
void hist_merge(struct hist *dst, const struct hist *src);
/* The value at quantile q (0 < q <= 1), clamped to [min, max]; 0 when empty. It is the
 * midpoint of the first bucket whose cumulative count reaches ceil(q * count), except
 * that the first rank gives min and the last gives max exactly. Monotonic in q. */
uint64_t hist_quantile(const struct hist *h, double q);
/* The bucket a value is counted in, and the values a bucket holds (hi of the last
 * bucket is UINT64_MAX). For exporting buckets, e.g. to /metrics. */
unsigned hist_bucket_of(uint64_t usec);
void hist_bucket_range(unsigned b, uint64_t *lo, uint64_t *hi);

enum stats_hist_kind { STATS_WAIT = 0, STATS_QUERY, STATS_XACT, STATS_HIST_KINDS };

/* One pool's statistics. */
struct stats {
	struct stats_counters total;
	struct stats_counters period_start; /* total when the current period began */
	struct stats_counters prev_start;   /* total when the last completed period began */
	usec_t last_elapsed;                /* length of the last completed period */
	struct stats_averages last_avg;     /* of the last completed period */
	struct hist cur[STATS_HIST_KINDS];  /* the period running now */
	struct hist last[STATS_HIST_KINDS]; /* the last completed period */
	usec_t period_began;
};

void stats_init(struct stats *s, usec_t now);
void stats_record(struct stats *s, enum stats_hist_kind kind, uint64_t usec);
/* Ends the current period at now: prev_start = period_start, period_start = total,
 * last_elapsed, last_avg computed, cur moved to last and reset. A database's averages
 * are stats_compute_averages over the sums of its pools' prev_start and period_start. */
void stats_roll_period(struct stats *s, usec_t now);
/* Averages between two counter snapshots over elapsed usec (elapsed 0: all zero). */
void stats_compute_averages(const struct stats_counters *from, const struct stats_counters *to,
                            usec_t elapsed, struct stats_averages *out);
/* Adds src's counters into dst (to sum pools into a database or a grand total). */
void stats_counters_add(struct stats_counters *dst, const struct stats_counters *src);

#endif
