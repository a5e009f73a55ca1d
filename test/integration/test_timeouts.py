"""Timeouts of issue 4: each names itself in the client's error and leaves the pool
serving the next client."""

import time

import psycopg
import pytest

import admin_util as au

pytestmark = au.sluice_only("error texts and semantics are sluice's")


def timeout_pooler(make_pooler, mode="transaction", **settings):
    s = {"pool_mode": mode, "default_pool_size": 1}
    s.update({k: str(v) for k, v in settings.items()})
    return au.make_admin_pooler(make_pooler, settings=s)


def expect_error(conn, sql, needle):
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(sql)
        conn.execute("select 1")  # a client cut while idle learns it here
    assert needle in str(ei.value), str(ei.value)
    return time.monotonic() - t0


def assert_pool_healthy(p):
    with au.client(p) as c:
        assert c.execute("select 42").fetchone()[0] == 42


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_query_timeout(make_pooler, mode):
    p = timeout_pooler(make_pooler, mode=mode, query_timeout=1)
    c = au.client(p)
    assert c.execute("select pg_sleep(0.1)")  # short queries are fine
    expect_error(c, "select pg_sleep(20)", "query_timeout")
    c.close()
    assert_pool_healthy(p)


def test_idle_transaction_timeout(make_pooler):
    p = timeout_pooler(make_pooler, idle_transaction_timeout=1)
    c = au.client(p)
    c.execute("begin")
    c.execute("select 1")
    time.sleep(2)
    expect_error(c, "select 2", "idle_transaction_timeout")
    c.close()
    assert_pool_healthy(p)


def test_transaction_timeout(make_pooler):
    p = timeout_pooler(make_pooler, transaction_timeout=1.5)
    c = au.client(p)
    c.execute("begin")
    c.execute("select pg_sleep(0.5)")
    c.execute("select pg_sleep(0.5)")
    expect_error(c, "select pg_sleep(5)", "transaction_timeout")
    c.close()
    assert_pool_healthy(p)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_client_idle_timeout(make_pooler, mode):
    p = timeout_pooler(make_pooler, mode=mode, client_idle_timeout=1)
    c = au.client(p)
    c.execute("select 1")
    time.sleep(2.5)
    expect_error(c, "select 2", "client_idle_timeout")
    c.close()
    # a busy client is not idle: queries in a row keep it alive past the timeout
    d = au.client(p)
    for _ in range(6):
        d.execute("select pg_sleep(0.3)")
    d.close()
    assert_pool_healthy(p)


def test_timeouts_off_by_default(make_pooler):
    p = timeout_pooler(make_pooler)
    c = au.client(p)
    c.execute("begin")
    time.sleep(1.2)
    assert c.execute("select 7").fetchone()[0] == 7
    c.execute("commit")
    c.close()
