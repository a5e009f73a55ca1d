/*
 * listen: binds and accepts. "*" in listen_addr means every IPv4 and IPv6 address.
 * Each accepted socket becomes a client conn in the core's login list, with the
 * client_login_timeout running, and is handed to its protocol module.
 *
 * Out of descriptors is a state, not an error. From start-up the module holds
 * LISTEN_RESERVE_FDS placeholder descriptors (on /dev/null) that nothing else can
 * take, so accept() fails with EMFILE/ENFILE while the reserve is still whole. Then a
 * placeholder is closed and the next client accepted into its descriptor: a probe.
 * The probe is read as any client, but its protocol module lets it log in to the
 * admin console only (listen_reserve_probing/keep/refuse): at most RESERVE_CONSOLES
 * console logins keep their descriptor until they leave; anything else is answered
 * "too many connections" (ERR_OUT_OF_DESCRIPTORS) once its startup packet is in, so the
 * protocol's opening (an SSL request answered 'N') goes as usual and a real client
 * shows the message, and is closed, and its placeholder reopened at once. This goes
 * on until the accept queue is empty. With every placeholder lent out, the listener
 * waits for the first probe to end (normally one round trip; a probe that sends
 * nothing is failed after RESERVE_PROBE_TIMEOUT), so no client waits in the queue
 * for a descriptor that will not come. Existing clients and servers are served
 * throughout. The episode is logged when it starts, at most every RESERVE_LOG_EVERY
 * while it lasts, and when a plain accept succeeds again.
 *
 * ENOBUFS/ENOMEM, and a placeholder that cannot be reopened (ENFILE: another process
 * took the descriptor), pause accepting on the listener for ACCEPT_RETRY instead of
 * spinning.
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "core.h"
#include "log.h"
#include "netutil.h"
#include "pool.h"
#include "proto.h"

struct listener {
	struct list node;
	struct core *core;
	const struct proto_ops *proto;
	int fd;
	char *unix_path; /* to unlink on close */
	char name[160];
	struct loop_timer retry;
	bool wants_slot; /* paused until a reserved descriptor comes back */
	usec_t warned;   /* when accept() trouble was last logged */
};

#define RESERVE_CONSOLES      (LISTEN_RESERVE_FDS / 3) /* the rest always serves probes */
#define RESERVE_PROBE_TIMEOUT (3 * USEC_PER_SEC)
#define RESERVE_LOG_EVERY     (10 * USEC_PER_SEC)
#define ACCEPT_RETRY          (USEC_PER_SEC / 4)

struct reserve_slot {
	int fd;              /* the placeholder, or -1 */
	struct conn *client; /* the client the descriptor is lent to, or NULL */
	bool kept;           /* the client logs in to the console */
};

/* One per process: descriptors are a process resource. */
static struct {
	struct core *core; /* NULL while closed */
	struct reserve_slot slot[LISTEN_RESERVE_FDS];
	int n_lent, n_kept;
	int n_missing; /* placeholders that could not be reopened yet */
	struct loop_timer refill;
	bool starved;     /* accept() hit the limit and no plain accept worked since */
	uint64_t refused; /* in this episode */
	usec_t logged;    /* when the episode was last logged */
} fdr;

static void login_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	client_fail_kind(arg, ERR_LOGIN_TIMEOUT, "client_login_timeout");
}

static void accept_resume(struct loop *l, struct loop_timer *t, void *arg)
{
	struct listener *ls = arg;
	(void)t;
	ls->wants_slot = false;
	if (ls->fd >= 0 && !ls->core->suspended && !loop_set_mask(l, ls->fd, LOOP_READ))
		log_error("cannot resume listening on %s", ls->name);
}

/* --- the descriptor reserve --- */

static int placeholder_open(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void refill_retry(struct loop *l, struct loop_timer *t, void *arg);

/* Reopens every placeholder that is neither held nor lent; true when all are held. */
static bool reserve_refill(void)
{
	int missing = 0;
	if (!fdr.core)
		return true;
	for (int i = 0; i < LISTEN_RESERVE_FDS; i++) {
		struct reserve_slot *s = &fdr.slot[i];
		if (s->fd < 0 && !s->client && (s->fd = placeholder_open()) < 0)
			missing++;
	}
	fdr.n_missing = missing;
	if (missing && !loop_timer_armed(&fdr.refill))
		loop_timer_start(fdr.core->loop, &fdr.refill, ACCEPT_RETRY, 0, refill_retry, NULL);
	return missing == 0;
}

static void refill_retry(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	(void)arg;
	(void)reserve_refill();
}

static bool reserve_open(struct core *core)
{
	fdr.core = core;
	for (int i = 0; i < LISTEN_RESERVE_FDS; i++)
		fdr.slot[i] = (struct reserve_slot){.fd = -1};
	fdr.n_lent = fdr.n_kept = 0;
	if (reserve_refill())
		return true;
	log_error("cannot hold %d spare descriptors: %s", LISTEN_RESERVE_FDS, strerror(errno));
	return false;
}

static void reserve_close(void)
{
	if (!fdr.core)
		return;
	loop_timer_stop(fdr.core->loop, &fdr.refill);
	for (int i = 0; i < LISTEN_RESERVE_FDS; i++) {
		if (fdr.slot[i].fd >= 0)
			close(fdr.slot[i].fd);
		fdr.slot[i] = (struct reserve_slot){.fd = -1};
	}
	fdr.n_lent = fdr.n_kept = 0;
	fdr.core = NULL;
}

static struct reserve_slot *slot_of(const struct conn *c)
{
	if (!fdr.n_lent || !c)
		return NULL;
	for (int i = 0; i < LISTEN_RESERVE_FDS; i++)
		if (fdr.slot[i].client == c)
			return &fdr.slot[i];
	return NULL;
}

static struct reserve_slot *slot_to_lend(void)
{
	for (int i = 0; i < LISTEN_RESERVE_FDS; i++)
		if (fdr.slot[i].fd >= 0 && !fdr.slot[i].client)
			return &fdr.slot[i];
	return NULL;
}

static void episode_log(struct listener *ls, int err)
{
	usec_t now = loop_now(ls->core->loop);
	if (!fdr.starved) {
		fdr.starved = true;
		fdr.refused = 0;
		fdr.logged = now;
		log_warning("accept() on %s: %s: refusing new clients (console logins excepted) "
		            "until descriptors free up",
		            ls->name, strerror(err));
	} else if (now - fdr.logged >= RESERVE_LOG_EVERY) {
		fdr.logged = now;
		log_warning("still out of file descriptors: %llu clients refused so far",
		            (unsigned long long)fdr.refused);
	}
}

static void episode_over(void)
{
	fdr.starved = false;
	log_info("file descriptors available again: %llu clients were refused while out of them",
	         (unsigned long long)fdr.refused);
}

bool listen_reserve_probing(const struct conn *c)
{
	const struct reserve_slot *s = slot_of(c);
	return s && !s->kept;
}

bool listen_reserve_keep(struct conn *c)
{
	struct reserve_slot *s = slot_of(c);
	const struct config *cfg = c->core->cfg;
	if (!s || s->kept)
		return true;
	if (fdr.n_kept >= RESERVE_CONSOLES)
		return false;
	s->kept = true;
	fdr.n_kept++;
	conn_log(c, LOG_LVL_INFO, "console login on a reserved descriptor");
	loop_timer_stop(c->core->loop, &c->timer);
	if (cfg->client_login_timeout)
		loop_timer_start(c->core->loop, &c->timer, cfg->client_login_timeout, 0,
		                 login_expired, c);
	return true;
}

void listen_reserve_refuse(struct conn *c)
{
	fdr.refused++;
	conn_log(c, LOG_LVL_DEBUG, "refused: out of file descriptors");
	client_fail_kind(c, ERR_OUT_OF_DESCRIPTORS, LISTEN_REFUSE_MSG);
	listen_reserve_return(c);
}

void listen_reserve_return(struct conn *c)
{
	struct reserve_slot *s = slot_of(c);
	struct list *it;
	if (!s)
		return;
	if (s->kept)
		fdr.n_kept--;
	s->client = NULL;
	s->kept = false;
	fdr.n_lent--;
	/* its socket is closed by now: take the descriptor back before anyone else does */
	(void)reserve_refill();
	if (s->fd < 0)
		return;
	list_for_each(it, &fdr.core->listeners)
	{
		struct listener *ls = list_entry(it, struct listener, node);
		if (ls->wants_slot) {
			loop_timer_stop(fdr.core->loop, &ls->retry);
			accept_resume(fdr.core->loop, &ls->retry, ls);
		}
	}
}

static struct conn *take_client(struct listener *ls, int fd, const struct sockaddr_storage *addr,
                                bool probe)
{
	struct core *core = ls->core;
	const struct config *cfg = core->cfg;
	struct conn *c = conn_new(core, fd, false);
	c->proto = ls->proto;
	c->addr = *addr;
	socklen_t len = sizeof(c->local_addr);
	getsockname(fd, (struct sockaddr *)&c->local_addr, &len);
	if (addr->ss_family != AF_UNIX)
		net_tune_tcp(fd, cfg);
	c->state = CL_LOGIN;
	list_add_tail(&core->login_clients, &c->node);
	core->n_clients++;
	if (!conn_watch(c, false)) {
		client_close(c, "cannot watch socket");
		return NULL;
	}
	usec_t timeout = cfg->client_login_timeout;
	if (probe && (!timeout || timeout > RESERVE_PROBE_TIMEOUT))
		timeout = RESERVE_PROBE_TIMEOUT;
	if (timeout)
		loop_timer_start(core->loop, &c->timer, timeout, 0, login_expired, c);
	/* probes are counted in the episode's summary lines instead: a storm would flood */
	if (cfg->log_connections && (!probe || log_enabled(LOG_LVL_DEBUG))) {
		char a[128];
		log_msg(probe ? LOG_LVL_DEBUG : LOG_LVL_INFO, "C-%llu: new connection from %s%s",
		        (unsigned long long)c->id, conn_addr_str(addr, a, sizeof(a)),
		        probe ? " (on a reserved descriptor)" : "");
	}
	ls->proto->client_accepted(c);
	return c->state == CL_JUSTFREE ? NULL : c;
}

/* Stops accepting on ls for ACCEPT_RETRY; the queue waits in the kernel meanwhile. */
static void accept_pause(struct listener *ls, int err)
{
	struct loop *l = ls->core->loop;
	usec_t now = loop_now(l);
	if (err && (!ls->warned || now - ls->warned >= RESERVE_LOG_EVERY)) {
		ls->warned = now;
		log_warning("accept() on %s: %s; pausing accepts for a moment", ls->name,
		            strerror(err));
	}
	if (loop_set_mask(l, ls->fd, 0))
		loop_timer_start(l, &ls->retry, ACCEPT_RETRY, 0, accept_resume, ls);
}

/* accept() failed with EMFILE/ENFILE: serve the queue from the reserve (top comment). */
static void accept_starved(struct listener *ls, int err)
{
	episode_log(ls, err);
	for (int i = 0; i < 64 && ls->fd >= 0; i++) {
		struct reserve_slot *s = slot_to_lend();
		if (!s) {
			/* resumed when a probe ends; the timer in case a placeholder is missing */
			ls->wants_slot = true;
			accept_pause(ls, 0);
			return;
		}
		close(s->fd);
		s->fd = -1;
		struct sockaddr_storage addr = {0};
		socklen_t len = sizeof(addr);
		int cfd =
		    accept4(ls->fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			int e = errno;
			(void)reserve_refill();
			if (e == EAGAIN || e == EWOULDBLOCK)
				return;
			if (e != EINTR && e != ECONNABORTED) {
				accept_pause(ls, e);
				return;
			}
			continue;
		}
		struct conn *c = take_client(ls, cfd, &addr, true);
		if (c) {
			s->client = c;
			fdr.n_lent++;
		} else {
			(void)reserve_refill();
		}
	}
}

static void accept_ready(struct loop *l, int fd, int events, void *arg)
{
	struct listener *ls = arg;
	(void)l;
	(void)events;
	if (fdr.n_missing)
		(void)reserve_refill();
	/* a bounded batch per wake-up, so one listener cannot starve the rest */
	for (int i = 0; i < 32; i++) {
		struct sockaddr_storage addr = {0};
		socklen_t len = sizeof(addr);
		int cfd = accept4(fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			int err = errno;
			if (err == EMFILE || err == ENFILE)
				accept_starved(ls, err);
			else if (err == ENOBUFS || err == ENOMEM)
				accept_pause(ls, err);
			else if (err == EINTR || err == ECONNABORTED)
				continue;
			else if (err != EAGAIN && err != EWOULDBLOCK)
				log_warning("accept() on %s: %s", ls->name, strerror(err));
			return;
		}
		if (fdr.starved)
			episode_over();
		(void)take_client(ls, cfd, &addr, false);
		if (ls->fd < 0)
			return; /* the new client made us stop listening */
	}
}

static bool add_listener(struct core *core, const struct proto_ops *proto, int fd, const char *name,
                         const char *unix_path)
{
	struct listener *ls = xcalloc(1, sizeof(*ls));
	ls->core = core;
	ls->proto = proto;
	ls->fd = fd;
	ls->unix_path = unix_path ? xstrdup(unix_path) : NULL;
	strlcpy_s(ls->name, name, sizeof(ls->name));
	list_add_tail(&core->listeners, &ls->node);
	if (!loop_watch(core->loop, fd, LOOP_READ, accept_ready, ls)) {
		log_error("cannot watch listener %s: %s", name, strerror(errno));
		return false;
	}
	log_info("listening on %s", name);
	return true;
}

static int bind_listen(const struct sockaddr *sa, socklen_t len, const struct config *cfg,
                       char *err, size_t errlen)
{
	int one = 1;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (sa->sa_family != AF_UNIX) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (cfg->so_reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (sa->sa_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (bind(fd, sa, len) < 0 || listen(fd, cfg->listen_backlog) < 0)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "%s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static bool open_tcp(struct core *core, const struct proto_ops *proto, const char *host)
{
	const struct config *cfg = core->cfg;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res, *ai;
	char port[16], err[128], name[160];
	bool any = strcmp(host, "*") == 0;
	snprintf(port, sizeof(port), "%d", cfg->listen_port);
	int rc = getaddrinfo(any ? NULL : host, port, &hints, &res);
	if (rc != 0) {
		log_error("listen_addr %s: %s", host, gai_strerror(rc));
		return false;
	}
	int opened = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		char a[128];
		conn_addr_str((struct sockaddr_storage *)ai->ai_addr, a, sizeof(a));
		snprintf(name, sizeof(name), "%s", a);
		int fd = bind_listen(ai->ai_addr, ai->ai_addrlen, cfg, err, sizeof(err));
		if (fd < 0) {
			/* "*" on a host without IPv6 still works on IPv4 */
			if (any && ai->ai_family == AF_INET6)
				continue;
			log_error("cannot listen on %s: %s", name, err);
			freeaddrinfo(res);
			return false;
		}
		if (!add_listener(core, proto, fd, name, NULL)) {
			freeaddrinfo(res);
			return false;
		}
		opened++;
	}
	freeaddrinfo(res);
	return opened > 0;
}

static bool open_unix(struct core *core, const struct proto_ops *proto)
{
	const struct config *cfg = core->cfg;
	struct sockaddr_un un = {.sun_family = AF_UNIX};
	char err[128], name[160];
	int n = snprintf(un.sun_path, sizeof(un.sun_path), "%s/%s%d", cfg->unix_socket_dir,
	                 proto->unix_socket_prefix, cfg->listen_port);
	if (n < 0 || (size_t)n >= sizeof(un.sun_path)) {
		log_error("unix_socket_dir too long");
		return false;
	}
	unlink(un.sun_path); /* a stale file from a crashed run */
	int fd = bind_listen((struct sockaddr *)&un, sizeof(un), cfg, err, sizeof(err));
	if (fd < 0) {
		log_error("cannot listen on %s: %s", un.sun_path, err);
		return false;
	}
	if (chmod(un.sun_path, (mode_t)cfg->unix_socket_mode) < 0)
		log_warning("chmod %s: %s", un.sun_path, strerror(errno));
	if (cfg->unix_socket_group && cfg->unix_socket_group[0]) {
		struct group *g = getgrnam(cfg->unix_socket_group);
		if (!g || chown(un.sun_path, (uid_t)-1, g->gr_gid) < 0)
			log_warning("cannot set group %s on %s", cfg->unix_socket_group,
			            un.sun_path);
	}
	snprintf(name, sizeof(name), "unix:%s", un.sun_path);
	return add_listener(core, proto, fd, name, un.sun_path);
}

bool listen_open_all(struct core *core, const struct proto_ops *proto)
{
	const struct config *cfg = core->cfg;
	char *list = xstrdup(cfg->listen_addr ? cfg->listen_addr : "");
	char *save = NULL;
	bool ok = true;
	for (char *tok = strtok_r(list, ", \t", &save); tok && ok;
	     tok = strtok_r(NULL, ", \t", &save))
		ok = open_tcp(core, proto, tok);
	free(list);
	if (ok && cfg->unix_socket_dir && cfg->unix_socket_dir[0])
		ok = open_unix(core, proto);
	return ok && reserve_open(core);
}

void listen_pause_all(struct core *core, bool pause)
{
	struct list *it;
	list_for_each(it, &core->listeners)
	{
		struct listener *ls = list_entry(it, struct listener, node);
		loop_timer_stop(core->loop, &ls->retry);
		ls->wants_slot = false;
		if (!loop_set_mask(core->loop, ls->fd, pause ? 0 : LOOP_READ))
			log_error("cannot %s listening on %s", pause ? "pause" : "resume",
			          ls->name);
	}
}

void listen_close_all(struct core *core)
{
	struct list *it;
	while ((it = list_pop_head(&core->listeners)) != NULL) {
		struct listener *ls = list_entry(it, struct listener, node);
		loop_timer_stop(core->loop, &ls->retry);
		loop_unwatch(core->loop, ls->fd);
		close(ls->fd);
		if (ls->unix_path)
			unlink(ls->unix_path);
		free(ls->unix_path);
		free(ls);
	}
	reserve_close();
}
