"""Per-user timeouts from [users]: query_timeout, idle_transaction_timeout,
transaction_timeout and client_idle_timeout.

PgBouncer's rule: a user's value above 0 replaces the global one for that user (it may
be longer or shorter); 0 or no value leaves the global one. The server-side timeouts
come from the user servers log in as (a database's forced user=), client_idle_timeout
from the client's login name. RELOAD reaches live users.

Users: 'bob' and 'carol' get entries; 'app' has none and shows the global behaviour.
All are trust roles on the server and listed in the auth_file.
"""

import time

import psycopg
import pytest

import admin_util as au
import helpers
from helpers import run_pooler_cmd

pytestmark = au.sluice_only("error texts name the setting, as sluice's timeouts do")

AUTH_USERS = {"app": "", "alice": helpers.ALICE_PW, "bob": helpers.BOB_PW, "carol": ""}


def user_pooler(make_pooler, users, mode="transaction", databases=None, **settings):
    s = {"pool_mode": mode, "default_pool_size": 2}
    s.update({k: str(v) for k, v in settings.items()})
    kw = {"databases": databases} if databases else {}
    return au.make_admin_pooler(make_pooler, settings=s, users=users, auth_users=AUTH_USERS, **kw)


def expect_error(conn, sql, needle):
    """sql (or the next query, for a client cut while idle) fails naming needle;
    returns the seconds it took."""
    t0 = time.monotonic()
    with pytest.raises(psycopg.Error) as ei:
        conn.execute(sql)
        conn.execute("select 1")
    assert needle in str(ei.value), str(ei.value)
    return time.monotonic() - t0


def assert_alive(conn):
    assert conn.execute("select 42").fetchone()[0] == 42


def idle_in_transaction(conn, seconds):
    conn.execute("begin")
    conn.execute("select 1")
    time.sleep(seconds)


def reload(p):
    with au.console(p) as con:
        assert au.command(con, "RELOAD") == "RELOAD"


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_user_query_timeout(make_pooler, mode):
    p = user_pooler(make_pooler, {"bob": "query_timeout=1"}, mode=mode)
    bob = au.client(p, user="bob")
    bob.execute("select pg_sleep(0.1)")  # short queries are fine
    took = expect_error(bob, "select pg_sleep(20)", "query_timeout")
    assert took < 10, took
    bob.close()
    # no entry, global 0: no limit
    with au.client(p, user="app") as app:
        app.execute("select pg_sleep(2)")
    with au.client(p, user="bob") as again:  # the pool serves the next client
        assert_alive(again)


def test_user_query_timeout_replaces_global_both_ways(make_pooler):
    p = user_pooler(make_pooler, {"bob": "query_timeout=5", "carol": "query_timeout=0"},
                    query_timeout=1)
    with au.client(p, user="bob") as bob:  # longer than the global: allowed
        bob.execute("select pg_sleep(2)")
        assert_alive(bob)
    for user in ("app", "carol"):  # no entry, or 0: the global 1 s
        c = au.client(p, user=user)
        expect_error(c, "select pg_sleep(20)", "query_timeout")
        c.close()


def test_user_query_timeout_units(make_pooler):
    p = user_pooler(make_pooler, {"bob": "query_timeout=800ms"})
    bob = au.client(p, user="bob")
    took = expect_error(bob, "select pg_sleep(20)", "query_timeout")
    assert took < 5, took
    bob.close()


def test_user_idle_transaction_timeout(make_pooler):
    p = user_pooler(make_pooler, {"bob": "idle_transaction_timeout=1"})
    bob = au.client(p, user="bob")
    idle_in_transaction(bob, 2)
    expect_error(bob, "select 2", "idle_transaction_timeout")
    bob.close()
    with au.client(p, user="app") as app:
        idle_in_transaction(app, 2)
        assert_alive(app)
        app.execute("commit")
    # busy inside a transaction is not idle
    with au.client(p, user="bob") as busy:
        busy.execute("begin")
        for _ in range(4):
            busy.execute("select pg_sleep(0.6)")
        busy.execute("commit")


def test_user_idle_transaction_timeout_longer_than_global(make_pooler):
    p = user_pooler(make_pooler, {"bob": "idle_transaction_timeout=10"},
                    idle_transaction_timeout=1)
    with au.client(p, user="bob") as bob:
        idle_in_transaction(bob, 2)
        assert_alive(bob)
        bob.execute("commit")
    app = au.client(p, user="app")
    idle_in_transaction(app, 2)
    expect_error(app, "select 2", "idle_transaction_timeout")
    app.close()


def test_user_transaction_timeout(make_pooler):
    p = user_pooler(make_pooler, {"bob": "transaction_timeout=1.5"})
    bob = au.client(p, user="bob")
    bob.execute("begin")
    bob.execute("select pg_sleep(0.5)")
    bob.execute("select pg_sleep(0.5)")
    expect_error(bob, "select pg_sleep(5)", "transaction_timeout")
    bob.close()
    with au.client(p, user="app") as app:
        app.execute("begin")
        app.execute("select pg_sleep(1)")
        app.execute("select pg_sleep(1)")
        assert_alive(app)
        app.execute("commit")


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_user_client_idle_timeout(make_pooler, mode):
    p = user_pooler(make_pooler, {"bob": "client_idle_timeout=1"}, mode=mode)
    bob = au.client(p, user="bob")
    app = au.client(p, user="app")
    bob.execute("select 1")
    app.execute("select 1")
    time.sleep(2.5)
    expect_error(bob, "select 2", "client_idle_timeout")
    bob.close()
    assert_alive(app)  # no entry, global 0
    app.close()
    # a busy client is not idle: queries in a row, or one longer than the timeout
    with au.client(p, user="bob") as busy:
        for _ in range(5):
            busy.execute("select pg_sleep(0.4)")
        busy.execute("select pg_sleep(2)")
        assert_alive(busy)


def test_user_client_idle_timeout_replaces_global(make_pooler):
    p = user_pooler(make_pooler, {"bob": "client_idle_timeout=10"}, client_idle_timeout=1)
    bob = au.client(p, user="bob")
    app = au.client(p, user="app")
    time.sleep(2.5)
    assert_alive(bob)  # its own, longer value
    expect_error(app, "select 2", "client_idle_timeout")
    app.close()
    bob.close()


def test_forced_user(make_pooler, pg):
    """A database with user=carol: the server-side timeouts are carol's for every
    client of it, client_idle_timeout stays with the login name."""
    dbs = {"testdb": pg.dbentry("testdb"), "forced": pg.dbentry("testdb", user="carol")}
    p = user_pooler(make_pooler, {"carol": "query_timeout=1 client_idle_timeout=1",
                                  "bob": "client_idle_timeout=1"}, databases=dbs)
    app = au.client(p, dbname="forced", user="app")
    assert app.execute("select current_user").fetchone()[0] == "carol"
    expect_error(app, "select pg_sleep(20)", "query_timeout")
    app.close()
    # the same login on a database without user=: app's own (global) values
    with au.client(p, dbname="testdb", user="app") as direct:
        direct.execute("select pg_sleep(2)")
    # idle clients of the forced database: app (no entry) stays, bob (1 s) goes
    app = au.client(p, dbname="forced", user="app")
    bob = au.client(p, dbname="forced", user="bob")
    app.execute("select 1")
    bob.execute("select 1")
    time.sleep(2.5)
    assert_alive(app)
    expect_error(bob, "select 2", "client_idle_timeout")
    bob.close()
    app.close()


def test_reload_changes_user_timeouts(make_pooler):
    p = user_pooler(make_pooler, {"bob": "query_timeout=1"})
    held = au.client(p, user="bob")  # a live user and client across the reloads
    expect_error(held, "select pg_sleep(20)", "query_timeout")
    held.close()
    held = au.client(p, user="bob")

    # entry removed: the global 0 applies to the live user
    p.users = {}
    p.write_files()
    reload(p)
    held.execute("select pg_sleep(2)")

    # entry back with other keys, by SIGHUP this time
    p.users = {"bob": "idle_transaction_timeout=1"}
    p.write_files()
    p.reload()

    def cut_when_idle():
        c = au.client(p, user="bob")
        try:
            idle_in_transaction(c, 1.5)
            c.execute("select 2")
            c.execute("rollback")
            return False
        except psycopg.Error as e:
            assert "idle_transaction_timeout" in str(e), str(e)
            return True
        finally:
            c.close()

    helpers.wait_for(cut_when_idle, 20, 0.1, "bob's idle_transaction_timeout after SIGHUP")
    held.execute("select pg_sleep(2)")  # no query_timeout any more
    held.close()

    # a global SET reaches users without their own value
    with au.console(p) as con:
        au.command(con, "SET query_timeout = 1")
    app = au.client(p, user="app")
    expect_error(app, "select pg_sleep(20)", "query_timeout")
    app.close()


def test_reload_with_bad_user_timeout_keeps_old(make_pooler):
    p = user_pooler(make_pooler, {"bob": "query_timeout=1"})
    p.users = {"bob": "query_timeout=soon"}
    p.write_files()
    with au.console(p) as con:
        with pytest.raises(psycopg.Error) as ei:
            con.execute("RELOAD")
        msg = str(ei.value)
    assert "user 'bob': invalid value for query_timeout" in msg, msg
    assert "running config is kept" in msg, msg
    bob = au.client(p, user="bob")
    expect_error(bob, "select pg_sleep(20)", "query_timeout")
    bob.close()


def test_check_rejects_bad_user_timeout(make_pooler):
    p = make_pooler(start=False, users={"bob": "client_idle_timeout=5parsecs"})
    p.write_files()
    line = p.ini.read_text().splitlines().index("bob = client_idle_timeout=5parsecs") + 1
    r = run_pooler_cmd(["--check", str(p.ini)], timeout=30)
    assert r.returncode == 1, r.stdout
    assert "%s:%d" % (p.ini, line) in r.stdout, r.stdout
    assert "user 'bob': invalid value for client_idle_timeout: not a time" in r.stdout, r.stdout


def test_show_users_columns_unchanged(make_pooler):
    p = user_pooler(make_pooler, {"bob": "query_timeout=1 pool_mode=session"})
    with au.console(p) as con:
        cols, rows = au.show(con, "USERS")
    assert cols == ["name", "pool_size", "reserve_pool_size", "pool_mode",
                    "max_user_connections", "current_connections",
                    "max_user_client_connections", "current_client_connections"]
    bob = [r for r in rows if r["name"] == "bob"]
    assert bob and bob[0]["pool_mode"] == "session", rows
