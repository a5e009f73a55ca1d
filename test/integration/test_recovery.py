"""Servers that stop answering or go away: server_connect_timeout against a backend
that accepts TCP but never speaks (and never against a long query), idle servers
closed by PostgreSQL leaving the pool at once (no CLOSE_WAIT), and recovery after a
PostgreSQL restart under load, with a short login backoff instead of a fixed
server_login_retry."""

import socket
import subprocess
import threading
import time

import psycopg
import pytest

import admin_util as au
import helpers


class SilentServer:
    """A TCP listener that accepts connections and never sends a byte: a database
    host that is up at the TCP level but never answers a login."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted.append(conn)

    def count(self):
        with self.lock:
            return len(self.accepted)

    def open_count(self):
        """Accepted connections the peer has not closed yet (what it sent, its
        startup packet, is read and dropped to get to the end of the stream)."""
        n = 0
        with self.lock:
            for c in self.accepted:
                c.setblocking(False)
                try:
                    while c.recv(4096):
                        pass
                    continue  # EOF: closed by the pooler
                except BlockingIOError:
                    n += 1
                except OSError:
                    continue
        return n

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        with self.lock:
            for c in self.accepted:
                c.close()


@pytest.fixture
def silent_server():
    s = SilentServer()
    yield s
    s.close()


# ---------------------------------------------------------------------------
# server_connect_timeout: connect and login only
# ---------------------------------------------------------------------------

@pytest.mark.sluice_only("PgBouncer 1.18 keeps the client waiting for its whole connect_timeout")
@pytest.mark.hard_timeout(90)
def test_connect_timeout_gives_up_on_silent_server(make_pooler, pg, silent_server):
    p = au.make_admin_pooler(
        make_pooler,
        databases={"silent": "host=127.0.0.1 port=%d dbname=x" % silent_server.port,
                   "testdb": pg.dbentry("testdb")},
        settings={"server_connect_timeout": 1.5, "server_login_retry": 30})
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(dbname="silent", connect_timeout=60)
    elapsed = time.monotonic() - t0
    text = helpers.error_text(ei.value)
    assert "server_connect_timeout" in text, text
    assert elapsed >= 1.0, "gave up after %.2f s, before server_connect_timeout" % elapsed
    # a correctness bound: without the timeout the client waits for its own 60 s
    assert elapsed < 30, elapsed
    helpers.wait_for(lambda: silent_server.open_count() == 0, 10, 0.05,
                     "the pooler to close the silent connection")
    # the pool is down: clients get the error at once until the next try (after a
    # short backoff), and SHOW SERVERS says "down" for the server of that try
    with au.console(p) as adm:
        for _ in range(50):
            t, r = au.run_in_thread(lambda: p.connect(dbname="silent", connect_timeout=60))
            row = helpers.wait_for(
                lambda: au.row_for(adm, "SHOW SERVERS", database="silent") or "v" in r,
                30, 0.02, "a server of database silent, or an error")
            t.join(30)
            assert isinstance(r.get("v"), psycopg.OperationalError), r
            if row is not True:
                break
        assert row is not True, "no new try on the silent server"
        assert row["host_health"] == "down", row
    # other databases are not affected
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_connect_timeout_never_cuts_a_query(make_pooler, mode):
    p = make_pooler(settings={"server_connect_timeout": 1, "pool_mode": mode})
    with p.connect() as c:
        assert c.execute("select pg_sleep(2.5), 1").fetchone()[1] == 1
        assert c.execute("begin") is not None
        assert c.execute("select pg_sleep(1.5), 2").fetchone()[1] == 2
        c.execute("commit")


# ---------------------------------------------------------------------------
# idle servers closed by PostgreSQL
# ---------------------------------------------------------------------------

def idle_after_reset(pg, pid):
    with pg.connect() as c:
        r = c.execute("select state, query from pg_stat_activity where pid = %s", (pid,)).fetchone()
        return r is not None and r[0] == "idle" and r[1] == "DISCARD ALL"


def close_wait_sockets(pid):
    """Lines of `ss -tanp` for sockets in CLOSE-WAIT owned by pid."""
    out = subprocess.run(["ss", "-tanp"], capture_output=True, text=True, timeout=30).stdout
    return [line for line in out.splitlines()
            if line.startswith("CLOSE-WAIT") and "pid=%d," % pid in line]


@pytest.mark.sluice_only("SHOW SERVERS of sluice; PgBouncer 1.18 keeps the rows until the next use")
def test_idle_servers_killed_by_postgres_leave_the_pool(make_pooler, pg):
    p = au.make_admin_pooler(make_pooler, settings={"default_pool_size": 3})
    conns = [au.client(p) for _ in range(3)]
    pids = [au.backend_pid(c) for c in conns]
    for c in conns:
        c.close()
    for pid in pids:
        helpers.wait_for(lambda: idle_after_reset(pg, pid), 10, 0.05, "server %d idle in the pool" % pid)
    with au.console(p) as adm:
        assert len(au.rows_for(adm, "SHOW SERVERS", database="testdb")) == 3
        with pg.connect() as c:
            for pid in pids:
                assert c.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        helpers.wait_for(lambda: not au.rows_for(adm, "SHOW SERVERS", database="testdb"), 10, 0.05,
                         "the killed servers to leave SHOW SERVERS")
    helpers.wait_for(lambda: not set(pids) & set(pg.backend_pids(dbname="testdb")), 10, 0.05,
                     "the killed backends to be gone")
    assert close_wait_sockets(p.proc.pid) == []
    with au.client(p) as c:
        assert au.backend_pid(c) not in pids
        assert c.execute("select 1").fetchone()[0] == 1


# ---------------------------------------------------------------------------
# PostgreSQL restart
# ---------------------------------------------------------------------------

class Load:
    """Client threads running 'select 1' in a loop, reconnecting after an error;
    every attempt is recorded as (start, end, ok, error text)."""

    def __init__(self, p, n, dbname="testdb"):
        self.p = p
        self.dbname = dbname
        self.stop = threading.Event()
        self.ops = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = au.client(self.p, dbname=self.dbname, connect_timeout=60)
                conn.execute("select 1").fetchone()
                ok, err = True, None
            except psycopg.Error as e:
                ok, err = False, str(e)
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.ops.append((t0, time.monotonic(), ok, err))
            if not ok:
                time.sleep(0.02)
        if conn is not None:
            conn.close()

    def snapshot(self):
        with self.lock:
            return list(self.ops)

    def successes_after(self, t):
        return [o for o in self.snapshot() if o[2] and o[0] >= t]

    def finish(self, timeout):
        self.stop.set()
        for t in self.threads:
            t.join(timeout)
        return not any(t.is_alive() for t in self.threads)


@pytest.mark.sluice_only("PgBouncer refuses every client for the whole server_login_retry")
@pytest.mark.hard_timeout(240)
def test_postgres_restart_recovers_quickly(make_pooler, pg):
    p = make_pooler(
        databases={"testdb": pg.dbentry("testdb"), "benchdb": pg.dbentry("benchdb")},
        settings={"pool_mode": "transaction", "default_pool_size": 4, "server_login_retry": 30,
                  "query_wait_timeout": 60, "max_client_conn": 200})
    script = helpers.write_file(p.dir / "select1.sql", "select 1;\n")
    load = Load(p, 6)
    bench = None
    restarted = False
    try:
        helpers.wait_for(lambda: len(load.successes_after(0)) >= 30, 30, 0.05, "the load to run")
        bench = subprocess.Popen(
            [helpers.PGBENCH, "-n", "-c", "4", "-j", "2", "-T", "20", "-f", str(script),
             "-h", p.host, "-p", str(p.port), "-U", "app", "benchdb"],
            env=helpers.clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        t_down = time.monotonic()
        pg.stop_fast()
        # down for a moment: every client gets an error, none waits
        helpers.wait_for(lambda: any(not o[2] and o[0] >= t_down for o in load.snapshot()),
                         30, 0.05, "clients to get errors while PostgreSQL is down")
        # down long enough for the refusals' backoff to grow past 6 s (0.1 s doubling):
        # retrying only when that backoff ends would come back ~12 s late
        time.sleep(12)
        pg.start_again()
        restarted = True
        t_up = time.monotonic()
        helpers.wait_for(lambda: load.successes_after(t_up), 60, 0.05,
                         "a query to succeed after the restart")
        first_ok = min(o[1] for o in load.successes_after(t_up))
        # a fixed server_login_retry (30 s) wait, or the grown backoff, would serve nobody
        # for many seconds; the background probe runs at least once a second
        assert first_ok - t_up < 5, "first success %.1f s after PostgreSQL was back" % (first_ok - t_up)
        # every client is served again, not only the lucky first
        helpers.wait_for(lambda: len(load.successes_after(first_ok + 0.5)) >= 30, 30, 0.05,
                         "the load to run again")
    finally:
        if not restarted and not pg.started:
            pg.start_again()
        all_done = load.finish(60)
        bench_out = bench.communicate(timeout=90)[0] if bench else ""
    assert all_done, "a client thread hung"
    ops = load.snapshot()
    errors = [o for o in ops if not o[2]]
    assert errors, "no client noticed the restart"
    slowest = max(o[1] - o[0] for o in ops)
    # a hang bound, far above normal (milliseconds), below query_wait_timeout (60 s)
    assert slowest < 20, "a client waited %.1f s for an answer" % slowest
    # pgbench ended by itself (communicate() above would have timed out on a hang); its
    # clients may have aborted on the restart's errors
    assert bench.returncode is not None and "aborted" in bench_out or "processed" in bench_out, bench_out
    # the pool is healthy afterwards
    with p.connect() as c:
        assert c.execute("select 42").fetchone()[0] == 42
