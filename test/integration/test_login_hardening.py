"""Logins leak nothing (issue 9 item 10).

- An unknown database is reported only to a client that passed authentication:
  a wrong password gets the password failure, as PostgreSQL answers.
- SCRAM for a user sluice cannot verify looks like SCRAM for a real one: a salt
  that is stable per user (and new after a restart), the same iteration count.
- Names and values a client chose are escaped in log lines and error messages:
  a newline in a user name cannot forge a log line.
"""

import base64
import os
import re
import struct
import sys

import pytest

import helpers
import pgproto
from helpers import ALICE_PW, BOB_PW, WRONG_PW

pytestmark = pytest.mark.sluice_only("sluice's own login hardening")

PASSWORD_AUTH = ["plain", "md5", "scram-sha-256"]


def scram_users(kind="scram"):
    if kind == "scram":
        return {"alice": helpers.register_scram_secret(pgproto.scram_secret(ALICE_PW)),
                "bob": helpers.register_scram_secret(pgproto.scram_secret(BOB_PW))}
    return {"alice": ALICE_PW, "bob": BOB_PW}


def login_error(p, user, database, password):
    """Runs a raw login that must fail; returns (ServerError, auth codes seen)."""
    with p.raw() as c:
        with pytest.raises(pgproto.ServerError) as ei:
            c.startup(user=user, database=database, password=password)
        return ei.value, c.auth_codes


# --- unknown database ----------------------------------------------------------


@pytest.mark.parametrize("auth_type", PASSWORD_AUTH)
def test_unknown_database_wrong_password(make_pooler, auth_type):
    p = make_pooler(settings={"auth_type": auth_type})
    e, codes = login_error(p, "alice", "nosuchdb", WRONG_PW)
    assert e.sqlstate == "28P01", e.fields
    assert e.message == 'password authentication failed for user "alice"'
    assert codes, "the password must be asked for before anything is told"
    # nor does an unknown user learn anything about the database
    e, _ = login_error(p, "nobody", "nosuchdb", WRONG_PW)
    assert e.sqlstate == "28P01", e.fields


@pytest.mark.parametrize("auth_type", PASSWORD_AUTH)
def test_unknown_database_right_password(make_pooler, auth_type):
    p = make_pooler(settings={"auth_type": auth_type})
    e, codes = login_error(p, "alice", "nosuchdb", ALICE_PW)
    assert e.sqlstate == "3D000", e.fields
    assert e.message == "no such database: nosuchdb"
    assert codes and codes[-1] == 0, codes  # authenticated first, then told
    with p.connect(user="alice", password=ALICE_PW) as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_unknown_database_trust_reported_at_once(make_pooler):
    p = make_pooler(settings={"auth_type": "trust"})
    e, codes = login_error(p, "alice", "nosuchdb", None)
    assert e.sqlstate == "3D000", e.fields
    assert e.message == "no such database: nosuchdb"
    assert codes == []


# --- SCRAM for users sluice cannot verify ----------------------------------------


def scram_first(p, user):
    """Starts a SCRAM login and returns the salt and iteration count the pooler
    offers, then sends a proof that cannot be right and returns the error."""
    nonce = base64.b64encode(b"n" * 18).decode()
    with p.raw() as c:
        c.send(pgproto.startup_packet({"user": user, "database": "testdb"}))
        mtype, payload = c.recv_msg()
        assert mtype == "R" and struct.unpack("!I", payload[:4])[0] == 10, (mtype, payload)
        first = ("n,,n=,r=" + nonce).encode()
        c.send_msg("p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first)
        mtype, payload = c.recv_msg()
        assert mtype == "R" and struct.unpack("!I", payload[:4])[0] == 11, (mtype, payload)
        attrs = dict(kv.split("=", 1) for kv in payload[4:].decode().split(","))
        proof = base64.b64encode(b"\0" * 32).decode()
        c.send_msg("p", ("c=biws,r=%s,p=%s" % (attrs["r"], proof)).encode())
        mtype, payload = c.recv_msg()
        assert mtype == "E", (mtype, payload)
        err = pgproto.ServerError(pgproto.parse_error_fields(payload))
        return attrs["s"], int(attrs["i"]), err


def secret_salt_iter(secret):
    m = re.match(r"SCRAM-SHA-256\$(\d+):([^$]+)\$", secret)
    return m.group(2), int(m.group(1))


@pytest.mark.parametrize("auth_type", ["scram-sha-256", "md5"])
def test_unknown_user_scram_salt_is_stable(make_pooler, auth_type):
    users = scram_users()
    p = make_pooler(settings={"auth_type": auth_type}, auth_users=users)
    real_salt, real_iter = secret_salt_iter(users["alice"])
    # a real user: the salt and count of its secret, on every attempt
    assert scram_first(p, "alice")[:2] == (real_salt, real_iter)
    s1, i1, e1 = scram_first(p, "nobody")
    s2, i2, e2 = scram_first(p, "nobody")
    s3, i3, _ = scram_first(p, "nobody2")
    assert s1 == s2, "an unknown user's salt changes between attempts"
    assert i1 == i2 == i3 == real_iter
    assert s1 != s3, "two unknown users share a salt"
    assert len(base64.b64decode(s1)) == len(base64.b64decode(real_salt))
    for e, user in ((e1, "nobody"), (e2, "nobody")):
        assert e.sqlstate == "28P01", e.fields
        assert e.message == 'password authentication failed for user "%s"' % user
    # a restart draws a new key: the salts of unknown users change
    p.stop()
    p.start()
    s4, i4, _ = scram_first(p, "nobody")
    assert s4 != s1 and i4 == real_iter
    assert scram_first(p, "alice")[:2] == (real_salt, real_iter)


def test_unknown_user_scram_iterations_follow_auth_file(make_pooler):
    users = {"alice": helpers.register_scram_secret(pgproto.scram_secret(ALICE_PW,
                                                                         iterations=10000))}
    p = make_pooler(settings={"auth_type": "scram-sha-256"}, auth_users=users)
    assert scram_first(p, "nobody")[1] == 10000


def test_plaintext_user_scram_salt_is_stable(make_pooler):
    # a plaintext secret is salted on the fly: with a new salt per attempt these
    # users would stand out from the others
    p = make_pooler(settings={"auth_type": "scram-sha-256"}, auth_users=scram_users("plain"))
    a1, n1, _ = scram_first(p, "alice")
    a2, n2, _ = scram_first(p, "alice")
    b1, _, _ = scram_first(p, "bob")
    assert a1 == a2 and n1 == n2 == 4096 and a1 != b1
    with p.connect(user="alice", password=ALICE_PW) as c:
        assert c.execute("select current_user").fetchone()[0] == "alice"


# --- escaping -------------------------------------------------------------------

LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC \[\d+\] [A-Z]+ ")


def raw_startup(p, params):
    """Sends a startup packet of raw bytes; returns the first ErrorResponse's fields
    (as bytes). A password request gets a wrong password; a login that succeeds
    sends a query, so that startup values reach a server."""
    body = struct.pack("!I", pgproto.PROTO_3_0)
    for k, v in params.items():
        body += k + b"\0" + v + b"\0"
    body += b"\0"
    with p.raw() as c:
        c.send(struct.pack("!I", len(body) + 4) + body)
        while True:
            mtype, payload = c.recv_msg()
            if mtype == "E":
                return dict((f[:1].decode(), f[1:]) for f in payload.split(b"\0") if f)
            if mtype == "Z":
                c.send_msg("Q", b"select 1\0")
            elif mtype == "R" and struct.unpack("!I", payload[:4])[0] == 3:
                c.send_msg("p", WRONG_PW.encode() + b"\0")
            elif mtype == "R" and payload[:4] != b"\0\0\0\0":
                raise AssertionError("unexpected auth request %r" % payload)


def log_bytes(p):
    out = b""
    for path in (p.stderr_path, p.logfile):
        if path.exists():
            out += path.read_bytes()
    return out


def assert_log_lines_whole(p):
    for line in log_bytes(p).split(b"\n"):
        if line:
            assert LOG_LINE.match(line), "log line not started by sluice: %r" % line
        assert not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", line), line


FORGED = b"2026-01-01 00:00:00.000 UTC [1] LOG C-1: testdb/app@127.0.0.1:1 login ok"


def test_newline_in_user_name_cannot_forge_log_line(make_pooler):
    p = make_pooler(settings={"auth_type": "plain"})
    err = raw_startup(p, {b"user": b"evil\n" + FORGED, b"database": b"testdb"})
    assert err["C"] == b"28P01"
    # the client sees the name escaped too, on one line
    assert err["M"] == b'password authentication failed for user "evil\\x0a' + FORGED + b'"'
    helpers.wait_for(lambda: b"evil\\x0a2026-01-01" in log_bytes(p), 10, 0.1, "escaped name")
    assert b"\n" + FORGED not in log_bytes(p)
    assert_log_lines_whole(p)


def test_non_utf8_and_controls_escaped(make_pooler):
    p = make_pooler(settings={"auth_type": "trust"})
    # unknown database named with a bad byte and an escape sequence
    err = raw_startup(p, {b"user": b"app", b"database": b"db\xff\x1b[2J\r"})
    assert err["C"] == b"3D000"
    assert err["M"] == b"no such database: db\\xff\\x1b[2J\\x0d"
    # a startup parameter name sluice does not know
    err = raw_startup(p, {b"user": b"app", b"database": b"testdb", b"bad\nname": b"1"})
    assert err["C"] == b"08P01"
    assert err["M"] == b"unsupported startup parameter: bad\\x0aname"
    # a value PostgreSQL refuses: its error quotes it, and sluice logs and relays that
    err = raw_startup(p, {b"user": b"app", b"database": b"testdb",
                          b"DateStyle": b"x\n" + FORGED})
    assert err["C"] == b"22023", err
    assert b'"x\\x0a2026-01-01 ' in err["M"], err
    # valid UTF-8 stays as it is
    err = raw_startup(p, {b"user": b"app", b"database": "d\u00f6\u20ac".encode()})
    assert err["M"] == "no such database: d\u00f6\u20ac".encode()
    helpers.wait_for(lambda: b"x\\x0a2026-01-01" in log_bytes(p), 10, 0.1, "escaped value")
    log = log_bytes(p)
    assert b"db\\xff\\x1b[2J\\x0d" in log
    assert b"bad\\x0aname" in log
    assert "d\u00f6\u20ac".encode() in log
    assert b"\xff" not in log and b"\x1b" not in log
    assert_log_lines_whole(p)


# --- what unknown-user SCRAM attempts cost (a report, not a test) ----------------


@pytest.mark.hard_timeout(300)
@pytest.mark.skipif(not os.environ.get("SLUICE_LOGIN_BENCH"),
                    reason="a measurement: SLUICE_LOGIN_BENCH=1 to run it (attack rate: "
                           "SLUICE_LOGIN_BENCH_RATE, default unlimited)")
def test_report_login_p50_under_unknown_user_storm(make_pooler):
    sys.path.insert(0, str(helpers.REPO / "test" / "tools"))
    import login_storm

    p = make_pooler(settings={"auth_type": "scram-sha-256", "log_connections": 0,
                              "log_disconnections": 0},
                    auth_users=scram_users(), extra_args=[])
    args = login_storm.parse_args(["--port", str(p.port), "--user", "alice", "--password",
                                   ALICE_PW, "--pid", str(p.proc.pid), "--logins",
                                   os.environ.get("SLUICE_LOGIN_BENCH_N", "300"), "--rate",
                                   os.environ.get("SLUICE_LOGIN_BENCH_RATE", "0")])
    print("\n" + login_storm.report(login_storm.measure(args)))
