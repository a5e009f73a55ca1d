/*
 * dns: host names of server entries, resolved with c-ares inside the event loop and
 * cached. c-ares tells us which sockets to watch (its sock_state_cb becomes loop
 * watches) and ares_timeout() drives one loop timer, so nothing ever blocks.
 *
 * An answer is kept for dns_max_ttl (the record's own TTL is ignored, as in PgBouncer);
 * a failure for dns_nxdomain_ttl. A name that has resolved keeps serving its addresses
 * while a refresh runs, so after the first answer no connection waits for the resolver;
 * addresses are handed out round robin. When a refresh finds that addresses are gone,
 * hooks.addrs_gone is told, so servers connected to them can close when idle. A
 * temporary failure (timeout, server failure) keeps the last addresses; "no such name"
 * and "no address" replace them. With dns_zone_check_period, the SOA serial of each
 * zone (the part of a name after its first dot) is polled and a newer serial looks up
 * every name of the zone again.
 *
 * The resolver knows nothing of pools: it calls the hooks, from loop context only (never
 * from inside dns_lookup).
 */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util.h"

struct core;
struct dns;

enum dns_result {
	DNS_OK,      /* *out is set */
	DNS_PENDING, /* a lookup runs; hooks.resolved(host) is called when it ends */
	DNS_FAILED,  /* err says why; a failure is cached for dns_nxdomain_ttl */
};

struct dns_hooks {
	/* a lookup of host ended, with addresses or not: whoever waits may try again */
	void (*resolved)(void *arg, const char *host);
	/* a refresh of host no longer lists these addresses */
	void (*addrs_gone)(void *arg, const char *host, const struct sockaddr_storage *gone,
	                   size_t n);
	void *arg;
};

/*
 * Reads core->cfg when called (resolv_conf) and whenever it needs a ttl, so RELOAD and SET
 * of dns_max_ttl, dns_nxdomain_ttl and dns_zone_check_period apply at once. Uses
 * core->loop. NULL with err when c-ares cannot start.
 */
struct dns *dns_new(struct core *core, const struct dns_hooks *hooks, char *err,
                    size_t errlen) WARN_UNUSED;
/* Cancels every lookup (no hook is called) and frees the cache. NULL is fine. */
void dns_free(struct dns *dns);
/* Periodic (the janitor): follows changes of dns_zone_check_period. */
void dns_maintain(struct dns *dns);

/* A host name's address (port 0), from the cache or a lookup started now. */
enum dns_result dns_lookup(struct dns *dns, const char *host, struct sockaddr_storage *out,
                           char *err, size_t errlen);
/*
 * A server entry's address with its port: unix sockets and numeric addresses at once
 * (net_server_addr), host names through dns_lookup. dns may be NULL: then host names fail.
 */
enum dns_result dns_resolve_server(struct dns *dns, const char *host, int port,
                                   const char *unix_prefix, const char *default_dir,
                                   struct sockaddr_storage *out, char *err, size_t errlen);

/* For SHOW DNS_HOSTS, DNS_ZONES and LISTS. */
struct dns_host_info {
	const char *name;
	long long ttl; /* whole seconds until the next lookup (as PgBouncer shows it) */
	const struct sockaddr_storage *addrs;
	size_t n_addrs;
	const char *error; /* why the last lookup failed; NULL when it answered */
};
void dns_walk_hosts(struct dns *dns, void (*cb)(void *arg, const struct dns_host_info *h),
                    void *arg);
void dns_walk_zones(struct dns *dns,
                    void (*cb)(void *arg, const char *zone, uint32_t serial, int n_hosts),
                    void *arg);
struct dns_counts {
	int names;        /* cached host names */
	int zones;        /* zones of those names */
	int queries;      /* c-ares queries in flight (names and SOA) */
	int pending;      /* names with no address yet and a lookup running */
	uint64_t lookups; /* host name lookups started since start */
};
void dns_get_counts(const struct dns *dns, struct dns_counts *out);

#endif
