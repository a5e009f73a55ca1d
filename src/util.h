/*
 * util: the bottom layer every other module may use. Allocation that aborts on
 * out-of-memory (a pooler that cannot allocate a few bytes cannot serve anyway),
 * an intrusive doubly linked list, monotonic time and small string helpers.
 * It knows nothing of sockets, pools or protocols.
 */
#ifndef SLUICE_UTIL_H
#define SLUICE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t usec_t;
#define USEC_PER_SEC  1000000ULL
#define USEC_PER_MSEC 1000ULL

#define ARRAY_SIZE(a)                   (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define WARN_UNUSED                     __attribute__((warn_unused_result))
#define PRINTF_LIKE(f, a)               __attribute__((format(printf, f, a)))

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Monotonic clock in microseconds. */
usec_t now_usec(void);
/* Wall clock in microseconds since the epoch. */
usec_t wall_usec(void);

/* Intrusive circular list; an empty list points at itself. */
struct list {
	struct list *next, *prev;
};
#define LIST_INIT(name)                                                                            \
	{                                                                                          \
		&(name), &(name)                                                                   \
	}
#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_for_each(pos, head)      for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
#define list_for_each_safe(pos, tmp, head)                                                         \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                           \
	     (pos) = (tmp), (tmp) = (pos)->next)

static inline void list_init(struct list *l)
{
	l->next = l->prev = l;
}
static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}
static inline void list_add_tail(struct list *head, struct list *item)
{
	item->prev = head->prev;
	item->next = head;
	head->prev->next = item;
	head->prev = item;
}
static inline void list_add_head(struct list *head, struct list *item)
{
	item->next = head->next;
	item->prev = head;
	head->next->prev = item;
	head->next = item;
}
static inline void list_del(struct list *item)
{
	item->prev->next = item->next;
	item->next->prev = item->prev;
	list_init(item);
}
static inline struct list *list_pop_head(struct list *head)
{
	struct list *item;
	if (list_empty(head))
		return NULL;
	item = head->next;
	list_del(item);
	return item;
}

/* Case-insensitive ASCII comparison, for keywords. */
bool str_ieq(const char *a, const char *b);
/* Copies at most size-1 bytes and always terminates; returns strlen(src). */
size_t strlcpy_s(char *dst, const char *src, size_t size);
/* Compares secrets without leaking their length through timing beyond the given lengths. */
bool mem_equal_ct(const void *a, const void *b, size_t n);
/* Fills buf with cryptographically random bytes; false if the system cannot. */
bool random_bytes(void *buf, size_t n) WARN_UNUSED;
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/*
 * Copies src into dst (size bytes, always terminated) for a log line or an error
 * message: C0 and C1 control characters, DEL and bytes that are not well-formed
 * UTF-8 become "\xNN", so a client-supplied name cannot start a new log line or
 * drive a terminal; valid UTF-8 text is kept as it is. Output that does not fit is
 * cut before a whole escape or character, never inside one. Returns dst.
 */
char *str_escape(char *dst, size_t size, const char *src);
/* Worst-case size str_escape needs for a source of n bytes, terminator included. */
#define STR_ESCAPE_SIZE(n) ((n)*4 + 1)

#endif
