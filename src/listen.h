/*
 * listen: the listening sockets (TCP on each listen_addr, and the unix socket) and
 * accepting clients into the core. Which protocol a listener speaks is fixed when it
 * is opened; the accepted connection is handed to that protocol module.
 */
#ifndef SLUICE_LISTEN_H
#define SLUICE_LISTEN_H

#include <stdbool.h>

#include "util.h"

struct core;
struct proto_ops;

/* Opens every listener of the config; false (with a log line) if any fails. */
bool listen_open_all(struct core *core, const struct proto_ops *proto) WARN_UNUSED;
/* SUSPEND: stop or resume accepting while keeping the sockets. */
void listen_pause_all(struct core *core, bool pause);
/* Stops accepting: listening sockets are closed and the unix socket file removed. */
void listen_close_all(struct core *core);

#endif
