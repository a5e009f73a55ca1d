/*
 * md5auth: PostgreSQL's md5 password scheme, the stored hash and the salted wire
 * response. It owns only the arithmetic: it never sees a socket, never logs, and
 * compares responses in constant time so a client cannot learn a hash byte by byte.
 */
#include "md5auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#include "util.h"

#define MD5_DIGEST_LEN 16
#define MD5_HEX_LEN    (2 * MD5_DIGEST_LEN)

/*
 * Writes "md5" || hex(md5(a || b)) into out. Hashing two pieces avoids building
 * the concatenation, which would put the password in one more heap buffer.
 */
static bool md5_prefixed_hex(const void *a, size_t alen, const void *b, size_t blen,
                             char out[MD5_PASSWD_LEN + 1])
{
	uint8_t digest[MD5_DIGEST_LEN];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	if (!ctx)
		return false;
	/* EVP_md5() fails to initialise under a FIPS-only provider; report it. */
	ok = EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(ctx, a, alen) == 1 &&
	     EVP_DigestUpdate(ctx, b, blen) == 1 && EVP_DigestFinal_ex(ctx, digest, NULL) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return false;
	memcpy(out, "md5", 3);
	hex_encode(digest, sizeof(digest), out + 3);
	OPENSSL_cleanse(digest, sizeof(digest));
	return true;
}

/* PostgreSQL only recognises lower-case hex; anything else is a plaintext password. */
bool md5_is_hash(const char *s)
{
	if (strncmp(s, "md5", 3) != 0 || strlen(s) != MD5_PASSWD_LEN)
		return false;
	return strspn(s + 3, "0123456789abcdef") == MD5_HEX_LEN;
}

bool md5_password_hash(const char *password, const char *user, char out[MD5_PASSWD_LEN + 1])
{
	return md5_prefixed_hex(password, strlen(password), user, strlen(user), out);
}

bool md5_salted_response(const char *stored_md5, const uint8_t salt[4],
                         char out[MD5_PASSWD_LEN + 1])
{
	if (!md5_is_hash(stored_md5))
		return false;
	/* The hex digits are hashed, not the "md5" prefix. */
	return md5_prefixed_hex(stored_md5 + 3, MD5_HEX_LEN, salt, 4, out);
}

bool md5_check_response(const char *secret, bool secret_is_md5, const char *user,
                        const uint8_t salt[4], const char *response)
{
	char stored[MD5_PASSWD_LEN + 1];
	char expected[MD5_PASSWD_LEN + 1];
	bool ok = false;

	if (secret_is_md5) {
		if (!md5_is_hash(secret))
			return false;
		memcpy(stored, secret, sizeof(stored));
	} else if (!md5_password_hash(secret, user, stored)) {
		return false;
	}
	/* The response length is public (always 35 when honest); only its bytes are secret. */
	if (md5_salted_response(stored, salt, expected) &&
	    strnlen(response, MD5_PASSWD_LEN + 1) == MD5_PASSWD_LEN)
		ok = mem_equal_ct(expected, response, MD5_PASSWD_LEN);
	OPENSSL_cleanse(stored, sizeof(stored));
	OPENSSL_cleanse(expected, sizeof(expected));
	return ok;
}
