/*
 * netutil: socket helpers shared by listeners and server connections: the address of a
 * server entry when no lookup is needed, comparing and printing addresses, TCP tuning
 * from the config.
 */
#ifndef SLUICE_NETUTIL_H
#define SLUICE_NETUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct config;

enum net_addr_kind {
	NET_ADDR_DONE,  /* *out is the address, port included */
	NET_ADDR_NAME,  /* host is a name: look it up (dns.c), nothing filled */
	NET_ADDR_ERROR, /* err says why */
};

/*
 * host starting with '/': unix socket "<host>/<prefix><port>"; host NULL or empty: the same
 * in default_dir (PgBouncer uses its own unix_socket_dir); a numeric IPv4 or IPv6 address.
 * Never blocks: anything else is a host name for the resolver.
 */
enum net_addr_kind net_server_addr(const char *host, int port, const char *unix_prefix,
                                   const char *default_dir, struct sockaddr_storage *out, char *err,
                                   size_t errlen);
/* Sets the port of an AF_INET or AF_INET6 address. */
void net_set_port(struct sockaddr_storage *ss, int port);
/* The length connect() and bind() want for ss's family. */
socklen_t net_addr_len(const struct sockaddr_storage *ss);
/* Same family and IP address; ports are not compared. */
bool net_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* The IP address as text, without the port ("?" for other families). */
const char *net_ip_str(const struct sockaddr_storage *ss, char *buf, size_t len);
/* TCP_NODELAY and the keepalive / user-timeout settings. */
void net_tune_tcp(int fd, const struct config *cfg);

#endif
