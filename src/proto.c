/*
 * proto: the registry of wire protocol modules, the one file that names them. The
 * config stores a protocol by name (protocol = in [databases], listen_protocol); pools
 * and listeners get their proto_ops here, so no other core file knows a module. Adding
 * a protocol adds a row here and its name to config.c's protocol_names[].
 */
#include "proto.h"

#include <stddef.h>
#include <strings.h>

#include "util.h"

/* Each module's table, defined in its own files (pg_proto.c). */
extern const struct proto_ops pg_proto;

static const struct {
	const char *name;
	const struct proto_ops *ops;
} protocols[] = {
    {"postgresql", &pg_proto},
};

const struct proto_ops *proto_by_name(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(protocols); i++)
		if (strcasecmp(name, protocols[i].name) == 0)
			return protocols[i].ops;
	return NULL;
}
