# shellcheck shell=bash
#
# bench/lib.sh: helpers shared by bench/run.sh and bench/idle_clients.sh. Source it after
# contrib/pg-tmp.sh.

# bench_free_port: prints a TCP port for a listener, outside the kernel's ephemeral range
# (net.ipv4.ip_local_port_range, usually 32768-60999) and used by no socket at all.
# pgtmp_free_port draws from 20000-59999 and checks listeners only: a port it picks can
# be the local end of an outgoing connection (pgbench, a test suite running next to us,
# which takes ports from the kernel), and bind() then fails with "Address already in use".
bench_free_port() {
	local lo=32768 p n=0 span
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
	if [ "$lo" -le 11024 ]; then # no room below the ephemeral range: fall back
		pgtmp_free_port
		return
	fi
	span=$((lo - 10000))
	while [ "$n" -lt 200 ]; do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
		if command -v ss >/dev/null 2>&1; then
			# any state: listening, connected, TIME-WAIT
			if [ -z "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then
				echo "$p"
				return 0
			fi
		elif ! pgtmp_port_busy "$p"; then
			echo "$p"
			return 0
		fi
		n=$((n + 1))
	done
	echo "bench: no free port found below $lo" >&2
	return 1
}

# bench_start_pg: pgtmp_start on a port from bench_free_port, up to 5 tries.
bench_start_pg() {
	local try port
	for try in 1 2 3 4 5; do
		port=$(bench_free_port) || return 1
		pgtmp_start "$port" && return 0
		echo "bench: PostgreSQL did not start on port $port (try $try of 5)" >&2
	done
	return 1
}

# last_error LOG: the last ERROR/FATAL/PANIC line of a pooler's log since its last
# "---- start" marker, or its last line when there is none ("sluice exiting" says less
# than the error before it).
last_error() {
	awk '/^---- start/ { e = ""; last = ""; next }
		{ last = $0 } / (ERROR|FATAL|PANIC) / { e = $0 }
		END { print (e != "" ? e : last) }' "$1" 2>/dev/null
}
