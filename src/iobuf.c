/*
 * iobuf: cursor arithmetic and the free list of default-size buffers. A buffer that
 * had to grow for one large message is freed instead of listed, so the list only
 * holds default-size buffers.
 */
#include "iobuf.h"

#include <stdlib.h>
#include <string.h>

static uint32_t default_size = 8192;
static struct iobuf *free_list;
static size_t n_allocated, n_free;

void iobuf_set_default_size(uint32_t size)
{
	if (size != default_size) {
		iobuf_release_free_list();
		default_size = size;
	}
}

uint32_t iobuf_default_size(void)
{
	return default_size;
}

static struct iobuf *iobuf_alloc(uint32_t size)
{
	struct iobuf *b = xmalloc(sizeof(*b) + size);
	b->size = size;
	n_allocated++;
	return b;
}

struct iobuf *iobuf_get(void)
{
	struct iobuf *b = free_list;
	if (b) {
		free_list = b->next_free;
		n_free--;
	} else {
		b = iobuf_alloc(default_size);
	}
	b->sent = b->done = b->recv = 0;
	b->next_free = NULL;
	return b;
}

void iobuf_put(struct iobuf *b)
{
	if (!b)
		return;
	if (b->size != default_size || n_free >= 1024) {
		n_allocated--;
		free(b);
		return;
	}
	b->next_free = free_list;
	free_list = b;
	n_free++;
}

void iobuf_stats(size_t *allocated, size_t *free_listed)
{
	*allocated = n_allocated;
	*free_listed = n_free;
}

void iobuf_release_free_list(void)
{
	while (free_list) {
		struct iobuf *b = free_list;
		free_list = b->next_free;
		free(b);
		n_allocated--;
		n_free--;
	}
}

void iobuf_compact(struct iobuf *b)
{
	if (b->sent == 0)
		return;
	uint32_t live = b->recv - b->sent;
	if (live)
		memmove(b->data, b->data + b->sent, live);
	b->done -= b->sent;
	b->recv -= b->sent;
	b->sent = 0;
}

void iobuf_reserve(struct iobuf **bp, uint32_t need)
{
	struct iobuf *b = *bp;
	if (b->size - b->done >= need)
		return;
	iobuf_compact(b);
	if (b->size - b->done >= need)
		return;
	uint32_t size = b->size;
	while (size - b->done < need)
		size *= 2;
	struct iobuf *nb = iobuf_alloc(size);
	memcpy(nb->data, b->data, b->recv);
	nb->sent = b->sent;
	nb->done = b->done;
	nb->recv = b->recv;
	nb->next_free = NULL;
	iobuf_put(b);
	*bp = nb;
}

void iobuf_grow_toward(struct iobuf **bp, uint32_t need)
{
	struct iobuf *b = *bp;
	if (b->size - b->done >= need)
		return;
	iobuf_compact(b);
	if (iobuf_free_space(b) || b->size - b->done >= need)
		return;
	uint32_t room = b->size - b->done; /* the buffer holds only this message now */
	iobuf_reserve(bp, room * 2 < need && room * 2 > room ? room * 2 : need);
}

void iobuf_mark_send(struct iobuf *b, uint32_t n)
{
	b->done += n;
}

void iobuf_swallow(struct iobuf *b, uint32_t n)
{
	if (b->sent == b->done) {
		/* nothing pending in front of it: just skip over */
		b->sent += n;
		b->done += n;
		return;
	}
	memmove(b->data + b->done, b->data + b->done + n, b->recv - b->done - n);
	b->recv -= n;
}

void iobuf_append(struct iobuf **bp, const void *data, size_t len)
{
	struct iobuf *b = *bp;
	if (!b)
		b = *bp = iobuf_get();
	if (b->size - b->recv < len) {
		iobuf_compact(b);
		if (b->size - b->recv < len)
			iobuf_reserve(bp, (uint32_t)(b->recv - b->done + len));
		b = *bp;
	}
	memcpy(b->data + b->recv, data, len);
	b->recv += (uint32_t)len;
	b->done = b->recv;
}

bool iobuf_valid(const struct iobuf *b)
{
	return b->sent <= b->done && b->done <= b->recv && b->recv <= b->size;
}
