/*
 * netutil: socket helpers shared by listeners and server connections: address
 * resolution for a server entry, TCP tuning from the config, listening sockets.
 */
#ifndef SLUICE_NETUTIL_H
#define SLUICE_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct config;

/*
 * host NULL or starting with '/': unix socket "<dir>/<prefix><port>" (dir defaults to
 * /var/run/postgresql); otherwise a numeric address or a host name.
 */
bool net_resolve_server(const char *host, int port, const char *unix_prefix,
			struct sockaddr_storage *out, char *err, size_t errlen);
/* TCP_NODELAY and the keepalive / user-timeout settings. */
void net_tune_tcp(int fd, const struct config *cfg);
bool net_set_nonblock(int fd);

#endif
