/*
 * listen: binds and accepts. "*" in listen_addr means every IPv4 and IPv6 address.
 * Each accepted socket becomes a client conn in the core's login list, with the
 * client_login_timeout running, and is handed to its protocol module. When the
 * process runs out of descriptors, accepting pauses for a moment instead of spinning.
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
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
};

static void accept_ready(struct loop *l, int fd, int events, void *arg);

static void login_expired(struct loop *l, struct loop_timer *t, void *arg)
{
	(void)l;
	(void)t;
	client_fail(arg, "08P01", "client_login_timeout");
}

static void accept_resume(struct loop *l, struct loop_timer *t, void *arg)
{
	struct listener *ls = arg;
	(void)t;
	if (ls->fd >= 0 && !loop_set_mask(l, ls->fd, LOOP_READ))
		log_error("cannot resume listening on %s", ls->name);
}

static void take_client(struct listener *ls, int fd, const struct sockaddr_storage *addr)
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
		return;
	}
	if (cfg->client_login_timeout)
		loop_timer_start(core->loop, &c->timer, cfg->client_login_timeout, 0, login_expired,
		                 c);
	if (cfg->log_connections) {
		char a[128];
		log_info("C-%llu: new connection from %s", (unsigned long long)c->id,
		         conn_addr_str(addr, a, sizeof(a)));
	}
	ls->proto->client_accepted(c);
}

static void accept_ready(struct loop *l, int fd, int events, void *arg)
{
	struct listener *ls = arg;
	(void)events;
	/* a bounded batch per wake-up, so one listener cannot starve the rest */
	for (int i = 0; i < 32; i++) {
		struct sockaddr_storage addr = {0};
		socklen_t len = sizeof(addr);
		int cfd = accept4(fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				log_warning("accept() on %s: %s; pausing accepts for 1 s", ls->name,
				            strerror(errno));
				if (loop_set_mask(l, fd, 0))
					loop_timer_start(l, &ls->retry, USEC_PER_SEC, 0,
					                 accept_resume, ls);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_warning("accept() on %s: %s", ls->name, strerror(errno));
			}
			return;
		}
		take_client(ls, cfd, &addr);
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
	return ok;
}

void listen_pause_all(struct core *core, bool pause)
{
	struct list *it;
	list_for_each(it, &core->listeners)
	{
		struct listener *ls = list_entry(it, struct listener, node);
		loop_timer_stop(core->loop, &ls->retry);
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
}
