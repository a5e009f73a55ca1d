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
	p->v[p->n].set_by_us = false;
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

void pg_params_del(struct pg_params *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++) {
		if (!str_ieq(p->v[i].name, name))
			continue;
		free(p->v[i].name);
		free(p->v[i].value);
		p->v[i] = p->v[--p->n];
		return;
	}
}

void pg_params_defaults(struct pg_params *wanted, const struct config *cfg,
                        const struct pg_params *reported)
{
	for (size_t i = 0; i < reported->n; i++) {
		const char *canon = pg_param_canonical(cfg, reported->v[i].name);
		if (canon && !pg_params_get(wanted, canon))
			pg_params_set(wanted, canon, reported->v[i].value);
	}
}

void pg_params_forget_unreported(struct pg_params *have)
{
	for (size_t i = have->n; i-- > 0;)
		if (have->v[i].set_by_us)
			pg_params_del(have, have->v[i].name);
}

/* The server will not tell what it now has: remember what sluice set. */
static void record_set_by_us(struct pg_params *have, const char *name, const char *value)
{
	pg_params_set(have, name, value);
	for (size_t i = 0; i < have->n; i++)
		if (str_ieq(have->v[i].name, name))
			have->v[i].set_by_us = true;
}

/* The next word of an options value, as PostgreSQL splits it (pg_split_opts):
 * separated by white space, a backslash takes the next character as it is. The
 * word is copied to out (as long as the value); NULL at the end. */
static const char *next_option_word(const char **p, char *out)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (!*s)
		return NULL;
	char *o = out;
	while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
		if (*s == '\\' && s[1])
			s++;
		*o++ = *s++;
	}
	*o = 0;
	*p = s;
	return out;
}

/* One "name=value" setting: a tracked parameter becomes wanted; an ignored one is
 * dropped; anything else is refused. */
static bool take_option_setting(struct pg_params *wanted, const struct config *cfg, char *setting)
{
	char *eq = strchr(setting, '=');
	if (!eq || eq == setting)
		return false;
	*eq = 0;
	for (char *n = setting; *n; n++) /* --work-mem=1 means work_mem, as in PostgreSQL */
		if (*n == '-')
			*n = '_';
	const char *canon = pg_param_canonical(cfg, setting);
	if (canon) {
		pg_params_set(wanted, canon, eq + 1);
		return true;
	}
	return config_list_contains(cfg->ignore_startup_parameters, setting);
}

bool pg_take_options(struct pg_params *wanted, const struct config *cfg, const char *opts,
                     char *bad, size_t badlen)
{
	size_t n = strlen(opts) + 1;
	char *word = xmalloc(n), *next = xmalloc(n);
	const char *p = opts;
	bool ok = true;
	const char *w;
	while (ok && (w = next_option_word(&p, word)) != NULL) {
		char *setting = NULL;
		if (strcmp(w, "-c") == 0)
			setting = (char *)next_option_word(&p, next);
		else if (strncmp(w, "-c", 2) == 0)
			setting = word + 2;
		else if (strncmp(w, "--", 2) == 0)
			setting = word + 2;
		ok = setting && take_option_setting(wanted, cfg, setting);
		if (!ok)
			strlcpy_s(bad, setting ? setting : w, badlen);
	}
	free(word);
	free(next);
	return ok;
}

/* One set_config() call; a NULL value resets the parameter to its default. */
static void append_set_config(struct pg_out *sql, bool first, const char *name, const char *value)
{
	static const char fn[] = "pg_catalog.set_config(";
	pg_out_bytes(sql, first ? "SELECT " : ", ", first ? 7 : 2);
	pg_out_bytes(sql, fn, sizeof(fn) - 1);
	pg_quote_literal(sql, name);
	pg_out_bytes(sql, ", ", 2);
	if (value)
		pg_quote_literal(sql, value);
	else
		pg_out_bytes(sql, "NULL", 4);
	pg_out_bytes(sql, ", false)", 8);
}

/*
 * set_config() takes a value as the startup packet does: a list parameter such as
 * search_path given as 's1, public' stays a list of two schemas, where SET with a
 * quoted literal would make it one schema named "s1, public". Parameters the server
 * does not report (not in reported) are recorded in have as they are set here, and
 * put back to their default when the next client did not ask for them.
 */
bool pg_build_param_sets(const struct pg_params *wanted, struct pg_params *have,
                         const struct pg_params *reported, struct pg_out *sql)
{
	bool any = false;
	for (size_t i = 0; i < wanted->n; i++) {
		const char *name = wanted->v[i].name, *value = wanted->v[i].value;
		const char *cur = pg_params_get(have, name);
		if (cur && strcmp(cur, value) == 0)
			continue;
		append_set_config(sql, !any, name, value);
		any = true;
		if (!pg_params_get(reported, name))
			record_set_by_us(have, name, value);
	}
	for (size_t i = have->n; i-- > 0;) {
		const char *name = have->v[i].name;
		if (!have->v[i].set_by_us || pg_params_get(wanted, name))
			continue;
		append_set_config(sql, !any, name, NULL);
		any = true;
		pg_params_del(have, name);
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
