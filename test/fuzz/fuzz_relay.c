/*
 * fuzz_relay: a logged-in client's messages through pg_client's relay framing and,
 * in transaction and statement mode, the prepared-statement rewriter (pg_prep.c), to
 * a fake server that answers them. A second client may share the pool, so servers go
 * back and forth between the two.
 *
 * Input: one byte of settings (pool mode, prepared statements on or off, a second
 * client), then the first client's messages, cut into separate writes at H_SPLIT.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	h_begin();
	struct core *core = h_core();
	uint8_t flags = data[0];
	core->cfg->pool_mode = flags % 3;
	core->cfg->max_prepared_statements = flags & 0x04 ? 0 : 5; /* small: evictions happen */
	core->cfg->default_pool_size = flags & 0x08 ? 1 : 2;
	int c = h_client();
	h_client_startup(c, "app", "db1");
	int other = -1;
	if (flags & 0x10) {
		other = h_client();
		h_client_startup(other, "app", "db1");
	}
	h_pump();
	h_client_send_chunks(c, data + 1, size - 1);
	if (other >= 0) {
		h_client_query(other, "SELECT 1");
		h_pump();
	}
	h_end();
	return 0;
}
