/*
 * proto: the interface a wire protocol module implements. The core (connections,
 * pools, listeners, the janitor) calls only these functions and never looks at the
 * bytes; a module calls back into the core through pool.h and conn.h. Adding a wire
 * protocol means adding one of these tables and touching no core file.
 */
#ifndef SLUICE_PROTO_H
#define SLUICE_PROTO_H

#include <stdbool.h>

#include "errors.h"

struct conn;

struct proto_ops {
	const char *name;
	const char *unix_socket_prefix; /* ".s.PGSQL." : socket file name before the port */
	int default_port;

	/* A client socket was accepted: set up private state and wait for its login. */
	void (*client_accepted)(struct conn *client);
	/* Bytes arrived in client->rbuf (or the peer drained and more can be processed). */
	void (*client_input)(struct conn *client);
	/* A server was attached to the client by the pool (client->link is set). */
	void (*client_linked)(struct conn *client);
	/* Tell the client about an error; fatal ones are followed by a close by the caller.
	 * msg may quote client-supplied names: the writer escapes it (str_escape). */
	void (*client_error)(struct conn *client, const char *code, const char *msg, bool fatal);

	/* The protocol's code for one of the pooler's own errors (errors.h); never NULL.
	 * The core stores and passes it on opaquely, like a code a server sent. */
	const char *(*error_code)(enum err_kind kind);
	/* Classify the code of a failed server login (the protocol's own, maybe sent by
	 * the server; NULL when none). login_error_host: the host cannot take
	 * connections now, so another host may be tried. login_error_transient: a
	 * restart or short outage explains it, so the login is retried soon. */
	bool (*login_error_host)(const char *code);
	bool (*login_error_transient)(const char *code);

	/* The TCP/unix connect of a server finished: start the login. */
	void (*server_connected)(struct conn *server);
	/* Bytes arrived in server->rbuf. */
	void (*server_input)(struct conn *server);
	/* True when the server may be handed to another client as it is (no transaction
	 * open, no reply outstanding). */
	bool (*server_clean)(const struct conn *server);
	/* Start the reset before reuse; false when nothing needs doing. When true the
	 * module calls pool_server_ready() once the reset is done. */
	bool (*server_reset)(struct conn *server);
	/* Run server_check_query on an idle server; the module calls
	 * pool_server_checked(server, ok) once it is answered. */
	void (*server_check)(struct conn *server);

	/* A session parameter of either side (application_name, client_encoding, ...) for
	 * SHOW CLIENTS/SERVERS/FDS; NULL when unknown. */
	const char *(*conn_param)(const struct conn *c, const char *name);

	/* Protocol-level prepared statements a client has named or a server holds, for
	 * SHOW CLIENTS/SERVERS. */
	unsigned (*prepared_count)(const struct conn *c);

	/* Free the private state of either side. */
	void (*conn_free)(struct conn *c);
};

/*
 * The module registered under name ("postgresql", as stored by the config), or NULL
 * when there is none. The config refuses names that have no module, so a name read from
 * a loaded config always has one.
 */
const struct proto_ops *proto_by_name(const char *name);

#endif
