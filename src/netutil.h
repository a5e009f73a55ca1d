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
 * host starting with '/': unix socket "<host>/<prefix><port>"; host NULL or empty: the same
 * in default_dir (PgBouncer uses its own unix_socket_dir); otherwise a numeric address or
 * a host name.
 */
bool net_resolve_server(const char *host, int port, const char *unix_prefix,
                        const char *default_dir, struct sockaddr_storage *out, char *err,
                        size_t errlen);
/* TCP_NODELAY and the keepalive / user-timeout settings. */
void net_tune_tcp(int fd, const struct config *cfg);

#endif
