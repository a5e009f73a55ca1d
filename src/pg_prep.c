/*
 * pg_prep: protocol-level named prepared statements in transaction and statement
 * pooling, where a client's next transaction may run on another server.
 *
 * A client's named Parse is remembered (client name -> statement) and the statement
 * is prepared under sluice's own name ("sluice_<id>") on each server the first time
 * that server needs it: a Bind or Describe of a statement the server lacks is
 * preceded by an injected Parse whose ParseComplete is swallowed. Identical statement
 * texts share one registry entry, so a server prepares each text once for every
 * client. Each server keeps at most max_prepared_statements, least recently used
 * first out (closed with a Close whose CloseComplete is swallowed). A client's Close
 * of a statement is answered here.
 *
 * Replies that sluice makes up (ParseComplete, CloseComplete) must reach the client
 * exactly where the server's own replies would have, so each server keeps a queue of
 * the client messages that owe a reply, in order; every reply from the server pops
 * the entry it answers, and a made-up reply goes out once it reaches the head. After
 * an error the server skips everything up to Sync: statements whose Parse was
 * skipped are forgotten on that server, so the next use prepares them again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core.h"
#include "log.h"
#include "pg.h"
#include "pool.h"

#define NAME_SCAN_MAX 65536u /* a Bind's two names must fit in this many bytes */

/* --- the registry: one entry per distinct statement text and parameter types --- */

struct pg_stmt {
	struct pg_stmt *hnext;
	uint64_t id; /* the server-side name is sluice_<id> */
	uint32_t hash;
	uint32_t refs;
	bool validated;    /* a server accepted it once: a Parse of it can be answered here */
	uint32_t body_len; /* query, NUL, int16 count, int32 type oids: Parse after the name */
	uint8_t body[];
};

static struct {
	struct pg_stmt **b;
	uint32_t nb, n;
	uint64_t next_id;
} registry;

static uint32_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

static void registry_grow(void)
{
	uint32_t nb = registry.nb ? registry.nb * 2 : 64;
	struct pg_stmt **b = xcalloc(nb, sizeof(*b));
	for (uint32_t i = 0; i < registry.nb; i++) {
		struct pg_stmt *st, *next;
		for (st = registry.b[i]; st; st = next) {
			next = st->hnext;
			st->hnext = b[st->hash & (nb - 1)];
			b[st->hash & (nb - 1)] = st;
		}
	}
	free(registry.b);
	registry.b = b;
	registry.nb = nb;
}

static struct pg_stmt *stmt_find(const uint8_t *body, uint32_t len, uint32_t h)
{
	if (!registry.nb)
		return NULL;
	for (struct pg_stmt *st = registry.b[h & (registry.nb - 1)]; st; st = st->hnext)
		if (st->hash == h && st->body_len == len && memcmp(st->body, body, len) == 0)
			return st;
	return NULL;
}

/* The entry for this statement body, with a reference for the caller. */
static struct pg_stmt *stmt_get(const uint8_t *body, uint32_t len)
{
	uint32_t h = hash_bytes(body, len);
	struct pg_stmt *st = stmt_find(body, len, h);
	if (st) {
		st->refs++;
		return st;
	}
	if (registry.n >= registry.nb)
		registry_grow();
	struct pg_stmt **slot = &registry.b[h & (registry.nb - 1)];
	st = xmalloc(sizeof(*st) + len);
	st->id = ++registry.next_id;
	st->hash = h;
	st->refs = 1;
	st->validated = false;
	st->body_len = len;
	memcpy(st->body, body, len);
	st->hnext = *slot;
	*slot = st;
	registry.n++;
	return st;
}

static struct pg_stmt *stmt_ref(struct pg_stmt *st)
{
	if (st)
		st->refs++;
	return st;
}

static void stmt_unref(struct pg_stmt *st)
{
	if (!st || --st->refs)
		return;
	struct pg_stmt **pp = &registry.b[st->hash & (registry.nb - 1)];
	while (*pp != st)
		pp = &(*pp)->hnext;
	*pp = st->hnext;
	registry.n--;
	free(st);
}

static int server_name(const struct pg_stmt *st, char *buf, size_t len)
{
	return snprintf(buf, len, "sluice_%llu", (unsigned long long)st->id);
}

/* --- a client's names --- */

struct pg_cstmt {
	struct pg_cstmt *next;
	struct pg_stmt *stmt;
	char name[];
};

static struct pg_cstmt **cmap_slot(struct pg_cmap *m, const char *name)
{
	struct pg_cstmt **pp = &m->b[hash_bytes(name, strlen(name)) & (m->nb - 1)];
	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

static struct pg_cstmt *cmap_find(struct pg_cmap *m, const char *name)
{
	return m->nb ? *cmap_slot(m, name) : NULL;
}

static void cmap_grow(struct pg_cmap *m)
{
	struct pg_cmap nm = {xcalloc(m->nb ? m->nb * 2 : 16, sizeof(struct pg_cstmt *)),
	                     m->nb ? m->nb * 2 : 16, m->n};
	for (uint32_t i = 0; i < m->nb; i++) {
		struct pg_cstmt *cs, *next;
		for (cs = m->b[i]; cs; cs = next) {
			next = cs->next;
			struct pg_cstmt **slot = cmap_slot(&nm, cs->name);
			cs->next = NULL;
			*slot = cs;
		}
	}
	free(m->b);
	*m = nm;
}

/* Binds name to st, taking over the caller's reference. Callers refuse a name in use
 * (42P05, as PostgreSQL); a rebinding here only restores what an undo put back. */
static void cmap_set(struct pg_cmap *m, const char *name, struct pg_stmt *st)
{
	if (m->n >= m->nb)
		cmap_grow(m);
	struct pg_cstmt **slot = cmap_slot(m, name);
	if (*slot) {
		stmt_unref((*slot)->stmt);
		(*slot)->stmt = st;
		return;
	}
	size_t len = strlen(name);
	struct pg_cstmt *cs = xmalloc(sizeof(*cs) + len + 1);
	memcpy(cs->name, name, len + 1);
	cs->stmt = st;
	cs->next = NULL;
	*slot = cs;
	m->n++;
}

static void cmap_remove(struct pg_cmap *m, const char *name)
{
	if (!m->nb)
		return;
	struct pg_cstmt **slot = cmap_slot(m, name);
	struct pg_cstmt *cs = *slot;
	if (!cs)
		return;
	*slot = cs->next;
	stmt_unref(cs->stmt);
	free(cs);
	m->n--;
}

static void cmap_clear(struct pg_cmap *m)
{
	for (uint32_t i = 0; i < m->nb; i++) {
		struct pg_cstmt *cs, *next;
		for (cs = m->b[i]; cs; cs = next) {
			next = cs->next;
			stmt_unref(cs->stmt);
			free(cs);
		}
	}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

/* --- what a server has prepared, in LRU order --- */

struct pg_sstmt {
	struct pg_sstmt *next;
	struct list lru; /* most recently used at the tail */
	struct pg_stmt *stmt;
};

static struct pg_sstmt **scache_slot(struct pg_scache *sc, const struct pg_stmt *st)
{
	uint32_t h = (uint32_t)((st->id * 0x9e3779b97f4a7c15ull) >> 32);
	struct pg_sstmt **pp = &sc->b[h & (sc->nb - 1)];
	while (*pp && (*pp)->stmt != st)
		pp = &(*pp)->next;
	return pp;
}

/* True when the server has st; it becomes the most recently used. */
static bool scache_touch(struct pg_scache *sc, const struct pg_stmt *st)
{
	struct pg_sstmt *ss = sc->nb ? *scache_slot(sc, st) : NULL;
	if (!ss)
		return false;
	list_del(&ss->lru);
	list_add_tail(&sc->lru, &ss->lru);
	return true;
}

static void scache_grow(struct pg_scache *sc)
{
	uint32_t onb = sc->nb;
	struct pg_sstmt **ob = sc->b;
	sc->nb = onb ? onb * 2 : 16;
	sc->b = xcalloc(sc->nb, sizeof(*sc->b));
	for (uint32_t i = 0; i < onb; i++) {
		struct pg_sstmt *ss, *next;
		for (ss = ob[i]; ss; ss = next) {
			next = ss->next;
			ss->next = NULL;
			*scache_slot(sc, ss->stmt) = ss;
		}
	}
	free(ob);
}

static void scache_add(struct pg_scache *sc, struct pg_stmt *st)
{
	if (!sc->nb)
		list_init(&sc->lru);
	if (sc->n >= sc->nb)
		scache_grow(sc);
	struct pg_sstmt **slot = scache_slot(sc, st);
	if (*slot)
		return;
	struct pg_sstmt *ss = xmalloc(sizeof(*ss));
	ss->stmt = stmt_ref(st);
	ss->next = NULL;
	list_add_tail(&sc->lru, &ss->lru);
	*slot = ss;
	sc->n++;
}

static void scache_remove(struct pg_scache *sc, const struct pg_stmt *st)
{
	if (!sc->nb)
		return;
	struct pg_sstmt **slot = scache_slot(sc, st);
	struct pg_sstmt *ss = *slot;
	if (!ss)
		return;
	*slot = ss->next;
	list_del(&ss->lru);
	stmt_unref(ss->stmt);
	free(ss);
	sc->n--;
}

static void scache_clear(struct pg_scache *sc)
{
	while (sc->nb && !list_empty(&sc->lru)) {
		struct pg_sstmt *ss = list_entry(sc->lru.next, struct pg_sstmt, lru);
		scache_remove(sc, ss->stmt);
	}
	free(sc->b);
	memset(sc, 0, sizeof(*sc));
}

/* --- the queue of replies a server owes --- */

enum {
	PQ_FORWARD,
	PQ_SWALLOW,
	PQ_MADE_UP,
	PQ_DUP,     /* a Parse of a name in use: its error becomes 42P05 */
	PQ_DEALLOC, /* a DEALLOCATE sent as a no-op: its CommandComplete is rewritten */
};

/* What a message did to the client's names, undone if the server skips or fails it. */
enum { UNDO_NONE, UNDO_FORGET, UNDO_RESTORE };

struct pg_qent {
	uint8_t type; /* the client message: P B D C E S Q F */
	uint8_t action;
	uint8_t undo;
	struct pg_stmt *stmt;  /* a Parse or eviction Close that reached the server */
	char *name;            /* the client's name it bound, unbound or duplicated */
	struct pg_stmt *bound; /* what that name was bound to */
};

static void ent_free(struct pg_qent e)
{
	stmt_unref(e.stmt);
	stmt_unref(e.bound);
	free(e.name);
}

/* Puts the client's names back as they were before a message the server did not run. */
static void ent_undo(struct conn *c, const struct pg_qent *e)
{
	if (!c || !e->name || e->undo == UNDO_NONE)
		return;
	struct pg_cmap *m = &pgc(c)->prepared;
	struct pg_cstmt *cs = cmap_find(m, e->name);
	if (e->undo == UNDO_FORGET && cs && cs->stmt == e->bound)
		cmap_remove(m, e->name);
	else if (e->undo == UNDO_RESTORE && !cs)
		cmap_set(m, e->name, stmt_ref(e->bound));
}

static struct pg_qent *q_at(const struct pg_queue *q, uint32_t i)
{
	return &q->v[(q->head + i) & (q->cap - 1)];
}

/* A Parse the server skipped after an error: the statement is not there. */
static void parse_skipped(struct pg_server *ps, struct pg_qent *e)
{
	if (e->type == 'P' && e->stmt)
		scache_remove(&ps->prepared, e->stmt);
}

/* An eviction Close the server skipped: the statement is still there. */
static void close_skipped(struct pg_server *ps, struct pg_qent *e)
{
	if (e->type == 'C' && e->stmt)
		scache_add(&ps->prepared, e->stmt);
}

/* Queues a message; takes over the reference on stmt, not on bound. */
static void q_push_named(struct pg_server *ps, uint8_t type, uint8_t action, struct pg_stmt *stmt,
                         uint8_t undo, const char *name, struct pg_stmt *bound)
{
	struct pg_queue *q = &ps->queue;
	if (ps->skipping && type != 'S') {
		/* the server skips it and owes no reply; nothing was prepared meanwhile */
		stmt_unref(stmt);
		return;
	}
	struct pg_qent e = {type, action, undo, stmt, name ? xstrdup(name) : NULL, stmt_ref(bound)};
	if (type == 'S')
		ps->skipping = false;
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 16;
		struct pg_qent *v = xmalloc(cap * sizeof(*v));
		for (uint32_t i = 0; i < q->n; i++)
			v[i] = *q_at(q, i);
		free(q->v);
		q->v = v;
		q->cap = cap;
		q->head = 0;
	}
	*q_at(q, q->n++) = e;
}

static void q_push(struct pg_server *ps, uint8_t type, uint8_t action, struct pg_stmt *stmt)
{
	q_push_named(ps, type, action, stmt, UNDO_NONE, NULL, NULL);
}

static struct pg_qent q_pop(struct pg_queue *q)
{
	struct pg_qent e = *q_at(q, 0);
	q->head = (q->head + 1) & (q->cap - 1);
	q->n--;
	return e;
}

/* An error outside a simple Query: the server skips to the next Sync. Parses it
 * skipped are forgotten first, then eviction Closes it skipped are put back, since a
 * statement evicted and prepared again in one skipped stretch is still there. */
static void q_error(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	struct pg_queue *q = &ps->queue;
	uint32_t n = 0;
	while (n < q->n && q_at(q, n)->type != 'S')
		n++;
	for (uint32_t i = 0; i < n; i++)
		parse_skipped(ps, q_at(q, i));
	for (uint32_t i = 0; i < n; i++)
		close_skipped(ps, q_at(q, i));
	/* the client's names as PostgreSQL keeps them: the failed message and the
	 * skipped ones changed none (latest first, so each undo sees its own state) */
	for (uint32_t i = n; i-- > 0;)
		ent_undo(s->link, q_at(q, i));
	for (uint32_t i = 0; i < n; i++)
		ent_free(q_pop(q));
	/* no Sync sent yet: whatever the client sends before it is skipped too */
	ps->skipping = q->n == 0;
}

/* --- sending to the server --- */

static void emit_named(struct conn *s, uint8_t type, const uint8_t *head, uint32_t head_len,
                       const struct pg_stmt *st, const uint8_t *tail, uint32_t tail_len)
{
	char name[32];
	uint32_t nlen = (uint32_t)server_name(st, name, sizeof(name)) + 1;
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, type);
	pg_out_bytes(&o, head, head_len);
	pg_out_bytes(&o, name, nlen);
	pg_out_bytes(&o, tail, tail_len);
	pg_out_end(&o);
	conn_send_after_forwarded(s, o.data, o.len);
	pg_out_free(&o);
}

static void evict_lru(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	struct pg_sstmt *ss = list_entry(ps->prepared.lru.next, struct pg_sstmt, lru);
	struct pg_stmt *st = stmt_ref(ss->stmt);
	scache_remove(&ps->prepared, st);
	emit_named(s, 'C', (const uint8_t *)"S", 1, st, NULL, 0);
	q_push(ps, 'C', PQ_SWALLOW, st);
}

/* Prepares st on the server under sluice's name; the reply is forwarded or swallowed.
 * name: the client's name the Parse binds, forgotten again if the server fails it. */
static void send_parse(struct conn *s, struct pg_stmt *st, uint8_t action, const char *name)
{
	struct pg_server *ps = pgs(s);
	uint32_t max = (uint32_t)s->core->cfg->max_prepared_statements;
	while (ps->prepared.n && ps->prepared.n >= (max ? max : 1))
		evict_lru(s);
	scache_add(&ps->prepared, st);
	emit_named(s, 'P', NULL, 0, st, st->body, st->body_len);
	q_push_named(ps, 'P', action, stmt_ref(st), name ? UNDO_FORGET : UNDO_NONE, name, st);
	s->pool->stats.total.server_parses++;
}

static void ensure_prepared(struct conn *s, struct pg_stmt *st)
{
	struct pg_server *ps = pgs(s);
	if (!ps->skipping && !scache_touch(&ps->prepared, st))
		send_parse(s, st, PQ_SWALLOW, NULL);
}

/* A named Parse of a name the client already uses. PostgreSQL parses and analyses
 * the text first (its errors, and 25P02 in an aborted transaction, come before the
 * name's), then refuses the name whatever the text, and like any error that aborts
 * the transaction and skips to Sync. So the server parses the text under a name of
 * sluice's, closes it again, and gets a Parse that cannot succeed, whose error is
 * replaced by 42P05 for the client's name. A failure of the text itself stops the
 * server there, and reaches the client as it is. */
static void send_dup_parse(struct conn *s, const char *name, const uint8_t *rest, uint32_t rest_len)
{
	static const char probe[] = "sluice_dup";
	static const char fail[] = "sluice_dup\0sluice_duplicate_statement_name\0\0";
	struct pg_server *ps = pgs(s);
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'P');
	pg_out_str(&o, probe);
	pg_out_bytes(&o, rest, rest_len);
	pg_out_end(&o);
	pg_out_begin(&o, 'C');
	pg_out_u8(&o, 'S');
	pg_out_str(&o, probe);
	pg_out_end(&o);
	pg_out_begin(&o, 'P');
	pg_out_bytes(&o, fail, sizeof(fail)); /* with the int16 of no parameter types */
	pg_out_end(&o);
	conn_send_after_forwarded(s, o.data, o.len);
	pg_out_free(&o);
	q_push(ps, 'P', PQ_SWALLOW, NULL);
	q_push(ps, 'C', PQ_SWALLOW, NULL);
	q_push_named(ps, 'P', PQ_DUP, NULL, UNDO_NONE, name, NULL);
}

static void send_dup_error(struct conn *c, const char *name)
{
	size_t n = strlen(name) + 48;
	char *msg = xmalloc(n);
	snprintf(msg, n, "prepared statement \"%s\" already exists", name);
	struct pg_out o;
	pg_out_init(&o);
	pg_out_error(&o, "ERROR", "42P05", msg);
	conn_send_after_forwarded(c, o.data, o.len);
	pg_out_free(&o);
	free(msg);
}

static void send_tag(struct conn *c, const char *tag)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'C');
	pg_out_str(&o, tag);
	pg_out_end(&o);
	conn_send_after_forwarded(c, o.data, o.len);
	pg_out_free(&o);
}

/* --- client messages --- */

/* PREP_FORWARD once the whole message is buffered, PREP_WAIT while it arrives (the
 * buffer growing with what arrives), PREP_FAILED (client closed) when it is larger
 * than sluice holds for one client. */
static enum pg_prep_result whole_message(struct conn *c, uint32_t len)
{
	if (iobuf_unparsed(c->rbuf) >= len + 1)
		return PREP_FORWARD;
	if ((uint64_t)len + 1 > (uint64_t)c->core->cfg->max_held_bytes) {
		char msg[128];
		snprintf(msg, sizeof(msg), "message of %u bytes is larger than max_held_bytes (%d)",
		         len + 1, c->core->cfg->max_held_bytes);
		client_fail(c, "08P01", msg);
		return PREP_FAILED;
	}
	iobuf_grow_toward(&c->rbuf, len + 1);
	return PREP_WAIT;
}

/* A Parse of the unnamed statement is only counted, so it streams through however
 * large it is; one byte past the header tells. */
static bool unnamed_parse_ahead(struct conn *c)
{
	return iobuf_unparsed(c->rbuf) >= 6 && iobuf_parse_ptr(c->rbuf)[5] == 0;
}

static enum pg_prep_result malformed(struct conn *c, const char *what)
{
	char msg[96];
	snprintf(msg, sizeof(msg), "invalid %s message", what);
	client_fail(c, "08P01", msg);
	return PREP_FAILED;
}

/* Length of a NUL-terminated string at p within n bytes, or -1. */
static long str_in(const uint8_t *p, size_t n)
{
	const uint8_t *z = memchr(p, 0, n);
	return z ? z - p : -1;
}

/* A Parse body: statement name, then what the registry keys on. */
struct parse_msg {
	const char *name;
	const uint8_t *rest; /* query, NUL, parameter count and types */
	uint32_t rest_len;
};

static bool read_parse(const uint8_t *body, uint32_t blen, struct parse_msg *pm)
{
	long nlen = str_in(body, blen);
	if (nlen < 0)
		return false;
	pm->name = (const char *)body;
	pm->rest = body + nlen + 1;
	pm->rest_len = blen - (uint32_t)nlen - 1;
	long qlen = nlen ? str_in(pm->rest, pm->rest_len) : 0;
	return qlen >= 0 && (!nlen || pm->rest_len >= (uint32_t)qlen + 3);
}

/* --- SQL DEALLOCATE of a client's protocol-level statements --- */

/* PostgreSQL truncates longer identifiers (with a notice): such queries are forwarded */
#define IDENT_MAX        63
#define DEALLOC_SCAN_MAX 1024u /* longer queries are not read for a DEALLOCATE */

enum dealloc_kind { DEALLOC_NONE, DEALLOC_NAME, DEALLOC_ALL };

static bool sql_space(uint8_t ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f';
}

static void skip_space(const uint8_t **p, const uint8_t *end)
{
	while (*p < end && sql_space(**p))
		(*p)++;
}

static bool ident_start(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch >= 0x80;
}

static bool ident_char(uint8_t ch)
{
	return ident_start(ch) || (ch >= '0' && ch <= '9') || ch == '$';
}

/* A plain word (lower-cased, as PostgreSQL folds it) or a quoted identifier at *p. */
static bool sql_ident(const uint8_t **p, const uint8_t *end, char *out, bool *quoted)
{
	const uint8_t *q = *p;
	size_t n = 0;
	*quoted = q < end && *q == '"';
	if (*quoted) {
		for (q++; q < end && (*q != '"' || (q + 1 < end && q[1] == '"')); q++) {
			if (*q == '"')
				q++; /* "" is one quote */
			if (n == IDENT_MAX)
				return false;
			out[n++] = (char)*q;
		}
		if (q == end || n == 0)
			return false;
		q++;
	} else {
		if (q == end || !ident_start(*q))
			return false;
		for (; q < end && ident_char(*q); q++) {
			if (n == IDENT_MAX)
				return false;
			out[n++] = (char)(*q >= 'A' && *q <= 'Z' ? *q + 'a' - 'A' : *q);
		}
	}
	out[n] = 0;
	*p = q;
	return true;
}

/* DEALLOCATE [PREPARE] {name | ALL} [;], alone in the query text; name gets
 * IDENT_MAX + 1 bytes. Anything else (comments, several statements) is not one. */
static enum dealloc_kind read_deallocate(const uint8_t *sql, size_t n, char *name)
{
	const uint8_t *p = sql, *end = sql + n;
	bool quoted;
	skip_space(&p, end);
	if (!sql_ident(&p, end, name, &quoted) || quoted || strcmp(name, "deallocate") != 0)
		return DEALLOC_NONE;
	skip_space(&p, end);
	if (!sql_ident(&p, end, name, &quoted))
		return DEALLOC_NONE;
	skip_space(&p, end);
	/* PREPARE is optional, and also a valid statement name */
	if (!quoted && strcmp(name, "prepare") == 0 && p < end && *p != ';') {
		if (!sql_ident(&p, end, name, &quoted))
			return DEALLOC_NONE;
		skip_space(&p, end);
	}
	if (p < end && *p == ';') {
		p++;
		skip_space(&p, end);
	}
	if (p != end)
		return DEALLOC_NONE;
	return !quoted && strcmp(name, "all") == 0 ? DEALLOC_ALL : DEALLOC_NAME;
}

/* The client statement a query text deallocates, or NULL. */
static struct pg_cstmt *dealloc_target(struct conn *c, const uint8_t *sql, size_t n)
{
	char name[IDENT_MAX + 1];
	long qlen = str_in(sql, n);
	if (qlen < 0 || read_deallocate(sql, (size_t)qlen, name) != DEALLOC_NAME)
		return NULL;
	return cmap_find(&pgc(c)->prepared, name);
}

/* What the server runs instead of a client's DEALLOCATE: no effect, and the same
 * answers as DEALLOCATE in every transaction state (an error when it is aborted). */
static const char dealloc_noop[] = "UNLISTEN sluice_deallocate";

static void set_str(char **p, const char *v)
{
	free(*p);
	*p = v ? xstrdup(v) : NULL;
}

/* An unnamed Parse: forwarded, or a DEALLOCATE of a client statement made a no-op. */
static enum pg_prep_result client_parse_unnamed(struct conn *c, struct conn *s, uint32_t len,
                                                const struct parse_msg *pm)
{
	struct pg_server *ps = pgs(s);
	long qlen = str_in(pm->rest, pm->rest_len);
	/* declared parameter types would make it more than a DEALLOCATE */
	bool plain = qlen >= 0 && pm->rest_len == (uint32_t)qlen + 3 && pm->rest[qlen + 1] == 0 &&
	             pm->rest[qlen + 2] == 0;
	struct pg_cstmt *cs =
	    plain && !ps->skipping ? dealloc_target(c, pm->rest, pm->rest_len) : NULL;
	set_str(&ps->dealloc_unnamed, cs ? cs->name : NULL);
	q_push(ps, 'P', PQ_FORWARD, NULL);
	s->pool->stats.total.server_parses++;
	if (!cs)
		return PREP_FORWARD;
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'P');
	pg_out_u8(&o, 0);
	pg_out_str(&o, dealloc_noop);
	pg_out_bytes(&o, "\0", 2);
	pg_out_end(&o);
	conn_send_after_forwarded(s, o.data, o.len);
	pg_out_free(&o);
	iobuf_swallow(c->rbuf, len + 1);
	return PREP_CONSUMED;
}

static enum pg_prep_result client_parse(struct conn *c, struct conn *s, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	struct pg_cmap *m = &pgc(c)->prepared;
	struct parse_msg pm;
	if (unnamed_parse_ahead(c) && len > DEALLOC_SCAN_MAX) {
		/* too long to be a DEALLOCATE: only counted, so it streams through */
		set_str(&ps->dealloc_unnamed, NULL);
		q_push(ps, 'P', PQ_FORWARD, NULL);
		s->pool->stats.total.server_parses++;
		return PREP_FORWARD;
	}
	enum pg_prep_result w = whole_message(c, len);
	if (w != PREP_FORWARD)
		return w;
	if (!read_parse(iobuf_parse_ptr(c->rbuf) + 5, len - 4, &pm))
		return malformed(c, "Parse");
	if (!pm.name[0])
		return client_parse_unnamed(c, s, len, &pm);
	if (ps->skipping) {
		/* after an error the server would skip it: it binds nothing, owes nothing */
	} else if (cmap_find(m, pm.name)) {
		send_dup_parse(s, pm.name, pm.rest, pm.rest_len);
	} else {
		struct pg_stmt *st = stmt_get(pm.rest, pm.rest_len);
		cmap_set(m, pm.name, stmt_ref(st));
		if (scache_touch(&ps->prepared, st))
			q_push_named(ps, 'P', PQ_MADE_UP, NULL, UNDO_FORGET, pm.name, st);
		else
			send_parse(s, st, PQ_FORWARD, pm.name);
		stmt_unref(st);
	}
	iobuf_swallow(c->rbuf, len + 1);
	return PREP_CONSUMED;
}

/* A simple Query: a DEALLOCATE of a client statement runs as a no-op whose
 * CommandComplete is rewritten, so replies, transaction state and release are the
 * server's own; other queries are forwarded (an unknown name gets the server's 26000). */
static enum pg_prep_result client_query(struct conn *c, struct conn *s, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	if (ps->skipping || len > DEALLOC_SCAN_MAX) {
		q_push(ps, 'Q', PQ_FORWARD, NULL);
		return PREP_FORWARD;
	}
	enum pg_prep_result w = whole_message(c, len);
	if (w != PREP_FORWARD)
		return w;
	struct pg_cstmt *cs = dealloc_target(c, iobuf_parse_ptr(c->rbuf) + 5, len - 4);
	if (!cs) {
		q_push(ps, 'Q', PQ_FORWARD, NULL);
		return PREP_FORWARD;
	}
	q_push_named(ps, 'Q', PQ_DEALLOC, NULL, UNDO_RESTORE, cs->name, cs->stmt);
	cmap_remove(&pgc(c)->prepared, cs->name);
	struct pg_out o;
	pg_out_init(&o);
	pg_out_query(&o, dealloc_noop);
	conn_send_after_forwarded(s, o.data, o.len);
	pg_out_free(&o);
	iobuf_swallow(c->rbuf, len + 1);
	return PREP_CONSUMED;
}

/* An Execute of the portal bound to an extended-protocol DEALLOCATE made a no-op. */
static enum pg_prep_result client_execute(struct conn *c, struct conn *s, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	if (!ps->dealloc_portal || ps->skipping || len > NAME_SCAN_MAX) {
		q_push(ps, 'E', PQ_FORWARD, NULL);
		return PREP_FORWARD;
	}
	enum pg_prep_result w = whole_message(c, len);
	if (w != PREP_FORWARD)
		return w;
	const uint8_t *body = iobuf_parse_ptr(c->rbuf) + 5;
	long plen = str_in(body, len - 4);
	if (plen < 0 || strcmp((const char *)body, ps->dealloc_portal) != 0) {
		q_push(ps, 'E', PQ_FORWARD, NULL);
		return PREP_FORWARD;
	}
	const char *target = ps->dealloc_portal_target;
	struct pg_cstmt *cs = cmap_find(&pgc(c)->prepared, target);
	q_push_named(ps, 'E', PQ_DEALLOC, NULL, cs ? UNDO_RESTORE : UNDO_NONE, target,
	             cs ? cs->stmt : NULL);
	if (cs)
		cmap_remove(&pgc(c)->prepared, target);
	return PREP_FORWARD;
}

/* --- a client between transactions that only prepares --- */

#define IDLE_BATCH_MAX 16 /* longer batches of Parse and Close go to a server */

/* The statement name a Parse or Close of a statement names, or NULL. */
static const char *named_in(uint8_t type, const uint8_t *body, uint32_t blen)
{
	struct parse_msg pm;
	if (type == 'P')
		return read_parse(body, blen, &pm) && pm.name[0] ? pm.name : NULL;
	if (type == 'C' && blen >= 3 && body[0] == 'S' && str_in(body + 1, blen - 1) > 0)
		return (const char *)body + 1;
	return NULL;
}

/* Whether a name appears in the batch before offset at: a Parse after a Close of the
 * same name, or of a name in use, needs the server's order of events. */
static bool named_before(const uint8_t *p, uint32_t at, const char *name)
{
	uint8_t type;
	uint32_t len;
	for (uint32_t i = 0; i < at; i += len + 1) {
		pg_read_header(p + i, at - i, &type, &len);
		const char *other = named_in(type, p + i + 5, len - 4);
		if (other && strcmp(other, name) == 0)
			return true;
	}
	return false;
}

/* Whether one message can be answered without a server. */
static bool answerable_here(struct conn *c, uint8_t type, const uint8_t *body, uint32_t blen)
{
	struct parse_msg pm;
	const struct pg_stmt *st;
	switch (type) {
	case 'P':
		/* a name in use gets the server's error, in the server's place */
		if (!read_parse(body, blen, &pm) || !pm.name[0] ||
		    cmap_find(&pgc(c)->prepared, pm.name))
			return false;
		st = stmt_find(pm.rest, pm.rest_len, hash_bytes(pm.rest, pm.rest_len));
		return st && st->validated;
	case 'C':
		return blen >= 3 && body[0] == 'S' && body[1] && str_in(body + 1, blen - 1) > 0;
	case 'H':
		return true;
	default:
		return false;
	}
}

static void answer_here(struct conn *c, uint8_t type, const uint8_t *body, uint32_t blen,
                        struct pg_out *o)
{
	struct parse_msg pm;
	uint8_t reply = 0;
	if (type == 'P' && read_parse(body, blen, &pm)) {
		cmap_set(&pgc(c)->prepared, pm.name, stmt_get(pm.rest, pm.rest_len));
		c->pool->stats.total.client_parses++;
		reply = '1';
	} else if (type == 'C') {
		cmap_remove(&pgc(c)->prepared, (const char *)body + 1);
		reply = '3';
	} else if (type == 'S') {
		pg_out_ready(o, 'I');
	}
	if (reply) {
		pg_out_begin(o, reply);
		pg_out_end(o);
	}
}

/* A DEALLOCATE sluice can answer between transactions, of a name it keeps or ALL: its
 * tag, or NULL. apply: forget the statements too. */
static const char *dealloc_idle(struct conn *c, const uint8_t *sql, uint32_t n, bool apply)
{
	char name[IDENT_MAX + 1];
	long qlen = str_in(sql, n);
	enum dealloc_kind k = qlen < 0 ? DEALLOC_NONE : read_deallocate(sql, (size_t)qlen, name);
	if (k == DEALLOC_NONE || (k == DEALLOC_NAME && !cmap_find(&pgc(c)->prepared, name)))
		return NULL; /* an unknown name gets the server's own 26000 */
	if (apply && k == DEALLOC_ALL)
		cmap_clear(&pgc(c)->prepared);
	else if (apply)
		cmap_remove(&pgc(c)->prepared, name);
	return k == DEALLOC_ALL ? "DEALLOCATE ALL" : "DEALLOCATE";
}

/* Replies to what was answered between transactions (the status is always idle). */
static void answer_dealloc(struct conn *c, const char *replies, const char *tag, uint32_t used)
{
	struct pg_out o;
	pg_out_init(&o);
	for (; *replies; replies++) {
		pg_out_begin(&o, (uint8_t)*replies);
		if (*replies == 'C')
			pg_out_str(&o, tag);
		pg_out_end(&o);
	}
	pg_out_ready(&o, 'I');
	iobuf_swallow(c->rbuf, used);
	pg_send_out(c, &o);
	pg_out_free(&o);
}

static uint16_t get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* One message of the extended-protocol DEALLOCATE libpq's PQsendQueryParams makes
 * (psycopg 3 sends its DEALLOCATEs so): the unnamed statement and portal, no
 * parameters. */
static bool ext_dealloc_part(struct conn *c, uint8_t type, const uint8_t *body, uint32_t n)
{
	switch (type) {
	case 'P':
		return n >= 4 && body[0] == 0 && str_in(body + 1, n - 1) == (long)n - 4 &&
		       body[n - 2] == 0 && body[n - 1] == 0 &&
		       dealloc_idle(c, body + 1, n - 1, false);
	case 'B':
		/* two empty names, parameter formats, no parameters, any result formats */
		return n >= 6 && body[0] == 0 && body[1] == 0 && n >= 6u + 2u * get_u16(body + 2) &&
		       get_u16(body + 4 + 2 * get_u16(body + 2)) == 0;
	case 'D':
		return n == 2 && body[0] == 'P' && body[1] == 0;
	case 'E':
		return n == 5 && body[0] == 0;
	default:
		return type == 'S';
	}
}

/* Parse, Bind, an optional Describe of the portal, Execute, Sync, answered here. */
static bool answer_ext_dealloc_idle(struct conn *c)
{
	const uint8_t *p = iobuf_parse_ptr(c->rbuf);
	uint32_t avail = iobuf_unparsed(c->rbuf), at = 0, len = 0;
	char replies[5] = {0};
	size_t nr = 0;
	uint8_t type;
	for (const char *want = "PBDES"; *want; want++) {
		if (pg_read_header(p + at, avail - at, &type, &len) != PG_HDR_OK ||
		    avail - at < len + 1 || len > DEALLOC_SCAN_MAX)
			return false;
		if (*want == 'D' && type != 'D')
			want++; /* no Describe */
		if (type != *want || !ext_dealloc_part(c, type, p + at + 5, len - 4))
			return false;
		if (type != 'S')
			replies[nr++] = type == 'P'   ? '1'
			                : type == 'B' ? '2'
			                : type == 'D' ? 'n'
			                              : 'C';
		at += len + 1;
	}
	/* the query text follows the Parse's header and empty name */
	const char *tag = dealloc_idle(c, p + 6, pg_get_u32(p + 1) - 5, true);
	answer_dealloc(c, replies, tag, at);
	return true;
}

bool pg_prep_answer_idle(struct conn *c)
{
	struct iobuf *b = c->rbuf;
	const uint8_t *p = iobuf_parse_ptr(b);
	uint32_t avail = iobuf_unparsed(b), end = 0, len, count = 0;
	uint8_t type;
	if (pg_read_header(p, avail, &type, &len) != PG_HDR_OK)
		return false;
	if (type == 'Q') {
		const char *tag = len <= DEALLOC_SCAN_MAX && avail >= len + 1
		                      ? dealloc_idle(c, p + 5, len - 4, true)
		                      : NULL;
		if (tag)
			answer_dealloc(c, "C", tag, len + 1);
		return tag != NULL;
	}
	if (type == 'P' && len > 4 && p[5] == 0)
		return answer_ext_dealloc_idle(c);
	do {
		if (pg_read_header(p + end, avail - end, &type, &len) != PG_HDR_OK ||
		    avail - end < len + 1 || ++count > IDLE_BATCH_MAX)
			return false;
		const char *name = named_in(type, p + end + 5, len - 4);
		if (type != 'S' && (!answerable_here(c, type, p + end + 5, len - 4) ||
		                    (name && named_before(p, end, name))))
			return false;
		end += len + 1;
	} while (type != 'S');
	struct pg_out o;
	pg_out_init(&o);
	for (uint32_t at = 0; at < end; at += len + 1) {
		pg_read_header(p + at, end - at, &type, &len);
		answer_here(c, type, p + at + 5, len - 4, &o);
	}
	iobuf_swallow(b, end);
	pg_send_out(c, &o);
	pg_out_free(&o);
	return true;
}

/* A Bind to a portal: it runs a DEALLOCATE made a no-op when it binds that unnamed
 * statement (stmt is "" then), and stops being one otherwise. */
static void note_dealloc_portal(struct pg_server *ps, const char *portal, const char *stmt)
{
	if (ps->dealloc_portal && strcmp(ps->dealloc_portal, portal) == 0) {
		set_str(&ps->dealloc_portal, NULL);
		set_str(&ps->dealloc_portal_target, NULL);
	}
	if (stmt && ps->dealloc_unnamed && !ps->skipping) {
		set_str(&ps->dealloc_portal, portal);
		set_str(&ps->dealloc_portal_target, ps->dealloc_unnamed);
	}
}

static enum pg_prep_result client_bind(struct conn *c, struct conn *s, uint32_t len, uint32_t *fwd)
{
	struct iobuf *b = c->rbuf;
	uint32_t avail = iobuf_unparsed(b) < len + 1 ? iobuf_unparsed(b) : len + 1;
	const uint8_t *m = iobuf_parse_ptr(b);
	long plen = str_in(m + 5, avail - 5);
	long slen = plen < 0 ? -1 : str_in(m + 5 + plen + 1, avail - 5 - (uint32_t)plen - 1);
	if (slen < 0) {
		if (avail == len + 1 || avail >= NAME_SCAN_MAX)
			return malformed(c, "Bind");
		iobuf_reserve(&c->rbuf, len + 1 < NAME_SCAN_MAX ? len + 1 : NAME_SCAN_MAX);
		return PREP_WAIT;
	}
	const char *name = (const char *)m + 5 + plen + 1;
	note_dealloc_portal(pgs(s), (const char *)m + 5, slen ? NULL : name);
	struct pg_cstmt *cs = slen ? cmap_find(&pgc(c)->prepared, name) : NULL;
	if (cs)
		ensure_prepared(s, cs->stmt);
	q_push(pgs(s), 'B', PQ_FORWARD, NULL);
	if (!cs)
		return PREP_FORWARD; /* unnamed, or unknown: the server says so */
	uint32_t prefix = 5 + (uint32_t)plen + 1 + (uint32_t)slen + 1;
	/* the header and names are rewritten; the parameters stream through as they are */
	char sname[32];
	uint32_t snlen = (uint32_t)server_name(cs->stmt, sname, sizeof(sname)) + 1;
	uint8_t head[5];
	head[0] = 'B';
	pg_put_u32(head + 1, len - (uint32_t)slen + snlen - 1);
	conn_send_after_forwarded(s, head, 5);
	conn_send_after_forwarded(s, m + 5, (uint32_t)plen + 1);
	conn_send_after_forwarded(s, sname, snlen);
	iobuf_swallow(b, prefix);
	*fwd = len + 1 - prefix;
	return PREP_FORWARD;
}

/* Describe and Close name a statement ('S') or a portal ('P'). */
static enum pg_prep_result client_describe_close(struct conn *c, struct conn *s, uint8_t type,
                                                 uint32_t len)
{
	struct pg_server *ps = pgs(s);
	if (len > NAME_SCAN_MAX)
		return malformed(c, type == 'D' ? "Describe" : "Close");
	enum pg_prep_result w = whole_message(c, len);
	if (w != PREP_FORWARD)
		return w;
	const uint8_t *body = iobuf_parse_ptr(c->rbuf) + 5;
	long nlen = len >= 5 ? str_in(body + 1, len - 5) : -1;
	if (nlen < 0)
		return malformed(c, type == 'D' ? "Describe" : "Close");
	const char *name = (const char *)body + 1;
	if (body[0] != 'S' || nlen == 0) {
		q_push(ps, type, PQ_FORWARD, NULL);
		return PREP_FORWARD;
	}
	struct pg_cstmt *cs = cmap_find(&pgc(c)->prepared, name);
	if (type == 'C') {
		/* skipped after an error, it closes nothing; skipped later, it is undone */
		if (!ps->skipping) {
			q_push_named(ps, 'C', PQ_MADE_UP, NULL, cs ? UNDO_RESTORE : UNDO_NONE, name,
			             cs ? cs->stmt : NULL);
			cmap_remove(&pgc(c)->prepared, name);
		}
		iobuf_swallow(c->rbuf, len + 1);
		return PREP_CONSUMED;
	}
	if (cs)
		ensure_prepared(s, cs->stmt);
	q_push(ps, 'D', PQ_FORWARD, NULL);
	if (!cs)
		return PREP_FORWARD;
	emit_named(s, 'D', body, 1, cs->stmt, NULL, 0);
	iobuf_swallow(c->rbuf, len + 1);
	return PREP_CONSUMED;
}

enum pg_prep_result pg_prep_client_msg(struct conn *c, uint8_t type, uint32_t len, uint32_t *fwd)
{
	struct conn *s = c->link;
	*fwd = len + 1;
	switch (type) {
	case 'P':
		return client_parse(c, s, len);
	case 'B':
		return client_bind(c, s, len, fwd);
	case 'D':
	case 'C':
		return client_describe_close(c, s, type, len);
	case 'Q':
		return client_query(c, s, len);
	case 'E':
		return client_execute(c, s, len);
	case 'S':
	case 'F':
		q_push(pgs(s), type, PQ_FORWARD, NULL);
		return PREP_FORWARD;
	default:
		return PREP_FORWARD; /* Flush and COPY data owe no reply of their own */
	}
}

/* --- server replies --- */

static bool pop_if(struct conn *s, uint8_t type)
{
	struct pg_server *ps = pgs(s);
	if (!ps->queue.n || q_at(&ps->queue, 0)->type != type)
		return false;
	struct pg_qent e = q_pop(&ps->queue);
	if (type == 'P' && e.stmt)
		e.stmt->validated = true;
	bool dealloc = e.action == PQ_DEALLOC && s->link;
	if (dealloc)
		send_tag(s->link, "DEALLOCATE");
	ent_free(e);
	return e.action == PQ_SWALLOW || dealloc;
}

/* A simple Query's CommandComplete: a DEALLOCATE made a no-op says DEALLOCATE. */
static bool query_done(struct conn *s)
{
	struct pg_qent *e = q_at(&pgs(s)->queue, 0);
	if (e->type != 'Q' || e->action != PQ_DEALLOC || !s->link)
		return false;
	e->action = PQ_FORWARD;
	e->undo = UNDO_NONE;
	send_tag(s->link, "DEALLOCATE");
	return true;
}

/* An ErrorResponse. In a simple Query the server goes on with the next message;
 * elsewhere it skips to the next Sync. */
static bool server_error(struct conn *s)
{
	struct pg_qent *e = q_at(&pgs(s)->queue, 0);
	if (e->type == 'Q') {
		ent_undo(s->link, e); /* the DEALLOCATE failed: the name stays */
		e->action = PQ_FORWARD;
		e->undo = UNDO_NONE;
		return false;
	}
	if (e->type == 'S' || e->type == 'F')
		return false;
	bool dup = e->action == PQ_DUP && s->link;
	if (dup)
		send_dup_error(s->link, e->name);
	q_error(s);
	return dup;
}

bool pg_prep_server_reply(struct conn *s, uint8_t type)
{
	struct pg_server *ps = pgs(s);
	if (!ps->queue.n)
		return false;
	switch (type) {
	case '1':
		return pop_if(s, 'P');
	case '2':
		return pop_if(s, 'B');
	case '3':
		return pop_if(s, 'C');
	case 'n':
	case 'T':
		return pop_if(s, 'D');
	case 'C':
		return query_done(s) || pop_if(s, 'E');
	case 'I':
	case 's':
		return pop_if(s, 'E');
	case 'Z':
		while (ps->queue.n) {
			struct pg_qent e = q_pop(&ps->queue);
			ent_free(e);
			if (e.type == 'S' || e.type == 'Q' || e.type == 'F')
				break;
		}
		return false;
	case 'E':
		return server_error(s);
	default:
		return false;
	}
}

void pg_prep_send_made_up(struct conn *s)
{
	struct pg_server *ps = pgs(s);
	struct conn *c = s->link;
	while (c && ps->queue.n && q_at(&ps->queue, 0)->action == PQ_MADE_UP && !ps->pkt_remain) {
		struct pg_qent e = q_pop(&ps->queue);
		uint8_t msg[5] = {e.type == 'P' ? '1' : '3', 0, 0, 0, 4};
		conn_send_after_forwarded(c, msg, sizeof(msg));
		ent_free(e);
	}
}

void pg_prep_command_done(struct conn *s, const uint8_t *tag, uint32_t len)
{
	struct pg_server *ps = pgs(s);
	long n = str_in(tag, len);
	/* The server ran a client's own PREPARE, or a DEALLOCATE sluice did not answer:
	 * the next client must not find that statement, and the name deallocated may have
	 * been one of sluice's, which the server would then lack under other clients. */
	if (!ps->internal && ((n == 10 && memcmp(tag, "DEALLOCATE", 10) == 0) ||
	                      (n == 7 && memcmp(tag, "PREPARE", 7) == 0)))
		ps->sql_prepared = true;
	if ((n == 14 && memcmp(tag, "DEALLOCATE ALL", 14) == 0) ||
	    (n == 11 && memcmp(tag, "DISCARD ALL", 11) == 0)) {
		scache_clear(&ps->prepared);
		/* Parses queued behind this command ran after it */
		for (uint32_t i = 1; i < ps->queue.n; i++)
			if (q_at(&ps->queue, i)->type == 'P' && q_at(&ps->queue, i)->stmt)
				scache_add(&ps->prepared, q_at(&ps->queue, i)->stmt);
		if (s->link && !ps->internal)
			cmap_clear(&pgc(s->link)->prepared);
	}
}

/* --- teardown and counts --- */

static void dealloc_forget(struct pg_server *ps)
{
	set_str(&ps->dealloc_unnamed, NULL);
	set_str(&ps->dealloc_portal, NULL);
	set_str(&ps->dealloc_portal_target, NULL);
}

void pg_prep_linked(struct conn *s)
{
	dealloc_forget(pgs(s));
}

void pg_prep_client_free(struct pg_client *pc)
{
	cmap_clear(&pc->prepared);
}

void pg_prep_server_free(struct pg_server *ps)
{
	while (ps->queue.n)
		ent_free(q_pop(&ps->queue));
	free(ps->queue.v);
	ps->queue.v = NULL;
	scache_clear(&ps->prepared);
	dealloc_forget(ps);
}

unsigned pg_prep_count(const struct conn *c)
{
	if (!c->pstate)
		return 0;
	return c->is_server ? pgs(c)->prepared.n : pgc(c)->prepared.n;
}
