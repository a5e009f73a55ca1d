# shellcheck shell=bash
#
# pg-tmp.sh: a throwaway PostgreSQL 15 for scripts. Source it, do not run it.
#
#   . contrib/pg-tmp.sh
#   trap pgtmp_cleanup EXIT
#   trap 'exit 130' INT; trap 'exit 143' TERM   # EXIT trap then cleans up
#   pgtmp_init sluice-demo                  # temp dir + initdb (trust on loopback/unix)
#   pgtmp_conf "max_connections = 300"      # optional, before pgtmp_start
#   pgtmp_hba "host all all 127.0.0.1/32 md5"  # optional, prepended (first match wins)
#   pgtmp_start                             # free loopback port -> $PGTMP_PORT
#   pgtmp_psql -d postgres -c 'select 1'
#   ...
#   pgtmp_cleanup                           # stop + rm -rf; idempotent
#
# Also: pgtmp_run / pgtmp_spawn CMD (run as the server's OS user; spawn = background,
# pid in PGTMP_LAST_PID), pgtmp_stop_pooler PID (SIGINT, then SIGTERM twice, then
# SIGKILL), pgtmp_kill PID, pgtmp_free_port, pgtmp_port_busy PORT, pgtmp_wait_port PORT,
# pgtmp_exe PATH (a copy the server's user can execute), pgtmp_give FILE (chown to it).
#
# PostgreSQL (and PgBouncer) refuse to run as root, so when the caller is root the
# server, and whatever the caller starts with pgtmp_run / pgtmp_spawn, runs as the
# `postgres` OS user (PGTMP_USER) inside a temp dir that user owns. As a normal user
# everything runs as that user.
#
# Variables set (read them, do not set them, except the overrides):
#   PGTMP_DIR      the temp dir (everything lives under it)
#   PGTMP_DATA     the data directory
#   PGTMP_LOG      the server log
#   PGTMP_HOST     127.0.0.1 (the server listens there only, plus a unix socket)
#   PGTMP_PORT     the TCP port (and unix socket number) after pgtmp_start
#   PGTMP_SOCKDIR  the unix socket directory (= PGTMP_DIR)
#   PGTMP_USER     the OS user the server runs as
#   PGTMP_LAST_PID the pid started by the last pgtmp_spawn
# Overrides (environment):
#   PG_BINDIR      PostgreSQL binaries, default /usr/lib/postgresql/15/bin
#   PGTMP_PARENT   where the temp dir goes, default ${TMPDIR:-/tmp}
#   PGTMP_KEEP=1   pgtmp_cleanup stops the server but keeps the dir (debugging)

PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
PGTMP_HOST=127.0.0.1
PGTMP_DIR=${PGTMP_DIR:-}
PGTMP_PORT=${PGTMP_PORT:-}
PGTMP_LAST_PID=
PGTMP_AS=(env)
PGTMP_PIDS=${PGTMP_PIDS:-}   # processes started with pgtmp_spawn, killed by pgtmp_cleanup

pgtmp_log() { printf '%s\n' "pg-tmp: $*" >&2; }

# pgtmp_run CMD ARGS...: runs CMD as PGTMP_USER (setpriv when we are root) with the
# temp dir as cwd, in a subshell that execs it.
pgtmp_run() {
	(
		cd "${PGTMP_DIR:-/}" || exit 1
		exec "${PGTMP_AS[@]}" "$@"
	)
}

# pgtmp_spawn CMD ARGS...: pgtmp_run in the background (redirections on the call apply);
# CMD's own pid in PGTMP_LAST_PID (setpriv and the subshell exec, nothing forks in
# between), remembered so pgtmp_cleanup kills it if the caller did not.
pgtmp_spawn() {
	(
		cd "${PGTMP_DIR:-/}" || exit 1
		exec "${PGTMP_AS[@]}" "$@"
	) &
	PGTMP_LAST_PID=$!
	PGTMP_PIDS="$PGTMP_PIDS $PGTMP_LAST_PID"
}

# pgtmp_kill PID [SECONDS]: SIGTERM, wait up to SECONDS (default 10), then SIGKILL.
pgtmp_kill() {
	local pid=$1 t=${2:-10} i=0
	[ -n "$pid" ] || return 0
	if pgtmp_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		while pgtmp_alive "$pid" && [ "$i" -lt $((t * 10)) ]; do sleep 0.1; i=$((i + 1)); done
		if pgtmp_alive "$pid"; then
			pgtmp_log "pid $pid did not stop after ${t}s, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# pgtmp_alive PID: running (a zombie does not count).
pgtmp_alive() {
	kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# pgtmp_stop_pooler PID [SECONDS]: stops a PgBouncer-style pooler (sluice or pgbouncer)
# without hanging on connected clients: SIGINT (both: exit once no query runs), after
# SECONDS (default 3) SIGTERM twice (pgbouncer <1.23: exit now; sluice: the second one
# exits now), after 3 more seconds SIGKILL.
pgtmp_stop_pooler() {
	local pid=$1 t=${2:-3} i=0
	[ -n "$pid" ] || return 0
	pgtmp_alive "$pid" && kill -INT "$pid" 2>/dev/null
	while pgtmp_alive "$pid" && [ "$i" -lt $((t * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	if pgtmp_alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		sleep 0.5 # two signals sent back to back may coalesce into one
		pgtmp_alive "$pid" && kill -TERM "$pid" 2>/dev/null
		i=0
		while pgtmp_alive "$pid" && [ "$i" -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
		if pgtmp_alive "$pid"; then
			pgtmp_log "pooler pid $pid ignored SIGINT and SIGTERM, sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null
		fi
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# pgtmp_port_busy PORT: true if something listens on 127.0.0.1:PORT (or any address).
pgtmp_port_busy() {
	local p=$1
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Htln "( sport = :$p )" 2>/dev/null)" ] && return 0
	fi
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
	return 1
}

# pgtmp_free_port: prints a TCP port that nothing listens on (random in 20000-59999).
pgtmp_free_port() {
	local p n=0
	while [ "$n" -lt 200 ]; do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! pgtmp_port_busy "$p"; then
			echo "$p"
			return 0
		fi
		n=$((n + 1))
	done
	pgtmp_log "no free port found"
	return 1
}

# pgtmp_wait_port PORT [SECONDS] [PID]: waits until 127.0.0.1:PORT accepts connections;
# fails early if PID is given and dies.
pgtmp_wait_port() {
	local p=$1 t=${2:-10} pid=${3:-} i=0
	while [ "$i" -lt $((t * 10)) ]; do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
		if [ -n "$pid" ] && ! pgtmp_alive "$pid"; then return 1; fi
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# pgtmp_check: the PostgreSQL binaries are there.
pgtmp_check() {
	local b
	for b in initdb pg_ctl postgres psql; do
		if [ ! -x "$PG_BINDIR/$b" ]; then
			pgtmp_log "$PG_BINDIR/$b not found (install postgresql-15, e.g. bash contrib/deps.sh)"
			return 1
		fi
	done
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		pgtmp_log "running as root but there is no 'postgres' OS user to run the server as"
		return 1
	fi
	return 0
}

# pgtmp_mkdir [NAME]: only the temp dir (owned by PGTMP_USER), no cluster.
pgtmp_mkdir() {
	local name=${1:-pgtmp}
	pgtmp_check || return 1
	if [ "$(id -u)" = 0 ]; then PGTMP_USER=postgres; else PGTMP_USER=$(id -un); fi
	PGTMP_DIR=$(mktemp -d "${PGTMP_PARENT:-${TMPDIR:-/tmp}}/$name.XXXXXX") || return 1
	PGTMP_AS=(env)
	if [ "$PGTMP_USER" != root ] && [ "$(id -u)" = 0 ]; then
		PGTMP_AS=(setpriv --reuid="$PGTMP_USER" --regid="$PGTMP_USER" --init-groups
			env HOME="$PGTMP_DIR" USER="$PGTMP_USER" LOGNAME="$PGTMP_USER")
	fi
	: >"$PGTMP_DIR/.pgtmp"   # marker: pgtmp_cleanup only removes dirs carrying it
	if [ "$(id -u)" = 0 ]; then chown -R "$PGTMP_USER:" "$PGTMP_DIR" || return 1; fi
	chmod 700 "$PGTMP_DIR"
	PGTMP_DATA=$PGTMP_DIR/data
	PGTMP_LOG=$PGTMP_DIR/postgresql.log
	PGTMP_SOCKDIR=$PGTMP_DIR
	return 0
}

# pgtmp_init [NAME] [INITDB ARGS...]: temp dir + initdb. Authentication is trust for
# local (unix) and loopback TCP connections; superuser "postgres".
pgtmp_init() {
	local name=${1:-pgtmp}
	[ $# -gt 0 ] && shift
	pgtmp_mkdir "$name" || return 1
	if ! pgtmp_run "$PG_BINDIR/initdb" -D "$PGTMP_DATA" -U postgres -A trust -E UTF8 \
		--locale=C --no-sync "$@" >"$PGTMP_DIR/initdb.log" 2>&1; then
		pgtmp_log "initdb failed:"
		cat "$PGTMP_DIR/initdb.log" >&2
		return 1
	fi
	return 0
}

# pgtmp_conf LINE...: appends lines to postgresql.conf (before pgtmp_start, or reload).
pgtmp_conf() {
	local l
	for l in "$@"; do printf '%s\n' "$l" >>"$PGTMP_DATA/postgresql.conf"; done
}

# pgtmp_hba LINE...: puts pg_hba.conf lines before the generated trust lines.
pgtmp_hba() {
	local f=$PGTMP_DATA/pg_hba.conf
	{ printf '%s\n' "$@"; cat "$f"; } >"$f.new" && cat "$f.new" >"$f" && rm -f "$f.new"
}

# pgtmp_start [PORT]: starts the server on 127.0.0.1:PORT (a free one when not given,
# retried on a port race) and the unix socket in PGTMP_DIR; waits until it is ready.
pgtmp_start() {
	local want=${1:-} try=0 port
	while [ "$try" -lt 5 ]; do
		port=${want:-$(pgtmp_free_port)} || return 1
		if pgtmp_run "$PG_BINDIR/pg_ctl" -D "$PGTMP_DATA" -l "$PGTMP_LOG" -w -t 60 -s \
			-o "-p $port -c listen_addresses=127.0.0.1 -k $PGTMP_SOCKDIR" start >&2; then
			PGTMP_PORT=$port
			# pg_ctl -w returns once connections are accepted; double-check
			local i=0
			while [ "$i" -lt 100 ]; do
				"$PG_BINDIR/pg_isready" -q -h "$PGTMP_HOST" -p "$port" && return 0
				sleep 0.1
				i=$((i + 1))
			done
			pgtmp_log "server started but is not ready"
			return 1
		fi
		[ -n "$want" ] && break
		try=$((try + 1))
	done
	pgtmp_log "PostgreSQL did not start; end of $PGTMP_LOG:"
	tail -n 20 "$PGTMP_LOG" >&2 2>/dev/null
	return 1
}

# pgtmp_psql ARGS...: psql to the temp server over TCP as the postgres superuser.
pgtmp_psql() {
	PGCONNECT_TIMEOUT=10 "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGTMP_HOST" \
		-p "$PGTMP_PORT" -U postgres "$@"
}

# pgtmp_postmaster_pid: prints the postmaster's pid (if running).
pgtmp_postmaster_pid() {
	[ -n "$PGTMP_DATA" ] && [ -f "$PGTMP_DATA/postmaster.pid" ] && head -n 1 "$PGTMP_DATA/postmaster.pid"
}

# pgtmp_stop: fast shutdown (immediate, then SIGKILL, if that hangs).
pgtmp_stop() {
	local pid
	pid=$(pgtmp_postmaster_pid) || return 0
	[ -n "$pid" ] || return 0
	if ! pgtmp_run "$PG_BINDIR/pg_ctl" -D "$PGTMP_DATA" -m fast -w -t 20 -s stop >/dev/null 2>&1; then
		pgtmp_run "$PG_BINDIR/pg_ctl" -D "$PGTMP_DATA" -m immediate -w -t 10 -s stop >/dev/null 2>&1 ||
			kill -KILL "$pid" 2>/dev/null
	fi
	return 0
}

# pgtmp_cleanup: kills what pgtmp_spawn started, stops the server, removes the temp dir.
# Safe to call twice and from an EXIT trap.
pgtmp_cleanup() {
	local p
	for p in $PGTMP_PIDS; do pgtmp_kill "$p" 5; done
	PGTMP_PIDS=
	[ -n "$PGTMP_DIR" ] || return 0
	pgtmp_stop
	if [ "${PGTMP_KEEP:-0}" = 1 ]; then
		pgtmp_log "kept $PGTMP_DIR"
	elif [ -f "$PGTMP_DIR/.pgtmp" ]; then
		rm -rf -- "$PGTMP_DIR"
	fi
	PGTMP_DIR=
	return 0
}

# pgtmp_exe PATH: prints a path to the executable PATH that PGTMP_USER can run: PATH
# itself, or a copy in PGTMP_DIR/bin when PATH is under a directory that user cannot
# enter (a checkout in /root, say).
pgtmp_exe() {
	local exe=$1 copy
	if pgtmp_run test -x "$exe" 2>/dev/null; then
		echo "$exe"
		return 0
	fi
	[ -x "$exe" ] || { pgtmp_log "$exe is not executable"; return 1; }
	mkdir -p "$PGTMP_DIR/bin" && chmod 755 "$PGTMP_DIR/bin"
	copy=$PGTMP_DIR/bin/$(basename "$exe")
	cp "$exe" "$copy" && chmod 755 "$copy" || return 1
	echo "$copy"
}

# pgtmp_give PATH...: hands files the caller wrote to PGTMP_USER (configs the server or
# a pooler running as that user must read or write).
pgtmp_give() {
	if [ "$(id -u)" = 0 ] && [ "${PGTMP_USER:-root}" != root ]; then
		chown "$PGTMP_USER:" "$@"
	fi
}
