"""server_reset_query: session state must not leak between clients that
share one server connection (pool size 1, session mode)."""

import pytest


@pytest.fixture
def one_server(make_pooler):
    return make_pooler(settings={"default_pool_size": 1, "server_reset_query": "DISCARD ALL"})


def dirty_session(c):
    c.execute("SET work_mem = '7777kB'")
    c.execute("SET search_path = leak_schema, public")
    c.execute("CREATE TEMP TABLE leak_tmp (x int)")
    c.execute("PREPARE leak_stmt AS SELECT 1")
    c.execute("LISTEN leak_channel")
    c.execute("SELECT set_config('sluice.leak', 'yes', false)")
    c.execute("SELECT pg_advisory_lock(4242)")
    return c.execute("select pg_backend_pid()").fetchone()[0]


def assert_clean(c, default_work_mem):
    assert c.execute("SHOW work_mem").fetchone()[0] == default_work_mem
    assert c.execute("SHOW search_path").fetchone()[0] == '"$user", public'
    assert c.execute("select to_regclass('pg_temp.leak_tmp')").fetchone()[0] is None
    assert c.execute("select count(*) from pg_prepared_statements").fetchone()[0] == 0
    assert c.execute("select count(*) from pg_listening_channels()").fetchone()[0] == 0
    assert c.execute("select coalesce(current_setting('sluice.leak', true), '')").fetchone()[0] in ("", None)
    assert c.execute(
        "select count(*) from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()"
    ).fetchone()[0] == 0


def test_reset_between_clients(one_server, pg):
    with pg.connect(dbname="testdb") as direct:
        default_work_mem = direct.execute("SHOW work_mem").fetchone()[0]
    assert default_work_mem != "7777kB"
    with one_server.connect(prepare_threshold=None) as a:
        pid_a = dirty_session(a)
    with one_server.connect(prepare_threshold=None) as b:
        # same server connection reused (else this test proves nothing)
        assert b.execute("select pg_backend_pid()").fetchone()[0] == pid_a
        assert_clean(b, default_work_mem)


def test_reset_after_client_dies_in_transaction(one_server, pg):
    # The first client disconnects abruptly inside a transaction.
    a = one_server.raw_login()
    a.query("BEGIN")
    a.query("SET LOCAL work_mem = '7777kB'")
    a.query("CREATE TEMP TABLE leak_tmp2 (x int)")
    pid_a = int(a.scalar("select pg_backend_pid()"))
    a.close()  # no Terminate message
    with one_server.connect() as b:
        pid_b = b.execute("select pg_backend_pid()").fetchone()[0]
        assert b.execute("select to_regclass('pg_temp.leak_tmp2')").fetchone()[0] is None
        assert b.execute("select pg_current_xact_id_if_assigned()").fetchone()[0] is None
        assert b.execute("select 1").fetchone()[0] == 1
        # either the server was reused cleanly or replaced
        if pid_b == pid_a:
            assert b.execute("SHOW work_mem").fetchone()[0] != "7777kB"


def test_reset_after_client_dies_in_failed_transaction(one_server):
    a = one_server.raw_login()
    a.query("BEGIN")
    with pytest.raises(Exception):
        a.query("select 1/0")
    a.close()
    with one_server.connect() as b:
        assert b.execute("select 1").fetchone()[0] == 1
        b.execute("begin")
        assert b.execute("select 2").fetchone()[0] == 2
        b.execute("commit")


def test_reset_psql_then_psycopg(one_server):
    r = one_server.psql("SET statement_timeout = '123s'; CREATE TEMP TABLE t_psql(x int); SHOW statement_timeout")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "123s", r.stdout
    with one_server.connect() as b:
        assert b.execute("SHOW statement_timeout").fetchone()[0] == "0"
        assert b.execute("select to_regclass('pg_temp.t_psql')").fetchone()[0] is None
