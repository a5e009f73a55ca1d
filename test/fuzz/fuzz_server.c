/*
 * fuzz_server: a server's bytes through pg_server's input path, in its login state
 * (authentication requests incl. SCRAM server-first/final, ParameterStatus,
 * BackendKeyData, errors) or its relay state (replies to a client's simple or
 * extended query, which pg_prep may swallow or make up), with a client attached.
 *
 * Input: one byte of settings (login or relay, which user logs in, the client's
 * query, pool mode), then the server's byte stream, cut into writes at H_SPLIT.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "harness.h"
#include "pg_pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parse/Bind/Describe/Execute/Sync of a named statement, as libpq's PQexecPrepared. */
static void extended_query(int c)
{
	struct pg_out o;
	pg_out_init(&o);
	pg_out_begin(&o, 'P');
	pg_out_str(&o, "s1");
	pg_out_str(&o, "SELECT $1");
	pg_out_u8(&o, 0);
	pg_out_u8(&o, 0);
	pg_out_end(&o);
	pg_out_begin(&o, 'B');
	pg_out_str(&o, "");
	pg_out_str(&o, "s1");
	pg_out_u32(&o, 0); /* no formats; 0 params (u16 + u16 as one u32) */
	pg_out_u8(&o, 0);
	pg_out_u8(&o, 0); /* no result formats */
	pg_out_end(&o);
	pg_out_begin(&o, 'D');
	pg_out_u8(&o, 'P');
	pg_out_str(&o, "");
	pg_out_end(&o);
	pg_out_begin(&o, 'E');
	pg_out_str(&o, "");
	pg_out_u32(&o, 0);
	pg_out_end(&o);
	pg_out_begin(&o, 'S');
	pg_out_end(&o);
	h_client_send(c, o.data, o.len);
	pg_out_free(&o);
}

static const char *const users[][2] = {
    {"stats", "db1"}, /* plain secret in the auth file: cleartext, md5 and SCRAM */
    {"admin", "db1"}, /* md5 secret: md5 only */
    {"app", "dbpw"},  /* forced user with the entry's password */
    {"app", "dbq"},   /* connect_query and a startup parameter */
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	bool relay = flags & 1;
	h_begin();
	struct core *core = h_core();
	core->cfg->pool_mode = (flags >> 4) % 3;
	h_server_mode(relay ? H_SERVER_RAW_REPLY : H_SERVER_RAW_LOGIN);
	h_server_raw(data + 1, size - 1);
	const char *const *u = users[(flags >> 1) % 4];
	int c = h_client();
	h_client_startup(c, u[0], u[1]);
	h_pump();
	if (relay) {
		if (flags & 0x08)
			extended_query(c);
		else
			h_client_query(c, "SELECT 1");
	}
	h_pump();
	h_end();
	return 0;
}
