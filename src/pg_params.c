/*
 * pg_params: the session parameters sluice keeps true for clients across servers.
 * A small array of name/value pairs: a handful of entries per connection makes a
 * linear search faster than any map.
 */
#include "pg.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "pool.h"

static const char *const tracked[] = {"client_encoding", "DateStyle", "TimeZone",
                                      "standard_conforming_strings", "application_name"};

const char *pg_param_canonical(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(tracked); i++)
		if (str_ieq(tracked[i], name))
			return tracked[i];
	if (config_list_contains_ci(cfg->track_extra_parameters, name))
		return name; /* the spelling the client or server used; lookups ignore case */
	return NULL;
}

const char *pg_params_get(const struct pg_params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (str_ieq(p->v[i].name, name))
			return p->v[i].value;
	return NULL;
}

bool pg_params_set(struct pg_params *p, const char *name, const char *value)
{
	for (size_t i = 0; i < p->n; i++) {
		if (!str_ieq(p->v[i].name, name))
			continue;
		if (strcmp(p->v[i].value, value) == 0)
			return false;
		free(p->v[i].value);
		p->v[i].value = xstrdup(value);
		return true;
	}
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n].name = xstrdup(name);
	p->v[p->n].value = xstrdup(value);
	p->n++;
	return true;
}

void pg_params_free(struct pg_params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].name);
		free(p->v[i].value);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

bool pg_build_param_sets(const struct pg_params *wanted, const struct pg_params *have,
                         struct pg_out *sql)
{
	bool any = false;
	for (size_t i = 0; i < wanted->n; i++) {
		const char *cur = pg_params_get(have, wanted->v[i].name);
		if (cur && strcmp(cur, wanted->v[i].value) == 0)
			continue;
		pg_out_bytes(sql, "SET ", 4);
		pg_out_bytes(sql, wanted->v[i].name, strlen(wanted->v[i].name));
		pg_out_bytes(sql, " = ", 3);
		pg_quote_literal(sql, wanted->v[i].value);
		pg_out_bytes(sql, ";", 1);
		any = true;
	}
	if (any)
		pg_out_u8(sql, 0);
	return any;
}

static void pg_pool_free(void *p)
{
	struct pg_pool *pp = p;
	pg_params_free(&pp->welcome);
	free(pp);
}

struct pg_pool *pg_pool_state(struct pool *pool)
{
	if (!pool->pstate) {
		pool->pstate = xcalloc(1, sizeof(struct pg_pool));
		pool->pstate_free = pg_pool_free;
	}
	return pool->pstate;
}

void pg_out_login_done(struct pg_out *o, const struct conn *c)
{
	pg_out_begin(o, 'K');
	pg_out_u32(o, c->cancel_pid);
	pg_out_u32(o, c->cancel_key);
	pg_out_end(o);
	pg_out_ready(o, 'I');
}

void pg_send_out(struct conn *c, struct pg_out *o)
{
	conn_send(c, o->data, o->len);
	o->len = 0;
}
