/*
 * dns: c-ares in the loop, and the cache of host names (see dns.h for the policy).
 *
 * c-ares owns its sockets: sock_state() turns its interest into loop watches (and drops
 * the watch before c-ares closes the socket), on_fd() and on_timer() hand the events
 * back through ares_process_fd(), and every call into c-ares is followed by
 * after_ares(), which re-arms the one timer from ares_timeout(). c-ares may answer
 * inside ares_getaddrinfo() itself (the hosts file), so answers only update the cache
 * and raise flags; the hooks run from deliver(), in loop context: at the end of on_fd()
 * and on_timer(), or from a zero-delay timer when the answer came inside dns_lookup().
 * That keeps a pool that is busy launching servers from being re-entered.
 *
 * Entries are never dropped while running: there is one per distinct host name of the
 * configuration, and their number stays small, so a list is enough.
 */
#include "dns.h"

#include <ares.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "core.h"
#include "log.h"
#include "loop.h"
#include "netutil.h"

#define DNS_CLASS_IN 1 /* ns_c_in */
#define DNS_TYPE_SOA 6 /* ns_t_soa */

struct dns_zone {
	struct list node; /* dns->zones */
	struct dns *dns;
	char *name;
	uint32_t serial;
	bool have_serial;
	bool in_flight;
	int n_hosts;
};

struct dns_host {
	struct list node; /* dns->hosts */
	struct dns *dns;
	struct dns_zone *zone; /* NULL: the name has no dot */
	char *name;
	struct sockaddr_storage *addrs; /* port 0 */
	size_t n_addrs;
	size_t next;     /* round robin */
	char *error;     /* the last lookup's failure; NULL when it answered */
	usec_t answered; /* loop time of the last answer or failure; 0: none yet */
	bool in_flight;
	/* owed to the hooks */
	bool notify;
	struct sockaddr_storage *gone;
	size_t n_gone;
};

struct dns {
	struct core *core;
	struct dns_hooks hooks;
	ares_channel chan;
	struct loop_timer timer;        /* ares_timeout() */
	struct loop_timer notify_timer; /* deliver() for answers that came inside dns_lookup() */
	struct loop_timer zone_timer;   /* dns_zone_check_period */
	struct list hosts;
	struct list zones;
	int n_hosts, n_zones;
	int queries;
	uint64_t lookups;
	bool delivering;
	bool freeing;
};

static struct loop *dns_loop(const struct dns *dns)
{
	return dns->core->loop;
}

/* --- c-ares in the loop --- */

static void deliver(struct dns *dns);

static void on_timer(struct loop *l, struct loop_timer *t, void *arg);

/* After every call into c-ares: its next timeout may have moved. */
static void after_ares(struct dns *dns)
{
	struct timeval tv;
	if (dns->freeing)
		return;
	if (!ares_timeout(dns->chan, NULL, &tv)) {
		loop_timer_stop(dns_loop(dns), &dns->timer);
		return;
	}
	usec_t after = (usec_t)tv.tv_sec * USEC_PER_SEC + (usec_t)tv.tv_usec;
	loop_timer_start(dns_loop(dns), &dns->timer, after, 0, on_timer, dns);
}

static void on_fd(struct loop *l, int fd, int events, void *arg)
{
	struct dns *dns = arg;
	(void)l;
	/* an error is read by c-ares, which then closes or retries the socket */
	ares_socket_t r = (events & (LOOP_READ | LOOP_ERROR)) ? fd : ARES_SOCKET_BAD;
	ares_socket_t w = (events & LOOP_WRITE) ? fd : ARES_SOCKET_BAD;
	ares_process_fd(dns->chan, r, w);
	after_ares(dns);
	deliver(dns);
}

static void on_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct dns *dns = arg;
	(void)l;
	(void)t;
	ares_process_fd(dns->chan, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	after_ares(dns);
	deliver(dns);
}

static void on_notify_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	deliver(arg);
}

/* c-ares's interest in one of its sockets; none at all means it is about to close it. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	int mask = (readable ? LOOP_READ : 0) | (writable ? LOOP_WRITE : 0);
	if (!mask) {
		loop_unwatch(dns_loop(dns), fd);
		return;
	}
	if (!loop_watch(dns_loop(dns), fd, mask, on_fd, dns))
		log_warning("dns: cannot watch a resolver socket: %s", strerror(errno));
}

/* --- the cache --- */

static usec_t host_ttl(const struct dns *dns, const struct dns_host *h)
{
	const struct config *cfg = dns->core->cfg;
	return h->error ? cfg->dns_nxdomain_ttl : cfg->dns_max_ttl;
}

/*
 * An answer is good for the loop iteration it arrived in, even with a ttl of 0: the
 * hooks run in that iteration, and whoever waited for the answer must get it rather
 * than start the next lookup.
 */
static bool host_expired(const struct dns *dns, const struct dns_host *h)
{
	return !h->answered || loop_now(dns_loop(dns)) - h->answered > host_ttl(dns, h);
}

static struct dns_host *host_find(struct dns *dns, const char *name)
{
	struct list *it;
	list_for_each(it, &dns->hosts)
	{
		struct dns_host *h = list_entry(it, struct dns_host, node);
		if (strcasecmp(h->name, name) == 0)
			return h;
	}
	return NULL;
}

static struct dns_zone *zone_get(struct dns *dns, const char *name)
{
	struct list *it;
	list_for_each(it, &dns->zones)
	{
		struct dns_zone *z = list_entry(it, struct dns_zone, node);
		if (strcasecmp(z->name, name) == 0)
			return z;
	}
	struct dns_zone *z = xcalloc(1, sizeof(*z));
	z->dns = dns;
	z->name = xstrdup(name);
	list_add_tail(&dns->zones, &z->node);
	dns->n_zones++;
	return z;
}

static struct dns_host *host_add(struct dns *dns, const char *name)
{
	struct dns_host *h = xcalloc(1, sizeof(*h));
	h->dns = dns;
	h->name = xstrdup(name);
	const char *dot = strchr(name, '.');
	if (dot && dot[1]) {
		h->zone = zone_get(dns, dot + 1);
		h->zone->n_hosts++;
	}
	list_add_tail(&dns->hosts, &h->node);
	dns->n_hosts++;
	return h;
}

static bool addr_in(const struct sockaddr_storage *a, const struct sockaddr_storage *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (net_same_ip(a, &set[i]))
			return true;
	return false;
}

static void addrs_str(const struct sockaddr_storage *addrs, size_t n, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++) {
		char ip[64];
		int k = snprintf(buf + used, len - used, "%s%s", i ? "," : "",
		                 net_ip_str(&addrs[i], ip, sizeof(ip)));
		if (k < 0)
			break;
		used += (size_t)k;
	}
}

/* The IPv4 and IPv6 addresses of an answer, without duplicates, in c-ares's order. */
static size_t collect_addrs(const struct ares_addrinfo *res, struct sockaddr_storage **out)
{
	size_t n = 0, cap = 0;
	struct sockaddr_storage *v = NULL;
	for (const struct ares_addrinfo_node *ai = res ? res->nodes : NULL; ai; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(struct sockaddr_storage))
			continue;
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		net_set_port(&ss, 0);
		if (addr_in(&ss, v, n))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = ss;
	}
	*out = v;
	return n;
}

/* A refresh answered: remember which old addresses are gone, for addrs_gone. */
static void host_set_addrs(struct dns_host *h, struct sockaddr_storage *addrs, size_t n)
{
	bool changed = n != h->n_addrs;
	for (size_t i = 0; i < h->n_addrs; i++) {
		if (addr_in(&h->addrs[i], addrs, n))
			continue;
		changed = true;
		if (addr_in(&h->addrs[i], h->gone, h->n_gone))
			continue;
		h->gone = xrealloc(h->gone, (h->n_gone + 1) * sizeof(*h->gone));
		h->gone[h->n_gone++] = h->addrs[i];
	}
	for (size_t i = 0; i < n && !changed; i++)
		changed = !addr_in(&addrs[i], h->addrs, h->n_addrs);
	if (changed && h->n_addrs) {
		char was[512], now[512];
		addrs_str(h->addrs, h->n_addrs, was, sizeof(was));
		addrs_str(addrs, n, now, sizeof(now));
		log_info("dns: %s now resolves to %s (was %s)", h->name, now, was);
	}
	free(h->addrs);
	h->addrs = addrs;
	h->n_addrs = n;
	if (h->next >= n)
		h->next = 0;
}

static void host_answer(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_host *h = arg;
	struct dns *dns = h->dns;
	(void)timeouts;
	if (dns->freeing) {
		if (res)
			ares_freeaddrinfo(res);
		return;
	}
	h->in_flight = false;
	dns->queries--;
	h->answered = loop_now(dns_loop(dns));
	struct sockaddr_storage *addrs = NULL;
	size_t n = status == ARES_SUCCESS ? collect_addrs(res, &addrs) : 0;
	if (res)
		ares_freeaddrinfo(res);
	if (n) {
		free(h->error);
		h->error = NULL;
		host_set_addrs(h, addrs, n);
		log_debug("dns: %s resolved (%zu address%s)", h->name, n, n == 1 ? "" : "es");
	} else {
		free(addrs);
		const char *why = status == ARES_SUCCESS ? "no address" : ares_strerror(status);
		/* "no such name" and "no address" are answers; anything else may pass */
		bool answer =
		    status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA;
		free(h->error);
		h->error = xstrdup(why);
		if (answer && h->n_addrs)
			host_set_addrs(h, NULL, 0); /* its servers' addresses are gone too */
		log_warning("dns: lookup of %s failed: %s%s", h->name, why,
		            h->n_addrs ? "; keeping its previous addresses" : "");
	}
	h->notify = true;
	if (!dns->delivering && !loop_timer_armed(&dns->notify_timer))
		loop_timer_start(dns_loop(dns), &dns->notify_timer, 0, 0, on_notify_timer, dns);
}

static void host_query(struct dns_host *h)
{
	struct dns *dns = h->dns;
	struct ares_addrinfo_hints hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	h->in_flight = true;
	dns->queries++;
	dns->lookups++;
	log_debug("dns: looking up %s", h->name);
	ares_getaddrinfo(dns->chan, h->name, NULL, &hints, host_answer, h);
	after_ares(dns);
}

/*
 * Runs the hooks owed. A hook may start lookups that answer at once and owe more, and
 * hosts may be added at the tail meanwhile (never removed): pass again until a pass finds
 * nothing.
 */
static void deliver(struct dns *dns)
{
	if (dns->delivering || dns->freeing)
		return;
	dns->delivering = true;
	loop_timer_stop(dns_loop(dns), &dns->notify_timer);
	bool again = true;
	while (again) {
		again = false;
		struct list *it;
		list_for_each(it, &dns->hosts)
		{
			struct dns_host *h = list_entry(it, struct dns_host, node);
			if (h->n_gone) {
				struct sockaddr_storage *gone = h->gone;
				size_t n = h->n_gone;
				h->gone = NULL;
				h->n_gone = 0;
				if (dns->hooks.addrs_gone)
					dns->hooks.addrs_gone(dns->hooks.arg, h->name, gone, n);
				free(gone);
				again = true;
			}
			if (h->notify) {
				h->notify = false;
				if (dns->hooks.resolved)
					dns->hooks.resolved(dns->hooks.arg, h->name);
				again = true;
			}
		}
	}
	dns->delivering = false;
}

/* --- zones --- */

static void host_refresh_zone(struct dns *dns, struct dns_zone *z)
{
	struct list *it;
	list_for_each(it, &dns->hosts)
	{
		struct dns_host *h = list_entry(it, struct dns_host, node);
		if (h->zone == z && !h->in_flight && h->answered)
			host_query(h);
	}
}

static void zone_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_zone *z = arg;
	struct dns *dns = z->dns;
	struct ares_soa_reply *soa = NULL;
	(void)timeouts;
	if (dns->freeing)
		return;
	z->in_flight = false;
	dns->queries--;
	if (status == ARES_SUCCESS)
		status = ares_parse_soa_reply(abuf, alen, &soa);
	if (status != ARES_SUCCESS) {
		log_debug("dns: no serial for zone %s: %s", z->name, ares_strerror(status));
		return;
	}
	uint32_t serial = soa->serial;
	ares_free_data(soa);
	/* serial arithmetic (RFC 1982): newer when ahead by less than half the space */
	if (!z->have_serial) {
		z->have_serial = true;
		z->serial = serial;
	} else if ((int32_t)(serial - z->serial) > 0) {
		log_info("dns: zone %s serial %u -> %u: looking up its host names again", z->name,
		         z->serial, serial);
		z->serial = serial;
		host_refresh_zone(dns, z);
	}
}

static void on_zone_timer(struct loop *l, struct loop_timer *t, void *arg)
{
	struct dns *dns = arg;
	struct list *it;
	(void)l;
	(void)t;
	list_for_each(it, &dns->zones)
	{
		struct dns_zone *z = list_entry(it, struct dns_zone, node);
		if (z->in_flight || !z->n_hosts)
			continue;
		z->in_flight = true;
		dns->queries++;
		ares_query(dns->chan, z->name, DNS_CLASS_IN, DNS_TYPE_SOA, zone_answer, z);
	}
	after_ares(dns);
	deliver(dns);
}

void dns_maintain(struct dns *dns)
{
	if (!dns)
		return;
	usec_t period = dns->core->cfg->dns_zone_check_period;
	if (!period) {
		loop_timer_stop(dns_loop(dns), &dns->zone_timer);
		return;
	}
	if (loop_timer_armed(&dns->zone_timer) && dns->zone_timer.interval == period)
		return;
	loop_timer_start(dns_loop(dns), &dns->zone_timer, period, period, on_zone_timer, dns);
}

/* --- API --- */

struct dns *dns_new(struct core *core, const struct dns_hooks *hooks, char *err, size_t errlen)
{
	const char *resolv = core->cfg->resolv_conf;
	struct ares_options opts;
	int mask = ARES_OPT_SOCK_STATE_CB;
	int rc = ares_library_init(ARES_LIB_INIT_ALL);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		return NULL;
	}
	if (resolv && resolv[0] && access(resolv, R_OK) < 0) {
		snprintf(err, errlen, "resolv_conf %s: %s", resolv, strerror(errno));
		ares_library_cleanup();
		return NULL;
	}
	struct dns *dns = xcalloc(1, sizeof(*dns));
	dns->core = core;
	if (hooks)
		dns->hooks = *hooks;
	list_init(&dns->hosts);
	list_init(&dns->zones);
	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = sock_state;
	opts.sock_state_cb_data = dns;
	if (resolv && resolv[0]) {
		opts.resolvconf_path = xstrdup(resolv);
		mask |= ARES_OPT_RESOLVCONF;
	}
	rc = ares_init_options(&dns->chan, &opts, mask);
	free(opts.resolvconf_path);
	if (rc != ARES_SUCCESS) {
		snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
		free(dns);
		ares_library_cleanup();
		return NULL;
	}
	dns_maintain(dns);
	return dns;
}

void dns_free(struct dns *dns)
{
	if (!dns)
		return;
	dns->freeing = true;
	ares_destroy(dns->chan); /* answers every query with ARES_EDESTRUCTION */
	ares_library_cleanup();
	loop_timer_stop(dns_loop(dns), &dns->timer);
	loop_timer_stop(dns_loop(dns), &dns->notify_timer);
	loop_timer_stop(dns_loop(dns), &dns->zone_timer);
	struct list *it;
	while ((it = list_pop_head(&dns->hosts))) {
		struct dns_host *h = list_entry(it, struct dns_host, node);
		free(h->name);
		free(h->addrs);
		free(h->error);
		free(h->gone);
		free(h);
	}
	while ((it = list_pop_head(&dns->zones))) {
		struct dns_zone *z = list_entry(it, struct dns_zone, node);
		free(z->name);
		free(z);
	}
	free(dns);
}

enum dns_result dns_lookup(struct dns *dns, const char *name, struct sockaddr_storage *out,
                           char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!dns) {
		snprintf(err, errlen, "could not resolve host name \"%s\": no resolver", name);
		return DNS_FAILED;
	}
	struct dns_host *h = host_find(dns, name);
	if (!h)
		h = host_add(dns, name);
	if (!h->in_flight && host_expired(dns, h))
		host_query(h); /* may have answered already */
	if (h->n_addrs) {
		*out = h->addrs[h->next];
		h->next = (h->next + 1) % h->n_addrs;
		return DNS_OK;
	}
	if (h->in_flight) {
		snprintf(err, errlen, "looking up host name \"%s\"", name);
		return DNS_PENDING;
	}
	snprintf(err, errlen, "could not resolve host name \"%s\": %s", name,
	         h->error ? h->error : "no address");
	return DNS_FAILED;
}

enum dns_result dns_resolve_server(struct dns *dns, const char *host, int port,
                                   const char *unix_prefix, const char *default_dir,
                                   struct sockaddr_storage *out, char *err, size_t errlen)
{
	switch (net_server_addr(host, port, unix_prefix, default_dir, out, err, errlen)) {
	case NET_ADDR_DONE:
		return DNS_OK;
	case NET_ADDR_ERROR:
		return DNS_FAILED;
	case NET_ADDR_NAME:
		break;
	}
	enum dns_result r = dns_lookup(dns, host, out, err, errlen);
	if (r == DNS_OK)
		net_set_port(out, port);
	return r;
}

void dns_walk_hosts(struct dns *dns, void (*cb)(void *arg, const struct dns_host_info *h),
                    void *arg)
{
	struct list *it;
	if (!dns)
		return;
	usec_t now = loop_now(dns_loop(dns));
	list_for_each(it, &dns->hosts)
	{
		struct dns_host *h = list_entry(it, struct dns_host, node);
		usec_t ttl = host_ttl(dns, h);
		usec_t left = h->answered && now - h->answered < ttl ? h->answered + ttl - now : 0;
		struct dns_host_info info = {
		    .name = h->name,
		    .ttl = (long long)(left / USEC_PER_SEC),
		    .addrs = h->addrs,
		    .n_addrs = h->n_addrs,
		    .error = h->error,
		};
		cb(arg, &info);
	}
}

void dns_walk_zones(struct dns *dns,
                    void (*cb)(void *arg, const char *zone, uint32_t serial, int n_hosts),
                    void *arg)
{
	struct list *it;
	if (!dns)
		return;
	list_for_each(it, &dns->zones)
	{
		struct dns_zone *z = list_entry(it, struct dns_zone, node);
		cb(arg, z->name, z->serial, z->n_hosts);
	}
}

void dns_get_counts(const struct dns *dns, struct dns_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (!dns)
		return;
	out->names = dns->n_hosts;
	out->zones = dns->n_zones;
	out->queries = dns->queries;
	out->lookups = dns->lookups;
	const struct list *it;
	list_for_each(it, &dns->hosts)
	{
		const struct dns_host *h = list_entry(it, const struct dns_host, node);
		if (h->in_flight && !h->n_addrs)
			out->pending++;
	}
}
