/*
 * auth_file: reads the userlist file in PgBouncer's format, one user per line:
 *   "username" "secret" ["ignored"...]
 * where a double quote inside a field is written twice and lines starting with ';' or
 * '#' (or blank) are ignored. The secret is plaintext, "md5" + 32 hex digits, or a
 * SCRAM-SHA-256 secret ("SCRAM-SHA-256$iter:salt$storedkey:serverkey"). The module
 * only parses and looks up; it never logs a secret and its errors never quote one.
 *
 * Stricter than PgBouncer in two ways, both reported as "path:line: reason": a user
 * listed twice is an error (PgBouncer lets the last line win, which hides a stale
 * password), and a secret that starts "SCRAM-SHA-256$" but does not parse is an
 * error rather than a plaintext password. An empty secret ("") is kept as an empty
 * plaintext secret: it is normal with auth_type trust, and password methods must
 * refuse it.
 */
#ifndef SLUICE_AUTH_FILE_H
#define SLUICE_AUTH_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

enum secret_kind { SECRET_PLAIN, SECRET_MD5, SECRET_SCRAM };

struct auth_user {
	char *name;
	char *secret;
	enum secret_kind kind;
	unsigned line; /* where the user was defined, for messages */
};

struct auth_file {
	struct auth_user *users; /* sorted by name for bsearch */
	size_t n_users;
	/* what the SCRAM secrets look like, so a user sluice cannot verify gets the
	 * same method and iteration count (pg_client.c): how many there are, and the
	 * iteration count of the first (4096 when there is none) */
	size_t n_scram;
	int scram_iterations;
};

/* Parses the file. On error returns NULL and writes "path:line: reason" (no secret). */
struct auth_file *auth_file_load(const char *path, char *err, size_t errlen) WARN_UNUSED;
/* Same, from a string (name is used in messages); for tests. */
struct auth_file *auth_file_parse(const char *text, size_t len, const char *name, char *err,
                                  size_t errlen) WARN_UNUSED;
const struct auth_user *auth_file_find(const struct auth_file *af, const char *user);
void auth_file_free(struct auth_file *af);
/* Classifies a secret string. */
enum secret_kind secret_kind_of(const char *secret);

#endif
