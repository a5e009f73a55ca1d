#!/usr/bin/env bash
#
# bench/idle_clients.sh: resident memory per idle client. Starts a throwaway PostgreSQL,
# then each pooler in turn (sluice, PgBouncer) with the same ini, reads the pooler's
# VmRSS and RssAnon, logs in IDLE_CLIENTS clients that then stay idle, reads them again,
# and prints (after - before) / clients. `make bench-idle` runs it; see bench/README.md.
#
# Settings come from the environment or from KEY=VALUE arguments
# (bench/idle_clients.sh IDLE_CLIENTS=2000, or make bench-idle IDLE_CLIENTS=2000):
#   IDLE_CLIENTS      idle client connections             default 10000
#   IDLE_TARGETS      poolers, in this order               default "sluice pgbouncer"
#   IDLE_MODE         pool_mode                            default transaction
#   IDLE_POOL_SIZE    default_pool_size                    default 5
#   IDLE_SETTLE       seconds between the last login and the reading   default 3
#   IDLE_CONCURRENCY  logins in flight at a time           default 100
#   IDLE_INI_EXTRA    lines added to the [pgbouncer] section of both inis, e.g.
#                     IDLE_INI_EXTRA="pkt_buf = 1024" (PgBouncer 1.18 refuses unknown keys)
#   SLUICE_BIN        default src/sluice
#   PGBOUNCER_BIN     default /usr/sbin/pgbouncer
#   BENCH_RESULTS     where results go (idle-<date-time>/) default bench/results
#   PG_BINDIR         default /usr/lib/postgresql/15/bin

set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

usage() {
	sed -n '3,22p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}
for arg in "$@"; do
	case $arg in
	-h | --help) usage 0 ;;
	IDLE_*=* | BENCH_RESULTS=* | SLUICE_BIN=* | PGBOUNCER_BIN=* | PG_BINDIR=*) export "${arg?}" ;;
	*)
		echo "bench/idle_clients.sh: unknown argument '$arg'" >&2
		usage 2 >&2
		;;
	esac
done

IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
IDLE_TARGETS=${IDLE_TARGETS:-sluice pgbouncer}
IDLE_MODE=${IDLE_MODE:-transaction}
IDLE_POOL_SIZE=${IDLE_POOL_SIZE:-5}
IDLE_SETTLE=${IDLE_SETTLE:-3}
IDLE_CONCURRENCY=${IDLE_CONCURRENCY:-100}
IDLE_INI_EXTRA=${IDLE_INI_EXTRA:-}
SLUICE_BIN=${SLUICE_BIN:-$ROOT/src/sluice}
PGBOUNCER_BIN=${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}
BENCH_RESULTS=${BENCH_RESULTS:-$ROOT/bench/results}
PYTHON=/usr/bin/python3
TARGET_BYTES=1024 # issue 4: at most 1 KiB per idle client beyond the kernel's socket memory

die() {
	echo "bench-idle: $*" >&2
	exit 2
}
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
isint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }

for v in IDLE_CLIENTS IDLE_POOL_SIZE IDLE_CONCURRENCY; do
	if ! isint "${!v}" || [ "${!v}" -eq 0 ]; then die "$v must be a positive integer"; fi
done
isint "$IDLE_SETTLE" || die "IDLE_SETTLE must be a whole number of seconds"
case $IDLE_MODE in session | transaction | statement) ;; *) die "IDLE_MODE must be session, transaction or statement" ;; esac
if [ "$IDLE_MODE" = session ] && [ "$IDLE_CLIENTS" -gt "$IDLE_POOL_SIZE" ]; then
	log "NOTE: session mode holds a server connection per client; clients past the pool wait"
fi
for t in $IDLE_TARGETS; do
	case $t in sluice | pgbouncer) ;; *) die "unknown target '$t' in IDLE_TARGETS (sluice, pgbouncer)" ;; esac
done
[ -x "$PYTHON" ] || PYTHON=$(command -v python3) || die "python3 not found"

# ---------------------------------------------------------------- file descriptors
# The pooler holds one fd per client (plus servers, listeners, logs), and so does the
# client process; both inherit this shell's limit (setpriv keeps rlimits).
NEED_FD=$((IDLE_CLIENTS + 256))
soft=$(ulimit -Sn)
hard=$(ulimit -Hn)
if [ "$soft" != unlimited ] && [ "$soft" -lt "$NEED_FD" ]; then
	if [ "$hard" != unlimited ] && [ "$hard" -lt "$NEED_FD" ]; then
		if [ "$(id -u)" = 0 ]; then
			ulimit -Hn "$NEED_FD" || die "cannot raise the hard fd limit to $NEED_FD (fs.nr_open is $(cat /proc/sys/fs/nr_open))"
		else
			die "need $NEED_FD file descriptors, the hard limit is $hard: run as root or raise it (limits.conf)"
		fi
	fi
	ulimit -Sn "$NEED_FD" || die "cannot raise the fd limit to $NEED_FD"
fi
log "file descriptor limit: $(ulimit -Sn) (hard $(ulimit -Hn)), need $NEED_FD"
read -r port_lo port_hi </proc/sys/net/ipv4/ip_local_port_range
if [ $((port_hi - port_lo)) -lt $((IDLE_CLIENTS + 1000)) ]; then
	log "WARNING: ip_local_port_range $port_lo-$port_hi has fewer ports than $IDLE_CLIENTS clients need"
fi

# ---------------------------------------------------------------- setup
# shellcheck source=contrib/pg-tmp.sh
. "$ROOT/contrib/pg-tmp.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE \
	PGSERVICEFILE PGOPTIONS PGSSLMODE PGAPPNAME PGTARGETSESSIONATTRS PGREQUIRESSL

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$BENCH_RESULTS/idle-$STAMP
mkdir -p "$OUT/logs" || die "cannot create $OUT"
CSV=$OUT/idle.csv
echo "target,clients,clients_ok,login_s,vmrss_before_kb,vmrss_after_kb,vmrss_closed_kb,rssanon_before_kb,rssanon_after_kb,rssanon_closed_kb,vmrss_bytes_per_client,rssanon_bytes_per_client,fds_before,fds_after,sockstat_tcp_mem_before_pages,sockstat_tcp_mem_after_pages,slab_before_kb,slab_after_kb,status,note" >"$CSV"

CLIENT_PID=
POOLER=
FINISHED=0
exec 8>&1 9>&2
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	set +e
	trap '' INT TERM
	exec 1>&8 2>&9
	if [ -n "$CLIENT_PID" ]; then
		kill -TERM "$CLIENT_PID" 2>/dev/null
		pgtmp_kill "$CLIENT_PID" 10
	fi
	[ -n "$POOLER" ] && pgtmp_stop_pooler "$POOLER" 2
	if [ -n "${PGTMP_DIR:-}" ]; then
		cp "$PGTMP_DIR"/*.log "$PGTMP_DIR"/*.ini "$OUT/logs/" 2>/dev/null
	fi
	pgtmp_cleanup
	[ "$FINISHED" = 1 ] || echo "bench-idle: interrupted or failed; partial results in $OUT" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PAGE=$(getconf PAGESIZE)
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; } # PID FIELD
nfds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
tcp_mem_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
slab_kb() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
per_client() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f", (b - a) * 1024 / n; else print "" }'; } # BEFORE_KB AFTER_KB N

log "starting PostgreSQL 15"
pgtmp_init sluice-idle || die "initdb failed"
pgtmp_conf "max_connections = $((2 * IDLE_POOL_SIZE + 20))" "fsync = off" "autovacuum = off" \
	"log_min_messages = warning"
bench_start_pg || die "PostgreSQL did not start"
log "PostgreSQL on $PGTMP_HOST:$PGTMP_PORT, data in $PGTMP_DIR"
printf '"postgres" ""\n' >"$PGTMP_DIR/userlist.txt"
pgtmp_give "$PGTMP_DIR/userlist.txt"

# measure a copy taken now (src/sluice may be rebuilt by someone else meanwhile)
if [ -f "$SLUICE_BIN" ] && [ -x "$SLUICE_BIN" ]; then
	mkdir -p "$PGTMP_DIR/bin" && chmod 755 "$PGTMP_DIR/bin"
	cp "$SLUICE_BIN" "$PGTMP_DIR/bin/sluice" && chmod 755 "$PGTMP_DIR/bin/sluice"
	SLUICE_RUN=$PGTMP_DIR/bin/sluice
else
	SLUICE_RUN=$SLUICE_BIN
fi

{
	echo "date=$(date -Is)"
	echo "host=$(uname -n)"
	echo "kernel=$(uname -r)"
	echo "cpus=$(nproc)"
	echo "mem_total_kb=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)"
	echo "clients=$IDLE_CLIENTS"
	echo "targets=$IDLE_TARGETS"
	echo "mode=$IDLE_MODE"
	echo "pool_size=$IDLE_POOL_SIZE"
	echo "settle_s=$IDLE_SETTLE"
	echo "concurrency=$IDLE_CONCURRENCY"
	echo "ini_extra=$(printf '%s' "$IDLE_INI_EXTRA" | tr '\n' ';')"
	echo "fd_limit=$(ulimit -Sn)"
	echo "page_size=$PAGE"
	echo "postgres=$("$PG_BINDIR/postgres" --version)"
	echo "pgbouncer_bin=$PGBOUNCER_BIN"
	echo "pgbouncer=$("$PGBOUNCER_BIN" --version 2>/dev/null | head -n 1 || true)"
	echo "sluice_bin=$SLUICE_BIN"
	echo "sluice_sha256=$(sha256sum 2>/dev/null <"$SLUICE_RUN" | cut -d' ' -f1 || true)"
} >"$OUT/meta.env"

# ---------------------------------------------------------------- one pooler
# measure NAME BIN: appends one row to idle.csv; never exits the script on a failure of
# the pooler or of the clients (the row says failed and why).
measure() {
	local name=$1 bin=$2 exe port ini rss0 rss1 rss2 anon0 anon1 anon2 fd0 fd1 tcp0 tcp1
	local slab0 slab1 ok=0 login_s='' note='' status=ok ready i
	row() { # the csv row with whatever was measured so far
		echo "$name,$IDLE_CLIENTS,$ok,$login_s,${rss0:-},${rss1:-},${rss2:-},${anon0:-},${anon1:-},${anon2:-},$(per_client "${rss0:-0}" "${rss1:-0}" "${ok:-0}"),$(per_client "${anon0:-0}" "${anon1:-0}" "${ok:-0}"),${fd0:-},${fd1:-},${tcp0:-},${tcp1:-},${slab0:-},${slab1:-},$status,\"$(printf '%s' "$note" | tr '\n"' " '")\"" >>"$CSV"
	}
	failed() {
		status=failed note=$1
		log "$name: FAILED: $note"
		rss1='' anon1='' rss2='' anon2=''
		row
	}
	rss0='' rss1='' rss2='' anon0='' anon1='' anon2='' fd0='' fd1='' tcp0='' tcp1='' slab0='' slab1=''
	[ -x "$bin" ] || {
		failed "$bin not found or not executable"
		return 0
	}
	exe=$(pgtmp_exe "$bin") || {
		failed "cannot make $bin runnable for $PGTMP_USER"
		return 0
	}
	port=$(bench_free_port) || {
		failed "no free port"
		return 0
	}
	ini=$PGTMP_DIR/$name.ini
	# same ini for both poolers (PgBouncer 1.18 refuses unknown keys: nothing sluice-only)
	cat >"$ini" <<EOF
; written by bench/idle_clients.sh; identical for pgbouncer and sluice except listen_port
[databases]
postgres = host=$PGTMP_HOST port=$PGTMP_PORT dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $PGTMP_DIR
auth_type = trust
auth_file = $PGTMP_DIR/userlist.txt
pool_mode = $IDLE_MODE
default_pool_size = $IDLE_POOL_SIZE
max_client_conn = $((IDLE_CLIENTS + 100))
log_connections = 0
log_disconnections = 0
EOF
	[ -z "$IDLE_INI_EXTRA" ] || printf '%s\n' "$IDLE_INI_EXTRA" >>"$ini"
	pgtmp_give "$ini"
	log "$name: starting $exe on 127.0.0.1:$port"
	echo "---- start $(date +%H:%M:%S): $exe $name.ini" >>"$PGTMP_DIR/$name.log"
	pgtmp_spawn "$exe" "$ini" </dev/null >>"$PGTMP_DIR/$name.log" 2>&1
	POOLER=$PGTMP_LAST_PID
	if ! pgtmp_wait_port "$port" 10 "$POOLER"; then
		failed "did not listen on 127.0.0.1:$port: $(last_error "$PGTMP_DIR/$name.log")"
		pgtmp_stop_pooler "$POOLER" 2 || true
		POOLER=
		return 0
	fi
	# one login and query first, so the pool, its server connection and the code paths
	# of a login exist before the "before" reading
	if ! timeout -k 2 15 env PGCONNECT_TIMEOUT=5 "$PG_BINDIR/psql" -X -Atq -h 127.0.0.1 \
		-p "$port" -U postgres -d postgres -c "SELECT 1" >"$PGTMP_DIR/$name.check" 2>&1; then
		failed "SELECT 1 through it failed: $(tail -n 1 "$PGTMP_DIR/$name.check")"
		pgtmp_stop_pooler "$POOLER" 2 || true
		POOLER=
		return 0
	fi
	sleep 1
	rss0=$(status_kb "$POOLER" VmRSS) anon0=$(status_kb "$POOLER" RssAnon) fd0=$(nfds "$POOLER")
	tcp0=$(tcp_mem_pages) slab0=$(slab_kb)
	log "$name: pid $POOLER before: VmRSS ${rss0} kB, RssAnon ${anon0} kB, $fd0 fds; logging in $IDLE_CLIENTS clients"

	ready=$PGTMP_DIR/$name.clients.json
	"$PYTHON" "$ROOT/bench/idle_client.py" --port "$port" --clients "$IDLE_CLIENTS" \
		--concurrency "$IDLE_CONCURRENCY" --ready-file "$ready" --appname "idle-$name" \
		</dev/null >>"$PGTMP_DIR/$name.clients.log" 2>&1 &
	CLIENT_PID=$!
	i=0
	while [ ! -f "$ready" ] && pgtmp_alive "$CLIENT_PID" && pgtmp_alive "$POOLER" && [ "$i" -lt 3600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ ! -f "$ready" ]; then
		if ! pgtmp_alive "$POOLER"; then
			note="$name died while clients logged in: $(last_error "$PGTMP_DIR/$name.log")"
		else
			note="clients did not finish logging in: $(tail -n 2 "$PGTMP_DIR/$name.clients.log" | tr '\n' ' ')"
		fi
		pgtmp_kill "$CLIENT_PID" 5 || true
		CLIENT_PID=
		failed "$note"
		pgtmp_stop_pooler "$POOLER" 2 || true
		POOLER=
		return 0
	fi
	ok=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$ready")
	login_s=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["login_seconds"])' "$ready")
	log "$name: $ok/$IDLE_CLIENTS clients logged in in ${login_s}s; waiting ${IDLE_SETTLE}s"
	sleep "$IDLE_SETTLE"
	if ! pgtmp_alive "$POOLER"; then
		note="$name died with the clients connected: $(last_error "$PGTMP_DIR/$name.log")"
		pgtmp_kill "$CLIENT_PID" 5 || true
		CLIENT_PID=
		failed "$note"
		POOLER=
		return 0
	fi
	rss1=$(status_kb "$POOLER" VmRSS) anon1=$(status_kb "$POOLER" RssAnon) fd1=$(nfds "$POOLER")
	tcp1=$(tcp_mem_pages) slab1=$(slab_kb)
	log "$name: after: VmRSS ${rss1} kB, RssAnon ${anon1} kB, $fd1 fds;" \
		"$(per_client "$rss0" "$rss1" "$ok") B/client (VmRSS), $(per_client "$anon0" "$anon1" "$ok") B/client (RssAnon)"

	kill -TERM "$CLIENT_PID" 2>/dev/null || true
	wait "$CLIENT_PID" 2>/dev/null || true
	CLIENT_PID=
	sleep 2
	if pgtmp_alive "$POOLER"; then
		rss2=$(status_kb "$POOLER" VmRSS) anon2=$(status_kb "$POOLER" RssAnon)
	fi
	if [ "$ok" -lt "$IDLE_CLIENTS" ]; then
		status=partial
		note="only $ok of $IDLE_CLIENTS logged in ($("$PYTHON" -c 'import json,sys; print("; ".join(f"{n} x {m}" for m, n in json.load(open(sys.argv[1]))["errors"].items()))' "$ready")); per-client figures are over $ok"
	fi
	row
	pgtmp_stop_pooler "$POOLER" 3 || true
	POOLER=
}

for t in $IDLE_TARGETS; do
	if [ "$t" = sluice ]; then measure sluice "$SLUICE_RUN"; else measure pgbouncer "$PGBOUNCER_BIN"; fi
done

# ---------------------------------------------------------------- report
"$PYTHON" - "$OUT" "$TARGET_BYTES" <<'EOF' | tee "$OUT/summary.txt"
import csv, json, sys
from pathlib import Path
out, target = Path(sys.argv[1]), int(sys.argv[2])
meta = dict(l.split("=", 1) for l in (out / "meta.env").read_text().splitlines() if "=" in l)
rows = list(csv.DictReader(open(out / "idle.csv", newline="")))
page = int(meta.get("page_size", 4096))
def i(v):
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return None
print(f"idle clients: {meta['clients']} per pooler, pool_mode={meta['mode']}, "
      f"pool_size={meta['pool_size']}, read {meta['settle_s']}s after the last login; "
      f"{meta['cpus']} CPUs, kernel {meta['kernel']}")
fmt = "{:<10} {:>11} {:>8} {:>11} {:>11} {:>10} {:>11} {:>11} {:>10} {:>12}"
print(fmt.format("pooler", "logged in", "login s", "VmRSS kB", "after kB", "B/client",
                 "RssAnon kB", "after kB", "B/client", "closed kB"))
for r in rows:
    if r["status"] == "failed":
        print(fmt.format(r["target"], "FAILED", *["-"] * 8))
        continue
    print(fmt.format(r["target"], f"{r['clients_ok']}/{r['clients']}", r["login_s"],
                     r["vmrss_before_kb"], r["vmrss_after_kb"], r["vmrss_bytes_per_client"],
                     r["rssanon_before_kb"], r["rssanon_after_kb"], r["rssanon_bytes_per_client"],
                     r["vmrss_closed_kb"] or "-"))
print("B/client = (after - before) / clients logged in; closed = VmRSS 2s after the clients left")
print("kernel, for context (both ends of each loopback connection, whole machine):")
for r in rows:
    n = i(r["clients_ok"])
    if r["status"] == "failed" or not n:
        continue
    t0, t1, s0, s1 = (i(r[k]) for k in ("sockstat_tcp_mem_before_pages", "sockstat_tcp_mem_after_pages",
                                        "slab_before_kb", "slab_after_kb"))
    parts = []
    if t0 is not None and t1 is not None:
        parts.append(f"/proc/net/sockstat TCP mem {t0} -> {t1} pages "
                     f"({(t1 - t0) * page / n:+.0f} B/connection)")
    if s0 is not None and s1 is not None:
        parts.append(f"Slab {s0} -> {s1} kB ({(s1 - s0) * 1024 / n:+.0f} B/connection)")
    print(f"  {r['target']:<10} " + "; ".join(parts))
print(f"fds: " + ", ".join(f"{r['target']} {r['fds_before']} -> {r['fds_after']}"
                          for r in rows if r["status"] != "failed"))
for r in rows:
    if r["note"]:
        print(f"{r['target']}: {r['status']}: {r['note']}")
for r in rows:
    if r["target"] == "sluice" and r["status"] != "failed":
        b = i(r["vmrss_bytes_per_client"])
        if b is not None:
            print(f"sluice: {b} B of VmRSS per idle client; issue 4 target <= {target} B: "
                  f"{'met' if b <= target else 'NOT met'}")
json.dump({"meta": meta, "rows": rows}, open(out / "summary.json", "w"), indent=2)
EOF
ln -sfn "idle-$STAMP" "$BENCH_RESULTS/latest-idle" 2>/dev/null || true
echo
echo "results: $OUT (idle.csv, summary.json, summary.txt, meta.env, logs/)"
FINISHED=1
