"""Admin console control commands: PAUSE/RESUME, DISABLE/ENABLE, RECONNECT,
WAIT_CLOSE, KILL, KILL_CLIENT, RELOAD, SHUTDOWN [WAIT_FOR_CLIENTS|WAIT_FOR_SERVERS],
SUSPEND, SET.

Session mode throughout: a client gets its server at its first query and keeps it
until it disconnects.  Waiting clients run their query in a thread (bounded joins);
"does not complete while paused" is checked over PENDING seconds."""

import re

import psycopg
import pytest

import admin_util as au
import helpers

PENDING = 0.8  # how long a blocked query must stay blocked
DONE = 10  # how long an unblocked query may take to finish


def two_db_pooler(make_pooler, pg, settings=None):
    return au.make_admin_pooler(
        make_pooler,
        databases={"testdb": pg.dbentry("testdb"), "otherdb": pg.dbentry("otherdb")},
        settings=dict({"query_wait_timeout": 30}, **(settings or {})))


def new_client_query(p, dbname="testdb", sql="select 'served'"):
    """Connect and run one query, then leave (for a thread)."""
    with au.client(p, dbname=dbname, connect_timeout=20) as c:
        return c.execute(sql).fetchone()[0]


def tag_ok(tag, word):
    if helpers.IS_PGBOUNCER and word == "SET":
        return tag is not None and tag.startswith("SET")  # 1.18: "SET key=value"
    return tag == word


def paused_col(conn, db):
    r = au.row_for(conn, "SHOW DATABASES", name=db)
    return au.as_int(r["paused"])


# ---------------------------------------------------------------------------
# PAUSE / RESUME
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(60)
def test_pause_resume_all(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    au.warm_pool(p)  # see test_first_client_holds_no_server_before_query
    early = au.client(p)  # connected before PAUSE, no server yet (session mode)
    try:
        with au.console(p) as adm:
            assert au.command(adm, "PAUSE") == "PAUSE"
            t1, r1 = au.run_in_thread(lambda: au.query_then_close(early, "select 'early'"))
            t2, r2 = au.run_in_thread(lambda: new_client_query(p, "otherdb"))
            assert au.still_pending(t1, r1, PENDING), "query ran while paused: %r" % r1
            assert "v" not in r2, "new client's query ran while paused: %r" % r2
            # the console keeps working while paused
            assert au.show(adm, "POOLS")[0]
            assert au.command(adm, "RESUME") == "RESUME"
            assert au.finished(t1, r1, DONE) and r1["v"] == "early", r1
            assert au.finished(t2, r2, DONE) and r2["v"] == "served", r2
        assert au.can_connect(p)
    finally:
        early.close()


@pytest.mark.hard_timeout(60)
def test_first_client_holds_no_server_before_query(make_pooler, pg):
    """Session mode: a client gets its server at its first query, also the very
    first client of a fresh pool (whose login may need a server for the
    parameters, but must not keep it): PAUSE returns at once."""
    p = two_db_pooler(make_pooler, pg)
    first = au.client(p)  # fresh pool, no query
    try:
        with au.console(p) as adm:
            linked = [s for s in au.rows_for(adm, "SHOW SERVERS", database="testdb") if s["link"]]
            assert not linked, "a server is linked to a client that ran no query: %s" % linked
            assert au.command(adm, "PAUSE", timeout=5) == "PAUSE"
            assert au.command(adm, "RESUME") == "RESUME"
        assert first.execute("select 1").fetchone()[0] == 1
    finally:
        first.close()


@pytest.mark.hard_timeout(60)
@pytest.mark.parametrize("cmd", ["PAUSE", "PAUSE testdb"])
def test_pause_waits_for_servers_in_use(make_pooler, pg, cmd):
    p = two_db_pooler(make_pooler, pg)
    busy = au.client(p)
    busy.execute("select 1")  # session mode: holds its server until it leaves
    adm = au.console(p)
    try:
        t, r = au.run_in_thread(lambda: au.command(adm, cmd))
        assert au.still_pending(t, r, PENDING), "PAUSE returned while a server was in use: %r" % r
        # another console is not blocked by the pending PAUSE
        with au.console(p) as adm2:
            assert au.row_for(adm2, "SHOW POOLS", database="testdb", user="app") is not None
        # the client holding the server keeps working until it leaves
        assert busy.execute("select 2").fetchone()[0] == 2
        busy.close()
        assert au.finished(t, r, DONE) and r["v"] == "PAUSE", r
        assert au.command(adm, cmd.replace("PAUSE", "RESUME")) == "RESUME"
        assert au.can_connect(p)
    finally:
        busy.close()
        adm.close()


@pytest.mark.hard_timeout(60)
def test_pause_db_ignores_other_databases_servers(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    busy_other = au.client(p, dbname="otherdb")
    try:
        busy_other.execute("select 1")  # holds an otherdb server
        with au.console(p) as adm:
            assert au.command(adm, "PAUSE testdb", timeout=5) == "PAUSE"
            assert busy_other.execute("select 2").fetchone()[0] == 2
            assert au.command(adm, "RESUME testdb") == "RESUME"
    finally:
        busy_other.close()


@pytest.mark.hard_timeout(60)
def test_pause_one_database(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    au.warm_pool(p)
    early = au.client(p)
    try:
        with au.console(p) as adm:
            assert au.command(adm, "PAUSE testdb") == "PAUSE"
            assert paused_col(adm, "testdb") == 1
            assert paused_col(adm, "otherdb") == 0
            t, r = au.run_in_thread(lambda: au.query_then_close(early, "select 'early'"))
            # the other database is not paused
            t2, r2 = au.run_in_thread(lambda: new_client_query(p, "otherdb"))
            assert au.finished(t2, r2, DONE) and r2["v"] == "served", r2
            assert "v" not in r, "query on the paused database ran: %r" % r
            assert au.still_pending(t, r, PENDING / 2)
            assert au.command(adm, "RESUME testdb") == "RESUME"
            assert au.finished(t, r, DONE) and r["v"] == "early", r
            assert paused_col(adm, "testdb") == 0
    finally:
        early.close()


# ---------------------------------------------------------------------------
# DISABLE / ENABLE
# ---------------------------------------------------------------------------

def test_disable_enable(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    existing = au.client(p)
    existing.execute("select 1")
    with au.console(p) as adm:
        assert au.command(adm, "DISABLE testdb") == "DISABLE"
        r = au.row_for(adm, "SHOW DATABASES", name="testdb")
        assert au.as_int(r["disabled"]) == 1, r
        with pytest.raises(psycopg.OperationalError) as ei:
            au.client(p, connect_timeout=5)
        msg = helpers.error_text(ei.value)
        assert "disabled" in msg, msg
        # other databases are not affected, nor clients already in
        assert au.can_connect(p, dbname="otherdb")
        assert existing.execute("select 2").fetchone()[0] == 2
        existing.close()
        assert au.command(adm, "ENABLE testdb") == "ENABLE"
        assert au.as_int(au.row_for(adm, "SHOW DATABASES", name="testdb")["disabled"]) == 0
    assert au.can_connect(p)


# ---------------------------------------------------------------------------
# RECONNECT / WAIT_CLOSE
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["RECONNECT", "RECONNECT testdb"])
def test_reconnect_closes_idle_server(make_pooler, pg, cmd):
    p = two_db_pooler(make_pooler, pg)
    with au.client(p) as c:
        pid1 = au.backend_pid(c)
    # back in the pool, idle
    helpers.wait_for(lambda: pid1 in pg.backend_pids(dbname="testdb"), 5, 0.05, "idle pooled server")
    with au.console(p) as adm:
        assert au.command(adm, cmd) == "RECONNECT"
    au.wait_gone(pg, pid1, 10, "idle server %d to be closed after %s" % (pid1, cmd))
    with au.client(p) as c:
        assert au.backend_pid(c) != pid1


@pytest.mark.hard_timeout(60)
def test_reconnect_replaces_server_after_use(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    busy = au.client(p)
    other = au.client(p, dbname="otherdb")
    try:
        pid1 = au.backend_pid(busy)
        pid_other = au.backend_pid(other)
        with au.console(p) as adm:
            assert au.command(adm, "RECONNECT testdb") == "RECONNECT"
            sv = au.row_for(adm, "SHOW SERVERS", remote_pid=pid1)
            assert sv is not None and au.as_int(sv["close_needed"]) == 1, sv
            # in use: not closed under the client
            assert au.backend_pid(busy) == pid1
            busy.close()
            au.wait_gone(pg, pid1, 10, "server %d to be closed once its client left" % pid1)
            with au.client(p) as c:
                assert au.backend_pid(c) != pid1
            # RECONNECT testdb left otherdb alone
            assert au.backend_pid(other) == pid_other
            other.close()
            assert pid_other in pg.backend_pids(dbname="otherdb")
    finally:
        busy.close()
        other.close()


@pytest.mark.hard_timeout(60)
@pytest.mark.parametrize("cmd", ["WAIT_CLOSE", "WAIT_CLOSE testdb"])
def test_wait_close(make_pooler, pg, cmd):
    p = two_db_pooler(make_pooler, pg)
    busy = au.client(p)
    adm = au.console(p)
    try:
        pid1 = au.backend_pid(busy)
        assert au.command(adm, "RECONNECT") == "RECONNECT"
        t, r = au.run_in_thread(lambda: au.command(adm, cmd))
        assert au.still_pending(t, r, PENDING), "%s returned while the marked server is in use: %r" % (cmd, r)
        busy.close()
        assert au.finished(t, r, DONE) and r["v"] == "WAIT_CLOSE", r
        # the socket is closed when WAIT_CLOSE returns; the backend exits just after
        au.wait_gone(pg, pid1, 5, "WAIT_CLOSE returned before the server was closed")
    finally:
        busy.close()
        adm.close()


@pytest.mark.hard_timeout(60)
def test_wait_close_db_ignores_other_databases(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    busy_other = au.client(p, dbname="otherdb")
    try:
        pid_other = au.backend_pid(busy_other)
        with au.client(p) as c:
            pid_test = au.backend_pid(c)
        with au.console(p) as adm:
            assert au.command(adm, "RECONNECT") == "RECONNECT"
            # testdb's server was idle: closed at once, so WAIT_CLOSE testdb does not wait
            assert au.command(adm, "WAIT_CLOSE testdb", timeout=5) == "WAIT_CLOSE"
            assert pid_test not in pg.backend_pids()
            assert au.backend_pid(busy_other) == pid_other
    finally:
        busy_other.close()


def test_wait_close_nothing_marked(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    with au.client(p) as c:
        c.execute("select 1")
        with au.console(p) as adm:
            assert au.command(adm, "WAIT_CLOSE") == "WAIT_CLOSE"


# ---------------------------------------------------------------------------
# KILL / KILL_CLIENT
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(60)
def test_kill_database(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    victim = au.client(p)
    idle_victim = au.client(p)  # connected, never ran a query
    other = au.client(p, dbname="otherdb")
    try:
        pid1 = au.backend_pid(victim)
        pid_other = au.backend_pid(other)
        with au.console(p) as adm:
            assert au.command(adm, "KILL testdb") == "KILL"
            with pytest.raises(psycopg.OperationalError):
                victim.execute("select 1")
            with pytest.raises(psycopg.OperationalError):
                idle_victim.execute("select 1")
            au.wait_gone(pg, pid1, 10, "the killed database's server to be closed")
            # other databases untouched
            assert au.backend_pid(other) == pid_other
            # new clients of the killed database wait until RESUME
            t, r = au.run_in_thread(lambda: new_client_query(p))
            assert au.still_pending(t, r, PENDING), "new client served after KILL before RESUME: %r" % r
            assert au.command(adm, "RESUME testdb") == "RESUME"
            assert au.finished(t, r, DONE) and r["v"] == "served", r
    finally:
        for c in (victim, idle_victim, other):
            c.close()


@au.sluice_only("1.18 requires a database name for KILL")
@pytest.mark.hard_timeout(60)
def test_kill_all(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    a = au.client(p)
    b = au.client(p, dbname="otherdb")
    try:
        pids = [au.backend_pid(a), au.backend_pid(b)]
        with au.console(p) as adm:
            assert au.command(adm, "KILL") == "KILL"
        for c in (a, b):
            with pytest.raises(psycopg.OperationalError):
                c.execute("select 1")
        for pid in pids:
            au.wait_gone(pg, pid, 10)
        t, r = au.run_in_thread(lambda: new_client_query(p, "otherdb"))
        assert au.still_pending(t, r, PENDING), "new client served after KILL before RESUME: %r" % r
        # the console is still reachable (and not paused)
        with au.console(p, connect_timeout=5) as adm:
            assert au.command(adm, "RESUME") == "RESUME"
        assert au.finished(t, r, DONE) and r["v"] == "served", r
    finally:
        a.close()
        b.close()


@au.sluice_only("1.18 has no KILL_CLIENT (PgBouncer 1.24)")
def test_kill_client(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    conns = [au.client(p, application_name="kc-%d" % i) for i in range(3)]
    try:
        for c in conns:
            c.execute("select 1")
        with au.console(p) as adm:
            row = au.row_for(adm, "SHOW CLIENTS", application_name="kc-1")
            assert row is not None, au.show(adm, "CLIENTS")[1]
            cid = row["id"]
            assert au.command(adm, "KILL_CLIENT %s" % cid) == "KILL_CLIENT"
            with pytest.raises(psycopg.OperationalError):
                conns[1].execute("select 1")
            for i in (0, 2):
                assert conns[i].execute("select %d" % i).fetchone()[0] == i
            helpers.wait_for(lambda: au.row_for(adm, "SHOW CLIENTS", application_name="kc-1") is None,
                             5, 0.05, "killed client to leave SHOW CLIENTS")
            # an unknown id is an error, the console stays usable
            with pytest.raises(psycopg.Error):
                adm.execute("KILL_CLIENT 999999999")
            assert au.show(adm, "VERSION")[1]
        # no pause after KILL_CLIENT
        assert au.can_connect(p)
    finally:
        for c in conns:
            c.close()


# ---------------------------------------------------------------------------
# RELOAD
# ---------------------------------------------------------------------------

def test_reload_good_file(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    with au.console(p) as adm:
        assert au.row_for(adm, "SHOW DATABASES", name="newdb") is None
        p.databases["newdb"] = pg.dbentry("benchdb")
        p.settings["default_pool_size"] = "3"
        p.write_files()
        assert au.command(adm, "RELOAD") == "RELOAD"
        # RELOAD has taken effect when it answers
        assert au.row_for(adm, "SHOW DATABASES", name="newdb") is not None
        assert au.config_value(adm, "default_pool_size") == "3"
    with au.client(p, dbname="newdb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "benchdb"


@au.sluice_only("1.18 answers RELOAD without an error and resets settings to defaults on a broken file")
def test_reload_broken_file(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    held = au.client(p)
    try:
        held.execute("select 1")
        good = p.ini.read_text()
        header = "[%s]\n" % p.main_section
        bad = good.replace(header, header + "this line is broken\n")
        line = [i for i, ln in enumerate(bad.splitlines(), 1) if "this line is broken" in ln][0]
        p.write_raw_ini(bad)
        with au.console(p) as adm:
            with pytest.raises(psycopg.Error) as ei:
                adm.execute("RELOAD")
            msg = helpers.error_text(ei.value)
            assert "%s:%d" % (p.ini, line) in msg or "pooler.ini:%d" % line in msg, msg
            # console still usable, old config in force
            assert au.config_value(adm, "auth_type") == "trust"
            assert au.row_for(adm, "SHOW DATABASES", name="otherdb") is not None
            assert held.execute("select 2").fetchone()[0] == 2
            assert au.can_connect(p)
            assert au.can_connect(p, dbname="otherdb")
            # a fixed file reloads
            p.write_raw_ini(good.replace("[databases]\n", "[databases]\nlater = %s\n" % pg.dbentry("benchdb")))
            assert au.command(adm, "RELOAD") == "RELOAD"
            assert au.can_connect(p, dbname="later")
        assert p.running()
    finally:
        held.close()


# ---------------------------------------------------------------------------
# SHUTDOWN
# ---------------------------------------------------------------------------

def _send_shutdown(adm, cmd):
    """The console may answer with the tag or drop the connection (exiting)."""
    try:
        return au.command(adm, cmd)
    except psycopg.OperationalError as e:
        return e


@pytest.mark.hard_timeout(60)
def test_shutdown_immediate(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    c = au.client(p)
    try:
        c.execute("select 1")
        au.expect_exit(p)
        with au.console(p) as adm:
            res = _send_shutdown(adm, "SHUTDOWN")
            assert res == "SHUTDOWN" or isinstance(res, psycopg.OperationalError), res
        rc = p.wait_exit(10)
        assert rc is not None, "still running 10 s after SHUTDOWN with a client connected"
        assert rc == 0, "exit status %s after SHUTDOWN" % rc
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
    finally:
        c.close()


@au.sluice_only("1.18 has no SHUTDOWN WAIT_FOR_CLIENTS (PgBouncer 1.23)")
@pytest.mark.hard_timeout(60)
def test_shutdown_wait_for_clients(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    c = au.client(p)
    adm = au.console(p)
    try:
        c.execute("select 1")
        au.expect_exit(p)
        assert au.command(adm, "SHUTDOWN WAIT_FOR_CLIENTS") == "SHUTDOWN"
        helpers.wait_for(lambda: not au.can_connect(p, timeout=3), 10, 0.1,
                         "new clients to be refused after SHUTDOWN WAIT_FOR_CLIENTS")
        # the connected client keeps working, the process stays
        for i in range(3):
            assert c.execute("select %d" % i).fetchone()[0] == i
        assert p.running(), "exited while a client was still connected"
        adm.close()
        assert p.wait_exit(0.5) is None, "exited while a client was still connected"
        c.close()
        rc = p.wait_exit(10)
        assert rc is not None, "did not exit after the last client left"
        assert rc == 0, "exit status %s" % rc
    finally:
        c.close()
        adm.close()


@au.sluice_only("1.18 has no SHUTDOWN WAIT_FOR_SERVERS (PgBouncer 1.23)")
@pytest.mark.hard_timeout(60)
def test_shutdown_wait_for_servers(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    c = au.client(p)
    adm = au.console(p)
    try:
        pid = au.backend_pid(c)
        t, r = au.run_in_thread(lambda: c.execute("select pg_sleep(1.5), 'finished'").fetchone()[1])
        au.wait_query_running(pg, pid)
        au.expect_exit(p)
        assert au.command(adm, "SHUTDOWN WAIT_FOR_SERVERS") == "SHUTDOWN"
        assert au.still_pending(t, r, 0.3)
        assert p.running(), "exited while a query was running"
        assert au.finished(t, r, DONE) and r["v"] == "finished", r
        # no query running any more: exits although the clients are still connected
        rc = p.wait_exit(10)
        assert rc is not None, "still running after the last query finished"
        assert rc == 0, "exit status %s" % rc
    finally:
        c.close()
        adm.close()


# ---------------------------------------------------------------------------
# SUSPEND / RESUME
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(60)
def test_suspend_resume(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    c = au.client(p)
    adm = au.console(p)
    try:
        c.execute("select 1")
        assert au.command(adm, "SUSPEND") == "SUSPEND"
        t, r = au.run_in_thread(lambda: c.execute("select 'after'").fetchone()[0])
        assert au.still_pending(t, r, PENDING), "query progressed while suspended: %r" % r
        assert au.command(adm, "RESUME") == "RESUME"
        assert au.finished(t, r, DONE) and r["v"] == "after", r
        assert au.can_connect(p)
    finally:
        c.close()
        adm.close()


# ---------------------------------------------------------------------------
# SET
# ---------------------------------------------------------------------------

@pytest.mark.hard_timeout(60)
def test_set_default_pool_size(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg, settings={"default_pool_size": 1})
    with au.console(p) as adm:
        assert tag_ok(au.command(adm, "SET default_pool_size = 7"), "SET")
        assert au.config_value(adm, "default_pool_size") == "7"
        assert tag_ok(au.command(adm, "set default_pool_size=2;"), "SET")
        assert au.config_value(adm, "default_pool_size") == "2"
    # in effect: two clients hold servers at once
    a = au.client(p)
    b = au.client(p)
    try:
        a.execute("select 1")
        t, r = au.run_in_thread(lambda: b.execute("select 'second'").fetchone()[0])
        assert au.finished(t, r, 5) and r["v"] == "second", \
            "second server not opened after SET default_pool_size=2: %r" % r
    finally:
        a.close()
        b.close()


def test_set_unknown_key(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    with au.console(p) as adm:
        with pytest.raises(psycopg.Error):
            adm.execute("SET no_such_setting = 1")
        assert au.show(adm, "VERSION")[1]
        with pytest.raises(psycopg.Error):
            adm.execute("SET default_pool_size = notanumber")
        assert au.config_value(adm, "default_pool_size") == "5"


@au.sluice_only("1.18 accepts SET listen_port (applied at restart)")
def test_set_restart_only_key(make_pooler, pg):
    p = two_db_pooler(make_pooler, pg)
    with au.console(p) as adm:
        with pytest.raises(psycopg.Error) as ei:
            adm.execute("SET listen_port = 1")
        assert re.search("restart", helpers.error_text(ei.value), re.I), helpers.error_text(ei.value)
        assert au.config_value(adm, "listen_port") == str(p.port)
    assert au.can_connect(p)


def test_reload_keeps_pause_and_disable(make_pooler, pg):
    # PAUSE and DISABLE are the operator's, not the file's: a RELOAD keeps them
    p = two_db_pooler(make_pooler, pg)
    with au.console(p) as adm:
        assert au.command(adm, "PAUSE testdb") == "PAUSE"
        assert au.command(adm, "DISABLE otherdb") == "DISABLE"
        assert au.command(adm, "RELOAD") == "RELOAD"
        assert paused_col(adm, "testdb") == 1
        assert au.as_int(au.row_for(adm, "SHOW DATABASES", name="otherdb")["disabled"]) == 1
        assert au.command(adm, "RESUME testdb") == "RESUME"
        assert au.command(adm, "ENABLE otherdb") == "ENABLE"
    assert au.can_connect(p) and au.can_connect(p, dbname="otherdb")
