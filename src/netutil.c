/*
 * netutil: the socket plumbing both sides share. Nothing here blocks: unix sockets and
 * numeric addresses are worked out at once, host names are handed back to the caller for
 * the resolver in the loop (dns.c). No getaddrinfo() here.
 */
#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "config.h"

static bool resolve_unix(const char *dir, int port, const char *prefix,
                         struct sockaddr_storage *out, char *err, size_t errlen)
{
	struct sockaddr_un *un = (struct sockaddr_un *)out;
	un->sun_family = AF_UNIX;
	int n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/%s%d", dir, prefix, port);
	if (n < 0 || (size_t)n >= sizeof(un->sun_path)) {
		snprintf(err, errlen, "unix socket path too long");
		return false;
	}
	return true;
}

enum net_addr_kind net_server_addr(const char *host, int port, const char *unix_prefix,
                                   const char *default_dir, struct sockaddr_storage *out, char *err,
                                   size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!host || !host[0])
		host = default_dir && default_dir[0] ? default_dir : "/var/run/postgresql";
	if (host[0] == '/')
		return resolve_unix(host, port, unix_prefix, out, err, errlen) ? NET_ADDR_DONE
		                                                               : NET_ADDR_ERROR;
	struct sockaddr_in *in4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1)
		in4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1)
		in6->sin6_family = AF_INET6;
	else
		return NET_ADDR_NAME;
	net_set_port(out, port);
	return NET_ADDR_DONE;
}

void net_set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

socklen_t net_addr_len(const struct sockaddr_storage *ss)
{
	switch (ss->ss_family) {
	case AF_UNIX:
		return sizeof(struct sockaddr_un);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return sizeof(struct sockaddr_in);
	}
}

bool net_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		              &((const struct sockaddr_in6 *)b)->sin6_addr,
		              sizeof(struct in6_addr)) == 0;
	return false;
}

const char *net_ip_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	const void *a = NULL;
	if (ss->ss_family == AF_INET)
		a = &((const struct sockaddr_in *)ss)->sin_addr;
	else if (ss->ss_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	if (!a || !inet_ntop(ss->ss_family, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
	return buf;
}

void net_tune_tcp(int fd, const struct config *cfg)
{
	int on = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	if (!cfg->tcp_keepalive)
		return;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (cfg->tcp_keepidle > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &cfg->tcp_keepidle, sizeof(int));
	if (cfg->tcp_keepintvl > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &cfg->tcp_keepintvl, sizeof(int));
	if (cfg->tcp_keepcnt > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->tcp_keepcnt, sizeof(int));
	if (cfg->tcp_user_timeout > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &cfg->tcp_user_timeout, sizeof(int));
}
