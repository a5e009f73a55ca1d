/*
 * iobuf: the byte buffer behind each connection, with three cursors:
 *
 *     0 ....... sent ....... done ....... recv ....... size
 *     | written  | processed, | received,   |   free    |
 *     |   out    | to be sent | not looked at yet       |
 *
 * Data read from a socket lands at recv. The protocol module moves done forward as
 * it decides about each message (forward it, or swallow it), and the writer moves sent
 * forward as bytes leave through the peer's socket. Forwarded bytes are written
 * straight out of the buffer they were read into: nothing is copied on the hot path.
 * Buffers of the default size come from a free list and go back to it when a
 * connection has nothing buffered, so idle connections hold none.
 */
#ifndef SLUICE_IOBUF_H
#define SLUICE_IOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct iobuf {
	uint32_t size;
	uint32_t sent;
	uint32_t done;
	uint32_t recv;
	struct iobuf *next_free;
	uint8_t data[];
};

/* Size of buffers handed out by iobuf_get (pkt_buf). Set once at start-up. */
void iobuf_set_default_size(uint32_t size);
uint32_t iobuf_default_size(void);
struct iobuf *iobuf_get(void);
/* Returns a buffer (of any size) to the free list or frees it. NULL is fine. */
void iobuf_put(struct iobuf *b);
/* Buffers allocated and free-listed, for SHOW MEM and leak checks. */
void iobuf_stats(size_t *allocated, size_t *free_listed);
void iobuf_release_free_list(void);

static inline uint32_t iobuf_unsent(const struct iobuf *b)
{
	return b->done - b->sent;
}
static inline uint32_t iobuf_unparsed(const struct iobuf *b)
{
	return b->recv - b->done;
}
static inline uint32_t iobuf_free_space(const struct iobuf *b)
{
	return b->size - b->recv;
}
static inline bool iobuf_empty(const struct iobuf *b)
{
	return b->sent == b->recv;
}
static inline uint8_t *iobuf_parse_ptr(struct iobuf *b)
{
	return b->data + b->done;
}

/* Moves live bytes to the front so free space is contiguous. */
void iobuf_compact(struct iobuf *b);
/* Makes room for need unparsed bytes in one piece, growing past the default size. */
void iobuf_reserve(struct iobuf **bp, uint32_t need);
/* For a message of need bytes that must be held whole while it arrives: makes room
 * for more of it, growing (at most doubling) only once the buffer is full, so memory
 * follows the bytes received, never the length a peer declared. */
void iobuf_grow_toward(struct iobuf **bp, uint32_t need);
/* Forgets processed bytes not yet written: their reader is gone. */
static inline void iobuf_drop_unsent(struct iobuf *b)
{
	b->sent = b->done;
}
/* Marks n unparsed bytes as processed and to be sent. */
void iobuf_mark_send(struct iobuf *b, uint32_t n);
/* Drops n unparsed bytes so they are never sent (a swallowed message). */
void iobuf_swallow(struct iobuf *b, uint32_t n);
/* Appends bytes to be sent as they are. Only for output-only buffers (wbuf): it marks
 * everything in the buffer as processed. */
void iobuf_append(struct iobuf **bp, const void *data, size_t len);
/* Checks the cursor invariant; for tests and debug builds. */
bool iobuf_valid(const struct iobuf *b);

#endif
