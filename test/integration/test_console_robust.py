"""Console robustness and shutdown details (issue 9, items 5 and 11).

- A console pipeline of any length is answered in full, one command at a time, while
  other clients are served and sluice's output buffer for the console stays bounded
  (it stops reading a console that does not read its replies).
- The console stays reachable during every shutdown mode; SHUTDOWN WAIT_FOR_SERVERS
  turns away clients that need a server; SET *_tls_sslmode = disable is accepted.

See admin_util.py for the console users (alice admin, bob stats)."""

import collections
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import threading

import psycopg
import pytest

import admin_util as au
import helpers

PIPELINE = 100_000  # pipelined console queries after the big one
BIG = 16 * 1024  # the first console message: grows the input buffer


def q_msg(sql):
    return b"Q" + struct.pack("!I", len(sql) + 5) + sql + b"\0"


def pipeline():
    """The 16 KB message, then PIPELINE queries: ';' (empty) and 'SHOW VERSION;'."""
    parts = [q_msg(b"SHOW " + b"x" * BIG + b";")]
    versions = 0
    for i in range(PIPELINE):
        if i % 3 == 0:
            parts.append(q_msg(b"SHOW VERSION;"))
            versions += 1
        else:
            parts.append(q_msg(b";"))
    return b"".join(parts), versions


def count_replies(sock, ready_wanted):
    """Reads messages until ready_wanted ReadyForQuery; returns a Counter of types.
    (pgproto.RawConn re-slices its buffer per message: too slow for 100,000.)"""
    counts = collections.Counter()
    buf = bytearray()
    pos = 0
    while counts["Z"] < ready_wanted:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("console closed after %r" % dict(counts))
        buf += chunk
        while len(buf) - pos >= 5:
            (length,) = struct.unpack_from("!I", buf, pos + 1)
            if len(buf) - pos < 1 + length:
                break
            counts[chr(buf[pos])] += 1
            pos += 1 + length
        del buf[:pos]
        pos = 0
    return counts


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


@au.sluice_only("1.18 drops a console message longer than pkt_buf: 'incomplete pkt'")
@pytest.mark.hard_timeout(180)
def test_console_long_pipeline_answered_and_bounded(make_pooler):
    p = au.make_admin_pooler(make_pooler)
    au.warm_pool(p)
    data, versions = pipeline()
    # unix socket: its kernel buffers are small, so replies that the client does not
    # read pile up in sluice unless sluice stops taking commands
    con = helpers.pgproto.RawConn(str(p.sockdir), p.port, timeout=120)
    con.startup(user=au.STATS, database="pgbouncer")
    rss_before = rss_kb(p.proc.pid)
    sent = {}

    def write():
        try:
            con.sock.sendall(data)
            sent["v"] = True
        except BaseException as e:  # noqa: B902 - reported below
            sent["v"] = e

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    # the console reads none of its replies yet: sluice must neither die nor buffer
    # them all, and must go on serving everyone else
    writer.join(3)
    for _ in range(3):
        with au.client(p) as c:
            assert c.execute("select 'served'").fetchone()[0] == "served"
        with au.console(p) as adm:
            assert au.show(adm, "VERSION")[1]
    assert p.running(), "sluice died: " + p.output()[-3000:]
    grown = rss_kb(p.proc.pid) - rss_before
    # (unbounded, the replies held would be about 4 MB; ASan's quarantine keeps freed
    # memory resident, so there RSS says nothing)
    if "ASAN_OPTIONS" not in os.environ:
        assert grown < 2048, "RSS grew by %d kB while the console did not read" % grown
    counts = count_replies(con.sock, PIPELINE + 1)
    writer.join(30)
    assert sent.get("v") is True, sent
    assert counts["E"] == 1, counts  # the 16 KB one: command too long
    assert counts["I"] == PIPELINE - versions, counts  # EmptyQueryResponse per ';'
    assert counts["D"] == versions, counts
    assert counts["Z"] == PIPELINE + 1, counts
    # and the console is still usable
    con.sock.settimeout(10)
    assert con.query("SHOW VERSION")
    con.close()
    assert p.running()


# ---------------------------------------------------------------------------
# Shutdown: the console during a drain, clients that need a server
# ---------------------------------------------------------------------------

def console_reachable(p):
    """A new console login over TCP and over the unix socket, each answering SHOW."""
    for unix in (False, True):
        with au.console(p, unix=unix, connect_timeout=5) as adm:
            _, rows = au.show(adm, "POOLS")
            assert any(r["database"] == "testdb" for r in rows), rows


def start_drain(p, how):
    au.expect_exit(p, how)
    if how in ("SIGINT", "SIGTERM"):
        p.signal(getattr(signal, how))
    else:
        with au.console(p) as adm:
            assert au.command(adm, how) == "SHUTDOWN"


def refused(p):
    try:
        with au.client(p, connect_timeout=5) as c:
            c.execute("select 1")
            return False
    except psycopg.OperationalError:
        return True


@pytest.mark.parametrize("how", ["SHUTDOWN WAIT_FOR_SERVERS", "SIGINT"])
@au.sluice_only("1.18 has no WAIT_FOR_SERVERS and closes its listeners")
@pytest.mark.hard_timeout(60)
def test_console_reachable_while_queries_drain(make_pooler, pg, how):
    p = au.make_admin_pooler(make_pooler)
    c = au.client(p)
    try:
        pid = au.backend_pid(c)
        t, r = au.run_in_thread(lambda: c.execute("select pg_sleep(5), 'finished'").fetchone()[1])
        au.wait_query_running(pg, pid)
        start_drain(p, how)
        console_reachable(p)
        assert refused(p), "an ordinary client was let in during the drain"
        console_reachable(p)
        assert "v" not in r, "the query ended before the console was checked: %r" % r
        assert au.finished(t, r, 15) and r["v"] == "finished", r
        assert p.wait_exit(10) == 0, "did not exit cleanly once the query finished"
    finally:
        c.close()


@pytest.mark.parametrize("how", ["SHUTDOWN WAIT_FOR_CLIENTS", "SIGTERM"])
@au.sluice_only("1.18 has no WAIT_FOR_CLIENTS, and SIGTERM exits at once")
@pytest.mark.hard_timeout(60)
def test_console_reachable_while_clients_drain(make_pooler, how):
    p = au.make_admin_pooler(make_pooler)
    c = au.client(p)
    try:
        c.execute("select 1")
        start_drain(p, how)
        console_reachable(p)
        assert refused(p), "an ordinary client was let in during the drain"
        assert c.execute("select 'still'").fetchone()[0] == "still"
        console_reachable(p)
        assert p.running(), "exited while a client was connected"
    finally:
        c.close()
    assert p.wait_exit(10) == 0, "did not exit cleanly after the last client left"


@au.sluice_only("1.18 exits on SHUTDOWN without answering it")
@pytest.mark.hard_timeout(60)
def test_console_answers_immediate_shutdown(make_pooler):
    # SHUTDOWN exits at once: the console that asked still gets its answer
    p = au.make_admin_pooler(make_pooler)
    au.expect_exit(p)
    con = p.raw_login(user=au.ADMIN, database="pgbouncer", password=au.ADMIN_PW)
    con.query("SHUTDOWN")
    assert p.wait_exit(10) == 0


def shutting_down_error(fn):
    """Runs fn (a query) and returns the error text it must fail with."""
    with pytest.raises(psycopg.OperationalError) as ei:
        fn()
    return helpers.error_text(ei.value)


@au.sluice_only("1.18 has no SHUTDOWN WAIT_FOR_SERVERS (PgBouncer 1.23)")
@pytest.mark.hard_timeout(60)
def test_wait_for_servers_refuses_clients_needing_a_server(make_pooler, pg):
    p = au.make_admin_pooler(make_pooler, settings={"default_pool_size": 2,
                                                    "query_wait_timeout": 60})
    au.warm_pool(p)
    busy, holder, later = au.client(p), au.client(p), au.client(p)
    waiter = au.client(p)
    adm = au.console(p)
    try:
        pid = au.backend_pid(busy)
        t, r = au.run_in_thread(lambda: busy.execute("select pg_sleep(5), 'finished'").fetchone()[1])
        au.wait_query_running(pg, pid)
        holder.execute("select 1")  # session mode: keeps the second server, idle
        # the pool is full: this one waits in the queue when the shutdown starts
        tw, rw = au.run_in_thread(lambda: waiter.execute("select 'waited'").fetchone()[0])
        helpers.wait_for(lambda: au.stat(adm, "SHOW POOLS", "testdb", "cl_waiting") == 1,
                         10, 0.05, "a client waiting for a server")
        au.expect_exit(p)
        assert au.command(adm, "SHUTDOWN WAIT_FOR_SERVERS") == "SHUTDOWN"
        assert au.finished(tw, rw, 10), "the waiting client still waits"
        assert isinstance(rw["v"], psycopg.OperationalError), rw
        assert "server shutting down" in helpers.error_text(rw["v"])
        # a client with no server, and one holding an idle server, each ask for one
        for cl in (later, holder):
            text = shutting_down_error(lambda: cl.execute("select 'new'"))
            assert "server shutting down" in text, text
        assert "v" not in r, "the running query should still run: %r" % r
        assert au.finished(t, r, 15) and r["v"] == "finished", r
        assert p.wait_exit(10) == 0
    finally:
        for cl in (busy, holder, later, waiter, adm):
            cl.close()


@pytest.mark.parametrize("key", ["server_tls_sslmode", "client_tls_sslmode"])
@au.sluice_only("PgBouncer 1.18 supports TLS")
def test_set_tls_sslmode(make_pooler, key):
    p = au.make_admin_pooler(make_pooler)
    with au.console(p) as adm:
        assert au.command(adm, "SET %s = disable" % key) == "SET"
        assert au.command(adm, "SET %s = 'disable'" % key) == "SET"
        for bad in ("require", "verify-full"):
            with pytest.raises(psycopg.Error) as ei:
                adm.execute("SET %s = %s" % (key, bad))
            text = helpers.error_text(ei.value)
            assert "TLS" in text and bad in text, text
        assert au.show(adm, "VERSION")[1]


# ---------------------------------------------------------------------------
# contrib/test.sh
# ---------------------------------------------------------------------------

@au.sluice_only("runs sluice's own contrib/test.sh")
@pytest.mark.hard_timeout(600)
def test_test_sh_passes_pytest_args_unsplit(tmp_path):
    # in a copy of the built tree, so this run's tree is left alone; an expression with
    # blanks must reach pytest as one argument (make split it: "or" became a path)
    tree = tmp_path / "tree"
    shutil.copytree(helpers.REPO, tree, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache"))
    expr = "test_help_lists_flags or test_unknown_flag_fails"
    r = subprocess.run(["bash", "contrib/test.sh", "--", "-k", expr, "-p", "no:cacheprovider"],
                       cwd=str(tree), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=helpers.clean_env(), timeout=540)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out[-4000:]
    assert re.search(r"\b2 passed\b", out), out[-4000:]


# ---------------------------------------------------------------------------
# contrib/quickstart.sh: its banner's commands work as printed
# ---------------------------------------------------------------------------

def banner_of(out_path, proc, timeout=60):
    def ready():
        if proc.poll() is not None:
            raise AssertionError("quickstart exited %s:\n%s" % (proc.returncode, out_path.read_text()))
        return "Ctrl-C stops" in out_path.read_text() and "LOG sluice" in out_path.read_text()
    helpers.wait_for(ready, timeout, 0.2, "the quickstart banner and sluice started")
    return out_path.read_text()


def run_banner_cmd(line, env, timeout=60):
    """Runs a command line copied from the banner (psql/pgbench from PG_BINDIR)."""
    argv = shlex.split(line)
    argv[0] = {"psql": helpers.PSQL, "pgbench": helpers.PGBENCH}[argv[0]]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


@au.sluice_only("runs sluice's own contrib/quickstart.sh")
@pytest.mark.parametrize("mode", ["session", "transaction"])
@pytest.mark.hard_timeout(300)
def test_quickstart_banner_commands(tmp_path, mode):
    out_path = tmp_path / "quickstart.out"
    env = helpers.clean_env(SLUICE_PORT=helpers.free_port(), SLUICE_BIN=helpers.POOLER_BIN,
                            QUICKSTART_DEPS="never", QUICKSTART_MODE=mode)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(["bash", str(helpers.REPO / "contrib" / "quickstart.sh")],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True)
    try:
        text = banner_of(out_path, proc)
        console = re.search(r'^\s*admin console:\s+(psql "[^"]*")', text, re.M)
        assert console, "no admin console line in the banner:\n" + text
        rc, out = run_banner_cmd(console.group(1) + " -c 'SHOW POOLS;'", env)
        assert rc == 0 and "cl_active" in out, out
        pw = re.search(r"export PGPASSWORD=(\S+)", text).group(1)
        benv = dict(env, PGPASSWORD=pw)
        init = re.search(r"^\s*(pgbench -i .*)$", text, re.M).group(1)
        rc, out = run_banner_cmd(init, benv)
        assert rc == 0, out
        # every client it starts runs all along: none waits for a server the pool will
        # not have until the others stop (pgbench's per-transaction log says who ran)
        run = re.search(r"^\s*(pgbench -S .*)$", text, re.M).group(1).replace("-T 10", "-T 3")
        clients = int(re.search(r"-c (\d+)", run).group(1))
        prefix = tmp_path / "pgb"
        rc, out = run_banner_cmd(run + " -l --log-prefix=%s" % prefix, benv, timeout=90)
        assert rc == 0, out
        assert "number of clients: %d" % clients in out, out
        assert "number of failed transactions: 0" in out, out
        per_client = collections.Counter()
        for log in tmp_path.glob("pgb.*"):
            for line in log.read_text().splitlines():
                per_client[int(line.split()[0])] += 1
        assert len(per_client) == clients, per_client
        most = max(per_client.values())
        assert min(per_client.values()) * 10 >= most, "some clients hardly ran: %r" % per_client
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # its trap stops sluice and PostgreSQL
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
