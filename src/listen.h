/*
 * listen: the listening sockets (TCP on each listen_addr, and the unix socket) and
 * accepting clients into the core. Which protocol a listener speaks is fixed when it
 * is opened; the accepted connection is handed to that protocol module.
 */
#ifndef SLUICE_LISTEN_H
#define SLUICE_LISTEN_H

#include <stdbool.h>

#include "util.h"

struct conn;
struct core;
struct proto_ops;

/* Opens every listener of the config; false (with a log line) if any fails. */
bool listen_open_all(struct core *core, const struct proto_ops *proto) WARN_UNUSED;
/* SUSPEND: stop or resume accepting while keeping the sockets. */
void listen_pause_all(struct core *core, bool pause);
/* Stops accepting: listening sockets are closed and the unix socket file removed. */
void listen_close_all(struct core *core);

/*
 * The descriptor reserve (listen.c). Out of descriptors, a new client may be accepted
 * on a reserved descriptor: it may then log in to the admin console only. Its
 * protocol module asks listen_reserve_probing() before it acts on the startup packet,
 * then calls listen_reserve_keep() for a console login (false: no room, refuse it)
 * and listen_reserve_refuse() for anything else.
 */
#define LISTEN_REFUSE_MSG  "too many connections: sluice is out of file descriptors"
#define LISTEN_RESERVE_FDS 12 /* held from start-up; a third may stay with console logins */

bool listen_reserve_probing(const struct conn *c);
bool listen_reserve_keep(struct conn *c) WARN_UNUSED;
/* Fails c with ERR_OUT_OF_DESCRIPTORS and LISTEN_REFUSE_MSG and takes its descriptor back. */
void listen_reserve_refuse(struct conn *c);
/* c is being freed: a reserved descriptor it held goes back into the reserve. Cheap for
 * any connection, client or server. */
void listen_reserve_return(struct conn *c);

#endif
