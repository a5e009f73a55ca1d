/*
 * main: the process. Parses the command line (PgBouncer's flags, so existing units
 * and scripts keep working), loads the config and auth file, opens listeners, drops
 * privileges, and runs the loop. Signals arrive through a signalfd and are handled
 * in loop context: SIGHUP reloads, SIGTERM stops accepting and exits when the last
 * client has left (a second SIGTERM exits at once), SIGINT exits once no server is
 * running a query, SIGQUIT exits at once, SIGUSR1 pauses and SIGUSR2 resumes; each
 * runs the same code as its console command.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "auth_file.h"
#include "config.h"
#include "conn.h"
#include "core.h"
#include "dns.h"
#include "hosts.h"
#include "iobuf.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "netutil.h"
#include "pool.h"
#include "proto.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

struct options {
	bool daemon, quiet, check_only;
	int verbose;
	const char *user;
	const char *config;
};

static int signal_fd = -1;
static bool sigterm_seen;

static void usage(FILE *out)
{
	fprintf(out,
	        "sluice %s: a connection pooler for PostgreSQL\n\n"
	        "Usage: sluice [OPTION]... CONFIG_FILE\n"
	        "  -d, --daemon        run in the background (needs logfile or syslog)\n"
	        "  -q, --quiet         do not log to stderr\n"
	        "  -v, --verbose       log more (repeat for even more)\n"
	        "  -u, --user=USER     drop privileges to this OS user after start-up\n"
	        "      --check         validate CONFIG_FILE and exit 0 (valid) or 1\n"
	        "  -V, --version       print the version and exit\n"
	        "  -h, --help          this help\n",
	        SLUICE_VERSION);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
	    {"daemon", no_argument, NULL, 'd'},  {"quiet", no_argument, NULL, 'q'},
	    {"verbose", no_argument, NULL, 'v'}, {"user", required_argument, NULL, 'u'},
	    {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
	    {"check", no_argument, NULL, 'C'},   {NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "dqvu:VhR", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->daemon = true;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'C':
			o->check_only = true;
			break;
		case 'V':
			printf("sluice %s\n", SLUICE_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case 'R':
			fprintf(stderr, "sluice: -R (online restart) is not supported\n");
			exit(1);
		default:
			usage(stderr);
			exit(1);
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		exit(1);
	}
	o->config = argv[optind];
}

static void warn_config(const char *msg)
{
	log_warning("%s", msg);
}

static bool setup_logging(const struct config *cfg, const struct options *o)
{
	struct log_target t = {
	    .logfile = cfg->logfile,
	    .use_syslog = cfg->syslog,
	    .syslog_ident = cfg->syslog_ident,
	    .syslog_facility = cfg->syslog_facility,
	    .use_stderr = !o->quiet && !o->daemon,
	};
	log_set_level(LOG_LVL_INFO + cfg->verbose + o->verbose);
	if (!log_setup(&t)) {
		log_error("cannot open logfile %s: %s", cfg->logfile, strerror(errno));
		return false;
	}
	return true;
}

static struct auth_file *load_auth(const struct config *cfg, bool *ok)
{
	char err[512];
	*ok = true;
	if (!cfg->auth_file || !cfg->auth_file[0])
		return NULL;
	struct auth_file *af = auth_file_load(cfg->auth_file, err, sizeof(err));
	if (!af) {
		log_error("auth_file: %s", err);
		*ok = false;
	}
	return af;
}

static const struct options *g_opts;
static void recheck_client_cap(struct core *core);

static bool reload_config(struct core *core, char *err, size_t errlen)
{
	bool ok;
	log_info("reloading %s", core->config_path);
	struct config *cfg = config_load(core->config_path, err, errlen, warn_config);
	if (!cfg) {
		log_error("reload failed, keeping the running config: %s", err);
		return false;
	}
	struct auth_file *af = load_auth(cfg, &ok);
	if (!ok) {
		snprintf(err, errlen, "auth_file %s cannot be read", cfg->auth_file);
		log_error("reload failed, keeping the running config");
		config_free(cfg);
		return false;
	}
	config_carry_restart_settings(cfg, core->cfg, warn_config);
	config_free(core->cfg);
	core->cfg = cfg;
	auth_file_free(core->auth);
	core->auth = af;
	if (!setup_logging(cfg, g_opts))
		log_error("keeping the previous log targets");
	pool_apply_config(core);
	recheck_client_cap(core);
	log_info("reload done");
	return true;
}

static void reload(struct core *core)
{
	char err[1024];
	(void)reload_config(core, err, sizeof(err));
}

static bool server_busy(struct core *core)
{
	struct list *it, *s;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		list_for_each(s, &pool->servers[SV_ACTIVE])
		{
			struct conn *sv = list_entry(s, struct conn, node);
			if (!sv->proto->server_clean(sv))
				return true;
		}
		if (pool->n_servers[SV_TESTED] || pool->n_servers[SV_LOGIN] ||
		    pool->n_servers[SV_BEING_CANCELED])
			return true;
	}
	return false;
}

static void shutdown_check(struct core *core)
{
	bool done = false;
	if (core->run_state == RUN_WAIT_CLIENTS)
		done = core->n_clients - core->n_admin_clients == 0; /* consoles don't hold it up */
	else if (core->run_state == RUN_WAIT_SERVERS)
		done = !server_busy(core);
	else if (core->run_state == RUN_EXIT)
		done = true;
	if (done)
		loop_stop(core->loop);
}

static void on_signal(struct loop *l, int fd, int events, void *arg)
{
	struct core *core = arg;
	struct signalfd_siginfo si;
	(void)l;
	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			reload(core);
			break;
		case SIGTERM:
			if (sigterm_seen) {
				admin_begin_shutdown(core, RUN_EXIT, "second SIGTERM: exiting now");
				break;
			}
			sigterm_seen = true;
			admin_begin_shutdown(
			    core, RUN_WAIT_CLIENTS,
			    "SIGTERM: not accepting, exiting when the last client leaves");
			break;
		case SIGINT:
			admin_begin_shutdown(core, RUN_WAIT_SERVERS,
			                     "SIGINT: exiting once running queries have finished");
			break;
		case SIGQUIT:
			admin_begin_shutdown(core, RUN_EXIT, "SIGQUIT: exiting now");
			break;
		case SIGUSR1:
			log_info("SIGUSR1: PAUSE");
			admin_pause_all(core);
			break;
		case SIGUSR2:
			log_info("SIGUSR2: RESUME");
			admin_resume_all(core);
			break;
		}
	}
}

static bool setup_signals(struct core *core)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return false;
	signal(SIGPIPE, SIG_IGN);
	signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return signal_fd >= 0 && loop_watch(core->loop, signal_fd, LOOP_READ, on_signal, core);
}

/* One of db's hosts is this host name (names compare case-insensitively). */
static bool db_uses_host(const struct database *db, const char *host)
{
	for (size_t i = 0; db->hosts && i < db->hosts->n; i++) {
		const char *name = db->hosts->v[i].name;
		if (name && strcasecmp(name, host) == 0)
			return true;
	}
	return false;
}

/* dns -> pools: a lookup of host ended; pools waiting for it open servers or fail now */
static void dns_resolved(void *arg, const char *host)
{
	struct core *core = arg;
	struct list *it;
	list_for_each(it, &core->databases)
	{
		struct database *db = list_entry(it, struct database, node);
		if (db_uses_host(db, host))
			pool_wake_database(core, db);
	}
}

/* dns -> pools: host lost these addresses; servers connected to one close when idle */
static void dns_addrs_gone(void *arg, const char *host, const struct sockaddr_storage *gone,
                           size_t n)
{
	struct core *core = arg;
	struct list *it, *s;
	list_for_each(it, &core->pools)
	{
		struct pool *pool = list_entry(it, struct pool, node);
		if (!db_uses_host(pool->db, host))
			continue;
		for (int st = 0; st < SV_JUSTFREE; st++)
			list_for_each(s, &pool->servers[st])
			{
				struct conn *sv = list_entry(s, struct conn, node);
				for (size_t i = 0; i < n; i++)
					if (net_same_ip(&sv->addr, &gone[i]))
						sv->flags |= CONN_F_CLOSE_NEEDED;
			}
		/* closing may hand other idle servers out: look again from the start */
		bool again = true;
		while (again) {
			again = false;
			list_for_each(s, &pool->servers[SV_IDLE])
			{
				struct conn *sv = list_entry(s, struct conn, node);
				if (sv->flags & CONN_F_CLOSE_NEEDED) {
					server_close(sv, "host address changed");
					again = true;
					break;
				}
			}
		}
	}
}

static void janitor_tick(struct loop *l, struct loop_timer *t, void *arg)
{
	struct core *core = arg;
	(void)t;
	pool_janitor(core);
	dns_maintain(core->dns);
	admin_check_waiting(core);
	if (loop_now(l) - core->stats_rolled >= core->cfg->stats_period) {
		core->stats_rolled = loop_now(l);
		admin_stats_period(core);
	}
	core_check_shutdown(core);
}

static void before_sleep(struct loop *l, void *arg)
{
	(void)l;
	(void)arg;
	conn_flush_all();
}

static void daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	setsid();
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	int fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static void write_pidfile(const char *path)
{
	char buf[32];
	if (!path || !path[0])
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fatal("cannot write pidfile %s: %s", path, strerror(errno));
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n)
		fatal("cannot write pidfile %s: %s", path, strerror(errno));
	close(fd);
}

static void drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);
	if (!pw)
		fatal("unknown user %s", user);
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot become user %s: %s", user, strerror(errno));
}

/* The largest pool_size a [users] entry sets (it wins over the database's); -1: none. */
static int max_user_pool_size(const struct config *cfg)
{
	int max = -1;
	for (size_t i = 0; i < cfg->n_users; i++)
		if (cfg->users[i]->pool_size > max)
			max = cfg->users[i]->pool_size;
	return max;
}

/* Server connections the config allows at most, PgBouncer's way: per database its pool
 * (plus reserve) for each user that may log in, or once with a forced user. */
static unsigned long long max_servers(const struct config *cfg, const struct auth_file *af)
{
	unsigned long long total = 0;
	unsigned long long users = af && af->n_users ? af->n_users : 1;
	int user_size = max_user_pool_size(cfg);
	for (size_t i = 0; i < cfg->n_dbs; i++) {
		const struct db_entry *e = cfg->dbs[i];
		int size = e->pool_size >= 0 ? e->pool_size : cfg->default_pool_size;
		if (user_size > size)
			size = user_size;
		int reserve =
		    e->reserve_pool_size >= 0 ? e->reserve_pool_size : cfg->reserve_pool_size;
		int cap =
		    e->max_db_connections >= 0 ? e->max_db_connections : cfg->max_db_connections;
		unsigned long long n = (unsigned long long)size + (unsigned long long)reserve;
		n *= e->user ? 1 : users;
		if (cap > 0 && n > (unsigned long long)cap)
			n = (unsigned long long)cap;
		total += n;
	}
	return total;
}

/* listeners, epoll, signalfd, log, metrics, cancels in flight: a generous guess */
#define OWN_FDS (LISTEN_RESERVE_FDS + 16)

/*
 * The clients admission lets in, so that the servers the pools may open still find
 * descriptors (a server connect out of them leaves its waiters waiting, pool.c): the
 * limit less the servers and sluice's own, as PgBouncer reckons. A config whose
 * servers would leave clients less than half of the rest still gets that half.
 * 0: max_client_conn fits.
 */
static int client_fd_cap(const struct config *cfg, const struct auth_file *af,
                         const struct rlimit *rl)
{
	unsigned long long servers = max_servers(cfg, af);
	if (rl->rlim_cur == RLIM_INFINITY)
		return 0;
	unsigned long long lim = rl->rlim_cur, own = OWN_FDS;
	unsigned long long rest = lim > own ? lim - own : 1;
	unsigned long long room = rest > servers ? rest - servers : 0;
	if (room < rest / 2)
		room = rest / 2 ? rest / 2 : 1;
	return room < (unsigned long long)cfg->max_client_conn ? (int)room : 0;
}

/* Applies the cap to core (start-up and reload); logged when it changes. */
static void apply_client_cap(struct core *core, const struct rlimit *rl)
{
	int cap = client_fd_cap(core->cfg, core->auth, rl);
	if (cap == core->max_client_conn_cap)
		return;
	core->max_client_conn_cap = cap;
	if (cap)
		log_warning("max_client_conn %d capped to %d: the file descriptor limit %llu keeps "
		            "%llu back for server connections and %d for sluice's own",
		            core->cfg->max_client_conn, cap, (unsigned long long)rl->rlim_cur,
		            max_servers(core->cfg, core->auth), OWN_FDS);
	else
		log_info("max_client_conn %d fits the file descriptor limit again",
		         core->cfg->max_client_conn);
}

/* The descriptor limit against what the config may need: the soft limit is raised up
 * to the hard one when it is short, and a limit still short is warned about and caps
 * max_client_conn. Past it, new clients are refused with "too many connections"
 * (listen.c). */
static void check_fd_limit(struct core *core)
{
	const struct config *cfg = core->cfg;
	struct rlimit rl;
	unsigned long long servers = max_servers(cfg, core->auth);
	unsigned long long own = OWN_FDS;
	unsigned long long need = (unsigned long long)cfg->max_client_conn +
	                          (unsigned long long)cfg->admin_max_client_conn + servers + own;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warning("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && rl.rlim_max > rl.rlim_cur) {
		struct rlimit up = rl;
		up.rlim_cur =
		    rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			log_info("raised the file descriptor limit from %llu to %llu",
			         (unsigned long long)rl.rlim_cur, (unsigned long long)up.rlim_cur);
			rl = up;
		}
	}
	log_info("file descriptor limit: %llu (hard %llu); may need %llu: max_client_conn %d + "
	         "admin_max_client_conn %d + server connections %llu + %llu of its own",
	         (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max, need,
	         cfg->max_client_conn, cfg->admin_max_client_conn, servers, own);
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warning(
		    "the file descriptor limit %llu is below the %llu the config may need: "
		    "past it new clients are refused with \"too many connections\"; raise "
		    "it (ulimit -n, LimitNOFILE=) or lower max_client_conn or the pool sizes",
		    (unsigned long long)rl.rlim_cur, need);
	apply_client_cap(core, &rl);
}

/* After a reload: max_client_conn and the pool sizes may have changed. */
static void recheck_client_cap(struct core *core)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		apply_client_cap(core, &rl);
}

static void log_limits(struct core *core)
{
	check_fd_limit(core);
	if (geteuid() == 0)
		log_warning("running as root; use -u or a service user in production");
}

static int check_config(const char *path)
{
	char err[1024];
	struct config *cfg = config_load(path, err, sizeof(err), warn_config);
	if (!cfg) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	bool ok;
	struct auth_file *af = load_auth(cfg, &ok);
	auth_file_free(af);
	config_free(cfg);
	if (ok)
		printf("%s: configuration is valid\n", path);
	return ok ? 0 : 1;
}

static void core_init(struct core *core, const char *path)
{
	memset(core, 0, sizeof(*core));
	list_init(&core->databases);
	list_init(&core->users);
	list_init(&core->pools);
	list_init(&core->login_clients);
	list_init(&core->listeners);
	list_init(&core->admin_clients);
	list_init(&core->admin_waits);
	core->config_path = xstrdup(path);
	core->shutdown_check = shutdown_check;
	core->reload = reload_config;
	core->started = wall_usec();
}

static void core_teardown(struct core *core)
{
	conn_flush_all();
	listen_close_all(core);
	core->run_state = RUN_EXIT;
	metrics_close(core);
	pool_free_all(core);
	dns_free(core->dns);
	core->dns = NULL;
	loop_run_deferred(core->loop);
	if (core->cfg->pidfile && core->cfg->pidfile[0])
		unlink(core->cfg->pidfile);
	log_info("sluice exiting");
	loop_unwatch(core->loop, signal_fd);
	close(signal_fd);
	loop_free(core->loop);
	auth_file_free(core->auth);
	config_free(core->cfg);
	free(core->config_path);
	iobuf_release_free_list();
	log_close();
}

/* Start-up stopped before the loop existed: frees what was loaded; the exit code. */
static int start_refused(struct core *core)
{
	auth_file_free(core->auth);
	config_free(core->cfg);
	free(core->config_path);
	log_close();
	return 1;
}

int main(int argc, char **argv)
{
	struct options opts = {0};
	struct core core;
	char err[1024];
	bool ok;
	parse_args(argc, argv, &opts);
	g_opts = &opts;
	if (opts.check_only)
		return check_config(opts.config);
	core_init(&core, opts.config);
	pool_init();
	if (!random_bytes(core.scram_mock_key, sizeof(core.scram_mock_key)))
		fatal("no randomness for the SCRAM mock key");
	core.cfg = config_load(opts.config, err, sizeof(err), warn_config);
	if (!core.cfg) {
		fprintf(stderr, "sluice: %s\n", err);
		return start_refused(&core);
	}
	if (opts.daemon && !core.cfg->logfile[0] && !core.cfg->syslog) {
		/* a daemon has no stderr: it would run with every log line discarded */
		fprintf(stderr, "sluice: -d needs logfile or syslog set in %s\n", opts.config);
		return start_refused(&core);
	}
	if (!setup_logging(core.cfg, &opts))
		return start_refused(&core);
	core.auth = load_auth(core.cfg, &ok);
	if (!ok)
		return start_refused(&core);
	iobuf_set_default_size((uint32_t)core.cfg->pkt_buf);
	if (opts.daemon)
		daemonize();
	core.loop = loop_new();
	if (!core.loop)
		fatal("cannot create the event loop: %s", strerror(errno));
	if (!setup_signals(&core))
		fatal("cannot set up signal handling: %s", strerror(errno));
	const struct dns_hooks dns_hooks = {dns_resolved, dns_addrs_gone, &core};
	core.dns = dns_new(&core, &dns_hooks, err, sizeof(err));
	if (!core.dns)
		fatal("cannot start the resolver: %s", err);
	if (!listen_open_all(&core, proto_by_name(core.cfg->listen_protocol)) ||
	    !metrics_open(&core)) {
		/* the pidfile may be another instance's: not ours to remove */
		free(core.cfg->pidfile);
		core.cfg->pidfile = NULL;
		core_teardown(&core);
		return 1;
	}
	write_pidfile(core.cfg->pidfile);
	if (opts.user)
		drop_privileges(opts.user);
	log_info("sluice %s started", SLUICE_VERSION);
	log_limits(&core);
	loop_set_before_sleep(core.loop, before_sleep, &core);
	loop_timer_start(core.loop, &core.janitor, USEC_PER_SEC, USEC_PER_SEC, janitor_tick, &core);
	loop_run(core.loop);
	core_teardown(&core);
	return core.exit_code;
}
