/*
 * fuzz_config: config.c's parser on a whole file (sections, keys of every type,
 * connection strings of [databases], [users] entries, quoting), then every setting
 * read back as SHOW CONFIG does. The input is written to a scratch file first, as
 * config_load reads a path (%include of a relative name is taken from the working
 * directory, as in sluice itself).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[128];

static void cleanup(void)
{
	char dir[128];
	unlink(path);
	snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(path, '/') - path), path);
	rmdir(dir);
}

static void setup(void)
{
	char dir[] = "/tmp/sluice-fuzz-config-XXXXXX";
	if (!mkdtemp(dir))
		fatal("fuzz_config: scratch dir: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/sluice.ini", dir);
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	if (!path[0])
		setup();
	FILE *f = fopen(path, "w");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		fatal("fuzz_config: cannot write %s", path);
	struct config *cfg = config_load(path, err, sizeof(err), NULL);
	if (!cfg)
		return 0;
	struct config_setting_view v;
	for (size_t i = 0; i < config_setting_count(); i++)
		(void)config_setting_get(cfg, i, &v);
	(void)config_find_db(cfg, "db1");
	(void)config_find_db(cfg, "*");
	(void)config_find_user(cfg, "app");
	config_free(cfg);
	return 0;
}
