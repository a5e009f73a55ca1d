/*
 * auth_file: loads the userlist file into a sorted array and answers lookups by
 * user name. It owns the file format and its error messages, which name the file
 * and line but never the secret: secrets leave this module only through
 * auth_file_find. It never logs; callers decide what to do with a bad file.
 */
#include "auth_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "md5auth.h"
#include "scram.h"

struct parser {
	const char *name;
	char *err;
	size_t errlen;
	unsigned line;
	struct auth_user *users;
	size_t n_users, cap;
};

static bool fail(struct parser *ps, const char *reason)
{
	if (ps->err && ps->errlen)
		snprintf(ps->err, ps->errlen, "%s:%u: %s", ps->name, ps->line, reason);
	return false;
}

/* Secrets are wiped before their memory goes back to the allocator. */
static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

enum secret_kind secret_kind_of(const char *secret)
{
	struct scram_secret parsed;
	bool scram;

	if (md5_is_hash(secret))
		return SECRET_MD5;
	scram = scram_parse_secret(secret, &parsed);
	explicit_bzero(&parsed, sizeof(parsed));
	return scram ? SECRET_SCRAM : SECRET_PLAIN;
}

static const char *skip_blanks(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
		p++;
	return p;
}

/*
 * Reads a quoted field starting at the opening quote; "" inside stands for one
 * quote. On success *out is the malloc'd value and *pp points after the closing
 * quote. False if the line ends first.
 */
static bool read_quoted(const char **pp, const char *end, char **out)
{
	const char *p = *pp + 1;
	char *buf = xmalloc((size_t)(end - p) + 1), *o = buf;

	while (p < end) {
		if (*p != '"') {
			*o++ = *p++;
		} else if (p + 1 < end && p[1] == '"') {
			*o++ = '"';
			p += 2;
		} else {
			*o = '\0';
			*out = buf;
			*pp = p + 1;
			return true;
		}
	}
	explicit_bzero(buf, (size_t)(o - buf));
	free(buf);
	return false;
}

static void add_user(struct parser *ps, char *name, char *secret, enum secret_kind kind)
{
	if (ps->n_users == ps->cap) {
		ps->cap = ps->cap ? ps->cap * 2 : 16;
		ps->users = xrealloc(ps->users, ps->cap * sizeof(*ps->users));
	}
	ps->users[ps->n_users++] = (struct auth_user){name, secret, kind, ps->line};
}

/* Classifies the secret; a broken SCRAM secret is a mistake, not a password. */
static bool check_secret(struct parser *ps, const char *secret, enum secret_kind *kind)
{
	*kind = secret_kind_of(secret);
	if (*kind == SECRET_PLAIN &&
	    strncmp(secret, SCRAM_MECHANISM "$", strlen(SCRAM_MECHANISM "$")) == 0)
		return fail(ps, "malformed SCRAM-SHA-256 secret");
	return true;
}

/* Reads `"user" "secret"`; on failure frees what it read and says which part failed. */
static bool read_fields(struct parser *ps, const char *p, const char *end, char **name,
                        char **secret)
{
	if (*p != '"')
		return fail(ps, "expected a quoted user name");
	if (!read_quoted(&p, end, name))
		return fail(ps, "unterminated quote in user name");
	p = skip_blanks(p, end);
	/* Anything after the secret is ignored, as PgBouncer does. */
	if (p < end && *p == '"' && read_quoted(&p, end, secret))
		return true;
	free(*name);
	if (p == end)
		return fail(ps, "missing secret");
	return fail(ps, *p == '"' ? "unterminated quote in secret"
	                          : "expected a quoted secret after the user name");
}

/* Parses one line (without its '\n'); blank and comment lines add nothing. */
static bool parse_line(struct parser *ps, const char *p, const char *end)
{
	char *name, *secret;
	enum secret_kind kind;

	p = skip_blanks(p, end);
	if (p == end || *p == '#' || *p == ';')
		return true;
	if (memchr(p, '\0', (size_t)(end - p)))
		return fail(ps, "NUL byte in line");
	if (!read_fields(ps, p, end, &name, &secret))
		return false;
	if (name[0] != '\0' ? check_secret(ps, secret, &kind) : fail(ps, "empty user name")) {
		add_user(ps, name, secret, kind);
		return true;
	}
	free(name);
	free_secret(secret);
	return false;
}

static int cmp_users(const void *a, const void *b)
{
	const struct auth_user *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Sorts for bsearch; after sorting, a user listed twice sits next to itself. */
static bool sort_and_check(struct parser *ps)
{
	char reason[64];

	if (ps->n_users == 0)
		return true; /* qsort's pointer must not be NULL, even for no elements */
	qsort(ps->users, ps->n_users, sizeof(*ps->users), cmp_users);
	for (size_t i = 1; i < ps->n_users; i++) {
		if (strcmp(ps->users[i - 1].name, ps->users[i].name) != 0)
			continue;
		ps->line = ps->users[i].line;
		snprintf(reason, sizeof(reason), "duplicate user (first on line %u)",
		         ps->users[i - 1].line);
		return fail(ps, reason);
	}
	return true;
}

static void free_users(struct auth_user *users, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(users[i].name);
		free_secret(users[i].secret);
	}
	free(users);
}

static void note_scram_secrets(struct auth_file *af)
{
	struct scram_secret sec;
	af->n_scram = 0;
	af->scram_iterations = SCRAM_DEFAULT_ITERATIONS;
	for (size_t i = 0; i < af->n_users; i++) {
		if (af->users[i].kind != SECRET_SCRAM)
			continue;
		if (af->n_scram++ == 0 && scram_parse_secret(af->users[i].secret, &sec))
			af->scram_iterations = sec.iterations;
	}
	explicit_bzero(&sec, sizeof(sec));
}

struct auth_file *auth_file_parse(const char *text, size_t len, const char *name, char *err,
                                  size_t errlen)
{
	struct parser ps = {.name = name, .err = err, .errlen = errlen};
	const char *p = text, *end = text + len;
	struct auth_file *af;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		ps.line++;
		if (!parse_line(&ps, p, eol))
			goto fail;
		p = nl ? nl + 1 : end;
	}
	if (!sort_and_check(&ps))
		goto fail;
	af = xmalloc(sizeof(*af));
	af->users = ps.users;
	af->n_users = ps.n_users;
	note_scram_secrets(af);
	return af;
fail:
	free_users(ps.users, ps.n_users);
	return NULL;
}

/* Reads a whole file into a malloc'd buffer; false with errno set. */
static bool read_file(const char *path, char **out, size_t *outlen)
{
	size_t len = 0, cap = 4096;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	buf = xmalloc(cap);
	while ((n = read(fd, buf + len, cap - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		len += (size_t)n;
		if (len == cap)
			buf = xrealloc(buf, cap *= 2);
	}
	close(fd);
	*out = buf;
	*outlen = len;
	return true;
fail:
	n = errno;
	explicit_bzero(buf, len);
	free(buf);
	close(fd);
	errno = (int)n;
	return false;
}

struct auth_file *auth_file_load(const char *path, char *err, size_t errlen)
{
	struct auth_file *af;
	char *text;
	size_t len;

	if (!read_file(path, &text, &len)) {
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	af = auth_file_parse(text, len, path, err, errlen);
	explicit_bzero(text, len);
	free(text);
	return af;
}

static int cmp_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct auth_user *)elem)->name);
}

const struct auth_user *auth_file_find(const struct auth_file *af, const char *user)
{
	if (!af || !af->n_users)
		return NULL;
	return bsearch(user, af->users, af->n_users, sizeof(*af->users), cmp_key);
}

void auth_file_free(struct auth_file *af)
{
	if (!af)
		return;
	free_users(af->users, af->n_users);
	free(af);
}
