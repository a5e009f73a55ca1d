"""Server connections that die under the pooler."""

import psycopg
import pytest

import helpers


def terminate(pg, pid):
    with pg.connect() as c:
        assert c.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    helpers.wait_for(lambda: pid not in pg.backend_pids(), 10, 0.05, "backend %d to exit" % pid)


@pytest.mark.parametrize("pool_size", [1, 3])
def test_terminate_active_client_backend(make_pooler, pg, pool_size):
    p = make_pooler(settings={"default_pool_size": pool_size})
    c = p.connect()
    try:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        terminate(pg, pid)
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
    finally:
        c.close()
    with p.connect() as c2:
        pid2 = c2.execute("select pg_backend_pid()").fetchone()[0]
        assert pid2 != pid
        assert c2.execute("select 1").fetchone()[0] == 1
    r = p.psql("select 2")
    assert r.returncode == 0 and r.stdout.strip() == "2", r.stderr


def test_terminate_during_query(make_pooler, pg):
    p = make_pooler(settings={"default_pool_size": 1})
    import threading

    with p.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
        t = threading.Thread(target=lambda: (
            helpers.wait_for(lambda: _is_active(pg, pid), 10, 0.05, "query to run"),
            terminate(pg, pid)))
        t.start()
        with pytest.raises(psycopg.OperationalError):
            c.execute("select pg_sleep(30)")
        t.join(20)
    with p.connect() as c2:
        assert c2.execute("select 1").fetchone()[0] == 1


def _is_active(pg, pid):
    with pg.connect() as c:
        r = c.execute("select state from pg_stat_activity where pid = %s", (pid,)).fetchone()
        return r is not None and r[0] == "active"


def test_terminate_idle_pooled_server(make_pooler, pg):
    # The server sits idle in the pool when it dies; the next client must not
    # be handed the dead connection.
    p = make_pooler(settings={"default_pool_size": 1})
    with p.connect() as c:
        pid = c.execute("select pg_backend_pid()").fetchone()[0]
    # wait for the reset query to have run (the server is back in the pool),
    # then kill the idle server
    helpers.wait_for(lambda: _state(pg, pid) == ("idle", "DISCARD ALL"), 10, 0.05,
                     "server to be reset and idle")
    terminate(pg, pid)
    with p.connect() as c2:
        assert c2.execute("select 1").fetchone()[0] == 1
        assert c2.execute("select pg_backend_pid()").fetchone()[0] != pid


def _state(pg, pid):
    with pg.connect() as c:
        return c.execute("select state, query from pg_stat_activity where pid = %s", (pid,)).fetchone()


def test_postgres_restart_like_all_backends_die(make_pooler, pg):
    # Every server connection of the pool dies at once.
    p = make_pooler(settings={"default_pool_size": 3})
    conns = [p.connect() for _ in range(3)]
    pids = [c.execute("select pg_backend_pid()").fetchone()[0] for c in conns]
    for pid in pids:
        terminate(pg, pid)
    for c in conns:
        with pytest.raises(psycopg.OperationalError):
            c.execute("select 1")
        c.close()
    for _ in range(3):
        with p.connect() as c:
            assert c.execute("select 1").fetchone()[0] == 1
