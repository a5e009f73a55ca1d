"""Process signals: SIGTERM (graceful), SIGINT (let queries finish), SIGQUIT
(immediate)."""

import signal
import threading
import time

import psycopg
import pytest

import helpers


def try_connect(p):
    try:
        with p.connect(connect_timeout=5) as c:
            c.execute("select 1")
            return True
    except psycopg.OperationalError:
        return False


@pytest.mark.sluice_only("1.18 SIGTERM is an immediate shutdown")
@pytest.mark.hard_timeout(60)
def test_sigterm_waits_for_clients(make_pooler):
    p = make_pooler()
    c = p.connect()
    try:
        c.execute("select 1")
        p.signal(signal.SIGTERM)
        # new connections are refused ...
        helpers.wait_for(lambda: not try_connect(p), 10, 0.1, "new connections to be refused")
        # ... while the connected client keeps working and the process stays
        for i in range(3):
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i
            time.sleep(0.3)
        assert p.running(), "exited while a client was still connected"
    finally:
        c.close()
    rc = p.wait_exit(15)
    assert rc is not None, "did not exit after the last client left"
    assert rc == 0, "exit status %s after SIGTERM" % rc


def test_sigterm_idle_exits(make_pooler):
    p = make_pooler()
    with p.connect() as c:
        c.execute("select 1")
    p.signal(signal.SIGTERM)
    rc = p.wait_exit(15)
    assert rc is not None, "did not exit on SIGTERM with no clients"


@pytest.mark.hard_timeout(60)
def test_sigquit_exits_at_once(make_pooler):
    p = make_pooler()
    c = p.connect()
    try:
        c.execute("select 1")
        p.signal(signal.SIGQUIT)
        assert p.wait_exit(10) is not None, "did not exit on SIGQUIT with a client connected"
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
    finally:
        c.close()


def _run_in_thread(fn):
    res = {}

    def run():
        try:
            res["v"] = fn()
        except Exception as e:
            res["v"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, res


def _wait_query_running(pg, pid):
    def active():
        with pg.connect() as a:
            r = a.execute("select state, query from pg_stat_activity where pid = %s", (pid,)).fetchone()
            return r is not None and r[0] == "active" and "pg_sleep" in r[1]
    helpers.wait_for(active, 10, 0.05, "query to be running")


@pytest.mark.hard_timeout(60)
def test_sigint_lets_running_query_finish(make_pooler, pg):
    p = make_pooler()
    c = p.connect()
    try:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        t, res = _run_in_thread(lambda: c.execute("select pg_sleep(2), 'finished'").fetchone()[1])
        _wait_query_running(pg, pid)
        p.signal(signal.SIGINT)
        t.join(30)
        assert res.get("v") == "finished", res
    finally:
        c.close()
    assert p.wait_exit(15) is not None, "did not exit after SIGINT once the query finished"


@pytest.mark.sluice_only("1.18 SIGINT is PAUSE+SHUTDOWN: waits for session-mode clients to disconnect")
@pytest.mark.hard_timeout(60)
def test_sigint_exits_after_query_without_client_leaving(make_pooler, pg):
    p = make_pooler()
    c = p.connect()
    try:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        t, res = _run_in_thread(lambda: c.execute("select pg_sleep(2), 'finished'").fetchone()[1])
        _wait_query_running(pg, pid)
        p.signal(signal.SIGINT)
        t.join(30)
        assert res.get("v") == "finished", res
        assert p.wait_exit(15) is not None, "still running after the active query finished"
    finally:
        c.close()


def test_sighup_is_not_fatal(make_pooler):
    p = make_pooler()
    with p.connect() as c:
        p.reload()
        time.sleep(0.2)
        assert p.running()
        assert c.execute("select 1").fetchone()[0] == 1
