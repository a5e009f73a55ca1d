/*
 * log: leveled log lines to stderr, a file and/or syslog. Callers format their own
 * per-connection prefix (see conn_log in conn.h); this module only adds the
 * timestamp, pid and level. It must never be handed a password or secret: callers
 * log names and addresses, never credentials.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "util.h"

enum log_level {
	LOG_LVL_FATAL = 0,
	LOG_LVL_ERROR,
	LOG_LVL_WARNING,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
	LOG_LVL_NOISE,
};

extern int log_level_current;

struct log_target {
	const char *logfile; /* NULL or "" for none */
	bool use_syslog;
	const char *syslog_ident;
	const char *syslog_facility;
	bool use_stderr;
};

/* Opens (or reopens, on reload and SIGHUP) the targets; false with errno on failure. */
bool log_setup(const struct log_target *t) WARN_UNUSED;
void log_set_level(int level);
void log_close(void);

void log_msg(int level, const char *fmt, ...) PRINTF_LIKE(2, 3);
void log_vmsg(int level, const char *fmt, va_list ap) PRINTF_LIKE(2, 0);
_Noreturn void fatal(const char *fmt, ...) PRINTF_LIKE(1, 2);

#define log_enabled(lvl) ((lvl) <= log_level_current)
#define log_error(...)   log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_DEBUG))                                                    \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)
#define log_noise(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_LVL_NOISE))                                                    \
			log_msg(LOG_LVL_NOISE, __VA_ARGS__);                                       \
	} while (0)

#endif
