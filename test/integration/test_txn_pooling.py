"""Transaction and statement pooling (issue 4, first part): servers go back to the pool
at ReadyForQuery 'I', pipelines keep theirs until answered, clients keep their tracked
parameters across servers, and no server is handed out dirty."""

import re
import subprocess
import threading
import time

import psycopg
import pytest

import admin_util as au
import helpers

pytestmark = au.sluice_only("transaction pooling semantics are checked against sluice")


def txn_pooler(make_pooler, pg, size=1, mode="transaction", **settings):
    s = {"pool_mode": mode, "default_pool_size": size, "max_client_conn": 100}
    s.update(settings)
    return au.make_admin_pooler(make_pooler, settings=s)


@pytest.fixture
def table(pg):
    with pg.connect("testdb") as c:
        c.execute("drop table if exists txn_t")
        c.execute("create table txn_t (id int primary key, who text)")
        c.execute("grant all on txn_t to app")
    yield "txn_t"
    with pg.connect("testdb") as c:
        c.execute("drop table if exists txn_t")


def pid(conn):
    return conn.execute("select pg_backend_pid()").fetchone()[0]


def test_clients_share_one_server(make_pooler, pg):
    p = txn_pooler(make_pooler, pg)
    a, b = au.client(p), au.client(p)
    try:
        pids = {pid(a), pid(b), pid(a), pid(b)}
        assert len(pids) == 1, pids  # one server serves both, turn by turn
    finally:
        a.close()
        b.close()


def test_interleaved_transactions_see_only_their_own_work(make_pooler, pg, table):
    p = txn_pooler(make_pooler, pg)
    a, b = au.client(p), au.client(p)
    try:
        a.execute("begin")
        a.execute("insert into txn_t values (1, 'a')")
        # b waits for the only server while a's transaction is open
        t, r = au.run_in_thread(lambda: b.execute("select count(*) from txn_t").fetchone()[0])
        assert au.still_pending(t, r, 0.5), r
        assert a.execute("select who from txn_t").fetchall() == [("a",)]
        a.execute("commit")
        assert au.finished(t, r, 10) and r["v"] == 1, r
        b.execute("begin")
        b.execute("insert into txn_t values (2, 'b')")
        assert b.execute("select count(*) from txn_t").fetchone()[0] == 2
        b.execute("rollback")
        assert a.execute("select count(*) from txn_t").fetchone()[0] == 1
    finally:
        a.close()
        b.close()


def test_disconnect_mid_transaction_leaves_nothing(make_pooler, pg, table):
    p = txn_pooler(make_pooler, pg)
    with pg.connect("testdb") as su:
        su.execute("insert into txn_t values (1, 'committed')")
    a = au.client(p)
    a.execute("begin")
    a.execute("update txn_t set who = 'uncommitted' where id = 1")
    a.execute("insert into txn_t values (2, 'uncommitted')")
    a.close()  # gone in the middle of the transaction, holding a row lock
    b = au.client(p)
    try:
        b.execute("set lock_timeout = '2s'")
        # no lock left behind and no uncommitted row visible
        b.execute("update txn_t set who = 'b' where id = 1")
        assert b.execute("select id, who from txn_t order by id").fetchall() == [(1, "b")]
    finally:
        b.close()


@pytest.mark.hard_timeout(180)
@pytest.mark.parametrize("protocol", ["simple", "extended"])
def test_pgbench_transaction_mode(make_pooler, pg, protocol):
    p = make_pooler(databases={"benchdb": pg.dbentry("benchdb")},
                    settings={"pool_mode": "transaction", "default_pool_size": 5,
                              "max_client_conn": 100, "admin_users": au.ADMIN})
    r = p.pgbench(["-i", "-q", "-s", "1"], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = p.pgbench(["-c", "50", "-j", "2", "-t", "40", "-M", protocol], timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    processed = int(re.search(r"actually processed: (\d+)", r.stdout).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    assert processed == 50 * 40, r.stdout
    assert not failed or int(failed.group(1)) == 0, r.stdout
    # and the pool never grew past its size (servers are kept, so the count now is the peak)
    with au.console(p) as adm:
        pool = au.row_for(adm, "POOLS", database="benchdb", user="app")
    servers = sum(au.as_int(pool[k]) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    assert 0 < servers <= 5, pool


def test_pipeline_mode(make_pooler, pg, table):
    p = txn_pooler(make_pooler, pg, size=2)
    conn = psycopg.connect(host=p.host, port=p.port, dbname="testdb", user="app",
                           autocommit=True, connect_timeout=10)
    try:
        with conn.pipeline():
            for i in range(20):
                conn.execute("insert into txn_t values (%s, %s)", (i, "p%d" % i))
            cur = conn.execute("select count(*), sum(id) from txn_t")
            assert cur.fetchone() == (20, sum(range(20)))
    finally:
        conn.close()


def test_statement_mode_refuses_transaction_blocks(make_pooler, pg):
    p = txn_pooler(make_pooler, pg, mode="statement")
    c = au.client(p)
    assert c.execute("select 1").fetchone()[0] == 1
    with pytest.raises(psycopg.Error) as ei:
        c.execute("begin")
        c.execute("select 2")
    assert "transaction blocks are not allowed in statement pooling mode" in str(ei.value)
    c.close()
    assert au.can_connect(p)


def test_tracked_set_follows_client_untracked_does_not_leak(make_pooler, pg):
    p = txn_pooler(make_pooler, pg, size=2)
    a, b = au.client(p), au.client(p)
    try:
        a.execute("set timezone = 'Asia/Tokyo'")
        a.execute("set search_path = 'not_for_others'")
        # hold one server with b so that a runs on whichever is free, many times
        seen = set()
        for _ in range(10):
            b.execute("begin")
            b.execute("select 1")
            seen.add(pid(a))
            assert a.execute("show timezone").fetchone()[0] == "Asia/Tokyo"
            b.execute("commit")
            assert b.execute("show search_path").fetchone()[0] != "not_for_others"
        assert b.execute("show timezone").fetchone()[0] != "Asia/Tokyo"
    finally:
        a.close()
        b.close()


def test_mode_precedence_user_over_database_over_global(make_pooler, pg):
    p = make_pooler(databases={"testdb": pg.dbentry("testdb", pool_mode="statement"),
                               "otherdb": pg.dbentry("otherdb")},
                    users={"alice": "pool_mode=session"},
                    settings={"pool_mode": "transaction", "admin_users": au.ADMIN,
                              "stats_users": au.STATS})
    for db, user in (("testdb", "app"), ("testdb", au.ADMIN), ("otherdb", "app")):
        with p.connect(dbname=db, user=user, password=helpers.ALICE_PW if user == au.ADMIN else None) as c:
            c.execute("select 1")
    with au.console(p) as adm:
        modes = {(r["database"], r["user"]): r["pool_mode"] for r in au.show(adm, "POOLS")[1]}
    assert modes[("testdb", "app")] == "statement"
    assert modes[("testdb", au.ADMIN)] == "session"
    assert modes[("otherdb", "app")] == "transaction"


@pytest.mark.hard_timeout(120)
def test_copy_in_and_out_10mb_identical(make_pooler, pg, table):
    p = txn_pooler(make_pooler, pg, size=1)
    line = lambda i: "%d\t%s\n" % (i, ("row-%08d-" % i) * 4)  # noqa: E731
    data = "".join(line(i) for i in range(0, 230000)).encode()
    assert len(data) > 10 * 1024 * 1024
    with au.client(p) as c:
        with c.cursor().copy("copy txn_t (id, who) from stdin") as cp:
            for off in range(0, len(data), 65536):
                cp.write(data[off:off + 65536])
        out = bytearray()
        with c.cursor().copy("copy (select id, who from txn_t order by id) to stdout") as cp:
            for chunk in cp:
                out += chunk
        # the pool's only server is free again and a second client sees every row
        with au.client(p) as d:
            assert d.execute("select count(*) from txn_t").fetchone()[0] == 230000
    assert bytes(out) == data


@pytest.mark.parametrize("extra", [None, ""])
def test_track_extra_parameters_intervalstyle(make_pooler, pg, extra):
    settings = {} if extra is None else {"track_extra_parameters": extra}
    p = txn_pooler(make_pooler, pg, size=2, **settings)
    a, b = au.client(p), au.client(p)
    try:
        a.execute("set intervalstyle = 'iso_8601'")
        styles = set()
        for _ in range(6):
            b.execute("begin")
            b.execute("select 1")  # holds one server: a runs on the other
            styles.add(a.execute("show intervalstyle").fetchone()[0])
            b.execute("commit")
            styles.add(a.execute("show intervalstyle").fetchone()[0])
        if extra is None:  # default: IntervalStyle is tracked
            assert styles == {"iso_8601"}, styles
        else:  # tracking turned off: the other server's default shows through
            assert "postgres" in styles, styles
    finally:
        a.close()
        b.close()


def test_libpq_pipeline_mode(make_pooler, pg):
    """libpq pipeline mode (test/tools/pq_pipeline.c): 50 Syncs in flight before any
    result is read; the server stays with the client until the last is answered."""
    tool = helpers.REPO / "test" / "tools" / "pq_pipeline"
    if not tool.exists():  # make check builds it; a bare pytest run may not have
        r = subprocess.run(["make", "-C", str(helpers.REPO), "test/tools/pq_pipeline"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
    p = txn_pooler(make_pooler, pg, size=1)
    other = au.client(p)  # shares the single server between the pipeline's turns
    try:
        conninfo = "host=%s port=%d dbname=testdb user=app connect_timeout=10" % (p.host, p.port)
        r = subprocess.run([str(tool), conninfo, "50"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "50 pipelined queries ok" in r.stdout
        assert other.execute("select 5").fetchone()[0] == 5
    finally:
        other.close()
