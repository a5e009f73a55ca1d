/*
 * fuzz_login: a client's first bytes (SSLRequest, startup packet, PasswordMessage,
 * SASLInitialResponse, SASLResponse, cancel requests, and whatever follows a quick
 * login) through sluice's accept and pg_client login path.
 *
 * Input: one byte choosing auth_type (and pool_mode), then the client's byte stream,
 * cut into separate writes at H_SPLIT.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum auth_type auth_types[] = {AUTH_ANY, AUTH_TRUST, AUTH_PLAIN,
                                            AUTH_MD5, AUTH_SCRAM, AUTH_HBA};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	h_begin();
	struct core *core = h_core();
	core->cfg->auth_type = auth_types[data[0] % (sizeof(auth_types) / sizeof(auth_types[0]))];
	core->cfg->pool_mode = (data[0] >> 4) % 3;
	int c = h_client();
	h_pump(); /* accepted */
	h_client_send_chunks(c, data + 1, size - 1);
	h_pump();
	h_end();
	return 0;
}
