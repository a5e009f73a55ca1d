/*
 * config: owns struct config and everything that turns text into one: the table of
 * main-section settings, the value parsers and formatters, the [databases] and
 * [users] entry parser, and the line reader that feeds inih (it expands %include,
 * strips what PgBouncer ignores and remembers which file and line each line came
 * from, so every message can say "file:line:"). It reports to its caller through
 * the err buffer and warn_cb; it never logs, never touches pools or sockets, and
 * never puts the value of a password into a message.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "log.h"

/*
 * Debian's libinih turns its compile-time options into variables; upstream inih has
 * only the macros. Weak references let one source build against either: with the
 * variables we raise the 200-byte line limit and switch off " ;" inline comments
 * (PgBouncer treats ';' after the start of a line as data); without them the reader
 * refuses the lines inih would mangle instead of letting them be cut silently.
 */
extern int ini_max_line __attribute__((weak));
extern bool ini_use_stack __attribute__((weak));
extern bool ini_allow_inline_comments __attribute__((weak));

#define LINE_LIMIT        32768 /* inih line buffer we ask for, with '\n' and NUL */
#define INCLUDE_DEPTH_MAX 10    /* the main file counts as one level */
#define VALUE_ECHO_MAX    64    /* bytes of a bad value quoted back in a message */

/* Value types a setting or entry parameter can have. */
enum cf_type {
	CT_INT,
	CT_OCTAL, /* int written in octal, e.g. 0777 */
	CT_BOOL,
	CT_STRING,
	CT_TIME, /* usec_t; seconds in the file, fractions and unit suffixes allowed */
	CT_POOL_MODE,
	CT_AUTH_TYPE,
	CT_LB_MODE,  /* load_balance_hosts */
	CT_TSA_MODE, /* target_session_attrs */
	CT_PROTOCOL, /* a wire protocol name, stored as a pointer to protocol_names[] */
};

/* Private flag: the word "<empty>" in the file means "" (PgBouncer's spelling). */
#define CF_EMPTY_WORD 0x100

struct cf_setting {
	const char *name;
	enum cf_type type;
	size_t offset;
	const char *def; /* default, written as in the file; parsed like file text */
	int flags;
	long long min, max; /* CT_INT/CT_OCTAL: value range; CT_TIME: usec range */
};

/*
 * offsetof that refuses to compile when the field's type is not T, so a table row
 * cannot point a parser at a field of another size.
 */
#define CHECKED_OFFSET(st, f, T)                                                                   \
	(offsetof(st, f) + 0 * sizeof(char[_Generic(((st *)0)->f, T : 1, default : -1)]))
#define MAIN_OFF(f, T) CHECKED_OFFSET(struct config, f, T)

/* Row makers; clang-format cannot lay out brace initializers inside macros. */
/* clang-format off */
#define M_INT(f, def, fl, lo, hi) {#f, CT_INT, MAIN_OFF(f, int), def, fl, lo, hi}
#define M_OCT(f, def, fl, lo, hi) {#f, CT_OCTAL, MAIN_OFF(f, int), def, fl, lo, hi}
#define M_BOOL(f, def, fl) {#f, CT_BOOL, MAIN_OFF(f, bool), def, fl, 0, 1}
#define M_STR(f, def, fl) {#f, CT_STRING, MAIN_OFF(f, char *), def, fl, 0, 0}
#define M_TIME(f, def, fl, lo) {#f, CT_TIME, MAIN_OFF(f, usec_t), def, fl, lo, LLONG_MAX}
#define M_POOL(f, def, fl) {#f, CT_POOL_MODE, MAIN_OFF(f, enum pool_mode), def, fl, 0, 0}
#define M_AUTH(f, def, fl) {#f, CT_AUTH_TYPE, MAIN_OFF(f, enum auth_type), def, fl, 0, 0}
#define M_PROTO(f, def, fl) {#f, CT_PROTOCOL, MAIN_OFF(f, const char *), def, fl, 0, 0}
/* clang-format on */

#define SEC ((long long)USEC_PER_SEC)

/* The main section ([sluice] or [pgbouncer]). Keep doc/config.md and etc/sluice.ini in step. */
static const struct cf_setting settings[] = {
    /* listening */
    M_STR(listen_addr, "", CF_RESTART),
    M_INT(listen_port, "6432", CF_RESTART, 1, 65535),
    M_STR(unix_socket_dir, "/tmp", CF_RESTART),
    M_OCT(unix_socket_mode, "0777", CF_RESTART, 0, 07777),
    M_STR(unix_socket_group, "", CF_RESTART),
    M_INT(listen_backlog, "128", CF_RESTART, 1, INT_MAX),
    M_BOOL(so_reuseport, "0", CF_RESTART),
    M_PROTO(listen_protocol, "postgresql", CF_RESTART),
    /* authentication */
    M_AUTH(auth_type, "md5", CF_RELOAD),
    M_STR(auth_file, "", CF_RELOAD),
    M_STR(admin_users, "", CF_RELOAD),
    M_STR(stats_users, "", CF_RELOAD),
    M_INT(admin_max_client_conn, "16", CF_RELOAD, 1, INT_MAX),
    M_INT(admin_pool_size, "1", CF_RELOAD, 0, INT_MAX),
    /* pooling */
    M_POOL(pool_mode, "session", CF_RELOAD),
    M_INT(default_pool_size, "20", CF_RELOAD, 1, INT_MAX),
    M_INT(min_pool_size, "0", CF_RELOAD, 0, INT_MAX),
    M_INT(reserve_pool_size, "0", CF_RELOAD, 0, INT_MAX),
    M_TIME(reserve_pool_timeout, "5", CF_RELOAD, 0),
    M_INT(max_client_conn, "100", CF_RELOAD, 1, INT_MAX),
    M_INT(max_db_connections, "0", CF_RELOAD, 0, INT_MAX),
    M_INT(max_user_connections, "0", CF_RELOAD, 0, INT_MAX),
    M_STR(server_reset_query, "DISCARD ALL", CF_RELOAD),
    M_BOOL(server_reset_query_always, "0", CF_RELOAD),
    M_STR(server_check_query, "", CF_RELOAD | CF_EMPTY_WORD),
    M_TIME(server_check_delay, "30", CF_RELOAD, 0),
    M_BOOL(server_round_robin, "0", CF_RELOAD),
    M_BOOL(server_fast_close, "0", CF_RELOAD),
    M_INT(server_connect_concurrency, "1", CF_RELOAD, 1, INT_MAX),
    M_STR(ignore_startup_parameters, "", CF_RELOAD),
    M_STR(track_extra_parameters, "IntervalStyle", CF_RELOAD),
    M_INT(max_prepared_statements, "200", CF_RELOAD, 0, INT_MAX),
    M_INT(pkt_buf, "4096", CF_RESTART, 1024, 16 * 1024 * 1024),
    M_INT(max_packet_size, "2147483647", CF_RELOAD, 1024, INT_MAX),
    M_INT(max_held_bytes, "67108864", CF_RELOAD, 1024, INT_MAX),
    /* timeouts */
    M_TIME(server_connect_timeout, "15", CF_RELOAD, 0),
    M_TIME(server_login_retry, "15", CF_RELOAD, 0),
    M_TIME(server_idle_timeout, "600", CF_RELOAD, 0),
    M_TIME(server_lifetime, "3600", CF_RELOAD, 0),
    M_TIME(query_timeout, "0", CF_RELOAD, 0),
    M_TIME(query_wait_timeout, "120", CF_RELOAD, 0),
    M_TIME(client_idle_timeout, "0", CF_RELOAD, 0),
    M_TIME(client_login_timeout, "60", CF_RELOAD, 0),
    M_TIME(idle_transaction_timeout, "0", CF_RELOAD, 0),
    M_TIME(transaction_timeout, "0", CF_RELOAD, 0),
    M_TIME(cancel_wait_timeout, "10", CF_RELOAD, 0),
    /* health of a database's hosts */
    M_INT(health_check_fails, "3", CF_RELOAD, 1, INT_MAX),
    M_INT(health_check_passes, "2", CF_RELOAD, 1, INT_MAX),
    M_TIME(health_check_period, "5", CF_RELOAD, 0),
    /* tcp */
    M_BOOL(tcp_keepalive, "1", CF_RELOAD),
    M_INT(tcp_keepcnt, "0", CF_RELOAD, 0, INT_MAX),
    M_INT(tcp_keepidle, "0", CF_RELOAD, 0, INT_MAX),
    M_INT(tcp_keepintvl, "0", CF_RELOAD, 0, INT_MAX),
    M_INT(tcp_user_timeout, "0", CF_RELOAD, 0, INT_MAX),
    M_INT(tcp_defer_accept, "0", CF_RESTART, 0, INT_MAX),
    /* process and logging */
    M_STR(logfile, "", CF_RELOAD),
    M_BOOL(syslog, "0", CF_RELOAD),
    M_STR(syslog_ident, "sluice", CF_RELOAD),
    M_STR(syslog_facility, "daemon", CF_RELOAD),
    M_STR(pidfile, "", CF_RESTART),
    M_STR(user, "", CF_RESTART),
    M_BOOL(log_connections, "1", CF_RELOAD),
    M_BOOL(log_disconnections, "1", CF_RELOAD),
    M_BOOL(log_pooler_errors, "1", CF_RELOAD),
    M_INT(verbose, "0", CF_RELOAD, 0, 10),
    M_TIME(stats_period, "60", CF_RELOAD, 1 * SEC),
    M_BOOL(log_stats, "1", CF_RELOAD),
    M_STR(metrics_listen, "", CF_RESTART),
    /* dns */
    M_TIME(dns_max_ttl, "15", CF_RELOAD, 0),
    M_TIME(dns_nxdomain_ttl, "15", CF_RELOAD, 0),
    M_TIME(dns_zone_check_period, "0", CF_RELOAD, 0),
    M_STR(resolv_conf, "", CF_RESTART),
};

/*
 * Keys PgBouncer knows and sluice does not implement. An existing pgbouncer.ini may
 * carry them, so they are warned about rather than called unknown.
 */
/* clang-format off */
static const char *const main_ignored[] = {
	"application_name_add_host", "auth_dbname", "auth_hba_file", "auth_ident_file",
	"auth_ldap_options", "auth_query", "auth_user", "autodb_idle_timeout",
	"client_tls13_ciphers", "client_tls_ca_file",
	"client_tls_cert_file", "client_tls_ciphers", "client_tls_dheparams",
	"client_tls_ecdhcurve", "client_tls_key_file", "client_tls_protocols", "conffile",
	"job_name", "login_notify_message", "max_db_client_connections",
	"max_user_client_connections", "peer_id", "pool_idle_timeout",
	"query_wait_notify", "sbuf_loopcnt", "scram_iterations",
	"server_tls13_ciphers", "server_tls_ca_file",
	"server_tls_cert_file", "server_tls_ciphers", "server_tls_key_file",
	"server_tls_protocols", "service_name", "suspend_timeout", "tcp_socket_buffer",

};
/* clang-format on */

/*
 * Unsupported keys where ignoring some values would silently weaken security (TLS
 * required, simple protocol disabled): only the harmless values are accepted.
 */
static const struct {
	const char *name;
	const char *accept; /* the values that are safe to ignore, space separated */
	const char *why;    /* why other values are refused */
} main_restricted[] = {
    {"client_tls_sslmode", "disable allow prefer", "sluice does not support TLS yet"},
    {"server_tls_sslmode", "disable allow prefer", "sluice does not support TLS yet"},
    {"disable_pqexec", "0 no off false", "the simple query protocol cannot be disabled"},
};

/* One key of a [databases] or [users] value ("host=... port=..."). */
struct entry_key {
	const char *name;
	enum cf_type type;
	size_t offset;
	long long min, max;
};

#define DB_OFF(f, T) CHECKED_OFFSET(struct db_entry, f, T)
/* clang-format off */
#define D_STR(f) {#f, CT_STRING, DB_OFF(f, char *), 0, 0}
#define D_INT(name, f, lo, hi) {name, CT_INT, DB_OFF(f, int), lo, hi}
/* clang-format on */

/* No two rows may name the same string field: db_entry_free walks this table. */
static const struct entry_key db_keys[] = {
    D_STR(host),
    {"port", CT_STRING, DB_OFF(ports, char *), 0, 0}, /* checked by db_hosts_check */
    D_STR(dbname),
    D_STR(user),
    D_STR(password),
    D_INT("pool_size", pool_size, 0, INT_MAX),
    D_INT("min_pool_size", min_pool_size, 0, INT_MAX),
    D_INT("reserve_pool_size", reserve_pool_size, 0, INT_MAX),
    D_INT("reserve_pool", reserve_pool_size, 0, INT_MAX), /* PgBouncer's old name */
    D_INT("max_db_connections", max_db_connections, 0, INT_MAX),
    {"pool_mode", CT_POOL_MODE, DB_OFF(pool_mode, enum pool_mode), 0, 0},
    D_STR(connect_query),
    D_STR(client_encoding),
    D_STR(datestyle),
    D_STR(timezone),
    D_STR(application_name),
    D_STR(auth_user),
    {"load_balance_hosts", CT_LB_MODE, DB_OFF(load_balance_hosts, enum lb_mode), 0, 0},
    {"target_session_attrs", CT_TSA_MODE, DB_OFF(target_session_attrs, enum tsa_mode), 0, 0},
    {"protocol", CT_PROTOCOL, DB_OFF(protocol, const char *), 0, 0},
};

/* clang-format off */
static const char *const db_ignored[] = {
	"auth_dbname", "auth_query", "max_db_client_connections", "query_wait_timeout",
	"server_lifetime",
};
/* clang-format on */

#define USER_OFF(f, T) CHECKED_OFFSET(struct user_entry, f, T)
/* clang-format off */
#define U_TIME(f) {#f, CT_TIME, USER_OFF(f, usec_t), 0, LLONG_MAX}
/* clang-format on */

/* The keys PgBouncer 1.25 reads in [users], less the ones in user_ignored. */
static const struct entry_key user_keys[] = {
    {"pool_mode", CT_POOL_MODE, USER_OFF(pool_mode, enum pool_mode), 0, 0},
    {"pool_size", CT_INT, USER_OFF(pool_size, int), 0, INT_MAX},
    {"reserve_pool_size", CT_INT, USER_OFF(reserve_pool_size, int), 0, INT_MAX},
    {"max_user_connections", CT_INT, USER_OFF(max_user_connections, int), 0, INT_MAX},
    U_TIME(query_timeout),
    U_TIME(idle_transaction_timeout),
    U_TIME(transaction_timeout),
    U_TIME(client_idle_timeout),
};

/* clang-format off */
static const char *const user_ignored[] = {
	"max_user_client_connections", "query_wait_timeout",
};
/* clang-format on */

/* Names for the enum types, in the order of their values. */
static const char *const pool_mode_names[] = {"session", "transaction", "statement"};

static const struct {
	const char *name;
	enum auth_type type;
} auth_names[] = {
    {"any", AUTH_ANY}, {"trust", AUTH_TRUST},         {"plain", AUTH_PLAIN},
    {"md5", AUTH_MD5}, {"scram-sha-256", AUTH_SCRAM}, {"hba", AUTH_HBA},
};

static const char *const lb_mode_names[] = {"round-robin", "least-busy", "disable"};
static const char *const tsa_mode_names[] = {"any",     "read-write", "read-only",
                                             "primary", "standby",    "prefer-standby"};

/*
 * Wire protocols a database or a listener may speak. The names are the values stored in
 * the config (pointers into this table), so proto_by_name() can map them to a module.
 * protocol_reserved: names refused until their module exists.
 */
static const char *const protocol_names[] = {"postgresql"};
static const char *const protocol_reserved[] = {"mysql"};

/* PgBouncer methods that sluice refuses by name, so the message can say why. */
static const char *const auth_unsupported[] = {"cert", "pam", "peer", "ldap", "crypt"};

const char *pool_mode_name(enum pool_mode m)
{
	if (m >= 0 && (size_t)m < ARRAY_SIZE(pool_mode_names))
		return pool_mode_names[m];
	return "unset";
}

const char *lb_mode_name(enum lb_mode m)
{
	if ((size_t)m < ARRAY_SIZE(lb_mode_names))
		return lb_mode_names[m];
	return "unknown";
}

const char *tsa_mode_name(enum tsa_mode m)
{
	if ((size_t)m < ARRAY_SIZE(tsa_mode_names))
		return tsa_mode_names[m];
	return "unknown";
}

const char *auth_type_name(enum auth_type t)
{
	for (size_t i = 0; i < ARRAY_SIZE(auth_names); i++)
		if (auth_names[i].type == t)
			return auth_names[i].name;
	return "unknown";
}

/* ---- value parsing and formatting ---------------------------------------------- */

static bool is_secret_name(const char *name, int flags)
{
	return (flags & CF_SECRET) || strcasestr(name, "password") || strcasestr(name, "secret");
}

static void range_reason(enum cf_type type, long long min, long long max, char *why, size_t whylen)
{
	if (type == CT_TIME)
		snprintf(why, whylen, "must be at least %lld s", min / SEC);
	else if (type == CT_OCTAL)
		snprintf(why, whylen, "must be between %s%llo and 0%llo", min ? "0" : "", min, max);
	else if (max == INT_MAX)
		snprintf(why, whylen, "must be at least %lld", min);
	else
		snprintf(why, whylen, "must be between %lld and %lld", min, max);
}

static bool parse_integer(const char *text, int base, long long *out, char *why, size_t whylen)
{
	char *end;
	errno = 0;
	long long v = strtoll(text, &end, base);
	if (end == text || *end != '\0' || isspace((unsigned char)text[0])) {
		snprintf(why, whylen, base == 8 ? "not an octal number" : "not an integer");
		return false;
	}
	if (errno == ERANGE) {
		snprintf(why, whylen, "out of range");
		return false;
	}
	*out = v;
	return true;
}

static bool parse_bool(const char *text, bool *out, char *why, size_t whylen)
{
	static const char *const yes[] = {"1", "yes", "on", "true"};
	static const char *const no[] = {"0", "no", "off", "false"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (str_ieq(text, yes[i]) || str_ieq(text, no[i])) {
			*out = str_ieq(text, yes[i]);
			return true;
		}
	}
	snprintf(why, whylen, "not a boolean (use 1/0, yes/no, on/off or true/false)");
	return false;
}

/* Microseconds per unit suffix of a time value; no suffix means seconds. */
static const struct {
	const char *suffix;
	unsigned long long usec;
} time_units[] = {
    {"", USEC_PER_SEC},          {"us", 1},
    {"ms", USEC_PER_MSEC},       {"s", USEC_PER_SEC},
    {"min", 60 * USEC_PER_SEC},  {"h", 3600 * USEC_PER_SEC},
    {"d", 86400 * USEC_PER_SEC},
};

/*
 * "1.5", "500ms", "2 min". Integer arithmetic throughout, so 0.1 s is exactly
 * 100000 usec; digits past the sixth decimal are dropped (below one usec).
 */
static bool parse_time(const char *text, unsigned long long *out, char *why, size_t whylen)
{
	const char *p = text;
	unsigned long long whole = 0, frac = 0, scale = 1;
	if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		if (whole > (ULLONG_MAX - 9) / 10)
			goto range;
		whole = whole * 10 + (unsigned)(*p - '0');
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++) {
			if (scale < USEC_PER_SEC) {
				frac = frac * 10 + (unsigned)(*p - '0');
				scale *= 10;
			}
		}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	for (size_t i = 0; i < ARRAY_SIZE(time_units); i++) {
		unsigned long long mult = time_units[i].usec;
		if (!str_ieq(p, time_units[i].suffix))
			continue;
		if (whole > (unsigned long long)LLONG_MAX / mult)
			goto range;
		*out = whole * mult + frac * mult / scale;
		if (*out > (unsigned long long)LLONG_MAX)
			goto range;
		return true;
	}
bad:
	snprintf(why, whylen, "not a time (seconds, or a number with us, ms, s, min, h or d)");
	return false;
range:
	snprintf(why, whylen, "out of range");
	return false;
}

static bool parse_auth_type(const char *text, enum auth_type *out, char *why, size_t whylen)
{
	for (size_t i = 0; i < ARRAY_SIZE(auth_names); i++) {
		if (str_ieq(text, auth_names[i].name)) {
			*out = auth_names[i].type;
			return true;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(auth_unsupported); i++) {
		if (str_ieq(text, auth_unsupported[i])) {
			snprintf(why, whylen, "%s is not supported by sluice", auth_unsupported[i]);
			return false;
		}
	}
	snprintf(why, whylen, "expected any, trust, plain, md5, scram-sha-256 or hba");
	return false;
}

static bool parse_pool_mode(const char *text, enum pool_mode *out, char *why, size_t whylen)
{
	for (size_t i = 0; i < ARRAY_SIZE(pool_mode_names); i++) {
		if (str_ieq(text, pool_mode_names[i])) {
			*out = (enum pool_mode)i;
			return true;
		}
	}
	snprintf(why, whylen, "expected session, transaction or statement");
	return false;
}

static bool parse_protocol(const char *text, const char **out, char *why, size_t whylen)
{
	for (size_t i = 0; i < ARRAY_SIZE(protocol_names); i++) {
		if (str_ieq(text, protocol_names[i])) {
			*out = protocol_names[i];
			return true;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(protocol_reserved); i++) {
		if (str_ieq(text, protocol_reserved[i])) {
			snprintf(why, whylen, "protocol %s is not supported yet",
			         protocol_reserved[i]);
			return false;
		}
	}
	snprintf(why, whylen, "expected postgresql");
	return false;
}

/* One of names[] (ignoring case): its index into *out; expect lists them for the message. */
static bool parse_name(const char *text, const char *const *names, size_t n, int *out,
                       const char *expect, char *why, size_t whylen)
{
	for (size_t i = 0; i < n; i++) {
		if (str_ieq(text, names[i])) {
			*out = (int)i;
			return true;
		}
	}
	snprintf(why, whylen, "expected %s", expect);
	return false;
}

/*
 * Parses text as type and stores it at dst only when it is valid, so a bad value
 * leaves the old one in place. The reason in why never contains the value itself.
 */
static bool parse_value(enum cf_type type, const char *text, void *dst, long long min,
                        long long max, char *why, size_t whylen)
{
	long long n;
	unsigned long long usec;
	int idx;
	switch (type) {
	case CT_INT:
	case CT_OCTAL:
		if (!parse_integer(text, type == CT_OCTAL ? 8 : 10, &n, why, whylen))
			return false;
		if (n < min || n > max) {
			range_reason(type, min, max, why, whylen);
			return false;
		}
		*(int *)dst = (int)n;
		return true;
	case CT_BOOL:
		return parse_bool(text, dst, why, whylen);
	case CT_STRING:
		free(*(char **)dst);
		*(char **)dst = xstrdup(text);
		return true;
	case CT_TIME:
		if (!parse_time(text, &usec, why, whylen))
			return false;
		if ((long long)usec < min || (long long)usec > max) {
			range_reason(type, min, max, why, whylen);
			return false;
		}
		*(usec_t *)dst = usec;
		return true;
	case CT_POOL_MODE:
		return parse_pool_mode(text, dst, why, whylen);
	case CT_AUTH_TYPE:
		return parse_auth_type(text, dst, why, whylen);
	case CT_LB_MODE:
		if (!parse_name(text, lb_mode_names, ARRAY_SIZE(lb_mode_names), &idx,
		                "round-robin, least-busy or disable", why, whylen))
			return false;
		*(enum lb_mode *)dst = (enum lb_mode)idx;
		return true;
	case CT_TSA_MODE:
		if (!parse_name(text, tsa_mode_names, ARRAY_SIZE(tsa_mode_names), &idx,
		                "any, read-write, read-only, primary, standby or prefer-standby",
		                why, whylen))
			return false;
		*(enum tsa_mode *)dst = (enum tsa_mode)idx;
		return true;
	case CT_PROTOCOL:
		return parse_protocol(text, dst, why, whylen);
	}
	snprintf(why, whylen, "internal error: unknown type");
	return false;
}

/* Seconds as PgBouncer shows them: "5", "0.5", "0.000001". */
static void format_time(usec_t usec, char *out, size_t len)
{
	unsigned long long sec = usec / USEC_PER_SEC, frac = usec % USEC_PER_SEC;
	if (frac == 0) {
		snprintf(out, len, "%llu", sec);
		return;
	}
	int digits = 6;
	while (frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	snprintf(out, len, "%llu.%0*llu", sec, digits, frac);
}

/* Formats the value at src as it would be written in the file. */
static void format_value(enum cf_type type, const void *src, char *out, size_t len)
{
	const char *s;
	switch (type) {
	case CT_INT:
		snprintf(out, len, "%d", *(const int *)src);
		return;
	case CT_OCTAL:
		if (*(const int *)src)
			snprintf(out, len, "0%o", *(const int *)src);
		else
			snprintf(out, len, "0");
		return;
	case CT_BOOL:
		snprintf(out, len, "%d", *(const bool *)src ? 1 : 0);
		return;
	case CT_STRING:
		s = *(char *const *)src;
		if (strlcpy_s(out, s ? s : "", len) >= len && len > 4)
			strcpy(out + len - 4, "..."); /* say it was cut, for SHOW CONFIG */
		return;
	case CT_TIME:
		format_time(*(const usec_t *)src, out, len);
		return;
	case CT_POOL_MODE:
		snprintf(out, len, "%s", pool_mode_name(*(const enum pool_mode *)src));
		return;
	case CT_AUTH_TYPE:
		snprintf(out, len, "%s", auth_type_name(*(const enum auth_type *)src));
		return;
	case CT_LB_MODE:
		snprintf(out, len, "%s", lb_mode_name(*(const enum lb_mode *)src));
		return;
	case CT_TSA_MODE:
		snprintf(out, len, "%s", tsa_mode_name(*(const enum tsa_mode *)src));
		return;
	case CT_PROTOCOL:
		s = *(const char *const *)src;
		snprintf(out, len, "%s", s ? s : protocol_names[0]);
		return;
	}
	snprintf(out, len, "?");
}

static size_t type_size(enum cf_type type)
{
	switch (type) {
	case CT_INT:
	case CT_OCTAL:
		return sizeof(int);
	case CT_BOOL:
		return sizeof(bool);
	case CT_STRING:
		return sizeof(char *);
	case CT_TIME:
		return sizeof(usec_t);
	case CT_POOL_MODE:
		return sizeof(enum pool_mode);
	case CT_AUTH_TYPE:
		return sizeof(enum auth_type);
	case CT_LB_MODE:
		return sizeof(enum lb_mode);
	case CT_TSA_MODE:
		return sizeof(enum tsa_mode);
	case CT_PROTOCOL:
		return sizeof(const char *);
	}
	return 0;
}

static bool values_equal(enum cf_type type, const void *a, const void *b)
{
	if (type == CT_STRING) {
		const char *x = *(char *const *)a, *y = *(char *const *)b;
		return strcmp(x ? x : "", y ? y : "") == 0;
	}
	return memcmp(a, b, type_size(type)) == 0;
}

/* Deep copy of one field's value (strings are duplicated). */
static void copy_value(enum cf_type type, void *dst, const void *src)
{
	if (type == CT_STRING) {
		const char *s = *(char *const *)src;
		free(*(char **)dst);
		*(char **)dst = s ? xstrdup(s) : NULL;
	} else {
		memcpy(dst, src, type_size(type));
	}
}

/* ---- the settings table --------------------------------------------------------- */

static void *field_of(struct config *cfg, const struct cf_setting *s)
{
	return (char *)cfg + s->offset;
}

static const void *cfield_of(const struct config *cfg, const struct cf_setting *s)
{
	return (const char *)cfg + s->offset;
}

static const struct cf_setting *find_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (str_ieq(settings[i].name, name))
			return &settings[i];
	return NULL;
}

static bool in_names(const char *const *list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (str_ieq(list[i], name))
			return true;
	return false;
}

static bool main_unsupported(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(main_restricted); i++)
		if (str_ieq(main_restricted[i].name, name))
			return true;
	return in_names(main_ignored, ARRAY_SIZE(main_ignored), name);
}

/* True when value is one of the space separated words in list. */
static bool word_in_list(const char *list, const char *value)
{
	size_t vlen = strlen(value);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, " ");
		if (n == vlen && strncasecmp(p, value, n) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

static bool set_setting(struct config *cfg, const struct cf_setting *s, const char *text, char *why,
                        size_t whylen)
{
	if ((s->flags & CF_EMPTY_WORD) && strcmp(text, "<empty>") == 0)
		text = "";
	return parse_value(s->type, text, field_of(cfg, s), s->min, s->max, why, whylen);
}

/* "invalid value for x: reason ('value')", leaving the value out for secrets. */
static void invalid_value(char *out, size_t len, const char *key, int flags, const char *value,
                          const char *why)
{
	if (is_secret_name(key, flags))
		snprintf(out, len, "invalid value for %s: %s", key, why);
	else
		snprintf(out, len, "invalid value for %s: %s ('%.*s%s')", key, why, VALUE_ECHO_MAX,
		         value, strlen(value) > VALUE_ECHO_MAX ? "..." : "");
}

static void free_settings(struct config *cfg)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		if (settings[i].type == CT_STRING) {
			char **p = field_of(cfg, &settings[i]);
			free(*p);
			*p = NULL;
		}
	}
}

struct config *config_new_defaults(void)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	char why[160];
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		if (!set_setting(cfg, &settings[i], settings[i].def, why, sizeof(why)))
			fatal("config: default of %s is invalid: %s", settings[i].name, why);
	}
	return cfg;
}

size_t config_setting_count(void)
{
	return ARRAY_SIZE(settings);
}

bool config_setting_get(const struct config *cfg, size_t idx, struct config_setting_view *out)
{
	if (idx >= ARRAY_SIZE(settings))
		return false;
	const struct cf_setting *s = &settings[idx];
	out->key = s->name;
	out->changeable = !(s->flags & CF_RESTART);

	/* The default goes through the same parser as file text, into scratch space. */
	struct config scratch;
	memset(&scratch, 0, sizeof(scratch));
	char why[160];
	if (!set_setting(&scratch, s, s->def, why, sizeof(why)))
		snprintf(out->def, sizeof(out->def), "?");
	else
		format_value(s->type, cfield_of(&scratch, s), out->def, sizeof(out->def));
	free_settings(&scratch);

	const char *secret_mask = "********";
	if (is_secret_name(s->name, s->flags)) {
		format_value(s->type, cfield_of(cfg, s), out->value, sizeof(out->value));
		snprintf(out->value, sizeof(out->value), "%s", out->value[0] ? secret_mask : "");
		snprintf(out->def, sizeof(out->def), "%s", out->def[0] ? secret_mask : "");
	} else {
		format_value(s->type, cfield_of(cfg, s), out->value, sizeof(out->value));
	}
	return true;
}

/*
 * For a key of main_restricted: 1 if value is one that is safe to ignore, 0 (with the
 * refusal in err) if not; -1 for any other key.
 */
static int restricted_value(const char *name, const char *value, char *err, size_t errlen)
{
	for (size_t i = 0; i < ARRAY_SIZE(main_restricted); i++) {
		if (!str_ieq(main_restricted[i].name, name))
			continue;
		if (word_in_list(main_restricted[i].accept, value))
			return 1;
		char why[160];
		snprintf(why, sizeof(why), "not supported, %s", main_restricted[i].why);
		invalid_value(err, errlen, main_restricted[i].name, 0, value, why);
		return 0;
	}
	return -1;
}

bool config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const struct cf_setting *s = find_setting(key);
	char why[160];
	if (!s) {
		/* what the file accepts for an unimplemented key (sslmode disable) */
		int r = restricted_value(key, value, err, errlen);
		if (r >= 0)
			return r;
		if (main_unsupported(key))
			snprintf(err, errlen, "setting '%s' is not supported by sluice", key);
		else
			snprintf(err, errlen, "unknown setting '%s'", key);
		return false;
	}
	if (s->flags & CF_RESTART) {
		snprintf(err, errlen, "setting '%s' needs a restart to change", s->name);
		return false;
	}
	if (!set_setting(cfg, s, value, why, sizeof(why))) {
		invalid_value(err, errlen, s->name, s->flags, value, why);
		return false;
	}
	return true;
}

void config_carry_restart_settings(struct config *newcfg, const struct config *oldcfg,
                                   void (*warn_cb)(const char *msg))
{
	char a[256], b[256], msg[1100];
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		const struct cf_setting *s = &settings[i];
		if (!(s->flags & CF_RESTART))
			continue;
		if (values_equal(s->type, cfield_of(oldcfg, s), cfield_of(newcfg, s)))
			continue;
		format_value(s->type, cfield_of(oldcfg, s), a, sizeof(a));
		format_value(s->type, cfield_of(newcfg, s), b, sizeof(b));
		copy_value(s->type, field_of(newcfg, s), cfield_of(oldcfg, s));
		if (!warn_cb)
			continue;
		if (is_secret_name(s->name, s->flags))
			snprintf(msg, sizeof(msg),
			         "%s changed but needs a restart; keeping the old value", s->name);
		else
			snprintf(msg, sizeof(msg),
			         "%s changed from '%s' to '%s' but needs a restart; keeping '%s'",
			         s->name, a, b, a);
		warn_cb(msg);
	}
}

/* ---- entries ----------------------------------------------------------------------- */

static void db_entry_free(struct db_entry *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(db_keys); i++)
		if (db_keys[i].type == CT_STRING)
			free(*(char **)((char *)db + db_keys[i].offset));
	free(db->name);
	free(db);
}

static void user_entry_free(struct user_entry *u)
{
	if (!u)
		return;
	free(u->name);
	free(u);
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	free_settings(cfg);
	for (size_t i = 0; i < cfg->n_dbs; i++)
		db_entry_free(cfg->dbs[i]);
	free(cfg->dbs);
	for (size_t i = 0; i < cfg->n_users; i++)
		user_entry_free(cfg->users[i]);
	free(cfg->users);
	for (size_t i = 0; i < cfg->n_files; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg);
}

const struct db_entry *config_find_db(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_dbs; i++)
		if (strcmp(cfg->dbs[i]->name, name) == 0)
			return cfg->dbs[i];
	return NULL;
}

const struct user_entry *config_find_user(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->n_users; i++)
		if (strcmp(cfg->users[i]->name, name) == 0)
			return cfg->users[i];
	return NULL;
}

static bool list_has(const char *list, const char *name, bool ignore_case)
{
	size_t nlen = strlen(name);
	if (!list)
		return false;
	for (const char *p = list; *p;) {
		p += strspn(p, " \t,");
		size_t n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0 && n == nlen &&
		    (ignore_case ? strncasecmp(p, name, n) : memcmp(p, name, n)) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

bool config_list_contains(const char *list, const char *name)
{
	return list_has(list, name, false);
}

bool config_list_contains_ci(const char *list, const char *name)
{
	return list_has(list, name, true);
}

/* ---- loading: context and messages -------------------------------------------------- */

/* One open file on the %include stack. */
struct source {
	FILE *f;
	const char *name; /* points into cfg->files */
	int line;
	dev_t dev;
	ino_t ino;
};

/* Where the n-th line handed to inih came from, to place inih's syntax errors. */
struct line_pos {
	const char *file;
	int line;
};

struct load_ctx {
	struct config *cfg;
	void (*warn_cb)(const char *msg);
	char *err;
	size_t errlen;
	bool failed;
	size_t fail_seq; /* inih line number the failure belongs to */

	struct source stack[INCLUDE_DEPTH_MAX];
	int depth;
	char *buf; /* getline buffer */
	size_t cap;
	bool knobs;     /* Debian inih variables available and set */
	int open_errno; /* why push_source could not open a file */

	const char *cur_file; /* the line being looked at */
	int cur_line;
	struct line_pos *map; /* map[i]: the (i+1)-th line given to inih */
	size_t seq, map_cap;
};

static void PRINTF_LIKE(2, 3) load_fail(struct load_ctx *c, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	if (c->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->failed = true;
	c->fail_seq = c->seq;
	snprintf(c->err, c->errlen, "%s:%d: %s", c->cur_file, c->cur_line, msg);
}

static void PRINTF_LIKE(2, 3) load_warn(struct load_ctx *c, const char *fmt, ...)
{
	char msg[600], line[800];
	va_list ap;
	if (!c->warn_cb)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s:%d: %s", c->cur_file, c->cur_line, msg);
	c->warn_cb(line);
}

/*
 * A key PgBouncer knows and sluice ignores: warns, or fails when the value is one
 * that would be unsafe to ignore. what prefixes entry messages ("database 'x': ").
 */
static bool ignored_key(struct load_ctx *c, const char *what, const char *name, const char *value)
{
	char msg[400];
	if (!what[0] && restricted_value(name, value, msg, sizeof(msg)) == 0) {
		load_fail(c, "%s", msg);
		return false;
	}
	load_warn(c, "%s%s '%s' is not supported, ignored", what, what[0] ? "parameter" : "setting",
	          name);
	return true;
}

/* ---- [databases] and [users] values --------------------------------------------------- */

/*
 * Splits the next "key=value" off a connection string in a writable buffer, the way
 * PgBouncer reads them: a value is a run of non-blank characters or a single-quoted
 * string in which '' stands for one quote (backslash is not special). Returns 1 with
 * key and val pointing into the buffer, 0 at the end, -1 with a reason in why. The
 * reason names the key only, never any value text.
 */
static int cstr_next(const char *start, char **cursor, char **key, char **val, char *why,
                     size_t whylen)
{
	char *p = *cursor, *k, *out;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	for (k = p; *p && *p != '=' && *p != ' ' && *p != '\t'; p++)
		;
	char *kend = p;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '=' || kend == k) {
		snprintf(why, whylen, "expected key=value at offset %d", (int)(k - start));
		return -1;
	}
	*kend = '\0';
	for (p++; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '\'') {
		for (*val = out = ++p;; p++) {
			if (!*p) {
				snprintf(why, whylen, "unterminated quote in the value of '%s'", k);
				return -1;
			}
			if (*p == '\'' && p[1] != '\'')
				break;
			if (*p == '\'')
				p++; /* '' is one quote */
			*out++ = *p;
		}
		*out = '\0';
		p++;
		if (*p && *p != ' ' && *p != '\t') {
			snprintf(why, whylen, "text right after the closing quote of '%s'", k);
			return -1;
		}
	} else {
		for (*val = p; *p && *p != ' ' && *p != '\t'; p++)
			;
		if (p == *val) {
			snprintf(why, whylen, "missing value for '%s'", k);
			return -1;
		}
	}
	if (*p)
		*p++ = '\0';
	*key = k;
	*cursor = p;
	return 1;
}

/* Applies one key=value of an entry through its key table. */
static bool entry_param(struct load_ctx *c, const char *what, const struct entry_key *keys,
                        size_t n_keys, const char *const *ign, size_t n_ign, void *base,
                        const char *key, const char *val)
{
	char why[160], msg[400];
	for (size_t i = 0; i < n_keys; i++) {
		const struct entry_key *k = &keys[i];
		if (!str_ieq(k->name, key))
			continue;
		if (parse_value(k->type, val, (char *)base + k->offset, k->min, k->max, why,
		                sizeof(why)))
			return true;
		invalid_value(msg, sizeof(msg), k->name, 0, val, why);
		load_fail(c, "%s%s", what, msg);
		return false;
	}
	if (in_names(ign, n_ign, key))
		return ignored_key(c, what, key, val);
	load_warn(c, "%sunknown parameter '%s', ignored", what, key);
	return true;
}

/* Parses all "k=v" pairs of text into the entry at base. */
static bool parse_entry(struct load_ctx *c, const char *what, const char *text,
                        const struct entry_key *keys, size_t n_keys, const char *const *ign,
                        size_t n_ign, void *base)
{
	char *copy = xstrdup(text), *cursor = copy, *key, *val, why[160];
	bool ok = true;
	int r;
	while (ok && (r = cstr_next(copy, &cursor, &key, &val, why, sizeof(why))) != 0) {
		if (r < 0) {
			load_fail(c, "%smalformed value: %s", what, why);
			ok = false;
		} else {
			ok = entry_param(c, what, keys, n_keys, ign, n_ign, base, key, val);
		}
	}
	free(copy);
	return ok;
}

/*
 * The name on the left of a [databases] or [users] line. Names with characters other
 * than [0-9A-Za-z_.-] may be double-quoted with "" for a quote, as in PgBouncer.
 */
static char *entry_name(struct load_ctx *c, const char *raw)
{
	if (raw[0] != '"') {
		if (!raw[0]) {
			load_fail(c, "missing name before '='");
			return NULL;
		}
		return xstrdup(raw);
	}
	char *name = xmalloc(strlen(raw) + 1), *out = name;
	const char *p = raw + 1;
	for (;; p++) {
		if (!*p) {
			load_fail(c, "unterminated quoted name");
			goto fail;
		}
		if (*p == '"' && p[1] != '"')
			break;
		if (*p == '"')
			p++;
		*out++ = *p;
	}
	*out = '\0';
	if (p[1] != '\0') {
		load_fail(c, "text after the closing quote of a name");
		goto fail;
	}
	if (!name[0]) {
		load_fail(c, "empty name");
		goto fail;
	}
	return name;
fail:
	free(name);
	return NULL;
}

static void warn_redefined(struct load_ctx *c, const char *kind, const char *name, const char *file,
                           int line)
{
	load_warn(c, "%s '%s' is defined again (first at %s:%d); the later entry wins", kind, name,
	          file, line);
}

/* Adds db, or replaces an entry of the same name: the later one wins, as in PgBouncer. */
static void put_db(struct load_ctx *c, struct db_entry *db)
{
	struct config *cfg = c->cfg;
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		if (strcmp(cfg->dbs[i]->name, db->name) == 0) {
			warn_redefined(c, "database", db->name, cfg->dbs[i]->file,
			               cfg->dbs[i]->line);
			db_entry_free(cfg->dbs[i]);
			cfg->dbs[i] = db;
			return;
		}
	}
	cfg->dbs = xrealloc(cfg->dbs, (cfg->n_dbs + 1) * sizeof(*cfg->dbs));
	cfg->dbs[cfg->n_dbs++] = db;
}

static void put_user(struct load_ctx *c, struct user_entry *u)
{
	struct config *cfg = c->cfg;
	for (size_t i = 0; i < cfg->n_users; i++) {
		if (strcmp(cfg->users[i]->name, u->name) == 0) {
			warn_redefined(c, "user", u->name, cfg->users[i]->file,
			               cfg->users[i]->line);
			user_entry_free(cfg->users[i]);
			cfg->users[i] = u;
			return;
		}
	}
	cfg->users = xrealloc(cfg->users, (cfg->n_users + 1) * sizeof(*cfg->users));
	cfg->users[cfg->n_users++] = u;
}

/* Elements of a comma separated list, blanks around each ignored; "" has one. */
static size_t list_count(const char *list)
{
	size_t n = 1;
	for (const char *p = list; *p; p++)
		n += *p == ',';
	return n;
}

/*
 * host= and port= of an entry, as libpq takes them: host is one host or a comma separated
 * list (no empty element), port one port for every host or one per host. Sets db->port to
 * the first port.
 */
static bool db_hosts_check(struct load_ctx *c, const char *what, struct db_entry *db)
{
	char why[160], msg[400];
	size_t n_hosts = db->host ? list_count(db->host) : 1;
	if (db->host && n_hosts > 1) {
		for (const char *p = db->host; *p;) {
			size_t len = strcspn(p, ",");
			size_t blank = strspn(p, " \t");
			if (blank >= len) {
				load_fail(c, "%sempty element in the host list", what);
				return false;
			}
			p += len + (p[len] == ',');
		}
		if (db->host[strlen(db->host) - 1] == ',') {
			load_fail(c, "%sempty element in the host list", what);
			return false;
		}
	}
	if (!db->ports)
		return true;
	size_t n_ports = list_count(db->ports);
	char *copy = xstrdup(db->ports), *save = NULL;
	bool ok = true;
	size_t i = 0;
	for (char *tok = strtok_r(copy, ",", &save); ok && tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t len = strlen(tok);
		while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = '\0';
		long long v;
		if (!parse_integer(tok, 10, &v, why, sizeof(why))) {
			ok = false;
		} else if (v < 1 || v > 65535) {
			range_reason(CT_INT, 1, 65535, why, sizeof(why));
			ok = false;
		}
		if (!ok) {
			invalid_value(msg, sizeof(msg), "port", 0, n_ports > 1 ? tok : db->ports,
			              why);
			load_fail(c, "%s%s", what, msg);
		} else if (i++ == 0) {
			db->port = (int)v;
		}
	}
	free(copy);
	if (ok && i != n_ports) {
		load_fail(c, "%sempty element in the port list", what);
		ok = false;
	}
	if (ok && n_ports > 1 && n_ports != n_hosts) {
		load_fail(c, "%s%zu ports given for %zu hosts (give one port, or one per host)",
		          what, n_ports, n_hosts);
		ok = false;
	}
	return ok;
}

static bool db_line(struct load_ctx *c, const char *raw_name, const char *value)
{
	char *name = entry_name(c, raw_name), what[200];
	if (!name)
		return false;
	if (strcmp(name, "pgbouncer") == 0) {
		load_warn(c,
		          "database name 'pgbouncer' is reserved for the admin console, ignored");
		free(name);
		return true;
	}
	struct db_entry *db = xcalloc(1, sizeof(*db));
	db->name = name;
	db->port = 5432;
	db->pool_size = db->min_pool_size = db->reserve_pool_size = db->max_db_connections = -1;
	db->pool_mode = POOL_MODE_UNSET;
	db->protocol = protocol_names[0];
	db->file = c->cur_file;
	db->line = c->cur_line;
	snprintf(what, sizeof(what), "database '%.64s': ", name);
	if (!parse_entry(c, what, value, db_keys, ARRAY_SIZE(db_keys), db_ignored,
	                 ARRAY_SIZE(db_ignored), db) ||
	    !db_hosts_check(c, what, db)) {
		db_entry_free(db);
		return false;
	}
	put_db(c, db);
	return true;
}

static bool user_line(struct load_ctx *c, const char *raw_name, const char *value)
{
	char *name = entry_name(c, raw_name), what[200];
	if (!name)
		return false;
	struct user_entry *u = xcalloc(1, sizeof(*u));
	u->name = name;
	u->pool_mode = POOL_MODE_UNSET;
	u->pool_size = u->reserve_pool_size = u->max_user_connections = -1;
	u->file = c->cur_file;
	u->line = c->cur_line;
	snprintf(what, sizeof(what), "user '%.64s': ", name);
	if (!parse_entry(c, what, value, user_keys, ARRAY_SIZE(user_keys), user_ignored,
	                 ARRAY_SIZE(user_ignored), u)) {
		user_entry_free(u);
		return false;
	}
	put_user(c, u);
	return true;
}

static bool main_line(struct load_ctx *c, const char *name, const char *value)
{
	const struct cf_setting *s = find_setting(name);
	char why[160], msg[400];
	if (!s) {
		if (main_unsupported(name))
			return ignored_key(c, "", name, value);
		if (!name[0]) {
			load_fail(c, "missing setting name before '='");
			return false;
		}
		load_warn(c, "unknown setting '%s'", name);
		return true;
	}
	if (set_setting(c->cfg, s, value, why, sizeof(why)))
		return true;
	invalid_value(msg, sizeof(msg), s->name, s->flags, value, why);
	load_fail(c, "%s", msg);
	return false;
}

/* ---- loading: sections and the inih handler --------------------------------------- */

enum section_kind { SEC_NONE, SEC_MAIN, SEC_DATABASES, SEC_USERS, SEC_OTHER };

static enum section_kind section_kind(const char *name, size_t len)
{
	static const struct {
		const char *name;
		enum section_kind kind;
	} known[] = {
	    {"sluice", SEC_MAIN},
	    {"pgbouncer", SEC_MAIN},
	    {"databases", SEC_DATABASES},
	    {"users", SEC_USERS},
	};
	while (len > 0 && isspace((unsigned char)*name))
		name++, len--;
	while (len > 0 && isspace((unsigned char)name[len - 1]))
		len--;
	for (size_t i = 0; i < ARRAY_SIZE(known); i++)
		if (strlen(known[i].name) == len && strncasecmp(known[i].name, name, len) == 0)
			return known[i].kind;
	return SEC_OTHER;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *c = user;
	bool ok = true;
	if (c->failed)
		return 0;
	if (!value)
		value = "";
	switch (section[0] ? section_kind(section, strlen(section)) : SEC_NONE) {
	case SEC_MAIN:
		ok = main_line(c, name, value);
		break;
	case SEC_DATABASES:
		ok = db_line(c, name, value);
		break;
	case SEC_USERS:
		ok = user_line(c, name, value);
		break;
	case SEC_NONE:
		load_warn(c, "'%s' is outside any section, ignored", name);
		break;
	case SEC_OTHER:
		break; /* warned about at the section header */
	}
	if (!ok) {
		c->fail_seq = c->seq; /* the line inih is on */
		return 0;
	}
	return 1;
}

/* ---- loading: the line reader ------------------------------------------------------- */

static const char *register_file(struct config *cfg, const char *path)
{
	for (size_t i = 0; i < cfg->n_files; i++)
		if (strcmp(cfg->files[i], path) == 0)
			return cfg->files[i];
	cfg->files = xrealloc(cfg->files, (cfg->n_files + 1) * sizeof(*cfg->files));
	cfg->files[cfg->n_files] = xstrdup(path);
	return cfg->files[cfg->n_files++];
}

/*
 * Opens path and pushes it on the include stack. Relative paths are taken from the
 * working directory, as PgBouncer documents for %include.
 */
static bool push_source(struct load_ctx *c, const char *path)
{
	struct stat st;
	if (c->depth >= INCLUDE_DEPTH_MAX) {
		load_fail(c, "%%include nested too deeply (at most %d levels)", INCLUDE_DEPTH_MAX);
		return false;
	}
	FILE *f = fopen(path, "re");
	if (!f || fstat(fileno(f), &st) < 0) {
		c->open_errno = errno;
		if (f)
			fclose(f);
		if (c->depth > 0)
			load_fail(c, "cannot open '%s': %s", path, strerror(c->open_errno));
		return false;
	}
	for (int i = 0; i < c->depth; i++) {
		if (c->stack[i].dev == st.st_dev && c->stack[i].ino == st.st_ino) {
			fclose(f);
			load_fail(c, "%%include loop: '%s' is already being read", path);
			return false;
		}
	}
	struct source *s = &c->stack[c->depth++];
	s->f = f;
	s->name = register_file(c->cfg, path);
	s->line = 0;
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return true;
}

static void pop_source(struct load_ctx *c)
{
	fclose(c->stack[--c->depth].f);
}

static bool directive(struct load_ctx *c, char *p)
{
	size_t kw = strcspn(p, " \t");
	if (kw != strlen("%include") || strncmp(p, "%include", kw) != 0) {
		load_fail(c, "unknown directive '%.*s' (only %%include is known)", (int)kw, p);
		return false;
	}
	p += kw;
	p += strspn(p, " \t");
	for (size_t n = strlen(p); n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'); n--)
		p[n - 1] = '\0';
	if (!*p) {
		load_fail(c, "%%include needs a file name");
		return false;
	}
	return push_source(c, p);
}

/* Warns about sections sluice does not read; inih does not report section lines. */
static bool section_header(struct load_ctx *c, const char *p)
{
	const char *end = strchr(p, ']');
	if (!end) {
		load_fail(c, "unterminated section header (missing ']')");
		return false;
	}
	size_t len = (size_t)(end - p - 1);
	if (section_kind(p + 1, len) == SEC_OTHER) {
		if (len == strlen("peers") && strncasecmp(p + 1, "peers", len) == 0)
			load_warn(c, "section [peers] is not supported, ignored");
		else
			load_warn(c, "unknown section [%.*s], ignored", (int)len, p + 1);
	}
	return true;
}

/*
 * Without the Debian variables inih cuts a value at " ;". Refuse such a line rather
 * than let a password or query lose its tail.
 */
static bool inline_comment_check(struct load_ctx *c, const char *p)
{
#if INI_ALLOW_INLINE_COMMENTS
	const char *eq = strpbrk(p, "=:");
	for (const char *q = eq ? eq + 1 : p; *q; q++) {
		if ((q[0] == ' ' || q[0] == '\t') && q[1] &&
		    strchr(INI_INLINE_COMMENT_PREFIXES, q[1])) {
			load_fail(c,
			          "'%c' after a blank would be cut off as a comment by this "
			          "build's inih",
			          q[1]);
			return false;
		}
	}
#else
	(void)c;
	(void)p;
#endif
	return true;
}

/*
 * Cleans one physical line: drops a UTF-8 BOM at the start of each file, refuses NUL
 * bytes, strips the line end and leading blanks. Leading blanks are stripped because
 * PgBouncer ignores them, and inih would take an indented line for a continuation.
 */
static char *clean_line(struct load_ctx *c, struct source *s, ssize_t n)
{
	char *p = c->buf;
	if ((size_t)n != strlen(p)) {
		load_fail(c, "NUL byte in line");
		return NULL;
	}
	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
		p[--n] = '\0';
	if (s->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
	    (unsigned char)p[2] == 0xBF)
		p += 3;
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Copies a line into inih's buffer, refusing it whole when it does not fit. */
static char *hand_over(struct load_ctx *c, const char *p, char *str, int num)
{
	size_t len = strlen(p);
	if (num < 2 || len > (size_t)num - 2) {
		load_fail(c, "line too long (%zu bytes; at most %d)", len, num > 2 ? num - 2 : 0);
		c->fail_seq = c->seq + 1; /* inih never saw this line */
		return NULL;
	}
	memcpy(str, p, len);
	str[len] = '\n'; /* a complete line, so no inih build tries to continue it */
	str[len + 1] = '\0';
	if (c->seq == c->map_cap) {
		c->map_cap = c->map_cap ? 2 * c->map_cap : 64;
		c->map = xrealloc(c->map, c->map_cap * sizeof(*c->map));
	}
	c->map[c->seq].file = c->cur_file;
	c->map[c->seq].line = c->cur_line;
	c->seq++;
	return str;
}

/* inih's fgets: returns one whole line at a time from the include stack. */
static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *c = stream;
	if (c->failed)
		return NULL; /* the handler failed: stop inih */
	while (c->depth > 0) {
		struct source *s = &c->stack[c->depth - 1];
		errno = 0;
		ssize_t n = getline(&c->buf, &c->cap, s->f);
		if (n < 0) {
			if (ferror(s->f)) {
				c->cur_file = s->name;
				c->cur_line = s->line + 1;
				load_fail(c, "read error: %s", strerror(errno ? errno : EIO));
				break;
			}
			pop_source(c);
			continue;
		}
		s->line++;
		c->cur_file = s->name;
		c->cur_line = s->line;
		char *p = clean_line(c, s, n);
		if (!p)
			break;
		if (*p == '%') {
			if (!directive(c, p))
				break;
			continue;
		}
		if (*p == '[' && !section_header(c, p))
			break;
		if (!c->knobs && !inline_comment_check(c, p))
			break;
		return hand_over(c, p, str, num);
	}
	c->fail_seq = c->seq + 1; /* if we failed, it was on a line inih never saw */
	return NULL;
}

/* ---- loading: putting it together --------------------------------------------------- */

struct inih_knobs {
	int max_line;
	bool use_stack, inline_comments;
};

static bool knobs_set(struct inih_knobs *saved)
{
	if (!&ini_max_line || !&ini_use_stack || !&ini_allow_inline_comments)
		return false;
	saved->max_line = ini_max_line;
	saved->use_stack = ini_use_stack;
	saved->inline_comments = ini_allow_inline_comments;
	ini_max_line = LINE_LIMIT; /* Debian sizes its on-stack line buffer from this */
	ini_use_stack = true;
	ini_allow_inline_comments = false;
	return true;
}

static void knobs_restore(const struct inih_knobs *saved)
{
	ini_max_line = saved->max_line;
	ini_use_stack = saved->use_stack;
	ini_allow_inline_comments = saved->inline_comments;
}

/* Checks that involve more than one setting; err gets "path: reason". */
static bool validate(struct load_ctx *c, const char *path)
{
	const struct config *cfg = c->cfg;
	if (!cfg->listen_addr[0] && !cfg->unix_socket_dir[0]) {
		snprintf(c->err, c->errlen,
		         "%s: neither listen_addr nor unix_socket_dir is set: nothing to listen on",
		         path);
		return false;
	}
	if (!c->warn_cb)
		return true;
	char msg[400];
	if (cfg->auth_type == AUTH_HBA) {
		snprintf(msg, sizeof(msg),
		         "%s: auth_type = hba is not supported yet: every login will be refused",
		         path);
		c->warn_cb(msg);
	} else if (!cfg->auth_file[0] &&
	           (cfg->auth_type == AUTH_PLAIN || cfg->auth_type == AUTH_MD5 ||
	            cfg->auth_type == AUTH_SCRAM)) {
		snprintf(msg, sizeof(msg),
		         "%s: auth_file is not set: no client can log in with auth_type = %s", path,
		         auth_type_name(cfg->auth_type));
		c->warn_cb(msg);
	}
	return true;
}

/* Runs inih over the include stack and turns its result into one message. */
static bool parse_all(struct load_ctx *c)
{
	struct inih_knobs saved = {0};
	c->knobs = knobs_set(&saved);
	int ret = ini_parse_stream(read_line, c, on_pair, c);
	if (c->knobs)
		knobs_restore(&saved);
	while (c->depth > 0)
		pop_source(c);

	/* inih reports the first line without '=' by its count of lines read. */
	if (ret > 0 && (!c->failed || (size_t)ret < c->fail_seq) && (size_t)ret <= c->seq) {
		const struct line_pos *at = &c->map[ret - 1];
		snprintf(c->err, c->errlen,
		         "%s:%d: syntax error: expected [section] or key = value", at->file,
		         at->line);
		return false;
	}
	if (ret < 0 && !c->failed) {
		snprintf(c->err, c->errlen, "%s: inih failed (%d)", c->cfg->files[0], ret);
		return false;
	}
	return !c->failed;
}

struct config *config_load(const char *path, char *err, size_t errlen,
                           void (*warn_cb)(const char *msg))
{
	struct load_ctx c;
	memset(&c, 0, sizeof(c));
	c.cfg = config_new_defaults();
	c.warn_cb = warn_cb;
	c.err = err;
	c.errlen = errlen;
	if (errlen)
		err[0] = '\0';

	c.cur_file = path;
	bool ok = push_source(&c, path);
	if (!ok) /* no line to point at: "path: reason" */
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(c.open_errno));
	else
		ok = parse_all(&c) && validate(&c, path);
	free(c.buf);
	free(c.map);
	if (!ok) {
		config_free(c.cfg);
		return NULL;
	}
	return c.cfg;
}
