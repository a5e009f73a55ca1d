"""Connection limits and waiting: max_client_conn, query_wait_timeout,
max_db_connections, max_user_connections."""

import threading
import time

import psycopg
import pytest

import helpers
import pgproto


@pytest.mark.hard_timeout(60)
def test_query_wait_timeout(make_pooler):
    p = make_pooler(settings={"default_pool_size": 1, "query_wait_timeout": 2})
    with p.connect(autocommit=False) as holder:
        holder.execute("select 1")  # session mode: holds the only server
        t0 = time.monotonic()
        with pytest.raises(psycopg.Error) as ei:
            with p.connect(connect_timeout=30) as c2:
                c2.execute("select 1")
        elapsed = time.monotonic() - t0
        assert "query_wait_timeout" in helpers.error_text(ei.value)
        assert elapsed >= 1.0, "failed after %.2fs: did not wait at all" % elapsed
        assert elapsed < 20
        # the holder is unaffected
        assert holder.execute("select 2").fetchone()[0] == 2
    # and once the server is free again, new clients work
    with p.connect() as c3:
        assert c3.execute("select 3").fetchone()[0] == 3


@pytest.mark.hard_timeout(60)
def test_waiting_client_served_when_server_frees(make_pooler):
    p = make_pooler(settings={"default_pool_size": 1, "query_wait_timeout": 30})
    holder = p.connect()
    holder.execute("select 1")
    res = {}

    def second():
        try:
            with p.connect(connect_timeout=30) as c:
                res["v"] = c.execute("select 'served'").fetchone()[0]
        except Exception as e:
            res["v"] = e

    t = threading.Thread(target=second)
    t.start()
    time.sleep(1)
    assert "v" not in res, "second client got a server although the pool (size 1) was busy: %r" % res
    holder.close()
    t.join(30)
    assert res.get("v") == "served", res


def test_max_client_conn(make_pooler):
    p = make_pooler(settings={"max_client_conn": 2})
    c1 = p.connect()
    c2 = p.connect()
    try:
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect()
        assert "no more connections allowed (max_client_conn)" in str(ei.value)
        with p.raw() as r:
            with pytest.raises(pgproto.ServerError) as ei2:
                r.startup(user="app", database="testdb")
            assert ei2.value.severity == "FATAL"
            assert "no more connections allowed (max_client_conn)" in ei2.value.message
        # the two admitted clients keep working
        assert c1.execute("select 1").fetchone()[0] == 1
        assert c2.execute("select 2").fetchone()[0] == 2
    finally:
        c1.close()
    # a freed slot can be used again
    def third_ok():
        try:
            with p.connect() as c3:
                return c3.execute("select 3").fetchone()[0] == 3
        except psycopg.OperationalError:
            return False
    helpers.wait_for(third_ok, 10, 0.2, "a client slot to be freed")
    c2.close()


@pytest.mark.hard_timeout(60)
@pytest.mark.parametrize("setting", ["max_db_connections", "max_user_connections"])
def test_max_server_connections(make_pooler, pg, setting):
    p = make_pooler(settings={"default_pool_size": 5, setting: 2, "query_wait_timeout": 30})
    a = p.connect()
    b = p.connect()
    a.execute("select 1")
    b.execute("select 1")
    res = {}

    def third():
        try:
            with p.connect(connect_timeout=30) as c:
                res["v"] = c.execute("select 'third'").fetchone()[0]
        except Exception as e:
            res["v"] = e

    t = threading.Thread(target=third)
    t.start()
    try:
        time.sleep(1)
        assert "v" not in res, "third client was served beyond %s=2: %r" % (setting, res)
        assert len(pg.backend_pids(dbname="testdb", user="app")) <= 2
    finally:
        a.close()
    t.join(30)
    b.close()
    assert res.get("v") == "third", res
