"""Startup parameters (application_name, client_encoding, DateStyle, TimeZone,
...) are applied per client, even when the pooled server connection was set
up by a client with different values."""

import pytest


SET_A = {"application_name": "client_a", "client_encoding": "LATIN1",
         "DateStyle": "SQL, DMY", "TimeZone": "Asia/Tokyo"}
SET_B = {"application_name": "client_b", "client_encoding": "UTF8",
         "DateStyle": "German, DMY", "TimeZone": "America/New_York"}
SHOW = {"application_name": "application_name", "client_encoding": "client_encoding",
        "DateStyle": "DateStyle", "TimeZone": "TimeZone"}


@pytest.fixture
def one_server(make_pooler):
    return make_pooler(settings={"default_pool_size": 1})


@pytest.fixture(scope="module")
def server_defaults(pg):
    with pg.connect(dbname="testdb") as c:
        return {k: c.execute("SHOW %s" % k).fetchone()[0] for k in SHOW}


def shown(c):
    return {k: c.scalar("SHOW %s" % k) for k in SHOW}


def test_raw_startup_params_applied_across_clients(one_server):
    pids = set()
    for params in (SET_A, SET_B, SET_A):
        with one_server.raw_login(params=params) as c:
            assert shown(c) == params
            for k, v in params.items():
                assert c.params.get(k) == v, (k, c.params)
            pids.add(c.scalar("select pg_backend_pid()"))
    assert len(pids) == 1, "expected one reused server connection, got %s" % pids


def test_unset_params_get_server_defaults(one_server, server_defaults):
    # A client that sends none of them must not inherit the previous client's.
    with one_server.raw_login(params=SET_A) as c:
        pid = c.scalar("select pg_backend_pid()")
    with one_server.raw_login() as c:
        assert c.scalar("select pg_backend_pid()") == pid
        got = shown(c)
        assert got["TimeZone"] == server_defaults["TimeZone"]
        assert got["DateStyle"] == server_defaults["DateStyle"]
        assert got["client_encoding"] == server_defaults["client_encoding"]
        assert got["application_name"] == ""
        assert c.params.get("TimeZone") == server_defaults["TimeZone"]


def test_session_set_is_reported_and_reset(one_server, server_defaults):
    with one_server.raw_login(params={"TimeZone": "Europe/Paris"}) as c:
        c.query("SET TimeZone = 'Australia/Sydney'")
        assert c.params["TimeZone"] == "Australia/Sydney"  # ParameterStatus passed on
        assert c.scalar("SHOW TimeZone") == "Australia/Sydney"
        c.query("SET application_name = 'changed'")
        assert c.params["application_name"] == "changed"
    with one_server.raw_login(params={"TimeZone": "Europe/Paris"}) as c:
        assert c.scalar("SHOW TimeZone") == "Europe/Paris"
        assert c.scalar("SHOW application_name") == ""


def test_psycopg_parameter_status(one_server):
    with one_server.connect(application_name="foo", client_encoding="LATIN1") as c:
        assert c.info.parameter_status("application_name") == "foo"
        assert c.info.parameter_status("client_encoding") == "LATIN1"
        assert c.execute("SHOW application_name").fetchone()[0] == "foo"
        assert c.execute("SHOW client_encoding").fetchone()[0] == "LATIN1"
        # LATIN1 really is in effect: a non-ASCII round trip
        assert c.execute("select 'caf\u00e9'::text").fetchone()[0] == "caf\u00e9"
        assert c.execute("select octet_length(convert_to('caf\u00e9', 'UTF8'))").fetchone()[0] == 5
        c.execute("SET application_name = 'bar'")
        assert c.info.parameter_status("application_name") == "bar"
    with one_server.connect(application_name="baz") as c:
        assert c.info.parameter_status("application_name") == "baz"
        assert c.info.parameter_status("client_encoding") == "UTF8"
        assert c.execute("SHOW application_name").fetchone()[0] == "baz"


def test_psycopg_env_datestyle_timezone(one_server, monkeypatch):
    # libpq sends PGDATESTYLE / PGTZ as startup parameters datestyle / timezone.
    monkeypatch.setenv("PGTZ", "Asia/Kolkata")
    monkeypatch.setenv("PGDATESTYLE", "Postgres, DMY")
    with one_server.connect() as c:
        assert c.execute("SHOW TimeZone").fetchone()[0] == "Asia/Kolkata"
        assert c.execute("SHOW DateStyle").fetchone()[0] == "Postgres, DMY"
        assert c.info.parameter_status("TimeZone") == "Asia/Kolkata"
    monkeypatch.setenv("PGTZ", "Pacific/Auckland")
    monkeypatch.delenv("PGDATESTYLE")
    with one_server.connect() as c:
        assert c.execute("SHOW TimeZone").fetchone()[0] == "Pacific/Auckland"
        assert c.execute("SHOW DateStyle").fetchone()[0] == "ISO, MDY"


def test_psql_application_name(one_server):
    r = one_server.psql("SHOW application_name", env={"PGAPPNAME": "psql_app_x"})
    assert r.returncode == 0 and r.stdout.strip() == "psql_app_x", r.stderr
    r = one_server.psql("SHOW application_name")
    assert r.returncode == 0 and r.stdout.strip() == "psql", r.stderr
