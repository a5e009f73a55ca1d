/*
 * scram: SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it, both ends:
 * verifying a client against a stored secret or a plaintext password, and logging in
 * to a server with a password or with keys recovered from a client's proof. Pure
 * computation over byte strings: no sockets, no logging. Channel binding is not
 * offered (gs2 header "n,,"), as sluice terminates TLS itself.
 */
#ifndef SLUICE_SCRAM_H
#define SLUICE_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define SCRAM_KEY_LEN            32
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_MECHANISM          "SCRAM-SHA-256"
/*
 * Iteration counts accepted in secrets and from servers. Deriving keys from a
 * password runs PBKDF2 in the event loop, so a hostile or mistyped count must not
 * stall it for minutes; ten million is about a few seconds and far above any
 * count PostgreSQL users pick in practice (default 4096).
 */
#define SCRAM_MAX_ITERATIONS 10000000
#define SCRAM_MAX_SALT_LEN   64
/*
 * The count a server may make sluice run PBKDF2 for when it logs in with a password.
 * The server picks it, before it has proven anything, and the event loop stalls for
 * the whole derivation at every login attempt: at SCRAM_MAX_ITERATIONS (about 3 s of
 * PBKDF2-SHA-256) every client would freeze for seconds per server login, found by
 * fuzz_server. libpq takes any count up to INT_MAX; PostgreSQL uses 4096 unless
 * scram_iterations (PG 16) is raised, and 100,000 (about 30 ms) leaves room for that.
 * With keys from a client's proof no PBKDF2 runs, so no bound applies.
 */
#define SCRAM_MAX_SERVER_ITERATIONS 100000

struct scram_secret {
	int iterations;
	uint8_t salt[SCRAM_MAX_SALT_LEN];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parses "SCRAM-SHA-256$<iter>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>". */
bool scram_parse_secret(const char *text, struct scram_secret *out) WARN_UNUSED;
/* Derives a secret from a password (salt random when salt==NULL). */
bool scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                int iterations, struct scram_secret *out) WARN_UNUSED;

/*
 * The secret shown to a client whose user sluice cannot verify by SCRAM (unknown,
 * or stored as md5), as PostgreSQL's scram_mock_salt: the salt is HMAC(key, user),
 * so it is the same on every attempt and differs between users, the iteration count
 * is the one real secrets carry, and no PBKDF2 runs, so the exchange costs what a
 * real user's does. key is random per process; the keys verify no proof.
 */
bool scram_mock_secret(const uint8_t key[SCRAM_KEY_LEN], const char *user, int iterations,
                       struct scram_secret *out) WARN_UNUSED;
/* The salt alone, for a plaintext secret that needs a stable one (salt_len bytes). */
bool scram_mock_salt(const uint8_t key[SCRAM_KEY_LEN], const char *user,
                     uint8_t salt[SCRAM_MAX_SALT_LEN], size_t *salt_len) WARN_UNUSED;

/*
 * --- verifying a client (sluice is the SCRAM server) ---
 * The state must be zeroed before step 1 (e.g. "= {0}"); scram_server_clear leaves
 * it zeroed. Every step returns false, without crashing, on any malformed input.
 */
struct scram_server {
	struct scram_secret secret;
	char *client_first_bare;
	char *server_first;
	char *nonce;     /* malloc'd: client nonce + server nonce; a client picks its length */
	char cbind_flag; /* 'n' or 'y', from the client's gs2 header */
	char *fixed_server_nonce;          /* tests only: see scram_server_set_nonce */
	uint8_t client_key[SCRAM_KEY_LEN]; /* recovered from a valid proof */
	bool have_client_key;
};

/*
 * Test hook: makes step 1 use server_nonce (printable ASCII except ',') as the
 * server's part of the nonce instead of random bytes. Call on a zeroed state.
 */
bool scram_server_set_nonce(struct scram_server *st, const char *server_nonce) WARN_UNUSED;

/*
 * Step 1: the client-first-message (SASLInitialResponse data). On success *reply is a
 * malloc'd server-first-message. false: malformed message (or channel binding asked).
 */
bool scram_server_first(struct scram_server *st, const struct scram_secret *secret, const char *msg,
                        size_t len, char **reply) WARN_UNUSED;
/*
 * Step 2: the client-final-message. true only when the proof verifies; then *reply is
 * the malloc'd server-final-message ("v=...") and st->client_key is set.
 */
bool scram_server_final(struct scram_server *st, const char *msg, size_t len,
                        char **reply) WARN_UNUSED;
void scram_server_clear(struct scram_server *st); /* frees and wipes */

/*
 * --- logging in to a server (sluice is the SCRAM client) ---
 * Zero the state, then set the credentials (and optionally user) before step 1.
 */
struct scram_client {
	char nonce[32];
	char *client_first_bare;
	char *server_first;
	uint8_t server_signature[SCRAM_KEY_LEN];
	bool have_server_signature;
	/*
	 * Optional name for the "n=" attribute. PostgreSQL ignores it (the user is in
	 * the startup packet), so NULL, sending "n=", is normal; tests set it to
	 * reproduce RFC 7677's example.
	 */
	const char *user;
	/* credentials: either password, or both keys from a client's login */
	const char *password;
	bool use_keys;
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/*
 * Test hook: makes scram_client_first send this nonce (printable ASCII except ',',
 * shorter than st->nonce) instead of a random one. Call before scram_client_first.
 */
bool scram_client_set_nonce(struct scram_client *st, const char *nonce) WARN_UNUSED;
/*
 * Fills st->nonce (unless set by the hook) and returns the malloc'd
 * client-first-message ("n,,n=,r=...").
 */
bool scram_client_first(struct scram_client *st, char **out) WARN_UNUSED;
/* Given the server-first-message, returns the malloc'd client-final-message. */
bool scram_client_final(struct scram_client *st, const char *server_first, size_t len,
                        char **out) WARN_UNUSED;
/* Checks the server-final-message's signature. */
bool scram_client_verify(struct scram_client *st, const char *server_final, size_t len) WARN_UNUSED;
void scram_client_clear(struct scram_client *st);

#endif
