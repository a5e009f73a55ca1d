"""Pooler-to-PostgreSQL login: pg_hba methods trust / password / md5 /
scram-sha-256, with the password from [databases], from auth_file, and SCRAM
pass-through; failing server logins and server_login_retry."""

import time

import psycopg
import pytest

import helpers
import pgproto
from helpers import SRV_MD5_PW, SRV_PASSWORD_PW, SRV_SCRAM_PW, SRV_WRONG_PW

SERVER_ROLES = [
    ("srv_trust", None),
    ("srv_password", SRV_PASSWORD_PW),
    ("srv_md5", SRV_MD5_PW),
    ("srv_scram", SRV_SCRAM_PW),
]


def test_hba_really_requires_passwords(pg):
    # Sanity: the generated pg_hba.conf does require the passwords, so the
    # tests below do exercise each server-side method.
    for role, pw in SERVER_ROLES[1:]:
        with pytest.raises(psycopg.OperationalError) as ei:
            psycopg.connect(host=pg.host, port=pg.port, dbname="testdb", user=role,
                            password=SRV_WRONG_PW, connect_timeout=10)
        assert 'password authentication failed for user "%s"' % role in str(ei.value)
        with psycopg.connect(host=pg.host, port=pg.port, dbname="testdb", user=role,
                             password=pw, connect_timeout=10) as c:
            assert c.execute("select current_user").fetchone()[0] == role


@pytest.mark.parametrize("role,pw", SERVER_ROLES, ids=[r for r, _ in SERVER_ROLES])
def test_password_from_databases_entry(make_pooler, pg, role, pw):
    kw = {"user": role}
    if pw:
        kw["password"] = pw
    p = make_pooler(databases={"db": pg.dbentry("testdb", **kw)})
    with p.connect(dbname="db", user="app") as c:
        assert c.execute("select current_user, current_database()").fetchone() == (role, "testdb")
    # a second, concurrent client needs a second server login
    with p.connect(dbname="db", user="app") as c1, p.connect(dbname="db", user="alice") as c2:
        pids = {c.execute("select pg_backend_pid()").fetchone()[0] for c in (c1, c2)}
        assert len(pids) == 2


@pytest.mark.parametrize("role,pw", SERVER_ROLES[1:], ids=[r for r, _ in SERVER_ROLES[1:]])
@pytest.mark.parametrize("client_auth", ["md5", "scram-sha-256", "plain"])
def test_password_from_auth_file(make_pooler, pg, role, pw, client_auth):
    # No user/password in [databases]: the pooler logs in as the client's user
    # with the plaintext password from auth_file.
    p = make_pooler(databases={"testdb": pg.dbentry("testdb")},
                    settings={"auth_type": client_auth}, auth_users={role: pw})
    with p.connect(user=role, password=pw) as c1, p.connect(user=role, password=pw) as c2:
        assert c1.execute("select current_user").fetchone()[0] == role
        assert c2.execute("select current_user").fetchone()[0] == role


def test_md5_hash_from_auth_file(make_pooler, pg):
    # auth_file holds only the md5 hash; the server wants md5: the hash is
    # enough to log in (as with PgBouncer).
    md5 = pgproto.md5_password(SRV_MD5_PW, "srv_md5")
    p = make_pooler(settings={"auth_type": "md5"}, auth_users={"srv_md5": md5})
    with p.connect(user="srv_md5", password=SRV_MD5_PW) as c1, \
            p.connect(user="srv_md5", password=SRV_MD5_PW) as c2:
        assert c1.execute("select current_user").fetchone()[0] == "srv_md5"
        assert c2.execute("select 1").fetchone()[0] == 1


def test_scram_pass_through(make_pooler, pg):
    # auth_file holds only PostgreSQL's SCRAM secret.  The client's SCRAM proof
    # gives the pooler the ClientKey, with which it logs in to the server.
    secret = pg.authid["srv_scram"]
    assert secret.startswith("SCRAM-SHA-256$")
    p = make_pooler(settings={"auth_type": "scram-sha-256"}, auth_users={"srv_scram": secret})
    with p.connect(user="srv_scram", password=SRV_SCRAM_PW) as c:
        assert c.execute("select current_user").fetchone()[0] == "srv_scram"
    # several concurrent server logins (each needs the keys), from different clients
    r = p.psql("select current_user", user="srv_scram", password=SRV_SCRAM_PW)
    assert r.returncode == 0, r.stderr
    with p.connect(user="srv_scram", password=SRV_SCRAM_PW) as c1, \
            p.connect(user="srv_scram", password=SRV_SCRAM_PW) as c2, \
            p.raw_login(user="srv_scram", password=SRV_SCRAM_PW) as c3:
        pids = {c1.execute("select pg_backend_pid()").fetchone()[0],
                c2.execute("select pg_backend_pid()").fetchone()[0],
                int(c3.scalar("select pg_backend_pid()"))}
        assert len(pids) == 3
    # a wrong password is still refused by the pooler itself
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user="srv_scram", password=SRV_WRONG_PW)
    assert any(t in str(ei.value) for t in helpers.auth_failed_texts("srv_scram"))
    assert SRV_WRONG_PW not in str(ei.value)


def bad_pooler(make_pooler, pg):
    return make_pooler(
        databases={"bad": pg.dbentry("testdb", user="srv_md5", password=SRV_WRONG_PW),
                   "testdb": pg.dbentry("testdb")},
        settings={"server_login_retry": 15},
    )


def first_bad_login(p):
    # First client: PostgreSQL's own error is passed on.
    t0 = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(dbname="bad")
    text = helpers.error_text(ei.value)
    assert 'password authentication failed for user "srv_md5"' in text, text
    assert SRV_WRONG_PW not in text
    assert time.monotonic() - t0 < 10


def test_wrong_server_password(make_pooler, pg):
    p = bad_pooler(make_pooler, pg)
    first_bad_login(p)
    # Other databases are unaffected.
    with p.connect(dbname="testdb") as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.sluice_only("1.18 makes the next client wait for server_login_retry (until its connect_timeout)")
def test_login_retry_fails_fast(make_pooler, pg):
    p = bad_pooler(make_pooler, pg)
    first_bad_login(p)
    # Right after, within server_login_retry: an error at once, not a hang
    # until the retry time.
    for _ in range(2):
        t1 = time.monotonic()
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect(dbname="bad")
        elapsed = time.monotonic() - t1
        assert elapsed < 8, "client waited %.1fs for an error (server_login_retry=15)" % elapsed
        assert SRV_WRONG_PW not in helpers.error_text(ei.value)
    with p.connect(dbname="testdb") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_wrong_server_password_sqlstate(make_pooler, pg):
    p = make_pooler(databases={"bad": pg.dbentry("testdb", user="srv_scram", password=SRV_WRONG_PW)},
                    settings={"server_login_retry": 15})
    with p.raw() as c:
        with pytest.raises(pgproto.ServerError) as ei:
            c.startup(user="app", database="bad")
        assert ei.value.sqlstate in helpers.AUTH_FAILED_SQLSTATES, ei.value.fields
        assert 'password authentication failed for user "srv_scram"' in ei.value.message
        assert SRV_WRONG_PW not in ei.value.all_text()


@pytest.mark.sluice_only("1.18 keeps the client waiting (until its connect_timeout) while the server is down")
@pytest.mark.hard_timeout(60)
def test_server_down(make_pooler, pg):
    # Nothing listens on the entry's port: the client gets an error soon,
    # other databases keep working.
    dead_port = helpers.free_port()
    p = make_pooler(databases={"down": "host=127.0.0.1 port=%d dbname=testdb" % dead_port,
                               "testdb": pg.dbentry("testdb")},
                    settings={"server_login_retry": 15, "query_wait_timeout": 30})
    for _ in range(2):
        t0 = time.monotonic()
        with pytest.raises(psycopg.OperationalError):
            with p.connect(dbname="down", connect_timeout=20) as c:
                c.execute("select 1")
        assert time.monotonic() - t0 < 15
    with p.connect() as c:
        assert c.execute("select 1").fetchone()[0] == 1
