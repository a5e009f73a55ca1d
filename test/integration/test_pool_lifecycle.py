"""A pool's servers over their life: min_pool_size kept warm, the reserve pool opened
after reserve_pool_timeout and closed again, one connect in flight per pool
(server_connect_concurrency), server_round_robin, server_check_query before reuse and
in the background, server_lifetime closings spread out, and servers of a database
changed by RELOAD closed when released (or at once with server_fast_close)."""

import re
import threading
import time
from datetime import datetime

import psycopg
import pytest

import admin_util as au
import helpers
from test_recovery import SilentServer


def servers(pg, app):
    """(pid, state, query) of the backends whose application_name is app."""
    with pg.connect() as c:
        return c.execute(
            "select pid, state, query from pg_stat_activity where application_name = %s "
            "and backend_type = 'client backend'", (app,)).fetchall()


def n_servers(pg, app):
    return len(servers(pg, app))


def pids(pg, app):
    return {r[0] for r in servers(pg, app)}


def query_of(pg, pid):
    with pg.connect() as c:
        r = c.execute("select state, query from pg_stat_activity where pid = %s", (pid,)).fetchone()
        return r


# ---------------------------------------------------------------------------
# min_pool_size
# ---------------------------------------------------------------------------

@pytest.mark.sluice_only("1.18 opens min_pool_size servers only for a pool with clients (1.21 also "
                         "for forced users)")
@pytest.mark.hard_timeout(90)
def test_min_pool_size_forced_user_without_clients(make_pooler, pg):
    # As PgBouncer: a database with a forced user gets its pool, and min_pool_size
    # servers, before any client comes.
    p = make_pooler(databases={
        "warm": pg.dbentry("testdb", user="bob", application_name="lc_warm", min_pool_size=3)})
    helpers.wait_for(lambda: n_servers(pg, "lc_warm") == 3, 30, 0.1, "3 warm servers")
    time.sleep(1.5)  # and no more than that
    assert n_servers(pg, "lc_warm") == 3
    before = pids(pg, "lc_warm")
    with p.connect(dbname="warm") as c:
        assert au.backend_pid(c) in before
        assert c.execute("select current_user").fetchone()[0] == "bob"
    # killed servers come back, with no client asking for them
    with pg.connect() as su:
        for pid in before:
            su.execute("select pg_terminate_backend(%s)", (pid,))
    helpers.wait_for(lambda: n_servers(pg, "lc_warm") == 3 and not (pids(pg, "lc_warm") & before),
                     30, 0.1, "3 new warm servers after the old ones were killed")


@pytest.mark.hard_timeout(90)
def test_min_pool_size_with_clients_and_idle_timeout(make_pooler, pg):
    # Without a forced user the pool is kept at min_pool_size while it has clients,
    # and server_idle_timeout never takes it below.
    p = make_pooler(databases={"testdb": pg.dbentry("testdb", application_name="lc_min")},
                    settings={"min_pool_size": 3, "server_idle_timeout": 1,
                              "pool_mode": "transaction"})
    time.sleep(1.5)
    assert n_servers(pg, "lc_min") == 0, "servers opened for a pool nobody used"
    holder = au.client(p)
    try:
        holder.execute("select 1")
        helpers.wait_for(lambda: n_servers(pg, "lc_min") == 3, 30, 0.1, "min_pool_size servers")
        # more servers for a burst, then back to min_pool_size, not below
        burst = [au.client(p) for _ in range(2)]
        for c in burst:
            c.execute("begin")
        holder.execute("begin")
        helpers.wait_for(lambda: n_servers(pg, "lc_min") == 3, 10, 0.1, "3 servers in use")
        extra = au.client(p)
        extra.execute("begin")
        helpers.wait_for(lambda: n_servers(pg, "lc_min") == 4, 10, 0.1, "a 4th server")
        for c in burst + [extra]:
            c.execute("commit")
            c.close()
        holder.execute("commit")
        helpers.wait_for(lambda: n_servers(pg, "lc_min") == 3, 30, 0.1,
                         "server_idle_timeout down to min_pool_size")
        time.sleep(2.5)
        assert n_servers(pg, "lc_min") == 3
    finally:
        holder.close()


# ---------------------------------------------------------------------------
# reserve_pool_size / reserve_pool_timeout
# ---------------------------------------------------------------------------

def hold_session(p, done, release, dbname="testdb"):
    """Thread body: connect, run a query (session mode: the server is now the
    client's), note when it was served, keep the session until release is set."""
    try:
        with p.connect(dbname=dbname, connect_timeout=60) as c:
            c.execute("select 1")
            done["at"] = time.monotonic()
            release.wait(60)
    except Exception as e:  # noqa: B902 - reported to the test
        done["error"] = e


@pytest.mark.sluice_only("PgBouncer keeps reserve servers until server_idle_timeout")
@pytest.mark.hard_timeout(120)
def test_reserve_pool(make_pooler, pg):
    p = make_pooler(databases={"testdb": pg.dbentry("testdb", application_name="lc_res")},
                    settings={"default_pool_size": 2, "reserve_pool_size": 1,
                              "reserve_pool_timeout": 1.5, "query_wait_timeout": 60})
    h1, h2 = p.connect(), p.connect()
    threads = []
    try:
        h1.execute("select 1")
        h2.execute("select 1")
        assert n_servers(pg, "lc_res") == 2
        third, third_go = {}, threading.Event()
        t0 = time.monotonic()
        threads.append(threading.Thread(target=hold_session, args=(p, third, third_go)))
        threads[-1].start()
        helpers.wait_for(lambda: third, 30, 0.05, "the third client to be served from the reserve")
        assert "error" not in third, third
        waited = third["at"] - t0
        assert waited >= 1.0, "served after %.2f s: the reserve opened before reserve_pool_timeout" % waited
        assert n_servers(pg, "lc_res") == 3
        assert re.search(r"taking connection from reserve_pool", p.log())
        # pool (2) plus reserve (1) in use: a fourth client waits
        fourth, fourth_go = {}, threading.Event()
        threads.append(threading.Thread(target=hold_session, args=(p, fourth, fourth_go)))
        threads[-1].start()
        time.sleep(2.5)
        assert not fourth, "a fourth server beyond pool and reserve: %r" % fourth
        assert n_servers(pg, "lc_res") == 3
        third_go.set()
        helpers.wait_for(lambda: fourth, 30, 0.05, "the fourth client to get the freed server")
        assert "error" not in fourth, fourth
        fourth_go.set()
        threads[-1].join(30)
        h1.close()
        h2.close()
        # nobody waits any more: the reserve server closes, the pool keeps its size
        helpers.wait_for(lambda: n_servers(pg, "lc_res") == 2, 30, 0.05,
                         "the reserve server to close")
    finally:
        third_go.set()
        fourth_go.set()
        for t in threads:
            t.join(30)
        h1.close()
        h2.close()


# ---------------------------------------------------------------------------
# connects in flight
# ---------------------------------------------------------------------------

@pytest.mark.sluice_only("server_connect_concurrency is sluice's (PgBouncer: always one)")
@pytest.mark.hard_timeout(90)
@pytest.mark.parametrize("concurrency", [None, 3])
def test_connects_in_flight_per_pool(make_pooler, concurrency):
    silent = SilentServer()
    try:
        settings = {"server_connect_timeout": 8, "server_login_retry": 30}
        if concurrency:
            settings["server_connect_concurrency"] = concurrency
        p = make_pooler(databases={"silent": "host=127.0.0.1 port=%d dbname=x" % silent.port},
                        settings=settings)
        results = [{} for _ in range(5)]

        def connect(res):
            try:
                p.connect(dbname="silent", connect_timeout=60).close()
                res["v"] = "connected"
            except psycopg.Error as e:
                res["v"] = e

        threads = [threading.Thread(target=connect, args=(r,)) for r in results]
        for t in threads:
            t.start()
        want = concurrency or 1
        helpers.wait_for(lambda: silent.count() >= want, 20, 0.05, "%d connects" % want)
        time.sleep(1)
        assert silent.count() == want, "%d connects in flight, wanted %d" % (silent.count(), want)
        for t in threads:
            t.join(60)
        assert all(isinstance(r.get("v"), psycopg.OperationalError) for r in results), results
    finally:
        silent.close()


# ---------------------------------------------------------------------------
# server_round_robin
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("round_robin", [0, 1])
def test_server_round_robin(make_pooler, round_robin):
    p = make_pooler(settings={"pool_mode": "transaction", "default_pool_size": 2,
                              "server_round_robin": round_robin})
    c1, c2 = au.client(p), au.client(p)
    try:
        c1.execute("begin")
        p1 = au.backend_pid(c1)
        c2.execute("begin")
        p2 = au.backend_pid(c2)
        assert p1 != p2
        c1.execute("commit")  # p1 goes idle first,
        c2.execute("commit")  # p2 last
        got = [au.backend_pid(c1) for _ in range(4)]
        if round_robin:
            assert got == [p1, p2, p1, p2], got  # least recently used first
        else:
            assert got == [p2] * 4, got  # most recently used first
    finally:
        c1.close()
        c2.close()


# ---------------------------------------------------------------------------
# server_check_query / server_check_delay
# ---------------------------------------------------------------------------

CHECK_OK = "select 'sluice_check'"


@pytest.mark.sluice_only("PgBouncer checks only when a server is handed out")
def test_check_runs_in_the_background(make_pooler, pg):
    p = make_pooler(settings={"server_check_delay": 1, "server_check_query": CHECK_OK,
                              "default_pool_size": 1})
    with p.connect() as c:
        pid = au.backend_pid(c)
    helpers.wait_for(lambda: query_of(pg, pid) == ("idle", CHECK_OK), 30, 0.05,
                     "the idle server to be checked")
    with p.connect() as c:
        assert au.backend_pid(c) == pid  # the check passed: the same server


@pytest.mark.sluice_only("PgBouncer marks idle servers for a check only in its janitor")
def test_failed_check_gives_another_server(make_pooler, pg):
    # server_check_delay = 0: every idle server is checked before it is handed out
    p = make_pooler(settings={"server_check_delay": 0, "server_check_query": "select 1/0",
                              "default_pool_size": 1})
    with p.connect() as c:
        pid1 = au.backend_pid(c)
    helpers.wait_for(lambda: query_of(pg, pid1) == ("idle", "DISCARD ALL"), 10, 0.05,
                     "the server back in the pool")
    with p.connect() as c:
        pid2 = au.backend_pid(c)  # no error for the client
        assert c.execute("select 2").fetchone()[0] == 2
    assert pid2 != pid1
    au.wait_gone(pg, pid1)
    p.wait_log(r"server_check_query failed: division by zero")


@pytest.mark.sluice_only("PgBouncer checks only when a server is handed out")
def test_failed_background_check_closes_the_server(make_pooler, pg):
    p = make_pooler(settings={"server_check_delay": 1, "server_check_query": "select 1/0"})
    with p.connect() as c:
        pid1 = au.backend_pid(c)
    au.wait_gone(pg, pid1, 30, "the server failing its check to be closed")
    with p.connect() as c:
        assert au.backend_pid(c) != pid1


# ---------------------------------------------------------------------------
# server_lifetime
# ---------------------------------------------------------------------------

LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) UTC .*closing because: server_lifetime$",
                    re.M)


@pytest.mark.sluice_only("log lines are sluice's")
@pytest.mark.hard_timeout(120)
def test_server_lifetime_closings_are_spread(make_pooler, pg):
    # 10 servers opened together, server_lifetime = 2 s: they are replaced one at a
    # time (at least server_lifetime / pool size apart), never all at once.
    p = make_pooler(databases={"life": pg.dbentry("testdb", user="app", application_name="lc_life",
                                                  min_pool_size=10)},
                    settings={"default_pool_size": 10, "server_lifetime": 2})
    helpers.wait_for(lambda: n_servers(pg, "lc_life") == 10, 30, 0.1, "10 servers")
    first = pids(pg, "lc_life")
    lowest = [10]

    def replaced():
        now = pids(pg, "lc_life")
        lowest[0] = min(lowest[0], len(now))
        return not first & now

    helpers.wait_for(replaced, 90, 0.1, "every original server to be replaced")
    times = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S.%f") for m in LOG_TS.findall(p.logfile.read_text())]
    assert len(times) >= 10, times
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.19, "two server_lifetime closings %.3f s apart" % min(gaps)
    assert lowest[0] >= 5, "the pool fell to %d servers" % lowest[0]


# ---------------------------------------------------------------------------
# RELOAD of a changed database; server_fast_close
# ---------------------------------------------------------------------------

def change_testdb(p, pg):
    # trust auth ignores the password: only the entry's connection settings change
    p.databases["testdb"] = pg.dbentry("testdb", password="changed-by-reload")
    p.write_files()
    p.reload()


@pytest.mark.sluice_only("PgBouncer 1.18 does not recycle servers when only the password changes")
@pytest.mark.hard_timeout(60)
def test_reload_changed_database_recycles_servers(make_pooler, pg):
    p = au.make_admin_pooler(make_pooler)
    busy = au.client(p)
    try:
        busy_pid = au.backend_pid(busy)
        with au.client(p) as c:
            idle_pid = au.backend_pid(c)
        helpers.wait_for(lambda: query_of(pg, idle_pid) == ("idle", "DISCARD ALL"), 10, 0.05,
                         "the server back in the pool")
        change_testdb(p, pg)
        # the idle server goes at once; the busy session keeps its server
        au.wait_gone(pg, idle_pid, 10, "the idle server to be closed after RELOAD")
        with au.console(p) as adm:
            sv = au.row_for(adm, "SHOW SERVERS", remote_pid=busy_pid)
            assert sv is not None and au.as_int(sv["close_needed"]) == 1, sv
        assert au.backend_pid(busy) == busy_pid
        busy.close()
        au.wait_gone(pg, busy_pid, 10, "the marked server to be closed once released")
        with au.client(p) as c:
            assert au.backend_pid(c) not in (busy_pid, idle_pid)
    finally:
        busy.close()


@pytest.mark.sluice_only("PgBouncer 1.18 does not recycle servers when only the password changes")
@pytest.mark.hard_timeout(60)
def test_server_fast_close(make_pooler, pg):
    p = au.make_admin_pooler(make_pooler, settings={"server_fast_close": 1})
    busy = au.client(p)
    adm = au.console(p)
    try:
        busy_pid = au.backend_pid(busy)
        busy.execute("begin")
        change_testdb(p, pg)

        def marked():
            sv = au.row_for(adm, "SHOW SERVERS", remote_pid=busy_pid)
            return sv is not None and au.as_int(sv["close_needed"]) == 1

        helpers.wait_for(marked, 10, 0.05, "the server to be marked close_needed")
        # inside a transaction: not closed under the client
        time.sleep(1.5)
        assert busy.execute("select 7").fetchone()[0] == 7
        busy.execute("commit")
        # between transactions: closed with its client, before the session ends
        au.wait_gone(pg, busy_pid, 10, "the marked server to be closed after its transaction")
        with pytest.raises(psycopg.OperationalError) as ei:
            busy.execute("select 1")
        assert "server_fast_close" in helpers.error_text(ei.value)
        with au.client(p) as c:
            assert au.backend_pid(c) != busy_pid
    finally:
        busy.close()
        adm.close()
