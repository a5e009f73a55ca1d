/*
 * log: writes formatted lines to the configured targets. Writing is synchronous
 * and best effort: a full disk must not stop the pooler, so write errors are
 * ignored. Opening a log file is the only step that can fail and report. Each
 * message is escaped (str_escape) so that one call is one line.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int log_level_current = LOG_LVL_INFO;

static int log_fd = -1;
static bool log_to_stderr = true;
static bool log_to_syslog;
static char syslog_ident_buf[64] = "sluice";

static const char *const level_names[] = {"FATAL", "ERROR", "WARNING", "LOG", "DEBUG", "NOISE"};
static const int syslog_prio[] = {LOG_CRIT, LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG};

static int facility_from_name(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} map[] = {
	    {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
	    {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
	    {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
	    {"local7", LOG_LOCAL7},
	};
	for (size_t i = 0; name && i < ARRAY_SIZE(map); i++)
		if (str_ieq(map[i].name, name))
			return map[i].value;
	return LOG_DAEMON;
}

bool log_setup(const struct log_target *t)
{
	int fd = -1;
	if (t->logfile && t->logfile[0]) {
		fd = open(t->logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd < 0)
			return false;
	}
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_to_stderr = t->use_stderr;
	if (log_to_syslog)
		closelog();
	log_to_syslog = t->use_syslog;
	if (log_to_syslog) {
		strlcpy_s(syslog_ident_buf, t->syslog_ident ? t->syslog_ident : "sluice",
		          sizeof(syslog_ident_buf));
		openlog(syslog_ident_buf, LOG_PID, facility_from_name(t->syslog_facility));
	}
	return true;
}

void log_set_level(int level)
{
	if (level < LOG_LVL_ERROR)
		level = LOG_LVL_ERROR;
	if (level > LOG_LVL_NOISE)
		level = LOG_LVL_NOISE;
	log_level_current = level;
}

void log_close(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	if (log_to_syslog)
		closelog();
	log_to_syslog = false;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
	char raw[2048], msg[4096], line[4200];
	struct timespec ts;
	struct tm tm;
	int saved_errno = errno;
	if (!log_enabled(level))
		return;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	/* every line, whoever built it: a name a client chose, or a server's error
	 * quoting one, must not end the line early or reach a terminal as a control */
	str_escape(msg, sizeof(msg), raw);
	if (log_to_syslog)
		syslog(syslog_prio[level], "%s %s", level_names[level], msg);
	if (log_fd < 0 && !log_to_stderr)
		goto out;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02d %02d:%02d:%02d.%03ld UTC [%d] %s %s\n",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000000, (int)getpid(), level_names[level], msg);
	if (n < 0)
		goto out;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	if (log_fd >= 0)
		write_all(log_fd, line, (size_t)n);
	if (log_to_stderr)
		write_all(2, line, (size_t)n);
out:
	errno = saved_errno;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_FATAL, fmt, ap);
	va_end(ap);
	exit(1);
}
