/*
 * harness: runs sluice's real core (config, auth file, listener, pools, the pg module,
 * the event loop) inside a libFuzzer process, and plays both of its peers over real
 * unix sockets: clients that connect to sluice's unix listener, and a fake PostgreSQL
 * that listens where the database entry points. So every byte a target feeds in goes
 * through the same recv() -> iobuf -> protocol path as in production.
 *
 * One core lives for the whole process; each input runs between h_begin() and h_end(),
 * which closes every connection and frees pools, databases and users, so no state
 * (and no leak-check noise) carries from one input to the next.
 */
#ifndef SLUICE_FUZZ_HARNESS_H
#define SLUICE_FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct core;

/* How the fake PostgreSQL answers. */
enum h_server_mode {
	H_SERVER_CANNED,    /* a plausible PostgreSQL: trust login, canned replies */
	H_SERVER_RAW_LOGIN, /* the raw bytes answer the startup packet */
	H_SERVER_RAW_REPLY, /* canned login; the raw bytes answer the first query */
};

/* Chunks of an input are separated by this; each chunk is written, then the loop runs. */
#define H_SPLIT     "\xfe\xed\xfa\xce"
#define H_SPLIT_LEN 4

struct core *h_core(void);
void h_begin(void);
void h_end(void);

/* The fake server's behaviour for servers that connect from now on. */
void h_server_mode(enum h_server_mode mode);
/* The raw bytes of the RAW modes (copied); chunks split by H_SPLIT go out one by one. */
void h_server_raw(const uint8_t *data, size_t len);

/* A new client connected to sluice's listener; returns its handle. */
int h_client(void);
/* Queues bytes for the client to send; h_pump() writes them. */
void h_client_send(int client, const void *data, size_t len);
/* Sends a startup packet with user and database (and nothing else). */
void h_client_startup(int client, const char *user, const char *db);
/* Sends a simple Query. */
void h_client_query(int client, const char *sql);
/* Bytes the client got so far (and drops them). */
size_t h_client_received(int client);
/* Sends the chunks of data (split by H_SPLIT) one by one, running the loop after each. */
void h_client_send_chunks(int client, const uint8_t *data, size_t len);

/* Runs sluice's loop and both fake peers until nothing moves for a few rounds. */
void h_pump(void);

#endif
