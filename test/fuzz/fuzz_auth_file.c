/*
 * fuzz_auth_file: auth_file.c's parser ("user" "secret" lines, doubled quotes,
 * comments), then a lookup of each user parsed and the SCRAM secret parser on each
 * secret, as a login would use them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_file.h"
#include "scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct auth_file *af = auth_file_parse((const char *)data, size, "fuzz", err, sizeof(err));
	if (!af)
		return 0;
	for (size_t i = 0; i < af->n_users; i++) {
		const struct auth_user *u = auth_file_find(af, af->users[i].name);
		struct scram_secret sec;
		if (!u)
			abort(); /* a user that was parsed must be found */
		if (secret_kind_of(u->secret) == SECRET_SCRAM)
			(void)scram_parse_secret(u->secret, &sec);
	}
	(void)auth_file_find(af, "");
	auth_file_free(af);
	return 0;
}
