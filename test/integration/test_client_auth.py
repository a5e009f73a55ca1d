"""Client authentication to the pooler: auth_type trust/plain/md5/scram-sha-256
with the matching auth_file secret kinds; failures give one generic message
that never contains the attempted secret."""

import psycopg
import psycopg2
import pytest

import helpers
import pgproto
from helpers import ALICE_PW, BOB_PW, WRONG_PW


# (auth_type, secret kind in auth_file, auth request code the client must see)
CASES = [
    ("plain", "plaintext", 3),
    ("md5", "md5", 5),
    ("md5", "plaintext", 5),
    ("scram-sha-256", "scram", 10),
    ("scram-sha-256", "plaintext", 10),
]


def auth_secret(kind, user, password):
    if kind == "plaintext":
        return password
    if kind == "md5":
        return pgproto.md5_password(password, user)
    if kind == "scram":
        return helpers.register_scram_secret(pgproto.scram_secret(password))
    raise ValueError(kind)


def auth_pooler(make_pooler, auth_type, kind):
    users = {
        "alice": auth_secret(kind, "alice", ALICE_PW),
        "bob": auth_secret(kind, "bob", BOB_PW),
    }
    return make_pooler(settings={"auth_type": auth_type}, auth_users=users)


def assert_generic_failure(exc_text, user, attempted=WRONG_PW):
    assert any(t in exc_text for t in helpers.auth_failed_texts(user)), exc_text
    for s in helpers.SECRETS:
        assert s not in exc_text, "secret %r leaked into the client's error" % s
    assert attempted not in exc_text


ids = ["%s-%s" % (a, k) for a, k, _ in CASES]


@pytest.mark.parametrize("auth_type,kind,code", CASES, ids=ids)
def test_auth_ok_psycopg(make_pooler, auth_type, kind, code):
    p = auth_pooler(make_pooler, auth_type, kind)
    with p.connect(user="alice", password=ALICE_PW) as c:
        assert c.execute("select current_user").fetchone()[0] == "alice"
    with p.connect(user="bob", password=BOB_PW) as c:
        assert c.execute("select current_user").fetchone()[0] == "bob"


@pytest.mark.parametrize("auth_type,kind,code", CASES, ids=ids)
def test_auth_ok_psql_and_psycopg2(make_pooler, auth_type, kind, code):
    p = auth_pooler(make_pooler, auth_type, kind)
    r = p.psql("select current_user", user="alice", password=ALICE_PW)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "alice"
    c = p.connect2(user="bob", password=BOB_PW)
    try:
        cur = c.cursor()
        cur.execute("select current_user")
        assert cur.fetchone()[0] == "bob"
    finally:
        c.close()


@pytest.mark.parametrize("auth_type,kind,code", CASES, ids=ids)
def test_auth_method_requested(make_pooler, auth_type, kind, code):
    # The pooler asks for exactly the configured method (raw protocol view).
    p = auth_pooler(make_pooler, auth_type, kind)
    with p.raw_login(user="alice", password=ALICE_PW) as c:
        assert c.auth_codes[0] == code, c.auth_codes
        assert c.auth_codes[-1] == 0
        assert c.scalar("select current_user") == "alice"


@pytest.mark.parametrize("auth_type,kind,code", CASES, ids=ids)
def test_wrong_password(make_pooler, auth_type, kind, code):
    p = auth_pooler(make_pooler, auth_type, kind)
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user="alice", password=WRONG_PW)
    assert_generic_failure(helpers.error_text(ei.value), "alice")

    r = p.psql("select 1", user="alice", password=WRONG_PW)
    assert r.returncode != 0
    assert_generic_failure(r.stderr + r.stdout, "alice")

    with pytest.raises(psycopg2.OperationalError) as ei2:
        p.connect2(user="bob", password=WRONG_PW)
    assert_generic_failure(str(ei2.value), "bob")

    # Raw protocol: FATAL with SQLSTATE 28P01, then the connection closes.
    with p.raw() as c:
        with pytest.raises(pgproto.ServerError) as ei3:
            c.startup(user="alice", database="testdb", password=WRONG_PW)
        e = ei3.value
        assert e.sqlstate in helpers.AUTH_FAILED_SQLSTATES, e.fields
        assert e.severity == "FATAL"
        assert_generic_failure(e.all_text(), "alice")
        c.wait_closed(timeout=10)

    # The right password still works afterwards.
    with p.connect(user="alice", password=ALICE_PW) as c:
        assert c.execute("select 1").fetchone()[0] == 1


@pytest.mark.parametrize("auth_type,kind,code", CASES, ids=ids)
def test_unknown_user(make_pooler, auth_type, kind, code):
    p = auth_pooler(make_pooler, auth_type, kind)
    with pytest.raises(psycopg.OperationalError) as ei:
        p.connect(user="nobody", password=WRONG_PW)
    assert_generic_failure(helpers.error_text(ei.value), "nobody")
    with p.raw() as c:
        with pytest.raises(pgproto.ServerError) as ei3:
            c.startup(user="nobody", database="testdb", password=WRONG_PW)
        assert ei3.value.sqlstate in helpers.AUTH_FAILED_SQLSTATES, ei3.value.fields
        assert_generic_failure(ei3.value.all_text(), "nobody")
        # Same method requested as for a real user: no user enumeration.
        assert c.auth_codes and c.auth_codes[0] == code, c.auth_codes


@pytest.mark.parametrize("auth_type", ["plain", "md5", "scram-sha-256"])
def test_empty_password_rejected(make_pooler, auth_type):
    p = auth_pooler(make_pooler, auth_type, "plaintext")
    with p.raw() as c:
        with pytest.raises(pgproto.ServerError) as ei:
            c.startup(user="alice", database="testdb", password="")
        assert ei.value.sqlstate in helpers.AUTH_FAILED_SQLSTATES, ei.value.fields


def test_trust(make_pooler):
    p = make_pooler(settings={"auth_type": "trust"})
    with p.connect(user="alice") as c:
        assert c.execute("select current_user").fetchone()[0] == "alice"
    with p.raw_login(user="alice") as c:
        assert c.auth_codes == [0]
    r = p.psql("select current_user", user="bob")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bob"


def test_wrong_password_no_secret_in_log(make_pooler):
    p = auth_pooler(make_pooler, "plain", "plaintext")
    with pytest.raises(psycopg.OperationalError):
        p.connect(user="alice", password=WRONG_PW)
    with pytest.raises(psycopg.OperationalError):
        p.connect(user="nobody", password=WRONG_PW)
    log = p.log()
    assert "alice" in log  # the failure is logged ...
    assert WRONG_PW not in log and ALICE_PW not in log  # ... without secrets


def test_any(make_pooler, pg):
    # auth_type any: no authentication, any user name; the database entry
    # names the server user.
    p = make_pooler(settings={"auth_type": "any"},
                    databases={"testdb": pg.dbentry("testdb", user="srv_trust")})
    for user in ("alice", "whoever"):
        with p.raw_login(user=user) as c:
            assert c.auth_codes == [0]
            assert c.scalar("select current_user") == "srv_trust"
