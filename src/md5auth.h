/*
 * md5auth: PostgreSQL's md5 password scheme. The stored form is
 * "md5" || hex(md5(password || user)); the wire response to a 4-byte salt is
 * "md5" || hex(md5(hex(md5(password || user)) || salt)).
 */
#ifndef SLUICE_MD5AUTH_H
#define SLUICE_MD5AUTH_H

#include <stdbool.h>
#include <stdint.h>

#define MD5_PASSWD_LEN 35 /* "md5" + 32 hex digits, without the terminator */

/* True for "md5" + 32 lower-case hex digits, as PostgreSQL recognises a stored hash. */
bool md5_is_hash(const char *s);
/* out: 36 bytes. */
bool md5_password_hash(const char *password, const char *user, char out[MD5_PASSWD_LEN + 1]);
/* stored: a stored "md5..." hash; out: 36 bytes. */
bool md5_salted_response(const char *stored_md5, const uint8_t salt[4],
                         char out[MD5_PASSWD_LEN + 1]);
/* Checks a client's response against a stored secret that is plaintext or md5 hash. */
bool md5_check_response(const char *secret, bool secret_is_md5, const char *user,
                        const uint8_t salt[4], const char *response);

#endif
