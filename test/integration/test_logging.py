"""Logging: connection lines with client address/db/user in the logfile;
no secret ever appears in the log or in a client-visible error.

(Every test's pooler stderr and logfile are also checked for all secrets in
helpers.SECRETS by the make_pooler fixture.)"""

import time

import psycopg
import pytest

import helpers
import pgproto
from helpers import (ALICE_PW, BOB_PW, SRV_MD5_PW, SRV_PASSWORD_PW, SRV_SCRAM_PW,
                     SRV_WRONG_PW, WRONG_PW)


def lines_with(text, *needles):
    return [l for l in text.splitlines() if all(n in l for n in needles)]


def test_connection_logged_in_logfile(make_pooler):
    p = make_pooler(settings={"auth_type": "md5", "log_connections": 1, "log_disconnections": 1})
    with p.connect(user="alice", password=ALICE_PW) as c:
        c.execute("select 1")
        helpers.wait_for(lambda: lines_with(p.logfile.read_text(), "127.0.0.1", "testdb", "alice"),
                         10, 0.1, "a login line naming 127.0.0.1, testdb and alice in the logfile")
        time.sleep(0.2)
        n_before = len(lines_with(p.logfile.read_text(), "127.0.0.1", "testdb", "alice"))
    # the disconnection is logged too (another line naming the client)
    helpers.wait_for(lambda: len(lines_with(p.logfile.read_text(), "127.0.0.1", "testdb", "alice")) > n_before,
                     10, 0.1, "a disconnection line")
    # a failed login is logged, naming the user, without the password
    with pytest.raises(psycopg.OperationalError):
        p.connect(user="bob", password=WRONG_PW)
    helpers.wait_for(lambda: lines_with(p.logfile.read_text(), "bob"), 10, 0.1, "failed login logged")
    assert WRONG_PW not in p.log()


def test_unix_socket_connection_logged(make_pooler):
    p = make_pooler(settings={"log_connections": 1})
    with p.connect(unix=True, user="app") as c:
        c.execute("select 1")
    helpers.wait_for(lambda: lines_with(p.logfile.read_text(), "testdb", "app"),
                     10, 0.1, "a login line for the unix-socket client")


def test_quiet_still_writes_logfile(make_pooler):
    p = make_pooler(extra_args=["-q"], settings={"log_connections": 1})
    with p.connect(user="alice") as c:
        c.execute("select 1")
    helpers.wait_for(lambda: lines_with(p.logfile.read_text(), "testdb", "alice"), 10, 0.1,
                     "login line in logfile with -q")
    assert "alice" not in p.output(), "-q should keep stderr quiet:\n" + p.output()[-2000:]


def test_no_secrets_in_log_after_everything(make_pooler, pg):
    """Every kind of login, good and bad, client and server side; then grep."""
    scram_pt = pg.authid["srv_scram"]
    dbs = {
        "testdb": pg.dbentry("testdb"),
        "pw": pg.dbentry("testdb", user="srv_password", password=SRV_PASSWORD_PW),
        "md5": pg.dbentry("testdb", user="srv_md5", password=SRV_MD5_PW),
        "scram": pg.dbentry("testdb", user="srv_scram", password=SRV_SCRAM_PW),
        "badpw": pg.dbentry("testdb", user="srv_md5", password=SRV_WRONG_PW),
    }
    users = {"alice": ALICE_PW, "bob": pgproto.md5_password(BOB_PW, "bob"),
             "srv_scram": scram_pt, "srv_md5": SRV_MD5_PW}
    for auth_type in ("plain", "md5", "scram-sha-256"):
        p = make_pooler(databases=dbs, auth_users=users,
                        settings={"auth_type": auth_type, "log_connections": 1,
                                  "log_disconnections": 1, "server_login_retry": 1})
        for db in ("testdb", "pw", "md5", "scram"):
            with p.connect(dbname=db, user="alice", password=ALICE_PW) as c:
                c.execute("select 1")
        if auth_type == "md5":  # bob has only an md5 secret
            with p.connect(user="bob", password=BOB_PW) as c:
                c.execute("select 1")
        if auth_type == "scram-sha-256":
            with p.connect(user="srv_scram", password=SRV_SCRAM_PW) as c:
                c.execute("select 1")
        for user, pw in (("alice", WRONG_PW), ("nobody", WRONG_PW), ("alice", BOB_PW)):
            with pytest.raises(psycopg.OperationalError) as ei:
                p.connect(user=user, password=pw)
            for s in helpers.SECRETS:
                assert s not in str(ei.value)
        with pytest.raises(psycopg.OperationalError) as ei:
            p.connect(dbname="badpw", user="alice", password=ALICE_PW)
        for s in helpers.SECRETS:
            assert s not in str(ei.value)
        r = p.psql("select 1", user="alice", password=WRONG_PW)
        assert r.returncode != 0 and WRONG_PW not in r.stderr
        log = p.log()
        assert "alice" in log
        leaked = [s for s in helpers.SECRETS if s in log]
        assert not leaked, "secrets in the %s log: %s" % (auth_type, leaked)
