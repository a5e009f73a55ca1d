"""Queries through the pooler from real clients; database routing."""

import psycopg
import pytest

import helpers


def test_psql_tcp(pooler):
    r = pooler.psql("select 1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_psql_exact_command_line(pooler):
    # The form from the README: psql -h 127.0.0.1 -p PORT -U user -d db -c 'select 1'
    import subprocess

    r = subprocess.run(
        [helpers.PSQL, "-h", "127.0.0.1", "-p", str(pooler.port), "-U", "app", "-d", "testdb", "-w",
         "-c", "select 1"],
        env=helpers.clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "(1 row)" in r.stdout


def test_psql_unix_socket(pooler):
    r = pooler.psql("select current_database(), current_user", host=str(pooler.sockdir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "testdb|app"


def test_psycopg3(pooler):
    with pooler.connect() as c:
        assert c.execute("select 40 + 2").fetchone()[0] == 42
        assert c.execute("select current_database(), current_user").fetchone() == ("testdb", "app")
        # extended protocol with parameters and a larger result
        rows = c.execute("select g, repeat('x', %s) from generate_series(1, 2000) g", (100,)).fetchall()
        assert len(rows) == 2000 and rows[-1] == (2000, "x" * 100)


def test_psycopg3_transaction(pooler):
    with pooler.connect(autocommit=False) as c:
        c.execute("create temp table t (x int)")
        c.execute("insert into t select generate_series(1, 10)")
        assert c.execute("select sum(x) from t").fetchone()[0] == 55
        c.rollback()
        with pytest.raises(psycopg.errors.UndefinedTable):
            c.execute("select * from t")


def test_psycopg3_unix_socket(pooler):
    with pooler.connect(unix=True) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_psycopg2(pooler):
    c = pooler.connect2()
    try:
        cur = c.cursor()
        cur.execute("select %s::int + 1, current_database()", (41,))
        assert cur.fetchone() == (42, "testdb")
    finally:
        c.close()


def test_many_sequential_clients(pooler):
    # Clients come and go; servers get reused (pool of 5).
    for i in range(30):
        with pooler.connect() as c:
            assert c.execute("select %s::int", (i,)).fetchone()[0] == i


def test_concurrent_clients(pooler):
    conns = [pooler.connect() for _ in range(5)]
    try:
        pids = {c.execute("select pg_backend_pid()").fetchone()[0] for c in conns}
        assert len(pids) == 5  # session mode: one server per client
    finally:
        for c in conns:
            c.close()


def test_unknown_database(pooler):
    with pytest.raises(psycopg.OperationalError) as ei:
        pooler.connect(dbname="nosuchdb")
    assert "no such database: nosuchdb" in str(ei.value)


def test_unknown_database_raw_is_fatal(pooler):
    with pooler.raw() as c:
        with pytest.raises(helpers.pgproto.ServerError) as ei:
            c.startup(user="app", database="nosuchdb")
        assert ei.value.severity == "FATAL"
        assert "no such database: nosuchdb" in ei.value.message
        c.wait_closed(timeout=10)


def test_fallback_database(make_pooler, pg):
    p = make_pooler(databases={"testdb": pg.dbentry("testdb"), "*": pg.dbentry(None)})
    with p.connect(dbname="otherdb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "otherdb"
    with p.connect(dbname="testdb") as c:
        assert c.execute("select current_database()").fetchone()[0] == "testdb"
    r = p.psql("select current_database()", dbname="benchdb")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "benchdb"


def test_database_alias(make_pooler, pg):
    # The client-side name maps to a different server database.
    p = make_pooler(databases={"alias": pg.dbentry("otherdb")})
    with p.connect(dbname="alias") as c:
        assert c.execute("select current_database()").fetchone()[0] == "otherdb"


def test_forced_user(make_pooler, pg):
    # user= in the [databases] entry: the server session runs as that role.
    p = make_pooler(databases={"forced": pg.dbentry("testdb", user="srv_trust")})
    with p.connect(dbname="forced", user="alice") as c:
        assert c.execute("select current_user").fetchone()[0] == "srv_trust"
