/*
 * scram: SCRAM-SHA-256 message parsing and key arithmetic for both ends of a
 * PostgreSQL SASL exchange, plus the stored-secret format. It owns the byte-level
 * validation of every SCRAM message: input arrives with a length and no terminator,
 * may contain anything, and is never read past its length. It never logs, never
 * touches a socket and never keeps a password: callers own those.
 *
 * Passwords are used as their raw bytes, without SASLprep. For ASCII passwords that
 * is what SASLprep would produce anyway (and PostgreSQL, like libpq, falls back to
 * the raw bytes when SASLprep fails, e.g. on control characters or invalid UTF-8).
 * A non-ASCII password whose NFKC form differs from its bytes would therefore not
 * match a secret PostgreSQL derived from the normalised form.
 */
#include "scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/*
 * PostgreSQL refuses authentication messages over 64 KiB; the limit also keeps
 * every length below INT_MAX for "%.*s" and OpenSSL's int parameters.
 */
#define SCRAM_MAX_MESSAGE_LEN  65535
#define SCRAM_RAW_NONCE_LEN    18 /* as libpq and PostgreSQL: 24 base64 characters */
#define SCRAM_DEFAULT_SALT_LEN 16
#define SECRET_PREFIX          SCRAM_MECHANISM "$"

/* ---------- base64 (RFC 4648, strict) ---------- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns a malloc'd, terminated encoding of n bytes. */
static char *b64_encode(const uint8_t *in, size_t n)
{
	char *out = xmalloc((n + 2) / 3 * 4 + 1);
	char *o = out;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		*o++ = b64_chars[v >> 18 & 63];
		*o++ = b64_chars[v >> 12 & 63];
		*o++ = i + 1 < n ? b64_chars[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decodes one quad of which the first `data` characters carry bits; returns bytes. */
static int b64_quad(const char *in, size_t data, uint8_t out[3])
{
	uint32_t v = 0;
	size_t nbytes = data - 1;

	for (size_t j = 0; j < 4; j++) {
		int d = j < data ? b64_value(in[j]) : 0;
		if (d < 0)
			return -1;
		v = v << 6 | (uint32_t)d;
	}
	/* Bits that fall into the padding must be zero: one encoding per value. */
	if (nbytes < 3 && (v & ((1u << (8 * (3 - nbytes))) - 1)) != 0)
		return -1;
	out[0] = (uint8_t)(v >> 16);
	out[1] = (uint8_t)(v >> 8);
	out[2] = (uint8_t)v;
	return (int)nbytes;
}

/*
 * Accepts only canonical padded base64: length a multiple of four, the standard
 * alphabet, '=' only as one or two final characters, no whitespace.
 */
static bool b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
	size_t pad = 0, n = 0;

	if (len % 4 != 0)
		return false;
	if (len > 0 && in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	if (len / 4 * 3 - pad > cap)
		return false;
	for (size_t i = 0; i < len; i += 4) {
		uint8_t bytes[3];
		int nb = b64_quad(in + i, i + 4 == len ? 4 - pad : 4, bytes);
		if (nb < 0)
			return false;
		memcpy(out + n, bytes, (size_t)nb);
		n += (size_t)nb;
	}
	*outlen = n;
	return true;
}

/* Decodes a value that must be exactly SCRAM_KEY_LEN bytes. */
static bool b64_decode_key(const char *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	size_t n;
	return b64_decode(in, len, out, SCRAM_KEY_LEN, &n) && n == SCRAM_KEY_LEN;
}

/* ---------- SCRAM arithmetic ---------- */

static bool sha256(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	return EVP_Digest(in, len, out, NULL, EVP_sha256(), NULL) == 1;
}

static bool hmac_sha256(const uint8_t key[SCRAM_KEY_LEN], const void *msg, size_t len,
                        uint8_t out[SCRAM_KEY_LEN])
{
	unsigned int outlen = 0;
	return HMAC(EVP_sha256(), key, SCRAM_KEY_LEN, msg, len, out, &outlen) != NULL &&
	       outlen == SCRAM_KEY_LEN;
}

/* ClientKey and ServerKey from a password: RFC 5802 section 3, Hi() being PBKDF2. */
static bool derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        uint8_t client_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	uint8_t salted[SCRAM_KEY_LEN];
	size_t pwlen = strlen(password);
	bool ok;

	if (pwlen > INT_MAX || salt_len > INT_MAX)
		return false;
	ok = PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
	                       SCRAM_KEY_LEN, salted) == 1 &&
	     hmac_sha256(salted, "Client Key", 10, client_key) &&
	     hmac_sha256(salted, "Server Key", 10, server_key);
	OPENSSL_cleanse(salted, sizeof(salted));
	return ok;
}

/* AuthMessage = client-first-bare "," server-first "," client-final-without-proof */
static char *auth_message(const char *client_first_bare, const char *server_first,
                          const char *final_without_proof, size_t final_len)
{
	return xasprintf("%s,%s,%.*s", client_first_bare, server_first, (int)final_len,
	                 final_without_proof);
}

/* ---------- message reading ---------- */

struct span {
	const char *p;
	size_t len;
};

/* Walks "a=value,b=value" using only the given length. */
struct attr_reader {
	const char *p;
	const char *end;
	bool done; /* the last attribute read had no ',' after it */
};

static void reader_init(struct attr_reader *r, const char *msg, size_t len)
{
	r->p = msg;
	r->end = msg + len;
	r->done = false;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Reads the next attribute: want is its letter, or 0 to accept any letter. */
static bool read_attr(struct attr_reader *r, char want, char *name, struct span *val)
{
	const char *comma;

	if (r->done || r->end - r->p < 2 || r->p[1] != '=')
		return false;
	if (want ? r->p[0] != want : !is_alpha(r->p[0]))
		return false;
	if (name)
		*name = r->p[0];
	val->p = r->p + 2;
	comma = memchr(val->p, ',', (size_t)(r->end - val->p));
	val->len = (size_t)((comma ? comma : r->end) - val->p);
	r->p = comma ? comma + 1 : r->end;
	r->done = comma == NULL;
	return true;
}

/* RFC 5802 extensions after the known attributes: well-formed, then ignored. */
static bool skip_extensions(struct attr_reader *r)
{
	struct span ignored;

	while (!r->done)
		if (!read_attr(r, 0, NULL, &ignored))
			return false;
	return true;
}

/* printable = %x21-2B / %x2D-7E: printable ASCII except ','. */
static bool valid_nonce(const char *p, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
			return false;
	return true;
}

/* SCRAM messages are text without NUL bytes; a NUL could only hide something. */
static bool message_ok(const char *msg, size_t len)
{
	return msg && len > 0 && len <= SCRAM_MAX_MESSAGE_LEN && !memchr(msg, '\0', len);
}

/* Decimal digits only, 1..SCRAM_MAX_ITERATIONS; the bound check also stops overflow. */
static bool parse_iterations(const char *p, size_t len, int *out)
{
	long v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
		if (v > SCRAM_MAX_ITERATIONS)
			return false;
	}
	if (v < 1)
		return false;
	*out = (int)v;
	return true;
}

/* ---------- secrets ---------- */

static bool secret_ok(const struct scram_secret *s)
{
	return s->iterations >= 1 && s->iterations <= SCRAM_MAX_ITERATIONS && s->salt_len >= 1 &&
	       s->salt_len <= SCRAM_MAX_SALT_LEN;
}

/* Splits the text at the first sep into [p, sep) and returns what follows, or NULL. */
static const char *cut(const char *p, char sep, struct span *field)
{
	const char *s = strchr(p, sep);

	if (!s)
		return NULL;
	field->p = p;
	field->len = (size_t)(s - p);
	return s + 1;
}

bool scram_parse_secret(const char *text, struct scram_secret *out)
{
	struct span iter, salt, stored;
	const char *p = text, *server;
	struct scram_secret s;

	if (strncmp(p, SECRET_PREFIX, strlen(SECRET_PREFIX)) != 0)
		return false;
	p += strlen(SECRET_PREFIX);
	if (!(p = cut(p, ':', &iter)) || !(p = cut(p, '$', &salt)) ||
	    !(server = cut(p, ':', &stored)))
		return false;
	if (!parse_iterations(iter.p, iter.len, &s.iterations) ||
	    !b64_decode(salt.p, salt.len, s.salt, sizeof(s.salt), &s.salt_len) || s.salt_len == 0 ||
	    !b64_decode_key(stored.p, stored.len, s.stored_key) ||
	    !b64_decode_key(server, strlen(server), s.server_key)) {
		OPENSSL_cleanse(&s, sizeof(s));
		return false;
	}
	*out = s;
	OPENSSL_cleanse(&s, sizeof(s));
	return true;
}

bool scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
                                int iterations, struct scram_secret *out)
{
	uint8_t client_key[SCRAM_KEY_LEN];
	struct scram_secret s = {.iterations = iterations};
	bool ok;

	if (!salt) {
		salt_len = SCRAM_DEFAULT_SALT_LEN;
		if (!random_bytes(s.salt, salt_len))
			return false;
	} else if (salt_len >= 1 && salt_len <= sizeof(s.salt)) {
		memcpy(s.salt, salt, salt_len);
	} else {
		return false;
	}
	s.salt_len = salt_len;
	ok = secret_ok(&s) &&
	     derive_keys(password, s.salt, s.salt_len, iterations, client_key, s.server_key) &&
	     sha256(client_key, sizeof(client_key), s.stored_key);
	if (ok)
		*out = s;
	OPENSSL_cleanse(client_key, sizeof(client_key));
	OPENSSL_cleanse(&s, sizeof(s));
	return ok;
}

bool scram_mock_salt(const uint8_t key[SCRAM_KEY_LEN], const char *user,
                     uint8_t salt[SCRAM_MAX_SALT_LEN], size_t *salt_len)
{
	uint8_t mac[SCRAM_KEY_LEN];
	if (!hmac_sha256(key, user, strlen(user), mac))
		return false;
	/* as long as the salts sluice and PostgreSQL generate, so it does not stand out */
	memcpy(salt, mac, SCRAM_DEFAULT_SALT_LEN);
	*salt_len = SCRAM_DEFAULT_SALT_LEN;
	OPENSSL_cleanse(mac, sizeof(mac));
	return true;
}

bool scram_mock_secret(const uint8_t key[SCRAM_KEY_LEN], const char *user, int iterations,
                       struct scram_secret *out)
{
	struct scram_secret s = {.iterations = iterations};
	/* keys no password derives: a proof would need a preimage of StoredKey */
	bool ok = scram_mock_salt(key, user, s.salt, &s.salt_len) &&
	          hmac_sha256(key, "mock StoredKey", 14, s.stored_key) &&
	          hmac_sha256(key, "mock ServerKey", 14, s.server_key) && secret_ok(&s);
	if (ok)
		*out = s;
	OPENSSL_cleanse(&s, sizeof(s));
	return ok;
}

/* ---------- server side ---------- */

bool scram_server_set_nonce(struct scram_server *st, const char *server_nonce)
{
	if (st->fixed_server_nonce || !valid_nonce(server_nonce, strlen(server_nonce)))
		return false;
	st->fixed_server_nonce = xstrdup(server_nonce);
	return true;
}

static char *random_nonce(void)
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];

	if (!random_bytes(raw, sizeof(raw)))
		return NULL;
	/* base64 never produces ',' so the result is a valid nonce as it is. */
	return b64_encode(raw, sizeof(raw));
}

/*
 * gs2-header: "n,," (no channel binding) or "y,," (the client could bind but thinks
 * we cannot, which is true: sluice never advertises SCRAM-SHA-256-PLUS). "p=..."
 * asks for binding we do not offer, and an authzid is not supported by PostgreSQL.
 */
static bool parse_gs2_header(const char *msg, size_t len, char *flag)
{
	if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',' || msg[2] != ',')
		return false;
	*flag = msg[0];
	return true;
}

/*
 * client-first-message-bare: "n=" user "," "r=" nonce ["," extensions]. The user name
 * is ignored (PostgreSQL takes it from the startup packet and libpq sends "n=");
 * a leading "m=" mandatory extension fails the 'n' read, as it must.
 */
static bool parse_client_first_bare(const char *bare, size_t len, struct span *cnonce)
{
	struct attr_reader r;
	struct span user;

	reader_init(&r, bare, len);
	return read_attr(&r, 'n', NULL, &user) && read_attr(&r, 'r', NULL, cnonce) &&
	       valid_nonce(cnonce->p, cnonce->len) && skip_extensions(&r);
}

bool scram_server_first(struct scram_server *st, const struct scram_secret *secret, const char *msg,
                        size_t len, char **reply)
{
	struct span cnonce;
	char flag, *snonce, *salt64;

	*reply = NULL;
	if (st->client_first_bare || !secret_ok(secret) || !message_ok(msg, len) ||
	    !parse_gs2_header(msg, len, &flag) ||
	    !parse_client_first_bare(msg + 3, len - 3, &cnonce))
		return false;
	snonce = st->fixed_server_nonce ? xstrdup(st->fixed_server_nonce) : random_nonce();
	if (!snonce)
		return false;
	st->secret = *secret;
	st->cbind_flag = flag;
	st->client_first_bare = xstrndup(msg + 3, len - 3);
	st->nonce = xasprintf("%.*s%s", (int)cnonce.len, cnonce.p, snonce);
	salt64 = b64_encode(secret->salt, secret->salt_len);
	st->server_first = xasprintf("r=%s,s=%s,i=%d", st->nonce, salt64, secret->iterations);
	*reply = xstrdup(st->server_first);
	free(salt64);
	free(snonce);
	return true;
}

/* c= must repeat the gs2 header of the first message, base64-encoded. */
static bool cbind_matches(const struct scram_server *st, const struct span *c)
{
	char header[4] = {st->cbind_flag, ',', ',', '\0'};
	char *expect = b64_encode((const uint8_t *)header, 3);
	bool ok = c->len == strlen(expect) && memcmp(c->p, expect, c->len) == 0;

	free(expect);
	return ok;
}

/*
 * client-final-message: "c=" cbind "," "r=" nonce ["," extensions] "," "p=" proof,
 * the proof last. Sets *without_proof_len to the length before ",p=".
 */
static bool parse_client_final(const struct scram_server *st, const char *msg, size_t len,
                               uint8_t proof[SCRAM_KEY_LEN], size_t *without_proof_len)
{
	struct attr_reader r;
	struct span c, nonce, val;
	const char *attr_start;
	char name;

	reader_init(&r, msg, len);
	if (!read_attr(&r, 'c', NULL, &c) || !cbind_matches(st, &c) ||
	    !read_attr(&r, 'r', NULL, &nonce) || nonce.len != strlen(st->nonce) ||
	    memcmp(nonce.p, st->nonce, nonce.len) != 0)
		return false;
	do {
		attr_start = r.p;
		if (!read_attr(&r, 0, &name, &val))
			return false;
	} while (name != 'p');
	if (!r.done || !b64_decode_key(val.p, val.len, proof))
		return false;
	*without_proof_len = (size_t)(attr_start - 1 - msg);
	return true;
}

/* ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); valid if H(ClientKey) matches. */
static bool verify_proof(struct scram_server *st, const char *auth,
                         const uint8_t proof[SCRAM_KEY_LEN])
{
	uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	bool ok;

	ok = hmac_sha256(st->secret.stored_key, auth, strlen(auth), sig);
	for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
		key[i] = proof[i] ^ sig[i];
	ok = ok && sha256(key, sizeof(key), stored) &&
	     mem_equal_ct(stored, st->secret.stored_key, SCRAM_KEY_LEN);
	if (ok) {
		memcpy(st->client_key, key, SCRAM_KEY_LEN);
		st->have_client_key = true;
	}
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(sig, sizeof(sig));
	return ok;
}

static char *server_final_message(const struct scram_server *st, const char *auth)
{
	uint8_t sig[SCRAM_KEY_LEN];
	char *sig64, *msg;

	if (!hmac_sha256(st->secret.server_key, auth, strlen(auth), sig))
		return NULL;
	sig64 = b64_encode(sig, sizeof(sig));
	msg = xasprintf("v=%s", sig64);
	free(sig64);
	return msg;
}

bool scram_server_final(struct scram_server *st, const char *msg, size_t len, char **reply)
{
	uint8_t proof[SCRAM_KEY_LEN];
	size_t without_proof_len;
	char *auth;

	*reply = NULL;
	if (!st->server_first || !message_ok(msg, len) ||
	    !parse_client_final(st, msg, len, proof, &without_proof_len))
		return false;
	auth = auth_message(st->client_first_bare, st->server_first, msg, without_proof_len);
	/* One attempt per exchange: a second client-final is refused. */
	free(st->server_first);
	st->server_first = NULL;
	if (verify_proof(st, auth, proof))
		*reply = server_final_message(st, auth);
	free(auth);
	OPENSSL_cleanse(proof, sizeof(proof));
	return *reply != NULL;
}

void scram_server_clear(struct scram_server *st)
{
	free(st->client_first_bare);
	free(st->server_first);
	free(st->nonce);
	free(st->fixed_server_nonce);
	OPENSSL_cleanse(st, sizeof(*st));
}

/* ---------- client side ---------- */

bool scram_client_set_nonce(struct scram_client *st, const char *nonce)
{
	size_t len = strlen(nonce);

	if (len >= sizeof(st->nonce) || !valid_nonce(nonce, len))
		return false;
	memcpy(st->nonce, nonce, len + 1);
	return true;
}

/* saslname: ',' and '=' are written as "=2C" and "=3D". */
static char *sasl_escape(const char *user)
{
	char *out = xmalloc(strlen(user) * 3 + 1), *o = out;

	for (const char *p = user; *p; p++) {
		if (*p == ',' || *p == '=') {
			memcpy(o, *p == ',' ? "=2C" : "=3D", 3);
			o += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

bool scram_client_first(struct scram_client *st, char **out)
{
	char *user;

	*out = NULL;
	if (st->client_first_bare)
		return false;
	if (st->nonce[0] == '\0') {
		char *nonce = random_nonce();
		if (!nonce)
			return false;
		strlcpy_s(st->nonce, nonce, sizeof(st->nonce));
		free(nonce);
	}
	user = sasl_escape(st->user ? st->user : "");
	st->client_first_bare = xasprintf("n=%s,r=%s", user, st->nonce);
	*out = xasprintf("n,,%s", st->client_first_bare);
	free(user);
	return true;
}

/* The server's parameters from its first message. */
struct server_params {
	struct span nonce;
	uint8_t *salt;
	size_t salt_len;
	int iterations;
};

/*
 * server-first-message: "r=" nonce "," "s=" salt "," "i=" count ["," extensions].
 * The nonce must extend ours; a leading "m=" fails the 'r' read.
 */
static bool parse_server_first(const struct scram_client *st, const char *msg, size_t len,
                               struct server_params *sp)
{
	struct attr_reader r;
	struct span salt, iter;
	size_t ours = strlen(st->nonce);

	reader_init(&r, msg, len);
	if (!read_attr(&r, 'r', NULL, &sp->nonce) || sp->nonce.len <= ours ||
	    memcmp(sp->nonce.p, st->nonce, ours) != 0 || !valid_nonce(sp->nonce.p, sp->nonce.len) ||
	    !read_attr(&r, 's', NULL, &salt) || !read_attr(&r, 'i', NULL, &iter) ||
	    !skip_extensions(&r) || !parse_iterations(iter.p, iter.len, &sp->iterations))
		return false;
	sp->salt = xmalloc(salt.len / 4 * 3 + 1);
	return b64_decode(salt.p, salt.len, sp->salt, salt.len / 4 * 3, &sp->salt_len) &&
	       sp->salt_len > 0;
}

/* Fills the keys from the credentials; PBKDF2 runs only for a password. */
static bool client_keys(const struct scram_client *st, const struct server_params *sp,
                        uint8_t client_key[SCRAM_KEY_LEN], uint8_t server_key[SCRAM_KEY_LEN])
{
	if (st->use_keys) {
		memcpy(client_key, st->client_key, SCRAM_KEY_LEN);
		memcpy(server_key, st->server_key, SCRAM_KEY_LEN);
		return true;
	}
	return st->password && sp->iterations <= SCRAM_MAX_SERVER_ITERATIONS &&
	       derive_keys(st->password, sp->salt, sp->salt_len, sp->iterations, client_key,
	                   server_key);
}

/*
 * Computes the proof for auth and remembers the signature the server must send.
 * Returns the malloc'd base64 proof.
 */
static char *client_proof(struct scram_client *st, const struct server_params *sp, const char *auth)
{
	uint8_t ckey[SCRAM_KEY_LEN], skey[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
	uint8_t sig[SCRAM_KEY_LEN];
	char *proof64 = NULL;

	if (client_keys(st, sp, ckey, skey) && sha256(ckey, sizeof(ckey), stored) &&
	    hmac_sha256(stored, auth, strlen(auth), sig) &&
	    hmac_sha256(skey, auth, strlen(auth), st->server_signature)) {
		for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
			sig[i] ^= ckey[i];
		proof64 = b64_encode(sig, sizeof(sig));
		st->have_server_signature = true;
	}
	OPENSSL_cleanse(ckey, sizeof(ckey));
	OPENSSL_cleanse(skey, sizeof(skey));
	OPENSSL_cleanse(sig, sizeof(sig));
	return proof64;
}

bool scram_client_final(struct scram_client *st, const char *server_first, size_t len, char **out)
{
	struct server_params sp = {0};
	char *without_proof = NULL, *auth = NULL, *proof64 = NULL;

	*out = NULL;
	if (!st->client_first_bare || st->server_first || !message_ok(server_first, len))
		return false;
	if (!parse_server_first(st, server_first, len, &sp))
		goto done;
	st->server_first = xstrndup(server_first, len);
	/* "biws" is base64("n,,"): we never bind. */
	without_proof = xasprintf("c=biws,r=%.*s", (int)sp.nonce.len, sp.nonce.p);
	auth = auth_message(st->client_first_bare, st->server_first, without_proof,
	                    strlen(without_proof));
	proof64 = client_proof(st, &sp, auth);
	if (proof64)
		*out = xasprintf("%s,p=%s", without_proof, proof64);
done:
	free(sp.salt);
	free(without_proof);
	free(auth);
	free(proof64);
	return *out != NULL;
}

bool scram_client_verify(struct scram_client *st, const char *server_final, size_t len)
{
	struct attr_reader r;
	struct span v;
	uint8_t sig[SCRAM_KEY_LEN];

	/* "e=..." (a server-error) fails the 'v' read. */
	if (!st->have_server_signature || !message_ok(server_final, len))
		return false;
	reader_init(&r, server_final, len);
	if (!read_attr(&r, 'v', NULL, &v) || !skip_extensions(&r) ||
	    !b64_decode_key(v.p, v.len, sig))
		return false;
	return mem_equal_ct(sig, st->server_signature, SCRAM_KEY_LEN);
}

void scram_client_clear(struct scram_client *st)
{
	free(st->client_first_bare);
	free(st->server_first);
	OPENSSL_cleanse(st, sizeof(*st));
}
