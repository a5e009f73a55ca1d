#!/usr/bin/env bash
#
# contrib/quickstart.sh: sluice in front of a throwaway PostgreSQL 15, in one command.
#
#   bash contrib/quickstart.sh        (as root on a fresh Debian 12; or as a user who
#                                      has the packages already)
#
# Installs what is missing (contrib/deps.sh), builds sluice (./autogen.sh, ./configure,
# make; each only when needed), starts PostgreSQL 15 in a temp dir on a free loopback
# port with a demo user and database, writes a pgbouncer.ini-format config and runs
# sluice in the foreground on 127.0.0.1:6432. It prints the psql lines to connect first:
# to the demo database, and to the admin console (user admin, in the throwaway auth file).
# Ctrl-C stops sluice and PostgreSQL and removes the temp dir.
#
# Environment:
#   SLUICE_BIN        the pooler to run (default: src/sluice, built here); pointing it at
#                     /usr/sbin/pgbouncer runs the same demo with PgBouncer, no build
#   SLUICE_PORT       listen port, default 6432
#   QUICKSTART_AUTH   md5 (default), scram-sha-256, plain or trust
#   QUICKSTART_MODE   pool_mode, default session
#   QUICKSTART_DEPS   auto (default: run contrib/deps.sh when something is missing),
#                     always, never
#   PG_BINDIR         default /usr/lib/postgresql/15/bin

set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SLUICE_PORT=${SLUICE_PORT:-6432}
QUICKSTART_AUTH=${QUICKSTART_AUTH:-md5}
QUICKSTART_MODE=${QUICKSTART_MODE:-session}
QUICKSTART_DEPS=${QUICKSTART_DEPS:-auto}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
BUILD=1
if [ -n "${SLUICE_BIN:-}" ]; then BUILD=0; else SLUICE_BIN=$ROOT/src/sluice; fi
DEMO_USER=demo
DEMO_PASSWORD=demo
ADMIN_USER=admin # the console's (admin_users); exists only in the throwaway auth file
ADMIN_PASSWORD=admin
POOL_SIZE=5
# pgbench clients: in session mode each holds a server for its whole run, so no more
# than the pool has (more would wait); otherwise twice as many share the pool
if [ "$QUICKSTART_MODE" = session ]; then BENCH_CLIENTS=$POOL_SIZE; else BENCH_CLIENTS=$((2 * POOL_SIZE)); fi

if [ -t 2 ]; then
	say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
else
	say() { printf '==> %s\n' "$*" >&2; }
fi
die() {
	printf 'quickstart: %s\n' "$*" >&2
	exit 1
}

case $QUICKSTART_AUTH in md5 | scram-sha-256 | plain | trust) ;; *) die "QUICKSTART_AUTH must be md5, scram-sha-256, plain or trust" ;; esac
case $QUICKSTART_MODE in session | transaction | statement) ;; *) die "QUICKSTART_MODE must be session, transaction or statement" ;; esac

# ------------------------------------------------------------------ dependencies
missing() {
	local m="" c
	for c in "$PG_BINDIR/initdb" "$PG_BINDIR/pg_ctl" "$PG_BINDIR/postgres" "$PG_BINDIR/psql"; do
		[ -x "$c" ] || m="$m $c"
	done
	command -v psql >/dev/null 2>&1 || m="$m psql"
	command -v setpriv >/dev/null 2>&1 || m="$m setpriv"
	if [ "$BUILD" = 1 ]; then
		for c in gcc make autoreconf pkg-config; do
			command -v "$c" >/dev/null 2>&1 || m="$m $c"
		done
		if command -v pkg-config >/dev/null 2>&1; then
			for c in openssl libcares inih check libpq; do
				pkg-config --exists "$c" || m="$m $c(pkg-config)"
			done
		fi
	fi
	printf '%s' "$m"
}

need=$(missing)
if [ "$QUICKSTART_DEPS" = always ] || { [ -n "$need" ] && [ "$QUICKSTART_DEPS" != never ]; }; then
	[ -n "$need" ] && say "missing:$need"
	[ -f "$ROOT/contrib/deps.sh" ] || die "contrib/deps.sh not found; install by hand:$need"
	[ "$(id -u)" = 0 ] || die "installing packages needs root: sudo bash contrib/deps.sh, then run this again"
	say "installing dependencies (contrib/deps.sh)"
	bash "$ROOT/contrib/deps.sh"
	need=$(missing)
fi
[ -z "$need" ] || die "still missing:$need"

# ------------------------------------------------------------------ build
if [ "$BUILD" = 1 ]; then
	cd "$ROOT"
	if [ ! -x configure ] || [ configure.ac -nt configure ]; then
		say "./autogen.sh"
		./autogen.sh
	fi
	if [ ! -f config.mk ] || [ ! -f config.status ] || [ configure -nt config.status ] ||
		[ config.mk.in -nt config.mk ]; then
		say "./configure"
		./configure
	fi
	say "make"
	make -j"$(nproc)"
	cd - >/dev/null
fi
[ -x "$SLUICE_BIN" ] || die "$SLUICE_BIN not found or not executable"

# ------------------------------------------------------------------ PostgreSQL
# shellcheck source=contrib/pg-tmp.sh
. "$ROOT/contrib/pg-tmp.sh"
pgtmp_port_busy "$SLUICE_PORT" && die "something already listens on port $SLUICE_PORT (set SLUICE_PORT=...)"

set +e # from here on, failures are handled explicitly and the traps clean up
SLUICE_PID=
STOPPING=0
exec 8>&1 9>&2
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	trap '' INT TERM
	exec 1>&8 2>&9
	[ "$STOPPING" = 1 ] && return
	STOPPING=1
	if [ -n "$SLUICE_PID" ]; then
		say "stopping $(basename "$SLUICE_BIN")"
		pgtmp_stop_pooler "$SLUICE_PID" 3
	fi
	if [ -n "${PGTMP_DIR:-}" ]; then
		say "stopping PostgreSQL and removing $PGTMP_DIR"
	fi
	pgtmp_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting PostgreSQL 15 in a temp dir"
pgtmp_init sluice-quickstart || exit 1
pgtmp_conf "log_min_messages = warning" "max_connections = 100"
pgtmp_start "" || exit 1
say "PostgreSQL 15 on 127.0.0.1:$PGTMP_PORT (data: $PGTMP_DATA)"

pgtmp_psql -d postgres >/dev/null <<EOF || exit 1
CREATE ROLE $DEMO_USER LOGIN PASSWORD '$DEMO_PASSWORD';
CREATE DATABASE demo OWNER $DEMO_USER;
EOF
pgtmp_psql -d demo -U "$DEMO_USER" >/dev/null <<'EOF' || exit 1
CREATE TABLE greeting (id int PRIMARY KEY, lang text NOT NULL, hello text NOT NULL);
INSERT INTO greeting VALUES
  (1, 'en', 'Hello from behind sluice'),
  (2, 'fr', 'Bonjour de derrière sluice'),
  (3, 'de', 'Hallo von hinter sluice');
EOF

# ------------------------------------------------------------------ sluice config
case $(basename "$SLUICE_BIN") in
pgbouncer*) SECTION=pgbouncer ;;
*) SECTION=sluice ;;
esac
secret() { # user password
	case $QUICKSTART_AUTH in
	md5) printf 'md5%s' "$(printf '%s' "$2$1" | md5sum | cut -d' ' -f1)" ;;
	*) printf '%s' "$2" ;;
	esac
}
CONF=$PGTMP_DIR/sluice.ini
cat >"$PGTMP_DIR/userlist.txt" <<EOF
;; "user" "password": plaintext, "md5" + md5(password || user), or a SCRAM secret
"$DEMO_USER" "$(secret "$DEMO_USER" "$DEMO_PASSWORD")"
"$ADMIN_USER" "$(secret "$ADMIN_USER" "$ADMIN_PASSWORD")"
EOF
cat >"$CONF" <<EOF
;; sluice quickstart config: PgBouncer's pgbouncer.ini format ([$SECTION] may also be
;; spelled [pgbouncer]); an existing pgbouncer.ini works unchanged.
[databases]
demo = host=127.0.0.1 port=$PGTMP_PORT dbname=demo
postgres = host=127.0.0.1 port=$PGTMP_PORT dbname=postgres

[$SECTION]
listen_addr = 127.0.0.1
listen_port = $SLUICE_PORT
unix_socket_dir = $PGTMP_DIR
auth_type = $QUICKSTART_AUTH
auth_file = $PGTMP_DIR/userlist.txt
pool_mode = $QUICKSTART_MODE
default_pool_size = $POOL_SIZE
max_client_conn = 100
admin_users = $ADMIN_USER
EOF
pgtmp_give "$CONF" "$PGTMP_DIR/userlist.txt"
EXE=$(pgtmp_exe "$SLUICE_BIN") || exit 1

# ------------------------------------------------------------------ run
cat >&2 <<EOF

  $(basename "$SLUICE_BIN") is starting on 127.0.0.1:$SLUICE_PORT ($QUICKSTART_MODE pooling, $QUICKSTART_AUTH auth,
  PostgreSQL 15 behind it on port $PGTMP_PORT). In another terminal:

    psql "host=127.0.0.1 port=$SLUICE_PORT dbname=demo user=$DEMO_USER password=$DEMO_PASSWORD"

  then for example:  SELECT * FROM greeting;
  load it:           export PGPASSWORD=$DEMO_PASSWORD
                     pgbench -i -h 127.0.0.1 -p $SLUICE_PORT -U $DEMO_USER demo
                     pgbench -S -c $BENCH_CLIENTS -T 10 -h 127.0.0.1 -p $SLUICE_PORT -U $DEMO_USER demo
                     ($BENCH_CLIENTS clients, pool of $POOL_SIZE servers)
  admin console:     psql "host=127.0.0.1 port=$SLUICE_PORT dbname=pgbouncer user=$ADMIN_USER password=$ADMIN_PASSWORD"
                     then SHOW HELP;  SHOW POOLS;  SHOW CLIENTS;
  config:            $CONF

  Ctrl-C stops $(basename "$SLUICE_BIN") and PostgreSQL and removes the temp dir.

EOF
# In the background and waited for, so Ctrl-C reaches our trap at once; the trap stops
# it (SIGINT, then SIGTERM) and then PostgreSQL. Its log goes to this terminal.
pgtmp_spawn "$EXE" "$CONF" </dev/null
SLUICE_PID=$PGTMP_LAST_PID
wait "$SLUICE_PID"
rc=$?
SLUICE_PID=
say "$(basename "$SLUICE_BIN") exited with status $rc"
exit "$rc"
