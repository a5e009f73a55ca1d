/*
 * metrics: the Prometheus endpoint. With metrics_listen set, sluice answers plain
 * HTTP/1.0 and 1.1 on that address, in the main loop: GET /metrics gives the text
 * exposition format 0.0.4 (pools, databases, hosts, the process), GET /health says
 * whether sluice is serving (200) or paused / shutting down (503). One request per
 * connection. The rendering and the request parser are pure and exported for tests
 * and for the admin console.
 */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct core;

/* Limits of the HTTP side. */
#define METRICS_HEAD_MAX  8192 /* request line and headers */
#define METRICS_MAX_CONNS 16   /* concurrent connections; more wait in the backlog */

/* Starts listening on cfg->metrics_listen ("" = off: true, nothing done). False, with
 * a logged error, when the address is invalid or cannot be bound. */
bool metrics_open(struct core *core) WARN_UNUSED;
/* Closes the listeners and every metrics connection and frees all of it. */
void metrics_close(struct core *core);

/* The exposition text of everything sluice knows now: *out is malloc'ed and
 * NUL-terminated (the caller frees it), *len its length without the NUL. */
void metrics_render(struct core *core, char **out, size_t *len);

/* Splits "addr:port", "[v6addr]:port", "*:port" or ":port". *host is NULL for any
 * address; both strings are malloc'ed. False (nothing allocated) when malformed. */
bool metrics_split_listen(const char *spec, char **host, char **port) WARN_UNUSED;

enum metrics_parse {
	METRICS_REQ_INCOMPLETE = 0, /* no end of the head yet, and nothing wrong so far */
	METRICS_REQ_OK,
	METRICS_REQ_BAD, /* malformed, or no end of head within METRICS_HEAD_MAX */
};

/* A parsed request head; pointers point into the parsed buffer. */
struct metrics_request {
	const char *method;
	size_t method_len;
	const char *path; /* the path of the target, without query or fragment */
	size_t path_len;
	int minor_version; /* HTTP/1.x */
	size_t head_len;   /* bytes up to and including the blank line */
};

/* Parses a request head from the first len bytes received. */
enum metrics_parse metrics_parse_request(const char *buf, size_t len, struct metrics_request *req);

/* The complete HTTP response (status line, headers, body) for a request, or for a
 * malformed one when req is NULL. *out is malloc'ed; returns the status code. */
int metrics_respond(struct core *core, const struct metrics_request *req, char **out, size_t *len);

#endif
