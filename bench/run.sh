#!/usr/bin/env bash
#
# bench/run.sh: pgbench select-only (-S) against PostgreSQL directly, PgBouncer and
# sluice, same pool settings, alternating the targets within each round. `make bench`
# runs it; see bench/README.md for what the numbers mean.
#
# Settings come from the environment or from KEY=VALUE arguments
# (bench/run.sh BENCH_CLIENTS="1 10" BENCH_ROUNDS=1, or make bench BENCH_ROUNDS=1):
#   BENCH_PRESET    transaction: defaults for `make bench-transaction` (mode transaction,
#                   protocols "simple extended prepared", clients "1 10 100", pool 20,
#                   10 s x 3 rounds, ~13 min); anything set explicitly still wins
#   BENCH_CLIENTS   client counts                      default "10 100"
#   BENCH_DURATION  seconds per pgbench run            default 10
#   BENCH_ROUNDS    rounds (medians are over these)    default 3
#   BENCH_MODE      session|transaction|statement      default session
#   BENCH_PROTOCOL  pgbench -M, one or more of simple extended prepared   default simple
#   BENCH_TARGETS   which targets, in this order       default "direct pgbouncer sluice"
#   BENCH_THREADS   pgbench -j (capped at clients)     default 2
#   BENCH_SCALE     pgbench -i -s                      default 10
#   BENCH_SERVER    tcp|unix: how the poolers reach PostgreSQL   default tcp
#   BENCH_POOL_SIZE default_pool_size                  default: the largest client count
#   SLUICE_BIN      default src/sluice (point it at pgbouncer to test this script)
#   PGBOUNCER_BIN   default /usr/sbin/pgbouncer
#   BENCH_RESULTS   where results go                   default bench/results
#   PG_BINDIR       default /usr/lib/postgresql/15/bin

set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	sed -n '3,26p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}
for arg in "$@"; do
	case $arg in
	-h | --help) usage 0 ;;
	BENCH_*=* | SLUICE_BIN=* | PGBOUNCER_BIN=* | PG_BINDIR=*) export "${arg?}" ;;
	*)
		echo "bench/run.sh: unknown argument '$arg'" >&2
		usage 2 >&2
		;;
	esac
done

die() {
	echo "bench: $*" >&2
	exit 2
}

# presets only fill in what the caller left unset
case ${BENCH_PRESET:-} in
'') ;;
transaction)
	BENCH_MODE=${BENCH_MODE:-transaction}
	BENCH_PROTOCOL=${BENCH_PROTOCOL:-simple extended prepared}
	BENCH_CLIENTS=${BENCH_CLIENTS:-1 10 100}
	BENCH_POOL_SIZE=${BENCH_POOL_SIZE:-20}
	# 3 protocols x 3 client counts x 3 targets = 27 runs a round, 81 in 3 rounds; each
	# takes the duration + ~0.2 s, and PgBouncer 1.18's -M prepared runs at 10 and 100
	# clients fail within a second: 75 x 10.2 s = ~13 min, 14 at most (README)
	BENCH_DURATION=${BENCH_DURATION:-10}
	BENCH_ROUNDS=${BENCH_ROUNDS:-3}
	;;
*) die "unknown BENCH_PRESET '$BENCH_PRESET' (known: transaction)" ;;
esac

BENCH_CLIENTS=${BENCH_CLIENTS:-10 100}
BENCH_DURATION=${BENCH_DURATION:-10}
BENCH_ROUNDS=${BENCH_ROUNDS:-3}
BENCH_MODE=${BENCH_MODE:-session}
BENCH_PROTOCOL=${BENCH_PROTOCOL:-simple}
BENCH_TARGETS=${BENCH_TARGETS:-direct pgbouncer sluice}
BENCH_THREADS=${BENCH_THREADS:-2}
BENCH_SCALE=${BENCH_SCALE:-10}
BENCH_SERVER=${BENCH_SERVER:-tcp}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/src/sluice}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
BENCH_RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}

isint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

case $BENCH_MODE in session | transaction | statement) ;; *) die "BENCH_MODE must be session, transaction or statement" ;; esac
NP=0
for p in $BENCH_PROTOCOL; do
	case $p in simple | extended | prepared) NP=$((NP + 1)) ;; *) die "BENCH_PROTOCOL: '$p' is not simple, extended or prepared" ;; esac
done
[ "$NP" -gt 0 ] || die "BENCH_PROTOCOL is empty"
# shellcheck disable=SC2086,SC2116 # normalise the spacing (meta.env, the summary)
BENCH_PROTOCOL=$(echo $BENCH_PROTOCOL)
case $BENCH_SERVER in tcp | unix) ;; *) die "BENCH_SERVER must be tcp or unix" ;; esac
for v in BENCH_DURATION BENCH_ROUNDS BENCH_THREADS BENCH_SCALE; do
	if ! isint "${!v}" || [ "${!v}" -eq 0 ]; then die "$v must be a positive integer"; fi
done
MAXC=0
for c in $BENCH_CLIENTS; do
	if ! isint "$c" || [ "$c" -eq 0 ]; then die "BENCH_CLIENTS must be positive integers"; fi
	[ "$c" -gt "$MAXC" ] && MAXC=$c
done
[ "$MAXC" -gt 0 ] || die "BENCH_CLIENTS is empty"
POOL_SIZE=${BENCH_POOL_SIZE:-$MAXC}
isint "$POOL_SIZE" || die "BENCH_POOL_SIZE must be an integer"
for t in $BENCH_TARGETS; do
	case $t in direct | pgbouncer | sluice) ;; *) die "unknown target '$t' in BENCH_TARGETS" ;; esac
done

# what is missing gets installed by contrib/deps.sh when we can
need=
for b in initdb pg_ctl postgres psql pgbench; do [ -x "${PG_BINDIR:-/usr/lib/postgresql/15/bin}/$b" ] || need="$need $b"; done
case " $BENCH_TARGETS " in *" pgbouncer "*) [ -x "$PGBOUNCER_BIN" ] || need="$need pgbouncer" ;; esac
[ -x /usr/bin/python3 ] || command -v python3 >/dev/null 2>&1 || need="$need python3"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ] && [ -f "$ROOT/contrib/deps.sh" ]; then
		echo "bench: missing:$need; running contrib/deps.sh" >&2
		bash "$ROOT/contrib/deps.sh" || die "contrib/deps.sh failed"
	else
		echo "bench: missing:$need (install with: sudo bash contrib/deps.sh)" >&2
	fi
fi

# shellcheck source=contrib/pg-tmp.sh
. "$ROOT/contrib/pg-tmp.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=$(command -v python3 || true)
[ -x "$PG_BINDIR/pgbench" ] || die "$PG_BINDIR/pgbench not found (bash contrib/deps.sh)"
PGBENCH=$PG_BINDIR/pgbench
PSQL=$PG_BINDIR/psql
CLK_TCK=$(getconf CLK_TCK)

# libpq must not pick anything up from the caller's environment
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE \
	PGSERVICEFILE PGOPTIONS PGSSLMODE PGAPPNAME PGTARGETSESSIONATTRS PGREQUIRESSL

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$BENCH_RESULTS/$STAMP
mkdir -p "$OUT/logs" || die "cannot create $OUT"
RUNS=$OUT/runs.csv
echo "round,seq,target,clients,mode,protocol,duration_s,status,tps,transactions,failed_transactions,latency_ms,cpu_us,cpu_us_per_txn,note" >"$RUNS"

# bg_run CMD...: runs CMD in the background and waits for it, so that Ctrl-C acts at once:
# bash runs a trap only after a foreground child exits, and `timeout` puts pgbench in its
# own process group where Ctrl-C does not reach it; the wait builtin returns at once.
BG_PID=
bg_run() {
	"$@" &
	BG_PID=$!
	wait "$BG_PID"
	local rc=$?
	BG_PID=
	return "$rc"
}

FINISHED=0
exec 8>&1 9>&2 # the trap may run inside a redirected command; cleanup writes here
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	trap '' INT TERM
	exec 1>&8 2>&9
	local name
	[ -n "$BG_PID" ] && pgtmp_kill "$BG_PID" 5
	for name in "${!POOLER_PID[@]}"; do
		[ -n "${POOLER_PID[$name]}" ] && pgtmp_stop_pooler "${POOLER_PID[$name]}" 2
	done
	if [ -n "${PGTMP_DIR:-}" ]; then
		cp "$PGTMP_DIR"/*.log "$OUT/logs/" 2>/dev/null
		cp "$PGTMP_DIR"/*.ini "$OUT/logs/" 2>/dev/null
	fi
	pgtmp_cleanup
	if [ "$FINISHED" != 1 ]; then
		if [ -n "$PYTHON" ] && [ "$(wc -l <"$RUNS")" -gt 1 ]; then
			echo
			"$PYTHON" "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.txt"
		fi
		echo "bench: interrupted or failed; partial results in $OUT" >&2
	fi
}
declare -A POOLER_PID=() POOLER_PORT=() POOLER_ERR=() POOLER_STARTS=()
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# cpu_us PID: user+system CPU of PID and its descendants, in microseconds (-1 if gone).
cpu_us() {
	[ -r "/proc/$1/stat" ] || {
		echo -1
		return
	}
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" -v hz="$CLK_TCK" '
		{
			pid = $1; rest = $0
			sub(/^.*\) /, "", rest)          # comm may hold spaces and parens
			split(rest, f, " ")              # f[1]=state f[2]=ppid ... f[12]=utime f[13]=stime
			ppid[pid] = f[2]; t[pid] = f[12] + f[13]
		}
		END {
			# pid plus descendants (a pooler may fork workers)
			n = 1; q[1] = root; seen[root] = 1; total = 0
			for (i = 1; i <= n; i++) {
				total += t[q[i]]
				for (p in ppid) if (ppid[p] == q[i] && !(p in seen)) { seen[p] = 1; q[++n] = p }
			}
			printf "%.0f\n", total * 1000000 / hz
		}'
}

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- PostgreSQL
log "starting PostgreSQL 15 (max_connections for ${MAXC} clients + 2 pools)"
pgtmp_init sluice-bench || die "initdb failed"
pgtmp_conf "max_connections = $((MAXC + 2 * POOL_SIZE + 20))" \
	"shared_buffers = 256MB" \
	"fsync = off" "synchronous_commit = off" "full_page_writes = off" \
	"autovacuum = off" \
	"log_min_messages = warning" "log_connections = off"
bench_start_pg || die "PostgreSQL did not start"
log "PostgreSQL on $PGTMP_HOST:$PGTMP_PORT, data in $PGTMP_DIR"

# Run a copy of the sluice binary taken now: a rebuild of src/sluice while the bench runs
# (someone else at work in the tree) must not change what the later runs measure.
SLUICE_RUN=$SLUICE_BIN
if [ -f "$SLUICE_BIN" ] && [ -x "$SLUICE_BIN" ]; then
	mkdir -p "$PGTMP_DIR/bin" && chmod 755 "$PGTMP_DIR/bin" &&
		cp "$SLUICE_BIN" "$PGTMP_DIR/bin/sluice" && chmod 755 "$PGTMP_DIR/bin/sluice" &&
		SLUICE_RUN=$PGTMP_DIR/bin/sluice
fi

pgtmp_psql -d postgres -c "CREATE DATABASE bench" || die "createdb failed"
log "pgbench -i -s $BENCH_SCALE"
if ! bg_run "$PGBENCH" -i -q -s "$BENCH_SCALE" -h "$PGTMP_HOST" -p "$PGTMP_PORT" -U postgres bench \
	>"$PGTMP_DIR/pgbench-init.log" 2>&1; then
	cat "$PGTMP_DIR/pgbench-init.log" >&2
	die "pgbench -i failed"
fi
# pull the table into shared buffers / page cache so the first run is not cold
pgtmp_psql -d bench -Atc "SELECT count(*) FROM pgbench_accounts" >/dev/null

if [ "$BENCH_SERVER" = unix ]; then SERVER_HOST=$PGTMP_SOCKDIR; else SERVER_HOST=$PGTMP_HOST; fi
printf '"postgres" ""\n' >"$PGTMP_DIR/userlist.txt"
pgtmp_give "$PGTMP_DIR/userlist.txt"

# ---------------------------------------------------------------- poolers
# The same ini for both poolers (only the port differs): PgBouncer's format, unchanged.
# No max_prepared_statements: PgBouncer 1.18 refuses to start on a key it does not know
# ("unknown parameter: pgbouncer/max_prepared_statements", FATAL), so sluice runs with its
# default of 200 (prepared statements tracked in transaction mode, as PgBouncer 1.21+ does).
write_ini() { # NAME PORT
	cat >"$PGTMP_DIR/$1.ini" <<EOF
; written by bench/run.sh; identical for pgbouncer and sluice except listen_port
[databases]
bench = host=$SERVER_HOST port=$PGTMP_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $2
unix_socket_dir = $PGTMP_DIR
auth_type = trust
auth_file = $PGTMP_DIR/userlist.txt
pool_mode = $BENCH_MODE
default_pool_size = $POOL_SIZE
max_client_conn = $((MAXC + 50))
EOF
	pgtmp_give "$PGTMP_DIR/$1.ini"
}

# start_pooler NAME BIN: starts it (as the postgres user when we are root), waits for
# its port and checks a query goes through. Sets POOLER_ERR[NAME] on failure.
start_pooler() {
	local name=$1 bin=$2 port exe err
	POOLER_PID[$name]=
	POOLER_STARTS[$name]=$((${POOLER_STARTS[$name]:-0} + 1))
	if [ ! -x "$bin" ]; then
		POOLER_ERR[$name]="$bin not found or not executable"
		return 1
	fi
	exe=$(pgtmp_exe "$bin") || {
		POOLER_ERR[$name]="cannot make $bin runnable for $PGTMP_USER"
		return 1
	}
	# a fresh port on every start: a start that failed may have failed on the port
	port=$(bench_free_port) || {
		POOLER_ERR[$name]="no free port"
		return 1
	}
	POOLER_PORT[$name]=$port
	write_ini "$name" "$port"
	echo "---- start $(date +%H:%M:%S): $exe $name.ini" >>"$PGTMP_DIR/$name.log"
	pgtmp_spawn "$exe" "$PGTMP_DIR/$name.ini" </dev/null >>"$PGTMP_DIR/$name.log" 2>&1
	POOLER_PID[$name]=$PGTMP_LAST_PID
	if ! pgtmp_wait_port "$port" 10 "${POOLER_PID[$name]}"; then
		if pgtmp_alive "${POOLER_PID[$name]}"; then
			POOLER_ERR[$name]="not listening on 127.0.0.1:$port after 10s"
		else
			wait "${POOLER_PID[$name]}" 2>/dev/null
			err="exited at startup with status $?"
			POOLER_ERR[$name]="$err: $(last_error "$PGTMP_DIR/$name.log")"
			POOLER_ERR[$name]=${POOLER_ERR[$name]%: }
		fi
		pgtmp_stop_pooler "${POOLER_PID[$name]}" 2
		POOLER_PID[$name]=
		return 1
	fi
	if ! bg_run timeout -k 2 15 env PGCONNECT_TIMEOUT=5 "$PSQL" -X -Atq -h 127.0.0.1 -p "$port" \
		-U postgres -d bench -c "SELECT 1" >"$PGTMP_DIR/$name.check" 2>&1 ||
		[ "$(cat "$PGTMP_DIR/$name.check")" != 1 ]; then
		err=$(cat "$PGTMP_DIR/$name.check")
		POOLER_ERR[$name]="SELECT 1 through it failed: $(printf '%s' "$err" | tail -n 1)"
		pgtmp_stop_pooler "${POOLER_PID[$name]}" 2
		POOLER_PID[$name]=
		return 1
	fi
	POOLER_ERR[$name]=
	log "$name: pid ${POOLER_PID[$name]} on 127.0.0.1:$port ($exe)"
	return 0
}

# ensure_pooler NAME: running, or (re)started; at most 3 starts per pooler.
ensure_pooler() {
	local name=$1 bin
	if [ -n "${POOLER_PID[$name]:-}" ] && pgtmp_alive "${POOLER_PID[$name]}"; then
		return 0
	fi
	if [ -n "${POOLER_PID[$name]:-}" ]; then
		wait "${POOLER_PID[$name]}" 2>/dev/null
		POOLER_ERR[$name]="died (status $?): $(last_error "$PGTMP_DIR/$name.log")"
		log "$name (pid ${POOLER_PID[$name]}) ${POOLER_ERR[$name]}"
		POOLER_PID[$name]=
	fi
	[ "${POOLER_STARTS[$name]:-0}" -ge 3 ] && return 1
	if [ "$name" = sluice ]; then bin=$SLUICE_RUN; else bin=$PGBOUNCER_BIN; fi
	start_pooler "$name" "$bin" && return 0
	log "$name: ${POOLER_ERR[$name]}"
	return 1
}

# ---------------------------------------------------------------- runs
csvq() { printf '"%s"' "$(printf '%s' "$1" | tr '\n"' " '")"; }
SEQ=0

# run_one TARGET PROTOCOL CLIENTS ROUND
run_one() {
	local target=$1 proto=$2 c=$3 round=$4 port pid='' cpu0=-1 cpu1=-1 rc out j status note=''
	local tps='' txns='' failed='' lat='' cpu='' per='' what
	SEQ=$((SEQ + 1))
	out=$PGTMP_DIR/pgbench-$SEQ-$target-$proto-c$c-r$round.log
	what="round $round  $(printf '%-8s %-9s' "$proto" "$target") c=$(printf '%-4s' "$c")"
	j=$BENCH_THREADS
	[ "$j" -gt "$c" ] && j=$c
	if [ "$target" = direct ]; then
		port=$PGTMP_PORT
	else
		if ! ensure_pooler "$target"; then
			note="${POOLER_ERR[$target]:-did not start}"
			echo "$round,$SEQ,$target,$c,$BENCH_MODE,$proto,$BENCH_DURATION,failed,,,,,,,$(csvq "$note")" >>"$RUNS"
			log "$what FAILED ($note)"
			return
		fi
		port=${POOLER_PORT[$target]}
		pid=${POOLER_PID[$target]}
		cpu0=$(cpu_us "$pid")
	fi
	bg_run timeout -k 5 $((BENCH_DURATION + 60)) "$PGBENCH" -n -S -M "$proto" \
		-c "$c" -j "$j" -T "$BENCH_DURATION" -h 127.0.0.1 -p "$port" -U postgres bench \
		>"$out" 2>&1
	rc=$?
	[ -n "$pid" ] && cpu1=$(cpu_us "$pid")
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p' "$out" | head -n 1)
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out" | head -n 1)
	failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out" | head -n 1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$out" | head -n 1)
	if [ -n "$pid" ] && [ "$cpu0" -ge 0 ] && [ "$cpu1" -ge 0 ]; then
		cpu=$((cpu1 - cpu0))
		if [ -n "$txns" ] && [ "$txns" -gt 0 ]; then
			per=$(awk -v a="$cpu" -v b="$txns" 'BEGIN { printf "%.2f", a / b }')
		fi
	fi
	if [ "$rc" = 0 ] && [ -n "$tps" ] && [ -n "$txns" ] && [ "$txns" -gt 0 ]; then
		status=ok
	else
		status=failed
		case $rc in
		124 | 137) note="pgbench timed out (killed after $((BENCH_DURATION + 60))s)" ;;
		*) note="pgbench exit $rc: $(grep -iE 'error|fatal|abort|could not|failed' "$out" | grep -v '^number of failed' | head -n 1)" ;;
		esac
		[ -n "$pid" ] && ! pgtmp_alive "$pid" && note="$note; $target died"
	fi
	echo "$round,$SEQ,$target,$c,$BENCH_MODE,$proto,$BENCH_DURATION,$status,$tps,$txns,$failed,$lat,$cpu,$per,$(csvq "$note")" >>"$RUNS"
	if [ "$status" = ok ]; then
		log "$what tps=$(printf '%.0f' "$tps")${per:+  cpu=${per}us/txn}${failed:+  failed=$failed}"
	else
		log "$what FAILED ($note)"
	fi
}

# ---------------------------------------------------------------- meta
{
	echo "date=$(date -Is)"
	echo "host=$(uname -n)"
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	echo "cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "clients=$BENCH_CLIENTS"
	echo "duration_s=$BENCH_DURATION"
	echo "rounds=$BENCH_ROUNDS"
	echo "mode=$BENCH_MODE"
	echo "protocol=$BENCH_PROTOCOL"
	echo "targets=$BENCH_TARGETS"
	echo "pgbench_threads=$BENCH_THREADS"
	echo "scale=$BENCH_SCALE"
	echo "server_conn=$BENCH_SERVER"
	echo "pool_size=$POOL_SIZE"
	echo "postgres=$("$PG_BINDIR/postgres" --version)"
	echo "pgbouncer_bin=$PGBOUNCER_BIN"
	echo "pgbouncer=$("$PGBOUNCER_BIN" --version 2>/dev/null | head -n 1)"
	echo "sluice_bin=$SLUICE_BIN"
	echo "sluice_sha256=$(sha256sum 2>/dev/null <"$SLUICE_RUN" | cut -d' ' -f1)"
	# --no-optional-locks: never write .git/index (someone may be committing meanwhile)
	echo "sluice_git=$(git --no-optional-locks -C "$ROOT" describe --always --dirty 2>/dev/null)"
} >"$OUT/meta.env"

case $SLUICE_BIN in
*pgbouncer*) log "NOTE: SLUICE_BIN=$SLUICE_BIN: the 'sluice' rows are PgBouncer" ;;
esac

NT=$(echo "$BENCH_TARGETS" | wc -w)
NC=$(echo "$BENCH_CLIENTS" | wc -w)
EST=$((BENCH_ROUNDS * NP * NC * NT * (BENCH_DURATION + 1)))
log "$BENCH_ROUNDS rounds x $NP protocols x ${NC} client counts x $NT targets x ${BENCH_DURATION}s" \
	"(at most ~$((EST / 60))m$((EST % 60))s); mode=$BENCH_MODE protocol=$BENCH_PROTOCOL pool_size=$POOL_SIZE"
read -r -a TARGETS <<<"$BENCH_TARGETS"
T0=$(date +%s)
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
	for proto in $BENCH_PROTOCOL; do
		for c in $BENCH_CLIENTS; do
			# rotate the order each round so no target always runs first or last
			for ((k = 0; k < NT; k++)); do
				run_one "${TARGETS[$(((k + round - 1) % NT))]}" "$proto" "$c" "$round"
			done
		done
	done
done
echo "runs_elapsed_s=$(($(date +%s) - T0))" >>"$OUT/meta.env"

# ---------------------------------------------------------------- report
echo
if [ -n "$PYTHON" ]; then
	"$PYTHON" "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.txt"
else
	echo "python3 not found: raw results only" | tee "$OUT/summary.txt"
	column -s, -t "$RUNS" | tee -a "$OUT/summary.txt"
fi
ln -sfn "$STAMP" "$BENCH_RESULTS/latest" 2>/dev/null
echo
echo "results: $OUT (runs.csv, summary.json, summary.txt, logs/)"
FINISHED=1
exit 0
