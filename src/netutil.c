/*
 * netutil: the socket plumbing both sides share. Host names are resolved with
 * getaddrinfo() for now, which blocks the loop while the resolver answers; numeric
 * addresses and unix sockets (the common sidecar case) never block.
 */
#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
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

bool net_resolve_server(const char *host, int port, const char *unix_prefix,
                        const char *default_dir, struct sockaddr_storage *out, char *err,
                        size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!host || !host[0])
		return resolve_unix(default_dir && default_dir[0] ? default_dir
		                                                  : "/var/run/postgresql",
		                    port, unix_prefix, out, err, errlen);
	if (host[0] == '/')
		return resolve_unix(host, port, unix_prefix, out, err, errlen);
	struct sockaddr_in *in4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		return true;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return true;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || !res) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
		return false;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	if (out->ss_family == AF_INET)
		in4->sin_port = htons((uint16_t)port);
	else
		in6->sin6_port = htons((uint16_t)port);
	freeaddrinfo(res);
	return true;
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
